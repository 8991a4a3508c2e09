/* engine_flags.c: see engine_flags.h. The table is also the --help text. */
#include "cli/engine_flags.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

typedef struct FlagDoc { const char *name, *metavar, *help; } FlagDoc;

static const FlagDoc FLAGS[] = {
    {"--max-model-len", "N", "context length: prompt + output tokens (default: max_position_embeddings from config.json)"},
    {"--max-num-seqs", "N", "most sequences running in one step (default: 256)"},
    {"--max-num-batched-tokens", "N", "token budget of one step; longer prompts are prefilled in chunks (default, as vLLM's server: 8192 on a GPU of >= 70 GiB that is not an A100, else 2048)"},
    {"--block-size", "N", "tokens per KV-cache block: 8, 16, 32, 64 or 128 (default: 16)"},
    {"--enable-prefix-caching", NULL, "reuse KV blocks of repeated prompt prefixes (default: on)"},
    {"--no-enable-prefix-caching", NULL, "turn prefix caching off"},
    {"--gpu-memory-utilization", "F", "fraction of GPU memory for weights + activations + KV cache, in (0, 1] (default: 0.9)"},
    {"--kv-cache-memory", "BYTES", "KV cache size, e.g. 2GiB; on the CPU the default is 2 GiB capped by need"},
    {"--kv-cache-dtype", "auto|fp8|fp8_e4m3", "KV cache element type (default: auto = the backend's; fp8 needs CUDA)"},
    {"--dtype", "auto", "model dtype; only auto (weights as stored; CPU math in float32, CUDA in bfloat16)"},
    {"--device", "auto|cpu|cuda", "backend (default: auto = cuda when built with CUDA, else cpu)"},
    {"--tensor-parallel-size", "N", "ranks to split the model over: CUDA: GPUs 0..N-1 over NCCL; CPU: a simulation sharing --threads (default: 1; alias -tp)"},
    {"--seed", "N", "random seed: dummy weights and the default sampling seed (default: 0)"},
    {"--load-format", "auto|safetensors|dummy", "weights from safetensors, or seeded random ones of the config's shapes (default: auto)"},
    {"--tokenizer", "DIR", "tokenizer directory (default: the model directory)"},
    {"--threads", "N", "CPU backend threads (default: 0 = all cores)"},
    {"--log-level", "LEVEL", "debug, info, warning, error, critical (default: info)"},
    {"--num-gpu-blocks-override", "N", "use exactly N KV blocks instead of sizing from memory (testing)"},
    {"--enforce-eager", NULL, "CUDA: run without CUDA graphs"},
    {"--async-scheduling", NULL, "overlap the host's scheduling of step k+1 with the device's step k (device sampling only; default: off)"},
};
#define NFLAGS (sizeof FLAGS / sizeof FLAGS[0])

void engine_flags_init(EngineFlags *f) {
    memset(f, 0, sizeof *f);
    engine_config_default(&f->engine);
    f->device = "auto";
    f->kv_dtype = "auto";
    f->log_level = LOG_INFO;
    f->tensor_parallel_size = 1;
}

int engine_flags_known(const char *name, int *takes_value) {
    if (!strcmp(name, "-tp")) name = "--tensor-parallel-size";
    for (size_t i = 0; i < NFLAGS; i++)
        if (!strcmp(FLAGS[i].name, name)) {
            if (takes_value) *takes_value = FLAGS[i].metavar != NULL;
            return 1;
        }
    return 0;
}

void engine_flags_usage(FILE *out) {
    for (size_t i = 0; i < NFLAGS; i++) {
        char left[80];
        snprintf(left, sizeof left, "%s%s%s", FLAGS[i].name, FLAGS[i].metavar ? " " : "",
                 FLAGS[i].metavar ? FLAGS[i].metavar : "");
        fprintf(out, "  %-38s %s\n", left, FLAGS[i].help);
    }
}

long long parse_byte_size(const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0) || !isfinite(v)) return -1;
    while (*end == ' ') end++;
    double mul = 1;
    char unit[8] = "";
    size_t k = 0;
    while (*end && k < sizeof unit - 1) unit[k++] = (char)tolower((unsigned char)*end++);
    if (*end) return -1;
    if (!strcmp(unit, "") || !strcmp(unit, "b")) mul = 1;
    else if (!strcmp(unit, "k") || !strcmp(unit, "kib")) mul = 1024.0;
    else if (!strcmp(unit, "kb")) mul = 1e3;
    else if (!strcmp(unit, "m") || !strcmp(unit, "mib")) mul = 1024.0 * 1024;
    else if (!strcmp(unit, "mb")) mul = 1e6;
    else if (!strcmp(unit, "g") || !strcmp(unit, "gib")) mul = 1024.0 * 1024 * 1024;
    else if (!strcmp(unit, "gb")) mul = 1e9;
    else if (!strcmp(unit, "t") || !strcmp(unit, "tib")) mul = 1024.0 * 1024 * 1024 * 1024;
    else return -1;
    double bytes = v * mul;
    if (bytes > 9e18) return -1;
    return (long long)bytes;
}

int flag_parse_int(const char *flag, const char *v, long long lo, long long hi, int *out, char *err) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno) return pg_err(err, "%s: invalid integer value '%s'", flag, v);
    if (x < lo || x > hi) return pg_err(err, "%s: value %lld is out of range [%lld, %lld]", flag, x, lo, hi);
    *out = (int)x;
    return 0;
}

int engine_flags_apply(EngineFlags *f, const char *name, const char *val, char *err) {
    EngineConfig *c = &f->engine;
    if (!strcmp(name, "-tp")) name = "--tensor-parallel-size";
    int takes;
    if (!engine_flags_known(name, &takes)) return 0;
    if (takes && !val) return pg_err(err, "%s: missing value", name);
    if (!takes && val) return pg_err(err, "%s takes no value (got '%s')", name, val);
    int rc = 0;
    if (!strcmp(name, "--max-model-len")) {
        /* vLLM accepts 32k / 1K-style suffixes (decimal thousands) */
        char *end;
        long long b = strtoll(val, &end, 10);
        if (*end == 'k' || *end == 'K') b = end[1] ? -1 : (long long)(strtod(val, NULL) * 1000);
        else if (*end) b = -1;
        if (b < 1 || b > (1 << 30)) return pg_err(err, "--max-model-len: invalid value '%s'", val);
        c->max_model_len = (int)b;
    }
    else if (!strcmp(name, "--max-num-seqs")) rc = flag_parse_int(name, val, 1, 1 << 20, &c->max_num_seqs, err);
    else if (!strcmp(name, "--max-num-batched-tokens")) rc = flag_parse_int(name, val, 1, 1 << 24, &c->max_num_batched_tokens, err);
    else if (!strcmp(name, "--block-size")) {
        if (flag_parse_int(name, val, 1, 1024, &c->block_size, err)) return -1;
        int b = c->block_size;
        if (b != 8 && b != 16 && b != 32 && b != 64 && b != 128)
            return pg_err(err, "--block-size: invalid choice %d (choose from 8, 16, 32, 64, 128)", b);
    }
    else if (!strcmp(name, "--enable-prefix-caching")) c->enable_prefix_caching = 1;
    else if (!strcmp(name, "--no-enable-prefix-caching")) c->enable_prefix_caching = 0;
    else if (!strcmp(name, "--gpu-memory-utilization")) {
        char *end;
        double x = strtod(val, &end);
        if (*end || end == val || !(x > 0 && x <= 1)) return pg_err(err, "--gpu-memory-utilization: must be in (0, 1], got '%s'", val);
        c->gpu_memory_utilization = (float)x;
    }
    else if (!strcmp(name, "--kv-cache-memory")) {
        long long b = parse_byte_size(val);
        if (b <= 0) return pg_err(err, "--kv-cache-memory: invalid size '%s' (e.g. 2GiB, 512MiB, 1000000)", val);
        c->kv_cache_memory = b;
    }
    else if (!strcmp(name, "--kv-cache-dtype")) f->kv_dtype = val;
    else if (!strcmp(name, "--dtype")) {
        if (strcmp(val, "auto"))
            return pg_err(err, "--dtype %s: not supported in this version; only 'auto' (weights run in their stored "
                          "dtype, CPU math in float32, CUDA in bfloat16)", val);
    }
    else if (!strcmp(name, "--device")) f->device = val;
    else if (!strcmp(name, "--tensor-parallel-size")) {
        if (flag_parse_int(name, val, 1, 64, &f->tensor_parallel_size, err)) return -1;
        c->tensor_parallel_size = f->tensor_parallel_size;
    }
    else if (!strcmp(name, "--seed")) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(val, &end, 10);
        if (!*val || *end || errno || val[0] == '-') return pg_err(err, "--seed: invalid value '%s'", val);
        c->seed = s;
    }
    else if (!strcmp(name, "--load-format")) {
        if (load_format_parse(val, &c->load_format) < 0)
            return pg_err(err, "--load-format: invalid choice '%s' (choose from auto, safetensors, dummy)", val);
    }
    else if (!strcmp(name, "--tokenizer")) c->tokenizer_dir = val;
    else if (!strcmp(name, "--threads")) rc = flag_parse_int(name, val, 0, 4096, &c->threads, err);
    else if (!strcmp(name, "--log-level")) {
        if (log_parse_level(val, &f->log_level) < 0)
            return pg_err(err, "--log-level: invalid choice '%s' (choose from debug, info, warning, error, critical)", val);
    }
    else if (!strcmp(name, "--num-gpu-blocks-override")) rc = flag_parse_int(name, val, 1, 1 << 30, &c->num_gpu_blocks_override, err);
    else if (!strcmp(name, "--enforce-eager")) c->enforce_eager = 1;
    else if (!strcmp(name, "--async-scheduling")) c->async_scheduling = 1;
    else return pg_err(err, "flag '%s' is not handled", name);   /* table and parser out of sync */
    return rc < 0 ? -1 : 1;
}

int engine_flags_finish(EngineFlags *f, char *err) {
    EngineConfig *c = &f->engine;
    if (!strcmp(f->device, "auto")) {
#ifdef PAGELLM_HAVE_CUDA
        c->device = "cuda";
#else
        c->device = "cpu";
#endif
    } else if (!strcmp(f->device, "cpu")) {
        c->device = "cpu";
    } else if (!strcmp(f->device, "cuda")) {
#ifndef PAGELLM_HAVE_CUDA
        return pg_err(err, "--device cuda: this binary was built without CUDA (rebuild with -DPAGELLM_CUDA=ON)");
#endif
        c->device = "cuda";
    } else {
        return pg_err(err, "--device: invalid choice '%s' (choose from auto, cpu, cuda)", f->device);
    }
    if (!strcmp(f->kv_dtype, "auto")) c->kv_cache_dtype = DT_COUNT;
    else if (!strcmp(f->kv_dtype, "fp8") || !strcmp(f->kv_dtype, "fp8_e4m3")) {
        if (!strcmp(c->device, "cpu"))
            return pg_err(err, "--kv-cache-dtype %s: the fp8 KV cache needs the CUDA backend; the CPU backend has only 'auto'", f->kv_dtype);
        c->kv_cache_dtype = DT_FP8_E4M3;
    } else {
        return pg_err(err, "--kv-cache-dtype: invalid choice '%s' (choose from auto, fp8, fp8_e4m3)", f->kv_dtype);
    }
    return 0;
}
