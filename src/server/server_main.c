/* server_main.c: server_run(): makes the engine(s) from the flags, then runs the server (http.c).
 * Kept apart from http.c so that tests can run the server over an engine they made. */
#include <stdlib.h>
#include <string.h>

#include "server/server.h"
#include "util/err.h"
#include "util/log.h"
#include "util/threadpool.h"

/* --data-parallel-size N > 1: N engines of the same model behind one front end, each with its
 * own weights and KV cache. CPU: the cores split between them (--threads / N, or all cores / N;
 * at least 1), so that the replicas do not fight over the same cores. CUDA: replica r owns GPUs
 * [r * tp, (r + 1) * tp) (tp = --tensor-parallel-size), as vLLM places DP ranks; a GPU that does
 * not exist is the backend's clear error at start-up. */
static int run_replicas(ServeConfig *cfg) {
    char err[PG_ERR_LEN] = "";
    const int n = cfg->data_parallel_size;
    int total = cfg->engine.threads > 0 ? cfg->engine.threads : pool_num_cores();
    int per = total / n;
    if (per < 1) {
        LOG_W("--data-parallel-size %d with %d thread(s): the replicas share cores (1 thread each)", n, total);
        per = 1;
    }
    Engine **engines = calloc((size_t)n, sizeof *engines);
    if (!engines) {
        LOG_E("out of memory");
        return 1;
    }
    EngineConfig ec = cfg->engine;
    const int cpu = !ec.device || !strcmp(ec.device, "cpu");
    const int tp = ec.tensor_parallel_size > 1 ? ec.tensor_parallel_size : 1;
    if (cpu) ec.threads = per;
    for (int i = 0; i < n; i++) {
        ec.device_id = cpu ? 0 : cfg->engine.device_id + i * tp;
        if (cpu) LOG_I("loading replica %d/%d of %s (device cpu, %d threads)", i + 1, n, ec.model_dir, per);
        else LOG_I("loading replica %d/%d of %s (device %s, GPUs %d..%d)", i + 1, n, ec.model_dir, ec.device,
                   ec.device_id, ec.device_id + tp - 1);
        engines[i] = engine_new(&ec, err);
        if (!engines[i]) {
            LOG_E("cannot start the engine of replica %d: %s", i, err);
            for (int k = 0; k < i; k++) engine_free(engines[k]);
            free(engines);
            return 1;
        }
    }
    int rc = server_run_engines(cfg, engines, n);
    free(engines);
    return rc;
}

int server_run(ServeConfig *cfg) {
    char err[PG_ERR_LEN] = "";
    log_set_level(cfg->log_level);
    if (cfg->data_parallel_size > 1) return run_replicas(cfg);
    LOG_I("loading %s (device %s)", cfg->engine.model_dir, cfg->engine.device);
    Engine *engine = engine_new(&cfg->engine, err);
    if (!engine) {
        LOG_E("cannot start the engine: %s", err);
        return 1;
    }
    return server_run_engine(cfg, engine);
}
