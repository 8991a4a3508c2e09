/* bench_cuda_qwen3.c: Qwen3 shapes on the CUDA backend with dummy weights: batch-1 decode,
 * 2048-token prefill (time to first token) and batched decode steps, next to the card's own
 * floors measured in the same run (device copy bandwidth, bf16 GEMM rate).
 *
 * The forward is the Qwen3 layer sequence written directly against the backend op table (the
 * same sequence model/qwen3.c runs), so the backend can be timed on its own. Greedy argmax on
 * the host. Output: a human table on stderr and one JSON object on stdout.
 * Usage: bench_cuda_qwen3 [8b|4b|0.6b] [--decode N] [--bs-list 1,8,...] [--ctx N] [--no-graphs]
 *                         [--op-profile]  (per-op times of one batched step, synchronized)
 *                         [--kv-fp8]      (fp8 e4m3 KV cache, as --kv-cache-dtype fp8)
 *                         [--prefill N] [--prefill-seqs S]  (the timed prefill: N tokens, default
 *                                         2048, as S prompts of N / S tokens in one step)
 *                         [--ncu-steps K] (the last K timed steps of each batched size run between
 *                                         cudaProfilerStart and Stop: `ncu --profile-from-start
 *                                         off` then profiles exactly those graph replays)
 * Needs a GPU; not run by CTest. */
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "gpu_bw.h"
#include "gpu_util.h"
#include "util/timeutil.h"

/* Shapes of ../shared/models/shapes/qwen3-*.config.json (tests/fixtures/shapes). */
typedef struct Shape {
    const char *name;
    int D, F, L, Hq, Hkv, hd, V, tied;
} Shape;
static const Shape SHAPES[] = {
    {"Qwen3-8B", 4096, 12288, 36, 32, 8, 128, 151936, 0},
    {"Qwen3-4B", 2560, 9728, 36, 32, 8, 128, 151936, 1},
    {"Qwen3-0.6B", 1024, 3072, 28, 16, 8, 128, 151936, 1},
};

typedef struct Layer { Tensor in_norm, wq, wk, wv, qn, kn, wo, post_norm, wg, wu, wd; } Layer;

typedef struct Net {
    Shape s;
    Backend *b;
    Tensor embed, final_norm, lm_head;
    Layer *layers;
    void **kc, **vc;
    int num_blocks, block_size;
    int max_T;
    void *x, *h, *q, *k, *v, *att, *o, *g, *u, *m, *last; /* scratch, bf16 */
    RopeParams rope;
    uint64_t next_id;
    double weight_bytes;
} Net;

static void load_w(Net *n, Tensor *t, int ndim, int64_t d0, int64_t d1, float center, float hw) {
    Tensor host = {0};
    host.dtype = DT_BF16;
    host.ndim = ndim;
    host.shape[0] = d0;
    host.shape[1] = d1;
    host.name = "dummy";
    char err[512];
    if (n->b->ops->weight_load(n->b, &host, t, 1, 0, n->next_id++, center, hw, err) != 0) {
        fprintf(stderr, "weight_load: %s\n", err);
        exit(1);
    }
    n->weight_bytes += (double)tensor_numel(t) * 2;
}

static void *scratch(Net *n, size_t elems) {
    void *p = n->b->ops->alloc(n->b, elems * 2);
    if (!p) { fprintf(stderr, "scratch alloc failed\n"); exit(1); }
    return p;
}

static void net_load(Net *n, Backend *b, const Shape *s, int max_T) {
    memset(n, 0, sizeof *n);
    n->s = *s;
    n->b = b;
    n->max_T = max_T;
    int D = s->D, F = s->F, qd = s->Hq * s->hd, kd = s->Hkv * s->hd;
    if (b->ops->weight_reserve) { /* as model.c: one allocation in load order (fused QKV) */
        int64_t per_layer = 2 * (int64_t)D + (int64_t)(qd + 2 * kd) * D + 2 * s->hd + (int64_t)D * qd +
                            3 * (int64_t)F * D;
        b->ops->weight_reserve(b, (s->tied ? 1 : 2) * (int64_t)s->V * D + D + s->L * per_layer,
                               (s->tied ? 2 : 3) + 11 * s->L);
    }
    load_w(n, &n->embed, 2, s->V, D, 0, 1.0f);
    n->layers = calloc(s->L, sizeof(Layer));
    for (int l = 0; l < s->L; l++) {
        Layer *y = &n->layers[l];
        load_w(n, &y->in_norm, 1, D, 0, 1.0f, 0.1f);
        load_w(n, &y->wq, 2, qd, D, 0, sqrtf(3.f / D));
        load_w(n, &y->wk, 2, kd, D, 0, sqrtf(3.f / D));
        load_w(n, &y->wv, 2, kd, D, 0, sqrtf(3.f / D));
        load_w(n, &y->qn, 1, s->hd, 0, 1.0f, 0.1f);
        load_w(n, &y->kn, 1, s->hd, 0, 1.0f, 0.1f);
        load_w(n, &y->wo, 2, D, qd, 0, sqrtf(3.f / qd));
        load_w(n, &y->post_norm, 1, D, 0, 1.0f, 0.1f);
        load_w(n, &y->wg, 2, F, D, 0, sqrtf(3.f / D));
        load_w(n, &y->wu, 2, F, D, 0, sqrtf(3.f / D));
        load_w(n, &y->wd, 2, D, F, 0, sqrtf(3.f / F));
    }
    load_w(n, &n->final_norm, 1, D, 0, 1.0f, 0.1f);
    if (s->tied) n->lm_head = n->embed;
    else load_w(n, &n->lm_head, 2, s->V, D, 0, sqrtf(3.f / D));
    size_t T = (size_t)max_T;
    n->x = scratch(n, T * D); n->h = scratch(n, T * D); n->o = scratch(n, T * D);
    n->q = scratch(n, T * qd); n->att = scratch(n, T * qd);
    n->k = scratch(n, T * kd); n->v = scratch(n, T * kd);
    n->g = scratch(n, T * F); n->u = scratch(n, T * F); n->m = scratch(n, T * F);
    n->last = scratch(n, T * D);
    n->rope.theta = 1000000.0;
    n->rope.head_dim = s->hd;
    b->ops->sync(b);
}

/* The KV cache, filled with random values (never zeros) through the dummy weight fill. */
static void net_alloc_kv(Net *n, int num_blocks, int block_size) {
    n->num_blocks = num_blocks;
    n->block_size = block_size;
    n->kc = calloc(n->s.L, sizeof(void *));
    n->vc = calloc(n->s.L, sizeof(void *));
    int64_t elems = (int64_t)num_blocks * block_size * n->s.Hkv * n->s.hd;
    /* an fp8 cache is half the bytes: the same dummy bf16 fill over half the elements (random
     * bytes as fp8 codes; the timing does not depend on the values) */
    if (n->b->kv_dtype == DT_FP8_E4M3) elems = (elems + 1) / 2;
    for (int l = 0; l < n->s.L; l++) {
        Tensor tk, tv;
        double wb = n->weight_bytes;
        load_w(n, &tk, 1, elems, 0, 0, 1.0f);
        load_w(n, &tv, 1, elems, 0, 0, 1.0f);
        n->weight_bytes = wb;
        n->kc[l] = tk.data;
        n->vc[l] = tv.data;
    }
}

/* --op-profile: each op of one step synchronized and timed on the host (sync overhead of
 * ~10 us per op included), summed per op kind: where a batched decode step goes. */
static int g_prof;
static double g_prof_ms[12];
static const char *g_prof_names[12] = {"embed", "rmsnorm", "q/k/v gemm", "qk_norm_rope", "kv_store",
                                       "attention", "o gemm", "gate/up gemm", "silu_mul", "down gemm",
                                       "final+logits", "?"};
#define OP(kind, call)                                                        \
    do {                                                                      \
        double t0_ = 0;                                                       \
        if (g_prof) { op->sync(b); t0_ = time_now_s(); }                      \
        call;                                                                 \
        if (g_prof) { op->sync(b); g_prof_ms[kind] += (time_now_s() - t0_) * 1e3; } \
    } while (0)

/* One step on the current batch (set_batch already called): logits of the R rows to host. */
static void net_forward(Net *n, const BatchMeta *m, float *logits) {
    Backend *b = n->b;
    const BackendOps *op = b->ops;
    const Shape *s = &n->s;
    int T = m->num_tokens, D = s->D, F = s->F;
    if (g_prof) {
        op->embed(b, n->x, &n->embed, D);
        for (int l = 0; l < s->L; l++) {
            Layer *y = &n->layers[l];
            if (l == 0) OP(1, op->rmsnorm(b, n->h, NULL, n->x, &y->in_norm, T, D, 1e-6f));
            else OP(1, op->rmsnorm(b, n->h, n->x, n->o, &y->in_norm, T, D, 1e-6f));
            OP(2, op->matmul(b, n->q, n->h, &y->wq, NULL, T); op->matmul(b, n->k, n->h, &y->wk, NULL, T);
                  op->matmul(b, n->v, n->h, &y->wv, NULL, T));
            OP(3, op->qk_norm_rope(b, n->q, n->k, &y->qn, &y->kn, s->Hq, s->Hkv, s->hd, 1e-6f, &n->rope));
            OP(4, op->kv_store(b, n->kc[l], n->vc[l], n->k, n->v, s->Hkv, s->hd));
            OP(5, op->attention(b, n->att, n->q, n->kc[l], n->vc[l], s->Hq, s->Hkv, s->hd));
            OP(6, op->matmul(b, n->o, n->att, &y->wo, NULL, T));
            OP(1, op->rmsnorm(b, n->h, n->x, n->o, &y->post_norm, T, D, 1e-6f));
            OP(7, op->matmul(b, n->g, n->h, &y->wg, NULL, T); op->matmul(b, n->u, n->h, &y->wu, NULL, T));
            OP(8, op->silu_mul(b, n->m, n->g, n->u, T, F));
            OP(9, op->matmul(b, n->o, n->m, &y->wd, NULL, T));
        }
        OP(10, op->rmsnorm(b, n->h, n->x, n->o, &n->final_norm, T, D, 1e-6f); op->gather_rows(b, n->last, n->h, D);
               op->logits(b, logits, n->last, &n->lm_head, m->num_logits_rows, D, s->V));
        op->sync(b);
        return;
    }
    op->embed(b, n->x, &n->embed, D);
    for (int l = 0; l < s->L; l++) {
        Layer *y = &n->layers[l];
        if (l == 0) op->rmsnorm(b, n->h, NULL, n->x, &y->in_norm, T, D, 1e-6f);
        else op->rmsnorm(b, n->h, n->x, n->o, &y->in_norm, T, D, 1e-6f);
        op->matmul(b, n->q, n->h, &y->wq, NULL, T);
        op->matmul(b, n->k, n->h, &y->wk, NULL, T);
        op->matmul(b, n->v, n->h, &y->wv, NULL, T);
        op->qk_norm_rope(b, n->q, n->k, &y->qn, &y->kn, s->Hq, s->Hkv, s->hd, 1e-6f, &n->rope);
        op->kv_store(b, n->kc[l], n->vc[l], n->k, n->v, s->Hkv, s->hd);
        op->attention(b, n->att, n->q, n->kc[l], n->vc[l], s->Hq, s->Hkv, s->hd);
        op->matmul(b, n->o, n->att, &y->wo, NULL, T);
        op->rmsnorm(b, n->h, n->x, n->o, &y->post_norm, T, D, 1e-6f);
        op->matmul(b, n->g, n->h, &y->wg, NULL, T);
        op->matmul(b, n->u, n->h, &y->wu, NULL, T);
        op->silu_mul(b, n->m, n->g, n->u, T, F);
        op->matmul(b, n->o, n->m, &y->wd, NULL, T);
    }
    op->rmsnorm(b, n->h, n->x, n->o, &n->final_norm, T, D, 1e-6f);
    op->gather_rows(b, n->last, n->h, D);
    op->logits(b, logits, n->last, &n->lm_head, m->num_logits_rows, D, s->V);
    if (op->sync) op->sync(b);
}

/* ---------------- batches: S sequences, sequence i owns blocks [i*bps, (i+1)*bps) ---------------- */

typedef struct Step {
    BatchMeta m;
    int32_t *tok, *pos, *slot, *qs, *sl, *bt, *lr;
} Step;

static void step_alloc(Step *st, int maxT, int maxS, int bps) {
    memset(st, 0, sizeof *st);
    st->tok = calloc(maxT, 4); st->pos = calloc(maxT, 4); st->slot = calloc(maxT, 4);
    st->qs = calloc(maxS + 1, 4); st->sl = calloc(maxS, 4); st->bt = calloc((size_t)maxS * bps, 4);
    st->lr = calloc(maxS, 4);
}

/* Each sequence i has ctx[i] tokens cached and adds chunk[i] tokens. */
static void step_build(Step *st, int S, const int *ctx, const int *chunk, int bps, int bs,
                       const int32_t *tokens) {
    int t = 0, maxq = 0, maxs = 0;
    for (int i = 0; i < S; i++) {
        for (int j = 0; j < bps; j++) st->bt[i * bps + j] = i * bps + j;
        st->qs[i] = t;
        for (int j = 0; j < chunk[i]; j++, t++) {
            int p = ctx[i] + j;
            st->tok[t] = tokens ? tokens[t] : (int32_t)((p * 7919 + i * 104729) % 151000);
            st->pos[t] = p;
            st->slot[t] = st->bt[i * bps + p / bs] * bs + p % bs;
        }
        st->sl[i] = ctx[i] + chunk[i];
        st->lr[i] = t - 1;
        if (chunk[i] > maxq) maxq = chunk[i];
        if (st->sl[i] > maxs) maxs = st->sl[i];
    }
    st->qs[S] = t;
    BatchMeta *m = &st->m;
    m->num_tokens = t; m->num_seqs = S;
    m->token_ids = st->tok; m->positions = st->pos; m->slot_mapping = st->slot;
    m->query_start = st->qs; m->seq_lens = st->sl; m->block_tables = st->bt;
    m->max_blocks_per_seq = bps; m->block_size = bs;
    m->max_query_len = maxq; m->max_seq_len = maxs;
    m->logits_rows = st->lr; m->num_logits_rows = S;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) { qsort(v, n, sizeof *v, cmp_d); return n ? v[n / 2] : 0; }

/* ---------------- floors ---------------- */

static double gemm_TFLOPs(Backend *b) {
    const int n = 8192;
    Net tmp = {0};
    tmp.b = b;
    Tensor w;
    load_w(&tmp, &w, 2, n, n, 0, 0.02f);
    Tensor xt;
    load_w(&tmp, &xt, 2, n, n, 0, 1.0f);
    void *out = b->ops->alloc(b, (size_t)n * n * 2);
    double ts[10];
    for (int i = -2; i < 10; i++) {
        b->ops->sync(b);
        double t0 = time_now_s();
        b->ops->matmul(b, out, xt.data, &w, NULL, n);
        b->ops->sync(b);
        if (i >= 0) ts[i] = time_now_s() - t0;
    }
    b->ops->free(b, out);
    b->ops->weight_free(b, &w);
    b->ops->weight_free(b, &xt);
    return 2.0 * n * (double)n * n / median(ts, 10) / 1e12;
}

int main(int argc, char **argv) {
    double t_start = time_now_s();
    const Shape *s = &SHAPES[0];
    int decode_steps = 256, prompt = 128, prefill = 2048, ctx = 512, enforce_eager = 0, op_profile = 0;
    int kv_fp8 = 0, prefill_seqs = 1, ncu_steps = 0;
    int bs_list[16] = {1, 8, 32, 64, 128, 256}, nbs = 6;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "8b")) s = &SHAPES[0];
        else if (!strcmp(argv[i], "4b")) s = &SHAPES[1];
        else if (!strcmp(argv[i], "0.6b")) s = &SHAPES[2];
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc) decode_steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) ctx = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-graphs")) enforce_eager = 1;
        else if (!strcmp(argv[i], "--op-profile")) op_profile = 1;
        else if (!strcmp(argv[i], "--kv-fp8")) kv_fp8 = 1;
        else if (!strcmp(argv[i], "--prefill") && i + 1 < argc) prefill = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prefill-seqs") && i + 1 < argc) prefill_seqs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ncu-steps") && i + 1 < argc) ncu_steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bs-list") && i + 1 < argc) {
            nbs = 0;
            for (char *p = strtok(argv[++i], ","); p && nbs < 16; p = strtok(NULL, ",")) bs_list[nbs++] = atoi(p);
        } else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
    }
    char err[512];
    BackendOptions o = {0};
    o.kv_dtype = kv_fp8 ? DT_FP8_E4M3 : DT_COUNT;
    o.enforce_eager = enforce_eager;
    Backend *b = backend_new("cuda", &o, err);
    if (!b) { fprintf(stderr, "%s\n", err); return 2; }

    if (prefill < 1 || prefill_seqs < 1 || prefill % prefill_seqs) {
        fprintf(stderr, "--prefill %d must be a positive multiple of --prefill-seqs %d\n", prefill, prefill_seqs);
        return 2;
    }
    int max_bs = prefill_seqs;
    for (int i = 0; i < nbs; i++) if (bs_list[i] > max_bs) max_bs = bs_list[i];
    int block_size = 16;
    int max_ctx = ctx + 32 > prompt + decode_steps ? ctx + 32 : prompt + decode_steps;
    if (max_ctx < prefill + 1) max_ctx = prefill + 1;
    int bps = (max_ctx + block_size - 1) / block_size;
    int bps2 = (ctx + 16 + block_size - 1) / block_size; /* batched phase: ctx + 12 tokens */
    int num_blocks = bps > bps2 * max_bs ? bps : bps2 * max_bs;
    if (num_blocks < prefill_seqs * bps) num_blocks = prefill_seqs * bps; /* prefill's tables */
    int max_T = prefill > max_bs ? prefill : max_bs;

    double t0 = time_now_s();
    Net n;
    net_load(&n, b, s, max_T);
    double t_weights = time_now_s() - t0;
    t0 = time_now_s();
    net_alloc_kv(&n, num_blocks, block_size);
    b->ops->sync(b);
    double t_kv = time_now_s() - t0;
    double kv_gb = 2.0 * s->L * (double)num_blocks * block_size * s->Hkv * s->hd * 2 / 1e9;

    Step st;
    step_alloc(&st, max_T, max_bs, bps > bps2 ? bps : bps2);
    float *logits = malloc(sizeof(float) * (size_t)max_bs * s->V);
    int *cx = calloc(max_bs, sizeof(int)), *ch = calloc(max_bs, sizeof(int));

    /* warm-up: one prefill and a few decodes (plans, autotune, graph capture) */
    t0 = time_now_s();
    cx[0] = 0; ch[0] = prompt;
    step_build(&st, 1, cx, ch, bps, block_size, NULL);
    b->ops->set_batch(b, &st.m);
    net_forward(&n, &st.m, logits);
    for (int i = 0; i < 3; i++) {
        cx[0] = prompt + i; ch[0] = 1;
        step_build(&st, 1, cx, ch, bps, block_size, NULL);
        b->ops->set_batch(b, &st.m);
        net_forward(&n, &st.m, logits);
    }
    double t_warm = time_now_s() - t0;
    double t_ready = time_now_s() - t_start;

    /* batch-1 decode: prompt of `prompt` tokens, then decode_steps greedy tokens */
    cx[0] = 0; ch[0] = prompt;
    step_build(&st, 1, cx, ch, bps, block_size, NULL);
    b->ops->set_batch(b, &st.m);
    net_forward(&n, &st.m, logits);
    int32_t tok = argmax(logits, s->V);
    double *step_t = malloc(sizeof(double) * (decode_steps + 8));
    t0 = time_now_s();
    for (int i = 0; i < decode_steps; i++) {
        double ts = time_now_s();
        cx[0] = prompt + i; ch[0] = 1;
        step_build(&st, 1, cx, ch, bps, block_size, &tok);
        b->ops->set_batch(b, &st.m);
        net_forward(&n, &st.m, logits);
        tok = argmax(logits, s->V);
        step_t[i] = time_now_s() - ts;
    }
    double t_dec = time_now_s() - t0;
    double bs1_tok_s = decode_steps / t_dec;
    double bs1_step_ms = median(step_t, decode_steps) * 1e3;

    /* prefill: 2048 new tokens, logits of the last one (TTFT); with --prefill-seqs S, S prompts
     * of prefill / S tokens in one step (the engine's prefill steps under a token budget) */
    double pf[5];
    for (int r = 0; r < 5; r++) {
        for (int i = 0; i < prefill_seqs; i++) { cx[i] = 0; ch[i] = prefill / prefill_seqs; }
        double ts = time_now_s();
        step_build(&st, prefill_seqs, cx, ch, bps, block_size, NULL);
        b->ops->set_batch(b, &st.m);
        net_forward(&n, &st.m, logits);
        pf[r] = time_now_s() - ts;
    }
    double ttft_ms = median(pf, 5) * 1e3;

    /* floors, measured now on this card */
    double bw = copy_bandwidth_TBps();
    double tflops = gemm_TFLOPs(b);
    double floor_tok_s = bw * 1e12 / n.weight_bytes;
    double params = n.weight_bytes / 2;
    double prefill_floor_ms = 2.0 * params * prefill / (tflops * 1e12) * 1e3;

    fprintf(stderr, "%s on %s: weights %.2f GB (load %.2f s), KV %.2f GB (%.2f s), warm-up %.2f s, ready in %.2f s\n",
            s->name, "cuda", n.weight_bytes / 1e9, t_weights, kv_gb, t_kv, t_warm, t_ready);
    fprintf(stderr, "floors: copy %.3f TB/s -> bs1 decode floor %.1f tok/s; bf16 GEMM %.1f TFLOP/s -> prefill %d floor %.1f ms\n",
            bw, floor_tok_s, tflops, prefill, prefill_floor_ms);
    fprintf(stderr, "bs1 decode: %.1f tok/s (%.1f%% of floor), median step %.3f ms\n", bs1_tok_s,
            100 * bs1_tok_s / floor_tok_s, bs1_step_ms);
    if (prefill_seqs > 1)
        fprintf(stderr, "prefill %d in %d sequences: %.1f ms (%.2fx the floor, %.0f TFLOP/s of 2 x params)\n",
                prefill, prefill_seqs, ttft_ms, ttft_ms / prefill_floor_ms,
                2.0 * params * prefill / (ttft_ms * 1e-3) / 1e12);
    else
        fprintf(stderr, "prefill %d: TTFT %.1f ms (%.2fx the floor)\n", prefill, ttft_ms, ttft_ms / prefill_floor_ms);

    printf("{\"shape\":\"%s\",\"weights_GB\":%.3f,\"copy_TBps\":%.3f,\"bf16_TFLOPs\":%.1f,"
           "\"bs1_floor_tok_s\":%.1f,\"bs1_decode_tok_s\":%.1f,\"bs1_step_ms\":%.3f,"
           "\"prefill_tokens\":%d,\"prefill_floor_ms\":%.2f,\"ttft_ms\":%.2f,"
           "\"ready_s\":%.2f,\"weights_load_s\":%.2f,\"graphs\":%d,\"batched\":[",
           s->name, n.weight_bytes / 1e9, bw, tflops, floor_tok_s, bs1_tok_s, bs1_step_ms, prefill,
           prefill_floor_ms, ttft_ms, t_ready, t_weights, !enforce_eager);
    /* batched decode steps at context ctx */
    for (int i = 0; i < nbs; i++) {
        int bsz = bs_list[i];
        double ts[10];
        for (int r = -2; r < 10; r++) {
            for (int j = 0; j < bsz; j++) { cx[j] = ctx + (r + 2); ch[j] = 1; }
            step_build(&st, bsz, cx, ch, bps2, block_size, NULL);
            if (ncu_steps > 0 && r == 10 - ncu_steps) cudaProfilerStart();
            double t1 = time_now_s();
            b->ops->set_batch(b, &st.m);
            /* logits stay on the device (the engine samples there), as in serving */
            net_forward(&n, &st.m, b->ops->sample ? NULL : logits);
            if (r >= 0) ts[r] = time_now_s() - t1;
        }
        if (ncu_steps > 0) { b->ops->sync(b); cudaProfilerStop(); }
        double ms = median(ts, 10) * 1e3;
        fprintf(stderr, "decode bs=%d ctx=%d: step %.3f ms, %.0f tok/s\n", bsz, ctx, ms, bsz / ms * 1e3);
        if (op_profile) {
            memset(g_prof_ms, 0, sizeof g_prof_ms);
            g_prof = 1;
            b->ops->set_batch(b, &st.m);
            net_forward(&n, &st.m, b->ops->sample ? NULL : logits);
            g_prof = 0;
            double tot = 0;
            for (int k = 0; k < 12; k++) tot += g_prof_ms[k];
            fprintf(stderr, "  op profile (synchronized, eager-equivalent) total %.2f ms:", tot);
            for (int k = 1; k < 11; k++) fprintf(stderr, " %s %.2f;", g_prof_names[k], g_prof_ms[k]);
            fprintf(stderr, "\n");
        }
        printf("%s{\"bs\":%d,\"ctx\":%d,\"step_ms\":%.3f,\"tok_s\":%.1f}", i ? "," : "", bsz, ctx, ms,
               bsz / ms * 1e3);
    }
    printf("]}\n");
    b->ops->destroy(b);
    return 0;
}
