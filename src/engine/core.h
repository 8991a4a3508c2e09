/* core.h: the engine's step loop, independent of how the forward pass and the text are made.
 *
 * engine.c loads a model and a tokenizer and hands them to the core as an EngineRunner (one
 * forward per step) and a TextDecoder (incremental detokenizer per sequence). Tests and the
 * host-overhead benchmark give the core a fake runner instead, so everything the engine decides
 * (scheduling, KV bookkeeping, sampling, stops, outputs) is testable without a model.
 * engine_new_core() returns a full Engine: every engine.h call except engine_new works on it. */
#ifndef PAGELLM_ENGINE_CORE_H
#define PAGELLM_ENGINE_CORE_H
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "engine/engine.h"

typedef struct EngineRunner {
    void *ctx;
    /* One step: fills logits[b->num_logits_rows, vocab_size] (host float32). 0 or -1 + err. */
    int (*forward)(void *ctx, const BatchMeta *b, float *logits, char *err);
    /* Optional: one step with sampling on the device: fills tokens[R] (and lps[r] for rows with
     * num_logprobs >= 0) from sb (sample/sample_batch.h, row r = logits row r). When set, the
     * core uses it instead of forward + the host sampler. 0 or -1 + err. */
    int (*forward_sample)(void *ctx, const BatchMeta *b, const struct SampleBatch *sb, int32_t *tokens,
                          LogprobEntry *lps, char *err);
    /* Optional, both or neither (async scheduling): a step split in two. launch queues the
     * forward + sampling of b with sb and returns without waiting; b and sb (and everything they
     * point to) are only valid during the call. Tokens whose b->token_src_row[t] >= 0 are read on
     * the device from the previous launched step's sampled tokens (row token_src_row[t]).
     * collect waits for the OLDEST launched, uncollected step and fills its tokens[R] and lps[r]
     * (rows with num_logprobs >= 0) as forward_sample would (both may be NULL when that step
     * has no logits rows). The core keeps at most 2 steps
     * launched and uncollected. 0 or -1 + err (after an error the runner is unusable). */
    int (*launch)(void *ctx, const BatchMeta *b, const struct SampleBatch *sb, char *err);
    int (*collect)(void *ctx, int32_t *tokens, LogprobEntry *lps, char *err);
} EngineRunner;

typedef struct TextDecoder {
    void *ctx;
    void *(*open)(void *ctx, int skip_special);          /* per-sequence state; NULL on OOM */
    size_t (*push)(void *st, int32_t id, char **out, size_t *len, size_t *cap);
    size_t (*flush)(void *st, char **out, size_t *len, size_t *cap);
    void (*close)(void *st);
} TextDecoder;

typedef struct CoreConfig {
    int vocab_size;
    int num_blocks, block_size, enable_prefix_caching;
    int max_num_seqs, max_num_batched_tokens, max_model_len;
    int32_t eos_ids[2 * PG_MAX_EOS];    /* config.json + generation_config.json, deduplicated */
    int num_eos;
    uint64_t seed;                      /* seeds of unseeded requests derive from it */
    int max_logprobs;                   /* 0 = PG_MAX_TOP_LOGPROBS */
    /* --async-scheduling: with runner.launch/collect, step k+1 is scheduled and launched before
     * step k is collected and postprocessed, for steps whose every sequence is eligible
     * (core_async_eligible in core.c); otherwise (or 0) every step runs synchronously. */
    int async_scheduling;
    EngineRunner runner;
    TextDecoder text;                   /* open == NULL: no text (token ids only) */
    /* Optional owner (model, tokenizer, backend): freed by engine_free via owner_free. */
    void *owner;
    void (*owner_free)(void *owner);
    const Tokenizer *tok;
    const ModelConfig *model_cfg;
    const GenerationConfig *gen_cfg;
} CoreConfig;

Engine *engine_new_core(const CoreConfig *cfg, char *err);

/* Host-side time of the last step split by phase (seconds), for bench/bench_engine_host.c. */
typedef struct EngineStepTimes { double schedule, batch, forward, postprocess; int num_seqs, num_tokens; } EngineStepTimes;
void engine_last_step_times(const Engine *e, EngineStepTimes *t);

/* Turns async scheduling on or off for the steps that follow (on takes effect only where the
 * runner has launch/collect). Allowed only while no step is in flight (e.g. after
 * engine_has_unfinished() returned 0); returns 0, or -1 when a step is in flight. Lets a test
 * compare both modes on one engine, whose autotuned kernels (timed per backend) stay the same. */
int engine_set_async_scheduling(Engine *e, int on);

#endif
