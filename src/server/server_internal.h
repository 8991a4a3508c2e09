/* server_internal.h: state shared by the server's files (http.c owns the loop and connections,
 * openai_generate.c the completion endpoints, openai_misc.c the small endpoints).
 *
 * Threads: everything here is touched only by the HTTP loop thread, except (a) a call's
 * ApiRequest and prompt fields, which a worker reads and fills while call->in_worker is set
 * (the loop does not touch them meanwhile), and (b) the done queue, under done_mu. Engine
 * outputs arrive through replicas_take_outputs() after an engine's notify wakes the loop. */
#ifndef PAGELLM_SERVER_SERVER_INTERNAL_H
#define PAGELLM_SERVER_SERVER_INTERNAL_H
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "engine/engine.h"
#include "server/api_error.h"
#include "server/metrics.h"
#include "server/openai_request.h"
#include "server/parsers/reasoning_qwen3.h"
#include "server/parsers/tool_hermes.h"
#include "server/replicas.h"
#include "server/serve_config.h"
#include "server/strbuf.h"
#include "server/workers.h"

#define CALL_TABLE_SIZE 1024
#define PROMPT_ID_BITS 16          /* engine request id = call seq << 16 | prompt index */

typedef struct Server Server;

typedef enum { JOB_GENERATE = 0, JOB_TOKENIZE } JobKind;

/* One choice (one of n completions of one prompt) as it accumulates. */
typedef struct ChoiceState {
    StrBuf text;                   /* all output text so far */
    json_t *logprobs;              /* chat: content array; completion: logprobs object; or NULL */
    size_t logprob_offset;         /* completion text_offset so far */
    FinishReason finish;
    json_t *stop_reason;           /* owned; null until finished */
    int completion_tokens;
    int started;                   /* stream: first chunk sent (role / echo) */
    ReasoningQwen3 rq;             /* --reasoning-parser qwen3 */
    HermesParser hp;               /* tool_choice auto + --tool-call-parser hermes */
    int tool_calls_sent;           /* stream: tool-call start events sent */
    double t_first_token;
} ChoiceState;

/* One prompt of the request: its tokens and its engine request. */
typedef struct PromptState {
    int32_t *ids;                  /* [len], owned */
    int len;
    char *echo_text;               /* completion echo: the prompt as text */
    int max_tokens;
    Grammar *grammar;              /* structured output constraint, until the engine takes it */
    int submitted;                 /* engine_submit() succeeded */
    int replica;                   /* which data-parallel replica has it (0 with one engine) */
    int num_finished;              /* choices of this prompt finished */
} PromptState;

typedef struct ApiCall {
    Server *srv;
    struct evhttp_request *req;    /* NULL once the client is gone or the reply was sent */
    struct evhttp_connection *conn;
    struct event *eof_ev;          /* watches the socket for the client hanging up early */
    uint64_t seq;
    JobKind job;
    ApiRequest areq;
    char id[64];                   /* "chatcmpl-..." / "cmpl-..." (one id across chunks) */
    long long created;
    char *prompt_text;             /* chat: the rendered prompt */
    PromptState *prompts;
    int num_prompts;
    ChoiceState *choices;          /* [num_prompts * n] */
    int num_choices, n;
    int num_finished;
    int in_worker;                 /* a worker owns areq/prompts right now */
    int gone;                      /* client disconnected */
    int streaming;                 /* SSE reply started */
    int in_table;
    int worker_rc;                 /* worker's result: 0 ok, -1 werr set */
    ApiError werr;
    json_t *tokenize_result;       /* JOB_TOKENIZE: the response body */
    int detokenize;                /* JOB_TOKENIZE: /detokenize rather than /tokenize */
    int return_token_strs;         /* /tokenize: also return the token strings */
    int use_reasoning, use_tools, starts_in_reasoning;
    int32_t grammar_start_token;   /* -1, or </think>: constrain only the answer after thinking */
    double t_arrival;
    struct ApiCall *next_done;     /* done queue link (under done_mu) */
    struct ApiCall *hnext;         /* call table chain */
} ApiCall;

struct Server {
    ServeConfig *cfg;
    Replicas rep;                  /* the engine(s): submit, abort, outputs and stats go here */
    Engine *engine;                /* rep.engines[0]: tokenizer, model and generation config
                                      (the same model on every replica) */
    const Tokenizer *tok;
    ApiLimits limits;
    GrammarCompiler *grammar;      /* structured outputs; NULL if it could not be built */
    const char *model_name;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    int wake_fd;                   /* eventfd: engine outputs ready / worker jobs done */
    struct event *wake_ev;
    WorkerPool *pool;
    pthread_mutex_t done_mu;
    ApiCall *done_head, *done_tail;
    ApiCall *table[CALL_TABLE_SIZE];
    int num_calls;                 /* calls alive (in table or in a worker) */
    uint64_t next_seq;
    Metrics metrics;
    int shutting_down;
    double shutdown_deadline;
    int idle_ticks;                /* shutdown: consecutive ticks with no call left */
    struct event *sig_term, *sig_int, *tick;
    long long started_unix;
};

/* http.c */
void http_send_json(struct evhttp_request *req, int status, json_t *body);   /* steals body */
void http_send_error(struct evhttp_request *req, const ApiError *e);
void server_wake(Server *s);                               /* any thread */
void server_job_done(ApiCall *c);                          /* worker thread */
ApiCall *call_new(Server *s, struct evhttp_request *req, JobKind job);
void call_table_add(ApiCall *c);
ApiCall *call_table_find(Server *s, uint64_t seq);
void call_release(ApiCall *c);                             /* unregister + free */
void call_reply_json(ApiCall *c, int status, json_t *body); /* final reply (steals body) */
void call_reply_error(ApiCall *c, const ApiError *e);       /* final reply: error envelope */
/* 0 when the request names no model or one this server serves (--served-model-name, else the
 * model path); otherwise -1 with vLLM's 404 "The model `X` does not exist." in *e. */
int server_check_model(const Server *s, const char *name, ApiError *e);
/* The request's conversation through the chat template (request's template, else --chat-template,
 * else the tokenizer's). Worker threads only. malloc'd prompt, or NULL + err. */
char *server_render_chat(Server *s, const ApiRequest *r, char *err);
int call_stream_start(ApiCall *c);                         /* 200 + SSE headers; -1 if gone */
void call_stream_write(ApiCall *c, StrBuf *b);             /* sends and clears b */
void call_stream_end(ApiCall *c);

/* openai_generate.c */
void openai_handle_generate(Server *s, struct evhttp_request *req, json_t *body, ApiKind kind);
void openai_call_ready(ApiCall *c);                        /* loop: worker finished */
void openai_call_output(ApiCall *c, int prompt_idx, RequestOutput *o);
void openai_call_abort_all(ApiCall *c);                    /* client gone / shutdown */
void openai_call_fail(ApiCall *c, const ApiError *e);      /* shutdown: end with an error */
void call_state_free(ApiCall *c);
char *token_text(void *tokenizer, int32_t id);             /* TokenTextFn over a Tokenizer */

/* openai_misc.c */
void openai_handle_models(Server *s, struct evhttp_request *req);
void openai_handle_tokenize(Server *s, struct evhttp_request *req, json_t *body);
void openai_handle_detokenize(Server *s, struct evhttp_request *req, json_t *body);
void openai_tokenize_ready(ApiCall *c);
void worker_tokenize(void *arg);

#endif
