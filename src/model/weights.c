/* weights.c: HF tensor names -> LayerWeights roles, checked against the config (weights.h). */
#include "model/weights.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"
#include "util/err.h"
#include "util/log.h"
#include "util/rng.h"

#define NAME_LEN 96

typedef struct Storage {
    StSet st;                /* the mapped files (empty for dummy) */
    char (*names)[NAME_LEN]; /* [num_slots] */
} Storage;

/* What a role is, for shapes and dummy values. */
typedef enum { KIND_NORM, KIND_LINEAR, KIND_BIAS, KIND_EMBED } Kind;

typedef enum { NEED_ALWAYS, NEED_QKV_BIAS, NEED_QK_NORM } Need;

static const struct {
    const char *suffix;
    size_t offset;           /* in LayerWeights */
    Kind kind;
    Need need;
} LAYER_ROLES[WEIGHTS_LAYER_SLOTS] = {
    {"input_layernorm.weight", offsetof(LayerWeights, input_norm), KIND_NORM, NEED_ALWAYS},
    {"self_attn.q_proj.weight", offsetof(LayerWeights, wq), KIND_LINEAR, NEED_ALWAYS},
    {"self_attn.k_proj.weight", offsetof(LayerWeights, wk), KIND_LINEAR, NEED_ALWAYS},
    {"self_attn.v_proj.weight", offsetof(LayerWeights, wv), KIND_LINEAR, NEED_ALWAYS},
    {"self_attn.q_proj.bias", offsetof(LayerWeights, bq), KIND_BIAS, NEED_QKV_BIAS},
    {"self_attn.k_proj.bias", offsetof(LayerWeights, bk), KIND_BIAS, NEED_QKV_BIAS},
    {"self_attn.v_proj.bias", offsetof(LayerWeights, bv), KIND_BIAS, NEED_QKV_BIAS},
    {"self_attn.o_proj.weight", offsetof(LayerWeights, wo), KIND_LINEAR, NEED_ALWAYS},
    {"self_attn.q_norm.weight", offsetof(LayerWeights, q_norm), KIND_NORM, NEED_QK_NORM},
    {"self_attn.k_norm.weight", offsetof(LayerWeights, k_norm), KIND_NORM, NEED_QK_NORM},
    {"post_attention_layernorm.weight", offsetof(LayerWeights, post_norm), KIND_NORM, NEED_ALWAYS},
    {"mlp.gate_proj.weight", offsetof(LayerWeights, w_gate), KIND_LINEAR, NEED_ALWAYS},
    {"mlp.up_proj.weight", offsetof(LayerWeights, w_up), KIND_LINEAR, NEED_ALWAYS},
    {"mlp.down_proj.weight", offsetof(LayerWeights, w_down), KIND_LINEAR, NEED_ALWAYS},
};

int load_format_parse(const char *s, LoadFormat *out) {
    if (strcmp(s, "auto") == 0) *out = LOAD_FORMAT_AUTO;
    else if (strcmp(s, "safetensors") == 0) *out = LOAD_FORMAT_SAFETENSORS;
    else if (strcmp(s, "dummy") == 0) *out = LOAD_FORMAT_DUMMY;
    else return -1;
    return 0;
}

Tensor *weights_slot(ModelWeights *w, int id) {
    int last = weights_num_slots(w->num_layers) - 1;
    if (id < 0 || id > last) return NULL;
    if (id == 0) return &w->embed;
    if (id == last - 1) return &w->final_norm;
    if (id == last) return &w->lm_head;
    int l = (id - 1) / WEIGHTS_LAYER_SLOTS, r = (id - 1) % WEIGHTS_LAYER_SLOTS;
    if (!w->layers) return NULL;
    return (Tensor *)((char *)&w->layers[l] + LAYER_ROLES[r].offset);
}

/* Calls fn on every present tensor, the tied lm_head skipped (it is the embedding). */
static void weights_each(const ModelWeights *w, void (*fn)(const Tensor *t, void *arg), void *arg) {
    int slots = weights_num_slots(w->num_layers);
    for (int id = 0; id < slots; id++) {
        const Tensor *t = weights_slot((ModelWeights *)w, id);
        if (id == slots - 1 && w->tied) continue;
        if (t && tensor_present(t)) fn(t, arg);
    }
}

static void add_nbytes(const Tensor *t, void *arg) { *(size_t *)arg += tensor_nbytes(t); }

size_t weights_nbytes(const ModelWeights *w) {
    size_t n = 0;
    weights_each(w, add_nbytes, &n);
    return n;
}

typedef struct NumelSum { int64_t elems; int count; } NumelSum;
static void add_numel(const Tensor *t, void *arg) {
    NumelSum *s = arg;
    s->elems += tensor_numel(t);
    s->count++;
}

int64_t weights_numel(const ModelWeights *w, int *count) {
    NumelSum s = {0, 0};
    weights_each(w, add_numel, &s);
    if (count) *count = s.count;
    return s.elems;
}

/* Expected shape, name and dummy distribution of slot id for this config; returns 0 if the
 * architecture has no such role. */
static int expect_slot(const ModelConfig *c, int id, char *name, Tensor *t) {
    int64_t D = c->hidden_size, F = c->intermediate_size, V = c->vocab_size, hd = c->head_dim;
    int64_t q = (int64_t)c->num_heads * hd, kv = (int64_t)c->num_kv_heads * hd;
    int last = weights_num_slots(c->num_layers) - 1;
    Kind kind;
    memset(t, 0, sizeof *t);
    t->id = (uint32_t)id;
    if (id == 0) {
        snprintf(name, NAME_LEN, "model.embed_tokens.weight");
        t->ndim = 2, t->shape[0] = V, t->shape[1] = D, kind = KIND_EMBED;
    } else if (id == last - 1) {
        snprintf(name, NAME_LEN, "model.norm.weight");
        t->ndim = 1, t->shape[0] = D, kind = KIND_NORM;
    } else if (id == last) {
        snprintf(name, NAME_LEN, "lm_head.weight");
        t->ndim = 2, t->shape[0] = V, t->shape[1] = D, kind = KIND_LINEAR;
    } else {
        int l = (id - 1) / WEIGHTS_LAYER_SLOTS, r = (id - 1) % WEIGHTS_LAYER_SLOTS;
        if (LAYER_ROLES[r].need == NEED_QKV_BIAS && !c->has_qkv_bias) return 0;
        if (LAYER_ROLES[r].need == NEED_QK_NORM && !c->has_qk_norm) return 0;
        snprintf(name, NAME_LEN, "model.layers.%d.%s", l, LAYER_ROLES[r].suffix);
        kind = LAYER_ROLES[r].kind;
        int64_t rows, cols = 0;
        switch (r) {
        case 0: case 10: rows = D; break;           /* input/post norm */
        case 1: rows = q, cols = D; break;          /* wq */
        case 2: case 3: rows = kv, cols = D; break; /* wk, wv */
        case 4: rows = q; break;                    /* bq */
        case 5: case 6: rows = kv; break;           /* bk, bv */
        case 7: rows = D, cols = q; break;          /* wo */
        case 8: case 9: rows = hd; break;           /* q/k norm */
        case 11: case 12: rows = F, cols = D; break; /* gate, up */
        default: rows = D, cols = F; break;         /* down */
        }
        t->ndim = cols ? 2 : 1;
        t->shape[0] = rows;
        t->shape[1] = cols;
    }
    /* Dummy values keep activations at unit scale: a Linear [out, in] with weights uniform in
     * +-sqrt(3/in) has variance 1/in, so each output has the variance of one input. */
    switch (kind) {
    case KIND_NORM: t->dummy_center = 1.0f, t->dummy_half_width = 0.1f; break;
    case KIND_LINEAR: t->dummy_half_width = sqrtf(3.0f / (float)t->shape[1]); break;
    case KIND_BIAS: t->dummy_half_width = 0.1f; break;
    case KIND_EMBED: t->dummy_half_width = 1.0f; break;
    }
    t->name = name;
    return 1;
}

static void shape_str(const int64_t *shape, int ndim, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* Points t at the file's tensor after checking presence, dtype, shape and alignment. */
static int bind_tensor(const StSet *st, const ModelConfig *cfg, Tensor *t, int *warned, char *err) {
    const StFile *f = NULL;
    const StTensor *s = st_set_find(st, t->name, &f);
    if (!s) {
        if (st->sharded)
            return pg_err(err, "%s/model.safetensors.index.json: tensor '%s' not found (in none of the %d "
                          "file(s) it lists; needed by %s)", st->dir, t->name, st->num_files, cfg->arch_name);
        return pg_err(err, "%s/model.safetensors: tensor '%s' not found (needed by %s)", st->dir,
                      t->name, cfg->arch_name);
    }
    if (s->dtype != DT_F32 && s->dtype != DT_F16 && s->dtype != DT_BF16)
        return pg_err(err, "%s: tensor '%s' has dtype %s; expected BF16, F16 or F32", f->path,
                      t->name, s->dtype_str);
    int same = s->ndim == t->ndim;
    for (int i = 0; same && i < t->ndim; i++) same = s->shape[i] == t->shape[i];
    if (!same) {
        char have[128], want[128];
        shape_str(s->shape, s->ndim, have, sizeof have);
        shape_str(t->shape, t->ndim, want, sizeof want);
        return pg_err(err, "%s: tensor '%s' has shape %s, but config.json implies %s", f->path,
                      t->name, have, want);
    }
    if ((uintptr_t)s->data % dtype_size(s->dtype) != 0)
        return pg_err(err, "%s: tensor '%s' is not aligned to its %zu-byte elements", f->path,
                      t->name, dtype_size(s->dtype));
    if (s->dtype != cfg->torch_dtype && !*warned) {
        LOG_W("%s: tensor '%s' is %s while config.json says %s; each tensor keeps its file's dtype",
              f->path, t->name, dtype_name(s->dtype), dtype_name(cfg->torch_dtype));
        *warned = 1;
    }
    t->dtype = s->dtype;
    t->data = (void *)s->data; /* read-only mapping: backends must never write host weights */
    return 0;
}

int weights_load(const char *dir, const ModelConfig *cfg, const WeightsLoadOptions *opt,
                 ModelWeights *w, char *err) {
    WeightsLoadOptions defaults = {LOAD_FORMAT_AUTO, DT_BF16, 0};
    if (!opt) opt = &defaults;
    memset(w, 0, sizeof *w);
    int L = cfg->num_layers, slots = weights_num_slots(L);
    int dummy = opt->format == LOAD_FORMAT_DUMMY;
    if (dummy && opt->dummy_dtype != DT_BF16 && opt->dummy_dtype != DT_F16 && opt->dummy_dtype != DT_F32)
        return pg_err(err, "dummy weights: dtype %s not supported (bf16, f16, f32)", dtype_name(opt->dummy_dtype));
    Storage *s = calloc(1, sizeof *s);
    w->layers = calloc((size_t)L, sizeof *w->layers);
    if (!s || !w->layers || !(s->names = calloc((size_t)slots, sizeof *s->names))) {
        free(s ? s->names : NULL);
        free(s);
        free(w->layers);
        w->layers = NULL;
        return pg_err(err, "out of memory for %d layers", L);
    }
    w->storage = s;
    w->num_layers = L;
    w->dummy = dummy;
    w->tied = cfg->tie_word_embeddings;
    if (!dummy && st_set_open(&s->st, dir, err)) goto err;
    int warned = 0;
    for (int id = 0; id < slots; id++) {
        Tensor *t = weights_slot(w, id);
        if (id == slots - 1 && w->tied) {
            *t = w->embed; /* a view: same data, same id, so dummy fills are identical too */
            continue;
        }
        if (!expect_slot(cfg, id, s->names[id], t)) continue;
        if (dummy) t->dtype = opt->dummy_dtype;
        else if (bind_tensor(&s->st, cfg, t, &warned, err)) goto err;
    }
    return 0;
err:
    weights_free(w);
    return -1;
}

void weights_free(ModelWeights *w) {
    if (!w) return;
    Storage *s = w->storage;
    if (s) {
        st_set_close(&s->st);
        free(s->names);
        free(s);
    }
    free(w->layers);
    memset(w, 0, sizeof *w);
}

void weights_fill_dummy_host_range(const Tensor *t, void *dst, uint64_t seed, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
        float v = dummy_weight_value(seed, t->id, (uint64_t)i, t->dummy_center, t->dummy_half_width);
        int64_t j = i - begin;
        switch (t->dtype) {
        case DT_F32: ((float *)dst)[j] = v; break;
        case DT_BF16: ((uint16_t *)dst)[j] = f32_to_bf16(v); break;
        case DT_F16: ((uint16_t *)dst)[j] = f32_to_f16(v); break;
        default: CHECK(!"dummy weights must be f32, f16 or bf16");
        }
    }
}

void weights_fill_dummy_host(const Tensor *t, void *dst, uint64_t seed) {
    weights_fill_dummy_host_range(t, dst, seed, 0, tensor_numel(t));
}
