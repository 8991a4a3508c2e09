# gpu_env.sh: sourced by the GPU scripts (bench_gpu.sh, gpu_check.sh) on the GPU machine.
# The GPU image has nvcc, CMake, libevent and libcurl but lacks jansson, PCRE2, utf8proc and
# xxhash development files. Their Debian 12 packages, downloaded on the dev machine into
# .gpu/debs and unpacked into .gpu/prefix (`bash scripts/gpu_env.sh --fetch` does both there),
# travel with the call; this points pkg-config and the loader at them.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1
if [ "${1:-}" = --fetch ]; then   # on the dev machine (Debian 12)
  mkdir -p .gpu/debs .gpu/prefix
  (cd .gpu/debs && apt-get download libjansson-dev libjansson4 libpcre2-dev libpcre2-8-0 libpcre2-16-0 \
     libpcre2-32-0 libpcre2-posix3 libutf8proc-dev libutf8proc2 libxxhash-dev libxxhash0)
  for f in .gpu/debs/*.deb; do dpkg -x "$f" .gpu/prefix; done
  # CUTLASS's C++ headers (inside the PyPI wheel) for dev/cuda/cutlass_gemm.cu only; the
  # backend does not use them
  pip download -q --no-deps -d .gpu nvidia-cutlass==4.2.0.0 || echo "gpu_env: no nvidia-cutlass wheel (only gpu_check DEV_TOOLS=cutlass_gemm needs it)"
  grep -qs '^/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >> .git/info/exclude
  return 0 2>/dev/null || exit 0
fi
if ! pkg-config --exists jansson && [ -d .gpu/prefix ]; then
  _P=$PWD/.gpu/prefix/usr
  mkdir -p /tmp/pc
  for _f in "$_P"/lib/x86_64-linux-gnu/pkgconfig/*.pc; do
    sed "s|^prefix=.*|prefix=$_P|" "$_f" > /tmp/pc/"$(basename "$_f")"
  done
  export PKG_CONFIG_PATH=/tmp/pc:${PKG_CONFIG_PATH:-}
  export LD_LIBRARY_PATH=$_P/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
fi
