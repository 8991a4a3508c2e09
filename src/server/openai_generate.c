/* openai_generate.c: POST /v1/chat/completions and POST /v1/completions (vLLM's serving_chat.py
 * and serving_completion.py): parse on the loop thread, render + tokenize on a worker, submit to
 * the engine, then turn engine deltas into SSE chunks or one final JSON response. */
#include <stdlib.h>
#include <string.h>

#include "server/ids.h"
#include "server/openai_response.h"
#include "server/server_internal.h"
#include "server/structured.h"
#include "tok/chat.h"
#include "util/log.h"

char *token_text(void *ctx, int32_t id) {
    size_t len;
    char *s = tok_decode((const Tokenizer *)ctx, &id, 1, 0, &len);
    return s ? s : strdup("");
}

static uint64_t engine_id(const ApiCall *c, int p) { return (c->seq << PROMPT_ID_BITS) | (uint64_t)p; }

/* A JSON string from model text (valid UTF-8 by the detokenizer's contract; never NULL). */
static json_t *jstr(const char *s, size_t n) {
    json_t *v = json_stringn(s, n);
    return v ? v : json_string("\xef\xbf\xbd");
}

void call_state_free(ApiCall *c) {
    api_request_free(&c->areq);
    for (int i = 0; i < c->num_prompts; i++) {
        free(c->prompts[i].ids);
        free(c->prompts[i].echo_text);
        if (c->prompts[i].grammar) grammar_release(c->prompts[i].grammar);
    }
    free(c->prompts);
    for (int i = 0; i < c->num_choices; i++) {
        ChoiceState *ch = &c->choices[i];
        sb_free(&ch->text);
        json_decref(ch->logprobs);
        json_decref(ch->stop_reason);
        hermes_deinit(&ch->hp);
    }
    free(c->choices);
    free(c->prompt_text);
    json_decref(c->tokenize_result);
    free(c);
}

/* ---- worker: template + tokenization ---- */

static int worker_fail(ApiCall *c, int status, const char *param, const char *msg) {
    c->worker_rc = api_error(&c->werr, status, param, "%s", msg);
    return -1;
}

char *server_render_chat(Server *s, const ApiRequest *r, char *err) {
    ChatRenderOptions o = {
        .template_override = r->chat_template ? r->chat_template : s->cfg->chat_template,
        .add_generation_prompt = r->add_generation_prompt,
        .continue_final_message = r->continue_final_message,
        .tools = r->tools,
        .kwargs = r->chat_template_kwargs,
    };
    return chat_render(s->tok, r->messages, &o, err);
}

static void worker_generate(void *arg) {
    ApiCall *c = arg;
    Server *s = c->srv;
    ApiRequest *r = &c->areq;
    char err[PG_ERR_LEN] = "";
    if (r->kind == API_CHAT) {
        c->prompt_text = server_render_chat(s, r, err);
        if (!c->prompt_text) {
            worker_fail(c, 400, "messages", err[0] ? err : "chat template rendering failed");
            goto done;
        }
        c->num_prompts = 1;
        c->prompts = calloc(1, sizeof *c->prompts);
        int32_t *ids = NULL;
        size_t n = 0;
        if (tok_encode(s->tok, c->prompt_text, strlen(c->prompt_text), r->add_special_tokens, &ids, &n, err) < 0) {
            worker_fail(c, 400, "messages", err);
            goto done;
        }
        c->prompts[0].ids = ids;
        c->prompts[0].len = (int)n;
        c->starts_in_reasoning = rq3_prompt_opens_think(c->prompt_text);
    } else {
        c->num_prompts = r->num_prompts;
        c->prompts = calloc((size_t)r->num_prompts, sizeof *c->prompts);
        for (int i = 0; i < r->num_prompts; i++) {
            ApiPrompt *ap = &r->prompts[i];
            PromptState *p = &c->prompts[i];
            if (ap->text) {
                int32_t *ids = NULL;
                size_t n = 0;
                if (tok_encode(s->tok, ap->text, strlen(ap->text), r->add_special_tokens, &ids, &n, err) < 0) {
                    worker_fail(c, 400, "prompt", err);
                    goto done;
                }
                p->ids = ids;
                p->len = (int)n;
                if (r->echo) p->echo_text = strdup(ap->text);
            } else {
                p->ids = malloc((size_t)ap->len * sizeof *p->ids);
                memcpy(p->ids, ap->ids, (size_t)ap->len * sizeof *p->ids);
                p->len = ap->len;
                if (r->echo) {
                    size_t len;
                    p->echo_text = tok_decode(s->tok, p->ids, (size_t)p->len, 0, &len);
                }
            }
            if (p->len == 0) {
                worker_fail(c, 400, "prompt", "The prompt is empty: it has no tokens.");
                goto done;
            }
        }
    }
    /* One grammar reference per prompt: the engine takes each over (compiled once, cached). */
    for (int i = 0; i < c->num_prompts && r->structured.present; i++)
        if (structured_compile(s->grammar, &r->structured, &c->prompts[i].grammar, &c->werr) < 0) {
            c->worker_rc = -1;
            goto done;
        }
    c->grammar_start_token = -1;
    if (r->structured.present && c->use_reasoning) {
        /* Qwen3 thinks first: enforce the structure on the answer only (vLLM does the same with a
         * reasoning parser), unless the prompt already closed the think block. */
        int closed = 0;
        const char *t = c->prompt_text ? strstr(c->prompt_text, "<|im_start|>assistant") : NULL;
        const char *last = t;
        while (t && (t = strstr(t + 1, "<|im_start|>assistant")) != NULL) last = t;
        if (last && strstr(last, "</think>")) closed = 1;
        if (!closed) c->grammar_start_token = tok_token_id(s->tok, "</think>");
    }
    c->worker_rc = 0;
done:
    server_job_done(c);
}

/* ---- loop: request in ---- */

void openai_handle_generate(Server *s, struct evhttp_request *req, json_t *body, ApiKind kind) {
    ApiError e;
    ApiRequest ar;
    int rc = kind == API_CHAT ? api_parse_chat(body, &s->limits, &ar, &e) : api_parse_completion(body, &s->limits, &ar, &e);
    if (rc == 0) rc = server_check_model(s, ar.model, &e);
    if (rc == 0 && kind == API_COMPLETION && ar.echo && ar.logprobs)
        rc = api_error(&e, 400, "logprobs", "echo together with logprobs needs prompt logprobs, which are not supported yet.");
    if (rc < 0) {
        api_request_free(&ar);
        http_send_error(req, &e);
        return;
    }
    ApiCall *c = call_new(s, req, JOB_GENERATE);
    c->areq = ar;
    c->n = ar.params.n;
    char hex[33];
    random_hex32(hex);
    snprintf(c->id, sizeof c->id, "%s%s", kind == API_CHAT ? "chatcmpl-" : "cmpl-", hex);
    c->use_reasoning = kind == API_CHAT && s->cfg->reasoning_parser_qwen3;
    c->use_tools = kind == API_CHAT && ar.tool_choice == TOOL_CHOICE_AUTO && s->cfg->tool_parser_hermes && ar.tools;
    c->in_worker = 1;
    workers_submit(s->pool, worker_generate, c);
}

/* ---- streaming chunks ---- */

static json_t *chunk_new(ApiCall *c) {
    Server *s = c->srv;
    return resp_envelope(c->areq.kind == API_CHAT ? "chat.completion.chunk" : "text_completion", c->id, c->created,
                         s->model_name);
}

static int total_completion_tokens(ApiCall *c) {
    int t = 0;
    for (int i = 0; i < c->num_choices; i++) t += c->choices[i].completion_tokens;
    return t;
}
static int total_prompt_tokens(ApiCall *c) {
    int t = 0;
    for (int i = 0; i < c->num_prompts; i++) t += c->prompts[i].len;
    return t;
}

static void emit_chunk(ApiCall *c, json_t *chunk, StrBuf *out) {
    if (c->areq.continuous_usage)
        json_object_set_new(chunk, "usage", resp_usage(total_prompt_tokens(c), total_completion_tokens(c)));
    sse_event(out, chunk);
    json_decref(chunk);
}

static void stream_first_chunks(ApiCall *c) {
    StrBuf out = {0};
    for (int i = 0; i < c->num_choices; i++) {
        ChoiceState *ch = &c->choices[i];
        json_t *choice;
        if (c->areq.kind == API_CHAT) {
            choice = json_pack("{s:i,s:{s:s,s:s},s:n,s:n}", "index", i, "delta", "role", "assistant", "content", "",
                               "logprobs", "finish_reason");
        } else {
            const char *echo = c->prompts[i / c->n].echo_text;
            if (!echo) continue;
            choice = json_pack("{s:i,s:s,s:n,s:n,s:n}", "index", i, "text", echo, "logprobs", "finish_reason",
                               "stop_reason");
        }
        json_t *chunk = chunk_new(c);
        json_array_append_new(json_object_get(chunk, "choices"), choice);
        emit_chunk(c, chunk, &out);
        ch->started = 1;
    }
    call_stream_write(c, &out);
    sb_free(&out);
}

static const char *finish_name(ApiCall *c, ChoiceState *ch) {
    if (ch->finish == FINISH_NONE) return NULL;
    if (ch->tool_calls_sent > 0 && ch->finish == FINISH_STOP && c->areq.tool_choice != TOOL_CHOICE_NAMED)
        return "tool_calls";
    return finish_reason_name(ch->finish);
}

/* The chat delta of one engine output for one choice, through the parsers. */
static json_t *chat_delta(ApiCall *c, ChoiceState *ch, const char *text, size_t len, int finished) {
    StrBuf rs = {0}, cs = {0};
    if (c->use_reasoning) {
        rq3_feed(&ch->rq, text, len, &rs, &cs);
        if (finished) rq3_finish(&ch->rq, &rs, &cs);
    } else {
        sb_append(&cs, text, len);
    }
    json_t *delta = json_object();
    json_t *tool_calls = NULL;
    ToolChoice tc = c->areq.tool_choice;
    if (tc == TOOL_CHOICE_NAMED) {
        /* The constrained output is the named function's arguments: stream it as such. */
        tool_calls = json_array();
        if (!ch->tool_calls_sent) {
            char id[TOOL_CALL_ID_LEN];
            tool_call_id_new(id);
            json_array_append_new(tool_calls, json_pack("{s:i,s:s,s:s,s:{s:s,s:s%}}", "index", 0, "id", id, "type",
                                                        "function", "function", "name", c->areq.tool_choice_name,
                                                        "arguments", sb_str(&cs), cs.len));
            ch->tool_calls_sent = 1;
        } else if (cs.len) {
            json_array_append_new(tool_calls, json_pack("{s:i,s:{s:s%}}", "index", 0, "function", "arguments",
                                                        sb_str(&cs), cs.len));
        }
        sb_clear(&cs);
    } else if (tc == TOOL_CHOICE_REQUIRED) {
        /* A JSON array of calls: sent whole once complete (the text so far is in ch->text). */
        sb_clear(&cs);
        if (finished) {
            json_t *arr = json_loadb(sb_str(&ch->text), ch->text.len, 0, NULL);
            size_t i;
            json_t *it;
            json_array_foreach(arr, i, it) {
                if (!tool_calls) tool_calls = json_array();
                char id[TOOL_CALL_ID_LEN];
                tool_call_id_new(id);
                char *args = json_dumps(json_object_get(it, "parameters"), JSON_ENCODE_ANY);
                const char *name = json_string_value(json_object_get(it, "name"));
                json_array_append_new(tool_calls, json_pack("{s:i,s:s,s:s,s:{s:s,s:s}}", "index", (int)i, "id", id,
                                                            "type", "function", "function", "name", name ? name : "",
                                                            "arguments", args ? args : "{}"));
                free(args);
                ch->tool_calls_sent++;
            }
            json_decref(arr);
        }
    }
    if (tool_calls && json_array_size(tool_calls) == 0) {
        json_decref(tool_calls);
        tool_calls = NULL;
    }
    if (c->use_tools) {
        ToolEvents ev = {0};
        hermes_feed(&ch->hp, sb_str(&cs), cs.len, &ev);
        if (finished) hermes_finish(&ch->hp, &ev);
        sb_clear(&cs);
        for (int k = 0; k < ev.n; k++) {
            ToolEvent *t = &ev.ev[k];
            if (t->kind == TOOL_EV_CONTENT) {
                sb_puts(&cs, t->text);
                continue;
            }
            if (!tool_calls) tool_calls = json_array();
            if (t->kind == TOOL_EV_CALL_START) {
                json_array_append_new(tool_calls, json_pack("{s:i,s:s,s:s,s:{s:s,s:s}}", "index", t->index, "id", t->id,
                                                            "type", "function", "function", "name", t->text,
                                                            "arguments", ""));
                ch->tool_calls_sent++;
            } else {
                json_array_append_new(tool_calls, json_pack("{s:i,s:{s:s}}", "index", t->index, "function",
                                                            "arguments", t->text));
            }
        }
        tool_events_free(&ev);
    }
    if (rs.len) {
        json_object_set_new(delta, "reasoning_content", jstr(rs.p, rs.len));
        json_object_set_new(delta, "reasoning", jstr(rs.p, rs.len));
    }
    if (cs.len) json_object_set_new(delta, "content", jstr(cs.p, cs.len));
    if (tool_calls) json_object_set_new(delta, "tool_calls", tool_calls);
    sb_free(&rs);
    sb_free(&cs);
    return delta;
}

static void stream_output(ApiCall *c, int ci, RequestOutput *o) {
    ChoiceState *ch = &c->choices[ci];
    int finished = o->finish != FINISH_NONE;
    json_t *lp = NULL;
    if (c->areq.logprobs && o->logprobs && o->num_tokens > 0) {
        const Tokenizer *tok = c->srv->tok;
        if (c->areq.kind == API_CHAT) {
            json_t *content = json_array();
            resp_chat_logprobs_append(content, o->logprobs, o->num_tokens, c->areq.top_logprobs, token_text, (void *)tok);
            lp = json_pack("{s:o}", "content", content);
        } else {
            lp = resp_completion_logprobs_new();
            resp_completion_logprobs_append(lp, o->logprobs, o->num_tokens, c->areq.top_logprobs, token_text,
                                            (void *)tok, &ch->logprob_offset);
        }
    }
    json_t *choice;
    if (c->areq.kind == API_CHAT) {
        json_t *delta = chat_delta(c, ch, o->text ? o->text : "", o->text ? o->text_len : 0, finished);
        if (json_object_size(delta) == 0 && !finished && !lp) {
            json_decref(delta);
            return;
        }
        choice = json_pack("{s:i,s:o,s:o,s:o}", "index", ci, "delta", delta, "logprobs", lp ? lp : json_null(),
                           "finish_reason", finish_name(c, ch) ? json_string(finish_name(c, ch)) : json_null());
    } else {
        if (o->text_len == 0 && !finished && !lp) return;
        choice = json_pack("{s:i,s:o,s:o,s:o}", "index", ci, "text", jstr(o->text ? o->text : "", o->text_len),
                           "logprobs", lp ? lp : json_null(), "finish_reason",
                           finished ? json_string(finish_reason_name(ch->finish)) : json_null());
    }
    if (finished) json_object_set(choice, "stop_reason", ch->stop_reason);
    json_t *chunk = chunk_new(c);
    json_array_append_new(json_object_get(chunk, "choices"), choice);
    StrBuf out = {0};
    emit_chunk(c, chunk, &out);
    call_stream_write(c, &out);
    sb_free(&out);
}

/* ---- final responses ---- */

static json_t *chat_message(ApiCall *c, ChoiceState *ch, const char **finish_override) {
    StrBuf rs = {0}, cs = {0};
    int has_reasoning = 0;
    if (c->use_reasoning) {
        ReasoningQwen3 rq;
        rq3_init(&rq, c->starts_in_reasoning);
        rq3_feed(&rq, sb_str(&ch->text), ch->text.len, &rs, &cs);
        rq3_finish(&rq, &rs, &cs);
        has_reasoning = rq.saw_reasoning;
    } else {
        sb_append(&cs, sb_str(&ch->text), ch->text.len);
    }
    json_t *tool_calls = json_array();
    json_t *content = NULL;
    ApiRequest *r = &c->areq;
    if (c->use_tools) {
        ToolCall *calls;
        char *pre;
        int n = hermes_extract(sb_str(&cs), cs.len, &calls, &pre);
        for (int i = 0; i < n; i++)
            json_array_append_new(tool_calls, json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", calls[i].id, "type", "function",
                                                        "function", "name", calls[i].name, "arguments", calls[i].arguments));
        if (n > 0 && ch->finish == FINISH_STOP) *finish_override = "tool_calls";
        content = pre ? json_string(pre) : json_null();
        if (!content) content = json_null();
        tool_calls_free(calls, n);
        free(pre);
    } else if (r->tool_choice == TOOL_CHOICE_NAMED) {
        /* The output was constrained to the named function's arguments (vLLM: content = arguments). */
        char id[TOOL_CALL_ID_LEN];
        tool_call_id_new(id);
        json_array_append_new(tool_calls, json_pack("{s:s,s:s,s:{s:s,s:s%}}", "id", id, "type", "function", "function",
                                                    "name", r->tool_choice_name, "arguments", sb_str(&cs), cs.len));
        content = json_string("");
    } else if (r->tool_choice == TOOL_CHOICE_REQUIRED) {
        /* Constrained to [{"name": ..., "parameters": {...}}, ...]. */
        json_t *arr = json_loadb(sb_str(&cs), cs.len, 0, NULL);
        size_t i;
        json_t *it;
        json_array_foreach(arr, i, it) {
            char id[TOOL_CALL_ID_LEN];
            tool_call_id_new(id);
            char *args = json_dumps(json_object_get(it, "parameters"), JSON_ENCODE_ANY);
            const char *name = json_string_value(json_object_get(it, "name"));
            json_array_append_new(tool_calls, json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id, "type", "function",
                                                        "function", "name", name ? name : "", "arguments",
                                                        args ? args : "{}"));
            free(args);
        }
        json_decref(arr);
        if (json_array_size(tool_calls) > 0) *finish_override = "tool_calls";
        content = json_string("");
    } else {
        content = cs.len || !has_reasoning ? jstr(sb_str(&cs), cs.len) : json_null();
    }
    json_t *reasoning = has_reasoning ? jstr(sb_str(&rs), rs.len) : json_null();
    json_t *msg = json_pack("{s:s,s:o,s:o,s:O,s:o}", "role", "assistant", "content", content, "reasoning_content",
                            reasoning, "reasoning", reasoning, "tool_calls", tool_calls);
    sb_free(&rs);
    sb_free(&cs);
    return msg;
}

static void reply_final(ApiCall *c) {
    const char *object = c->areq.kind == API_CHAT ? "chat.completion" : "text_completion";
    json_t *resp = resp_envelope(object, c->id, c->created, c->srv->model_name);
    json_t *choices = json_object_get(resp, "choices");
    for (int i = 0; i < c->num_choices; i++) {
        ChoiceState *ch = &c->choices[i];
        json_t *choice;
        json_t *lp = ch->logprobs ? json_incref(ch->logprobs) : json_null();
        if (c->areq.kind == API_CHAT) {
            const char *fr = finish_reason_name(ch->finish);
            json_t *msg = chat_message(c, ch, &fr);
            if (ch->logprobs) {
                json_decref(lp);
                lp = json_pack("{s:O}", "content", ch->logprobs);
            }
            choice = json_pack("{s:i,s:o,s:o,s:s,s:O}", "index", i, "message", msg, "logprobs", lp, "finish_reason",
                               fr, "stop_reason", ch->stop_reason);
        } else {
            StrBuf t = {0};
            const char *echo = c->prompts[i / c->n].echo_text;
            if (echo) sb_puts(&t, echo);
            sb_append(&t, sb_str(&ch->text), ch->text.len);
            choice = json_pack("{s:i,s:o,s:o,s:s,s:O,s:n}", "index", i, "text", jstr(sb_str(&t), t.len), "logprobs", lp,
                               "finish_reason", finish_reason_name(ch->finish), "stop_reason", ch->stop_reason,
                               "prompt_logprobs");
            sb_free(&t);
        }
        json_array_append_new(choices, choice);
    }
    json_object_set_new(resp, "usage", resp_usage(total_prompt_tokens(c), total_completion_tokens(c)));
    call_reply_json(c, 200, resp);
}

/* Ends the call with an error: in the stream as a data event then [DONE], else as the reply. */
static void end_with_error(ApiCall *c, const ApiError *e) {
    if (c->streaming) {
        StrBuf out = {0};
        json_t *err = api_error_json(e);
        sse_event(&out, err);
        json_decref(err);
        sse_done(&out);
        call_stream_write(c, &out);
        sb_free(&out);
        call_stream_end(c);
    } else {
        call_reply_error(c, e);
    }
}

void openai_call_abort_all(ApiCall *c) {
    Server *s = c->srv;
    for (int p = 0; p < c->num_prompts; p++) {
        PromptState *ps = &c->prompts[p];
        if (!ps->submitted || ps->num_finished >= c->n) continue;
        replicas_abort(&s->rep, ps->replica, engine_id(c, p));
        s->metrics.success[FINISH_ABORT] += (uint64_t)(c->n - ps->num_finished);
        ps->num_finished = c->n;
    }
}

void openai_call_fail(ApiCall *c, const ApiError *e) {
    openai_call_abort_all(c);
    end_with_error(c, e);
    call_release(c);
}

/* ---- loop: after the worker ---- */

void openai_call_ready(ApiCall *c) {
    Server *s = c->srv;
    ApiError e;
    if (c->worker_rc < 0) {
        call_reply_error(c, &c->werr);
        call_release(c);
        return;
    }
    for (int p = 0; p < c->num_prompts; p++) {
        if (api_fit_max_tokens(&c->areq, c->prompts[p].len, &s->limits, &c->prompts[p].max_tokens, &e) < 0) {
            call_reply_error(c, &e);
            call_release(c);
            return;
        }
    }
    c->num_choices = c->num_prompts * c->n;
    c->choices = calloc((size_t)c->num_choices, sizeof *c->choices);
    CHECK(c->choices != NULL);
    for (int i = 0; i < c->num_choices; i++) {
        ChoiceState *ch = &c->choices[i];
        rq3_init(&ch->rq, c->starts_in_reasoning);
        hermes_init(&ch->hp);
        ch->stop_reason = json_null();
        if (c->areq.logprobs)
            ch->logprobs = c->areq.kind == API_CHAT ? json_array() : resp_completion_logprobs_new();
    }
    call_table_add(c);
    for (int p = 0; p < c->num_prompts; p++) {
        PromptState *ps = &c->prompts[p];
        EngineRequest er = {0};
        er.id = engine_id(c, p);
        er.prompt = ps->ids;
        er.prompt_len = ps->len;
        er.params = c->areq.params;   /* the engine deep-copies */
        er.params.max_tokens = ps->max_tokens;
        er.grammar = ps->grammar;
        er.grammar_start_token = c->grammar_start_token;
        char err[PG_ERR_LEN] = "";
        if (replicas_submit(&s->rep, &er, &ps->replica, err) < 0) {
            openai_call_abort_all(c);
            api_error(&e, 400, NULL, "%s", err[0] ? err : "the engine refused the request");
            call_reply_error(c, &e);
            call_release(c);
            return;
        }
        ps->submitted = 1;
        ps->grammar = NULL;   /* the engine owns it now */
    }
    if (c->areq.stream) {
        if (call_stream_start(c) < 0) return;
        stream_first_chunks(c);
    }
}

void openai_call_output(ApiCall *c, int p, RequestOutput *o) {
    Server *s = c->srv;
    if (p >= c->num_prompts || o->index < 0 || o->index >= c->n) return;
    int ci = p * c->n + o->index;
    ChoiceState *ch = &c->choices[ci];
    if (ch->finish != FINISH_NONE) return;
    if (o->text && o->text_len) sb_append(&ch->text, o->text, o->text_len);
    ch->completion_tokens = o->completion_tokens;
    if (o->num_tokens > 0 && ch->t_first_token == 0) ch->t_first_token = o->t_first_token;
    if (ch->logprobs && o->logprobs && o->num_tokens > 0 && !c->areq.stream) {
        if (c->areq.kind == API_CHAT)
            resp_chat_logprobs_append(ch->logprobs, o->logprobs, o->num_tokens, c->areq.top_logprobs, token_text,
                                      (void *)s->tok);
        else
            resp_completion_logprobs_append(ch->logprobs, o->logprobs, o->num_tokens, c->areq.top_logprobs,
                                            token_text, (void *)s->tok, &ch->logprob_offset);
    }
    if (o->finish != FINISH_NONE) {
        ch->finish = o->finish;
        json_decref(ch->stop_reason);
        ch->stop_reason = resp_stop_reason(o);
        if (o->finish == FINISH_STOP && o->stop_token >= 0 && !o->stop_reason[0]) {
            for (int k = 0; k < c->areq.params.num_stop_token_ids; k++)
                if (c->areq.params.stop_token_ids[k] == o->stop_token) {
                    json_decref(ch->stop_reason);
                    ch->stop_reason = json_integer(o->stop_token);
                }
        }
        metrics_observe_finish(&s->metrics, o->finish, o->t_arrival, o->t_scheduled, o->t_first_token, o->t_finished,
                               o->completion_tokens);
        c->prompts[p].num_finished++;
        c->num_finished++;
    }
    if (o->finish == FINISH_ERROR) {
        ApiError e;
        api_error(&e, 500, NULL, "engine error: %s", o->error[0] ? o->error : "unknown");
        openai_call_fail(c, &e);
        return;
    }
    if (c->areq.stream) stream_output(c, ci, o);
    if (c->num_finished < c->num_choices) return;
    if (c->areq.stream) {
        StrBuf out = {0};
        if (c->areq.include_usage) {
            json_t *chunk = chunk_new(c);
            json_object_set_new(chunk, "usage", resp_usage(total_prompt_tokens(c), total_completion_tokens(c)));
            sse_event(&out, chunk);
            json_decref(chunk);
        }
        sse_done(&out);
        call_stream_write(c, &out);
        sb_free(&out);
        call_stream_end(c);
    } else {
        reply_final(c);
    }
    call_release(c);
}
