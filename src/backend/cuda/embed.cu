/* embed.cu: token embedding lookup, row gather for the logits rows, and the Linear bias add.
 * Plain copies with 16-byte accesses where the row length allows. */
#include "backend/cuda/cuda_common.cuh"

/* o[0..D) = s[0..D) by the block's threads (16-byte accesses when D % 8 == 0). */
__device__ __forceinline__ void copy_row(bf16 *o, const bf16 *s, int D) {
    if ((D & 7) == 0) {
        const uint4 *s4 = (const uint4 *)s;
        uint4 *o4 = (uint4 *)o;
        for (int i = threadIdx.x; i < D / 8; i += blockDim.x) o4[i] = s4[i];
    } else {
        for (int i = threadIdx.x; i < D; i += blockDim.x) o[i] = s[i];
    }
}

/* out[r, :] = src[idx[r], :] for r < rows; one block per row. */
__global__ void gather_kernel(bf16 *out, const bf16 *src, const int32_t *idx, int D) {
    pdl_trigger(); /* see cuda_launch: launched with PDL */
    pdl_wait();
    const int r = blockIdx.x;
    copy_row(out + (int64_t)r * D, src + (int64_t)idx[r] * D, D);
}

/* out[t, :] = emb[id, :] with id = token_ids[t], or prev[src[t]] where src[t] >= 0 (async
 * scheduling: the token the previous launched step sampled, never seen by the host). prev may be
 * NULL when no src entry is >= 0. One block per token. */
__global__ void embed_kernel(bf16 *out, const bf16 *emb, const int32_t *ids, const int32_t *src,
                             const int32_t *prev, int D) {
    pdl_trigger(); /* see cuda_launch: launched with PDL */
    pdl_wait();
    const int t = blockIdx.x, s = src[t];
    int64_t from = s >= 0 ? prev[s] : ids[t];
    /* a row the sampler left at -1 (nothing allowed): the engine fails that sequence when it
     * collects the row and drops this step's token; any valid row will do */
    if (from < 0) from = 0;
    copy_row(out + (int64_t)t * D, emb + from * D, D);
}

void cuda_embed(CudaCtx *c, bf16 *out, const bf16 *emb, int D) {
    if (c->T <= 0) return;
    /* the addresses (metadata and d_prev_tokens) are fixed while graphs replay them */
    cuda_launch(c, embed_kernel, dim3(c->T), dim3(128), 0, out, emb, (const int32_t *)c->dev.token_ids,
                (const int32_t *)c->dev.token_src_row, (const int32_t *)c->d_prev_tokens, D);
    CUDA_LAUNCH_CHECK(c);
}

void cuda_gather_rows(CudaCtx *c, bf16 *out, const bf16 *x, int D) {
    if (c->R <= 0) return;
    cuda_launch(c, gather_kernel, dim3(c->R), dim3(128), 0, out, x, c->dev.logits_rows, D);
    CUDA_LAUNCH_CHECK(c);
}

__global__ void add_bias_kernel(bf16 *out, const bf16 *bias, int64_t n, int N) {
    pdl_trigger(); /* see cuda_launch: launched with PDL */
    pdl_wait();
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = __float2bfloat16_rn(__bfloat162float(out[i]) + __bfloat162float(bias[i % N]));
}

void cuda_add_bias(CudaCtx *c, bf16 *out, const bf16 *bias, int rows, int N) {
    int64_t n = (int64_t)rows * N;
    if (n <= 0) return;
    cuda_launch(c, add_bias_kernel, dim3(cdiv(n, 256)), dim3(256), 0, out, bias, n, N);
    CUDA_LAUNCH_CHECK(c);
}
