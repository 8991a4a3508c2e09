/* mma.cuh: warp-level tensor-core building blocks shared by the attention kernels.
 *
 * mma_bf16_16816: D[16x8] += A[16x16] * B[16x8] (bf16 in, fp32 accumulate), the sm_80+ mma.sync
 * fragment layout: lane = 4 * g + t4; A regs {a0,a1,a2,a3} = rows {g, g+8} x cols {2t4.., 2t4+8..};
 * B regs {b0,b1} = k {2t4, 2t4+1} and {2t4+8, 2t4+9} of column g; D {d0,d1,d2,d3} = row g cols
 * 2t4, 2t4+1 and row g+8 cols 2t4, 2t4+1.
 * ldmatrix_x4 / ldmatrix_x4_trans: four 8x8 b16 tiles from shared memory, as stored (K fragments
 * for Q.K^T) or transposed (V^T fragments for P.V).
 * mma_f16_16816: the same in f16.
 * pack_bf16: two floats to one bf16x2 register (A fragments built from accumulators).
 * prefill_row: the (token, head) of a prefill attention block's query row.
 * softmax_tile: one key tile's step of the online softmax on a thread's score fragments. */
#ifndef PAGELLM_BACKEND_CUDA_MMA_CUH
#define PAGELLM_BACKEND_CUDA_MMA_CUH
#include <cuda_bf16.h>
#include <stdint.h>

__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t &r0, uint32_t &r1, uint32_t &r2,
                                                  uint32_t &r3, const void *smem_row) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem_row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(a));
}

/* The same in f16 (the fp8 KV path widens e4m3 to f16 exactly). */
__device__ __forceinline__ void mma_f16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                              uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Four 8x8 b16 tiles from shared memory, not transposed: with rows = keys and columns = head
 * dims they are the B fragments (b0, b1) of S = Q K^T for two 8-key n-tiles. */
__device__ __forceinline__ void ldmatrix_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3,
                                            const void *smem_row) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem_row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(a));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

/* Row r of a prefill attention block whose rows are (token, head of the GQA group) pairs and
 * whose first token is tok0 (TPT tokens a block): its token (clamped to the chunk: rows past it,
 * or past TPT * G when G does not divide the block's rows, borrow the last valid token, so their
 * key range stays the block's) and head; returns whether the row is one of the chunk's. */
__device__ __forceinline__ bool prefill_row(int r, int tok0, int TPT, int G, int qlen, int kvh, int *tok,
                                            int *head) {
    const int tk = tok0 + min(r / G, TPT - 1);
    *tok = min(tk, qlen - 1);
    *head = kvh * G + r % G;
    return r < TPT * G && tk < qlen;
}

/* One key tile's step of the online softmax (FlashAttention) on the score fragments a thread
 * holds in the mma.sync / wgmma accumulator layout: s[j][e] is key k0 + 8 j + 2 t4 + (e & 1) of
 * the thread's row e >> 1 (of two), NB blocks of 8 keys; the quad (lanes with t4 0-3) holds the
 * whole row. With mask, keys past the row's position rpos[] become -inf (causal). Then per row:
 * m = max(m, the tile's max * sl2), alpha = exp2(old m - m), l = l * alpha + sum of the
 * probabilities p = exp2(s * sl2 - m), each block j's four given to emit(j, p0, p1, p2, p3) as
 * they are made (SoftmaxKeep stores them back into s). m and l are in log2 units of
 * (score * sl2); m is finite from the first tile on because every row sees key 0 there. The
 * caller rescales its O by alpha. Shared by prefill attention v2 and the wgmma kernel. */
template <int NB, typename Emit>
__device__ __forceinline__ void softmax_tile(float (&s)[NB][4], float (&m)[2], float (&l)[2], float (&alpha)[2],
                                             int k0, bool mask, const int (&rpos)[2], int t4, float sl2,
                                             Emit emit) {
    if (mask) {
#pragma unroll
        for (int j = 0; j < NB; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                if (k0 + 8 * j + 2 * t4 + (e & 1) > rpos[e >> 1]) s[j][e] = -INFINITY;
    }
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < NB; j++) {
        mx[0] = fmaxf(mx[0], fmaxf(s[j][0], s[j][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[j][2], s[j][3]));
    }
    float nm[2];
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        mx[rr] = fmaxf(mx[rr], __shfl_xor_sync(0xffffffffu, mx[rr], 1));
        mx[rr] = fmaxf(mx[rr], __shfl_xor_sync(0xffffffffu, mx[rr], 2));
        const float mn = fmaxf(m[rr], mx[rr] * sl2);
        alpha[rr] = exp2f(m[rr] - mn);
        m[rr] = mn;
        nm[rr] = -mn;
        l[rr] *= alpha[rr];
    }
#pragma unroll
    for (int j = 0; j < NB; j++) {
        const float p0 = exp2f(fmaf(s[j][0], sl2, nm[0])), p1 = exp2f(fmaf(s[j][1], sl2, nm[0]));
        const float p2 = exp2f(fmaf(s[j][2], sl2, nm[1])), p3 = exp2f(fmaf(s[j][3], sl2, nm[1]));
        l[0] += p0 + p1;
        l[1] += p2 + p3;
        emit(j, p0, p1, p2, p3);
    }
}

/* softmax_tile's emit that leaves the probabilities in s (for a caller that converts them
 * later); prefill attention v2 passes one that packs them into its P fragments instead, which
 * keeps its measured code as it was before the helper was shared. */
template <int NB> struct SoftmaxKeep {
    float (&s)[NB][4];
    __device__ __forceinline__ void operator()(int j, float p0, float p1, float p2, float p3) const {
        s[j][0] = p0; s[j][1] = p1; s[j][2] = p2; s[j][3] = p3;
    }
};

/* cp.async (sm_80+): 16 bytes global -> shared without passing through registers; groups are
 * committed and waited for by count, so a ring of stages keeps loads in flight while earlier
 * stages are computed on. */
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a), "l"(gmem) : "memory");
}
/* The same, or 16 zero bytes when !ok (src-size 0: nothing is read). */
__device__ __forceinline__ void cp_async16_zfill(void *smem, const void *gmem, bool ok) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    int n = ok ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(gmem), "r"(n)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

#endif
