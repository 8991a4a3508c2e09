#!/usr/bin/env bash
# session 14 call B: is prefill attention variant 5 (8 warps x 32 rows) ready to be the default?
# run22/call14a: 16k-token prefill attention 308 -> 278 ms a prompt (TTFT 651 -> 621 ms), TTFT
# 2048 48.8 vs 49.3-49.9 ms. Here: 0.6B and 8B agreement with HF for 5 (MODEL_AB_ENVS), the
# engine's 256 x 512/512 with 5 between two default runs, and the 16k TTFT through the engine,
# default / 5.
set -u
mkdir -p $OUT/r
SKIP_OP_TESTS=1 GPU_CHECK_BUDGET_S=470 PREFILL_ATTN_LIST="" DECODE_ATTN_LIST="" AB_ENVS="" ENGINE_ASYNC_TEST=0 \
  MODEL_AB_ENVS="PAGELLM_CUDA_PREFILL_ATTN=5" ENGINE_THR_ENVS="PAGELLM_CUDA_PREFILL_ATTN=5" \
  ENGINE_LAT_ENVS="--input-len 16384;PAGELLM_CUDA_PREFILL_ATTN=5 --input-len 16384" \
  OUT=$OUT/r timeout 470 bash scripts/gpu_check.sh --engine --no-hf --quick --fast --shapes "" > $OUT/r/stdout.txt 2>&1
echo "gpu_check rc=$?"
grep -E "rc=|vs HF|PREFILL_ATTN=5\]|Throughput|TTFT" $OUT/r/stdout.txt | cut -c1-220 | head -40
nvidia-smi --query-gpu=name --format=csv,noheader >> $OUT/r/stdout.txt
cd $OUT && tar czf /tmp/all.tgz r && rm -rf r && mv /tmp/all.tgz all.tgz
