/* dev/cuda/gemm_wgmma.cu: the backend's Hopper GEMM for decode batches
 * (src/backend/cuda/gemm_wgmma.cu: TMA ring, warp-specialized m64n128k16 wgmma, every row of the
 * batch in one CTA, K split over a cluster of S CTAs and reduced through distributed shared
 * memory) beside cuBLASLt (the backend's other path: the fastest of the heuristic's 8
 * candidates), llm.c style: a validator and a timer, one program.
 *
 * Per shape (the Qwen3-8B decode matmuls at 256, 128 and 64 rows) and split S: every output
 * entry against cuBLASLt and 64 sampled entries against a float64 CPU reference (output
 * poisoned with NaN first), then the median time of 7 rounds of 10 launches over weight copies
 * that together exceed L2, against the shape's floor (weights at 3.0 TB/s, math at 780 TFLOP/s).
 *
 * Status (session 8): compiled, NOT yet run.
 *
 * Build and run on the GPU machine (repository root; `scripts/gpu_check.sh --dev` does this):
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Isrc dev/cuda/gemm_wgmma.cu \
 *     src/backend/cuda/gemm_wgmma.cu -lcublasLt -o /tmp/gemm_wgmma && /tmp/gemm_wgmma
 */
#include <cublasLt.h>
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
#define CKB(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) { \
    fprintf(stderr, "%s:%d: cuBLAS status %d\n", __FILE__, __LINE__, (int)s_); exit(1); } } while (0)

enum { BN = 128, BK = 64 }; /* the kernel's output tile width and K step */

/* ---------------- host ---------------- */

static void launch(int S, bf16 *out, const bf16 *x, const bf16 *w, int M, int N, int K) {
    cuda_wgmma(0, out, x, w, M, N, K, S);
}

/* cuBLASLt as the backend runs it (gemm.cu): column-major C[N, M] = W^T[N, K] x[K, M] */
struct Lt {
    cublasLtHandle_t h;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulHeuristicResult_t res[8];
    int nres, pick;
    void *ws;
    size_t ws_bytes;
};
static void lt_init(Lt *l, int M, int N, int K) {
    memset(l, 0, sizeof *l);
    CKB(cublasLtCreate(&l->h));
    l->ws_bytes = 64u << 20;
    CK(cudaMalloc(&l->ws, l->ws_bytes));
    CKB(cublasLtMatmulDescCreate(&l->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CKB(cublasLtMatmulDescSetAttribute(l->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CKB(cublasLtMatmulDescSetAttribute(l->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    CKB(cublasLtMatrixLayoutCreate(&l->a, CUDA_R_16BF, K, N, K));
    CKB(cublasLtMatrixLayoutCreate(&l->b, CUDA_R_16BF, K, M, K));
    CKB(cublasLtMatrixLayoutCreate(&l->c, CUDA_R_16BF, N, M, N));
    cublasLtMatmulPreference_t pref;
    CKB(cublasLtMatmulPreferenceCreate(&pref));
    CKB(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &l->ws_bytes, sizeof l->ws_bytes));
    CKB(cublasLtMatmulAlgoGetHeuristic(l->h, l->desc, l->a, l->b, l->c, l->c, pref, 8, l->res, &l->nres));
    cublasLtMatmulPreferenceDestroy(pref);
}
static void lt_run(Lt *l, bf16 *out, const bf16 *x, const bf16 *w) {
    float one = 1.f, zero = 0.f;
    CKB(cublasLtMatmul(l->h, l->desc, &one, w, l->a, x, l->b, &zero, out, l->c, out, l->c,
                       &l->res[l->pick].algo, l->ws, l->ws_bytes, 0));
}
static void lt_free(Lt *l) {
    cublasLtMatmulDescDestroy(l->desc);
    cublasLtMatrixLayoutDestroy(l->a); cublasLtMatrixLayoutDestroy(l->b); cublasLtMatrixLayoutDestroy(l->c);
    cudaFree(l->ws);
    cublasLtDestroy(l->h);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1ull << 24))) * 2.f - 1.f;
}

/* Median time (us) of `reps` rounds, each `per` back-to-back launches over rotating weight
 * copies (together larger than L2), divided by `per`. kind: -1 cuBLASLt, else the split S. */
static float time_us(int kind, Lt *l, bf16 **ws, int nw, const bf16 *x, bf16 *out, int M, int N, int K) {
    enum { reps = 7, per = 10 };
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    float ts[reps];
    for (int r = -1; r < reps; r++) {
        CK(cudaEventRecord(e0));
        for (int i = 0; i < per; i++) {
            const int j = (r + 1) * per + i;
            if (kind < 0) lt_run(l, out, x, ws[j % nw]);
            else launch(kind, out, x, ws[j % nw], M, N, K);
        }
        CK(cudaEventRecord(e1));
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

    /* cuBLASLt: the fastest of the heuristic's candidates, as the backend picks */
    Lt lt;
    lt_init(&lt, M, N, K);
    float t_lt = 1e30f;
    for (int i = 0, best = 0; i < lt.nres; i++) {
        lt.pick = i;
        const float t = time_us(-1, &lt, ws, nw, x, ref, M, N, K);
        if (t < t_lt) { t_lt = t; best = i; }
        if (i == lt.nres - 1) lt.pick = best;
    }
    lt_run(&lt, ref, x, ws[0]);
    CK(cudaDeviceSynchronize());
    bf16 *href = (bf16 *)malloc((size_t)M * N * 2), *hout = (bf16 *)malloc((size_t)M * N * 2);
    CK(cudaMemcpy(href, ref, (size_t)M * N * 2, cudaMemcpyDeviceToHost));
    double refmax = 0;
    for (size_t i = 0; i < (size_t)M * N; i++) refmax = fmax(refmax, fabs((double)__bfloat162float(href[i])));

    const double floor_us = fmax(wbytes / 3.0e12, 2.0 * M * N * (double)K / 780e12) * 1e6;
    printf("M=%d N=%d K=%d: floor %.1f us (weights at 3.0 TB/s, math at 780 TFLOP/s); cuBLASLt %.1f us "
           "(candidate %d of %d)\n", M, N, K, floor_us, t_lt, lt.pick, lt.nres);
    for (int si = 0; si < nsplits; si++) {
        const int S = splits[si];
        if ((K / BK) < S) continue;
        CK(cudaMemset(out, 0xff, (size_t)M * N * 2)); /* poison: NaN bf16 */
        launch(S, out, x, ws[0], M, N, K);
        cudaError_t e = cudaDeviceSynchronize();
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
        if (!ok) failures++;
        const float t = time_us(S, &lt, ws, nw, x, out, M, N, K);
        printf("  S=%d (%d CTAs): %s max err / max |ref|: %.2e vs cuBLASLt, %.2e vs float64; %.1f us = %.0f%% of "
               "the floor, %.2fx cuBLASLt's time\n", S, (N + BN - 1) / BN * S, ok ? "ok  " : "FAIL", err_lt, err_cpu,
               t, 100 * floor_us / t, t / t_lt);
    }
    lt_free(&lt);
    for (int i = 0; i < nw; i++) cudaFree(ws[i]);
    cudaFree(x); cudaFree(out); cudaFree(ref);
    free(hx); free(hw); free(href); free(hout); free(ws);
}

int main(void) {
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("%s, %d SMs\n", prop.name, prop.multiProcessorCount);
    const int s_all[] = {1, 2, 4, 8};
    /* the Qwen3-8B decode shapes at 256, 128 and 64 rows: q / o, k / v, gate / up (each; the pair
     * is one N = 24576 matmul in gemm_pair.cu), down */
    const int shapes[][2] = {{4096, 4096}, {1024, 4096}, {12288, 4096}, {24576, 4096}, {4096, 12288}};
    const int rows[] = {256, 128, 64};
    for (int ri = 0; ri < 3; ri++)
        for (int si = 0; si < 5; si++) run_shape(rows[ri], shapes[si][0], shapes[si][1], s_all, 4);
    printf("%s: %d failures\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
