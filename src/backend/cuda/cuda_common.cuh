/* cuda_common.cuh: the CUDA backend's private context and the launchers of its ops.
 *
 * One CudaCtx per Backend (b->ctx). It owns one stream, the cuBLASLt handle and workspace, the
 * device copy of the current step's batch metadata (uploaded once per step by set_batch, so
 * CUDA graphs replay on the same device buffers), and scratch for split-KV attention and fp32
 * logits. Every op enqueues on ctx->stream; only to_host/logits block. One thread (the engine
 * thread) calls into a context. Each op lives in its own .cu file; this header declares their
 * launchers, cuda_launch (programmatic dependent launch) and the few device helpers more than one
 * op file shares (KV element access, PDL, GEMV arithmetic, the split-KV epilogue, and the
 * RMSNorm and silu arithmetic that GEMV v4's fused prologues reproduce bit for bit). Activations
 * and weights are bf16 (weights of other dtypes are converted at load). */
#ifndef PAGELLM_BACKEND_CUDA_COMMON_CUH
#define PAGELLM_BACKEND_CUDA_COMMON_CUH
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "backend/backend.h"
#include "model/config.h"
#include "model/weights.h"
}

/* Broken invariants only (a CUDA call that must not fail): print file/line and abort. */
#define CUDA_CHECK(call)                                                                   \
    do {                                                                                   \
        cudaError_t e_ = (call);                                                           \
        if (e_ != cudaSuccess) {                                                           \
            fprintf(stderr, "%s:%d: CUDA error %s: %s\n", __FILE__, __LINE__, #call,       \
                    cudaGetErrorString(e_));                                               \
            abort();                                                                       \
        }                                                                                  \
    } while (0)
#define CUBLAS_CHECK(call)                                                                 \
    do {                                                                                   \
        cublasStatus_t s_ = (call);                                                        \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                 \
            fprintf(stderr, "%s:%d: cuBLAS error %d: %s\n", __FILE__, __LINE__, (int)s_,   \
                    #call);                                                                \
            abort();                                                                       \
        }                                                                                  \
    } while (0)
/* After each launch: catches bad launch configurations at once (PAGELLM_CUDA_SYNC_CHECK=1
 * additionally synchronizes, to pin an asynchronous fault on the op that caused it). */
#define CUDA_LAUNCH_CHECK(ctx) cuda_launch_check((ctx), __FILE__, __LINE__)

typedef __nv_bfloat16 bf16;
typedef __nv_fp8_e4m3 fp8;

/* KV cache element access, bf16 or fp8 e4m3 (scale 1): 8 consecutive elements <-> 8 bf16 packed
 * in a uint4, so the attention kernels are written once for both cache types. */
__device__ __forceinline__ uint4 kv_get8(const bf16 *p) { return *(const uint4 *)p; }
__device__ __forceinline__ uint4 kv_get8(const fp8 *p) {
    uint2 raw = *(const uint2 *)p;
    const __nv_fp8x2_storage_t *f2 = (const __nv_fp8x2_storage_t *)&raw;
    uint4 out;
    uint32_t *o = (uint32_t *)&out;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(f2[i], __NV_E4M3);
        float2 f = __half22float2(*(const __half2 *)&h);
        __nv_bfloat162 b = __floats2bfloat162_rn(f.x, f.y);
        o[i] = *(const uint32_t *)&b;
    }
    return out;
}
__device__ __forceinline__ void kv_put8(bf16 *p, uint4 v) { *(uint4 *)p = v; }
__device__ __forceinline__ void kv_put8(fp8 *p, uint4 v) {
    const __nv_bfloat162 *b = (const __nv_bfloat162 *)&v;
    uint2 raw;
    __nv_fp8x2_storage_t *f2 = (__nv_fp8x2_storage_t *)&raw;
#pragma unroll
    for (int i = 0; i < 4; i++) f2[i] = __nv_cvt_float2_to_fp8x2(__bfloat1622float2(b[i]), __NV_SATFINITE, __NV_E4M3);
    *(uint2 *)p = raw;
}
__device__ __forceinline__ void kv_put1(bf16 *p, bf16 v) { *p = v; }
__device__ __forceinline__ void kv_put1(fp8 *p, bf16 v) { *p = fp8(__bfloat162float(v)); }

/* Programmatic dependent launch (Hopper): a kernel launched by cuda_launch with c->pdl set may
 * start while the kernel before it in the stream is still running. Contract for every kernel
 * launched that way: call pdl_wait() before its first read of anything an earlier kernel wrote
 * and before its first global write (pdl_wait returns once the earlier grids have completed and
 * their memory is visible); it may read constants (weights) before that, which is the point: the
 * GEMVs start streaming their weights during the previous kernel's tail. pdl_trigger() lets the
 * next kernel launch now (every block of this grid must have called it or exited). Both are
 * no-ops for a kernel launched without the attribute and below sm_90. */
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* The batch metadata of one step, on the device (pointers into one int32 buffer). */
typedef struct DevBatch {
    int32_t *token_ids;    /* [T] */
    int32_t *positions;    /* [T] */
    int32_t *slot_mapping; /* [T] */
    int32_t *token_src_row;/* [T] -1, or the row of d_prev_tokens holding the token (async
                              scheduling: the previous launched step's sample) */
    int32_t *query_start;  /* [S+1] */
    int32_t *seq_lens;     /* [S] */
    int32_t *block_tables; /* [S, max_blocks_per_seq] */
    int32_t *logits_rows;  /* [R] */
    int32_t *prefill_seqs; /* [P]: sequences with a chunk of more than one token */
    int32_t *decode_seqs;  /* [Sd]: sequences with a one-token chunk */
    int32_t *mbps;         /* [1]: the block-table row stride, read by the decode kernel on the
                              device so that a decode graph does not bake it in */
} DevBatch;

/* One GEMM shape's cuBLASLt plan (layouts + chosen algorithm) and the faster path for it. */
typedef struct GemmPlan {
    int rows, N, K, out_f32;
    int algo_align;        /* pointer alignment (bytes) the algorithm was chosen for */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    int use_gemv;          /* fastest path measured: 0 cuBLASLt, 1 GEMV v1, 2 GEMV v2, 4 GEMV v4 */
    int lt_choice;         /* index of the heuristic candidate kept (0 = the heuristic's first) */
    float t_gemv_us, t_gemv2_us, t_gemv4_us, t_lt_us;
    int origin;            /* where its choices came from: PLAN_HEURISTIC (untimed: large prefill
                            * counts, captures), PLAN_TIMED (timed here; it may lend them, gemm.cu)
                            * or PLAN_LENT (a timed neighbour's, plan_lender) */
} GemmPlan;

enum { PLAN_HEURISTIC = 0, PLAN_TIMED = 1, PLAN_LENT = 2 }; /* GemmPlan.origin */
#define CUDA_MAX_PLANS 512
#define LT_TUNE_ALGOS 8      /* cuBLASLt heuristic candidates timed per shape (gemm.cu, gemm_pair.cu); asking
                              * for 32 or 64 got no more than 8 at the 8B decode shapes (run12-algos) */

/* gemm_pair.cu: a pair of same-shape matmuls reading one x as a cuBLASLt batch of 2 (layouts
 * with BATCH_COUNT 2; the batch offsets are set per call). */
typedef struct CudaPairPlan {
    int rows, N, K, align;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    int use;               /* 1: batched (measured faster, or forced), 0: two matmuls */
    int lt_choice;         /* heuristic candidate kept (the fastest batched one) */
    float t_pair_us, t_sep_us;
} CudaPairPlan;

#define CUDA_MAX_PAIR_PLANS 64

/* CUDA graphs for decode steps. Between set_batch and logits, a decode-only step's ops are
 * recorded (OpRec, arguments by value) instead of launched; at logits the log is compared
 * with the one captured for this batch size: equal -> replay the graph; new -> run eagerly
 * once (plans, autotune, scratch), capture on the next equal step. Any other call while
 * recording flushes the log eagerly. With capture sizes (capture_graphs, vLLM's buckets) the
 * step is first padded to the smallest capture size >= T (set_batch), and the graphs exist
 * from start-up; see graph.cu. */
typedef enum {
    OP_EMBED = 1, OP_RMSNORM, OP_MATMUL, OP_QKROPE, OP_KVSTORE, OP_ATTN, OP_SILU, OP_GATHER,
    OP_LOGITS,
    OP_ALLREDUCE   /* tensor parallelism: p[0] buf, p[1] ncclComm_t, i[0] count, i[1] ncclDataType_t */
} OpKind;

typedef struct OpRec {
    int kind;
    int i[6];
    const void *p[6];
    float f;
    double rd[5]; /* rope: theta, factor, low, high, (unused) */
    int ri[3];    /* rope: head_dim, scaling, original_max_position_embeddings */
} OpRec;

#define CUDA_GRAPH_MAX_BS 512   /* largest graph batch (vLLM's largest default capture size) */
#define CUDA_GRAPH_MAX_SIZES 64 /* capture sizes kept (vLLM's default list has at most 51) */

typedef struct CudaGraph {
    int T, S, R, block_size, num_decode, decode_splits;
    int tuned;             /* `pro` below timed for this size (PAGELLM_CUDA_STEP_TUNE) */
    int pro;               /* fused prologues on (1) or off (0) in this size's steps: the faster
                              measured, used by every later step of this size */
    unsigned gen;          /* CudaCtx.gen at capture: scratch buffers it baked in */
    int nops;
    OpRec *ops;
    cudaGraphExec_t exec;  /* NULL until captured */
    int replays;
} CudaGraph;

typedef struct CudaCtx {
    /* the weight arena (backend_cuda.cu cu_weight_reserve): [warena, warena + warena_cap), the
     * next free byte at warena_off, warena_live weights in it; NULL: none */
    char *warena;
    size_t warena_cap, warena_off;
    int warena_live;
    int device;
    char device_name[256];     /* cudaDeviceProp.name (backend.h device_name) */
    int num_sms;
    int cc_major;              /* cudaDeviceProp.major (9: Hopper, where wgmma and TMA exist) */
    int sm90a;                 /* the build's code for this device has sm_90a features (probed at
                                  init where prefill attention 7 / 8 is asked for) */
    size_t smem_optin;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *lt_ws;
    size_t lt_ws_bytes;
    int enforce_eager;
    int kv_fp8;            /* the KV cache holds fp8 e4m3 (--kv-cache-dtype fp8), else bf16 */
    int decode_attn;       /* PAGELLM_CUDA_DECODE_ATTN: 1 v1 (CUDA cores), 3 (default) v3 on the
                              tensor cores where it applies (head_dim 64/128), else v1 */
    int sync_check;        /* PAGELLM_CUDA_SYNC_CHECK: synchronize after every launch */
    int gemv_mode;         /* PAGELLM_CUDA_GEMV: -1 auto (time all), 0 cuBLASLt, 1 v1, 2 v2, 4 v4 */
    int fuse;              /* PAGELLM_CUDA_FUSE (default 1): fuse same-input GEMVs in graphs */
    int fuse_pro;          /* PAGELLM_CUDA_FUSE_PRO (default 1): fold silu_mul and rmsnorm (its
                              residual add too) into neighbouring GEMV v4 launches in graphs
                              (graph.cu, where GEMV v4 may run) */
    long fused_pro;        /* launches run_log issued with a fused prologue (tests check > 0) */
    int gemm_pair;         /* PAGELLM_CUDA_GEMM_PAIR (default 1): gate/up and k/v as one batched
                              cuBLASLt matmul in graphs where timed faster (2: always; 0: never) */
    long pair_launches;    /* batched pairs run_log issued (tests check > 0) */
    int gemv4;             /* PAGELLM_CUDA_GEMV4 (default 1): GEMV v4 joins the autotuner's candidates */
    int lt_tune;           /* PAGELLM_CUDA_LT_TUNE (default 1): time cuBLASLt candidates per shape */
    int lt_tune_rows;      /* PAGELLM_CUDA_LT_TUNE_ROWS (default 512): the most rows a tuned shape has */
    int lt_lend;           /* PAGELLM_CUDA_LT_LEND (default 1): a new row count takes a measured plan's
                            * choices for at most twice its rows instead of timing (gemm.cu) */
    long lt_timed, lt_lent; /* plans whose choices were timed / taken from a measured plan (tests) */
    int graph_lend_max;    /* PAGELLM_CUDA_GRAPH_LEND_MAX (default 128; 0: every size timed): decode
                            * graph sizes 2..this may take a timed neighbour's GEMM choices in
                            * their eager step instead of timing their own (start-up time) */
    int graph_step_eager;  /* 1 while a decode graph's step runs eagerly before its capture */
    int pdl;               /* PAGELLM_CUDA_PDL (default 1 on sm_90+): programmatic dependent launch */
    int prefill_attn;      /* PAGELLM_CUDA_PREFILL_ATTN: 1 the original prefill attention kernel;
                              prefill_attn_v2 with 8 warps of 16 rows (2, default), of 32 rows (5),
                              or of 16 rows with pipelined key halves (6); 7 prefill_attn_wgmma
                              where it applies, 8 the same with its warpgroups' ping-pong */

    /* current step (host copies of the scalars). In a padded graph step T, S, R are the padded
     * counts every kernel runs on; T_real, R_real what the model asked for. */
    int T, S, R;
    int T_real, R_real;
    int max_blocks_per_seq, block_size, max_query_len, max_seq_len;
    int num_prefill;       /* P */
    int num_decode;        /* Sd */
    int decode_splits;     /* split-KV factor for the decode kernel */
    DevBatch dev;
    int32_t *d_meta, *h_meta; /* device buffer and pinned staging */
    size_t meta_cap;          /* int32 elements */
    cudaEvent_t meta_done;

    /* scratch */
    float *attn_part;      /* split-KV partials */
    size_t attn_part_cap;  /* floats */
    int *attn_cnt;         /* [seqs, Hkv] blocks of a (seq, kv head) done, for decode v3's in-kernel
                              split merge; all 0 between launches */
    size_t attn_cnt_cap;   /* ints */
    int decode_combine_fused; /* PAGELLM_CUDA_DECODE_COMBINE (default 0): 1 = v3 merges its splits itself */
    /* PAGELLM_CUDA_HOST_TIMES=1: host seconds per phase of the steps that replay a graph
     * (reported at destroy; captures and eager runs are left out): set_batch, recording the ops
     * (set_batch's end to logits), finishing the step (log compare + graph launch); per sampler
     * call, the sampler before its wait and the wait itself (async launch: before its event wait
     * in collect, and that wait) */
    int host_times;
    double ht_set_batch, ht_record, ht_finish, ht_sample, ht_wait, ht_mark, ht_sb_last;
    long ht_steps, ht_samples;
    int decode_splits_min;    /* PAGELLM_CUDA_DECODE_SPLITS_MIN (A/B): at least this many KV splits
                                 per decode sequence (default 1: cuda_decode_splits' own choice) */
    int decode_late_trigger;  /* PAGELLM_CUDA_DECODE_TRIGGER: 1 = decode v3 lets the next kernel launch
                                 only at its end, 0 = at its start (session-4 A/B) */
    int combine_pdl;       /* PAGELLM_CUDA_COMBINE_PDL: decode_combine_kernel launched with PDL */
    /* PAGELLM_CUDA_STEP_TUNE (default 1; 0 off): at the first eager decode step of each graph
     * size <= GEMV_PRO_MAX_ROWS the step is captured and its replays timed with the prologue
     * fusions on and off, and that size keeps the faster
     * (graph.cu); step_tunes counts the sizes tuned (tests) */
    int step_tune;
    long step_tunes;
    double step_tune_s;       /* wall seconds in step_tune (its captures and timed replays) */
    double choice_timing_s;   /* wall seconds in cuda_time_median_us: every timed choice (GEMM
                                 plans and paths, pairs, fusions, the step tuner's replays); with
                                 step_tune_s, the start-up breakdown cuda_capture_graphs logs;
                                 timed runs nest (a fused QKV's timing times GEMM plans), so only
                                 the outermost counts (timing_depth) */
    int timing_depth;         /* cuda_time_median_us calls in progress */
    int run_pro;           /* the fused prologues of the run_log in progress (its graph's pro,
                              else fuse_pro); read only by run_log's rewrites */
    int fuse_rope_store;   /* PAGELLM_CUDA_FUSE_KV (default 1): recorded qk_norm_rope + kv_store run
                              as one kernel (graph.cu) */
    int sample_plain;      /* PAGELLM_CUDA_SAMPLE_PLAIN (default 1 since run15; 0 off): plain
                              categorical rows take sample.cu's one-pass path */
    int fuse_qkv;          /* PAGELLM_CUDA_FUSE_QKV (0 off; 1, the default since run15, where timed faster;
                              2 always): a layer's q, k, v matmuls as one matmul over their adjacent
                              weights into qkv_buf, read by the fused rope + KV store (graph.cu) */
    struct { int rows, Nq, Nkv, K, use; } qkv_plans[64];
    int nqkv;
    bf16 *qkv_buf;         /* [rows, Nq + 2 Nkv] of the fused QKV matmul */
    size_t qkv_cap;        /* elements */
    long qkv_launches;     /* fused QKV matmuls run_log issued (tests check > 0) */
    long wgmma_prefill_launches; /* prefill_attn_wgmma launches (tests check > 0 on sm_90) */
    float *logits_f32;     /* [R, V] */
    size_t logits_cap;     /* floats */
    int logits_R, logits_V;/* shape of the last logits call (what `sample` reads) */
    /* device sampler (sample.cu): packed rows/edits/masks in, SampleOut per row back, and the
     * processed rows */
    void *d_samp_in; size_t samp_in_cap;                 /* bytes (every call's input) */
    void *h_samp_in; size_t samp_h_in_cap;              /* bytes (cuda_sample's staging) */
    void *d_samp_out, *h_samp_out; size_t samp_out_cap; /* bytes */
    /* async scheduling (sample_async.cu): two slots of launched, uncollected samplings, each
     * with its own staging, output and copy of the SampleRows (for the logprobs on collect);
     * and the fixed buffer every launched sampler also writes its token ids to, which the next
     * step's embed reads (BatchMeta.token_src_row; CUDA graphs bake its address) */
    struct CudaSampSlot {
        void *h_in; size_t h_in_cap;
        void *d_out, *h_out; size_t out_cap;
        struct SampleRow *rows; int rows_cap;
        int R;
        cudaEvent_t done;      /* the slot's copy-back is complete */
    } samp_slot[2];
    int samp_head, samp_inflight;
    int32_t *d_prev_tokens; int prev_tokens_cap;        /* [cap] */
    float *samp_work; size_t samp_work_cap;             /* floats */
    float *rope_inv_freq;  /* [hd/2], for rope_key */
    float2 *rope_tab;      /* [T, hd/2] (cos, sin) of this step's positions, bf16-rounded */
    size_t rope_tab_cap;   /* float2 elements */
    int rope_tab_valid;    /* computed for this step (set_batch clears it) */
    int rope_tab_hd;       /* head_dim it was computed for */
    char rope_key[128];

    /* graphs */
    int recording;         /* this step's ops go to the log */
    int capturing;         /* stream capture in progress (no synchronizing calls) */
    OpRec *log;
    int nlog, cap_log;
    unsigned gen;          /* bumped when a scratch buffer that kernels use is reallocated */
    CudaGraph graphs[CUDA_GRAPH_MAX_BS + 1];
    double graph_capture_s;/* total time spent capturing + instantiating */
    int graph_captures;
    long graph_replays;
    int graph_sizes[CUDA_GRAPH_MAX_SIZES]; /* ascending capture sizes; none = lazy, exact T */
    int num_graph_sizes;
    int attn_hq, attn_hkv, attn_hd; /* shape of the last attention call (scratch reservation) */

    /* PAGELLM_CUDA_PROFILE=1: eager ops of steps with T >= 512 are timed one by one (events,
     * synchronizing) and summarised on stderr at destroy: where prefill time goes. */
    int profile;
    cudaEvent_t prof_e0, prof_e1;
    double prof_ms[16];
    long prof_n[16];
    struct { int N, K; double ms, flops; long n; } prof_mm[16];
    double prof_attn_pairs; /* the step's causal (query, key) pairs: sum of position + 1 over its tokens */
    double prof_attn_flops; /* 4 x pairs x Hq x head_dim, summed over the profiled attention calls */
    int prof_nmm;

    /* fused same-input GEMV groups: measured fused vs separate, the faster kept */
    /* use: 0 separate launches, 1 fused GEMV v1, 4 fused GEMV v4 (fastest measured) */
    struct { int rows, K, n, N[3], use; float t_fused, t_fused4, t_sep; } fuse_plans[64];
    int nfuse;

    CudaPairPlan pair_plans[CUDA_MAX_PAIR_PLANS];
    int npair;

    GemmPlan plans[CUDA_MAX_PLANS];
    int num_plans;
    int plan_victim;       /* next plan to recycle when the table is full */
} CudaCtx;

static inline CudaCtx *cuda_ctx(Backend *b) { return (CudaCtx *)b->ctx; }

/* Replaces the scratch buffer *p (capacity *cap elements) with one of `need` elements, contents
 * not kept: waits for the stream (kernels may still read the old one), frees, allocates, and
 * bumps c->gen, because graphs baked the old address. Eager only: the caller grows before any
 * capture (the eager step that precedes every capture, or a reserve call at start-up). */
template <typename T>
static inline void cuda_scratch_grow(CudaCtx *c, T **p, size_t *cap, size_t need) {
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    if (*p) CUDA_CHECK(cudaFree(*p));
    CUDA_CHECK(cudaMalloc(p, need * sizeof(T)));
    *cap = need;
    c->gen++;
}

/* An op's row count in the current step: in a padded graph step, the model's T (or R) rows
 * become the padded T (R), so the graph of size B runs every kernel on B rows. An op added
 * later whose size scales with the step's rows (e.g. an all-reduce of T x D) must widen the
 * same way. Identity in every other step. */
static inline int cuda_pad_rows(const CudaCtx *c, int rows) {
    return rows == c->T_real ? c->T : rows;
}
static inline int cuda_pad_logits_rows(const CudaCtx *c, int R) {
    return R == c->R_real ? c->R : R;
}

static inline void cuda_launch_check(CudaCtx *c, const char *file, int line) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && c->sync_check && !c->capturing) e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) {
        fprintf(stderr, "%s:%d: CUDA kernel launch failed: %s\n", file, line, cudaGetErrorString(e));
        abort();
    }
}

/* Launch kern<<<grid, block, smem, c->stream>>>(args...), with programmatic dependent launch
 * when c->pdl is set (the kernel must keep pdl_wait's contract above). */
template <typename... KArgs, typename... Args>
static inline void cuda_launch(CudaCtx *c, void (*kern)(KArgs...), dim3 grid, dim3 block,
                               size_t smem, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = c->pdl ? 1 : 0;
    cudaError_t e = cudaLaunchKernelEx(&cfg, kern, ((KArgs)args)...);
    if (e != cudaSuccess) {
        fprintf(stderr, "cuda_launch: %s\n", cudaGetErrorString(e));
        abort();
    }
}

static inline unsigned cdiv(long long a, long long b) { return (unsigned)((a + b - 1) / b); }

/* Weight tensors on the device are bf16 (converted at load when the file holds f32/f16). */
static inline const bf16 *tensor_bf16(const Tensor *t) { return (const bf16 *)t->data; }

/* --- launchers (one .cu each) --- */
void cuda_dummy_fill(CudaCtx *c, bf16 *dst, int64_t n, uint64_t seed, uint64_t tensor_id,
                     float center, float half_width);
void cuda_convert_to_bf16(CudaCtx *c, bf16 *dst, const void *src_dev, DType src, int64_t n);
void cuda_embed(CudaCtx *c, bf16 *out, const bf16 *emb, int D);
void cuda_gather_rows(CudaCtx *c, bf16 *out, const bf16 *x, int D);
void cuda_add_bias(CudaCtx *c, bf16 *out, const bf16 *bias, int rows, int N);
void cuda_rmsnorm(CudaCtx *c, bf16 *out, bf16 *residual, const bf16 *x, const bf16 *w, int rows,
                  int D, float eps);
void cuda_silu_mul(CudaCtx *c, bf16 *out, const bf16 *gate, const bf16 *up, int rows, int F);
void cuda_qk_norm_rope(CudaCtx *c, bf16 *q, bf16 *k, const bf16 *qn, const bf16 *kn, int Hq,
                       int Hkv, int hd, float eps, const RopeParams *rope);
void cuda_kv_store(CudaCtx *c, void *kcache, void *vcache, const bf16 *k, const bf16 *v, int Hkv,
                   int hd);
/* cuda_qk_norm_rope then cuda_kv_store(kcache, vcache, k, v) in one launch (norm_rope.cu). */
void cuda_qk_norm_rope_store(CudaCtx *c, bf16 *q, bf16 *k, const bf16 *v, const bf16 *qn,
                             const bf16 *kn, int Hq, int Hkv, int hd, float eps,
                             const RopeParams *rope, void *kcache, void *vcache);
/* The same, reading q, k and v from qkv[T, ld] (each row: q's Hq heads, k's Hkv, v's Hkv; the
 * output of graph.cu's fused QKV matmul) and writing them to q, k and v as the three matmuls
 * and cuda_qk_norm_rope_store would have left them. */
void cuda_qkv_norm_rope_store(CudaCtx *c, const bf16 *qkv, int ld, bf16 *q, bf16 *k, bf16 *v,
                              const bf16 *qn, const bf16 *kn, int Hq, int Hkv, int hd, float eps,
                              const RopeParams *rope, void *kcache, void *vcache);
void cuda_attention(CudaCtx *c, bf16 *out, const bf16 *q, const void *kcache,
                    const void *vcache, int Hq, int Hkv, int hd);
/* prefill_attn_v2.cu: the prefill chunks' part of cuda_attention (c->prefill_attn 2, 5 or 6):
 * writes out[] for the tokens of c->dev.prefill_seqs only. sl2 = log2(e) / sqrt(hd). */
void cuda_prefill_attn_v2(CudaCtx *c, bf16 *out, const bf16 *q, const void *kcache,
                          const void *vcache, int Hq, int Hkv, int hd, float sl2);
/* prefill_attn_wgmma.cu (c->prefill_attn 7; 8 with the warpgroups' ping-pong): the same on
 * wgmma and TMA for a bf16 cache, head_dim 128, a GQA group dividing 128 and block sizes in
 * {8, 16, 32, 64, 128} on sm_90; returns 0 (and launches nothing) where it does not apply. */
int cuda_prefill_attn_wgmma(CudaCtx *c, bf16 *out, const bf16 *q, const void *kcache, const void *vcache,
                            int Hq, int Hkv, int hd, float sl2);
/* 1 where this device runs the build's sm_90a code (wgmma, TMA), else 0; one tiny launch and a
 * synchronous copy, so called once at init. */
int cuda_prefill_attn_wgmma_probe(CudaCtx *c);
#define DEC_PART_PAD 4 /* floats after a partial's HD outputs: M, L and padding */
/* The end of a split-KV decode block, for query head `head`, dimension d of the sequence at
 * decode index di (output row tok), after its warps were merged into (M, L, O): with one split
 * the attention output itself; else the split's partial in the layout decode_combine_kernel
 * reads, part[Sd, Hq, nsplit, HD + DEC_PART_PAD] = (O..., M, L, unused): rows of 16-byte multiples for vector loads. */
__device__ __forceinline__ void decode_write_split(bf16 *out, float *part, int tok, int di, int head,
                                                   int split, int nsplit, int Hq, int HD, int d,
                                                   float M, float L, float O) {
    if (nsplit == 1) {
        out[((int64_t)tok * Hq + head) * HD + d] = __float2bfloat16_rn(L > 0.f ? O / L : 0.f);
        return;
    }
    float *p = part + (((int64_t)di * Hq + head) * nsplit + split) * (HD + DEC_PART_PAD);
    p[d] = O;
    if (d == 0) {
        p[HD] = M;
        p[HD + 1] = L;
    }
}
/* decode_attn_tc.cu: the decodes of the step (c->num_decode, c->decode_splits) on the tensor
 * cores: out rows (one split), or c->attn_part partials merged by the last block of each
 * (seq, kv head) when c->decode_combine_fused (counters in c->attn_cnt), else by
 * decode_combine_kernel (paged_attn.cu).
 * The cache type follows c->kv_fp8; scale_log2 = log2(e) / sqrt(hd). Launched with PDL. */
int cuda_decode_attn_tc_supported(int Hq, int Hkv, int hd);
void cuda_decode_attn_tc(CudaCtx *c, bf16 *out, const bf16 *q, const void *kcache,
                         const void *vcache, int Hq, int Hkv, int hd, float scale_log2);
/* out[rows,N] = x[rows,K] @ w[N,K]^T, out in bf16 (out_f32 = 0) or float32 (out_f32 = 1). */
void cuda_gemm(CudaCtx *c, void *out, int out_f32, const bf16 *x, const bf16 *w, int rows, int N,
               int K);
/* The GEMV kernels' arithmetic: the dot product of 8 bf16 pairs (16-byte loads of w and x) in
 * fp32, and the output store in the output's dtype. */
__device__ __forceinline__ float gemv_dot8(uint4 a, uint4 b) {
    const __nv_bfloat162 *a2 = (const __nv_bfloat162 *)&a, *b2 = (const __nv_bfloat162 *)&b;
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        float2 fa = __bfloat1622float2(a2[j]), fb = __bfloat1622float2(b2[j]);
        s = fmaf(fa.x, fb.x, s);
        s = fmaf(fa.y, fb.y, s);
    }
    return s;
}
__device__ __forceinline__ void gemv_store(float *p, float v) { *p = v; }
__device__ __forceinline__ void gemv_store(bf16 *p, float v) { *p = __float2bfloat16_rn(v); }

/* RMSNorm's arithmetic (rmsnorm.cu), shared with GEMV v4's NORM prologue (gemv_pipe.cu), which
 * reproduces the norm bit for bit: the block size rmsnorm launches for D (its partial sums
 * follow it), the float32 sum of squares of 8 bf16, the butterfly sum over a warp (every lane
 * gets the same bits), and out = bf16(w * bf16(x * rstd)). */
__host__ __device__ inline int rmsnorm_threads(int D) { return D >= 2048 ? 256 : 128; }
__device__ __forceinline__ float rms_sumsq8(uint4 v, float ss) {
    const __nv_bfloat162 *v2 = (const __nv_bfloat162 *)&v;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        float2 f = __bfloat1622float2(v2[j]);
        ss += f.x * f.x + f.y * f.y;
    }
    return ss;
}
__device__ __forceinline__ float warp_allsum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ uint4 rms_apply8(uint4 v, uint4 wv, float rstd) {
    uint4 o;
    const __nv_bfloat162 *v2 = (const __nv_bfloat162 *)&v, *w2 = (const __nv_bfloat162 *)&wv;
    __nv_bfloat162 *o2 = (__nv_bfloat162 *)&o;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        float2 f = __bfloat1622float2(v2[j]), g = __bfloat1622float2(w2[j]);
        float a = __bfloat162float(__float2bfloat16_rn(f.x * rstd));
        float b = __bfloat162float(__float2bfloat16_rn(f.y * rstd));
        o2[j] = __floats2bfloat162_rn(g.x * a, g.y * b);
    }
    return o;
}

/* silu(gate) * up in HF's bf16 rounding order (act.cu): silu(gate) rounded to bf16, then the
 * product rounded again. Shared by act.cu and GEMV v4's SILU prologue (gemv_pipe.cu), which
 * must give bit-identical values. */
__device__ __forceinline__ float silu_bf16(float g) {
    return __bfloat162float(__float2bfloat16_rn(g / (1.0f + expf(-g))));
}
__device__ __forceinline__ uint4 silu_mul8(uint4 g4, uint4 u4) {
    uint4 o4;
    const __nv_bfloat162 *g2 = (const __nv_bfloat162 *)&g4, *u2 = (const __nv_bfloat162 *)&u4;
    __nv_bfloat162 *o2 = (__nv_bfloat162 *)&o4;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        float2 g = __bfloat1622float2(g2[j]), u = __bfloat1622float2(u2[j]);
        o2[j] = __floats2bfloat162_rn(silu_bf16(g.x) * u.x, silu_bf16(g.y) * u.y);
    }
    return o4;
}

/* gemm.cu's GEMV paths (1, 2, 4), as opposed to cuBLASLt (0) */
static inline int gemm_path_is_gemv(int path) { return path == 1 || path == 2 || path == 4; }

/* The small-batch kernel alone (rows <= GEMV_MAX_ROWS); dev/cuda and the tests time it. */
#define GEMV_MAX_ROWS 8
#define GEMV_NB 4 /* GEMV v1 / v4: weight rows per block (v1) or per group (v4) */
/* GEMV v1 / v4 epilogue, first half: warp `warp`'s sum of each accumulator acc[r][j] into
 * red[warp][r * GEMV_NB + j] (lane 0 writes). The caller syncs, then adds the warps' rows. */
template <int R>
__device__ __forceinline__ void gemv_warp_partials(const float (&acc)[R][GEMV_NB],
                                                   float (*red)[R * GEMV_NB], int warp, int lane) {
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int j = 0; j < GEMV_NB; j++) {
            const float v = warp_allsum(acc[r][j]);
            if (lane == 0) red[warp][r * GEMV_NB + j] = v;
        }
}
int cuda_gemv_supported(int rows, int N, int K, const void *x, const void *w, const void *out);
void cuda_gemv(CudaCtx *c, void *out, int out_f32, const bf16 *x, const bf16 *w, int rows, int N,
               int K);
void cuda_gemm_free_plans(CudaCtx *c);
/* The largest power of two <= 256 that divides every one of the n addresses (cuBLASLt's
 * alignment preference for a plan), and the release of a plan's cuBLASLt objects (NULLs skipped). */
int cuda_ptr_align(const void *const *p, int n);
void cuda_lt_destroy(cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                     cublasLtMatrixLayout_t c);
/* Median of 5 timed runs of run(arg) on the context's stream after one warm-up, in
 * microseconds (cudaEvents; synchronizes: eager only). Used to pick the faster path per shape. */
float cuda_time_median_us(CudaCtx *c, void (*run)(void *arg), void *arg);
/* gemm.cu: picks a cuBLASLt algorithm by timing, for gemm.cu's plans and gemm_pair.cu's.
 * time_fn(arg) times the matmul with *algo. The fastest of the heuristic's candidates res[0, n)
 * goes into *algo (*choice its index). Returns its time (us). (Split-K variants of it were
 * timed too in session 6, PAGELLM_CUDA_LT_SPLITK: no measurable change of the 8B or 4B
 * batch-256 step on the H100, run10; removed.) */
float cuda_lt_tune(const cublasLtMatmulHeuristicResult_t *res, int n, cublasLtMatmulAlgo_t *algo, int *choice,
                   float (*time_fn)(void *arg), void *arg);
/* gemm_pair.cu: out0 = x @ w0^T and out1 = x @ w1^T ([rows, N] bf16 each, W [N, K]) as one
 * cuBLASLt matmul of batch 2 where that is allowed (c->gemm_pair, rows > GEMV_MAX_ROWS, both
 * plain matmuls cuBLASLt ones, weight and output offsets of one sign) and its plan says so;
 * returns 1 when it ran them, 0 when the caller must run them one by one. Plans are made (and
 * timed) outside captures only. */
int cuda_gemm_pair(CudaCtx *c, void *out0, void *out1, const bf16 *x, const bf16 *w0, const bf16 *w1, int rows,
                   int N, int K);
void cuda_gemm_pair_free(CudaCtx *c);
/* The path cuda_gemm takes for this shape (creating and autotuning its plan if new). */
int cuda_gemm_path(CudaCtx *c, void *out, int out_f32, const bf16 *x, const bf16 *w, int rows,
                   int N, int K);
/* GEMV v2 over up to GEMV_MAX_SEGS weight matrices that read the same x: output rows
 * [start[i], start[i+1]) are out[i][rows, N_i] = x @ w[i]^T. One launch. */
#define GEMV_MAX_SEGS 3
typedef struct GemvSegs {
    const bf16 *w[GEMV_MAX_SEGS];
    void *out[GEMV_MAX_SEGS];
    int start[GEMV_MAX_SEGS + 1];
    int nseg;
} GemvSegs;
void cuda_gemv_multi(CudaCtx *c, const GemvSegs *sg, int out_f32, const bf16 *x, int rows, int K);
/* The same over GEMV v1 (4 rows per block; every segment but the last a multiple of 4 rows). */
void cuda_gemv1_multi(CudaCtx *c, const GemvSegs *sg, int out_f32, const bf16 *x, int rows, int K);

/* gemv_pipe.cu: GEMV v4, v1's arithmetic on persistent blocks that keep the next step's loads
 * in flight across row groups (K % 512 == 0; v1's segment contract). */
int cuda_gemv4_supported(int rows, int K, const void *x, const GemvSegs *sg);
void cuda_gemv4_multi(CudaCtx *c, const GemvSegs *sg, int out_f32, const bf16 *x, int rows, int K);
/* GEMV v4's fused variants (graph.cu's peephole rewrites of decode logs, bf16 out): each block
 * builds x itself in shared memory, after pdl_wait, from the inputs of the op the rewrite
 * removed, with that op's exact rounding (so the results are bit-identical to the unfused ops):
 *   GEMV_PRO_SILU: x = silu(a) * b (act.cu), a = gate and b = up, both [rows, K];
 *   GEMV_PRO_NORM: x = rmsnorm(a) * b (rmsnorm.cu's 16-byte kernel), a [rows, K] the rows to
 *                  normalize (the residual stream, its add already done), b the weight [K].
 * and, with add, the residual add that followed the matmul: out is one segment, the residual
 * [rows, N], updated in place to bf16(out + bf16(x . w)) (rmsnorm.cu's add of the bf16 matmul
 * output). rows <= GEMV_PRO_MAX_ROWS: the staged x takes rows * K * 2 bytes of shared memory. */
enum { GEMV_PRO_NONE = 0, GEMV_PRO_SILU = 1, GEMV_PRO_NORM = 2 };
#define GEMV_PRO_MAX_ROWS 4
typedef struct GemvPro {
    int kind;      /* GEMV_PRO_*: NONE reads x as the plain kernel does */
    const bf16 *x; /* NONE: x [rows, K] */
    const bf16 *a; /* SILU: gate [rows, K]; NORM: rows to normalize [rows, K] */
    const bf16 *b; /* SILU: up [rows, K]; NORM: weight [K] */
    float eps;     /* NORM */
    int add;       /* epilogue: sg's one segment is the residual, added to in place */
} GemvPro;
/* Whether cuda_gemv4_pro runs this shape (cuda_gemv4_supported's contract, rows <= 4, the
 * staged x fits in shared memory, 16-byte aligned inputs). */
int cuda_gemv4_pro_supported(const CudaCtx *c, const GemvPro *p, int rows, int K, const GemvSegs *sg);
void cuda_gemv4_pro(CudaCtx *c, const GemvSegs *sg, const GemvPro *p, int rows, int K);

/* sample.cu: the device sampler over the last logits (sample/sample_batch.h). Blocks. */
int cuda_sample(CudaCtx *c, const SampleBatch *sb, int32_t *tokens, LogprobEntry *lps, char *err);
/* sample.cu, shared with sample_async.cu. enqueue: stages sb (R = sb->num_rows > 0) through the
 * pinned *h_in (grown; must not be the source of a queued copy), launches the sampler on the
 * last logits writing the device *d_out (grown with *h_out) and, when tok_out is non-NULL, the
 * ids to tok_out[R], and queues the copy of *d_out to *h_out. No wait. 0 or -1 + err.
 * unpack: a completed *h_out to tokens[R] and lps[r] (rows with num_logprobs >= 0). */
int cuda_sample_enqueue(CudaCtx *c, const SampleBatch *sb, void **h_in, size_t *h_in_cap, void **d_out,
                        void **h_out, size_t *out_cap, int32_t *tok_out, char *err);
void cuda_sample_unpack(const void *h_out, int R, const struct SampleRow *rows, int32_t *tokens, LogprobEntry *lps);
/* sample_async.cu: the backend ops sample_launch / sample_collect (backend.h), the buffer
 * the embed reads pending tokens from (reserved for max_seqs rows before graph capture), and
 * the teardown. */
int cuda_sample_launch(CudaCtx *c, const SampleBatch *sb, char *err);
int cuda_sample_collect(CudaCtx *c, int32_t *tokens, LogprobEntry *lps, char *err);
void cuda_prev_tokens_reserve(CudaCtx *c, int rows);
void cuda_sample_async_free(CudaCtx *c);
/* graph.cu: runs one recorded op; flushes the log eagerly; finishes a recorded step at logits
 * (replay, capture or eager run), leaving fp32 logits in c->logits_f32. */
void cuda_oprec_run(CudaCtx *c, const OpRec *r);
void cuda_graph_flush(CudaCtx *c);
void cuda_graph_finish_step(CudaCtx *c);
void cuda_graph_free(CudaCtx *c);
/* The padded batch size a decode-only step of T sequences runs as a graph (the smallest
 * capture size >= T; T itself when no sizes are set), or 0: run eagerly. */
int cuda_graph_bucket(const CudaCtx *c, int T);
/* backend op capture_graphs (backend.h). */
int cuda_capture_graphs(Backend *b, const GraphCaptureSpec *spec, char *err);
/* Grows the metadata buffers (set_batch) to hold any step within these bounds, so that no
 * later step reallocates what captured graphs point at. */
void cuda_meta_reserve(CudaCtx *c, int max_tokens, int max_seqs, int max_blocks_per_seq);
/* Grow the per-step RoPE table to max_tokens rows, and the fp32 logits to `rows` rows (for the
 * shapes of the last qk_norm_rope / logits calls), so that later steps within those bounds
 * leave the buffers the graphs point at where they are. */
void cuda_rope_reserve(CudaCtx *c, int max_tokens);
void cuda_logits_reserve(CudaCtx *c, int rows);
/* Grows the split-KV scratch to what any decode count up to max_seqs needs (for the shape of
 * the last attention call), so that no later mixed step reallocates it under the graphs. */
void cuda_attn_reserve(CudaCtx *c, int max_seqs);
void cuda_profile_report(CudaCtx *c);
OpRec *cuda_graph_append(CudaCtx *c);

/* comm_nccl.cu: runs an OP_ALLREDUCE record (ncclAllReduce in place on c->stream; eager, or
 * into a graph being captured). comm_nccl's all_reduce_sum appends it to the log of a recorded
 * step like any op, so decode graphs contain the collectives. */
void cuda_comm_exec(CudaCtx *c, const OpRec *r);

/* logits_shards.cu: the backend ops logits_device and logits_from_shards (backend.h). */
const float *cuda_logits_device(Backend *b);
void cuda_logits_from_shards(Backend *b, const float *shards, int n, int R, int Vs, int V);

/* Split-KV factor for a decode batch of Sd sequences (depends on the batch size only, so that a
 * CUDA graph captured for Sd stays valid as contexts grow). */
int cuda_decode_splits(const CudaCtx *c, int Sd, int Hkv);
/* Floats of split-KV scratch the attention op needs for this batch. */
size_t cuda_attn_scratch_floats(const CudaCtx *c, int Hq, int hd);

#endif
