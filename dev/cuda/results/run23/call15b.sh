#!/usr/bin/env bash
# Session 15 call B (after call15a; ~250 s): why variant 7 runs as it does. ncu --set full of one
# 2048-token prefill attention launch of 7 (tensor pipe, issue, eligible warps, L2 throughput)
# beside 2; TTFT 2048 and 16k alternating 2 / 7 (three each).
set -u
T0=$(date +%s)
export PATH=$PATH:/usr/local/cuda/bin
R=/tmp/r15b; rm -rf $R; mkdir -p $R
SKIP_OP_TESTS=1 GPU_CHECK_BUDGET_S=700 PREFILL_ATTN_LIST="" DECODE_ATTN_LIST="" AB_ENVS="" \
  OUT=$R timeout 200 bash scripts/gpu_check.sh --no-hf --no-model --quick --fast --shapes "" > $R/stdout.txt 2>&1
echo "build rc=$? ($(( $(date +%s) - T0 )) s)"
B=/tmp/pagellm-gpu-build
for pa in 8 7 2; do
  PAGELLM_CUDA_PREFILL_ATTN=$pa timeout 150 ncu --set full --kernel-name regex:prefill_attn --launch-skip 100 \
    --launch-count 1 $B/bench_cuda_qwen3 8b --decode 2 --bs-list 1 > $R/ncu-pf$pa.txt 2>&1
  echo "ncu pf$pa rc=$? ($(( $(date +%s) - T0 )) s)"
  grep -E "Duration|Compute \(SM\) Throughput|Issue Slots Busy|Eligible Warps|Registers Per|L2 Cache Throughput|Memory Throughput" $R/ncu-pf$pa.txt | head -9
done
for i in 1 2 3; do for pa in 2 7 8; do
  echo "pf$pa 2048: $(PAGELLM_CUDA_PREFILL_ATTN=$pa timeout 60 $B/bench_cuda_qwen3 8b --decode 8 --bs-list 1 2>&1 >/dev/null | grep -E 'TTFT')"
  PAGELLM_CUDA_PREFILL_ATTN=$pa PAGELLM_CUDA_PROFILE=1 timeout 60 $B/bench_cuda_qwen3 8b --decode 4 --bs-list 1 \
    --prefill 16384 > /dev/null 2> $R/prof16k-pf$pa-$i.txt
  echo "pf$pa 16k: $(grep -E 'TTFT' $R/prof16k-pf$pa-$i.txt) / $(grep -E '^  attention' $R/prof16k-pf$pa-$i.txt)"
done; done | tee $R/ab.txt
echo "done ($(( $(date +%s) - T0 )) s)"
nvidia-smi --query-gpu=name --format=csv,noheader >> $R/stdout.txt
tar czf /tmp/all.tgz -C /tmp r15b && mv /tmp/all.tgz $OUT/all.tgz
