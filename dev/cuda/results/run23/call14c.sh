#!/usr/bin/env bash
# session 14 call C (what is left of the budget): prefill attention variant 5 as the default?
# The 8B agreement with HF for 5 (MODEL_AB_ENVS; gate 95%), then the engine's 256 x 512/512 bf16
# run alternating default (2) and 5 while the time lasts. (run23: 16k prefill attention 308 ->
# 278 ms with 5.)
set -u
T0=$(date +%s)
mkdir -p $OUT/r
SKIP_OP_TESTS=1 GPU_CHECK_BUDGET_S=400 PREFILL_ATTN_LIST="" DECODE_ATTN_LIST="" AB_ENVS="" \
  MODEL_AB_ENVS="PAGELLM_CUDA_PREFILL_ATTN=5" OUT=$OUT/r timeout 290 bash scripts/gpu_check.sh --no-hf --quick --fast \
  --shapes "" --model-shapes 8b > $OUT/r/stdout.txt 2>&1
echo "gpu_check rc=$? ($(( $(date +%s) - T0 )) s)"
grep -E "vs HF|failures" $OUT/r/test_cuda_model.log | cut -c1-260; cp $OUT/r/test_cuda_model.log $OUT/model.log
P=$PWD/.gpu/prefix/usr; mkdir -p /tmp/pc
export LD_LIBRARY_PATH=$P/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
M=/tmp/pagellm-q8b; mkdir -p $M
cp tests/fixtures/shapes/qwen3-8b.config.json $M/config.json; cp tests/fixtures/qwen3-tokenizer/* $M/
i=0
for pa in 5 2 5 2 5; do
  [ $(( $(date +%s) - T0 )) -lt ${THR_UNTIL:-390} ] || break
  i=$((i + 1))
  PAGELLM_CUDA_PREFILL_ATTN=$pa timeout 70 /tmp/pagellm-gpu-full/pagellm bench throughput $M --load-format dummy \
    --device cuda --num-prompts 256 --input-len 512 --output-len 512 --max-num-seqs 256 \
    --max-num-batched-tokens 8192 --no-progress > $OUT/r/thr$i-pf$pa.log 2>&1
  echo "thr $i pf$pa rc=$? ($(( $(date +%s) - T0 )) s): $(grep -E '^Throughput' $OUT/r/thr$i-pf$pa.log | cut -d, -f3) /" \
       "$(grep -E '^Forward\+sample by step' $OUT/r/thr$i-pf$pa.log | cut -d: -f2 | cut -c1-40)"
done
nvidia-smi --query-gpu=name --format=csv,noheader >> $OUT/r/stdout.txt
cd $OUT && tar czf /tmp/all.tgz r && rm -rf r && mv /tmp/all.tgz all.tgz
