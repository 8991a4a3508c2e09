/* core.c: the Engine object behind engine.h, minus model loading (engine.c).
 *
 * One step = drain the inbox (new requests, aborts) -> schedule -> build the batch -> forward
 * -> postprocess (sample, append, stop checks, text deltas, free finished) -> publish outputs
 * and stats. With async scheduling (CoreConfig.async_scheduling + runner.launch/collect) a step
 * is launched, then the previous one is collected and postprocessed while the device runs it;
 * see engine_step. The inbox and the live-id map are guarded by `mu`, the outbox by `out_mu`, the
 * stats snapshot by `stats_mu`; everything else belongs to the engine thread. */
#define _GNU_SOURCE   /* memmem */
#include "engine/core.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"
#include "engine/kvcache.h"
#include "engine/sched.h"
#include "engine/seq.h"
#include "sample/grammar/grammar.h"
#include "sample/sample_batch.h"
#include "sample/sampler.h"
#include "tok/tokenizer.h"
#include "util/err.h"
#include "util/log.h"
#include "util/timeutil.h"

typedef struct AbortMsg { uint64_t id; struct AbortMsg *next; } AbortMsg;

/* One launched step, as postprocess needs it once its tokens are known: the scheduled sequences
 * in batch order, each one's logits row, whether that row's token is the sequence's (it was
 * running when the row was built), and its num_computed after the step (what the synchronous
 * engine registers in the prefix cache then). tokens/lps are the step's samples. */
typedef struct StepRec {
    Sequence **seqs; int32_t *rows, *nc_after; uint8_t *sampled; int n, cap;
    int32_t *tokens; LogprobEntry *lps; int tokens_cap;
    int eligible;                              /* may stay in flight (core_async_eligible) */
} StepRec;

struct Engine {
    CoreConfig cfg;
    BlockPool pool;
    Scheduler sched;
    BatchBuilder batch;
    Sampler sampler;                           /* host sampling (runner without forward_sample) */
    SampleBatch sb;                            /* this step's rows, row r = logits row r */
    float *logits; size_t logits_cap;          /* [rows, V] host logits (host sampling only) */
    StepRec steps_rec[2];                      /* async: the step in flight + the newest */
    int cur;                                   /* steps[cur] is this step's record */
    int inflight;                              /* steps[cur ^ 1] is launched, not collected */
    uint32_t *mask; int mask_words;            /* grammar mask scratch [mask_words] */
    uint64_t arrival_counter;                  /* under mu */
    int num_requests;                          /* drained and unfinished (engine thread) */
    Request **active; int num_active, cap_active;   /* drained, unfinished requests */
    /* inbox + live ids (mu) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    Request *inbox_head, *inbox_tail;
    AbortMsg *aborts;
    uint64_t *live_keys; Request **live_vals; int live_cap, live_n;
    int stop_flag, thread_started;
    pthread_t thread;
    /* outbox (out_mu) */
    pthread_mutex_t out_mu;
    RequestOutput *out_head, *out_tail;
    RequestOutput *pend_head, *pend_tail;      /* this step's outputs (engine thread) */
    void (*notify)(void *);
    void *notify_arg;
    /* stats (stats_mu) */
    pthread_mutex_t stats_mu;
    EngineStats stats;
    uint64_t prompt_tokens_total, generation_tokens_total, steps;
    int failed;
    EngineStepTimes last_times;
    double phase_s[4];             /* cumulative schedule, batch, forward, postprocess seconds */
    double forward_prefill_s;      /* of phase_s[2]: steps with prompt tokens (prefill_steps) */
    uint64_t prefill_steps;
};

/* ------------------------------------------------------------------ live-id map (under mu) */

static uint64_t id_hash(uint64_t id) { return splitmix64(id); }

static int live_find(const Engine *e, uint64_t id) {
    if (!e->live_cap) return -1;
    for (int i = (int)(id_hash(id) & (uint64_t)(e->live_cap - 1));; i = (i + 1) & (e->live_cap - 1)) {
        if (!e->live_vals[i]) return -1;
        if (e->live_keys[i] == id) return i;
    }
}

static void live_put_nogrow(Engine *e, uint64_t id, Request *r) {
    int i = (int)(id_hash(id) & (uint64_t)(e->live_cap - 1));
    while (e->live_vals[i]) i = (i + 1) & (e->live_cap - 1);
    e->live_keys[i] = id;
    e->live_vals[i] = r;
    e->live_n++;
}

static int live_put(Engine *e, uint64_t id, Request *r) {
    if (2 * (e->live_n + 1) > e->live_cap) {
        int old_cap = e->live_cap, cap = old_cap ? old_cap * 2 : 64;
        uint64_t *ok = e->live_keys;
        Request **ov = e->live_vals;
        e->live_keys = calloc((size_t)cap, sizeof *e->live_keys);
        e->live_vals = calloc((size_t)cap, sizeof *e->live_vals);
        if (!e->live_keys || !e->live_vals) {
            free(e->live_keys); free(e->live_vals);
            e->live_keys = ok; e->live_vals = ov;
            return -1;
        }
        e->live_cap = cap;
        e->live_n = 0;
        for (int i = 0; i < old_cap; i++)
            if (ov[i]) live_put_nogrow(e, ok[i], ov[i]);
        free(ok); free(ov);
    }
    live_put_nogrow(e, id, r);
    return 0;
}

static void live_del(Engine *e, uint64_t id) {
    int i = live_find(e, id);
    if (i < 0) return;
    int mask = e->live_cap - 1, hole = i;
    for (int j = (hole + 1) & mask; e->live_vals[j]; j = (j + 1) & mask) {
        int home = (int)(id_hash(e->live_keys[j]) & (uint64_t)mask);
        int between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!between) {
            e->live_keys[hole] = e->live_keys[j];
            e->live_vals[hole] = e->live_vals[j];
            hole = j;
        }
    }
    e->live_vals[hole] = NULL;
    e->live_n--;
}

/* ------------------------------------------------------------------ requests and sequences */

static void seq_free(Engine *e, Sequence *q) {
    if (!q) return;
    if (q->detok) e->cfg.text.close(q->detok);
    if (q->grammar_matcher) grammar_matcher_free(q->grammar_matcher);
    block_table_deinit(&q->bt);
    free(q->tokens);
    free(q->text);
    free(q->lp_pending);
    free(q);
}

static void request_free(Engine *e, Request *r) {
    if (!r) return;
    if (r->seqs)
        for (int i = 0; i < r->params.n; i++) seq_free(e, r->seqs[i]);
    free(r->seqs);
    if (r->grammar) grammar_release(r->grammar);
    sampling_params_deinit(&r->params);
    free(r->prompt);
    free(r->cache_salt);
    free(r->stop_ids);
    free(r->stop_lens);
    free(r);
}

static Sequence *seq_new(Engine *e, Request *r, int index) {
    Sequence *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->req = r;
    q->index = index;
    q->cap = r->prompt_len + 16;
    q->tokens = malloc((size_t)q->cap * sizeof *q->tokens);
    if (!q->tokens) { free(q); return NULL; }
    memcpy(q->tokens, r->prompt, (size_t)r->prompt_len * sizeof *q->tokens);
    q->num_tokens = r->prompt_len;
    q->stop_token = -1;
    q->logits_row = -1;
    q->pending_row = -1;
    block_table_init(&q->bt);
    uint64_t base = r->params.has_seed ? splitmix64(r->params.seed)
                                       : splitmix64(e->cfg.seed ^ splitmix64(r->arrival + 1));
    rng_seed(&q->rng, base + (uint64_t)index * 0x9e3779b97f4a7c15ull);
    if (e->cfg.text.open && r->params.detokenize) {
        q->detok = e->cfg.text.open(e->cfg.text.ctx, r->params.skip_special_tokens);
        if (!q->detok) { seq_free(e, q); return NULL; }
    }
    if (r->grammar) {
        /* The matcher follows the output tokens, which preemption-by-recompute keeps: it never
         * needs a reset + replay here. */
        if (!(q->grammar_matcher = grammar_matcher_new(r->grammar))) { seq_free(e, q); return NULL; }
        q->grammar_active = r->grammar_start_token < 0;
    }
    return q;
}

int engine_submit(Engine *e, const EngineRequest *in, char *err) {
    const CoreConfig *c = &e->cfg;
    if (!in->prompt || in->prompt_len <= 0) return pg_err(err, "request %llu: the prompt is empty", (unsigned long long)in->id);
    if (in->prompt_len > c->max_model_len)
        return pg_err(err, "The decoder prompt (length %d) is longer than the maximum model length of %d. "
                      "Make sure that `max_model_len` is no smaller than the number of text tokens.",
                      in->prompt_len, c->max_model_len);
    for (int i = 0; i < in->prompt_len; i++)
        if (in->prompt[i] < 0 || in->prompt[i] >= c->vocab_size)
            return pg_err(err, "Token id %d is out of vocabulary (vocab size %d)", in->prompt[i], c->vocab_size);
    if (sampling_params_validate(&in->params, c->vocab_size, c->max_logprobs, err) != 0) return -1;

    Request *r = calloc(1, sizeof *r);
    if (!r) return pg_err(err, "out of memory");
    r->id = in->id;
    r->prompt_len = in->prompt_len;
    r->priority = in->priority;
    r->grammar_start_token = in->grammar_start_token;
    r->prompt = malloc((size_t)in->prompt_len * sizeof *r->prompt);
    if (!r->prompt || sampling_params_copy(&r->params, &in->params) != 0) goto oom;
    memcpy(r->prompt, in->prompt, (size_t)in->prompt_len * sizeof *r->prompt);
    if (in->cache_salt && *in->cache_salt && !(r->cache_salt = strdup(in->cache_salt))) goto oom;
    const SamplingParams *p = &r->params;
    r->max_tokens = p->max_tokens > 0 ? p->max_tokens : c->max_model_len - in->prompt_len;
    r->stop_ids = malloc((size_t)(c->num_eos + p->num_stop_token_ids + 1) * sizeof *r->stop_ids);
    if (!r->stop_ids) goto oom;
    if (!p->ignore_eos)
        for (int i = 0; i < c->num_eos; i++) r->stop_ids[r->num_stop_ids++] = c->eos_ids[i];
    r->num_eos = r->num_stop_ids;
    for (int i = 0; i < p->num_stop_token_ids; i++) r->stop_ids[r->num_stop_ids++] = p->stop_token_ids[i];
    if (p->num_stop && !(r->stop_lens = malloc((size_t)p->num_stop * sizeof *r->stop_lens))) goto oom;
    for (int i = 0; i < p->num_stop; i++) {
        size_t l = r->stop_lens[i] = strlen(p->stop[i]);
        if (l > r->max_stop_len) r->max_stop_len = l;
    }
    r->seqs = calloc((size_t)p->n, sizeof *r->seqs);
    if (!r->seqs) goto oom;
    r->num_unfinished = p->n;
    r->t_arrival = time_now_s();
    r->grammar = in->grammar;   /* taken over only once the submit succeeds (below) */

    pthread_mutex_lock(&e->mu);
    if (__atomic_load_n(&e->failed, __ATOMIC_ACQUIRE)) {
        pthread_mutex_unlock(&e->mu);
        r->grammar = NULL;
        request_free(e, r);
        return pg_err(err, "the engine has failed and takes no new requests");
    }
    if (live_find(e, in->id) >= 0) {
        pthread_mutex_unlock(&e->mu);
        r->grammar = NULL;   /* failed: the caller keeps its reference */
        request_free(e, r);
        return pg_err(err, "request id %llu is already in use", (unsigned long long)in->id);
    }
    if (live_put(e, in->id, r) != 0) {
        pthread_mutex_unlock(&e->mu);
        r->grammar = NULL;
        request_free(e, r);
        return pg_err(err, "out of memory");
    }
    r->arrival = e->arrival_counter++;
    if (e->inbox_tail) e->inbox_tail->next = r; else e->inbox_head = r;
    e->inbox_tail = r;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
oom:
    request_free(e, r);
    return pg_err(err, "out of memory");
}

void engine_abort(Engine *e, uint64_t id) {
    AbortMsg *m = malloc(sizeof *m);
    if (!m) return;
    m->id = id;
    pthread_mutex_lock(&e->mu);
    if (live_find(e, id) < 0) {
        pthread_mutex_unlock(&e->mu);
        free(m);
        return;
    }
    m->next = e->aborts;
    e->aborts = m;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* ------------------------------------------------------------------ outputs */

static void push_output(Engine *e, RequestOutput *o) {
    if (e->pend_tail) e->pend_tail->next = o; else e->pend_head = o;
    e->pend_tail = o;
}

/* Longest suffix of the unsent text that could still begin a stop string. */
static size_t stop_holdback(const Sequence *q) {
    const SamplingParams *p = &q->req->params;
    size_t avail = q->text_len - q->text_sent, hb = 0;
    if (avail == 0) return 0;
    char last = q->text[q->text_len - 1];
    for (int i = 0; i < p->num_stop; i++) {
        const char *st = p->stop[i];
        size_t l = q->req->stop_lens[i];
        size_t k = l - 1 < avail ? l - 1 : avail;
        for (; k > hb; k--)   /* a k-byte candidate ends with st[k-1]: test that byte first */
            if (st[k - 1] == last && memcmp(q->text + q->text_len - k, st, k) == 0) { hb = k; break; }
    }
    return hb;
}

/* Emits what q has not sent yet (new tokens, text, logprobs) and its finish reason if any. */
static int emit_delta(Engine *e, Sequence *q, double now) {
    Request *r = q->req;
    int out_len = seq_output_len(q), ntok = out_len - q->tokens_sent;
    size_t hb = q->finish ? 0 : stop_holdback(q);
    size_t tlen = q->text_len - hb > q->text_sent ? q->text_len - hb - q->text_sent : 0;
    if (ntok == 0 && tlen == 0 && !q->finish) return 0;
    int nlp = r->params.logprobs >= 0 ? q->num_lp_pending : 0;
    /* one allocation: the node, then its token ids, logprobs and text */
    size_t off_tok = sizeof(RequestOutput), off_lp = off_tok + (size_t)ntok * sizeof(int32_t);
    off_lp = (off_lp + 7) & ~(size_t)7;
    size_t off_text = off_lp + (size_t)nlp * sizeof(LogprobEntry);
    char *mem = malloc(off_text + tlen + 1);
    if (!mem) return -1;
    RequestOutput *o = (RequestOutput *)mem;
    memset(o, 0, offsetof(RequestOutput, stop_reason));
    o->stop_reason[0] = 0;
    o->error[0] = 0;
    o->next = NULL;
    o->id = r->id;
    o->index = q->index;
    o->num_tokens = ntok;
    o->token_ids = (int32_t *)(mem + off_tok);
    o->text = mem + off_text;
    memcpy(o->token_ids, seq_output(q) + q->tokens_sent, (size_t)ntok * sizeof *o->token_ids);
    if (tlen) memcpy(o->text, q->text + q->text_sent, tlen);
    o->text[tlen] = 0;
    o->text_len = tlen;
    if (nlp > 0) {
        o->logprobs = (LogprobEntry *)(mem + off_lp);
        memcpy(o->logprobs, q->lp_pending, (size_t)nlp * sizeof *o->logprobs);
    } else {
        o->logprobs = NULL;
    }
    q->num_lp_pending = 0;
    q->tokens_sent = out_len;
    q->text_sent += tlen;
    o->finish = q->finish;
    if (q->stop_reason[0]) memcpy(o->stop_reason, q->stop_reason, sizeof o->stop_reason);
    o->stop_token = q->stop_token;
    o->prompt_tokens = r->prompt_len;
    o->completion_tokens = out_len;
    o->cached_tokens = q->num_cached;
    o->t_arrival = r->t_arrival;
    o->t_scheduled = q->t_scheduled;
    o->t_first_token = q->t_first_token;
    o->t_finished = q->finish ? now : 0;
    push_output(e, o);
    return 0;
}

/* An output for a completion that never got a sequence (n > 1, aborted before the fork). */
static void emit_bare_finish(Engine *e, Request *r, int index, FinishReason f, const char *msg, double now) {
    RequestOutput *o = calloc(1, sizeof *o + 8);
    if (!o) return;
    o->id = r->id;
    o->index = index;
    o->token_ids = (int32_t *)(o + 1);
    o->text = (char *)(o + 1) + 4;
    o->finish = f;
    o->stop_token = -1;
    o->prompt_tokens = r->prompt_len;
    o->t_arrival = r->t_arrival;
    o->t_finished = now;
    if (msg) snprintf(o->error, sizeof o->error, "%s", msg);
    push_output(e, o);
}

/* Token ids, text and logprobs live in the node's own allocation. */
void request_output_free(RequestOutput *o) { free(o); }

RequestOutput *engine_take_outputs(Engine *e) {
    pthread_mutex_lock(&e->out_mu);
    RequestOutput *o = e->out_head;
    e->out_head = e->out_tail = NULL;
    pthread_mutex_unlock(&e->out_mu);
    return o;
}

void engine_set_notify(Engine *e, void (*notify)(void *arg), void *arg) {
    pthread_mutex_lock(&e->out_mu);
    e->notify = notify;
    e->notify_arg = arg;
    pthread_mutex_unlock(&e->out_mu);
}

static void publish_outputs(Engine *e) {
    if (!e->pend_head) return;
    pthread_mutex_lock(&e->out_mu);
    if (e->out_tail) e->out_tail->next = e->pend_head; else e->out_head = e->pend_head;
    e->out_tail = e->pend_tail;
    void (*notify)(void *) = e->notify;
    void *arg = e->notify_arg;
    pthread_mutex_unlock(&e->out_mu);
    e->pend_head = e->pend_tail = NULL;
    if (notify) notify(arg);
}

/* ------------------------------------------------------------------ finishing */

static void finish_seq(Engine *e, Sequence *q, FinishReason f, double now) {
    if (q->status == SEQ_FINISHED) return;
    q->finish = f;
    if (q->detok && f != FINISH_ABORT && f != FINISH_ERROR && !q->stop_reason[0])
        e->cfg.text.flush(q->detok, &q->text, &q->text_len, &q->text_cap);
    emit_delta(e, q, now);
    kv_release(&e->pool, &q->bt);
    q->status = SEQ_FINISHED;
    q->req->num_unfinished--;
}

/* Finishes every completion of r (abort / error), including ones not forked yet. */
static void finish_request(Engine *e, Request *r, FinishReason f, const char *msg, double now) {
    for (int i = 0; i < r->params.n; i++) {
        Sequence *q = r->seqs[i];
        if (q) {
            if (q->status != SEQ_FINISHED) {
                finish_seq(e, q, f, now);
            }
        } else if (i > 0 && !r->forked) {
            emit_bare_finish(e, r, i, f, msg, now);
            r->num_unfinished--;
        }
    }
    if (msg) /* the error text rides on the last output of each index */
        for (RequestOutput *o = e->pend_head; o; o = o->next)
            if (o->id == r->id && o->finish == f && !o->error[0]) snprintf(o->error, sizeof o->error, "%s", msg);
}

/* ------------------------------------------------------------------ inbox */

static int add_active(Engine *e, Request *r) {
    if (e->num_active == e->cap_active) {
        int cap = e->cap_active ? e->cap_active * 2 : 64;
        Request **a = realloc(e->active, (size_t)cap * sizeof *a);
        if (!a) return -1;
        e->active = a;
        e->cap_active = cap;
    }
    e->active[e->num_active++] = r;
    return 0;
}

static void drain_inbox(Engine *e, double now) {
    pthread_mutex_lock(&e->mu);
    Request *in = e->inbox_head;
    AbortMsg *ab = e->aborts;
    e->inbox_head = e->inbox_tail = NULL;
    e->aborts = NULL;
    pthread_mutex_unlock(&e->mu);
    for (Request *r = in, *next; r; r = next) {
        next = r->next;
        r->next = NULL;
        Sequence *q = seq_new(e, r, 0);
        if (!q || add_active(e, r) != 0 || sched_add_waiting(&e->sched, q) != 0) {
            /* out of memory: fail just this request, loudly */
            if (q && e->num_active && e->active[e->num_active - 1] == r) e->num_active--;
            seq_free(e, q);
            r->seqs[0] = NULL;
            r->forked = 0;
            for (int i = 0; i < r->params.n; i++) emit_bare_finish(e, r, i, FINISH_ERROR, "out of memory", now);
            pthread_mutex_lock(&e->mu);
            live_del(e, r->id);
            pthread_mutex_unlock(&e->mu);
            request_free(e, r);
            continue;
        }
        r->seqs[0] = q;
    }
    for (AbortMsg *m = ab, *next; m; m = next) {
        next = m->next;
        pthread_mutex_lock(&e->mu);
        int i = live_find(e, m->id);
        Request *r = i >= 0 ? e->live_vals[i] : NULL;
        pthread_mutex_unlock(&e->mu);
        if (r && !r->aborted) {
            r->aborted = 1;
            finish_request(e, r, FINISH_ABORT, NULL, now);
        }
        free(m);
    }
}

/* ------------------------------------------------------------------ postprocess */

/* n > 1: siblings share the prompt's full blocks (all but the one holding the last prompt
 * token, whose logits each sibling computes itself) and start sampling independently. */
static void fork_siblings(Engine *e, Request *r, Sequence *parent) {
    int share = (r->prompt_len - 1) / e->cfg.block_size;
    if (share > parent->bt.num_blocks) share = parent->bt.num_blocks;
    r->forked = 1;
    for (int i = 1; i < r->params.n; i++) {
        Sequence *c = seq_new(e, r, i);
        if (!c || kv_fork(&e->pool, &c->bt, &parent->bt, share) != 0 || sched_add_running(&e->sched, c) != 0) {
            if (c) { kv_release(&e->pool, &c->bt); seq_free(e, c); }
            emit_bare_finish(e, r, i, FINISH_ERROR, "out of memory", time_now_s());
            r->num_unfinished--;
            continue;
        }
        c->num_computed = share * e->cfg.block_size;
        c->num_cached = parent->num_cached;
        c->ever_scheduled = 1;
        c->t_scheduled = parent->t_scheduled;
        r->seqs[i] = c;
    }
}

static int push_logprob(Sequence *q, const LogprobEntry *lp) {
    if (q->num_lp_pending == q->lp_cap) {
        int cap = q->lp_cap ? q->lp_cap * 2 : 4;
        LogprobEntry *a = realloc(q->lp_pending, (size_t)cap * sizeof *a);
        if (!a) return -1;
        q->lp_pending = a;
        q->lp_cap = cap;
    }
    q->lp_pending[q->num_lp_pending++] = *lp;
    return 0;
}

/* After q got token tok: EOS / stop ids, stop strings (searched across token boundaries in the
 * text so far), max_tokens, max_model_len. */
static void check_stop(Engine *e, Sequence *q, int32_t tok, double now) {
    Request *r = q->req;
    const SamplingParams *p = &r->params;
    int out_len = seq_output_len(q);
    int by_token = 0;
    if (out_len >= p->min_tokens)
        for (int i = 0; i < r->num_stop_ids; i++)
            if (tok == r->stop_ids[i]) { by_token = 1; break; }
    if (q->detok && (!by_token || p->include_stop_str_in_output)) {
        size_t old = q->text_len;
        e->cfg.text.push(q->detok, tok, &q->text, &q->text_len, &q->text_cap);
        if (!by_token && p->num_stop && out_len >= p->min_tokens && q->text_len > old) {
            size_t from = old > r->max_stop_len - 1 ? old - (r->max_stop_len - 1) : 0;
            if (from < q->text_sent) from = q->text_sent;
            size_t best = (size_t)-1;
            int which = -1;
            for (int i = 0; i < p->num_stop; i++) {
                const char *hit = memmem(q->text + from, q->text_len - from, p->stop[i], r->stop_lens[i]);
                if (hit && (size_t)(hit - q->text) < best) { best = (size_t)(hit - q->text); which = i; }
            }
            if (which >= 0) {
                snprintf(q->stop_reason, sizeof q->stop_reason, "%s", p->stop[which]);
                q->text_len = best + (p->include_stop_str_in_output ? r->stop_lens[which] : 0);
                q->text[q->text_len] = 0;
                finish_seq(e, q, FINISH_STOP, now);
                return;
            }
        }
    }
    if (by_token) {
        q->stop_token = tok;
        finish_seq(e, q, FINISH_STOP, now);
    } else if (out_len >= r->max_tokens || q->num_tokens >= e->cfg.max_model_len) {
        finish_seq(e, q, FINISH_LENGTH, now);
    }
}

/* One SampleRow per logits row of the step (sample/sample_batch.h), in logits-row order; the
 * grammar masks are filled here, before the forward, and each random row takes its one draw
 * from the sequence's Rng. Returns 0 or -1 (out of memory). */
static int build_sample_batch(Engine *e) {
    Scheduler *s = &e->sched;
    sample_batch_reset(&e->sb);
    for (int i = 0; i < s->num_scheduled; i++) {
        Sequence *q = s->scheduled[i];
        Request *r = q->req;
        if (q->logits_row < 0) continue;
        int row;
        if (q->status != SEQ_RUNNING) {
            row = sample_batch_add_greedy(&e->sb);
        } else {
            SampleInput in = {
                .params = &r->params, .prompt = r->prompt, .prompt_len = r->prompt_len,
                .output = seq_output(q), .output_len = seq_output_len(q),
                .stop_ids = r->stop_ids, .num_stop_ids = r->num_stop_ids, .rng = &q->rng,
            };
            if (q->grammar_matcher && q->grammar_active) {
                memset(e->mask, 0, (size_t)e->mask_words * sizeof *e->mask);
                grammar_matcher_fill_mask(q->grammar_matcher, e->mask);
                in.allow_mask = e->mask;
            }
            row = sample_batch_add(&e->sb, &in);
        }
        if (row != q->logits_row) return -1;
    }
    return 0;
}

/* The step's forward and sampling, synchronously: on the device when the runner can, else host
 * logits and the host sampler. Fills st->tokens[R] (and st->lps for rows that want logprobs). */
static int forward_and_sample(Engine *e, StepRec *st, char *err) {
    const BatchMeta *m = &e->batch.meta;
    const int R = m->num_logits_rows, V = e->cfg.vocab_size;
    if (e->cfg.runner.forward_sample)
        return e->cfg.runner.forward_sample(e->cfg.runner.ctx, m, &e->sb, st->tokens, st->lps, err);
    size_t need = (size_t)R * (size_t)V;
    if (need > e->logits_cap) {
        float *l = realloc(e->logits, need * sizeof *l);
        if (!l) return pg_err(err, "engine: out of memory for logits");
        e->logits = l;
        e->logits_cap = need;
    }
    if (e->cfg.runner.forward(e->cfg.runner.ctx, m, e->logits, err) != 0) return -1;
    for (int r = 0; r < R; r++)
        st->tokens[r] = sampler_sample_row(&e->sampler, e->logits + (size_t)r * V, &e->sb, r, &st->lps[r]);
    return 0;
}

static int is_eos(const Engine *e, int32_t tok) {
    for (int i = 0; i < e->cfg.num_eos; i++)
        if (e->cfg.eos_ids[i] == tok) return 1;
    return 0;
}

/* Async scheduling may keep a step in flight only when no sampling row of its sequences depends
 * on the output tokens (the host does not know the newest one yet) and no host state follows
 * each token before the next step (grammar matcher, n > 1 forks). Conservative on purpose:
 * logit_bias (static) and logprobs are fine; penalties, min_tokens, grammars and n > 1 are not. */
static int core_async_eligible(const Request *r) {
    const SamplingParams *p = &r->params;
    return !r->grammar && p->n == 1 && p->repetition_penalty == 1.0f && p->presence_penalty == 0.0f &&
           p->frequency_penalty == 0.0f && p->min_tokens <= 0 && p->prompt_logprobs < 0;
}

/* Records the step just built (e->sched.scheduled, e->batch, e->sb) in st and advances every
 * scheduled sequence as if the step had run: num_computed += num_scheduled, and a sequence that
 * gets a logits row now has a pending token (its id comes back when st is postprocessed).
 * Returns 0 or -1 (out of memory). */
static int step_record(Engine *e, StepRec *st) {
    const Scheduler *s = &e->sched;
    int n = s->num_scheduled, R = e->batch.meta.num_logits_rows;
    if (n > st->cap) {
        int c = n < 64 ? 64 : n * 2;
        Sequence **a = realloc(st->seqs, (size_t)c * sizeof *a);
        if (a) st->seqs = a;
        int32_t *r = realloc(st->rows, (size_t)c * sizeof *r);
        if (r) st->rows = r;
        int32_t *nc = realloc(st->nc_after, (size_t)c * sizeof *nc);
        if (nc) st->nc_after = nc;
        uint8_t *sm = realloc(st->sampled, (size_t)c);
        if (sm) st->sampled = sm;
        if (!a || !r || !nc || !sm) return -1;
        st->cap = c;
    }
    if (R > st->tokens_cap) {
        int32_t *t = realloc(st->tokens, (size_t)R * sizeof *t);
        if (t) st->tokens = t;
        LogprobEntry *l = realloc(st->lps, (size_t)R * sizeof *l);
        if (l) st->lps = l;
        if (!t || !l) return -1;
        st->tokens_cap = R;
    }
    st->n = n;
    st->eligible = 1;
    for (int i = 0; i < n; i++) {
        Sequence *q = s->scheduled[i];
        st->seqs[i] = q;
        st->rows[i] = q->logits_row;
        st->sampled[i] = q->logits_row >= 0 && q->status == SEQ_RUNNING;
        q->num_computed += q->num_scheduled;
        st->nc_after[i] = q->num_computed;
        /* the blocks this step fills with known tokens are usable by the next schedule, as in
         * the synchronous engine (stream order: a later step that hits them runs after this one) */
        kv_cache_full_blocks(&e->pool, &q->bt, q->tokens, q->num_computed < q->num_tokens ? q->num_computed : q->num_tokens,
                             q->req->cache_salt);
        if (st->sampled[i]) { q->num_pending++; q->pending_row = q->logits_row; }
        q->req->inflight_refs++;
        if (!core_async_eligible(q->req)) st->eligible = 0;
    }
    return 0;
}

/* Drops st's hold on its requests without postprocessing it (failed step). */
static void step_forget(StepRec *st) {
    for (int i = 0; i < st->n; i++) {
        st->seqs[i]->req->inflight_refs--;
        if (st->sampled[i]) st->seqs[i]->num_pending--;
    }
    st->n = 0;
}

/* A step's tokens are known (st->tokens): registers the blocks it filled in the prefix cache,
 * appends each sampled token, checks stops, emits deltas. A sequence that finished (stop,
 * length, abort) after st was launched computed one token too many in st: it is dropped here,
 * its blocks were released at its finish. */
static void postprocess(Engine *e, StepRec *st, double now) {
    for (int i = 0; i < st->n; i++) {
        Sequence *q = st->seqs[i];
        Request *r = q->req;
        r->inflight_refs--;
        if (q->status == SEQ_FINISHED) continue;
        /* what the synchronous engine registers after this step; only known tokens (all of
         * them are: the step's inputs were collected before it), and nothing when the sequence
         * was preempted since (num_computed 0, no blocks) */
        int nc = st->nc_after[i];
        if (nc > q->num_computed) nc = q->num_computed;
        if (nc > q->num_tokens) nc = q->num_tokens;
        kv_cache_full_blocks(&e->pool, &q->bt, q->tokens, nc, r->cache_salt);
        if (!q->ever_scheduled) { q->ever_scheduled = 1; q->t_scheduled = now; }
        if (!st->sampled[i]) continue;
        q->num_pending--;   /* this step's token; a newer launched step may hold another */
        int32_t tok = st->tokens[st->rows[i]];
        const LogprobEntry *lp = &st->lps[st->rows[i]];
        if (tok < 0 || seq_append(q, tok) != 0 || (r->params.logprobs >= 0 && push_logprob(q, lp) != 0)) {
            snprintf(q->stop_reason, sizeof q->stop_reason, "%s", "");
            finish_seq(e, q, FINISH_ERROR, now);
            continue;
        }
        if (q->grammar_matcher) {
            if (q->grammar_active && grammar_matcher_accept(q->grammar_matcher, tok) != 0) {
                snprintf(q->stop_reason, sizeof q->stop_reason, "%s", "");
                finish_seq(e, q, FINISH_ERROR, now);
                continue;
            }
            if (!q->grammar_active && tok == r->grammar_start_token) q->grammar_active = 1;
        }
        e->generation_tokens_total++;
        if (seq_output_len(q) == 1) {
            q->t_first_token = now;
            if (q->index == 0) e->prompt_tokens_total += (uint64_t)r->prompt_len;
            if (r->params.n > 1 && q->index == 0 && !r->forked) fork_siblings(e, r, q);
        }
        check_stop(e, q, tok, now);
        /* A grammar that has accepted EOS (only possible under ignore_eos: otherwise EOS stopped
         * the sequence above) allows no further token: the completion is over. */
        if (q->status != SEQ_FINISHED && q->grammar_matcher && q->grammar_active && is_eos(e, tok)) {
            q->stop_token = tok;
            finish_seq(e, q, FINISH_STOP, now);
        }
        if (q->status != SEQ_FINISHED) {
            emit_delta(e, q, now);
            /* async: a newer launched step decodes the token just appended; its block is now
             * complete with known tokens (a finished sequence registers nothing past its end) */
            int known = q->num_computed < q->num_tokens ? q->num_computed : q->num_tokens;
            if (known > nc) kv_cache_full_blocks(&e->pool, &q->bt, q->tokens, known, r->cache_salt);
        }
    }
    st->n = 0;
}

/* Frees requests whose completions are all finished; drops finished sequences from the lists. */
static void reap(Engine *e) {
    sched_remove_finished(&e->sched);
    int j = 0;
    for (int i = 0; i < e->num_active; i++) {
        Request *r = e->active[i];
        /* a finished request still in a launched step is freed once that step is collected */
        if (r->num_unfinished > 0 || r->inflight_refs > 0) { e->active[j++] = r; continue; }
        pthread_mutex_lock(&e->mu);
        live_del(e, r->id);
        pthread_mutex_unlock(&e->mu);
        request_free(e, r);
    }
    e->num_active = j;
}

static void update_stats(Engine *e) {
    EngineStats st = {0};
    st.num_running = e->sched.num_running;
    st.num_waiting = e->sched.num_waiting;
    st.num_blocks = e->pool.num_blocks;
    st.num_free_blocks = e->pool.num_free;
    st.block_size = e->pool.block_size;
    st.kv_usage = (double)(e->pool.num_blocks - e->pool.num_free) / e->pool.num_blocks;
    st.prefix_queries = e->pool.queries;
    st.prefix_hits = e->pool.hits;
    st.preemptions = e->sched.preemptions;
    st.prompt_tokens_total = e->prompt_tokens_total;
    st.generation_tokens_total = e->generation_tokens_total;
    st.steps = e->steps;
    st.failed = e->failed;
    st.max_model_len = e->cfg.max_model_len;
    st.max_concurrency = (double)e->pool.num_blocks * e->pool.block_size / e->cfg.max_model_len;
    st.schedule_s = e->phase_s[0];
    st.batch_s = e->phase_s[1];
    st.forward_s = e->phase_s[2];
    st.postprocess_s = e->phase_s[3];
    st.forward_prefill_s = e->forward_prefill_s;
    st.prefill_steps = e->prefill_steps;
    pthread_mutex_lock(&e->stats_mu);
    e->stats = st;
    pthread_mutex_unlock(&e->stats_mu);
}

/* A failed forward leaves the KV cache in an unknown state: fail every request. */
static void fail_engine(Engine *e, const char *err, double now) {
    LOG_E("engine: step failed: %s", err);
    __atomic_store_n(&e->failed, 1, __ATOMIC_RELEASE);
    step_forget(&e->steps_rec[0]);
    step_forget(&e->steps_rec[1]);
    e->inflight = 0;
    for (int i = 0; i < e->num_active; i++) finish_request(e, e->active[i], FINISH_ERROR, err, now);
}

/* Waits for the step st (the oldest launched one) and postprocesses it. 0 or -1 (failed). */
static int collect_and_postprocess(Engine *e, StepRec *st, double *t_fwd_end) {
    char err[PG_ERR_LEN] = "";
    if (e->cfg.runner.collect(e->cfg.runner.ctx, st->tokens, st->lps, err) != 0) {
        fail_engine(e, err, time_now_s());
        return -1;
    }
    *t_fwd_end = time_now_s();
    postprocess(e, st, *t_fwd_end);
    return 0;
}

/* One step. Synchronous: schedule, build, forward + sample, postprocess. With async scheduling
 * (CoreConfig.async_scheduling and runner.launch/collect): schedule and launch this step, then
 * collect and postprocess the previous one (the device runs this step meanwhile); this step stays
 * in flight when every sequence in it is eligible (core_async_eligible), else it is collected
 * right away, so an ineligible sequence never has a pending token. */
int engine_step(Engine *e) {
    if (e->failed) return -1;
    const int async = e->cfg.async_scheduling && e->cfg.runner.launch && e->cfg.runner.collect;
    double t0 = time_now_s();
    drain_inbox(e, t0);
    int ntok = sched_schedule(&e->sched);
    double t1 = time_now_s(), t2 = t1, t3 = t1;
    StepRec *st = &e->steps_rec[e->cur], *prev = e->inflight ? &e->steps_rec[e->cur ^ 1] : NULL;
    int launched = 0;
    if (ntok > 0) {
        char err[PG_ERR_LEN] = "";
        int rc = 0;
        if (batch_build(&e->batch, e->sched.scheduled, e->sched.num_scheduled, e->cfg.block_size) != 0 ||
            build_sample_batch(e) != 0 || step_record(e, st) != 0)
            rc = pg_err(err, "engine: out of memory building the batch");
        t2 = time_now_s();
        if (rc == 0) rc = async ? e->cfg.runner.launch(e->cfg.runner.ctx, &e->batch.meta, &e->sb, err)
                                : forward_and_sample(e, st, err);
        t3 = time_now_s();
        if (rc != 0) {
            fail_engine(e, err, t3);
        } else if (!async) {
            postprocess(e, st, t3);
        } else {
            launched = 1;
        }
        e->steps++;
    }
    if (!e->failed && prev) {   /* the previous step, while the device runs this one */
        e->inflight = 0;
        collect_and_postprocess(e, prev, &t3);
    }
    if (!e->failed && launched) {
        if (st->eligible) {     /* stays in flight: the next step's record is the other one */
            e->cur ^= 1;
            e->inflight = 1;
        } else {                /* drain: this step runs synchronously */
            collect_and_postprocess(e, st, &t3);
        }
    }
    reap(e);
    double t4 = time_now_s();
    e->last_times = (EngineStepTimes){t1 - t0, t2 - t1, t3 - t2, t4 - t3, e->sched.num_scheduled,
                                      e->sched.num_scheduled_tokens};
    if (ntok > 0) {
        e->phase_s[0] += t1 - t0;
        e->phase_s[1] += t2 - t1;
        e->phase_s[2] += t3 - t2;
        e->phase_s[3] += t4 - t3;
        /* a decode schedules one token per sequence; more tokens than sequences = prompt tokens */
        if (e->sched.num_scheduled_tokens > e->sched.num_scheduled) {
            e->forward_prefill_s += t3 - t2;
            e->prefill_steps++;
        }
    }
    publish_outputs(e);
    update_stats(e);
    return e->failed ? -1 : e->num_active;
}

int engine_has_unfinished(Engine *e) {
    pthread_mutex_lock(&e->mu);
    int pending = e->inbox_head != NULL || e->aborts != NULL;
    pthread_mutex_unlock(&e->mu);
    return pending || e->num_active > 0;
}

void engine_get_stats(Engine *e, EngineStats *s) {
    pthread_mutex_lock(&e->stats_mu);
    *s = e->stats;
    pthread_mutex_unlock(&e->stats_mu);
}

void engine_last_step_times(const Engine *e, EngineStepTimes *t) { *t = e->last_times; }

int engine_set_async_scheduling(Engine *e, int on) {
    if (e->inflight) return -1;
    e->cfg.async_scheduling = on != 0;
    return 0;
}

/* ------------------------------------------------------------------ thread */

/* vLLM-style periodic log line (engine thread, at most every 10 s while there is work). */
static void log_stats_maybe(Engine *e, double *last_t, uint64_t *last_prompt, uint64_t *last_gen) {
    double now = time_now_s();
    if (now - *last_t < 10.0) return;
    EngineStats st;
    engine_get_stats(e, &st);
    double dt = now - *last_t;
    if (st.prompt_tokens_total != *last_prompt || st.generation_tokens_total != *last_gen || st.num_running || st.num_waiting)
        LOG_I("engine: prompt %.1f tok/s, generation %.1f tok/s, running %d, waiting %d, KV usage %.1f%%, "
              "prefix cache hit rate %.1f%%, preemptions %llu",
              (double)(st.prompt_tokens_total - *last_prompt) / dt, (double)(st.generation_tokens_total - *last_gen) / dt,
              st.num_running, st.num_waiting, 100.0 * st.kv_usage,
              st.prefix_queries ? 100.0 * (double)st.prefix_hits / (double)st.prefix_queries : 0.0,
              (unsigned long long)st.preemptions);
    *last_t = now;
    *last_prompt = st.prompt_tokens_total;
    *last_gen = st.generation_tokens_total;
}

static void *engine_thread(void *arg) {
    Engine *e = arg;
    double last_t = time_now_s();
    uint64_t last_prompt = 0, last_gen = 0;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stop_flag && !e->inbox_head && !e->aborts && e->num_active == 0)
            pthread_cond_wait(&e->cv, &e->mu);
        int stop = e->stop_flag;
        pthread_mutex_unlock(&e->mu);
        if (stop) break;
        int rc = engine_step(e);
        log_stats_maybe(e, &last_t, &last_prompt, &last_gen);
        if (rc < 0) {
            /* failed: keep answering new requests with errors until stopped */
            pthread_mutex_lock(&e->mu);
            Request *in = e->inbox_head;
            e->inbox_head = e->inbox_tail = NULL;
            for (AbortMsg *m = e->aborts, *n; m; m = n) { n = m->next; free(m); }
            e->aborts = NULL;
            for (Request *r = in; r; r = r->next) live_del(e, r->id);
            while (!e->stop_flag && !e->inbox_head) pthread_cond_wait(&e->cv, &e->mu);
            pthread_mutex_unlock(&e->mu);
            double now = time_now_s();
            for (Request *r = in, *n; r; r = n) {
                n = r->next;
                for (int i = 0; i < r->params.n; i++) emit_bare_finish(e, r, i, FINISH_ERROR, "engine failed", now);
                request_free(e, r);
            }
            publish_outputs(e);
        }
    }
    return NULL;
}

int engine_start(Engine *e, char *err) {
    if (e->thread_started) return pg_err(err, "engine already started");
    e->stop_flag = 0;
    if (pthread_create(&e->thread, NULL, engine_thread, e) != 0) return pg_err(err, "cannot start the engine thread");
    e->thread_started = 1;
    return 0;
}

void engine_stop(Engine *e) {
    if (!e->thread_started) return;
    pthread_mutex_lock(&e->mu);
    e->stop_flag = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    e->thread_started = 0;
}

/* ------------------------------------------------------------------ lifetime */

/* Grammar masks cover the larger of the model's and the tokenizer's vocabularies. */
static uint32_t *grammar_mask_alloc(Engine *e, char *err) {
    int v = e->cfg.vocab_size;
    if (e->cfg.tok && tok_vocab_size(e->cfg.tok) > v) v = tok_vocab_size(e->cfg.tok);
    e->mask_words = (v + 31) / 32;
    uint32_t *m = calloc((size_t)e->mask_words, sizeof *m);
    if (!m) pg_err(err, "engine: out of memory for the grammar mask");
    return m;
}

Engine *engine_new_core(const CoreConfig *cfg, char *err) {
    if (cfg->vocab_size <= 0) { pg_err(err, "engine: vocab size must be positive"); return NULL; }
    if (cfg->max_model_len <= 0) { pg_err(err, "--max-model-len must be positive (got %d)", cfg->max_model_len); return NULL; }
    if ((long long)cfg->num_blocks * cfg->block_size < cfg->max_model_len) {
        pg_err(err, "the KV cache holds %lld tokens (%d blocks of %d), less than max_model_len %d: "
               "raise --kv-cache-memory or lower --max-model-len",
               (long long)cfg->num_blocks * cfg->block_size, cfg->num_blocks, cfg->block_size, cfg->max_model_len);
        return NULL;
    }
    Engine *e = calloc(1, sizeof *e);
    if (!e) { pg_err(err, "out of memory"); return NULL; }
    e->cfg = *cfg;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_mutex_init(&e->out_mu, NULL);
    pthread_mutex_init(&e->stats_mu, NULL);
    batch_init(&e->batch);
    if (kv_pool_init(&e->pool, cfg->num_blocks, cfg->block_size, cfg->enable_prefix_caching, err) != 0 ||
        sched_init(&e->sched, &e->pool, cfg->max_num_seqs, cfg->max_num_batched_tokens, err) != 0 ||
        sampler_init(&e->sampler, cfg->vocab_size, err) != 0 || sample_batch_init(&e->sb, cfg->vocab_size, err) != 0 ||
        !(e->mask = grammar_mask_alloc(e, err))) {
        e->cfg.owner_free = NULL;   /* the caller keeps its owner on failure */
        engine_free(e);
        return NULL;
    }
    e->sched.max_model_len = cfg->max_model_len;
    update_stats(e);
    return e;
}

void engine_free(Engine *e) {
    if (!e) return;
    engine_stop(e);
    for (Request *r = e->inbox_head, *n; r; r = n) { n = r->next; request_free(e, r); }
    for (AbortMsg *m = e->aborts, *n; m; m = n) { n = m->next; free(m); }
    for (int i = 0; i < e->num_active; i++) request_free(e, e->active[i]);
    for (RequestOutput *o = e->out_head, *n; o; o = n) { n = o->next; request_output_free(o); }
    for (RequestOutput *o = e->pend_head, *n; o; o = n) { n = o->next; request_output_free(o); }
    free(e->active);
    free(e->live_keys);
    free(e->live_vals);
    free(e->logits);
    for (int i = 0; i < 2; i++) {
        StepRec *st = &e->steps_rec[i];
        free(st->seqs); free(st->rows); free(st->nc_after); free(st->sampled); free(st->tokens); free(st->lps);
    }
    free(e->mask);
    sample_batch_deinit(&e->sb);
    batch_deinit(&e->batch);
    sampler_deinit(&e->sampler);
    sched_deinit(&e->sched);
    kv_pool_deinit(&e->pool);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->out_mu);
    pthread_mutex_destroy(&e->stats_mu);
    if (e->cfg.owner_free) e->cfg.owner_free(e->cfg.owner);
    free(e);
}

const Tokenizer *engine_tokenizer(const Engine *e) { return e->cfg.tok; }
const ModelConfig *engine_model_config(const Engine *e) { return e->cfg.model_cfg; }
const GenerationConfig *engine_generation_config(const Engine *e) { return e->cfg.gen_cfg; }

GrammarCompiler *engine_grammar_compiler_new(const Engine *e, char *err) {
    const Tokenizer *tok = e->cfg.tok;
    if (!tok) { pg_err(err, "the model has no tokenizer"); return NULL; }
    if (e->cfg.num_eos > 0) return grammar_compiler_new(tok, e->cfg.eos_ids, e->cfg.num_eos, err);
    const int32_t eos = tok_eos_id(tok); /* no EOS in the configs: the tokenizer's, if any */
    return grammar_compiler_new(tok, &eos, eos >= 0, err);
}
int engine_max_model_len(const Engine *e) { return e->cfg.max_model_len; }

void engine_config_default(EngineConfig *c) {
    memset(c, 0, sizeof *c);
    c->device = "cpu";
    c->load_format = LOAD_FORMAT_AUTO;
    c->block_size = 16;
    c->enable_prefix_caching = 1;
    c->max_num_seqs = 256;
    c->max_num_batched_tokens = 0; /* by device, at engine_new */
    c->gpu_memory_utilization = 0.9f;
    c->kv_cache_dtype = DT_COUNT;
    c->tensor_parallel_size = 1;
}

const char *finish_reason_name(FinishReason r) {
    switch (r) {
    case FINISH_STOP: return "stop";
    case FINISH_LENGTH: return "length";
    case FINISH_ABORT: return "abort";
    case FINISH_ERROR: return "error";
    default: return NULL;
    }
}
