#!/usr/bin/env bash
# Next session's first call (written in session 14; ~500 s: LIMIT the call at 590): everything the
# prefill-attention decision needs in one go, on main (default 2).
#  1. gpu_check: op checks (incl. the new variant 6: cuda-pf6, cuda-pf6-fp8kv) and the 8B
#     agreement with HF transformers for the default, 5 and 6 (MODEL_AB_ENVS; gate 95%).
#  2. bench_cuda_qwen3 --prefill 16384 with PAGELLM_CUDA_PROFILE=1 for 2, 5, 6 (attention ms a
#     prompt, TTFT), and the 2048-token TTFT for 2, 5, 6, 2.
#  3. ncu --set full of one 2048-token launch of 6 (tensor pipe, eligible warps vs run23's 2).
# Then: 5 passing HF -> merge branch pf5-default (fill in docs/benchmarks.md's FILL IN); 6 faster
# than 2 at 16k -> a pipelined MT = 2 does not fit the registers, so weigh 5 vs 6 on the numbers.
set -u
T0=$(date +%s)
mkdir -p $OUT/r
GPU_CHECK_BUDGET_S=600 PREFILL_ATTN_LIST="" DECODE_ATTN_LIST="" AB_ENVS="" \
  MODEL_AB_ENVS="PAGELLM_CUDA_PREFILL_ATTN=5;PAGELLM_CUDA_PREFILL_ATTN=6" OUT=$OUT/r timeout 420 \
  bash scripts/gpu_check.sh --no-hf --quick --fast --shapes "" --model-shapes 8b > $OUT/r/stdout.txt 2>&1
echo "gpu_check rc=$? ($(( $(date +%s) - T0 )) s)"
grep -E "checks|FAIL" $OUT/r/test_cuda_ops.log | tail -5
grep -E "vs HF|failures" $OUT/r/test_cuda_model.log | cut -c1-240
B=/tmp/pagellm-gpu-build
for pa in 2 5 6; do
  PAGELLM_CUDA_PREFILL_ATTN=$pa PAGELLM_CUDA_PROFILE=1 timeout 60 $B/bench_cuda_qwen3 8b --decode 4 --bs-list 1 \
    --prefill 16384 > /dev/null 2> $OUT/r/prof16k-pf$pa.txt
  echo "pf$pa 16k: $(grep -E 'TTFT' $OUT/r/prof16k-pf$pa.txt) / $(grep -E '^  attention' $OUT/r/prof16k-pf$pa.txt)"
done
for pa in 2 5 6 2; do
  echo "pf$pa 2048: $(PAGELLM_CUDA_PREFILL_ATTN=$pa timeout 60 $B/bench_cuda_qwen3 8b --decode 8 --bs-list 1 2>&1 >/dev/null | grep -E 'TTFT')"
done | tee $OUT/r/ttft2048.txt
PAGELLM_CUDA_PREFILL_ATTN=6 timeout 60 ncu --set full --kernel-name regex:prefill_attn --launch-skip 100 --launch-count 1 \
  $B/bench_cuda_qwen3 8b --decode 2 --bs-list 1 > $OUT/r/ncu-pf6.txt 2>&1
echo "ncu pf6 rc=$? ($(( $(date +%s) - T0 )) s)"
grep -E "Duration|Compute \(SM\)|Issue Slots|Eligible Warps|Registers Per" $OUT/r/ncu-pf6.txt
nvidia-smi --query-gpu=name --format=csv,noheader >> $OUT/r/stdout.txt
cd $OUT && tar czf /tmp/all.tgz r && rm -rf r && mv /tmp/all.tgz all.tgz
