/* qwen3.c: model_forward(), one engine step of a Qwen3 / Qwen2 / Llama decoder, written once
 * against the backend op table (backend/backend.h). The architectures differ only in flags:
 * Qwen3 has a per-head RMSNorm on q and k, Qwen2 a bias on q/k/v, Llama a llama3 rope scaling
 * (inside RopeParams). Per layer:
 *
 *   xn = rmsnorm(x += tmp)                      (the residual add is fused into the norm)
 *   q, k, v = xn @ Wq, Wk, Wv (+ b)             qk_norm_rope(q, k)
 *   kv_store(k, v) -> paged cache               att = paged attention(q, cache)
 *   tmp = att @ Wo;  [ALL-REDUCE tmp]           xn = rmsnorm(x += tmp)
 *   tmp = (silu(xn @ Wgate) * (xn @ Wup)) @ Wdown;  [ALL-REDUCE tmp]
 *
 * then the final norm on the rows whose logits are wanted, and logits to the host. The batch is
 * validated first so that a bad batch is an error, not an out-of-bounds read in a kernel.
 *
 * Tensor parallelism (Model.tp and Model.comm set: one rank of a model/tp_forward.h group): the
 * same sequence on the rank's shards (hq query heads, hkv KV heads, f intermediate columns, a
 * vocabulary slice of Vs rows; docs/distributed.md). The bracketed all-reduces sum the
 * row-parallel partial outputs; the embedding is a masked lookup in the vocabulary slice
 * (other ids read the shard's zero row) + an all-reduce; the logits are a gather: each rank
 * writes its real columns into the caller's [R, V] host buffer, then a barrier; or, with
 * logits == NULL (device sampling), an all-gather of the device shards assembled into the
 * [R, V] logits that rank 0's `sample` op reads. Without a comm none of this runs: the code path
 * is the single-backend one, unchanged. */
#include <string.h>

#include "model/model.h"
#include "model/model_internal.h"
#include "sample/sample_batch.h"
#include "util/err.h"

int model_check_batch(const Model *m, const BatchMeta *b, char *err) {
    const int T = b->num_tokens, S = b->num_seqs, V = m->cfg.vocab_size;
    if (T <= 0 || T > m->max_tokens)
        return pg_err(err, "forward: num_tokens %d outside [1, %d] (max_tokens)", T, m->max_tokens);
    if (S <= 0 || S > T) return pg_err(err, "forward: num_seqs %d outside [1, %d]", S, T);
    if (!m->kv.k) return pg_err(err, "forward: no KV cache (call model_alloc_kv first)");
    if (b->block_size != m->kv.block_size)
        return pg_err(err, "forward: block_size %d but the KV cache has %d", b->block_size, m->kv.block_size);
    if (b->num_logits_rows < 0 || b->num_logits_rows > T)
        return pg_err(err, "forward: num_logits_rows %d outside [0, %d]", b->num_logits_rows, T);
    if (b->query_start[0] != 0 || b->query_start[S] != T)
        return pg_err(err, "forward: query_start must run from 0 to num_tokens %d", T);
    const long long nslots = (long long)m->kv.num_blocks * m->kv.block_size;
    for (int t = 0; t < T; t++) {
        if (b->token_ids[t] < 0 || b->token_ids[t] >= V)
            return pg_err(err, "forward: token id %d at %d outside the vocabulary [0, %d)", b->token_ids[t], t, V);
        if (b->slot_mapping[t] < -1 || b->slot_mapping[t] >= nslots)
            return pg_err(err, "forward: slot %d of token %d outside the KV cache (%lld slots)",
                          b->slot_mapping[t], t, nslots);
    }
    for (int s = 0; s < S; s++) {
        int q0 = b->query_start[s], q1 = b->query_start[s + 1], len = b->seq_lens[s];
        if (q1 < q0) return pg_err(err, "forward: query_start not increasing at sequence %d", s);
        if (len <= 0 || (len - 1) / b->block_size >= b->max_blocks_per_seq)
            return pg_err(err, "forward: seq_len %d of sequence %d needs more than %d blocks", len, s,
                          b->max_blocks_per_seq);
        for (int t = q0; t < q1; t++)
            if (b->positions[t] < 0 || b->positions[t] >= len)
                return pg_err(err, "forward: position %d of token %d outside sequence %d's length %d",
                              b->positions[t], t, s, len);
        for (int i = 0; i <= (len - 1) / b->block_size; i++) {
            int blk = b->block_tables[(size_t)s * b->max_blocks_per_seq + i];
            if (blk < 0 || blk >= m->kv.num_blocks)
                return pg_err(err, "forward: block %d (entry %d of sequence %d) outside [0, %d)", blk, i,
                              s, m->kv.num_blocks);
        }
    }
    for (int r = 0; r < b->num_logits_rows; r++)
        if (b->logits_rows[r] < 0 || b->logits_rows[r] >= T)
            return pg_err(err, "forward: logits row %d outside [0, %d)", b->logits_rows[r], T);
    return 0;
}

static const Tensor *opt_tensor(const Tensor *t) { return tensor_present(t) ? t : NULL; }

/* In-place sum over the ranks of a tensor-parallel Model; nothing for a whole model. */
static int tp_all_reduce(Model *m, void *buf, size_t count, char *err) {
    if (!m->comm) return 0;
    return m->comm->ops->all_reduce_sum(m->comm, buf, count, m->be->act_dtype, err);
}

/* Vocabulary-parallel embedding: the batch with token ids local to the rank's embed shard;
 * ids outside [v0, v0 + v_real) read the shard's extra zero row (local id Vs). */
static BatchMeta tp_local_batch(const Model *m, const BatchMeta *b) {
    const TpLayout *L = m->tp;
    int32_t *ids = ((ModelScratch *)m->scratch)->local_ids;
    for (int t = 0; t < b->num_tokens; t++) {
        int id = b->token_ids[t] - L->v0;
        ids[t] = id >= 0 && id < L->v_real ? id : L->v_shard;
    }
    BatchMeta lb = *b;
    lb.token_ids = ids;
    return lb;
}

/* Logits of a rank: its [R, Vs] columns, its real ones written into the shared host [R, V]. */
static void tp_logits(Model *m, float *logits, int R) {
    const BackendOps *op = m->be->ops;
    ModelScratch *s = m->scratch;
    const TpLayout *L = m->tp;
    const int V = m->cfg.vocab_size, Vs = L->v_shard;
    op->logits(m->be, s->logits_shard, s->rows, &m->dev.lm_head, R, m->cfg.hidden_size, Vs);
    for (int r = 0; r < R; r++)
        memcpy(logits + (size_t)r * V + L->v0, s->logits_shard + (size_t)r * Vs,
               (size_t)L->v_real * sizeof(float));
}

/* Logits of a rank kept on the devices (device sampling): its [R, Vs] columns stay in the
 * backend, an all-gather puts every rank's columns into s->gather [N, R, Vs] and each rank makes
 * them the [R, V] logits that its `sample` op would read next (logits_from_shards); only rank 0
 * samples (tp_forward.c). Every rank assembles, not only rank 0, so that every rank's backend
 * grows (and re-bakes into its CUDA graphs) the same buffers at the same step: the graphs'
 * replay decisions stay identical on all ranks. */
static int tp_logits_device(Model *m, int R, char *err) {
    const BackendOps *op = m->be->ops;
    ModelScratch *s = m->scratch;
    const TpLayout *L = m->tp;
    if (!s->gather) return pg_err(err, "forward: backend %s cannot keep tensor-parallel logits on the device", m->be->name);
    if (R > m->max_seqs) return pg_err(err, "forward: %d logits rows for device sampling, more than max_seqs %d", R, m->max_seqs);
    op->logits(m->be, NULL, s->rows, &m->dev.lm_head, R, m->cfg.hidden_size, L->v_shard);
    if (m->comm->ops->all_gather(m->comm, s->gather, op->logits_device(m->be), (size_t)R * L->v_shard, DT_F32, err))
        return -1;
    op->logits_from_shards(m->be, s->gather, L->size, R, L->v_shard, m->cfg.vocab_size);
    return 0;
}

/* model_forward's body; sync = 0 leaves the step queued on the device (the device-sampling
 * path: the sampler is queued behind it and waits for both at once). */
static int forward(Model *m, const BatchMeta *b, float *logits, int sync, char *err) {
    if (model_check_batch(m, b, err) != 0) return -1;
    Backend *be = m->be;
    const BackendOps *op = be->ops;
    const ModelConfig *c = &m->cfg;
    const TpLayout *tp = m->tp;
    ModelScratch *s = m->scratch;
    /* the rank's local shapes under tensor parallelism, the model's otherwise */
    const int T = b->num_tokens, D = c->hidden_size, F = tp ? tp->f : c->intermediate_size;
    const int Hq = tp ? tp->hq : c->num_heads, Hkv = tp ? tp->hkv : c->num_kv_heads, hd = c->head_dim;
    const float eps = c->rms_norm_eps;
    RopeParams rope = c->rope;
    rope.head_dim = hd;

    if (tp) {
        BatchMeta lb = tp_local_batch(m, b);
        op->set_batch(be, &lb);
    } else {
        op->set_batch(be, b);
    }
    op->embed(be, s->x, &m->dev.embed, D);
    if (tp_all_reduce(m, s->x, (size_t)T * D, err) != 0) return -1;
    for (int l = 0; l < c->num_layers; l++) {
        const LayerWeights *w = &m->dev.layers[l];
        /* attention block; layer 0 has no pending residual add */
        op->rmsnorm(be, s->xn, l ? s->x : NULL, l ? s->tmp : s->x, &w->input_norm, T, D, eps);
        op->matmul(be, s->q, s->xn, &w->wq, opt_tensor(&w->bq), T);
        op->matmul(be, s->k, s->xn, &w->wk, opt_tensor(&w->bk), T);
        op->matmul(be, s->v, s->xn, &w->wv, opt_tensor(&w->bv), T);
        op->qk_norm_rope(be, s->q, s->k, opt_tensor(&w->q_norm), opt_tensor(&w->k_norm), Hq, Hkv, hd,
                         eps, &rope);
        op->kv_store(be, m->kv.k[l], m->kv.v[l], s->k, s->v, Hkv, hd);
        op->attention(be, s->att, s->q, m->kv.k[l], m->kv.v[l], Hq, Hkv, hd);
        op->matmul(be, s->tmp, s->att, &w->wo, NULL, T);
        if (tp_all_reduce(m, s->tmp, (size_t)T * D, err) != 0) return -1;
        /* MLP block */
        op->rmsnorm(be, s->xn, s->x, s->tmp, &w->post_norm, T, D, eps);
        op->matmul(be, s->gate, s->xn, &w->w_gate, NULL, T);
        op->matmul(be, s->up, s->xn, &w->w_up, NULL, T);
        op->silu_mul(be, s->gate, s->gate, s->up, T, F);
        op->matmul(be, s->tmp, s->gate, &w->w_down, NULL, T);
        if (tp_all_reduce(m, s->tmp, (size_t)T * D, err) != 0) return -1;
    }
    const int R = b->num_logits_rows;
    if (R > 0) {
        /* Last residual add + final norm (on all rows: cheap), then lm_head on the wanted rows. */
        op->rmsnorm(be, s->xn, s->x, s->tmp, &m->dev.final_norm, T, D, eps);
        op->gather_rows(be, s->rows, s->xn, D);
        if (tp && logits)
            tp_logits(m, logits, R);
        else if (tp) {
            if (tp_logits_device(m, R, err) != 0) return -1;
        } else
            op->logits(be, logits, s->rows, &m->dev.lm_head, R, D, c->vocab_size);
    }
    if (sync && op->sync) op->sync(be);
    /* logits gather: returns once every rank's columns are in the caller's buffer */
    if (m->comm) m->comm->ops->barrier(m->comm);
    return 0;
}

int model_forward(Model *m, const BatchMeta *b, float *logits, char *err) {
    return forward(m, b, logits, 1, err);
}

/* No synchronization between the forward and the sampler: on the CUDA backend the sampler's
 * inputs, kernel and copy-back queue behind the step's graph, so the sampler starts the moment
 * the forward ends instead of after a host round trip (the sample op's own final wait is the
 * step's only one). Under tensor parallelism every rank syncs as before. */
int model_forward_sample(Model *m, const BatchMeta *b, const SampleBatch *sb, int32_t *tokens,
                         LogprobEntry *lps, char *err) {
    if (forward(m, b, NULL, m->comm != NULL, err) != 0) return -1;
    return b->num_logits_rows > 0 ? model_sample(m, sb, tokens, lps, err) : 0;
}

int model_can_launch_sample(const Model *m) {
    return !m->tp && !m->comm && m->be->ops->sample_launch && m->be->ops->sample_collect;
}

/* No wait anywhere: the forward, the sampler and its copy-back queue on the device; the next
 * step's embed reads its pending tokens from this step's sampler output. */
int model_launch_sample(Model *m, const BatchMeta *b, const SampleBatch *sb, char *err) {
    if (!model_can_launch_sample(m)) return pg_err(err, "backend %s cannot launch steps asynchronously", m->be->name);
    if (forward(m, b, NULL, 0, err) != 0) return -1;
    return m->be->ops->sample_launch(m->be, sb, err);
}

int model_collect_sample(Model *m, int32_t *tokens, LogprobEntry *lps, char *err) {
    if (!model_can_launch_sample(m)) return pg_err(err, "backend %s cannot launch steps asynchronously", m->be->name);
    return m->be->ops->sample_collect(m->be, tokens, lps, err);
}

int model_sample(Model *m, const SampleBatch *sb, int32_t *tokens, LogprobEntry *lps, char *err) {
    if (!m->be->ops->sample) return pg_err(err, "backend %s has no device sampler", m->be->name);
    if (m->tp) return pg_err(err, "sample: device sampling under tensor parallelism is not supported");
    return m->be->ops->sample(m->be, sb, tokens, lps, err);
}
