#!/usr/bin/env bash
# bench_gpu.sh: the side-by-side serving benchmark on a GPU machine, in one run.
#   1. builds pagellm with CUDA (Release),
#   2. starts `pagellm serve` on the Qwen3-8B shape with dummy bf16 weights,
#   3. runs `pagellm bench serve` at concurrency 1, 16, 64, 256 for random 512/512 and 1024/128
#      (token-id prompts, so input lengths are exact; --ignore-eos, so output lengths are exact),
#   4. runs `pagellm bench throughput` (in-process engine, 512/512),
#   5. runs ../shared/bench/hf_baseline.py (HF transformers on the same card, with the card's
#      copy bandwidth and GEMM rate) unless --no-hf,
#   6. writes $OUT/bench_gpu.json; then, on the dev machine,
#      `python3 scripts/bench_report.py docs/bench_gpu.json` makes docs/bench_gpu.{md,png}.
# Usage (repo root, GPU machine): OUT=dir bash scripts/bench_gpu.sh [--no-hf] [--quick] [--no-offline] [--shape 8b]
# (--no-offline: no step 4, e.g. when gpu_check.sh --engine measured it in the same session)
# Needs .gpu/prefix (bash scripts/gpu_env.sh --fetch on the dev machine) and .gpu/hf_baseline.py.
set -u
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
OUT=${OUT:-$PWD/gpu-results}; mkdir -p "$OUT"
HF=1; QUICK=0; SHAPE=8b; OFFLINE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-hf) HF=0 ;; --quick) QUICK=1 ;; --no-offline) OFFLINE=0 ;; --shape) SHAPE=$2; shift ;;
    *) echo "unknown option $1"; exit 2 ;;
  esac; shift
done
T0=$(date +%s)
B=${GPU_FULL_BUILD_DIR:-/tmp/pagellm-gpu-full}
{ cmake -S . -B $B -G Ninja -DPAGELLM_CUDA=ON -DCMAKE_BUILD_TYPE=Release && cmake --build $B -j 16 --target pagellm; } \
  > "$OUT/bench_build.log" 2>&1 || { tail -30 "$OUT/bench_build.log"; exit 1; }
echo "build ok ($(( $(date +%s) - T0 )) s)"

M=/tmp/pagellm-models/qwen3-$SHAPE; mkdir -p $M
cp tests/fixtures/shapes/qwen3-$SHAPE.config.json $M/config.json
cp tests/fixtures/qwen3-tokenizer/{tokenizer.json,tokenizer_config.json,generation_config.json} $M/
PORT=8011
$B/pagellm serve $M --device cuda --load-format dummy --port $PORT --max-num-seqs 256 \
  --max-model-len 4096 --served-model-name qwen3-$SHAPE --log-level info > "$OUT/serve.log" 2>&1 &
SRV=$!
for i in $(seq 1 120); do curl -sf localhost:$PORT/health >/dev/null && break; sleep 0.5; done
curl -sf localhost:$PORT/health >/dev/null || { echo "server did not start"; tail -20 "$OUT/serve.log"; exit 1; }
echo "server ready ($(( $(date +%s) - T0 )) s)"; grep -E "ready|KV cache|weights|graph" "$OUT/serve.log" | head

CONCS="1 16 64 256"
# Every run draws its own prompts (its own --seed). With one seed for all, run c's prompts began
# with run c/4's, and the server's prefix cache (on by default, as in vLLM) served those
# prefills: c=256's 512 prompts began with c=64's 128, ~24% of its prefill (session 9).
SEED=100
for wl in 512/512 1024/128; do
  in=${wl%/*}; outl=${wl#*/}
  for c in $CONCS; do
    n=$(( c * 2 )); [ $c -eq 1 ] && n=3; [ $n -lt 16 ] && [ $c -gt 1 ] && n=16
    [ $QUICK -eq 1 ] && { n=$c; [ $c -eq 1 ] && n=2; }   # --quick: one wave per concurrency
    timeout 300 $B/pagellm bench serve --base-url http://127.0.0.1:$PORT --model qwen3-$SHAPE \
      --endpoint /v1/completions --dataset random --random-input-len $in --random-output-len $outl \
      --num-prompts $n --max-concurrency $c --ignore-eos --seed $SEED --no-progress \
      --save-result "$OUT/serve_${in}_${outl}_c$c.json" > "$OUT/serve_${in}_${outl}_c$c.txt" 2>&1
    kill -0 $SRV 2>/dev/null || { echo "server died"; tail -30 "$OUT/serve.log"; break 2; }
    echo "bench serve $wl c=$c rc=$? ($(( $(date +%s) - T0 )) s): $(grep -E 'Output token throughput|Median TTFT' "$OUT/serve_${in}_${outl}_c$c.txt" | tr -s ' ' | tr '\n' ' ')"
    SEED=$(( SEED + 1 ))
  done
done
# Structured outputs (issue 8): 64 concurrent requests, JSON schema vs unconstrained, side by
# side on the same server (unconstrained before and after, to bracket drift). The schema's one
# string field only takes [a-z ], so random weights rarely close it: most requests run to
# max_tokens and both sides decode about the same number of tokens (the JSON side without
# --ignore-eos, since EOS is only allowed once the JSON is complete).
SCHEMA='{"type":"object","properties":{"answer":{"type":"string","pattern":"^[a-z ]+$"}},"required":["answer"],"additionalProperties":false}'
for run in none1 json none2; do   # none1 also warms the prefix cache for the pair that follows
  extra=(--ignore-eos); [ $run = json ] && extra=(--extra-body "{\"structured_outputs\": {\"json\": $SCHEMA}}")
  timeout 200 $B/pagellm bench serve --base-url http://127.0.0.1:$PORT --model qwen3-$SHAPE \
    --endpoint /v1/completions --dataset random --random-input-len 512 --random-output-len 256 \
    --num-prompts 128 --max-concurrency 64 --seed 1 --no-progress "${extra[@]}" \
    --save-result "$OUT/structured_$run.json" > "$OUT/structured_$run.txt" 2>&1
  echo "structured $run rc=$? ($(( $(date +%s) - T0 )) s): $(grep -E 'Successful|Output token throughput|Total generated' "$OUT/structured_$run.txt" | tr -s ' ' | tr '\n' ' ')"
done
curl -s localhost:$PORT/metrics > "$OUT/metrics.txt"
kill -INT $SRV; wait $SRV; echo "server exit rc=$?"

[ $QUICK -eq 0 ] && [ $OFFLINE -eq 1 ] && timeout 300 $B/pagellm bench throughput $M --device cuda --load-format dummy --num-prompts 512 \
  --input-len 512 --output-len 512 --max-num-seqs 256 --max-model-len 4096 --no-progress \
  --output-json "$OUT/throughput.json" > "$OUT/throughput.txt" 2>&1
rc=$?
if [ -f "$OUT/throughput.txt" ]; then
  echo "bench throughput rc=$rc ($(( $(date +%s) - T0 )) s): $(grep Throughput "$OUT/throughput.txt")"
else
  echo "bench throughput: not run (--quick or --no-offline)"
fi

if [ $HF -eq 1 ]; then
  OUT="$OUT" timeout 420 python3 .gpu/hf_baseline.py Qwen3-8B > "$OUT/hf_baseline.log" 2>&1
  echo "hf_baseline rc=$? ($(( $(date +%s) - T0 )) s)"; tail -2 "$OUT/hf_baseline.log"
fi

python3 - "$OUT" "$SHAPE" <<'PY'
import glob, json, os, re, subprocess, sys, datetime
out, shape = sys.argv[1], sys.argv[2]
res = {"model": f"Qwen3-{shape.upper()} shape", "date": datetime.date.today().isoformat(), "serve": []}
try:
    res["device"] = subprocess.check_output(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], text=True).strip()
except Exception:
    res["device"] = "?"
for p in sorted(glob.glob(os.path.join(out, "serve_*_c*.json"))):
    m = re.search(r"serve_(\d+)_(\d+)_c(\d+)\.json", p)
    r = json.load(open(p))
    for k in ("ttfts", "e2els", "input_lens", "output_lens", "errors"):
        r.pop(k, None)
    r.update(input_len=int(m.group(1)), output_len=int(m.group(2)), concurrency=int(m.group(3)))
    res["serve"].append(r)
res["serve"].sort(key=lambda r: (r["input_len"], r["concurrency"]))
st = {}
for run in ("none1", "json", "none2"):
    p = os.path.join(out, f"structured_{run}.json")
    if os.path.exists(p):
        r = json.load(open(p))
        st[run] = {k: r.get(k) for k in ("completed", "failed", "duration", "total_output_tokens", "output_throughput")}
        for k in ("ttft_ms", "tpot_ms", "itl_ms"):
            st[run]["median_" + k] = (r.get(k) or {}).get("median")
if st:
    res["structured"] = st
    # none1 runs with a cold prefix cache (all three send the same prompts); json and none2 both
    # find their prompts cached, so they are the like-for-like pair
    if "json" in st and "none2" in st and st["none2"]["output_throughput"]:
        st["json_vs_unconstrained"] = st["json"]["output_throughput"] / st["none2"]["output_throughput"]
tp = os.path.join(out, "throughput.json")
if os.path.exists(tp):
    res["throughput"] = json.load(open(tp))
hf = os.path.join(out, "hf_baseline.json")
if os.path.exists(hf):
    h = json.load(open(hf))
    res["copy_TBps"], res["bf16_TFLOPs"] = h.get("copy_TBps"), h.get("bf16_TFLOPs")
    res["hf_baseline"] = h.get("Qwen3-8B")
json.dump(res, open(os.path.join(out, "bench_gpu.json"), "w"), indent=1)
print("wrote", os.path.join(out, "bench_gpu.json"))
PY
echo "total $(( $(date +%s) - T0 )) s"
