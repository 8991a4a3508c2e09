/* startup.h: the device half of engine start-up, as vLLM does it: the KV cache sized from a
 * profiling forward and --gpu-memory-utilization, then CUDA graphs captured for vLLM's decode
 * batch sizes. engine_new (engine/engine.c) calls these in order, on the engine's thread, for a
 * backend that reports device memory (mem_total + mem_free); the CPU backend never comes here
 * (it sizes the cache from --kv-cache-memory). Each step logs what the issue asks start-up to
 * show: weights GB, peak activation GB, KV GB, graphs and their capture time. */
#ifndef PAGELLM_ENGINE_STARTUP_H
#define PAGELLM_ENGINE_STARTUP_H
#include "backend/backend.h"
#include "model/model.h"

/* Device memory seen before the model is loaded (the context and other processes' use). */
typedef struct StartupMem {
    long long total;       /* device memory, bytes */
    long long used0;       /* in use before model_load, bytes */
    double t0;             /* time_now_s() at engine_new's start, for "ready in" */
} StartupMem;

/* Before model_load. 0, or -1 + err when the backend cannot report its memory. */
int startup_mem_baseline(Backend *be, StartupMem *sm, char *err);

/* After model_load, before model_alloc_kv: a profiling forward of max_tokens tokens spread over
 * min(max_seqs, max_tokens) prefill sequences (one logits row each), on a temporary KV cache of
 * the few blocks it reads, to reach the peak of activation scratch, GEMM workspaces and logits.
 * Then the KV budget, as vLLM: total * util - (weights + peak activation + anything else this
 * engine allocated since the baseline). Returns the number of blocks of `block_size` tokens that
 * fit (0 when none), or -1 + err. The temporary cache stays until model_alloc_kv replaces it. */
long long startup_kv_blocks(Model *m, const StartupMem *sm, float util, int max_tokens, int max_seqs,
                            int block_size, char *err);

/* What the default step budget is chosen by (startup_default_batched_tokens): the device's
 * total memory in bytes (-1 for the CPU backend or one that cannot tell) and its marketing name
 * (NULL when none; owned by the backend). Asked of the single backend, or of rank 0's under
 * tensor parallelism (engine_tp_device). */
void startup_device(Backend *be, long long *mem_total, const char **name);

/* The step token budget when --max-num-batched-tokens is not given, by vLLM's rule for its
 * OpenAI server (EngineArgs.get_batch_defaults): 8192 on a device of at least 70 GiB that is not
 * an A100 (H100, H200, MI300X: "setting large max_num_batched_tokens for A100 reduces
 * throughput", vLLM PR #17885), else 2048. mem_total: bytes, <= 0 when unknown (the CPU
 * backend): 2048; under tensor parallelism, rank 0's device. device_name: may be NULL. vLLM's
 * offline LLM class takes 16384 there; `pagellm bench throughput` keeps the server's 8192, the
 * budget every GPU record ran at (16384 measured the same: run20, docs/benchmarks.md). */
int startup_default_batched_tokens(long long mem_total, const char *device_name);

/* vLLM's default CUDA graph capture sizes: [1, 2, 4] + 8..248 step 8 + 256..max step 16 with
 * max = min(2 * max_num_seqs, 512), kept to those below max_seqs plus the first >= max_seqs (a
 * decode batch never has more sequences) and to <= max_tokens. Writes at most cap sizes to out
 * (ascending); returns how many. */
int startup_capture_sizes(int max_seqs, int max_tokens, int *out, int cap);

/* After model_alloc_kv: captures the decode graphs (backend op capture_graphs; nothing when the
 * backend has none or --enforce-eager). Logs the number of graphs and the capture time. 0, or
 * -1 + err. */
int startup_capture_graphs(Model *m, int max_tokens, int max_seqs, int max_model_len,
                           int block_size, char *err);

#endif
