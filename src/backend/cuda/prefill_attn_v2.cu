/* prefill_attn_v2.cu: causal paged attention of the prefill chunks of a mixed batch
 * (PAGELLM_CUDA_PREFILL_ATTN=2, the default: 8 warps of 16 rows a block; 5: 8 warps of 32 rows;
 * 6: 2 with the score mma of a tile's second half issued before its first half's softmax; 1: the
 * original prefill_attn_kernel in paged_attn.cu).
 *
 * Same contract as prefill_attn_kernel: query token t of prefill sequence s (position
 * positions[t], positions consecutive within a chunk) attends to keys 0..pos of s, read
 * through the block table from the paged cache [num_blocks, block_size, Hkv, HD] (bf16 or
 * fp8 e4m3); out[t, h, :] = softmax(q k^T / sqrt(HD)) v for the prefill tokens only.
 *
 * FlashAttention-2 structure:
 *  - a block of NW warps owns NW*16 query rows packed as (token, head of the GQA group)
 *    pairs, so one K/V tile in shared memory serves the G heads of a KV head; each warp owns
 *    16 rows, its Q fragments stay in registers for the whole key walk;
 *  - 64-key tiles of K and V go through a two-stage shared-memory ring with cp.async: tile
 *    kt+1 is in flight while tile kt is computed (one __syncthreads per tile). The block-table
 *    lookups of a tile are loaded two tiles ahead into a slot table in shared memory, so the
 *    cp.async issue never waits on them;
 *  - S = Q K^T and O += P V on the tensor cores (mma.sync m16n8k16 bf16, fp32 accumulators),
 *    K and V^T fragments through ldmatrix (four 8x8 tiles per instruction), online softmax
 *    in base 2 with the scale folded into one FFMA per score;
 *  - causal mask per warp: tiles entirely above a warp's rows are skipped, tiles entirely
 *    below need no per-element mask, only the diagonal tiles are masked;
 *  - fp8 cache: the raw fp8 tile is fetched by cp.async into its own two-stage ring (half
 *    the bytes of bf16) and widened to the bf16 compute tile after it lands (a second
 *    barrier per tile). Correct and overlapped, not tuned: bf16 is the fast path.
 * Blocks of later tokens (more keys) of every sequence are scheduled first (grid z reversed)
 * so the long blocks do not form the tail. PDL: launched through cuda_launch; everything it
 * reads or writes comes after pdl_wait(). */
#include <math.h>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/mma.cuh"

#define PF2_KEYS 64 /* keys per tile */

/* Shared-memory layout of one block (bytes), for the launcher and the kernel alike.
 * bf16 cache: stage st (0, 1) holds K at tile(2 st) and V at tile(2 st + 1), where a tile is
 * PF2_KEYS rows of HD + 8 bf16 (the padding makes ldmatrix and cp.async conflict free).
 * fp8 cache: the compute tiles K = tile(0), V = tile(1), then the raw ring: stage st holds
 * raw K at raw(2 st) and raw V at raw(2 st + 1), PF2_KEYS rows of HD bytes each. */
template <int HD, typename KV> struct Pf2Smem {
    static constexpr int LD = HD + 8;                                  /* bf16 per tile row */
    static constexpr int TILE_BYTES = PF2_KEYS * LD * 2;
    static constexpr int RAW_BYTES = PF2_KEYS * HD * (int)sizeof(KV); /* one raw fp8 tile */
    static constexpr bool FP8 = sizeof(KV) == 1;
    static constexpr int BYTES = FP8 ? 2 * TILE_BYTES + 4 * RAW_BYTES : 4 * TILE_BYTES;
};

/* Key slot of key j of the block (-1 past its keys: that row is zero-filled). Threads
 * 0..PF2_KEYS-1 look up one key of the tile after next each (the global load is in flight
 * during the current tile's math) and store it into the block's slot table afterwards, so the
 * copies of a tile are issued without waiting on the block table or holding it in registers. */
__device__ __forceinline__ int pf2_slot(int j, int kend, const int32_t *bt, int block_size) {
    return j < kend ? bt[j / block_size] * block_size + j % block_size : -1;
}

/* The copies of one K/V tile: chunk i (16 bytes of one key's row) of this thread is key row
 * i / CPR, column chunk i % CPR, for i = tid, tid + NT, ... < PF2_KEYS * CPR. */
template <int HD, typename KV, int NT> struct Pf2Loader {
    static constexpr int CPR = HD * (int)sizeof(KV) / 16; /* 16-byte chunks per key row */
    static constexpr int NCH = PF2_KEYS * CPR;            /* chunks per K (or V) tile */
    static constexpr int NU = (NCH + NT - 1) / NT;        /* chunks per thread */

    /* cp.async of the tile's K and V rows into dk / dv (row stride dst_ld bytes); keys past
     * the block's end (slot -1) are zero-filled so that P V never multiplies a stale or NaN
     * value. slot: the tile's slot table in shared memory. */
    static __device__ __forceinline__ void issue(unsigned char *dk, unsigned char *dv, int dst_ld,
                                                 const KV *kc, const KV *vc, const int *slot,
                                                 int kvh, int Hkv) {
#pragma unroll
        for (int u = 0; u < NU; u++) {
            int i = threadIdx.x + u * NT;
            if (NCH % NT != 0 && i >= NCH) break;
            int kr = i / CPR, ch = i % CPR, sl = slot[kr];
            unsigned char *sk = dk + kr * dst_ld + ch * 16, *sv = dv + kr * dst_ld + ch * 16;
            if (sl >= 0) {
                int64_t off = ((int64_t)sl * Hkv + kvh) * HD + ch * (16 / (int)sizeof(KV));
                cp_async16(sk, kc + off);
                cp_async16(sv, vc + off);
            } else {
                *(uint4 *)sk = make_uint4(0, 0, 0, 0);
                *(uint4 *)sv = make_uint4(0, 0, 0, 0);
            }
        }
    }
};

/* fp8 only: widen a landed raw K/V tile pair to the bf16 compute tiles (8 elements a step). */
template <int HD, int NT>
__device__ __forceinline__ void pf2_widen(bf16 *Ks, bf16 *Vs, const unsigned char *rk,
                                          const unsigned char *rv) {
    constexpr int LD = HD + 8, C8 = HD / 8;
#pragma unroll 4
    for (int i = threadIdx.x; i < PF2_KEYS * C8; i += NT) {
        int kr = i / C8, c = i % C8;
        *(uint4 *)(Ks + kr * LD + c * 8) = kv_get8((const fp8 *)(rk + kr * HD + c * 8));
        *(uint4 *)(Vs + kr * LD + c * 8) = kv_get8((const fp8 *)(rv + kr * HD + c * 8));
    }
}

/* One warp's MT m-tiles of 16 rows against SUB keys (the whole 64-key tile, or half of it when
 * MT = 2: the scores of 2 m-tiles x 64 keys do not fit in the registers beside the two
 * m-tiles' accumulators) in two steps, pf2_scores then pf2_update (pf2_tile: both):
 * pf2_scores: sc = Q K^T (unscaled). Q fragments come from registers (qa, MT = 1) or from the
 * block's Q tile in shared memory (qsw: this warp's first row there, MT > 1: the registers go to
 * the second m-tile's accumulators instead; each K fragment read from shared memory then feeds
 * MT mma). Ks: the first of the SUB key rows.
 * pf2_update: (mask), online softmax update of m, l and rescale of o, then o += P V. Vs: the
 * first of the SUB value rows; k0: their first key; mask applies key <= row_pos per element
 * (only when the keys straddle the warp's diagonal). m is in scaled base-2 units; l is this
 * thread's partial row sum (reduced over the quad at the end).
 * Split so that a caller can issue the next keys' score mma before this keys' softmax (variant
 * 6): mma.sync results are waited for only where they are used, so the softmax's FP32 and MUFU
 * work runs while the tensor pipe works through the queued mma. */
template <int HD, int NW, int MT, int SUB>
__device__ __forceinline__ void pf2_scores(float (&sc)[MT][SUB / 8][4], const uint32_t (&qa)[HD / 16][4],
                                           const bf16 *qsw, const bf16 *Ks) {
    constexpr int LD = HD + 8, NTL = SUB / 8;
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NTL; nt++) sc[mt][nt][0] = sc[mt][nt][1] = sc[mt][nt][2] = sc[mt][nt][3] = 0.f;
    /* ldmatrix x4 lane addresses. K: matrices (keys +0, dims +0), (+0, +8), (+8, +0), (+8, +8)
     * = b0, b1 of two 8-key n-tiles. Q and V: (rows +0, cols +0), (+8, +0), (+0, +8), (+8, +8)
     * = the A fragment of 16 rows x 16 dims (Q) or, transposed, b0, b1 of two 8-dim n-tiles (V) */
    const int a_off = ((lane & 7) + ((lane >> 3) & 1) * 8) * LD + ((lane >> 4) & 1) * 8;
    const bf16 *kb = Ks + ((lane & 7) + ((lane >> 4) & 1) * 8) * LD + ((lane >> 3) & 1) * 8;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
        uint32_t qf[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            if (MT == 1) {
#pragma unroll
                for (int i = 0; i < 4; i++) qf[mt][i] = qa[kk][i];
            } else {
                ldmatrix_x4(qf[mt][0], qf[mt][1], qf[mt][2], qf[mt][3],
                            qsw + mt * NW * 16 * LD + a_off + kk * 16);
            }
        }
#pragma unroll
        for (int np = 0; np < NTL / 2; np++) {
            uint32_t b0, b1, b2, b3;
            ldmatrix_x4(b0, b1, b2, b3, kb + np * 16 * LD + kk * 16);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_bf16_16816(sc[mt][2 * np], qf[mt], b0, b1);
                mma_bf16_16816(sc[mt][2 * np + 1], qf[mt], b2, b3);
            }
        }
    }
}

template <int HD, int NW, int MT, int SUB>
__device__ __forceinline__ void pf2_update(float (&o)[MT][HD / 8][4], float (&m)[MT][2],
                                           float (&l)[MT][2], float (&sc)[MT][SUB / 8][4],
                                           const bf16 *Vs, int k0, bool mask,
                                           const int (&row_pos)[MT][2], float scale_log2) {
    constexpr int LD = HD + 8, NTL = SUB / 8;
    const int lane = threadIdx.x & 31, t4 = lane & 3;
    const int a_off = ((lane & 7) + ((lane >> 3) & 1) * 8) * LD + ((lane >> 4) & 1) * 8;
    uint32_t pa[MT][SUB / 16][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        float alpha[2];
        uint32_t (&pm)[SUB / 16][4] = pa[mt];
        softmax_tile<NTL>(sc[mt], m[mt], l[mt], alpha, k0, mask, row_pos[mt], t4, scale_log2,
                          [&](int nt, float p0, float p1, float p2, float p3) {
                              pm[nt >> 1][(nt & 1) * 2 + 0] = pack_bf16(p0, p1);
                              pm[nt >> 1][(nt & 1) * 2 + 1] = pack_bf16(p2, p3);
                          });
#pragma unroll
        for (int i = 0; i < HD / 8; i++) {
            o[mt][i][0] *= alpha[0]; o[mt][i][1] *= alpha[0];
            o[mt][i][2] *= alpha[1]; o[mt][i][3] *= alpha[1];
        }
    }
    /* O += P V: V^T fragments through ldmatrix.trans (16 keys x 16 dims per instruction) */
    const bf16 *vb = Vs + a_off;
#pragma unroll
    for (int kj = 0; kj < SUB / 16; kj++)
#pragma unroll
        for (int dt = 0; dt < HD / 16; dt++) {
            uint32_t r0, r1, r2, r3;
            ldmatrix_x4_trans(r0, r1, r2, r3, vb + kj * 16 * LD + dt * 16);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_bf16_16816(o[mt][2 * dt], pa[mt][kj], r0, r1);
                mma_bf16_16816(o[mt][2 * dt + 1], pa[mt][kj], r2, r3);
            }
        }
}

template <int HD, int NW, int MT, int SUB>
__device__ __forceinline__ void pf2_tile(float (&o)[MT][HD / 8][4], float (&m)[MT][2],
                                         float (&l)[MT][2], const uint32_t (&qa)[HD / 16][4],
                                         const bf16 *qsw, const bf16 *Ks, const bf16 *Vs, int k0,
                                         bool mask, const int (&row_pos)[MT][2], float scale_log2) {
    float sc[MT][SUB / 8][4];
    pf2_scores<HD, NW, MT, SUB>(sc, qa, qsw, Ks);
    pf2_update<HD, NW, MT, SUB>(o, m, l, sc, Vs, k0, mask, row_pos, scale_log2);
}

/* The block's Q rows into shared memory (MT > 1): row r = token tok0 + r / G, head
 * kvh * G + r % G, zero where r is not a row of the chunk. Part of the first cp.async group. */
template <int HD, int NT, int ROWS>
__device__ __forceinline__ void pf2_load_q(bf16 *Qs, const bf16 *q, int qs, int tok0, int qlen,
                                           int TPT, int G, int kvh, int Hq) {
    constexpr int LD = HD + 8, C8 = HD / 8;
    for (int i = threadIdx.x; i < ROWS * C8; i += NT) {
        int r = i / C8, c = i % C8, tk = tok0 + r / G;
        bf16 *dst = Qs + r * LD + c * 8;
        if (r < TPT * G && tk < qlen)
            cp_async16(dst, q + ((int64_t)(qs + tk) * Hq + kvh * G + r % G) * HD + c * 8);
        else
            *(uint4 *)dst = make_uint4(0, 0, 0, 0);
    }
}

/* Rows: prefill_row (mma.cuh), recomputed where needed rather than kept in registers: at MT = 2
 * every register goes to the accumulators. */

/* Grid (Hkv, prefill sequences, query tiles reversed), NW * 32 threads, Pf2Smem::BYTES of
 * dynamic shared memory. Block (kvh, si, z) computes ROWS = NW * 16 * MT rows of sequence
 * prefill_seqs[si] from token tok0 = tile * (ROWS / G) on, KV head kvh, where row r = token
 * tok0 + r / G, head kvh * G + r % G; warp w owns m-tiles of 16 rows at w * 16 + mt * NW * 16.
 * MT = 1: Q in registers; MT = 2: Q in shared memory (FlashAttention-2's 32 rows a warp).
 * PIPE (MT = 1): each tile in two 32-key halves, the second half's scores issued before the
 * first half's softmax (pf2_scores / pf2_update). */
template <int HD, typename KV, int NW, int MT, bool PIPE>
__global__ void __launch_bounds__(NW * 32, 1) prefill_attn_v2_kernel(
    bf16 *out, const bf16 *q, const KV *kc, const KV *vc, const int32_t *prefill_seqs,
    const int32_t *query_start, const int32_t *seq_lens, const int32_t *positions,
    const int32_t *block_tables, int mbps, int block_size, int Hq, int Hkv, float scale_log2) {
    typedef Pf2Smem<HD, KV> SM;
    constexpr int NT = NW * 32, ROWS = NW * 16 * MT, LD = SM::LD;
    typedef Pf2Loader<HD, KV, NT> LDR;
    extern __shared__ __align__(16) unsigned char pf2_smem[];

    pdl_trigger(); /* the next kernel may launch; it waits for this grid before reading out */
    pdl_wait();    /* q, the cache and the metadata were written by earlier kernels */

    const int G = Hq / Hkv;
    const int TPT = ROWS / G; /* tokens per block */
    const int kvh = blockIdx.x;
    const int s = prefill_seqs[blockIdx.y];
    const int tile = gridDim.z - 1 - blockIdx.z; /* heavy tiles (more keys) first */
    const int qs = query_start[s], qlen = query_start[s + 1] - qs;
    const int tok0 = tile * TPT;
    if (tok0 >= qlen) return; /* the whole block: before any barrier */
    const int seq_len = seq_lens[s];
    const int last_tok = min(tok0 + TPT, qlen) - 1;
    const int kend = min(seq_len, positions[qs + last_tok] + 1); /* keys this block needs */

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t4 = lane & 3;
    /* this thread's rows: g and g + 8 of each m-tile. Rows past the chunk (or past TPT*G when
     * G does not divide ROWS) borrow the last valid token's position, so the warp's key range
     * stays the block's; their q is 0 and they are not written. */
    int row_pos[MT][2];
    int wmin = INT32_MAX, wmax = 0;
    bool any_ok = false;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int i = 0; i < 2; i++) {
            int tok, head;
            any_ok |= prefill_row(mt * NW * 16 + warp * 16 + g + 8 * i, tok0, TPT, G, qlen, kvh, &tok, &head);
            row_pos[mt][i] = positions[qs + tok];
            wmin = min(wmin, row_pos[mt][i]);
            wmax = max(wmax, row_pos[mt][i]);
        }
    /* the warp's key range: keys past wmax are masked for all its rows, keys up to wmin for none */
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        wmin = min(wmin, __shfl_xor_sync(0xffffffffu, wmin, off));
        wmax = max(wmax, __shfl_xor_sync(0xffffffffu, wmax, off));
    }
    const bool warp_active = __any_sync(0xffffffffu, any_ok);

    uint32_t qa[HD / 16][4]; /* MT == 1 only (dead otherwise) */
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        int tok = 0, head = 0;
        const bool ok = MT == 1 && prefill_row(warp * 16 + g + 8 * rr, tok0, TPT, G, qlen, kvh, &tok, &head);
        const bf16 *qrow = q + ((int64_t)(qs + tok) * Hq + head) * HD + 2 * t4;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++)
#pragma unroll
            for (int hi = 0; hi < 2; hi++)
                qa[kk][rr + 2 * hi] = ok ? *(const uint32_t *)(qrow + kk * 16 + hi * 8) : 0u;
    }
    float o[MT][HD / 8][4];
    float m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int i = 0; i < HD / 8; i++) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.f;
    }

    const int32_t *bt = block_tables + (int64_t)s * mbps;
    const int ntiles = (kend + PF2_KEYS - 1) / PF2_KEYS;
    unsigned char *tiles = pf2_smem;
    unsigned char *raw = pf2_smem + 2 * SM::TILE_BYTES; /* fp8 only */
    bf16 *Qs = (bf16 *)(pf2_smem + SM::BYTES);         /* MT > 1 only */
    /* stage st of the ring: where tile kt lands (st = kt & 1) */
    auto dst_k = [&](int st) -> unsigned char * {
        return SM::FP8 ? raw + (2 * st) * SM::RAW_BYTES : tiles + (2 * st) * SM::TILE_BYTES;
    };
    auto dst_v = [&](int st) -> unsigned char * {
        return SM::FP8 ? raw + (2 * st + 1) * SM::RAW_BYTES : tiles + (2 * st + 1) * SM::TILE_BYTES;
    };
    constexpr int DST_LD = SM::FP8 ? HD : LD * 2;

    if (MT > 1) pf2_load_q<HD, NT, ROWS>(Qs, q, qs, tok0, qlen, TPT, G, kvh, Hq);
    /* slot tables of the next two tiles (tile kt's at slots + (kt & 1) * PF2_KEYS) */
    int *slots = (int *)(pf2_smem + SM::BYTES + (MT > 1 ? ROWS * LD * 2 : 0));
    const bool looker = threadIdx.x < PF2_KEYS; /* looks up key threadIdx.x of a tile */
    if (looker) {
        slots[threadIdx.x] = pf2_slot(threadIdx.x, kend, bt, block_size);
        slots[PF2_KEYS + threadIdx.x] = pf2_slot(PF2_KEYS + threadIdx.x, kend, bt, block_size);
    }
    __syncthreads();
    LDR::issue(dst_k(0), dst_v(0), DST_LD, kc, vc, slots, kvh, Hkv);
    cp_async_commit();

    for (int kt = 0; kt < ntiles; kt++) {
        cp_async_wait<0>(); /* this thread's copies of tile kt */
        __syncthreads();    /* everyone's copies landed; everyone is done with tile kt - 1 */
        if (kt + 1 < ntiles)
            LDR::issue(dst_k((kt + 1) & 1), dst_v((kt + 1) & 1), DST_LD, kc, vc,
                       slots + ((kt + 1) & 1) * PF2_KEYS, kvh, Hkv);
        cp_async_commit();
        /* tile kt + 2's slots: loaded now, stored after the math into tile kt's table (its last
         * reader, the issue of tile kt, ran before this iteration's barrier; the issue of tile
         * kt + 2 reads it after the next one) */
        int next_slot = -1;
        if (looker) next_slot = pf2_slot((kt + 2) * PF2_KEYS + threadIdx.x, kend, bt, block_size);
        const bf16 *Ks, *Vs;
        if (SM::FP8) {
            pf2_widen<HD, NT>((bf16 *)tiles, (bf16 *)(tiles + SM::TILE_BYTES), dst_k(kt & 1),
                              dst_v(kt & 1));
            __syncthreads();
            Ks = (const bf16 *)tiles;
            Vs = (const bf16 *)(tiles + SM::TILE_BYTES);
        } else {
            Ks = (const bf16 *)dst_k(kt & 1);
            Vs = (const bf16 *)dst_v(kt & 1);
        }
        constexpr int SUB = MT > 1 || PIPE ? PF2_KEYS / 2 : PF2_KEYS; /* keys per pf2_tile */
        if (PIPE) { /* warp-uniform conditions; sb is only read where it was written */
            const int ka = kt * PF2_KEYS, kb = ka + SUB;
            const bool da = warp_active && ka <= wmax, db = warp_active && kb <= wmax;
            float sa[MT][SUB / 8][4], sb[MT][SUB / 8][4];
            if (da) pf2_scores<HD, NW, MT, SUB>(sa, qa, Qs + warp * 16 * LD, Ks);
            if (db) pf2_scores<HD, NW, MT, SUB>(sb, qa, Qs + warp * 16 * LD, Ks + SUB * LD);
            if (da) pf2_update<HD, NW, MT, SUB>(o, m, l, sa, Vs, ka, ka + SUB - 1 > wmin, row_pos, scale_log2);
            if (db)
                pf2_update<HD, NW, MT, SUB>(o, m, l, sb, Vs + SUB * LD, kb, kb + SUB - 1 > wmin, row_pos,
                                            scale_log2);
        } else {
            for (int h = 0; h < PF2_KEYS / SUB; h++) {
                const int k0 = kt * PF2_KEYS + h * SUB;
                if (warp_active && k0 <= wmax) /* warp-uniform */
                    pf2_tile<HD, NW, MT, SUB>(o, m, l, qa, Qs + warp * 16 * LD, Ks + h * SUB * LD,
                                              Vs + h * SUB * LD, k0, k0 + SUB - 1 > wmin, row_pos,
                                              scale_log2);
            }
        }
        if (looker) slots[(kt & 1) * PF2_KEYS + threadIdx.x] = next_slot;
    }
    cp_async_wait<0>(); /* no copy outlives the block (the last group is empty) */

#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            float lt = l[mt][rr];
            lt += __shfl_xor_sync(0xffffffffu, lt, 1);
            lt += __shfl_xor_sync(0xffffffffu, lt, 2);
            int tok, head;
            if (!prefill_row(mt * NW * 16 + warp * 16 + g + 8 * rr, tok0, TPT, G, qlen, kvh, &tok, &head))
                continue;
            float inv = 1.f / lt;
            bf16 *orow = out + ((int64_t)(qs + tok) * Hq + head) * HD + 2 * t4;
#pragma unroll
            for (int nt = 0; nt < HD / 8; nt++)
                *(__nv_bfloat162 *)(orow + nt * 8) =
                    __floats2bfloat162_rn(o[mt][nt][2 * rr] * inv, o[mt][nt][2 * rr + 1] * inv);
        }
}

/* Per device: the opt-in to more than 48 KB of dynamic shared memory is a property of the
 * kernel in one device's context. Set before the first launch (always eager: prefill steps are
 * never captured); repeated sets by racing threads of different backends are harmless. */
template <int HD, typename KV, int NW, int MT, bool PIPE = false>
static void pf2_launch(CudaCtx *c, bf16 *out, const bf16 *q, const KV *kc, const KV *vc, int Hq,
                       int Hkv, float sl2) {
    static volatile int smem_set[64];
    const int bytes = Pf2Smem<HD, KV>::BYTES + (MT > 1 ? NW * 16 * MT * (HD + 8) * 2 : 0) +
                      2 * PF2_KEYS * (int)sizeof(int); /* Q tile (MT > 1), slot tables */
    auto kern = prefill_attn_v2_kernel<HD, KV, NW, MT, PIPE>;
    if (c->device < 0 || c->device >= 64 || !smem_set[c->device]) {
        CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
        if (c->device >= 0 && c->device < 64) smem_set[c->device] = 1;
    }
    int G = Hq / Hkv, TPT = NW * 16 * MT / G;
    dim3 grid(Hkv, c->num_prefill, cdiv(c->max_query_len, TPT));
    cuda_launch(c, kern, grid, dim3(NW * 32), bytes, out, q, kc, vc, c->dev.prefill_seqs,
                c->dev.query_start, c->dev.seq_lens, c->dev.positions, c->dev.block_tables,
                c->max_blocks_per_seq, c->block_size, Hq, Hkv, sl2);
    CUDA_LAUNCH_CHECK(c);
}

/* 2: 8 warps x 16 rows (MT = 1: 128-row blocks, one per SM at hd 128, Q in registers);
 * 5: 8 warps x 32 rows (MT = 2: 256-row blocks, Q in shared memory, scores in 32-key halves of
 *    the tile so that they fit beside the two m-tiles' accumulators; each K/V tile read into
 *    shared memory serves twice the rows: a 16,384-token prompt's attention 308 -> 278 ms in
 *    run23, 2048 tokens unchanged);
 * 6: 2 with each tile in 32-key halves, the second half's score mma issued before the first
 *    half's softmax. Why: ncu (run23) shows 2 latency-bound, not throughput-bound: tensor pipe
 *    ~39% busy, 0.43 eligible warps a scheduler of 2. Within a warp S = Q K^T, the softmax and
 *    P V ran one after the other, so the tensor pipe idled during a warp's softmax unless the
 *    scheduler's other warp was in an mma phase. Same registers as 2 (two 32-key score sets =
 *    one 64-key set).
 * Removed after measuring (dev/cuda/NOTES.md): 4 warps x 16 rows (two blocks an SM; TTFT 2048
 * 0.5-0.6 ms slower than 2 in run7/run8) and 4 warps x 32 rows (FlashAttention-2's shape; no
 * faster than 2 at 2048 tokens, slower than 5 at 16k: run22/run23). */
template <int HD, typename KV>
static void pf2_launch_nw(CudaCtx *c, bf16 *out, const bf16 *q, const KV *kc, const KV *vc, int Hq,
                          int Hkv, float sl2) {
    switch (c->prefill_attn) {
    case 5: pf2_launch<HD, KV, 8, 2>(c, out, q, kc, vc, Hq, Hkv, sl2); break;
    case 6: pf2_launch<HD, KV, 8, 1, true>(c, out, q, kc, vc, Hq, Hkv, sl2); break;
    default: pf2_launch<HD, KV, 8, 1>(c, out, q, kc, vc, Hq, Hkv, sl2); break;
    }
}

void cuda_prefill_attn_v2(CudaCtx *c, bf16 *out, const bf16 *q, const void *kcache,
                          const void *vcache, int Hq, int Hkv, int hd, float sl2) {
    if (c->kv_fp8) {
        const fp8 *kc = (const fp8 *)kcache, *vc = (const fp8 *)vcache;
        switch (hd) {
        case 16: pf2_launch_nw<16, fp8>(c, out, q, kc, vc, Hq, Hkv, sl2); break;
        case 32: pf2_launch_nw<32, fp8>(c, out, q, kc, vc, Hq, Hkv, sl2); break;
        case 64: pf2_launch_nw<64, fp8>(c, out, q, kc, vc, Hq, Hkv, sl2); break;
        default: pf2_launch_nw<128, fp8>(c, out, q, kc, vc, Hq, Hkv, sl2); break;
        }
    } else {
        const bf16 *kc = (const bf16 *)kcache, *vc = (const bf16 *)vcache;
        switch (hd) {
        case 16: pf2_launch_nw<16, bf16>(c, out, q, kc, vc, Hq, Hkv, sl2); break;
        case 32: pf2_launch_nw<32, bf16>(c, out, q, kc, vc, Hq, Hkv, sl2); break;
        case 64: pf2_launch_nw<64, bf16>(c, out, q, kc, vc, Hq, Hkv, sl2); break;
        default: pf2_launch_nw<128, bf16>(c, out, q, kc, vc, Hq, Hkv, sl2); break;
        }
    }
}
