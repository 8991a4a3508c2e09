#!/usr/bin/env bash
# session 12 call A+B: kv_layout_bw + lt_search + decode SPLITS_MIN A/B, then serving table at the 8192 default budget
set -u
T0=$(date +%s)
mkdir -p $OUT/a $OUT/b
DEV_TOOLS="kv_layout_bw lt_search" LT_SEARCH_BUDGET_S=4 SKIP_OP_TESTS=1 GPU_CHECK_TAR=1 PREFILL_ATTN_LIST="" DECODE_ATTN_LIST="" \
  AB_ENVS="PAGELLM_CUDA_DECODE_SPLITS_MIN=2;PAGELLM_CUDA_DECODE_SPLITS_MIN=4" GPU_CHECK_BUDGET_S=300 \
  OUT=$OUT/a timeout 330 bash scripts/gpu_check.sh --dev --no-hf --no-model --quick --fast --shapes 8b > $OUT/a/stdout.txt 2>&1
echo "A rc=$? ($(( $(date +%s) - T0 )) s)"
grep -E "GB/s|TB/s|lt_search|best|SPLITS|step" $OUT/a/stdout.txt | head -60
OUT=$OUT/b timeout 250 bash scripts/bench_gpu.sh --no-hf --no-offline > $OUT/b/stdout.txt 2>&1
echo "B rc=$? ($(( $(date +%s) - T0 )) s)"
tail -25 $OUT/b/stdout.txt
cd $OUT/b && tar czf ../b.tgz . && find . -type f -delete; cd - >/dev/null
