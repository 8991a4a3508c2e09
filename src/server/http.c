/* http.c: the libevent loop of `pagellm serve`: listening, routing, limits (413), methods (405),
 * API-key auth (401, constant-time compare), SSE replies, client disconnects (-> replicas_abort),
 * the wake-up eventfd shared by the engine's notify and the worker pool, and graceful shutdown
 * on SIGTERM / SIGINT. See server_internal.h for the threading rules. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/server.h"
#include "server/server_internal.h"
#include "util/log.h"
#include "util/timeutil.h"

/* ---- replies ---- */

void http_send_json(struct evhttp_request *req, int status, json_t *body) {
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    struct evbuffer *buf = evbuffer_new();
    if (s) evbuffer_add(buf, s, strlen(s));
    free(s);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    const char *reason = status == 200 ? "OK" : status == 400 ? "Bad Request" : status == 401 ? "Unauthorized"
                       : status == 404 ? "Not Found" : status == 405 ? "Method Not Allowed"
                       : status == 413 ? "Payload Too Large" : status == 503 ? "Service Unavailable"
                       : "Internal Server Error";
    evhttp_send_reply(req, status, reason, buf);
    evbuffer_free(buf);
}

void http_send_error(struct evhttp_request *req, const ApiError *e) {
    http_send_json(req, e->status, api_error_json(e));
}

static void send_text(struct evhttp_request *req, int status, const char *ctype, const char *text, size_t len) {
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add(buf, text, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Service Unavailable", buf);
    evbuffer_free(buf);
}

/* ---- calls ---- */

static void on_close(struct evhttp_connection *conn, void *arg);

static void call_unwatch(ApiCall *c) {
    if (c->eof_ev) event_free(c->eof_ev);
    c->eof_ev = NULL;
}

/* libevent notices a closed connection only when it writes to it; a client that hangs up while
 * its request is still being computed would keep the engine busy. So the socket is watched
 * (peeking, never reading): EOF or an error means the client is gone and the connection is freed,
 * which runs on_close (abort + release). Bytes from a pipelining client end the watch. */
static void on_eof(evutil_socket_t fd, short what, void *arg) {
    ApiCall *c = arg;
    (void)what;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    call_unwatch(c);
    if (n > 0 || !c->conn) return;
    evhttp_connection_free(c->conn);   /* calls on_close */
}

static void call_watch(ApiCall *c) {
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->conn);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0) return;
    c->eof_ev = event_new(c->srv->base, fd, EV_READ | EV_PERSIST, on_eof, c);
    if (c->eof_ev) event_add(c->eof_ev, NULL);
}

ApiCall *call_new(Server *s, struct evhttp_request *req, JobKind job) {
    ApiCall *c = calloc(1, sizeof *c);
    CHECK(c != NULL);
    c->srv = s;
    c->req = req;
    c->conn = evhttp_request_get_connection(req);
    c->seq = ++s->next_seq;
    c->job = job;
    c->t_arrival = time_now_s();
    c->created = (long long)time(NULL);
    s->num_calls++;
    evhttp_connection_set_closecb(c->conn, on_close, c);
    call_watch(c);
    return c;
}

void call_table_add(ApiCall *c) {
    Server *s = c->srv;
    size_t h = c->seq % CALL_TABLE_SIZE;
    c->hnext = s->table[h];
    s->table[h] = c;
    c->in_table = 1;
}

ApiCall *call_table_find(Server *s, uint64_t seq) {
    for (ApiCall *c = s->table[seq % CALL_TABLE_SIZE]; c; c = c->hnext)
        if (c->seq == seq) return c;
    return NULL;
}

/* Before the final reply: the connection may be freed by it, so forget it first. */
static void call_detach(ApiCall *c) {
    call_unwatch(c);
    if (c->conn && !c->gone) evhttp_connection_set_closecb(c->conn, NULL, NULL);
    c->conn = NULL;
}

void call_release(ApiCall *c) {
    Server *s = c->srv;
    if (c->in_table) {
        ApiCall **pp = &s->table[c->seq % CALL_TABLE_SIZE];
        while (*pp != c) pp = &(*pp)->hnext;
        *pp = c->hnext;
        c->in_table = 0;
    }
    if (c->req) {   /* still connected and unanswered: must not happen, but never leave a client hanging */
        call_detach(c);
        ApiError e;
        api_error(&e, 500, NULL, "internal error: request dropped");
        if (c->streaming) evhttp_send_reply_end(c->req);
        else http_send_error(c->req, &e);
        c->req = NULL;
    }
    call_detach(c);
    s->num_calls--;
    call_state_free(c);
}

static void on_close(struct evhttp_connection *conn, void *arg) {
    ApiCall *c = arg;
    (void)conn;
    call_unwatch(c);
    c->gone = 1;
    /* A hang-up seen by libevent itself (EOF on a read or write) detaches an unfinished request
     * from its connection and leaves it to us (libevent frees a detached request only in
     * evhttp_send_reply / _end, which will never come now). When we freed the connection
     * ourselves (on_eof), the request is still attached and freed with it. */
    if (c->req && !evhttp_request_get_connection(c->req)) evhttp_request_free(c->req);
    c->req = NULL;
    c->conn = NULL;
    LOG_D("request %llu: client disconnected", (unsigned long long)c->seq);
    if (c->in_worker) return;           /* released when the worker's job comes back */
    openai_call_abort_all(c);
    call_release(c);
}

int call_stream_start(ApiCall *c) {
    if (!c->req) return -1;
    struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
    evhttp_add_header(h, "Content-Type", "text/event-stream; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_send_reply_start(c->req, 200, "OK");
    c->streaming = 1;
    return 0;
}

void call_stream_write(ApiCall *c, StrBuf *b) {
    if (c->req && b->len) {
        struct evbuffer *buf = evbuffer_new();
        evbuffer_add(buf, b->p, b->len);
        evhttp_send_reply_chunk(c->req, buf);
        evbuffer_free(buf);
    }
    sb_clear(b);
}

void call_stream_end(ApiCall *c) {
    if (!c->req) return;
    struct evhttp_request *req = c->req;
    call_detach(c);
    c->req = NULL;
    evhttp_send_reply_end(req);
}

void call_reply_json(ApiCall *c, int status, json_t *body) {
    if (!c->req) {
        json_decref(body);
        return;
    }
    struct evhttp_request *req = c->req;
    call_detach(c);
    c->req = NULL;
    http_send_json(req, status, body);
}

void call_reply_error(ApiCall *c, const ApiError *e) { call_reply_json(c, e->status, api_error_json(e)); }

static int model_served(const Server *s, const char *name) {
    if (s->cfg->num_served_names == 0) return !strcmp(name, s->cfg->engine.model_dir);
    for (int i = 0; i < s->cfg->num_served_names; i++)
        if (!strcmp(name, s->cfg->served_names[i])) return 1;
    return 0;
}

int server_check_model(const Server *s, const char *name, ApiError *e) {
    if (!name || model_served(s, name)) return 0;
    return api_error(e, 404, "model", "The model `%s` does not exist.", name);
}

/* ---- waking the loop ---- */

void server_wake(Server *s) {
    uint64_t one = 1;
    ssize_t w = write(s->wake_fd, &one, sizeof one);
    (void)w;   /* EAGAIN: the counter is already non-zero, the loop will wake anyway */
}

static void engine_notify(void *arg) { server_wake(arg); }

void server_job_done(ApiCall *c) {
    Server *s = c->srv;
    pthread_mutex_lock(&s->done_mu);
    c->next_done = NULL;
    if (s->done_tail) s->done_tail->next_done = c;
    else s->done_head = c;
    s->done_tail = c;
    pthread_mutex_unlock(&s->done_mu);
    server_wake(s);
}

/* stopped: the loop has ended; answer what the workers finished with a 503. */
static void drain_done(Server *s, int stopped) {
    pthread_mutex_lock(&s->done_mu);
    ApiCall *c = s->done_head;
    s->done_head = s->done_tail = NULL;
    pthread_mutex_unlock(&s->done_mu);
    while (c) {
        ApiCall *next = c->next_done;
        c->in_worker = 0;
        if (c->gone) call_release(c);
        else if (stopped) {
            ApiError e;
            api_error(&e, 503, NULL, "The server is shutting down.");
            call_reply_error(c, &e);
            call_release(c);
        }
        else if (c->job == JOB_TOKENIZE) openai_tokenize_ready(c);
        else openai_call_ready(c);
        c = next;
    }
}

static void drain_outputs(Server *s) {
    RequestOutput *o = replicas_take_outputs(&s->rep);
    while (o) {
        RequestOutput *next = o->next;
        ApiCall *c = call_table_find(s, o->id >> PROMPT_ID_BITS);
        if (c && !c->gone) openai_call_output(c, (int)(o->id & ((1u << PROMPT_ID_BITS) - 1)), o);
        request_output_free(o);
        o = next;
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
    Server *s = arg;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;
    (void)what;
    drain_done(s, 0);
    drain_outputs(s);
}

/* ---- routing ---- */

typedef enum { R_MODELS, R_COMPLETIONS, R_CHAT, R_TOKENIZE, R_DETOKENIZE, R_HEALTH, R_VERSION, R_METRICS } Route;
static const struct { const char *path; enum evhttp_cmd_type method; Route route; } ROUTES[] = {
    {"/v1/models", EVHTTP_REQ_GET, R_MODELS},
    {"/v1/completions", EVHTTP_REQ_POST, R_COMPLETIONS},
    {"/v1/chat/completions", EVHTTP_REQ_POST, R_CHAT},
    {"/tokenize", EVHTTP_REQ_POST, R_TOKENIZE},
    {"/detokenize", EVHTTP_REQ_POST, R_DETOKENIZE},
    {"/health", EVHTTP_REQ_GET, R_HEALTH},
    {"/version", EVHTTP_REQ_GET, R_VERSION},
    {"/metrics", EVHTTP_REQ_GET, R_METRICS},
};

/* Compares in time that depends only on the lengths, never on where the bytes differ. */
static int ct_equal(const char *a, size_t al, const char *b, size_t bl) {
    size_t n = al > bl ? al : bl;
    unsigned char d = al != bl;
    for (size_t i = 0; i < n; i++) d |= (unsigned char)((i < al ? a[i] : 0) ^ (i < bl ? b[i] : 0));
    return d == 0;
}

static int authorized(Server *s, struct evhttp_request *req) {
    const char *key = s->cfg->api_key;
    if (!key) return 1;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    return ct_equal(h, strlen(h), key, strlen(key));
}

static void on_request(struct evhttp_request *req, void *arg) {
    Server *s = arg;
    ApiError e;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !*path) path = "/";
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    int found = -1, path_known = 0;
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
        if (strcmp(ROUTES[i].path, path) != 0) continue;
        path_known = 1;
        if (ROUTES[i].method == method || (method == EVHTTP_REQ_HEAD && ROUTES[i].method == EVHTTP_REQ_GET))
            found = (int)i;
    }
    LOG_D("%s %s", method == EVHTTP_REQ_GET ? "GET" : method == EVHTTP_REQ_POST ? "POST" : "other", path);
    if (!path_known) {
        api_error(&e, 404, NULL, "Not Found: %s", path);
        http_send_error(req, &e);
        return;
    }
    if (found < 0) {
        for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++)
            if (!strcmp(ROUTES[i].path, path))
                evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                                  ROUTES[i].method == EVHTTP_REQ_GET ? "GET" : "POST");
        api_error(&e, 405, NULL, "Method Not Allowed");
        http_send_error(req, &e);
        return;
    }
    if (!strncmp(path, "/v1/", 4) && !authorized(s, req)) {
        api_error(&e, 401, NULL, "Unauthorized: missing or invalid API key (Authorization: Bearer <key>)");
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
        http_send_error(req, &e);
        return;
    }
    Route r = ROUTES[found].route;
    EngineStats st;
    switch (r) {
    case R_HEALTH:
        replicas_get_stats(&s->rep, &st);   /* failed if any replica failed */
        if (st.failed) send_text(req, 503, "application/json", "{\"error\":\"engine failed\"}", 25);
        else send_text(req, 200, "application/json", "", 0);
        return;
    case R_VERSION: {
        http_send_json(req, 200, json_pack("{s:s}", "version", PAGELLM_VERSION));
        return;
    }
    case R_METRICS: {
        replicas_get_stats(&s->rep, &st);
        StrBuf b = {0};
        metrics_render(&s->metrics, &st, s->model_name, &b);
        if (s->rep.n > 1) {
            EngineStats per[64];   /* n <= 64 (--data-parallel-size) */
            for (int i = 0; i < s->rep.n && i < 64; i++) engine_get_stats(s->rep.engines[i], &per[i]);
            metrics_render_replicas(per, (const uint64_t(*)[3])s->rep.routed, s->rep.n < 64 ? s->rep.n : 64,
                                    s->model_name, &b);
        }
        send_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", sb_str(&b), b.len);
        sb_free(&b);
        return;
    }
    case R_MODELS:
        openai_handle_models(s, req);
        return;
    default:
        break;
    }
    /* POST endpoints: a bounded JSON body. */
    if (s->shutting_down) {
        api_error(&e, 503, NULL, "The server is shutting down.");
        http_send_error(req, &e);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if ((long long)len > s->cfg->max_request_body) {
        api_error(&e, 413, NULL, "Request body of %zu bytes exceeds the limit of %lld bytes (--max-request-body-bytes).",
                  len, s->cfg->max_request_body);
        http_send_error(req, &e);
        return;
    }
    json_error_t je;
    json_t *body = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &je);
    if (!body) {
        api_error(&e, 400, NULL, "JSON decode error: %s (line %d, column %d)", je.text, je.line, je.column);
        http_send_error(req, &e);
        return;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        api_error(&e, 400, NULL, "The request body must be a JSON object.");
        http_send_error(req, &e);
        return;
    }
    switch (r) {
    case R_COMPLETIONS: openai_handle_generate(s, req, body, API_COMPLETION); break;
    case R_CHAT: openai_handle_generate(s, req, body, API_CHAT); break;
    case R_TOKENIZE: openai_handle_tokenize(s, req, body); break;
    case R_DETOKENIZE: openai_handle_detokenize(s, req, body); break;
    default: break;
    }
    json_decref(body);
}

/* ---- shutdown ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    Server *s = arg;
    (void)fd; (void)what;
    /* Exit once no call is left for a few ticks in a row, so that the last replies (queued in
     * libevent's output buffers) reach the clients before the connections are closed. */
    if (s->num_calls == 0) {
        if (++s->idle_ticks >= 4) {
            LOG_I("all requests finished; exiting");
            event_base_loopexit(s->base, NULL);
        }
        return;
    }
    s->idle_ticks = 0;
    if (time_now_s() < s->shutdown_deadline) return;
    LOG_W("grace period over: aborting %d request(s)", s->num_calls);
    ApiError e;
    api_error(&e, 503, NULL, "The server is shutting down; the request was aborted.");
    for (int h = 0; h < CALL_TABLE_SIZE; h++)
        while (s->table[h]) openai_call_fail(s->table[h], &e);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    Server *s = arg;
    (void)what;
    if (s->shutting_down) {
        LOG_W("second signal: stopping now");
        s->shutdown_deadline = 0;
        return;
    }
    LOG_I("received %s: no new connections; waiting up to %g s for %d request(s) in flight",
          sig == SIGTERM ? "SIGTERM" : "SIGINT", s->cfg->shutdown_grace_s, s->num_calls);
    s->shutting_down = 1;
    s->shutdown_deadline = time_now_s() + s->cfg->shutdown_grace_s;
    if (s->bound) {
        evhttp_del_accept_socket(s->http, s->bound);
        s->bound = NULL;
    }
    struct timeval tv = {0, 50 * 1000};
    s->tick = event_new(s->base, -1, EV_PERSIST, on_tick, s);
    event_add(s->tick, &tv);
}

/* ---- start-up ---- */

static int bound_port(struct evhttp_bound_socket *b) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(b), (struct sockaddr *)&ss, &sl) < 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

int server_run_engine(ServeConfig *cfg, Engine *engine) { return server_run_engines(cfg, &engine, 1); }

int server_run_engines(ServeConfig *cfg, Engine **engines, int n) {
    char err[PG_ERR_LEN] = "";
    int rc = 1;
    log_set_level(cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    Server *s = calloc(1, sizeof *s);
    CHECK(s != NULL);
    if (replicas_init(&s->rep, engines, n, err) < 0) {
        LOG_E("cannot set up %d data-parallel replicas: %s", n, err);
        free(s);
        return 1;
    }
    s->cfg = cfg;
    s->wake_fd = -1;
    s->model_name = serve_config_model_name(cfg);
    s->started_unix = (long long)time(NULL);
    pthread_mutex_init(&s->done_mu, NULL);
    metrics_init(&s->metrics);
    s->engine = s->rep.engines[0];
    s->tok = engine_tokenizer(s->engine);
    if (!s->tok) {
        LOG_E("%s has no tokenizer (tokenizer.json): the OpenAI server needs one", cfg->engine.model_dir);
        goto out;
    }
    if (!cfg->chat_template && !tok_chat_template(s->tok, NULL))
        LOG_W("the tokenizer has no chat template: /v1/chat/completions needs --chat-template");
    s->limits.max_model_len = engine_max_model_len(s->engine);
    s->limits.max_logprobs = cfg->max_logprobs;
    s->limits.vocab_size = tok_vocab_size(s->tok);
    const ModelConfig *mc = engine_model_config(s->engine);
    if (mc && mc->vocab_size > s->limits.vocab_size) s->limits.vocab_size = mc->vocab_size;
    s->limits.gen = cfg->generation_config_vllm ? NULL : engine_generation_config(s->engine);
    s->limits.default_chat_template_kwargs = cfg->default_chat_template_kwargs;
    s->limits.enable_auto_tool_choice = cfg->enable_auto_tool_choice;
    s->limits.have_tool_parser = cfg->tool_parser_hermes;

    /* Structured outputs: one grammar compiler over the tokenizer, stopping on the model's EOS ids. */
    s->grammar = engine_grammar_compiler_new(s->engine, err);
    if (!s->grammar) LOG_W("structured outputs disabled: %s", err);

    s->base = event_base_new();
    if (!s->base) {
        LOG_E("event_base_new failed");
        goto out;
    }
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->wake_fd < 0) {
        LOG_E("eventfd: %s", strerror(errno));
        goto out;
    }
    s->wake_ev = event_new(s->base, s->wake_fd, EV_READ | EV_PERSIST, on_wake, s);
    event_add(s->wake_ev, NULL);
    int nworkers = cfg->worker_threads;
    if (nworkers <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        nworkers = nc < 1 ? 1 : nc > 4 ? 4 : (int)nc;
    }
    s->pool = workers_new(nworkers);
    if (!s->pool) {
        LOG_E("cannot start %d worker threads", nworkers);
        goto out;
    }
    if (replicas_start(&s->rep, engine_notify, s, err) < 0) {
        LOG_E("cannot start the engine thread: %s", err);
        goto out;
    }
    s->http = evhttp_new(s->base);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    /* Bodies up to the limit are read and checked here (413 in the OpenAI envelope); far larger
     * ones are cut off by libevent itself while reading. */
    evhttp_set_max_body_size(s->http, (ev_ssize_t)(cfg->max_request_body * 2 + (1 << 20)));
    evhttp_set_timeout(s->http, 3600);
    evhttp_set_gencb(s->http, on_request, s);
    const char *host = cfg->host[0] ? cfg->host : "0.0.0.0";
    s->bound = evhttp_bind_socket_with_handle(s->http, host, (ev_uint16_t)cfg->port);
    if (!s->bound) {
        LOG_E("cannot listen on %s:%d: %s", host, cfg->port, strerror(errno));
        goto out;
    }
    s->sig_term = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->sig_int = evsignal_new(s->base, SIGINT, on_signal, s);
    event_add(s->sig_term, NULL);
    event_add(s->sig_int, NULL);
    EngineStats st;
    engine_get_stats(s->engine, &st);
    if (s->rep.n > 1)
        LOG_I("serving '%s' (max_model_len %d, %d data-parallel replicas of %d KV blocks of %d tokens each) on "
              "http://%s:%d", s->model_name, s->limits.max_model_len, s->rep.n, st.num_blocks, st.block_size, host,
              bound_port(s->bound));
    else
        LOG_I("serving '%s' (max_model_len %d, %d KV blocks of %d tokens) on http://%s:%d", s->model_name,
              s->limits.max_model_len, st.num_blocks, st.block_size, host, bound_port(s->bound));
    event_base_dispatch(s->base);
    rc = 0;
out:
    replicas_stop(&s->rep);
    if (s->pool) workers_free(s->pool);
    if (s->base) drain_done(s, 1);   /* jobs that finished during shutdown */
    for (int h = 0; h < CALL_TABLE_SIZE; h++)
        while (s->table[h]) {
            openai_call_abort_all(s->table[h]);
            call_release(s->table[h]);
        }
    replicas_free(&s->rep);
    if (s->grammar) grammar_compiler_free(s->grammar);
    if (s->http) evhttp_free(s->http);
    if (s->wake_ev) event_free(s->wake_ev);
    if (s->sig_term) event_free(s->sig_term);
    if (s->sig_int) event_free(s->sig_int);
    if (s->tick) event_free(s->tick);
    if (s->base) event_base_free(s->base);
    if (s->wake_fd >= 0) close(s->wake_fd);
    pthread_mutex_destroy(&s->done_mu);
    free(s);
    return rc;
}
