/* batch.c: scheduled sequences -> BatchMeta (see batch.h). */
#include "engine/batch.h"

#include <stdlib.h>
#include <string.h>

void batch_init(BatchBuilder *b) { memset(b, 0, sizeof *b); }

void batch_deinit(BatchBuilder *b) {
    free(b->token_ids); free(b->positions); free(b->slot_mapping);
    free(b->query_start); free(b->seq_lens); free(b->logits_rows); free(b->block_tables);
    free(b->token_src_row);
    memset(b, 0, sizeof *b);
}

static int grow32(int32_t **p, size_t n) {
    int32_t *q = realloc(*p, n * sizeof *q);
    if (!q) return -1;
    *p = q;
    return 0;
}

int batch_build(BatchBuilder *b, Sequence *const *seqs, int n, int block_size) {
    int T = 0, max_blocks = 0, max_q = 0, max_len = 0;
    for (int i = 0; i < n; i++) {
        const Sequence *q = seqs[i];
        int len = q->num_computed + q->num_scheduled;
        int nb = (len + block_size - 1) / block_size;
        T += q->num_scheduled;
        if (nb > max_blocks) max_blocks = nb;
        if (q->num_scheduled > max_q) max_q = q->num_scheduled;
        if (len > max_len) max_len = len;
    }
    if (T > b->cap_tokens) {
        int c = T < 256 ? 256 : T;
        if (grow32(&b->token_ids, c) || grow32(&b->positions, c) || grow32(&b->slot_mapping, c) ||
            grow32(&b->token_src_row, c))
            return -1;
        b->cap_tokens = c;
    }
    if (n > b->cap_seqs) {
        int c = n < 64 ? 64 : n * 2;
        if (grow32(&b->query_start, c + 1) || grow32(&b->seq_lens, c) || grow32(&b->logits_rows, c)) return -1;
        b->cap_seqs = c;
    }
    size_t bt_need = (size_t)n * (size_t)(max_blocks ? max_blocks : 1);
    if (bt_need > b->cap_bt) {
        if (grow32(&b->block_tables, bt_need * 2)) return -1;
        b->cap_bt = bt_need * 2;
    }
    int t = 0, R = 0, any_pending = 0;
    for (int i = 0; i < n; i++) {
        Sequence *q = seqs[i];
        const int32_t *ids = q->bt.ids;
        int start = q->num_computed, end = start + q->num_scheduled;
        b->query_start[i] = t;
        for (int p = start; p < end; p++, t++) {
            if (p < q->num_tokens) {
                b->token_ids[t] = q->tokens[p];
                b->token_src_row[t] = -1;
            } else {   /* the pending token: read on the device from the last step's samples */
                b->token_ids[t] = 0;
                b->token_src_row[t] = q->pending_row;
                any_pending = 1;
            }
            b->positions[t] = p;
            b->slot_mapping[t] = ids[p / block_size] * block_size + p % block_size;
        }
        b->seq_lens[i] = end;
        int nb = (end + block_size - 1) / block_size;
        memcpy(b->block_tables + (size_t)i * max_blocks, ids, (size_t)nb * sizeof *ids);
        if (end == q->num_tokens + q->num_pending) {
            q->logits_row = R;
            b->logits_rows[R++] = t - 1;
        } else {
            q->logits_row = -1;
        }
    }
    b->query_start[n] = t;
    b->meta = (BatchMeta){
        .num_tokens = T, .num_seqs = n, .token_ids = b->token_ids, .positions = b->positions,
        .slot_mapping = b->slot_mapping, .query_start = b->query_start, .seq_lens = b->seq_lens,
        .block_tables = b->block_tables, .max_blocks_per_seq = max_blocks, .block_size = block_size,
        .max_query_len = max_q, .max_seq_len = max_len, .logits_rows = b->logits_rows,
        .num_logits_rows = R, .token_src_row = any_pending ? b->token_src_row : NULL,
    };
    return 0;
}
