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
 * x become one multi-segment GEMV. try_fuse_silu (PAGELLM_CUDA_FUSE_PRO, where GEMV v4 may run):
 * silu_mul followed by the matmul that reads its output becomes one GEMV v4 whose blocks compute
 * silu(gate) * up themselves; the silu output is then never written, so this is done only where
 * no later record reads it before overwriting it (buf_dead_after).
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
        int g4 = (c->gemv4 || c->gemv_mode == 4) && cuda_gemv4_supported(a->i[0], a->i[2], a->p[1], &sg);
        if (c->gemv_mode == 1 || c->gemv_mode == 4) { /* a forced path (tests): no timing */
            c->fuse_plans[k].use = c->gemv_mode == 4 && g4 ? 4 : 1;
            goto planned;
        }
        c->fuse_plans[k].t_sep = time_group_us(c, i, n, &sg, 0);
        c->fuse_plans[k].t_fused = time_group_us(c, i, n, &sg, 1);
        c->fuse_plans[k].t_fused4 = g4 ? time_group_us(c, i, n, &sg, 4) : 1e30f;
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
    }
planned:
    if (!c->fuse_plans[k].use) return 0;
    if (c->fuse_plans[k].use == 4) cuda_gemv4_multi(c, &sg, 0, (const bf16 *)a->p[1], a->i[0], a->i[2]);
    else cuda_gemv1_multi(c, &sg, 0, (const bf16 *)a->p[1], a->i[0], a->i[2]);
    return n;
}

/* ---------------- prologue fusion (PAGELLM_CUDA_FUSE_PRO) ---------------- */

/* Whether buffer p is dead after record `from`: the first later record that names p overwrites
 * it whole without reading it (the output of a matmul, norm, silu, attention, embed or gather
 * that reads p nowhere else), or no later record names it and the log is a whole step (run at
 * logits: nothing but the next step, which writes before it reads, follows). A flushed partial
 * log proves nothing about what its caller reads next, so there the overwrite must be seen. */
static int buf_dead_after(const CudaCtx *c, int from, const void *p, int whole_step) {
    for (int i = from + 1; i < c->nlog; i++) {
        const OpRec *r = &c->log[i];
        int named = 0, read = 0;
        for (int k = 0; k < 6; k++)
            if (r->p[k] == p) { named = 1; read |= k > 0; }
        if (!named) continue;
        int pure_out = r->kind == OP_MATMUL || r->kind == OP_RMSNORM || r->kind == OP_SILU ||
                       r->kind == OP_ATTN || r->kind == OP_EMBED || r->kind == OP_GATHER;
        return pure_out && !read;
    }
    return whole_step;
}

/* Whether matmul record r would run as a GEMV on its own (cuda_gemm's plan for its shape,
 * created and timed here if new: eager steps only, as plans are before any capture). */
static int mm_is_gemv(CudaCtx *c, const OpRec *r) {
    return cuda_gemm_path(c, (void *)r->p[0], 0, (const bf16 *)r->p[1], (const bf16 *)r->p[2],
                          r->i[0], r->i[1], r->i[2]) != 0;
}

/* GEMV v4 may run here: the fused variants are v4, which users get only where v4 is allowed
 * (PAGELLM_CUDA_GEMV4=1 lets the autotuner pick it, PAGELLM_CUDA_GEMV=4 forces it). */
static int pro_allowed(const CudaCtx *c) {
    return c->fuse_pro && (c->gemv4 || c->gemv_mode == 4);
}

/* OP_SILU(out, gate, up) then the matmul that reads out -> one GEMV v4 whose blocks compute
 * silu(gate) * up themselves (GEMV_PRO_SILU): out is not written, so nothing else may read it
 * before it is overwritten. Only where that matmul would run as a GEMV anyway. Returns the
 * records consumed (2) or 0. */
static int try_fuse_silu(CudaCtx *c, int i, int whole_step) {
    if (!pro_allowed(c) || i + 1 >= c->nlog) return 0;
    const OpRec *s = &c->log[i], *m = &c->log[i + 1];
    if (s->kind != OP_SILU || m->kind != OP_MATMUL || m->p[1] != s->p[0] || m->p[3] ||
        m->i[0] != s->i[0] || m->i[2] != s->i[1])
        return 0;
    if (m->p[0] == s->p[1] || m->p[0] == s->p[2]) return 0; /* the blocks read gate/up throughout */
    GemvSegs sg;
    memset(&sg, 0, sizeof sg);
    sg.w[0] = (const bf16 *)m->p[2]; sg.out[0] = (void *)m->p[0]; sg.start[1] = m->i[1]; sg.nseg = 1;
    GemvPro pro;
    memset(&pro, 0, sizeof pro);
    pro.kind = GEMV_PRO_SILU; pro.a = (const bf16 *)s->p[1]; pro.b = (const bf16 *)s->p[2];
    if (!cuda_gemv4_pro_supported(c, &pro, m->i[0], m->i[2], &sg)) return 0;
    if (!buf_dead_after(c, i + 1, s->p[0], whole_step) || !mm_is_gemv(c, m)) return 0;
    cuda_gemv4_pro(c, &sg, &pro, m->i[0], m->i[2]);
    c->fused_pro++;
    return 2;
}

/* Runs the log: peephole rewrites first (each consumes the records it replaced), else one op.
 * whole_step: the log is a complete decode step (see buf_dead_after). The rewrites depend only
 * on the log and on plans made by the eager step before a capture, so a captured graph runs the
 * launches its eager step ran. */
static void run_log(CudaCtx *c, int whole_step) {
    for (int i = 0; i < c->nlog;) {
        int used = try_fuse_silu(c, i, whole_step);
        if (!used) used = try_fuse_matmuls(c, i);
        if (used) { i += used; continue; }
        cuda_oprec_run(c, &c->log[i]);
        i++;
    }
}

void cuda_graph_flush(CudaCtx *c) {
    if (!c->recording) return;
    c->recording = 0;
    run_log(c, 0);
    c->nlog = 0;
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
        cudaGraph_t graph;
        c->capturing = 1;
        CUDA_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
        run_log(c, 1);
        CUDA_CHECK(cudaStreamEndCapture(c->stream, &graph));
        c->capturing = 0;
        CUDA_CHECK(cudaGraphInstantiate(&g->exec, graph, 0));
        CUDA_CHECK(cudaGraphDestroy(graph));
        c->graph_capture_s += time_now_s() - t0;
        c->graph_captures++;
        CUDA_CHECK(cudaGraphLaunch(g->exec, c->stream));
    } else {
        run_log(c, 1); /* eager: may create plans, autotune, grow scratch (bumping gen) */
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
    double t0 = time_now_s();
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
    LOG_D("cuda graphs: start-up capture of %d sizes in %.2f s", n, time_now_s() - t0);
    free(zeros); free(slots); free(iota); free(ones);
    return rc;
}
