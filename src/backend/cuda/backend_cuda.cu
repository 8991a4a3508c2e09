/* backend_cuda.cu: the CUDA backend's op table, memory, weight upload and per-step metadata.
 *
 * backend_cuda_new() creates one stream, a cuBLASLt handle and workspace on the chosen device.
 * Weights become bf16 device tensors (f32/f16 files are converted on the device; dummy weights
 * are generated in place with util/rng.h's dummy_weight_value, the same values every backend
 * fills). set_batch() packs the step's BatchMeta into one pinned buffer and uploads it with a
 * single copy; the ops read it from there. The kernels themselves live one op per .cu. */
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "util/err.h"
#include "util/log.h"
#include "util/timeutil.h"
}

/* ---------------- memory ---------------- */

static void *cu_alloc(Backend *b, size_t bytes) {
    void *p = NULL;
    cuda_graph_flush(cuda_ctx(b));
    if (bytes == 0) bytes = 256;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky-free OOM error */
        return NULL;
    }
    return p;
}

static void cu_free(Backend *b, void *p) {
    if (!p) return;
    CudaCtx *c = cuda_ctx(b);
    cuda_graph_flush(c);
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    CUDA_CHECK(cudaFree(p));
}

/* ---------------- weight arena ---------------- */

/* cu_weight_reserve: one allocation for the model's weights (backend.h weight_reserve), so that
 * consecutive loads are adjacent: graph.cu runs a layer's q | k | v as one matmul when the three
 * weights follow each other. Each tensor starts 256-byte aligned (the reservation counts that
 * slack). Freed when its last tensor is (weights_off_backend frees them all) or at destroy.
 * Only with the fused QKV on (its one use; on by default since run15). */
static void cu_weight_reserve(Backend *b, int64_t elems, int count) {
    CudaCtx *c = cuda_ctx(b);
    if (!c->fuse_qkv || c->warena || elems <= 0 || count <= 0) return;
    cuda_graph_flush(c);
    size_t bytes = (size_t)elems * sizeof(bf16) + (size_t)count * 256;
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) { /* each tensor allocates on its own instead */
        cudaGetLastError();
        LOG_W("cuda: no single %.2f GB weight allocation; weights allocated one by one (no fused QKV)",
              bytes / 1e9);
        return;
    }
    c->warena = (char *)p;
    c->warena_cap = bytes;
    c->warena_off = 0;
    c->warena_live = 0;
}

static int in_arena(const CudaCtx *c, const void *p) {
    return c->warena && (const char *)p >= c->warena && (const char *)p < c->warena + c->warena_cap;
}

/* Device memory for a weight of `bytes`: the arena's next slot while it has room, else its own. */
static void *weight_alloc(Backend *b, size_t bytes) {
    CudaCtx *c = cuda_ctx(b);
    size_t need = (bytes + 255) & ~(size_t)255;
    if (c->warena && c->warena_off + need <= c->warena_cap) {
        void *p = c->warena + c->warena_off;
        c->warena_off += need;
        c->warena_live++;
        return p;
    }
    return cu_alloc(b, bytes);
}

static void weight_dealloc(Backend *b, void *p) {
    CudaCtx *c = cuda_ctx(b);
    if (!p) return;
    if (!in_arena(c, p)) { cu_free(b, p); return; }
    if (--c->warena_live > 0) return;
    cu_free(b, c->warena);
    c->warena = NULL;
    c->warena_cap = c->warena_off = 0;
}

static void cu_memset0(Backend *b, void *p, size_t bytes) {
    cuda_graph_flush(cuda_ctx(b));
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_ctx(b)->stream));
}

static void cu_to_device(Backend *b, void *dst, const void *src, size_t bytes) {
    cuda_graph_flush(cuda_ctx(b));
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_ctx(b)->stream));
}

static void cu_to_host(Backend *b, void *dst, const void *src, size_t bytes) {
    CudaCtx *c = cuda_ctx(b);
    cuda_graph_flush(c);
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
}

static long long cu_mem_free(Backend *b) {
    size_t fr = 0, total = 0;
    if (cudaMemGetInfo(&fr, &total) != cudaSuccess) return -1;
    return (long long)fr;
}

static long long cu_mem_total(Backend *b) {
    size_t fr = 0, total = 0;
    if (cudaMemGetInfo(&fr, &total) != cudaSuccess) return -1;
    return (long long)total;
}

/* ---------------- weights ---------------- */

static int cu_weight_load(Backend *b, const Tensor *host, Tensor *dev, int dummy, uint64_t seed,
                          uint64_t tensor_id, float center, float half_width, char *err) {
    CudaCtx *c = cuda_ctx(b);
    cuda_graph_flush(c);
    *dev = *host;
    dev->dtype = DT_BF16;
    dev->data = NULL;
    int64_t n = tensor_numel(host);
    if (n <= 0) return pg_err(err, "cuda: tensor %s has no elements", host->name ? host->name : "?");
    bf16 *d = (bf16 *)weight_alloc(b, (size_t)n * sizeof(bf16));
    if (!d)
        return pg_err(err, "cuda: out of device memory for tensor %s (%.1f MB)",
                      host->name ? host->name : "?", n * 2.0 / 1e6);
    if (!host->data) {
        if (!dummy) {
            weight_dealloc(b, d);
            return pg_err(err, "cuda: tensor %s has no data", host->name ? host->name : "?");
        }
        cuda_dummy_fill(c, d, n, seed, tensor_id, center, half_width);
    } else if (host->dtype == DT_BF16) {
        CUDA_CHECK(cudaMemcpyAsync(d, host->data, (size_t)n * 2, cudaMemcpyHostToDevice, c->stream));
    } else if (host->dtype == DT_F32 || host->dtype == DT_F16) {
        size_t bytes = (size_t)n * dtype_size(host->dtype);
        void *tmp = cu_alloc(b, bytes);
        if (!tmp) {
            weight_dealloc(b, d);
            return pg_err(err, "cuda: out of device memory converting tensor %s",
                          host->name ? host->name : "?");
        }
        CUDA_CHECK(cudaMemcpyAsync(tmp, host->data, bytes, cudaMemcpyHostToDevice, c->stream));
        cuda_convert_to_bf16(c, d, tmp, host->dtype, n);
        CUDA_CHECK(cudaStreamSynchronize(c->stream));
        CUDA_CHECK(cudaFree(tmp));
    } else {
        weight_dealloc(b, d);
        return pg_err(err, "cuda: tensor %s has dtype %s; the CUDA backend takes bf16, f16 or f32",
                      host->name ? host->name : "?", dtype_name(host->dtype));
    }
    CUDA_CHECK(cudaStreamSynchronize(c->stream)); /* the host buffer may go away after we return */
    dev->data = d;
    return 0;
}

static void cu_weight_free(Backend *b, Tensor *dev) {
    if (dev->data) weight_dealloc(b, dev->data);
    dev->data = NULL;
}

/* ---------------- per-step metadata ---------------- */

int cuda_decode_splits(const CudaCtx *c, int Sd, int Hkv) {
    if (Sd <= 0) return 1;
    int base = Sd * Hkv;
    int want = (2 * c->num_sms + base - 1) / base;
    if (want < c->decode_splits_min) want = c->decode_splits_min;
    if (want < 1) want = 1;
    if (want > 32) want = 32;
    return want;
}

/* int32 elements of the staging buffer for a step of T tokens, S sequences, R logits rows and
 * block-table rows of mb entries (fields rounded up to 4 elements; see cu_set_batch). */
static size_t meta_need(int T, int S, int R, int mb) {
    return (size_t)T * 4 + (size_t)(S + 1) + (size_t)S + (size_t)R + 2 * (size_t)S + 4 +
           (size_t)S * (size_t)mb + 64;
}

static void meta_realloc(CudaCtx *c, size_t cap) {
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    if (c->d_meta) CUDA_CHECK(cudaFree(c->d_meta));
    if (c->h_meta) CUDA_CHECK(cudaFreeHost(c->h_meta));
    CUDA_CHECK(cudaMalloc(&c->d_meta, cap * sizeof(int32_t)));
    CUDA_CHECK(cudaMallocHost(&c->h_meta, cap * sizeof(int32_t)));
    c->meta_cap = cap;
    c->gen++; /* graphs baked the old metadata pointers */
}

void cuda_meta_reserve(CudaCtx *c, int max_tokens, int max_seqs, int max_blocks_per_seq) {
    size_t need = meta_need(max_tokens, max_seqs, max_tokens, max_blocks_per_seq > 0 ? max_blocks_per_seq : 1);
    CUDA_CHECK(cudaEventSynchronize(c->meta_done));
    if (need > c->meta_cap) meta_realloc(c, need);
    cuda_prev_tokens_reserve(c, max_seqs);   /* the embed's pending-token source never moves */
}

/* Extra logits row i (>= R) of a padded step: a padding token while there are any, else 0. */
static int32_t pad_logits_row(int T, int Tp, int R, size_t i) {
    long long t = (long long)T + (long long)i - R;
    return t < Tp ? (int32_t)t : 0;
}

/* Packs the step's metadata into the pinned staging buffer and uploads it with one copy.
 * Layout: token_ids, positions, slot_mapping, token_src_row [T]; query_start [S+1]; seq_lens [S];
 * logits_rows [R]; prefill_seqs, decode_seqs [S]; the block-table stride [1]; block_tables
 * [S, mb] last, so that every pointer a decode graph bakes in depends on (T, S, R) only and
 * the stride is read on the device.
 *
 * A decode-only step (every chunk one token) of T sequences that has a graph bucket B >= T
 * (cuda_graph_bucket) is padded to B: padding token t in [T, B) is sequence t with token 0 at
 * position 0, slot -1 (nothing stored), seq_len 1 and a block table of the first real
 * sequence's first block (a valid block: attention reads one real slot); logits_rows gets
 * B - R extra entries after the R real ones, so the first R logits rows are the real ones. */
static void cu_set_batch(Backend *b, const BatchMeta *m) {
    CudaCtx *c = cuda_ctx(b);
    const double ht0 = c->host_times ? time_now_s() : 0;
    const int T = m->num_tokens, S = m->num_seqs, R = m->num_logits_rows;
    const int mb = m->max_blocks_per_seq > 0 ? m->max_blocks_per_seq : 1;
    int P = 0, Sd = 0;
    if (c->profile) { /* attention's work, for the profile's TFLOP/s */
        c->prof_attn_pairs = 0;
        for (int t = 0; t < T; t++) c->prof_attn_pairs += m->positions[t] + 1.0;
    }
    for (int s = 0; s < S; s++) {
        int qlen = m->query_start[s + 1] - m->query_start[s];
        if (qlen == 1) Sd++;
        else if (qlen > 1) P++;
    }
    /* decode-only steps of a graph size are recorded and replayed as CUDA graphs */
    int B = 0;
    if (!c->enforce_eager && P == 0 && Sd == S && S == T && T >= 1) B = cuda_graph_bucket(c, T);
    const int Tp = B ? B : T, Sp = B ? B : S, Rp = B ? B : R;
    size_t need = meta_need(Tp, Sp, Rp, mb);
    cuda_graph_flush(c); /* a recorded step that never reached logits */
    /* The previous step's upload must be done before the staging buffer is rewritten. */
    CUDA_CHECK(cudaEventSynchronize(c->meta_done));
    if (need > c->meta_cap) meta_realloc(c, need * 2);
    int32_t *h = c->h_meta;
    size_t off = 0;
    /* n real entries from src (all-ones when src is NULL), then npad - n entries of padv */
#define PUT(field, src, n, npad, padv)                                                   \
    do {                                                                                 \
        size_t n_ = (size_t)(n), np_ = (size_t)(npad);                                   \
        if (n_ && (src)) memcpy(h + off, (src), n_ * sizeof(int32_t));                   \
        else if (n_) memset(h + off, 0xff, n_ * sizeof(int32_t));                       \
        for (size_t i_ = n_; i_ < np_; i_++) h[off + i_] = (padv);                       \
        c->dev.field = c->d_meta + off;                                                  \
        off += (np_ + 3) & ~(size_t)3; /* keep 16-byte alignment */                      \
    } while (0)
    PUT(token_ids, m->token_ids, T, Tp, 0);
    PUT(positions, m->positions, T, Tp, 0);
    PUT(slot_mapping, m->slot_mapping, T, Tp, -1);
    PUT(token_src_row, m->token_src_row, T, Tp, -1);   /* NULL: all -1 (every id in token_ids) */
    PUT(query_start, m->query_start, S + 1, Sp + 1, (int32_t)i_);   /* padding seq i_ = token i_ */
    PUT(seq_lens, m->seq_lens, S, Sp, 1);
    PUT(logits_rows, m->logits_rows, R, Rp, pad_logits_row(T, Tp, R, i_));
#undef PUT
    /* work lists for attention: which sequences prefill (chunk > 1) and which decode */
    int32_t *pre = h + off, *dec = h + off + ((Sp + 3) & ~3);
    P = Sd = 0;
    for (int s = 0; s < S; s++) {
        int qlen = m->query_start[s + 1] - m->query_start[s];
        if (qlen == 1) dec[Sd++] = s;
        else if (qlen > 1) pre[P++] = s;
    }
    for (int s = S; s < Sp; s++) dec[Sd++] = s;
    c->dev.prefill_seqs = c->d_meta + off;
    c->dev.decode_seqs = c->d_meta + off + ((Sp + 3) & ~3);
    off += 2 * (size_t)((Sp + 3) & ~3);
    h[off] = mb;
    c->dev.mbps = c->d_meta + off;
    off += 4;
    /* block tables: Sp rows of mb entries (the engine's rows, then the padding rows) */
    c->dev.block_tables = c->d_meta + off;
    if (m->block_tables) memcpy(h + off, m->block_tables, (size_t)S * mb * sizeof(int32_t));
    else memset(h + off, 0xff, (size_t)S * mb * sizeof(int32_t));
    const int32_t pad_block = m->block_tables && S > 0 ? m->block_tables[0] : 0;
    for (size_t i = (size_t)S * mb; i < (size_t)Sp * mb; i++) h[off + i] = pad_block;
    off += ((size_t)Sp * mb + 3) & ~(size_t)3;
    if (off > c->meta_cap) {
        fprintf(stderr, "cuda set_batch: metadata overflow (%zu > %zu)\n", off, c->meta_cap);
        abort();
    }
    CUDA_CHECK(cudaMemcpyAsync(c->d_meta, h, off * sizeof(int32_t), cudaMemcpyHostToDevice,
                               c->stream));
    CUDA_CHECK(cudaEventRecord(c->meta_done, c->stream));
    if (c->host_times) {
        c->ht_mark = time_now_s();
        c->ht_sb_last = c->ht_mark - ht0; /* counted if the step replays a graph (cu_logits) */
    }
    c->T = Tp;
    c->S = Sp;
    c->R = Rp;
    c->T_real = T;
    c->R_real = R;
    c->max_blocks_per_seq = mb;
    c->block_size = m->block_size;
    c->max_query_len = m->max_query_len;
    c->max_seq_len = m->max_seq_len;
    c->num_prefill = P;
    c->num_decode = Sd;
    c->recording = B > 0;
    c->nlog = 0;
    c->rope_tab_valid = 0;
}

/* ---------------- ops ---------------- */

static void cu_embed(Backend *b, void *out, const Tensor *emb, int D) {
    CudaCtx *c = cuda_ctx(b);
    OpRec r;
    memset(&r, 0, sizeof r); /* padding too: logs are compared with memcmp */
    r.kind = OP_EMBED; r.p[0] = out; r.p[1] = emb->data; r.i[0] = D;
    if (c->recording) *cuda_graph_append(c) = r;
    else cuda_oprec_run(c, &r);
}

static void cu_rmsnorm(Backend *b, void *out, void *residual, const void *x, const Tensor *w,
                       int rows, int D, float eps) {
    CudaCtx *c = cuda_ctx(b);
    OpRec r;
    memset(&r, 0, sizeof r); /* padding too: logs are compared with memcmp */
    r.kind = OP_RMSNORM; r.p[0] = out; r.p[1] = residual; r.p[2] = x; r.p[3] = w->data;
    r.i[0] = cuda_pad_rows(c, rows); r.i[1] = D; r.f = eps;
    if (c->recording) *cuda_graph_append(c) = r;
    else cuda_oprec_run(c, &r);
}

static void cu_matmul(Backend *b, void *out, const void *x, const Tensor *w, const Tensor *bias,
                      int rows) {
    CudaCtx *c = cuda_ctx(b);
    OpRec r;
    memset(&r, 0, sizeof r); /* padding too: logs are compared with memcmp */
    r.kind = OP_MATMUL; r.p[0] = out; r.p[1] = x; r.p[2] = w->data;
    r.p[3] = bias && bias->data ? bias->data : NULL;
    r.i[0] = cuda_pad_rows(c, rows); r.i[1] = (int)w->shape[0]; r.i[2] = (int)w->shape[1];
    if (c->recording) *cuda_graph_append(c) = r;
    else cuda_oprec_run(c, &r);
}

static void cu_qk_norm_rope(Backend *b, void *q, void *k, const Tensor *qn, const Tensor *kn,
                            int Hq, int Hkv, int hd, float eps, const RopeParams *rope) {
    CudaCtx *c = cuda_ctx(b);
    OpRec r;
    memset(&r, 0, sizeof r); /* padding too: logs are compared with memcmp */
    r.kind = OP_QKROPE; r.p[0] = q; r.p[1] = k;
    r.p[2] = qn && qn->data ? qn->data : NULL;
    r.p[3] = kn && kn->data ? kn->data : NULL;
    r.i[0] = Hq; r.i[1] = Hkv; r.i[2] = hd; r.f = eps;
    r.rd[0] = rope->theta; r.rd[1] = rope->factor; r.rd[2] = rope->low_freq_factor;
    r.rd[3] = rope->high_freq_factor;
    r.ri[0] = rope->head_dim; r.ri[1] = (int)rope->scaling;
    r.ri[2] = rope->original_max_position_embeddings;
    if (c->recording) *cuda_graph_append(c) = r;
    else cuda_oprec_run(c, &r);
}

static void cu_kv_store(Backend *b, void *kc, void *vc, const void *k, const void *v, int Hkv,
                        int hd) {
    CudaCtx *c = cuda_ctx(b);
    OpRec r;
    memset(&r, 0, sizeof r); /* padding too: logs are compared with memcmp */
    r.kind = OP_KVSTORE; r.p[0] = kc; r.p[1] = vc; r.p[2] = k; r.p[3] = v;
    r.i[0] = Hkv; r.i[1] = hd;
    if (c->recording) *cuda_graph_append(c) = r;
    else cuda_oprec_run(c, &r);
}

static void cu_attention(Backend *b, void *out, const void *q, const void *kc, const void *vc,
                         int Hq, int Hkv, int hd) {
    CudaCtx *c = cuda_ctx(b);
    OpRec r;
    memset(&r, 0, sizeof r); /* padding too: logs are compared with memcmp */
    r.kind = OP_ATTN; r.p[0] = out; r.p[1] = q; r.p[2] = kc; r.p[3] = vc;
    r.i[0] = Hq; r.i[1] = Hkv; r.i[2] = hd;
    if (c->recording) *cuda_graph_append(c) = r;
    else cuda_oprec_run(c, &r);
}

static void cu_silu_mul(Backend *b, void *out, const void *gate, const void *up, int rows, int F) {
    CudaCtx *c = cuda_ctx(b);
    OpRec r;
    memset(&r, 0, sizeof r); /* padding too: logs are compared with memcmp */
    r.kind = OP_SILU; r.p[0] = out; r.p[1] = gate; r.p[2] = up; r.i[0] = cuda_pad_rows(c, rows);
    r.i[1] = F;
    if (c->recording) *cuda_graph_append(c) = r;
    else cuda_oprec_run(c, &r);
}

static void cu_gather_rows(Backend *b, void *out, const void *x, int D) {
    CudaCtx *c = cuda_ctx(b);
    OpRec r;
    memset(&r, 0, sizeof r); /* padding too: logs are compared with memcmp */
    r.kind = OP_GATHER; r.p[0] = out; r.p[1] = x; r.i[0] = D;
    if (c->recording) *cuda_graph_append(c) = r;
    else cuda_oprec_run(c, &r);
}

void cuda_logits_reserve(CudaCtx *c, int rows) {
    size_t need = (size_t)rows * (size_t)c->logits_V;
    if (need <= c->logits_cap) return;
    cuda_scratch_grow(c, &c->logits_f32, &c->logits_cap, need);
}

static void cu_logits(Backend *b, float *logits_host, const void *x, const Tensor *lm_head, int R,
                      int D, int V) {
    CudaCtx *c = cuda_ctx(b);
    /* a padded graph step computes all its rows; the first R are the real ones */
    const int Rd = cuda_pad_logits_rows(c, R);
    size_t need = (size_t)Rd * V;
    /* No recorded op reads the logits buffer, so it grows under the recording. Growing bumps
     * gen, so a graph step does not match its graph and runs eagerly in cuda_graph_finish_step,
     * where its lent plans are timed as a graph size's (graph_step_eager). Running the recorded
     * ops here first, as before, ran them outside that flag on lent choices, then captured the
     * graph on those choices (test_cuda_ops graph_retime, run15). */
    if (need > c->logits_cap) cuda_scratch_grow(c, &c->logits_f32, &c->logits_cap, need);
    OpRec r;
    memset(&r, 0, sizeof r); /* padding too: logs are compared with memcmp */
    r.kind = OP_LOGITS; r.p[0] = c->logits_f32; r.p[1] = x; r.p[2] = lm_head->data;
    r.i[0] = Rd; r.i[1] = V; r.i[2] = D;
    if (c->recording) {
        *cuda_graph_append(c) = r;
        const double ht0 = c->host_times ? time_now_s() : 0;
        const long replays = c->graph_replays;
        cuda_graph_finish_step(c);
        if (c->host_times && c->graph_replays > replays) { /* not captures, not eager runs */
            const double t = time_now_s();
            c->ht_set_batch += c->ht_sb_last;
            c->ht_record += ht0 - c->ht_mark;
            c->ht_finish += t - ht0;
            c->ht_steps++;
        }
    } else {
        cuda_oprec_run(c, &r);
    }
    c->logits_R = R;   /* the real rows: what cu_sample reads (padded rows follow them) */
    c->logits_V = V;
    if (!logits_host) return; /* kept on the device (the sampler, graph capture) */
    CUDA_CHECK(cudaMemcpyAsync(logits_host, c->logits_f32, (size_t)R * V * sizeof(float),
                               cudaMemcpyDeviceToHost, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
}

static int cu_sample(Backend *b, const SampleBatch *sb, int32_t *tokens, LogprobEntry *lps, char *err) {
    return cuda_sample(cuda_ctx(b), sb, tokens, lps, err);
}

static int cu_sample_launch(Backend *b, const SampleBatch *sb, char *err) {
    return cuda_sample_launch(cuda_ctx(b), sb, err);
}

static int cu_sample_collect(Backend *b, int32_t *tokens, LogprobEntry *lps, char *err) {
    return cuda_sample_collect(cuda_ctx(b), tokens, lps, err);
}

static void cu_sync(Backend *b) {
    CudaCtx *c = cuda_ctx(b);
    cuda_graph_flush(c);
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    CUDA_CHECK(cudaGetLastError());
}

static void cu_destroy(Backend *b) {
    if (!b) return;
    CudaCtx *c = cuda_ctx(b);
    int prev = -1;
    if (c) {
        /* a TP engine frees every rank's backend from one thread: work on this one's GPU */
        if (cudaGetDevice(&prev) != cudaSuccess) prev = -1;
        cudaSetDevice(c->device);
        cudaStreamSynchronize(c->stream);
        if (c->profile) cuda_profile_report(c);
        if (c->host_times && c->ht_steps)
            LOG_I("cuda host time per graph replay (%ld steps): set_batch %.1f us, "
                  "recording %.1f us, finish (compare + graph launch) %.1f us; per sampler call "
                  "(%ld): %.1f us before its wait, %.1f us waiting", c->ht_steps,
                  1e6 * c->ht_set_batch / c->ht_steps, 1e6 * c->ht_record / c->ht_steps,
                  1e6 * c->ht_finish / c->ht_steps, c->ht_samples,
                  c->ht_samples ? 1e6 * c->ht_sample / c->ht_samples : 0.0,
                  c->ht_samples ? 1e6 * c->ht_wait / c->ht_samples : 0.0);
        if (c->graph_captures)
            LOG_I("cuda graphs: %d captured (%.2f s capturing), %ld replays", c->graph_captures,
                  c->graph_capture_s, c->graph_replays);
        cuda_graph_free(c);
        cuda_gemm_free_plans(c);
        cuda_gemm_pair_free(c);
        if (c->lt_ws) cudaFree(c->lt_ws);
        if (c->warena) cudaFree(c->warena); /* weights still loaded at destroy */
        if (c->qkv_buf) cudaFree(c->qkv_buf);
        if (c->d_samp_in) cudaFree(c->d_samp_in);
        if (c->h_samp_in) cudaFreeHost(c->h_samp_in);
        if (c->d_samp_out) cudaFree(c->d_samp_out);
        if (c->h_samp_out) cudaFreeHost(c->h_samp_out);
        if (c->samp_work) cudaFree(c->samp_work);
        cuda_sample_async_free(c);
        if (c->lt) cublasLtDestroy(c->lt);
        if (c->d_meta) cudaFree(c->d_meta);
        if (c->h_meta) cudaFreeHost(c->h_meta);
        if (c->attn_part) cudaFree(c->attn_part);
        if (c->attn_cnt) cudaFree(c->attn_cnt);
        if (c->logits_f32) cudaFree(c->logits_f32);
        if (c->rope_inv_freq) cudaFree(c->rope_inv_freq);
        if (c->rope_tab) cudaFree(c->rope_tab);
        if (c->meta_done) cudaEventDestroy(c->meta_done);
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c);
        if (prev >= 0) cudaSetDevice(prev);
    }
    free(b);
}

static const char *cu_device_name(Backend *b) { return cuda_ctx(b)->device_name; }

static const BackendOps CUDA_OPS = {
    cu_alloc,     cu_free,        cu_memset0,   cu_to_device,    cu_to_host,
    cu_weight_load, cu_weight_free, cu_mem_free, cu_set_batch,   cu_embed,
    cu_rmsnorm,   cu_matmul,      cu_qk_norm_rope, cu_kv_store,  cu_attention,
    cu_silu_mul,  cu_gather_rows, cu_logits,    cu_sample, cu_sync, cu_destroy,
    cu_mem_total, cuda_capture_graphs,
    cuda_logits_device, cuda_logits_from_shards,
    cu_sample_launch, cu_sample_collect,
    cu_weight_reserve,
    cu_device_name,
};

extern "C" long backend_cuda_fused_launches(const Backend *b) {
    return b && b->ctx ? ((const CudaCtx *)b->ctx)->fused_pro : 0;
}

extern "C" long backend_cuda_pair_launches(const Backend *b) {
    return b && b->ctx ? ((const CudaCtx *)b->ctx)->pair_launches : 0;
}

extern "C" long backend_cuda_qkv_launches(const Backend *b) {
    return b && b->ctx ? ((const CudaCtx *)b->ctx)->qkv_launches : 0;
}

extern "C" long backend_cuda_wgmma_prefill_launches(const Backend *b) {
    return b && b->ctx ? ((const CudaCtx *)b->ctx)->wgmma_prefill_launches : 0;
}

extern "C" int backend_cuda_cc_major(const Backend *b) {
    return b && b->ctx ? ((const CudaCtx *)b->ctx)->cc_major : 0;
}

extern "C" long backend_cuda_step_tunes(const Backend *b) {
    return b && b->ctx ? ((const CudaCtx *)b->ctx)->step_tunes : 0;
}

extern "C" long backend_cuda_gemm_plans(const Backend *b, long *lent) {
    const CudaCtx *c = b && b->ctx ? (const CudaCtx *)b->ctx : NULL;
    if (lent) *lent = c ? c->lt_lent : 0;
    return c ? c->lt_timed : 0;
}

static int env_int(const char *name, int dflt) {
    const char *s = getenv(name);
    return s && *s ? atoi(s) : dflt;
}

extern "C" Backend *backend_cuda_new(const BackendOptions *opt, char *err) {
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0) {
        pg_err(err, "cuda: no CUDA device available (%s)",
               e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        cudaGetLastError();
        return NULL;
    }
    int dev = opt ? opt->device_id : 0;
    if (dev < 0 || dev >= ndev) {
        pg_err(err, "cuda: device %d does not exist (%d device(s) visible)", dev, ndev);
        return NULL;
    }
    if (opt && opt->kv_dtype != DT_COUNT && opt->kv_dtype != DT_BF16 && opt->kv_dtype != DT_FP8_E4M3) {
        pg_err(err, "cuda: kv cache dtype %s is not supported by the CUDA backend (bf16 or fp8_e4m3)",
               dtype_name(opt->kv_dtype));
        return NULL;
    }
    Backend *b = (Backend *)calloc(1, sizeof(Backend));
    CudaCtx *c = (CudaCtx *)calloc(1, sizeof(CudaCtx));
    if (!b || !c) {
        free(b);
        free(c);
        pg_err(err, "cuda: out of host memory");
        return NULL;
    }
    CUDA_CHECK(cudaSetDevice(dev));
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    c->device = dev;
    snprintf(c->device_name, sizeof c->device_name, "%s", prop.name);
    c->num_sms = prop.multiProcessorCount;
    c->smem_optin = prop.sharedMemPerBlockOptin;
    c->enforce_eager = opt ? opt->enforce_eager : 0;
    c->sync_check = env_int("PAGELLM_CUDA_SYNC_CHECK", 0);
    c->gemv_mode = env_int("PAGELLM_CUDA_GEMV", -1);
    c->fuse = env_int("PAGELLM_CUDA_FUSE", 1);
    c->fuse_pro = env_int("PAGELLM_CUDA_FUSE_PRO", 1);
    c->gemm_pair = env_int("PAGELLM_CUDA_GEMM_PAIR", 1);
    c->gemv4 = env_int("PAGELLM_CUDA_GEMV4", 1);
    c->lt_tune = env_int("PAGELLM_CUDA_LT_TUNE", 1);
    c->lt_tune_rows = env_int("PAGELLM_CUDA_LT_TUNE_ROWS", 512);
    c->lt_lend = env_int("PAGELLM_CUDA_LT_LEND", 1);
    c->graph_lend_max = env_int("PAGELLM_CUDA_GRAPH_LEND_MAX", 128);
    c->cc_major = prop.major;
    c->pdl = prop.major >= 9 ? env_int("PAGELLM_CUDA_PDL", 1) : 0;
    c->prefill_attn = env_int("PAGELLM_CUDA_PREFILL_ATTN", 2);
    c->decode_attn = env_int("PAGELLM_CUDA_DECODE_ATTN", 3);
    /* 0 (session 5): through the engine at its defaults (max_num_seqs 256) the in-kernel merge
     * cost 0.29 ms per batch-1 token on the H100 (6.115 vs 5.825 ms, one warm machine); even in
     * the backend bench (session 4). Not understood: the kernels time the same under ncu, and
     * with PDL off both engine configurations are equal (dev/cuda/NOTES.md "Session 5"). */
    c->decode_combine_fused = env_int("PAGELLM_CUDA_DECODE_COMBINE", 0);
    c->decode_late_trigger = env_int("PAGELLM_CUDA_DECODE_TRIGGER", 1);
    c->decode_splits_min = env_int("PAGELLM_CUDA_DECODE_SPLITS_MIN", 1);
    c->host_times = env_int("PAGELLM_CUDA_HOST_TIMES", 0);
    c->combine_pdl = env_int("PAGELLM_CUDA_COMBINE_PDL", 0);
    c->step_tune = env_int("PAGELLM_CUDA_STEP_TUNE", 1);
    c->fuse_rope_store = env_int("PAGELLM_CUDA_FUSE_KV", 1);
    /* on since run15 (H100, 8B, 256 x 512/512 bf16 through the engine): 10,501 tok/s without
     * either (mean of two runs), 10,663 with the fused QKV, 10,769 with both; the 256-row bench
     * step 14.66 -> 14.50 ms, the sampler's temperature-only 256 rows 0.313 -> 0.187 ms */
    c->fuse_qkv = env_int("PAGELLM_CUDA_FUSE_QKV", 1);
    c->sample_plain = env_int("PAGELLM_CUDA_SAMPLE_PLAIN", 1);
    c->profile = env_int("PAGELLM_CUDA_PROFILE", 0);
    if (c->profile) {
        CUDA_CHECK(cudaEventCreate(&c->prof_e0));
        CUDA_CHECK(cudaEventCreate(&c->prof_e1));
    }
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->meta_done, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(c->meta_done, c->stream));
    if (cublasLtCreate(&c->lt) != CUBLAS_STATUS_SUCCESS) {
        pg_err(err, "cuda: cublasLtCreate failed");
        cu_destroy(b);
        return NULL;
    }
    c->lt_ws_bytes = 64u << 20;
    CUDA_CHECK(cudaMalloc(&c->lt_ws, c->lt_ws_bytes));
    b->ops = &CUDA_OPS;
    b->name = "cuda";
    b->act_dtype = DT_BF16;
    b->kv_dtype = opt && opt->kv_dtype == DT_FP8_E4M3 ? DT_FP8_E4M3 : DT_BF16;
    c->kv_fp8 = b->kv_dtype == DT_FP8_E4M3;
    if (c->prefill_attn == 7 || c->prefill_attn == 8) c->sm90a = cuda_prefill_attn_wgmma_probe(c);
    b->ctx = c;
    LOG_I("cuda: %s, %d SMs, %.1f GB, compute %d.%d", prop.name, c->num_sms,
          prop.totalGlobalMem / 1e9, prop.major, prop.minor);
    return b;
}
