#!/usr/bin/env bash
# session 13 call A: the tree on GPU (test_cuda_ops incl. graph_lend), engine record workload, and the
# start-up knob PAGELLM_CUDA_GRAPH_LEND_MAX=128: ready time + breakdown, throughput, batch-32 decode
set -u
T0=$(date +%s)
GPU_CHECK_TAR=1 GPU_CHECK_BUDGET_S=520 ENGINE_ASYNC_TEST=0 PREFILL_ATTN_LIST=2 DECODE_ATTN_LIST="" AB_ENVS="" \
  ENGINE_THR_ENVS="PAGELLM_CUDA_GRAPH_LEND_MAX=128" \
  ENGINE_LAT_ENVS="--batch-size 32;PAGELLM_CUDA_GRAPH_LEND_MAX=128 --batch-size 32;--batch-size 32" \
  OUT=$OUT timeout 570 bash scripts/gpu_check.sh --engine --no-hf --no-model --quick --fast --shapes 8b > $OUT/stdout.txt 2>&1
echo "rc=$? ($(( $(date +%s) - T0 )) s)"
grep -E "rc=|tok/s|graphs|ready|FAIL|checks|graph_lend" $OUT/stdout.txt | head -70
nvidia-smi --query-gpu=name --format=csv,noheader
