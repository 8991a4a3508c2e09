/* rmsnorm.cu: RMSNorm with the residual add fused in front of it.
 *
 * residual == NULL: out = w * rmsnorm(x). Otherwise residual += x (rounded to bf16, as the
 * model's bf16 add does), then out = w * rmsnorm(residual). Rounding follows HF's
 * Qwen3RMSNorm: statistics in float32, x * rstd rounded to bf16, times the bf16 weight rounded
 * again. One block per row, 16-byte accesses when D % 8 == 0 and the pointers allow.
 * GEMV v4's NORM prologue (gemv_pipe.cu) reproduces the 16-byte kernel bit for bit from the
 * shared helpers in cuda_common.cuh (rmsnorm_threads, rms_sumsq8, warp_allsum, rms_apply8) and
 * block_sum's order: a change to the arithmetic here must go there too. */
#include "backend/cuda/cuda_common.cuh"

/* The block's sum in a fixed order (GEMV v4's NORM prologue replays it: keep them in step). */
__device__ __forceinline__ float block_sum(float v, float *red) {
    v = warp_allsum(v);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < nw ? red[lane] : 0.f;
    return warp_allsum(t);
}

__global__ void rmsnorm_vec_kernel(bf16 *out, bf16 *residual, const bf16 *x, const bf16 *w,
                                   int D, float eps) {
    pdl_trigger(); /* see cuda_launch: launched with PDL */
    pdl_wait();
    __shared__ float red[32];
    int64_t row = blockIdx.x;
    const uint4 *x4 = (const uint4 *)(x + row * D);
    uint4 *r4 = residual ? (uint4 *)(residual + row * D) : NULL;
    const uint4 *src = r4 ? (const uint4 *)r4 : x4;
    float ss = 0.f;
    for (int i = threadIdx.x; i < D / 8; i += blockDim.x) {
        uint4 v = x4[i];
        if (r4) {
            uint4 r = r4[i];
            __nv_bfloat162 *r2 = (__nv_bfloat162 *)&r, *v2 = (__nv_bfloat162 *)&v;
#pragma unroll
            for (int j = 0; j < 4; j++) r2[j] = __hadd2(r2[j], v2[j]);
            r4[i] = r;
            v = r;
        }
        ss = rms_sumsq8(v, ss);
    }
    float rstd = rsqrtf(block_sum(ss, red) / (float)D + eps);
    uint4 *o4 = (uint4 *)(out + row * D);
    const uint4 *w4 = (const uint4 *)w;
    for (int i = threadIdx.x; i < D / 8; i += blockDim.x) o4[i] = rms_apply8(src[i], w4[i], rstd);
}

__global__ void rmsnorm_kernel(bf16 *out, bf16 *residual, const bf16 *x, const bf16 *w, int D,
                               float eps) {
    pdl_trigger(); /* see cuda_launch: launched with PDL */
    pdl_wait();
    __shared__ float red[32];
    int64_t row = blockIdx.x;
    const bf16 *xr = x + row * D;
    bf16 *rr = residual ? residual + row * D : NULL;
    float ss = 0.f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        bf16 v = xr[i];
        if (rr) {
            v = __hadd(rr[i], v);
            rr[i] = v;
        }
        float f = __bfloat162float(v);
        ss += f * f;
    }
    float rstd = rsqrtf(block_sum(ss, red) / (float)D + eps);
    const bf16 *src = rr ? rr : xr;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float a = __bfloat162float(__float2bfloat16_rn(__bfloat162float(src[i]) * rstd));
        out[row * D + i] = __float2bfloat16_rn(__bfloat162float(w[i]) * a);
    }
}

void cuda_rmsnorm(CudaCtx *c, bf16 *out, bf16 *residual, const bf16 *x, const bf16 *w, int rows,
                  int D, float eps) {
    if (rows <= 0) return;
    int threads = rmsnorm_threads(D);
    int vec = (D & 7) == 0 &&
              (((uintptr_t)out | (uintptr_t)residual | (uintptr_t)x | (uintptr_t)w) & 15) == 0;
    if (vec)
        cuda_launch(c, rmsnorm_vec_kernel, dim3(rows), dim3(threads), 0, out, residual, x, w, D, eps);
    else
        cuda_launch(c, rmsnorm_kernel, dim3(rows), dim3(threads), 0, out, residual, x, w, D, eps);
    CUDA_LAUNCH_CHECK(c);
}
