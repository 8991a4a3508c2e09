/* tp_shard.c: the tensor-parallel layout and shard making (model/tp_shard.h). */
#include "model/tp_shard.h"

#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/rng.h"
#include "util/threadpool.h"

int tp_layout_init(TpLayout *lay, const ModelConfig *c, int rank, int size, char *err) {
    memset(lay, 0, sizeof *lay);
    const int N = size, Hq = c->num_heads, Hkv = c->num_kv_heads;
    if (N <= 0 || rank < 0 || rank >= N)
        return pg_err(err, "tensor parallel: rank %d of size %d", rank, N);
    if (Hq % N != 0)
        return pg_err(err, "tensor parallel size %d must divide num_attention_heads %d", N, Hq);
    if (c->intermediate_size % N != 0)
        return pg_err(err, "tensor parallel size %d must divide intermediate_size %d", N, c->intermediate_size);
    if (Hkv % N != 0 && N % Hkv != 0)
        return pg_err(err, "tensor parallel size %d and num_key_value_heads %d: one must divide the other",
                      N, Hkv);
    lay->rank = rank, lay->size = N;
    lay->Hq = Hq, lay->Hkv = Hkv, lay->hd = c->head_dim;
    lay->D = c->hidden_size, lay->F = c->intermediate_size, lay->V = c->vocab_size;
    lay->hq = Hq / N;
    lay->q_head0 = rank * lay->hq;
    if (Hkv >= N) {
        lay->hkv = Hkv / N;
        lay->kv_head0 = rank * lay->hkv;
        lay->kv_replicas = 1;
    } else {
        /* rank r's query heads [q_head0, q_head0 + hq) all belong to one KV group of Hq / Hkv
         * heads, because hq = Hq / N divides Hq / Hkv when Hkv divides N. */
        lay->hkv = 1;
        lay->kv_head0 = lay->q_head0 / (Hq / Hkv);
        lay->kv_replicas = N / Hkv;
    }
    lay->f = c->intermediate_size / N;
    lay->f0 = rank * lay->f;
    long long unit = (long long)TP_VOCAB_PAD * N;
    long long vp = ((long long)c->vocab_size + unit - 1) / unit * unit;
    if (vp > INT32_MAX) return pg_err(err, "tensor parallel: padded vocabulary %lld too large", vp);
    lay->v_pad = (int)vp;
    lay->v_shard = (int)(vp / N);
    lay->v0 = rank * lay->v_shard;
    int real = lay->V - lay->v0;
    lay->v_real = real < 0 ? 0 : real > lay->v_shard ? lay->v_shard : real;
    return 0;
}

static TpSlice rows_block(int64_t row0, int64_t rows, int64_t cols) {
    TpSlice s = {row0, rows, 0, cols, 0};
    return s;
}

TpSlice tp_slice_of(const TpLayout *lay, int num_layers, int id) {
    const int64_t hd = lay->hd, D = lay->D;
    const int last = weights_num_slots(num_layers) - 1;
    TpSlice none = {0, 0, 0, 0, 0};
    if (id < 0 || id > last) return none;
    if (id == 0 || id == last) { /* embed, lm_head: vocabulary rows, padded */
        TpSlice s = rows_block(lay->v0, lay->v_real, D);
        s.pad_rows = lay->v_shard - lay->v_real + (id == 0 ? 1 : 0);
        return s;
    }
    if (id == last - 1) return rows_block(0, D, 1); /* final_norm */
    switch ((id - 1) % WEIGHTS_LAYER_SLOTS) {
    case 0: case 10: return rows_block(0, D, 1);                                  /* norms */
    case 1: return rows_block(lay->q_head0 * hd, lay->hq * hd, D);                /* wq */
    case 2: case 3: return rows_block(lay->kv_head0 * hd, lay->hkv * hd, D);      /* wk, wv */
    case 4: return rows_block(lay->q_head0 * hd, lay->hq * hd, 1);                /* bq */
    case 5: case 6: return rows_block(lay->kv_head0 * hd, lay->hkv * hd, 1);      /* bk, bv */
    case 7: { TpSlice s = {0, D, lay->q_head0 * hd, lay->hq * hd, 0}; return s; } /* wo */
    case 8: case 9: return rows_block(0, hd, 1);                                  /* q/k norm */
    case 11: case 12: return rows_block(lay->f0, lay->f, D);                      /* gate, up */
    default: { TpSlice s = {0, D, lay->f0, lay->f, 0}; return s; }                /* down */
    }
}

static void store_dummy(const Tensor *t, void *dst, int64_t j, float v) {
    switch (t->dtype) {
    case DT_F32: ((float *)dst)[j] = v; break;
    case DT_BF16: ((uint16_t *)dst)[j] = f32_to_bf16(v); break;
    default: ((uint16_t *)dst)[j] = f32_to_f16(v); break;
    }
}

typedef struct FillJob {
    const Tensor *t;
    void *dst;
    uint64_t seed;
    int64_t row0, rows, col0, cols;
} FillJob;

/* Rows [ith * rows / nth, (ith + 1) * rows / nth) of the block. */
static void fill_rows(void *arg, int ith, int nth) {
    const FillJob *f = arg;
    const Tensor *t = f->t;
    const int64_t ld = t->ndim >= 2 ? t->shape[1] : 1;
    const int64_t i0 = f->rows * ith / nth, i1 = f->rows * (ith + 1) / nth;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t j = 0; j < f->cols; j++) {
            uint64_t g = (uint64_t)((f->row0 + i) * ld + f->col0 + j);
            store_dummy(t, f->dst, i * f->cols + j,
                        dummy_weight_value(f->seed, t->id, g, t->dummy_center, t->dummy_half_width));
        }
}

void tp_fill_dummy_block(const Tensor *t, void *dst, uint64_t seed, int64_t row0, int64_t rows,
                         int64_t col0, int64_t cols) {
    FillJob f = {t, dst, seed, row0, rows, col0, cols};
    /* Large blocks over all cores: dummy shards of a 32B model are ~16G values per rank, minutes
     * on one thread. Each thread writes its own rows, so the values do not depend on the split. */
    ThreadPool *pool = rows > 1 && rows * cols >= (1 << 22) ? pool_new(0, NULL) : NULL;
    if (pool) {
        pool_run(pool, fill_rows, &f);
        pool_free(pool);
    } else {
        fill_rows(&f, 0, 1);
    }
}

int tp_shard_tensor(const TpLayout *lay, int num_layers, int id, const Tensor *full, int dummy,
                    uint64_t seed, Tensor *out, void **owned, char *err) {
    *owned = NULL;
    *out = *full;
    if (!tensor_present(full)) return 0;
    const char *name = full->name ? full->name : "?";
    TpSlice s = tp_slice_of(lay, num_layers, id);
    const int64_t R0 = full->shape[0], C0 = full->ndim >= 2 ? full->shape[1] : 1;
    if (full->ndim > 2 || s.row0 < 0 || s.rows < 0 || s.row0 + s.rows > R0 || s.col0 < 0 ||
        s.cols <= 0 || s.col0 + s.cols > C0)
        return pg_err(err, "tensor parallel: %s of shape [%lld, %lld] has no slice rows %lld+%lld cols "
                      "%lld+%lld for rank %d of %d", name, (long long)R0, (long long)C0,
                      (long long)s.row0, (long long)s.rows, (long long)s.col0, (long long)s.cols,
                      lay->rank, lay->size);
    if (!dummy && !full->data) return pg_err(err, "tensor parallel: %s has no data", name);
    const int64_t out_rows = s.rows + s.pad_rows;
    if (out_rows <= 0) return pg_err(err, "tensor parallel: %s: empty shard on rank %d", name, lay->rank);
    out->shape[0] = out_rows;
    if (full->ndim == 2) out->shape[1] = s.cols;
    const size_t es = dtype_size(full->dtype);
    if (!dummy && s.cols == C0 && s.pad_rows == 0) { /* a block of whole rows: a view, no copy */
        out->data = (char *)full->data + (size_t)(s.row0 * C0) * es;
        return 0;
    }
    size_t bytes = (size_t)out_rows * (size_t)s.cols * es;
    char *buf = calloc(1, bytes ? bytes : 1); /* zero: the padding rows */
    if (!buf)
        return pg_err(err, "tensor parallel: out of memory for the %zu-byte shard of %s", bytes, name);
    if (dummy) {
        tp_fill_dummy_block(full, buf, seed, s.row0, s.rows, s.col0, s.cols);
    } else {
        /* Only the slice's bytes are read from the mapping. */
        const size_t row_bytes = (size_t)s.cols * es;
        for (int64_t i = 0; i < s.rows; i++)
            memcpy(buf + (size_t)i * row_bytes,
                   (const char *)full->data + ((size_t)((s.row0 + i) * C0 + s.col0)) * es, row_bytes);
    }
    out->data = buf;
    *owned = buf;
    return 0;
}
