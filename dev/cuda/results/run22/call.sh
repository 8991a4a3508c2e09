#!/usr/bin/env bash
# session 13 call B: prefill_attn_v2 with 32 rows a warp (PAGELLM_CUDA_PREFILL_ATTN=4: 4 warps, 5: 8 warps)
# against the default (2). Part 1: op checks + TTFT 2048 (bench prefill profiles 2 4 5 2). Part 2 (as time
# allows): the engine's prefill phase (256 x 512/512) and the TTFT of a 16,384-token prompt, 2 vs 4.
# LIMIT: seconds for both parts (the device time left).
set -u
T0=$(date +%s)
LIMIT=${LIMIT:-450}
mkdir -p $OUT/p1 $OUT/p2
SKIP_OP_TESTS=0 GPU_CHECK_BUDGET_S=700 PREFILL_ATTN_LIST="${PF_LIST:-2 4 5 2}" DECODE_ATTN_LIST="" AB_ENVS="" \
  OUT=$OUT/p1 timeout $((LIMIT - 10)) bash scripts/gpu_check.sh --no-hf --no-model --quick --fast --shapes "" > $OUT/p1/stdout.txt 2>&1
echo "part 1 rc=$? ($(( $(date +%s) - T0 )) s)"
grep -E "checks|FAIL|== prefill|TTFT" $OUT/p1/stdout.txt | head -20
left=$(( LIMIT - ($(date +%s) - T0) - 15 ))
[ $left -gt 150 ] || { echo "part 2 skipped ($left s left)"; left=1; }
SKIP_OP_TESTS=1 GPU_CHECK_BUDGET_S=700 ENGINE_ASYNC_TEST=0 PREFILL_ATTN_LIST="" DECODE_ATTN_LIST="" AB_ENVS="" \
  ENGINE_THR_ENVS="PAGELLM_CUDA_PREFILL_ATTN=4" \
  ENGINE_LAT_ENVS="--input-len 16384;PAGELLM_CUDA_PREFILL_ATTN=4 --input-len 16384" \
  OUT=$OUT/p2 timeout $left bash scripts/gpu_check.sh --engine --no-hf --no-model --quick --fast --shapes "" > $OUT/p2/stdout.txt 2>&1
echo "part 2 rc=$? ($(( $(date +%s) - T0 )) s)"
nvidia-smi --query-gpu=name --format=csv,noheader >> $OUT/p1/stdout.txt
# at most 8 files come back: pack everything (also after a timeout)
cd $OUT && tar czf /tmp/all.tgz p1 p2 && rm -rf p1 p2 && mv /tmp/all.tgz all.tgz
