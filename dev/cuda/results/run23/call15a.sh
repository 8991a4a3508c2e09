#!/usr/bin/env bash
# Session 15's first call (~460 s: LIMIT the call at 590): the prefill-attention decision, the
# cheapest and most telling parts first (results gather in /tmp/r and are packed into
# $OUT/all.tgz after each phase, so a call cut off at its limit still returns the phases done).
#  1. gpu_check --no-model: build, op checks (incl. cuda-pf6 / -fp8kv and the new wgmma variants
#     cuda-pf7, cuda-pf8 = 7 with the warpgroups' ping-pong); beside it dev/cuda/pfw_parts.cu (variant 7's two matrix products on their own) and
#     dev/cuda/pfw_full.cu (the kernel alone on G 1-16, block sizes 8-128, against float64).
#  2. bench_cuda_qwen3 --prefill 16384 with PAGELLM_CUDA_PROFILE=1 for 2, 7, 8, 5, 6 (attention
#     ms and TFLOP/s a prompt, TTFT), and the 2048-token TTFT for 2, 7, 8, 5, 6, 2.
#  3. gpu_check --model-shapes 8b (op tests skipped): the 8B agreement with HF transformers for
#     the default, 7, 8 and 5 (MODEL_AB_ENVS; gate 95%).
TO=60 . "$(dirname "$0")/call15_common.sh"
GPU_CHECK_BUDGET_S=600 PREFILL_ATTN_LIST="" DECODE_ATTN_LIST="" AB_ENVS="" OUT=$R timeout 200 \
  bash scripts/gpu_check.sh --no-hf --no-model --quick --fast --shapes "" > $R/stdout.txt 2>&1
echo "gpu_check ops rc=$? ($(( $(date +%s) - T0 )) s)"
wait
nvidia-smi --query-gpu=name --format=csv,noheader >> $R/stdout.txt
cat $R/pfw_parts.txt
grep -E "checks|FAIL" $R/test_cuda_ops.log | tail -8
pack
B=/tmp/pagellm-gpu-build
p16() { for pa in "$@"; do
  PAGELLM_CUDA_PREFILL_ATTN=$pa PAGELLM_CUDA_PROFILE=1 timeout 40 $B/bench_cuda_qwen3 8b --decode 4 --bs-list 1 \
    --prefill 16384 > /dev/null 2> $R/prof16k-pf$pa.txt
  echo "pf$pa 16k: $(grep -E 'TTFT' $R/prof16k-pf$pa.txt) / $(grep -E '^  attention' $R/prof16k-pf$pa.txt)"
done; }
p2k() { for pa in "$@"; do
  echo "pf$pa 2048: $(PAGELLM_CUDA_PREFILL_ATTN=$pa timeout 40 $B/bench_cuda_qwen3 8b --decode 8 --bs-list 1 2>&1 >/dev/null | grep -E 'TTFT')"
done | tee -a $R/ttft2048.txt; }
p16 2 7 8; p2k 2 7 8; pack
p16 5 6; p2k 5 6 2; pack
echo "timings done ($(( $(date +%s) - T0 )) s)"
pack
mkdir -p $R/m
# 7's and 8's agreement only where every op check passed (and they ran: the log names them)
MAB="PAGELLM_CUDA_PREFILL_ATTN=5"
if grep -q "test_cuda_ops rc=0" $R/stdout.txt; then
  for v in 8 7; do grep -q "cuda-pf$v .* ok$" $R/test_cuda_ops.log && MAB="PAGELLM_CUDA_PREFILL_ATTN=$v;$MAB"; done
fi
echo "MODEL_AB_ENVS=$MAB"
SKIP_OP_TESTS=1 GPU_CHECK_BUDGET_S=600 PREFILL_ATTN_LIST="" DECODE_ATTN_LIST="" AB_ENVS="" \
  MODEL_AB_ENVS="$MAB" OUT=$R/m timeout 330 \
  bash scripts/gpu_check.sh --no-hf --quick --fast --shapes "" --model-shapes 8b > $R/m/stdout.txt 2>&1
echo "gpu_check model rc=$? ($(( $(date +%s) - T0 )) s)"
grep -E "vs HF|failures" $R/m/test_cuda_model.log | cut -c1-240
pack
