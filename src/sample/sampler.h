/* sampler.h: turns one row of logits into the next token (vLLM's Sampler, on the host).
 *
 * Order of operations, as in vLLM V1: raw logprobs are taken first (logprobs_mode
 * "raw_logprobs", vLLM's default: log-softmax of the model's logits before any penalty, bias,
 * mask or temperature), then min_tokens suppression of EOS/stop ids, logit_bias, repetition
 * penalty (prompt + output tokens), frequency and presence penalties (output tokens), the
 * grammar mask; then temperature 0 takes the argmax (lowest id on ties), otherwise logits are
 * divided by the temperature, filtered by min_p, top_k and top_p, and one token is drawn with
 * exactly one draw from the sequence's own Rng (so a seeded request gives the same tokens
 * whatever else is in the batch, and a preempted request continues its stream).
 *
 * A Sampler holds scratch buffers sized for the vocabulary; one per engine, engine thread only. */
#ifndef PAGELLM_SAMPLE_SAMPLER_H
#define PAGELLM_SAMPLE_SAMPLER_H
#include <stdint.h>

#include "engine/engine.h"   /* LogprobEntry */
#include "sample/params.h"
#include "sample/sample_batch.h"
#include "util/rng.h"


typedef struct SampleCand { float logit; int32_t id; } SampleCand;

typedef struct Sampler {
    int vocab_size;
    float *raw;             /* [V] copy of the raw logits when logprobs are wanted */
    float *probs;           /* [V] unnormalized probabilities (random sampling) */
    SampleCand *cand;       /* [V] candidates for top-k / top-p */
    uint32_t *stamp;        /* [V] generation marks for "seen" sets (penalties) */
    uint32_t stamp_gen;
} Sampler;

int sampler_init(Sampler *s, int vocab_size, char *err);
void sampler_deinit(Sampler *s);

/* Samples one token from logits[V] (modified in place). Fills *lp when lp != NULL and
 * params->logprobs >= 0. Returns the token id, or -1 if every token was masked out. */
int32_t sampler_sample(Sampler *s, float *logits, const SampleInput *in, LogprobEntry *lp);

#endif
