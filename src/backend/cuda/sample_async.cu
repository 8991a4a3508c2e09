/* sample_async.cu: the device sampler split for async scheduling (backend.h sample_launch /
 * sample_collect, engine/core.h launch / collect).
 *
 * Step k+1 is launched before the host has step k's tokens, so sampler outputs are
 * double-buffered: each launched step owns one of two slots (pinned staging of its SampleRows,
 * device output, pinned copy-back, an event when that copy is done) until it is collected; step
 * k+1's sampler can therefore never overwrite step k's output before the host copied it. collect
 * waits on the oldest slot's event only, never on the stream: the stream is busy with the next
 * step by then, which is the point.
 *
 * Every launched sampler also writes its ids to d_prev_tokens[row] (one fixed buffer, so a
 * CUDA graph can bake its address): the next step's embed reads token t from
 * d_prev_tokens[token_src_row[t]] where the engine marked it pending. Stream order makes that
 * safe: step k's sampler writes before step k+1's embed reads, which is before step k+1's
 * sampler writes again. */
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "sample/sample_batch.h"
#include "util/err.h"
#include "util/timeutil.h"
}

/* Grows d_prev_tokens to `rows` entries. Moving it changes an address graphs baked: gen++ (as
 * for the metadata buffer); graph capture reserves max_seqs rows up front so it never moves. */
void cuda_prev_tokens_reserve(CudaCtx *c, int rows) {
    if (rows <= c->prev_tokens_cap) return;
    int cap = rows < 256 ? 256 : rows;
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    if (c->d_prev_tokens) CUDA_CHECK(cudaFree(c->d_prev_tokens));
    CUDA_CHECK(cudaMalloc(&c->d_prev_tokens, (size_t)cap * sizeof(int32_t)));
    CUDA_CHECK(cudaMemset(c->d_prev_tokens, 0, (size_t)cap * sizeof(int32_t)));
    c->prev_tokens_cap = cap;
    c->gen++;
}

/* Queues the sampling of the last logits into the next free slot; returns without waiting.
 * A step without logits rows (a chunked prefill alone) still takes a slot: every launch is
 * collected once, in order. */
int cuda_sample_launch(CudaCtx *c, const SampleBatch *sb, char *err) {
    if (c->samp_inflight >= 2) return pg_err(err, "cuda sample_launch: two steps already launched");
    CudaCtx::CudaSampSlot *s = &c->samp_slot[(c->samp_head + c->samp_inflight) % 2];
    const int R = sb->num_rows;
    cuda_graph_flush(c);   /* a recorded decode step runs (graph replay) before its sampler */
    const double ht0 = c->host_times ? time_now_s() : 0;
    if (!s->done) CUDA_CHECK(cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming));
    if (R > 0) {
        if (R > s->rows_cap) {
            SampleRow *r = (SampleRow *)realloc(s->rows, (size_t)R * sizeof *r);
            if (!r) return pg_err(err, "cuda sample_launch: out of memory");
            s->rows = r;
            s->rows_cap = R;
        }
        memcpy(s->rows, sb->rows, (size_t)R * sizeof *s->rows);
        cuda_prev_tokens_reserve(c, R);
        if (cuda_sample_enqueue(c, sb, &s->h_in, &s->h_in_cap, &s->d_out, &s->h_out, &s->out_cap, c->d_prev_tokens,
                                err) != 0)
            return -1;
    }
    s->R = R;
    CUDA_CHECK(cudaEventRecord(s->done, c->stream));
    c->samp_inflight++;
    if (c->host_times) {
        c->ht_samples++;
        c->ht_sample += time_now_s() - ht0;
    }
    return 0;
}

/* Waits for the oldest launched step's copy-back (its event, not the stream) and unpacks it. */
int cuda_sample_collect(CudaCtx *c, int32_t *tokens, LogprobEntry *lps, char *err) {
    if (c->samp_inflight == 0) return pg_err(err, "cuda sample_collect: nothing launched");
    CudaCtx::CudaSampSlot *s = &c->samp_slot[c->samp_head];
    const double ht0 = c->host_times ? time_now_s() : 0;
    cudaError_t e = cudaEventSynchronize(s->done);
    if (c->host_times) c->ht_wait += time_now_s() - ht0;
    if (e != cudaSuccess) return pg_err(err, "cuda sample_collect: %s", cudaGetErrorString(e));
    if (s->R > 0) cuda_sample_unpack(s->h_out, s->R, s->rows, tokens, lps);
    c->samp_head = (c->samp_head + 1) % 2;
    c->samp_inflight--;
    return 0;
}

void cuda_sample_async_free(CudaCtx *c) {
    for (int i = 0; i < 2; i++) {
        CudaCtx::CudaSampSlot *s = &c->samp_slot[i];
        if (s->h_in) cudaFreeHost(s->h_in);
        if (s->d_out) cudaFree(s->d_out);
        if (s->h_out) cudaFreeHost(s->h_out);
        if (s->done) cudaEventDestroy(s->done);
        free(s->rows);
        memset(s, 0, sizeof *s);
    }
    if (c->d_prev_tokens) cudaFree(c->d_prev_tokens);
    c->d_prev_tokens = NULL;
    c->prev_tokens_cap = 0;
}
