#!/usr/bin/env bash
# gpu_check.sh: on a GPU machine, build the CUDA backend, check every op against the CPU
# references, time the Qwen3 shapes with dummy weights, and run HF transformers side by side.
#
# Usage (repository root, on the GPU machine):
#   OUT=/some/dir scripts/gpu_check.sh [--no-hf] [--shapes "8b 4b 0.6b"] [--quick] [--fast] [--ncu]
#                                      [--no-model] [--model-shapes 0.6b,8b] [--engine] [--ncu-step]
# --ncu-step: Nsight Compute's kernel times of two graph-replayed 8B decode steps at NCU_STEP_BS
# rows (default 256), context 768, bf16 and fp8 KV (ncu_step256*.txt; NCU_STEP_KV=bf16: bf16 only).
# --fast: no op profiles (decode and prefill), only the timings. DECODE_ATTN_LIST (default "1 3")
# and PREFILL_ATTN_LIST (default "2 5 6 1") choose the attention kernels the profiles compare ("": none).
# --dev: dev/cuda/read_bw.cu (read-only vs copy bandwidth), kv_layout_bw.cu (decode attention's
# access pattern on our KV layout vs HND, without the math) and gemv.cu (every small-batch GEMM
# version); DEV_TOOLS="read_bw ..." picks; DEV_TOOLS=cutlass_gemm (never by default): CUTLASS's
# stream-K / split-K GEMMs vs cuBLASLt at the 8B decode shapes.
# AB_ENVS="VAR=v;VAR2=w": the 8B batch-1 and batch-256 decode step with each setting, between two
# default runs (default: GEMM_PAIR off, DECODE_COMBINE on, GEMV4 off, FUSE_PRO off, one by one);
# AB_SHAPES (default "8b"): the shapes each setting runs on.
# Entries "base" or "base:VAR=v VAR2=w" run the BASE_TREE build. SKIP_OP_TESTS=1: no op tests.
# BASE_TREE=dir: another source tree (an older commit) built beside this one and timed in the A/B.
# --engine (needs no --model; builds the full tree): 256 requests of 512 random prompt tokens / 512 output tokens (ignore_eos) through
# `pagellm bench throughput --device cuda --load-format dummy` on the Qwen3-8B shape, bf16 and fp8
# KV caches: output tok/s, the engine's step phases and the start-up log (weights, activations,
# KV GB, blocks, concurrency, CUDA graphs, ready time); batch-1 decode through the engine
# (`pagellm bench latency`, 1 vs 513 output tokens).
# ENGINE_LAT_ENVS="VAR=v;...": the engine batch-1 latency again with each setting (default:
# PAGELLM_ASYNC_SCHEDULING=1, after test_cuda_async's sync-vs-async token check). ENGINE_THR=0:
# no throughput runs. ENGINE_ASYNC_TEST=0: no test_cuda_async. ENGINE_THR_ENVS="VAR=v;...": the
# bf16 throughput run again with each setting, then the default again; an entry's --flags (and
# their values) go to `bench throughput`, e.g. "--num-prompts 1024 --max-num-batched-tokens 2048".
# MODEL_AB_ENVS="VAR=v;...": test_cuda_model again with each setting, against the same HF references.
# --model-shapes: the Qwen3 shapes test_cuda_model checks against the CPU backend and against
# HF transformers on this GPU (scripts/hf_shape_ref.py: same dummy weights, 64 x 128 positions,
# f32 compute; --no-hf-ref skips that part). Results: hf_shape_ref.log, test_cuda_model.log,
# and the "Qwen3 shapes vs HF" table in summary.md.
# GPU_CHECK_TAR=1: everything in $OUT packed into all.tgz at the end (the device tool returns 8 files).
# GPU_CHECK_BUDGET_S (default 560): A/B variants and profiles are skipped when they would leave
# too little of it for HF transformers and the packing.
# Writes to $OUT (default ./gpu-results): env.txt, build.log, test_cuda_ops.log,
# test_cuda_model.log, bench.log, bench.jsonl, hf_baseline.json, summary.md. docs/benchmarks.md ("GPU")
# takes its numbers from these files (committed under dev/cuda/results/<date>/).
#
# The op tests and the bench build standalone (nvcc + cc, no CMake, no pkg-config): they link only
# the CUDA backend, the CPU backend and util. The whole-model test needs the full CMake build;
# where the machine lacks jansson/pcre2/utf8proc/xxhash, Debian 12 packages unpacked into
# .gpu/prefix (apt-get download + dpkg -x here; carried with the call) stand in.
# HF baseline: ../shared/bench/hf_baseline.py, copied to .gpu/hf_baseline.py before the call.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
HF=1; SHAPES="8b 0.6b 4b"; QUICK=0; FAST=0; NCU=0; NCU_STEP=0; MODEL=1; MODEL_SHAPES="0.6b,8b"; ENGINE=0; DEV=0; HFREF=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-hf) HF=0 ;;
    --shapes) SHAPES="$2"; shift ;;
    --quick) QUICK=1 ;;
    --fast) FAST=1 ;;
    --ncu) NCU=1 ;;
    --ncu-step) NCU_STEP=1 ;;
    --no-model) MODEL=0 ;;
    --no-hf-ref) HFREF=0 ;;
    --engine) ENGINE=1 ;;
    --dev) DEV=1 ;;
    --model-shapes) MODEL_SHAPES="$2"; shift ;;
    *) echo "unknown option $1"; exit 2 ;;
  esac
  shift
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
B=${GPU_BUILD_DIR:-/tmp/pagellm-gpu-build}
mkdir -p "$B"
T0=$(date +%s)
# GPU_CHECK_BUDGET_S (default 560: the device tool's 600 s per command, less packing): A/B
# variants and profiles are skipped once fewer than RESERVE s (their argument) would be left,
# so that HF transformers (last) and the packing of $OUT still run.
budget_ok() { [ $(( $(date +%s) - T0 )) -lt $(( ${GPU_CHECK_BUDGET_S:-560} - ${1:-150} )) ]; }

# ---------------------------------------------------------------- environment
{
  date -u; uname -a
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
  nvcc --version | tail -2
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
  echo "pkg-config deps:"; for p in jansson libevent libpcre2-8 libutf8proc libxxhash libcurl; do
    pkg-config --exists $p && echo "  $p yes" || echo "  $p missing"; done
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# ---------------------------------------------------------------- build
NVFLAGS=(-O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a --use_fast_math -lineinfo -Isrc -Xptxas=-v)
CFLAGS=(-O3 -std=gnu17 -Wall -Wextra -Wno-unused-parameter -Isrc -Itests/unit -Itests/gpu
        -I/usr/local/cuda/include -DPAGELLM_HAVE_CUDA=1 '-DPAGELLM_VERSION="gpu"'
        "-DPAGELLM_SOURCE_DIR=\"$ROOT\"")
C_SRC=(src/util/dtype.c src/util/err.c src/util/log.c src/util/threadpool.c
       src/backend/backend.c src/backend/cpu/*.c src/sample/sampler.c src/sample/sample_batch.c src/sample/params.c)
LIBS=(-L/usr/local/cuda/lib64 -lcudart -lcublasLt -lstdc++ -lpthread -lm -ldl)
build() {
  set -e
  local pids=() objs=()
  for f in src/backend/cuda/*.cu; do
    # comm_nccl.cu too: without -DPAGELLM_HAVE_NCCL it is the stub that graph.cu links against
    o=$B/$(basename $f).o; objs+=($o)
    nvcc "${NVFLAGS[@]}" -c $f -o $o > $o.log 2>&1 & pids+=($!)
  done
  for f in "${C_SRC[@]}"; do
    o=$B/$(echo $f | tr / _).o; objs+=($o)
    cc "${CFLAGS[@]}" -c $f -o $o > $o.log 2>&1 & pids+=($!)
  done
  local rc=0
  for p in "${pids[@]}"; do wait $p || rc=1; done
  cat $B/*.o.log
  [ $rc -eq 0 ] || { echo "compile failed"; return 1; }
  for t in test_cuda_ops test_cuda_sampler bench_cuda_qwen3; do
    cc "${CFLAGS[@]}" -c tests/gpu/$t.c -o $B/$t.o
    cc -o $B/$t $B/$t.o "${objs[@]}" "${LIBS[@]}"
  done
}
( build ) > "$OUT/build.log" 2>&1
BUILD_RC=$?
# BASE_TREE=dir (e.g. `git archive REV | tar -x -C .gpu/base`, carried): its bench too, for the A/B
# below on the same card in the same call
if [ -n "${BASE_TREE:-}" ]; then
  mkdir -p $B-base
  ( cd "$BASE_TREE" && B=$B-base && build ) > "$OUT/build_base.log" 2>&1 || echo "base build failed"
fi
grep -E "error|registers|spill|stack frame" "$OUT/build.log" | grep -E "error|spill [1-9]|[1-9][0-9]* bytes stack" | head -20
echo "build rc=$BUILD_RC ($(( $(date +%s) - T0 )) s)"
[ $BUILD_RC -eq 0 ] || { tail -40 "$OUT/build.log"; exit 1; }

# ---------------------------------------------------------------- full build, in the background
# The whole-model test and the engine need the full CMake build (80-110 s); it runs beside the op
# tests (GPU-bound; correctness only, so the shared CPUs cost them no meaning), 4 cores left to them.
if [ $MODEL -eq 1 ] || [ $ENGINE -eq 1 ]; then
  # Debian 12 dev packages the GPU image lacks, unpacked into .gpu/prefix (see docs/benchmarks.md)
  if ! pkg-config --exists jansson && [ -d .gpu/prefix ]; then
    P=$ROOT/.gpu/prefix/usr; mkdir -p /tmp/pc
    for f in $P/lib/x86_64-linux-gnu/pkgconfig/*.pc; do sed "s|^prefix=.*|prefix=$P|" $f > /tmp/pc/$(basename $f); done
    export PKG_CONFIG_PATH=/tmp/pc:${PKG_CONFIG_PATH:-} LD_LIBRARY_PATH=$P/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  fi
  FB=${GPU_FULL_BUILD_DIR:-/tmp/pagellm-gpu-full}
  { cmake -S . -B $FB -G Ninja -DPAGELLM_CUDA=ON -DCMAKE_BUILD_TYPE=Release &&
    cmake --build $FB -j 12 --target test_cuda_model test_cuda_async pagellm; } > /tmp/model_build.log 2>&1 &
  FULL_PID=$!
fi

# ---------------------------------------------------------------- correctness
[ "${SKIP_OP_TESTS:-0}" = 1 ] || {
PAGELLM_CUDA_SYNC_CHECK=1 timeout 420 $B/test_cuda_ops > "$OUT/test_cuda_ops.log" 2>&1
TEST_RC=$?
grep -E "FAIL|checks" "$OUT/test_cuda_ops.log" | tail -25
echo "test_cuda_ops rc=$TEST_RC ($(( $(date +%s) - T0 )) s)"
PAGELLM_CUDA_SYNC_CHECK=1 timeout 120 $B/test_cuda_sampler > "$OUT/test_cuda_sampler.log" 2>&1
SAMPLER_RC=$?
grep -vE "^  (mismatch|logprobs)" "$OUT/test_cuda_sampler.log" | tail -8
echo "test_cuda_sampler rc=$SAMPLER_RC ($(( $(date +%s) - T0 )) s)"
}

# ---------------------------------------------------------------- whole model (needs the full build)
if [ $MODEL -eq 1 ] || [ $ENGINE -eq 1 ]; then
  wait $FULL_PID
  FULL_RC=$?
  echo "full build rc=$FULL_RC ($(( $(date +%s) - T0 )) s)"
  [ $FULL_RC -eq 0 ] || tail -30 /tmp/model_build.log
fi
if [ $MODEL -eq 1 ]; then
  python3 scripts/make_tiny_models.py > /dev/null 2>&1 || echo "make_tiny_models failed"
  # HF transformers references for the shapes (before the CUDA test: one process on the GPU at a time)
  REFS=""
  if [ $HFREF -eq 1 ]; then
    : > "$OUT/hf_shape_ref.log"
    for s in ${MODEL_SHAPES//,/ }; do
      timeout 240 python3 scripts/hf_shape_ref.py --shape $s --out /tmp/pagellm-hfref-$s.bin >> "$OUT/hf_shape_ref.log" 2>&1 &&
        REFS="$REFS${REFS:+,}$s=/tmp/pagellm-hfref-$s.bin"
      echo "hf_shape_ref $s rc=$? ($(( $(date +%s) - T0 )) s)"
    done
    tail -3 "$OUT/hf_shape_ref.log"
  fi
  { [ $FULL_RC -ne 0 ] && tail -60 /tmp/model_build.log
    [ $FULL_RC -eq 0 ] && timeout 420 $FB/test_cuda_model --shapes "$MODEL_SHAPES" ${REFS:+--hf-ref "$REFS"}; } > "$OUT/test_cuda_model.log" 2>&1
  echo "test_cuda_model rc=$? ($(( $(date +%s) - T0 )) s)"
  # the Qwen3-0.6B shape again with the session-2 prefill attention kernel and the heuristic's
  # GEMM algorithms, to tell kernel changes from noise in the CUDA-vs-CPU argmax agreement
  [ $FULL_RC -eq 0 ] && PAGELLM_CUDA_PREFILL_ATTN=1 PAGELLM_CUDA_LT_TUNE=0 timeout 120 $FB/test_cuda_model \
    --shapes 0.6b 2>&1 | grep -E "qwen3-0.6b" | sed 's/^/[PREFILL_ATTN=1 LT_TUNE=0] /' >> "$OUT/test_cuda_model.log"
  # MODEL_AB_ENVS="VAR=v;...": the model shapes against the same HF references again with each
  # setting (a kernel variant's agreement before it becomes the default)
  if [ $FULL_RC -eq 0 ] && [ -n "${MODEL_AB_ENVS:-}" ]; then
    IFS=';' read -ra MABS <<< "$MODEL_AB_ENVS"
    for me in "${MABS[@]}"; do
      budget_ok 200 || { echo "test_cuda_model [$me]: skipped (time budget)"; continue; }
      env $me timeout 240 $FB/test_cuda_model --shapes "$MODEL_SHAPES" ${REFS:+--hf-ref "$REFS"} 2>&1 |
        grep -E "^qwen3|HFREF|failures" | sed "s/^/[$me] /" >> "$OUT/test_cuda_model.log"
      echo "test_cuda_model [$me] ($(( $(date +%s) - T0 )) s)"
    done
  fi
  grep -E "vs HF transformers|FAIL" "$OUT/test_cuda_model.log"
  tail -12 "$OUT/test_cuda_model.log"
  rm -f /tmp/pagellm-hfref-*.bin
fi

if [ $ENGINE -eq 1 ] && [ ${FULL_RC:-1} -eq 0 ]; then
  M=/tmp/pagellm-q8b; mkdir -p $M
  cp tests/fixtures/shapes/qwen3-8b.config.json $M/config.json
  cp tests/fixtures/qwen3-tokenizer/* $M/
  # 256 requests of 512 random prompt tokens / 512 output tokens (EOS ignored, temperature 1 as
  # vLLM's benchmark_throughput) through the engine in-process: `pagellm bench throughput`
  # (timed from the first submit to the last token: start-up excluded; its log has the start-up)
  thr() { # $1: label, rest: extra engine flags
    local label=$1; shift
    env ${THR_ENV:-} timeout 300 $FB/pagellm bench throughput $M --load-format dummy --device cuda --num-prompts 256 \
      --input-len 512 --output-len 512 --max-num-seqs 256 --max-num-batched-tokens 8192 --no-progress \
      --output-json /tmp/thr-$label.json "$@" > /tmp/thr-$label.log 2>&1
    echo "engine $label 256 x (512 in, 512 out), bench throughput rc=$?:"
    cp /tmp/thr-$label.log "$OUT/thr-$label.log"
    grep -E "^Throughput|^Engine steps|^Forward\+sample by step" /tmp/thr-$label.log
    grep -iE "memory:|KV cache:|graphs:|ready" /tmp/thr-$label.log | head -5
  }
  : > "$OUT/engine.txt"
  if [ "${ENGINE_THR:-1}" = 1 ]; then  # ENGINE_THR=0: the batch-1 latency only
    thr bf16 | tee -a "$OUT/engine.txt"
    cp /tmp/thr-bf16.log "$OUT/engine.log"
  fi
  # batch-1 decode through the engine (device sampling, token ids only back to the host):
  # `pagellm bench latency` at 1 and 513 output tokens; decode rate = 512 / the difference
  # ENGINE_LAT_ENVS="VAR=v;...": the same again with each setting (A/B of engine-side knobs)
  # --async-scheduling (session 4, not yet measured when written): the same tokens as the
  # synchronous engine on identical batches (8B dummy weights), and batch-1 ms/token both ways
  if [ "${ENGINE_ASYNC_TEST:-1}" = 1 ]; then  # ENGINE_ASYNC_TEST=0: not this time
    timeout 240 $FB/test_cuda_async $M --dummy > "$OUT/test_cuda_async.log" 2>&1
    echo "test_cuda_async rc=$? ($(( $(date +%s) - T0 )) s)" | tee -a "$OUT/engine.txt"
    grep -E "FAIL|ms/token|same tokens|repeats|PASSED" "$OUT/test_cuda_async.log" | tail -12 | sed 's/^/    /' | tee -a "$OUT/engine.txt"
  fi
  ENGINE_LAT_ENVS=${ENGINE_LAT_ENVS-PAGELLM_ASYNC_SCHEDULING=1}
  IFS=';' read -ra LATS <<< "default${ENGINE_LAT_ENVS:+;$ENGINE_LAT_ENVS}"
  # An entry's words with '=' set the environment, the others are bench flags (e.g.
  # "PAGELLM_ASYNC_SCHEDULING=1 --max-model-len 1024").
  li=0
  for le in "${LATS[@]}"; do
    li=$((li + 1))
    [ "$le" = default ] || budget_ok || { echo "engine latency $le: skipped (time budget)" | tee -a "$OUT/engine.txt"; continue; }
    envs=(); flags=()
    if [ "$le" != default ]; then
      for w in $le; do case "$w" in -*) flags+=("$w") ;; *=*) envs+=("$w") ;; *) flags+=("$w") ;; esac; done
    fi
    for ol in 1 513; do
      rm -f /tmp/pagellm-lat$ol.json
      env ${envs[@]+"${envs[@]}"} PAGELLM_CUDA_HOST_TIMES=1 timeout 120 $FB/pagellm bench latency $M --load-format dummy --device cuda --batch-size 1 \
        --input-len 128 --output-len $ol --num-iters-warmup 1 --num-iters 3 --no-progress ${flags[@]+"${flags[@]}"} \
        --output-json /tmp/pagellm-lat$ol.json > /tmp/lat$ol.log 2>&1 || tail -5 /tmp/lat$ol.log
    done
    # where the 513-token run's steps went (engine phases; the CUDA backend's host time per step)
    grep -E "^Engine steps|cuda host time|^Avg TTFT" /tmp/lat513.log | sed 's/^/    /' | tee -a "$OUT/engine.txt"
    { echo "# variant: $le"; cat /tmp/lat513.log; } > "$OUT/lat513-$li.log"
    LE="$le" python3 - <<'PYEOF' | tee -a "$OUT/engine.txt"
import json, os, sys
le = os.environ["LE"]
if not (os.path.exists("/tmp/pagellm-lat1.json") and os.path.exists("/tmp/pagellm-lat513.json")):
    sys.exit("engine batch-1 decode (bench latency, %s): FAILED (no results)" % le)
a = json.load(open("/tmp/pagellm-lat1.json"))["avg_latency"]
j = json.load(open("/tmp/pagellm-lat513.json"))
b, tpot = j["avg_latency"], j.get("avg_tpot", 0)
print("engine batch-1 decode (bench latency, 128 in%s): %.1f tok/s (%.3f ms/token; 1 token %.1f ms, 513 tokens %.3f s); "
      "one process: %.1f tok/s after the first token (%.3f ms/token)"
      % ("" if le == "default" else ", " + le, 512 / (b - a), 1e3 * (b - a) / 512, 1e3 * a, b,
         1 / tpot if tpot else 0, 1e3 * tpot))
PYEOF
  done
  set --
  # the same with the fp8 KV cache (half the KV bytes the decode attention reads)
  [ "${ENGINE_THR:-1}" = 1 ] && thr fp8kv --kv-cache-dtype fp8 | tee -a "$OUT/engine.txt"
  # ENGINE_THR_ENVS="VAR=v;...": the bf16 throughput run again with each setting (e.g.
  # PAGELLM_CUDA_GEMM_PAIR=0), then the default once more (the run-to-run spread). An entry's
  # words that start with -- are bench flags, later ones winning over thr's (e.g.
  # "--num-prompts 1024 --max-num-batched-tokens 2048"); the other words set the environment.
  if [ "${ENGINE_THR:-1}" = 1 ] && [ -n "${ENGINE_THR_ENVS:-}" ]; then
    IFS=';' read -ra THRS <<< "$ENGINE_THR_ENVS;default"
    ti=0
    for te in "${THRS[@]}"; do
      ti=$((ti + 1))
      budget_ok || { echo "engine bf16 ($te): skipped (time budget)" | tee -a "$OUT/engine.txt"; continue; }
      tenv=""; tflags=(); prev=""
      for w in $te; do
        case "$w" in
          --*) tflags+=("$w") ;;
          *=*) [ "${prev#--}" != "$prev" ] && tflags+=("$w") || tenv="$tenv $w" ;;
          *) tflags+=("$w") ;;
        esac
        prev=$w
      done
      if [ "$te" = default ]; then THR_ENV= thr bf16-again; else THR_ENV="$tenv" thr bf16-ab$ti ${tflags[@]+"${tflags[@]}"}; fi |
        sed "s/^engine bf16-[a-z0-9-]*/engine bf16 ($te)/" | tee -a "$OUT/engine.txt"
    done
  fi
fi

# ---------------------------------------------------------------- speed
: > "$OUT/bench.jsonl"; : > "$OUT/bench.log"
for s in $SHAPES; do
  args="$s"
  [ $QUICK -eq 1 ] && args="$s --bs-list 1,64,256"
  [ "$s" != "8b" ] && args="$s --bs-list 1,32,256"
  PAGELLM_CUDA_GEMM_LOG=1 timeout 240 $B/bench_cuda_qwen3 $args >> "$OUT/bench.jsonl" 2>> "$OUT/bench.log"
  echo "bench $s rc=$? ($(( $(date +%s) - T0 )) s)"
done
# A/B of the batch-1 / batch-256 decode step against single knobs turned off (AB_ENVS: a
# ;-separated list of VAR=value settings; the default run is repeated at both ends, so the spread
# between its two runs says what a difference must exceed to mean anything)
AB_ENVS=${AB_ENVS-PAGELLM_CUDA_GEMM_PAIR=0;PAGELLM_CUDA_DECODE_COMBINE=1;PAGELLM_CUDA_GEMV4=0;PAGELLM_CUDA_FUSE_PRO=0}
if [ -n "$AB_ENVS" ]; then
  AB_SEQ="default;$AB_ENVS;default"
  [ -x $B-base/bench_cuda_qwen3 ] && AB_SEQ="base;default;$AB_ENVS;base;default"
  IFS=';' read -ra AB <<< "$AB_SEQ"
  for e in "${AB[@]}"; do
    budget_ok || { echo "== A/B $e: skipped (time budget)"; continue; }
    BIN=$B/bench_cuda_qwen3
    label=$e
    case "$e" in base*) BIN=$B-base/bench_cuda_qwen3; e=${e#base}; e=${e#:} ;; esac
    if [ -z "$e" ] || [ "$e" = default ]; then set --; else set -- env $e; fi
    for abs in ${AB_SHAPES:-8b}; do
      echo "== A/B $label ($abs)"
      "$@" timeout 120 $BIN $abs --bs-list 1,256 2>&1 >/dev/null | grep -E "bs1 decode|decode bs=|^step T="
    done
  done >> "$OUT/bench.log"
  set --
fi
if [ $DEV -eq 1 ]; then
  # dev/cuda/NAME.cu linked with the backend objects the standalone build made -> $B/NAME
  dev_tool() {
    ( cd $B && nvcc "${NVFLAGS[@]}" -I$ROOT/src $ROOT/dev/cuda/$1.cu $(ls $B/*.cu.o) \
        err.o log.o dtype.o -lcublasLt -o $B/$1 ) > "$OUT/$1_build.log" 2>&1 || tail -20 "$OUT/$1_build.log"
  }
  ( cd $B && cc -O2 -I$ROOT/src -c $ROOT/src/util/err.c $ROOT/src/util/log.c $ROOT/src/util/dtype.c )
  # DEV_TOOLS (default all): which of the tools below run
  has_tool() { [[ " ${DEV_TOOLS:-read_bw kv_layout_bw gemv} " == *" $1 "* ]]; }
  # the card's read-only bandwidth beside its copy bandwidth (the floors use the copy)
  if has_tool read_bw; then
    nvcc "${NVFLAGS[@]}" -Itests/gpu dev/cuda/read_bw.cu -o $B/read_bw > "$OUT/read_bw_build.log" 2>&1 &&
      timeout 60 $B/read_bw 2>&1 | tee "$OUT/read_bw.log" | tee -a "$OUT/bench.log"
  fi
  # the decode attention's access pattern on our KV layout vs FlashInfer's HND, without the math
  if has_tool kv_layout_bw; then
    nvcc "${NVFLAGS[@]}" -Itests/gpu dev/cuda/kv_layout_bw.cu -o $B/kv_layout_bw > "$OUT/kv_layout_bw_build.log" 2>&1 &&
      timeout 60 $B/kv_layout_bw 2>&1 | tee "$OUT/kv_layout_bw.log" | tee -a "$OUT/bench.log"
  fi
  # CUTLASS's Hopper GEMMs (stream-K, split-K, clusters; PyPI nvidia-cutlass headers, the wheel
  # that `gpu_env.sh --fetch` puts in .gpu/) against cuBLASLt at the 8B decode shapes; only when
  # named in DEV_TOOLS: three configurations, ~60 s of compiling in parallel
  if [[ " ${DEV_TOOLS:-} " == *" cutlass_gemm "* ]]; then
    WHL=$(ls .gpu/nvidia_cutlass-*.whl 2>/dev/null | head -1)
    if [ -z "$WHL" ]; then echo "cutlass_gemm: no .gpu/nvidia_cutlass-*.whl (gpu_env.sh --fetch)" | tee -a "$OUT/bench.log"
    else
      python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall('/tmp/cutlass-whl')" "$WHL"
      CS=/tmp/cutlass-whl/cutlass_library/source
      cg_pids=()
      for cfg in 128,256,2,1 128,128,2,1 256,128,1,2; do
        IFS=, read tm tn cm cn <<< "$cfg"
        nvcc "${NVFLAGS[@]}" --expt-relaxed-constexpr -I$CS/include -I$CS/tools/util/include -DCG_TM=$tm -DCG_TN=$tn \
          -DCG_CM=$cm -DCG_CN=$cn dev/cuda/cutlass_gemm.cu -lcublasLt -o $B/cutlass_gemm_$tm.$tn.$cm.$cn \
          > "$OUT/cutlass_gemm_build_$tm.$tn.log" 2>&1 & cg_pids+=($!)
      done
      for p in "${cg_pids[@]}"; do wait $p; done
      for cfg in 128.256.2.1 128.128.2.1 256.128.1.2; do
        [ -x $B/cutlass_gemm_$cfg ] && timeout 60 $B/cutlass_gemm_$cfg 2>&1
      done | tee "$OUT/cutlass_gemm.log" | tee -a "$OUT/bench.log"
    fi
  fi
  if has_tool gemv; then
    dev_tool gemv
    for v in 1 2 0 3; do timeout 60 $B/gemv $v; done 2>&1 | grep -v "^INFO" | tee -a "$OUT/bench.log"
  fi
fi

# where a batched decode step goes, bf16 vs fp8 KV cache (each op synchronized: not a timing run)
[ $FAST -eq 1 ] || for kv in "" --kv-fp8; do
  for dec in ${DECODE_ATTN_LIST-1 3}; do
    echo "== decode op profile ${kv:-bf16 KV}, PAGELLM_CUDA_DECODE_ATTN=$dec" >> "$OUT/bench.log"
    PAGELLM_CUDA_DECODE_ATTN=$dec timeout 90 $B/bench_cuda_qwen3 8b $kv --decode 8 --bs-list 64,256 --ctx 768 \
      --op-profile 2>&1 >/dev/null | grep -E "decode bs|op profile" >> "$OUT/bench.log"
  done
done

# where prefill time goes (per-op events, synchronizing: not a timing run), for each prefill
# attention kernel (PAGELLM_CUDA_PREFILL_ATTN: 2 the default prefill_attn_v2 with 16 rows a warp,
# 5 with 32, 6 with pipelined key halves, 1 the original kernel); the bench's TTFT line (unprofiled) goes with each
for pa in ${PREFILL_ATTN_LIST-2 5 6 1}; do
  budget_ok || break
  echo "== prefill profile PAGELLM_CUDA_PREFILL_ATTN=$pa" >> "$OUT/bench.log"
  PAGELLM_CUDA_PREFILL_ATTN=$pa timeout 120 $B/bench_cuda_qwen3 8b --decode 8 --bs-list 1 2>&1 >/dev/null |
    grep -E "^prefill [0-9]+: TTFT" >> "$OUT/bench.log"
  [ $FAST -eq 1 ] || PAGELLM_CUDA_PREFILL_ATTN=$pa PAGELLM_CUDA_PROFILE=1 timeout 120 $B/bench_cuda_qwen3 8b --decode 8 --bs-list 1 2>&1 >/dev/null |
    sed -n '/cuda profile/,$p' >> "$OUT/bench.log"
done
grep -v "^gemm rows" "$OUT/bench.log" | grep -v "^INFO" | tail -120

if [ $NCU -eq 1 ] && command -v ncu >/dev/null && budget_ok 250; then
  # Hardware counters of the kernels that bound the missed targets: the batch-1 GEMVs (decode),
  # the batched decode attention (bs 256, ctx 768) and the prefill attention (2048 tokens).
  NCU_SECT=(--section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy
            --section WarpStateStats --section LaunchStats --section SchedulerStats)
  timeout 150 ncu --clock-control none --kernel-name regex:gemv --launch-skip 2000 --launch-count 12 \
    "${NCU_SECT[@]}" $B/bench_cuda_qwen3 8b --decode 64 --bs-list 1 > "$OUT/ncu_gemv.txt" 2>&1
  echo "ncu gemv rc=$? ($(( $(date +%s) - T0 )) s)"
  timeout 150 ncu --clock-control none --kernel-name regex:decode_attn --launch-skip 100 --launch-count 3 \
    "${NCU_SECT[@]}" $B/bench_cuda_qwen3 8b --decode 8 --bs-list 256 --ctx 768 > "$OUT/ncu_decode_attn.txt" 2>&1
  echo "ncu decode_attn rc=$? ($(( $(date +%s) - T0 )) s)"
  timeout 150 ncu --clock-control none --kernel-name regex:prefill_attn --launch-skip 40 --launch-count 3 \
    "${NCU_SECT[@]}" $B/bench_cuda_qwen3 8b --decode 2 --bs-list 1 > "$OUT/ncu_prefill_attn.txt" 2>&1
  echo "ncu prefill_attn rc=$? ($(( $(date +%s) - T0 )) s)"
  # every kernel of two graph-replayed batch-1 decode steps (launches 10000.. fall inside the
  # 64-step decode loop): kernel time per op kind, to set against the measured step time (the
  # difference is launch gaps and ramps between kernels)
  timeout 200 ncu --clock-control none --graph-profiling node --launch-skip 10000 --launch-count 800 \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum --csv --print-units base \
    $B/bench_cuda_qwen3 8b --decode 64 --bs-list 1 > "$OUT/ncu_step.csv" 2>/dev/null
  echo "ncu step rc=$? ($(( $(date +%s) - T0 )) s)"
  python3 scripts/ncu_step_table.py "$OUT/ncu_step.csv" 2 "batch-1 decode steps (8B)" | tee "$OUT/ncu_step.txt"
  for f in ncu_gemv ncu_decode_attn ncu_prefill_attn; do
    grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|Memory Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|No Eligible|Issued Warp" "$OUT/$f.txt" | head -40
  done
fi

# --ncu-step: every kernel of two graph-replayed 8B decode steps at NCU_STEP_BS rows (default
# 256) and context 768, bf16 and fp8 KV (the bench's --ncu-steps brackets exactly those replays
# with cudaProfilerStart/Stop): where the batched step's time goes, kernel by kernel
if [ $NCU_STEP -eq 1 ] && command -v ncu >/dev/null && budget_ok 150; then
  for kv in ${NCU_STEP_KV-"" --kv-fp8}; do
    [ "$kv" = bf16 ] && kv=""
    f="$OUT/ncu_step${NCU_STEP_BS:-256}${kv:+-fp8}"
    timeout 150 ncu --clock-control none --graph-profiling node --profile-from-start off \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum --csv --print-units base \
      $B/bench_cuda_qwen3 8b $kv --decode 4 --bs-list ${NCU_STEP_BS:-256} --ctx 768 --ncu-steps 2 > "$f.csv" 2>/dev/null
    echo "ncu step bs ${NCU_STEP_BS:-256} ${kv:-bf16} rc=$? ($(( $(date +%s) - T0 )) s)"
    python3 scripts/ncu_step_table.py "$f.csv" 2 "decode steps, 8B, ${NCU_STEP_BS:-256} rows, ctx 768, ${kv:-bf16 KV}" | tee "$f.txt"
  done
fi

# ---------------------------------------------------------------- HF transformers, same card
if [ $HF -eq 1 ]; then
  HFPY=.gpu/hf_baseline.py; [ -f $HFPY ] || HFPY=../shared/bench/hf_baseline.py
  OUT="$OUT" timeout 400 python3 $HFPY Qwen3-8B > /tmp/hf_baseline.log 2>&1
  echo "hf_baseline rc=$? ($(( $(date +%s) - T0 )) s)"
  tail -2 /tmp/hf_baseline.log
fi

# ---------------------------------------------------------------- summary
python3 - "$OUT" <<'EOF' > "$OUT/summary.md"
import json, sys, os
out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "bench.jsonl")) if l.startswith("{")]
hf = {}
p = os.path.join(out, "hf_baseline.json")
if os.path.exists(p): hf = json.load(open(p))
print("| shape | copy TB/s | GEMM TFLOP/s | bs1 decode tok/s | floor | % floor | TTFT 2048 ms | floor ms | x floor | ready s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['shape']} | {r['copy_TBps']} | {r['bf16_TFLOPs']} | {r['bs1_decode_tok_s']} | {r['bs1_floor_tok_s']} | "
          f"{100*r['bs1_decode_tok_s']/r['bs1_floor_tok_s']:.1f} | {r['ttft_ms']} | {r['prefill_floor_ms']} | "
          f"{r['ttft_ms']/r['prefill_floor_ms']:.2f} | {r['ready_s']} |")
print()
print("| shape | batch | ctx | step ms | tok/s |")
print("|---|---|---|---|---|")
for r in rows:
    for b in r["batched"]:
        print(f"| {r['shape']} | {b['bs']} | {b['ctx']} | {b['step_ms']} | {b['tok_s']} |")
if hf:
    print()
    print("HF transformers, same card:", json.dumps({k: v for k, v in hf.items()}))
p = os.path.join(out, "test_cuda_model.log")
refs = [json.loads(l[6:]) for l in open(p) if l.startswith("HFREF ")] if os.path.exists(p) else []
if refs:
    print()
    print("Qwen3 shapes vs HF transformers (same dummy weights, f32 compute), teacher-forced:")
    print()
    print("| shape | positions | greedy agree % | prefill % | decode (graphs) % | logits rel err mean | max | max abs | ok |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in refs:
        print(f"| {r['shape']} | {r['seqs']}x{r['len']} | {r['agree_pct']} | {r['prefill_pct']} | {r['decode_pct']} | "
              f"{r['rel_err_mean']:.2e} | {r['rel_err_max']:.2e} | {r['abs_err_max']} | {r['ok']} |")
import re
ab, cur = [], None
p = os.path.join(out, "bench.log")
for l in (open(p) if os.path.exists(p) else []):
    m = re.match(r"== A/B (.*?)(?: \((\S+)\))?$", l.rstrip())
    if m and not l.rstrip().endswith("skipped (time budget)"):
        cur = {"variant": m.group(1), "shape": m.group(2) or "8b"}
        ab.append(cur)
        continue
    if cur is None: continue
    m = re.match(r"bs1 decode: ([\d.]+) tok/s \(([\d.]+)% of floor\)", l)
    if m: cur["bs1"], cur["pct"] = m.group(1), m.group(2)
    m = re.match(r"decode bs=(\d+) ctx=\d+: step ([\d.]+) ms", l)
    if m: cur["step" + m.group(1)] = m.group(2)
    if l.startswith("step T=1:"): cur["tuner"] = l.split("->")[-1].strip()
    if l.startswith("=="): cur = None
if ab:
    print()
    print("Backend A/B (bench_cuda_qwen3 SHAPE --bs-list 1,256; bs1 through host argmax, graph steps at ctx 512):")
    print()
    print("| variant | shape | bs1 tok/s | % floor | bs1 graph step ms | bs256 step ms | tuner (T=1) |")
    print("|---|---|---|---|---|---|---|")
    for r in ab:
        print(f"| {r['variant']} | {r['shape']} | {r.get('bs1', '')} | {r.get('pct', '')} | {r.get('step1', '')} | "
              f"{r.get('step256', '')} | {r.get('tuner', '')} |")
p = os.path.join(out, "engine.txt")
if os.path.exists(p):
    print()
    print("Engine run and start-up (Qwen3-8B shape, --engine):")
    print()
    for l in open(p):
        print("    " + l.rstrip())
EOF
cat "$OUT/summary.md"
echo "total $(( $(date +%s) - T0 )) s"
# The device tool returns at most 8 files from $OUT: GPU_CHECK_TAR=1 packs them into all.tgz.
if [ "${GPU_CHECK_TAR:-0}" = 1 ]; then
  ( cd "$OUT" && tar czf /tmp/gpu_check_all.tgz --exclude=all.tgz . && find . -type f -delete &&
    mv /tmp/gpu_check_all.tgz all.tgz ) && echo "packed $OUT/all.tgz"
fi
