/* openai_misc.c: GET /v1/models, POST /tokenize and POST /detokenize (vLLM's shapes). The
 * tokenize endpoints render and (de)tokenize on the worker pool like the completion endpoints. */
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

void openai_handle_models(Server *s, struct evhttp_request *req) {
    json_t *data = json_array();
    int n = s->cfg->num_served_names ? s->cfg->num_served_names : 1;
    for (int i = 0; i < n; i++) {
        const char *name = s->cfg->num_served_names ? s->cfg->served_names[i] : s->cfg->engine.model_dir;
        char perm_id[64];
        snprintf(perm_id, sizeof perm_id, "modelperm-%s", "pagellm");
        json_array_append_new(data, json_pack(
            "{s:s,s:s,s:I,s:s,s:s,s:n,s:i,s:[{s:s,s:s,s:I,s:b,s:b,s:b,s:b,s:b,s:b,s:s,s:n,s:b}]}", "id", name,
            "object", "model", "created", (json_int_t)s->started_unix, "owned_by", "pagellm", "root",
            s->cfg->engine.model_dir, "parent", "max_model_len", s->limits.max_model_len, "permission", "id", perm_id,
            "object", "model_permission", "created", (json_int_t)s->started_unix, "allow_create_engine", 0,
            "allow_sampling", 1, "allow_logprobs", 1, "allow_search_indices", 0, "allow_view", 1, "allow_fine_tuning",
            0, "organization", "*", "group", "is_blocking", 0));
    }
    http_send_json(req, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

void worker_tokenize(void *arg) {
    ApiCall *c = arg;
    Server *s = c->srv;
    ApiRequest *r = &c->areq;
    char err[PG_ERR_LEN] = "";
    c->worker_rc = 0;
    if (c->detokenize) {
        size_t len;
        char *text = tok_decode(s->tok, r->prompts[0].ids, (size_t)r->prompts[0].len, 0, &len);
        c->tokenize_result = json_pack("{s:s%}", "prompt", text ? text : "", text ? len : (size_t)0);
        free(text);
        goto done;
    }
    char *text = NULL;
    if (r->kind == API_CHAT) {
        text = server_render_chat(s, r, err);
        if (!text) {
            c->worker_rc = api_error(&c->werr, 400, "messages", "%s", err[0] ? err : "chat template rendering failed");
            goto done;
        }
    } else {
        text = strdup(r->prompts[0].text);
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (tok_encode(s->tok, text, strlen(text), r->add_special_tokens, &ids, &n, err) < 0) {
        free(text);
        c->worker_rc = api_error(&c->werr, 400, "prompt", "%s", err);
        goto done;
    }
    free(text);
    json_t *tokens = json_array(), *strs = c->return_token_strs ? json_array() : json_null();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(tokens, json_integer(ids[i]));
        if (c->return_token_strs) {
            const char *piece = tok_token_piece(s->tok, ids[i]);
            json_array_append_new(strs, json_string(piece ? piece : ""));
        }
    }
    free(ids);
    c->tokenize_result = json_pack("{s:i,s:i,s:o,s:o}", "count", (int)n, "max_model_len", s->limits.max_model_len,
                                   "tokens", tokens, "token_strs", strs);
done:
    server_job_done(c);
}

void openai_tokenize_ready(ApiCall *c) {
    if (c->worker_rc < 0) call_reply_error(c, &c->werr);
    else {
        call_reply_json(c, 200, c->tokenize_result);
        c->tokenize_result = NULL;
    }
    call_release(c);
}

static void start_tokenize_job(Server *s, struct evhttp_request *req, ApiRequest *ar, int detok, int token_strs) {
    ApiCall *c = call_new(s, req, JOB_TOKENIZE);
    c->areq = *ar;
    c->detokenize = detok;
    c->return_token_strs = token_strs;
    c->in_worker = 1;
    workers_submit(s->pool, worker_tokenize, c);
}

void openai_handle_tokenize(Server *s, struct evhttp_request *req, json_t *body) {
    ApiRequest ar;
    ApiError e;
    int token_strs = 0;
    int rc = api_parse_tokenize(body, &s->limits, &ar, &token_strs, &e);
    if (rc == 0) rc = server_check_model(s, ar.model, &e);
    if (rc < 0) {
        api_request_free(&ar);
        http_send_error(req, &e);
        return;
    }
    start_tokenize_job(s, req, &ar, 0, token_strs);
}

void openai_handle_detokenize(Server *s, struct evhttp_request *req, json_t *body) {
    ApiRequest ar;
    ApiError e;
    int rc = api_parse_detokenize(body, &s->limits, &ar, &e);
    if (rc == 0) rc = server_check_model(s, ar.model, &e);
    if (rc < 0) {
        api_request_free(&ar);
        http_send_error(req, &e);
        return;
    }
    start_tokenize_job(s, req, &ar, 1, 0);
}
