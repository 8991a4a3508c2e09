/* batch.h: turns one step's scheduled sequences into the flat BatchMeta the model consumes.
 *
 * For each scheduled sequence (in scheduler order) the chunk tokens[num_computed ..
 * num_computed + num_scheduled) becomes part of the flat token list, with absolute positions,
 * KV slots from its block table, its row of the [S, max_blocks_per_seq] block-table matrix
 * (max_blocks_per_seq is this step's maximum, not max_model_len's, so the copy stays small),
 * and - when the chunk reaches the end of the sequence's known tokens - one logits row (then
 * q->logits_row is set; otherwise -1: a partial prefill chunk samples nothing).
 * A sequence's pending token (async scheduling, seq.h) is position num_tokens: its id is not
 * known yet, so its token_ids entry is 0 and meta.token_src_row points at the previous step's
 * sample row (meta.token_src_row is NULL when no token of the step is pending).
 *
 * The BatchBuilder owns the host arrays and reuses them across steps. Engine thread only. */
#ifndef PAGELLM_ENGINE_BATCH_H
#define PAGELLM_ENGINE_BATCH_H
#include "backend/backend.h"
#include "engine/seq.h"

typedef struct BatchBuilder {
    int32_t *token_ids, *positions, *slot_mapping;    /* [cap_tokens] */
    int32_t *query_start;                             /* [cap_seqs + 1] */
    int32_t *seq_lens, *logits_rows;                  /* [cap_seqs] */
    int32_t *block_tables;                            /* [cap_bt] */
    int32_t *token_src_row;                           /* [cap_tokens] (async scheduling) */
    int cap_tokens, cap_seqs;
    size_t cap_bt;
    BatchMeta meta;                                   /* points into the arrays above */
} BatchBuilder;

void batch_init(BatchBuilder *b);
void batch_deinit(BatchBuilder *b);
/* Builds b->meta from seqs[0..n). Returns 0 or -1 on OOM. */
int batch_build(BatchBuilder *b, Sequence *const *seqs, int n, int block_size);

#endif
