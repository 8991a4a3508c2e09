/* sched.c: token budget, running-first scheduling, chunked prefill, preemption (see sched.h). */
#include "engine/sched.h"

#include <stdlib.h>
#include <string.h>

#include "util/err.h"

static int grow(Sequence ***arr, int *cap, int need) {
    if (need <= *cap) return 0;
    int c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    Sequence **a = realloc(*arr, (size_t)c * sizeof *a);
    if (!a) return -1;
    *arr = a;
    *cap = c;
    return 0;
}

int sched_init(Scheduler *s, BlockPool *pool, int max_num_seqs, int max_num_batched_tokens, char *err) {
    memset(s, 0, sizeof *s);
    if (max_num_seqs < 1) return pg_err(err, "--max-num-seqs must be at least 1 (got %d)", max_num_seqs);
    if (max_num_batched_tokens < 1)
        return pg_err(err, "--max-num-batched-tokens must be at least 1 (got %d)", max_num_batched_tokens);
    s->pool = pool;
    s->max_num_seqs = max_num_seqs;
    s->max_num_batched_tokens = max_num_batched_tokens;
    if (grow(&s->running, &s->cap_running, max_num_seqs) || grow(&s->scheduled, &s->cap_scheduled, max_num_seqs)) {
        sched_deinit(s);
        return pg_err(err, "scheduler: out of memory");
    }
    return 0;
}

void sched_deinit(Scheduler *s) {
    free(s->running);
    free(s->waiting);
    free(s->scheduled);
    memset(s, 0, sizeof *s);
}

/* Waiting order: lower priority value first, then earlier arrival, then completion index. */
static int waits_before(const Sequence *a, const Sequence *b) {
    if (a->req->priority != b->req->priority) return a->req->priority < b->req->priority;
    if (a->req->arrival != b->req->arrival) return a->req->arrival < b->req->arrival;
    return a->index < b->index;
}

int sched_add_waiting(Scheduler *s, Sequence *q) {
    if (grow(&s->waiting, &s->cap_waiting, s->num_waiting + 1)) return -1;
    int i = s->num_waiting;
    while (i > 0 && waits_before(q, s->waiting[i - 1])) {
        s->waiting[i] = s->waiting[i - 1];
        i--;
    }
    s->waiting[i] = q;
    s->num_waiting++;
    q->status = SEQ_WAITING;
    return 0;
}

int sched_add_running(Scheduler *s, Sequence *q) {
    if (grow(&s->running, &s->cap_running, s->num_running + 1)) return -1;
    q->status = SEQ_RUNNING;
    q->admit_order = ++s->admit_counter;
    s->running[s->num_running++] = q;
    return 0;
}

void sched_remove_finished(Scheduler *s) {
    int j = 0;
    for (int i = 0; i < s->num_running; i++)
        if (s->running[i]->status != SEQ_FINISHED) s->running[j++] = s->running[i];
    s->num_running = j;
    j = 0;
    for (int i = 0; i < s->num_waiting; i++)
        if (s->waiting[i]->status != SEQ_FINISHED) s->waiting[j++] = s->waiting[i];
    s->num_waiting = j;
}

/* Victim: the running sequence served last, i.e. the largest (priority, admission order). */
static Sequence *pick_victim(Scheduler *s) {
    Sequence *v = NULL;
    for (int i = 0; i < s->num_running; i++) {
        Sequence *q = s->running[i];
        if (q->status != SEQ_RUNNING) continue;
        if (!v || q->req->priority > v->req->priority ||
            (q->req->priority == v->req->priority && q->admit_order > v->admit_order))
            v = q;
    }
    return v;
}

int sched_schedule(Scheduler *s) {
    int budget = s->max_num_batched_tokens, preempted = 0;
    s->num_scheduled = 0;
    s->num_scheduled_tokens = 0;
    /* room for every running sequence to be preempted, so that none is ever dropped */
    if (grow(&s->waiting, &s->cap_waiting, s->num_waiting + s->num_running)) return 0;
    for (int i = 0; i < s->num_running; i++) s->running[i]->num_scheduled = 0;

    /* 1. running sequences, in admission order. n > 1 forks can put more than max_num_seqs in
     * the running list; a step never carries more than max_num_seqs (the model's scratch). */
    int planned = 0;
    for (int i = 0; i < s->num_running && budget > 0 && planned < s->max_num_seqs; i++) {
        Sequence *q = s->running[i];
        if (q->status != SEQ_RUNNING) continue;
        if (q->num_pending && (seq_output_len(q) + q->num_pending >= q->req->max_tokens ||
                               (s->max_model_len > 0 && q->num_tokens + q->num_pending >= s->max_model_len)))
            continue;   /* its pending token is its last: never compute past it */
        int n = q->num_tokens + q->num_pending - q->num_computed;
        if (n > budget) n = budget;
        if (n <= 0) continue;
        while (kv_ensure(s->pool, &q->bt, q->num_computed + n) != 0) {
            Sequence *v = pick_victim(s);
            budget += v->num_scheduled;   /* it may have been planned earlier in this step */
            if (v->num_scheduled) planned--;
            v->num_scheduled = 0;
            kv_release(s->pool, &v->bt);
            v->num_computed = 0;
            v->status = SEQ_WAITING;
            s->preemptions++;
            preempted = 1;
            if (v == q) break;
        }
        if (q->status != SEQ_RUNNING) continue;
        q->num_scheduled = n;
        budget -= n;
        planned++;
    }
    if (preempted) {   /* preempted sequences leave the running list, back to the waiting queue */
        int j = 0;
        for (int i = 0; i < s->num_running; i++) {
            Sequence *q = s->running[i];
            if (q->status == SEQ_WAITING) sched_add_waiting(s, q);   /* cannot fail: reserved above */
            else s->running[j++] = q;
        }
        s->num_running = j;
    }

    /* 2. waiting sequences, if nothing had to be preempted */
    while (!preempted && s->num_waiting > 0 && budget > 0 && s->num_running < s->max_num_seqs) {
        Sequence *q = s->waiting[0];
        if (q->num_pending) break;   /* preempted with a pending token: admit once it is collected */
        uint64_t q0 = s->pool->queries, h0 = s->pool->hits;
        if (q->bt.num_blocks == 0) {
            q->num_computed = kv_match_prefix(s->pool, &q->bt, q->tokens, q->num_tokens, q->req->cache_salt);
        }
        int n = q->num_tokens - q->num_computed;
        if (n > budget) n = budget;
        if (kv_ensure(s->pool, &q->bt, q->num_computed + n) != 0) {
            kv_release(s->pool, &q->bt);         /* give the hits back; retry at a later step */
            q->num_computed = 0;
            s->pool->queries = q0;
            s->pool->hits = h0;
            break;
        }
        if (!q->ever_scheduled) q->num_cached = q->num_computed;
        /* Register the full blocks this step will compute right away, so that a request admitted
         * later in this same step shares them (a burst with one system prompt computes it once).
         * Safe: the forward stores every token's K/V before any attention reads it (per layer),
         * and no preemption can follow in this step (phase 2 runs only if none happened). */
        kv_cache_full_blocks(s->pool, &q->bt, q->tokens, q->num_computed + n, q->req->cache_salt);
        memmove(s->waiting, s->waiting + 1, (size_t)(s->num_waiting - 1) * sizeof *s->waiting);
        s->num_waiting--;
        if (sched_add_running(s, q) != 0) {     /* OOM: leave it waiting */
            kv_release(s->pool, &q->bt);
            q->num_computed = 0;
            sched_add_waiting(s, q);
            break;
        }
        q->num_scheduled = n;
        budget -= n;
    }

    /* 3. the batch, in running order */
    if (grow(&s->scheduled, &s->cap_scheduled, s->num_running)) return 0;
    for (int i = 0; i < s->num_running; i++) {
        Sequence *q = s->running[i];
        if (q->num_scheduled > 0) s->scheduled[s->num_scheduled++] = q;
    }
    s->num_scheduled_tokens = s->max_num_batched_tokens - budget;
    return s->num_scheduled_tokens;
}
