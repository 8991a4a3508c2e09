/* graph.cu: CUDA graphs for decode steps, built from a log of the step's ops.
 *
 * A decode-only step of T <= CUDA_GRAPH_MAX_BS sequences is recorded (backend_cuda.cu appends
 * an OpRec per op) rather than launched. At logits, cuda_graph_finish_step() compares the log
 * with the one kept for batch size T: if equal and a graph exists, it is replayed; if equal and
 * none exists yet, it is captured (the step before ran eagerly, so GEMM plans, autotuning and
 * scratch buffers exist and nothing allocates or synchronizes during capture); otherwise the
 * log runs eagerly and becomes the new reference. The log holds every pointer and size a
 * kernel is launched with, and CudaCtx.gen changes when a scratch buffer moves, so a replay
 * runs exactly the launches an eager step would.
 *
 * Tensor parallelism: the all-reduces are records too (OP_ALLREDUCE, appended by comm_nccl.cu),
 * so graphs contain them. Each rank has its own backend and graphs; the ranks run the same
 * batches in lock step and the replay / capture / eager decision depends only on the batch and
 * on scratch sizes that are equal on every rank, so the collectives pair up. */
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "util/timeutil.h"
}

OpRec *cuda_graph_append(CudaCtx *c) {
    if (c->nlog == c->cap_log) {
        int cap = c->cap_log ? c->cap_log * 2 : 1024;
        OpRec *n = (OpRec *)realloc(c->log, sizeof(OpRec) * cap);
        if (!n) { fprintf(stderr, "cuda graph: out of host memory\n"); abort(); }
        c->log = n;
        c->cap_log = cap;
    }
    OpRec *r = &c->log[c->nlog++];
    memset(r, 0, sizeof *r);
    return r;
}

static void oprec_exec(CudaCtx *c, const OpRec *r);

void cuda_oprec_run(CudaCtx *c, const OpRec *r) {
    if (!c->profile || c->capturing || c->T < 512) {
        oprec_exec(c, r);
        return;
    }
    CUDA_CHECK(cudaEventRecord(c->prof_e0, c->stream));
    oprec_exec(c, r);
    CUDA_CHECK(cudaEventRecord(c->prof_e1, c->stream));
    CUDA_CHECK(cudaEventSynchronize(c->prof_e1));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, c->prof_e0, c->prof_e1));
    c->prof_ms[r->kind] += ms;
    c->prof_n[r->kind]++;
    if (r->kind == OP_MATMUL || r->kind == OP_LOGITS) {
        int N = r->i[1], K = r->i[2], j = 0;
        while (j < c->prof_nmm && !(c->prof_mm[j].N == N && c->prof_mm[j].K == K)) j++;
        if (j == c->prof_nmm && j < 16) { c->prof_nmm++; c->prof_mm[j].N = N; c->prof_mm[j].K = K; }
        if (j < 16) {
            c->prof_mm[j].ms += ms;
            c->prof_mm[j].flops += 2.0 * r->i[0] * N * (double)K;
            c->prof_mm[j].n++;
        }
    }
}

void cuda_profile_report(CudaCtx *c) {
    static const char *names[] = {"?", "embed", "rmsnorm", "matmul", "qk_norm_rope", "kv_store",
                                  "attention", "silu_mul", "gather_rows", "logits", "all_reduce"};
    double tot = 0;
    for (int k = 1; k <= OP_ALLREDUCE; k++) tot += c->prof_ms[k];
    if (tot <= 0) return;
    fprintf(stderr, "cuda profile (eager ops of steps with T >= 512), total %.2f ms:\n", tot);
    for (int k = 1; k <= OP_ALLREDUCE; k++)
        if (c->prof_n[k])
            fprintf(stderr, "  %-13s %9.2f ms %5.1f%%  (%ld calls)\n", names[k], c->prof_ms[k],
                    100 * c->prof_ms[k] / tot, c->prof_n[k]);
    for (int j = 0; j < c->prof_nmm; j++)
        fprintf(stderr, "  gemm N=%-6d K=%-6d %9.2f ms  %6.1f TFLOP/s (%ld calls)\n",
                c->prof_mm[j].N, c->prof_mm[j].K, c->prof_mm[j].ms,
                c->prof_mm[j].flops / (c->prof_mm[j].ms * 1e-3) / 1e12, c->prof_mm[j].n);
}

static void oprec_exec(CudaCtx *c, const OpRec *r) {
    switch (r->kind) {
    case OP_EMBED:
        cuda_embed(c, (bf16 *)r->p[0], (const bf16 *)r->p[1], r->i[0]);
        break;
    case OP_RMSNORM:
        cuda_rmsnorm(c, (bf16 *)r->p[0], (bf16 *)r->p[1], (const bf16 *)r->p[2],
                     (const bf16 *)r->p[3], r->i[0], r->i[1], r->f);
        break;
    case OP_MATMUL:
        cuda_gemm(c, (void *)r->p[0], 0, (const bf16 *)r->p[1], (const bf16 *)r->p[2], r->i[0],
                  r->i[1], r->i[2]);
        if (r->p[3]) cuda_add_bias(c, (bf16 *)r->p[0], (const bf16 *)r->p[3], r->i[0], r->i[1]);
        break;
    case OP_QKROPE: {
        RopeParams rp;
        memset(&rp, 0, sizeof rp);
        rp.theta = r->rd[0]; rp.factor = r->rd[1]; rp.low_freq_factor = r->rd[2];
        rp.high_freq_factor = r->rd[3]; rp.head_dim = r->ri[0];
        rp.scaling = (RopeScalingType)r->ri[1]; rp.original_max_position_embeddings = r->ri[2];
        cuda_qk_norm_rope(c, (bf16 *)r->p[0], (bf16 *)r->p[1], (const bf16 *)r->p[2],
                          (const bf16 *)r->p[3], r->i[0], r->i[1], r->i[2], r->f, &rp);
        break;
    }
    case OP_KVSTORE:
        cuda_kv_store(c, (bf16 *)r->p[0], (bf16 *)r->p[1], (const bf16 *)r->p[2],
                      (const bf16 *)r->p[3], r->i[0], r->i[1]);
        break;
    case OP_ATTN:
        cuda_attention(c, (bf16 *)r->p[0], (const bf16 *)r->p[1], (const bf16 *)r->p[2],
                       (const bf16 *)r->p[3], r->i[0], r->i[1], r->i[2]);
        break;
    case OP_SILU:
        cuda_silu_mul(c, (bf16 *)r->p[0], (const bf16 *)r->p[1], (const bf16 *)r->p[2], r->i[0],
                      r->i[1]);
        break;
    case OP_GATHER:
        cuda_gather_rows(c, (bf16 *)r->p[0], (const bf16 *)r->p[1], r->i[0]);
        break;
    case OP_LOGITS:
        cuda_gemm(c, (void *)r->p[0], 1, (const bf16 *)r->p[1], (const bf16 *)r->p[2], r->i[0],
                  r->i[1], r->i[2]);
        break;
    case OP_ALLREDUCE:
        cuda_comm_exec(c, r);
        break;
    default:
        fprintf(stderr, "cuda graph: bad op record %d\n", r->kind);
        abort();
    }
}

/* Median of 5 timed runs (after one warm-up) of the n matmul records starting at log[i],
 * fused into one multi-segment GEMV or one after the other. Eager only (synchronizes). */
static float time_group_us(CudaCtx *c, int i, int n, const GemvSegs *sg, int fused) {
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    float ts[5];
    for (int it = -1; it < 5; it++) {
        CUDA_CHECK(cudaEventRecord(e0, c->stream));
        if (fused) cuda_gemv1_multi(c, sg, 0, (const bf16 *)c->log[i].p[1], c->log[i].i[0], c->log[i].i[2]);
        else
            for (int j = 0; j < n; j++) oprec_exec(c, &c->log[i + j]);
        CUDA_CHECK(cudaEventRecord(e1, c->stream));
        CUDA_CHECK(cudaEventSynchronize(e1));
        float ms;
        CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        if (it >= 0) ts[it] = ms * 1000.f;
    }
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    for (int a = 1; a < 5; a++)
        for (int b = a; b > 0 && ts[b] < ts[b - 1]; b--) { float t = ts[b]; ts[b] = ts[b - 1]; ts[b - 1] = t; }
    return ts[2];
}

/* Consecutive small-batch matmuls that read the same x (q/k/v, gate/up) become one
 * multi-segment GEMV launch when that measured faster than running them one by one (the
 * first time a group shape is seen, outside capture). Returns how many records it consumed. */
static int try_fuse_matmuls(CudaCtx *c, int i) {
    const OpRec *a = &c->log[i];
    if (!c->fuse || a->kind != OP_MATMUL || a->p[3] || a->i[0] > GEMV_MAX_ROWS) return 0;
    int n = 0;
    GemvSegs sg;
    memset(&sg, 0, sizeof sg);
    while (i + n < c->nlog && n < GEMV_MAX_SEGS) {
        const OpRec *r = &c->log[i + n];
        if (r->kind != OP_MATMUL || r->p[3] || r->p[1] != a->p[1] || r->i[0] != a->i[0] ||
            r->i[2] != a->i[2] || (r->i[1] % 4) || r->p[0] == a->p[1])
            break;
        if (!cuda_gemv_supported(r->i[0], r->i[1], r->i[2], r->p[1], r->p[2], r->p[0])) break;
        sg.w[n] = (const bf16 *)r->p[2];
        sg.out[n] = (void *)r->p[0];
        sg.start[n + 1] = sg.start[n] + r->i[1];
        n++;
    }
    if (n < 2) return 0;
    sg.nseg = n;
    int k = 0;
    for (; k < c->nfuse; k++) {
        if (c->fuse_plans[k].rows != a->i[0] || c->fuse_plans[k].K != a->i[2] || c->fuse_plans[k].n != n) continue;
        int same = 1;
        for (int j = 0; j < n; j++) same &= c->fuse_plans[k].N[j] == c->log[i + j].i[1];
        if (same) break;
    }
    if (k == c->nfuse) {
        if (c->capturing || c->nfuse == 64) return 0;
        c->nfuse++;
        c->fuse_plans[k].rows = a->i[0];
        c->fuse_plans[k].K = a->i[2];
        c->fuse_plans[k].n = n;
        for (int j = 0; j < n; j++) c->fuse_plans[k].N[j] = c->log[i + j].i[1];
        c->fuse_plans[k].t_sep = time_group_us(c, i, n, &sg, 0);
        c->fuse_plans[k].t_fused = time_group_us(c, i, n, &sg, 1);
        c->fuse_plans[k].use = c->fuse_plans[k].t_fused < c->fuse_plans[k].t_sep;
        if (getenv("PAGELLM_CUDA_GEMM_LOG"))
            fprintf(stderr, "fuse rows=%d K=%d N=%d+%d+%d: fused %.1f us, separate %.1f us -> %s\n",
                    a->i[0], a->i[2], c->fuse_plans[k].N[0], c->fuse_plans[k].N[1],
                    n > 2 ? c->fuse_plans[k].N[2] : 0, c->fuse_plans[k].t_fused,
                    c->fuse_plans[k].t_sep, c->fuse_plans[k].use ? "fused" : "separate");
    }
    if (!c->fuse_plans[k].use) return 0;
    cuda_gemv1_multi(c, &sg, 0, (const bf16 *)a->p[1], a->i[0], a->i[2]);
    return n;
}

static void run_log(CudaCtx *c) {
    for (int i = 0; i < c->nlog;) {
        int used = try_fuse_matmuls(c, i);
        if (used) { i += used; continue; }
        cuda_oprec_run(c, &c->log[i]);
        i++;
    }
}

void cuda_graph_flush(CudaCtx *c) {
    if (!c->recording) return;
    c->recording = 0;
    run_log(c);
    c->nlog = 0;
}

static int graph_matches(const CudaCtx *c, const CudaGraph *g) {
    return g->ops && g->nops == c->nlog && g->gen == c->gen && g->T == c->T && g->S == c->S &&
           g->R == c->R && g->mbps == c->max_blocks_per_seq && g->block_size == c->block_size &&
           g->num_decode == c->num_decode &&
           memcmp(g->ops, c->log, sizeof(OpRec) * (size_t)c->nlog) == 0;
}

void cuda_graph_finish_step(CudaCtx *c) {
    c->recording = 0;
    CudaGraph *g = &c->graphs[c->T];
    if (graph_matches(c, g) && g->exec) {
        CUDA_CHECK(cudaGraphLaunch(g->exec, c->stream));
        g->replays++;
    } else if (graph_matches(c, g)) {
        double t0 = time_now_s();
        cudaGraph_t graph;
        c->capturing = 1;
        CUDA_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
        run_log(c);
        CUDA_CHECK(cudaStreamEndCapture(c->stream, &graph));
        c->capturing = 0;
        CUDA_CHECK(cudaGraphInstantiate(&g->exec, graph, 0));
        CUDA_CHECK(cudaGraphDestroy(graph));
        c->graph_capture_s += time_now_s() - t0;
        c->graph_captures++;
        CUDA_CHECK(cudaGraphLaunch(g->exec, c->stream));
    } else {
        run_log(c); /* eager: may create plans, autotune, grow scratch (bumping gen) */
        if (g->exec) CUDA_CHECK(cudaGraphExecDestroy(g->exec));
        g->exec = NULL;
        free(g->ops);
        g->ops = (OpRec *)malloc(sizeof(OpRec) * (size_t)(c->nlog ? c->nlog : 1));
        if (!g->ops) { fprintf(stderr, "cuda graph: out of host memory\n"); abort(); }
        memcpy(g->ops, c->log, sizeof(OpRec) * (size_t)c->nlog);
        g->nops = c->nlog;
        g->gen = c->gen;
        g->T = c->T; g->S = c->S; g->R = c->R; g->mbps = c->max_blocks_per_seq;
        g->block_size = c->block_size; g->num_decode = c->num_decode;
        g->decode_splits = c->decode_splits;
    }
    c->nlog = 0;
}

void cuda_graph_free(CudaCtx *c) {
    for (int i = 0; i <= CUDA_GRAPH_MAX_BS; i++) {
        CudaGraph *g = &c->graphs[i];
        if (g->exec) cudaGraphExecDestroy(g->exec);
        free(g->ops);
        memset(g, 0, sizeof *g);
    }
    free(c->log);
    c->log = NULL;
    c->nlog = c->cap_log = 0;
}
