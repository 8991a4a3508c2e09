#!/usr/bin/env bash
# session 8 call 4: cuBLASLt candidates 8 vs 32 at the decode shapes; op profile at bs 256, ctx 768
set -u
T0=$(date +%s)
SKIP_OP_TESTS=1 AB_ENVS="" PREFILL_ATTN_LIST="" OUT=$OUT bash scripts/gpu_check.sh --no-hf --no-model --quick --fast --shapes "" > /dev/null 2>&1
B=/tmp/pagellm-gpu-build
echo "build $(( $(date +%s) - T0 )) s"; grep -E "error" $OUT/build.log | head
for a in 8 32 64 8; do
  echo "== LT_ALGOS=$a"
  PAGELLM_CUDA_LT_ALGOS=$a PAGELLM_CUDA_GEMM_LOG=1 timeout 100 $B/bench_cuda_qwen3 8b --decode 64 --bs-list 1,64,256 --ctx 768 2>&1 >/dev/null | grep -E "^decode bs|^bs1|rows=256 |rows=64 |pair rows=(64|256) "
done
for kv in "" --kv-fp8; do
  echo "== op profile bs 256 ctx 768 $kv"
  timeout 100 $B/bench_cuda_qwen3 8b $kv --decode 8 --bs-list 256 --ctx 768 --op-profile 2>&1 >/dev/null | grep -vE "^gemm|^INFO|^fuse|^step"
done
echo "call total $(( $(date +%s) - T0 )) s"
