/* model.c: a Model's lifetime: config + weights loaded, weights made resident on the backend,
 * scratch activations sized for max_tokens, the paged KV cache. The forward pass is qwen3.c.
 * A tensor-parallel rank (model_load_rank, model_internal.h) is the same Model with its shards
 * of the weights and the local widths of its layout (Model.tp) for scratch and KV cache.
 *
 * `dir` may also be a config.json file when the load format is dummy (the benchmarks run the
 * real shapes of tests/fixtures/shapes/ config files with no weights). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/model.h"
#include "model/model_internal.h"
#include "util/err.h"

/* CPU attention keeps per-group state on the stack; bound the shapes it is given. */
#define MODEL_MAX_HEAD_DIM 512
#define MODEL_MAX_GQA_GROUP 32

/* Query heads, KV heads, intermediate width this Model computes: the rank's under TP. */
static int local_hq(const Model *m) { return m->tp ? m->tp->hq : m->cfg.num_heads; }
static int local_hkv(const Model *m) { return m->tp ? m->tp->hkv : m->cfg.num_kv_heads; }
static int local_f(const Model *m) { return m->tp ? m->tp->f : m->cfg.intermediate_size; }

/* The private state, before anything is loaded (a rank's layout lives in it). */
static int scratch_new(Model *m, char *err) {
    m->scratch = calloc(1, sizeof(ModelScratch));
    return m->scratch ? 0 : pg_err(err, "out of memory");
}

/* The activation buffers (scratch_new first), with the local widths. */
static int scratch_alloc(Model *m, char *err) {
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    size_t T = (size_t)m->max_tokens, es = dtype_size(be->act_dtype);
    size_t D = (size_t)c->hidden_size, F = (size_t)local_f(m);
    size_t QD = (size_t)local_hq(m) * c->head_dim, KD = (size_t)local_hkv(m) * c->head_dim;
    ModelScratch *s = m->scratch;
    /* k and v, gate and up: one allocation each, the second buffer right after the first, so a
     * backend may run each pair as one batched matmul at a fixed positive offset (gemm_pair.cu) */
    const size_t kv_half = (T * KD * es + 255) & ~(size_t)255, gu_half = (T * F * es + 255) & ~(size_t)255;
    struct { void **p; size_t bytes; } bufs[] = {
        {&s->x, T * D * es}, {&s->xn, T * D * es}, {&s->q, T * QD * es}, {&s->k, 2 * kv_half},
        {&s->att, T * QD * es}, {&s->tmp, T * D * es}, {&s->gate, 2 * gu_half}, {&s->rows, T * D * es},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        *bufs[i].p = be->ops->alloc(be, bufs[i].bytes);
        if (!*bufs[i].p)
            return pg_err(err, "out of backend memory for activations (%d tokens per step)", m->max_tokens);
    }
    s->v = (char *)s->k + kv_half;   /* 256-byte aligned, as the backend's own allocations */
    s->up = (char *)s->gate + gu_half;
    if (m->tp) {
        s->local_ids = malloc(T * sizeof *s->local_ids);
        s->logits_shard = malloc(T * (size_t)m->tp->v_shard * sizeof(float));
        if (!s->local_ids || !s->logits_shard) return pg_err(err, "out of memory");
        /* device sampling: the gathered logits of at most max_seqs rows (one per sequence) */
        const BackendOps *op = be->ops;
        if (op->sample && op->logits_device && op->logits_from_shards) {
            size_t n = (size_t)m->tp->size * (size_t)m->max_seqs * (size_t)m->tp->v_shard * sizeof(float);
            if (!(s->gather = op->alloc(be, n)))
                return pg_err(err, "out of backend memory for the gathered logits (%.1f MB)", n / 1e6);
        }
    }
    return 0;
}

static void scratch_free(Model *m) {
    ModelScratch *s = m->scratch;
    if (!s) return;
    void *bufs[] = {s->x, s->xn, s->q, s->k, s->att, s->tmp, s->gate, s->rows}; /* v, up: inside k, gate */
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) m->be->ops->free(m->be, bufs[i]);
    if (s->gather) m->be->ops->free(m->be, s->gather);
    free(s->local_ids);
    free(s->logits_shard);
    /* after weights_off_backend: the CPU backend aliases these shard buffers */
    for (int i = 0; i < s->n_owned; i++) free(s->owned[i]);
    free(s->owned);
    free(s);
    m->scratch = NULL;
    m->tp = NULL;
}

/* Makes every present host tensor resident on the backend (dummy ones are filled there). */
static int weights_to_backend(Model *m, uint64_t seed, char *err) {
    ModelWeights *h = &m->host, *d = &m->dev;
    *d = *h;
    d->storage = NULL;
    d->layers = calloc((size_t)h->num_layers, sizeof *d->layers);
    if (!d->layers) return pg_err(err, "out of memory");
    memset(&d->embed, 0, sizeof d->embed);
    memset(&d->final_norm, 0, sizeof d->final_norm);
    memset(&d->lm_head, 0, sizeof d->lm_head);
    int slots = weights_num_slots(h->num_layers);
    if (m->be->ops->weight_reserve) { /* one allocation in load order (see backend.h) */
        int count = 0;
        int64_t elems = weights_numel(h, &count);
        m->be->ops->weight_reserve(m->be, elems, count);
    }
    for (int id = 0; id < slots; id++) {
        Tensor *ht = weights_slot(h, id), *dt = weights_slot(d, id);
        if (!tensor_present(ht)) continue;
        if (id == slots - 1 && h->tied) { *dt = d->embed; continue; }
        if (m->be->ops->weight_load(m->be, ht, dt, h->dummy, seed, ht->id, ht->dummy_center,
                                    ht->dummy_half_width, err) != 0)
            return -1;
    }
    return 0;
}

static void weights_off_backend(Model *m) {
    ModelWeights *d = &m->dev;
    if (!d->layers) return;
    int slots = weights_num_slots(d->num_layers);
    for (int id = 0; id < slots; id++) {
        Tensor *t = weights_slot(d, id);
        if (id == slots - 1 && d->tied) continue;
        if (tensor_present(t) && t->data) m->be->ops->weight_free(m->be, t);
    }
    free(d->layers);
    memset(d, 0, sizeof *d);
}

/* Remembers a host shard buffer the backend aliases, freed with the Model. */
static int scratch_keep(ModelScratch *s, void *p, char *err) {
    if (!p) return 0;
    void **n = realloc(s->owned, (size_t)(s->n_owned + 1) * sizeof *n);
    if (!n) { free(p); return pg_err(err, "out of memory"); }
    s->owned = n;
    s->owned[s->n_owned++] = p;
    return 0;
}

/* Makes rank m->tp's shard of every present host tensor resident on the backend. Only the
 * rank's slices of `host` are read: views into the mmap, or host buffers holding the slice
 * (tp_shard_tensor; dummy values filled on the host). */
static int shards_to_backend(Model *m, const ModelWeights *h, uint64_t seed, char *err) {
    ModelWeights *d = &m->dev;
    ModelScratch *s = m->scratch;
    const TpLayout *L = m->tp;
    d->num_layers = h->num_layers;
    d->tied = h->tied;
    d->dummy = h->dummy;
    d->layers = calloc((size_t)h->num_layers, sizeof *d->layers);
    if (!d->layers) return pg_err(err, "out of memory");
    const int slots = weights_num_slots(h->num_layers);
    for (int id = 0; id < slots; id++) {
        const Tensor *ht = weights_slot((ModelWeights *)h, id);
        Tensor *dt = weights_slot(d, id);
        if (!tensor_present(ht)) continue;
        if (id == slots - 1 && h->tied) {
            /* lm_head = the first Vs rows of the embed shard (its extra zero row left out) */
            *dt = d->embed;
            dt->shape[0] = L->v_shard;
            continue;
        }
        Tensor shard;
        void *owned = NULL;
        if (tp_shard_tensor(L, h->num_layers, id, ht, h->dummy, seed, &shard, &owned, err) != 0) return -1;
        /* data is filled (view or buffer): a plain copy/alias on the backend, never a dummy fill */
        if (m->be->ops->weight_load(m->be, &shard, dt, 0, seed, shard.id, shard.dummy_center,
                                    shard.dummy_half_width, err) != 0) {
            free(owned);
            return -1;
        }
        /* A backend that copied (CUDA) no longer needs the host slice; one that aliases (CPU)
         * keeps it until the Model is freed. */
        if (owned && dt->data != owned) free(owned);
        else if (scratch_keep(s, owned, err) != 0) return -1;
    }
    return 0;
}

static int is_regular_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The shapes the backends' kernels accept; `what` names the model in the message. */
static int check_supported(const ModelConfig *c, const char *what, char *err) {
    if (c->head_dim > MODEL_MAX_HEAD_DIM || c->head_dim % 2 != 0)
        return pg_err(err, "%s: head_dim %d not supported (even, at most %d)", what, c->head_dim,
                      MODEL_MAX_HEAD_DIM);
    if (c->num_heads / c->num_kv_heads > MODEL_MAX_GQA_GROUP)
        return pg_err(err, "%s: %d query heads per kv head not supported (at most %d)", what,
                      c->num_heads / c->num_kv_heads, MODEL_MAX_GQA_GROUP);
    return 0;
}

int model_load(Model **out, const char *dir, Backend *be, const ModelLoadOptions *opt, char *err) {
    *out = NULL;
    if (!opt || opt->max_tokens <= 0)
        return pg_err(err, "model_load: max_tokens must be positive, got %d", opt ? opt->max_tokens : 0);
    Model *m = calloc(1, sizeof *m);
    if (!m) return pg_err(err, "out of memory");
    m->be = be;
    m->max_tokens = opt->max_tokens;
    m->max_seqs = opt->max_seqs > 0 ? opt->max_seqs : opt->max_tokens;
    if (is_regular_file(dir)) {
        if (opt->weights.format != LOAD_FORMAT_DUMMY) {
            pg_err(err, "%s: a config.json file (not a model directory) needs load format dummy", dir);
            goto err;
        }
        if (config_load_file(dir, &m->cfg, err) != 0) goto err;
    } else if (config_load(dir, &m->cfg, &m->gen, err) != 0) {
        goto err;
    }
    const ModelConfig *c = &m->cfg;
    if (check_supported(c, dir, err) != 0) goto err;
    if (weights_load(dir, c, &opt->weights, &m->host, err) != 0) goto err;
    if (weights_to_backend(m, opt->weights.dummy_seed, err) != 0) goto err;
    if (scratch_new(m, err) != 0 || scratch_alloc(m, err) != 0) goto err;
    *out = m;
    return 0;
err:
    model_free(m);
    return -1;
}

int model_load_rank(Model **out, const ModelConfig *cfg, const ModelWeights *host, Comm *comm,
                    Backend *be, const ModelLoadOptions *opt, char *err) {
    *out = NULL;
    if (!opt || opt->max_tokens <= 0)
        return pg_err(err, "model_load_rank: max_tokens must be positive, got %d", opt ? opt->max_tokens : 0);
    if (!comm) return pg_err(err, "model_load_rank: no communicator");
    if (check_supported(cfg, "tensor parallel model", err) != 0) return -1;
    Model *m = calloc(1, sizeof *m);
    if (!m) return pg_err(err, "out of memory");
    m->cfg = *cfg;
    m->be = be;
    m->comm = comm;
    m->max_tokens = opt->max_tokens;
    m->max_seqs = opt->max_seqs > 0 ? opt->max_seqs : opt->max_tokens;
    /* m->host stays empty: the caller owns the full host weights the shards come from */
    if (scratch_new(m, err) != 0) goto err;
    ModelScratch *s = m->scratch;
    if (tp_layout_init(&s->lay, cfg, comm->rank, comm->size, err) != 0) goto err;
    m->tp = &s->lay;
    if (shards_to_backend(m, host, opt->weights.dummy_seed, err) != 0) goto err;
    if (scratch_alloc(m, err) != 0) goto err;
    *out = m;
    return 0;
err:
    model_free(m);
    return -1;
}

size_t model_kv_bytes_per_block(const Model *m, int block_size) {
    const ModelConfig *c = &m->cfg;
    return (size_t)c->num_layers * 2 * (size_t)block_size * local_hkv(m) * c->head_dim *
           dtype_size(m->be->kv_dtype);
}

static void kv_free(Model *m) {
    KVCache *kv = &m->kv;
    for (int l = 0; l < m->cfg.num_layers; l++) {
        if (kv->k && kv->k[l]) m->be->ops->free(m->be, kv->k[l]);
        if (kv->v && kv->v[l]) m->be->ops->free(m->be, kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
}

int model_alloc_kv(Model *m, int num_blocks, int block_size, char *err) {
    if (num_blocks <= 0 || block_size <= 0 || block_size > 64)
        return pg_err(err, "kv cache: need num_blocks > 0 and block_size in [1, 64], got %d blocks of %d",
                      num_blocks, block_size);
    kv_free(m);
    int L = m->cfg.num_layers;
    size_t per_layer = model_kv_bytes_per_block(m, block_size) / (size_t)L / 2 * (size_t)num_blocks;
    m->kv.k = calloc((size_t)L, sizeof(void *));
    m->kv.v = calloc((size_t)L, sizeof(void *));
    if (!m->kv.k || !m->kv.v) goto oom;
    for (int l = 0; l < L; l++) {
        m->kv.k[l] = m->be->ops->alloc(m->be, per_layer);
        m->kv.v[l] = m->be->ops->alloc(m->be, per_layer);
        if (!m->kv.k[l] || !m->kv.v[l]) goto oom;
        /* Zeroed so that a read of a slot never written is a finite value, not garbage. */
        m->be->ops->memset0(m->be, m->kv.k[l], per_layer);
        m->be->ops->memset0(m->be, m->kv.v[l], per_layer);
    }
    m->kv.num_blocks = num_blocks;
    m->kv.block_size = block_size;
    return 0;
oom:
    kv_free(m);
    return pg_err(err, "kv cache: out of backend memory for %d blocks of %d tokens (%zu bytes per layer)",
                  num_blocks, block_size, per_layer * 2);
}

void model_free(Model *m) {
    if (!m) return;
    if (m->be) {
        kv_free(m);
        weights_off_backend(m);
        scratch_free(m); /* after the weights: it holds host shards a backend may alias */
    }
    weights_free(&m->host);
    free(m);
}
