/* test_engine_async.c: async scheduling (CoreConfig.async_scheduling, EngineRunner.launch /
 * collect) against the synchronous engine, on a fake model.
 *
 * The fake model is test_engine.c's: a simulated paged KV cache (token and position per slot,
 * written at the batch's slot_mapping) and logits from a hash of the whole sequence AS READ BACK
 * FROM ITS BLOCK TABLE, so a wrong slot, a block released too early and reused, a bad
 * prefix-cache hit or a wrong device-side token changes the output. The async runner does what
 * a GPU does, in order: launch resolves each token whose token_src_row >= 0 from the previous
 * launched step's samples (the host never tells it the id), runs the forward, samples every row
 * with the host sampler into a ring of two result slots; collect hands back the oldest slot.
 *
 * Each workload (greedy and seeded/unseeded random; mixed prompt lengths with shared prefixes,
 * EOS hits, max_tokens, max_model_len, stop strings, logprobs, requests arriving mid-run, aborts,
 * requests with penalties / min_tokens / n > 1 that force the synchronous fallback, a pool small
 * enough to preempt) runs synchronously and with async scheduling; token streams, text, finish
 * reasons, stop reasons, logprobs and usage must be identical. */
#include "test.h"
#include "engine/core.h"
#include "sample/sample_batch.h"
#include "sample/sampler.h"
#include "util/err.h"
#include "util/rng.h"
#include "fake_engine.h"

typedef struct { int32_t tokens[512]; LogprobEntry lps[512]; int R; } FakeOut;
typedef struct {
    FakeSlot *kv;
    int num_slots, block_size;
    int bad;                 /* invariant violations seen */
    Sampler sampler;
    float *logits;           /* [512, FV] */
    int32_t ids[4096];       /* this step's resolved token ids */
    FakeOut out[2];          /* ring: results of launched steps */
    int head, inflight;      /* oldest uncollected slot, launched and uncollected steps */
    int last;                /* slot of the last launched step, -1 = none */
    long launches, overlapped, from_device;
} FakeModel;

static FakeModel FM;

/* test_engine.c's fake forward over already resolved ids (FM.ids). */
static int fake_logits(FakeModel *m, const BatchMeta *b, float *logits, char *err) {
    if (fake_store_tokens(m->kv, m->num_slots, b, m->ids, &m->bad, err) != 0) return -1;
    for (int r = 0; r < b->num_logits_rows; r++) {
        int len, prompt_like;
        uint64_t h = fake_row_hash(m->kv, m->block_size, b, r, &m->bad, &len, &prompt_like);
        fake_row_logits(logits + (size_t)r * FV, h, 1.5f);
    }
    return 0;
}

/* Synchronous runner: host logits; the core samples. */
static int fake_forward(void *ctx, const BatchMeta *b, float *logits, char *err) {
    FakeModel *m = ctx;
    if (b->token_src_row) { m->bad++; return pg_err(err, "sync step with device tokens"); }
    memcpy(m->ids, b->token_ids, (size_t)b->num_tokens * sizeof *m->ids);
    return fake_logits(m, b, logits, err);
}

/* Async runner: the device's view of a launch (see the file comment). */
static int fake_launch(void *ctx, const BatchMeta *b, const SampleBatch *sb, char *err) {
    FakeModel *m = ctx;
    if (m->inflight >= 2) { m->bad++; return pg_err(err, "a third step launched"); }
    if (m->inflight == 1) m->overlapped++;
    for (int t = 0; t < b->num_tokens; t++) {
        int src = b->token_src_row ? b->token_src_row[t] : -1;
        if (src < 0) { m->ids[t] = b->token_ids[t]; continue; }
        if (m->last < 0 || src >= m->out[m->last].R || b->token_ids[t] != 0) {
            m->bad++;
            return pg_err(err, "token %d: bad source row %d", t, src);
        }
        m->ids[t] = m->out[m->last].tokens[src];
        m->from_device++;
    }
    if (fake_logits(m, b, m->logits, err) != 0) return -1;
    int slot = (m->head + m->inflight) % 2;
    FakeOut *o = &m->out[slot];
    o->R = b->num_logits_rows;
    if (sb->num_rows != o->R) { m->bad++; return pg_err(err, "sample rows %d != logits rows %d", sb->num_rows, o->R); }
    for (int r = 0; r < o->R; r++)
        o->tokens[r] = sampler_sample_row(&m->sampler, m->logits + (size_t)r * FV, sb, r, &o->lps[r]);
    m->last = slot;
    m->inflight++;
    m->launches++;
    return 0;
}

static int fake_collect(void *ctx, int32_t *tokens, LogprobEntry *lps, char *err) {
    FakeModel *m = ctx;
    if (m->inflight == 0) { m->bad++; return pg_err(err, "collect with nothing launched"); }
    FakeOut *o = &m->out[m->head];
    if (o->R) {   /* a step without logits rows: tokens and lps may be NULL */
        memcpy(tokens, o->tokens, (size_t)o->R * sizeof *tokens);
        memcpy(lps, o->lps, (size_t)o->R * sizeof *lps);
    }
    m->head = (m->head + 1) % 2;
    m->inflight--;
    return 0;
}

/* Fake text: token v is "<v>", except a few short pieces that stop strings can span. */
static size_t fd_push(void *st, int32_t id, char **out, size_t *len, size_t *cap) {
    (void)st;
    static const char *short_pieces[] = {"a", "b", "ab", "ba", "x"};
    char buf[16];
    const char *s = id >= 1 && id <= 5 ? short_pieces[id - 1] : (snprintf(buf, sizeof buf, "<%d>", id), buf);
    return fd_append(out, len, cap, s);
}

static Engine *make_engine(int async, int num_blocks, int bs, int budget, int max_seqs, int caching, int max_len) {
    char err[PG_ERR_LEN];
    free(FM.kv);
    free(FM.logits);
    if (FM.sampler.vocab_size) sampler_deinit(&FM.sampler);
    memset(&FM, 0, sizeof FM);
    FM.num_slots = num_blocks * bs;
    FM.block_size = bs;
    FM.kv = calloc((size_t)FM.num_slots, sizeof *FM.kv);
    FM.logits = malloc((size_t)512 * FV * sizeof *FM.logits);
    FM.last = -1;
    for (int i = 0; i < FM.num_slots; i++) FM.kv[i].pos = -1;
    if (sampler_init(&FM.sampler, FV, err) != 0) { fprintf(stderr, "sampler_init: %s\n", err); return NULL; }
    CoreConfig c = {.vocab_size = FV, .num_blocks = num_blocks, .block_size = bs, .enable_prefix_caching = caching,
                    .max_num_seqs = max_seqs, .max_num_batched_tokens = budget, .max_model_len = max_len,
                    .num_eos = 1, .seed = 7, .async_scheduling = async,
                    .runner = {.ctx = &FM, .forward = fake_forward},
                    .text = {NULL, fd_open, fd_push, fd_flush, fd_close}};
    if (async) { c.runner.launch = fake_launch; c.runner.collect = fake_collect; }
    c.eos_ids[0] = FEOS;
    Engine *e = engine_new_core(&c, err);
    if (!e) fprintf(stderr, "engine_new_core: %s\n", err);
    return e;
}

typedef struct {
    int32_t toks[512]; int n;
    float lp[512]; int32_t lp_rank[512]; int lp_top0[512]; int nlp;
    char text[8192]; size_t text_len;
    FinishReason finish; char stop_reason[256]; int32_t stop_token;
    int prompt_tokens, completion_tokens, cached;
} Collected;

#define NREQ 72
static Collected got[NREQ][3];

static void take(Engine *e) {
    for (RequestOutput *o = engine_take_outputs(e), *n; o; o = n) {
        n = o->next;
        Collected *c = &got[o->id][o->index];
        EXPECT(c->finish == FINISH_NONE);   /* nothing after the final delta */
        for (int i = 0; i < o->num_tokens && c->n < 512; i++) {
            c->toks[c->n++] = o->token_ids[i];
            if (o->logprobs) {
                c->lp[c->nlp] = o->logprobs[i].logprob;
                c->lp_rank[c->nlp] = o->logprobs[i].rank;
                c->lp_top0[c->nlp++] = o->logprobs[i].num_top ? o->logprobs[i].top[0].token : -1;
            }
        }
        if (c->text_len + o->text_len < sizeof c->text) {
            memcpy(c->text + c->text_len, o->text, o->text_len + 1);
            c->text_len += o->text_len;
        }
        c->finish = o->finish;
        c->stop_token = o->stop_token;
        snprintf(c->stop_reason, sizeof c->stop_reason, "%s", o->stop_reason);
        c->prompt_tokens = o->prompt_tokens;
        c->completion_tokens = o->completion_tokens;
        c->cached = o->cached_tokens;
        request_output_free(o);
    }
}

/* Request k's parameters for a workload: `random` sampling or greedy, plus a mix of features
 * chosen by k. `mixed` adds requests that force the synchronous fallback. */
static void params_for(int k, int random, int mixed, const Prompt *p, SamplingParams *sp) {
    static char *stops1[] = {"ab"}, *stops2[] = {"<7>", "ba"};
    sampling_params_default(sp);
    sp->max_tokens = p->max_tokens;
    if (random) {
        sp->temperature = 0.9f;
        sp->top_p = k % 3 ? 0.95f : 1.0f;
        sp->top_k = k % 4 == 1 ? 20 : 0;
        if (k % 2) { sp->has_seed = 1; sp->seed = 1000 + (uint64_t)k; }
    } else {
        sp->temperature = 0;
    }
    if (k % 5 == 2) { sp->stop = stops1; sp->num_stop = 1; }
    if (k % 7 == 3) { sp->stop = stops2; sp->num_stop = 2; sp->include_stop_str_in_output = 1; }
    if (k % 6 == 4) sp->logprobs = 2;
    if (k % 9 == 5) sp->ignore_eos = 1;
    if (k % 11 == 6) sp->max_tokens = -1;   /* up to max_model_len */
    if (mixed) {
        if (k % 10 == 7) sp->repetition_penalty = 1.3f;
        if (k % 13 == 8) sp->presence_penalty = 0.5f;
        if (k % 17 == 9 && (sp->max_tokens < 0 || sp->max_tokens >= 3)) sp->min_tokens = 3;
        if (k % 19 == 10) sp->n = 2;
    }
}

typedef struct { int caching, num_blocks, budget, max_seqs, random, mixed, abort_some, exact_cache; } Workload;

/* Runs the workload: half the requests at the start, the rest one per step; with abort_some,
 * every eighth request is aborted at its submission step + 3. */
static void run_workload(const Workload *w, int async, const Prompt *ps, Collected (*out)[3], EngineStats *st) {
    Engine *e = make_engine(async, w->num_blocks, 4, w->budget, w->max_seqs, w->caching, 96);
    EXPECT(e != NULL);
    if (!e) return;
    memset(got, 0, sizeof got);
    char err[PG_ERR_LEN];
    int next = 0, step = 0, sub_step[NREQ];
    for (int guard = 0; guard < 100000; guard++, step++) {
        int burst = next == 0 ? NREQ / 2 : 1;
        for (int j = 0; j < burst && next < NREQ; j++, next++) {
            SamplingParams sp;
            params_for(next, w->random, w->mixed, &ps[next], &sp);
            EngineRequest rq = {.id = (uint64_t)next, .prompt = ps[next].p, .prompt_len = ps[next].n, .params = sp,
                                .grammar_start_token = -1};
            EXPECT_MSG(engine_submit(e, &rq, err) == 0, "%s", err);
            sub_step[next] = step;
        }
        if (w->abort_some)
            for (int k = 0; k < next; k += 8)
                if (sub_step[k] + 3 == step) engine_abort(e, (uint64_t)k);
        if (next == NREQ && !engine_has_unfinished(e)) break;
        EXPECT(engine_step(e) >= 0);
        take(e);
    }
    take(e);
    engine_get_stats(e, st);
    EXPECT_EQ_INT(st->num_free_blocks, st->num_blocks);   /* every block released */
    EXPECT_EQ_INT(FM.bad, 0);
    EXPECT_EQ_INT(FM.inflight, 0);
    memcpy(out, got, sizeof got);
    if (async) fprintf(stderr, "  async: %ld launches, %ld overlapped, %ld tokens from the device\n",
                       FM.launches, FM.overlapped, FM.from_device);
    engine_free(e);
}

static Collected sync_out[NREQ][3], async_out[NREQ][3];

static void compare(const Workload *w) {
    Prompt ps[NREQ];
    make_prompts(ps, NREQ, 31 + (uint64_t)w->random * 7 + (uint64_t)w->mixed, 40);
    EngineStats s0, s1;
    run_workload(w, 0, ps, sync_out, &s0);
    run_workload(w, 1, ps, async_out, &s1);
    EXPECT(FM.overlapped > 0);     /* the async path really ran */
    EXPECT(FM.from_device > 0);
    int finished_len = 0, finished_stop = 0, stop_strings = 0, aborted = 0, cached_diff = 0;
    for (int k = 0; k < NREQ; k++) {
        SamplingParams sp;
        params_for(k, w->random, w->mixed, &ps[k], &sp);
        for (int i = 0; i < sp.n; i++) {
            const Collected *a = &sync_out[k][i], *b = &async_out[k][i];
            if (w->abort_some && k % 8 == 0 && (a->finish == FINISH_ABORT || b->finish == FINISH_ABORT)) {
                /* aborted at a step, not at a token: each stream is a prefix of the other */
                int m = a->n < b->n ? a->n : b->n;
                EXPECT_MSG(memcmp(a->toks, b->toks, (size_t)m * sizeof *a->toks) == 0, "request %d", k);
                aborted++;
                continue;
            }
            EXPECT_MSG(a->n == b->n && memcmp(a->toks, b->toks, (size_t)a->n * sizeof *a->toks) == 0,
                       "request %d.%d: %d vs %d tokens", k, i, a->n, b->n);
            EXPECT_MSG(a->finish == b->finish, "request %d.%d: finish %d vs %d", k, i, a->finish, b->finish);
            EXPECT_MSG(a->finish == FINISH_STOP || a->finish == FINISH_LENGTH, "request %d.%d: finish %d", k, i, a->finish);
            EXPECT_STR(a->text, b->text);
            EXPECT_STR(a->stop_reason, b->stop_reason);
            EXPECT_EQ_INT(a->stop_token, b->stop_token);
            EXPECT_EQ_INT(a->prompt_tokens, b->prompt_tokens);
            EXPECT_EQ_INT(a->completion_tokens, b->completion_tokens);
            if (a->cached != b->cached) cached_diff++;
            EXPECT_EQ_INT(a->nlp, b->nlp);
            EXPECT(memcmp(a->lp, b->lp, (size_t)a->nlp * sizeof *a->lp) == 0);
            EXPECT(memcmp(a->lp_rank, b->lp_rank, (size_t)a->nlp * sizeof *a->lp_rank) == 0);
            EXPECT(memcmp(a->lp_top0, b->lp_top0, (size_t)a->nlp * sizeof *a->lp_top0) == 0);
            if (a->finish == FINISH_LENGTH) finished_len++;
            if (a->finish == FINISH_STOP) finished_stop++;
            if (a->stop_reason[0]) stop_strings++;
        }
    }
    /* the workload hits what it should */
    EXPECT(finished_len > 0);
    EXPECT(finished_stop > 0);
    EXPECT(stop_strings > 0);
    if (w->abort_some) EXPECT(aborted > 0);
    if (!w->abort_some) {
        EXPECT_EQ_INT(s0.generation_tokens_total, s1.generation_tokens_total);
        EXPECT_EQ_INT(s0.prompt_tokens_total, s1.prompt_tokens_total);
    }
    /* Prefix-cache hits depend on when a request is admitted next to the others, and the async
     * engine learns of a finish one step later (a slot, budget and blocks free up later): with
     * room for everything (exact_cache) the admissions are the same and so must the hits be. */
    if (w->exact_cache) EXPECT_EQ_INT(cached_diff, 0);
    fprintf(stderr, "  %d length, %d stop, %d aborted, %d cached_tokens differ; preemptions sync %llu async %llu; "
            "steps %llu vs %llu\n", finished_len, finished_stop, aborted, cached_diff, (unsigned long long)s0.preemptions,
            (unsigned long long)s1.preemptions, (unsigned long long)s0.steps, (unsigned long long)s1.steps);
}

TEST(greedy_same_as_sync) {
    for (int caching = 0; caching <= 1; caching++)
        compare(&(Workload){.caching = caching, .num_blocks = 400, .budget = 64, .max_seqs = 16});
}

TEST(prefix_hits_same_as_sync) {
    /* every arrival admitted and prefilled in its step, no eviction: identical admissions */
    compare(&(Workload){.caching = 1, .num_blocks = 4000, .budget = 8192, .max_seqs = NREQ, .exact_cache = 1});
    compare(&(Workload){.caching = 1, .num_blocks = 4000, .budget = 8192, .max_seqs = NREQ, .random = 1,
                        .exact_cache = 1});
}

TEST(random_same_as_sync) {
    compare(&(Workload){.caching = 1, .num_blocks = 400, .budget = 64, .max_seqs = 16, .random = 1});
}

TEST(preemption_and_chunking_same_as_sync) {
    /* 60 blocks x 4 tokens for up to 16 sequences of up to 96: preemption; budget 16: chunking */
    compare(&(Workload){.caching = 1, .num_blocks = 60, .budget = 16, .max_seqs = 16, .random = 1});
    compare(&(Workload){.caching = 0, .num_blocks = 60, .budget = 24, .max_seqs = 12});
}

TEST(sync_fallback_mixed_in) {
    compare(&(Workload){.caching = 1, .num_blocks = 400, .budget = 64, .max_seqs = 16, .mixed = 1});
    compare(&(Workload){.caching = 1, .num_blocks = 80, .budget = 32, .max_seqs = 16, .random = 1, .mixed = 1});
}

TEST(aborts) {
    compare(&(Workload){.caching = 1, .num_blocks = 400, .budget = 64, .max_seqs = 16, .random = 1, .abort_some = 1});
}

/* One request alone: every decode step is launched while the previous one is in flight and
 * takes its input token from the device; no step past max_tokens is computed. */
TEST(single_request_pipelines) {
    Engine *e = make_engine(1, 64, 4, 64, 8, 1, 96);
    char err[PG_ERR_LEN];
    Prompt ps[1];
    make_prompts(ps, 1, 9, 40);
    SamplingParams sp;
    sampling_params_default(&sp);
    sp.temperature = 0;
    sp.max_tokens = 30;
    sp.ignore_eos = 1;
    EngineRequest rq = {.id = 0, .prompt = ps[0].p, .prompt_len = ps[0].n, .params = sp, .grammar_start_token = -1};
    memset(got, 0, sizeof got);
    EXPECT(engine_submit(e, &rq, err) == 0);
    int steps = 0;
    while (engine_has_unfinished(e) && steps < 100) { EXPECT(engine_step(e) >= 0); take(e); steps++; }
    EXPECT_EQ_INT(got[0][0].n, 30);
    EXPECT(got[0][0].finish == FINISH_LENGTH);
    EXPECT_EQ_INT(FM.launches, 30);      /* prefill + 29 decodes: nothing past max_tokens */
    EXPECT_EQ_INT(FM.overlapped, 29);
    EXPECT_EQ_INT(FM.from_device, 29);
    EXPECT_EQ_INT(steps, 31);            /* + one step that only collects the last token */
    EXPECT_EQ_INT(FM.bad, 0);
    engine_free(e);
}

/* An async runner whose collect fails: every request ends with an error, nothing leaks. */
static int failing_collect(void *ctx, int32_t *tokens, LogprobEntry *lps, char *err) {
    (void)ctx; (void)tokens; (void)lps;
    return pg_err(err, "device lost");
}

TEST(collect_failure_fails_requests) {
    Engine *e = make_engine(1, 64, 4, 64, 8, 1, 96);
    char err[PG_ERR_LEN];
    /* swap in the failing collect through a second engine config */
    engine_free(e);
    CoreConfig c = {.vocab_size = FV, .num_blocks = 64, .block_size = 4, .enable_prefix_caching = 1,
                    .max_num_seqs = 8, .max_num_batched_tokens = 64, .max_model_len = 96, .num_eos = 1,
                    .async_scheduling = 1,
                    .runner = {.ctx = &FM, .forward = fake_forward, .launch = fake_launch, .collect = failing_collect}};
    e = engine_new_core(&c, err);
    EXPECT(e != NULL);
    memset(got, 0, sizeof got);
    Prompt ps[2];
    make_prompts(ps, 2, 5, 40);
    for (int k = 0; k < 2; k++) {
        SamplingParams sp;
        sampling_params_default(&sp);
        EngineRequest rq = {.id = (uint64_t)k, .prompt = ps[k].p, .prompt_len = ps[k].n, .params = sp, .grammar_start_token = -1};
        EXPECT(engine_submit(e, &rq, err) == 0);
    }
    int rc = 0;
    for (int i = 0; i < 4 && rc >= 0; i++) { rc = engine_step(e); take(e); }
    EXPECT(rc < 0);
    EXPECT(got[0][0].finish == FINISH_ERROR && got[1][0].finish == FINISH_ERROR);
    engine_free(e);
}

int main(void) {
    RUN(greedy_same_as_sync);
    RUN(random_same_as_sync);
    RUN(prefix_hits_same_as_sync);
    RUN(preemption_and_chunking_same_as_sync);
    RUN(sync_fallback_mixed_in);
    RUN(aborts);
    RUN(single_request_pipelines);
    RUN(collect_failure_fails_requests);
    free(FM.kv);
    free(FM.logits);
    if (FM.sampler.vocab_size) sampler_deinit(&FM.sampler);
    TEST_MAIN_END();
}
