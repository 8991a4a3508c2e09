/* cpu_sample.c: the CPU backend's `sample` op: the host sampler (sample/sampler.c) over the
 * logits the last `logits(b, NULL, ...)` call kept, rows spread over the thread pool.
 *
 * Giving the CPU backend the same op as the CUDA one means the engine takes one sampling path
 * (forward_sample) on every device, so the CPU tests and CI exercise it: n > 1, logprobs,
 * grammar masks, seeds and preemption all go through SampleBatch rows here exactly as they do on
 * the GPU. Each worker thread has its own Sampler (scratch sized for the vocabulary). */
#include <stdlib.h>

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
