/* bench_tp.c: batch-1 decode of a model split over N GPUs (tensor parallelism over NCCL, the
 * engine's own code: model/tp_forward.h + backend/cuda/comm_nccl.cu), next to the combined
 * copy-bandwidth floor of the N cards measured in the same run.
 *
 * Usage: bench_tp CONFIG.json [--tp N] [--prompt N] [--decode N] [--no-graphs]
 *   CONFIG.json: a shape (tests/fixtures/shapes/qwen3-32b.config.json), dummy bf16 weights
 *   filled shard by shard (no rank holds the whole model).
 * Measures each GPU's copy bandwidth first (gpu_bw.h), loads the model split over GPUs 0..N-1,
 * prefills one prompt of --prompt random tokens, runs 4 warm-up decode steps (the graph of
 * batch size 1 is captured on the second), then --decode greedy steps (host argmax of the
 * gathered logits, as the engine's host-sampling path does) and reports tok/s.
 *   floor (tok/s) = sum of the N cards' copy bandwidth / bytes one decode step streams
 * where the bytes streamed are every rank's shards of the layer weights, the final norm and the
 * lm_head (the embedding is a lookup of one row, not streamed, unless tied with lm_head); the
 * all-weights variant (bench_cuda_qwen3's convention: every weight byte incl. the embedding)
 * is reported too. Last, the latency of one eager all-reduce of [1, D] bf16 across the ranks
 * (mean of 200), for telling NCCL latency from GEMV speed when below the floor.
 * Output: a human summary on stderr, one JSON line on stdout. Needs N GPUs; not run by CTest. */
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/comm.h"
#include "gpu_bw.h"
#include "model/tp_forward.h"
#include "util/err.h"
#include "util/timeutil.h"

#define BLOCK 16

static int argmax(const float *x, int V) {
    int k = 0;
    for (int j = 1; j < V; j++) if (x[j] > x[k]) k = j;
    return k;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the all-reduce latency probe: one thread per rank, as the TP workers ---- */
typedef struct { Backend *be; Comm *comm; int D, iters; double us; int rc; } ArArg;

static void *ar_main(void *p) {
    ArArg *a = p;
    char err[PG_ERR_LEN];
    a->comm->ops->bind_thread(a->comm);
    void *buf = a->be->ops->alloc(a->be, (size_t)a->D * 2);
    a->be->ops->memset0(a->be, buf, (size_t)a->D * 2);
    a->rc = 0;
    for (int i = 0; i < 20 && !a->rc; i++) a->rc = a->comm->ops->all_reduce_sum(a->comm, buf, a->D, DT_BF16, err);
    a->comm->ops->barrier(a->comm);
    double t0 = time_now_s();
    for (int i = 0; i < a->iters && !a->rc; i++) a->rc = a->comm->ops->all_reduce_sum(a->comm, buf, a->D, DT_BF16, err);
    a->comm->ops->barrier(a->comm);   /* synchronizes the stream */
    a->us = (time_now_s() - t0) / a->iters * 1e6;
    a->be->ops->free(a->be, buf);
    return NULL;
}

static double allreduce_us(Backend **be, Comm **comm, int n, int D) {
    pthread_t th[8];
    ArArg args[8];
    for (int r = 0; r < n; r++) {
        args[r] = (ArArg){be[r], comm[r], D, 200, 0, 0};
        pthread_create(&th[r], NULL, ar_main, &args[r]);
    }
    double worst = 0;
    for (int r = 0; r < n; r++) {
        pthread_join(th[r], NULL);
        if (args[r].rc) return -1;
        if (args[r].us > worst) worst = args[r].us;
    }
    return worst;
}

int main(int argc, char **argv) {
    const char *cfgp = NULL;
    int tp = 2, prompt = 128, decode = 128, graphs = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tp") && i + 1 < argc) tp = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc) decode = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-graphs")) graphs = 0;
        else if (argv[i][0] != '-') cfgp = argv[i];
        else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
    }
    if (!cfgp || tp < 1 || tp > 8 || prompt < 1 || decode < 1) {
        fprintf(stderr, "usage: bench_tp CONFIG.json [--tp N] [--prompt N] [--decode N] [--no-graphs]\n");
        return 2;
    }
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    char err[PG_ERR_LEN] = "";
    double t_start = time_now_s();
    double bw[8], bw_sum = 0;
    for (int r = 0; r < tp; r++) {
        cudaSetDevice(r);
        bw[r] = copy_bandwidth_TBps();
        bw_sum += bw[r];
        fprintf(stderr, "GPU %d: copy %.3f TB/s\n", r, bw[r]);
    }
    Backend *be[8] = {0};
    Comm *comm[8] = {0};
    TpGroup *g = NULL;
    int rc = 1;
    float *logits = NULL;
    double *steps = NULL;
    BackendOptions bo = {0, 0, DT_COUNT, !graphs};
    for (int r = 0; r < tp; r++) {
        bo.device_id = r;
        if (!(be[r] = backend_new("cuda", &bo, err))) goto out;
    }
    if (comm_nccl_new_all(comm, be, tp, err)) goto out;
    double t0 = time_now_s();
    const int max_t = prompt > 16 ? prompt : 16;
    ModelLoadOptions mo = {{LOAD_FORMAT_DUMMY, DT_BF16, 0}, max_t, 4};
    if (tp_group_new(&g, cfgp, tp, be, comm, &mo, err)) goto out;
    const int need = prompt + decode + 8, nblocks = (need + BLOCK - 1) / BLOCK + 1;
    if (tp_group_alloc_kv(g, nblocks, BLOCK, err)) goto out;
    double t_load = time_now_s() - t0;
    const ModelConfig *c = tp_group_config(g);
    const int V = c->vocab_size;
    /* bytes: all shards, and the ones a decode step streams */
    double all_bytes = 0, streamed = 0;
    for (int r = 0; r < tp; r++) {
        ModelWeights *w = (ModelWeights *)tp_group_rank_weights(g, r);
        const int slots = weights_num_slots(w->num_layers);
        for (int id = 0; id < slots; id++) {
            const Tensor *t = weights_slot(w, id);
            if (!tensor_present(t)) continue;
            /* tied: the lm_head slot is a view of the embed shard (counted once, streamed) */
            if (id == slots - 1 && w->tied) { streamed += (double)tensor_nbytes(t); continue; }
            all_bytes += (double)tensor_nbytes(t);
            if (id != 0) streamed += (double)tensor_nbytes(t);   /* slot 0: the embedding */
        }
    }
    logits = malloc(sizeof(float) * (size_t)V);
    steps = malloc(sizeof(double) * (size_t)decode);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)max_t), *pos = malloc(sizeof(int32_t) * (size_t)max_t),
            *slot = malloc(sizeof(int32_t) * (size_t)max_t), bt[1024];
    for (int i = 0; i < nblocks && i < 1024; i++) bt[i] = i;
    for (int i = 0; i < prompt; i++) ids[i] = (int32_t)((1000 + 7919 * i) % V), pos[i] = i, slot[i] = i;
    int32_t qs[2] = {0, prompt}, sl[1] = {prompt}, lr[1] = {prompt - 1};
    BatchMeta b = {prompt, 1, ids, pos, slot, qs, sl, bt, nblocks, BLOCK, prompt, prompt, lr, 1, NULL};
    if (tp_group_forward(g, &b, logits, err)) goto out;
    int32_t tok = argmax(logits, V);
    int len = prompt;
    double t_dec = 0;
    for (int k = -4; k < decode; k++) {
        int32_t p1 = len, s1 = len, q1[2] = {0, 1}, n1 = len + 1, r1 = 0;
        BatchMeta d = {1, 1, &tok, &p1, &s1, q1, &n1, bt, nblocks, BLOCK, 1, n1, &r1, 1, NULL};
        double ts = time_now_s();
        if (tp_group_forward(g, &d, logits, err)) goto out;
        tok = argmax(logits, V);
        double dt = time_now_s() - ts;
        if (k >= 0) steps[k] = dt, t_dec += dt;
        len++;
    }
    free(ids); free(pos); free(slot);
    double tok_s = decode / t_dec;
    qsort(steps, (size_t)decode, sizeof *steps, cmp_d);
    double med_ms = steps[decode / 2] * 1e3;
    double floor_tok_s = bw_sum * 1e12 / streamed, floor_all = bw_sum * 1e12 / all_bytes;
    tp_group_free(g);
    g = NULL;
    double ar = allreduce_us(be, comm, tp, c->hidden_size);
    fprintf(stderr, "%s TP=%d (%s): weights %.2f GB in shards (%.2f GB streamed per step), load %.1f s\n", cfgp,
            tp, graphs ? "CUDA graphs" : "eager", all_bytes / 1e9, streamed / 1e9, t_load);
    fprintf(stderr, "floor: %.3f TB/s combined -> %.1f tok/s (all weights: %.1f tok/s)\n", bw_sum, floor_tok_s,
            floor_all);
    fprintf(stderr, "batch-1 decode: %.1f tok/s = %.1f%% of the floor (%.1f%% of the all-weights floor), median step "
            "%.3f ms; eager all-reduce of [1, %d] bf16: %.1f us; 2L+1 = %d all-reduces per step\n",
            tok_s, 100 * tok_s / floor_tok_s, 100 * tok_s / floor_all, med_ms, c->hidden_size, ar,
            2 * c->num_layers + 1);
    printf("{\"config\":\"%s\",\"tp\":%d,\"graphs\":%d,\"copy_TBps\":[", cfgp, tp, graphs);
    for (int r = 0; r < tp; r++) printf("%s%.3f", r ? "," : "", bw[r]);
    printf("],\"copy_TBps_sum\":%.3f,\"weights_GB\":%.3f,\"streamed_GB\":%.3f,\"floor_tok_s\":%.1f,"
           "\"floor_all_weights_tok_s\":%.1f,\"decode_tok_s\":%.1f,\"pct_floor\":%.1f,\"pct_floor_all_weights\":%.1f,"
           "\"step_ms_median\":%.3f,\"allreduce_us\":%.1f,\"load_s\":%.1f,\"total_s\":%.1f}\n",
           bw_sum, all_bytes / 1e9, streamed / 1e9, floor_tok_s, floor_all, tok_s, 100 * tok_s / floor_tok_s,
           100 * tok_s / floor_all, med_ms, ar, t_load, time_now_s() - t_start);
    rc = 0;
out:
    if (rc && err[0]) fprintf(stderr, "bench_tp: %s\n", err);
    tp_group_free(g);
    for (int r = 0; r < tp; r++) comm_free(comm[r]);
    for (int r = 0; r < tp; r++)
        if (be[r]) be[r]->ops->destroy(be[r]);
    free(logits);
    free(steps);
    return rc;
}
