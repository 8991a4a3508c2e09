/* kv_store.cu: writes this step's K and V rows into the paged cache at the batch's slot
 * mapping (slot = block_id * block_size + offset; -1 = skip). The cache layout per layer is
 * [num_blocks, block_size, Hkv, hd], so a slot's Hkv*hd elements are contiguous. The cache is
 * bf16, or fp8 e4m3 (--kv-cache-dtype fp8: values stored with scale 1, saturated to +-448, as
 * vLLM's fp8 cache without calibrated scales). */
#include "backend/cuda/cuda_common.cuh"

/* One block per token; 16-byte reads when Hkv*hd is a multiple of 8. */
template <typename KV>
__global__ void kv_store_kernel(KV *kc, KV *vc, const bf16 *k, const bf16 *v, const int32_t *slots,
                                int row, int vec) {
    pdl_trigger(); /* see cuda_launch: launched with PDL */
    pdl_wait();
    int t = blockIdx.x;
    int64_t slot = slots[t];
    if (slot < 0) return;
    const bf16 *ks = k + (int64_t)t * row, *vs = v + (int64_t)t * row;
    KV *kd = kc + slot * row, *vd = vc + slot * row;
    if (vec) {
        for (int i = threadIdx.x; i < row / 8; i += blockDim.x) {
            kv_put8(kd + (int64_t)i * 8, ((const uint4 *)ks)[i]);
            kv_put8(vd + (int64_t)i * 8, ((const uint4 *)vs)[i]);
        }
    } else {
        for (int i = threadIdx.x; i < row; i += blockDim.x) {
            kv_put1(kd + i, ks[i]);
            kv_put1(vd + i, vs[i]);
        }
    }
}

void cuda_kv_store(CudaCtx *c, void *kcache, void *vcache, const bf16 *k, const bf16 *v, int Hkv,
                   int hd) {
    if (c->T <= 0) return;
    int row = Hkv * hd;
    /* 16-byte reads of k/v; writes of 8 elements: 16 bytes in bf16, 8 in fp8 */
    uintptr_t cache_align = c->kv_fp8 ? 7 : 15;
    int vec = (row & 7) == 0 && (((uintptr_t)k | (uintptr_t)v) & 15) == 0 &&
              (((uintptr_t)kcache | (uintptr_t)vcache) & cache_align) == 0;
    if (c->kv_fp8)
        cuda_launch(c, kv_store_kernel<fp8>, dim3(c->T), dim3(128), 0, (fp8 *)kcache, (fp8 *)vcache, k, v,
                                                          c->dev.slot_mapping, row, vec);
    else
        cuda_launch(c, kv_store_kernel<bf16>, dim3(c->T), dim3(128), 0, (bf16 *)kcache, (bf16 *)vcache, k, v,
                                                           c->dev.slot_mapping, row, vec);
    CUDA_LAUNCH_CHECK(c);
}
