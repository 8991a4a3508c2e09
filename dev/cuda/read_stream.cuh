/* read_stream.cuh: the read-only stream of the dev/cuda bandwidth tools (read_bw, kv_layout_bw):
 * read_kernel<U> reads p[0, n) as 16-byte streaming loads (no L2 reuse), grid-stride, U loads in
 * flight per thread, and writes one xor per block only in a case that practically never happens,
 * so the loads cannot be dropped. Header-only. */
#ifndef PAGELLM_DEV_READ_STREAM_CUH
#define PAGELLM_DEV_READ_STREAM_CUH
#include <cuda_runtime.h>
#include <stddef.h>

template <int U>
__global__ void read_kernel(const uint4 *__restrict__ p, size_t n, unsigned *out) {
    unsigned acc = 0;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + (U - 1) * stride < n; i += U * stride) {
        uint4 v[U];
#pragma unroll
        for (int u = 0; u < U; u++) v[u] = __ldcs(p + i + u * stride); /* streaming: no L2 reuse */
#pragma unroll
        for (int u = 0; u < U; u++) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    for (; i < n; i += stride) { uint4 v = p[i]; acc ^= v.x ^ v.y ^ v.z ^ v.w; }
    if (acc == 0x9e3779b9u) out[blockIdx.x] = acc; /* practically never; keeps the loads alive */
}

#endif
