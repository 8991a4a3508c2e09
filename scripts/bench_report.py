#!/usr/bin/env python3
"""Turns the JSON written by scripts/bench_gpu.sh into docs/bench_gpu.md (a markdown table)
and docs/bench_gpu.png (output throughput and median TTFT against concurrency, one line per
workload). Usage: python3 scripts/bench_report.py docs/bench_gpu.json
"""
import json
import os
import sys


def main(path):
    res = json.load(open(path))
    base = os.path.splitext(path)[0]
    rows = res["serve"]
    lines = ["# GPU serving benchmark", "",
             f"Machine: {res.get('device', '?')}; model: {res.get('model', '?')} (dummy weights, bf16); "
             f"date: {res.get('date', '?')}; "
             + (f"card copy bandwidth {res['copy_TBps']} TB/s." if res.get('copy_TBps')
                else "card copy bandwidth not measured in this run (--no-hf)."), "",
             "Made by `bash scripts/bench_gpu.sh` (see docs/benchmarks.md).", "",
             "| workload (in/out) | concurrency | requests | output tok/s | total tok/s | req/s | "
             "median TTFT ms | p99 TTFT ms | median TPOT ms | median ITL ms | median E2EL ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['input_len']}/{r['output_len']} | {r['concurrency']} | {r['completed']} | "
                     f"{r['output_throughput']:.0f} | {r['total_token_throughput']:.0f} | {r['request_throughput']:.2f} | "
                     f"{r['ttft_ms']['median']:.1f} | {r['ttft_ms']['p99']:.1f} | {r['tpot_ms']['median']:.2f} | "
                     f"{r['itl_ms']['median']:.2f} | {r['e2el_ms']['median']:.0f} |")
    if "throughput" in res:
        t = res["throughput"]
        lines += ["", f"Offline `pagellm bench throughput`: {t}"]
    if "hf_baseline" in res:
        lines += ["", "HF transformers baseline (same card): " + json.dumps(res["hf_baseline"])]
    st = res.get("structured")
    if st:
        lines += ["", "Structured outputs, 64 concurrent requests of 512 in / 256 out (`bench serve --extra-body`"
                  " with a JSON schema vs unconstrained; none1 is the cold-prefix-cache run, json and none2 the"
                  " like-for-like pair):", "",
                  "| run | requests | output tokens | output tok/s | median TTFT ms | median TPOT ms | median ITL ms |",
                  "|---|---|---|---|---|---|---|"]
        for k in ("none1", "json", "none2"):
            r = st.get(k)
            if r:
                lines.append(f"| {k} | {r['completed']} | {r['total_output_tokens']} | {r['output_throughput']:.0f} | "
                             f"{r['median_ttft_ms']:.1f} | {r['median_tpot_ms']:.2f} | {r['median_itl_ms']:.2f} |")
        json_ratio = st.get("json", {}).get("output_throughput", 0) / max(st.get("none2", {}).get("output_throughput", 1), 1e-9)
        lines += ["", f"JSON schema / unconstrained (json vs none2): {100 * json_ratio:.1f}% of output throughput"]
    if "note" in res:
        lines += ["", "Note: " + res["note"]]
    open(base + ".md", "w").write("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot", file=sys.stderr)
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for wl in sorted({(r["input_len"], r["output_len"]) for r in rows}):
        pts = sorted((r["concurrency"], r) for r in rows if (r["input_len"], r["output_len"]) == wl)
        xs = [c for c, _ in pts]
        a1.plot(xs, [r["output_throughput"] for _, r in pts], marker="o", label=f"{wl[0]}/{wl[1]}")
        a2.plot(xs, [r["ttft_ms"]["median"] for _, r in pts], marker="o", label=f"{wl[0]}/{wl[1]}")
    for a, t in ((a1, "output tokens/s"), (a2, "median TTFT (ms)")):
        a.set_xscale("log", base=2)
        a.set_xlabel("concurrency")
        a.set_ylabel(t)
        a.grid(True, alpha=0.3)
        a.legend(title="in/out tokens")
    fig.suptitle(f"pagellm serve, {res.get('model', '')}, {res.get('device', '')}")
    fig.tight_layout()
    fig.savefig(base + ".png", dpi=110)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/bench_gpu.json")
