/* cpu_sample.c: the CPU backend's `sample` op: the host sampler (sample/sampler.c) over the
 * logits the last `logits(b, NULL, ...)` call kept, rows spread over the thread pool.
 *
 * Giving the CPU backend the same op as the CUDA one means the engine takes one sampling path
 * (forward_sample) on every device, so the CPU tests and CI exercise it: n > 1, logprobs,
 * grammar masks, seeds and preemption all go through SampleBatch rows here exactly as they do on
 * the GPU. Each worker thread has its own Sampler (scratch sized for the vocabulary). */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "sample/sampler.h"
#include "util/err.h"

typedef struct SampleTask {
    CpuCtx *c;
    const SampleBatch *sb;
    int32_t *tokens;
    LogprobEntry *lps;
} SampleTask;

static void sample_rows(void *arg, int ith, int nth) {
    SampleTask *t = arg;
    const int V = t->c->logits_V;
    for (int r = ith; r < t->sb->num_rows; r += nth)
        t->tokens[r] = sampler_sample_row(&t->c->samplers[ith], t->c->logits_keep + (size_t)r * V, t->sb, r,
                                          t->lps ? &t->lps[r] : NULL);
}

int cpu_sample(Backend *b, const SampleBatch *sb, int32_t *tokens, LogprobEntry *lps, char *err) {
    CpuCtx *c = cpu_ctx(b);
    const int R = sb->num_rows;
    if (R <= 0) return 0;
    if (R != c->logits_R || sb->vocab_size != c->logits_V)
        return pg_err(err, "cpu sample: %d rows of vocab %d, but the last logits were %d x %d", R, sb->vocab_size,
                      c->logits_R, c->logits_V);
    if (!c->samplers || c->samplers_V != sb->vocab_size) {
        cpu_samplers_free(c);
        c->samplers = calloc((size_t)c->nthreads, sizeof *c->samplers);
        if (!c->samplers) return pg_err(err, "cpu sample: out of memory");
        for (int i = 0; i < c->nthreads; i++)
            if (sampler_init(&c->samplers[i], sb->vocab_size, err) != 0) {
                cpu_samplers_free(c);
                return -1;
            }
        c->samplers_V = sb->vocab_size;
    }
    SampleTask t = {c, sb, tokens, lps};
    /* at most one thread per row: a row's scratch is one thread's */
    pool_run_n(c->pool, sample_rows, &t, R < c->nthreads ? R : c->nthreads);
    return 0;
}

void cpu_samplers_free(CpuCtx *c) {
    if (c->samplers)
        for (int i = 0; i < c->nthreads; i++) sampler_deinit(&c->samplers[i]);
    free(c->samplers);
    c->samplers = NULL;
    c->samplers_V = 0;
}

/* Samples at launch (the CPU has nothing to overlap with) into the next of two slots; collect
 * hands the oldest back. Keeps the backend.h contract so the core's async path runs on the CPU
 * exactly as on a GPU, tokens read back from the previous step's slot included. */
int cpu_sample_launch(Backend *b, const SampleBatch *sb, char *err) {
    CpuCtx *c = cpu_ctx(b);
    if (c->async_inflight >= 2) return pg_err(err, "cpu sample_launch: two steps already launched");
    int slot = (c->async_head + c->async_inflight) % 2, R = sb->num_rows;
    if (R > c->async_out[slot].cap) {
        int32_t *t = realloc(c->async_out[slot].tokens, (size_t)R * sizeof *t);
        if (t) c->async_out[slot].tokens = t;
        LogprobEntry *l = realloc(c->async_out[slot].lps, (size_t)R * sizeof *l);
        if (l) c->async_out[slot].lps = l;
        if (!t || !l) return pg_err(err, "cpu sample_launch: out of memory");
        c->async_out[slot].cap = R;
    }
    if (cpu_sample(b, sb, c->async_out[slot].tokens, c->async_out[slot].lps, err) != 0) return -1;
    c->async_out[slot].R = R;
    c->async_last = slot;
    c->async_inflight++;
    return 0;
}

int cpu_sample_collect(Backend *b, int32_t *tokens, LogprobEntry *lps, char *err) {
    CpuCtx *c = cpu_ctx(b);
    if (c->async_inflight == 0) return pg_err(err, "cpu sample_collect: nothing launched");
    int slot = c->async_head, R = c->async_out[slot].R;
    if (R > 0) {
        memcpy(tokens, c->async_out[slot].tokens, (size_t)R * sizeof *tokens);
        if (lps) memcpy(lps, c->async_out[slot].lps, (size_t)R * sizeof *lps);
    }
    c->async_head = (slot + 1) % 2;
    c->async_inflight--;
    return 0;
}

int32_t cpu_sample_pending_token(const CpuCtx *c, int row) {
    if (c->async_last < 0 || row < 0 || row >= c->async_out[c->async_last].R) return -2;
    return c->async_out[c->async_last].tokens[row];
}
