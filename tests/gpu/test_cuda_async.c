/* test_cuda_async.c: --async-scheduling on the CUDA backend gives the same tokens as the
 * synchronous engine, and how long a batch-1 token takes with and without it.
 *
 * GPU kernels are not batch-invariant (a batch of another size may take another GEMM path), so
 * the workloads keep every step's batch identical in both modes: all requests submitted at
 * once, admitted in the first step, EOS ignored and one max_tokens for all (known in advance:
 * the async engine never schedules past it). Both modes run on ONE engine
 * (engine_set_async_scheduling between workloads): the GEMM autotuner times its candidates per
 * backend, so two engines may pick different kernels for a shape and round differently (seen on
 * the H100: a 16-token prefill's first token differed between two synchronous engines' choices).
 * Each workload runs sync, sync again (the control: the engine must repeat itself, else the
 * comparison proves nothing), then async. The token streams must be bit-identical:
 *   1. batch 1, greedy, 256 tokens (decode graphs; every decode input read from the device);
 *   2. 8 requests of different prompt lengths, greedy, 64 tokens, with logprobs;
 *   3. the same 8, seeded random sampling (temperature 0.8, top_p 0.95, top_k 50).
 * Then batch 1 x 512 tokens timed both ways (ms per token).
 * Usage: test_cuda_async [MODEL_DIR (default models/tiny-qwen3)] [--dummy] (--dummy: random
 * weights of MODEL_DIR's config, e.g. a Qwen3-8B config directory). Needs a GPU; not run by CTest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core.h"
#include "engine/engine.h"
#include "util/err.h"
#include "util/rng.h"
#include "util/timeutil.h"

#define NR 8
#define MAXT 512

typedef struct { int32_t toks[MAXT]; int n; float lp[MAXT]; int nlp; FinishReason fin; } Got;
static Got got[NR];
static int failures;

static Engine *open_engine(const char *dir, int dummy, int async) {
    char err[PG_ERR_LEN];
    EngineConfig c;
    engine_config_default(&c);
    c.model_dir = dir;
    c.device = "cuda";
    c.load_format = dummy ? LOAD_FORMAT_DUMMY : LOAD_FORMAT_AUTO;
    c.max_model_len = 1024;
    c.max_num_seqs = 16;
    c.max_num_batched_tokens = 2048;
    c.kv_cache_memory = 1LL << 30;
    c.async_scheduling = async;
    c.enable_prefix_caching = 0; /* a repeated workload must prefill the same rows, not a cache hit's tail */
    Engine *e = engine_new(&c, err);
    if (!e) { fprintf(stderr, "engine_new: %s\n", err); failures++; }
    return e;
}

/* Runs n requests (prompt k: 16 + 24 k random ids) to completion; returns seconds. */
static double run(Engine *e, int n, int max_tokens, int random, int logprobs) {
    char err[PG_ERR_LEN];
    memset(got, 0, sizeof got);
    Rng r; rng_seed(&r, 12345);
    for (int k = 0; k < n; k++) {
        int32_t p[256];
        int len = 16 + 24 * k;
        for (int i = 0; i < len; i++) p[i] = 100 + (int32_t)(rng_next(&r) % 20000);
        SamplingParams sp;
        sampling_params_default(&sp);
        sp.max_tokens = max_tokens;
        sp.ignore_eos = 1;
        sp.logprobs = logprobs ? 1 : -1;
        if (random) { sp.temperature = 0.8f; sp.top_p = 0.95f; sp.top_k = 50; sp.has_seed = 1; sp.seed = 7 + (uint64_t)k; }
        else sp.temperature = 0;
        EngineRequest rq = {.id = (uint64_t)k, .prompt = p, .prompt_len = len, .params = sp, .grammar_start_token = -1};
        if (engine_submit(e, &rq, err) != 0) { fprintf(stderr, "submit: %s\n", err); failures++; }
    }
    double t0 = time_now_s();
    while (engine_has_unfinished(e)) {
        if (engine_step(e) < 0) { failures++; break; }
        for (RequestOutput *o = engine_take_outputs(e), *nx; o; o = nx) {
            nx = o->next;
            Got *g = &got[o->id];
            for (int i = 0; i < o->num_tokens && g->n < MAXT; i++) {
                g->toks[g->n++] = o->token_ids[i];
                if (o->logprobs) g->lp[g->nlp++] = o->logprobs[i].logprob;
            }
            if (o->finish) g->fin = o->finish;
            request_output_free(o);
        }
    }
    return time_now_s() - t0;
}

static void compare(const char *what, const Got *a, const Got *b, int n, const char *pass) {
    int bad = 0;
    for (int k = 0; k < n; k++) {
        int same = a[k].n == b[k].n && !memcmp(a[k].toks, b[k].toks, (size_t)a[k].n * 4) && a[k].fin == b[k].fin &&
                   a[k].nlp == b[k].nlp && !memcmp(a[k].lp, b[k].lp, (size_t)a[k].nlp * sizeof(float));
        if (!same) {
            int d = 0;
            while (d < a[k].n && d < b[k].n && a[k].toks[d] == b[k].toks[d]) d++;
            fprintf(stderr, "  %s: request %d differs (%d vs %d tokens, first difference at %d)\n", what, k, a[k].n,
                    b[k].n, d);
            bad++;
        }
    }
    printf("%s: %s (%d requests)\n", what, bad ? "FAIL" : pass, n);
    failures += bad;
}

int main(int argc, char **argv) {
    const char *dir = "models/tiny-qwen3";
    int dummy = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dummy")) dummy = 1;
        else dir = argv[i];
    }
    static Got ref[NR], again[NR];
    struct { const char *name; int n, max_tokens, random, logprobs; } cases[] = {
        {"batch 1 greedy x256", 1, 256, 0, 0},
        {"8 prompts greedy x64 + logprobs", NR, 64, 0, 1},
        {"8 prompts seeded random x64", NR, 64, 1, 0},
    };
    Engine *e = open_engine(dir, dummy, 0);
    if (!e) return 1;
    run(e, 1, 1, 0, 0);   /* warm: the first forwards tune the GEMM paths */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char what[96];
        run(e, cases[c].n, cases[c].max_tokens, cases[c].random, cases[c].logprobs);
        memcpy(ref, got, sizeof got);   /* the synchronous reference */
        run(e, cases[c].n, cases[c].max_tokens, cases[c].random, cases[c].logprobs);
        memcpy(again, got, sizeof got);
        snprintf(what, sizeof what, "%s, sync twice", cases[c].name);
        compare(what, ref, again, cases[c].n, "sync repeats itself");
        if (engine_set_async_scheduling(e, 1) != 0) { fprintf(stderr, "a step is in flight\n"); failures++; }
        run(e, cases[c].n, cases[c].max_tokens, cases[c].random, cases[c].logprobs);
        snprintf(what, sizeof what, "%s, sync vs async", cases[c].name);
        compare(what, ref, got, cases[c].n, "same tokens");
        if (engine_set_async_scheduling(e, 0) != 0) { fprintf(stderr, "a step is in flight\n"); failures++; }
    }
    double ms[2] = {0, 0};
    for (int rep = 0; rep < 2; rep++)   /* sync, async, sync, async: the best of two each */
        for (int async = 0; async <= 1; async++) {
            engine_set_async_scheduling(e, async);
            run(e, 1, 1, 0, 0);   /* warm */
            double t1 = run(e, 1, 1, 0, 0), t513 = run(e, 1, 513, 0, 0);
            double v = 1e3 * (t513 - t1) / 512;
            if (rep == 0 || v < ms[async]) ms[async] = v;
        }
    engine_free(e);
    printf("batch-1 decode through the engine: %.3f ms/token sync, %.3f ms/token async (%+.1f%%)\n", ms[0], ms[1],
           100.0 * (ms[1] - ms[0]) / ms[0]);
    printf("%s\n", failures ? "FAILED" : "PASSED");
    return failures ? 1 : 0;
}
