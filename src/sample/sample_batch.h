/* sample_batch.h: one step's sampling work for every logits row, in a form both the host
 * sampler (sample/sampler.c) and a device sampler (backend op `sample`, backend/cuda/sample.cu)
 * consume with the same semantics.
 *
 * The engine turns each row's SamplingParams, token history, grammar mask and Rng into a
 * SampleRow: scalar parameters, a list of LogitEdits (the only tokens whose logits the penalties,
 * the logit_bias and min_tokens change: one edit per distinct token, so edits of a row never
 * collide and a GPU applies them in parallel), an optional allow-bitmask, and the uniform draw u
 * taken from the sequence's own Rng (so a seeded request draws the same numbers on any device and
 * in any batch). What happens to row r of the logits, in order (vLLM V1's order):
 *
 *   raw logprobs (when num_logprobs >= 0): log-softmax of the untouched logits; the sampled
 *     token's logprob and rank (1 + tokens with a strictly larger raw logit), and the
 *     num_logprobs best (logit descending, id ascending on ties);
 *   edits: l = kill ? -inf : l + bias; if rep: l = l > 0 ? l / repetition_penalty
 *     : l * repetition_penalty; l -= frequency_penalty * out_count + (out_count > 0 ?
 *     presence_penalty : 0);
 *   mask: tokens whose bit is 0 become -inf;
 *   greedy (temperature < 1e-5): the largest l, lowest id on ties;
 *   otherwise s = l * inv_temperature, m = max s, and the kept set is the intersection of
 *     min_p (s >= m + log_min_p), top_k (the top_k best by s descending, id ascending) and then
 *     top_p (the smallest prefix of that order whose mass exp(s - m) reaches top_p times the
 *     mass kept so far); the token is the inverse CDF at u * kept mass, walking the kept ids in
 *     ascending id order.
 * Every -inf row yields token -1. Float sums may differ between devices in the last bits, so a
 * host and a device agree on the token except where u falls within rounding of a boundary. */
#ifndef PAGELLM_SAMPLE_SAMPLE_BATCH_H
#define PAGELLM_SAMPLE_SAMPLE_BATCH_H
#include <stdint.h>

#include "engine/engine.h"   /* LogprobEntry */
#include "sample/params.h"
#include "util/rng.h"

typedef struct LogitEdit {
    int32_t token;           /* in [0, V); distinct within a row */
    int32_t out_count;       /* occurrences in the output so far (frequency/presence) */
    float bias;              /* logit_bias */
    uint8_t rep;             /* in prompt or output: repetition_penalty applies */
    uint8_t kill;            /* min_tokens not reached and token is EOS / a stop id */
    uint8_t pad[2];
} LogitEdit;

typedef struct SampleRow {
    float temperature;       /* < 1e-5: greedy */
    float inv_temperature;   /* 1 / temperature (computed once on the host: devices agree) */
    float top_p;             /* (0, 1]; 1 = off */
    float log_min_p;         /* logf(min_p); -inf = off */
    int32_t top_k;           /* 0 = off */
    float repetition_penalty, presence_penalty, frequency_penalty;
    float u;                 /* [0, 1): the draw (random sampling only) */
    int32_t num_logprobs;    /* -1 = none; 0..PG_MAX_TOP_LOGPROBS */
    int32_t edit_begin, edit_end;  /* this row's edits: edits[edit_begin, edit_end) */
    int32_t mask_index;      /* row of masks[], or -1 for none */
} SampleRow;

typedef struct SampleBatch {
    int vocab_size;
    int mask_words;          /* ceil(V / 32) */
    int num_rows;
    SampleRow *rows;         /* [num_rows] row r samples logits row r */
    int num_edits;
    LogitEdit *edits;        /* [num_edits] */
    int num_masks;
    uint32_t *masks;         /* [num_masks, mask_words]: bit t of a row = token t allowed */
    /* private */
    int cap_rows, cap_edits, cap_masks;
    uint32_t *stamp;         /* [V] generation marks for distinct-token sets */
    int32_t *slot;           /* [V] edit index of a token in the row being built */
    uint32_t stamp_gen;
} SampleBatch;

/* What one row is made from (the engine's view of a sequence). */
typedef struct SampleInput {
    const SamplingParams *params;
    const int32_t *prompt; int prompt_len;     /* for repetition_penalty */
    const int32_t *output; int output_len;     /* generated so far (penalties, min_tokens) */
    const int32_t *stop_ids; int num_stop_ids; /* EOS + stop_token_ids: killed while output_len < min_tokens */
    const uint32_t *allow_mask;                /* [mask_words] grammar mask, or NULL */
    Rng *rng;                                  /* the sequence's generator (one draw if temperature > 0) */
} SampleInput;

int sample_batch_init(SampleBatch *sb, int vocab_size, char *err);
void sample_batch_deinit(SampleBatch *sb);
/* Empties the batch (keeps the memory). */
void sample_batch_reset(SampleBatch *sb);
/* Appends a row built from `in` (draws u from in->rng when temperature > 0; copies the mask).
 * Returns the row index, or -1 on out of memory. */
int sample_batch_add(SampleBatch *sb, const SampleInput *in);
/* Appends a greedy row with nothing else (for logits rows nobody will read). */
int sample_batch_add_greedy(SampleBatch *sb);

#endif
