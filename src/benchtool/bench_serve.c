#include "benchtool/bench_serve.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/rng.h"
#include "util/timeutil.h"

/* One request in flight. */
typedef struct Flight {
    int idx;
    CURL *h;
    struct curl_slist *headers;
    char *body;
    double t_start, t_first, t_last;
    int got_first;
    double *itl; int num_itl, cap_itl;
    char *line; size_t line_len, line_cap;   /* SSE line being assembled */
    char *raw; size_t raw_len;               /* first bytes of a non-SSE reply (errors) */
    int done;                                /* saw data: [DONE] */
    int prompt_tokens, output_tokens, got_usage;
    char error[256];
} Flight;

static double gamma_sample(Rng *r, double shape) {
    /* Marsaglia-Tsang; shape < 1 boosted by u^(1/shape). */
    if (shape < 1) {
        double u = rng_unit(r);
        if (u <= 0) u = 1e-12;
        return gamma_sample(r, shape + 1) * pow(u, 1.0 / shape);
    }
    double dd = shape - 1.0 / 3, c = 1.0 / sqrt(9 * dd);
    for (;;) {
        double u1 = rng_unit(r), u2 = rng_unit(r);
        if (u1 <= 0) u1 = 1e-12;
        double x = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2), v = 1 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = rng_unit(r);
        if (u <= 0) u = 1e-12;
        if (log(u) < 0.5 * x * x + dd - dd * v + dd * log(v)) return dd * v;
    }
}

static void on_event(Flight *f, const char *data, size_t len) {
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) { f->done = 1; return; }
    json_error_t je;
    json_t *o = json_loadb(data, len, 0, &je);
    if (!o) return;
    json_t *err = json_object_get(o, "error");
    if (err && !f->error[0]) {
        json_t *m = json_object_get(err, "message");
        snprintf(f->error, sizeof f->error, "server error: %s", json_is_string(m) ? json_string_value(m) : "?");
    }
    json_t *usage = json_object_get(o, "usage");
    if (json_is_object(usage)) {
        f->prompt_tokens = (int)json_integer_value(json_object_get(usage, "prompt_tokens"));
        f->output_tokens = (int)json_integer_value(json_object_get(usage, "completion_tokens"));
        f->got_usage = 1;
    }
    json_t *choices = json_object_get(o, "choices");
    int has_content = 0;
    if (json_is_array(choices) && json_array_size(choices) > 0) {
        json_t *c = json_array_get(choices, 0), *t = json_object_get(c, "text");
        if (json_is_string(t) && json_string_length(t) > 0) has_content = 1;
        json_t *delta = json_object_get(c, "delta");
        if (json_is_object(delta)) {
            const char *keys[] = {"content", "reasoning_content", "reasoning"};
            for (int k = 0; k < 3; k++) {
                json_t *v = json_object_get(delta, keys[k]);
                if (json_is_string(v) && json_string_length(v) > 0) has_content = 1;
            }
            if (json_object_get(delta, "tool_calls")) has_content = 1;
        }
    }
    if (has_content) {
        double now = time_now_s();
        if (f->got_first) {
            if (f->num_itl == f->cap_itl) {
                int nc = f->cap_itl ? f->cap_itl * 2 : 64;
                double *ni = realloc(f->itl, (size_t)nc * sizeof *ni);
                if (ni) { f->itl = ni; f->cap_itl = nc; }
            }
            if (f->num_itl < f->cap_itl) f->itl[f->num_itl++] = now - f->t_last;
        }
        if (!f->got_first) f->t_first = now;
        f->got_first = 1;
        f->t_last = now;
    }
    json_decref(o);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
    Flight *f = userdata;
    size_t n = size * nmemb;
    if (f->raw_len < 1024) { /* keep the start of the reply for error messages */
        size_t k = n < 1024 - f->raw_len ? n : 1024 - f->raw_len;
        char *nr = realloc(f->raw, f->raw_len + k + 1);
        if (nr) { f->raw = nr; memcpy(f->raw + f->raw_len, ptr, k); f->raw_len += k; f->raw[f->raw_len] = 0; }
    }
    for (size_t i = 0; i < n; i++) {
        char ch = ptr[i];
        if (ch == '\n') {
            size_t L = f->line_len;
            if (L && f->line[L - 1] == '\r') L--;
            if (L >= 5 && memcmp(f->line, "data:", 5) == 0) {
                size_t s = 5;
                while (s < L && f->line[s] == ' ') s++;
                on_event(f, f->line + s, L - s);
            }
            f->line_len = 0;
            continue;
        }
        if (f->line_len + 1 >= f->line_cap) {
            size_t nc = f->line_cap ? f->line_cap * 2 : 4096;
            char *nl = realloc(f->line, nc);
            if (!nl) return 0;
            f->line = nl;
            f->line_cap = nc;
        }
        f->line[f->line_len++] = ch;
    }
    return n;
}

/* extra: --extra-body, parsed once by bench_serve_run (NULL = none). */
static char *request_body(const BenchServeOptions *o, const BenchPrompt *p, int chat, json_t *extra) {
    json_t *b = json_object();
    json_object_set_new(b, "model", json_string(o->model));
    if (chat) {
        json_t *msgs = NULL;
        if (p->messages_json) msgs = json_loads(p->messages_json, 0, NULL);
        if (!msgs) {
            msgs = json_array();
            json_t *m = json_object();
            json_object_set_new(m, "role", json_string("user"));
            json_object_set_new(m, "content", json_string(p->text ? p->text : ""));
            json_array_append_new(msgs, m);
        }
        json_object_set_new(b, "messages", msgs);
        json_object_set_new(b, "max_completion_tokens", json_integer(p->output_len));
    } else {
        if (p->ids) {
            json_t *ids = json_array();
            for (int i = 0; i < p->num_ids; i++) json_array_append_new(ids, json_integer(p->ids[i]));
            json_object_set_new(b, "prompt", ids);
        } else {
            json_object_set_new(b, "prompt", json_string(p->text ? p->text : ""));
        }
        json_object_set_new(b, "max_tokens", json_integer(p->output_len));
    }
    json_object_set_new(b, "temperature", json_real(0.0));
    json_object_set_new(b, "stream", json_true());
    json_t *so = json_object();
    json_object_set_new(so, "include_usage", json_true());
    json_object_set_new(b, "stream_options", so);
    if (o->ignore_eos) json_object_set_new(b, "ignore_eos", json_true());
    if (extra) json_object_update(b, extra);
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

static Flight *flight_start(CURLM *multi, const BenchServeOptions *o, json_t *extra, const BenchPrompt *p, int idx,
                            const char *url, int chat) {
    Flight *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->idx = idx;
    f->body = request_body(o, p, chat, extra);
    f->h = curl_easy_init();
    if (!f->body || !f->h) { free(f->body); if (f->h) curl_easy_cleanup(f->h); free(f); return NULL; }
    f->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (o->api_key && o->api_key[0]) {
        char auth[512];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->api_key);
        f->headers = curl_slist_append(f->headers, auth);
    }
    curl_easy_setopt(f->h, CURLOPT_URL, url);
    curl_easy_setopt(f->h, CURLOPT_HTTPHEADER, f->headers);
    curl_easy_setopt(f->h, CURLOPT_POSTFIELDS, f->body);
    curl_easy_setopt(f->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(f->h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(f->h, CURLOPT_PRIVATE, f);
    curl_easy_setopt(f->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(f->h, CURLOPT_TCP_NODELAY, 1L);
    if (o->timeout_s > 0) curl_easy_setopt(f->h, CURLOPT_TIMEOUT_MS, (long)(o->timeout_s * 1000));
    f->t_start = time_now_s();
    curl_multi_add_handle(multi, f->h);
    return f;
}

static void flight_finish(Flight *f, CURLcode code, RequestResult *rr) {
    double now = time_now_s();
    long status = 0;
    curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &status);
    memset(rr, 0, sizeof *rr);
    if (code != CURLE_OK)
        snprintf(rr->error, sizeof rr->error, "transport: %s", curl_easy_strerror(code));
    else if (status != 200)
        snprintf(rr->error, sizeof rr->error, "HTTP %ld: %.200s", status, f->raw ? f->raw : "");
    else if (f->error[0])
        snprintf(rr->error, sizeof rr->error, "%s", f->error);
    else if (!f->got_first)
        snprintf(rr->error, sizeof rr->error, "stream ended without any token");
    else if (!f->got_usage)
        snprintf(rr->error, sizeof rr->error, "no usage chunk (does the server support stream_options.include_usage?)");
    rr->success = rr->error[0] == 0;
    rr->latency = now - f->t_start;
    rr->ttft = f->got_first ? f->t_first - f->t_start : 0;
    rr->itl = f->itl;
    rr->num_itl = f->num_itl;
    f->itl = NULL;
    rr->prompt_tokens = f->prompt_tokens;
    rr->output_tokens = f->output_tokens;
}

static void flight_free(CURLM *multi, Flight *f) {
    curl_multi_remove_handle(multi, f->h);
    curl_easy_cleanup(f->h);
    curl_slist_free_all(f->headers);
    free(f->body);
    free(f->itl);
    free(f->line);
    free(f->raw);
    free(f);
}

static void progress_bar(int done, int total, int inflight, double elapsed) {
    int width = 30, fill = total ? done * width / total : 0;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r[%s] %d/%d requests, %d in flight, %.1f s", bar, done, total, inflight, elapsed);
    fflush(stderr);
}

int bench_serve_run(const BenchServeOptions *o, const BenchDataset *d, BenchServeResult *r, char *err) {
    memset(r, 0, sizeof *r);
    int chat = strstr(o->endpoint, "chat") != NULL;
    char url[1024];
    size_t bl = strlen(o->base_url);
    snprintf(url, sizeof url, "%.*s%s", (int)(bl && o->base_url[bl - 1] == '/' ? bl - 1 : bl), o->base_url, o->endpoint);
    r->n = d->n;
    r->per_request = calloc((size_t)d->n, sizeof *r->per_request);
    double *send_at = calloc((size_t)d->n, sizeof *send_at);
    Flight **flights = calloc((size_t)d->n, sizeof *flights);
    if (!r->per_request || !send_at || !flights) { free(send_at); free(flights); return pg_err(err, "out of memory"); }
    /* Arrival schedule: gamma intervals with mean 1/rate (vLLM's scheme). */
    Rng rng;
    rng_seed(&rng, o->seed ^ 0xa5a5a5a5ull);
    double t = 0;
    int finite_rate = o->request_rate > 0 && isfinite(o->request_rate);
    double shape = o->burstiness > 0 ? o->burstiness : 1.0;
    for (int i = 0; i < d->n; i++) {
        send_at[i] = t;
        if (finite_rate) t += gamma_sample(&rng, shape) / (o->request_rate * shape);
    }
    json_t *extra = NULL;
    if (o->extra_body && !(extra = json_loads(o->extra_body, 0, NULL))) {
        free(send_at); free(flights);
        return pg_err(err, "--extra-body: not valid JSON");
    }
    CURLM *multi = curl_multi_init();
    if (!multi) { json_decref(extra); free(send_at); free(flights); return pg_err(err, "curl_multi_init failed"); }
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    int next = 0, inflight = 0, done = 0;
    double t0 = time_now_s(), last_bar = 0;
    while (done < d->n) {
        double now = time_now_s() - t0;
        while (next < d->n && send_at[next] <= now && (o->max_concurrency <= 0 || inflight < o->max_concurrency)) {
            flights[next] = flight_start(multi, o, extra, &d->items[next], next, url, chat);
            if (!flights[next]) {
                snprintf(r->per_request[next].error, sizeof r->per_request[next].error, "could not start request");
                done++;
            } else inflight++;
            next++;
        }
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            Flight *f = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
            flight_finish(f, m->data.result, &r->per_request[f->idx]);
            flights[f->idx] = NULL;
            flight_free(multi, f);
            inflight--;
            done++;
        }
        if (o->progress && (now - last_bar > 0.2 || done == d->n)) {
            progress_bar(done, d->n, inflight, now);
            last_bar = now;
        }
        int wait_ms = 50;
        if (next < d->n) {
            double dt = send_at[next] - (time_now_s() - t0);
            if (dt < 0.05) wait_ms = dt > 0 ? (int)(dt * 1000) : 0;
        }
        if (done < d->n) curl_multi_poll(multi, NULL, 0, wait_ms, NULL);
    }
    r->duration = time_now_s() - t0;
    if (o->progress) fprintf(stderr, "\n");
    curl_multi_cleanup(multi);
    json_decref(extra);
    free(flights);
    free(send_at);

    /* Aggregate as vllm bench serve does: TPOT per request = (e2el - ttft) / (out - 1). */
    double *ttft = calloc((size_t)d->n + 1, sizeof *ttft), *tpot = calloc((size_t)d->n + 1, sizeof *tpot);
    double *e2el = calloc((size_t)d->n + 1, sizeof *e2el);
    size_t nitl = 0, ntpot = 0, good = 0;
    for (int i = 0; i < d->n; i++) nitl += (size_t)r->per_request[i].num_itl;
    double *itl = calloc(nitl + 1, sizeof *itl);
    if (!ttft || !tpot || !e2el || !itl) { free(ttft); free(tpot); free(e2el); free(itl); return pg_err(err, "out of memory"); }
    nitl = 0;
    for (int i = 0; i < d->n; i++) {
        RequestResult *q = &r->per_request[i];
        if (!q->success) {
            r->failed++;
            if (!r->first_error[0]) snprintf(r->first_error, sizeof r->first_error, "%s", q->error);
            continue;
        }
        int k = r->completed++;
        r->total_input += q->prompt_tokens;
        r->total_output += q->output_tokens;
        ttft[k] = q->ttft * 1000;
        e2el[k] = q->latency * 1000;
        double tp = q->output_tokens > 1 ? (q->latency - q->ttft) * 1000 / (q->output_tokens - 1) : 0;
        if (q->output_tokens > 1) tpot[ntpot++] = tp;
        for (int j = 0; j < q->num_itl; j++) itl[nitl++] = q->itl[j] * 1000;
        int ok = (o->goodput_ttft_ms <= 0 || ttft[k] <= o->goodput_ttft_ms) &&
                 (o->goodput_tpot_ms <= 0 || tp <= o->goodput_tpot_ms) &&
                 (o->goodput_e2el_ms <= 0 || e2el[k] <= o->goodput_e2el_ms);
        good += ok;
    }
    r->ttft_ms = summarize(ttft, (size_t)r->completed);
    r->e2el_ms = summarize(e2el, (size_t)r->completed);
    r->tpot_ms = summarize(tpot, ntpot);
    r->itl_ms = summarize(itl, nitl);
    double dur = r->duration > 0 ? r->duration : 1e-9;
    r->request_throughput = r->completed / dur;
    r->output_throughput = (double)r->total_output / dur;
    r->total_token_throughput = (double)(r->total_input + r->total_output) / dur;
    int any_slo = o->goodput_ttft_ms > 0 || o->goodput_tpot_ms > 0 || o->goodput_e2el_ms > 0;
    r->goodput = any_slo ? (double)good / dur : -1;
    free(ttft); free(tpot); free(e2el); free(itl);
    return 0;
}

static void print_summary(const char *title, const char *abbr, const Summary *s) {
    char line[64];
    int pad = (50 - (int)strlen(title) - 2) / 2;
    snprintf(line, sizeof line, "%.*s %s %.*s", pad, "--------------------------", title, 50 - pad - (int)strlen(title) - 2, "--------------------------");
    printf("%s\n", line);
    printf("%-40s %-10.2f\n", (snprintf(line, sizeof line, "Mean %s (ms):", abbr), line), s->mean);
    printf("%-40s %-10.2f\n", (snprintf(line, sizeof line, "Median %s (ms):", abbr), line), s->median);
    printf("%-40s %-10.2f\n", (snprintf(line, sizeof line, "P90 %s (ms):", abbr), line), s->p90);
    printf("%-40s %-10.2f\n", (snprintf(line, sizeof line, "P99 %s (ms):", abbr), line), s->p99);
}

void bench_serve_print(const BenchServeOptions *o, const BenchServeResult *r) {
    printf("============ Serving Benchmark Result ============\n");
    printf("%-40s %-10d\n", "Successful requests:", r->completed);
    printf("%-40s %-10d\n", "Failed requests:", r->failed);
    if (o->max_concurrency > 0) printf("%-40s %-10d\n", "Maximum request concurrency:", o->max_concurrency);
    printf("%-40s %-10.2f\n", "Benchmark duration (s):", r->duration);
    printf("%-40s %-10lld\n", "Total input tokens:", r->total_input);
    printf("%-40s %-10lld\n", "Total generated tokens:", r->total_output);
    printf("%-40s %-10.2f\n", "Request throughput (req/s):", r->request_throughput);
    if (r->goodput >= 0) printf("%-40s %-10.2f\n", "Request goodput (req/s):", r->goodput);
    printf("%-40s %-10.2f\n", "Output token throughput (tok/s):", r->output_throughput);
    printf("%-40s %-10.2f\n", "Total Token throughput (tok/s):", r->total_token_throughput);
    print_summary("Time to First Token", "TTFT", &r->ttft_ms);
    print_summary("Time per Output Token (excl. 1st token)", "TPOT", &r->tpot_ms);
    print_summary("Inter-token Latency", "ITL", &r->itl_ms);
    print_summary("End-to-end Latency", "E2EL", &r->e2el_ms);
    printf("==================================================\n");
    if (r->failed) printf("first error: %s\n", r->first_error);
}

static json_t *summary_json(const Summary *s) {
    json_t *o = json_object();
    json_object_set_new(o, "mean", json_real(s->mean));
    json_object_set_new(o, "median", json_real(s->median));
    json_object_set_new(o, "p90", json_real(s->p90));
    json_object_set_new(o, "p99", json_real(s->p99));
    json_object_set_new(o, "std", json_real(s->stdev));
    json_object_set_new(o, "n", json_integer((json_int_t)s->n));
    return o;
}

int bench_serve_save(const char *path, const BenchServeOptions *o, const BenchServeResult *r, char *err) {
    json_t *j = json_object();
    json_object_set_new(j, "base_url", json_string(o->base_url));
    json_object_set_new(j, "endpoint", json_string(o->endpoint));
    json_object_set_new(j, "model", json_string(o->model));
    json_object_set_new(j, "request_rate", isfinite(o->request_rate) && o->request_rate > 0 ? json_real(o->request_rate) : json_string("inf"));
    json_object_set_new(j, "burstiness", json_real(o->burstiness));
    json_object_set_new(j, "max_concurrency", o->max_concurrency > 0 ? json_integer(o->max_concurrency) : json_null());
    json_object_set_new(j, "completed", json_integer(r->completed));
    json_object_set_new(j, "failed", json_integer(r->failed));
    json_object_set_new(j, "duration", json_real(r->duration));
    json_object_set_new(j, "total_input_tokens", json_integer(r->total_input));
    json_object_set_new(j, "total_output_tokens", json_integer(r->total_output));
    json_object_set_new(j, "request_throughput", json_real(r->request_throughput));
    json_object_set_new(j, "output_throughput", json_real(r->output_throughput));
    json_object_set_new(j, "total_token_throughput", json_real(r->total_token_throughput));
    json_object_set_new(j, "request_goodput", r->goodput >= 0 ? json_real(r->goodput) : json_null());
    json_object_set_new(j, "ttft_ms", summary_json(&r->ttft_ms));
    json_object_set_new(j, "tpot_ms", summary_json(&r->tpot_ms));
    json_object_set_new(j, "itl_ms", summary_json(&r->itl_ms));
    json_object_set_new(j, "e2el_ms", summary_json(&r->e2el_ms));
    json_t *ttfts = json_array(), *e2els = json_array(), *ins = json_array(), *outs = json_array(), *errs = json_array();
    for (int i = 0; i < r->n; i++) {
        const RequestResult *q = &r->per_request[i];
        json_array_append_new(ttfts, json_real(q->ttft));
        json_array_append_new(e2els, json_real(q->latency));
        json_array_append_new(ins, json_integer(q->prompt_tokens));
        json_array_append_new(outs, json_integer(q->output_tokens));
        json_array_append_new(errs, json_string(q->error));
    }
    json_object_set_new(j, "ttfts", ttfts);
    json_object_set_new(j, "e2els", e2els);
    json_object_set_new(j, "input_lens", ins);
    json_object_set_new(j, "output_lens", outs);
    json_object_set_new(j, "errors", errs);
    int rc = json_dump_file(j, path, JSON_INDENT(2));
    json_decref(j);
    return rc ? pg_err(err, "%s: cannot write results", path) : 0;
}

void bench_serve_result_free(BenchServeResult *r) {
    for (int i = 0; i < r->n; i++) free(r->per_request[i].itl);
    free(r->per_request);
    memset(r, 0, sizeof *r);
}
