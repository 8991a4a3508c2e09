#!/usr/bin/env bash
# tp_check.sh: tensor parallelism on a machine with 2 GPUs (issue 9), in one run of about 6-8 min.
#   build   CMake + Ninja, -DPAGELLM_CUDA=ON (Release), with .gpu/prefix standing in for the
#           dev packages the GPU image lacks (scripts/gpu_env.sh); NCCL from the system, else
#           from the image's Python wheel (nvidia-nccl);
#   (a)     test_tp_nccl: dummy Qwen3-8B, TP=2 logits vs TP=1 on one GPU (bf16 tolerance), eager
#           and with CUDA graphs (the all-reduces captured in the decode graphs);
#   (b)     tiny models: test_tp_nccl TP=2 vs TP=1 on all four (graphs), and the engine end to end:
#           `pagellm generate --device cuda -tp 2` greedy token ids vs -tp 1 on models/tiny-qwen3
#           (made here by scripts/make_tiny_models.py when absent);
#   (c)     bench_tp: both cards' copy bandwidth, then the Qwen3-32B shape at TP=2, batch-1 decode
#           with dummy weights and CUDA graphs: tok/s and % of the combined floor
#           (bytes streamed per step / (bw0 + bw1));
#   (e)     `serve -dp 2 --device cuda` (one replica per GPU) answers 8 completions; both GPUs used
#           (runs after (d));
#   (d)     `pagellm bench throughput` on the Qwen3-8B shape, 256 requests of 512 random prompt
#           tokens / 512 output tokens (EOS ignored, all 256 concurrent: --max-num-seqs 256), TP=1
#           then TP=2, one table.
# Each part has its own time limit and a failing part does not stop the later ones; a total
# budget (TP_CHECK_BUDGET, default 560 s) skips what no longer fits. Results in $OUT (at most 4
# files): tp_check.json (every number), tp_check.md (the tables), tp_check.log (all output).
# NCCL_NVLS_ENABLE=0 (NVLink multicast off) in every run.
#
# Usage (repository root, 2-GPU machine, carrying .gpu):  OUT=dir bash scripts/tp_check.sh
# TP_CHECK_DRY=1 runs the plumbing on a machine without GPUs (CPU ranks, tiny model only).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/gpu_env.sh
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-$PWD/tp-results}; mkdir -p "$OUT"
W=/tmp/pagellm-tp-check; rm -rf "$W"; mkdir -p "$W"
LOG=$OUT/tp_check.log; : > "$LOG"
DRY=${TP_CHECK_DRY:-0}
BUDGET=${TP_CHECK_BUDGET:-560}
T0=$(date +%s)
B=${TP_BUILD_DIR:-/tmp/pagellm-tp-build}
DEV=cuda; [ "$DRY" = 1 ] && DEV=cpu

say() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }
# status file per part: ok | FAIL (...) | skipped (...)
status() { echo "$2" > "$W/status_$1"; say "part $1: $2"; }
# seconds left for a part wanting $1 s (0 = skip)
left() { local l=$(( BUDGET - ($(date +%s) - T0) - 15 )); [ $l -gt $1 ] && l=$1; [ $l -lt 20 ] && l=0; echo $l; }
# run NAME LIMIT CMD...: output to $W/NAME.txt and the log; returns the command's status
run() {
  local name=$1 lim=$2; shift 2
  say "run $name (limit ${lim}s): $*"
  timeout -k 15 "$lim" "$@" > "$W/$name.txt" 2>&1   # -k: a rank stuck in NCCL ignores TERM
  local rc=$?
  grep -v '^INFO' "$W/$name.txt" | tail -40 >> "$LOG"
  say "  $name rc=$rc"
  return $rc
}

# ------------------------------------------------------------------ environment
{
  date -u; uname -r
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv 2>&1
  nvidia-smi topo -m 2>&1 | head -8
  nvcc --version 2>&1 | tail -1
  env | grep -E '^NCCL_|MULTICAST|NVLS' | sort
} >> "$LOG" 2>&1
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
say "GPUs: $NGPU, device $DEV, budget ${BUDGET}s"

# ------------------------------------------------------------------ build
build() {
  cmake -S . -B "$B" -G Ninja -DPAGELLM_CUDA=ON -DCMAKE_BUILD_TYPE=${TP_BUILD_TYPE:-Release} || return 1
  if ! grep -q '^NCCL_LIB:FILEPATH=/' "$B/CMakeCache.txt"; then
    # no system libnccl: the image's wheel (nvidia-nccl-cu*) has the library and the header
    local d
    d=$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null)
    local lib=$(ls "$d"/lib/libnccl.so* 2>/dev/null | head -1)
    if [ -n "$lib" ] && [ -f "$d/include/nccl.h" ]; then
      echo "NCCL from the Python wheel: $lib"
      export LD_LIBRARY_PATH=$d/lib:${LD_LIBRARY_PATH:-}
      cmake -S . -B "$B" -DNCCL_LIB="$lib" -DCMAKE_CUDA_FLAGS="-I$d/include" || return 1
    else
      echo "no libnccl found: TP over GPUs will refuse to start"
    fi
  fi
  grep -E '^NCCL_LIB' "$B/CMakeCache.txt"
  cmake --build "$B" -j "$(nproc)" --target pagellm test_tp_nccl bench_tp
}
say "build in $B"
if ( build ) > "$W/build.txt" 2>&1; then status build ok; else status build "FAIL (see tp_check.log)"; fi
grep -E "NCCL|wheel|libnccl" "$W/build.txt" | tee -a "$LOG"
# the wheel's libnccl (when used) must be found at run time too
d=$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null) && [ -d "$d/lib" ] &&
  grep -q "$d" "$B/CMakeCache.txt" 2>/dev/null && export LD_LIBRARY_PATH=$d/lib:${LD_LIBRARY_PATH:-}
BUILD_OK=0; [ -x "$B/pagellm" ] && [ -x "$B/test_tp_nccl" ] && BUILD_OK=1
grep -E "error" "$W/build.txt" | head -20 >> "$LOG"
if [ $BUILD_OK = 0 ]; then
  tail -60 "$W/build.txt" >> "$LOG"
fi
CPUF=(); [ "$DRY" = 1 ] && CPUF=(--cpu)

# ------------------------------------------------------------------ (a) dummy Qwen3-8B logits, TP=2 vs TP=1
if [ $BUILD_OK = 1 ]; then
  ra=ok
  # CUDA graphs holding the NCCL all-reduce hung on the first run (2026-11-23): opt-in only
  modes="eager"; [ "${TP_CHECK_GRAPHS:-0}" = 1 ] && modes="eager graphs"
  for mode in $modes; do
    g=(); [ $mode = graphs ] && g=(--graphs)
    cfg=tests/fixtures/shapes/qwen3-8b.config.json; [ "$DRY" = 1 ] && cfg=tests/fixtures/shapes/qwen3-0.6b.config.json
    l=$(left 150)
    if [ $l = 0 ]; then ra="skipped (time budget)"; break; fi
    run a_$mode "$l" "$B/test_tp_nccl" $cfg --dummy --tp 2 --decode 8 "${g[@]}" "${CPUF[@]}" || ra="FAIL ($mode)"
  done
  status a "$ra"
else status a "skipped (build failed)"; fi

# ------------------------------------------------------------------ (b) tiny models
if [ $BUILD_OK = 1 ]; then
  rb=ok
  [ -f models/tiny-qwen3/config.json ] || run make_tiny 60 python3 scripts/make_tiny_models.py
  for m in tiny-qwen3 tiny-qwen3-untied tiny-qwen2 tiny-llama; do
    [ -d models/$m ] || { rb="FAIL (models/$m missing)"; continue; }
    l=$(left 60); [ $l = 0 ] && { rb="skipped (time budget)"; break; }
    run b_$m "$l" "$B/test_tp_nccl" models/$m --tp 2 --graphs --tol 2e-2 "${CPUF[@]}" || rb="FAIL ($m)"
  done
  # the engine end to end: generate with -tp 2 vs -tp 1, greedy token ids
  python3 - "$W/gen_in.jsonl" <<'PY'
import json, random, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    for i in range(16):
        n = random.randrange(4, 200)
        f.write(json.dumps({"prompt_token_ids": [random.randrange(1000, 150000) for _ in range(n)],
                            "max_tokens": 32, "temperature": 0, "ignore_eos": True}) + "\n")
PY
  for tp in 1 2; do
    l=$(left 90); [ $l = 0 ] && { rb="skipped (time budget)"; break; }
    run b_generate_tp$tp "$l" "$B/pagellm" generate --model models/tiny-qwen3 --device $DEV -tp $tp \
      --input "$W/gen_in.jsonl" --output "$W/gen_out_tp$tp.jsonl" --max-model-len 512 \
      --num-gpu-blocks-override 2048 --max-num-seqs 16 --threads 2 || rb="FAIL (generate -tp $tp)"
  done
  python3 - "$W" > "$W/b_compare.txt" 2>&1 <<'PY'
import json, sys, os
w = sys.argv[1]
def load(tp):
    p = os.path.join(w, f"gen_out_tp{tp}.jsonl")
    return [json.loads(l)["outputs"][0]["token_ids"] for l in open(p)] if os.path.exists(p) else None
a, b = load(1), load(2)
if a is None or b is None:
    print(json.dumps({"generate_compared": 0})); sys.exit(1)
first = []
for x, y in zip(a, b):
    k = 0
    while k < min(len(x), len(y)) and x[k] == y[k]: k += 1
    first.append(k if (k < max(len(x), len(y))) else None)
same = sum(f is None for f in first)
print(json.dumps({"generate_compared": len(a), "generate_identical": same, "generate_tokens_each": len(a[0]),
                  "generate_first_diff": [f for f in first if f is not None]}))
sys.exit(0 if same == len(a) else 1)
PY
  cmprc=$?
  cat "$W/b_compare.txt" | tee -a "$LOG"
  [ $cmprc = 0 ] || { [ "$rb" = ok ] && rb="FAIL (generate TP=2 != TP=1, see b_compare)"; }
  status b "$rb"
else status b "skipped (build failed)"; fi

# ------------------------------------------------------------------ (c) Qwen3-32B shape, TP=2 batch-1 decode
if [ $BUILD_OK = 1 ] && [ "$DRY" != 1 ]; then
  l=$(left 240)
  if [ $l = 0 ]; then status c "skipped (time budget)"
  elif run c_bench_tp "$l" "$B/bench_tp" tests/fixtures/shapes/qwen3-32b.config.json --tp 2 --decode 128; then status c ok
  else status c "FAIL (see tp_check.log)"; fi
elif [ "$DRY" = 1 ]; then status c "skipped (dry run: needs GPUs)"
else status c "skipped (build failed)"; fi

# ------------------------------------------------------------------ (d) Qwen3-8B shape throughput, TP=1 and TP=2
if [ $BUILD_OK = 1 ]; then
  M=$W/qwen3-8b; mkdir -p $M
  cp tests/fixtures/qwen3-tokenizer/{tokenizer.json,tokenizer_config.json,generation_config.json} $M/
  if [ "$DRY" = 1 ]; then
    cp models/tiny-qwen3/config.json $M/config.json; NP=16; IN=64; OL=16; DF=(--threads 2)
  else
    cp tests/fixtures/shapes/qwen3-8b.config.json $M/config.json; NP=${TP_CHECK_PROMPTS:-256}; IN=512; OL=512; DF=()
  fi
  rd=ok
  for tp in 1 2; do
    l=$(left 170); [ $l = 0 ] && { rd="skipped (time budget at TP=$tp)"; break; }
    run d_throughput_tp$tp "$l" "$B/pagellm" bench throughput $M --device $DEV --load-format dummy -tp $tp \
      --num-prompts $NP --input-len $IN --output-len $OL --max-num-seqs 256 --max-num-batched-tokens 8192 \
      --max-model-len 2048 --no-progress --output-json "$W/d_tp$tp.json" "${DF[@]}" || rd="FAIL (TP=$tp)"
    grep -iE "throughput|KV cache|tensor parallel" "$W/d_throughput_tp$tp.txt" | tee -a "$LOG"
  done
  status d "$rd"
else status d "skipped (build failed)"; fi

# ------------------------------------------------------------------ (e) data parallelism on CUDA
# `serve -dp 2`: replica r on GPU r; 8 completions through the one front end; both GPUs hold a replica.
if [ $BUILD_OK = 1 ] && [ "$DRY" != 1 ] && [ -f models/tiny-qwen3/config.json ]; then
  l=$(left 60)
  if [ $l = 0 ]; then status e "skipped (time budget)"
  else
    "$B/pagellm" serve models/tiny-qwen3 --device cuda -dp 2 --port 8019 --served-model-name t \
      --max-model-len 512 > "$W/e_serve.txt" 2>&1 &
    SP=$!
    for i in $(seq 1 60); do curl -sf localhost:8019/health >/dev/null && break; sleep 0.5; done
    ok=0
    for i in $(seq 1 8); do
      curl -sf localhost:8019/v1/completions -H 'content-type: application/json' \
        -d "{\"model\":\"t\",\"prompt\":\"request $i\",\"max_tokens\":8}" >/dev/null && ok=$((ok + 1))
    done
    used=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | awk '$1 > 300' | wc -l)
    kill -INT $SP 2>/dev/null; sleep 1; kill -9 $SP 2>/dev/null; wait $SP 2>/dev/null
    grep -E "replica|GPUs" "$W/e_serve.txt" | head -4 | tee -a "$LOG"
    say "  e: $ok of 8 completions, $used GPU(s) holding memory"
    if [ $ok = 8 ] && [ "$used" -ge 2 ]; then status e ok; else status e "FAIL ($ok/8 completions, $used GPUs in use)"; fi
  fi
else status e "skipped (no GPUs, build or tiny model)"; fi

# ------------------------------------------------------------------ summary
python3 - "$W" "$OUT" "$NGPU" "$DRY" <<'PY'
import glob, json, os, re, sys
w, out, ngpu, dry = sys.argv[1], sys.argv[2], int(sys.argv[3] or 0), sys.argv[4] == "1"
def read(p):
    return open(p).read() if os.path.exists(p) else ""
def jlines(name):
    return [json.loads(l) for l in read(os.path.join(w, name + ".txt")).splitlines() if l.startswith("{")]
res = {"gpus": ngpu, "dry_run": dry, "status": {}}
for p in sorted(glob.glob(os.path.join(w, "status_*"))):
    res["status"][p.rsplit("_", 1)[1]] = read(p).strip()
res["a_logits_8b"] = [r for m in ("eager", "graphs") for r in jlines("a_" + m)]
res["b_tiny"] = [r for m in ("tiny-qwen3", "tiny-qwen3-untied", "tiny-qwen2", "tiny-llama") for r in jlines("b_" + m)]
cmp = [json.loads(l) for l in read(os.path.join(w, "b_compare.txt")).splitlines() if l.startswith("{")]
res["b_generate"] = cmp[0] if cmp else None
c = jlines("c_bench_tp")
res["c_decode_32b"] = c[0] if c else None
res["d_throughput_8b"] = {}
for tp in (1, 2):
    p = os.path.join(w, f"d_tp{tp}.json")
    if os.path.exists(p):
        res["d_throughput_8b"][f"tp{tp}"] = json.load(open(p))
json.dump(res, open(os.path.join(out, "tp_check.json"), "w"), indent=1)

md = ["# tp_check" + (" (DRY RUN on CPU ranks)" if dry else ""), "", f"GPUs: {ngpu}", "", "| part | status |", "|---|---|"]
for k, v in res["status"].items():
    md.append(f"| {k} | {v} |")
md += ["", "## (a) dummy Qwen3-8B, TP=2 vs TP=1 (bf16)", "", "| graphs | worst rel err | argmax agree | device-sample agree |", "|---|---|---|---|"]
for r in res["a_logits_8b"]:
    ds = "n/a" if r.get("device_sample_agree", -1) < 0 else f"{r['device_sample_agree']}/{r['device_sample_rows']}"
    md.append(f"| {r.get('graphs')} | {r['worst_rel_err']:.3g} | {r['argmax_agree']}/{r['rows']} | {ds} |")
md += ["", "## (b) tiny models, TP=2 vs TP=1 (graphs)", "", "| model | worst rel err | argmax agree |", "|---|---|---|"]
for r in res["b_tiny"]:
    md.append(f"| {os.path.basename(r['model'])} | {r['worst_rel_err']:.3g} | {r['argmax_agree']}/{r['rows']} |")
g = res["b_generate"]
if g:
    md += ["", f"engine greedy (`pagellm generate -tp 2` vs `-tp 1`, tiny-qwen3): {g.get('generate_identical', 0)} of "
           f"{g.get('generate_compared', 0)} requests identical over {g.get('generate_tokens_each', '?')} tokens"
           + (f"; first differing positions {g['generate_first_diff']}" if g.get("generate_first_diff") else "")]
c = res["c_decode_32b"]
if c:
    md += ["", "## (c) Qwen3-32B shape, TP=2, batch-1 decode, CUDA graphs", "",
           "| copy TB/s per GPU | sum | streamed GB | floor tok/s | decode tok/s | % floor | % all-weights floor | step ms | all-reduce us |",
           "|---|---|---|---|---|---|---|---|---|",
           f"| {' / '.join(str(x) for x in c['copy_TBps'])} | {c['copy_TBps_sum']} | {c['streamed_GB']} | {c['floor_tok_s']} | "
           f"{c['decode_tok_s']} | {c['pct_floor']} | {c['pct_floor_all_weights']} | {c['step_ms_median']} | {c['allreduce_us']} |"]
d = res["d_throughput_8b"]
if d:
    v0 = next(iter(d.values()))
    md += ["", f"## (d) Qwen3-8B shape, {v0.get('num_requests')} requests all concurrent, {v0.get('input_len')} in / "
           f"{v0.get('output_len')} out (ignore_eos), `pagellm bench throughput`", ""]
    keys = ["output_tokens_per_second", "tokens_per_second", "requests_per_second", "elapsed_time", "num_requests"]
    md += ["| metric | " + " | ".join(t.upper() for t in d) + " |", "|---|" + "---|" * len(d)]
    fmt = lambda x: f"{x:,.1f}" if isinstance(x, float) else str(x)
    for k in keys:
        md.append(f"| {k} | " + " | ".join(fmt(d[t].get(k, "")) for t in d) + " |")
open(os.path.join(out, "tp_check.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
say "total $(( $(date +%s) - T0 )) s"
