/* startup.c: the default step budget by device, KV cache sizing from a profiling forward, and
 * CUDA graph capture (startup.h). */
#include "engine/startup.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/log.h"
#include "util/timeutil.h"

#define GB 1e9

static long long mem_used(Backend *be, const StartupMem *sm) {
    long long fr = be->ops->mem_free(be);
    return fr < 0 ? -1 : sm->total - fr;
}

int startup_mem_baseline(Backend *be, StartupMem *sm, char *err) {
    sm->t0 = sm->t0 > 0 ? sm->t0 : time_now_s();
    sm->total = be->ops->mem_total ? be->ops->mem_total(be) : -1;
    long long fr = be->ops->mem_free ? be->ops->mem_free(be) : -1;
    if (sm->total <= 0 || fr < 0)
        return pg_err(err, "%s backend cannot report its device memory: pass --kv-cache-memory", be->name);
    sm->used0 = sm->total - fr;
    return 0;
}

void startup_device(Backend *be, long long *mem_total, const char **name) {
    *mem_total = strcmp(be->name, "cpu") != 0 && be->ops->mem_total ? be->ops->mem_total(be) : -1;
    *name = be->ops->device_name ? be->ops->device_name(be) : NULL;
}

long long startup_kv_blocks(Model *m, const StartupMem *sm, float util, int max_tokens, int max_seqs,
                            int block_size, char *err) {
    Backend *be = m->be;
    const int T = max_tokens, S = max_seqs < max_tokens ? max_seqs : max_tokens;
    const int chunk = T / S, extra = T % S, maxq = chunk + (extra > 0);
    const int nb = (maxq + block_size - 1) / block_size;
    long long used_loaded = mem_used(be, sm);
    /* The temporary cache: every sequence reads the same nb blocks, and stores nothing. */
    if (model_alloc_kv(m, nb, block_size, err) != 0) return -1;
    long long used_kv = mem_used(be, sm);
    int32_t *ids = calloc((size_t)T, sizeof *ids), *pos = malloc((size_t)T * sizeof *pos);
    int32_t *slot = malloc((size_t)T * sizeof *slot), *qs = malloc((size_t)(S + 1) * sizeof *qs);
    int32_t *lens = malloc((size_t)S * sizeof *lens), *rows = malloc((size_t)S * sizeof *rows);
    int32_t *bt = malloc((size_t)S * nb * sizeof *bt);
    long long blocks = -1;
    double t0 = time_now_s();
    if (!ids || !pos || !slot || !qs || !lens || !rows || !bt) { pg_err(err, "out of memory"); goto out; }
    int t = 0;
    for (int s = 0; s < S; s++) {
        int len = chunk + (s < extra);
        qs[s] = t;
        for (int i = 0; i < len; i++, t++) { pos[t] = i; slot[t] = -1; }
        lens[s] = len;
        rows[s] = t - 1;
        for (int j = 0; j < nb; j++) bt[(size_t)s * nb + j] = j;
    }
    qs[S] = t;
    BatchMeta b = {.num_tokens = T, .num_seqs = S, .token_ids = ids, .positions = pos,
                   .slot_mapping = slot, .query_start = qs, .seq_lens = lens, .block_tables = bt,
                   .max_blocks_per_seq = nb, .block_size = block_size, .max_query_len = maxq,
                   .max_seq_len = maxq, .logits_rows = rows, .num_logits_rows = S};
    /* logits stay on the device: the host copy is not part of the device peak */
    if (model_forward(m, &b, NULL, err) != 0) goto out;
    long long used_peak = mem_used(be, sm);
    if (used_loaded < 0 || used_kv < 0 || used_peak < 0) { pg_err(err, "%s: device memory query failed", be->name); goto out; }
    /* what this engine holds beyond the baseline, the temporary cache left out */
    double wb = (double)weights_nbytes(&m->dev); /* backend-resident, a tied lm_head once */
    double mine = (double)(used_peak - (used_kv - used_loaded)) - (double)sm->used0;
    double act = mine - wb;
    double budget = (double)sm->total * util;
    double free0 = (double)(sm->total - sm->used0);
    if (budget > free0) {
        pg_err(err, "free device memory at start-up (%.2f GB of %.2f GB) is less than --gpu-memory-utilization "
               "%.2f of it (%.2f GB): lower --gpu-memory-utilization or free the device",
               free0 / GB, sm->total / GB, util, budget / GB);
        goto out;
    }
    double kv = budget - mine;
    size_t per_block = model_kv_bytes_per_block(m, block_size);
    blocks = kv > 0 ? (long long)(kv / (double)per_block) : 0;
    LOG_I("memory: %.2f GB total x %.2f = %.2f GB; weights %.2f GB, activations peak %.2f GB (profiling "
          "forward of %d tokens in %d sequences, %.2f s), CUDA context and others %.2f GB (not counted); "
          "KV cache %.2f GB",
          sm->total / GB, util, budget / GB, wb / GB, act / GB, T, S, time_now_s() - t0,
          sm->used0 / GB, blocks * (double)per_block / GB);
out:
    free(ids); free(pos); free(slot); free(qs); free(lens); free(rows); free(bt);
    return blocks;
}

int startup_default_batched_tokens(long long mem_total, const char *device_name) {
    if (mem_total < 70LL << 30) return 2048;
    if (device_name) /* vLLM lower-cases the name and looks for "a100" */
        for (const char *p = device_name; *p; p++)
            if (tolower((unsigned char)*p) == 'a' && !strncmp(p + 1, "100", 3)) return 2048;
    return 8192;
}

int startup_capture_sizes(int max_seqs, int max_tokens, int *out, int cap) {
    int max_size = 2 * max_seqs < 512 ? 2 * max_seqs : 512, n = 0;
    /* PAGELLM_GRAPH_MAX_SIZE=B (A/B knob): no capture size above B; bigger batches run eagerly */
    const char *lim = getenv("PAGELLM_GRAPH_MAX_SIZE");
    if (lim && atoi(lim) > 0 && atoi(lim) < max_size) max_size = atoi(lim);
    for (int b = 1; b <= max_size && n < cap; ) {
        if (b > max_tokens) break;
        out[n++] = b;
        if (b >= max_seqs) break; /* the first size that holds every decode batch */
        b = b < 4 ? b * 2 : b < 8 ? 8 : b < 256 ? b + 8 : b + 16;
    }
    return n;
}

static int capture_forward(void *ctx, const BatchMeta *b, char *err) {
    return model_forward((Model *)ctx, b, NULL, err);
}

int startup_capture_graphs(Model *m, int max_tokens, int max_seqs, int max_model_len,
                           int block_size, char *err) {
    Backend *be = m->be;
    if (!be->ops->capture_graphs) return 0;
    int sizes[64];
    int n = startup_capture_sizes(max_seqs, max_tokens, sizes, 64);
    GraphCaptureSpec spec = {.sizes = sizes, .num_sizes = n, .max_tokens = max_tokens,
                             .max_seqs = max_seqs,
                             .max_blocks_per_seq = (max_model_len + block_size - 1) / block_size,
                             .block_size = block_size, .forward = capture_forward, .ctx = m};
    long long fr0 = be->ops->mem_free ? be->ops->mem_free(be) : -1;
    double t0 = time_now_s();
    int got = be->ops->capture_graphs(be, &spec, err);
    if (got < 0) return -1;
    long long fr1 = be->ops->mem_free ? be->ops->mem_free(be) : -1;
    if (got > 0)
        LOG_I("CUDA graphs: %d captured for decode batch sizes %d..%d in %.2f s (%.2f GB)", got,
              sizes[0], sizes[n - 1], time_now_s() - t0, fr0 >= 0 && fr1 >= 0 ? (fr0 - fr1) / GB : 0.0);
    return 0;
}
