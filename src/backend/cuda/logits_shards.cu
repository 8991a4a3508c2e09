/* logits_shards.cu: the device logits of a tensor-parallel rank (backend.h: logits_device,
 * logits_from_shards). A rank's logits call (logits_host == NULL) leaves its [R, Vs] vocabulary
 * shard in c->logits_f32; the model all-gathers every rank's shard into [n, R, Vs], and rank 0
 * compacts them here into the [R, V] float32 logits in c->logits_f32 that its `sample` op reads,
 * dropping the padding columns of the padded vocabulary (model/tp_shard.h). */
#include "backend/cuda/cuda_common.cuh"

/* dst[r, v] = shards[v / Vs][r][v % Vs], one thread per output element. */
__global__ void logits_compact_kernel(float *__restrict__ dst, const float *__restrict__ shards, int R, int Vs,
                                      int V) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)R * V) return;
    int r = (int)(i / V), v = (int)(i % V);
    int s = v / Vs, j = v - s * Vs;
    dst[i] = shards[((long long)s * R + r) * Vs + j];
}

const float *cuda_logits_device(Backend *b) { return cuda_ctx(b)->logits_f32; }

void cuda_logits_from_shards(Backend *b, const float *shards, int n, int R, int Vs, int V) {
    CudaCtx *c = cuda_ctx(b);
    (void)n;
    if (R <= 0) return;
    cuda_graph_flush(c);
    size_t need = (size_t)R * V;
    if (need > c->logits_cap) {
        /* grows once per larger R (as logits does); the step's shard was already gathered */
        cuda_scratch_grow(c, &c->logits_f32, &c->logits_cap, need);
    }
    /* What cu_sample reads: the [R, V] rows at the start of c->logits_f32, shape logits_R/_V. */
    logits_compact_kernel<<<cdiv((long long)need, 256), 256, 0, c->stream>>>(c->logits_f32, shards, R, Vs, V);
    CUDA_LAUNCH_CHECK(c);
    c->logits_R = R;
    c->logits_V = V;
}
