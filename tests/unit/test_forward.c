/* test_forward.c: the CPU forward pass against HF transformers (float32) goldens
 * (tests/fixtures/goldens/, made by scripts/make_goldens.py from the tiny checkpoints that
 * scripts/make_tiny_models.py writes into models/).
 *
 * For every tiny model (qwen3 tied bf16, qwen3 untied f32, qwen2 with qkv bias f16, llama with
 * llama3 rope scaling bf16 sharded):
 *   - logits at every position of every prompt, the prompt as one sequence in one step, agree
 *     with HF: |ours - hf| <= 1e-4 * max(1, max_j |hf[t, j]|) per row t, over the 256 stored
 *     columns, the top-8 values and the stored full rows; argmax equal (unless HF's top two are
 *     closer than the tolerance: a tie, reported);
 *   - greedy: a plain loop over model_forward with a paged KV cache (prefill, then one token per
 *     step) gives HF's 32 greedy ids;
 *   - batching: all prompts as sequences of different lengths in one step; each prompt split in
 *     chunks over several steps; a prompt whose first blocks are served from another sequence's
 *     cache (prefix caching) with the rest as a chunk, in the same step as decodes of others: the
 *     same logits (to 1e-6 relative) as each sequence alone (and HF's, for the chunks). Some
 *     of these steps ask for every 2nd or 3rd row's logits only (logits_rows), to keep the
 *     sanitizer build fast.
 * Needs models/ (python3 scripts/make_tiny_models.py); fails with that hint if absent. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/backend.h"
#include "model/model.h"
#include "test.h"
#include "util/err.h"
#include "util/file.h"

#define BLOCK_SIZE 16
#define NUM_BLOCKS 256
#define MAX_BLOCKS_PER_SEQ 64
#define MAX_PROMPTS 8
#define REL_TOL 1e-4

typedef struct {
    int T;
    int32_t ids[512];
    const float *sampled;  /* [T, C] */
    const float *topk_val; /* [T, K] */
    int topk_ids[512][8];
    int argmax[512];
    int greedy[32];
    double margins[32];
    int full_pos[4];
    const float *full[4];  /* [V] */
    int n_full;
    float *ours_sampled;   /* [T, C]: this prompt's logits alone, at the columns */
} Prompt;

typedef struct {
    const char *name;
    int V, C, K;
    int cols[256];
    Prompt p[MAX_PROMPTS];
    int np;
    unsigned char *bin;
    size_t bin_len;
} Golden;

static const float *bin_at(Golden *g, json_t *obj) {
    size_t off = (size_t)json_integer_value(json_object_get(obj, "offset"));
    CHECK(off % 4 == 0 && off < g->bin_len);
    return (const float *)(g->bin + off);
}

static int golden_load(Golden *g, const char *name) {
    memset(g, 0, sizeof *g);
    g->name = name;
    char path[512];
    snprintf(path, sizeof path, "tests/fixtures/goldens/%s.json", name);
    json_error_t je;
    json_t *root = json_load_file(fixture_path(path), 0, &je);
    if (!root) { fprintf(stderr, "  cannot read %s: %s\n", path, je.text); return -1; }
    snprintf(path, sizeof path, "tests/fixtures/goldens/%s", json_string_value(json_object_get(root, "bin")));
    g->bin = (unsigned char *)file_read_all(fixture_path(path), 0, &g->bin_len, NULL);
    CHECK(g->bin != NULL);
    g->V = (int)json_integer_value(json_object_get(root, "vocab_size"));
    g->K = (int)json_integer_value(json_object_get(root, "topk"));
    json_t *cols = json_object_get(root, "columns");
    g->C = (int)json_array_size(cols);
    CHECK(g->C <= 256 && g->K == 8);
    for (int j = 0; j < g->C; j++) g->cols[j] = (int)json_integer_value(json_array_get(cols, j));
    json_t *prompts = json_object_get(root, "prompts");
    g->np = (int)json_array_size(prompts);
    CHECK(g->np <= MAX_PROMPTS);
    for (int i = 0; i < g->np; i++) {
        json_t *po = json_array_get(prompts, i);
        Prompt *p = &g->p[i];
        json_t *ids = json_object_get(po, "ids");
        p->T = (int)json_array_size(ids);
        CHECK(p->T <= 512);
        for (int t = 0; t < p->T; t++) {
            p->ids[t] = (int32_t)json_integer_value(json_array_get(ids, t));
            p->argmax[t] = (int)json_integer_value(json_array_get(json_object_get(po, "argmax"), t));
            json_t *tk = json_array_get(json_object_get(po, "topk_ids"), t);
            for (int k = 0; k < 8; k++) p->topk_ids[t][k] = (int)json_integer_value(json_array_get(tk, k));
        }
        p->sampled = bin_at(g, json_object_get(po, "sampled_logits"));
        p->topk_val = bin_at(g, json_object_get(po, "topk_values"));
        for (int k = 0; k < 32; k++) {
            p->greedy[k] = (int)json_integer_value(json_array_get(json_object_get(po, "greedy"), k));
            p->margins[k] = json_number_value(json_array_get(json_object_get(po, "greedy_margins"), k));
        }
        json_t *fr = json_object_get(po, "full_rows");
        p->n_full = (int)json_array_size(fr);
        CHECK(p->n_full <= 4);
        for (int k = 0; k < p->n_full; k++) {
            p->full_pos[k] = (int)json_integer_value(json_object_get(json_array_get(fr, k), "position"));
            p->full[k] = bin_at(g, json_array_get(fr, k));
        }
        p->ours_sampled = malloc((size_t)p->T * g->C * sizeof(float));
    }
    json_decref(root);
    return 0;
}

static void golden_free(Golden *g) {
    for (int i = 0; i < g->np; i++) free(g->p[i].ours_sampled);
    free(g->bin);
}

/* Row scale of the tolerance: max(1, max |hf| over everything stored for position t). */
static double row_scale(const Golden *g, const Prompt *p, int t) {
    double s = 1;
    for (int j = 0; j < g->C; j++) s = fmax(s, fabs(p->sampled[(size_t)t * g->C + j]));
    for (int k = 0; k < g->K; k++) s = fmax(s, fabs(p->topk_val[(size_t)t * g->K + k]));
    return s;
}

/* Checks our full logits row (V floats) of prompt p at position t against HF. Returns the
 * relative error (max |ours - hf| / scale) and counts argmax disagreements outside ties. */
static double check_row(const Golden *g, const Prompt *p, int t, const float *row, int *argmax_bad,
                        int *ties) {
    double scale = row_scale(g, p, t), err = 0;
    for (int j = 0; j < g->C; j++) err = fmax(err, fabs(row[g->cols[j]] - p->sampled[(size_t)t * g->C + j]));
    for (int k = 0; k < g->K; k++)
        err = fmax(err, fabs(row[p->topk_ids[t][k]] - p->topk_val[(size_t)t * g->K + k]));
    for (int k = 0; k < p->n_full; k++)
        if (p->full_pos[k] == t)
            for (int v = 0; v < g->V; v++) err = fmax(err, fabs(row[v] - p->full[k][v]));
    int am = 0;
    for (int v = 1; v < g->V; v++) if (row[v] > row[am]) am = v;
    if (am != p->argmax[t]) {
        double gap = p->topk_val[(size_t)t * g->K] - p->topk_val[(size_t)t * g->K + 1];
        if (gap <= 2 * REL_TOL * scale) (*ties)++;
        else (*argmax_bad)++;
    }
    return err / scale;
}

/* ---- a paged KV cache the way the engine drives it ---- */

typedef struct {
    const Prompt *p;
    int32_t tokens[600];
    int n_tokens;   /* known tokens (prompt + generated) */
    int n_cached;   /* tokens whose K/V are in the cache */
    int32_t table[MAX_BLOCKS_PER_SEQ];
} Seq;

typedef struct { int next_block; } BlockAlloc;

static void seq_init(Seq *s, const Prompt *p, BlockAlloc *ba) {
    memset(s, 0, sizeof *s);
    s->p = p;
    memcpy(s->tokens, p->ids, (size_t)p->T * sizeof(int32_t));
    s->n_tokens = p->T;
    for (int i = 0; i < MAX_BLOCKS_PER_SEQ; i++) s->table[i] = -1;
    int need = (p->T + 32 + BLOCK_SIZE - 1) / BLOCK_SIZE;
    for (int i = 0; i < need; i++) {
        /* hand out blocks back to front so that tables are not the identity */
        s->table[i] = NUM_BLOCKS - 1 - ba->next_block++;
        CHECK(s->table[i] >= 0);
    }
}

/* The next n tokens of s; logits rows: every stride-th token and the last (stride 0: the last
 * only). Token i's row within the chunk is then (i + stride - 1) / stride. */
typedef struct { Seq *s; int n; int stride; } Chunk;

/* One step over chunks. Returns malloc'd logits [R, V] and fills row_of[c] = first logits row of chunk c. */
static float *step(Model *m, Chunk *ch, int nc, int *row_of, char *err) {
    int32_t ids[1024], pos[1024], slots[1024], qs[17], lens[16], tables[16 * MAX_BLOCKS_PER_SEQ], rows[1024];
    int T = 0, R = 0;
    CHECK(nc <= 16);
    for (int c = 0; c < nc; c++) {
        Seq *s = ch[c].s;
        qs[c] = T;
        row_of[c] = R;
        for (int i = 0; i < ch[c].n; i++, T++) {
            int p = s->n_cached + i;
            ids[T] = s->tokens[p];
            pos[T] = p;
            slots[T] = s->table[p / BLOCK_SIZE] * BLOCK_SIZE + p % BLOCK_SIZE;
            if ((ch[c].stride && i % ch[c].stride == 0) || i == ch[c].n - 1) rows[R++] = T;
        }
        lens[c] = s->n_cached + ch[c].n;
        memcpy(tables + c * MAX_BLOCKS_PER_SEQ, s->table, sizeof s->table);
    }
    qs[nc] = T;
    BatchMeta b = {.num_tokens = T, .num_seqs = nc, .token_ids = ids, .positions = pos,
                   .slot_mapping = slots, .query_start = qs, .seq_lens = lens, .block_tables = tables,
                   .max_blocks_per_seq = MAX_BLOCKS_PER_SEQ, .block_size = BLOCK_SIZE,
                   .logits_rows = rows, .num_logits_rows = R};
    for (int c = 0; c < nc; c++) {
        if (qs[c + 1] - qs[c] > b.max_query_len) b.max_query_len = qs[c + 1] - qs[c];
        if (lens[c] > b.max_seq_len) b.max_seq_len = lens[c];
    }
    float *logits = malloc((size_t)R * m->cfg.vocab_size * sizeof(float));
    for (size_t i = 0; i < (size_t)R * m->cfg.vocab_size; i++) logits[i] = NAN;
    if (model_forward(m, &b, logits, err) != 0) { free(logits); return NULL; }
    for (int c = 0; c < nc; c++) ch[c].s->n_cached += ch[c].n;
    return logits;
}

static int argmax_row(const float *row, int V) {
    int am = 0;
    for (int v = 1; v < V; v++) if (row[v] > row[am]) am = v;
    return am;
}

/* Relative difference of our logits row (at the golden columns) to the alone run's. */
static double diff_vs_alone(const Golden *g, const Prompt *p, int t, const float *row) {
    double e = 0, s = 1;
    for (int j = 0; j < g->C; j++) {
        double a = p->ours_sampled[(size_t)t * g->C + j];
        e = fmax(e, fabs(row[g->cols[j]] - a));
        s = fmax(s, fabs(a));
    }
    return e / s;
}

static void run_model(const char *name) {
    char dir[256], err[PG_ERR_LEN] = "";
    snprintf(dir, sizeof dir, "models/%s", name);
    struct stat st;
    if (stat(fixture_path(dir), &st) != 0) {
        EXPECT_MSG(0, "%s missing: run python3 scripts/make_tiny_models.py", dir);
        return;
    }
    Golden g;
    if (golden_load(&g, name) != 0) { EXPECT_MSG(0, "goldens of %s unreadable", name); return; }
    BackendOptions bo = {.threads = 2, .kv_dtype = DT_COUNT};
    Backend *be = backend_new("cpu", &bo, err);
    EXPECT_MSG(be != NULL, "%s", err);
    Model *m = NULL;
    ModelLoadOptions mo = {.weights = {.format = LOAD_FORMAT_AUTO}, .max_tokens = 512, .max_seqs = 16};
    if (!be || model_load(&m, fixture_path(dir), be, &mo, err) != 0) {
        EXPECT_MSG(0, "%s: %s", name, err);
        goto out;
    }
    EXPECT_EQ_INT(m->cfg.vocab_size, g.V);
    EXPECT_MSG(model_alloc_kv(m, NUM_BLOCKS, BLOCK_SIZE, err) == 0, "%s", err);
    const int V = g.V;

    /* 1. Each prompt alone, one step, logits at every position vs HF. */
    double worst = 0;
    int am_bad = 0, ties = 0;
    for (int i = 0; i < g.np; i++) {
        Prompt *p = &g.p[i];
        BlockAlloc ba = {0};
        Seq s;
        seq_init(&s, p, &ba);
        Chunk ch = {&s, p->T, 1};
        int row0;
        float *lg = step(m, &ch, 1, &row0, err);
        EXPECT_MSG(lg != NULL, "%s prompt %d: %s", name, i, err);
        if (!lg) continue;
        for (int t = 0; t < p->T; t++) {
            const float *row = lg + (size_t)t * V;
            double e = check_row(&g, p, t, row, &am_bad, &ties);
            if (e > worst) worst = e;
            EXPECT_MSG(e <= REL_TOL, "%s prompt %d (T=%d) position %d: rel err %.3g", name, i, p->T, t, e);
            if (e > REL_TOL) break;
            for (int j = 0; j < g.C; j++) p->ours_sampled[(size_t)t * g.C + j] = row[g.cols[j]];
        }
        free(lg);
    }
    EXPECT_MSG(am_bad == 0, "%s: %d argmax mismatches outside ties", name, am_bad);
    fprintf(stderr, "  %s: logits vs HF: worst rel err %.3g over %d prompts; argmax ties %d\n", name,
            worst, g.np, ties);

    /* 2. Greedy: prefill, then 32 single-token steps reading the paged cache. */
    for (int i = 0; i < g.np; i++) {
        Prompt *p = &g.p[i];
        BlockAlloc ba = {0};
        Seq s;
        seq_init(&s, p, &ba);
        Chunk ch = {&s, p->T, 0};
        int row0, k = 0;
        for (; k < 32; k++) {
            float *lg = step(m, &ch, 1, &row0, err);
            if (!lg) { EXPECT_MSG(0, "%s greedy: %s", name, err); break; }
            if (i == 0 && k == 4) {
                /* A decode step run again gives the same logits, bit for bit, and leaves the
                 * cache as it was: the CUDA step tuner (graph.cu) times a step's op log by
                 * running it repeatedly, which needs exactly this of the model's op sequence. */
                s.n_cached -= ch.n;
                float *again = step(m, &ch, 1, &row0, err);
                EXPECT_MSG(again && !memcmp(again, lg, (size_t)V * sizeof(float)),
                           "%s: a decode step run twice gave different logits", name);
                free(again);
            }
            int next = argmax_row(lg, V);
            free(lg);
            if (next != p->greedy[k]) {
                /* a near-tie: HF's top two closer than twice the logits tolerance at the largest
                 * logit magnitude these models reach (~60, goldens README) */
                if (p->margins[k] < 2 * REL_TOL * 60)
                    fprintf(stderr, "  %s prompt %d greedy step %d: near-tie (HF margin %.2g): %d vs %d, "
                            "stopped comparing\n", name, i, k, p->margins[k], next, p->greedy[k]);
                else
                    EXPECT_MSG(0, "%s prompt %d greedy step %d: got %d, HF %d (margin %.3g)", name, i, k,
                               next, p->greedy[k], p->margins[k]);
                break;
            }
            s.tokens[s.n_tokens++] = next;
            ch.n = 1;
        }
        if (k == 32) t_checks++;
    }

    /* 3. All prompts in one step as sequences of different lengths (rows: every third token and
     *    each last token) == each alone. */
    {
        BlockAlloc ba = {0};
        Seq seqs[MAX_PROMPTS];
        Chunk ch[MAX_PROMPTS];
        int row_of[MAX_PROMPTS], n = 0, total = 0;
        for (int i = 0; i < g.np && total + g.p[i].T <= 512; i++) {
            seq_init(&seqs[n], &g.p[i], &ba);
            ch[n] = (Chunk){&seqs[n], g.p[i].T, 3};
            total += g.p[i].T;
            n++;
        }
        float *lg = step(m, ch, n, row_of, err);
        EXPECT_MSG(lg != NULL, "%s batch: %s", name, err);
        double d = 0;
        for (int c = 0; lg && c < n; c++)
            for (int t = 0; t < seqs[c].p->T; t++)
                if (t % 3 == 0 || t == seqs[c].p->T - 1)
                    d = fmax(d, diff_vs_alone(&g, seqs[c].p, t, lg + (size_t)(row_of[c] + (t + 2) / 3) * V));
        EXPECT_MSG(d <= 1e-6, "%s: batch of %d sequences differs from alone by %.3g", name, n, d);
        fprintf(stderr, "  %s: batch of %d sequences (%d tokens) vs alone: %.3g\n", name, n, total, d);
        free(lg);
    }

    /* 4. The longest prompt in chunks of 13 tokens over several steps, each chunk after the
     *    cached prefix of the earlier ones (rows: every second token and each chunk's last). */
    {
        const Prompt *p = &g.p[g.np - 1];
        BlockAlloc ba = {0};
        Seq s;
        seq_init(&s, p, &ba);
        double d = 0;
        int am_bad2 = 0, ties2 = 0;
        while (s.n_cached < p->T) {
            int t0 = s.n_cached, n = p->T - t0 < 13 ? p->T - t0 : 13, row0;
            Chunk ch = {&s, n, 2};
            float *lg = step(m, &ch, 1, &row0, err);
            if (!lg) { EXPECT_MSG(0, "%s chunked: %s", name, err); break; }
            for (int i = 0; i < n; i++) {
                if (i % 2 && i != n - 1) continue;
                const float *row = lg + (size_t)((i + 1) / 2) * V;
                d = fmax(d, diff_vs_alone(&g, p, t0 + i, row));
                EXPECT(check_row(&g, p, t0 + i, row, &am_bad2, &ties2) <= REL_TOL);
            }
            free(lg);
        }
        EXPECT_MSG(d <= 1e-6, "%s: chunked prefill differs from one step by %.3g", name, d);
        fprintf(stderr, "  %s: prefill of %d tokens in chunks of 13 vs one step: %.3g\n", name, p->T, d);
    }

    /* 5. Prefix caching: sequence B = the longest prompt; its first full blocks are A's blocks
     *    (A computed that prompt before), B computes only the rest, in one step together with
     *    decodes of two other sequences. */
    {
        const Prompt *p = &g.p[g.np - 1], *p1 = &g.p[1], *p2 = &g.p[2];
        BlockAlloc ba = {0};
        Seq a, b, d1, d2;
        seq_init(&a, p, &ba);
        seq_init(&d1, p1, &ba);
        seq_init(&d2, p2, &ba);
        Chunk pre[3] = {{&a, p->T, 0}, {&d1, p1->T, 0}, {&d2, p2->T, 0}};
        int rows[3];
        float *lg = step(m, pre, 3, rows, err);
        EXPECT_MSG(lg != NULL, "%s prefix: %s", name, err);
        if (lg) {
            d1.tokens[d1.n_tokens++] = argmax_row(lg + (size_t)rows[1] * V, V);
            d2.tokens[d2.n_tokens++] = argmax_row(lg + (size_t)rows[2] * V, V);
            free(lg);
        }
        seq_init(&b, p, &ba);
        int shared = (p->T - 1) / BLOCK_SIZE; /* full blocks, leaving at least one token to compute */
        for (int i = 0; i < shared; i++) b.table[i] = a.table[i];
        b.n_cached = shared * BLOCK_SIZE;
        int t0 = b.n_cached;
        Chunk mix[3] = {{&d1, 1, 0}, {&b, p->T - t0, 1}, {&d2, 1, 0}};
        lg = step(m, mix, 3, rows, err);
        EXPECT_MSG(lg != NULL, "%s prefix: %s", name, err);
        double dd = 0;
        for (int i = 0; lg && i < p->T - t0; i++)
            dd = fmax(dd, diff_vs_alone(&g, p, t0 + i, lg + (size_t)(rows[1] + i) * V));
        /* the decodes are HF's greedy step 1 of their prompts */
        if (lg) {
            EXPECT_EQ_INT(argmax_row(lg + (size_t)rows[0] * V, V), p1->greedy[1]);
            EXPECT_EQ_INT(argmax_row(lg + (size_t)rows[2] * V, V), p2->greedy[1]);
        }
        EXPECT_MSG(dd <= 1e-6, "%s: chunk after a cached prefix of %d differs from alone by %.3g", name, t0, dd);
        fprintf(stderr, "  %s: %d tokens after %d cached (shared blocks) + 2 decodes vs alone: %.3g\n",
                name, p->T - t0, t0, dd);
        free(lg);
    }

    /* 6. A bad batch is an error, not a crash. */
    {
        int32_t ids[1] = {g.V}, pos[1] = {0}, slots[1] = {0}, qs[2] = {0, 1}, lens[1] = {1},
                table[MAX_BLOCKS_PER_SEQ] = {0}, rows[1] = {0};
        BatchMeta b = {.num_tokens = 1, .num_seqs = 1, .token_ids = ids, .positions = pos,
                       .slot_mapping = slots, .query_start = qs, .seq_lens = lens, .block_tables = table,
                       .max_blocks_per_seq = MAX_BLOCKS_PER_SEQ, .block_size = BLOCK_SIZE,
                       .max_query_len = 1, .max_seq_len = 1, .logits_rows = rows, .num_logits_rows = 1};
        float *lg = malloc((size_t)V * sizeof(float));
        EXPECT(model_forward(m, &b, lg, err) == -1);
        EXPECT_CONTAINS(err, "token id");
        ids[0] = 5;
        table[0] = NUM_BLOCKS;
        EXPECT(model_forward(m, &b, lg, err) == -1);
        EXPECT_CONTAINS(err, "block");
        table[0] = 0;
        pos[0] = 1;
        EXPECT(model_forward(m, &b, lg, err) == -1);
        EXPECT_CONTAINS(err, "position");
        free(lg);
    }
out:
    model_free(m);
    if (be) be->ops->destroy(be);
    golden_free(&g);
}

TEST(tiny_qwen3) { run_model("tiny-qwen3"); }
TEST(tiny_qwen3_untied) { run_model("tiny-qwen3-untied"); }
TEST(tiny_qwen2) { run_model("tiny-qwen2"); }
TEST(tiny_llama) { run_model("tiny-llama"); }

TEST(load_errors) {
    char err[PG_ERR_LEN] = "";
    BackendOptions bo = {.threads = 1, .kv_dtype = DT_COUNT};
    Backend *be = backend_new("cpu", &bo, err);
    Model *m = NULL;
    ModelLoadOptions mo = {.max_tokens = 16};
    EXPECT(model_load(&m, fixture_path("models/does-not-exist"), be, &mo, err) == -1 && m == NULL);
    EXPECT_CONTAINS(err, "does-not-exist");
    /* a config.json file is accepted for dummy weights only */
    EXPECT(model_load(&m, fixture_path("tests/fixtures/shapes/qwen3-0.6b.config.json"), be, &mo, err) == -1);
    EXPECT_CONTAINS(err, "dummy");
    mo.max_tokens = 0;
    EXPECT(model_load(&m, fixture_path("models/tiny-qwen3"), be, &mo, err) == -1);
    EXPECT_CONTAINS(err, "max_tokens");
    be->ops->destroy(be);
}

int main(void) {
    RUN(load_errors);
    RUN(tiny_qwen3);
    RUN(tiny_qwen3_untied);
    RUN(tiny_qwen2);
    RUN(tiny_llama);
    TEST_MAIN_END();
}
