#!/usr/bin/env bash
# Session 15, the short call (~150 s, for a budget of ~250 s): variant 7's two matrix products on
# their own (pfw_parts), the standalone build, 16k and 2048-token prefill timings of 2, 7 and 8 (7 with ping-pong),
# then the op checks (incl. cuda-pf7) as far as the limit lets them go. Packed after each step.
TO=30 . "$(dirname "$0")/call15_common.sh"
SKIP_OP_TESTS=1 GPU_CHECK_BUDGET_S=600 PREFILL_ATTN_LIST="" DECODE_ATTN_LIST="" AB_ENVS="" OUT=$R timeout 120 \
  bash scripts/gpu_check.sh --no-hf --no-model --quick --fast --shapes "" > $R/stdout.txt 2>&1
echo "build rc=$? ($(( $(date +%s) - T0 )) s)"
wait
nvidia-smi --query-gpu=name --format=csv,noheader >> $R/stdout.txt
cat $R/pfw_parts.txt
pack
B=/tmp/pagellm-gpu-build
for pa in 2 7 8; do
  PAGELLM_CUDA_PREFILL_ATTN=$pa PAGELLM_CUDA_PROFILE=1 timeout 30 $B/bench_cuda_qwen3 8b --decode 4 --bs-list 1 \
    --prefill 16384 > /dev/null 2> $R/prof16k-pf$pa.txt
  echo "pf$pa 16k: $(grep -E 'TTFT' $R/prof16k-pf$pa.txt) / $(grep -E '^  attention' $R/prof16k-pf$pa.txt) / $(grep -E 'apply|error|fail' $R/prof16k-pf$pa.txt | head -2)"
done
for pa in 2 7 8 2 7 8; do
  echo "pf$pa 2048: $(PAGELLM_CUDA_PREFILL_ATTN=$pa timeout 30 $B/bench_cuda_qwen3 8b --decode 8 --bs-list 1 2>&1 >/dev/null | grep -E 'TTFT')"
done | tee $R/ttft2048.txt
echo "timings done ($(( $(date +%s) - T0 )) s)"
pack
PAGELLM_CUDA_SYNC_CHECK=1 timeout 150 $B/test_cuda_ops > $R/test_cuda_ops.log 2>&1
echo "test_cuda_ops rc=$? ($(( $(date +%s) - T0 )) s)"
grep -oE "cuda-pf[78] .*" $R/test_cuda_ops.log | awk '{print $1, $NF}' | sort | uniq -c
grep -E "FAIL|checks" $R/test_cuda_ops.log | tail -8
pack
