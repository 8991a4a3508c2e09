/* test_sample_batch.c: what sample_batch_add() makes of a sequence (sample/sample_batch.h): the
 * row's scalars, one edit per distinct touched token with the right flags and counts, the mask
 * copy, and exactly one draw from the sequence's Rng for random rows (none for greedy ones), so
 * that host and device samplers see the same rows and a seeded stream is the same everywhere. */
#include <math.h>

#include "test.h"
#include "sample/params.h"
#include "sample/sample_batch.h"
#include "util/err.h"

#define V 100

static const LogitEdit *find_edit(const SampleBatch *sb, int row, int32_t tok) {
    const SampleRow *r = &sb->rows[row];
    for (int i = r->edit_begin; i < r->edit_end; i++)
        if (sb->edits[i].token == tok) return &sb->edits[i];
    return NULL;
}

TEST(greedy_row_has_no_draw_and_no_edits) {
    SampleBatch sb;
    char err[PG_ERR_LEN];
    EXPECT(sample_batch_init(&sb, V, err) == 0);
    SamplingParams p; sampling_params_default(&p); p.temperature = 0;
    Rng r; rng_seed(&r, 7);
    Rng before = r;
    SampleInput in = {.params = &p, .rng = &r};
    EXPECT_EQ_INT(sample_batch_add(&sb, &in), 0);
    EXPECT(r.state == before.state);                      /* greedy: no draw */
    EXPECT(sb.rows[0].temperature < 1e-5f);
    EXPECT_EQ_INT(sb.rows[0].edit_end - sb.rows[0].edit_begin, 0);
    EXPECT_EQ_INT(sb.rows[0].mask_index, -1);
    EXPECT_EQ_INT(sb.rows[0].num_logprobs, -1);
    EXPECT_EQ_INT(sample_batch_add_greedy(&sb), 1);
    EXPECT_EQ_INT(sb.num_rows, 2);
    sample_batch_reset(&sb);
    EXPECT_EQ_INT(sb.num_rows, 0);
    sample_batch_deinit(&sb);
}

TEST(random_row_scalars_and_one_draw) {
    SampleBatch sb;
    char err[PG_ERR_LEN];
    EXPECT(sample_batch_init(&sb, V, err) == 0);
    SamplingParams p; sampling_params_default(&p);
    p.temperature = 0.5f; p.top_p = 0.9f; p.top_k = 500; p.min_p = 0.1f; p.logprobs = 30;
    Rng r; rng_seed(&r, 7);
    Rng twin = r;
    SampleInput in = {.params = &p, .rng = &r};
    EXPECT_EQ_INT(sample_batch_add(&sb, &in), 0);
    const SampleRow *row = &sb.rows[0];
    EXPECT(row->u == rng_unit(&twin));                    /* exactly one draw, the stream's next */
    EXPECT(r.state == twin.state);
    EXPECT(row->inv_temperature == 2.0f && row->top_p == 0.9f);
    EXPECT_EQ_INT(row->top_k, 0);                         /* top_k >= V is no cut */
    EXPECT(fabsf(row->log_min_p - logf(0.1f)) < 1e-7f);
    EXPECT_EQ_INT(row->num_logprobs, PG_MAX_TOP_LOGPROBS); /* clamped */
    p.top_k = 5; p.min_p = 0;
    EXPECT_EQ_INT(sample_batch_add(&sb, &in), 1);
    EXPECT_EQ_INT(sb.rows[1].top_k, 5);
    EXPECT(sb.rows[1].log_min_p == -INFINITY);
    sample_batch_deinit(&sb);
}

TEST(edits_one_per_distinct_token) {
    SampleBatch sb;
    char err[PG_ERR_LEN];
    EXPECT(sample_batch_init(&sb, V, err) == 0);
    SamplingParams p; sampling_params_default(&p);
    p.temperature = 0; p.repetition_penalty = 1.2f; p.frequency_penalty = 0.5f; p.presence_penalty = 0.25f;
    p.min_tokens = 3;
    LogitBias bias[3] = {{9, 1.0f}, {9, 0.5f}, {50, -2.0f}};
    p.logit_bias = bias; p.num_logit_bias = 3;
    int32_t prompt[] = {1, 2, 2, 3}, output[] = {3, 4, 4, 4}, stops[] = {7, 4, 200};
    Rng r; rng_seed(&r, 1);
    SampleInput in = {.params = &p, .prompt = prompt, .prompt_len = 4, .output = output, .output_len = 2,
                      .stop_ids = stops, .num_stop_ids = 3, .rng = &r};
    EXPECT_EQ_INT(sample_batch_add(&sb, &in), 0);
    /* tokens touched: 1 2 3 (prompt), 3 4 (output so far: 3, 4), 7 4 (stops; 200 out of range), 9 50 */
    EXPECT_EQ_INT(sb.rows[0].edit_end - sb.rows[0].edit_begin, 7);
    const LogitEdit *e;
    EXPECT((e = find_edit(&sb, 0, 2)) && e->rep && !e->kill && e->out_count == 0 && e->bias == 0);
    EXPECT((e = find_edit(&sb, 0, 3)) && e->rep && e->out_count == 1);
    EXPECT((e = find_edit(&sb, 0, 4)) && e->rep && e->kill && e->out_count == 1);
    EXPECT((e = find_edit(&sb, 0, 7)) && e->kill && !e->rep);
    EXPECT((e = find_edit(&sb, 0, 9)) && e->bias == 1.5f && !e->rep);   /* biases of one token add */
    EXPECT((e = find_edit(&sb, 0, 50)) && e->bias == -2.0f);
    EXPECT(find_edit(&sb, 0, 200) == NULL && find_edit(&sb, 0, 5) == NULL);
    /* min_tokens reached: no kills; the whole output counts */
    in.output_len = 4;
    EXPECT_EQ_INT(sample_batch_add(&sb, &in), 1);
    EXPECT((e = find_edit(&sb, 1, 4)) && !e->kill && e->out_count == 3);
    EXPECT(find_edit(&sb, 1, 7) == NULL);
    EXPECT_EQ_INT(sb.rows[1].edit_begin, sb.rows[0].edit_end);        /* rows' edits do not overlap */
    sample_batch_deinit(&sb);
}

TEST(mask_is_copied) {
    SampleBatch sb;
    char err[PG_ERR_LEN];
    EXPECT(sample_batch_init(&sb, V, err) == 0);
    EXPECT_EQ_INT(sb.mask_words, 4);
    uint32_t mask[4] = {0x1u, 0, 0x80000000u, 0xfu};
    SamplingParams p; sampling_params_default(&p); p.temperature = 0;
    Rng r; rng_seed(&r, 1);
    SampleInput in = {.params = &p, .allow_mask = mask, .rng = &r};
    EXPECT_EQ_INT(sample_batch_add(&sb, &in), 0);
    in.allow_mask = NULL;
    EXPECT_EQ_INT(sample_batch_add(&sb, &in), 1);
    in.allow_mask = mask;
    mask[1] = 0x2u;
    EXPECT_EQ_INT(sample_batch_add(&sb, &in), 2);
    EXPECT_EQ_INT(sb.rows[0].mask_index, 0);
    EXPECT_EQ_INT(sb.rows[1].mask_index, -1);
    EXPECT_EQ_INT(sb.rows[2].mask_index, 1);
    EXPECT_EQ_INT(sb.num_masks, 2);
    EXPECT(sb.masks[0] == 0x1u && sb.masks[1] == 0 && sb.masks[2] == 0x80000000u);
    EXPECT(sb.masks[4 + 1] == 0x2u);                      /* a copy, taken when the row was added */
    sample_batch_deinit(&sb);
}

int main(void) {
    RUN(greedy_row_has_no_draw_and_no_edits);
    RUN(random_row_scalars_and_one_draw);
    RUN(edits_one_per_distinct_token);
    RUN(mask_is_copied);
    TEST_MAIN_END();
}
