/* backend.h: the op table every compute backend fills (CPU now, CUDA, later more).
 *
 * The model forward (model/qwen3.c) is written once against these ops, in the spirit of ggml's
 * ggml_backend_i. A Backend owns device memory and its own threads or streams. Activations live
 * in backend memory in b->act_dtype (CPU: f32, so the CPU backend matches HF float32 goldens;
 * CUDA: bf16). The paged KV cache is per layer K and V of shape
 * [num_blocks, block_size, Hkv, hd] in b->kv_dtype. Weights are Tensors whose data the backend
 * owns after weight_load (the CPU backend keeps the host pointer: bf16 stays bf16, no copy).
 *
 * Per step, the engine calls set_batch once with the flat batch's host-side metadata; later ops
 * of that step read it from the backend (the CUDA backend uploads it once; CUDA graphs replay on
 * the same device buffers). Ops are enqueued in order; only sync() and the *_to_host copies
 * block. Ops are called from one thread (the engine thread) only.
 *
 * Fusion is expressed by adding an op (rmsnorm fuses the residual add), never by special-casing
 * the model. Entries marked optional may be NULL; the model then falls back. */
#ifndef PAGELLM_BACKEND_BACKEND_H
#define PAGELLM_BACKEND_BACKEND_H
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"   /* LogprobEntry */
#include "sample/sample_batch.h"
#include "model/config.h"
#include "model/weights.h"
#include "util/dtype.h"

/* The flat batch of one engine step: several sequences, each contributing a chunk of new
 * tokens (a prefill chunk, possibly after a cached prefix, or one decode token). All arrays are
 * host memory owned by the caller, valid during the call to set_batch. */
typedef struct BatchMeta {
    int num_tokens;              /* T: total new tokens this step */
    int num_seqs;                /* S */
    const int32_t *token_ids;    /* [T] */
    const int32_t *positions;    /* [T] absolute position of each new token */
    const int32_t *slot_mapping; /* [T] KV slot = block_id * block_size + offset; -1 = don't store */
    const int32_t *query_start;  /* [S+1] token offsets of each sequence's chunk in the flat batch */
    const int32_t *seq_lens;     /* [S] tokens in KV after this step (cached prefix + chunk) */
    const int32_t *block_tables; /* [S, max_blocks_per_seq] block ids; unused entries any value */
    int max_blocks_per_seq;
    int block_size;
    int max_query_len;           /* max over sequences of this step's chunk length */
    int max_seq_len;             /* max of seq_lens */
    const int32_t *logits_rows;  /* [R] flat token indices whose logits are wanted */
    int num_logits_rows;         /* R */
    /* Optional (async scheduling, engine/core.h): [T] NULL = every token id is in token_ids;
     * token_src_row[t] >= 0: token t is the one the previous launched step sampled at its
     * logits row token_src_row[t] (token_ids[t] is then a placeholder 0); -1: from token_ids. */
    const int32_t *token_src_row;
} BatchMeta;

typedef struct Backend Backend;

/* What a backend needs to capture decode graphs ahead of time (op capture_graphs). */
typedef struct GraphCaptureSpec {
    const int *sizes;        /* [num_sizes] ascending decode batch sizes (vLLM's capture sizes) */
    int num_sizes;
    int max_tokens;          /* the largest num_tokens any later step has (max-num-batched-tokens) */
    int max_seqs;            /* the largest num_seqs (max-num-seqs) */
    int max_blocks_per_seq;  /* the largest max_blocks_per_seq (max-model-len in blocks) */
    int block_size;
    /* One model forward of batch m with its logits left on the device (model_forward with
     * logits NULL); 0 or -1 + err. */
    int (*forward)(void *ctx, const BatchMeta *m, char *err);
    void *ctx;
} GraphCaptureSpec;

typedef struct BackendOps {
    /* --- memory --- */
    void *(*alloc)(Backend *b, size_t bytes);                 /* device memory, 256-B aligned; NULL on OOM */
    void (*free)(Backend *b, void *p);
    void (*memset0)(Backend *b, void *p, size_t bytes);
    void (*to_device)(Backend *b, void *dst, const void *src, size_t bytes);
    void (*to_host)(Backend *b, void *dst, const void *src, size_t bytes);  /* blocks until done */
    /* Makes `dev` a backend-resident copy of `host` (same dtype and shape). The CPU backend may
     * alias host->data. If host->data is NULL and `dummy` is non-zero, fills dev in place with
     * dummy_weight_value(seed, tensor_id, i, center, half_width) (util/rng.h). Returns 0 or -1. */
    int (*weight_load)(Backend *b, const Tensor *host, Tensor *dev, int dummy, uint64_t seed,
                       uint64_t tensor_id, float center, float half_width, char *err);
    void (*weight_free)(Backend *b, Tensor *dev);
    /* Free device memory in bytes after weights and activations (for KV sizing); -1 if unknown. */
    long long (*mem_free)(Backend *b);

    /* --- per step --- */
    void (*set_batch)(Backend *b, const BatchMeta *m);

    /* --- ops (activations in act_dtype; shapes use the current batch's T) --- */
    /* out[t,:] = emb[token_ids[t], :] */
    void (*embed)(Backend *b, void *out /*[T,D]*/, const Tensor *emb /*[V,D]*/, int D);
    /* residual == NULL: out = rmsnorm(x) * w.
     * residual != NULL: residual += x (in place), then out = rmsnorm(residual) * w. */
    void (*rmsnorm)(Backend *b, void *out /*[rows,D]*/, void *residual /*[rows,D] or NULL*/,
                    const void *x /*[rows,D]*/, const Tensor *w /*[D]*/, int rows, int D, float eps);
    /* out = x @ w^T (+ bias). x and out in act_dtype, w in its own dtype. */
    void (*matmul)(Backend *b, void *out /*[rows,N]*/, const void *x /*[rows,K]*/,
                   const Tensor *w /*[N,K]*/, const Tensor *bias /*[N] or NULL*/, int rows);
    /* Per-head RMSNorm of q and k (when qn/kn non-NULL, qwen3), then rotary embedding at the
     * batch positions, in place. HF's rotate_half convention (first half / second half). */
    void (*qk_norm_rope)(Backend *b, void *q /*[T,Hq,hd]*/, void *k /*[T,Hkv,hd]*/,
                         const Tensor *qn /*[hd] or NULL*/, const Tensor *kn /*[hd] or NULL*/,
                         int Hq, int Hkv, int hd, float eps, const RopeParams *rope);
    /* Writes this step's k and v into the paged cache at the batch slot_mapping. */
    void (*kv_store)(Backend *b, void *kcache, void *vcache, const void *k /*[T,Hkv,hd]*/,
                     const void *v /*[T,Hkv,hd]*/, int Hkv, int hd);
    /* Causal paged attention for the whole mixed batch: query token t of sequence s at position
     * p attends to that sequence's cached keys at positions [0, p]. Scale 1/sqrt(hd), GQA. */
    void (*attention)(Backend *b, void *out /*[T,Hq,hd]*/, const void *q /*[T,Hq,hd]*/,
                      const void *kcache, const void *vcache, int Hq, int Hkv, int hd);
    /* out = silu(gate) * up, elementwise. */
    void (*silu_mul)(Backend *b, void *out /*[rows,F]*/, const void *gate /*[rows,F]*/,
                     const void *up /*[rows,F]*/, int rows, int F);
    /* out[r,:] = x[logits_rows[r], :] for the batch's logits rows. */
    void (*gather_rows)(Backend *b, void *out /*[R,D]*/, const void *x /*[T,D]*/, int D);
    /* logits_host[R,V] (float32, host) = x[R,D] @ lm_head^T. Blocks until the copy is done.
     * logits_host == NULL (only where `sample` exists): the logits stay on the device for the
     * next `sample` call; nothing blocks. */
    void (*logits)(Backend *b, float *logits_host, const void *x /*[R,D]*/, const Tensor *lm_head,
                   int R, int D, int V);
    /* Optional: samples every row of the logits the last `logits` call left on the device, as
     * sample/sample_batch.h specifies (sb->num_rows == R). tokens[R] come back to the host, and
     * lps[r] for rows with num_logprobs >= 0 (lps may be NULL when no row wants any). Blocks.
     * Returns 0, or -1 + err. NULL: the engine samples on the host. */
    int (*sample)(Backend *b, const struct SampleBatch *sb, int32_t *tokens, LogprobEntry *lps,
                  char *err);

    /* Optional: called at the end of a step (model_forward), so a backend can finish
     * recorded work. NULL = nothing to do. */
    void (*sync)(Backend *b);
    void (*destroy)(Backend *b);

    /* --- optional, start-up (NULL where the backend has nothing to do) --- */
    /* Total device memory in bytes (for --gpu-memory-utilization); -1 if unknown. */
    long long (*mem_total)(Backend *b);
    /* CUDA graphs for decode steps, captured at start-up, after the KV cache exists: the backend
     * runs spec->forward on dummy decode batches of every size in spec->sizes (slot -1, so
     * nothing is stored; block 0 read at seq_len 1), once to warm up (GEMM plans, autotuning,
     * scratch) and once under capture. Afterwards a decode-only step (every chunk one token) of
     * T <= sizes[num_sizes-1] sequences runs as the graph of the smallest size B >= T: the
     * backend pads the batch to B rows (padding rows store nothing and read one valid KV slot),
     * computes logits for B rows and returns / keeps the first R = num_logits_rows of them,
     * exactly the rows of an unpadded step. Larger or mixed steps run eagerly. Without this call
     * (tests, benchmarks) a backend may still capture lazily per exact T. Returns the number of
     * graphs captured, or -1 + err. Disabled (returns 0) under --enforce-eager. */
    int (*capture_graphs)(Backend *b, const GraphCaptureSpec *spec, char *err);

    /* --- optional, tensor parallelism with device sampling (model/tp_forward.h); both NULL or
     * both set, and only where `sample` exists. Kept last so positional tables stay valid. ---
     * The device float32 logits [R, V] that the last logits(.., logits_host = NULL, ..) call
     * left for `sample` (R, V of that call: a rank's vocabulary shard). Valid until the next
     * logits / logits_from_shards call; the collective all-gathers from it. */
    const float *(*logits_device)(Backend *b);
    /* Makes [R, V] from n vocabulary shards the logits that the next `sample` reads, as if
     * logits had left them: shards is device float32 [n, R, Vs] (the all-gather of every rank's
     * logits_device, rank order), n * Vs >= V, and column v of row r is
     * shards[v / Vs][r][v % Vs]; the padding columns past V are dropped. Enqueued, no blocking. */
    void (*logits_from_shards)(Backend *b, const float *shards, int n, int R, int Vs, int V);

    /* --- optional, async scheduling (engine/core.h launch/collect); both NULL or both set, and
     * only where `sample` exists. Kept last so positional tables stay valid. ---
     * sample_launch queues `sample` of the logits the last `logits(.., NULL, ..)` call left (any
     * number of rows, 0 included: every launch is one step) into the next of two output slots
     * and returns without waiting; it copies what it needs of sb. From then on, set_batch
     * entries with BatchMeta.token_src_row[t] >= 0 read token t from that slot's row (on the
     * device, at embed time: CUDA graphs replay it). At most two launched, uncollected steps.
     * sample_collect waits for the oldest launched, uncollected step and copies its tokens[R]
     * and lps[r] (rows with num_logprobs >= 0; lps may be NULL when none has) to the host.
     * 0, or -1 + err. */
    int (*sample_launch)(Backend *b, const struct SampleBatch *sb, char *err);
    int (*sample_collect)(Backend *b, int32_t *tokens, LogprobEntry *lps, char *err);

    /* --- optional, start-up (NULL: nothing to do). Kept last so positional tables stay valid.
     * Called once before the weight_load calls of a whole model: `count` tensors of `elems`
     * elements in all follow. The backend may place them in one allocation, in load order (the
     * CUDA backend does with PAGELLM_CUDA_FUSE_QKV on, so that a layer's q | k | v are adjacent
     * and graph.cu can run them as one matmul). Loads past what was reserved, or after a failed
     * reservation, allocate on their own as before. --- */
    void (*weight_reserve)(Backend *b, int64_t elems, int count);

    /* --- optional (NULL: unknown). Kept last so positional tables stay valid. The device's
     * marketing name ("NVIDIA H100 80GB HBM3"), owned by the backend: with mem_total, it picks
     * the engine's default step token budget as vLLM does (engine/startup.h). --- */
    const char *(*device_name)(Backend *b);
} BackendOps;

struct Backend {
    const BackendOps *ops;
    const char *name;       /* "cpu", "cuda" */
    DType act_dtype;        /* activations */
    DType kv_dtype;         /* paged KV cache */
    void *ctx;              /* backend private */
};

typedef struct BackendOptions {
    int threads;            /* CPU: worker threads, 0 = all cores */
    int device_id;          /* CUDA: device ordinal */
    DType kv_dtype;         /* requested KV dtype; DT_COUNT = backend default */
    int enforce_eager;      /* CUDA: no graphs */
} BackendOptions;

/* Backend constructors. Return NULL and fill err on failure. */
Backend *backend_cpu_new(const BackendOptions *opt, char *err);
#ifdef PAGELLM_HAVE_CUDA
Backend *backend_cuda_new(const BackendOptions *opt, char *err);
/* GEMV launches of decode graphs that fused a neighbouring op in (PAGELLM_CUDA_FUSE_PRO), counted
 * when the op log runs eagerly or is captured; for tests. */
long backend_cuda_fused_launches(const Backend *b);
/* Batched gate/up and k/v matmul pairs of decode graphs (PAGELLM_CUDA_GEMM_PAIR), counted the
 * same way; for tests. */
long backend_cuda_pair_launches(const Backend *b);
/* Fused QKV matmuls of decode graphs (PAGELLM_CUDA_FUSE_QKV, graph.cu), counted the same way;
 * for tests. */
long backend_cuda_qkv_launches(const Backend *b);
/* Prefill attention launches of the wgmma kernel (PAGELLM_CUDA_PREFILL_ATTN 7 / 8 where it
 * applies); for tests. */
long backend_cuda_wgmma_prefill_launches(const Backend *b);
/* The device's compute capability major (9: Hopper); for tests. */
int backend_cuda_cc_major(const Backend *b);
/* Graph sizes whose step flags the step tuner timed (PAGELLM_CUDA_STEP_TUNE); for tests. */
long backend_cuda_step_tunes(const Backend *b);
/* GEMM plans whose cuBLASLt candidates / small-batch paths were timed (returned), and those that
 * took a timed plan's choices for a nearby row count instead (*lent); for tests. */
long backend_cuda_gemm_plans(const Backend *b, long *lent);
#endif
/* By name ("cpu" | "cuda"): a build without CUDA refuses "cuda" with a clear error. */
Backend *backend_new(const char *device, const BackendOptions *opt, char *err);

#endif
