/* dev/cuda/l2_prefetch.cu: does an L2 bulk prefetch issued during an idle gap make the next
 * GEMV faster, and does it survive the issuing block's exit? (PAGELLM_CUDA_L2_PREFETCH)
 *
 * The decode step's pattern: a GEMV streams its weights from HBM; before it, kernels that read
 * little (rope, attention at short context, the split merge) leave the HBM idle for a gap of
 * 5-15 us. Here the gap is a one-block kernel that spins for `gap` microseconds (globaltimer),
 * then a plain GEMV (a warp per output row, 16-byte loads) reads W [N, K] bf16. Each trial
 * starts with the L2 flushed (a 256 MB memset). Variants, for gaps of 0..20 us:
 *   none      no prefetch
 *   in-gap    the gap kernel's warp issues l2_prefetch_warp over W, then spins (the backend's
 *             pattern: decode attention issues it and goes on working)
 *   exit      a separate one-warp kernel issues it and exits at once, then the gap: the
 *             prefetch must outlive its block
 *   lines     the fallback: 16 blocks issue prefetch.global.L2 per 128-byte line, then the gap
 * and "warm": the GEMV with W already in the L2 (the floor a prefetch can reach). Times are the
 * median of 15 trials (CUDA events around gap + GEMV). The GEMV's output is checked on 16 rows
 * against a float64 CPU reference so that nothing is timed that computes garbage.
 *
 * Build and run on the GPU machine (repository root):
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Isrc dev/cuda/l2_prefetch.cu \
 *     -o /tmp/l2pf && /tmp/l2pf 4096 4096 && /tmp/l2pf 2560 4096
 * (N K: 4096 4096 is Qwen3-8B's o-projection, 32 MB; 2560 4096 the 4B one, 21 MB.)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_common.cuh" /* l2_prefetch_warp, bf16 */

#define CK(x)                                                                              \
    do {                                                                                   \
        cudaError_t e_ = (x);                                                              \
        if (e_ != cudaSuccess) {                                                           \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_));    \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

__device__ __forceinline__ unsigned long long now_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

/* one warp: optionally issue the prefetch, then lane 0 spins for ns nanoseconds */
__global__ void gap_kernel(unsigned long long ns, const void *pf, unsigned bytes) {
    if (pf) l2_prefetch_warp(pf, bytes, threadIdx.x);
    if (threadIdx.x == 0 && ns) {
        const unsigned long long t0 = now_ns();
        while (now_ns() - t0 < ns) {
        }
    }
}

__global__ void prefetch_kernel(const void *pf, unsigned bytes) { l2_prefetch_warp(pf, bytes, threadIdx.x); }

/* the fallback mechanism: every thread of a small grid issues prefetch.global.L2 for 128-byte
 * lines, then the grid exits */
__global__ void prefetch_lines_kernel(const char *pf, unsigned bytes) {
    const unsigned stride = gridDim.x * blockDim.x * 128u;
    for (unsigned off = (blockIdx.x * blockDim.x + threadIdx.x) * 128u; off < bytes; off += stride)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(pf + off));
}

/* out[n] = w[n, :] . x, a warp per row, 8 bf16 per lane and load */
__global__ void gemv_kernel(float *out, const bf16 *w, const bf16 *x, int N, int K) {
    const int row = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= N) return;
    const uint4 *wr = (const uint4 *)(w + (size_t)row * K), *xr = (const uint4 *)x;
    float acc = 0.f;
    for (int i = lane; i < K / 8; i += 32) {
        uint4 a = __ldcs(wr + i), b = xr[i];
        const bf16 *pa = (const bf16 *)&a, *pb = (const bf16 *)&b;
#pragma unroll
        for (int j = 0; j < 8; j++) acc += __bfloat162float(pa[j]) * __bfloat162float(pb[j]);
    }
#pragma unroll
    for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) out[row] = acc;
}

static float median(float *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) { float t = v[j]; v[j] = v[j - 1]; v[j - 1] = t; }
    return v[n / 2];
}

enum { TRIALS = 15 };

typedef struct Ctx {
    int N, K;
    bf16 *w, *x;
    float *out;
    void *flush;
    size_t flush_bytes;
    cudaEvent_t e0, e1;
} Ctx;

static void gemv(Ctx *c) {
    gemv_kernel<<<(c->N + 7) / 8, 256>>>(c->out, c->w, c->x, c->N, c->K);
}

/* variant: 0 none, 1 in-gap, 2 exit, 3 warm (no flush, W read just before), 4 lines (16 blocks
 * of per-line prefetches before the gap) */
static float trial_us(Ctx *c, int variant, float gap_us) {
    const unsigned bytes = (unsigned)((size_t)c->N * c->K * sizeof(bf16));
    const unsigned long long ns = (unsigned long long)(gap_us * 1000.f);
    float t[TRIALS];
    for (int i = 0; i < TRIALS; i++) {
        if (variant == 3) gemv(c);
        else CK(cudaMemsetAsync(c->flush, i & 0xff, c->flush_bytes));
        CK(cudaEventRecord(c->e0));
        if (variant == 2) prefetch_kernel<<<1, 32>>>(c->w, bytes);
        if (variant == 4) prefetch_lines_kernel<<<16, 256>>>((const char *)c->w, bytes);
        gap_kernel<<<1, 32>>>(ns, variant == 1 ? (const void *)c->w : NULL, bytes);
        gemv(c);
        CK(cudaEventRecord(c->e1));
        CK(cudaEventSynchronize(c->e1));
        CK(cudaEventElapsedTime(&t[i], c->e0, c->e1));
        t[i] *= 1000.f;
    }
    CK(cudaGetLastError());
    return median(t, TRIALS);
}

static float bf16_host(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int main(int argc, char **argv) {
    Ctx c = {0};
    c.N = argc > 1 ? atoi(argv[1]) : 4096;
    c.K = argc > 2 ? atoi(argv[2]) : 4096;
    if (c.N <= 0 || c.K <= 0 || c.K % 256) {
        fprintf(stderr, "usage: %s N K (K a multiple of 256)\n", argv[0]);
        return 2;
    }
    const size_t nw = (size_t)c.N * c.K;
    uint16_t *hw = (uint16_t *)malloc(nw * 2), *hx = (uint16_t *)malloc((size_t)c.K * 2);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < nw; i++) { s = s * 6364136223846793005ull + 1442695040888963407ull; hw[i] = 0x3c00 | (uint16_t)((s >> 33) & 0x7f) | (uint16_t)(((s >> 40) & 1) << 15); }
    for (int i = 0; i < c.K; i++) { s = s * 6364136223846793005ull + 1442695040888963407ull; hx[i] = 0x3c00 | (uint16_t)((s >> 33) & 0x7f) | (uint16_t)(((s >> 40) & 1) << 15); }
    CK(cudaMalloc(&c.w, nw * 2));
    CK(cudaMalloc(&c.x, (size_t)c.K * 2));
    CK(cudaMalloc(&c.out, (size_t)c.N * 4));
    c.flush_bytes = (size_t)256 << 20;
    CK(cudaMalloc(&c.flush, c.flush_bytes));
    CK(cudaMemcpy(c.w, hw, nw * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(c.x, hx, (size_t)c.K * 2, cudaMemcpyHostToDevice));
    CK(cudaEventCreate(&c.e0));
    CK(cudaEventCreate(&c.e1));

    /* correctness of the GEMV being timed */
    CK(cudaMemset(c.out, 0xff, (size_t)c.N * 4)); /* NaN poison */
    gemv(&c);
    CK(cudaDeviceSynchronize());
    float *ho = (float *)malloc((size_t)c.N * 4);
    CK(cudaMemcpy(ho, c.out, (size_t)c.N * 4, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (int k = 0; k < 16; k++) {
        const int n = (int)((long)k * (c.N - 1) / 15);
        double ref = 0, mag = 0;
        for (int j = 0; j < c.K; j++) {
            const double p = (double)bf16_host(hw[(size_t)n * c.K + j]) * bf16_host(hx[j]);
            ref += p;
            mag += fabs(p);
        }
        const double err = fabs(ho[n] - ref) / (mag > 0 ? mag : 1);
        if (!(err <= worst)) worst = isnan(err) ? INFINITY : err;
    }
    const int ok = worst < 1e-4;
    printf("l2_prefetch N=%d K=%d (%.1f MB of weights): GEMV check %s (worst |err|/sum|p| %.2e)\n",
           c.N, c.K, nw * 2 / 1048576.0, ok ? "ok" : "FAILED", worst);
    if (!ok) return 1;

    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("%s, L2 %.0f MB\n", prop.name, prop.l2CacheSize / 1048576.0);
    printf("warm GEMV (W in the L2): %.2f us\n", trial_us(&c, 3, 0.f));
    printf("%7s %10s %10s %10s %10s   (us, gap + GEMV, L2 flushed first)\n", "gap us", "none", "in-gap",
           "exit", "lines");
    const float gaps[] = {0.f, 2.f, 5.f, 10.f, 15.f, 20.f};
    for (unsigned g = 0; g < sizeof gaps / sizeof gaps[0]; g++)
        printf("%7.0f %10.2f %10.2f %10.2f %10.2f\n", gaps[g], trial_us(&c, 0, gaps[g]), trial_us(&c, 1, gaps[g]),
               trial_us(&c, 2, gaps[g]), trial_us(&c, 4, gaps[g]));
    return 0;
}
