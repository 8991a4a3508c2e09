/* cpu_backend.c: the CPU backend's op table, memory, weights and per-step batch.
 *
 * Memory is host memory (aligned_alloc); "device" copies are memcpy. Weights loaded from a
 * checkpoint are aliased (bf16 stays bf16 in the mmap; no float32 copy of the model). Dummy
 * weights are allocated here and filled in place, in parallel, with dummy_weight_value(). */
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <unistd.h>

#include "backend/cpu/cpu_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/rng.h"

/* ---------- ISA ---------- */

static const char *ISA_NAMES[CPU_ISA_COUNT] = {"scalar", "avx2", "avx512", "avx512bf16"};

const char *cpu_isa_name(CpuIsa isa) { return (unsigned)isa < CPU_ISA_COUNT ? ISA_NAMES[isa] : "?"; }

int cpu_isa_parse(const char *s, CpuIsa *out) {
    for (int i = 0; i < CPU_ISA_COUNT; i++)
        if (strcmp(s, ISA_NAMES[i]) == 0) { *out = (CpuIsa)i; return 0; }
    return -1;
}

#if defined(__x86_64__)
/* F16C from CPUID leaf 1 directly: clang 14's __builtin_cpu_supports does not know "f16c". */
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

int cpu_isa_supported(CpuIsa isa) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    switch (isa) {
    case CPU_ISA_SCALAR: return 1;
    case CPU_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               cpu_has_f16c();
    case CPU_ISA_AVX512: return cpu_isa_supported(CPU_ISA_AVX2) && __builtin_cpu_supports("avx512f");
    case CPU_ISA_AVX512_BF16:
        return cpu_isa_supported(CPU_ISA_AVX512) && __builtin_cpu_supports("avx512bf16");
    default: return 0;
    }
#else
    return isa == CPU_ISA_SCALAR;
#endif
}

CpuIsa cpu_isa_best(void) {
    for (int i = CPU_ISA_COUNT - 1; i > 0; i--)
        if (cpu_isa_supported((CpuIsa)i)) return (CpuIsa)i;
    return CPU_ISA_SCALAR;
}

/* The default kernels: AVX-512F even where AVX-512-BF16 exists. vdpbf16ps only multiplies bf16
 * by bf16, so float32 activations need three bf16 planes (three dot products per weight
 * vector) to keep float32 accuracy; measured on a 16-core Xeon (docs/benchmarks.md, CPU
 * forward), widening the bf16 weights and using FMA is faster for prefill and no slower for
 * decode. The BF16 kernel stays available (PAGELLM_CPU_ISA=avx512bf16) and tested. */
static CpuIsa cpu_isa_default(void) {
    CpuIsa best = cpu_isa_best();
    return best == CPU_ISA_AVX512_BF16 ? CPU_ISA_AVX512 : best;
}

int backend_cpu_set_isa(Backend *b, CpuIsa isa, char *err) {
    if (!cpu_isa_supported(isa))
        return pg_err(err, "cpu backend: this processor does not support %s", cpu_isa_name(isa));
    cpu_ctx(b)->isa = isa;
    return 0;
}

CpuIsa backend_cpu_isa(const Backend *b) { return ((const CpuCtx *)b->ctx)->isa; }
int backend_cpu_threads(const Backend *b) { return ((const CpuCtx *)b->ctx)->nthreads; }

/* ---------- memory ---------- */

int cpu_scratch_reserve(void **buf, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return 0;
    size_t n = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n);
    if (!p) return -1;
    free(*buf);
    *buf = p;
    *cap = n;
    return 0;
}

static void *cpu_alloc(Backend *b, size_t bytes) {
    size_t n = (bytes + 255) & ~(size_t)255;
    return aligned_alloc(256, n ? n : 256);
}
static void cpu_free(Backend *b, void *p) { free(p); }
static void cpu_memset0(Backend *b, void *p, size_t bytes) { memset(p, 0, bytes); }
static void cpu_copy(Backend *b, void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }

static long long cpu_mem_free(Backend *b) {
    long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    return pages > 0 && psz > 0 ? (long long)pages * psz : -1;
}

/* ---------- weights ---------- */

typedef struct {
    void *data;
    DType dt;
    int64_t n;
    uint64_t seed, tensor_id;
    float center, half_width;
} DummyFill;

static void dummy_fill_task(void *arg, int ith, int nth) {
    const DummyFill *f = arg;
    int64_t chunk = (f->n + nth - 1) / nth, i0 = chunk * ith, i1 = i0 + chunk < f->n ? i0 + chunk : f->n;
    for (int64_t i = i0; i < i1; i++) {
        float v = dummy_weight_value(f->seed, f->tensor_id, (uint64_t)i, f->center, f->half_width);
        if (f->dt == DT_F32) ((float *)f->data)[i] = v;
        else if (f->dt == DT_BF16) ((uint16_t *)f->data)[i] = f32_to_bf16(v);
        else ((uint16_t *)f->data)[i] = f32_to_f16(v);
    }
}

static int cpu_weight_load(Backend *b, const Tensor *host, Tensor *dev, int dummy, uint64_t seed,
                           uint64_t tensor_id, float center, float half_width, char *err) {
    CpuCtx *c = cpu_ctx(b);
    *dev = *host;
    if (host->data) return 0; /* alias the mmap / host allocation */
    if (!dummy) return pg_err(err, "cpu backend: tensor %s has no data", host->name ? host->name : "?");
    if (host->dtype != DT_F32 && host->dtype != DT_BF16 && host->dtype != DT_F16)
        return pg_err(err, "cpu backend: dummy tensor %s: dtype %s not supported (f32, f16, bf16)",
                      host->name ? host->name : "?", dtype_name(host->dtype));
    int64_t n = tensor_numel(host);
    if (n <= 0) return pg_err(err, "cpu backend: tensor %s has no elements", host->name ? host->name : "?");
    if (c->n_owned == c->cap_owned) {
        size_t nc = c->cap_owned ? 2 * c->cap_owned : 64;
        void **p = realloc(c->owned, nc * sizeof *p);
        if (!p) return pg_err(err, "cpu backend: out of memory");
        c->owned = p;
        c->cap_owned = nc;
    }
    size_t bytes = (size_t)n * dtype_size(host->dtype);
    void *data = cpu_alloc(b, bytes);
    if (!data)
        return pg_err(err, "cpu backend: out of memory allocating %zu bytes for %s", bytes,
                      host->name ? host->name : "?");
    DummyFill f = {data, host->dtype, n, seed, tensor_id, center, half_width};
    pool_run_n(c->pool, dummy_fill_task, &f, n < 65536 ? 1 : c->nthreads);
    c->owned[c->n_owned++] = data;
    dev->data = data;
    return 0;
}

static void cpu_weight_free(Backend *b, Tensor *dev) {
    CpuCtx *c = cpu_ctx(b);
    for (size_t i = 0; i < c->n_owned; i++)
        if (c->owned[i] == dev->data) {
            free(c->owned[i]);
            c->owned[i] = c->owned[--c->n_owned];
            break;
        }
    dev->data = NULL; /* aliases of the host mapping are the loader's to free */
}

/* ---------- batch ---------- */

static int grow_i32(int32_t **p, size_t *cap, size_t n) {
    if (n <= *cap) return 0;
    size_t nc = n < 64 ? 64 : n * 2;
    int32_t *q = realloc(*p, nc * sizeof *q);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static void cpu_set_batch(Backend *b, const BatchMeta *m) {
    CpuCtx *c = cpu_ctx(b);
    CpuBatch *bt = &c->batch;
    size_t T = (size_t)m->num_tokens, S = (size_t)m->num_seqs, R = (size_t)m->num_logits_rows;
    size_t BT = S * (size_t)m->max_blocks_per_seq;
    int32_t **arrays[8] = {&bt->token_ids, &bt->positions, &bt->slot_mapping, &bt->token_seq,
                           &bt->query_start, &bt->seq_lens, &bt->block_tables, &bt->logits_rows};
    size_t need[8] = {T, T, T, T, S + 1, S, BT, R};
    /* A few ints per token: running out here leaves no sane way on (the op has no error path). */
    for (int i = 0; i < 8; i++) CHECK(grow_i32(arrays[i], &bt->cap[i], need[i]) == 0);
    bt->num_tokens = (int)T;
    bt->num_seqs = (int)S;
    bt->max_blocks_per_seq = m->max_blocks_per_seq;
    bt->block_size = m->block_size;
    bt->num_logits_rows = (int)R;
    if (T) {
        memcpy(bt->token_ids, m->token_ids, T * 4);
        if (m->token_src_row)   /* async scheduling: pending tokens from the last launched samples */
            for (size_t t = 0; t < T; t++)
                if (m->token_src_row[t] >= 0) {
                    int32_t tok = cpu_sample_pending_token(c, m->token_src_row[t]);
                    CHECK(tok != -2);   /* a row the last launch did not sample: an engine bug */
                    /* -1 (a row with no allowed token): the engine fails that sequence when it
                     * collects the row and drops this step's token; any valid id will do */
                    bt->token_ids[t] = tok < 0 ? 0 : tok;
                }
        memcpy(bt->positions, m->positions, T * 4);
        memcpy(bt->slot_mapping, m->slot_mapping, T * 4);
    }
    memcpy(bt->query_start, m->query_start, (S + 1) * 4);
    if (S) memcpy(bt->seq_lens, m->seq_lens, S * 4);
    if (BT) memcpy(bt->block_tables, m->block_tables, BT * 4);
    if (R) memcpy(bt->logits_rows, m->logits_rows, R * 4);
    for (size_t t = 0; t < T; t++) bt->token_seq[t] = 0;
    for (size_t s = 0; s < S; s++)
        for (int t = m->query_start[s]; t < m->query_start[s + 1]; t++)
            if (t >= 0 && (size_t)t < T) bt->token_seq[t] = (int32_t)s;
    c->step++;
}

/* ---------- lifetime ---------- */

static void cpu_destroy(Backend *b) {
    if (!b) return;
    CpuCtx *c = cpu_ctx(b);
    if (c) {
        pool_free(c->pool);
        CpuBatch *bt = &c->batch;
        free(bt->token_ids); free(bt->positions); free(bt->slot_mapping); free(bt->token_seq);
        free(bt->query_start); free(bt->seq_lens); free(bt->block_tables); free(bt->logits_rows);
        free(c->rope_cos); free(c->rope_sin); free(c->xsplit);
        free(c->logits_keep);
        cpu_samplers_free(c);
        for (int i = 0; i < 2; i++) { free(c->async_out[i].tokens); free(c->async_out[i].lps); }
        for (size_t i = 0; i < c->n_owned; i++) free(c->owned[i]);
        free(c->owned);
        free(c);
    }
    free(b);
}

static const BackendOps CPU_OPS = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .memset0 = cpu_memset0,
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .weight_load = cpu_weight_load,
    .weight_free = cpu_weight_free,
    .mem_free = cpu_mem_free,
    .set_batch = cpu_set_batch,
    .embed = cpu_embed,
    .rmsnorm = cpu_rmsnorm,
    .matmul = cpu_matmul,
    .qk_norm_rope = cpu_qk_norm_rope,
    .kv_store = cpu_kv_store,
    .attention = cpu_attention,
    .silu_mul = cpu_silu_mul,
    .gather_rows = cpu_gather_rows,
    .logits = cpu_logits,
    .sample = cpu_sample,
    .sync = NULL,
    .destroy = cpu_destroy,
    .sample_launch = cpu_sample_launch,
    .sample_collect = cpu_sample_collect,
};

Backend *backend_cpu_new(const BackendOptions *opt, char *err) {
    BackendOptions dflt = {0, 0, DT_COUNT, 0};
    if (!opt) opt = &dflt;
    DType kv = opt->kv_dtype == DT_COUNT ? DT_F32 : opt->kv_dtype;
    if (kv != DT_F32) {
        pg_err(err, "cpu backend: kv cache dtype %s not supported (only f32)", dtype_name(kv));
        return NULL;
    }
    Backend *b = calloc(1, sizeof *b);
    CpuCtx *c = calloc(1, sizeof *c);
    if (!b || !c) { free(b); free(c); pg_err(err, "cpu backend: out of memory"); return NULL; }
    b->ops = &CPU_OPS;
    b->name = "cpu";
    b->act_dtype = DT_F32;
    b->kv_dtype = kv;
    b->ctx = c;
    c->async_last = -1;
    c->pool = pool_new(opt->threads, err);
    if (!c->pool) { free(c); free(b); return NULL; }
    c->nthreads = pool_size(c->pool);
    c->isa = cpu_isa_default();
    const char *force = getenv("PAGELLM_CPU_ISA");
    if (force && *force) {
        CpuIsa isa;
        if (cpu_isa_parse(force, &isa) != 0) {
            pg_err(err, "PAGELLM_CPU_ISA=%s: expected scalar, avx2, avx512 or avx512bf16", force);
            cpu_destroy(b);
            return NULL;
        }
        if (backend_cpu_set_isa(b, isa, err) != 0) { cpu_destroy(b); return NULL; }
    }
    LOG_I("cpu backend: %d threads, %s kernels", c->nthreads, cpu_isa_name(c->isa));
    return b;
}
