/* sched.h: the token-budget scheduler (in the style of vLLM's V1 scheduler).
 *
 * Each step gets a budget of max_num_batched_tokens new tokens. Running sequences are served
 * first, in admission order: a decode costs one token, an unfinished (chunked) prefill costs
 * the rest of its known tokens or what is left of the budget. When the block pool cannot give
 * a running sequence the blocks it needs, the running sequence with the largest
 * (priority, admission order) - the most recently admitted one when priorities are equal - is
 * preempted: its blocks are released (kept in the prefix cache LRU), its tokens are kept, and
 * it goes back to the waiting queue to be recomputed; it is never dropped. Then, if nothing was
 * preempted this step, waiting sequences are admitted in (priority, arrival) order while budget,
 * max_num_seqs and blocks allow; a newly admitted sequence first takes its cached prefix from
 * the prefix cache, and registers the full blocks it will compute this step at once, so that
 * requests admitted in the same step with the same prefix compute it only once (this relies on
 * the forward storing every token's K/V before attention reads the cache, layer by layer).
 *
 * Engine thread only. The scheduler does not own the sequences; the engine does. */
#ifndef PAGELLM_ENGINE_SCHED_H
#define PAGELLM_ENGINE_SCHED_H
#include "engine/kvcache.h"
#include "engine/seq.h"

typedef struct Scheduler {
    BlockPool *pool;                 /* not owned */
    int max_num_seqs;
    int max_num_batched_tokens;
    int max_model_len;               /* 0 = none; set by the core (async: see sched_schedule) */
    Sequence **running; int num_running, cap_running;   /* admission order */
    Sequence **waiting; int num_waiting, cap_waiting;   /* (priority, arrival, index) order */
    Sequence **scheduled; int num_scheduled, cap_scheduled; /* this step, batch order */
    int num_scheduled_tokens;        /* this step */
    uint64_t admit_counter;
    uint64_t preemptions;            /* total */
} Scheduler;

int sched_init(Scheduler *s, BlockPool *pool, int max_num_seqs, int max_num_batched_tokens, char *err);
void sched_deinit(Scheduler *s);

/* Queues a sequence to be admitted (new request). Returns 0 or -1 on OOM. */
int sched_add_waiting(Scheduler *s, Sequence *q);
/* Puts a sequence that already holds its blocks straight into the running list (n > 1 forks). */
int sched_add_running(Scheduler *s, Sequence *q);
/* Drops every SEQ_FINISHED sequence from the running and waiting lists (the caller released
 * their blocks). */
void sched_remove_finished(Scheduler *s);

/* Plans one step: sets q->num_scheduled on each scheduled sequence and fills s->scheduled.
 * A running sequence's length is num_tokens + num_pending (async scheduling: its pending token
 * is decoded from the device); one whose pending token will end it for length (max_tokens or
 * max_model_len reached) is not scheduled: it finishes when that token is collected.
 * Returns the number of scheduled tokens (0 = nothing to do). */
int sched_schedule(Scheduler *s);

#endif
