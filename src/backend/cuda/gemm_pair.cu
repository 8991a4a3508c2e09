/* gemm_pair.cu: two matmuls that read the same x with the same shape (gate and up, k and v) as
 * ONE cuBLASLt matmul of batch 2, for the row counts where cuBLASLt runs them (decode batches
 * above GEMV_MAX_ROWS, recorded into CUDA graphs).
 *
 * Why: at 256 rows the 8B shape's k and v projections (N = 1024) are 16 tiles of 128 x 128 each
 * on 132 SMs, and gate / up (N = 12,288) 192 tiles each: two launches, each with its own ramp and
 * its own partly filled last wave. As a batch of 2 they are one launch over both tile sets
 * (session 4's measurements: gate 50.2 + up 50.2 us, k 15.8 + v 15.8 us per layer).
 *
 * No weights or activations move: the batch's second matrix is found at a constant element
 * offset from the first (CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = w1 - w0 for the weights,
 * out1 - out0 for the outputs, 0 for x, which both read). The offsets differ per layer, so they
 * are set on the plan's layouts at each call (host-side attributes, read when the matmul is
 * enqueued or captured). Both offsets must be positive (cuBLASLt takes no negative strides):
 * the pair is ordered by weight address, and a pair whose outputs lie the other way round runs
 * as two matmuls.
 *
 * Each shape (rows, N, K, alignment) gets a plan the first time it is seen outside a capture:
 * the fastest of the heuristic's candidates for the batched layouts, timed against the two
 * plain matmuls on the real operands (medians of 5); the faster is kept. PAGELLM_CUDA_GEMM_PAIR:
 * 0 off, 1 timed (the default), 2 batched whenever possible (tests). */
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "util/log.h"
}

static void pair_plan_destroy(CudaPairPlan *p) {
    cuda_lt_destroy(p->desc, p->a, p->b, p->c);
    memset(p, 0, sizeof *p);
}

void cuda_gemm_pair_free(CudaCtx *c) {
    for (int i = 0; i < c->npair; i++) pair_plan_destroy(&c->pair_plans[i]);
    c->npair = 0;
}

static void set_offsets(CudaPairPlan *p, int64_t da, int64_t dc) {
    const int64_t zero = 0;
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p->a, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &da, sizeof da));
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p->b, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &zero, sizeof zero));
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p->c, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &dc, sizeof dc));
}

/* The batched layouts (column-major view as gemm.cu: C[N, rows] = W^T[N, K] * X[K, rows], batch
 * of 2) and the heuristic's candidates (up to LT_TUNE_ALGOS, into res); how many it offered. */
static int pair_plan_make(CudaCtx *c, CudaPairPlan *p, int64_t da, int64_t dc,
                          cublasLtMatmulHeuristicResult_t *res) {
    const int32_t two = 2;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, p->K, p->N, p->K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, p->K, p->rows, p->K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->c, CUDA_R_16BF, p->N, p->rows, p->N));
    cublasLtMatrixLayout_t ls[3] = {p->a, p->b, p->c};
    for (int i = 0; i < 3; i++)
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(ls[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &two, sizeof two));
    set_offsets(p, da, dc);
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = c->lt_ws_bytes;
    uint32_t al = (uint32_t)p->align;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof al));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al, sizeof al));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al, sizeof al));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al, sizeof al));
    int nres = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(c->lt, p->desc, p->a, p->b, p->c, p->c, pref,
                                                       LT_TUNE_ALGOS, res, &nres);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || nres == 0 || res[0].state != CUBLAS_STATUS_SUCCESS) return 0;
    p->algo = res[0].algo;
    return nres;
}

static void pair_run(CudaCtx *c, CudaPairPlan *p, void *out0, const bf16 *x, const bf16 *w0) {
    float alpha = 1.f, beta = 0.f;
    CUBLAS_CHECK(cublasLtMatmul(c->lt, p->desc, &alpha, w0, p->a, x, p->b, &beta, out0, p->c, out0, p->c,
                                &p->algo, c->lt_ws, c->lt_ws_bytes, c->stream));
}

typedef struct PairTiming {
    CudaCtx *c; CudaPairPlan *p; int batched;
    void *o0, *o1; const bf16 *x, *w0, *w1;
} PairTiming;
static void pair_timing_run(void *arg) {
    PairTiming *t = (PairTiming *)arg;
    if (t->batched) {
        pair_run(t->c, t->p, t->o0, t->x, t->w0);
    } else {
        cuda_gemm(t->c, t->o0, 0, t->x, t->w0, t->p->rows, t->p->N, t->p->K);
        cuda_gemm(t->c, t->o1, 0, t->x, t->w1, t->p->rows, t->p->N, t->p->K);
    }
}
static float pair_time_us(void *arg) {
    return cuda_time_median_us(((PairTiming *)arg)->c, pair_timing_run, arg);
}

int cuda_gemm_pair(CudaCtx *c, void *out0, void *out1, const bf16 *x, const bf16 *w0, const bf16 *w1, int rows,
                   int N, int K) {
    if (!c->gemm_pair || rows <= GEMV_MAX_ROWS) return 0;
    if (w1 < w0) { /* batch 0 = the lower weight address: both offsets positive */
        const bf16 *tw = w0; w0 = w1; w1 = tw;
        void *to = out0; out0 = out1; out1 = to;
    }
    const int64_t da = (int64_t)(w1 - w0), dc = (int64_t)((bf16 *)out1 - (bf16 *)out0);
    if (da <= 0 || dc <= 0) return 0;
    /* both plain matmuls would be cuBLASLt ones (GEMV-sized shapes have their own fusion) */
    if (cuda_gemm_path(c, out0, 0, x, w0, rows, N, K) != 0 || cuda_gemm_path(c, out1, 0, x, w1, rows, N, K) != 0)
        return 0;
    const void *ptrs[5] = {x, w0, w1, out0, out1};
    const int align = cuda_ptr_align(ptrs, 5);
    CudaPairPlan *p = NULL;
    for (int i = 0; i < c->npair; i++) {
        CudaPairPlan *q = &c->pair_plans[i];
        if (q->rows == rows && q->N == N && q->K == K && q->align == align) { p = q; break; }
    }
    if (!p) {
        cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
        CUDA_CHECK(cudaStreamIsCapturing(c->stream, &cap));
        if (cap != cudaStreamCaptureStatusNone || c->npair == CUDA_MAX_PAIR_PLANS) return 0;
        p = &c->pair_plans[c->npair++];
        memset(p, 0, sizeof *p);
        p->rows = rows; p->N = N; p->K = K; p->align = align;
        cublasLtMatmulHeuristicResult_t res[LT_TUNE_ALGOS];
        const int nres = pair_plan_make(c, p, da, dc, res);
        if (nres == 0) {
            p->use = 0; /* no batched algorithm: two matmuls (layouts kept for the lookup) */
            LOG_D("cuda gemm pair rows=%d N=%d K=%d: no cuBLASLt algorithm for the batch", rows, N, K);
        } else {
            /* the fastest batched configuration (the heuristic's first alone without
             * PAGELLM_CUDA_LT_TUNE), against the two matmuls */
            PairTiming t = {c, p, 1, out0, out1, x, w0, w1};
            p->t_pair_us = cuda_lt_tune(res, c->lt_tune ? nres : 1, &p->algo, &p->lt_choice, pair_time_us, &t);
            if (c->gemm_pair == 2) {
                p->use = 1;
            } else {
                t.batched = 0;
                p->t_sep_us = pair_time_us(&t);
                p->use = p->t_pair_us < p->t_sep_us;
            }
        }
        if (getenv("PAGELLM_CUDA_GEMM_LOG"))
            fprintf(stderr, "gemm pair rows=%d N=%d K=%d: batched %.1f us (candidate %d of %d), separate %.1f us -> %s\n",
                    rows, N, K, p->t_pair_us, p->lt_choice, nres, p->t_sep_us, p->use ? "batched" : "separate");
    }
    if (!p->use) return 0;
    set_offsets(p, da, dc);
    /* the algorithm was chosen for the first pair's offsets; this pair's must suit it too (run_log
     * runs at eager steps and captures only, never at replays: the check costs no step time) */
    cublasLtMatmulHeuristicResult_t chk;
    if (cublasLtMatmulAlgoCheck(c->lt, p->desc, p->a, p->b, p->c, p->c, &p->algo, &chk) != CUBLAS_STATUS_SUCCESS ||
        chk.workspaceSize > c->lt_ws_bytes)
        return 0;
    pair_run(c, p, out0, x, w0);
    c->pair_launches++;
    return 1;
}
