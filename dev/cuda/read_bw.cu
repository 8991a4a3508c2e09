/* read_bw.cu: the card's read-only bandwidth beside its copy bandwidth, to tell how far the
 * bandwidth-bound kernels (decode attention reads K and V and writes almost nothing; the batch-1
 * GEMVs read weights) are from what the memory system can stream one way.
 *
 * Why: the issue's floors use the copy bandwidth (a device-to-device cudaMemcpy, bytes read plus
 * written over time). HBM turns the bus around between reads and writes, so a pure read stream
 * may run faster than a copy: if it does, "decode attention at 96% of copy bandwidth" overstates
 * how close that kernel is to its own floor.
 *
 * What it times:
 *   copy   tests/gpu/gpu_bw.h's copy_bandwidth_TBps, the floors' own measurement;
 *   read   a grid-stride kernel over 2 GiB, 16-byte loads, U loads in flight per thread, one xor
 *          per block written out (so the loads cannot be dropped), for several grid and unroll
 *          settings (3 warm-ups, median of 15, CUDA events).
 * Build (as gpu_check.sh --dev does):
 *   nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -Itests/gpu dev/cuda/read_bw.cu */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#include "dev_timing.cuh"
#include "read_stream.cuh"
#include "gpu_bw.h"

#define CHECK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "read_bw: %s: %s\n", #x, cudaGetErrorString(e_)); exit(1); } } while (0)



template <int U>
static double read_TBps(const uint4 *p, size_t n, unsigned *out, int blocks, int threads) {
    float ms = dev_median_ms([&] { read_kernel<U><<<blocks, threads>>>(p, n, out); }, 3, 15);
    CHECK(cudaGetLastError());
    return n * 16.0 / (ms * 1e-3) / 1e12;
}

int main(void) {
    size_t bytes = 2ull << 30, n = bytes / 16;
    double copy = copy_bandwidth_TBps();
    void *a;
    unsigned *out;
    CHECK(cudaMalloc(&a, bytes)); CHECK(cudaMalloc(&out, 1 << 20));
    CHECK(cudaMemset(a, 0x3c, bytes));
    int sms; CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    printf("read_bw: copy %.3f TB/s (read + written, the floors' definition)\n", copy);
    double best = 0;
    const int per_sm[] = {1, 2, 4, 8};
    const int threads[] = {256, 512, 1024};
    for (int bi = 0; bi < 4; bi++)
        for (int ti = 0; ti < 3; ti++) {
            if (per_sm[bi] * threads[ti] > 2048) continue;
            int blocks = sms * per_sm[bi];
            double r2 = read_TBps<2>((const uint4 *)a, n, out, blocks, threads[ti]);
            double r4 = read_TBps<4>((const uint4 *)a, n, out, blocks, threads[ti]);
            double r8 = read_TBps<8>((const uint4 *)a, n, out, blocks, threads[ti]);
            printf("read_bw: %d blocks/SM x %4d threads: U2 %.3f  U4 %.3f  U8 %.3f TB/s\n", per_sm[bi],
                   threads[ti], r2, r4, r8);
            if (r2 > best) best = r2;
            if (r4 > best) best = r4;
            if (r8 > best) best = r8;
        }
    printf("read_bw: best read %.3f TB/s = %.3fx copy\n", best, best / copy);
    CHECK(cudaFree(a)); CHECK(cudaFree(out));
    return 0;
}
