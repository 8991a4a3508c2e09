/* paged_attn.cu: causal paged attention for a mixed batch of prefill chunks and decodes.
 *
 * Query token t of sequence s at position p attends to keys 0..p of s, read through the
 * sequence's block table from the paged cache [num_blocks, block_size, Hkv, hd]. GQA: the
 * G = Hq / Hkv query heads of one KV head are processed together, so K/V are read once for
 * the group.
 *
 *  - prefill chunks (more than one new token, possibly after a cached prefix): a
 *    FlashAttention-2 style kernel. A block owns 64 query rows, packed as (token, head of the
 *    group) pairs, and walks 64-key tiles staged in shared memory; Q·K^T and P·V run on the
 *    tensor cores (mma.sync m16n8k16 bf16, fp32 accumulators) with the online softmax in
 *    registers. Tiles of later tokens (more keys) are launched first.
 *  - decodes (one new token): split-KV ("flash decoding"). Block (split, seq, kv head) reads a
 *    contiguous range of the sequence's keys, keeps an online softmax per query head, and
 *    writes a partial (max, sum, unnormalised output) that a second kernel merges. head_dim
 *    64/128: on the tensor cores with cp.async rings (decode_attn_tc.cu, v3); otherwise, or with
 *    PAGELLM_CUDA_DECODE_ATTN=1, here with 16-byte loads on the CUDA cores (v1). The split
 *    count depends on the batch size only, so a CUDA graph captured for a batch size stays
 *    valid as contexts grow.
 * Softmax runs in base 2 with the scale folded in; P is rounded to bf16 for the P·V product.
 * The cache is bf16 or fp8 e4m3 (kv_get8 widens 8 elements to bf16 as they are loaded). */
#include <math.h>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/mma.cuh"

#define LOG2E 1.4426950408889634f

/* ------------------------------------------------------------------ prefill (tensor cores) */

#define PF_ROWS 64  /* query rows per block (4 warps x 16) */
#define PF_KEYS 64  /* keys per tile */

template <int HD, typename KV>
__global__ void __launch_bounds__(128) prefill_attn_kernel(
    bf16 *out, const bf16 *q, const KV *kc, const KV *vc, const int32_t *prefill_seqs,
    const int32_t *query_start, const int32_t *seq_lens, const int32_t *positions,
    const int32_t *block_tables, int mbps, int block_size, int Hq, int Hkv, float scale_log2) {
    constexpr int LD = HD + 8; /* padded row: conflict-free fragment loads and ldmatrix */
    __shared__ __align__(16) bf16 Ks[PF_KEYS * LD];
    __shared__ __align__(16) bf16 Vs[PF_KEYS * LD];

    const int G = Hq / Hkv;
    const int TPT = PF_ROWS / G; /* tokens per tile */
    const int kvh = blockIdx.x;
    const int tile = gridDim.y - 1 - blockIdx.y; /* heavy tiles (more keys) first */
    const int s = prefill_seqs[blockIdx.z];
    const int qs = query_start[s], qlen = query_start[s + 1] - qs;
    const int tok0 = tile * TPT;
    if (tok0 >= qlen) return;
    const int seq_len = seq_lens[s];
    const int last_tok = min(tok0 + TPT, qlen) - 1;
    const int kend = min(seq_len, positions[qs + last_tok] + 1);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t4 = lane & 3;
    /* this thread's two rows: A = warp*16 + g, B = A + 8 */
    int row_tok[2], row_head[2], row_pos[2];
    bool row_ok[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int r = warp * 16 + g + 8 * i;
        int tok = tok0 + r / G;
        row_ok[i] = r < TPT * G && tok < qlen;
        row_tok[i] = tok;
        row_head[i] = kvh * G + r % G;
        row_pos[i] = row_ok[i] ? positions[qs + tok] : seq_len - 1;
    }
    /* Q fragments for all HD/16 k-steps, straight from global memory */
    uint32_t qa[HD / 16][4];
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int rr = i & 1, col = kk * 16 + 2 * t4 + (i >> 1) * 8;
            qa[kk][i] = row_ok[rr] ? *(const uint32_t *)(q + ((int64_t)(qs + row_tok[rr]) * Hq +
                                                              row_head[rr]) * HD + col)
                                   : 0u;
        }
    float o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

    const int *bt = block_tables + (int64_t)s * mbps;
    const int ntiles = (kend + PF_KEYS - 1) / PF_KEYS;
    for (int kt = 0; kt < ntiles; kt++) {
        __syncthreads(); /* previous tile fully consumed */
        for (int i = threadIdx.x; i < PF_KEYS * (HD / 8); i += blockDim.x) {
            int kr = i / (HD / 8), ch = i % (HD / 8);
            int j = kt * PF_KEYS + kr;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
            if (j < kend) {
                int64_t slot = (int64_t)bt[j / block_size] * block_size + j % block_size;
                int64_t off = (slot * Hkv + kvh) * HD + ch * 8;
                kv = kv_get8(kc + off);
                vv = kv_get8(vc + off);
            }
            *(uint4 *)(Ks + kr * LD + ch * 8) = kv;
            *(uint4 *)(Vs + kr * LD + ch * 8) = vv;
        }
        __syncthreads();

        float sc[PF_KEYS / 8][4];
#pragma unroll
        for (int nt = 0; nt < PF_KEYS / 8; nt++) {
            sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
            const bf16 *krow = Ks + (nt * 8 + g) * LD + 2 * t4;
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                uint32_t b0 = *(const uint32_t *)(krow + kk * 16);
                uint32_t b1 = *(const uint32_t *)(krow + kk * 16 + 8);
                mma_bf16_16816(sc[nt], qa[kk], b0, b1);
            }
        }
        /* mask, scale, running max */
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nt = 0; nt < PF_KEYS / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int j = kt * PF_KEYS + nt * 8 + 2 * t4 + (e & 1);
                int rr = e >> 1;
                float v = j <= row_pos[rr] ? sc[nt][e] * scale_log2 : -INFINITY;
                sc[nt][e] = v;
                mx[rr] = fmaxf(mx[rr], v);
            }
        float alpha[2];
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            mx[rr] = fmaxf(mx[rr], __shfl_xor_sync(0xffffffffu, mx[rr], 1));
            mx[rr] = fmaxf(mx[rr], __shfl_xor_sync(0xffffffffu, mx[rr], 2));
            float mn = fmaxf(m[rr], mx[rr]);
            alpha[rr] = exp2f(m[rr] - mn);
            m[rr] = mn;
            l[rr] *= alpha[rr];
        }
        uint32_t pa[PF_KEYS / 16][4];
#pragma unroll
        for (int nt = 0; nt < PF_KEYS / 8; nt++) {
            float p0 = exp2f(sc[nt][0] - m[0]), p1 = exp2f(sc[nt][1] - m[0]);
            float p2 = exp2f(sc[nt][2] - m[1]), p3 = exp2f(sc[nt][3] - m[1]);
            l[0] += p0 + p1;
            l[1] += p2 + p3;
            pa[nt >> 1][(nt & 1) * 2 + 0] = pack_bf16(p0, p1);
            pa[nt >> 1][(nt & 1) * 2 + 1] = pack_bf16(p2, p3);
        }
#pragma unroll
        for (int i = 0; i < HD / 8; i++) {
            o[i][0] *= alpha[0]; o[i][1] *= alpha[0];
            o[i][2] *= alpha[1]; o[i][3] *= alpha[1];
        }
        /* O += P V: V^T fragments through ldmatrix.trans */
#pragma unroll
        for (int kj = 0; kj < PF_KEYS / 16; kj++) {
            const bf16 *vrow = Vs + (kj * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD +
                               ((lane >> 4) & 1) * 8;
#pragma unroll
            for (int dt = 0; dt < HD / 16; dt++) {
                uint32_t r0, r1, r2, r3;
                ldmatrix_x4_trans(r0, r1, r2, r3, vrow + dt * 16);
                mma_bf16_16816(o[2 * dt], pa[kj], r0, r1);
                mma_bf16_16816(o[2 * dt + 1], pa[kj], r2, r3);
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        l[rr] += __shfl_xor_sync(0xffffffffu, l[rr], 1);
        l[rr] += __shfl_xor_sync(0xffffffffu, l[rr], 2);
    }
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        if (!row_ok[rr]) continue;
        float inv = 1.f / l[rr];
        bf16 *orow = out + ((int64_t)(qs + row_tok[rr]) * Hq + row_head[rr]) * HD + 2 * t4;
#pragma unroll
        for (int nt = 0; nt < HD / 8; nt++)
            *(__nv_bfloat162 *)(orow + nt * 8) =
                __floats2bfloat162_rn(o[nt][2 * rr] * inv, o[nt][2 * rr + 1] * inv);
    }
}

/* ------------------------------------------------------------------ decode (split-KV) */

#define DEC_WARPS 4

/* v1 (PAGELLM_CUDA_DECODE_ATTN=1, and head_dim 16/32): CUDA cores, 16-byte loads, LPK lanes
 * per key. v3 (decode_attn_tc.cu) is the default for head_dim 64/128. */
template <int HD, int GMAX, typename KV>
__global__ void __launch_bounds__(DEC_WARPS * 32) decode_attn_kernel(
    bf16 *out, float *part, const bf16 *q, const KV *kc, const KV *vc,
    const int32_t *decode_seqs, const int32_t *query_start, const int32_t *seq_lens,
    const int32_t *block_tables, const int32_t *mbps_dev, int block_size, int Hq, int Hkv, int Sd,
    float scale_log2) {
    constexpr int LPK = HD / 8;          /* lanes per key: 8 dims (16 bytes) each */
    constexpr int KPW = 32 / LPK;        /* keys per warp step */
    constexpr int NGRP = DEC_WARPS * KPW;/* independent softmax states per block */
    constexpr int UNR = 4;               /* key steps in flight */
    __shared__ float sm_o[NGRP][GMAX][HD];
    __shared__ float sm_m[NGRP][GMAX], sm_l[NGRP][GMAX];

    const int G = Hq / Hkv;
    const int split = blockIdx.x, nsplit = gridDim.x;
    const int di = blockIdx.y, kvh = blockIdx.z;
    const int s = decode_seqs[di];
    const int tok = query_start[s];
    const int seq_len = seq_lens[s];
    const int mbps = *mbps_dev; /* from the step's metadata: graphs stay valid as tables grow */
    const int chunk = (seq_len + nsplit - 1) / nsplit;
    const int kb = split * chunk, ke = min(seq_len, kb + chunk);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int sub = lane % LPK, kslot = lane / LPK;
    const int grp = warp * KPW + kslot;

    float qf[GMAX][8];
#pragma unroll
    for (int gg = 0; gg < GMAX; gg++) {
        if (gg < G) {
            uint4 raw = *(const uint4 *)(q + ((int64_t)tok * Hq + kvh * G + gg) * HD + sub * 8);
            const __nv_bfloat162 *r2 = (const __nv_bfloat162 *)&raw;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float2 f = __bfloat1622float2(r2[j]);
                qf[gg][2 * j] = f.x * scale_log2;
                qf[gg][2 * j + 1] = f.y * scale_log2;
            }
        } else {
#pragma unroll
            for (int j = 0; j < 8; j++) qf[gg][j] = 0.f;
        }
    }
    float m[GMAX], l[GMAX], o[GMAX][8];
#pragma unroll
    for (int gg = 0; gg < GMAX; gg++) {
        m[gg] = -INFINITY;
        l[gg] = 0.f;
#pragma unroll
        for (int j = 0; j < 8; j++) o[gg][j] = 0.f;
    }
    const int *bt = block_tables + (int64_t)s * mbps;
    const int step = DEC_WARPS * KPW;
    /* the loop bound is uniform across the warp: every lane reaches the shuffles */
    uint4 kr[UNR], vr[UNR];
    auto load_keys = [&](int jw0, uint4 (&kd)[UNR], uint4 (&vd)[UNR]) {
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            int j = jw0 + kslot + u * step;
            kd[u] = vd[u] = make_uint4(0, 0, 0, 0);
            if (j < ke) {
                int64_t slot = (int64_t)bt[j / block_size] * block_size + j % block_size;
                int64_t off = (slot * Hkv + kvh) * HD + sub * 8;
                kd[u] = kv_get8(kc + off);
                vd[u] = kv_get8(vc + off);
            }
        }
    };
    for (int jw = kb + warp * KPW; jw < ke; jw += step * UNR) {
        load_keys(jw, kr, vr);
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            int j = jw + kslot + u * step;
            if (jw + u * step >= ke) break; /* uniform across the warp */
            const bool valid = j < ke;
            float kf[8], vf[8];
            const __nv_bfloat162 *k2 = (const __nv_bfloat162 *)&kr[u], *v2 = (const __nv_bfloat162 *)&vr[u];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float2 a = __bfloat1622float2(k2[e]), b = __bfloat1622float2(v2[e]);
                kf[2 * e] = a.x; kf[2 * e + 1] = a.y;
                vf[2 * e] = b.x; vf[2 * e + 1] = b.y;
            }
#pragma unroll
            for (int gg = 0; gg < GMAX; gg++) {
                if (gg >= G) break;
                float sdot = 0.f;
#pragma unroll
                for (int e = 0; e < 8; e++) sdot = fmaf(qf[gg][e], kf[e], sdot);
#pragma unroll
                for (int off = LPK / 2; off > 0; off >>= 1)
                    sdot += __shfl_xor_sync(0xffffffffu, sdot, off);
                if (!valid) continue;
                float mn = fmaxf(m[gg], sdot);
                float alpha = exp2f(m[gg] - mn), p = exp2f(sdot - mn);
                m[gg] = mn;
                l[gg] = l[gg] * alpha + p;
#pragma unroll
                for (int e = 0; e < 8; e++) o[gg][e] = fmaf(o[gg][e], alpha, p * vf[e]);
            }
        }
    }
    /* merge the NGRP states of this block */
#pragma unroll
    for (int gg = 0; gg < GMAX; gg++) {
        if (gg >= G) break;
#pragma unroll
        for (int e = 0; e < 8; e++) sm_o[grp][gg][sub * 8 + e] = o[gg][e];
        if (sub == 0) {
            sm_m[grp][gg] = m[gg];
            sm_l[grp][gg] = l[gg];
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < G * HD; i += blockDim.x) {
        int gg = i / HD, d = i % HD;
        float M = -INFINITY;
        for (int r = 0; r < NGRP; r++) M = fmaxf(M, sm_m[r][gg]);
        float L = 0.f, O = 0.f;
        if (M != -INFINITY)
            for (int r = 0; r < NGRP; r++) {
                float w = exp2f(sm_m[r][gg] - M);
                L += sm_l[r][gg] * w;
                O += sm_o[r][gg][d] * w;
            }
        decode_write_split(out, part, tok, di, kvh * G + gg, split, nsplit, Hq, HD, d, M, L, O);
    }
}

/* One block per (decode seq, head): merges the splits' partials. */
__global__ void decode_combine_kernel(bf16 *out, const float *part, const int32_t *decode_seqs,
                                      const int32_t *query_start, int Hq, int HD, int nsplit) {
    pdl_trigger(); /* see cuda_launch: launched with PDL */
    pdl_wait();
    int di = blockIdx.x, head = blockIdx.y;
    int tok = query_start[decode_seqs[di]];
    const float *p = part + ((int64_t)di * Hq + head) * nsplit * (HD + DEC_PART_PAD);
    float M = -INFINITY;
    for (int sp = 0; sp < nsplit; sp++) M = fmaxf(M, p[sp * (HD + DEC_PART_PAD) + HD]);
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float L = 0.f, O = 0.f;
        if (M != -INFINITY)
            for (int sp = 0; sp < nsplit; sp++) {
                const float *ps = p + sp * (HD + DEC_PART_PAD);
                float w = exp2f(ps[HD] - M);
                L += ps[HD + 1] * w;
                O += ps[d] * w;
            }
        out[((int64_t)tok * Hq + head) * HD + d] = __float2bfloat16_rn(L > 0.f ? O / L : 0.f);
    }
}

/* ------------------------------------------------------------------ dispatch */

size_t cuda_attn_scratch_floats(const CudaCtx *c, int Hq, int hd) {
    return (size_t)c->num_decode * Hq * c->decode_splits * (hd + DEC_PART_PAD);
}

/* Never during capture: the eager step before (or cuda_attn_reserve) allocated it. */
static void attn_part_grow(CudaCtx *c, size_t need) {
    cuda_scratch_grow(c, &c->attn_part, &c->attn_part_cap, need);
}

/* Split counters of decode v3's in-kernel merge, zeroed once (the kernel leaves them 0).
 * Never during capture, like attn_part_grow. */
static void attn_cnt_grow(CudaCtx *c, size_t need) {
    cuda_scratch_grow(c, &c->attn_cnt, &c->attn_cnt_cap, need);
    CUDA_CHECK(cudaMemsetAsync(c->attn_cnt, 0, need * sizeof(int), c->stream));
}

void cuda_attn_reserve(CudaCtx *c, int max_seqs) {
    if (c->attn_hq <= 0 || c->attn_hkv <= 0) return; /* no attention ran yet */
    if ((size_t)max_seqs * c->attn_hkv > c->attn_cnt_cap) attn_cnt_grow(c, (size_t)max_seqs * c->attn_hkv);
    size_t need = 0;
    for (int sd = 1; sd <= max_seqs; sd++) {
        int splits = cuda_decode_splits(c, sd, c->attn_hkv);
        size_t n = (size_t)sd * c->attn_hq * splits * (c->attn_hd + DEC_PART_PAD);
        if (splits > 1 && n > need) need = n;
    }
    if (need > c->attn_part_cap) attn_part_grow(c, need);
}

template <int HD, typename KV>
static void launch_prefill(CudaCtx *c, bf16 *out, const bf16 *q, const KV *kc, const KV *vc,
                           int Hq, int Hkv, float sl2) {
    /* PAGELLM_CUDA_PREFILL_ATTN=7 / 8: prefill_attn_wgmma.cu where it applies, else the default */
    if ((c->prefill_attn == 7 || c->prefill_attn == 8) && cuda_prefill_attn_wgmma(c, out, q, kc, vc, Hq, Hkv, HD, sl2))
        return;
    if (c->prefill_attn != 1) { /* 2 (default) / 5 / 6 (/ 7, 8 where they do not apply): prefill_attn_v2.cu */
        cuda_prefill_attn_v2(c, out, q, kc, vc, Hq, Hkv, HD, sl2);
        return;
    }
    int G = Hq / Hkv, TPT = PF_ROWS / G;
    dim3 grid(Hkv, cdiv(c->max_query_len, TPT), c->num_prefill);
    prefill_attn_kernel<HD, KV><<<grid, 128, 0, c->stream>>>(
        out, q, kc, vc, c->dev.prefill_seqs, c->dev.query_start, c->dev.seq_lens, c->dev.positions,
        c->dev.block_tables, c->max_blocks_per_seq, c->block_size, Hq, Hkv, sl2);
    CUDA_LAUNCH_CHECK(c);
}

template <int HD, int GMAX, typename KV>
static void launch_decode_g(CudaCtx *c, bf16 *out, const bf16 *q, const KV *kc,
                            const KV *vc, int Hq, int Hkv, float sl2) {
    dim3 grid(c->decode_splits, c->num_decode, Hkv);
    decode_attn_kernel<HD, GMAX, KV><<<grid, DEC_WARPS * 32, 0, c->stream>>>(
        out, c->attn_part, q, kc, vc, c->dev.decode_seqs, c->dev.query_start, c->dev.seq_lens,
        c->dev.block_tables, c->dev.mbps, c->block_size, Hq, Hkv, c->num_decode, sl2);
    CUDA_LAUNCH_CHECK(c);
}

template <int HD, typename KV>
static void launch_decode(CudaCtx *c, bf16 *out, const bf16 *q, const KV *kc, const KV *vc,
                          int Hq, int Hkv, float sl2) {
    int G = Hq / Hkv;
    if (c->decode_attn != 1 && cuda_decode_attn_tc_supported(Hq, Hkv, HD)) {
        cuda_decode_attn_tc(c, out, q, kc, vc, Hq, Hkv, HD, sl2);
        if (c->decode_combine_fused) return; /* the kernel merged its splits */
    } else if (G <= 1) launch_decode_g<HD, 1, KV>(c, out, q, kc, vc, Hq, Hkv, sl2);
    else if (G <= 2) launch_decode_g<HD, 2, KV>(c, out, q, kc, vc, Hq, Hkv, sl2);
    else if (G <= 4) launch_decode_g<HD, 4, KV>(c, out, q, kc, vc, Hq, Hkv, sl2);
    else launch_decode_g<HD, 8, KV>(c, out, q, kc, vc, Hq, Hkv, sl2);
    if (c->decode_splits > 1) {
        if (c->combine_pdl)
            cuda_launch(c, decode_combine_kernel, dim3(c->num_decode, Hq), dim3(HD), 0, out,
                        (const float *)c->attn_part, (const int32_t *)c->dev.decode_seqs,
                        (const int32_t *)c->dev.query_start, Hq, HD, c->decode_splits);
        else /* a plain launch: measured faster at batch 1 (session 4) */
            decode_combine_kernel<<<dim3(c->num_decode, Hq), HD, 0, c->stream>>>(
                out, c->attn_part, c->dev.decode_seqs, c->dev.query_start, Hq, HD, c->decode_splits);
        CUDA_LAUNCH_CHECK(c);
    }
}

template <typename KV>
static void attention_kv(CudaCtx *c, bf16 *out, const bf16 *q, const KV *kcache, const KV *vcache,
                         int Hq, int Hkv, int hd, float sl2) {
    if (c->num_prefill > 0) {
        switch (hd) {
        case 16: launch_prefill<16, KV>(c, out, q, kcache, vcache, Hq, Hkv, sl2); break;
        case 32: launch_prefill<32, KV>(c, out, q, kcache, vcache, Hq, Hkv, sl2); break;
        case 64: launch_prefill<64, KV>(c, out, q, kcache, vcache, Hq, Hkv, sl2); break;
        default: launch_prefill<128, KV>(c, out, q, kcache, vcache, Hq, Hkv, sl2); break;
        }
    }
    if (c->num_decode > 0) {
        c->decode_splits = cuda_decode_splits(c, c->num_decode, Hkv);
        size_t need = cuda_attn_scratch_floats(c, Hq, hd);
        if (c->decode_splits > 1 && need > c->attn_part_cap) attn_part_grow(c, need);
        if ((size_t)c->num_decode * Hkv > c->attn_cnt_cap) attn_cnt_grow(c, (size_t)c->num_decode * Hkv);
        switch (hd) {
        case 16: launch_decode<16, KV>(c, out, q, kcache, vcache, Hq, Hkv, sl2); break;
        case 32: launch_decode<32, KV>(c, out, q, kcache, vcache, Hq, Hkv, sl2); break;
        case 64: launch_decode<64, KV>(c, out, q, kcache, vcache, Hq, Hkv, sl2); break;
        default: launch_decode<128, KV>(c, out, q, kcache, vcache, Hq, Hkv, sl2); break;
        }
    }
}

void cuda_attention(CudaCtx *c, bf16 *out, const bf16 *q, const void *kcache,
                    const void *vcache, int Hq, int Hkv, int hd) {
    if (Hkv <= 0 || Hq % Hkv != 0 || Hq / Hkv > 8) {
        fprintf(stderr, "cuda attention: Hq=%d Hkv=%d unsupported (GQA group must be <= 8)\n", Hq, Hkv);
        abort();
    }
    if (hd != 16 && hd != 32 && hd != 64 && hd != 128) {
        fprintf(stderr, "cuda attention: head_dim %d unsupported (16, 32, 64, 128)\n", hd);
        abort();
    }
    float sl2 = LOG2E / sqrtf((float)hd);
    c->attn_hq = Hq; c->attn_hkv = Hkv; c->attn_hd = hd;
    if (c->kv_fp8)
        attention_kv<fp8>(c, out, q, (const fp8 *)kcache, (const fp8 *)vcache, Hq, Hkv, hd, sl2);
    else
        attention_kv<bf16>(c, out, q, (const bf16 *)kcache, (const bf16 *)vcache, Hq, Hkv, hd, sl2);
}
