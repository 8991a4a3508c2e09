/* fake_engine.h: the fake model and fake text shared by test_engine.c and test_engine_async.c.
 *
 * The fake model keeps a simulated paged KV cache (token and position per slot, written at the
 * batch's slot_mapping) and derives each logits row from a hash of the whole sequence as READ
 * BACK FROM ITS BLOCK TABLE: any wrong slot, stale block or bad prefix-cache hit changes the
 * output. fake_store_tokens writes a step's tokens and checks the BatchMeta invariants;
 * fake_row_hash reads one logits row's sequence back. Each counts violations in *bad.
 * The fake text decoder appends one piece per token id (the test file supplies fd_push). */
#ifndef PAGELLM_TESTS_FAKE_ENGINE_H
#define PAGELLM_TESTS_FAKE_ENGINE_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "util/err.h"
#include "util/rng.h"

#define FV 200         /* fake vocab: ids < 64 are sampled, prompts use 100..163 */
#define FSAMPLED 64
#define FEOS 0

typedef struct { int32_t tok, pos; } FakeSlot;

/* Writes ids[t] at b's slot_mapping and checks positions / seq_lens / query_start. */
static inline int fake_store_tokens(FakeSlot *kv, int num_slots, const BatchMeta *b,
                                    const int32_t *ids, int *bad, char *err) {
    for (int t = 0; t < b->num_tokens; t++) {
        int s = b->slot_mapping[t];
        if (s < 0 || s >= num_slots) { (*bad)++; return pg_err(err, "slot %d out of range", s); }
        kv[s] = (FakeSlot){ids[t], b->positions[t]};
    }
    for (int i = 0; i < b->num_seqs; i++) {
        int q0 = b->query_start[i], q1 = b->query_start[i + 1];
        if (q1 <= q0 || b->positions[q1 - 1] != b->seq_lens[i] - 1) (*bad)++;
        for (int t = q0 + 1; t < q1; t++) if (b->positions[t] != b->positions[t - 1] + 1) (*bad)++;
    }
    return 0;
}

/* The hash of logits row r's sequence read back through its block table; *len its length and
 * *prompt_like how many of its tokens are prompt ids (>= 100). */
static inline uint64_t fake_row_hash(const FakeSlot *kv, int block_size, const BatchMeta *b, int r,
                                     int *bad, int *len, int *prompt_like) {
    int row = b->logits_rows[r], i = 0;
    while (!(b->query_start[i] <= row && row < b->query_start[i + 1])) i++;
    const int32_t *bt = b->block_tables + (size_t)i * b->max_blocks_per_seq;
    *len = b->positions[row] + 1;
    *prompt_like = 0;
    uint64_t h = 0x1234;
    for (int p = 0; p < *len; p++) {
        FakeSlot sl = kv[bt[p / block_size] * block_size + p % block_size];
        if (sl.pos != p) (*bad)++;
        h = splitmix64(h ^ (uint64_t)sl.tok);
        if (sl.tok >= 100) (*prompt_like)++;
    }
    return h;
}

/* Row logits from a sequence hash: ids < FSAMPLED uniform in [-3, 3), the rest -inf, EOS lowered
 * by eos_penalty (rare but possible). */
static inline void fake_row_logits(float *l, uint64_t h, float eos_penalty) {
    for (int v = 0; v < FV; v++)
        l[v] = v < FSAMPLED ? u64_to_unit_f32(splitmix64(h + (uint64_t)v)) * 6.0f - 3.0f : -INFINITY;
    l[FEOS] -= eos_penalty;
}

static void *fd_open(void *ctx, int skip) { (void)ctx; (void)skip; return malloc(1); }
static size_t fd_append(char **out, size_t *len, size_t *cap, const char *s) {
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) { *cap = (*len + n + 1) * 2; *out = realloc(*out, *cap); }
    memcpy(*out + *len, s, n + 1);
    *len += n;
    return n;
}
static size_t fd_flush(void *st, char **out, size_t *len, size_t *cap) { (void)st; return fd_append(out, len, cap, ""); }
static void fd_close(void *st) { free(st); }

/* Random prompts use ids 100..163, which the fake model never samples; three families share
 * prefixes (prefix caching). max_tokens in [1, max_new]. */
typedef struct { int32_t p[128]; int n; int max_tokens; } Prompt;

static void make_prompts(Prompt *ps, int count, uint64_t seed, int max_new) {
    Rng r; rng_seed(&r, seed);
    int32_t shared[3][64];
    for (int f = 0; f < 3; f++) for (int i = 0; i < 64; i++) shared[f][i] = 100 + (int32_t)(rng_next(&r) % 64);
    for (int k = 0; k < count; k++) {
        Prompt *p = &ps[k];
        p->n = 1 + (int)(rng_next(&r) % 60);
        int fam = (int)(rng_next(&r) % 4), pre = fam < 3 ? (int)(rng_next(&r) % 40) : 0;
        for (int i = 0; i < p->n; i++)
            p->p[i] = i < pre ? shared[fam][i] : 100 + (int32_t)(rng_next(&r) % 64);
        p->max_tokens = 1 + (int)(rng_next(&r) % max_new);
    }
}
#endif
