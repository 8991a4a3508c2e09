#!/usr/bin/env bash
# session 8 call 9: bench throughput bf16 KV, 512/512 at max-num-seqs 256 with 1024 prompts (vLLM's
# benchmark_throughput default is 1000) beside the single wave of 256
set -u
source scripts/gpu_env.sh
T0=$(date +%s)
B=/tmp/pagellm-gpu-full
{ cmake -S . -B $B -G Ninja -DPAGELLM_CUDA=ON -DCMAKE_BUILD_TYPE=Release && cmake --build $B -j 16 --target pagellm; } > $OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
echo "build $(( $(date +%s) - T0 )) s"
M=/tmp/q8b; mkdir -p $M; cp tests/fixtures/shapes/qwen3-8b.config.json $M/config.json; cp tests/fixtures/qwen3-tokenizer/* $M/
for n in 1024 256; do
  timeout 100 $B/pagellm bench throughput $M --load-format dummy --device cuda --num-prompts $n --input-len 512 --output-len 512 \
    --max-num-seqs 256 --max-num-batched-tokens 8192 --no-progress --output-json $OUT/thr-$n.json > $OUT/thr-$n.log 2>&1
  echo "num-prompts $n rc=$? ($(( $(date +%s) - T0 )) s)"; grep -E "^Throughput|^Engine steps|^Forward" $OUT/thr-$n.log
done
