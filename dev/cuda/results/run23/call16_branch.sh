#!/usr/bin/env bash
# Session 16: branch pfw-default (8 the default prefill attention, v2 reduced to variant 2's
# shape) checked on the device before it is merged (~250 s; LIMIT the call at 400). On the dev
# machine first: `git diff main pfw-default > .gpu/pfw-default.patch` and copy this script into
# .gpu/. The branch is applied to a copy of the tree in /tmp/pb and built there
# (GPU_BUILD_DIR=/tmp/pb-build), so main's build in /tmp/pagellm-gpu-build stays as it was.
#  1. gpu_check --no-model: build + test_cuda_ops (the "cuda" default must launch the wgmma
#     kernel on sm_90, cuda-fp8kv / pf1 / pf2 must not; cuda-pf2(-fp8kv) check v2);
#  2. TTFT 2048 (x2) and the 16k profile, default vs PAGELLM_CUDA_PREFILL_ATTN=2.
# Results in /tmp/r/branch, packed into $OUT/all.tgz after each step.
set -u
T0=$(date +%s)
export PATH=$PATH:/usr/local/cuda/bin
R=/tmp/r; mkdir -p $R/branch
pack() { tar czf /tmp/all.tgz -C /tmp r && mv /tmp/all.tgz $OUT/all.tgz; }
[ -s .gpu/pfw-default.patch ] || { echo "no .gpu/pfw-default.patch"; exit 2; }
rm -rf /tmp/pb && mkdir /tmp/pb && cp -a . /tmp/pb/ && cd /tmp/pb
patch -p1 -s < .gpu/pfw-default.patch || { echo "the patch does not apply"; exit 2; }
SKIP_OP_TESTS=0 GPU_CHECK_BUDGET_S=600 PREFILL_ATTN_LIST="" DECODE_ATTN_LIST="" AB_ENVS="" \
  GPU_BUILD_DIR=/tmp/pb-build OUT=$R/branch timeout 220 \
  bash scripts/gpu_check.sh --no-hf --no-model --quick --fast --shapes "" > $R/branch/stdout.txt 2>&1
echo "branch gpu_check ops rc=$? ($(( $(date +%s) - T0 )) s)"
grep -E "wgmma prefill launches|FAIL|checks" $R/branch/test_cuda_ops.log | tail -12
pack
B=/tmp/pb-build
for pa in default 2 default 2; do
  echo "pf$pa 2048: $( ( [ $pa = default ] || export PAGELLM_CUDA_PREFILL_ATTN=$pa
    timeout 40 $B/bench_cuda_qwen3 8b --decode 8 --bs-list 1 ) 2>&1 >/dev/null | grep -E 'TTFT')"
done | tee $R/branch/ttft2048.txt
for pa in default 2; do
  ( [ $pa = default ] || export PAGELLM_CUDA_PREFILL_ATTN=$pa
    PAGELLM_CUDA_PROFILE=1 timeout 40 $B/bench_cuda_qwen3 8b --decode 4 --bs-list 1 --prefill 16384 ) \
    > /dev/null 2> $R/branch/prof16k-$pa.txt
  echo "$pa 16k: $(grep -E 'TTFT' $R/branch/prof16k-$pa.txt) / $(grep -E '^  attention' $R/branch/prof16k-$pa.txt)"
done
echo "done ($(( $(date +%s) - T0 )) s)"
pack
