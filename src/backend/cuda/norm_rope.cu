/* norm_rope.cu: Qwen3's per-head RMSNorm of q and k followed by rotary embedding, in place.
 *
 * One warp per (token, head). Rotary uses HF's rotate_half convention (pairs i, i + hd/2) and
 * HF's rounding order: cos/sin rounded to bf16, each product rounded, then the sum. inv_freq is
 * computed once on the host per RopeParams (llama3 scaling included) and cached on the device;
 * the angle is float32 position * inv_freq as in HF, its cos/sin taken in double.
 * cuda_qk_norm_rope_store also does kv_store.cu's work in the same launch (graph.cu fuses an
 * OP_QKROPE followed by the OP_KVSTORE of its k); cuda_qkv_norm_rope_store reads q, k and v
 * from the output of graph.cu's fused QKV matmul. */
#include <math.h>
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

__device__ __forceinline__ float rbf(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

/* cos/sin of every (token, pair) of the step, once per step: the 36 layers share it. */
__global__ void rope_table_kernel(float2 *tab, const int32_t *positions, const float *inv_freq,
                                  int T, int half) {
    pdl_trigger(); /* see cuda_launch: launched with PDL */
    pdl_wait();
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= T * half) return;
    int t = idx / half, i = idx % half;
    double ang = (double)((float)positions[t] * inv_freq[i]);
    tab[idx] = make_float2(rbf((float)cos(ang)), rbf((float)sin(ang)));
}

/* One head row of token t by one warp: RMSNorm of in[hd] with weight w (none: NULL), then
 * rotary with the step's table row cs_row, written to x (in place when in == x). With dst, the
 * result is also stored there (a paged-cache row: the fused KV store).
 * Lane l holds the rotary pairs (i, i + half) for i = 2l, 2l + 1 (and + 64, ... for hd > 128),
 * read and written as bf16x2: one load of each half per lane instead of hd / 32 scalar loads
 * twice over (run16's ncu: the scalar version moved 367 GB/s, ~9 us per 256-row launch). The sum
 * of squares is taken over the values already in registers. Rounding per element is unchanged;
 * the order of the float sum of squares differs from the scalar version's (both are reductions
 * of the same 128 squares). hd: even, a multiple of 4 (64 and 128 here); rows 4-byte aligned. */
template <typename KV>
__device__ __forceinline__ void norm_rope_row(const bf16 *in, bf16 *x, const bf16 *w, const float2 *cs_row,
                                              int hd, float eps, int lane, KV *dst) {
    const int half = hd / 2;
    enum { MAXP = 2 }; /* pairs-of-pairs per lane: hd <= 256 */
    float a[MAXP][2], b[MAXP][2];
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < MAXP; j++) {
        const int i = 2 * lane + 64 * j;
        if (i < half) {
            const float2 lo = __bfloat1622float2(*(const __nv_bfloat162 *)(in + i));
            const float2 hi = __bfloat1622float2(*(const __nv_bfloat162 *)(in + i + half));
            a[j][0] = lo.x; a[j][1] = lo.y; b[j][0] = hi.x; b[j][1] = hi.y;
            ss += lo.x * lo.x + lo.y * lo.y + hi.x * hi.x + hi.y * hi.y;
        }
    }
    float rstd = 1.f;
    if (w) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        rstd = rsqrtf(ss / (float)hd + eps);
    }
#pragma unroll
    for (int j = 0; j < MAXP; j++) {
        const int i = 2 * lane + 64 * j;
        if (i >= half) continue;
        bf16 lo[2], hi[2];
#pragma unroll
        for (int e = 0; e < 2; e++) {
            float av = a[j][e], bv = b[j][e];
            if (w) {
                av = rbf(__bfloat162float(w[i + e]) * rbf(av * rstd));
                bv = rbf(__bfloat162float(w[i + e + half]) * rbf(bv * rstd));
            }
            const float2 csn = cs_row[i + e];
            lo[e] = __float2bfloat16_rn(rbf(av * csn.x) + rbf(-bv * csn.y));
            hi[e] = __float2bfloat16_rn(rbf(bv * csn.x) + rbf(av * csn.y));
        }
        *(__nv_bfloat162 *)(x + i) = __halves2bfloat162(lo[0], lo[1]);
        *(__nv_bfloat162 *)(x + i + half) = __halves2bfloat162(hi[0], hi[1]);
        if (dst) {
            kv_put1(dst + i, lo[0]); kv_put1(dst + i + 1, lo[1]);
            kv_put1(dst + i + half, hi[0]); kv_put1(dst + i + half + 1, hi[1]);
        }
    }
}

/* One warp per (token, head) over the Hq + Hkv heads of q and k. */
__global__ void qk_norm_rope_kernel(bf16 *q, bf16 *k, const bf16 *qn, const bf16 *kn,
                                    const float2 *tab, int T, int Hq, int Hkv, int hd, float eps) {
    pdl_trigger(); /* see cuda_launch: launched with PDL */
    pdl_wait();
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    int H = Hq + Hkv;
    if (warp >= T * H) return;
    int t = warp / H, h = warp % H;
    bf16 *x = h < Hq ? q + ((int64_t)t * Hq + h) * hd : k + ((int64_t)t * Hkv + (h - Hq)) * hd;
    norm_rope_row<bf16>(x, x, h < Hq ? qn : kn, tab + (int64_t)t * (hd / 2), hd, eps, lane, NULL);
}

/* qk_norm_rope_kernel and kv_store_kernel (kv_store.cu) in one launch: one warp per (token,
 * head) over Hq + 2 Hkv rows: q heads, k heads (normed, roped, written back and stored at the
 * token's slot) and v heads (stored). Same values and cache bytes as the two kernels.
 * qkv != NULL (graph.cu's fused QKV matmul): q, k and v are read from the rows of qkv[T, ld]
 * (q's Hq heads, then k's Hkv, then v's Hkv) instead, and written to q, k and v as the unfused
 * matmuls would have left them (q and k normed and roped, v as is). */
template <typename KV>
__global__ void qk_norm_rope_store_kernel(bf16 *q, bf16 *k, bf16 *v, const bf16 *qkv, int ld,
                                          const bf16 *qn, const bf16 *kn, const float2 *tab, KV *kc,
                                          KV *vc, const int32_t *slots, int T, int Hq, int Hkv, int hd,
                                          float eps) {
    pdl_trigger(); /* see cuda_launch: launched with PDL */
    pdl_wait();
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    int H = Hq + 2 * Hkv;
    if (warp >= T * H) return;
    int t = warp / H, h = warp % H;
    int64_t slot = slots[t];
    const bf16 *row = qkv ? qkv + (int64_t)t * ld + (int64_t)h * hd : NULL; /* head h's source */
    if (h < Hq) {
        bf16 *x = q + ((int64_t)t * Hq + h) * hd;
        norm_rope_row<KV>(row ? row : x, x, qn, tab + (int64_t)t * (hd / 2), hd, eps, lane, (KV *)NULL);
    } else if (h < Hq + Hkv) {
        int kh = h - Hq;
        bf16 *x = k + ((int64_t)t * Hkv + kh) * hd;
        norm_rope_row<KV>(row ? row : x, x, kn, tab + (int64_t)t * (hd / 2), hd, eps, lane,
                          slot >= 0 ? kc + (slot * Hkv + kh) * hd : (KV *)NULL);
    } else {
        int vh = h - Hq - Hkv;
        bf16 *x = v + ((int64_t)t * Hkv + vh) * hd;
        const bf16 *src = row ? row : x;
        KV *dst = slot >= 0 ? vc + (slot * Hkv + vh) * hd : (KV *)NULL;
        if (!row && !dst) return; /* a padding row: nothing to store, v already in place */
        for (int i = 2 * lane; i < hd; i += 64) {
            const __nv_bfloat162 e = *(const __nv_bfloat162 *)(src + i);
            if (row) *(__nv_bfloat162 *)(x + i) = e;
            if (dst) { kv_put1(dst + i, e.x); kv_put1(dst + i + 1, e.y); }
        }
    }
}

/* HF's default and llama3 inv_freq, in float32 like HF. */
static void rope_inv_freq_host(const RopeParams *r, int hd, float *out) {
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float expo = (float)(2 * i) / (float)hd;
        float f = 1.0f / powf((float)r->theta, expo);
        if (r->scaling == ROPE_SCALING_LLAMA3) {
            double old = r->original_max_position_embeddings;
            double low_wl = old / r->low_freq_factor, high_wl = old / r->high_freq_factor;
            double wl = 2.0 * M_PI / f;
            double g = wl > low_wl ? f / r->factor : f;
            if (!(wl < high_wl) && !(wl > low_wl)) {
                double smooth = (old / wl - r->low_freq_factor) /
                                (r->high_freq_factor - r->low_freq_factor);
                g = (1.0 - smooth) * g / r->factor + smooth * g;
            }
            f = (float)g;
        }
        out[i] = f;
    }
}

static void rope_tab_grow(CudaCtx *c, size_t need) {
    cuda_scratch_grow(c, &c->rope_tab, &c->rope_tab_cap, need);
    c->rope_tab_valid = 0;
}

void cuda_rope_reserve(CudaCtx *c, int max_tokens) {
    size_t need = (size_t)max_tokens * (c->rope_tab_hd / 2);
    if (c->rope_tab_hd > 0 && need > c->rope_tab_cap) rope_tab_grow(c, need);
}

/* The step's cos/sin table for hd and rope (inv_freq from the host when the parameters change;
 * the table once per step: the layers share it). */
static void rope_table_ensure(CudaCtx *c, int hd, const RopeParams *rope) {
    char key[128];
    snprintf(key, sizeof key, "%d/%.9g/%d/%.9g/%.9g/%.9g/%d", hd, rope->theta, (int)rope->scaling,
             rope->factor, rope->low_freq_factor, rope->high_freq_factor,
             rope->original_max_position_embeddings);
    if (!c->rope_inv_freq || strcmp(key, c->rope_key) != 0) {
        float h[512];
        if (hd > 256 || hd % 4) { /* norm_rope_row: bf16x2 pairs, at most 2 per lane and half */
            fprintf(stderr, "cuda qk_norm_rope: head_dim %d unsupported (a multiple of 4, at most 256)\n", hd);
            abort();
        }
        rope_inv_freq_host(rope, hd, h);
        if (!c->rope_inv_freq) CUDA_CHECK(cudaMalloc(&c->rope_inv_freq, 512 * sizeof(float)));
        CUDA_CHECK(cudaMemcpyAsync(c->rope_inv_freq, h, (hd / 2) * sizeof(float),
                                   cudaMemcpyHostToDevice, c->stream));
        CUDA_CHECK(cudaStreamSynchronize(c->stream));
        strcpy(c->rope_key, key);
        c->rope_tab_valid = 0;
    }
    size_t need = (size_t)c->T * (hd / 2);
    if (need > c->rope_tab_cap) rope_tab_grow(c, need); /* never during capture: the step before did */
    if (!c->rope_tab_valid || c->rope_tab_hd != hd) {
        cuda_launch(c, rope_table_kernel, dim3(cdiv(need, 256)), dim3(256), 0, c->rope_tab, c->dev.positions,
                                                                   c->rope_inv_freq, c->T, hd / 2);
        CUDA_LAUNCH_CHECK(c);
        c->rope_tab_valid = 1;
        c->rope_tab_hd = hd;
    }
}

void cuda_qk_norm_rope(CudaCtx *c, bf16 *q, bf16 *k, const bf16 *qn, const bf16 *kn, int Hq,
                       int Hkv, int hd, float eps, const RopeParams *rope) {
    if (c->T <= 0) return;
    rope_table_ensure(c, hd, rope);
    long long warps = (long long)c->T * (Hq + Hkv);
    cuda_launch(c, qk_norm_rope_kernel, dim3(cdiv(warps * 32, 256)), dim3(256), 0, 
        q, k, qn, kn, c->rope_tab, c->T, Hq, Hkv, hd, eps);
    CUDA_LAUNCH_CHECK(c);
}

void cuda_qkv_norm_rope_store(CudaCtx *c, const bf16 *qkv, int ld, bf16 *q, bf16 *k, bf16 *v,
                              const bf16 *qn, const bf16 *kn, int Hq, int Hkv, int hd, float eps,
                              const RopeParams *rope, void *kcache, void *vcache) {
    if (c->T <= 0) return;
    rope_table_ensure(c, hd, rope);
    long long warps = (long long)c->T * (Hq + 2 * Hkv);
    dim3 grid(cdiv(warps * 32, 256));
    if (c->kv_fp8)
        cuda_launch(c, qk_norm_rope_store_kernel<fp8>, grid, dim3(256), 0, q, k, v, qkv, ld, qn, kn,
                    (const float2 *)c->rope_tab, (fp8 *)kcache, (fp8 *)vcache,
                    (const int32_t *)c->dev.slot_mapping, c->T, Hq, Hkv, hd, eps);
    else
        cuda_launch(c, qk_norm_rope_store_kernel<bf16>, grid, dim3(256), 0, q, k, v, qkv, ld, qn, kn,
                    (const float2 *)c->rope_tab, (bf16 *)kcache, (bf16 *)vcache,
                    (const int32_t *)c->dev.slot_mapping, c->T, Hq, Hkv, hd, eps);
    CUDA_LAUNCH_CHECK(c);
}

void cuda_qk_norm_rope_store(CudaCtx *c, bf16 *q, bf16 *k, const bf16 *v, const bf16 *qn,
                             const bf16 *kn, int Hq, int Hkv, int hd, float eps,
                             const RopeParams *rope, void *kcache, void *vcache) {
    /* v is only read (qkv == NULL) */
    cuda_qkv_norm_rope_store(c, NULL, 0, q, k, (bf16 *)v, qn, kn, Hq, Hkv, hd, eps, rope, kcache, vcache);
}
