/* test_tp_nccl.c: tensor parallelism on N GPUs over NCCL (model/tp_forward.h,
 * backend/cuda/comm_nccl.cu) against one GPU running model_forward.
 *
 * Usage: test_tp_nccl MODEL [--tp N] [--dummy] [--decode STEPS] [--tol REL] [--graphs] [--cpu]
 *   MODEL: a model directory, or a config.json with --dummy (e.g.
 *          tests/fixtures/shapes/qwen3-8b.config.json --dummy: dummy Qwen3-8B).
 * TP=1 reference on GPU 0 (model_load + model_forward on its own backend), then TP=N on GPUs
 * 0..N-1 (one CUDA backend per GPU), the same batch: a prefill of 3 prompts of different
 * lengths in one step, then STEPS decode steps fed with the reference's greedy tokens. With
 * --graphs the decode steps run as CUDA graphs (the all-reduces captured in them: step 1 eager,
 * step 2 captured, the rest replayed), else eagerly. Prints the worst row error
 * max_j |tp - ref| / max(1, max_j |ref|) and the greedy agreement; fails (exit 1) above --tol
 * (default 5e-2, bf16 activations). Where the backends sample on the device
 * (tp_group_can_sample), every decode step also runs tp_group_forward_sample (gather to rank 0
 * + its `sample` op, greedy) and counts rows equal to the argmax of the TP host logits.
 * Needs N GPUs and libnccl; not run by CTest (CI has no GPU). NCCL_NVLS_ENABLE=0 is set.
 * --cpu runs the same program on CPU backends with the in-process comm (checks the harness
 * itself on a machine without GPUs). */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/comm.h"
#include "model/model.h"
#include "model/tp_forward.h"
#include "sample/sample_batch.h"
#include "util/err.h"

#define BLOCK 16
#define NBLOCKS 64
#define MAXB 8
#define MAXT 128

typedef struct {
    int32_t ids[MAXT], pos[MAXT], slot[MAXT], qs[5], sl[4], bt[4 * MAXB], lr[MAXT];
    BatchMeta b;
} Step;

static void step_make(Step *st, int S, const int *len0, const int *chunk, int32_t toks[][MAXT]) {
    memset(st, 0, sizeof *st);
    int T = 0, maxq = 0, maxs = 0;
    for (int s = 0; s < S; s++) {
        st->qs[s] = T;
        for (int i = 0; i < chunk[s]; i++, T++) {
            int p = len0[s] + i;
            st->ids[T] = toks[s][i];
            st->pos[T] = p;
            st->slot[T] = (s * MAXB + p / BLOCK) * BLOCK + p % BLOCK;
            st->lr[T] = T;
        }
        st->sl[s] = len0[s] + chunk[s];
        for (int k = 0; k < MAXB; k++) st->bt[s * MAXB + k] = s * MAXB + k;
        if (chunk[s] > maxq) maxq = chunk[s];
        if (st->sl[s] > maxs) maxs = st->sl[s];
    }
    st->qs[S] = T;
    st->b = (BatchMeta){T, S, st->ids, st->pos, st->slot, st->qs, st->sl, st->bt, MAXB, BLOCK, maxq, maxs,
                        st->lr, T, NULL};
}

static int argmax(const float *x, int V) {
    int k = 0;
    for (int j = 1; j < V; j++) if (x[j] > x[k]) k = j;
    return k;
}

int main(int argc, char **argv) {
    char err[PG_ERR_LEN] = "";
    const char *model = NULL;
    int tp = 2, dummy = 0, decodes = 8, cpu = 0, graphs = 0;
    CommWorld *world = NULL;
    double tol = 5e-2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tp") && i + 1 < argc) tp = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dummy")) dummy = 1;
        else if (!strcmp(argv[i], "--cpu")) cpu = 1;
        else if (!strcmp(argv[i], "--graphs")) graphs = 1;
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc) decodes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tol") && i + 1 < argc) tol = atof(argv[++i]);
        else if (argv[i][0] != '-') model = argv[i];
        else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
    }
    if (!model || tp < 1 || tp > 8) {
        fprintf(stderr, "usage: test_tp_nccl MODEL [--tp N] [--dummy] [--decode STEPS] [--tol REL] [--graphs] [--cpu]\n");
        return 2;
    }
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    ModelLoadOptions mo = {{dummy ? LOAD_FORMAT_DUMMY : LOAD_FORMAT_AUTO, DT_BF16, 0}, MAXT, MAXT};
    Backend *be[8] = {0}, *be_ref = NULL;
    Comm *comm[8] = {0};
    Model *ref = NULL;
    TpGroup *g = NULL;
    int rc = 1;
    BackendOptions bo = {cpu ? 1 : 0, 0, DT_COUNT, !graphs};
    /* the reference on its own backend (GPU 0): rank 0's graphs see only rank 0's steps */
    if (!(be_ref = backend_new(cpu ? "cpu" : "cuda", &bo, err))) goto out;
    for (int r = 0; r < tp; r++) {
        bo.device_id = r;
        if (!(be[r] = backend_new(cpu ? "cpu" : "cuda", &bo, err))) goto out;
    }
    /* The CUDA backend's ops run on the calling thread's current device, and backend_new
     * made the last GPU current: the reference runs on GPU 0 from this thread. */
    if (!cpu) cudaSetDevice(0);
    if (model_load(&ref, model, be_ref, &mo, err) || model_alloc_kv(ref, NBLOCKS, BLOCK, err)) goto out;
    if (cpu) {
        if (!(world = comm_world_cpu_new(tp, err))) goto out;
        for (int r = 0; r < tp; r++)
            if (!(comm[r] = comm_cpu_new(world, r, err))) goto out;
    } else if (comm_nccl_new_all(comm, be, tp, err)) {
        goto out;
    }
    if (tp_group_new(&g, model, tp, be, comm, &mo, err) || tp_group_alloc_kv(g, NBLOCKS, BLOCK, err)) goto out;
    {
        const int V = ref->cfg.vocab_size;
        float *a = malloc(sizeof(float) * MAXT * (size_t)V), *b = malloc(sizeof(float) * MAXT * (size_t)V);
        int32_t toks[4][MAXT];
        int len0[4] = {0, 0, 0}, chunk[4] = {21, 7, 33}, agree = 0, total = 0, s_agree = 0, s_total = 0;
        const int dev_sample = tp_group_can_sample(g);
        SampleRow srows[3];
        for (int r = 0; r < 3; r++)
            srows[r] = (SampleRow){.top_p = 1, .log_min_p = -INFINITY, .repetition_penalty = 1, .num_logprobs = -1,
                                   .mask_index = -1};
        SampleBatch sb;
        memset(&sb, 0, sizeof sb);
        sb.vocab_size = V;
        sb.mask_words = (V + 31) / 32;
        sb.num_rows = 3;
        sb.rows = srows;
        double worst = 0;
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < chunk[s]; i++) toks[s][i] = (int32_t)((s * 7919 + i * 104729 + 13) % V);
        Step st;
        step_make(&st, 3, len0, chunk, toks);
        for (int step = 0; step <= decodes; step++) {
            if (!cpu) cudaSetDevice(0);
            if (model_forward(ref, &st.b, b, err) || tp_group_forward(g, &st.b, a, err)) { free(a); free(b); goto out; }
            if (dev_sample && step > 0) {
                /* the same step again, sampled on rank 0 (rewrites the same K/V) */
                int32_t got[3];
                if (tp_group_forward_sample(g, &st.b, &sb, got, NULL, err)) { free(a); free(b); goto out; }
                for (int s = 0; s < 3; s++) s_agree += got[s] == argmax(a + (size_t)s * V, V), s_total++;
            }
            for (int r = 0; r < st.b.num_logits_rows; r++) {
                const float *x = a + (size_t)r * V, *y = b + (size_t)r * V;
                double mx = 1, d = 0;
                for (int j = 0; j < V; j++) {
                    if (fabs(y[j]) > mx) mx = fabs(y[j]);
                    if (fabs((double)x[j] - y[j]) > d) d = fabs((double)x[j] - y[j]);
                }
                if (d / mx > worst) worst = d / mx;
                agree += argmax(x, V) == argmax(y, V);
                total++;
            }
            int nc[4] = {1, 1, 1};
            for (int s = 0; s < 3; s++) {
                toks[s][0] = argmax(b + (size_t)(st.qs[s + 1] - 1) * V, V);
                len0[s] = st.sl[s];
            }
            step_make(&st, 3, len0, nc, toks);
        }
        printf("{\"model\": \"%s\", \"device\": \"%s\", \"tp\": %d, \"graphs\": %d, \"worst_rel_err\": %.4g, "
               "\"argmax_agree\": %d, \"rows\": %d, \"device_sample_agree\": %d, \"device_sample_rows\": %d}\n",
               model, cpu ? "cpu" : "cuda", tp, graphs, worst, agree, total, dev_sample ? s_agree : -1, s_total);
        rc = worst <= tol && s_agree == s_total ? 0 : 1;
        free(a);
        free(b);
    }
out:
    if (rc && err[0]) fprintf(stderr, "test_tp_nccl: %s\n", err);
    tp_group_free(g);
    for (int r = 0; r < tp; r++) comm_free(comm[r]);
    comm_world_cpu_free(world);
    model_free(ref);
    for (int r = 0; r < tp; r++)
        if (be[r]) be[r]->ops->destroy(be[r]);
    if (be_ref) be_ref->ops->destroy(be_ref);
    return rc;
}
