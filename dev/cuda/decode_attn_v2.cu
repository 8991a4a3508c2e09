/* decode_attn_v2.cu: split-KV decode attention, v2 (key-per-lane Q·K, dims-per-lane P·V).
 *
 * RESULT (H100, 2026-11-23, bench_cuda_qwen3 8b --op-profile, ctx 768): correct (test_cuda_ops
 * all attention checks within 2e-3) but SLOWER than v1: attention per step 15.61 vs 14.72 ms at
 * 256 sequences, 6.24 vs 4.22 ms at 64. So v1 is not issue-bound as guessed; the serial V-row
 * reads of the P·V loop (one 256-byte row per key, 32 in a row) expose latency. Kept here as a
 * record (not built); it was hooked into paged_attn.cu's launch_decode before the ops table.
 *
 * The v1 kernel in paged_attn.cu gives each key 16 lanes (8 dims each) and reduces every
 * score with 4 shuffles per query head, recomputing the same exponentials on all 16 lanes and
 * rescaling the output after every key: at 256 sequences x 768 keys it ran at ~66% of the
 * card's bandwidth, issue-bound (bench_cuda_qwen3 --op-profile). v2 works on tiles of 32 keys
 * per warp:
 *   Q·K: lane j owns key j of the tile and computes its G scores from the full K row (16-byte
 *        loads; q broadcast from shared memory), no shuffles;
 *   softmax: one max per head and tile (5 shuffles), one rescale of the output per tile, each
 *        exponential computed once; the probabilities go to shared memory;
 *   P·V: lane d owns dims [d * HD/32, (d+1) * HD/32) and walks the tile's 32 V rows (each row
 *        one coalesced 256-byte read), probabilities broadcast from shared memory.
 * Same grid, partial layout and combine kernel as v1 (split, decode seq, kv head). */
#include <math.h>

#include "backend/cuda/cuda_common.cuh"

#define D2_WARPS 4

template <int HD, int GMAX>
__global__ void __launch_bounds__(D2_WARPS * 32) decode_attn_v2_kernel(
    bf16 *out, float *part, const bf16 *q, const bf16 *kc, const bf16 *vc,
    const int32_t *decode_seqs, const int32_t *query_start, const int32_t *seq_lens,
    const int32_t *block_tables, const int32_t *mbps_dev, int block_size, int Hq, int Hkv,
    float scale_log2) {
    constexpr int DPL = HD / 32;          /* P·V dims per lane */
    __shared__ __align__(16) float sq[GMAX][HD];
    __shared__ __align__(16) float sp[D2_WARPS][32][GMAX];
    __shared__ float sm_o[D2_WARPS][GMAX][HD];
    __shared__ float sm_m[D2_WARPS][GMAX], sm_l[D2_WARPS][GMAX];

    const int G = Hq / Hkv;
    const int split = blockIdx.x, nsplit = gridDim.x;
    const int di = blockIdx.y, kvh = blockIdx.z;
    const int s = decode_seqs[di];
    const int tok = query_start[s];
    const int seq_len = seq_lens[s];
    const int mbps = *mbps_dev;
    const int chunk = (seq_len + nsplit - 1) / nsplit;
    const int kb = split * chunk, ke = min(seq_len, kb + chunk);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    for (int i = threadIdx.x; i < GMAX * HD; i += blockDim.x) {
        int gg = i / HD, d = i % HD;
        sq[gg][d] = gg < G ? __bfloat162float(q[((int64_t)tok * Hq + kvh * G + gg) * HD + d]) * scale_log2 : 0.f;
    }
    __syncthreads();

    float m[GMAX], l[GMAX], o[GMAX][DPL];
#pragma unroll
    for (int gg = 0; gg < GMAX; gg++) {
        m[gg] = -INFINITY;
        l[gg] = 0.f;
#pragma unroll
        for (int e = 0; e < DPL; e++) o[gg][e] = 0.f;
    }
    const int *bt = block_tables + (int64_t)s * mbps;
    for (int t0 = kb + warp * 32; t0 < ke; t0 += D2_WARPS * 32) {   /* uniform per warp */
        const int j = t0 + lane;
        const bool valid = j < ke;
        int64_t row = 0;
        if (valid) row = ((int64_t)bt[j / block_size] * block_size + j % block_size) * Hkv + kvh;
        /* Q·K: this lane's key */
        float sc[GMAX];
#pragma unroll
        for (int gg = 0; gg < GMAX; gg++) sc[gg] = 0.f;
        if (valid) {
            const uint4 *kp = (const uint4 *)(kc + row * HD);
#pragma unroll 4
            for (int c8 = 0; c8 < HD / 8; c8++) {
                uint4 kr = kp[c8];
                const __nv_bfloat162 *k2 = (const __nv_bfloat162 *)&kr;
                float kf[8];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float2 a = __bfloat1622float2(k2[e]);
                    kf[2 * e] = a.x; kf[2 * e + 1] = a.y;
                }
#pragma unroll
                for (int gg = 0; gg < GMAX; gg++) {
                    if (gg < G) {
                        const float4 qa = *(const float4 *)&sq[gg][c8 * 8];
                        const float4 qb = *(const float4 *)&sq[gg][c8 * 8 + 4];
                        sc[gg] = fmaf(qa.x, kf[0], sc[gg]); sc[gg] = fmaf(qa.y, kf[1], sc[gg]);
                        sc[gg] = fmaf(qa.z, kf[2], sc[gg]); sc[gg] = fmaf(qa.w, kf[3], sc[gg]);
                        sc[gg] = fmaf(qb.x, kf[4], sc[gg]); sc[gg] = fmaf(qb.y, kf[5], sc[gg]);
                        sc[gg] = fmaf(qb.z, kf[6], sc[gg]); sc[gg] = fmaf(qb.w, kf[7], sc[gg]);
                    }
                }
            }
        }
        /* online softmax, once per tile and head */
#pragma unroll
        for (int gg = 0; gg < GMAX; gg++) {
            if (gg >= G) break;
            float v = valid ? sc[gg] : -INFINITY;
            float tm = v;
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, off));
            float mn = fmaxf(m[gg], tm);            /* finite: the tile has a valid key */
            float alpha = exp2f(m[gg] - mn);        /* m = -inf on the first tile: 0 */
            float p = valid ? exp2f(v - mn) : 0.f;
            m[gg] = mn;
            l[gg] = l[gg] * alpha + p;              /* per-lane partial sums, summed at the end */
#pragma unroll
            for (int e = 0; e < DPL; e++) o[gg][e] *= alpha;
            sp[warp][lane][gg] = p;
        }
        __syncwarp();
        /* P·V: the tile's keys in order, this lane's dims */
        const int nk = min(32, ke - t0);
        for (int kk = 0; kk < nk; kk++) {
            int64_t r = __shfl_sync(0xffffffffu, row, kk);
            const bf16 *vp = vc + r * HD + lane * DPL;
            float vf[DPL];
            if (DPL == 4) {
                uint2 raw = *(const uint2 *)vp;
                const __nv_bfloat162 *v2 = (const __nv_bfloat162 *)&raw;
                float2 a = __bfloat1622float2(v2[0]), b = __bfloat1622float2(v2[1]);
                vf[0] = a.x; vf[1] = a.y; vf[DPL > 2 ? 2 : 0] = b.x; vf[DPL > 3 ? 3 : 0] = b.y;
            } else {
#pragma unroll
                for (int e = 0; e < DPL; e++) vf[e] = __bfloat162float(vp[e]);
            }
#pragma unroll
            for (int gg = 0; gg < GMAX; gg++) {
                if (gg >= G) break;
                float p = sp[warp][kk][gg];
#pragma unroll
                for (int e = 0; e < DPL; e++) o[gg][e] = fmaf(p, vf[e], o[gg][e]);
            }
        }
        __syncwarp();
    }
    /* the warp's state: l summed over lanes */
#pragma unroll
    for (int gg = 0; gg < GMAX; gg++) {
        if (gg >= G) break;
        float ls = l[gg];
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) ls += __shfl_xor_sync(0xffffffffu, ls, off);
#pragma unroll
        for (int e = 0; e < DPL; e++) sm_o[warp][gg][lane * DPL + e] = o[gg][e];
        if (lane == 0) {
            sm_m[warp][gg] = m[gg];
            sm_l[warp][gg] = ls;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < G * HD; i += blockDim.x) {
        int gg = i / HD, d = i % HD;
        float M = -INFINITY;
        for (int r = 0; r < D2_WARPS; r++) M = fmaxf(M, sm_m[r][gg]);
        float L = 0.f, O = 0.f;
        if (M != -INFINITY)
            for (int r = 0; r < D2_WARPS; r++) {
                float w = sm_m[r][gg] == -INFINITY ? 0.f : exp2f(sm_m[r][gg] - M);
                L += sm_l[r][gg] * w;
                O += sm_o[r][gg][d] * w;
            }
        int head = kvh * G + gg;
        if (nsplit == 1) {
            out[((int64_t)tok * Hq + head) * HD + d] = __float2bfloat16_rn(L > 0.f ? O / L : 0.f);
        } else {
            /* part layout: [Sd, Hq, nsplit, HD + 2] (o..., m, l), as v1 */
            float *p = part + (((int64_t)di * Hq + head) * nsplit + split) * (HD + 2);
            p[d] = O;
            if (d == 0) {
                p[HD] = M;
                p[HD + 1] = L;
            }
        }
    }
}

template <int HD, int GMAX>
static void launch_v2(CudaCtx *c, bf16 *out, const bf16 *q, const bf16 *kc, const bf16 *vc, int Hq,
                      int Hkv, float sl2) {
    dim3 grid(c->decode_splits, c->num_decode, Hkv);
    decode_attn_v2_kernel<HD, GMAX><<<grid, D2_WARPS * 32, 0, c->stream>>>(
        out, c->attn_part, q, kc, vc, c->dev.decode_seqs, c->dev.query_start, c->dev.seq_lens,
        c->dev.block_tables, c->dev.mbps, c->block_size, Hq, Hkv, sl2);
    CUDA_LAUNCH_CHECK(c);
}

int cuda_decode_v2(CudaCtx *c, bf16 *out, const bf16 *q, const bf16 *kc, const bf16 *vc, int Hq,
                   int Hkv, int hd, float sl2) {
    int G = Hq / Hkv;
    if (hd == 128) {
        if (G <= 1) launch_v2<128, 1>(c, out, q, kc, vc, Hq, Hkv, sl2);
        else if (G <= 2) launch_v2<128, 2>(c, out, q, kc, vc, Hq, Hkv, sl2);
        else if (G <= 4) launch_v2<128, 4>(c, out, q, kc, vc, Hq, Hkv, sl2);
        else launch_v2<128, 8>(c, out, q, kc, vc, Hq, Hkv, sl2);
        return 1;
    }
    if (hd == 64) {
        if (G <= 1) launch_v2<64, 1>(c, out, q, kc, vc, Hq, Hkv, sl2);
        else if (G <= 2) launch_v2<64, 2>(c, out, q, kc, vc, Hq, Hkv, sl2);
        else if (G <= 4) launch_v2<64, 4>(c, out, q, kc, vc, Hq, Hkv, sl2);
        else launch_v2<64, 8>(c, out, q, kc, vc, Hq, Hkv, sl2);
        return 1;
    }
    return 0;   /* other head sizes: v1 */
}
