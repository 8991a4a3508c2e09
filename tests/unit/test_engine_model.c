/* test_engine_model.c: the engine on the real tiny Qwen3 checkpoint (models/tiny-qwen3, made by
 * scripts/make_tiny_models.py) and the real tokenizer (issue 4.7 a, b, e):
 *  (a) greedy outputs of 64 requests of random lengths, run together with a small token budget
 *      (chunked prefill) and a small block pool (preemptions), equal each request run alone;
 *  (b) the same with prefix caching on and off, with hits counted for shared prefixes;
 *  (e) a seeded sampled request gives the same tokens alone and inside different batches;
 * and the streamed text deltas concatenate to the tokenizer's decode of the tokens; and greedy
 * tokens through the whole engine (batched, chunked) equal HF transformers' greedy tokens
 * (tests/fixtures/goldens/tiny-qwen3.json, made by scripts/make_goldens.py).
 * Under the sanitizer build (PAGELLM_SANITIZED=1) the request count is reduced to keep the
 * suite fast. */
#include <jansson.h>

#include "test.h"
#include "engine/engine.h"
#include "tok/tokenizer.h"
#include "util/err.h"
#include "util/rng.h"

#define MAXR 64

typedef struct { int32_t toks[64]; int n; char text[2048]; size_t tlen; FinishReason fin; int cached; } Got;
static Got got[MAXR];
static int NREQ = 64;
static int ASYNC = 0;   /* open_engine: --async-scheduling */

static Engine *open_engine(int blocks, int budget, int max_seqs, int caching) {
    char err[PG_ERR_LEN];
    EngineConfig c;
    engine_config_default(&c);
    c.model_dir = fixture_path("models/tiny-qwen3");
    c.threads = 2;
    c.block_size = 16;
    c.num_gpu_blocks_override = blocks;
    c.max_num_batched_tokens = budget;
    c.max_num_seqs = max_seqs;
    c.max_model_len = 256;
    c.enable_prefix_caching = caching;
    c.async_scheduling = ASYNC;
    Engine *e = engine_new(&c, err);
    EXPECT_MSG(e != NULL, "%s", err);
    return e;
}

static void drain(Engine *e) {
    for (RequestOutput *o = engine_take_outputs(e), *n; o; o = n) {
        n = o->next;
        Got *g = &got[o->id];
        for (int i = 0; i < o->num_tokens && g->n < 64; i++) g->toks[g->n++] = o->token_ids[i];
        if (g->tlen + o->text_len < sizeof g->text) { memcpy(g->text + g->tlen, o->text, o->text_len); g->tlen += o->text_len; g->text[g->tlen] = 0; }
        if (o->finish) { g->fin = o->finish; g->cached = o->cached_tokens; }
        request_output_free(o);
    }
}

static void run(Engine *e) {
    while (engine_has_unfinished(e)) {
        EXPECT(engine_step(e) >= 0);
        drain(e);
    }
    drain(e);
}

typedef struct { int32_t ids[160]; int n; int max_tokens; } P;
static P ps[MAXR];

static void make(uint64_t seed) {
    Rng r; rng_seed(&r, seed);
    int32_t shared[2][96];
    for (int f = 0; f < 2; f++) for (int i = 0; i < 96; i++) shared[f][i] = 1000 + (int32_t)(rng_next(&r) % 50000);
    for (int k = 0; k < NREQ; k++) {
        ps[k].n = 1 + (int)(rng_next(&r) % 100);
        int fam = (int)(rng_next(&r) % 3), pre = fam < 2 ? (int)(rng_next(&r) % 96) : 0;
        for (int i = 0; i < ps[k].n; i++) ps[k].ids[i] = i < pre ? shared[fam][i] : 1000 + (int32_t)(rng_next(&r) % 50000);
        ps[k].max_tokens = 1 + (int)(rng_next(&r) % 16);
    }
}

static void submit(Engine *e, int k, const SamplingParams *sp) {
    char err[PG_ERR_LEN];
    EngineRequest rq = {.id = (uint64_t)k, .prompt = ps[k].ids, .prompt_len = ps[k].n, .params = *sp, .grammar_start_token = -1};
    int rc = engine_submit(e, &rq, err);
    EXPECT_MSG(rc == 0, "%s", err);
}

TEST(batched_equals_alone) {
    make(2024);
    static Got alone[MAXR];
    Engine *e = open_engine(64, 512, 8, 0);
    if (!e) return;
    memset(got, 0, sizeof got);
    for (int k = 0; k < NREQ; k++) {
        SamplingParams sp; sampling_params_default(&sp); sp.temperature = 0; sp.max_tokens = ps[k].max_tokens;
        submit(e, k, &sp);
        run(e);
        alone[k] = got[k];
    }
    const Tokenizer *tok = engine_tokenizer(e);
    EXPECT(tok != NULL);
    for (int k = 0; tok && k < 8; k++) {   /* deltas concatenate to the full decode */
        size_t len;
        char *full = tok_decode(tok, alone[k].toks, (size_t)alone[k].n, 1, &len);
        if (alone[k].fin == FINISH_LENGTH) EXPECT_STR(alone[k].text, full);
        free(full);
    }
    engine_free(e);
    for (int caching = 0; caching <= 1; caching++) {
        /* 17 blocks x 16 = 272 tokens for up to 116-token requests: preemptions; budget 32:
         * chunked prefill of every prompt over 32 tokens */
        e = open_engine(17, 32, 32, caching);
        if (!e) return;
        memset(got, 0, sizeof got);
        for (int k = 0; k < NREQ; k++) {
            SamplingParams sp; sampling_params_default(&sp); sp.temperature = 0; sp.max_tokens = ps[k].max_tokens;
            submit(e, k, &sp);
        }
        run(e);
        int bad = 0;
        for (int k = 0; k < NREQ; k++)
            if (got[k].n != alone[k].n || memcmp(got[k].toks, alone[k].toks, (size_t)got[k].n * 4) ||
                got[k].fin != alone[k].fin || strcmp(got[k].text, alone[k].text)) {
                if (bad++ < 3) fprintf(stderr, "  request %d differs (caching %d)\n", k, caching);
            }
        EXPECT_EQ_INT(bad, 0);
        EngineStats st; engine_get_stats(e, &st);
        EXPECT(st.preemptions > 0);
        EXPECT_EQ_INT(st.num_free_blocks, 17);
        if (caching) EXPECT(st.prefix_hits > 0); else EXPECT_EQ_INT(st.prefix_hits, 0);
        fprintf(stderr, "  caching=%d: %d requests, preemptions %llu, prefix hits %llu of %llu tokens, steps %llu\n",
                caching, NREQ, (unsigned long long)st.preemptions, (unsigned long long)st.prefix_hits,
                (unsigned long long)st.prefix_queries, (unsigned long long)st.steps);
        engine_free(e);
    }
}

TEST(seeded_sampling_batch_independent) {
    make(77);
    SamplingParams sp; sampling_params_default(&sp);
    sp.temperature = 0.9f; sp.top_p = 0.95f; sp.top_k = 50; sp.has_seed = 1; sp.seed = 31337; sp.max_tokens = 12; sp.ignore_eos = 1;
    Got ref;
    int others = NREQ < 12 ? NREQ - 1 : 11;
    for (int round = 0; round < 3; round++) {
        Engine *e = open_engine(64, round == 2 ? 24 : 512, 16, round != 1);
        if (!e) return;
        memset(got, 0, sizeof got);
        if (round == 2) for (int k = 1; k <= others; k++) { SamplingParams o = sp; o.seed = (uint64_t)k; submit(e, k, &o); }
        submit(e, 0, &sp);
        if (round == 1) for (int k = 1; k <= others; k++) { SamplingParams o = sp; o.has_seed = 0; submit(e, k, &o); }
        run(e);
        if (round == 0) ref = got[0];
        else EXPECT(got[0].n == ref.n && memcmp(got[0].toks, ref.toks, (size_t)ref.n * 4) == 0);
        engine_free(e);
    }
    EXPECT_EQ_INT(ref.n, 12);
}

TEST(greedy_matches_hf_goldens_through_the_engine) {
    json_error_t je;
    json_t *j = json_load_file(fixture_path("tests/fixtures/goldens/tiny-qwen3.json"), 0, &je);
    EXPECT_MSG(j != NULL, "%s", je.text);
    if (!j) return;
    json_t *prompts = json_object_get(j, "prompts");
    int np = (int)json_array_size(prompts);
    EXPECT(np > 0 && np <= MAXR);
    /* budget 8 tokens: every prompt longer than 8 is prefilled in chunks, mixed with decodes */
    Engine *e = open_engine(64, 8, 8, 1);
    if (!e) { json_decref(j); return; }
    memset(got, 0, sizeof got);
    int want_len[MAXR] = {0};
    int32_t want[MAXR][64];
    for (int k = 0; k < np; k++) {
        json_t *pr = json_array_get(prompts, (size_t)k), *ids = json_object_get(pr, "ids"), *g = json_object_get(pr, "greedy");
        ps[k].n = (int)json_array_size(ids);
        for (int i = 0; i < ps[k].n && i < 160; i++) ps[k].ids[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
        want_len[k] = (int)json_array_size(g);
        for (int i = 0; i < want_len[k] && i < 64; i++) want[k][i] = (int32_t)json_integer_value(json_array_get(g, (size_t)i));
        SamplingParams sp; sampling_params_default(&sp); sp.temperature = 0; sp.ignore_eos = 1; sp.max_tokens = want_len[k];
        submit(e, k, &sp);
    }
    run(e);
    for (int k = 0; k < np; k++) {
        EXPECT_EQ_INT(got[k].n, want_len[k]);
        int first_diff = -1;
        for (int i = 0; i < got[k].n && first_diff < 0; i++) if (got[k].toks[i] != want[k][i]) first_diff = i;
        EXPECT_MSG(first_diff < 0, "prompt %d: first difference from HF at token %d", k, first_diff);
    }
    engine_free(e);
    json_decref(j);
}

/* (d) with the real tokenizer: a stop string made of the end of one token's text and the start
 * of the next one stops the output exactly before its first occurrence. */
TEST(stop_string_across_real_tokens) {
    make(99);
    Engine *e = open_engine(64, 512, 8, 1);
    if (!e) return;
    const Tokenizer *tok = engine_tokenizer(e);
    SamplingParams sp; sampling_params_default(&sp); sp.temperature = 0; sp.max_tokens = 24; sp.ignore_eos = 1;
    int tested = 0;
    for (int k = 0; k < 6 && tok; k++) {
        memset(got, 0, sizeof got);
        submit(e, k, &sp);
        run(e);
        Got full = got[k];
        /* find a token boundary with >= 2 ASCII bytes on each side */
        char stop[8] = "";
        for (int j = 1; j < full.n - 1 && !stop[0]; j++) {
            size_t la;
            char *a = tok_decode(tok, full.toks, (size_t)j, 1, &la);
            if (la >= 2 && la + 2 <= full.tlen && !memcmp(a, full.text, la) && (unsigned char)full.text[la - 2] < 128 &&
                (unsigned char)full.text[la - 1] < 128 && (unsigned char)full.text[la] < 128 && (unsigned char)full.text[la + 1] < 128) {
                size_t lb;
                char *b = tok_decode(tok, full.toks, (size_t)j + 1, 1, &lb);
                if (lb >= la + 2) memcpy(stop, full.text + la - 2, 4);   /* spans tokens j-1 and j */
                free(b);
            }
            free(a);
        }
        if (!stop[0]) continue;
        const char *first = strstr(full.text, stop);
        size_t want = (size_t)(first - full.text);
        char *stops[1] = {stop};
        SamplingParams s2 = sp; s2.stop = stops; s2.num_stop = 1;
        memset(got, 0, sizeof got);
        submit(e, k, &s2);
        run(e);
        EXPECT_EQ_INT(got[k].fin, FINISH_STOP);
        EXPECT_EQ_INT(got[k].tlen, want);
        EXPECT(!memcmp(got[k].text, full.text, want));
        tested++;
    }
    EXPECT(tested > 0);
    engine_free(e);
}

/* --async-scheduling on the CPU backend (its sample_launch / sample_collect and set_batch's
 * device-side pending tokens): the same greedy and seeded-random outputs and finish reasons as
 * the synchronous engine, under chunked prefill and preemption; then the HF goldens again. */
TEST(async_scheduling_same_as_sync) {
    make(555);
    static Got ref[MAXR];
    for (int async = 0; async <= 1; async++) {
        ASYNC = async;
        Engine *e = open_engine(17, 32, 32, 1);
        if (!e) { ASYNC = 0; return; }
        memset(got, 0, sizeof got);
        for (int k = 0; k < NREQ; k++) {
            SamplingParams sp; sampling_params_default(&sp);
            sp.max_tokens = ps[k].max_tokens;
            if (k % 2) { sp.temperature = 0.8f; sp.top_p = 0.9f; sp.has_seed = 1; sp.seed = (uint64_t)k; }
            else sp.temperature = 0;
            if (k % 5 == 3) sp.repetition_penalty = 1.2f;   /* forces synchronous steps */
            submit(e, k, &sp);
        }
        run(e);
        EngineStats st; engine_get_stats(e, &st);
        EXPECT_EQ_INT(st.num_free_blocks, 17);
        if (!async) memcpy(ref, got, sizeof got);
        int bad = 0;
        for (int k = 0; async && k < NREQ; k++)
            if (got[k].n != ref[k].n || memcmp(got[k].toks, ref[k].toks, (size_t)got[k].n * 4) ||
                got[k].fin != ref[k].fin || strcmp(got[k].text, ref[k].text))
                if (bad++ < 3) fprintf(stderr, "  request %d differs with async scheduling\n", k);
        EXPECT_EQ_INT(bad, 0);
        fprintf(stderr, "  async=%d: preemptions %llu, steps %llu\n", async, (unsigned long long)st.preemptions,
                (unsigned long long)st.steps);
        engine_free(e);
    }
    test_greedy_matches_hf_goldens_through_the_engine();
    ASYNC = 0;
}

int main(void) {
    FILE *f = fopen(fixture_path("models/tiny-qwen3/config.json"), "r");
    if (!f) {
        fprintf(stderr, "models/tiny-qwen3 missing: run python3 scripts/make_tiny_models.py\n");
        return 1;
    }
    fclose(f);
    if (getenv("PAGELLM_SANITIZED")) NREQ = 12;
    RUN(greedy_matches_hf_goldens_through_the_engine);
    RUN(batched_equals_alone);
    RUN(stop_string_across_real_tokens);
    RUN(seeded_sampling_batch_independent);
    RUN(async_scheduling_same_as_sync);
    TEST_MAIN_END();
}
