/* engine_tp.c: the tensor-parallel backends, communicators, group and runner of an engine
 * (engine/engine_tp.h). */
#include "engine/engine_tp.h"

#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/comm.h"
#include "engine/startup.h"
#include "model/tp_forward.h"
#include "util/err.h"
#include "util/log.h"
#include "util/threadpool.h"

struct EngineTp {
    int n;
    Backend **be;         /* [n] */
    Comm **comm;          /* [n] */
    CommWorld *world;     /* CPU ranks only */
    TpGroup *g;
};

static int run_forward(void *ctx, const BatchMeta *b, float *logits, char *err) {
    return tp_group_forward(((EngineTp *)ctx)->g, b, logits, err);
}

static int run_forward_sample(void *ctx, const BatchMeta *b, const struct SampleBatch *sb, int32_t *tokens,
                              LogprobEntry *lps, char *err) {
    return tp_group_forward_sample(((EngineTp *)ctx)->g, b, sb, tokens, lps, err);
}

int engine_tp_new(EngineTp **out, const EngineConfig *cfg, char *err) {
    *out = NULL;
    const int n = cfg->tensor_parallel_size;
    const char *dev = cfg->device ? cfg->device : "cpu";
    const int cpu = !strcmp(dev, "cpu");
    if (n < 1 || n > 64) return pg_err(err, "--tensor-parallel-size %d outside [1, 64]", n);
    EngineTp *t = calloc(1, sizeof *t);
    if (!t) return pg_err(err, "out of memory");
    t->n = n;
    t->be = calloc((size_t)n, sizeof *t->be);
    t->comm = calloc((size_t)n, sizeof *t->comm);
    if (!t->be || !t->comm) { pg_err(err, "out of memory"); goto fail; }

    /* CPU ranks share the cores as DP replicas do: --threads (or all cores) split N ways */
    int total = cfg->threads > 0 ? cfg->threads : pool_num_cores(), per = total / n;
    if (cpu && per < 1) {
        LOG_W("--tensor-parallel-size %d with %d thread(s): the CPU ranks share cores (1 thread each)", n, total);
        per = 1;
    }
    char berr[PG_ERR_LEN];
    /* CUDA graphs holding the NCCL all-reduce hung on the first 2-GPU run (H200 x2, NCCL 2.28.3,
     * test_tp_nccl --graphs): until that is understood, TP ranks run eagerly unless
     * PAGELLM_TP_GRAPHS=1 asks for graphs. */
    int eager = cfg->enforce_eager;
    if (!cpu && !eager && !getenv("PAGELLM_TP_GRAPHS")) {
        LOG_W("--tensor-parallel-size %d: CUDA graphs are off under tensor parallelism in this version "
              "(graphs with NCCL inside hung on the first GPU run; PAGELLM_TP_GRAPHS=1 tries them)", n);
        eager = 1;
    }
    for (int r = 0; r < n; r++) {
        BackendOptions bo = {.threads = cpu ? per : cfg->threads, .device_id = cfg->device_id + r,
                             .kv_dtype = cfg->kv_cache_dtype,
                             .enforce_eager = eager};
        if (!(t->be[r] = backend_new(dev, &bo, berr))) {
            pg_err(err, "--tensor-parallel-size %d: rank %d: %s", n, r, berr);
            goto fail;
        }
    }
    if (cpu) {
        if (!(t->world = comm_world_cpu_new(n, err))) goto fail;
        for (int r = 0; r < n; r++)
            if (!(t->comm[r] = comm_cpu_new(t->world, r, err))) goto fail;
    } else {
#ifdef PAGELLM_HAVE_CUDA
        if (comm_nccl_new_all(t->comm, t->be, n, err) != 0) goto fail;
#else
        pg_err(err, "--tensor-parallel-size %d on --device %s: this build has no communicator for it", n, dev);
        goto fail;
#endif
    }
    *out = t;
    return 0;
fail:
    engine_tp_free(t);
    return -1;
}

void engine_tp_device(EngineTp *t, long long *mem_total, const char **name) {
    startup_device(t->be[0], mem_total, name);
}

int engine_tp_load(EngineTp *t, const EngineConfig *cfg, const ModelLoadOptions *mo, char *err) {
    const char *dev = cfg->device ? cfg->device : "cpu";
    if (tp_group_new(&t->g, cfg->model_dir, t->n, t->be, t->comm, mo, err) != 0) return -1;
    LOG_I("tensor parallel: %d ranks on %s (%s), device sampling %s", t->n, dev,
          t->world ? "in-process comm, threads split" : "one GPU each, NCCL",
          tp_group_can_sample(t->g) ? "on rank 0" : "off (host sampler)");
    return 0;
}

size_t engine_tp_kv_bytes_per_block(const EngineTp *t, int block_size) {
    return tp_group_kv_bytes_per_block(t->g, block_size);
}

long long engine_tp_mem_free(EngineTp *t) { return tp_group_mem_free(t->g); }

int engine_tp_alloc_kv(EngineTp *t, int num_blocks, int block_size, char *err) {
    return tp_group_alloc_kv(t->g, num_blocks, block_size, err);
}

EngineRunner engine_tp_runner(EngineTp *t) {
    EngineRunner r = {.ctx = t, .forward = run_forward};
    if (tp_group_can_sample(t->g) && !getenv("PAGELLM_HOST_SAMPLING")) r.forward_sample = run_forward_sample;
    return r;
}

void engine_tp_free(EngineTp *t) {
    if (!t) return;
    tp_group_free(t->g);   /* the rank Models before their comms and backends */
    for (int r = 0; t->comm && r < t->n; r++) comm_free(t->comm[r]);
    comm_world_cpu_free(t->world);
    for (int r = 0; t->be && r < t->n; r++)
        if (t->be[r] && t->be[r]->ops->destroy) t->be[r]->ops->destroy(t->be[r]);
    free(t->be);
    free(t->comm);
    free(t);
}
