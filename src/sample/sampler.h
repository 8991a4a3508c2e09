/* sampler.h: turns one row of logits into the next token on the host (vLLM's Sampler).
 *
 * The semantics (order of penalties, masks, filters and the draw) are those of
 * sample/sample_batch.h, shared with the device sampler of the CUDA backend: a SampleRow says
 * everything about a row, including the uniform draw u taken from the sequence's own Rng (so a
 * seeded request gives the same tokens whatever else is in the batch, and a preempted request
 * continues its stream). sampler_sample() is the one-row convenience form used by tests.
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
    SampleBatch one;        /* sampler_sample()'s one-row batch, made on its first call */
} Sampler;

int sampler_init(Sampler *s, int vocab_size, char *err);
void sampler_deinit(Sampler *s);

/* Samples row `row` of sb from logits[V] (modified in place). Fills *lp when lp != NULL and
 * the row's num_logprobs >= 0. Returns the token id, or -1 if every token was masked out. */
int32_t sampler_sample_row(Sampler *s, float *logits, const SampleBatch *sb, int row, LogprobEntry *lp);
/* The same for one SampleInput (draws u from in->rng when temperature > 0). */
int32_t sampler_sample(Sampler *s, float *logits, const SampleInput *in, LogprobEntry *lp);

#endif
