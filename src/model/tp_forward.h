/* tp_forward.h: tensor-parallel forward: one model split over N ranks (model/tp_shard.h), each
 * rank a backend (one GPU, or one CPU backend for the simulation) with a Comm (backend/comm.h).
 *
 * A TpGroup loads config + host weights once (mmap, or dummy descriptors) and starts one
 * worker thread per rank; each worker loads its rank's Model (model_load_rank: its shards made
 * resident on its backend, only the rank's slices read, no full copy per rank), allocates its
 * part of the paged KV cache (its KV heads only) and runs its part of every forward, which is
 * qwen3.c's model_forward on the rank's Model (one layer sequence for TP=1 and TP=N).
 * tp_group_forward() is the drop-in for model_forward(): the same BatchMeta in, the same float32
 * logits [R, V] out on the host.
 *
 * Per rank and layer (Megatron-style; shapes local: hq = Hq/N heads, hkv KV heads, f = F/N):
 *   xn = rmsnorm(x += tmp)                         replicated (x is the full [T, D] residual)
 *   q, k, v = xn @ Wq_r, Wk_r, Wv_r                column-parallel, no communication
 *   qk_norm_rope; kv_store; att = attention(q)     on the rank's heads only
 *   tmp = att @ Wo_r;   ALL-REDUCE(tmp)            row-parallel partial sums
 *   xn = rmsnorm(x += tmp)
 *   tmp = (silu(xn @ Wg_r) * (xn @ Wu_r)) @ Wd_r;  ALL-REDUCE(tmp)
 * Embedding: masked lookup in the rank's vocabulary rows (other tokens read a zero row), then
 * ALL-REDUCE. Logits: each rank computes [R, Vs] with its lm_head rows and writes its real
 * columns into the caller's host [R, V] buffer (an all-gather through host memory: the ranks
 * are threads of one process), then a barrier. Two all-reduces per layer, as in vLLM/Megatron.
 *
 * Threads: the group's own workers run the ranks (every backend op of rank r, load, KV, forward,
 * sampling, free, runs on worker r, which bound its device with Comm.bind_thread); tp_group_*
 * are called from one thread (the engine thread). The backends and comms are the caller's and
 * must outlive the group. */
#ifndef PAGELLM_MODEL_TP_FORWARD_H
#define PAGELLM_MODEL_TP_FORWARD_H
#include "backend/backend.h"
#include "backend/comm.h"
#include "model/model.h"
#include "model/tp_shard.h"

typedef struct TpGroup TpGroup;

/* Loads the model in dir (or a config.json file with load format dummy) split over n ranks:
 * rank r runs on backends[r] with comms[r] (comms[r]->rank == r, size n). */
int tp_group_new(TpGroup **out, const char *dir, int n, Backend **backends, Comm **comms,
                 const ModelLoadOptions *opt, char *err);
/* The global config (as model.h's Model.cfg). */
const ModelConfig *tp_group_config(const TpGroup *g);
/* Rank r's layout. */
const TpLayout *tp_group_layout(const TpGroup *g, int r);
/* Rank r's backend-resident shard weights (shapes of the shards). */
const ModelWeights *tp_group_rank_weights(const TpGroup *g, int r);
/* The full host weights (mmap views or dummy descriptors) the shards were made from. */
const ModelWeights *tp_group_host_weights(const TpGroup *g);
/* Allocates every rank's part of the paged KV cache: [num_blocks, block_size, hkv, hd] per
 * layer, K and V (the same block ids on every rank: the engine's block tables are global). */
int tp_group_alloc_kv(TpGroup *g, int num_blocks, int block_size, char *err);
/* KV cache bytes per block on one rank (for KV sizing: each GPU holds only its heads). */
size_t tp_group_kv_bytes_per_block(const TpGroup *g, int block_size);
/* Free device memory of the rank with the least (each worker asks its own device), bytes;
 * -1 if some rank's backend cannot tell. For KV sizing: every rank gets the same block count. */
long long tp_group_mem_free(TpGroup *g);
/* One step, as model_forward(): logits host float32 [b->num_logits_rows, V]. 0 or -1 + err. */
int tp_group_forward(TpGroup *g, const BatchMeta *b, float *logits, char *err);
/* 1 when tp_group_forward_sample can run: every rank's backend has `sample`, `logits_device`
 * and `logits_from_shards` (backend.h) and the rank Models made their gather buffers. */
int tp_group_can_sample(const TpGroup *g);
/* One step with sampling on rank 0's device (EngineRunner.forward_sample): every rank keeps its
 * logits shard on its device, an all-gather brings all shards to every rank, every rank
 * assembles the [R, V] logits (logits_from_shards: the same buffers on every rank, so CUDA graph
 * decisions stay in lock step) and rank 0 samples them with its `sample` op (sb as
 * sample/sample_batch.h; at most max_seqs rows). tokens[R] and lps as the `sample` op. */
int tp_group_forward_sample(TpGroup *g, const BatchMeta *b, const struct SampleBatch *sb, int32_t *tokens,
                            LogprobEntry *lps, char *err);
void tp_group_free(TpGroup *g);

#endif
