#!/usr/bin/env bash
# session 14 call A: why prefill attention variant 4 (32 rows a warp) did not beat 2 (run22):
# per-op prefill profile of a 16,384-token prompt for 2/4/5, and ncu --set full of one 2048-token
# prefill attention launch for 2 and 4.
set -u
T0=$(date +%s)
mkdir -p $OUT/r
SKIP_OP_TESTS=1 GPU_CHECK_BUDGET_S=700 PREFILL_ATTN_LIST="" DECODE_ATTN_LIST="" AB_ENVS="" \
  OUT=$OUT/r timeout 200 bash scripts/gpu_check.sh --no-hf --no-model --quick --fast --shapes "" > $OUT/r/stdout.txt 2>&1
echo "build rc=$? ($(( $(date +%s) - T0 )) s)"
B=/tmp/pagellm-gpu-build
for pa in 2 4 5; do
  PAGELLM_CUDA_PREFILL_ATTN=$pa PAGELLM_CUDA_PROFILE=1 timeout 100 $B/bench_cuda_qwen3 8b --decode 4 --bs-list 1 \
    --prefill 16384 > /dev/null 2> $OUT/r/prof16k-pf$pa.txt
  echo "prof16k pf$pa rc=$? ($(( $(date +%s) - T0 )) s)"; grep -E "TTFT|attn" $OUT/r/prof16k-pf$pa.txt | head -5
done
for pa in 2 4; do
  PAGELLM_CUDA_PREFILL_ATTN=$pa timeout 150 ncu --set full --kernel-name regex:prefill_attn --launch-skip 100 \
    --launch-count 1 $B/bench_cuda_qwen3 8b --decode 2 --bs-list 1 > $OUT/r/ncu-pf$pa.txt 2>&1
  echo "ncu pf$pa rc=$? ($(( $(date +%s) - T0 )) s)"
done
nvidia-smi --query-gpu=name --format=csv,noheader >> $OUT/r/stdout.txt
cd $OUT && tar czf /tmp/all.tgz r && rm -rf r && mv /tmp/all.tgz all.tgz
