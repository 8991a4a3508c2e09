# call15_common.sh: the start both session-15 calls share (sourced by call15a.sh and call15s.sh,
# from the same folder; TO = the seconds each pfw tool may run). Results gather in /tmp/r; pack()
# puts them into $OUT/all.tgz. Beside the build: dev/cuda/pfw_parts.cu (variant 7's two matrix
# products on their own) and dev/cuda/pfw_full.cu (variants 7 and 8 alone against float64).
set -u
T0=$(date +%s)
export PATH=$PATH:/usr/local/cuda/bin
R=/tmp/r; rm -rf $R; mkdir -p $R
pack() { tar czf /tmp/all.tgz -C /tmp r && mv /tmp/all.tgz $OUT/all.tgz; }
NVA="-O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a --use_fast_math -Isrc"
( nvcc $NVA dev/cuda/pfw_parts.cu -o /tmp/pfw_parts && timeout $TO /tmp/pfw_parts
  nvcc $NVA dev/cuda/pfw_full.cu -o /tmp/pfw_full && timeout $TO /tmp/pfw_full 3 0 ) > $R/pfw_parts.txt 2>&1 &
