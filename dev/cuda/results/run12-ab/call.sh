#!/usr/bin/env bash
# session 8 call 2: op tests (new v4 block sizes), 4B/0.6B A/B against 0a83759, prefill experiments
set -u
T0=$(date +%s)
BASE_TREE=.gpu/base AB_ENVS="PAGELLM_CUDA_STEP_TUNE=0" AB_SHAPES="4b 0.6b" PREFILL_ATTN_LIST="" \
  GPU_CHECK_BUDGET_S=420 OUT=$OUT bash scripts/gpu_check.sh --no-hf --no-model --quick --fast --shapes "4b" 2>&1 | tail -45
B=/tmp/pagellm-gpu-build
{
for v in 512 16384; do
  echo "== 8b prefill 8192 in 16 seqs, LT_TUNE_ROWS=$v"
  PAGELLM_CUDA_LT_TUNE_ROWS=$v PAGELLM_CUDA_GEMM_LOG=1 timeout 100 $B/bench_cuda_qwen3 8b --decode 8 --bs-list 1 --prefill 8192 --prefill-seqs 16 2>&1 >/dev/null | grep -E "^prefill|rows=8192"
  echo "== 8b prefill 2048, LT_TUNE_ROWS=$v"
  PAGELLM_CUDA_LT_TUNE_ROWS=$v PAGELLM_CUDA_GEMM_LOG=1 timeout 100 $B/bench_cuda_qwen3 8b --decode 8 --bs-list 1 2>&1 >/dev/null | grep -E "^prefill|rows=2048"
done
echo "== 8b prefill 8192 in 16 seqs, op profile"
PAGELLM_CUDA_PROFILE=1 timeout 100 $B/bench_cuda_qwen3 8b --decode 8 --bs-list 1 --prefill 8192 --prefill-seqs 16 2>&1 >/dev/null | sed -n '/cuda profile/,$p'
} > $OUT/prefill.log 2>&1
cat $OUT/prefill.log
echo "call total $(( $(date +%s) - T0 )) s"
