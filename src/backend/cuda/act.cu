/* act.cu: out = silu(gate) * up, elementwise, in HF's bf16 rounding order: silu(gate) is
 * rounded to bf16, then the product is rounded again (as torch does op by op): silu_bf16 and
 * silu_mul8 in cuda_common.cuh, shared with GEMV v4's SILU prologue (gemv_pipe.cu). */
#include "backend/cuda/cuda_common.cuh"

__global__ void silu_mul_vec_kernel(bf16 *out, const bf16 *gate, const bf16 *up, int64_t n8) {
    pdl_trigger(); /* see cuda_launch: launched with PDL */
    pdl_wait();
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    ((uint4 *)out)[i] = silu_mul8(((const uint4 *)gate)[i], ((const uint4 *)up)[i]);
}

__global__ void silu_mul_kernel(bf16 *out, const bf16 *gate, const bf16 *up, int64_t n) {
    pdl_trigger(); /* see cuda_launch: launched with PDL */
    pdl_wait();
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = __float2bfloat16_rn(silu_bf16(__bfloat162float(gate[i])) *
                                     __bfloat162float(up[i]));
}

void cuda_silu_mul(CudaCtx *c, bf16 *out, const bf16 *gate, const bf16 *up, int rows, int F) {
    int64_t n = (int64_t)rows * F;
    if (n <= 0) return;
    if ((n & 7) == 0 && (((uintptr_t)out | (uintptr_t)gate | (uintptr_t)up) & 15) == 0)
        cuda_launch(c, silu_mul_vec_kernel, dim3(cdiv(n / 8, 256)), dim3(256), 0, out, gate, up, n / 8);
    else
        cuda_launch(c, silu_mul_kernel, dim3(cdiv(n, 256)), dim3(256), 0, out, gate, up, n);
    CUDA_LAUNCH_CHECK(c);
}
