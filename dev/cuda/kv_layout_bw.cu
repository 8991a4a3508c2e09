/* kv_layout_bw.cu: how fast the decode attention's access pattern can read a paged KV cache, in
 * the cache layout we use and in the alternative, without the attention's arithmetic.
 *
 * Why: run16 measured decode attention v3 (decode_attn_tc.cu) at 2.98 TB/s of K and V bytes at
 * 256 sequences x 768 tokens (8B shape), and a plain read stream at 3.19 TB/s (read_bw.cu). The
 * 7% between them is ~0.65 ms of an 18 ms step. One suspect is the layout: our cache is
 * [block, pos, Hkv, hd] (vLLM's), so one (kv head, sequence) block of the kernel reads rows of
 * 256 bytes that sit 2 KB apart (the other 7 heads' rows in between, read by 7 other blocks that
 * may run at other times), while [block, Hkv, pos, hd] (FlashInfer's "HND") would give it one
 * contiguous 4 KB run per 16 keys. If the HND pattern streams at ~3.19 and ours at ~2.98, the
 * layout is the gap; if both stream at ~3.19, the gap is in the kernel.
 *
 * Setup: the 8B shape's cache for one layer: 256 sequences x 768 tokens (48 blocks of 16 each,
 * placed by a shuffled block table, as a long-running server fragments them), 8 kv heads of 128
 * bf16; K and V are separate arrays (403 MB each, past L2 many times over).
 * Variants (each reads every K and V byte once; 16-byte loads, a warp per 16-key group as
 * decode v3, INFL groups in flight per warp; an xor per block written out keeps the loads):
 *   nhd_head    grid (Hkv, seq), 4 warps: decode v3's blocks on our layout;
 *   hnd_head    the same blocks on the HND layout (a group = one contiguous 4 KB per tensor);
 *   nhd_seq     grid (seq), 8 warps, warp w = head w: the 8 heads of a token read by one block at
 *               the same time (each token's 2 KB of K read together);
 *   contiguous  the same bytes as one array, read_stream.cuh's read_kernel<4> at 2 x 1024 threads
 *               per SM (read_bw's best setting in run16: 3.19 TB/s).
 * Build (as gpu_check.sh --dev does):
 *   nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -Itests/gpu dev/cuda/kv_layout_bw.cu */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "dev_timing.cuh"
#include "read_stream.cuh"
#include "gpu_bw.h"

#define CHECK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "kv_layout_bw: %s: %s\n", #x, cudaGetErrorString(e_)); exit(1); } } while (0)

enum { SEQS = 256, CTX = 768, BS = 16, HKV = 8, HD = 128, BPS = CTX / BS, NBLK = SEQS * BPS };
/* uint4 (8 bf16) per head row, and per cache block per tensor */
enum { ROW4 = HD / 8, BLK4 = BS * HKV * ROW4 };

/* Element offset (in uint4) of (cache block b, position p, head h, chunk c) */
template <bool HND>
__device__ __forceinline__ size_t off4(int b, int p, int h, int c) {
    return HND ? (((size_t)b * HKV + h) * BS + p) * ROW4 + c : (((size_t)b * BS + p) * HKV + h) * ROW4 + c;
}

/* One warp reads INFL groups of 16 keys of head h (K and V) starting at group g0, stride gstep:
 * a half-warp per row (16 lanes x 16 B = 256 B), two rows per load instruction. */
template <bool HND, int INFL>
__device__ __forceinline__ unsigned warp_groups(const uint4 *__restrict__ k, const uint4 *__restrict__ v,
                                                const int32_t *bt, int h, int g0, int gstep, int ngroups,
                                                int lane) {
    unsigned acc = 0;
    const int half = lane >> 4, c = lane & 15;
    for (int g = g0; g < ngroups; g += gstep * INFL) {
        uint4 r[INFL][16];
#pragma unroll
        for (int j = 0; j < INFL; j++) {
            const int gg = g + j * gstep;
            if (gg >= ngroups) continue;
            const int blk = bt[gg];
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const int p = 2 * i + half;
                r[j][i] = __ldcs(k + off4<HND>(blk, p, h, c));
                r[j][8 + i] = __ldcs(v + off4<HND>(blk, p, h, c));
            }
        }
#pragma unroll
        for (int j = 0; j < INFL; j++) {
            if (g + j * gstep >= ngroups) continue;
#pragma unroll
            for (int i = 0; i < 16; i++) acc ^= r[j][i].x ^ r[j][i].y ^ r[j][i].z ^ r[j][i].w;
        }
    }
    return acc;
}

/* grid (HKV, SEQS), 4 warps: warp w takes groups w, w + 4, ... of head blockIdx.x */
template <bool HND, int INFL>
__global__ void __launch_bounds__(128) per_head_kernel(const uint4 *k, const uint4 *v, const int32_t *bt,
                                                       unsigned *out) {
    const int h = blockIdx.x, s = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    unsigned acc = warp_groups<HND, INFL>(k, v, bt + (size_t)s * BPS, h, warp, 4, BPS, lane);
    if (acc == 0x9e3779b9u) out[blockIdx.y * gridDim.x + blockIdx.x] = acc;
}

/* grid (SEQS), 8 warps: warp w reads head w of every group (the 8 heads of a token together) */
template <int INFL>
__global__ void __launch_bounds__(256) per_seq_kernel(const uint4 *k, const uint4 *v, const int32_t *bt,
                                                      unsigned *out) {
    const int s = blockIdx.x, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    unsigned acc = warp_groups<false, INFL>(k, v, bt + (size_t)s * BPS, warp, 0, 1, BPS, lane);
    if (acc == 0x9e3779b9u) out[blockIdx.x] = acc;
}



int main(void) {
    const size_t n4 = (size_t)NBLK * BLK4, bytes = n4 * 16; /* per tensor */
    const double total = 2.0 * bytes;
    double copy = copy_bandwidth_TBps();
    uint4 *k, *v;
    unsigned *out;
    int32_t *bt;
    CHECK(cudaMalloc(&k, bytes)); CHECK(cudaMalloc(&v, bytes)); CHECK(cudaMalloc(&out, 1 << 20));
    CHECK(cudaMemset(k, 0x3c, bytes)); CHECK(cudaMemset(v, 0x5a, bytes));
    /* a shuffled block table: sequence s's j-th block is perm[s * BPS + j] */
    int32_t *h = (int32_t *)malloc(sizeof(int32_t) * NBLK);
    for (int i = 0; i < NBLK; i++) h[i] = i;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = NBLK - 1; i > 0; i--) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int j = (int)(x % (uint64_t)(i + 1));
        int t = h[i]; h[i] = h[j]; h[j] = t;
    }
    CHECK(cudaMalloc(&bt, sizeof(int32_t) * NBLK));
    CHECK(cudaMemcpy(bt, h, sizeof(int32_t) * NBLK, cudaMemcpyHostToDevice));
    free(h);
    const dim3 gh(HKV, SEQS);
    struct { const char *name; float ms; } r[8];
    int nr = 0;
    r[nr++] = {"nhd_head infl 1", dev_median_ms([&] { per_head_kernel<false, 1><<<gh, 128>>>(k, v, bt, out); }, 3, 15)};
    r[nr++] = {"nhd_head infl 2", dev_median_ms([&] { per_head_kernel<false, 2><<<gh, 128>>>(k, v, bt, out); }, 3, 15)};
    r[nr++] = {"hnd_head infl 1", dev_median_ms([&] { per_head_kernel<true, 1><<<gh, 128>>>(k, v, bt, out); }, 3, 15)};
    r[nr++] = {"hnd_head infl 2", dev_median_ms([&] { per_head_kernel<true, 2><<<gh, 128>>>(k, v, bt, out); }, 3, 15)};
    r[nr++] = {"nhd_seq  infl 1", dev_median_ms([&] { per_seq_kernel<1><<<SEQS, 256>>>(k, v, bt, out); }, 3, 15)};
    r[nr++] = {"nhd_seq  infl 2", dev_median_ms([&] { per_seq_kernel<2><<<SEQS, 256>>>(k, v, bt, out); }, 3, 15)};
    int sms; CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    const float t_stream = dev_median_ms([&] {
        read_kernel<4><<<sms * 2, 1024>>>(k, n4, out);
        read_kernel<4><<<sms * 2, 1024>>>(v, n4, out);
    }, 3, 15);
    printf("kv_layout_bw: 8B cache of %d seqs x %d tokens, K + V %.0f MB; copy %.3f TB/s\n", SEQS, CTX,
           total / 1e6, copy);
    printf("kv_layout_bw: %-16s %.3f TB/s (%.1f us)\n", "contiguous", total / (t_stream * 1e-3) / 1e12,
           t_stream * 1e3);
    for (int i = 0; i < nr; i++)
        printf("kv_layout_bw: %-16s %.3f TB/s (%.1f us) = %.3fx contiguous\n", r[i].name,
               total / (r[i].ms * 1e-3) / 1e12, r[i].ms * 1e3, t_stream / r[i].ms);
    cudaFree(k); cudaFree(v); cudaFree(out); cudaFree(bt);
    return 0;
}
