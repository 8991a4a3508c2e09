#!/usr/bin/env bash
# sass_wgmma_order.sh FILE.cu [-DDEFINES...]: where ptxas put the wgmma waits. Compiles FILE.cu for
# sm_90a (the project's flags), prints ptxas's register / spill / wgmma-serialization lines, then
# the kernel's WARPGROUP.DEPBAR waits and HGMMA groups in SASS order, with runs of MUFU.EX2 between
# them counted. Why: ptxas places `wgmma.wait_group` itself (session 15: it moved prefill
# attention 7's wait for P V up before the softmax's exp2s, which the PTX had after them), so an
# overlap of register math with an in-flight wgmma group has to be checked here, not in the PTX.
# Needs cuobjdump: the CUDA install's, or PyPI nvidia-cuda-cuobjdump's (CUOBJDUMP=path/to/it).
# Runs on the CPU machine; no GPU needed.
set -eu
f=$1; shift
CUOBJDUMP=${CUOBJDUMP:-$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)}
out=$(mktemp /tmp/sass_wgmma_XXXX.cubin)
nvcc -gencode=arch=compute_90a,code=sm_90a --use_fast_math -O3 -std=c++17 -Isrc "$@" -Xptxas -v -cubin -o "$out" "$f" 2>&1 |
  grep -E "registers|spill|C75" | grep -v "Compiling entry" || true
"$CUOBJDUMP" -sass "$out" | grep -E "Function|DEPBAR|MUFU.EX2|HGMMA|BAR\.(SYNC|ARV)" |
  awk '{ if ($0 ~ /MUFU/) m++; else { if (m) print "    MUFU.EX2 x" m; m = 0; print } } END { if (m) print "    MUFU.EX2 x" m }' |
  sed 's/^ *//' | cut -c1-90
rm -f "$out"
