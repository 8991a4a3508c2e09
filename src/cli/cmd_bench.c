/* cmd_bench.c: `pagellm bench serve | throughput | latency`.
 *   serve       online load against any OpenAI-compatible server (benchtool/bench_serve.h)
 *   throughput  offline, in-process engine (benchtool/bench_offline.h)
 *   latency     one batch of fixed input/output lengths, per-iteration latency percentiles */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchtool/bench_dataset.h"
#include "benchtool/bench_offline.h"
#include "benchtool/bench_serve.h"
#include "cli/cli.h"
#include "cli/engine_flags.h"
#include "util/err.h"
#include "util/log.h"

static void serve_usage(FILE *f) {
    fprintf(f,
        "usage: pagellm bench serve [options]\n"
        "  --base-url URL            server root (default http://127.0.0.1:8000)\n"
        "  --endpoint PATH           /v1/completions (default) or /v1/chat/completions\n"
        "  --model NAME              model name sent in requests (required)\n"
        "  --api-key KEY             bearer token (default: $OPENAI_API_KEY if set)\n"
        "  --dataset random|FILE.jsonl  random prompts (default) or one JSON object per line\n"
        "  --random-input-len N      (default 1024)\n"
        "  --random-output-len N     (default 128)\n"
        "  --random-range-ratio R    lengths uniform in [L(1-R), L(1+R)] (default 0)\n"
        "  --random-prefix-len N     shared random prefix tokens (default 0)\n"
        "  --num-prompts N           (default 1000)\n"
        "  --max-concurrency N       cap on requests in flight (default: none)\n"
        "  --request-rate R          requests/s, Poisson arrivals (default inf: all at once)\n"
        "  --burstiness B            gamma shape of inter-arrival times (default 1 = Poisson)\n"
        "  --ignore-eos              ask the server to ignore EOS (exact output lengths)\n"
        "  --extra-body JSON         object merged into every request body, e.g.\n"
        "                            '{\"response_format\": {\"type\": \"json_object\"}}'\n"
        "  --seed S                  dataset and arrival seed (default 0)\n"
        "  --goodput KEY:MS ...      SLOs, e.g. --goodput ttft:500 tpot:50 e2el:10000\n"
        "  --save-result FILE.json   write the results as JSON\n"
        "  --timeout S               per-request timeout in seconds (default none)\n"
        "  --no-progress             no progress bar\n");
}

static int parse_int(const char *flag, const char *v, int lo, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == 0 || *end || x < lo || x > 1000000000) {
        fprintf(stderr, "pagellm bench: %s expects an integer >= %d, got '%s'\n", flag, lo, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}
static int parse_double(const char *flag, const char *v, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (*v == 0 || *end || isnan(x)) {
        fprintf(stderr, "pagellm bench: %s expects a number, got '%s'\n", flag, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int bench_serve_main(int argc, char **argv) {
    BenchServeOptions o = {.base_url = "http://127.0.0.1:8000", .endpoint = "/v1/completions",
                           .request_rate = INFINITY, .burstiness = 1.0, .progress = 1};
    o.api_key = getenv("OPENAI_API_KEY");
    const char *dataset = "random", *save = NULL;
    RandomDatasetOptions ro = {.num_prompts = 1000, .input_len = 1024, .output_len = 128,
                               .id_low = 1000, .id_high = 30000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE() do { if (!v) { fprintf(stderr, "pagellm bench serve: %s needs a value\n", a); return 2; } i++; } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { serve_usage(stdout); return 0; }
        else if (!strcmp(a, "--base-url")) { NEED_VALUE(); o.base_url = v; }
        else if (!strcmp(a, "--endpoint")) { NEED_VALUE(); o.endpoint = v; }
        else if (!strcmp(a, "--model")) { NEED_VALUE(); o.model = v; }
        else if (!strcmp(a, "--api-key")) { NEED_VALUE(); o.api_key = v; }
        else if (!strcmp(a, "--dataset") || !strcmp(a, "--dataset-name") || !strcmp(a, "--dataset-path")) { NEED_VALUE(); dataset = v; }
        else if (!strcmp(a, "--random-input-len")) { NEED_VALUE(); if (parse_int(a, v, 1, &ro.input_len)) return 2; }
        else if (!strcmp(a, "--random-output-len")) { NEED_VALUE(); if (parse_int(a, v, 1, &ro.output_len)) return 2; }
        else if (!strcmp(a, "--random-range-ratio")) { NEED_VALUE(); if (parse_double(a, v, &ro.range_ratio)) return 2; }
        else if (!strcmp(a, "--random-prefix-len")) { NEED_VALUE(); if (parse_int(a, v, 0, &ro.prefix_len)) return 2; }
        else if (!strcmp(a, "--num-prompts")) { NEED_VALUE(); if (parse_int(a, v, 1, &ro.num_prompts)) return 2; }
        else if (!strcmp(a, "--max-concurrency")) { NEED_VALUE(); if (parse_int(a, v, 1, &o.max_concurrency)) return 2; }
        else if (!strcmp(a, "--request-rate")) { NEED_VALUE(); if (parse_double(a, v, &o.request_rate)) return 2; if (o.request_rate <= 0) { fprintf(stderr, "pagellm bench serve: --request-rate must be > 0\n"); return 2; } }
        else if (!strcmp(a, "--burstiness")) { NEED_VALUE(); if (parse_double(a, v, &o.burstiness)) return 2; if (o.burstiness <= 0) { fprintf(stderr, "pagellm bench serve: --burstiness must be > 0\n"); return 2; } }
        else if (!strcmp(a, "--ignore-eos")) o.ignore_eos = 1;
        else if (!strcmp(a, "--extra-body")) {
            NEED_VALUE();
            json_error_t je;
            json_t *x = json_loads(v, 0, &je);
            int ok = x && json_is_object(x);
            json_decref(x);
            if (!ok) { fprintf(stderr, "pagellm bench serve: --extra-body must be a JSON object (%s)\n", je.text); return 2; }
            o.extra_body = v;
        }
        else if (!strcmp(a, "--no-progress")) o.progress = 0;
        else if (!strcmp(a, "--seed")) { int s; NEED_VALUE(); if (parse_int(a, v, 0, &s)) return 2; o.seed = ro.seed = (uint64_t)s; }
        else if (!strcmp(a, "--timeout")) { NEED_VALUE(); if (parse_double(a, v, &o.timeout_s)) return 2; }
        else if (!strcmp(a, "--save-result")) { NEED_VALUE(); save = v; }
        else if (!strcmp(a, "--goodput")) {
            int n = 0;
            while (i + 1 < argc && argv[i + 1][0] != '-') {
                const char *kv = argv[++i], *colon = strchr(kv, ':');
                double ms;
                if (!colon || parse_double("--goodput", colon + 1, &ms)) { fprintf(stderr, "pagellm bench serve: --goodput expects KEY:MS (ttft, tpot, e2el), got '%s'\n", kv); return 2; }
                if (!strncmp(kv, "ttft:", 5)) o.goodput_ttft_ms = ms;
                else if (!strncmp(kv, "tpot:", 5)) o.goodput_tpot_ms = ms;
                else if (!strncmp(kv, "e2el:", 5)) o.goodput_e2el_ms = ms;
                else { fprintf(stderr, "pagellm bench serve: unknown --goodput metric in '%s' (ttft, tpot, e2el)\n", kv); return 2; }
                n++;
            }
            if (!n) { fprintf(stderr, "pagellm bench serve: --goodput needs at least one KEY:MS\n"); return 2; }
        } else { fprintf(stderr, "pagellm bench serve: unknown option '%s' (see --help)\n", a); return 2; }
#undef NEED_VALUE
    }
    if (!o.model) { fprintf(stderr, "pagellm bench serve: --model is required\n"); return 2; }
    if (strcmp(o.endpoint, "/v1/completions") && strcmp(o.endpoint, "/v1/chat/completions")) {
        fprintf(stderr, "pagellm bench serve: --endpoint must be /v1/completions or /v1/chat/completions\n");
        return 2;
    }
    if (ro.range_ratio < 0 || ro.range_ratio >= 1) { fprintf(stderr, "pagellm bench serve: --random-range-ratio must be in [0, 1)\n"); return 2; }
    char err[PG_ERR_LEN];
    BenchDataset d;
    int rc = strcmp(dataset, "random") == 0 ? dataset_random(&d, &ro, err)
                                            : dataset_jsonl(&d, dataset, ro.num_prompts, ro.output_len, err);
    if (rc) { fprintf(stderr, "pagellm bench serve: %s\n", err); return 1; }
    BenchServeResult r;
    if (bench_serve_run(&o, &d, &r, err)) { fprintf(stderr, "pagellm bench serve: %s\n", err); dataset_free(&d); return 1; }
    bench_serve_print(&o, &r);
    int ret = r.completed > 0 ? 0 : 1;
    if (save && bench_serve_save(save, &o, &r, err)) { fprintf(stderr, "pagellm bench serve: %s\n", err); ret = 1; }
    bench_serve_result_free(&r);
    dataset_free(&d);
    return ret;
}

static void offline_usage(FILE *f, int latency) {
    fprintf(f, "usage: pagellm bench %s MODEL_DIR [options] [engine flags of pagellm serve]\n",
            latency ? "latency" : "throughput");
    if (latency)
        fprintf(f, "  --batch-size N            requests per iteration (default 8)\n"
                   "  --num-iters-warmup N      (default 2)\n"
                   "  --num-iters N             timed iterations (default 5)\n");
    else
        fprintf(f, "  --num-prompts N           (default 200)\n"
                   "  --json-schema FILE        constrain every output by this JSON Schema (structured outputs; the\n"
                   "                            outputs end with their document, EOS not ignored, at most --output-len)\n");
    fprintf(f, "  --input-len N             prompt tokens, random ids (default %d)\n"
               "  --output-len N            generated tokens per request, EOS ignored (default 128)\n"
               "  --temperature T           (default %s)\n"
               "  --output-json FILE        write the results as JSON\n"
               "  --no-progress             no progress output\n"
               "engine options (as pagellm serve):\n",
            latency ? 32 : 512, latency ? "0" : "1.0");
    engine_flags_usage(f);
}

/* Bench flags are taken here; the engine flags are shared with serve and generate. */
static int bench_offline_main(int argc, char **argv, int latency) {
    OfflineOptions o = {.num_prompts = 200, .batch_size = 8, .input_len = latency ? 32 : 512, .output_len = 128,
                        .num_iters_warmup = 2, .num_iters = 5, .temperature = latency ? 0.0f : 1.0f, .progress = 1};
    const char *out_json = NULL, *schema_path = NULL;
    char err[PG_ERR_LEN];
    EngineFlags ef;
    engine_flags_init(&ef);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *target = NULL, lo = 1, takes = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { offline_usage(stdout, latency); return 0; }
        else if (a[0] != '-') {
            if (ef.engine.model_dir) { fprintf(stderr, "pagellm bench: unexpected argument '%s'\n", a); return 2; }
            ef.engine.model_dir = a;
            continue;
        }
        else if (!strcmp(a, "--model")) { if (!v) goto missing; ef.engine.model_dir = v; i++; continue; }
        else if (!strcmp(a, "--num-prompts") && !latency) target = &o.num_prompts;
        else if (!strcmp(a, "--batch-size") && latency) target = &o.batch_size;
        else if (!strcmp(a, "--num-iters-warmup") && latency) { target = &o.num_iters_warmup; lo = 0; }
        else if (!strcmp(a, "--num-iters") && latency) target = &o.num_iters;
        else if (!strcmp(a, "--input-len")) target = &o.input_len;
        else if (!strcmp(a, "--output-len")) target = &o.output_len;
        else if (!strcmp(a, "--output-json")) { if (!v) goto missing; out_json = v; i++; continue; }
        else if (!strcmp(a, "--json-schema") && !latency) { if (!v) goto missing; schema_path = v; i++; continue; }
        else if (!strcmp(a, "--no-progress")) { o.progress = 0; continue; }
        else if (!strcmp(a, "--temperature")) {
            double t;
            if (!v) goto missing;
            if (parse_double(a, v, &t) || t < 0) return 2;
            o.temperature = (float)t;
            i++;
            continue;
        } else if (engine_flags_known(a, &takes)) {
            if (takes && !v) goto missing;
            if (engine_flags_apply(&ef, a, takes ? v : NULL, err) < 0) { fprintf(stderr, "pagellm bench: %s\n", err); return 2; }
            i += takes;
            continue;
        } else { fprintf(stderr, "pagellm bench: unknown option '%s' (see --help)\n", a); return 2; }
        if (!v) goto missing;
        if (parse_int(a, v, lo, target)) return 2;
        i++;
        continue;
    missing:
        fprintf(stderr, "pagellm bench: %s needs a value\n", a);
        return 2;
    }
    if (!ef.engine.model_dir) { fprintf(stderr, "pagellm bench: missing MODEL_DIR\n"); return 2; }
    if (engine_flags_finish(&ef, err)) { fprintf(stderr, "pagellm bench: %s\n", err); return 2; }
    log_set_level(ef.log_level);
    o.seed = ef.engine.seed;
    if (latency && ef.engine.max_num_seqs < o.batch_size) ef.engine.max_num_seqs = o.batch_size;
    char *schema = NULL;
    if (schema_path) { /* checked as JSON before the engine loads; compiled against its tokenizer */
        json_error_t je;
        json_t *sj = json_load_file(schema_path, 0, &je);
        if (!sj && je.line > 0) { fprintf(stderr, "pagellm bench: --json-schema %s: line %d: %s\n", schema_path, je.line, je.text); return 2; }
        if (!sj) { fprintf(stderr, "pagellm bench: --json-schema %s: %s\n", schema_path, je.text); return 2; }
        schema = json_dumps(sj, JSON_COMPACT);
        json_decref(sj);
        if (!schema) { fprintf(stderr, "pagellm bench: --json-schema %s: out of memory\n", schema_path); return 1; }
        o.json_schema = schema;
    }
    Engine *e = engine_new(&ef.engine, err);
    if (!e) { fprintf(stderr, "pagellm bench: %s\n", err); free(schema); return 1; }
    int ret = 0;
    json_t *j = json_object();
    if (!latency) {
        ThroughputResult r;
        if (bench_throughput_run(e, &o, &r, err)) { fprintf(stderr, "pagellm bench throughput: %s\n", err); ret = 1; }
        else {
            printf("Throughput: %.2f requests/s, %.2f total tokens/s, %.2f output tokens/s\n",
                   r.requests_per_s, r.tokens_per_s, r.output_tokens_per_s);
            printf("Engine steps: %lld; schedule %.3f s, batch %.3f s, forward+sample %.3f s, "
                   "postprocess %.3f s\n", r.steps, r.schedule_s, r.batch_s, r.forward_s, r.postprocess_s);
            printf("Forward+sample by step: %.3f s in %lld steps with prompt tokens, %.3f s in %lld "
                   "decode-only steps (%.2f ms each)\n", r.forward_prefill_s, r.prefill_steps,
                   r.forward_s - r.forward_prefill_s, r.steps - r.prefill_steps,
                   r.steps > r.prefill_steps ? 1e3 * (r.forward_s - r.forward_prefill_s) / (double)(r.steps - r.prefill_steps) : 0.0);
            printf("Total num prompt tokens:  %lld\nTotal num output tokens:  %lld\nElapsed: %.2f s\n",
                   r.prompt_tokens, r.output_tokens, r.elapsed_s);
            json_object_set_new(j, "elapsed_time", json_real(r.elapsed_s));
            json_object_set_new(j, "num_requests", json_integer(r.num_requests));
            json_object_set_new(j, "total_num_tokens", json_integer(r.prompt_tokens + r.output_tokens));
            json_object_set_new(j, "requests_per_second", json_real(r.requests_per_s));
            json_object_set_new(j, "tokens_per_second", json_real(r.tokens_per_s));
            json_object_set_new(j, "output_tokens_per_second", json_real(r.output_tokens_per_s));
            if (schema_path) json_object_set_new(j, "json_schema", json_string(schema_path));
            json_t *ph = json_object();
            json_object_set_new(ph, "steps", json_integer(r.steps));
            json_object_set_new(ph, "schedule_s", json_real(r.schedule_s));
            json_object_set_new(ph, "batch_s", json_real(r.batch_s));
            json_object_set_new(ph, "forward_s", json_real(r.forward_s));
            json_object_set_new(ph, "postprocess_s", json_real(r.postprocess_s));
            json_object_set_new(ph, "prefill_steps", json_integer(r.prefill_steps));
            json_object_set_new(ph, "forward_prefill_s", json_real(r.forward_prefill_s));
            json_object_set_new(j, "engine_phases", ph);
        }
    } else {
        LatencyResult r;
        if (bench_latency_run(e, &o, &r, err)) { fprintf(stderr, "pagellm bench latency: %s\n", err); ret = 1; }
        else {
            static const int P[6] = {10, 25, 50, 75, 90, 99};
            printf("Avg latency: %.4f seconds\n", r.avg_s);
            printf("Avg TTFT: %.2f ms; time per output token after it: %.3f ms (%.1f tok/s per request)\n",
                   1e3 * r.ttft_s, 1e3 * r.tpot_s, r.tpot_s > 0 ? 1.0 / r.tpot_s : 0.0);
            if (r.steps > 0) /* where a step's wall time goes, per step */
                printf("Engine steps: %lld; per step: wall %.1f us = schedule %.1f + batch %.1f + "
                       "forward+sample %.1f + postprocess %.1f + outside the step %.1f us\n",
                       r.steps, 1e6 * r.wall_s / r.steps, 1e6 * r.schedule_s / r.steps,
                       1e6 * r.batch_s / r.steps, 1e6 * r.forward_s / r.steps,
                       1e6 * r.postprocess_s / r.steps,
                       1e6 * (r.wall_s - r.schedule_s - r.batch_s - r.forward_s - r.postprocess_s) / r.steps);
            json_t *pj = json_object();
            for (int i = 0; i < 6; i++) {
                printf("%d%% percentile latency: %.4f seconds\n", P[i], r.pct[i]);
                char k[8];
                snprintf(k, sizeof k, "%d", P[i]);
                json_object_set_new(pj, k, json_real(r.pct[i]));
            }
            json_t *all = json_array();
            for (int i = 0; i < r.num_iters; i++) json_array_append_new(all, json_real(r.iters[i]));
            json_object_set_new(j, "avg_latency", json_real(r.avg_s));
            json_object_set_new(j, "avg_ttft", json_real(r.ttft_s));
            json_object_set_new(j, "avg_tpot", json_real(r.tpot_s));
            json_object_set_new(j, "latencies", all);
            json_object_set_new(j, "percentiles", pj);
        }
        free(r.iters);
    }
    json_object_set_new(j, "input_len", json_integer(o.input_len));
    json_object_set_new(j, "output_len", json_integer(o.output_len));
    if (!ret && out_json && json_dump_file(j, out_json, JSON_INDENT(2))) {
        fprintf(stderr, "pagellm bench: cannot write %s\n", out_json);
        ret = 1;
    }
    json_decref(j);
    engine_free(e);
    free(schema);
    return ret;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout, "usage: pagellm bench serve|throughput|latency [options] (--help on each)\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "serve")) return bench_serve_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "throughput")) return bench_offline_main(argc - 1, argv + 1, 0);
    if (!strcmp(argv[1], "latency")) return bench_offline_main(argc - 1, argv + 1, 1);
    fprintf(stderr, "pagellm bench: unknown benchmark '%s' (serve, throughput, latency)\n", argv[1]);
    return 2;
}
