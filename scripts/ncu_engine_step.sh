#!/usr/bin/env bash
# ncu_engine_step.sh: Nsight Compute's kernel times for batch-1 decode steps inside the engine
# (`pagellm bench latency`, CUDA graphs replayed node by node), once per engine configuration,
# and the difference per kernel. Written to find why `--max-num-seqs 256` (the default) decodes
# batch 1 ~0.15 ms per token slower than `--max-num-seqs 16` on the H100 (session 5).
#
# Usage (GPU machine, after gpu_check.sh --engine built $FB/pagellm):
#   FB=/tmp/pagellm-gpu-full M=/tmp/pagellm-q8b OUT=dir scripts/ncu_engine_step.sh "" "--max-num-seqs 16"
# Each argument is one configuration's extra bench flags. Launch 60000.. fall in the warm-up
# iteration's decode loop (513 tokens of ~220 kernels each, after a start-up of at most ~20k
# eager kernels), so 440 launches are two steps. --cache-control none: L2 is not flushed between
# kernels (placement effects stay visible); the profiler still serializes the kernels.
set -u
FB=${FB:-/tmp/pagellm-gpu-full}; M=${M:-/tmp/pagellm-q8b}; OUT=${OUT:-$PWD/gpu-results}
SKIP=${NCU_SKIP:-60000}; COUNT=${NCU_COUNT:-440}
# the Debian libraries gpu_check.sh unpacked for the full build (jansson, ...), if the image lacks them
P=$(cd "$(dirname "$0")/.." && pwd)/.gpu/prefix/usr/lib/x86_64-linux-gnu
[ -d "$P" ] && export LD_LIBRARY_PATH=$P:${LD_LIBRARY_PATH:-}
i=0
for cfg in "$@"; do
  i=$((i + 1))
  # shellcheck disable=SC2086
  timeout 240 ncu --clock-control none --cache-control none --graph-profiling node --launch-skip $SKIP \
    --launch-count $COUNT --metrics gpu__time_duration.sum,dram__bytes_read.sum --csv --print-units base \
    $FB/pagellm bench latency $M --load-format dummy --device cuda --batch-size 1 --input-len 128 \
    --output-len 513 --num-iters-warmup 1 --num-iters 1 --no-progress $cfg > "$OUT/ncu_engine$i.csv" 2>/dev/null
  echo "ncu engine config $i ('$cfg') rc=$?"
done
python3 - "$OUT" "$@" <<'PYEOF' | tee "$OUT/ncu_engine.txt"
import csv, sys, collections
out, cfgs = sys.argv[1], sys.argv[2:]
per = []
for i, cfg in enumerate(cfgs, 1):
    try:
        rows = [r for r in csv.reader(open("%s/ncu_engine%d.csv" % (out, i))) if len(r) > 10]
    except OSError:
        rows = []
    rows = rows[next((j for j, r in enumerate(rows) if "Kernel Name" in r), len(rows)):]
    t, b, n = collections.Counter(), collections.Counter(), collections.Counter()
    if rows:
        h = rows[0]; name, metric, value = h.index("Kernel Name"), h.index("Metric Name"), h.index("Metric Value")
        for r in rows[1:]:
            k = r[name].replace("void ", "").split("<")[0].split("(")[0].strip()
            v = float(r[value].replace(",", ""))
            if r[metric] == "gpu__time_duration.sum": t[k] += v; n[k] += 1
            elif r[metric] == "dram__bytes_read.sum": b[k] += v
    steps = sum(n.values()) / 220.0 or 1
    per.append((cfg or "default", t, b, n, steps))
    print("config %d (%s): %d kernels, %.3f ms kernel time (%.2f steps of ~220 kernels)"
          % (i, cfg or "default", sum(n.values()), sum(t.values()) / 1e6, steps))
keys = sorted(set().union(*[p[1].keys() for p in per]), key=lambda k: -max(p[1][k] for p in per))
print("%-30s" % "kernel" + "".join("  %24s" % p[0][:24] for p in per) + "   (us per launch, launches, GB/s)")
for k in keys:
    cols = []
    for cfg, t, b, n, steps in per:
        cols.append("  %9.2f %4d %7.0f" % (t[k] / 1e3 / n[k] if n[k] else 0, n[k], b[k] / t[k] if t[k] else 0))
    print("%-30s" % k[:30] + "".join(cols))
PYEOF
