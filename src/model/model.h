/* model.h: a loaded model on a backend, its paged KV cache, and the forward pass.
 *
 * model_load() reads config + weights (model/config.h, model/weights.h), creates nothing but
 * uses the given backend to make weights resident, and allocates scratch activations for up to
 * max_tokens tokens per step. model_alloc_kv() then allocates the paged KV cache.
 * model_forward() runs one engine step: a flat batch of several sequences (BatchMeta), writes
 * the new K/V into the cache, and returns float32 logits on the host for the requested rows.
 * The same code serves Qwen3, Qwen2 (qkv bias, no q/k norm) and Llama (llama3 rope scaling),
 * and one rank of a tensor-parallel group (model/tp_forward.h; Model.tp and Model.comm set).
 * One thread (the engine thread) uses a Model at a time. */
#ifndef PAGELLM_MODEL_MODEL_H
#define PAGELLM_MODEL_MODEL_H
#include "backend/backend.h"
#include "backend/comm.h"
#include "model/config.h"
#include "model/tp_shard.h"
#include "model/weights.h"

typedef struct ModelLoadOptions {
    WeightsLoadOptions weights;
    int max_tokens;        /* largest T per forward (max-num-batched-tokens); scratch sized for it */
    int max_seqs;          /* largest S per forward */
} ModelLoadOptions;

typedef struct KVCache {
    void **k;              /* [L] each [num_blocks, block_size, Hkv, hd] in backend kv_dtype */
    void **v;              /* [L] */
    int num_blocks;
    int block_size;
} KVCache;

typedef struct Model {
    ModelConfig cfg;
    GenerationConfig gen;
    Backend *be;           /* not owned */
    ModelWeights host;     /* as loaded (mmap / dummy); kept for the CPU backend's aliases */
    ModelWeights dev;      /* backend-resident */
    KVCache kv;
    int max_tokens, max_seqs;
    /* Tensor parallelism (model/tp_forward.h makes such Models, one per rank); both NULL for a
     * whole model. When set, the weights, scratch and KV cache are the rank's shards and
     * model_forward() runs the collectives of the layout on comm. */
    const TpLayout *tp;    /* the rank's layout (points into scratch) */
    Comm *comm;            /* not owned */
    void *scratch;         /* private: activation buffers, TP rank state (model_internal.h) */
} Model;

int model_load(Model **out, const char *dir, Backend *be, const ModelLoadOptions *opt, char *err);
/* Bytes of KV cache per block (all layers, K and V) for this model and backend kv dtype. */
size_t model_kv_bytes_per_block(const Model *m, int block_size);
int model_alloc_kv(Model *m, int num_blocks, int block_size, char *err);
/* One step. logits: host float32 [b->num_logits_rows, V]; NULL keeps them on the device for
 * model_sample() (backends with a `sample` op only). Returns 0 or -1. */
int model_forward(Model *m, const BatchMeta *b, float *logits, char *err);
/* Samples the rows of the last model_forward(.., NULL, ..) on the device (backend op `sample`,
 * sample/sample_batch.h). 0, or -1 + err. */
int model_sample(Model *m, const struct SampleBatch *sb, int32_t *tokens, LogprobEntry *lps, char *err);
/* model_forward(.., NULL, ..) then model_sample() (rows > 0), without waiting for the device in
 * between (the sampler queues behind the forward on the device). 0, or -1 + err. */
int model_forward_sample(Model *m, const BatchMeta *b, const struct SampleBatch *sb, int32_t *tokens,
                         LogprobEntry *lps, char *err);
/* Async scheduling (engine/core.h launch/collect), backends with sample_launch only, no tensor
 * parallelism: model_launch_sample queues model_forward(.., NULL, ..) and sampling of b without
 * waiting (b->token_src_row: tokens from the previous launch's samples); model_collect_sample
 * waits for the oldest launched step's tokens (and lps). 0, or -1 + err. */
int model_launch_sample(Model *m, const BatchMeta *b, const struct SampleBatch *sb, char *err);
int model_collect_sample(Model *m, int32_t *tokens, LogprobEntry *lps, char *err);
/* 1 when model_launch_sample can run on m. */
int model_can_launch_sample(const Model *m);
void model_free(Model *m);

#endif
