/* gemv_pipe.cu: GEMV v4 for decode, out[r, n] = x[r, :] . w[n, :] for r < rows <= 8: v1's
 * arithmetic (GEMV_NB = 4 weight rows per group, the threads of a block split K, 2 x 16 bytes
 * per row and thread per step) on persistent blocks that software-pipeline ACROSS groups.
 *
 * Why: ncu on v1 at batch 1 (dev/cuda/results/run7-ncu) shows 64% of DRAM peak on the fused q/k/v
 * shape. A v1 block lives for one group of 4 rows: it issues its loads, waits a full memory
 * latency, reduces through shared memory and exits, and the next block starts cold. Here a block
 * (one of `resident` = blocks that fit on the GPU at once) walks its groups b, b + G, ... as a flat
 * sequence of steps and always has the next step's 8 loads in flight while it computes the
 * current one, the group reduction included; under PDL the first step's loads go out before
 * pdl_wait. Chosen per shape only where the autotuner measures it faster (path 4).
 *
 * Supported: K a multiple of 8 with g4_threads(K) != 0 (below); GEMV v1's segment contract
 * (every segment but the last a multiple of GEMV_NB rows). A group takes spg = ceil(K8 / 2 bd)
 * steps; where 2 bd does not divide K8, the last step's chunks past K8 load zeros and add
 * nothing. Block size: for K8 >= 256, the multiple of 32 in 128..256 that wastes the fewest
 * chunks in that last step (ties: the larger), so K = 2560 (Qwen3-4B) gets 5 warps and
 * K = 9728 5 warps with 5% of one step idle; a power of two whose double step tiles smaller K
 * exactly. (Before, only powers of two that tile K exactly: 4B's K = 2560 and 9728 ran one-warp
 * blocks, and each of the fused variants' thousands of blocks rebuilt x for a single group.)
 *
 * Fused variants (cuda_gemv4_pro, GemvPro in cuda_common.cuh; graph.cu's peephole rewrites of
 * decode logs pick them): the same body, templated so that the plain kernel's code is unchanged,
 * with x built by each block in dynamic shared memory right after pdl_wait (the first step's
 * weight loads still go out before it) from the inputs of the op the rewrite removed, with that
 * op's rounding, so results are bit-identical to the unfused ops:
 *   GEMV_PRO_SILU: x = silu(gate) * up (act.cu's silu_mul8);
 *   GEMV_PRO_NORM: x = rmsnorm(rows) * w: each block recomputes its rows' rstd, replaying
 *                  rmsnorm_vec_kernel's float32 sum of squares in its exact order (its block
 *                  size for K, warp butterflies, per-warp sums), then bf16(w * bf16(x * rstd));
 * and an ADD epilogue: the output is the residual stream, updated in place to
 * bf16(res + bf16(dot)) (rmsnorm.cu's add of the rounded matmul output), so the matmul that fed
 * a residual add + rmsnorm writes the stream itself and the norm moves into the next GEMV.
 * Every block stages all of x (it walks row groups over the whole of K): rows * K * 2 bytes of
 * shared memory, rows <= GEMV_PRO_MAX_ROWS = 4 (24 KB a row at K = 12288; four rows, 96 KB,
 * still leave room for two blocks on an SM), and rows * K * 2 * 2 bytes of L2 reads per block. */
#include "backend/cuda/cuda_common.cuh"

/* Segment of global row g (groups never straddle segments: see the contract above). */
__device__ __forceinline__ int g4_seg(const GemvSegs &sg, int g) {
    int seg = 0;
#pragma unroll
    for (int i = 1; i < GEMV_MAX_SEGS; i++)
        if (i < sg.nseg && g >= sg.start[i]) seg = i;
    return seg;
}

/* The 2 x GEMV_NB loads of step `it` of this block: group blockIdx.x + (it / spg) * gridDim.x,
 * K chunk (it % spg) * 2 bd + threadIdx.x and the same + bd (zeros past K8). Rows past the
 * segment's end are clamped to its last row (loaded, never stored). */
__device__ __forceinline__ void g4_load(const GemvSegs &sg, int K, int spg, int it, uint4 (&a)[GEMV_NB],
                                        uint4 (&b)[GEMV_NB]) {
    const int bd = blockDim.x;
    const int g0 = (blockIdx.x + (it / spg) * gridDim.x) * GEMV_NB;
    const int c = (it % spg) * 2 * bd + threadIdx.x, K8 = K / 8;
    const int seg = g4_seg(sg, g0);
    const int n0 = g0 - sg.start[seg], N = sg.start[seg + 1] - sg.start[seg];
    const bf16 *w = sg.w[seg];
    const uint4 z = make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int j = 0; j < GEMV_NB; j++) {
        const uint4 *row = (const uint4 *)(w + (int64_t)(n0 + j < N ? n0 + j : N - 1) * K);
        a[j] = c < K8 ? __ldcs(row + c) : z;
        b[j] = c + bd < K8 ? __ldcs(row + c + bd) : z;
    }
}

/* x staged by a fused variant's prologue: xs[r * K8 + c] is row r's c-th 8-element chunk. */
extern __shared__ uint4 g4_xs[];

/* Builds the fused variant's x [R, K] in g4_xs (after pdl_wait: its inputs are written by
 * earlier kernels), with the removed op's exact rounding; the block's threads split the
 * chunks. Ends with a barrier: every step reads all of K. */
template <int R, int PRO>
__device__ __forceinline__ void g4_prologue(int K8, const bf16 *pa, const bf16 *pb, float eps) {
    const int bd = blockDim.x;
    if constexpr (PRO == GEMV_PRO_SILU) {
        const uint4 *g = (const uint4 *)pa, *u = (const uint4 *)pb;
        for (int i = threadIdx.x; i < R * K8; i += bd) g4_xs[i] = silu_mul8(g[i], u[i]);
    } else if constexpr (PRO == GEMV_PRO_NORM) {
        /* rmsnorm_vec_kernel's sum of squares, replayed in its order: its block of tn threads
         * becomes tn / 32 virtual warps, warp vw's lanes taking thread (32 vw + lane)'s strided
         * chunks; this block's warps take the virtual warps in turn; then block_sum's second
         * stage over the per-warp sums (at most 8: tn <= 256). */
        __shared__ float nred[R][8];
        const int K = K8 * 8, tn = rmsnorm_threads(K), tw = tn >> 5;
        const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = bd >> 5;
        const uint4 *xr = (const uint4 *)pa, *w4 = (const uint4 *)pb;
#pragma unroll
        for (int r = 0; r < R; r++)
            for (int vw = warp; vw < tw; vw += nw) {
                float ss = 0.f;
                for (int i = vw * 32 + lane; i < K8; i += tn) ss = rms_sumsq8(xr[r * K8 + i], ss);
                ss = warp_allsum(ss);
                if (lane == 0) nred[r][vw] = ss;
            }
        __syncthreads();
#pragma unroll
        for (int r = 0; r < R; r++) {
            const float rstd = rsqrtf(warp_allsum(lane < tw ? nred[r][lane] : 0.f) / (float)K + eps);
            for (int i = threadIdx.x; i < K8; i += bd) g4_xs[r * K8 + i] = rms_apply8(xr[r * K8 + i], w4[i], rstd);
        }
    }
    __syncthreads();
}

/* The kernel body, shared by the plain kernel (PRO = GEMV_PRO_NONE, ADD = false: x read from
 * global memory through the read-only cache) and the fused variants (PRO: x staged in shared
 * memory by g4_prologue; ADD: see GemvPro). */
template <int R, typename OutT, int PRO, bool ADD>
__device__ __forceinline__ void g4_body(const GemvSegs &sg, const bf16 *x, int K, const bf16 *pa,
                                        const bf16 *pb, float eps) {
    __shared__ float red[8][R * GEMV_NB];
    pdl_trigger();
    const int bd = blockDim.x, K8 = K / 8, spg = (K8 + 2 * bd - 1) / (2 * bd);
    const int ngroups = (sg.start[sg.nseg] + GEMV_NB - 1) / GEMV_NB;
    const int my_groups = (int)blockIdx.x < ngroups ? (ngroups - 1 - (int)blockIdx.x) / (int)gridDim.x + 1 : 0;
    const int steps = my_groups * spg;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = bd >> 5;
    const uint4 *x4 = PRO == GEMV_PRO_NONE ? (const uint4 *)x : g4_xs;
    uint4 wa[GEMV_NB], wb[GEMV_NB], na[GEMV_NB], nb[GEMV_NB];
    if (steps > 0) g4_load(sg, K, spg, 0, wa, wb); /* weights only: before the wait */
    pdl_wait();
    if constexpr (PRO != GEMV_PRO_NONE) g4_prologue<R, PRO>(K8, pa, pb, eps);
    float acc[R][GEMV_NB];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int j = 0; j < GEMV_NB; j++) acc[r][j] = 0.f;
    for (int it = 0; it < steps; it++) {
        if (it + 1 < steps) g4_load(sg, K, spg, it + 1, na, nb); /* in flight during this step */
        const int c = (it % spg) * 2 * bd + threadIdx.x;
#pragma unroll
        for (int r = 0; r < R; r++) {
            uint4 xa = make_uint4(0, 0, 0, 0), xb = xa; /* past K8: zeros, as the weights */
            if constexpr (PRO == GEMV_PRO_NONE) {
                if (c < K8) xa = __ldg(x4 + (int64_t)r * K8 + c);
                if (c + bd < K8) xb = __ldg(x4 + (int64_t)r * K8 + c + bd);
            } else {
                if (c < K8) xa = x4[r * K8 + c];
                if (c + bd < K8) xb = x4[r * K8 + c + bd];
            }
#pragma unroll
            for (int j = 0; j < GEMV_NB; j++) acc[r][j] += gemv_dot8(wa[j], xa) + gemv_dot8(wb[j], xb);
        }
        if (it % spg == spg - 1) { /* the group is complete: reduce, store, start the next */
            gemv_warp_partials<R>(acc, red, warp, lane);
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int j = 0; j < GEMV_NB; j++) acc[r][j] = 0.f;
            __syncthreads();
            if ((int)threadIdx.x < R * GEMV_NB) {
                const int r = threadIdx.x / GEMV_NB, j = threadIdx.x % GEMV_NB;
                const int g0 = (blockIdx.x + (it / spg) * gridDim.x) * GEMV_NB;
                const int seg = g4_seg(sg, g0);
                const int n = g0 - sg.start[seg] + j, N = sg.start[seg + 1] - sg.start[seg];
                if (n < N) {
                    float s = 0.f;
                    for (int q = 0; q < nw; q++) s += red[q][threadIdx.x];
                    OutT *o = (OutT *)sg.out[seg] + (int64_t)r * N + n;
                    if constexpr (ADD) *o = __hadd(*o, __float2bfloat16_rn(s));
                    else gemv_store(o, s);
                }
            }
            __syncthreads(); /* red is rewritten by the next group */
        }
#pragma unroll
        for (int j = 0; j < GEMV_NB; j++) {
            wa[j] = na[j];
            wb[j] = nb[j];
        }
    }
}

template <int R, typename OutT>
__global__ void __launch_bounds__(256, R <= 1 ? 2 : 1) gemv4_kernel(GemvSegs sg, const bf16 *x, int K) {
    g4_body<R, OutT, GEMV_PRO_NONE, false>(sg, x, K, nullptr, nullptr, 0.f);
}

/* The fused variants (GemvPro), bf16 out; the launch passes rows * K * 2 bytes of dynamic
 * shared memory for g4_xs when PRO != GEMV_PRO_NONE. */
template <int R, int PRO, bool ADD>
__global__ void __launch_bounds__(256, R <= 1 ? 2 : 1) gemv4_pro_kernel(GemvSegs sg, const bf16 *x, int K,
                                                                        const bf16 *pa, const bf16 *pb,
                                                                        float eps) {
    g4_body<R, bf16, PRO, ADD>(sg, x, K, pa, pb, eps);
}

/* Threads per block for K (0: unsupported). K8 >= 256 chunks: the multiple of 32 in 128..256
 * whose double steps (2 x 16 bytes per thread and row) leave the fewest chunks idle in a group's
 * last step, the larger on ties (K8 = 512 or 1536: 256 and none idle; 320: 160; 384: 192;
 * 1216: 160, 64 idle of 1280). Smaller K: the largest of 128, 64, 32 whose double step tiles K
 * exactly. */
static int g4_threads(int K) {
    if (K <= 0 || K % 8) return 0;
    int K8 = K / 8;
    if (K8 >= 256) {
        int best = 0, best_idle = 1 << 30;
        for (int bd = 256; bd >= 128; bd -= 32) {
            const int step = 2 * bd, idle = (K8 + step - 1) / step * step - K8;
            if (idle < best_idle) { best = bd; best_idle = idle; }
        }
        return best;
    }
    for (int bd = 128; bd >= 32; bd >>= 1)
        if (K8 % (2 * bd) == 0) return bd;
    return 0;
}

int cuda_gemv4_supported(int rows, int K, const void *x, const GemvSegs *sg) {
    if (rows < 1 || rows > GEMV_MAX_ROWS || !g4_threads(K) || ((uintptr_t)x & 15)) return 0;
    for (int s = 0; s < sg->nseg; s++) {
        if ((uintptr_t)sg->w[s] & 15) return 0;
        if (s + 1 < sg->nseg && (sg->start[s + 1] - sg->start[s]) % GEMV_NB) return 0;
    }
    return 1;
}

template <int R, typename OutT>
static void g4_launch_r(CudaCtx *c, const GemvSegs *sg, const bf16 *x, int K, int bd) {
    /* blocks resident at once, per instantiation, block size and device (asked on first use) */
    static int resident[8][32];
    int &res = resident[bd / 32 - 1][c->device & 31];
    if (!res) {
        int per_sm = 0;
        CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, gemv4_kernel<R, OutT>, bd, 0));
        res = (per_sm > 0 ? per_sm : 1) * c->num_sms;
    }
    int ngroups = (sg->start[sg->nseg] + GEMV_NB - 1) / GEMV_NB;
    int grid = ngroups < res ? ngroups : res;
    if (grid <= 0) return;
    cuda_launch(c, gemv4_kernel<R, OutT>, dim3(grid), dim3(bd), 0, *sg, x, K);
    CUDA_LAUNCH_CHECK(c);
}

template <typename OutT>
static void g4_launch(CudaCtx *c, const GemvSegs *sg, const bf16 *x, int rows, int K) {
    int bd = g4_threads(K);
    if (!bd) {
        fprintf(stderr, "cuda gemv4: K=%d unsupported\n", K);
        abort();
    }
    switch (rows) {
#define CASE(R) case R: g4_launch_r<R, OutT>(c, sg, x, K, bd); break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    default: fprintf(stderr, "cuda gemv4: rows %d unsupported\n", rows); abort();
    }
}

void cuda_gemv4_multi(CudaCtx *c, const GemvSegs *sg, int out_f32, const bf16 *x, int rows, int K) {
    if (out_f32) g4_launch<float>(c, sg, x, rows, K);
    else g4_launch<bf16>(c, sg, x, rows, K);
}

/* ---------------- fused variants (GemvPro) ---------------- */

static size_t g4_pro_smem(const GemvPro *p, int rows, int K) {
    return p->kind == GEMV_PRO_NONE ? 0 : (size_t)rows * K * sizeof(bf16);
}

int cuda_gemv4_pro_supported(const CudaCtx *c, const GemvPro *p, int rows, int K, const GemvSegs *sg) {
    if (rows < 1 || rows > GEMV_PRO_MAX_ROWS) return 0;
    /* 1 KB spare for the static shared memory (red) */
    if (g4_pro_smem(p, rows, K) + 1024 > c->smem_optin) return 0;
    if (p->kind == GEMV_PRO_NONE && !p->add) return 0; /* that is cuda_gemv4_multi */
    if (p->add && sg->nseg != 1) return 0;
    const void *x = p->kind == GEMV_PRO_NONE ? (const void *)p->x : (const void *)p->a;
    if (p->kind != GEMV_PRO_NONE && ((uintptr_t)p->b & 15)) return 0;
    return cuda_gemv4_supported(rows, K, x, sg);
}

/* Blocks resident at once for this instantiation, block size and dynamic shared memory: asked
 * once per (device, bd, smem), in the eager step that precedes a capture (a capture replays its
 * shapes). The first use on a device lifts the kernel's dynamic shared-memory limit from the
 * default 48 KB to all the device allows, so every staged x that passed the check launches. */
template <int R, int PRO, bool ADD>
static int g4_pro_resident(CudaCtx *c, int bd, size_t smem) {
    static struct { int dev, bd, res; size_t smem; } seen[16];
    static int nseen;
    static unsigned lifted; /* devices (bit = device & 31) whose limit was lifted */
    for (int i = 0; i < nseen; i++)
        if (seen[i].dev == c->device && seen[i].bd == bd && seen[i].smem == smem) return seen[i].res;
    auto kern = gemv4_pro_kernel<R, PRO, ADD>;
    if (!(lifted >> (c->device & 31) & 1u)) {
        cudaFuncAttributes fa;
        CUDA_CHECK(cudaFuncGetAttributes(&fa, kern));
        CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)(c->smem_optin - fa.sharedSizeBytes)));
        lifted |= 1u << (c->device & 31);
    }
    int per_sm = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, bd, smem));
    int res = (per_sm > 0 ? per_sm : 1) * c->num_sms;
    if (nseen < 16) {
        seen[nseen].dev = c->device; seen[nseen].bd = bd; seen[nseen].smem = smem;
        seen[nseen].res = res;
        nseen++;
    }
    return res;
}

template <int R, int PRO, bool ADD>
static void g4_pro_launch_r(CudaCtx *c, const GemvSegs *sg, const GemvPro *p, int K, int bd) {
    const size_t smem = g4_pro_smem(p, R, K);
    const int res = g4_pro_resident<R, PRO, ADD>(c, bd, smem);
    int ngroups = (sg->start[sg->nseg] + GEMV_NB - 1) / GEMV_NB;
    int grid = ngroups < res ? ngroups : res;
    if (grid <= 0) return;
    cuda_launch(c, gemv4_pro_kernel<R, PRO, ADD>, dim3(grid), dim3(bd), smem, *sg, p->x, K, p->a, p->b,
                p->eps);
    CUDA_LAUNCH_CHECK(c);
}

template <int PRO, bool ADD>
static void g4_pro_launch(CudaCtx *c, const GemvSegs *sg, const GemvPro *p, int rows, int K, int bd) {
    switch (rows) {
#define CASE(R) case R: g4_pro_launch_r<R, PRO, ADD>(c, sg, p, K, bd); break;
        CASE(1) CASE(2) CASE(3) CASE(4)
#undef CASE
    default: fprintf(stderr, "cuda gemv4 fused: rows %d unsupported\n", rows); abort();
    }
}

void cuda_gemv4_pro(CudaCtx *c, const GemvSegs *sg, const GemvPro *p, int rows, int K) {
    int bd = g4_threads(K);
    if (!bd || !cuda_gemv4_pro_supported(c, p, rows, K, sg)) {
        fprintf(stderr, "cuda gemv4 fused: kind %d rows %d K %d unsupported\n", p->kind, rows, K);
        abort();
    }
    if (p->kind == GEMV_PRO_SILU && !p->add) g4_pro_launch<GEMV_PRO_SILU, false>(c, sg, p, rows, K, bd);
    else if (p->kind == GEMV_PRO_SILU) g4_pro_launch<GEMV_PRO_SILU, true>(c, sg, p, rows, K, bd);
    else if (p->kind == GEMV_PRO_NORM && !p->add) g4_pro_launch<GEMV_PRO_NORM, false>(c, sg, p, rows, K, bd);
    else if (p->kind == GEMV_PRO_NORM) g4_pro_launch<GEMV_PRO_NORM, true>(c, sg, p, rows, K, bd);
    else if (p->kind == GEMV_PRO_NONE && p->add) g4_pro_launch<GEMV_PRO_NONE, true>(c, sg, p, rows, K, bd);
    else {
        fprintf(stderr, "cuda gemv4 fused: kind %d unknown\n", p->kind);
        abort();
    }
}
