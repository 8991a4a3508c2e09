/* pfw_parts.cu: the two matrix products of prefill attention variant 7 (prefill_attn_wgmma.cu),
 * each checked on its own against a CPU reference, so that a failed op check of the whole
 * kernel can be traced to S = Q K^T (K-major operands, both from shared memory) or to
 * O = P V (P from registers, V N-major) or to neither (then: the softmax or the pipeline).
 *
 * One warpgroup, one tile: Q [64 x 128] and K, V [128 keys x 128] are loaded with the kernel's
 * own tensor maps and TMA boxes (K and V as 8 cache blocks of 16 keys in a shuffled order, as a
 * block table places them), S is written out from the wgmma accumulators, P = bf16(S / 16) is
 * built with the kernel's pfw_to_p and O = P V is written out. The device helpers are the
 * kernel's (this file includes its source). Prints the relative max error of S and O.
 * Build (gpu_check.sh --dev does):
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Isrc dev/cuda/pfw_parts.cu -o pfw_parts */
#include "../../src/backend/cuda/prefill_attn_wgmma.cu"

#include <stdio.h>
#include <stdlib.h>

namespace {

/* A warpgroup's m64n128 f32 accumulator d to out [64 x 128] row-major. D layout: d[4 j + e] is row
 * 16 w + g + 8 (e >> 1), column 8 j + 2 t4 + (e & 1) (warp w, lane 4 g + t4). */
__device__ __forceinline__ void store_d(float *out, const float (&d)[64]) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
#pragma unroll
    for (int j = 0; j < 16; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) out[(16 * w + g + 8 * (e >> 1)) * 128 + 8 * j + 2 * t4 + (e & 1)] = d[4 * j + e];
}

__global__ void __launch_bounds__(128, 1) pfw_parts_kernel(const __grid_constant__ CUtensorMap tm_q,
                                                           const __grid_constant__ CUtensorMap tm_k,
                                                           const __grid_constant__ CUtensorMap tm_v,
                                                           const int *ids, float *s_out, float *o_out) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    extern __shared__ uint8_t smem[];
    const uint32_t base = (smem_u32(smem) + 1023u) & ~1023u;
    const uint32_t sq = base, sk = base + Q_BYTES, sv = sk + KV_BYTES, bar = sv + KV_BYTES;
    if (threadIdx.x == 0) {
        mbar_init(bar, 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        mbar_expect_tx(bar, Q_BYTES + 2 * KV_BYTES);
        for (int p = 0; p < HD / PANEL; p++) {
            tma_load_3d(sq + p * Q_PANEL, &tm_q, p * PANEL, 0, 0, bar);
            for (int b = 0; b < BN / 16; b++) {
                tma_load_3d(sk + p * KV_PANEL + b * 16 * 128, &tm_k, p * PANEL, 0, ids[b] * 16, bar);
                tma_load_3d(sv + p * KV_PANEL + b * 16 * 128, &tm_v, p * PANEL, 0, ids[b] * 16, bar);
            }
        }
    }
    mbar_wait(bar, 0);
    float sacc[64], o[64];
    uint32_t p[32];
#pragma unroll
    for (int i = 0; i < 64; i++) o[i] = 0.f;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
        const uint32_t po = kk / 4, ko = 32 * (kk % 4);
        wgmma_ss(sacc, desc_sw128(sq + po * Q_PANEL + ko, 16), desc_sw128(sk + po * KV_PANEL + ko, 16), kk > 0);
    }
    wgmma_commit();
    wgmma_wait<0>();
    fence_f(sacc);
    store_d(s_out, sacc);
#pragma unroll
    for (int i = 0; i < 64; i++) sacc[i] *= 1.f / 16.f;
    pfw_to_p(p, sacc);
    fence_u(p);
    fence_f(o);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++)
        wgmma_rs(o, p[4 * kk], p[4 * kk + 1], p[4 * kk + 2], p[4 * kk + 3], desc_sw128(sv + kk * 16 * 128, KV_PANEL));
    wgmma_commit();
    wgmma_wait<0>();
    fence_f(o);
    store_d(o_out, o);
#endif
}

} /* namespace */

static float bf(float x) { return __bfloat162float(__float2bfloat16(x)); }

int main(void) {
    enum { NB = 16 }; /* cache blocks of 16 keys; the tile uses 8 of them, shuffled */
    const int nq = 128 * HD, nkv = NB * 16 * HD;
    float *hq = (float *)malloc(4 * nq), *hk = (float *)malloc(4 * nkv), *hv = (float *)malloc(4 * nkv);
    bf16 *bq = (bf16 *)malloc(2 * nq), *bk = (bf16 *)malloc(2 * nkv), *bv = (bf16 *)malloc(2 * nkv);
    srand(7);
    for (int i = 0; i < nq; i++) hq[i] = bf((float)rand() / RAND_MAX * 2 - 1), bq[i] = __float2bfloat16(hq[i]);
    for (int i = 0; i < nkv; i++) {
        hk[i] = bf((float)rand() / RAND_MAX * 2 - 1), bk[i] = __float2bfloat16(hk[i]);
        hv[i] = bf((float)rand() / RAND_MAX * 2 - 1), bv[i] = __float2bfloat16(hv[i]);
    }
    int ids[8] = {5, 12, 0, 9, 3, 15, 7, 10};
    bf16 *dq, *dk, *dv;
    int *dids;
    float *ds, *dout;
    CUDA_CHECK(cudaMalloc(&dq, 2 * nq));
    CUDA_CHECK(cudaMalloc(&dk, 2 * nkv));
    CUDA_CHECK(cudaMalloc(&dv, 2 * nkv));
    CUDA_CHECK(cudaMalloc(&dids, sizeof ids));
    CUDA_CHECK(cudaMalloc(&ds, 4 * 64 * BN));
    CUDA_CHECK(cudaMalloc(&dout, 4 * 64 * HD));
    CUDA_CHECK(cudaMemcpy(dq, bq, 2 * nq, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dk, bk, 2 * nkv, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dv, bv, 2 * nkv, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dids, ids, sizeof ids, cudaMemcpyHostToDevice));
    CUtensorMap tq, tk, tv; /* Q as [128 tokens, 1 head, HD], the cache as [NB * 16 slots, 1 head, HD] */
    if (!pfw_map(&tq, dq, 128, 1, HD, HD, 1, 128) || !pfw_map(&tk, dk, NB * 16, 1, HD, HD, 1, 16) ||
        !pfw_map(&tv, dv, NB * 16, 1, HD, HD, 1, 16)) {
        printf("pfw_parts: tensor map encode failed\n");
        return 1;
    }
    const int smem = 1024 + Q_BYTES + 2 * KV_BYTES + 8;
    CUDA_CHECK(cudaFuncSetAttribute(pfw_parts_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    pfw_parts_kernel<<<1, 128, smem>>>(tq, tk, tv, dids, ds, dout);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    float *s = (float *)malloc(4 * 64 * BN), *o = (float *)malloc(4 * 64 * HD);
    CUDA_CHECK(cudaMemcpy(s, ds, 4 * 64 * BN, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(o, dout, 4 * 64 * HD, cudaMemcpyDeviceToHost));
    double es = 0, ms = 0, eo = 0, mo = 0;
    for (int r = 0; r < 64; r++) {
        for (int key = 0; key < BN; key++) {
            const float *kr = hk + ((size_t)ids[key / 16] * 16 + key % 16) * HD;
            double ref = 0;
            for (int d = 0; d < HD; d++) ref += (double)hq[r * HD + d] * kr[d];
            es = fmax(es, fabs(ref - s[r * BN + key]));
            ms = fmax(ms, fabs(ref));
        }
        for (int d = 0; d < HD; d++) {
            double ref = 0;
            for (int key = 0; key < BN; key++) {
                const float *vr = hv + ((size_t)ids[key / 16] * 16 + key % 16) * HD;
                ref += (double)bf(s[r * BN + key] / 16.f) * vr[d]; /* P as the kernel rounded it */
            }
            eo = fmax(eo, fabs(ref - o[r * HD + d]));
            mo = fmax(mo, fabs(ref));
        }
    }
    printf("pfw_parts: S = Q K^T max err %.3g of max %.3g (%s); O = P V max err %.3g of max %.3g (%s)\n", es, ms,
           es <= 1e-3 * ms ? "ok" : "WRONG", eo, mo, eo <= 1e-3 * mo ? "ok" : "WRONG");
    printf("pfw_parts: S[0][0..3] %g %g %g %g, O[0][0..3] %g %g %g %g\n", s[0], s[1], s[2], s[3], o[0], o[1], o[2], o[3]);
    return es <= 1e-3 * ms && eo <= 1e-3 * mo ? 0 : 1;
}
