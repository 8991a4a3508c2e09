/* sample_batch.c: building one step's SampleRows, edits and masks (see sample_batch.h). */
#include "sample/sample_batch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

int sample_batch_init(SampleBatch *sb, int vocab_size, char *err) {
    memset(sb, 0, sizeof *sb);
    sb->vocab_size = vocab_size;
    sb->mask_words = (vocab_size + 31) / 32;
    sb->stamp = calloc((size_t)vocab_size, sizeof *sb->stamp);
    sb->slot = malloc((size_t)vocab_size * sizeof *sb->slot);
    if (!sb->stamp || !sb->slot) {
        sample_batch_deinit(sb);
        return pg_err(err, "sample batch: out of memory for vocab %d", vocab_size);
    }
    return 0;
}

void sample_batch_deinit(SampleBatch *sb) {
    free(sb->rows);
    free(sb->edits);
    free(sb->masks);
    free(sb->stamp);
    free(sb->slot);
    memset(sb, 0, sizeof *sb);
}

void sample_batch_reset(SampleBatch *sb) {
    sb->num_rows = 0;
    sb->num_edits = 0;
    sb->num_masks = 0;
}

static int grow(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return 0;
    int c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *n = realloc(*p, (size_t)c * elem);
    if (!n) return -1;
    *p = n;
    *cap = c;
    return 0;
}

static SampleRow *new_row(SampleBatch *sb) {
    if (grow((void **)&sb->rows, &sb->cap_rows, sb->num_rows + 1, sizeof *sb->rows)) return NULL;
    SampleRow *r = &sb->rows[sb->num_rows];
    memset(r, 0, sizeof *r);
    r->temperature = 0.0f;
    r->inv_temperature = 1.0f;
    r->top_p = 1.0f;
    r->log_min_p = -INFINITY;
    r->repetition_penalty = 1.0f;
    r->num_logprobs = -1;
    r->edit_begin = r->edit_end = sb->num_edits;
    r->mask_index = -1;
    return r;
}

int sample_batch_add_greedy(SampleBatch *sb) {
    if (!new_row(sb)) return -1;
    return sb->num_rows++;
}

/* The edit of token t in the row being built (gen marks membership), created on first use. */
static LogitEdit *edit_of(SampleBatch *sb, uint32_t gen, int32_t t) {
    if (sb->stamp[t] == gen) return &sb->edits[sb->slot[t]];
    if (grow((void **)&sb->edits, &sb->cap_edits, sb->num_edits + 1, sizeof *sb->edits)) return NULL;
    sb->stamp[t] = gen;
    sb->slot[t] = sb->num_edits;
    LogitEdit *e = &sb->edits[sb->num_edits++];
    memset(e, 0, sizeof *e);
    e->token = t;
    return e;
}

int sample_batch_add(SampleBatch *sb, const SampleInput *in) {
    const SamplingParams *p = in->params;
    const int V = sb->vocab_size;
    SampleRow *r = new_row(sb);
    if (!r) return -1;
    int first_edit = sb->num_edits;
    if (p->temperature >= 1e-5f) {
        r->temperature = p->temperature;
        r->inv_temperature = 1.0f / p->temperature;
        r->top_p = p->top_p;
        r->log_min_p = p->min_p > 0.0f ? logf(p->min_p) : -INFINITY;
        r->top_k = p->top_k > 0 && p->top_k < V ? p->top_k : 0;
        r->u = rng_unit(in->rng);
    }
    r->repetition_penalty = p->repetition_penalty;
    r->presence_penalty = p->presence_penalty;
    r->frequency_penalty = p->frequency_penalty;
    r->num_logprobs = p->logprobs >= 0 ? (p->logprobs < PG_MAX_TOP_LOGPROBS ? p->logprobs : PG_MAX_TOP_LOGPROBS) : -1;

    /* Edits: one per distinct token touched by min_tokens, logit_bias or a penalty. */
    if (++sb->stamp_gen == 0) {
        memset(sb->stamp, 0, (size_t)V * sizeof *sb->stamp);
        sb->stamp_gen = 1;
    }
    uint32_t g = sb->stamp_gen;
    LogitEdit *e;
    if (in->output_len < p->min_tokens)
        for (int i = 0; i < in->num_stop_ids; i++) {
            int32_t t = in->stop_ids[i];
            if (t < 0 || t >= V) continue;
            if (!(e = edit_of(sb, g, t))) goto oom;
            e->kill = 1;
        }
    for (int i = 0; i < p->num_logit_bias; i++) {
        int32_t t = p->logit_bias[i].token;
        if (t < 0 || t >= V) continue;
        if (!(e = edit_of(sb, g, t))) goto oom;
        e->bias += p->logit_bias[i].bias;
    }
    if (p->repetition_penalty != 1.0f)
        for (int pass = 0; pass < 2; pass++) {
            const int32_t *ids = pass ? in->output : in->prompt;
            int n = pass ? in->output_len : in->prompt_len;
            for (int i = 0; i < n; i++) {
                if (ids[i] < 0 || ids[i] >= V) continue;
                if (!(e = edit_of(sb, g, ids[i]))) goto oom;
                e->rep = 1;
            }
        }
    if (p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f)
        for (int i = 0; i < in->output_len; i++) {
            if (in->output[i] < 0 || in->output[i] >= V) continue;
            if (!(e = edit_of(sb, g, in->output[i]))) goto oom;
            e->out_count++;
        }
    r = &sb->rows[sb->num_rows];   /* edits may not move rows, but stay obvious */
    r->edit_begin = first_edit;
    r->edit_end = sb->num_edits;

    if (in->allow_mask) {
        if (grow((void **)&sb->masks, &sb->cap_masks, (sb->num_masks + 1) * sb->mask_words, sizeof *sb->masks))
            goto oom;
        memcpy(sb->masks + (size_t)sb->num_masks * sb->mask_words, in->allow_mask,
               (size_t)sb->mask_words * sizeof *sb->masks);
        r->mask_index = sb->num_masks++;
    }
    return sb->num_rows++;
oom:
    sb->num_edits = first_edit;
    return -1;
}
