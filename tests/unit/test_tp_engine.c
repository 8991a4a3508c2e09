/* test_tp_engine.c: tensor parallelism through the engine and the device-sampling path, on CPU
 * ranks (threads + the in-process comm; the GPU run of the same is scripts/tp_check.sh).
 *
 *  device_before_load: engine_tp_new / engine_tp_device / engine_tp_free with no model loaded
 *                   (CPU rank 0: memory unknown -> the 2048-token default budget), then an
 *                   engine at TP=2 with the budget left to the device;
 *  engine_greedy:   engine_new with tensor_parallel_size 2 and 4 on models/tiny-qwen3: greedy
 *                   outputs of a batch of requests (chunked prefill, several sequences per step)
 *                   equal the TP=1 engine's token for token;
 *  forward_sample:  tp_group_forward_sample (logits kept on the ranks' devices, all-gathered,
 *                   assembled on rank 0 by logits_from_shards, sampled by rank 0's `sample` op)
 *                   picks the argmax of tp_group_forward's host logits on every row. The CPU
 *                   backend has no `sample` op, so the test wraps each CPU backend with one that
 *                   keeps logits "on the device" in its own buffer, implements logits_device /
 *                   logits_from_shards on it, and samples greedily: the model and group code
 *                   under test is the one the CUDA backend runs. */
#include <stdint.h>
#include <sys/stat.h>

#include "test.h"
#include "backend/backend.h"
#include "backend/comm.h"
#include "engine/engine.h"
#include "engine/engine_tp.h"
#include "engine/startup.h"
#include "model/tp_forward.h"
#include "util/err.h"
#include "util/rng.h"

static int have_model(void) {
    struct stat st;
    if (stat(fixture_path("models/tiny-qwen3/config.json"), &st) == 0) return 1;
    fprintf(stderr, "models/tiny-qwen3 missing: run python3 scripts/make_tiny_models.py\n");
    return 0;
}

/* ---------- engine ---------- */

#define NREQ 8
#define MAXOUT 12
typedef struct { int32_t toks[MAXOUT]; int n; } Out;

/* models/tiny-qwen3 on `tp` CPU ranks of 2 threads in all, 64 KV blocks, 256-token context, up
 * to max_seqs sequences; the step budget left to the device. */
static void tiny_config(EngineConfig *c, int tp, int max_seqs) {
    engine_config_default(c);
    c->model_dir = fixture_path("models/tiny-qwen3");
    c->threads = 2;
    c->num_gpu_blocks_override = 64;
    c->max_num_seqs = max_seqs;
    c->max_model_len = 256;
    c->tensor_parallel_size = tp;
}

/* NREQ greedy requests of random prompts (1-80 tokens, MAXOUT tokens each) through an engine on
 * `tp` ranks with step budget `budget` (0: by device); their tokens into out[request id]. */
static int run_engine(int tp, int budget, Out *out) {
    char err[PG_ERR_LEN];
    EngineConfig c;
    tiny_config(&c, tp, 8);
    c.max_num_batched_tokens = budget;
    Engine *e = engine_new(&c, err);
    EXPECT_MSG(e != NULL, "TP=%d: %s", tp, err);
    if (!e) return -1;
    Rng r;
    rng_seed(&r, 99);
    for (int k = 0; k < NREQ; k++) {
        int32_t ids[80];
        int n = 1 + (int)(rng_next(&r) % 80);
        for (int i = 0; i < n; i++) ids[i] = 200 + (int32_t)(rng_next(&r) % 60000);
        SamplingParams sp;
        sampling_params_default(&sp);
        sp.temperature = 0;
        sp.max_tokens = MAXOUT;
        sp.ignore_eos = 1;
        EngineRequest rq = {.id = (uint64_t)k, .prompt = ids, .prompt_len = n, .params = sp, .grammar_start_token = -1};
        EXPECT_MSG(engine_submit(e, &rq, err) == 0, "%s", err);
    }
    memset(out, 0, sizeof(Out) * NREQ);
    int rc = 0;
    while (engine_has_unfinished(e) && rc >= 0) {
        rc = engine_step(e);
        for (RequestOutput *o = engine_take_outputs(e), *nx; o; o = nx) {
            nx = o->next;
            Out *g = &out[o->id];
            for (int i = 0; i < o->num_tokens && g->n < MAXOUT; i++) g->toks[g->n++] = o->token_ids[i];
            request_output_free(o);
        }
    }
    EXPECT(rc >= 0);
    engine_free(e);
    return rc < 0 ? -1 : 0;
}

/* engine_tp_new makes the ranks' backends and comms only; engine_tp_device tells rank 0's device
 * (CPU ranks: memory unknown, so the default step budget is the small one) before any model is
 * loaded, and a group that was never loaded frees cleanly; then an engine at TP=2 with the
 * budget left to the device starts and decodes every request to its end. */
TEST(device_before_load) {
    if (!have_model()) { EXPECT(0); return; }
    char err[PG_ERR_LEN];
    EngineConfig c;
    tiny_config(&c, 2, 4);
    EngineTp *t = NULL;
    EXPECT_MSG(engine_tp_new(&t, &c, err) == 0, "%s", err);
    if (!t) return;
    long long mem = 0;
    const char *name = "unset";
    engine_tp_device(t, &mem, &name);
    EXPECT_MSG(mem == -1, "CPU rank 0 reported %lld bytes", mem);
    EXPECT(startup_default_batched_tokens(mem, name) == 2048);
    engine_tp_free(t); /* no group loaded */

    static Out got[NREQ];
    if (run_engine(2, 0, got) != 0) return;
    for (int k = 0; k < NREQ; k++) EXPECT_MSG(got[k].n == MAXOUT, "request %d: %d tokens", k, got[k].n);
}

TEST(engine_greedy) {
    if (!have_model()) { EXPECT(0); return; }
    static Out ref[NREQ], got[NREQ];
    if (run_engine(1, 48, ref) != 0) return; /* 48: chunked prefill mixed with decodes */
    for (int k = 0; k < NREQ; k++) EXPECT_EQ_INT(ref[k].n, MAXOUT);
    for (int tp = 2; tp <= 4; tp *= 2) {
        if (run_engine(tp, 48, got) != 0) continue;
        for (int k = 0; k < NREQ; k++) {
            int same = 0;
            while (same < MAXOUT && got[k].toks[same] == ref[k].toks[same]) same++;
            EXPECT_MSG(same == MAXOUT && got[k].n == MAXOUT, "TP=%d request %d: first differing token at %d", tp, k,
                       same);
        }
    }
}

/* ---------- a CPU backend with "device" logits and a greedy sample op ---------- */

typedef struct Wrap {
    Backend b;             /* first: the ops get this Backend*; ctx is the inner one's */
    BackendOps ops;
    Backend *inner;
    float *logits;         /* [R, V] of the last logits(NULL) or logits_from_shards */
    size_t cap;
    int R, V;
} Wrap;

static int samples_taken;

static void grow(Wrap *w, size_t n) {
    if (n > w->cap) {
        w->logits = realloc(w->logits, n * sizeof(float));
        w->cap = n;
    }
}

static void w_logits(Backend *b, float *host, const void *x, const Tensor *lm, int R, int D, int V) {
    Wrap *w = (Wrap *)b;
    if (host) { w->inner->ops->logits(b, host, x, lm, R, D, V); return; }
    grow(w, (size_t)R * V);
    w->inner->ops->logits(b, w->logits, x, lm, R, D, V);
    w->R = R, w->V = V;
}

static const float *w_logits_device(Backend *b) { return ((Wrap *)b)->logits; }

static void w_from_shards(Backend *b, const float *shards, int n, int R, int Vs, int V) {
    Wrap *w = (Wrap *)b;
    EXPECT(n * Vs >= V);
    grow(w, (size_t)R * V);
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) w->logits[(size_t)r * V + v] = shards[((size_t)(v / Vs) * R + r) * Vs + v % Vs];
    w->R = R, w->V = V;
}

static int w_sample(Backend *b, const struct SampleBatch *sb, int32_t *tokens, LogprobEntry *lps, char *err) {
    Wrap *w = (Wrap *)b;
    if (sb->num_rows != w->R || sb->vocab_size != w->V)
        return pg_err(err, "sample: %d rows of %d, logits [%d, %d]", sb->num_rows, sb->vocab_size, w->R, w->V);
    for (int r = 0; r < w->R; r++) {
        const float *x = w->logits + (size_t)r * w->V;
        int k = 0;
        for (int j = 1; j < w->V; j++) if (x[j] > x[k]) k = j;
        tokens[r] = k;
    }
    samples_taken++;
    return 0;
}

static void w_destroy(Backend *b) {
    Wrap *w = (Wrap *)b;
    w->inner->ops->destroy(w->inner);
    free(w->logits);
    free(w);
}

static Backend *wrap_cpu(char *err) {
    BackendOptions bo = {1, 0, DT_COUNT, 0};
    Backend *in = backend_cpu_new(&bo, err);
    if (!in) return NULL;
    Wrap *w = calloc(1, sizeof *w);
    w->inner = in;
    w->b = *in;
    w->ops = *in->ops;
    w->ops.logits = w_logits;
    w->ops.logits_device = w_logits_device;
    w->ops.logits_from_shards = w_from_shards;
    w->ops.sample = w_sample;
    w->ops.destroy = w_destroy;
    w->b.ops = &w->ops;
    return &w->b;
}

/* ---------- forward_sample ---------- */

#define BLOCK 16
#define MAXB 8

TEST(forward_sample) {
    if (!have_model()) { EXPECT(0); return; }
    char err[PG_ERR_LEN];
    for (int n = 2; n <= 4; n *= 2) {
        Backend *be[4] = {0};
        Comm *comm[4] = {0};
        CommWorld *world = comm_world_cpu_new(n, err);
        TpGroup *g = NULL;
        for (int r = 0; r < n; r++) {
            be[r] = wrap_cpu(err);
            comm[r] = comm_cpu_new(world, r, err);
        }
        ModelLoadOptions mo = {{LOAD_FORMAT_AUTO, DT_BF16, 0}, 64, 4};
        int rc = tp_group_new(&g, fixture_path("models/tiny-qwen3"), n, be, comm, &mo, err);
        EXPECT_MSG(rc == 0, "%s", err);
        if (rc == 0) rc = tp_group_alloc_kv(g, 4 * MAXB, BLOCK, err);
        EXPECT(rc == 0 && tp_group_can_sample(g));
        const int V = rc == 0 ? tp_group_config(g)->vocab_size : 0;
        float *lg = malloc(sizeof(float) * 4 * (size_t)V);
        /* 3 sequences: a prefill of 5, 9 and 2 tokens, then 5 decode steps; logits of each last token */
        int32_t ids[16], pos[16], slot[16], qs[4], sl[3], bt[3 * MAXB], lr[3], tok[3], len[3] = {0, 0, 0};
        const int chunk0[3] = {5, 9, 2};
        for (int i = 0; i < 3 * MAXB; i++) bt[i] = i;
        SampleRow rows[3];
        memset(rows, 0, sizeof rows);
        for (int r = 0; r < 3; r++) rows[r] = (SampleRow){.top_p = 1, .log_min_p = -INFINITY, .num_logprobs = -1,
                                                          .repetition_penalty = 1, .mask_index = -1};
        SampleBatch sb;
        memset(&sb, 0, sizeof sb);
        sb.vocab_size = V;
        sb.mask_words = (V + 31) / 32;
        sb.num_rows = 3;
        sb.rows = rows;
        int agree = 0, total = 0;
        for (int step = 0; rc == 0 && step < 6; step++) {
            int T = 0, maxq = 0, maxs = 0;
            for (int s = 0; s < 3; s++) {
                int c = step ? 1 : chunk0[s];
                qs[s] = T;
                for (int i = 0; i < c; i++, T++) {
                    int p = len[s] + i;
                    ids[T] = step ? tok[s] : 300 + 977 * s + 31 * i;
                    pos[T] = p;
                    slot[T] = (s * MAXB + p / BLOCK) * BLOCK + p % BLOCK;
                }
                len[s] += c;
                sl[s] = len[s];
                lr[s] = T - 1;
                if (c > maxq) maxq = c;
                if (len[s] > maxs) maxs = len[s];
            }
            qs[3] = T;
            BatchMeta b = {T, 3, ids, pos, slot, qs, sl, bt, MAXB, BLOCK, maxq, maxs, lr, 3, NULL};
            /* both paths write the same K/V into the same slots: running them back to back is safe */
            rc = tp_group_forward(g, &b, lg, err);
            EXPECT_MSG(rc == 0, "%s", err);
            int32_t got[3] = {-1, -1, -1};
            int taken = samples_taken;
            if (rc == 0) rc = tp_group_forward_sample(g, &b, &sb, got, NULL, err);
            EXPECT_MSG(rc == 0, "%s", err);
            EXPECT_EQ_INT(samples_taken, taken + 1);   /* rank 0 alone sampled */
            for (int s = 0; s < 3 && rc == 0; s++) {
                const float *x = lg + (size_t)s * V;
                int k = 0;
                for (int j = 1; j < V; j++) if (x[j] > x[k]) k = j;
                agree += got[s] == k;
                total++;
                tok[s] = got[s];
            }
        }
        EXPECT_MSG(agree == total && total == 18, "TP=%d: device-path greedy agrees on %d of %d rows", n, agree, total);
        /* more rows than max_seqs (4) cannot be gathered: an error before any rank starts */
        if (rc == 0) {
            SampleRow rows5[5];
            for (int r = 0; r < 5; r++) rows5[r] = rows[0];
            sb.rows = rows5;
            sb.num_rows = 5;
            int32_t i5[5] = {1, 2, 3, 4, 5}, p5[5] = {0, 1, 2, 3, 4}, q5[2] = {0, 5}, s5[1] = {5}, got[5];
            BatchMeta b = {5, 1, i5, p5, p5, q5, s5, bt, MAXB, BLOCK, 5, 5, p5, 5, NULL};
            EXPECT(tp_group_forward_sample(g, &b, &sb, got, NULL, err) == -1);
            EXPECT_CONTAINS(err, "max_seqs");
        }
        free(lg);
        tp_group_free(g);
        for (int r = 0; r < n; r++) {
            comm_free(comm[r]);
            if (be[r]) be[r]->ops->destroy(be[r]);
        }
        comm_world_cpu_free(world);
    }
}

int main(void) {
    RUN(forward_sample);
    RUN(device_before_load);
    RUN(engine_greedy);
    TEST_MAIN_END();
}
