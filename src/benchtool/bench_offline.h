/* bench_offline.h: in-process engine benchmarks, like `vllm bench throughput` and
 * `vllm bench latency`. Both drive an Engine by hand (engine_step on the calling thread) with
 * random token-id prompts of exact lengths, ignore_eos, so every request produces exactly
 * output_len tokens.
 *   throughput: all prompts submitted at once; requests/s, total and output tokens/s; with
 *               json_schema, every output constrained by it (structured outputs' cost).
 *   latency:    one batch of batch_size requests per iteration, warm-up iterations first;
 *               per-iteration latency percentiles (10, 25, 50, 75, 90, 99); mean TTFT and
 *               time per output token. */
#ifndef PAGELLM_BENCHTOOL_BENCH_OFFLINE_H
#define PAGELLM_BENCHTOOL_BENCH_OFFLINE_H
#include <stdint.h>

#include "engine/engine.h"

typedef struct OfflineOptions {
    int num_prompts;        /* throughput */
    int batch_size;         /* latency */
    int input_len, output_len;
    int num_iters_warmup, num_iters; /* latency */
    float temperature;      /* vLLM's throughput bench samples at 1.0 */
    uint64_t seed;
    int progress;
    const char *json_schema; /* throughput: NULL, or a JSON Schema (text) every request's output
                                must follow, as with response_format json_schema; those requests
                                stop where the schema's document ends (EOS not ignored) or at
                                output_len tokens */
} OfflineOptions;

typedef struct ThroughputResult {
    double elapsed_s;
    int num_requests;
    long long prompt_tokens, output_tokens;
    double requests_per_s, tokens_per_s, output_tokens_per_s;
    long long steps;                /* engine steps during the run */
    double schedule_s, batch_s, forward_s, postprocess_s; /* engine step phases (EngineStats) */
    long long prefill_steps;        /* of steps: those with prompt tokens */
    double forward_prefill_s;       /* of forward_s: in those steps */
} ThroughputResult;

typedef struct LatencyResult {
    double avg_s;
    double pct[6];          /* p10, p25, p50, p75, p90, p99 of per-iteration latency (s) */
    double *iters; int num_iters;
    /* means over the timed iterations: time to the last request's first token, and the time per
     * output token after it ((latency - ttft) / (output_len - 1): the decode rate, measured in one
     * process; with async scheduling the first token arrives one step later, the rate is the same) */
    double ttft_s, tpot_s;
    /* the timed iterations' engine steps and their phases (EngineStats), and their wall time */
    long long steps;
    double wall_s, schedule_s, batch_s, forward_s, postprocess_s;
} LatencyResult;

int bench_throughput_run(Engine *e, const OfflineOptions *o, ThroughputResult *r, char *err);
int bench_latency_run(Engine *e, const OfflineOptions *o, LatencyResult *r, char *err);

#endif
