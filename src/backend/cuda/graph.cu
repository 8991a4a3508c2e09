/* graph.cu: CUDA graphs for decode steps, built from a log of the step's ops.
 *
 * A decode-only step is recorded (backend_cuda.cu appends an OpRec per op) rather than
 * launched when it has a graph batch size B (cuda_graph_bucket): with capture sizes set by
 * capture_graphs (vLLM's buckets: 1, 2, 4, 8, 16, 24, ..., 256, 272, ...) B is the smallest
 * size >= T and set_batch has padded the step to B rows; without them (tests, benchmarks that
 * drive ops directly) B = T, up to CUDA_GRAPH_MAX_BS. At logits, cuda_graph_finish_step()
 * compares the log with the one kept for B: if equal and a graph exists, it is replayed; if
 * equal and none exists yet, it is captured (the step before ran eagerly, so GEMM plans,
 * autotuning and scratch buffers exist and nothing allocates or synchronizes during capture);
 * otherwise the log runs eagerly and becomes the new reference. The log holds every pointer and
 * size a kernel is launched with, and CudaCtx.gen changes when a scratch buffer moves, so a
 * replay runs exactly the launches an eager step would. Nothing that varies between decode
 * steps of one B is baked in: the step's metadata sits at offsets that depend on B only, and
 * the block-table stride is read on the device.
 *
 * cuda_capture_graphs() (the backend op capture_graphs) drives that machinery at start-up:
 * dummy decode batches of every capture size through the model's forward, a warm-up pass and
 * a capture pass, largest first, after reserving the buffers later steps could grow.
 *
 * Peephole rewrites (run_log): the log of a step is known before any of it runs, and is the
 * same on every replay, so run_log may launch a group of records differently from one by one;
 * the choice depends only on the log and on plans made by the eager step that precedes every
 * capture, so it is baked into the graph. try_fuse_matmuls: consecutive matmuls reading the same
 * x become one multi-segment GEMV. try_fuse_pro (PAGELLM_CUDA_FUSE_PRO, where GEMV v4 may run)
 * folds the small ops between GEMVs into GEMV v4 launches (gemv_pipe.cu's GemvPro variants,
 * bit-identical to the ops they replace): silu_mul into the matmul that reads its output (the
 * blocks compute silu(gate) * up themselves); an rmsnorm into the GEMV group that reads its
 * output (each block normalizes its rows itself); and the rmsnorm's residual add into the matmul
 * that produced its input (an ADD epilogue updates the residual stream in place). Per decoder
 * layer that leaves qkv(+norm), rope, kv store, attention, o(+add), gate/up(+norm), down(+silu,
 * +add). Outputs that are then never written (the silu output, the norm output, the matmul
 * output that fed the add) must not be read later before being overwritten (buf_dead_after),
 * and only matmuls that would run as GEMVs anyway are fused (never cuBLASLt ones).
 * try_fuse_qkv (PAGELLM_CUDA_FUSE_QKV): at batch sizes above GEMV_MAX_ROWS, a layer's q, k, v
 * matmuls over adjacent weights become one matmul whose output the fused rope + KV store reads.
 * try_pair_matmuls (PAGELLM_CUDA_GEMM_PAIR): at batch sizes above GEMV_MAX_ROWS, the k/v and
 * gate/up matmul pairs (same x, same shape) become one cuBLASLt matmul of batch 2
 * (gemm_pair.cu) where that measured faster.
 *
 * Step tuner (PAGELLM_CUDA_STEP_TUNE, on by default): at the first eager step of a small graph
 * size, the step is captured and its replays timed with the prologue fusions on and off; the size
 * keeps the faster for its captures and replays.
 *
 * Tensor parallelism: the all-reduces are records too (OP_ALLREDUCE, appended by comm_nccl.cu),
 * so graphs contain them. Each rank has its own backend and graphs; the ranks run the same
 * batches in lock step and the replay / capture / eager decision depends only on the batch and
 * on scratch sizes that are equal on every rank, so the collectives pair up. */
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "util/err.h"
#include "util/log.h"
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
    if (r->kind == OP_ATTN) c->prof_attn_flops += 4.0 * c->prof_attn_pairs * r->i[0] * r->i[2];
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
    for (int k = 1; k <= OP_ALLREDUCE; k++) {
        if (!c->prof_n[k]) continue;
        fprintf(stderr, "  %-13s %9.2f ms %5.1f%%  (%ld calls)", names[k], c->prof_ms[k],
                100 * c->prof_ms[k] / tot, c->prof_n[k]);
        if (k == OP_ATTN) /* 4 flops a (query, key) pair, head and dimension: Q K^T and P V */
            fprintf(stderr, "  %.1f TFLOP/s", c->prof_attn_flops / (c->prof_ms[k] * 1e-3) / 1e12);
        fprintf(stderr, "\n");
    }
    for (int j = 0; j < c->prof_nmm; j++)
        fprintf(stderr, "  gemm N=%-6d K=%-6d %9.2f ms  %6.1f TFLOP/s (%ld calls)\n",
                c->prof_mm[j].N, c->prof_mm[j].K, c->prof_mm[j].ms,
                c->prof_mm[j].flops / (c->prof_mm[j].ms * 1e-3) / 1e12, c->prof_mm[j].n);
}

/* The RopeParams an OP_QKROPE record carries (cu_qk_norm_rope packs them into rd / ri). */
static RopeParams oprec_rope(const OpRec *r) {
    RopeParams rp;
    memset(&rp, 0, sizeof rp);
    rp.theta = r->rd[0]; rp.factor = r->rd[1]; rp.low_freq_factor = r->rd[2];
    rp.high_freq_factor = r->rd[3]; rp.head_dim = r->ri[0];
    rp.scaling = (RopeScalingType)r->ri[1]; rp.original_max_position_embeddings = r->ri[2];
    return rp;
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
        RopeParams rp = oprec_rope(r);
        cuda_qk_norm_rope(c, (bf16 *)r->p[0], (bf16 *)r->p[1], (const bf16 *)r->p[2],
                          (const bf16 *)r->p[3], r->i[0], r->i[1], r->i[2], r->f, &rp);
        break;
    }
    case OP_KVSTORE:
        cuda_kv_store(c, (void *)r->p[0], (void *)r->p[1], (const bf16 *)r->p[2],
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
typedef struct GroupRun { CudaCtx *c; int i, n; const GemvSegs *sg; int fused; } GroupRun;
static void group_run(void *arg) {
    GroupRun *g = (GroupRun *)arg;
    CudaCtx *c = g->c;
    if (g->fused == 1) cuda_gemv1_multi(c, g->sg, 0, (const bf16 *)c->log[g->i].p[1], c->log[g->i].i[0], c->log[g->i].i[2]);
    else if (g->fused == 4) cuda_gemv4_multi(c, g->sg, 0, (const bf16 *)c->log[g->i].p[1], c->log[g->i].i[0], c->log[g->i].i[2]);
    else
        for (int j = 0; j < g->n; j++) oprec_exec(c, &c->log[g->i + j]);
}
static float time_group_us(CudaCtx *c, int i, int n, const GemvSegs *sg, int fused) {
    GroupRun g = {c, i, n, sg, fused};
    return cuda_time_median_us(c, group_run, &g);
}

/* The matmuls at log[i], log[i+1], ... (at most GEMV_MAX_SEGS) that read log[i]'s x with its
 * rows and K, no bias, and could be segments of one multi-segment GEMV; fills sg, returns how
 * many (0 when log[i] itself cannot be one). */
static int mm_group_scan(const CudaCtx *c, int i, GemvSegs *sg) {
    const OpRec *a = &c->log[i];
    memset(sg, 0, sizeof *sg);
    if (a->kind != OP_MATMUL || a->p[3] || a->i[0] > GEMV_MAX_ROWS) return 0;
    int n = 0;
    while (i + n < c->nlog && n < GEMV_MAX_SEGS) {
        const OpRec *r = &c->log[i + n];
        if (r->kind != OP_MATMUL || r->p[3] || r->p[1] != a->p[1] || r->i[0] != a->i[0] ||
            r->i[2] != a->i[2] || (r->i[1] % 4) || r->p[0] == a->p[1])
            break;
        if (!cuda_gemv_supported(r->i[0], r->i[1], r->i[2], r->p[1], r->p[2], r->p[0])) break;
        sg->w[n] = (const bf16 *)r->p[2];
        sg->out[n] = (void *)r->p[0];
        sg->start[n + 1] = sg->start[n] + r->i[1];
        n++;
    }
    sg->nseg = n;
    return n;
}

/* The fuse plan of the group of n >= 2 matmuls at log[i] (mm_group_scan's sg): found, or made
 * now, timed (eager only) unless a GEMV path is forced; -1 where none can be made (during a
 * capture, or the table is full). */
static int fuse_plan_get(CudaCtx *c, int i, int n, const GemvSegs *sg) {
    const OpRec *a = &c->log[i];
    int k = 0;
    for (; k < c->nfuse; k++) {
        if (c->fuse_plans[k].rows != a->i[0] || c->fuse_plans[k].K != a->i[2] || c->fuse_plans[k].n != n) continue;
        int same = 1;
        for (int j = 0; j < n; j++) same &= c->fuse_plans[k].N[j] == c->log[i + j].i[1];
        if (same) return k;
    }
    if (c->capturing || c->nfuse == 64) return -1;
    c->nfuse++;
    c->fuse_plans[k].rows = a->i[0];
    c->fuse_plans[k].K = a->i[2];
    c->fuse_plans[k].n = n;
    for (int j = 0; j < n; j++) c->fuse_plans[k].N[j] = c->log[i + j].i[1];
    int g4 = (c->gemv4 || c->gemv_mode == 4) && cuda_gemv4_supported(a->i[0], a->i[2], a->p[1], sg);
    if (c->gemv_mode == 1 || c->gemv_mode == 4) { /* a forced path (tests): no timing */
        c->fuse_plans[k].use = c->gemv_mode == 4 && g4 ? 4 : 1;
        return k;
    }
    c->fuse_plans[k].t_sep = time_group_us(c, i, n, sg, 0);
    c->fuse_plans[k].t_fused = time_group_us(c, i, n, sg, 1);
    c->fuse_plans[k].t_fused4 = g4 ? time_group_us(c, i, n, sg, 4) : 1e30f;
    {
        float best = c->fuse_plans[k].t_sep;
        c->fuse_plans[k].use = 0;
        if (c->fuse_plans[k].t_fused < best) { best = c->fuse_plans[k].t_fused; c->fuse_plans[k].use = 1; }
        if (c->fuse_plans[k].t_fused4 < best) c->fuse_plans[k].use = 4;
    }
    if (getenv("PAGELLM_CUDA_GEMM_LOG"))
        fprintf(stderr, "fuse rows=%d K=%d N=%d+%d+%d: fused v1 %.1f us, fused v4 %.1f us, separate %.1f us -> %s\n",
                a->i[0], a->i[2], c->fuse_plans[k].N[0], c->fuse_plans[k].N[1],
                n > 2 ? c->fuse_plans[k].N[2] : 0, c->fuse_plans[k].t_fused,
                g4 ? c->fuse_plans[k].t_fused4 : -1.f, c->fuse_plans[k].t_sep,
                c->fuse_plans[k].use == 4 ? "fused v4" : c->fuse_plans[k].use ? "fused v1" : "separate");
    return k;
}

/* Consecutive small-batch matmuls that read the same x (q/k/v, gate/up) become one
 * multi-segment GEMV launch when that measured faster than running them one by one (the
 * first time a group shape is seen, outside capture). Returns how many records it consumed. */
static int try_fuse_matmuls(CudaCtx *c, int i) {
    if (!c->fuse) return 0;
    GemvSegs sg;
    const int n = mm_group_scan(c, i, &sg);
    if (n < 2) return 0;
    const int k = fuse_plan_get(c, i, n, &sg);
    if (k < 0 || !c->fuse_plans[k].use) return 0;
    const OpRec *a = &c->log[i];
    if (c->fuse_plans[k].use == 4) cuda_gemv4_multi(c, &sg, 0, (const bf16 *)a->p[1], a->i[0], a->i[2]);
    else cuda_gemv1_multi(c, &sg, 0, (const bf16 *)a->p[1], a->i[0], a->i[2]);
    return n;
}

/* Two consecutive matmuls reading the same x with the same shape, no bias (k and v, gate and
 * up) at row counts cuBLASLt runs: one batched cuBLASLt matmul where gemm_pair.cu's plan says so.
 * Returns the records consumed (0 or 2). */
static int try_pair_matmuls(CudaCtx *c, int i) {
    if (!c->gemm_pair || i + 1 >= c->nlog) return 0;
    const OpRec *a = &c->log[i], *b = &c->log[i + 1];
    if (a->kind != OP_MATMUL || b->kind != OP_MATMUL || a->p[3] || b->p[3] || a->p[1] != b->p[1] ||
        a->i[0] != b->i[0] || a->i[1] != b->i[1] || a->i[2] != b->i[2] || a->p[0] == b->p[0] ||
        a->p[0] == a->p[1] || b->p[0] == b->p[1])
        return 0;
    if (!cuda_gemm_pair(c, (void *)a->p[0], (void *)b->p[0], (const bf16 *)a->p[1], (const bf16 *)a->p[2],
                        (const bf16 *)b->p[2], a->i[0], a->i[1], a->i[2]))
        return 0;
    return 2;
}

/* qk_norm_rope followed by the kv_store of its k: one launch (cuda_qk_norm_rope_store) instead
 * of two. Returns the records consumed (0 or 2). */
static int try_fuse_rope_store(CudaCtx *c, int i) {
    if (!c->fuse_rope_store || i + 1 >= c->nlog) return 0;
    const OpRec *a = &c->log[i], *b = &c->log[i + 1];
    if (a->kind != OP_QKROPE || b->kind != OP_KVSTORE || b->p[2] != a->p[1] || b->i[0] != a->i[1] ||
        b->i[1] != a->i[2])
        return 0;
    RopeParams rp = oprec_rope(a);
    cuda_qk_norm_rope_store(c, (bf16 *)a->p[0], (bf16 *)a->p[1], (const bf16 *)b->p[3],
                            (const bf16 *)a->p[2], (const bf16 *)a->p[3], a->i[0], a->i[1], a->i[2],
                            a->f, &rp, (void *)b->p[0], (void *)b->p[1]);
    return 2;
}

/* ---------------- fused QKV (PAGELLM_CUDA_FUSE_QKV) ---------------- */

/* The q, k, v matmuls of a layer as ONE matmul, where their weights lie one after the other
 * (the CUDA backend's weight arena loads them in that order) and the three are followed by the
 * fused qk_norm_rope + kv_store of their outputs: out qkv_buf[rows, Nq + 2 Nkv] = x @ [Wq; Wk;
 * Wv]^T, then cuda_qkv_norm_rope_store reads q, k and v from its rows and leaves q, k and v as
 * the unfused records would have (plus the cache rows). Why: at 256 rows the 8B shape's q
 * projection is a grid of only 64 output tiles and the k/v pair one of 32 on 132 SMs. Measured
 * (run17, H100, bench launches): the fused matmul 34.2 us against 41.8 for q + the k/v pair at
 * 256 rows, 26.7 against 34.5 at 64 (graph-timed alone, run20: 23.4 us at 256); the engine's
 * 256 x 512/512 run +1.5%. (Session 10 predicted ~20 us, from
 * a "one tile's serial time" rule that the measurement refuted.) Decode graphs at row
 * counts cuBLASLt runs only (the GEMV side already runs q, k, v as one multi-segment launch).
 * Per shape (rows, Nq, Nkv, K), timed once outside captures: the fused matmul against q then the
 * k/v pair (or k and v), the faster kept (PAGELLM_CUDA_FUSE_QKV=2: always fused, tests). */

typedef struct QkvRun {
    CudaCtx *c; int fused, rows, Nq, Nkv, K;
    void *q, *k, *v; const bf16 *x, *wq, *wk, *wv;
} QkvRun;
static void qkv_run(void *arg) {
    QkvRun *r = (QkvRun *)arg;
    if (r->fused) {
        cuda_gemm(r->c, r->c->qkv_buf, 0, r->x, r->wq, r->rows, r->Nq + 2 * r->Nkv, r->K);
        return;
    }
    cuda_gemm(r->c, r->q, 0, r->x, r->wq, r->rows, r->Nq, r->K);
    if (!cuda_gemm_pair(r->c, r->k, r->v, r->x, r->wk, r->wv, r->rows, r->Nkv, r->K)) {
        cuda_gemm(r->c, r->k, 0, r->x, r->wk, r->rows, r->Nkv, r->K);
        cuda_gemm(r->c, r->v, 0, r->x, r->wv, r->rows, r->Nkv, r->K);
    }
}

/* Whether the fused matmul runs for this shape: the plan's choice, made (and timed) here on
 * first sight outside a capture. -1: no plan and none can be made now. */
static int qkv_plan_use(CudaCtx *c, QkvRun *r) {
    for (int j = 0; j < c->nqkv; j++)
        if (c->qkv_plans[j].rows == r->rows && c->qkv_plans[j].Nq == r->Nq &&
            c->qkv_plans[j].Nkv == r->Nkv && c->qkv_plans[j].K == r->K)
            return c->qkv_plans[j].use;
    if (c->capturing || c->nqkv == (int)(sizeof c->qkv_plans / sizeof c->qkv_plans[0])) return -1;
    int j = c->nqkv++;
    c->qkv_plans[j].rows = r->rows; c->qkv_plans[j].Nq = r->Nq;
    c->qkv_plans[j].Nkv = r->Nkv; c->qkv_plans[j].K = r->K;
    if (c->fuse_qkv == 2) {
        c->qkv_plans[j].use = 1;
        return 1;
    }
    r->fused = 1;
    const float tf = cuda_time_median_us(c, qkv_run, r);
    r->fused = 0;
    const float ts = cuda_time_median_us(c, qkv_run, r);
    c->qkv_plans[j].use = tf < ts;
    if (getenv("PAGELLM_CUDA_GEMM_LOG"))
        fprintf(stderr, "gemm qkv rows=%d Nq=%d Nkv=%d K=%d: fused %.1f us, q + k/v %.1f us -> %s\n", r->rows,
                r->Nq, r->Nkv, r->K, tf, ts, tf < ts ? "fused" : "separate");
    return c->qkv_plans[j].use;
}

/* Returns the records consumed (0 or 5: the three matmuls, the rope and the KV store). */
static int try_fuse_qkv(CudaCtx *c, int i) {
    if (!c->fuse_qkv || !c->fuse_rope_store || i + 4 >= c->nlog) return 0;
    const OpRec *a = &c->log[i], *b = &c->log[i + 1], *v = &c->log[i + 2], *r = &c->log[i + 3],
                *s = &c->log[i + 4];
    if (a->kind != OP_MATMUL || b->kind != OP_MATMUL || v->kind != OP_MATMUL || r->kind != OP_QKROPE ||
        s->kind != OP_KVSTORE)
        return 0;
    const void *x = a->p[1];
    const int rows = a->i[0], Nq = a->i[1], Nkv = b->i[1], K = a->i[2];
    if (a->p[3] || b->p[3] || v->p[3] || b->p[1] != x || v->p[1] != x || b->i[0] != rows ||
        v->i[0] != rows || b->i[2] != K || v->i[2] != K || v->i[1] != Nkv || rows <= GEMV_MAX_ROWS)
        return 0;
    const bf16 *wq = (const bf16 *)a->p[2], *wk = (const bf16 *)b->p[2], *wv = (const bf16 *)v->p[2];
    if (wk != wq + (size_t)Nq * K || wv != wk + (size_t)Nkv * K) return 0; /* not adjacent */
    void *q = (void *)a->p[0], *k = (void *)b->p[0], *vv = (void *)v->p[0];
    if (q == x || k == x || vv == x || q == k || q == vv || k == vv) return 0;
    /* the rope of exactly these q and k, then the store of this k and v */
    const int Hq = r->i[0], Hkv = r->i[1], hd = r->i[2];
    if (r->p[0] != q || r->p[1] != k || Hq * hd != Nq || Hkv * hd != Nkv || s->p[2] != k || s->p[3] != vv ||
        s->i[0] != Hkv || s->i[1] != hd)
        return 0;
    const size_t need = (size_t)rows * (Nq + 2 * Nkv);
    if (need > c->qkv_cap) {
        if (c->capturing) return 0; /* the eager step before every capture grew it */
        cuda_scratch_grow(c, &c->qkv_buf, &c->qkv_cap, need);
    }
    QkvRun run = {c, 0, rows, Nq, Nkv, K, q, k, vv, (const bf16 *)x, wq, wk, wv};
    if (qkv_plan_use(c, &run) != 1) return 0;
    run.fused = 1;
    qkv_run(&run);
    RopeParams rp = oprec_rope(r);
    cuda_qkv_norm_rope_store(c, c->qkv_buf, Nq + 2 * Nkv, (bf16 *)q, (bf16 *)k, (bf16 *)vv,
                             (const bf16 *)r->p[2], (const bf16 *)r->p[3], Hq, Hkv, hd, r->f, &rp,
                             (void *)s->p[0], (void *)s->p[1]);
    c->qkv_launches++;
    return 5;
}

/* ---------------- prologue fusion (PAGELLM_CUDA_FUSE_PRO) ---------------- */

/* Elements that record r writes to its p[0] and reads nowhere else (0: none, or p[0] is read
 * too, or the op is not one whose p[0] is a whole output). */
static long rec_pure_out_elems(const CudaCtx *c, const OpRec *r) {
    for (int k = 1; k < 6; k++)
        if (r->p[k] == r->p[0]) return 0;
    switch (r->kind) {
    case OP_MATMUL: case OP_RMSNORM: case OP_SILU: return (long)r->i[0] * r->i[1];
    case OP_ATTN: return (long)c->T * r->i[0] * r->i[2];
    case OP_EMBED: return (long)c->T * r->i[0];
    default: return 0;
    }
}

/* Whether buffer p, of which `elems` elements matter, is dead after record `from`: the first
 * later record that names p overwrites at least those elements without reading p, or no later
 * record names it and the log is a whole step (run at logits: nothing but the next step, which
 * writes before it reads, follows). A flushed partial log proves nothing about what its caller
 * reads next, so there the overwrite must be seen. */
static int buf_dead_after(const CudaCtx *c, int from, const void *p, long elems, int whole_step) {
    for (int i = from + 1; i < c->nlog; i++) {
        const OpRec *r = &c->log[i];
        int named = 0;
        for (int k = 0; k < 6; k++) named |= r->p[k] == p;
        if (!named) continue;
        return r->p[0] == p && rec_pure_out_elems(c, r) >= elems;
    }
    return whole_step;
}

/* Whether matmul record r would run as a GEMV on its own (cuda_gemm's plan for its shape,
 * created and timed here if new: eager steps only, as plans are before any capture). */
static int mm_is_gemv(CudaCtx *c, const OpRec *r) {
    return gemm_path_is_gemv(cuda_gemm_path(c, (void *)r->p[0], 0, (const bf16 *)r->p[1],
                                            (const bf16 *)r->p[2], r->i[0], r->i[1], r->i[2]));
}

/* GEMV v4 may run here: the fused variants are v4, which users get only where v4 is allowed
 * (the autotuner may pick it unless PAGELLM_CUDA_GEMV4=0; PAGELLM_CUDA_GEMV=4 forces it). */
static int v4_allowed(const CudaCtx *c) {
    return c->gemv4 || c->gemv_mode == 4;
}

static int pro_allowed(const CudaCtx *c) {
    return c->run_pro && v4_allowed(c);
}

/* Whether the n matmuls of a group at log[j] (n = 1: cuda_gemm's plan; n >= 2: the fuse plan,
 * or each one's plan where the plan keeps them separate) would run as GEMVs: the fused variants
 * replace GEMVs only, never cuBLASLt. A group of several needs PAGELLM_CUDA_FUSE on (with it off
 * they are separate launches, which one fused launch would not be). */
static int group_is_gemv(CudaCtx *c, int j, int n, const GemvSegs *sg) {
    if (n == 1) return mm_is_gemv(c, &c->log[j]);
    if (!c->fuse) return 0;
    const int k = fuse_plan_get(c, j, n, sg);
    if (k < 0) return 0;
    if (c->fuse_plans[k].use) return 1;
    for (int q = 0; q < n; q++)
        if (!mm_is_gemv(c, &c->log[j + q])) return 0;
    return 1;
}

/* One planned fused launch: the records [first, first + len) it replaces, its matmul segments
 * (the last sg.nseg records of the span), rows and K, and its prologue (pro.add is decided by
 * the chain in try_fuse_pro). */
typedef struct ProUnit {
    int first, len, rows, K;
    GemvSegs sg;
    GemvPro pro;
} ProUnit;

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* log[j] = OP_SILU(out, gate, up), log[j+1] the matmul reading out -> a GEMV_PRO_SILU unit: out
 * is never written, so it must be dead after the matmul; the matmul must not overwrite gate or
 * up (every block reads them). The matmul's own GEMV check is left to the caller. */
static int silu_unit_at(CudaCtx *c, int j, int whole_step, ProUnit *u) {
    if (j + 1 >= c->nlog) return 0;
    const OpRec *s = &c->log[j], *m = &c->log[j + 1];
    if (s->kind != OP_SILU || m->kind != OP_MATMUL || m->p[1] != s->p[0] || m->p[3] ||
        m->i[0] != s->i[0] || m->i[2] != s->i[1] || m->p[0] == s->p[1] || m->p[0] == s->p[2])
        return 0;
    memset(u, 0, sizeof *u);
    u->first = j; u->len = 2; u->rows = m->i[0]; u->K = m->i[2];
    u->sg.w[0] = (const bf16 *)m->p[2]; u->sg.out[0] = (void *)m->p[0];
    u->sg.start[1] = m->i[1]; u->sg.nseg = 1;
    u->pro.kind = GEMV_PRO_SILU; u->pro.a = (const bf16 *)s->p[1]; u->pro.b = (const bf16 *)s->p[2];
    return cuda_gemv4_pro_supported(c, &u->pro, u->rows, u->K, &u->sg) &&
           buf_dead_after(c, j + 1, s->p[0], (long)s->i[0] * s->i[1], whole_step);
}

/* log[j] a plain matmul: a GEMV_PRO_NONE unit (worth a launch of its own only with the ADD
 * epilogue, which the caller decides). */
static int plain_unit_at(const CudaCtx *c, int j, ProUnit *u) {
    const OpRec *m = &c->log[j];
    if (m->kind != OP_MATMUL || m->p[3]) return 0;
    memset(u, 0, sizeof *u);
    u->first = j; u->len = 1; u->rows = m->i[0]; u->K = m->i[2];
    u->sg.w[0] = (const bf16 *)m->p[2]; u->sg.out[0] = (void *)m->p[0];
    u->sg.start[1] = m->i[1]; u->sg.nseg = 1;
    u->pro.kind = GEMV_PRO_NONE; u->pro.x = (const bf16 *)m->p[1];
    return 1;
}

/* log[j] = OP_RMSNORM(out, residual, x, w) and the group of matmuls after it reading out -> a
 * GEMV_PRO_NORM unit over that group, normalizing the residual (its add already done by the
 * previous unit's ADD epilogue: added) or, without a residual, x. out is never written, so it
 * must be dead after the group; the unfused norm must be rmsnorm.cu's 16-byte kernel (whose
 * order the prologue replays); the group must not overwrite what the blocks read, and must run
 * as GEMVs. */
static int norm_unit_at(CudaCtx *c, int j, int added, int whole_step, ProUnit *u) {
    if (j + 1 >= c->nlog) return 0;
    const OpRec *r = &c->log[j];
    if (r->kind != OP_RMSNORM || (r->p[1] != NULL) != (added != 0)) return 0;
    const int rows = r->i[0], D = r->i[1];
    if (D % 8 || !aligned16(r->p[0]) || !aligned16(r->p[1]) || !aligned16(r->p[2]) || !aligned16(r->p[3]))
        return 0;
    const OpRec *m = &c->log[j + 1];
    if (m->kind != OP_MATMUL || m->p[1] != r->p[0] || m->i[0] != rows || m->i[2] != D) return 0;
    memset(u, 0, sizeof *u);
    const int n = mm_group_scan(c, j + 1, &u->sg);
    if (n == 0) return 0;
    const void *src = r->p[1] ? r->p[1] : r->p[2];
    for (int q = 0; q < n; q++)
        if (u->sg.out[q] == src || u->sg.out[q] == r->p[3]) return 0;
    u->first = j; u->len = 1 + n; u->rows = rows; u->K = D;
    u->pro.kind = GEMV_PRO_NORM; u->pro.a = (const bf16 *)src; u->pro.b = (const bf16 *)r->p[3];
    u->pro.eps = r->f;
    return cuda_gemv4_pro_supported(c, &u->pro, rows, D, &u->sg) &&
           buf_dead_after(c, j + n, r->p[0], (long)rows * D, whole_step) &&
           group_is_gemv(c, j + 1, n, &u->sg);
}

/* Whether unit u (one matmul) can take the ADD epilogue of the OP_RMSNORM(out, residual, x = u's
 * output, w) right after it: u then adds into the residual itself, so its output is never
 * written and must be dead after the norm (the norm becomes the next unit's prologue), and u
 * must not read the residual it writes. */
static int add_epilogue_ok(const CudaCtx *c, const ProUnit *u, int whole_step) {
    const int j = u->first + u->len;
    if (u->sg.nseg != 1 || j >= c->nlog) return 0;
    const OpRec *r = &c->log[j];
    const void *out = u->sg.out[0], *res = r->p[1];
    if (r->kind != OP_RMSNORM || !res || r->p[2] != out || r->i[0] != u->rows ||
        r->i[1] != u->sg.start[1] || res == out)
        return 0;
    if (res == u->pro.x || res == u->pro.a || res == u->pro.b) return 0;
    return buf_dead_after(c, j, out, (long)u->rows * u->sg.start[1], whole_step);
}

static int unit_reads(const ProUnit *u, const void *p) {
    return p && (p == u->pro.x || p == u->pro.a || p == u->pro.b);
}

/* The fused chains (PAGELLM_CUDA_FUSE_PRO, where GEMV v4 may run), from log[i]:
 *   SILU + matmul                       -> GEMV_PRO_SILU
 *   RMSNORM (no residual) + matmuls     -> GEMV_PRO_NORM       (layer 0's input norm)
 *   a matmul (plain or the SILU one) followed by RMSNORM(residual, x = its output) + matmuls
 *                                       -> that matmul with the ADD epilogue, then GEMV_PRO_NORM
 *                                          over the matmuls, normalizing the updated residual
 * and the NORM unit's group, if one matmul, may in turn take the next ADD. Every matmul must
 * run as a GEMV anyway (else nothing is fused). Launches the chain; returns the records it
 * consumed, or 0 (nothing launched). */
static int try_fuse_pro(CudaCtx *c, int i, int whole_step) {
    if (!pro_allowed(c)) return 0;
    ProUnit u, v;
    if (silu_unit_at(c, i, whole_step, &u)) {
        if (!mm_is_gemv(c, &c->log[i + 1])) return 0;
    } else if (!norm_unit_at(c, i, 0, whole_step, &u) && !plain_unit_at(c, i, &u))
        return 0;
    int pos = i;
    for (;;) {
        int add = add_epilogue_ok(c, &u, whole_step);
        if (add) { /* the residual add moves into u: can the norm move into the next unit? */
            u.pro.add = 1;
            add = cuda_gemv4_pro_supported(c, &u.pro, u.rows, u.K, &u.sg) &&
                  norm_unit_at(c, u.first + u.len, 1, whole_step, &v);
            for (int q = 0; add && q < v.sg.nseg; q++) add = !unit_reads(&u, v.sg.out[q]);
            /* a plain unit is fused only through its ADD; its GEMV check comes last (a new
             * plan is timed) */
            if (add && u.pro.kind == GEMV_PRO_NONE) add = mm_is_gemv(c, &c->log[u.first]);
            if (add) u.sg.out[0] = (void *)c->log[u.first + u.len].p[1];
            else u.pro.add = 0;
        }
        if (!add && u.pro.kind == GEMV_PRO_NONE) break; /* an unfused matmul: the caller runs it */
        cuda_gemv4_pro(c, &u.sg, &u.pro, u.rows, u.K);
        c->fused_pro++;
        pos = u.first + u.len;
        if (!add) break;
        u = v;
    }
    return pos - i;
}

/* Runs the log: peephole rewrites first (each consumes the records it replaced), else one op.
 * whole_step: the log is a complete decode step (see buf_dead_after). The rewrites depend only
 * on the log and on plans made by the eager step before a capture, so a captured graph runs the
 * launches its eager step ran. */
static void run_log(CudaCtx *c, int whole_step, int pro) {
    c->run_pro = pro;
    for (int i = 0; i < c->nlog;) {
        int used = try_fuse_pro(c, i, whole_step);
        if (!used) used = try_fuse_matmuls(c, i);
        if (!used) used = try_fuse_qkv(c, i);
        if (!used) used = try_pair_matmuls(c, i);
        if (!used) used = try_fuse_rope_store(c, i);
        if (used) { i += used; continue; }
        cuda_oprec_run(c, &c->log[i]);
        i++;
    }
}

/* The fused prologues for the steps of graph g: the tuned choice once measured, else the
 * configuration's. */
static int graph_pro(const CudaCtx *c, const CudaGraph *g) {
    return g->tuned ? g->pro : c->fuse_pro;
}

void cuda_graph_flush(CudaCtx *c) {
    if (!c->recording) return;
    c->recording = 0;
    run_log(c, 0, c->fuse_pro);
    c->nlog = 0;
}

/* ---------------- step tuner (PAGELLM_CUDA_STEP_TUNE) ---------------- */

/* The log, a whole decode step, run with fused prologues `pro` into a new graph (plans,
 * autotuning and scratch growth must have happened in an eager run of it before). */
static cudaGraphExec_t capture_step(CudaCtx *c, int pro) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    c->capturing = 1;
    CUDA_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    run_log(c, 1, pro);
    CUDA_CHECK(cudaStreamEndCapture(c->stream, &graph));
    c->capturing = 0;
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    CUDA_CHECK(cudaGraphDestroy(graph));
    return exec;
}

typedef struct TuneRun { CudaCtx *c; cudaGraphExec_t exec; } TuneRun;
static void tune_replay(void *arg) {
    TuneRun *t = (TuneRun *)arg;
    CUDA_CHECK(cudaGraphLaunch(t->exec, t->c->stream));
}

/* Median time of graph replays of the step with fused prologues `pro` (cuda_time_median_us: a
 * warm replay, then the median of 5). eager: run the step eagerly first (a variant the step has
 * not run yet: its plans are made outside the capture). */
static float tune_time_us(CudaCtx *c, int pro, int eager) {
    if (eager) run_log(c, 1, pro);
    TuneRun t = {c, capture_step(c, pro)};
    const float us = cuda_time_median_us(c, tune_replay, &t);
    CUDA_CHECK(cudaGraphExecDestroy(t.exec));
    return us;
}

/* Why: whether folding small ops into GEMV v4 pays off depends on the shape, the card and the
 * kernels around it in ways the kernels' own timings do not show (run10-ab, H100: the fused
 * prologues make the 4B shape's batch-1 step 4.95 ms instead of 3.79 and the 8B's 5.84 instead
 * of 5.90, while each fused GEMV timed alone is faster than its unfused pair), so the step itself
 * is timed, as the graph that will replay it (eager timings of small shapes measure the host's
 * launch rate, not the GPU). A whole decode step's log can run again and again with the same
 * result (test_forward checks this of the model's op sequence): the embedding rewrites the
 * residual stream, every scratch buffer is written before it is read, and the KV store writes
 * the same values to the same slots. So the first eager step of a graph size <= GEMV_PRO_MAX_ROWS
 * (the start-up warm-up, before its capture) captures the step with the fusions on (as
 * configured) and off, times replays of each and turns them off only if 0.5% faster. Not
 * under tensor parallelism (every rank would have to time in lock step) and never during a
 * capture. Two axes were tried and dropped (run10-ab, run11): decode v3's in-kernel split merge
 * (start-up steps read a one-token context, where it looked faster, and it was slower at 512
 * tokens) and an L2 prefetch of the o-projection's weights issued by the decode attention (one
 * block: +4.8 ms per 8B step, one SM's bulk-copy unit pulls ~250 GB/s; every block its slice:
 * still +2%). */
static void step_tune(CudaCtx *c, CudaGraph *g) {
    /* where v4 may not run, or above its staged rows, the fusions never apply: nothing to flip */
    if (!c->step_tune || !c->fuse_pro || !v4_allowed(c) || g->tuned || c->capturing ||
        c->T > GEMV_PRO_MAX_ROWS || c->num_prefill)
        return;
    for (int i = 0; i < c->nlog; i++)
        if (c->log[i].kind == OP_ALLREDUCE) return;
    g->tuned = 1;
    c->step_tunes++;
    const double w0 = time_now_s();
    /* the configured fusions (on) have just run eagerly in the caller; off has not */
    const float t_on = tune_time_us(c, 1, 0), t_off = tune_time_us(c, 0, 1);
    g->pro = t_off < 0.995f * t_on ? 0 : 1;
    c->step_tune_s += time_now_s() - w0;
    if (getenv("PAGELLM_CUDA_GEMM_LOG"))
        fprintf(stderr, "step T=%d: fuse_pro 1 %.1f us, fuse_pro 0 %.1f us -> fuse_pro %d\n", c->T, t_on,
                t_off, g->pro);
}

static int graph_matches(const CudaCtx *c, const CudaGraph *g) {
    return g->ops && g->nops == c->nlog && g->gen == c->gen && g->T == c->T && g->S == c->S &&
           g->R == c->R && g->block_size == c->block_size && g->num_decode == c->num_decode &&
           memcmp(g->ops, c->log, sizeof(OpRec) * (size_t)c->nlog) == 0;
}

void cuda_graph_finish_step(CudaCtx *c) {
    c->recording = 0;
    CudaGraph *g = &c->graphs[c->T];
    if (graph_matches(c, g) && g->exec) {
        CUDA_CHECK(cudaGraphLaunch(g->exec, c->stream));
        g->replays++;
        c->graph_replays++;
    } else if (graph_matches(c, g)) {
        double t0 = time_now_s();
        g->exec = capture_step(c, graph_pro(c, g));
        c->graph_capture_s += time_now_s() - t0;
        c->graph_captures++;
        CUDA_CHECK(cudaGraphLaunch(g->exec, c->stream));
    } else {
        c->graph_step_eager = 1; /* its new plans are timed, not lent (gemm.cu) */
        run_log(c, 1, graph_pro(c, g)); /* eager: may create plans, autotune, grow scratch (bumping gen) */
        c->graph_step_eager = 0;
        step_tune(c, g);
        if (g->exec) CUDA_CHECK(cudaGraphExecDestroy(g->exec));
        g->exec = NULL;
        free(g->ops);
        g->ops = (OpRec *)malloc(sizeof(OpRec) * (size_t)(c->nlog ? c->nlog : 1));
        if (!g->ops) { fprintf(stderr, "cuda graph: out of host memory\n"); abort(); }
        memcpy(g->ops, c->log, sizeof(OpRec) * (size_t)c->nlog);
        g->nops = c->nlog;
        g->gen = c->gen;
        g->T = c->T; g->S = c->S; g->R = c->R;
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

int cuda_graph_bucket(const CudaCtx *c, int T) {
    if (c->num_graph_sizes == 0) return T <= CUDA_GRAPH_MAX_BS ? T : 0;
    for (int i = 0; i < c->num_graph_sizes; i++)
        if (c->graph_sizes[i] >= T) return c->graph_sizes[i];
    return 0;
}

static int graph_ready(const CudaCtx *c, int B) {
    return c->graphs[B].exec && c->graphs[B].gen == c->gen;
}

/* A decode batch of B dummy sequences: token 0 at position 0, nothing stored (slot -1), block
 * 0 read at seq_len 1; every row's logits. The arrays hold at least B (+1) entries. */
static BatchMeta dummy_decode(int B, int block_size, int32_t *zeros, int32_t *slots,
                              int32_t *iota, int32_t *ones) {
    BatchMeta m;
    memset(&m, 0, sizeof m);
    m.num_tokens = B; m.num_seqs = B;
    m.token_ids = zeros; m.positions = zeros; m.slot_mapping = slots;
    m.query_start = iota; m.seq_lens = ones; m.block_tables = zeros;
    m.max_blocks_per_seq = 1; m.block_size = block_size;
    m.max_query_len = 1; m.max_seq_len = 1;
    m.logits_rows = iota; m.num_logits_rows = B;
    return m;
}

int cuda_capture_graphs(Backend *b, const GraphCaptureSpec *sp, char *err) {
    CudaCtx *c = cuda_ctx(b);
    if (c->enforce_eager || !sp || sp->num_sizes <= 0) return 0;
    if (!sp->forward) return pg_err(err, "cuda graphs: no forward to capture");
    if (sp->num_sizes > CUDA_GRAPH_MAX_SIZES)
        return pg_err(err, "cuda graphs: %d capture sizes (at most %d)", sp->num_sizes, CUDA_GRAPH_MAX_SIZES);
    for (int i = 0; i < sp->num_sizes; i++)
        if (sp->sizes[i] < 1 || sp->sizes[i] > CUDA_GRAPH_MAX_BS || (i && sp->sizes[i] <= sp->sizes[i - 1]))
            return pg_err(err, "cuda graphs: capture sizes must ascend within [1, %d] (size %d at %d)",
                          CUDA_GRAPH_MAX_BS, sp->sizes[i], i);
    const int n = sp->num_sizes, Bmax = sp->sizes[n - 1];
    const int max_seqs = sp->max_seqs > Bmax ? sp->max_seqs : Bmax;
    const int max_tokens = sp->max_tokens > Bmax ? sp->max_tokens : Bmax;
    int32_t *zeros = (int32_t *)calloc((size_t)Bmax + 1, sizeof(int32_t));
    int32_t *slots = (int32_t *)malloc(((size_t)Bmax + 1) * sizeof(int32_t));
    int32_t *iota = (int32_t *)malloc(((size_t)Bmax + 1) * sizeof(int32_t));
    int32_t *ones = (int32_t *)malloc(((size_t)Bmax + 1) * sizeof(int32_t));
    int rc = -1, captured = 0;
    /* the start-up breakdown logged at the end: where the capture's seconds go */
    const double t0 = time_now_s(), choice0 = c->choice_timing_s, tune0 = c->step_tune_s,
                 cap0 = c->graph_capture_s;
    const long timed0 = c->lt_timed;
    double t_warm = 0;
    if (!zeros || !slots || !iota || !ones) { pg_err(err, "cuda graphs: out of host memory"); goto out; }
    for (int i = 0; i <= Bmax; i++) { slots[i] = -1; iota[i] = i; ones[i] = 1; }
    memcpy(c->graph_sizes, sp->sizes, sizeof(int) * (size_t)n);
    c->num_graph_sizes = n;
    /* Buffers the graphs point at, sized for every later step, so that none moves (gen). */
    cuda_meta_reserve(c, max_tokens, max_seqs, sp->max_blocks_per_seq);
    /* Warm-up, largest first (logits and rope scratch reach their size at once): each size's
     * first step runs eagerly, creating GEMM plans, autotune and fusion choices. */
    for (int i = n - 1; i >= 0; i--) {
        BatchMeta m = dummy_decode(sp->sizes[i], sp->block_size, zeros, slots, iota, ones);
        if (sp->forward(sp->ctx, &m, err) != 0) goto out;
        if (i == n - 1) { /* the shapes are known now: reserve for every later step */
            cuda_attn_reserve(c, max_seqs);
            cuda_rope_reserve(c, max_tokens);
            cuda_logits_reserve(c, max_seqs);
        }
    }
    t_warm = time_now_s() - t0;
    /* Capture: the second equal step of a size is captured; a size whose reference went stale
     * (a buffer moved after its warm-up) runs eagerly once more, then is captured. */
    for (int i = n - 1; i >= 0; i--) {
        BatchMeta m = dummy_decode(sp->sizes[i], sp->block_size, zeros, slots, iota, ones);
        for (int t = 0; t < 2 && !graph_ready(c, sp->sizes[i]); t++)
            if (sp->forward(sp->ctx, &m, err) != 0) goto out;
    }
    for (int i = 0; i < n; i++) captured += graph_ready(c, sp->sizes[i]);
    if (captured < n) LOG_W("cuda graphs: %d of %d capture sizes not captured (they capture lazily)", n - captured, n);
    rc = captured;
out:
    if (rc < 0) c->num_graph_sizes = 0; /* back to exact-size graphs */
    /* the total is the engine's "CUDA graphs: ... captured" line; this is where it goes */
    LOG_I("cuda graphs: eager warm-up steps %.2f s (timing choices %.2f s, %ld GEMM plans timed; step "
          "tuner %.2f s in all) + capture pass %.2f s (capturing %.2f s)",
          t_warm, c->choice_timing_s - choice0, c->lt_timed - timed0, c->step_tune_s - tune0,
          time_now_s() - t0 - t_warm, c->graph_capture_s - cap0);
    free(zeros); free(slots); free(iota); free(ones);
    return rc;
}
