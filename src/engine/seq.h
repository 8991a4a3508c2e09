/* seq.h: a request and its sequences, as the engine thread sees them.
 *
 * A Request is what a client submitted (prompt, SamplingParams, salt, grammar); it owns deep
 * copies of everything. It has n Sequences (one per completion): sequence 0 is created at
 * submit time; with n > 1 the others are forked from it once its prompt is computed, sharing
 * the prompt's full KV blocks. A Sequence holds prompt + output tokens, its block table, its own
 * Rng, its incremental text state and what has not been sent to the client yet.
 *
 * Requests are created by the submitting thread (engine_submit) and from then on touched only
 * by the engine thread. */
#ifndef PAGELLM_ENGINE_SEQ_H
#define PAGELLM_ENGINE_SEQ_H
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/kvcache.h"
#include "sample/params.h"
#include "util/rng.h"

typedef enum { SEQ_WAITING = 0, SEQ_RUNNING, SEQ_FINISHED } SeqStatus;

typedef struct Sequence Sequence;

typedef struct Request {
    uint64_t id;
    SamplingParams params;
    int32_t *prompt;            /* [prompt_len] */
    int prompt_len;
    char *cache_salt;           /* NULL or owned copy */
    int priority;
    uint64_t arrival;           /* submit order (FCFS tie-break) */
    Grammar *grammar;           /* owned reference or NULL */
    int32_t grammar_start_token;
    int max_tokens;             /* resolved: params.max_tokens or max_model_len - prompt_len */
    int32_t *stop_ids;          /* [num_stop_ids] EOS (unless ignore_eos) + stop_token_ids */
    int num_stop_ids;
    int num_eos;                /* stop_ids[0..num_eos) are EOS ids */
    size_t max_stop_len;        /* longest stop string, bytes */
    size_t *stop_lens;          /* [params.num_stop] */
    Sequence **seqs;            /* [params.n]; seqs[i] NULL until forked */
    int num_unfinished;         /* completions not yet finished (forked or not) */
    int forked;                 /* 1 once the n-1 siblings exist */
    int aborted;
    int inflight_refs;          /* async scheduling: launched, uncollected steps that include one
                                   of its sequences (the request is not freed while > 0) */
    double t_arrival;
    struct Request *next;       /* inbox link */
} Request;

struct Sequence {
    Request *req;
    int index;                  /* which completion (0..n-1) */
    int32_t *tokens;            /* [num_tokens] prompt then output */
    int num_tokens, cap;
    int num_computed;           /* tokens whose K/V are in the cache */
    int num_cached;             /* prompt tokens found in the prefix cache at first admission */
    int ever_scheduled;
    BlockTable bt;
    SeqStatus status;
    uint64_t admit_order;       /* when it (last) entered the running list */
    Rng rng;
    /* this step */
    int num_scheduled;          /* tokens scheduled this step (0 = not scheduled) */
    int logits_row;             /* row of this step's logits, or -1 */
    /* async scheduling: a token sampled by a launched, uncollected step (its id is not known on
     * the host yet). It counts toward the length the scheduler plans for (num_tokens +
     * num_pending) and is fed to the next step from the device (BatchMeta.token_src_row =
     * pending_row, its logits row in that step); it is appended when that step is collected. */
    int num_pending;            /* 0 or 1 at scheduling (2 between a launch and the collect before it) */
    int pending_row;
    /* output state */
    void *detok;                /* TextDecoder state, or NULL when there is no text */
    char *text; size_t text_len, text_cap;   /* all output text so far (after stop truncation) */
    size_t text_sent;           /* bytes of text already sent */
    int tokens_sent;            /* output tokens already sent */
    LogprobEntry *lp_pending;   /* [num_lp_pending] logprobs of unsent tokens */
    int num_lp_pending, lp_cap;
    FinishReason finish;
    char stop_reason[256];
    int32_t stop_token;
    double t_scheduled, t_first_token;
    void *grammar_matcher;      /* GrammarMatcher* when the request has a grammar */
    int grammar_active;         /* 1 once the mask applies (after grammar_start_token) */
};

static inline int seq_output_len(const Sequence *s) { return s->num_tokens - s->req->prompt_len; }
static inline const int32_t *seq_output(const Sequence *s) { return s->tokens + s->req->prompt_len; }

/* Appends a token (grows the buffer). Returns 0 or -1 on OOM. */
int seq_append(Sequence *s, int32_t tok);

#endif
