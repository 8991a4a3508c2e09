#!/usr/bin/env bash
# session 8 call 7: op tests with plan lending at 1-8 rows; 8B/4B batch-1 unchanged
set -u
T0=$(date +%s)
AB_ENVS="" PREFILL_ATTN_LIST="" OUT=$OUT bash scripts/gpu_check.sh --no-hf --no-model --quick --fast --shapes "" 2>&1 | grep -E "FAIL|checks|rc=" | head -20
grep -E "gemm_lend" $OUT/test_cuda_ops.log
B=/tmp/pagellm-gpu-build
for sh in 8b 4b; do
  PAGELLM_CUDA_GEMM_LOG=1 timeout 60 $B/bench_cuda_qwen3 $sh --decode 128 --bs-list 1 --prefill 128 2>&1 >/dev/null | grep -E "^bs1|^decode bs|not timed"
done
echo "call total $(( $(date +%s) - T0 )) s"
