/* test_engine.c: the engine step loop (issue 4.2-4.4, 4.7 a, b, d, e) on a fake model.
 *
 * The fake model keeps a simulated paged KV cache (token and position per slot, written at the
 * batch's slot_mapping) and computes each logits row from a hash of the whole sequence as READ
 * BACK FROM ITS BLOCK TABLE. So any wrong slot, stale block, bad prefix-cache hit or broken
 * preemption changes the output, and "batched == alone" really checks the KV bookkeeping. It
 * also checks every BatchMeta invariant. Text comes from a fake decoder with one fixed piece
 * per token id, so stop strings can be placed across token boundaries exactly. The same checks
 * on the real tiny Qwen3 model are in test_engine_model.c. */
#include <time.h>

#include "test.h"
#include "engine/core.h"
#include "sample/grammar/grammar.h"
#include "util/err.h"
#include "util/rng.h"
#include "fake_engine.h"

typedef struct {
    FakeSlot *kv;
    int num_slots, block_size;
    int bad;                 /* invariant violations seen */
    int script;              /* 1: output token k of every sequence is script[k] */
    const int32_t *script_toks; int script_len;
    int max_T;               /* largest T seen (chunking check) */
    int max_S;               /* largest S seen (max_num_seqs check) */
    long chunked;            /* sequences whose chunk did not reach the end */
} FakeModel;

static int fake_forward(void *ctx, const BatchMeta *b, float *logits, char *err) {
    FakeModel *m = ctx;
    if (b->num_tokens > m->max_T) m->max_T = b->num_tokens;
    if (b->num_seqs > m->max_S) m->max_S = b->num_seqs;
    if (fake_store_tokens(m->kv, m->num_slots, b, b->token_ids, &m->bad, err) != 0) return -1;
    for (int r = 0; r < b->num_logits_rows; r++) {
        int len, prompt_like;
        uint64_t h = fake_row_hash(m->kv, m->block_size, b, r, &m->bad, &len, &prompt_like);
        float *l = logits + (size_t)r * FV;
        fake_row_logits(l, h, 2.0f);
        if (m->script) {
            /* output index = tokens after the prompt; prompts here use ids >= 100 only */
            int k = len - prompt_like;
            for (int v = 0; v < FV; v++) l[v] = v == m->script_toks[k % m->script_len] ? 10.0f : 0.0f;
        }
    }
    return 0;
}

/* Fake text: token v is the piece pieces[v] (default "<v>"). */
static const char *pieces[FV + 200];
static size_t fd_push(void *st, int32_t id, char **out, size_t *len, size_t *cap) {
    (void)st;
    char buf[16];
    const char *s = id >= 0 && id < FV && pieces[id] ? pieces[id] : (snprintf(buf, sizeof buf, "<%d>", id), buf);
    return fd_append(out, len, cap, s);
}

static FakeModel FM;

static Engine *make_engine(int num_blocks, int bs, int budget, int max_seqs, int caching, int max_len) {
    char err[PG_ERR_LEN];
    free(FM.kv);
    int script = FM.script; const int32_t *st = FM.script_toks; int sl = FM.script_len;
    memset(&FM, 0, sizeof FM);
    FM.script = script; FM.script_toks = st; FM.script_len = sl;
    FM.num_slots = num_blocks * bs;
    FM.block_size = bs;
    FM.kv = calloc((size_t)FM.num_slots, sizeof *FM.kv);
    for (int i = 0; i < FM.num_slots; i++) FM.kv[i].pos = -1;
    CoreConfig c = {.vocab_size = FV, .num_blocks = num_blocks, .block_size = bs, .enable_prefix_caching = caching,
                    .max_num_seqs = max_seqs, .max_num_batched_tokens = budget, .max_model_len = max_len,
                    .num_eos = 1, .seed = 7, .runner = {&FM, fake_forward},
                    .text = {NULL, fd_open, fd_push, fd_flush, fd_close}};
    c.eos_ids[0] = FEOS;
    Engine *e = engine_new_core(&c, err);
    if (!e) fprintf(stderr, "engine_new_core: %s\n", err);
    return e;
}

typedef struct {
    int32_t toks[512]; int n;
    char text[4096]; size_t text_len;
    int deltas; FinishReason finish; char stop_reason[256]; int32_t stop_token;
    int cached; int lp_count; int first_delta_len;
} Collected;

#define MAXREQ 80
static Collected got[MAXREQ][4];

static void collect(Engine *e) {
    for (RequestOutput *o = engine_take_outputs(e), *n; o; o = n) {
        n = o->next;
        Collected *c = &got[o->id][o->index];
        EXPECT(c->finish == FINISH_NONE);   /* nothing after the final delta */
        for (int i = 0; i < o->num_tokens && c->n < 512; i++) c->toks[c->n++] = o->token_ids[i];
        if (c->deltas == 0) c->first_delta_len = (int)o->text_len;
        memcpy(c->text + c->text_len, o->text, o->text_len + 1);
        c->text_len += o->text_len;
        EXPECT(strlen(o->text) == o->text_len);
        c->deltas++;
        if (o->logprobs) c->lp_count += o->num_tokens;
        c->finish = o->finish;
        c->stop_token = o->stop_token;
        snprintf(c->stop_reason, sizeof c->stop_reason, "%s", o->stop_reason);
        c->cached = o->cached_tokens;
        request_output_free(o);
    }
}

static void run_all(Engine *e) {
    int guard = 0;
    while (engine_has_unfinished(e) && guard++ < 100000) {
        EXPECT(engine_step(e) >= 0);
        collect(e);
    }
    collect(e);
}

static void submit(Engine *e, uint64_t id, const Prompt *p, SamplingParams *sp) {
    char err[PG_ERR_LEN];
    EngineRequest rq = {.id = id, .prompt = p->p, .prompt_len = p->n, .params = *sp, .grammar_start_token = -1};
    int rc = engine_submit(e, &rq, err);
    EXPECT_MSG(rc == 0, "%s", err);
}



TEST(batched_equals_alone_with_chunking_and_preemption) {
    Prompt ps[64];
    make_prompts(ps, 64, 11, 24);
    static Collected alone[64];
    for (int k = 0; k < 64; k++) {
        Engine *e = make_engine(64, 4, 256, 8, 0, 128);
        SamplingParams sp; sampling_params_default(&sp); sp.temperature = 0; sp.max_tokens = ps[k].max_tokens;
        memset(got, 0, sizeof got);
        submit(e, (uint64_t)k, &ps[k], &sp);
        run_all(e);
        alone[k] = got[k][0];
        EXPECT(alone[k].finish == FINISH_STOP || alone[k].finish == FINISH_LENGTH);
        engine_free(e);
    }
    EXPECT_EQ_INT(FM.bad, 0);
    for (int caching = 0; caching <= 1; caching++) {
        /* budget 16 < many prompts (chunked prefill); 40 blocks x 4 = 160 tokens for 64 requests of
         * up to 84 tokens (preemption); max_num_seqs 24 */
        Engine *e = make_engine(40, 4, 16, 24, caching, 128);
        memset(got, 0, sizeof got);
        for (int k = 0; k < 64; k++) {
            SamplingParams sp; sampling_params_default(&sp); sp.temperature = 0; sp.max_tokens = ps[k].max_tokens;
            submit(e, (uint64_t)k, &ps[k], &sp);
        }
        run_all(e);
        EngineStats st;
        engine_get_stats(e, &st);
        int mismatches = 0;
        for (int k = 0; k < 64; k++) {
            Collected *a = &alone[k], *b = &got[k][0];
            if (a->n != b->n || memcmp(a->toks, b->toks, (size_t)a->n * 4) || a->finish != b->finish ||
                strcmp(a->text, b->text))
                mismatches++;
        }
        EXPECT_EQ_INT(mismatches, 0);
        EXPECT_EQ_INT(FM.bad, 0);
        EXPECT_MSG(st.preemptions > 0, "no preemption happened");
        EXPECT(FM.max_T <= 16);
        EXPECT_EQ_INT(st.num_free_blocks, 40);
        EXPECT_EQ_INT(st.num_running + st.num_waiting, 0);
        if (caching) EXPECT_MSG(st.prefix_hits > 0, "no prefix hits");
        else EXPECT_EQ_INT(st.prefix_hits, 0);
        fprintf(stderr, "  caching=%d: preemptions %llu, prefix queries %llu hits %llu, steps %llu\n", caching,
                (unsigned long long)st.preemptions, (unsigned long long)st.prefix_queries,
                (unsigned long long)st.prefix_hits, (unsigned long long)st.steps);
        engine_free(e);
    }
}

TEST(prefix_hits_counted_and_reported) {
    Engine *e = make_engine(64, 4, 64, 8, 1, 128);
    Prompt p;
    p.n = 30;
    for (int i = 0; i < 30; i++) p.p[i] = 100 + i;
    SamplingParams sp; sampling_params_default(&sp); sp.temperature = 0; sp.max_tokens = 3;
    memset(got, 0, sizeof got);
    submit(e, 1, &p, &sp);
    run_all(e);
    p.p[29] = 150;                    /* same first 29 tokens: 7 full blocks of 4 can hit */
    submit(e, 2, &p, &sp);
    run_all(e);
    EXPECT_EQ_INT(got[1][0].cached, 0);
    EXPECT_EQ_INT(got[2][0].cached, 28);
    EngineStats st; engine_get_stats(e, &st);
    EXPECT_EQ_INT(st.prefix_hits, 28);
    EXPECT_EQ_INT(st.prefix_queries, 60);
    engine_free(e);

    /* a burst admitted in one step: the first computes the shared 20 tokens, the others hit
     * them in that same step (20 tokens = 5 full blocks each), with outputs equal to no caching */
    static Collected ref[4];
    for (int caching = 0; caching <= 1; caching++) {
        e = make_engine(64, 4, 256, 8, caching, 128);
        memset(got, 0, sizeof got);
        for (int k = 0; k < 4; k++) {
            Prompt q; q.n = 22;
            for (int i = 0; i < 22; i++) q.p[i] = 100 + (i < 20 ? i : 30 + k * 2 + i);
            submit(e, (uint64_t)k, &q, &sp);
        }
        engine_step(e);
        engine_get_stats(e, &st);
        EXPECT_EQ_INT(st.prefix_hits, caching ? 3 * 20 : 0);
        run_all(e);
        for (int k = 0; k < 4; k++) {
            if (!caching) ref[k] = got[k][0];
            else EXPECT(got[k][0].n == ref[k].n && !memcmp(got[k][0].toks, ref[k].toks, (size_t)ref[k].n * 4));
        }
        EXPECT_EQ_INT(FM.bad, 0);
        engine_free(e);
    }
}

TEST(stop_strings_across_tokens) {
    static const int32_t script[] = {1, 2, 3, 4, 5, 6};
    FM.script = 1; FM.script_toks = script; FM.script_len = 6;
    pieces[1] = "He"; pieces[2] = "llo"; pieces[3] = " wo"; pieces[4] = "rld"; pieces[5] = "!"; pieces[6] = "?";
    Prompt p = {.n = 3, .p = {100, 101, 102}};
    for (int include = 0; include <= 1; include++) {
        Engine *e = make_engine(64, 4, 64, 8, 1, 128);
        char *stops[2] = {"xyz", "lo w"};
        SamplingParams sp; sampling_params_default(&sp); sp.temperature = 0; sp.max_tokens = 6;
        sp.stop = stops; sp.num_stop = 2; sp.include_stop_str_in_output = include;
        memset(got, 0, sizeof got);
        submit(e, 3, &p, &sp);
        run_all(e);
        Collected *c = &got[3][0];
        EXPECT_STR(c->text, include ? "Hello w" : "Hel");
        EXPECT_EQ_INT(c->finish, FINISH_STOP);
        EXPECT_STR(c->stop_reason, "lo w");
        EXPECT_EQ_INT(c->n, 3);                 /* the token completing the stop string is reported */
        EXPECT_EQ_INT(c->first_delta_len, 2);   /* "He" */
        engine_free(e);
    }
    /* hold-back released when the candidate turns out not to be a stop string */
    {
        Engine *e = make_engine(64, 4, 64, 8, 1, 128);
        char *stops[1] = {"lo!"};
        SamplingParams sp; sampling_params_default(&sp); sp.temperature = 0; sp.max_tokens = 4;
        sp.stop = stops; sp.num_stop = 1;
        memset(got, 0, sizeof got);
        submit(e, 4, &p, &sp);
        run_all(e);
        EXPECT_STR(got[4][0].text, "Hello world");
        EXPECT_EQ_INT(got[4][0].finish, FINISH_LENGTH);
        engine_free(e);
    }
    /* stop_token_ids: token reported, its text excluded; min_tokens delays it */
    {
        Engine *e = make_engine(64, 4, 64, 8, 1, 128);
        int32_t stop_ids[1] = {3};
        SamplingParams sp; sampling_params_default(&sp); sp.temperature = 0; sp.max_tokens = 12;
        sp.stop_token_ids = stop_ids; sp.num_stop_token_ids = 1;
        memset(got, 0, sizeof got);
        submit(e, 5, &p, &sp);
        run_all(e);
        EXPECT_STR(got[5][0].text, "Hello");
        EXPECT_EQ_INT(got[5][0].stop_token, 3);
        EXPECT_EQ_INT(got[5][0].n, 3);
        engine_free(e);
    }
    FM.script = 0;
    for (int i = 0; i < FV; i++) pieces[i] = NULL;
}

TEST(seeded_sampling_independent_of_batch) {
    Prompt ps[16];
    make_prompts(ps, 16, 5, 24);
    SamplingParams sp; sampling_params_default(&sp);
    sp.temperature = 1.0f; sp.top_p = 0.9f; sp.top_k = 20; sp.has_seed = 1; sp.seed = 1234; sp.max_tokens = 20;
    sp.ignore_eos = 1;
    static Collected ref;
    for (int round = 0; round < 3; round++) {
        Engine *e = make_engine(200, 4, round == 2 ? 8 : 128, 32, round, 128);
        memset(got, 0, sizeof got);
        /* round 0: alone; 1: among 15 unseeded others; 2: others first, tiny budget */
        if (round == 2)
            for (int k = 1; k < 16; k++) { SamplingParams o = sp; o.has_seed = 0; submit(e, (uint64_t)k, &ps[k], &o); }
        submit(e, 0, &ps[0], &sp);
        if (round == 1)
            for (int k = 1; k < 16; k++) { SamplingParams o = sp; o.has_seed = 0; submit(e, (uint64_t)k, &ps[k], &o); }
        run_all(e);
        if (round == 0) ref = got[0][0];
        else {
            EXPECT_EQ_INT(got[0][0].n, ref.n);
            EXPECT(memcmp(got[0][0].toks, ref.toks, (size_t)ref.n * 4) == 0);
        }
        engine_free(e);
    }
    EXPECT_EQ_INT(ref.n, 20);
    /* a different seed gives a different stream */
    Engine *e = make_engine(200, 4, 128, 32, 1, 128);
    memset(got, 0, sizeof got);
    sp.seed = 999;
    submit(e, 0, &ps[0], &sp);
    run_all(e);
    EXPECT(memcmp(got[0][0].toks, ref.toks, (size_t)ref.n * 4) != 0);
    engine_free(e);
}

TEST(n_completions_share_prompt_blocks) {
    Engine *e = make_engine(64, 4, 64, 2, 0, 128);     /* max_num_seqs 2 < n */
    Prompt p; p.n = 21;
    for (int i = 0; i < 21; i++) p.p[i] = 100 + (i * 7) % 64;
    SamplingParams sp; sampling_params_default(&sp);
    sp.n = 3; sp.temperature = 1.0f; sp.has_seed = 1; sp.seed = 5; sp.max_tokens = 8; sp.ignore_eos = 1;
    sp.logprobs = 2;
    memset(got, 0, sizeof got);
    submit(e, 7, &p, &sp);
    run_all(e);
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ_INT(got[7][i].n, 8);
        EXPECT_EQ_INT(got[7][i].finish, FINISH_LENGTH);
        EXPECT_EQ_INT(got[7][i].lp_count, 8);
    }
    EXPECT(memcmp(got[7][0].toks, got[7][1].toks, 32) != 0 || memcmp(got[7][1].toks, got[7][2].toks, 32) != 0);
    EngineStats st; engine_get_stats(e, &st);
    EXPECT_EQ_INT(st.num_free_blocks, 64);
    EXPECT_EQ_INT(FM.bad, 0);
    EXPECT(FM.max_S <= 2);
    engine_free(e);
}

TEST(abort_frees_blocks_and_reports) {
    Engine *e = make_engine(64, 4, 64, 8, 1, 128);
    Prompt p; p.n = 10;
    for (int i = 0; i < 10; i++) p.p[i] = 100 + i;
    SamplingParams sp; sampling_params_default(&sp); sp.temperature = 0; sp.max_tokens = 100; sp.ignore_eos = 1;
    sp.n = 2;
    memset(got, 0, sizeof got);
    submit(e, 9, &p, &sp);
    submit(e, 10, &p, &sp);
    for (int i = 0; i < 3; i++) { engine_step(e); collect(e); }
    EngineStats st; engine_get_stats(e, &st);
    EXPECT(st.num_free_blocks < 64);
    engine_abort(e, 9);
    engine_abort(e, 10);
    engine_abort(e, 12345);   /* unknown: no-op */
    engine_step(e);
    collect(e);
    engine_get_stats(e, &st);
    EXPECT_EQ_INT(st.num_free_blocks, 64);
    EXPECT_EQ_INT(got[9][0].finish, FINISH_ABORT);
    EXPECT_EQ_INT(got[9][1].finish, FINISH_ABORT);
    EXPECT_EQ_INT(got[10][0].finish, FINISH_ABORT);
    EXPECT(!engine_has_unfinished(e));
    /* the id is free again */
    submit(e, 9, &p, &sp);
    engine_free(e);   /* frees unfinished work */
}

TEST(submit_errors) {
    Engine *e = make_engine(64, 4, 64, 8, 1, 32);
    char err[PG_ERR_LEN];
    int32_t long_prompt[40] = {0};
    SamplingParams sp; sampling_params_default(&sp);
    EngineRequest rq = {.id = 1, .prompt = long_prompt, .prompt_len = 40, .params = sp};
    EXPECT(engine_submit(e, &rq, err) == -1);
    EXPECT_CONTAINS(err, "maximum model length of 32");
    rq.prompt_len = 0;
    EXPECT(engine_submit(e, &rq, err) == -1);
    rq.prompt_len = 4;
    long_prompt[2] = FV;
    EXPECT(engine_submit(e, &rq, err) == -1);
    EXPECT_CONTAINS(err, "out of vocabulary");
    long_prompt[2] = 5;
    EXPECT(engine_submit(e, &rq, err) == 0);
    EXPECT(engine_submit(e, &rq, err) == -1);
    EXPECT_CONTAINS(err, "already in use");
    rq.id = 2;
    rq.params.temperature = -1;
    EXPECT(engine_submit(e, &rq, err) == -1);
    EXPECT_CONTAINS(err, "temperature");
    engine_free(e);
    /* a pool smaller than max_model_len is refused at start-up */
    EXPECT(make_engine(4, 4, 64, 8, 1, 32) == NULL);
}

static int notified;
static void on_notify(void *arg) { (void)arg; __atomic_add_fetch(&notified, 1, __ATOMIC_SEQ_CST); }

TEST(engine_thread_and_notify) {
    Engine *e = make_engine(64, 4, 64, 8, 1, 128);
    char err[PG_ERR_LEN];
    engine_set_notify(e, on_notify, NULL);
    EXPECT(engine_start(e, err) == 0);
    Prompt ps[8];
    make_prompts(ps, 8, 3, 24);
    memset(got, 0, sizeof got);
    for (int k = 0; k < 8; k++) {
        SamplingParams sp; sampling_params_default(&sp); sp.temperature = 0; sp.max_tokens = 5; sp.ignore_eos = 1;
        submit(e, (uint64_t)k, &ps[k], &sp);
    }
    int done = 0;
    for (int spin = 0; spin < 20000 && done < 8; spin++) {
        collect(e);
        done = 0;
        for (int k = 0; k < 8; k++) done += got[k][0].finish != FINISH_NONE;
        if (done < 8) { struct timespec ts = {0, 100000}; nanosleep(&ts, NULL); }
    }
    EXPECT_EQ_INT(done, 8);
    EXPECT(__atomic_load_n(&notified, __ATOMIC_SEQ_CST) > 0);
    engine_stop(e);
    engine_free(e);
}


/* Grammar hook: a matcher per sequence masks the logits; EOS only once the grammar is complete. */
static GrammarCompiler *fake_grammar_compiler(void) {
    static const char *bytes[FV];
    static size_t lens[FV];
    static uint8_t allowed[FV];
    static char names[FV][8];
    for (int v = 0; v < FV; v++) {
        if (pieces[v]) bytes[v] = pieces[v];
        else { snprintf(names[v], sizeof names[v], "<%d>", v); bytes[v] = names[v]; }
        lens[v] = strlen(bytes[v]);
        allowed[v] = v != FEOS && v < FSAMPLED;
    }
    char err[PG_ERR_LEN];
    int32_t eos = FEOS;
    GrammarCompiler *gc = grammar_compiler_new_raw(FV, bytes, lens, allowed, &eos, 1, err);
    EXPECT_MSG(gc != NULL, "%s", err);
    return gc;
}

TEST(grammar_constrains_output) {
    pieces[1] = "ye"; pieces[2] = "s"; pieces[3] = "no"; pieces[4] = "y"; pieces[5] = "es";
    GrammarCompiler *gc = fake_grammar_compiler();
    if (!gc) return;
    char err[PG_ERR_LEN];
    Prompt p = {.n = 3, .p = {100, 101, 102}};
    int seen_yes = 0, seen_no = 0;
    for (int k = 0; k < 12; k++) {
        Engine *e = make_engine(64, 4, 64, 8, 1, 128);
        Grammar *g = grammar_compile(gc, GRAMMAR_CHOICE, "[\"yes\", \"no\"]", err);
        EXPECT_MSG(g != NULL, "%s", err);
        SamplingParams sp; sampling_params_default(&sp);
        sp.temperature = 1.0f; sp.has_seed = 1; sp.seed = (uint64_t)k; sp.max_tokens = 10;
        EngineRequest rq = {.id = 1, .prompt = p.p, .prompt_len = p.n, .params = sp, .grammar = g, .grammar_start_token = -1};
        memset(got, 0, sizeof got);
        EXPECT(engine_submit(e, &rq, err) == 0);
        run_all(e);
        EXPECT_MSG(!strcmp(got[1][0].text, "yes") || !strcmp(got[1][0].text, "no"), "text '%s'", got[1][0].text);
        EXPECT_EQ_INT(got[1][0].finish, FINISH_STOP);
        EXPECT_EQ_INT(got[1][0].stop_token, FEOS);
        seen_yes += !strcmp(got[1][0].text, "yes");
        seen_no += !strcmp(got[1][0].text, "no");
        engine_free(e);
    }
    EXPECT(seen_yes > 0 && seen_no > 0);
    /* grammar_start_token: free text until token 9, then constrained (greedy: lowest allowed id) */
    static const int32_t script[] = {7, 9, 11, 11, 11, 11};
    FM.script = 1; FM.script_toks = script; FM.script_len = 6;
    Engine *e = make_engine(64, 4, 64, 8, 1, 128);
    Grammar *g = grammar_compile(gc, GRAMMAR_CHOICE, "[\"yes\", \"no\"]", err);
    SamplingParams sp; sampling_params_default(&sp); sp.temperature = 0; sp.max_tokens = 10;
    EngineRequest rq = {.id = 2, .prompt = p.p, .prompt_len = p.n, .params = sp, .grammar = g, .grammar_start_token = 9};
    memset(got, 0, sizeof got);
    EXPECT(engine_submit(e, &rq, err) == 0);
    run_all(e);
    EXPECT_STR(got[2][0].text, "<7><9>yes");
    EXPECT_EQ_INT(got[2][0].finish, FINISH_STOP);
    engine_free(e);
    FM.script = 0;
    for (int i = 0; i < FV; i++) pieces[i] = NULL;
    grammar_compiler_free(gc);
}

static int failing_forward(void *ctx, const BatchMeta *b, float *logits, char *err) {
    (void)ctx; (void)b; (void)logits;
    return pg_err(err, "device lost");
}

TEST(forward_failure_fails_requests_cleanly) {
    char err[PG_ERR_LEN];
    CoreConfig c = {.vocab_size = FV, .num_blocks = 64, .block_size = 4, .enable_prefix_caching = 1,
                    .max_num_seqs = 8, .max_num_batched_tokens = 64, .max_model_len = 128,
                    .runner = {NULL, failing_forward}};
    Engine *e = engine_new_core(&c, err);
    Prompt p = {.n = 3, .p = {100, 101, 102}};
    SamplingParams sp; sampling_params_default(&sp); sp.n = 2;
    memset(got, 0, sizeof got);
    submit(e, 1, &p, &sp);
    EXPECT_EQ_INT(engine_step(e), -1);
    collect(e);
    EXPECT_EQ_INT(got[1][0].finish, FINISH_ERROR);
    EXPECT_EQ_INT(got[1][1].finish, FINISH_ERROR);
    EXPECT(!engine_has_unfinished(e));
    EngineStats st; engine_get_stats(e, &st);
    EXPECT_EQ_INT(st.failed, 1);
    EXPECT_EQ_INT(st.num_free_blocks, 64);
    EngineRequest rq = {.id = 2, .prompt = p.p, .prompt_len = p.n, .params = sp};
    EXPECT(engine_submit(e, &rq, err) == -1);
    EXPECT_CONTAINS(err, "failed");
    engine_free(e);
}

/* EngineStats' step phases: the forward phase holds the runner's time (a forward that sleeps
 * 3 ms per call), steps are counted, no phase is negative, and the prompt's step is counted as
 * the one prefill step with its forward time. */
static int slow_forward(void *ctx, const BatchMeta *b, float *logits, char *err) {
    struct timespec ts = {0, 3000000};
    nanosleep(&ts, NULL);
    return fake_forward(ctx, b, logits, err);
}

TEST(step_phases_account_for_the_forward) {
    Engine *e = make_engine(64, 4, 64, 8, 0, 128);
    EngineStats s0;
    engine_get_stats(e, &s0);
    EXPECT(s0.forward_s == 0 && s0.schedule_s == 0 && s0.batch_s == 0 && s0.postprocess_s == 0);
    engine_free(e);
    char err[PG_ERR_LEN];
    CoreConfig c = {.vocab_size = FV, .num_blocks = 64, .block_size = 4, .max_num_seqs = 8,
                    .max_num_batched_tokens = 64, .max_model_len = 128, .num_eos = 1, .seed = 7,
                    .runner = {&FM, slow_forward}, .text = {NULL, fd_open, fd_push, fd_flush, fd_close}};
    c.eos_ids[0] = FEOS;
    FM.num_slots = 64 * 4;
    FM.block_size = 4;
    free(FM.kv);
    FM.kv = calloc((size_t)FM.num_slots, sizeof *FM.kv);
    for (int i = 0; i < FM.num_slots; i++) FM.kv[i].pos = -1;
    e = engine_new_core(&c, err);
    Prompt p = {.n = 3, .p = {100, 101, 102}};
    SamplingParams sp; sampling_params_default(&sp); sp.max_tokens = 5; sp.ignore_eos = 1;
    memset(got, 0, sizeof got);
    submit(e, 1, &p, &sp);
    run_all(e);
    EngineStats st;
    engine_get_stats(e, &st);
    EXPECT_EQ_INT((int)st.steps, 5);
    EXPECT_MSG(st.forward_s >= 5 * 0.003, "forward phase %.4f s for 5 forwards of >= 3 ms", st.forward_s);
    /* the 3-token prompt is one prefill step, the other 4 steps decode */
    EXPECT_EQ_INT((int)st.prefill_steps, 1);
    EXPECT_MSG(st.forward_prefill_s >= 0.003 && st.forward_prefill_s < st.forward_s - 4 * 0.003 + 1e-9,
               "prefill forward %.4f s of %.4f s", st.forward_prefill_s, st.forward_s);
    EXPECT(st.schedule_s >= 0 && st.batch_s >= 0 && st.postprocess_s >= 0);
    engine_free(e);
}

int main(void) {
    RUN(batched_equals_alone_with_chunking_and_preemption);
    RUN(prefix_hits_counted_and_reported);
    RUN(stop_strings_across_tokens);
    RUN(seeded_sampling_independent_of_batch);
    RUN(n_completions_share_prompt_blocks);
    RUN(abort_frees_blocks_and_reports);
    RUN(submit_errors);
    RUN(engine_thread_and_notify);
    RUN(grammar_constrains_output);
    RUN(forward_failure_fails_requests_cleanly);
    RUN(step_phases_account_for_the_forward);
    free(FM.kv);
    TEST_MAIN_END();
}
