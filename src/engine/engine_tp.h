/* engine_tp.h: what engine_new() builds for --tensor-parallel-size N > 1: the model split over N
 * ranks (model/tp_forward.h) and the EngineRunner that drives them.
 *
 * engine_tp_new() makes one backend per rank (CUDA: GPU r for rank r, all with the engine's
 * enforce_eager; CPU: N CPU backends sharing --threads, a simulation of N GPUs that tests use)
 * and one communicator per rank (NCCL over the GPUs; the in-process comm for CPU ranks);
 * engine_tp_device() then tells rank 0's device (what the default step budget is chosen by, as
 * vLLM's engine process asks its own device), and engine_tp_load() loads the TpGroup over them
 * with the budget in mo. KV sizing is per rank: each rank stores only its KV heads, so a block costs
 * engine_tp_kv_bytes_per_block() on every device, and engine_tp_mem_free() is the free memory of
 * the fullest device (the same block count is allocated on every rank; the block tables are
 * global). The runner's forward is tp_group_forward (host logits); its forward_sample, set only
 * where the backends sample on the device, gathers the vocabulary shards onto rank 0 and
 * samples there. Engine thread only (the group's workers run the ranks). */
#ifndef PAGELLM_ENGINE_ENGINE_TP_H
#define PAGELLM_ENGINE_ENGINE_TP_H
#include <stddef.h>

#include "engine/core.h"
#include "engine/engine.h"
#include "model/model.h"

typedef struct EngineTp EngineTp;

/* The backends and communicators of cfg->tensor_parallel_size ranks on cfg->device (no model
 * yet: engine_tp_load). */
int engine_tp_new(EngineTp **out, const EngineConfig *cfg, char *err);
/* Rank 0's device: total memory in bytes (-1 when the backend cannot tell, as the CPU's) and
 * marketing name (NULL when none; owned by the backend). */
void engine_tp_device(EngineTp *t, long long *mem_total, const char **name);
/* The model in cfg->model_dir split over the ranks (mo->max_tokens: the step budget). */
int engine_tp_load(EngineTp *t, const EngineConfig *cfg, const ModelLoadOptions *mo, char *err);
size_t engine_tp_kv_bytes_per_block(const EngineTp *t, int block_size);
/* Least free device memory over the ranks (bytes), -1 if unknown. */
long long engine_tp_mem_free(EngineTp *t);
int engine_tp_alloc_kv(EngineTp *t, int num_blocks, int block_size, char *err);
/* The runner for the core (ctx = t; t must outlive the engine's steps). */
EngineRunner engine_tp_runner(EngineTp *t);
void engine_tp_free(EngineTp *t);

#endif
