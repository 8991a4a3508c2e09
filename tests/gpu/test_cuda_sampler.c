/* test_cuda_sampler.c: the CUDA backend's device sampler (op `sample`) against the host sampler
 * (sample/sampler.c, the reference; its own semantics are checked in tests/unit/test_sampler.c).
 *
 * Logits come from the backend's own `logits` op (x[R, D] @ W[V, D]^T with random bf16 x and
 * W, V = Qwen3's 151,936), read back once so that both samplers see the same float32 rows. Row
 * sharpness varies (std of the logits from ~0.2 to ~14), so both the shared-memory fast path
 * and the bisection path run. Every row gets one of 13 parameter sets: greedy, plain (T 1.0, and
 * T 0.7 with logprobs: the one-pass path reading the raw row), Qwen3's
 * defaults (T 0.6, top_k 20, top_p 0.95), top_p, top_k 1/50/100/2000, min_p, penalties with
 * logit_bias, grammar masks, min_tokens, logprobs 0/5/20. Both samplers get the same SampleBatch
 * (the same u per row). Passes when greedy rows agree exactly, random rows agree on at least
 * 99% (the rest only where u falls within float rounding of a CDF boundary), and logprobs agree
 * (logprob within 2e-3, rank and the top ids equal). Then times the op at 256 rows.
 *
 * Usage: test_cuda_sampler [--rows N] [--rounds N]   (exit 0 = pass) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "gpu_util.h"
#include "sample/sample_batch.h"
#include "sample/sampler.h"
#include "util/err.h"
#include "util/timeutil.h"

#define V 151936
#define D 64
#define NSETS 13

static void params_for(int set, SamplingParams *p, LogitBias *bias) {
    sampling_params_default(p);
    switch (set) {
    case 0: p->temperature = 0; break;
    case 1: p->temperature = 0; p->logprobs = 5; break;
    case 2: p->temperature = 1.0f; break;
    case 3: p->temperature = 0.6f; p->top_k = 20; p->top_p = 0.95f; break;
    case 4: p->temperature = 0.7f; p->top_p = 0.9f; break;
    case 5: p->temperature = 1.0f; p->top_k = 1; break;
    case 6: p->temperature = 1.3f; p->top_k = 100; p->min_p = 0.05f; break;
    case 7: p->temperature = 0.8f; p->top_k = 2000; p->top_p = 0.5f; break;
    case 8: p->temperature = 1.0f; p->min_p = 0.1f; break;
    case 9:
        p->temperature = 0.9f; p->repetition_penalty = 1.3f; p->presence_penalty = 0.5f;
        p->frequency_penalty = 0.3f; p->logprobs = 20;
        bias[0] = (LogitBias){7, 5.0f}; bias[1] = (LogitBias){100000, -3.0f};
        p->logit_bias = bias; p->num_logit_bias = 2;
        break;
    case 10: p->temperature = 0; p->min_tokens = 4; break;
    case 11: p->temperature = 1.0f; p->top_k = 50; p->logprobs = 0; break;
    case 12: p->temperature = 0.7f; p->logprobs = 3; break;
    }
}

int main(int argc, char **argv) {
    int R = 192, rounds = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rows")) R = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
    }
    char err[PG_ERR_LEN] = "";
    BackendOptions bo = {0};
    bo.kv_dtype = DT_COUNT;
    setenv("PAGELLM_CUDA_SAMPLE_PLAIN", "1", 1); /* the one-pass plain path, whatever the default */
    Backend *b = backend_new("cuda", &bo, err);
    if (!b) { fprintf(stderr, "backend: %s\n", err); return 1; }
    if (!b->ops->sample) { fprintf(stderr, "FAIL: the cuda backend has no sample op\n"); return 1; }
    Sampler host;
    SampleBatch sb;
    if (sampler_init(&host, V, err) || sample_batch_init(&sb, V, err)) { fprintf(stderr, "%s\n", err); return 1; }

    Rng rng;
    rng_seed(&rng, 1234);
    float *w = xmalloc((size_t)V * D * sizeof *w);
    for (size_t i = 0; i < (size_t)V * D; i++) w[i] = 2.0f * rng_unit(&rng) - 1.0f;
    Tensor wt = {.dtype = DT_BF16, .ndim = 2, .shape = {V, D}};
    wt.data = dev_upload(b, w, (size_t)V * D, DT_BF16);
    free(w);
    float *x = xmalloc((size_t)R * D * sizeof *x);
    float *logits = xmalloc((size_t)R * V * sizeof *logits);
    float *row = xmalloc((size_t)V * sizeof *row);
    int32_t *tok = xmalloc((size_t)R * sizeof *tok);
    LogprobEntry *lps = xmalloc((size_t)R * sizeof *lps);
    uint32_t *mask = xmalloc((size_t)sb.mask_words * sizeof *mask);
    int32_t hist[64];
    static const float scales[4] = {0.05f, 0.3f, 1.0f, 3.0f};

    long greedy_n = 0, greedy_bad = 0, rand_n = 0, rand_bad = 0, lp_n = 0, lp_bad = 0;
    for (int round = 0; round < rounds; round++) {
        for (int r = 0; r < R; r++) {
            float s = scales[(r / NSETS + round) % 4];
            for (int d = 0; d < D; d++) x[(size_t)r * D + d] = s * (2.0f * rng_unit(&rng) - 1.0f);
        }
        void *dx = dev_upload(b, x, (size_t)R * D, b->act_dtype);
        b->ops->logits(b, logits, dx, &wt, R, D, V);   /* read back; stays on the device too */
        sample_batch_reset(&sb);
        SamplingParams ps[NSETS];
        LogitBias bias[NSETS][2];
        for (int r = 0; r < R; r++) {
            int set = (r + round) % NSETS;
            params_for(set, &ps[set], bias[set]);
            for (int i = 0; i < 64; i++) hist[i] = (int32_t)(rng_next(&rng) % V);
            SampleInput in = {.params = &ps[set], .prompt = hist, .prompt_len = 40, .output = hist + 40,
                              .output_len = 24, .rng = &rng};
            int32_t stops[2] = {hist[0], 151645};
            if (set == 10) { in.stop_ids = stops; in.num_stop_ids = 2; in.output_len = 2; }
            if (set == 10 || set == 11) {
                /* ~1% of tokens allowed, including the row's own argmax half the time */
                for (int i = 0; i < sb.mask_words; i++)
                    mask[i] = (rng_next(&rng) % 3 == 0) ? (uint32_t)(rng_next(&rng) & rng_next(&rng) & rng_next(&rng) & rng_next(&rng)) : 0u;
                in.allow_mask = mask;
            }
            if (sample_batch_add(&sb, &in) != r) { fprintf(stderr, "sample_batch_add failed\n"); return 1; }
        }
        memset(tok, 0xff, (size_t)R * sizeof *tok);
        memset(lps, 0, (size_t)R * sizeof *lps);
        if (b->ops->sample(b, &sb, tok, lps, err) != 0) { fprintf(stderr, "FAIL: sample: %s\n", err); return 1; }
        for (int r = 0; r < R; r++) {
            const SampleRow *sr = &sb.rows[r];
            memcpy(row, logits + (size_t)r * V, (size_t)V * sizeof *row);
            LogprobEntry hl;
            int32_t ht = sampler_sample_row(&host, row, &sb, r, &hl);
            int greedy = sr->temperature < 1e-5f;
            if (greedy) { greedy_n++; greedy_bad += ht != tok[r]; }
            else { rand_n++; rand_bad += ht != tok[r]; }
            if (ht != tok[r] && (greedy || rand_bad <= 5))
                printf("  mismatch round %d row %d set %d: host %d gpu %d\n", round, r, (r + round) % NSETS, ht, tok[r]);
            if (sr->num_logprobs >= 0 && ht == tok[r] && ht >= 0) {
                lp_n++;
                const LogprobEntry *g = &lps[r];
                int bad = fabsf(g->logprob - hl.logprob) > 2e-3f || g->rank != hl.rank || g->num_top != hl.num_top;
                for (int i = 0; !bad && i < hl.num_top; i++)
                    bad = g->top[i].token != hl.top[i].token || fabsf(g->top[i].logprob - hl.top[i].logprob) > 2e-3f;
                if (bad && lp_bad < 5)
                    printf("  logprobs differ row %d: host (%d %.5f rank %d top %d) gpu (%d %.5f rank %d top %d)\n", r,
                           hl.token, hl.logprob, hl.rank, hl.num_top, g->token, g->logprob, g->rank, g->num_top);
                lp_bad += bad;
            }
        }
        b->ops->free(b, dx);
    }
    printf("greedy rows %ld: %ld differ\nrandom rows %ld: %ld differ (%.2f%%)\nlogprob rows %ld: %ld differ\n",
           greedy_n, greedy_bad, rand_n, rand_bad, 100.0 * rand_bad / (rand_n ? rand_n : 1), lp_n, lp_bad);
    int fail = greedy_bad > 0 || rand_bad * 100 > rand_n || lp_bad > 0;

    /* timing: 256 rows, greedy and Qwen3's default sampling, vs the host sampler */
    int TR = 256;
    float *tx = xmalloc((size_t)TR * D * sizeof *tx);
    for (size_t i = 0; i < (size_t)TR * D; i++) tx[i] = 1.0f * (2.0f * rng_unit(&rng) - 1.0f);
    void *dtx = dev_upload(b, tx, (size_t)TR * D, b->act_dtype);
    int32_t *ttok = xmalloc((size_t)TR * sizeof *ttok);
    LogprobEntry *tlps = xmalloc((size_t)TR * sizeof *tlps);
    float *tl = xmalloc((size_t)TR * V * sizeof *tl);
    for (int mode = 0; mode < 3; mode++) {
        SamplingParams p;
        LogitBias bb[2];
        params_for(mode == 0 ? 0 : mode == 1 ? 3 : 2, &p, bb);
        sample_batch_reset(&sb);
        for (int r = 0; r < TR; r++) {
            SampleInput in = {.params = &p, .rng = &rng};
            sample_batch_add(&sb, &in);
        }
        b->ops->logits(b, tl, dtx, &wt, TR, D, V);
        double best = 1e9;
        for (int it = 0; it < 20; it++) {
            b->ops->logits(b, NULL, dtx, &wt, TR, D, V);
            if (b->ops->sync) b->ops->sync(b);
            double t0 = time_now_s();
            b->ops->sample(b, &sb, ttok, tlps, err);
            double dt = time_now_s() - t0;
            if (dt < best) best = dt;
        }
        double t0 = time_now_s();
        for (int r = 0; r < TR; r++) sampler_sample_row(&host, tl + (size_t)r * V, &sb, r, NULL);
        double th = time_now_s() - t0;
        printf("timing %s, %d rows: device sample op %.3f ms (best of 20, incl. upload + copy back); host sampler %.1f ms\n",
               mode == 0 ? "greedy" : mode == 1 ? "T0.6 top_k 20 top_p 0.95" : "T1.0 plain", TR, best * 1e3, th * 1e3);
    }
    printf("%s\n", fail ? "FAIL" : "PASS");
    return fail;
}
