/* test_cuda_model.c: the whole model (model/qwen3.c) on the CUDA backend against the CPU backend
 * and HF transformers goldens.
 *
 *  - tiny models (models/, from scripts/make_tiny_models.py; goldens in tests/fixtures/goldens):
 *    all golden prompts as sequences of one step, logits at every position: CUDA vs CPU
 *    (||cuda - cpu|| / ||cpu|| per row, bf16 bound 3e-2) and argmax vs HF's; then prompt 0
 *    prefilled and HF's 32 greedy tokens fed one decode step at a time (CUDA graphs on):
 *    CUDA's argmax must match HF's next greedy token at >= 95% of the steps.
 *  - Qwen3 shapes with identical dummy weights on both backends (tests/fixtures/shapes):
 *    S random prompts of L tokens, every position's argmax and logits CUDA vs CPU.
 *  - --hf-ref 0.6b=FILE,8b=FILE: the shapes against HF transformers on the same GPU
 *    (scripts/hf_shape_ref.py: the same dummy weights, f32 compute, 64 prompts x 128 tokens,
 *    teacher-forced). CUDA runs positions [0, L/2) as prefill steps of 8 sequences and
 *    [L/2, L) as decode steps of S-3 and 3 sequences, through the engine's start-up graph
 *    capture (vLLM sizes: the steps run padded to the next capture size). Every position's
 *    argmax against HF's (>= 95% must agree), full-row logits error on every 16th position
 *    (<= 3e-2, the bf16 bound), and HF's top logit against CUDA's value for that token.
 *    --make-ref SHAPE=FILE writes such a file from the CPU backend instead (no HF; slow for 8B;
 *    --ref-seqs/--ref-len set its size), e.g. to check this harness without a GPU.
 * Usage: test_cuda_model [--shapes 0.6b,8b] [--hf-ref SHAPE=FILE,...] [--make-ref SHAPE=FILE]
 * [--ref-seqs 64 --ref-len 128]. Needs a GPU (PAGELLM_TEST_GPU_DEVICE=cpu runs the harness on
 * the CPU backend); not run by CTest. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "engine/startup.h"
#include "model/model.h"
#include "util/err.h"
#include "util/rng.h"
#include "util/timeutil.h"

#define BS 16
#define MAXB 64 /* blocks per sequence */

static int failures = 0;

typedef struct Run {
    int S;
    int len[64];
    int32_t *ids[64];
} Run;

/* One prefill step of all sequences (fresh, no prefix), logits at every position. Sequence s
 * owns blocks [s*MAXB, (s+1)*MAXB) in reverse order. Returns [T, V] logits (malloc). */
static float *prefill_all(Model *m, const Run *r, int *T_out, char *err) {
    int T = 0;
    for (int s = 0; s < r->S; s++) T += r->len[s];
    int32_t *ids = malloc(4 * T), *pos = malloc(4 * T), *slot = malloc(4 * T), *rows = malloc(4 * T);
    int32_t qs[65], lens[64], *tables = malloc(4 * (size_t)r->S * MAXB);
    int t = 0, maxq = 0;
    for (int s = 0; s < r->S; s++) {
        for (int i = 0; i < MAXB; i++) tables[s * MAXB + i] = (s + 1) * MAXB - 1 - i;
        qs[s] = t;
        for (int i = 0; i < r->len[s]; i++, t++) {
            ids[t] = r->ids[s][i];
            pos[t] = i;
            slot[t] = tables[s * MAXB + i / BS] * BS + i % BS;
            rows[t] = t;
        }
        lens[s] = r->len[s];
        if (r->len[s] > maxq) maxq = r->len[s];
    }
    qs[r->S] = t;
    BatchMeta b = {.num_tokens = T, .num_seqs = r->S, .token_ids = ids, .positions = pos,
                   .slot_mapping = slot, .query_start = qs, .seq_lens = lens,
                   .block_tables = tables, .max_blocks_per_seq = MAXB, .block_size = BS,
                   .max_query_len = maxq, .max_seq_len = maxq, .logits_rows = rows,
                   .num_logits_rows = T};
    float *logits = malloc((size_t)T * m->cfg.vocab_size * sizeof(float));
    for (size_t i = 0; i < (size_t)T * m->cfg.vocab_size; i++) logits[i] = NAN;
    int rc = model_forward(m, &b, logits, err);
    free(ids); free(pos); free(slot); free(rows); free(tables);
    if (rc != 0) { free(logits); return NULL; }
    *T_out = T;
    return logits;
}

/* One decode step of sequence 0 at position p with token tok; logits [V] into out. */
static int decode_one(Model *m, int p, int32_t tok, float *out, char *err) {
    int32_t table[MAXB];
    for (int i = 0; i < MAXB; i++) table[i] = MAXB - 1 - i;
    int32_t pos = p, slot = table[p / BS] * BS + p % BS, qs[2] = {0, 1}, len = p + 1, row = 0;
    BatchMeta b = {.num_tokens = 1, .num_seqs = 1, .token_ids = &tok, .positions = &pos,
                   .slot_mapping = &slot, .query_start = qs, .seq_lens = &len,
                   .block_tables = table, .max_blocks_per_seq = MAXB, .block_size = BS,
                   .max_query_len = 1, .max_seq_len = len, .logits_rows = &row,
                   .num_logits_rows = 1};
    return model_forward(m, &b, out, err);
}

static int argmax(const float *x, int n) {
    int a = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[a]) a = i;
    return a;
}

static double row_rel(const float *a, const float *ref, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static Model *load(const char *dir, Backend *be, int dummy, int max_tokens, char *err) {
    Model *m = NULL;
    ModelLoadOptions mo = {.weights = {.format = dummy ? LOAD_FORMAT_DUMMY : LOAD_FORMAT_AUTO,
                                       .dummy_dtype = DT_BF16},
                           .max_tokens = max_tokens, .max_seqs = 8};
    if (model_load(&m, dir, be, &mo, err) != 0) return NULL;
    if (model_alloc_kv(m, 8 * MAXB, BS, err) != 0) { model_free(m); return NULL; }
    return m;
}

/* CUDA vs CPU on one prefill step; returns the argmax agreement fraction. */
static double compare_prefill(const char *name, Model *mg, Model *mc, const Run *r,
                              const int *hf_argmax /* [T] or NULL */) {
    char err[PG_ERR_LEN];
    int T = 0, T2 = 0, V = mg->cfg.vocab_size;
    double t0 = time_now_s();
    float *lg = prefill_all(mg, r, &T, err);
    double tg = time_now_s() - t0;
    t0 = time_now_s();
    float *lc = prefill_all(mc, r, &T2, err);
    double tc = time_now_s() - t0;
    if (!lg || !lc) {
        printf("%s: forward failed: %s\n", name, err);
        failures++;
        free(lg); free(lc);
        return 0;
    }
    double worst = 0, sum = 0, dis_margin = 0;
    int agree = 0, agree_hf = 0, hf_n = 0;
    for (int t = 0; t < T; t++) {
        const float *g = lg + (size_t)t * V, *c = lc + (size_t)t * V;
        double e = row_rel(g, c, V);
        if (e > worst) worst = e;
        sum += e;
        int ag = argmax(g, V), ac = argmax(c, V);
        agree += ag == ac;
        if (ag != ac) { /* the CPU's own margin between its top token and CUDA's */
            double den = fabs(c[ac]) > 1e-6 ? fabs(c[ac]) : 1e-6, mg = (c[ac] - c[ag]) / den;
            if (mg > dis_margin) dis_margin = mg;
        }
        if (hf_argmax) { hf_n++; agree_hf += ag == hf_argmax[t]; }
    }
    double frac = (double)agree / T;
    /* Random dummy weights leave many near-ties, so the agreement of a few hundred positions
     * varies by about 1% from seed to seed (94.7% once on the H100 at the same ~2e-2 error).
     * What must hold: the bf16 error bound, agreement >= 93%, and every disagreement at a
     * near-tie (the CPU's margin <= 5% of its top logit, about twice the row error). */
    int ok = worst <= 3e-2 && frac >= 0.93 && dis_margin <= 0.05;
    if (!ok) failures++;
    printf("%-16s prefill S=%d T=%d: logits rel err cuda vs cpu mean %.2e max %.2e; argmax agree "
           "%d/%d (%.1f%%), disagreements at cpu margins <= %.2f%%", name, r->S, T, sum / T, worst,
           agree, T, 100 * frac, 100 * dis_margin);
    if (hf_argmax) printf("; vs HF argmax %d/%d", agree_hf, hf_n);
    printf(" [cuda %.2f s, cpu %.2f s] %s\n", tg, tc, ok ? "ok" : "FAIL");
    free(lg); free(lc);
    return frac;
}

static json_t *jget(json_t *o, const char *k) { return json_object_get(o, k); }

static void tiny_model(const char *name, Backend *gpu, Backend *cpu) {
    char dir[256], path[256], err[PG_ERR_LEN];
    snprintf(dir, sizeof dir, "models/%s", name);
    snprintf(path, sizeof path, "tests/fixtures/goldens/%s.json", name);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    struct stat st;
    if (!root || stat(dir, &st) != 0) {
        printf("%s: missing %s or %s (python3 scripts/make_tiny_models.py)\n", name, dir, path);
        failures++;
        json_decref(root);
        return;
    }
    Model *mg = load(dir, gpu, 0, 1024, err), *mc = mg ? load(dir, cpu, 0, 1024, err) : NULL;
    if (!mg || !mc) {
        printf("%s: load failed: %s\n", name, err);
        failures++;
        goto out;
    }
    json_t *prompts = jget(root, "prompts");
    Run r = {0};
    int *hf_am = malloc(sizeof(int) * 8 * MAXB * BS), nam = 0;
    r.S = (int)json_array_size(prompts);
    if (r.S > 8) r.S = 8;
    for (int s = 0; s < r.S; s++) {
        json_t *ids = jget(json_array_get(prompts, s), "ids"), *am = jget(json_array_get(prompts, s), "argmax");
        r.len[s] = (int)json_array_size(ids);
        if (r.len[s] > MAXB * BS - 40) r.len[s] = MAXB * BS - 40;
        r.ids[s] = malloc(4 * r.len[s]);
        for (int i = 0; i < r.len[s]; i++) {
            r.ids[s][i] = (int32_t)json_integer_value(json_array_get(ids, i));
            hf_am[nam++] = (int)json_integer_value(json_array_get(am, i));
        }
    }
    compare_prefill(name, mg, mc, &r, hf_am);
    /* teacher-forced greedy decode on the GPU, HF's tokens */
    json_t *p0 = json_array_get(prompts, 0), *greedy = jget(p0, "greedy");
    int ng = (int)json_array_size(greedy), V = mg->cfg.vocab_size;
    Run r0 = {.S = 1};
    r0.len[0] = r.len[0];
    r0.ids[0] = r.ids[0];
    int T = 0;
    float *lg = prefill_all(mg, &r0, &T, err);
    int agree = lg && argmax(lg + (size_t)(T - 1) * V, V) == (int)json_integer_value(json_array_get(greedy, 0));
    float *row = malloc(sizeof(float) * V);
    for (int k = 0; k + 1 < ng && lg; k++) {
        int32_t tok = (int32_t)json_integer_value(json_array_get(greedy, k));
        if (decode_one(mg, r0.len[0] + k, tok, row, err) != 0) { printf("decode: %s\n", err); break; }
        agree += argmax(row, V) == (int)json_integer_value(json_array_get(greedy, k + 1));
    }
    int ok = agree >= 0.95 * ng;
    if (!ok) failures++;
    printf("%-16s greedy (teacher-forced, CUDA graphs): %d/%d of HF's greedy tokens %s\n", name,
           agree, ng, ok ? "ok" : "FAIL");
    free(lg); free(row); free(hf_am);
    for (int s = 0; s < r.S; s++) free(r.ids[s]);
out:
    if (mg) model_free(mg);
    if (mc) model_free(mc);
    json_decref(root);
}

/* A temporary model directory holding the shape's config.json (dummy weights): dir (a
 * mkdtemp template of 32 bytes) and dst (its config.json path). 0, or -1 after a message. */
static int shape_dir(const char *which, char *dir, char *dst, size_t dst_len) {
    char src[256];
    strcpy(dir, "/tmp/pagellm-shape-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(src, sizeof src, "tests/fixtures/shapes/qwen3-%s.config.json", which);
    snprintf(dst, dst_len, "%s/config.json", dir);
    FILE *fi = fopen(src, "rb"), *fo = fopen(dst, "wb");
    if (!fi || !fo) {
        printf("%s: cannot copy %s\n", which, src);
        if (fi) fclose(fi);
        if (fo) fclose(fo);
        rmdir(dir);
        return -1;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fi)) > 0) fwrite(buf, 1, n, fo);
    fclose(fi);
    fclose(fo);
    return 0;
}

static void shape(const char *which, Backend *gpu, Backend *cpu, int S, int L, Rng *rng) {
    char dir[32], dst[300], err[PG_ERR_LEN];
    if (shape_dir(which, dir, dst, sizeof dst) != 0) { failures++; return; }
    double t0 = time_now_s();
    Model *mg = load(dir, gpu, 1, S * L, err);
    double tg = time_now_s() - t0;
    t0 = time_now_s();
    Model *mc = mg ? load(dir, cpu, 1, S * L, err) : NULL;
    double tc = time_now_s() - t0;
    if (!mg || !mc) { printf("%s: load failed: %s\n", which, err); failures++; goto out; }
    printf("qwen3-%s dummy weights loaded: cuda %.2f s, cpu %.2f s\n", which, tg, tc);
    Run r = {.S = S};
    for (int s = 0; s < S; s++) {
        r.len[s] = L;
        r.ids[s] = malloc(4 * L);
        for (int i = 0; i < L; i++) r.ids[s][i] = (int32_t)(rng_next(rng) % 151000);
    }
    char name[64];
    snprintf(name, sizeof name, "qwen3-%s", which);
    compare_prefill(name, mg, mc, &r, NULL);
    for (int s = 0; s < S; s++) free(r.ids[s]);
out:
    if (mg) model_free(mg);
    if (mc) model_free(mc);
    unlink(dst);
    rmdir(dir);
}

/* ---------------- the Qwen3 shapes against HF transformers (scripts/hf_shape_ref.py) ---------------- */

/* The reference file: S prompts of L tokens, HF's argmax and top-2 logits at every position,
 * full logits rows at K positions (layout in scripts/hf_shape_ref.py). */
typedef struct HfRef {
    int S, L, V, K;
    int32_t *ids, *argmax, *rows; /* [S*L], [S*L], [K] */
    float *top1, *top2;           /* [S*L] */
    float *logits;                /* [K, V] */
    int *row_of;                  /* [S*L]: index into rows, or -1 */
} HfRef;

static void hfref_free(HfRef *r) {
    free(r->ids); free(r->argmax); free(r->rows); free(r->top1); free(r->top2); free(r->logits);
    free(r->row_of);
    memset(r, 0, sizeof *r);
}

static int read_all(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n ? 0 : -1; }

static int hfref_read(const char *path, HfRef *r) {
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "rb");
    char magic[8];
    int32_t h[4];
    if (!f) { printf("hf-ref %s: cannot open\n", path); return -1; }
    if (read_all(f, magic, 8) || memcmp(magic, "PGHFREF1", 8) || read_all(f, h, sizeof h) ||
        h[0] <= 0 || h[1] <= 0 || h[2] <= 0 || h[3] < 0) {
        printf("hf-ref %s: not a PGHFREF1 file\n", path);
        fclose(f);
        return -1;
    }
    r->S = h[0]; r->L = h[1]; r->V = h[2]; r->K = h[3];
    size_t n = (size_t)r->S * r->L;
    r->ids = malloc(4 * n); r->argmax = malloc(4 * n); r->top1 = malloc(4 * n); r->top2 = malloc(4 * n);
    r->rows = malloc(4 * (size_t)r->K + 4); r->logits = malloc(4 * (size_t)r->K * r->V + 4);
    r->row_of = malloc(sizeof(int) * n);
    int bad = !r->ids || !r->argmax || !r->top1 || !r->top2 || !r->rows || !r->logits || !r->row_of ||
              read_all(f, r->ids, 4 * n) || read_all(f, r->argmax, 4 * n) || read_all(f, r->top1, 4 * n) ||
              read_all(f, r->top2, 4 * n) || read_all(f, r->rows, 4 * (size_t)r->K) ||
              read_all(f, r->logits, 4 * (size_t)r->K * r->V);
    fclose(f);
    if (bad) { printf("hf-ref %s: truncated\n", path); hfref_free(r); return -1; }
    for (size_t i = 0; i < n; i++) r->row_of[i] = -1;
    for (int k = 0; k < r->K; k++)
        if (r->rows[k] >= 0 && (size_t)r->rows[k] < n) r->row_of[r->rows[k]] = k;
    return 0;
}

typedef struct HfStats {
    int n, agree, n_pre, agree_pre;
    int nrows;                  /* full rows compared */
    double rel_sum, rel_max, abs_max;
    double top_rel_max;         /* |cuda[hf argmax] - hf top1| / |hf top1|, every position */
    double dis_margin_max;      /* largest (top1 - top2) / |top1| of HF where argmax differs */
    int nonfinite;
} HfStats;

/* One position's logits row (CUDA) against HF's at flat index i. */
static void hf_compare_row(const HfRef *r, int i, const float *row, int prefill, HfStats *st) {
    const int V = r->V;
    int a = argmax(row, V), ok = a == r->argmax[i];
    for (int v = 0; v < V; v++)
        if (!isfinite(row[v])) { st->nonfinite++; break; }
    st->n++;
    st->agree += ok;
    if (prefill) { st->n_pre++; st->agree_pre += ok; }
    double t1 = r->top1[i], den = fabs(t1) > 1e-6 ? fabs(t1) : 1e-6;
    double tr = fabs(row[r->argmax[i]] - t1) / den;
    if (tr > st->top_rel_max) st->top_rel_max = tr;
    if (!ok) {
        double mg = (t1 - r->top2[i]) / den;
        if (mg > st->dis_margin_max) st->dis_margin_max = mg;
    }
    int k = r->row_of[i];
    if (k >= 0) {
        const float *ref = r->logits + (size_t)k * V;
        double e = row_rel(row, ref, V);
        st->nrows++;
        st->rel_sum += e;
        if (e > st->rel_max) st->rel_max = e;
        for (int v = 0; v < V; v++) {
            double d = fabs((double)row[v] - ref[v]);
            if (d > st->abs_max) st->abs_max = d;
        }
    }
}

/* Positions [0, L/2) of every sequence in prefill steps of 8 sequences, then [L/2, L) in decode
 * steps of two batches (S-3 and 3 sequences: both padded to a capture size), teacher-forced
 * with the reference's tokens; every logits row compared as it comes. */
static void hf_shape(const char *which, const char *path, Backend *gpu) {
    char dir[32], dst[300], err[PG_ERR_LEN];
    HfRef r;
    if (hfref_read(path, &r) != 0) { failures++; return; }
    if (shape_dir(which, dir, dst, sizeof dst) != 0) { failures++; hfref_free(&r); return; }
    const int S = r.S, L = r.L, V = r.V, P0 = L / 2, G = 8, nbps = (L + BS - 1) / BS;
    const int max_tokens = G * P0 > S ? G * P0 : S;
    Model *m = NULL;
    ModelLoadOptions mo = {.weights = {.format = LOAD_FORMAT_DUMMY, .dummy_dtype = DT_BF16},
                           .max_tokens = max_tokens, .max_seqs = S};
    int32_t *ids = malloc(4 * (size_t)max_tokens), *pos = malloc(4 * (size_t)max_tokens);
    int32_t *slot = malloc(4 * (size_t)max_tokens), *rows = malloc(4 * (size_t)max_tokens);
    int32_t *qs = malloc(4 * (size_t)(S + 1)), *lens = malloc(4 * (size_t)S);
    int32_t *bt = malloc(4 * (size_t)S * nbps);
    float *lg = malloc(sizeof(float) * (size_t)max_tokens * V);
    HfStats st = {0};
    double t_pre = 0, t_dec = 0;
    if (!ids || !pos || !slot || !rows || !qs || !lens || !bt || !lg) { printf("%s: out of memory\n", which); failures++; goto out; }
    if (model_load(&m, dir, gpu, &mo, err) != 0 || model_alloc_kv(m, S * nbps + 1, BS, err) != 0) {
        printf("qwen3-%s: load failed: %s\n", which, err);
        failures++;
        goto out;
    }
    if (m->cfg.vocab_size != V) { printf("qwen3-%s: vocab %d, reference %d\n", which, m->cfg.vocab_size, V); failures++; goto out; }
    double t0, t_cap = 0;
    /* sequence s owns blocks 1 + s*nbps .. in reverse (block 0: the capture's dummy reads) */
    for (int s = 0; s < S; s++)
        for (int j = 0; j < nbps; j++) bt[s * nbps + j] = 1 + s * nbps + (nbps - 1 - j);
    t0 = time_now_s();
    for (int s0 = 0; s0 < S; s0 += G) {
        int ns = S - s0 < G ? S - s0 : G, t = 0;
        for (int s = 0; s < ns; s++) {
            qs[s] = t;
            for (int p = 0; p < P0; p++, t++) {
                ids[t] = r.ids[(s0 + s) * L + p];
                pos[t] = p;
                slot[t] = bt[(s0 + s) * nbps + p / BS] * BS + p % BS;
                rows[t] = t;
            }
            lens[s] = P0;
        }
        qs[ns] = t;
        BatchMeta b = {.num_tokens = t, .num_seqs = ns, .token_ids = ids, .positions = pos,
                       .slot_mapping = slot, .query_start = qs, .seq_lens = lens,
                       .block_tables = bt + s0 * nbps, .max_blocks_per_seq = nbps, .block_size = BS,
                       .max_query_len = P0, .max_seq_len = P0, .logits_rows = rows, .num_logits_rows = t};
        if (model_forward(m, &b, lg, err) != 0) { printf("qwen3-%s: prefill: %s\n", which, err); failures++; goto out; }
        for (int s = 0; s < ns; s++)
            for (int p = 0; p < P0; p++) hf_compare_row(&r, (s0 + s) * L + p, lg + (size_t)(s * P0 + p) * V, 1, &st);
    }
    t_pre = time_now_s() - t0;
    /* The engine's start-up graph capture (vLLM sizes for max_num_seqs = S), after the prefill
     * here: these prefill steps want logits for all their 8 x L/2 rows, more than any engine
     * step (one per sequence), which would move the logits buffer the graphs point at and make
     * them recapture lazily (correct, but then the first decode steps would run eagerly). The
     * capture's dummy batches store nothing and read only block 0, which no sequence uses. */
    t0 = time_now_s();
    if (startup_capture_graphs(m, max_tokens, S, L, BS, err) != 0) { printf("qwen3-%s: capture: %s\n", which, err); failures++; goto out; }
    t_cap = time_now_s() - t0;
    t0 = time_now_s();
    int split = S > 3 ? S - 3 : S;
    for (int p = P0; p < L; p++) {
        for (int part = 0; part < 2; part++) {
            int s0 = part ? split : 0, ns = part ? S - split : split;
            if (ns <= 0) continue;
            for (int s = 0; s < ns; s++) {
                ids[s] = r.ids[(s0 + s) * L + p];
                pos[s] = p;
                slot[s] = bt[(s0 + s) * nbps + p / BS] * BS + p % BS;
                qs[s] = s;
                lens[s] = p + 1;
                rows[s] = s;
            }
            qs[ns] = ns;
            BatchMeta b = {.num_tokens = ns, .num_seqs = ns, .token_ids = ids, .positions = pos,
                           .slot_mapping = slot, .query_start = qs, .seq_lens = lens,
                           .block_tables = bt + s0 * nbps, .max_blocks_per_seq = nbps, .block_size = BS,
                           .max_query_len = 1, .max_seq_len = p + 1, .logits_rows = rows, .num_logits_rows = ns};
            if (model_forward(m, &b, lg, err) != 0) { printf("qwen3-%s: decode: %s\n", which, err); failures++; goto out; }
            for (int s = 0; s < ns; s++) hf_compare_row(&r, (s0 + s) * L + p, lg + (size_t)s * V, 0, &st);
        }
    }
    t_dec = time_now_s() - t0;
    {
        double pct = 100.0 * st.agree / (st.n ? st.n : 1);
        double pre = 100.0 * st.agree_pre / (st.n_pre ? st.n_pre : 1);
        double dec = 100.0 * (st.agree - st.agree_pre) / (st.n - st.n_pre ? st.n - st.n_pre : 1);
        int ok = st.n == S * L && pct >= 95.0 && st.rel_max <= 3e-2 && st.nonfinite == 0 && st.nrows > 0;
        if (!ok) failures++;
        printf("qwen3-%s vs HF transformers (f32 compute, same bf16 dummy weights), %d x %d positions "
               "teacher-forced: argmax agree %d/%d (%.2f%%; prefill %.2f%%, decode via graphs %.2f%%); "
               "logits rel err on %d full rows mean %.2e max %.2e, max abs %.3g; HF top-1 logit vs CUDA "
               "max rel %.2e; disagreements at HF margins <= %.2f%% of the top logit; non-finite rows %d "
               "[capture %.2f s, prefill %.2f s, decode %.2f s] %s\n",
               which, S, L, st.agree, st.n, pct, pre, dec, st.nrows, st.rel_sum / (st.nrows ? st.nrows : 1),
               st.rel_max, st.abs_max, st.top_rel_max, 100 * st.dis_margin_max, st.nonfinite, t_cap, t_pre,
               t_dec, ok ? "ok" : "FAIL");
        printf("HFREF {\"shape\":\"%s\",\"seqs\":%d,\"len\":%d,\"agree\":%d,\"positions\":%d,\"agree_pct\":%.2f,"
               "\"prefill_pct\":%.2f,\"decode_pct\":%.2f,\"rel_err_mean\":%.3e,\"rel_err_max\":%.3e,"
               "\"abs_err_max\":%.4g,\"top1_rel_max\":%.3e,\"ok\":%s}\n",
               which, S, L, st.agree, st.n, pct, pre, dec, st.rel_sum / (st.nrows ? st.nrows : 1), st.rel_max,
               st.abs_max, st.top_rel_max, ok ? "true" : "false");
    }
out:
    if (m) model_free(m);
    free(ids); free(pos); free(slot); free(rows); free(qs); free(lens); free(bt); free(lg);
    hfref_free(&r);
    unlink(dst);
    rmdir(dir);
}

/* --make-ref: the reference file from the CPU backend (one prefill of all positions per
 * sequence), the same layout as scripts/hf_shape_ref.py writes. */
static void make_ref(const char *which, const char *path, Backend *cpu, int S, int L, Rng *rng) {
    char dir[32], dst[300], err[PG_ERR_LEN];
    if (shape_dir(which, dir, dst, sizeof dst) != 0) { failures++; return; }
    Model *m = NULL;
    ModelLoadOptions mo = {.weights = {.format = LOAD_FORMAT_DUMMY, .dummy_dtype = DT_BF16},
                           .max_tokens = L, .max_seqs = 1};
    const int nbps = (L + BS - 1) / BS;
    int32_t *ids = malloc(4 * (size_t)S * L), *am = malloc(4 * (size_t)S * L), *rows = malloc(4 * (size_t)S * L);
    float *t1 = malloc(4 * (size_t)S * L), *t2 = malloc(4 * (size_t)S * L), *lg = NULL;
    int32_t *pos = malloc(4 * (size_t)L), *slot = malloc(4 * (size_t)L), *lr = malloc(4 * (size_t)L), *bt = malloc(4 * (size_t)nbps);
    FILE *f = NULL;
    int K = 0;
    if (model_load(&m, dir, cpu, &mo, err) != 0 || model_alloc_kv(m, nbps, BS, err) != 0) {
        printf("make-ref %s: %s\n", which, err);
        failures++;
        goto out;
    }
    const int V = m->cfg.vocab_size;
    lg = malloc(sizeof(float) * (size_t)L * V);
    f = fopen(path, "wb");
    if (!f || !lg) { printf("make-ref %s: cannot write %s\n", which, path); failures++; goto out; }
    for (int i = 0; i < S * L; i++) ids[i] = (int32_t)(rng_next(rng) % 151000);
    for (int p = 0; p < L; p++) { pos[p] = p; lr[p] = p; }
    for (int j = 0; j < nbps; j++) bt[j] = j;
    for (int p = 0; p < L; p++) slot[p] = p;
    int32_t hdr[4] = {S, L, V, 0};
    for (int p = 0; p < L; p++) hdr[3] += p % 16 == 15;
    hdr[3] *= S;
    fwrite("PGHFREF1", 1, 8, f);
    fwrite(hdr, 4, 4, f);
    fwrite(ids, 4, (size_t)S * L, f);
    long logits_at = 8 + 16 + 4L * S * L * 4 + 4L * hdr[3];
    for (int s = 0; s < S; s++) {
        int32_t qs[2] = {0, L}, len = L;
        BatchMeta b = {.num_tokens = L, .num_seqs = 1, .token_ids = ids + (size_t)s * L, .positions = pos,
                       .slot_mapping = slot, .query_start = qs, .seq_lens = &len, .block_tables = bt,
                       .max_blocks_per_seq = nbps, .block_size = BS, .max_query_len = L, .max_seq_len = L,
                       .logits_rows = lr, .num_logits_rows = L};
        if (model_forward(m, &b, lg, err) != 0) { printf("make-ref %s: %s\n", which, err); failures++; goto out; }
        for (int p = 0; p < L; p++) {
            const float *row = lg + (size_t)p * V;
            int a = argmax(row, V), a2 = a ? 0 : 1;
            for (int v = 0; v < V; v++) if (v != a && row[v] > row[a2]) a2 = v;
            am[s * L + p] = a; t1[s * L + p] = row[a]; t2[s * L + p] = row[a2];
            if (p % 16 == 15) {
                rows[K] = s * L + p;
                fseek(f, logits_at + 4L * V * K, SEEK_SET);
                fwrite(row, 4, (size_t)V, f);
                K++;
            }
        }
    }
    fseek(f, 8 + 16 + 4L * S * L, SEEK_SET);
    fwrite(am, 4, (size_t)S * L, f);
    fwrite(t1, 4, (size_t)S * L, f);
    fwrite(t2, 4, (size_t)S * L, f);
    fwrite(rows, 4, (size_t)K, f);
    printf("make-ref qwen3-%s: %d x %d positions from the %s backend -> %s\n", which, S, L, cpu->name, path);
out:
    if (f) fclose(f);
    if (m) model_free(m);
    free(ids); free(am); free(rows); free(t1); free(t2); free(lg); free(pos); free(slot); free(lr); free(bt);
    unlink(dst);
    rmdir(dir);
}

/* "a=x,b=y": calls fn(name, value) for each pair. */
static void each_pair(const char *list, void (*fn)(const char *, const char *, void *), void *ctx) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq) { printf("expected SHAPE=FILE, got %s\n", item); failures++; continue; }
        *eq = 0;
        fn(item, eq + 1, ctx);
    }
}

typedef struct RefCtx { Backend *b; Rng *rng; int S, L; } RefCtx;
static void hf_cb(const char *which, const char *path, void *ctx) { hf_shape(which, path, ((RefCtx *)ctx)->b); }
static void make_cb(const char *which, const char *path, void *ctx) {
    RefCtx *c = ctx;
    make_ref(which, path, c->b, c->S, c->L, c->rng);
}

int main(int argc, char **argv) {
    const char *shapes = "0.6b,8b", *hf_ref = NULL, *make = NULL;
    int ref_seqs = 64, ref_len = 128, tiny_models = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shapes") && i + 1 < argc) shapes = argv[++i];
        else if (!strcmp(argv[i], "--hf-ref") && i + 1 < argc) hf_ref = argv[++i];
        else if (!strcmp(argv[i], "--make-ref") && i + 1 < argc) make = argv[++i];
        else if (!strcmp(argv[i], "--ref-seqs") && i + 1 < argc) ref_seqs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ref-len") && i + 1 < argc) ref_len = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-tiny")) tiny_models = 0;
        else { printf("unknown argument %s\n", argv[i]); return 2; }
    }
    char err[PG_ERR_LEN];
    BackendOptions go = {.kv_dtype = DT_COUNT}, co = {.kv_dtype = DT_COUNT};
    /* PAGELLM_TEST_GPU_DEVICE=cpu runs the harness without a GPU (checks the test itself) */
    const char *dev = getenv("PAGELLM_TEST_GPU_DEVICE");
    Backend *gpu = backend_new(dev ? dev : "cuda", &go, err);
    if (!gpu) { printf("cuda: %s\n", err); return 2; }
    Backend *cpu = backend_new("cpu", &co, err);
    if (!cpu) { printf("cpu: %s\n", err); return 2; }
    uint64_t seed = (uint64_t)time(NULL);
    Rng rng;
    rng_seed(&rng, seed);
    printf("test_cuda_model: seed %llu\n", (unsigned long long)seed);
    if (make) {
        RefCtx rc = {cpu, &rng, ref_seqs, ref_len};
        each_pair(make, make_cb, &rc);
    }
    const char *tiny[] = {"tiny-qwen3", "tiny-qwen3-untied", "tiny-qwen2", "tiny-llama"};
    for (int i = 0; i < 4 && tiny_models; i++) tiny_model(tiny[i], gpu, cpu);
    char list[64];
    snprintf(list, sizeof list, "%s", shapes);
    for (char *s = strtok(list, ","); s; s = strtok(NULL, ",")) {
        if (!strcmp(s, "8b")) shape(s, gpu, cpu, 2, 32, &rng);
        else shape(s, gpu, cpu, 8, 64, &rng);
    }
    if (hf_ref) {
        RefCtx rc = {gpu, &rng, 0, 0};
        each_pair(hf_ref, hf_cb, &rc);
    }
    printf("test_cuda_model: %d failures\n", failures);
    cpu->ops->destroy(cpu);
    gpu->ops->destroy(gpu);
    return failures ? 1 : 0;
}
