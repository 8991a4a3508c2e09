/* engine.h: the public C API of the inference engine (vLLM's LLMEngine / EngineCore).
 *
 * An Engine owns the model, tokenizer, KV block pool and scheduler. engine_new() loads them and
 * sizes the KV cache; engine_start() runs the step loop (schedule -> build batch -> forward ->
 * sample -> postprocess) on one engine thread. engine_submit() and engine_abort() are safe from
 * any thread: they only post messages to the engine's inbox. Results come back as
 * RequestOutput deltas in an outbox: the engine calls the notify callback (from the engine
 * thread; it must only wake someone, e.g. write an eventfd) and any thread takes them with
 * engine_take_outputs(). Without engine_start(), a caller may drive the loop itself with
 * engine_step() on one thread (offline generate, benchmarks, tests). */
#ifndef PAGELLM_ENGINE_ENGINE_H
#define PAGELLM_ENGINE_ENGINE_H
#include <stddef.h>
#include <stdint.h>

#include "model/config.h"
#include "model/weights.h"
#include "sample/grammar/grammar.h"
#include "sample/params.h"
#include "tok/tokenizer.h"

typedef struct EngineConfig {
    const char *model_dir;
    const char *tokenizer_dir;      /* NULL = model_dir */
    const char *device;             /* "cpu" (default) | "cuda" */
    LoadFormat load_format;
    uint64_t seed;                  /* --seed: dummy weights and default sampling seed */
    int threads;                    /* CPU backend threads, 0 = all cores */
    int block_size;                 /* default 16 */
    int enable_prefix_caching;      /* default 1 */
    int max_num_seqs;               /* default 256 */
    int max_num_batched_tokens;     /* 0 = by device (startup_default_batched_tokens: 8192 on
                                       an H100-class GPU, else 2048) */
    int max_model_len;              /* 0 = from config.json */
    long long kv_cache_memory;      /* bytes; 0 = default (CPU: 2 GiB capped by need) */
    float gpu_memory_utilization;   /* default 0.9 */
    DType kv_cache_dtype;           /* DT_COUNT = auto (backend default) */
    int enforce_eager;              /* CUDA: no graphs */
    int async_scheduling;           /* --async-scheduling: schedule + launch step k+1 before step
                                       k's tokens reach the host (core.h); default 0 */
    int num_gpu_blocks_override;    /* 0 = sized from memory (tests use small pools) */
    int tensor_parallel_size;       /* ranks the model is split over (engine/engine_tp.h): CUDA:
                                       GPUs device_id..device_id+N-1 over NCCL; CPU: N backends
                                       sharing `threads` (a simulation, for tests); default 1 */
    int device_id;                  /* CUDA: this engine's first GPU (replica r of
                                       --data-parallel-size starts at r * tensor_parallel_size);
                                       default 0 */
} EngineConfig;

void engine_config_default(EngineConfig *c);

typedef enum {
    FINISH_NONE = 0,   /* still running */
    FINISH_STOP,       /* EOS, stop string or stop token */
    FINISH_LENGTH,     /* max_tokens or max_model_len */
    FINISH_ABORT,      /* aborted by the client or on shutdown */
    FINISH_ERROR,      /* engine failure */
} FinishReason;
const char *finish_reason_name(FinishReason r); /* "stop", "length", "abort", "error", NULL */

typedef struct EngineRequest {
    uint64_t id;                    /* unique per engine, chosen by the caller */
    const int32_t *prompt;          /* [prompt_len], copied */
    int prompt_len;
    SamplingParams params;          /* deep-copied */
    int priority;                   /* lower value = served earlier; 0 default (FCFS within) */
    const char *cache_salt;         /* NULL or a salt mixed into the first block's hash */
    Grammar *grammar;               /* NULL, or a reference that the engine takes over */
    int32_t grammar_start_token;    /* -1: constrain from the first token; else only after this
                                       token was generated (Qwen3 </think>) */
} EngineRequest;

typedef struct TokenLogprob { int32_t token; float logprob; } TokenLogprob;
typedef struct LogprobEntry {
    int32_t token; float logprob;   /* the sampled token */
    int rank;                       /* its rank in the distribution (1 = most likely) */
    int num_top;
    TokenLogprob top[PG_MAX_TOP_LOGPROBS];
} LogprobEntry;

typedef struct RequestOutput {
    uint64_t id;
    int index;                      /* which of the n completions */
    int32_t *token_ids;             /* [num_tokens] new tokens in this delta */
    int num_tokens;
    char *text;                     /* new text (NUL-terminated), never half a UTF-8 char */
    size_t text_len;
    LogprobEntry *logprobs;         /* [num_tokens] when requested, else NULL */
    FinishReason finish;            /* FINISH_NONE until this index's last delta */
    char stop_reason[256];          /* matched stop string, or "" ; stop_token set for ids */
    int32_t stop_token;             /* -1 unless finished on a stop_token_ids / eos token */
    int prompt_tokens;              /* usage */
    int completion_tokens;          /* this index, so far */
    int cached_tokens;              /* prompt tokens served from the prefix cache */
    char error[256];                /* FINISH_ERROR / admission error message */
    /* Timestamps (time_now_s) for metrics: arrival, first scheduled, first token, finished. */
    double t_arrival, t_scheduled, t_first_token, t_finished;
    struct RequestOutput *next;     /* outbox link */
} RequestOutput;
void request_output_free(RequestOutput *o);   /* frees one node (not the chain) */

typedef struct EngineStats {
    int num_running, num_waiting;
    double kv_usage;                /* used blocks / total, 0..1 */
    int num_blocks, num_free_blocks, block_size;
    uint64_t prefix_queries;        /* prompt tokens looked up in the prefix cache */
    uint64_t prefix_hits;           /* of which found */
    uint64_t preemptions;
    uint64_t prompt_tokens_total, generation_tokens_total;
    uint64_t steps;
    int failed;                     /* 1 once the engine hit a fatal error (/health -> 503) */
    int max_model_len;
    double max_concurrency;         /* KV tokens / max_model_len */
    /* Wall time of the engine thread's steps so far, by phase (seconds): scheduling, building
     * the batch and sample batch, the forward and sampling (device work and waiting for it), and
     * postprocessing (tokens to sequences, stops, outputs). Everything but forward_s is host
     * work the device waits through. */
    double schedule_s, batch_s, forward_s, postprocess_s;
    /* Of forward_s and steps: the steps that carried prompt tokens (a prefill chunk beside any
     * decodes), so that a throughput run's forward time splits into prefill and decode-only. */
    double forward_prefill_s;
    uint64_t prefill_steps;
} EngineStats;

typedef struct Engine Engine;

Engine *engine_new(const EngineConfig *cfg, char *err);
void engine_free(Engine *e);                 /* stops the thread if running; aborts all */
int engine_start(Engine *e, char *err);      /* starts the engine thread */
void engine_stop(Engine *e);                 /* joins the engine thread */

/* Any thread. Fails (without side effects) on a prompt longer than max_model_len, empty prompt,
 * invalid params, duplicate id. */
int engine_submit(Engine *e, const EngineRequest *r, char *err);
void engine_abort(Engine *e, uint64_t id);   /* any thread; no-op for an unknown id */
void engine_set_notify(Engine *e, void (*notify)(void *arg), void *arg);
RequestOutput *engine_take_outputs(Engine *e); /* any thread: the whole FIFO chain, or NULL */
void engine_get_stats(Engine *e, EngineStats *s); /* any thread; a consistent snapshot */

/* Driving the loop by hand (only when engine_start() was not called). Returns the number of
 * requests still unfinished, or -1 on a fatal error. */
int engine_step(Engine *e);
int engine_has_unfinished(Engine *e);

const Tokenizer *engine_tokenizer(const Engine *e);   /* NULL if the model dir has none */
const ModelConfig *engine_model_config(const Engine *e);
const GenerationConfig *engine_generation_config(const Engine *e);
int engine_max_model_len(const Engine *e);
/* A grammar compiler (structured outputs) over the engine's tokenizer that allows the engine's
 * EOS ids (or, with none, the tokenizer's) where a grammar may end; NULL with err set when the
 * engine has no tokenizer or the compiler cannot be built. The caller frees it, after the engine
 * is done with every grammar it compiled. */
GrammarCompiler *engine_grammar_compiler_new(const Engine *e, char *err);

#endif
