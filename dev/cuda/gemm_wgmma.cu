/* dev/cuda/gemm_wgmma.cu: the backend's Hopper GEMM for decode batches
 * (src/backend/cuda/gemm_wgmma.cu: TMA ring, warp-specialized m64n128k16 wgmma, every row of the
 * batch in one CTA, K split over a cluster of S CTAs and reduced through distributed shared
 * memory) beside the backend's cuBLASLt path (cuda_gemm with PAGELLM_CUDA_GEMV=0: the fastest of
 * the heuristic's 8 candidates, timed at the plan's first use), llm.c style: a validator and a
 * timer, one program.
 *
 * Per shape (the Qwen3-8B decode matmuls at 256, 128 and 64 rows) and split S: every output
 * entry against cuBLASLt and 64 sampled entries against a float64 CPU reference (output
 * poisoned with NaN first), then the median time of 7 rounds of 10 launches over weight copies
 * that together exceed L2, against the shape's floor (weights at 3.0 TB/s, math at 780 TFLOP/s).
 *
 * Status (session 9, run14 on an H100): every entry right at every split; 1.2-2.8x slower than
 * cuBLASLt except k/v at 128 rows (0.95x) (dev/cuda/NOTES.md, Session 9).
 *
 * Build and run on the GPU machine (repository root; `scripts/gpu_check.sh --dev` does this,
 * linking the backend objects its standalone build made):
 *   cc -O2 -Isrc -c src/util/err.c src/util/log.c src/util/dtype.c
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a --use_fast_math -Isrc \
 *     dev/cuda/gemm_wgmma.cu src/backend/cuda/*.cu err.o log.o dtype.o -lcublasLt -o /tmp/gemm_wgmma \
 *     && /tmp/gemm_wgmma
 */
#ifndef PAGELLM_HAVE_CUDA
#define PAGELLM_HAVE_CUDA 1 /* declares backend_cuda_new in backend/backend.h */
#endif
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); exit(1); } } while (0)

enum { BN = 128, BK = 64 }; /* the kernel's output tile width and K step */

/* ---------------- host ---------------- */

static CudaCtx *C; /* the backend's context: its stream, its cuBLASLt plans */

/* kind -1: the backend's cuBLASLt matmul; else the wgmma GEMM with kind = S splits */
static void launch(int kind, bf16 *out, const bf16 *x, const bf16 *w, int M, int N, int K) {
    if (kind < 0) cuda_gemm(C, out, 0, x, w, M, N, K);
    else cuda_wgmma(C->stream, C->device, out, x, w, M, N, K, kind);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1ull << 24))) * 2.f - 1.f;
}

/* Median time (us) of `reps` rounds, each `per` back-to-back launches over rotating weight
 * copies (together larger than L2), divided by `per`. kind: -1 cuBLASLt, else the split S. */
static float time_us(int kind, bf16 **ws, int nw, const bf16 *x, bf16 *out, int M, int N, int K) {
    enum { reps = 7, per = 10 };
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    float ts[reps];
    for (int r = -1; r < reps; r++) {
        CK(cudaEventRecord(e0, C->stream));
        for (int i = 0; i < per; i++) launch(kind, out, x, ws[((r + 1) * per + i) % nw], M, N, K);
        CK(cudaEventRecord(e1, C->stream));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (r >= 0) ts[r] = 1000.f * ms / per;
    }
    for (int i = 1; i < reps; i++)
        for (int j = i; j > 0 && ts[j] < ts[j - 1]; j--) { float t = ts[j]; ts[j] = ts[j - 1]; ts[j - 1] = t; }
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    return ts[reps / 2];
}

static int failures;
static int no_time; /* GEMM_WGMMA_NO_TIME=1: validate only, one launch per split (for ncu) */

/* On a mismatch, where the wrong entries sit (a layout bug shows as a pattern): how many are
 * wrong, their spread over (row % 64) / 8 and (col % 128) / 8, and for the first few where the
 * wanted value does appear (the same row at another column, or the same column at another row). */
static void diagnose(const bf16 *out, const bf16 *ref, int M, int N, double refmax) {
    long bad = 0, nan = 0, by_r8[8] = {0}, by_c8[16] = {0};
    int shown = 0;
    for (int r = 0; r < M; r++)
        for (int c = 0; c < N; c++) {
            const double a = __bfloat162float(out[(size_t)r * N + c]), b = __bfloat162float(ref[(size_t)r * N + c]);
            if (!isnan(a) && fabs(a - b) <= 2e-2 * refmax) continue;
            bad++; nan += isnan(a);
            by_r8[(r % 64) / 8]++; by_c8[(c % 128) / 8]++;
            if (shown < 6 && !isnan(a)) {
                shown++;
                int fr = -1, fc = -1;
                for (int c2 = 0; c2 < N && fc < 0; c2++)
                    if (fabs(__bfloat162float(ref[(size_t)r * N + c2]) - a) < 1e-3 * refmax) fc = c2;
                for (int r2 = 0; r2 < M && fr < 0; r2++)
                    if (fabs(__bfloat162float(ref[(size_t)r2 * N + c]) - a) < 1e-3 * refmax) fr = r2;
                printf("    bad (%d, %d): got %.4f want %.4f; got value at (row %d, col %d) / (row %d, col %d)\n",
                       r, c, a, b, r, fc, fr, c);
            }
        }
    printf("    %ld of %ld wrong (%ld NaN); by (row %% 64) / 8:", bad, (long)M * N, nan);
    for (int i = 0; i < 8; i++) printf(" %ld", by_r8[i]);
    printf("; by (col %% 128) / 8:");
    for (int i = 0; i < 16; i++) printf(" %ld", by_c8[i]);
    printf("\n");
}

static void run_shape(int M, int N, int K, const int *splits, int nsplits) {
    const size_t wbytes = (size_t)N * K * 2;
    const int nw = (int)((200u << 20) / wbytes) + 1; /* copies: > 200 MB together, L2 is 50 MB */
    bf16 *hx = (bf16 *)malloc((size_t)M * K * 2), *hw = (bf16 *)malloc(wbytes);
    const float wscale = sqrtf(3.f / K);
    for (size_t i = 0; i < (size_t)M * K; i++) hx[i] = __float2bfloat16(frand());
    for (size_t i = 0; i < (size_t)N * K; i++) hw[i] = __float2bfloat16(frand() * wscale);
    bf16 *x, *out, *ref, **ws = (bf16 **)malloc(nw * sizeof(bf16 *));
    CK(cudaMalloc(&x, (size_t)M * K * 2));
    CK(cudaMalloc(&out, (size_t)M * N * 2));
    CK(cudaMalloc(&ref, (size_t)M * N * 2));
    CK(cudaMemcpy(x, hx, (size_t)M * K * 2, cudaMemcpyHostToDevice));
    for (int i = 0; i < nw; i++) {
        CK(cudaMalloc(&ws[i], wbytes));
        CK(cudaMemcpy(ws[i], hw, wbytes, cudaMemcpyHostToDevice));
    }

    /* the backend's cuBLASLt path: its first call times the candidates and keeps the fastest */
    launch(-1, ref, x, ws[0], M, N, K);
    const float t_lt = no_time ? 0.f : time_us(-1, ws, nw, x, ref, M, N, K);
    launch(-1, ref, x, ws[0], M, N, K);
    CK(cudaStreamSynchronize(C->stream));
    bf16 *href = (bf16 *)malloc((size_t)M * N * 2), *hout = (bf16 *)malloc((size_t)M * N * 2);
    CK(cudaMemcpy(href, ref, (size_t)M * N * 2, cudaMemcpyDeviceToHost));
    double refmax = 0;
    for (size_t i = 0; i < (size_t)M * N; i++) refmax = fmax(refmax, fabs((double)__bfloat162float(href[i])));

    const double floor_us = fmax(wbytes / 3.0e12, 2.0 * M * N * (double)K / 780e12) * 1e6;
    printf("M=%d N=%d K=%d: floor %.1f us (weights at 3.0 TB/s, math at 780 TFLOP/s); cuBLASLt %.1f us\n",
           M, N, K, floor_us, t_lt);
    for (int si = 0; si < nsplits; si++) {
        const int S = splits[si];
        if ((K / BK) < S) continue;
        CK(cudaMemsetAsync(out, 0xff, (size_t)M * N * 2, C->stream)); /* poison: NaN bf16 */
        launch(S, out, x, ws[0], M, N, K);
        cudaError_t e = cudaStreamSynchronize(C->stream);
        if (e != cudaSuccess) { printf("  S=%d: launch failed: %s\n", S, cudaGetErrorString(e)); failures++; exit(1); }
        CK(cudaMemcpy(hout, out, (size_t)M * N * 2, cudaMemcpyDeviceToHost));
        /* against cuBLASLt, every entry; against float64, 64 sampled entries */
        double err_lt = 0;
        for (size_t i = 0; i < (size_t)M * N; i++) {
            const double a = __bfloat162float(hout[i]), b = __bfloat162float(href[i]);
            const double dlt = isnan(a) ? 1e30 : fabs(a - b);
            if (dlt > err_lt) err_lt = dlt;
        }
        double err_cpu = 0;
        for (int t = 0; t < 64; t++) {
            const int r = (int)((frand() * 0.5f + 0.5f) * M) % M, n = (int)((frand() * 0.5f + 0.5f) * N) % N;
            double acc = 0;
            for (int k = 0; k < K; k++)
                acc += (double)__bfloat162float(hx[(size_t)r * K + k]) * __bfloat162float(hw[(size_t)n * K + k]);
            const double got = __bfloat162float(hout[(size_t)r * N + n]);
            err_cpu = fmax(err_cpu, isnan(got) ? 1e30 : fabs(got - acc));
        }
        err_lt /= refmax; err_cpu /= refmax;
        const bool ok = err_lt < 2e-2 && err_cpu < 2e-2;
        if (!ok) {
            failures++;
            diagnose(hout, href, M, N, refmax);
        }
        const float t = no_time ? 0.f : time_us(S, ws, nw, x, out, M, N, K);
        printf("  S=%d (%d CTAs): %s max err / max |ref|: %.2e vs cuBLASLt, %.2e vs float64; %.1f us = %.0f%% of "
               "the floor, %.2fx cuBLASLt's time\n", S, (N + BN - 1) / BN * S, ok ? "ok  " : "FAIL", err_lt, err_cpu,
               t, 100 * floor_us / t, t / t_lt);
    }
    for (int i = 0; i < nw; i++) cudaFree(ws[i]);
    cudaFree(x); cudaFree(out); cudaFree(ref);
    free(hx); free(hw); free(href); free(hout); free(ws);
}

/* No arguments: every shape below at splits 1, 2, 4, 8. `gemm_wgmma M N K S [S...]`: one shape at
 * the splits given (e.g. under ncu with GEMM_WGMMA_NO_TIME=1). */
int main(int argc, char **argv) {
    char err[512];
    BackendOptions o;
    memset(&o, 0, sizeof o);
    o.kv_dtype = DT_COUNT;
    o.enforce_eager = 1;
    setenv("PAGELLM_CUDA_GEMV", "0", 1); /* cuda_gemm plans: cuBLASLt only (no GEMV, no wgmma) */
    setenv("PAGELLM_CUDA_LT_LEND", "0", 1); /* each row count times its own candidates */
    Backend *be = backend_cuda_new(&o, err);
    if (!be) { fprintf(stderr, "%s\n", err); return 2; }
    C = cuda_ctx(be);
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("%s, %d SMs\n", prop.name, prop.multiProcessorCount);
    /* run14's times read as waves: a grid of more clusters than this runs in several */
    printf("resident clusters at most (cudaOccupancyMaxActiveClusters): S=1 %d, S=2 %d, S=4 %d, S=8 %d\n",
           cuda_wgmma_max_clusters(1), cuda_wgmma_max_clusters(2), cuda_wgmma_max_clusters(4),
           cuda_wgmma_max_clusters(8));
    const int s_all[] = {1, 2, 4, 8};
    no_time = getenv("GEMM_WGMMA_NO_TIME") && atoi(getenv("GEMM_WGMMA_NO_TIME"));
    if (argc >= 5) {
        int sp[8], ns = 0;
        for (int i = 4; i < argc && ns < 8; i++) sp[ns++] = atoi(argv[i]);
        run_shape(atoi(argv[1]), atoi(argv[2]), atoi(argv[3]), sp, ns);
        printf("%s: %d failures\n", failures ? "FAIL" : "PASS", failures);
        be->ops->destroy(be);
        return failures ? 1 : 0;
    }
    /* the Qwen3-8B decode shapes at 256, 128 and 64 rows: q / o, k / v, gate / up (each; the pair
     * is one N = 24576 matmul in gemm_pair.cu), down */
    const int shapes[][2] = {{4096, 4096}, {1024, 4096}, {12288, 4096}, {24576, 4096}, {4096, 12288}};
    const int rows[] = {256, 128, 64};
    for (int ri = 0; ri < 3; ri++)
        for (int si = 0; si < 5; si++) run_shape(rows[ri], shapes[si][0], shapes[si][1], s_all, 4);
    printf("%s: %d failures\n", failures ? "FAIL" : "PASS", failures);
    be->ops->destroy(be);
    return failures ? 1 : 0;
}
