#!/usr/bin/env bash
# session 12 call: CUTLASS (graph-timed, stream-K re-initialized per launch) vs cuBLASLt at the 8B
# decode shapes; engine throughput at the 8192 vs 16384 step budget (vLLM's LLM-class default on H100)
set -u
source scripts/gpu_env.sh
T0=$(date +%s)
export PATH=$PATH:/usr/local/cuda/bin
python3 -c "import zipfile; zipfile.ZipFile('.gpu/nvidia_cutlass-4.2.0.0-py3-none-any.whl').extractall('/tmp/cutl')"
C=/tmp/cutl/cutlass_library/source
B=/tmp/pagellm-gpu-full
{ cmake -S . -B $B -G Ninja -DPAGELLM_CUDA=ON -DCMAKE_BUILD_TYPE=Release && cmake --build $B -j 12 --target pagellm; } > /tmp/build.log 2>&1 &
CFGS="128,256,2,1,0 128,128,2,1,0 256,128,1,2,0"
for cfg in $CFGS; do
  IFS=, read tm tn cm cn pp <<< "$cfg"
  nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -I$C/include -I$C/tools/util/include \
    -Idev/cuda -DCG_TM=$tm -DCG_TN=$tn -DCG_CM=$cm -DCG_CN=$cn -DCG_PINGPONG=$pp dev/cuda/cutlass_gemm.cu -lcublasLt \
    -o /tmp/cg_${tm}_${tn}_${cm}_${cn}_${pp} > /tmp/build_${tm}_${tn}_${cm}_${cn}_$pp.log 2>&1 &
done
wait
echo "built ($(( $(date +%s) - T0 )) s)"; tail -3 /tmp/build.log
M=/tmp/q8b; mkdir -p $M; cp tests/fixtures/shapes/qwen3-8b.config.json $M/config.json; cp tests/fixtures/qwen3-tokenizer/* $M/
for bt in 8192 16384 8192 16384; do
  timeout 100 $B/pagellm bench throughput $M --load-format dummy --device cuda --num-prompts 256 --input-len 512 --output-len 512 \
    --max-num-seqs 256 --max-num-batched-tokens $bt --no-progress > /tmp/thr-$bt.log 2>&1
  echo "budget $bt rc=$? ($(( $(date +%s) - T0 )) s)"; grep -E "^Throughput|^Engine steps|^Forward|activations peak" /tmp/thr-$bt.log | tee -a $OUT/thr.log
done
for cfg in $CFGS; do
  IFS=, read tm tn cm cn pp <<< "$cfg"
  b=/tmp/cg_${tm}_${tn}_${cm}_${cn}_${pp}
  [ -x $b ] || { echo "no binary for $cfg"; tail -5 /tmp/build_${tm}_${tn}_${cm}_${cn}_$pp.log; continue; }
  timeout 45 $b 2>&1 | tee -a $OUT/cutlass_gemm.log
  echo "rc=$? ($(( $(date +%s) - T0 )) s)"
done
nvidia-smi --query-gpu=name --format=csv,noheader >> $OUT/cutlass_gemm.log
