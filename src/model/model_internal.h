/* model_internal.h: what model.c (lifetime), qwen3.c (forward) and tp_forward.c (the
 * tensor-parallel group) share. Not for other modules.
 *
 * ModelScratch is a Model's private state (Model.scratch): the activation buffers, in backend
 * memory, each sized for max_tokens rows with the rank's local widths (the full widths when the
 * Model is not a tensor-parallel rank), and, for a rank, its layout and host-side buffers. */
#ifndef PAGELLM_MODEL_MODEL_INTERNAL_H
#define PAGELLM_MODEL_MODEL_INTERNAL_H
#include <stdint.h>

#include "backend/comm.h"
#include "model/model.h"
#include "model/tp_shard.h"

typedef struct ModelScratch {
    /* Shapes with hq, hkv, f = Hq, Hkv, F (TP=1) or the rank's TpLayout hq, hkv, f. */
    void *x;     /* [T, D]      residual stream (the full one on every rank) */
    void *xn;    /* [T, D]      normed input of the current block */
    void *q;     /* [T, hq*hd] */
    void *k;     /* [T, hkv*hd] */
    void *v;     /* [T, hkv*hd] */
    void *att;   /* [T, hq*hd]  attention output */
    void *tmp;   /* [T, D]      o_proj / down_proj output, added to x by the next rmsnorm */
    void *gate;  /* [T, f]      gate_proj, then silu(gate) * up */
    void *up;    /* [T, f] */
    void *rows;  /* [R, D]      the rows whose logits are wanted */
    /* Tensor-parallel rank only (Model.comm set; all zero otherwise). */
    TpLayout lay;          /* Model.tp points here */
    int32_t *local_ids;    /* [max_tokens] host: token ids inside the rank's embed shard */
    float *logits_shard;   /* [max_tokens, lay.v_shard] host: the rank's logits columns */
    float *gather;         /* [size, max_seqs, lay.v_shard] backend memory: every rank's logits
                              columns (all-gather) for device sampling on rank 0; NULL unless the
                              backend has sample + logits_device + logits_from_shards */
    void **owned;          /* [n_owned] host shard buffers the backend aliases (CPU backend) */
    int n_owned;
} ModelScratch;

/* Loads the rank comm->rank of comm->size of a tensor-parallel model: its shards (tp_shard.h)
 * of the full host weights `host` (mmap views or dummy descriptors, loaded once by the caller
 * with weights_load for config cfg; not owned, must outlive the Model), made resident on be,
 * scratch and KV widths of the rank's layout. The Model's model_forward() is then the rank's
 * part of the forward: it runs the collectives on comm and writes its logits columns into the
 * caller's [R, V] buffer, which every rank of the group is given at the same step. Called on
 * the thread that will drive the rank (comm bound). Returns 0 or -1 + err. */
int model_load_rank(Model **out, const ModelConfig *cfg, const ModelWeights *host, Comm *comm,
                    Backend *be, const ModelLoadOptions *opt, char *err);

/* The batch checks of model_forward (a bad batch is an error, not an out-of-bounds read).
 * The TP group runs them once on the engine thread before any rank starts, so that no rank
 * fails alone while the others wait in a collective. */
int model_check_batch(const Model *m, const BatchMeta *b, char *err);

#endif
