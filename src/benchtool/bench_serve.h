/* bench_serve.h: an online load generator against any OpenAI-compatible server (the job of
 * `vllm bench serve`). Streams every request (SSE) through libcurl's multi interface on one
 * thread, many in flight, with Poisson (gamma, for burstiness) arrivals and an optional cap on
 * concurrency, and measures per request: TTFT, inter-token latencies (one per streamed chunk
 * after the first), end-to-end latency, and the token counts the server reports in its usage
 * chunk (stream_options.include_usage). */
#ifndef PAGELLM_BENCHTOOL_BENCH_SERVE_H
#define PAGELLM_BENCHTOOL_BENCH_SERVE_H
#include <stdint.h>

#include "benchtool/bench_dataset.h"
#include "benchtool/bench_stats.h"

typedef struct BenchServeOptions {
    const char *base_url;        /* e.g. http://127.0.0.1:8000 */
    const char *endpoint;        /* /v1/completions or /v1/chat/completions */
    const char *model;           /* "model" field of each request */
    const char *api_key;         /* NULL = none */
    double request_rate;         /* requests/s; <= 0 or inf = all at once */
    double burstiness;           /* gamma shape; 1 = Poisson */
    int max_concurrency;         /* 0 = unlimited */
    int ignore_eos;
    const char *extra_body;    /* JSON object merged into every request body (--extra-body), or NULL */
    uint64_t seed;
    double goodput_ttft_ms, goodput_tpot_ms, goodput_e2el_ms; /* 0 = no SLO on that metric */
    int progress;                /* progress bar on stderr */
    double timeout_s;            /* per request; 0 = none */
} BenchServeOptions;

typedef struct RequestResult {
    int success;
    double ttft;                 /* seconds */
    double latency;              /* e2el, seconds */
    double *itl; int num_itl;    /* seconds */
    int prompt_tokens, output_tokens;
    char error[256];
} RequestResult;

typedef struct BenchServeResult {
    int completed, failed;
    double duration;             /* seconds, first send to last completion */
    long long total_input, total_output;
    double request_throughput, output_throughput, total_token_throughput;
    double goodput;              /* requests/s meeting every SLO given; -1 if none given */
    Summary ttft_ms, tpot_ms, itl_ms, e2el_ms;
    RequestResult *per_request;  /* [n] */
    int n;
    char first_error[256];
} BenchServeResult;

int bench_serve_run(const BenchServeOptions *o, const BenchDataset *d, BenchServeResult *r, char *err);
void bench_serve_print(const BenchServeOptions *o, const BenchServeResult *r);
/* Writes options + results (+ per-request ttft/itl/e2el/tokens) as JSON. */
int bench_serve_save(const char *path, const BenchServeOptions *o, const BenchServeResult *r, char *err);
void bench_serve_result_free(BenchServeResult *r);

#endif
