/* weights.h: the tensors of a decoder-only model, by role, and how they are loaded.
 *
 * weights_load() maps a model directory's safetensors (single file or sharded through
 * model.safetensors.index.json) and points each Tensor at its bytes inside the mmap: no copy,
 * bf16 stays bf16 (each tensor keeps the dtype of its file: bf16, f16 or f32). Shapes and dtypes
 * are checked against the config; errors name the file and tensor. Tied embeddings: lm_head is
 * a copy of the `embed` Tensor struct (same data, same id), and `tied` is 1.
 *
 * Dummy weights (load_format "dummy"): nothing is allocated or filled on the host. Every Tensor
 * gets its shape, dtype (opt->dummy_dtype), id and dummy_center/dummy_half_width, with
 * data == NULL; the backend fills it in place through weight_load(..., dummy=1, seed, t->id,
 * t->dummy_center, t->dummy_half_width) with util/rng.h's dummy_weight_value, so CPU and GPU get
 * identical values. weights_fill_dummy_host() writes those same values into a host buffer.
 *
 * Tensor ids are stable: id = slot index in the fixed load order below (weights_slot), the
 * same for every architecture (absent roles such as qwen3's biases just leave a gap).
 * The ModelWeights owns its mappings until weights_free(). Loading happens once at start-up,
 * on the calling thread; the result is read-only afterwards (any thread). */
#ifndef PAGELLM_MODEL_WEIGHTS_H
#define PAGELLM_MODEL_WEIGHTS_H
#include <stdint.h>

#include "model/config.h"
#include "util/dtype.h"

typedef struct Tensor {
    DType dtype;
    int ndim;           /* 0 = role absent in this model (e.g. bq on qwen3) */
    int64_t shape[4];   /* row-major; a Linear weight is [out_features, in_features] */
    void *data;         /* host pointer (mmap or heap), or device pointer once a backend owns it;
                           NULL for a dummy tensor not yet filled by a backend */
    const char *name;   /* HF tensor name, e.g. "model.layers.0.self_attn.q_proj.weight"; owned
                           by the host ModelWeights (valid until its weights_free) */
    uint32_t id;        /* stable index in load order (weights_slot); dummy values depend on it */
    float dummy_center;     /* dummy values are uniform in [center - half_width, */
    float dummy_half_width; /*                            center + half_width)   */
} Tensor;

static inline int64_t tensor_numel(const Tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}
/* Whether the model has this role (true for a dummy tensor whose data is still NULL). */
static inline int tensor_present(const Tensor *t) { return t->ndim > 0; }
static inline size_t tensor_nbytes(const Tensor *t) {
    return (size_t)tensor_numel(t) * dtype_size(t->dtype);
}

typedef struct LayerWeights {
    Tensor input_norm;    /* [D]                     input_layernorm.weight */
    Tensor wq;            /* [Hq*hd, D]              self_attn.q_proj.weight */
    Tensor wk;            /* [Hkv*hd, D] */
    Tensor wv;            /* [Hkv*hd, D] */
    Tensor bq, bk, bv;    /* [Hq*hd], [Hkv*hd] x2    qwen2 only, else absent (ndim 0) */
    Tensor wo;            /* [D, Hq*hd]              self_attn.o_proj.weight */
    Tensor q_norm;        /* [hd]                    qwen3 only: self_attn.q_norm.weight */
    Tensor k_norm;        /* [hd]                    qwen3 only */
    Tensor post_norm;     /* [D]                     post_attention_layernorm.weight */
    Tensor w_gate;        /* [F, D]                  mlp.gate_proj.weight */
    Tensor w_up;          /* [F, D]                  mlp.up_proj.weight */
    Tensor w_down;        /* [D, F]                  mlp.down_proj.weight */
} LayerWeights;

typedef struct ModelWeights {
    Tensor embed;         /* [V, D]  model.embed_tokens.weight */
    LayerWeights *layers; /* [L] */
    int num_layers;
    Tensor final_norm;    /* [D]     model.norm.weight */
    Tensor lm_head;       /* [V, D]  lm_head.weight, or a copy of `embed`'s view when tied */
    int tied;             /* 1: lm_head is embed (same data and id): load/free it once */
    int dummy;            /* 1: loaded with load_format dummy (data NULL until a backend fills) */
    void *storage;        /* private: mmaps, names */
} ModelWeights;

/* Load order, and thus tensor ids: 0 embed; then per layer l, 1 + l*WEIGHTS_LAYER_SLOTS + r
 * for the roles in LayerWeights order (input_norm, wq, wk, wv, bq, bk, bv, wo, q_norm, k_norm,
 * post_norm, w_gate, w_up, w_down); then final_norm; then lm_head. */
#define WEIGHTS_LAYER_SLOTS 14
static inline int weights_num_slots(int num_layers) { return 3 + num_layers * WEIGHTS_LAYER_SLOTS; }
/* The Tensor of slot `id` in w (works on a host or a backend ModelWeights with layers set);
 * NULL if id is out of range. Slots of absent roles have ndim == 0. */
Tensor *weights_slot(ModelWeights *w, int id);
/* Bytes of all present tensors, the tied lm_head counted once (the decode bandwidth floor). */
size_t weights_nbytes(const ModelWeights *w);
/* Elements of the same tensors (as weights_nbytes counts them); *count gets how many there are
 * (the backend op weight_reserve takes both). */
int64_t weights_numel(const ModelWeights *w, int *count);

typedef enum { LOAD_FORMAT_AUTO = 0, LOAD_FORMAT_SAFETENSORS, LOAD_FORMAT_DUMMY } LoadFormat;
int load_format_parse(const char *s, LoadFormat *out); /* "auto" | "safetensors" | "dummy" */

typedef struct WeightsLoadOptions {
    LoadFormat format;
    DType dummy_dtype;    /* dtype of dummy weights: DT_BF16, DT_F16 or DT_F32 (note DT_F32 is
                             the zero value; the CLI passes bf16). opt == NULL: bf16, seed 0. */
    uint64_t dummy_seed;  /* seed for dummy weights (default 0) */
} WeightsLoadOptions;

/* Loads (format auto/safetensors) or describes (dummy) the weights of the model in dir, whose
 * config is cfg. Dummy needs no weights file (dir is not read). Returns 0, or -1 with err naming
 * the file and tensor (missing tensor, wrong shape, unusable dtype, bad file). */
int weights_load(const char *dir, const ModelConfig *cfg, const WeightsLoadOptions *opt,
                 ModelWeights *w, char *err);
void weights_free(ModelWeights *w);

/* Writes dummy values of elements [begin, end) of t (dtype f32/f16/bf16, as t->dtype) into
 * dst (dst[0] is element begin): exactly what a backend's dummy weight_load fills. Split the
 * range over threads for big tensors. */
void weights_fill_dummy_host_range(const Tensor *t, void *dst, uint64_t seed, int64_t begin, int64_t end);
/* The whole tensor: dst holds tensor_nbytes(t) bytes. */
void weights_fill_dummy_host(const Tensor *t, void *dst, uint64_t seed);

#endif
