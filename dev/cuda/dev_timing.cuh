/* dev_timing.cuh: the one timer of the standalone dev/cuda tools (read_bw, kv_layout_bw,
 * cutlass_gemm): dev_median_ms(fn, warmups, runs) calls fn() warmups times untimed, then times
 * `runs` calls (runs <= 64) with CUDA events on the default stream and returns the median in ms.
 * fn enqueues work on the default stream; it may enqueue many launches (the caller divides).
 * A CUDA error in the events or left by fn exits with a message: these are measurement tools.
 * The backend's own timer is cuda_time_median_us (src/backend/cuda); these tools do not link
 * the backend. Header-only. */
#ifndef PAGELLM_DEV_TIMING_CUH
#define PAGELLM_DEV_TIMING_CUH
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

static inline void dev_timing_check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        fprintf(stderr, "dev timing: %s: %s\n", what, cudaGetErrorString(e));
        exit(1);
    }
}

static int dev_timing_cmpf(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

template <typename F>
static float dev_median_ms(F fn, int warmups, int runs) {
    cudaEvent_t e0, e1;
    float ts[64];
    if (runs > 64) runs = 64;
    dev_timing_check(cudaEventCreate(&e0), "cudaEventCreate");
    dev_timing_check(cudaEventCreate(&e1), "cudaEventCreate");
    for (int i = -warmups; i < runs; i++) {
        dev_timing_check(cudaEventRecord(e0), "cudaEventRecord");
        fn();
        dev_timing_check(cudaEventRecord(e1), "cudaEventRecord");
        dev_timing_check(cudaEventSynchronize(e1), "the timed work");
        float ms = 0;
        dev_timing_check(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
        if (i >= 0) ts[i] = ms;
    }
    dev_timing_check(cudaGetLastError(), "a timed launch");
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    qsort(ts, runs, sizeof ts[0], dev_timing_cmpf);
    return ts[runs / 2];
}

#endif
