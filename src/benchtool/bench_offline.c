#include "benchtool/bench_offline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchtool/bench_stats.h"
#include "util/err.h"
#include "util/rng.h"
#include "util/timeutil.h"

/* Submits `count` requests with ids starting at first_id; random prompts from rng. gc: NULL, or
 * the compiler of o->json_schema (each request gets its own reference to the compiled schema). */
static int submit_batch(Engine *e, const OfflineOptions *o, GrammarCompiler *gc, Rng *rng, uint64_t first_id,
                        int count, char *err) {
    int vocab = engine_model_config(e)->vocab_size;
    int hi = vocab < 30000 ? vocab : 30000, lo = hi > 2000 ? 1000 : 0;
    int32_t *ids = malloc((size_t)o->input_len * sizeof *ids);
    if (!ids) return pg_err(err, "out of memory");
    for (int i = 0; i < count; i++) {
        for (int j = 0; j < o->input_len; j++) ids[j] = lo + (int32_t)(rng_next(rng) % (uint64_t)(hi - lo));
        EngineRequest r = {.id = first_id + (uint64_t)i, .prompt = ids, .prompt_len = o->input_len,
                           .grammar_start_token = -1};
        sampling_params_default(&r.params);
        r.params.temperature = o->temperature;
        r.params.top_p = 1.0f;
        r.params.top_k = 0;
        r.params.max_tokens = o->output_len;
        r.params.ignore_eos = gc == NULL; /* a constrained output ends with its document */
        r.params.detokenize = 0;
        if (gc && !(r.grammar = grammar_compile(gc, GRAMMAR_JSON_SCHEMA, o->json_schema, err))) {
            free(ids);
            return -1;
        }
        if (engine_submit(e, &r, err)) { free(ids); return -1; }
    }
    free(ids);
    return 0;
}

/* Steps until every request finished; counts finished requests and output tokens. first
 * (NULL, or `expected` entries for ids first_id...): the time each request's first output
 * token arrived (0 until then). */
static int drain(Engine *e, int expected, long long *out_tokens, int progress, double t0, uint64_t first_id,
                 double *first, char *err) {
    int finished = 0;
    double last = 0;
    while (finished < expected) {
        if (engine_step(e) < 0) return pg_err(err, "engine step failed");
        for (RequestOutput *o = engine_take_outputs(e), *next; o; o = next) {
            next = o->next;
            *out_tokens += o->num_tokens;
            if (first && o->num_tokens > 0 && o->id - first_id < (uint64_t)expected && first[o->id - first_id] == 0)
                first[o->id - first_id] = time_now_s();
            if (o->finish != FINISH_NONE) {
                if (o->finish == FINISH_ERROR) {
                    pg_err(err, "request %llu failed: %s", (unsigned long long)o->id, o->error);
                    for (; o; o = next) { next = o->next; request_output_free(o); }
                    return -1;
                }
                finished++;
            }
            request_output_free(o);
        }
        double now = time_now_s() - t0;
        if (progress && (now - last > 0.5 || finished == expected)) {
            fprintf(stderr, "\r%d/%d requests done, %lld output tokens, %.0f tok/s   ", finished, expected,
                    *out_tokens, *out_tokens / (now > 0 ? now : 1e-9));
            last = now;
        }
    }
    if (progress) fprintf(stderr, "\n");
    return 0;
}

int bench_throughput_run(Engine *e, const OfflineOptions *o, ThroughputResult *r, char *err) {
    memset(r, 0, sizeof *r);
    Rng rng;
    rng_seed(&rng, o->seed + 1);
    EngineStats s0, s1;
    engine_get_stats(e, &s0);
    GrammarCompiler *gc = NULL;
    if (o->json_schema) {
        /* compiled once before the clock starts, as a server's cache would have it */
        if (!(gc = engine_grammar_compiler_new(e, err))) return -1;
        char why[PG_ERR_LEN];
        Grammar *g = grammar_compile(gc, GRAMMAR_JSON_SCHEMA, o->json_schema, why);
        if (!g) { grammar_compiler_free(gc); return pg_err(err, "--json-schema: %s", why); }
        grammar_release(g);
    }
    double t0 = time_now_s();
    long long out = 0;
    int rc = submit_batch(e, o, gc, &rng, 1, o->num_prompts, err) ||
             drain(e, o->num_prompts, &out, o->progress, t0, 1, NULL, err);
    r->elapsed_s = time_now_s() - t0;
    grammar_compiler_free(gc); /* the finished requests have released their grammars */
    if (rc) return -1;
    engine_get_stats(e, &s1);
    r->steps = (long long)(s1.steps - s0.steps);
    r->schedule_s = s1.schedule_s - s0.schedule_s;
    r->batch_s = s1.batch_s - s0.batch_s;
    r->forward_s = s1.forward_s - s0.forward_s;
    r->postprocess_s = s1.postprocess_s - s0.postprocess_s;
    r->prefill_steps = (long long)(s1.prefill_steps - s0.prefill_steps);
    r->forward_prefill_s = s1.forward_prefill_s - s0.forward_prefill_s;
    r->num_requests = o->num_prompts;
    r->prompt_tokens = (long long)o->num_prompts * o->input_len;
    r->output_tokens = out;
    r->requests_per_s = r->num_requests / r->elapsed_s;
    r->tokens_per_s = (double)(r->prompt_tokens + out) / r->elapsed_s;
    r->output_tokens_per_s = (double)out / r->elapsed_s;
    return 0;
}

int bench_latency_run(Engine *e, const OfflineOptions *o, LatencyResult *r, char *err) {
    memset(r, 0, sizeof *r);
    r->iters = calloc((size_t)(o->num_iters > 0 ? o->num_iters : 1), sizeof *r->iters);
    if (!r->iters) return pg_err(err, "out of memory");
    Rng rng;
    rng_seed(&rng, o->seed + 2);
    uint64_t next_id = 1;
    EngineStats s0 = {0}, s1;
    double *first = calloc((size_t)o->batch_size, sizeof *first);
    if (!first) return pg_err(err, "out of memory");
    for (int it = 0; it < o->num_iters_warmup + o->num_iters; it++) {
        if (it == o->num_iters_warmup) engine_get_stats(e, &s0);
        double t0 = time_now_s();
        long long out = 0;
        memset(first, 0, (size_t)o->batch_size * sizeof *first);
        if (submit_batch(e, o, NULL, &rng, next_id, o->batch_size, err) ||
            drain(e, o->batch_size, &out, 0, t0, next_id, first, err)) {
            free(first);
            return -1;
        }
        next_id += (uint64_t)o->batch_size;
        double t1 = time_now_s(), dt = t1 - t0, tf = 0;
        for (int i = 0; i < o->batch_size; i++) if (first[i] - t0 > tf) tf = first[i] - t0;
        if (it >= o->num_iters_warmup) {
            r->iters[r->num_iters++] = dt;
            r->ttft_s += tf;
            if (o->output_len > 1) r->tpot_s += (dt - tf) / (o->output_len - 1);
        }
        if (o->progress)
            fprintf(stderr, "%s iteration %d: %.3f s\n", it < o->num_iters_warmup ? "warm-up" : "timed", it, dt);
    }
    free(first);
    engine_get_stats(e, &s1);
    if (r->num_iters == 0) s0 = s1;
    else { r->ttft_s /= r->num_iters; r->tpot_s /= r->num_iters; }
    r->steps = (long long)(s1.steps - s0.steps);
    r->schedule_s = s1.schedule_s - s0.schedule_s;
    r->batch_s = s1.batch_s - s0.batch_s;
    r->forward_s = s1.forward_s - s0.forward_s;
    r->postprocess_s = s1.postprocess_s - s0.postprocess_s;
    for (int i = 0; i < r->num_iters; i++) r->wall_s += r->iters[i];
    Summary s = summarize(r->iters, (size_t)r->num_iters);
    r->avg_s = s.mean;
    static const double P[6] = {10, 25, 50, 75, 90, 99};
    double *sorted = malloc((size_t)r->num_iters * sizeof *sorted);
    if (!sorted) return pg_err(err, "out of memory");
    memcpy(sorted, r->iters, (size_t)r->num_iters * sizeof *sorted);
    for (int i = 1; i < r->num_iters; i++) /* few values: insertion sort */
        for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) { double t = sorted[j]; sorted[j] = sorted[j - 1]; sorted[j - 1] = t; }
    for (int i = 0; i < 6; i++) r->pct[i] = percentile_sorted(sorted, (size_t)r->num_iters, P[i]);
    free(sorted);
    return 0;
}
