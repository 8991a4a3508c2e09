/* engine.c: engine_new(): loads config, backend, model, tokenizer; sizes the KV cache; and
 * hands the forward pass and the detokenizer to the step loop in core.c. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/backend.h"
#include "engine/core.h"
#include "engine/engine_tp.h"
#include "engine/startup.h"
#include "model/model.h"
#include "tok/detok.h"
#include "tok/tokenizer.h"
#include "util/err.h"
#include "util/log.h"
#include "util/timeutil.h"

/* What the engine owns besides the core: freed by engine_free through CoreConfig.owner_free. */
typedef struct EngineOwner {
    Backend *be;
    Model *model;
    EngineTp *tp;          /* --tensor-parallel-size > 1: the split model instead of be + model */
    Tokenizer *tok;
    ModelConfig mcfg;
    GenerationConfig gen;
} EngineOwner;

static void owner_free(void *p) {
    EngineOwner *o = p;
    if (!o) return;
    model_free(o->model);
    if (o->be && o->be->ops->destroy) o->be->ops->destroy(o->be);
    engine_tp_free(o->tp);
    tok_free(o->tok);
    free(o);
}

static int run_forward(void *ctx, const BatchMeta *b, float *logits, char *err) {
    return model_forward((Model *)ctx, b, logits, err);
}

/* Device sampling: the logits never leave the device; only ids (and logprobs) come back. */
static int run_forward_sample(void *ctx, const BatchMeta *b, const SampleBatch *sb, int32_t *tokens,
                              LogprobEntry *lps, char *err) {
    return model_forward_sample((Model *)ctx, b, sb, tokens, lps, err);
}

/* Async scheduling (core.h launch/collect): the step's forward + sampling queued, not waited. */
static int run_launch(void *ctx, const BatchMeta *b, const SampleBatch *sb, char *err) {
    return model_launch_sample((Model *)ctx, b, sb, err);
}
static int run_collect(void *ctx, int32_t *tokens, LogprobEntry *lps, char *err) {
    return model_collect_sample((Model *)ctx, tokens, lps, err);
}

static void *detok_open(void *ctx, int skip_special) {
    Detok *d = malloc(sizeof *d);
    if (d) detok_init(d, (const Tokenizer *)ctx, skip_special);
    return d;
}
static size_t detok_push_cb(void *st, int32_t id, char **out, size_t *len, size_t *cap) {
    return detok_push(st, id, out, len, cap);
}
static size_t detok_flush_cb(void *st, char **out, size_t *len, size_t *cap) {
    return detok_flush(st, out, len, cap);
}
static void detok_close(void *st) {
    detok_deinit(st);
    free(st);
}

static int env_on(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static int file_exists(const char *dir, const char *name) {
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &sb) == 0;
}

static void add_eos(CoreConfig *c, int id) {
    if (id < 0) return;
    for (int i = 0; i < c->num_eos; i++)
        if (c->eos_ids[i] == id) return;
    if (c->num_eos < (int)(sizeof c->eos_ids / sizeof c->eos_ids[0])) c->eos_ids[c->num_eos++] = id;
}

/* The step token budget: --max-num-batched-tokens, or by device (startup.h: mem_total bytes,
 * <= 0 unknown; device_name may be NULL), raised to max_seqs so every running sequence can
 * decode in one step. A given budget below max_seqs is an error, as in vLLM. 0, or -1 + err. */
static int resolve_budget(const EngineConfig *cfg, int *max_tokens, int max_seqs, long long mem_total,
                          const char *device_name, char *err) {
    if (cfg->max_num_batched_tokens > 0) {
        *max_tokens = cfg->max_num_batched_tokens;
        if (*max_tokens < max_seqs) {
            pg_err(err, "--max-num-batched-tokens (%d) must be at least --max-num-seqs (%d)", *max_tokens, max_seqs);
            return -1;
        }
        return 0;
    }
    *max_tokens = startup_default_batched_tokens(mem_total, device_name);
    if (*max_tokens < max_seqs) *max_tokens = max_seqs;
    if (mem_total > 0)
        LOG_I("step token budget %d (no --max-num-batched-tokens; by device: %s, %.1f GB)", *max_tokens,
              device_name ? device_name : "unnamed", mem_total / 1e9);
    return 0;
}

Engine *engine_new(const EngineConfig *cfg, char *err) {
    StartupMem sm = {.t0 = time_now_s()};
    EngineOwner *o = calloc(1, sizeof *o);
    if (!o) { pg_err(err, "out of memory"); return NULL; }
    const char *dir = cfg->model_dir;
    if (!dir) { pg_err(err, "engine: no model directory given"); goto fail; }
    if (config_load(dir, &o->mcfg, &o->gen, err) != 0) goto fail;

    int max_len = cfg->max_model_len > 0 ? cfg->max_model_len : o->mcfg.max_position_embeddings;
    if (cfg->max_model_len > o->mcfg.max_position_embeddings) {
        pg_err(err, "--max-model-len %d is larger than the model's max_position_embeddings %d (%s/config.json)",
               cfg->max_model_len, o->mcfg.max_position_embeddings, dir);
        goto fail;
    }
    int bs = cfg->block_size > 0 ? cfg->block_size : 16;
    int max_seqs = cfg->max_num_seqs > 0 ? cfg->max_num_seqs : 256;
    int max_tokens = cfg->max_num_batched_tokens; /* 0: by device, once the backend exists */

    const char *device = cfg->device ? cfg->device : "cpu";
    ModelLoadOptions mo = {.weights = {.format = cfg->load_format, .dummy_dtype = DT_BF16, .dummy_seed = cfg->seed},
                           .max_seqs = max_seqs};
    char mem_err[PG_ERR_LEN] = "";
    int have_mem = 0;
    if (cfg->tensor_parallel_size > 1) {
        /* the split model (engine_tp.c): its own backends, comms and KV sizing; the default
         * budget by rank 0's device */
        if (engine_tp_new(&o->tp, cfg, err) != 0) goto fail;
        long long tp_mem;
        const char *tp_name;
        engine_tp_device(o->tp, &tp_mem, &tp_name);
        if (resolve_budget(cfg, &max_tokens, max_seqs, tp_mem, tp_name, err) != 0) goto fail;
        mo.max_tokens = max_tokens;
        if (engine_tp_load(o->tp, cfg, &mo, err) != 0) goto fail;
    } else {
        BackendOptions bo = {.threads = cfg->threads, .device_id = cfg->device_id, .kv_dtype = cfg->kv_cache_dtype,
                             .enforce_eager = cfg->enforce_eager};
        if (!(o->be = backend_new(device, &bo, err))) goto fail;
        /* a device backend: its memory before the model, for --gpu-memory-utilization */
        have_mem = strcmp(o->be->name, "cpu") != 0 && startup_mem_baseline(o->be, &sm, mem_err) == 0;
        long long dev_mem;
        const char *dev_name;
        startup_device(o->be, &dev_mem, &dev_name);
        if (resolve_budget(cfg, &max_tokens, max_seqs, dev_mem, dev_name, err) != 0) goto fail;
        mo.max_tokens = max_tokens;
        if (model_load(&o->model, dir, o->be, &mo, err) != 0) goto fail;
    }

    const char *tdir = cfg->tokenizer_dir ? cfg->tokenizer_dir : dir;
    if (file_exists(tdir, "tokenizer.json")) {
        if (tok_load(&o->tok, tdir, err) != 0) goto fail;
    } else {
        LOG_W("no tokenizer.json in %s: token ids only, no text", tdir);
    }

    /* KV cache size (under tensor parallelism: per rank, each holding its KV heads) */
    size_t per_block = o->tp ? engine_tp_kv_bytes_per_block(o->tp, bs) : model_kv_bytes_per_block(o->model, bs);
    long long num_blocks;
    const char *how;
    if (cfg->num_gpu_blocks_override > 0) {
        num_blocks = cfg->num_gpu_blocks_override;
        how = "--num-gpu-blocks-override";
    } else if (cfg->kv_cache_memory > 0) {
        num_blocks = cfg->kv_cache_memory / (long long)per_block;
        how = "--kv-cache-memory";
    } else if (o->tp && strcmp(device, "cpu") != 0) {
        /* TP: the least free memory over the GPUs after loading (no profiling forward yet) */
        long long fr = engine_tp_mem_free(o->tp);
        if (fr <= 0) { pg_err(err, "%s backend cannot report free memory: pass --kv-cache-memory", device); goto fail; }
        num_blocks = (long long)((double)fr * cfg->gpu_memory_utilization) / (long long)per_block;
        how = "--gpu-memory-utilization of the least free memory over the GPUs after loading";
    } else if (strcmp(device, "cpu") != 0) {
        if (!have_mem) { pg_err(err, "%s", mem_err); goto fail; }
        num_blocks = startup_kv_blocks(o->model, &sm, cfg->gpu_memory_utilization, max_tokens, max_seqs, bs, err);
        if (num_blocks < 0) goto fail;
        how = "--gpu-memory-utilization of total device memory after a profiling forward";
    } else {
        /* CPU default: 2 GiB, or less if max_num_seqs full-length sequences need less */
        long long need_blocks = (long long)max_seqs * ((max_len + bs - 1) / bs);
        num_blocks = (2LL << 30) / (long long)per_block;
        if (need_blocks < num_blocks) num_blocks = need_blocks;
        how = "default (min(2 GiB, max_num_seqs x max_model_len))";
    }
    if (num_blocks > (1LL << 30)) num_blocks = 1LL << 30;
    if (num_blocks * bs < max_len) {
        pg_err(err, "KV cache too small: %lld blocks x %d tokens = %lld tokens (%s) < max_model_len %d; "
               "raise --kv-cache-memory or lower --max-model-len",
               num_blocks, bs, num_blocks * bs, how, max_len);
        goto fail;
    }
    if (o->tp ? engine_tp_alloc_kv(o->tp, (int)num_blocks, bs, err) : model_alloc_kv(o->model, (int)num_blocks, bs, err))
        goto fail;
    LOG_I("KV cache: %lld blocks of %d tokens = %lld tokens (%.1f MiB%s, %s); max concurrency at max_model_len %d: %.2fx",
          num_blocks, bs, num_blocks * bs, (double)num_blocks * (double)per_block / (1 << 20),
          o->tp ? " per rank" : "", how, max_len, (double)(num_blocks * bs) / max_len);
    /* TP ranks capture their decode graphs lazily, per exact batch size, in lock step */
    if (!o->tp && startup_capture_graphs(o->model, max_tokens, max_seqs, max_len, bs, err) != 0) goto fail;

    CoreConfig c = {
        .vocab_size = o->mcfg.vocab_size, .num_blocks = (int)num_blocks, .block_size = bs,
        .enable_prefix_caching = cfg->enable_prefix_caching, .max_num_seqs = max_seqs,
        .max_num_batched_tokens = max_tokens, .max_model_len = max_len, .seed = cfg->seed,
        .runner = o->tp ? engine_tp_runner(o->tp)
                        : (EngineRunner){.ctx = o->model, .forward = run_forward,
                                         .forward_sample = o->be->ops->sample && !getenv("PAGELLM_HOST_SAMPLING")
                                                               ? run_forward_sample : NULL},
        .owner = o, .owner_free = owner_free, .tok = o->tok,
        .model_cfg = &o->mcfg, .gen_cfg = &o->gen,
        .async_scheduling = cfg->async_scheduling || env_on("PAGELLM_ASYNC_SCHEDULING"),
    };
    /* async scheduling needs the device sampler's split step (one device, no TP) */
    if (!o->tp && c.runner.forward_sample && model_can_launch_sample(o->model)) {
        c.runner.launch = run_launch;
        c.runner.collect = run_collect;
    }
    if (c.async_scheduling)
        LOG_I("async scheduling: %s", c.runner.launch ? "on" : "not available (needs device sampling on one device): off");
    for (int i = 0; i < o->mcfg.num_eos; i++) add_eos(&c, o->mcfg.eos_token_ids[i]);
    for (int i = 0; i < o->gen.num_eos; i++) add_eos(&c, o->gen.eos_token_ids[i]);
    if (o->tok) c.text = (TextDecoder){o->tok, detok_open, detok_push_cb, detok_flush_cb, detok_close};
    Engine *e = engine_new_core(&c, err);
    if (!e) goto fail;
    LOG_I("engine ready in %.2f s (%s backend%s)", time_now_s() - sm.t0, device, o->tp ? ", tensor parallel" : "");
    return e;
fail:
    owner_free(o);
    return NULL;
}
