/* gemm.cu: out[rows,N] = x[rows,K] @ w[N,K]^T through cuBLASLt, or, for a few rows, through a
 * weight-streaming GEMV kernel when that is faster.
 *
 * Each shape (rows, N, K, output dtype, pointer alignment) gets a plan: cuBLASLt layouts and the
 * heuristic's first algorithm. For rows <= GEMV_MAX_ROWS the first call of a shape times both
 * paths on the real operands (CUDA events, median of 5 after a warm-up) and keeps the faster;
 * PAGELLM_CUDA_GEMV=0/1 forces one. Decode is bound by reading the weights once per step, so the
 * GEMV streams W with 16-byte loads, many in flight, and keeps x in L1. */
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "util/timeutil.h"
}

/* ---------------- the small-batch kernel ---------------- */

/* Block: blockDim.x threads split K (8 elements each per step); GEMV_NB output rows n. */
template <int R, typename OutT>
__global__ void __launch_bounds__(256) gemv_kernel(GemvSegs sg, const bf16 *x, int K) {
    __shared__ float red[8][R * GEMV_NB];
    pdl_trigger();
    const int g0 = blockIdx.x * GEMV_NB; /* first output row over all segments */
    int seg = 0;
#pragma unroll
    for (int i = 1; i < GEMV_MAX_SEGS; i++)
        if (i < sg.nseg && g0 >= sg.start[i]) seg = i;
    const int N = sg.start[seg + 1] - sg.start[seg];
    const int n0 = g0 - sg.start[seg];
    const bf16 *w = sg.w[seg];
    OutT *out = (OutT *)sg.out[seg];
    int K8 = K / 8;
    float acc[R][GEMV_NB];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int j = 0; j < GEMV_NB; j++) acc[r][j] = 0.f;
    const uint4 *w4[GEMV_NB];
#pragma unroll
    for (int j = 0; j < GEMV_NB; j++) {
        int n = n0 + j < N ? n0 + j : N - 1; /* clamp: duplicate work, never stored */
        w4[j] = (const uint4 *)(w + (int64_t)n * K);
    }
    const uint4 *x4 = (const uint4 *)x;
    int c = threadIdx.x;
    const int bd = blockDim.x;
    /* two steps per iteration: 2 * GEMV_NB weight loads in flight per thread */
    uint4 wa[GEMV_NB], wb[GEMV_NB];
    auto load_w = [&](int cc) {
#pragma unroll
        for (int j = 0; j < GEMV_NB; j++) {
            wa[j] = __ldcs(w4[j] + cc);
            wb[j] = __ldcs(w4[j] + cc + bd);
        }
    };
    auto fma_x = [&](int cc) {
#pragma unroll
        for (int r = 0; r < R; r++) {
            uint4 xa = __ldg(x4 + (int64_t)r * K8 + cc), xb = __ldg(x4 + (int64_t)r * K8 + cc + bd);
#pragma unroll
            for (int j = 0; j < GEMV_NB; j++) acc[r][j] += gemv_dot8(wa[j], xa) + gemv_dot8(wb[j], xb);
        }
    };
    /* PDL: the first weights are requested before waiting for the kernel that writes x, so the
     * stream of weight bytes starts during that kernel's tail (weights are never written) */
    const bool first = c + bd < K8;
    if (first) load_w(c);
    pdl_wait();
    if (first) {
        fma_x(c);
        c += 2 * bd;
    }
    for (; c + bd < K8; c += 2 * bd) {
        load_w(c);
        fma_x(c);
    }
    for (; c < K8; c += blockDim.x) {
        uint4 wa[GEMV_NB];
#pragma unroll
        for (int j = 0; j < GEMV_NB; j++) wa[j] = __ldcs(w4[j] + c);
#pragma unroll
        for (int r = 0; r < R; r++) {
            uint4 xa = __ldg(x4 + (int64_t)r * K8 + c);
#pragma unroll
            for (int j = 0; j < GEMV_NB; j++) acc[r][j] += gemv_dot8(wa[j], xa);
        }
    }
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    gemv_warp_partials<R>(acc, red, warp, lane);
    __syncthreads();
    for (int i = threadIdx.x; i < R * GEMV_NB; i += blockDim.x) {
        int r = i / GEMV_NB, j = i % GEMV_NB;
        if (n0 + j >= N) continue;
        float s = 0.f;
        for (int q = 0; q < nw; q++) s += red[q][i];
        gemv_store(out + (int64_t)r * N + n0 + j, s);
    }
}


/* v2: one warp per WR output rows, lanes stride K with 16-byte loads, U steps in flight, no
 * shared memory and no block barrier. Several weight matrices that read the same x (q/k/v,
 * gate/up) can be one launch: segments of the output rows, each with its own W and out. */
#define GEMV2_U 4
#define GEMV2_WR 2
#define GEMV2_WARPS 8

template <int R, typename OutT>
__global__ void __launch_bounds__(GEMV2_WARPS * 32) gemv2_kernel(GemvSegs sg, const bf16 *x,
                                                                 int K) {
    pdl_trigger();
    pdl_wait();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n0 = (blockIdx.x * GEMV2_WARPS + warp) * GEMV2_WR;
    if (n0 >= sg.start[sg.nseg]) return;
    int seg = 0;
#pragma unroll
    for (int i = 1; i < GEMV_MAX_SEGS; i++)
        if (i < sg.nseg && n0 >= sg.start[i]) seg = i;
    const int N = sg.start[seg + 1] - sg.start[seg];
    const int nl = n0 - sg.start[seg]; /* first row inside the segment */
    const bf16 *w = sg.w[seg];
    OutT *out = (OutT *)sg.out[seg];
    const int K8 = K / 8;
    const uint4 *w4[GEMV2_WR];
#pragma unroll
    for (int j = 0; j < GEMV2_WR; j++) {
        int n = nl + j < N ? nl + j : N - 1;
        w4[j] = (const uint4 *)(w + (int64_t)n * K);
    }
    const uint4 *x4 = (const uint4 *)x;
    float acc[R][GEMV2_WR];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int j = 0; j < GEMV2_WR; j++) acc[r][j] = 0.f;
    for (int c0 = lane; c0 < K8; c0 += 32 * GEMV2_U) {
        uint4 wv[GEMV2_U][GEMV2_WR];
#pragma unroll
        for (int u = 0; u < GEMV2_U; u++)
#pragma unroll
            for (int j = 0; j < GEMV2_WR; j++)
                wv[u][j] = c0 + 32 * u < K8 ? __ldcs(w4[j] + c0 + 32 * u) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int u = 0; u < GEMV2_U; u++) {
            if (c0 + 32 * u >= K8) break;
#pragma unroll
            for (int r = 0; r < R; r++) {
                uint4 xv = __ldg(x4 + (int64_t)r * K8 + c0 + 32 * u);
#pragma unroll
                for (int j = 0; j < GEMV2_WR; j++) acc[r][j] += gemv_dot8(wv[u][j], xv);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int j = 0; j < GEMV2_WR; j++) {
            const float v = warp_allsum(acc[r][j]);
            if (lane == r * GEMV2_WR + j && nl + j < N) gemv_store(out + (int64_t)r * N + nl + j, v);
        }
}

template <typename OutT>
static void gemv2_launch(CudaCtx *c, const GemvSegs *sg, const bf16 *x, int rows, int K) {
    int Ntot = sg->start[sg->nseg];
    dim3 grid(cdiv(Ntot, GEMV2_WR * GEMV2_WARPS));
    switch (rows) {
#define CASE(R) case R: cuda_launch(c, gemv2_kernel<R, OutT>, grid, dim3(GEMV2_WARPS * 32), 0, *sg, x, K); break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    default: fprintf(stderr, "cuda gemv2: rows %d unsupported\n", rows); abort();
    }
    CUDA_LAUNCH_CHECK(c);
}

void cuda_gemv_multi(CudaCtx *c, const GemvSegs *sg, int out_f32, const bf16 *x, int rows, int K) {
    if (out_f32) gemv2_launch<float>(c, sg, x, rows, K);
    else gemv2_launch<bf16>(c, sg, x, rows, K);
}

static void gemv2_single(CudaCtx *c, void *out, int out_f32, const bf16 *x, const bf16 *w, int rows,
                         int N, int K) {
    GemvSegs sg;
    memset(&sg, 0, sizeof sg);
    sg.w[0] = w; sg.out[0] = out; sg.start[0] = 0; sg.start[1] = N; sg.nseg = 1;
    cuda_gemv_multi(c, &sg, out_f32, x, rows, K);
}

int cuda_gemv_supported(int rows, int N, int K, const void *x, const void *w, const void *out) {
    return rows >= 1 && rows <= GEMV_MAX_ROWS && K % 8 == 0 && N > 0 &&
           (((uintptr_t)x | (uintptr_t)w) & 15) == 0;
}

template <typename OutT>
static void gemv_launch(CudaCtx *c, const GemvSegs *sg, const bf16 *x, int rows, int K) {
    int K8 = K / 8;
    int threads = K8 >= 256 ? 256 : ((K8 + 31) / 32) * 32;
    dim3 grid(cdiv(sg->start[sg->nseg], GEMV_NB));
    switch (rows) {
#define CASE(R) case R: cuda_launch(c, gemv_kernel<R, OutT>, grid, dim3(threads), 0, *sg, x, K); break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    default: fprintf(stderr, "cuda gemv: rows %d unsupported\n", rows); abort();
    }
    CUDA_LAUNCH_CHECK(c);
}

void cuda_gemv1_multi(CudaCtx *c, const GemvSegs *sg, int out_f32, const bf16 *x, int rows, int K) {
    if (out_f32) gemv_launch<float>(c, sg, x, rows, K);
    else gemv_launch<bf16>(c, sg, x, rows, K);
}

void cuda_gemv(CudaCtx *c, void *out, int out_f32, const bf16 *x, const bf16 *w, int rows, int N,
               int K) {
    GemvSegs sg;
    memset(&sg, 0, sizeof sg);
    sg.w[0] = w; sg.out[0] = out; sg.start[1] = N; sg.nseg = 1;
    cuda_gemv1_multi(c, &sg, out_f32, x, rows, K);
}

/* ---------------- cuBLASLt plans ---------------- */

int cuda_ptr_align(const void *const *p, int n) {
    uintptr_t u = 0;
    for (int i = 0; i < n; i++) u |= (uintptr_t)p[i];
    int al = 256;
    while (al > 2 && (u & (uintptr_t)(al - 1))) al >>= 1;
    return al;
}

void cuda_lt_destroy(cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                     cublasLtMatrixLayout_t c) {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
}

static void plan_destroy(GemmPlan *p) {
    cuda_lt_destroy(p->desc, p->a, p->b, p->c);
    memset(p, 0, sizeof *p);
}

void cuda_gemm_free_plans(CudaCtx *c) {
    for (int i = 0; i < c->num_plans; i++) plan_destroy(&c->plans[i]);
    c->num_plans = 0;
}

static void lt_run(CudaCtx *c, GemmPlan *p, void *out, const bf16 *x, const bf16 *w) {
    float alpha = 1.f, beta = 0.f;
    CUBLAS_CHECK(cublasLtMatmul(c->lt, p->desc, &alpha, w, p->a, x, p->b, &beta, out, p->c, out,
                                p->c, &p->algo, c->lt_ws, c->lt_ws_bytes, c->stream));
}

static GemvSegs one_seg(void *out, const bf16 *w, int N) {
    GemvSegs sg;
    memset(&sg, 0, sizeof sg);
    sg.w[0] = w; sg.out[0] = out; sg.start[1] = N; sg.nseg = 1;
    return sg;
}

/* path: 0 cuBLASLt, 1 GEMV v1 (block splits K), 2 GEMV v2 (warp per rows), 4 GEMV v4 (v1 on
 * persistent blocks pipelined across row groups, gemv_pipe.cu) */
static void run_path(CudaCtx *c, GemmPlan *p, int path, void *out, const bf16 *x, const bf16 *w) {
    if (path == 1) cuda_gemv(c, out, p->out_f32, x, w, p->rows, p->N, p->K);
    else if (path == 2) gemv2_single(c, out, p->out_f32, x, w, p->rows, p->N, p->K);
    else if (path == 4) {
        GemvSegs sg = one_seg(out, w, p->N);
        cuda_gemv4_multi(c, &sg, p->out_f32, x, p->rows, p->K);
    } else lt_run(c, p, out, x, w);
}

float cuda_time_median_us(CudaCtx *c, void (*run)(void *arg), void *arg) {
    const double w0 = time_now_s();
    c->timing_depth++; /* a timed run may time its own choices (a fused QKV's GEMM plans) */
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    float ts[5];
    for (int it = -1; it < 5; it++) {   /* it = -1: warm-up, not kept */
        CUDA_CHECK(cudaEventRecord(e0, c->stream));
        run(arg);
        CUDA_CHECK(cudaEventRecord(e1, c->stream));
        CUDA_CHECK(cudaEventSynchronize(e1));
        float ms;
        CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        if (it >= 0) ts[it] = ms * 1000.f;
    }
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    for (int i = 1; i < 5; i++) /* insertion sort, median */
        for (int j = i; j > 0 && ts[j] < ts[j - 1]; j--) {
            float t = ts[j]; ts[j] = ts[j - 1]; ts[j - 1] = t;
        }
    if (--c->timing_depth == 0) c->choice_timing_s += time_now_s() - w0; /* outermost only */
    return ts[2];
}

typedef struct PathRun { CudaCtx *c; GemmPlan *p; int path; void *out; const bf16 *x, *w; } PathRun;
static void path_run(void *arg) {
    PathRun *r = (PathRun *)arg;
    run_path(r->c, r->p, r->path, r->out, r->x, r->w);
}
static float time_us(CudaCtx *c, GemmPlan *p, int path, void *out, const bf16 *x, const bf16 *w) {
    PathRun r = {c, p, path, out, x, w};
    return cuda_time_median_us(c, path_run, &r);
}

float cuda_lt_tune(const cublasLtMatmulHeuristicResult_t *res, int n, cublasLtMatmulAlgo_t *algo, int *choice,
                   float (*time_fn)(void *arg), void *arg) {
    float best = 1e30f;
    *choice = 0;
    for (int i = 0; i < n; i++) {
        if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
        *algo = res[i].algo;
        const float t = time_fn(arg);
        if (t < best) { best = t; *choice = i; }
    }
    *algo = res[*choice].algo;
    return best;
}

typedef struct PlanTiming { CudaCtx *c; GemmPlan *p; void *out; const bf16 *x, *w; } PlanTiming;
static float plan_time_lt(void *arg) {
    PlanTiming *t = (PlanTiming *)arg;
    return time_us(t->c, t->p, 0, t->out, t->x, t->w);
}

/* p's choices come from timing here: it may lend them (plan_lender); counted once per plan. */
static void plan_mark_measured(CudaCtx *c, GemmPlan *p) {
    if (p->origin != PLAN_TIMED) c->lt_timed++;
    p->origin = PLAN_TIMED;
}

/* p's cuBLASLt time on these operands: the tuned candidate's, or timed now once. The GEMV paths
 * are compared against it. */
static float plan_lt_us(CudaCtx *c, GemmPlan *p, void *out, const bf16 *x, const bf16 *w) {
    if (p->t_lt_us <= 0.f) p->t_lt_us = time_us(c, p, 0, out, x, w);
    return p->t_lt_us;
}

/* Whether a plan of `rows` rows must time its own choices because a decode graph's eager step
 * (the one before its capture) asks for it: graph sizes replay their choices every step, so the
 * sizes above PAGELLM_CUDA_GRAPH_LEND_MAX (default 128) and size 1 are timed exactly; the others
 * may lend (plan_lender). Why 128: run14's 256-row step ran 6% slower on choices lent from 128
 * rows (below), while run21's lending at <= 128 cut ready 4.34 -> 3.49 s (205 -> 117 plans timed) with
 * the batch-32 step and the 256 x 512/512 run unchanged. Size 1 is batch-1 decode, the latency
 * that bs1 targets measure; its GEMV choices are not risked on 2 rows' timing. */
static int graph_times_own(const CudaCtx *c, int rows) {
    return c->graph_step_eager && (rows == 1 || rows > c->graph_lend_max);
}

/* A measured plan whose choices a new plan can take instead of timing its own, outside the eager
 * run of a decode graph's step (graph sizes are timed exactly, once, before their capture): the
 * ever-new row counts of eager steps, such as the logits rows of a prefill step (one per
 * sequence that samples) and small prompts. Timing there stalls a live step, once per new
 * count: 8 cuBLASLt candidates x 6 runs of the 8B lm_head at 128 rows are ~25 ms, and at 1-8
 * rows the GEMV paths are timed as well. The lender: same N, K, output type and alignment,
 * measured, on the same side of GEMV_MAX_ROWS; the fewest rows in [rows, 2 x rows], else the most
 * in [rows / 2, rows) (its choices were made for a tile grid at most twice as tall or half as
 * tall; the second case covers counts above the largest graph size, e.g. prompts of 257-512
 * tokens, which would otherwise each be timed once per new count); its GEMV path must run this
 * call (gemv_ok / gemv4_ok) and cuBLASLt must accept its algorithm for the new layout. NULL:
 * none. */
static const GemmPlan *plan_lender(const CudaCtx *c, const GemmPlan *p, int gemv_ok, int gemv4_ok) {
    if (!c->lt_lend || graph_times_own(c, p->rows)) return NULL;
    const int small = p->rows <= GEMV_MAX_ROWS;
    const GemmPlan *best = NULL, *below = NULL;
    for (int i = 0; i < c->num_plans; i++) {
        const GemmPlan *q = &c->plans[i];
        if (q == p || q->origin != PLAN_TIMED || q->N != p->N || q->K != p->K || q->out_f32 != p->out_f32 ||
            q->algo_align != p->algo_align || (q->rows <= GEMV_MAX_ROWS) != small ||
            2 * q->rows < p->rows || q->rows > 2 * p->rows)
            continue;
        if (q->rows >= p->rows) {
            if (!best || q->rows < best->rows) best = q;
        } else if (!below || q->rows > below->rows) {
            below = q;
        }
    }
    if (!best) best = below;
    if (!best) return NULL;
    const int path = best->use_gemv;
    if (gemm_path_is_gemv(path) && (!gemv_ok || (path == 4 && !gemv4_ok))) return NULL;
    cublasLtMatmulHeuristicResult_t chk;
    memset(&chk, 0, sizeof chk);
    if (cublasLtMatmulAlgoCheck(c->lt, p->desc, p->a, p->b, p->c, p->c, &best->algo, &chk) !=
            CUBLAS_STATUS_SUCCESS || chk.workspaceSize > c->lt_ws_bytes)
        return NULL;
    return best;
}

static GemmPlan *plan_get(CudaCtx *c, void *out, int out_f32, const bf16 *x, const bf16 *w,
                          int rows, int N, int K) {
    const void *ptrs[3] = {x, w, out};
    int align = cuda_ptr_align(ptrs, 3);
    GemmPlan *p = NULL;
    for (int i = 0; i < c->num_plans && !p; i++) {
        GemmPlan *q = &c->plans[i];
        if (q->rows == rows && q->N == N && q->K == K && q->out_f32 == out_f32 && q->algo_align == align)
            p = q;
    }
    if (p) {
        /* A decode graph replays its plans' choices every step, so a graph size is timed exactly
         * even where an earlier eager step of the same row count (a prompt chunk of 256 tokens,
         * say) took a neighbour's choices: run14's bench step at 256 rows ran 15.5 ms on
         * choices lent from 128 rows, 14.6 ms on its own. */
        if (!(p->origin == PLAN_LENT && graph_times_own(c, rows))) return p;
        plan_destroy(p); /* re-made below, in its slot */
    } else if (c->num_plans < CUDA_MAX_PLANS) p = &c->plans[c->num_plans++];
    else { /* full: recycle round-robin */
        p = &c->plans[c->plan_victim];
        c->plan_victim = (c->plan_victim + 1) % CUDA_MAX_PLANS;
        plan_destroy(p);
    }
    memset(p, 0, sizeof *p);
    p->rows = rows; p->N = N; p->K = K; p->out_f32 = out_f32; p->algo_align = align;
    cudaDataType_t ot = out_f32 ? CUDA_R_32F : CUDA_R_16BF;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    /* column-major view: C[N, rows] = W^T[N, K] * X[K, rows] */
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, K, N, K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, K, rows, K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->c, ot, N, rows, N));
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = c->lt_ws_bytes;
    uint32_t al = (uint32_t)align;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof al));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al, sizeof al));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al, sizeof al));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al, sizeof al));
    cublasLtMatmulHeuristicResult_t res[LT_TUNE_ALGOS];
    int nres = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(c->lt, p->desc, p->a, p->b, p->c, p->c, pref,
                                                       LT_TUNE_ALGOS, res, &nres);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || nres == 0) {
        fprintf(stderr, "cuda gemm: no cuBLASLt algorithm for rows=%d N=%d K=%d (status %d)\n", rows,
                N, K, (int)st);
        abort();
    }
    p->algo = res[0].algo;
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(c->stream, &cap));
    /* The heuristic's first choice is often not the fastest for the skinny shapes of decode
     * (rows <= lt_tune_rows, 512 by default: graph batch sizes and small chunks, each tuned once):
     * time the candidates on the real operands and keep the fastest, unless a timed plan of a
     * nearby row count lends its choices (plan_lender: eager steps' ever-new counts). Larger
     * prefill row counts keep the heuristic's choice. */
    int gemv_ok = cuda_gemv_supported(rows, N, K, x, w, out);
    GemvSegs sg1 = one_seg(out, w, N);
    /* v4 joins the timing unless PAGELLM_CUDA_GEMV4=0 (measured on the H100 in session 4) */
    int gemv4_ok = gemv_ok && (c->gemv4 || c->gemv_mode == 4) && cuda_gemv4_supported(rows, K, x, &sg1);
    const int idle = cap == cudaStreamCaptureStatusNone;
    const int tune_lt = nres > 1 && c->lt_tune && rows <= c->lt_tune_rows && idle;
    const int time_paths = gemv_ok && c->gemv_mode < 0 && idle;
    const GemmPlan *lend = tune_lt || time_paths ? plan_lender(c, p, gemv_ok, gemv4_ok) : NULL;
    if (lend) {
        p->algo = lend->algo;
        p->lt_choice = lend->lt_choice;
        p->origin = PLAN_LENT;
        c->lt_lent++;
        if (getenv("PAGELLM_CUDA_GEMM_LOG"))
            fprintf(stderr, "gemm rows=%d N=%d K=%d: the choices of rows=%d (candidate %d, path %d), not timed\n",
                    rows, N, K, lend->rows, lend->lt_choice, lend->use_gemv);
    }
    if (!lend && tune_lt) {
        PlanTiming pt = {c, p, out, x, w};
        plan_mark_measured(c, p);
        const float best = cuda_lt_tune(res, nres, &p->algo, &p->lt_choice, plan_time_lt, &pt);
        p->t_lt_us = best; /* plan_lt_us: the GEMV comparison below uses it */
        if (getenv("PAGELLM_CUDA_GEMM_LOG")) {
            float first = 0.f;
            if (p->lt_choice) { /* the heuristic's own choice, for comparison */
                cublasLtMatmulAlgo_t keep = p->algo;
                p->algo = res[0].algo;
                first = plan_time_lt(&pt);
                p->algo = keep;
            }
            uint32_t tile = 0, stages = 0;
            size_t wr = 0;
            cublasLtMatmulAlgoConfigGetAttribute(&p->algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &wr);
            cublasLtMatmulAlgoConfigGetAttribute(&p->algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages, &wr);
            fprintf(stderr, "gemm rows=%d N=%d K=%d: cuBLASLt candidate %d of %d fastest (%.1f us, "
                    "%.0f TFLOP/s; heuristic's first %.1f us; tile id %u, stages id %u)\n",
                    rows, N, K, p->lt_choice, nres, best, 2e-6 * rows * (double)N * K / best,
                    p->lt_choice ? first : best, tile, stages);
        }
    }
    if (!gemv_ok || c->gemv_mode == 0) p->use_gemv = 0;
    else if (c->gemv_mode > 0) p->use_gemv = c->gemv_mode == 4 && !gemv4_ok ? 1 : c->gemv_mode;
    else if (!idle) p->use_gemv = rows <= 4 ? 2 : 0;
    else if (lend) p->use_gemv = lend->use_gemv;
    else {
        plan_mark_measured(c, p);
        p->t_gemv_us = time_us(c, p, 1, out, x, w);
        p->t_gemv2_us = time_us(c, p, 2, out, x, w);
        p->t_gemv4_us = gemv4_ok ? time_us(c, p, 4, out, x, w) : 1e30f;
        float best = plan_lt_us(c, p, out, x, w);
        p->use_gemv = 0;
        if (p->t_gemv_us < best) { best = p->t_gemv_us; p->use_gemv = 1; }
        if (p->t_gemv2_us < best) { best = p->t_gemv2_us; p->use_gemv = 2; }
        if (p->t_gemv4_us < best) { best = p->t_gemv4_us; p->use_gemv = 4; }
        if (getenv("PAGELLM_CUDA_GEMM_LOG"))
            fprintf(stderr, "gemm rows=%d N=%d K=%d %s: gemv1 %.1f us, gemv2 %.1f us, gemv4 %.1f us, cublasLt %.1f us -> %s\n",
                    rows, N, K, out_f32 ? "f32" : "bf16", p->t_gemv_us, p->t_gemv2_us,
                    gemv4_ok ? p->t_gemv4_us : -1.f, p->t_lt_us,
                    p->use_gemv == 4 ? "gemv4" : p->use_gemv == 2 ? "gemv2" : p->use_gemv == 1 ? "gemv1" : "cublasLt");
    }
    return p;
}

int cuda_gemm_path(CudaCtx *c, void *out, int out_f32, const bf16 *x, const bf16 *w, int rows,
                   int N, int K) {
    return plan_get(c, out, out_f32, x, w, rows, N, K)->use_gemv;
}

void cuda_gemm(CudaCtx *c, void *out, int out_f32, const bf16 *x, const bf16 *w, int rows, int N,
               int K) {
    if (rows <= 0) return;
    GemmPlan *p = plan_get(c, out, out_f32, x, w, rows, N, K);
    run_path(c, p, p->use_gemv, out, x, w);
}
