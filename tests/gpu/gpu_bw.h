/* gpu_bw.h: the copy-bandwidth floor of one GPU, shared by the GPU benchmarks (tests/gpu): a
 * 2 GiB device-to-device cudaMemcpy, 3 warm-ups then the median of 20; bandwidth = (bytes read
 * + bytes written) / time, in TB/s. Runs on the calling thread's current device. Header-only;
 * test programs only. */
#ifndef PAGELLM_TESTS_GPU_BW_H
#define PAGELLM_TESTS_GPU_BW_H
#include <cuda_runtime.h>
#include <stdlib.h>

static int gpu_bw_cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline double copy_bandwidth_TBps(void) {
    size_t bytes = 2ull << 30;
    void *a, *c;
    if (cudaMalloc(&a, bytes) != cudaSuccess) return 0;
    if (cudaMalloc(&c, bytes) != cudaSuccess) { cudaFree(a); return 0; }
    cudaMemset(a, 0x3c, bytes);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0); cudaEventCreate(&e1);
    double ts[20];
    for (int i = -3; i < 20; i++) {
        cudaEventRecord(e0, 0);
        cudaMemcpyAsync(c, a, bytes, cudaMemcpyDeviceToDevice, 0);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        float ms; cudaEventElapsedTime(&ms, e0, e1);
        if (i >= 0) ts[i] = ms;
    }
    cudaFree(a); cudaFree(c);
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    qsort(ts, 20, sizeof ts[0], gpu_bw_cmp_d);
    return 2.0 * bytes / (ts[10] * 1e-3) / 1e12;
}

#endif
