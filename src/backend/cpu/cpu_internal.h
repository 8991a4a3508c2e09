/* cpu_internal.h: what the CPU backend's files share: its context and the kernels each file
 * provides. Not for use outside src/backend/cpu/.
 *
 * Layout of the work: cpu_backend.c (op table, memory, weights, batch), cpu_matmul.c (matmul
 * threading + scalar kernels), cpu_matmul_x86.c (AVX2 / AVX-512 / AVX-512-BF16 kernels),
 * cpu_norm_rope.c (rmsnorm, q/k norm + rope), cpu_attention.c (kv_store, paged attention),
 * cpu_elementwise.c (embed, silu_mul, gather_rows). */
#ifndef PAGELLM_BACKEND_CPU_CPU_INTERNAL_H
#define PAGELLM_BACKEND_CPU_CPU_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/cpu/cpu.h"
#include "util/threadpool.h"

/* The current step's batch, copied out of the caller's BatchMeta (its arrays live only during
 * set_batch). */
typedef struct CpuBatch {
    int num_tokens, num_seqs, max_blocks_per_seq, block_size, num_logits_rows;
    int32_t *token_ids;    /* [T] */
    int32_t *positions;    /* [T] */
    int32_t *slot_mapping; /* [T] */
    int32_t *token_seq;    /* [T] which sequence each flat token belongs to */
    int32_t *query_start;  /* [S+1] */
    int32_t *seq_lens;     /* [S] */
    int32_t *block_tables; /* [S, max_blocks_per_seq] */
    int32_t *logits_rows;  /* [R] */
    size_t cap[8];         /* capacities of the 8 arrays above, in order */
} CpuBatch;

typedef struct CpuCtx {
    ThreadPool *pool;
    int nthreads;
    CpuIsa isa;
    CpuBatch batch;
    uint64_t step;          /* bumped by set_batch: invalidates per-step caches */
    /* rope: cos/sin of this step's positions, [T, hd/2] each, recomputed when step or params change */
    float *rope_cos, *rope_sin;
    size_t rope_cap;
    uint64_t rope_step;
    RopeParams rope_params;
    int rope_valid;
    /* matmul: x split into three bf16 planes for the AVX-512-BF16 kernel, [3, rows, K] */
    uint16_t *xsplit;
    size_t xsplit_cap;
    /* logits kept by logits(b, NULL, ...) for the sample op (cpu_sample.c), [logits_R, logits_V] */
    float *logits_keep;
    size_t logits_keep_cap;   /* bytes */
    int logits_R, logits_V;
    struct Sampler *samplers; /* [nthreads], created on the first sample call */
    int samplers_V;
    /* sample_launch's two output slots (async scheduling, cpu_sample.c): the CPU samples at
     * launch, so a slot is complete once launched; set_batch reads pending tokens from `last` */
    struct { int32_t *tokens; LogprobEntry *lps; int R, cap; } async_out[2];
    int async_head, async_inflight, async_last;
    /* weights this backend allocated (dummy fills), freed by weight_free / destroy */
    void **owned;
    size_t n_owned, cap_owned;
} CpuCtx;

static inline CpuCtx *cpu_ctx(Backend *b) { return (CpuCtx *)b->ctx; }

/* Grows *buf to at least `bytes` (64-byte aligned, contents not kept). Returns 0 or -1. */
int cpu_scratch_reserve(void **buf, size_t *cap, size_t bytes);

/* Element e of a weight of dtype dt (f32, f16 or bf16) as float. */
static inline float cpu_load_elem(const void *p, DType dt, size_t e) {
    if (dt == DT_F32) return ((const float *)p)[e];
    if (dt == DT_BF16) return bf16_to_f32(((const uint16_t *)p)[e]);
    return f16_to_f32(((const uint16_t *)p)[e]);
}

/* --- ops, one per file's concern --- */
void cpu_matmul(Backend *b, void *out, const void *x, const Tensor *w, const Tensor *bias, int rows);
void cpu_logits(Backend *b, float *logits_host, const void *x, const Tensor *lm_head, int R, int D, int V);
void cpu_rmsnorm(Backend *b, void *out, void *residual, const void *x, const Tensor *w, int rows,
                 int D, float eps);
void cpu_qk_norm_rope(Backend *b, void *q, void *k, const Tensor *qn, const Tensor *kn, int Hq,
                      int Hkv, int hd, float eps, const RopeParams *rope);
void cpu_kv_store(Backend *b, void *kcache, void *vcache, const void *k, const void *v, int Hkv, int hd);
void cpu_attention(Backend *b, void *out, const void *q, const void *kcache, const void *vcache,
                   int Hq, int Hkv, int hd);
void cpu_embed(Backend *b, void *out, const Tensor *emb, int D);
void cpu_silu_mul(Backend *b, void *out, const void *gate, const void *up, int rows, int F);
void cpu_gather_rows(Backend *b, void *out, const void *x, int D);
/* cpu_sample.c: the host sampler over the kept logits (the `sample` op), and its teardown. */
int cpu_sample(Backend *b, const struct SampleBatch *sb, int32_t *tokens, LogprobEntry *lps, char *err);
void cpu_samplers_free(CpuCtx *c);
/* The async-scheduling pair (backend.h sample_launch / sample_collect) and set_batch's source
 * of pending tokens: row `row` of the last launched step's samples (-2 if it has no such row). */
int cpu_sample_launch(Backend *b, const struct SampleBatch *sb, char *err);
int cpu_sample_collect(Backend *b, int32_t *tokens, LogprobEntry *lps, char *err);
int32_t cpu_sample_pending_token(const CpuCtx *c, int row);

/* Rope inverse frequencies [hd/2] exactly as HF computes them in float32 (default and llama3). */
void cpu_rope_inv_freq(const RopeParams *rope, int hd, float *inv_freq);

/* --- matmul kernels (cpu_matmul_x86.c). Each computes out[m, n] = sum_k x[m, k] * w[n, k]
 * for m in [0, rows), n in [n0, n1), with out row stride ldo and x row stride K. xs: x split
 * in bf16 planes, [rows, 3, K] (hi, mid, lo of each row); only the BF16 kernel reads it. --- */
typedef void (*CpuMatmulKernel)(float *out, size_t ldo, const float *x, const uint16_t *xs,
                                int rows, int K, const void *w, DType wdt, int n0, int n1);
void cpu_matmul_scalar(float *out, size_t ldo, const float *x, const uint16_t *xs, int rows,
                       int K, const void *w, DType wdt, int n0, int n1);
#if defined(__x86_64__)
void cpu_matmul_avx2(float *out, size_t ldo, const float *x, const uint16_t *xs, int rows, int K,
                     const void *w, DType wdt, int n0, int n1);
void cpu_matmul_avx512(float *out, size_t ldo, const float *x, const uint16_t *xs, int rows,
                       int K, const void *w, DType wdt, int n0, int n1);
void cpu_matmul_avx512bf16(float *out, size_t ldo, const float *x, const uint16_t *xs, int rows,
                           int K, const void *w, DType wdt, int n0, int n1);
/* x[m0..m1) of [rows, K] into the [rows, 3, K] bf16 planes the BF16 kernel reads. */
void cpu_split_x_avx512bf16(const float *x, uint16_t *xs, int m0, int m1, int K);
#endif

#endif
