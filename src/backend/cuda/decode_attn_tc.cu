/* decode_attn_tc.cu: split-KV decode attention on the tensor cores (decode attention v3).
 *
 * One block per (kv head, split, decode sequence), as decode_attn_kernel (v1) in paged_attn.cu
 * (whose grid is (split, seq, kv head)), and the same outputs: the attention row itself when there is one split, else the split's
 * partial (max, sum, unnormalised output) in v1's layout, which decode_combine_kernel merges
 * (default since session 5) or, with PAGELLM_CUDA_DECODE_COMBINE=1, the last block of the (seq,
 * kv head) to finish (dtc_combine_if_last).
 * v1 spends ~100 CUDA-core instructions per key and per query head and cannot keep HBM busy;
 * here a key costs a few tensor-core instructions and the kernel is meant to be bound by the
 * bytes of K and V it streams.
 *
 *  - The G = Hq / Hkv query heads of the kv head are rows 0..G-1 of the 16-row A operand of
 *    mma m16n8k16 (rows G..15 are zero: wasted tensor-core work, which is cheap here). Each lane
 *    holds only the row-g half of its fragments (a1 = a3 = 0), one softmax row, and the row-g
 *    half of the output accumulators.
 *  - Work unit: a group of 16 keys (one k-step of P.V, two n-tiles of Q.K^T). Warp w takes the
 *    groups w, w+4, w+8, ... of the split's range and streams them global -> shared with cp.async
 *    through its own ring of NS stages (NS-1 groups in flight while one is computed). Warps never
 *    wait for each other inside the loop (only __syncwarp); their (m, l, O) are merged in shared
 *    memory at the end.
 *  - A split's range starts at a multiple of 16 keys, so with block_size a multiple of 16 a group
 *    lies inside one cache block: one block-table read per group. Other block sizes take the
 *    per-key path. Keys past the range are zero-filled (cp.async src-size 0) and masked.
 *  - bf16 cache: K B-fragments with ldmatrix (8 keys x 8 dims per matrix), V^T fragments with
 *    ldmatrix.trans, bf16 mma; S scaled by scale*log2(e) in fp32.
 *  - fp8 e4m3 cache: stages hold the raw bytes (half the shared memory and traffic) and the mma
 *    runs in f16, because e4m3 -> f16x2 is one cvt (e4m3 is exact in f16). Q is pre-scaled and
 *    rounded to f16 once. K: ldmatrix (b16 view) gives a lane 4 consecutive dims of one key,
 *    which become b0/b1 of one k-step; the dot product does not care which dims a k index
 *    stands for, so Q's A fragment uses the same dims (k 2t4,2t4+1 <-> dims 4t4,4t4+1 and
 *    k 2t4+8,2t4+9 <-> dims 4t4+2,4t4+3 of each 16-dim chunk). V: ldmatrix.trans (b16 view)
 *    gives keys (2t4, 2t4+1) x dims (2g, 2g+1); one byte permute + two cvts make the B fragments
 *    of dim 2g (even n-tile) and 2g+1 (odd n-tile), so output accumulator o[2c] holds the even
 *    and o[2c+1] the odd dims of 16-dim chunk c; the epilogue undoes that order.
 * Softmax in base 2 (as v1); P rounded to bf16 (bf16 cache) or f16 (fp8 cache) for P.V. */
#include <cuda_fp16.h>
#include <math.h>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/mma.cuh"

#define DTC_WARPS 4
#define DTC_KEYS 16 /* keys per group (one ring stage of one warp) */
#define DTC_GMAX 8  /* query heads per kv head (rows of the A operand used) */

/* Compile-time layout of one (HD, cache type) instantiation. A stage is K[16 rows] then
 * V[16 rows] of RS bytes: a key row of one head plus 16 bytes, so the 8 row addresses of an
 * ldmatrix hit distinct bank quads (RS / 4 words = 4 mod 8 for 272 and 144, 20 for 80). */
template <int HD, typename KV>
struct DtcCfg {
    static constexpr int EB = (int)sizeof(KV);
    static constexpr int ROWB = HD * EB;             /* bytes of one key row (one head) */
    static constexpr int RS = ROWB + 16;             /* padded row stride in shared memory */
    static constexpr int CPR = ROWB / 16;            /* 16-byte chunks per row */
    static constexpr int CPL = CPR / 2;              /* chunks per lane per tensor per stage */
    static constexpr int KSTEP = 32 / CPR;           /* key stride between a lane's chunks */
    static constexpr int NS = ROWB >= 256 ? 3 : ROWB >= 128 ? 4 : 6; /* ring stages */
    static constexpr int STAGE = 2 * DTC_KEYS * RS;  /* bytes of one stage (K and V) */
    static constexpr int SMEM = DTC_WARPS * NS * STAGE;
    static constexpr bool F16 = EB == 1;             /* fp8 cache: f16 mma */
    static_assert(HD == 64 || HD == 128, "decode_attn_tc: head_dim 64 or 128");
    static_assert(DTC_WARPS * DTC_GMAX * HD * 4 + 2 * DTC_WARPS * DTC_GMAX * 4 <= SMEM,
                  "the end-of-block merge reuses the ring");
};

template <bool F16>
__device__ __forceinline__ void dtc_mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                        uint32_t b1) {
    if (F16) mma_f16_16816(d, a, b0, b1);
    else mma_bf16_16816(d, a, b0, b1);
}

/* Two e4m3 (low 16 bits of v, or high with hi) -> f16x2, element order kept. */
__device__ __forceinline__ uint32_t dtc_e4m3x2_to_f16x2(uint32_t v, bool hi) {
    __half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(hi ? v >> 16 : v & 0xffffu),
                                               __NV_E4M3);
    return (uint32_t)h.x | ((uint32_t)h.y << 16);
}

__device__ __forceinline__ uint32_t dtc_pack_f16(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&h;
}

/* Q fragments of this lane: row g (query head kvh*G + g; zero for g >= G), the (a0, a2) halves
 * for every k-step. bf16: natural dim order, unscaled. f16 (fp8 cache): the permuted order
 * described at the top, pre-scaled by scale*log2(e). */
template <int HD, bool F16>
__device__ __forceinline__ void dtc_load_q(uint32_t (&qa)[HD / 16][2], const bf16 *qrow, bool ok,
                                           int t4, float scale_log2) {
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
        qa[kk][0] = qa[kk][1] = 0u;
        if (!ok) continue;
        if (F16) {
            uint2 raw = *(const uint2 *)(qrow + kk * 16 + 4 * t4);
            float2 f01 = __bfloat1622float2(*(const __nv_bfloat162 *)&raw.x);
            float2 f23 = __bfloat1622float2(*(const __nv_bfloat162 *)&raw.y);
            qa[kk][0] = dtc_pack_f16(f01.x * scale_log2, f01.y * scale_log2);
            qa[kk][1] = dtc_pack_f16(f23.x * scale_log2, f23.y * scale_log2);
        } else {
            qa[kk][0] = *(const uint32_t *)(qrow + kk * 16 + 2 * t4);
            qa[kk][1] = *(const uint32_t *)(qrow + kk * 16 + 8 + 2 * t4);
        }
    }
}

/* Issue the cp.asyncs of one group (keys j0 .. j0+15, those >= ke zero-filled) into a stage.
 * Lane: chunk lane % CPR of keys lane / CPR + i * KSTEP, for K and V (coalesced: a warp
 * instruction covers whole 16-byte-chunk rows). */
template <int HD, typename KV>
__device__ __forceinline__ void dtc_issue_group(unsigned char *stage, const KV *kc, const KV *vc,
                                                const int *bt, int j0, int ke, int block_size,
                                                bool aligned, int Hkv, int kvh, int lane) {
    using C = DtcCfg<HD, KV>;
    const int ch = lane % C::CPR, key0 = lane / C::CPR;
    /* the group's cache block (aligned: one block holds all 16 keys) */
    const int64_t base = aligned ? (int64_t)bt[j0 / block_size] * block_size + j0 % block_size : 0;
#pragma unroll
    for (int i = 0; i < C::CPL; i++) {
        const int key = key0 + i * C::KSTEP, j = j0 + key;
        const bool ok = j < ke;
        int64_t slot = 0;
        if (ok) slot = aligned ? base + key : (int64_t)bt[j / block_size] * block_size + j % block_size;
        const int64_t off = ((slot * Hkv + kvh) * HD) * C::EB + ch * 16; /* bytes */
        unsigned char *dst = stage + key * C::RS + ch * 16;
        cp_async16_zfill(dst, (const unsigned char *)kc + off, ok);
        cp_async16_zfill(dst + DTC_KEYS * C::RS, (const unsigned char *)vc + off, ok);
    }
}

/* S[16 x 16 keys] = Q K^T for the group in stage ks: sacc[nt] is n-tile nt (keys 8nt..8nt+7). */
template <int HD, typename KV>
__device__ __forceinline__ void dtc_qk(float (&sacc)[2][4], const uint32_t (&qa)[HD / 16][2],
                                       const unsigned char *ks, int lane) {
    constexpr int RS = DtcCfg<HD, KV>::RS;
    constexpr bool F16 = DtcCfg<HD, KV>::F16;
#pragma unroll
    for (int nt = 0; nt < 2; nt++) sacc[nt][0] = sacc[nt][1] = sacc[nt][2] = sacc[nt][3] = 0.f;
    if (F16) {
        /* matrices: (keys 0-7, chunk c), (keys 8-15, c), (0-7, c+1), (8-15, c+1) */
        const unsigned char *row = ks + ((lane & 7) + ((lane >> 3) & 1) * 8) * RS + (lane >> 4) * 16;
#pragma unroll
        for (int c = 0; c < HD / 16; c += 2) {
            uint32_t r[4];
            ldmatrix_x4(r[0], r[1], r[2], r[3], row + c * 16);
#pragma unroll
            for (int m = 0; m < 4; m++) {
                const uint32_t a[4] = {qa[c + (m >> 1)][0], 0u, qa[c + (m >> 1)][1], 0u};
                dtc_mma<true>(sacc[m & 1], a, dtc_e4m3x2_to_f16x2(r[m], false),
                              dtc_e4m3x2_to_f16x2(r[m], true));
            }
        }
    } else {
        /* matrices: (keys 0-7, dims 0-7), (0-7, 8-15), (8-15, 0-7), (8-15, 8-15) of k-step kk */
        const unsigned char *row =
            ks + ((lane & 7) + ((lane >> 4) & 1) * 8) * RS + ((lane >> 3) & 1) * 16;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t r0, r1, r2, r3;
            ldmatrix_x4(r0, r1, r2, r3, row + kk * 32);
            const uint32_t a[4] = {qa[kk][0], 0u, qa[kk][1], 0u};
            dtc_mma<false>(sacc[0], a, r0, r1);
            dtc_mma<false>(sacc[1], a, r2, r3);
        }
    }
}

/* O[16 x HD] += P[16 x 16 keys] V for the group in stage vs (see the top for the fp8 order). */
template <int HD, typename KV>
__device__ __forceinline__ void dtc_pv(float (&o)[HD / 8][4], const uint32_t (&pa)[4],
                                       const unsigned char *vs, int lane) {
    constexpr int RS = DtcCfg<HD, KV>::RS;
    constexpr bool F16 = DtcCfg<HD, KV>::F16;
    if (F16) {
        /* matrices: (keys 0-7, chunk c), (keys 8-15, c), (0-7, c+1), (8-15, c+1) */
        const unsigned char *row = vs + ((lane & 7) + ((lane >> 3) & 1) * 8) * RS + (lane >> 4) * 16;
#pragma unroll
        for (int c = 0; c < HD / 16; c += 2) {
            uint32_t r[4];
            ldmatrix_x4_trans(r[0], r[1], r[2], r[3], row + c * 16);
#pragma unroll
            for (int h = 0; h < 2; h++) {
                /* bytes (k0 d0, k0 d1, k1 d0, k1 d1) -> (k0 d0, k1 d0, k0 d1, k1 d1) */
                const uint32_t x0 = __byte_perm(r[2 * h], 0, 0x3120);
                const uint32_t x1 = __byte_perm(r[2 * h + 1], 0, 0x3120);
                dtc_mma<true>(o[2 * (c + h)], pa, dtc_e4m3x2_to_f16x2(x0, false),
                              dtc_e4m3x2_to_f16x2(x1, false));
                dtc_mma<true>(o[2 * (c + h) + 1], pa, dtc_e4m3x2_to_f16x2(x0, true),
                              dtc_e4m3x2_to_f16x2(x1, true));
            }
        }
    } else {
        const unsigned char *row =
            vs + ((lane & 7) + ((lane >> 3) & 1) * 8) * RS + ((lane >> 4) & 1) * 16;
#pragma unroll
        for (int dt = 0; dt < HD / 16; dt++) {
            uint32_t r0, r1, r2, r3;
            ldmatrix_x4_trans(r0, r1, r2, r3, row + dt * 32);
            dtc_mma<false>(o[2 * dt], pa, r0, r1);
            dtc_mma<false>(o[2 * dt + 1], pa, r2, r3);
        }
    }
}

/* The split-KV merge inside the decode kernel, instead of decode_combine_kernel's extra launch.
 * Every block of (di, kvh) has written its partial; it makes it visible device-wide, then counts
 * itself in split_count[di * Hkv + kvh]; the block that arrives last merges the nsplit partials
 * of the G heads and resets the counter to 0 for the next launch (graph replays included).
 * Warp w merges heads w, w + DTC_WARPS, ...: lane sp holds split sp's (max, sum) (nsplit <= 32,
 * more splits take the loop), the weights are broadcast with shuffles, and each lane sums 4 of
 * the HD dims with float4 loads that are all independent (no serial chain of L2 round trips).
 * The sums run in split order with decode_combine_kernel's expressions: the same bits. Partials
 * are read with ld.global.cg: other SMs wrote them, and L1 is not coherent. */
template <int HD>
__device__ __noinline__ void dtc_combine_if_last(bf16 *out, const float *part, int *split_count,
                                                 int tok, int di, int kvh, int G, int Hq,
                                                 int Hkv, int nsplit) {
    static_assert(HD % 4 == 0 && HD / 4 <= 32, "a lane merges 4 dims");
    __shared__ int s_last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int *cnt = split_count + (int64_t)di * Hkv + kvh;
        s_last = atomicAdd(cnt, 1) == nsplit - 1;
        if (s_last) *cnt = 0; /* every block of (di, kvh) has counted */
    }
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int gg = warp; gg < G; gg += DTC_WARPS) {
        const int head = kvh * G + gg;
        const float *p = part + ((int64_t)di * Hq + head) * nsplit * (HD + DEC_PART_PAD);
        float M = -INFINITY;
        for (int sp = lane; sp < nsplit; sp += 32) M = fmaxf(M, __ldcg(p + sp * (HD + DEC_PART_PAD) + HD));
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
        float L = 0.f;
        float4 O = make_float4(0.f, 0.f, 0.f, 0.f);
        const int d = 4 * lane;
        if (M != -INFINITY)
            for (int s0 = 0; s0 < nsplit; s0 += 32) {
                const int mine = s0 + lane;
                float wl = 0.f, ll = 0.f;
                if (mine < nsplit) {
                    wl = exp2f(__ldcg(p + mine * (HD + DEC_PART_PAD) + HD) - M);
                    ll = __ldcg(p + mine * (HD + DEC_PART_PAD) + HD + 1);
                }
                const int nj = min(32, nsplit - s0);
                for (int j0 = 0; j0 < nj; j0 += 8) { /* 8 independent 16-byte loads in flight */
                    float4 v[8];
#pragma unroll
                    for (int j = 0; j < 8; j++)
                        if (j0 + j < nj && d < HD)
                            v[j] = __ldcg((const float4 *)(p + (s0 + j0 + j) * (HD + DEC_PART_PAD) + d));
#pragma unroll
                    for (int j = 0; j < 8; j++) {
                        if (j0 + j >= nj) break;
                        const float w = __shfl_sync(0xffffffffu, wl, j0 + j);
                        L += __shfl_sync(0xffffffffu, ll, j0 + j) * w;
                        if (d < HD) {
                            O.x += v[j].x * w; O.y += v[j].y * w; O.z += v[j].z * w; O.w += v[j].w * w;
                        }
                    }
                }
            }
        if (d < HD) {
            bf16 *o = out + ((int64_t)tok * Hq + head) * HD + d;
            o[0] = __float2bfloat16_rn(L > 0.f ? O.x / L : 0.f);
            o[1] = __float2bfloat16_rn(L > 0.f ? O.y / L : 0.f);
            o[2] = __float2bfloat16_rn(L > 0.f ? O.z / L : 0.f);
            o[3] = __float2bfloat16_rn(L > 0.f ? O.w / L : 0.f);
        }
    }
}

/* Block (kv head, split, decode seq di): attention of the G query heads of kvh over the split's
 * keys [kb, ke); kb a multiple of 16. nsplit == 1: out rows; else the partial
 * part[di, head, split, 0..HD+1] = (unnormalised O, max, sum) in base 2 (v1's layout). Launched
 * with PDL (cuda_launch): everything it reads comes after pdl_wait. split_count: non-NULL, the
 * last block of each (seq, kv head) merges the splits itself. */
template <int HD, typename KV>
__global__ void __launch_bounds__(DTC_WARPS * 32) decode_attn_tc_kernel(
    bf16 *out, float *part, const bf16 *q, const KV *kc, const KV *vc,
    const int32_t *decode_seqs, const int32_t *query_start, const int32_t *seq_lens,
    const int32_t *block_tables, const int32_t *mbps_dev, int block_size, int Hq, int Hkv,
    float scale_log2, int *split_count, int late_trigger) {
    using C = DtcCfg<HD, KV>;
    constexpr bool F16 = C::F16;
    extern __shared__ __align__(16) unsigned char dtc_smem[];
    if (!late_trigger) pdl_trigger(); /* the next kernel may launch; it waits for this grid */
    pdl_wait();    /* q, the cache and the metadata come from earlier kernels / copies */

    const int G = Hq / Hkv;
    const int kvh = blockIdx.x, split = blockIdx.y, nsplit = gridDim.y, di = blockIdx.z;
    const int s = decode_seqs[di];
    const int tok = query_start[s];
    const int seq_len = seq_lens[s];
    const int mbps = *mbps_dev; /* from the step's metadata: graphs stay valid as tables grow */
    /* split ranges start at multiples of 16 keys (groups never straddle a 16-key boundary) */
    const int chunk = ((seq_len + nsplit - 1) / nsplit + DTC_KEYS - 1) & ~(DTC_KEYS - 1);
    const int kb = min(seq_len, split * chunk), ke = min(seq_len, kb + chunk);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t4 = lane & 3;

    uint32_t qa[HD / 16][2];
    dtc_load_q<HD, F16>(qa, q + ((int64_t)tok * Hq + kvh * G + g) * HD, g < G, t4, scale_log2);

    float o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float m = -INFINITY, l = 0.f; /* row g; l is this lane's share (reduced over t4 at the end) */

    const int ngroups = (ke - kb + DTC_KEYS - 1) / DTC_KEYS;
    const int nit = ngroups > warp ? (ngroups - warp + DTC_WARPS - 1) / DTC_WARPS : 0;
    unsigned char *ring = dtc_smem + warp * C::NS * C::STAGE;
    const int *bt = block_tables + (int64_t)s * mbps;
    const bool aligned = (block_size % DTC_KEYS) == 0;
    auto group_start = [&](int it) { return kb + (warp + it * DTC_WARPS) * DTC_KEYS; };

    /* prologue: NS-1 groups in flight (empty commit groups keep the wait counts uniform) */
#pragma unroll
    for (int it = 0; it < C::NS - 1; it++) {
        if (it < nit)
            dtc_issue_group<HD, KV>(ring + it * C::STAGE, kc, vc, bt, group_start(it), ke,
                                    block_size, aligned, Hkv, kvh, lane);
        cp_async_commit();
    }
    int rd = 0, wr = C::NS - 1; /* ring stages being read / written */
    for (int it = 0; it < nit; it++) {
        cp_async_wait<C::NS - 2>(); /* this lane's copies of group it have landed */
        __syncwarp();               /* ... and every lane's; stage wr was read last iteration */
        if (it + C::NS - 1 < nit)
            dtc_issue_group<HD, KV>(ring + wr * C::STAGE, kc, vc, bt, group_start(it + C::NS - 1),
                                    ke, block_size, aligned, Hkv, kvh, lane);
        cp_async_commit();

        const unsigned char *ks = ring + rd * C::STAGE, *vs = ks + DTC_KEYS * C::RS;
        const int j0 = group_start(it);
        float sacc[2][4];
        dtc_qk<HD, KV>(sacc, qa, ks, lane);

        /* online softmax of row g over keys j0 + 8nt + 2t4 + e */
        float sv[4] = {sacc[0][0], sacc[0][1], sacc[1][0], sacc[1][1]};
#pragma unroll
        for (int e = 0; e < 4; e++) {
            if (!F16) sv[e] *= scale_log2;
            if (j0 + (e >> 1) * 8 + 2 * t4 + (e & 1) >= ke) sv[e] = -INFINITY;
        }
        float mx = fmaxf(fmaxf(sv[0], sv[1]), fmaxf(sv[2], sv[3]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mn = fmaxf(m, mx); /* finite: key j0 < ke */
        const float alpha = exp2f(m - mn);
        m = mn;
        float p[4];
#pragma unroll
        for (int e = 0; e < 4; e++) p[e] = exp2f(sv[e] - mn);
        l = l * alpha + (p[0] + p[1]) + (p[2] + p[3]);
        uint32_t pa[4];
        pa[0] = F16 ? dtc_pack_f16(p[0], p[1]) : pack_bf16(p[0], p[1]);
        pa[2] = F16 ? dtc_pack_f16(p[2], p[3]) : pack_bf16(p[2], p[3]);
        pa[1] = pa[3] = 0u; /* rows 8..15 */
#pragma unroll
        for (int i = 0; i < HD / 8; i++) {
            o[i][0] *= alpha;
            o[i][1] *= alpha;
        }
        dtc_pv<HD, KV>(o, pa, vs, lane);

        rd = rd + 1 == C::NS ? 0 : rd + 1;
        wr = wr + 1 == C::NS ? 0 : wr + 1;
    }
    cp_async_wait<0>();

    /* merge the warps' (m, l, O) of each row in shared memory (the ring is free now) */
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    __syncthreads();
    float *sm_o = (float *)dtc_smem;                       /* [WARPS][GMAX][HD] */
    float *sm_m = sm_o + DTC_WARPS * DTC_GMAX * HD;        /* [WARPS][GMAX] */
    float *sm_l = sm_m + DTC_WARPS * DTC_GMAX;             /* [WARPS][GMAX] */
    if (g < G) {
        float *orow = sm_o + (warp * DTC_GMAX + g) * HD;
        if (F16) {
#pragma unroll
            for (int c = 0; c < HD / 16; c++)
                *(float4 *)(orow + 16 * c + 4 * t4) =
                    make_float4(o[2 * c][0], o[2 * c + 1][0], o[2 * c][1], o[2 * c + 1][1]);
        } else {
#pragma unroll
            for (int nt = 0; nt < HD / 8; nt++)
                *(float2 *)(orow + 8 * nt + 2 * t4) = make_float2(o[nt][0], o[nt][1]);
        }
        if (t4 == 0) {
            sm_m[warp * DTC_GMAX + g] = m;
            sm_l[warp * DTC_GMAX + g] = l;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < G * HD; i += blockDim.x) {
        const int gg = i / HD, d = i % HD;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < DTC_WARPS; w++) M = fmaxf(M, sm_m[w * DTC_GMAX + gg]);
        float L = 0.f, O = 0.f;
        if (M != -INFINITY)
#pragma unroll
            for (int w = 0; w < DTC_WARPS; w++) {
                const float wt = exp2f(sm_m[w * DTC_GMAX + gg] - M);
                L += sm_l[w * DTC_GMAX + gg] * wt;
                O += sm_o[(w * DTC_GMAX + gg) * HD + d] * wt;
            }
        decode_write_split(out, part, tok, di, kvh * G + gg, split, nsplit, Hq, HD, d, M, L, O);
    }
    if (nsplit > 1 && split_count) dtc_combine_if_last<HD>(out, part, split_count, tok, di, kvh, G, Hq, Hkv, nsplit);
    if (late_trigger) pdl_trigger(); /* the next kernel launches once this grid's work is done */
}

/* Sets the instantiation's shared-memory limits on the context's device once (eager: the
 * first decode step runs before any graph capture), then launches it with PDL. */
template <int HD, typename KV>
static void launch_tc(CudaCtx *c, bf16 *out, const bf16 *q, const KV *kc, const KV *vc, int Hq,
                      int Hkv, float scale_log2) {
    using C = DtcCfg<HD, KV>;
    static uint64_t attr_set; /* bit per device index */
    const uint64_t bit = 1ull << (c->device & 63);
    if (!(attr_set & bit)) {
        CUDA_CHECK(cudaFuncSetAttribute(decode_attn_tc_kernel<HD, KV>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, C::SMEM));
        /* two (bf16 hd 128) or three blocks of ring per SM need the largest carveout */
        CUDA_CHECK(cudaFuncSetAttribute(decode_attn_tc_kernel<HD, KV>,
                                        cudaFuncAttributePreferredSharedMemoryCarveout,
                                        (int)cudaSharedmemCarveoutMaxShared));
        attr_set |= bit;
    }
    /* kv heads fastest: the blocks running together read neighbouring 256-byte rows of the
     * same cache blocks ([block, pos, Hkv, hd]), not rows 2 KB apart */
    dim3 grid(Hkv, c->decode_splits, c->num_decode);
    cuda_launch(c, decode_attn_tc_kernel<HD, KV>, grid, dim3(DTC_WARPS * 32), (size_t)C::SMEM, out,
                c->attn_part, q, kc, vc, c->dev.decode_seqs, c->dev.query_start, c->dev.seq_lens,
                c->dev.block_tables, c->dev.mbps, c->block_size, Hq, Hkv, scale_log2,
                c->decode_combine_fused ? c->attn_cnt : (int *)NULL, c->decode_late_trigger);
    CUDA_LAUNCH_CHECK(c);
}

int cuda_decode_attn_tc_supported(int Hq, int Hkv, int hd) {
    return (hd == 64 || hd == 128) && Hkv > 0 && Hq % Hkv == 0 && Hq / Hkv <= DTC_GMAX;
}

void cuda_decode_attn_tc(CudaCtx *c, bf16 *out, const bf16 *q, const void *kcache,
                         const void *vcache, int Hq, int Hkv, int hd, float scale_log2) {
    if (c->kv_fp8) {
        if (hd == 64) launch_tc<64, fp8>(c, out, q, (const fp8 *)kcache, (const fp8 *)vcache, Hq, Hkv, scale_log2);
        else launch_tc<128, fp8>(c, out, q, (const fp8 *)kcache, (const fp8 *)vcache, Hq, Hkv, scale_log2);
    } else {
        if (hd == 64) launch_tc<64, bf16>(c, out, q, (const bf16 *)kcache, (const bf16 *)vcache, Hq, Hkv, scale_log2);
        else launch_tc<128, bf16>(c, out, q, (const bf16 *)kcache, (const bf16 *)vcache, Hq, Hkv, scale_log2);
    }
}
