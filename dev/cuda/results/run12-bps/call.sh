#!/usr/bin/env bash
# session 8 call 6: fused GEMV v4 blocks-per-SM cap (PAGELLM_CUDA_G4_PRO_BPS) on 4B and 8B batch 1
set -u
T0=$(date +%s)
SKIP_OP_TESTS=1 AB_ENVS="" PREFILL_ATTN_LIST="" OUT=$OUT bash scripts/gpu_check.sh --no-hf --no-model --quick --fast --shapes "" > /dev/null 2>&1
B=/tmp/pagellm-gpu-build
echo "build $(( $(date +%s) - T0 )) s"; grep -E "error" $OUT/build.log | head
for v in 0 1 2 4 0 1; do
  for sh in 4b 8b; do
    echo "== G4_PRO_BPS=$v $sh"
    PAGELLM_CUDA_G4_PRO_BPS=$v PAGELLM_CUDA_GEMM_LOG=1 timeout 60 $B/bench_cuda_qwen3 $sh --decode 128 --bs-list 1 --prefill 128 2>&1 >/dev/null | grep -E "^bs1|^decode bs|^step T=|^fuse rows=1 "
  done
done
echo "call total $(( $(date +%s) - T0 )) s"
