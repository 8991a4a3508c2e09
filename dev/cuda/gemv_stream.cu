/* ARCHIVED (not built): measured slower than GEMV v1/v2 on every Qwen3-8B decode shape on an H100
 * (session 3, dev/cuda/NOTES.md): q/o 22.2 us vs 19.4, gate 56.3 vs 46.9, down 50.7 vs 41.2; equal
 * (2.8 TB/s) only on the 1.2 GB lm_head. It was wired into src/backend/cuda/gemm.cu as autotune
 * path 3 (commit 6157d83) and removed again; kept here as the starting point for a next attempt.
 *
 * gemv_stream.cu: GEMV v3 for decode, out[r, n] = x[r, :] . w[n, :] for r < rows <= 8, with the
 * weights streamed by the Hopper bulk-copy engine into a ring of shared-memory stages.
 *
 * Why: batch-1 decode reads every weight once per step, so each GEMV should run at the card's
 * read bandwidth from its first microsecond to its last. GEMV v1 keeps its loads in registers:
 * each block issues 8 x 16 bytes per thread, waits, reduces and exits, and the ncu counters show
 * 64% of DRAM peak on the fused q/k/v shape (a 25 us kernel: block turnover, ramp and tail).
 * Here a fixed set of blocks (2 per SM) each walks its own tiles of whole weight rows; one
 * thread keeps NS tiles in flight with cp.async.bulk (one instruction per 16-24 KB tile,
 * completion counted in bytes on an mbarrier), so the memory system always holds ~100 KB per SM
 * of requests while the 256 threads compute on the oldest tile. Under programmatic dependent
 * launch the first NS tiles are requested before pdl_wait: the weight stream starts during the
 * previous kernel.
 *
 * Tiles: SR = max(1, 16 KB / row bytes) consecutive rows of one segment (segments as GemvSegs:
 * q/k/v or gate/up in one launch). Block b takes tiles b, b + G, b + 2G, ... Within a tile,
 * thread t handles the 16-byte chunks t, t + 256, ... (row = chunk / (K / 8)); per tile the
 * partial sums are reduced by warp shuffles, then across the 8 warps through shared memory.
 * Supported: K % 8 == 0, 16-byte aligned weights and x, a tile of at most 48 KB. */
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

#define G3_THREADS 256
#define G3_TILE_TARGET 16384 /* bytes of weights per tile (whole rows, at least one) */
#define G3_SMEM_BUDGET 98304 /* ring bytes per block: 2 blocks per SM fit in 228 KB */
#define G3_MAX_NS 6
#define G3_MAX_SR 16         /* rows per tile (K >= 512) */

static __device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}
static __device__ __forceinline__ void mbar_init(uint64_t *bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
static __device__ __forceinline__ void mbar_expect_tx(uint64_t *bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)),
                 "r"(bytes) : "memory");
}
static __device__ __forceinline__ void mbar_wait(uint64_t *bar, uint32_t parity) {
    uint32_t done = 0;
    while (!done) {
        asm volatile(
            "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
            " selp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done) : "r"(smem_u32(bar)), "r"(parity) : "memory");
    }
}
/* bytes (multiple of 16, both addresses 16-byte aligned) global -> shared, completing on bar */
static __device__ __forceinline__ void bulk_g2s(void *dst, const void *src, uint32_t bytes, uint64_t *bar) {
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
        ::"r"(smem_u32(dst)), "l"(src), "r"(bytes), "r"(smem_u32(bar)) : "memory");
}

/* Tile i of the launch -> (segment, first row, rows). tstart[s]: first tile of segment s. */
struct G3Tile { int seg, row0, nr; };
__device__ __forceinline__ G3Tile g3_tile(const GemvSegs &sg, const int *tstart, int SR, int i) {
    G3Tile t;
    t.seg = 0;
#pragma unroll
    for (int s = 1; s < GEMV_MAX_SEGS; s++)
        if (s < sg.nseg && i >= tstart[s]) t.seg = s;
    int N = sg.start[t.seg + 1] - sg.start[t.seg];
    t.row0 = (i - tstart[t.seg]) * SR;
    t.nr = min(SR, N - t.row0);
    return t;
}

/* R: rows of x (batch). SRC: rows per tile at compile time (upper bound; SR at run time <= SRC).
 * Dynamic shared memory: NS stages of SR * K bf16, then NS mbarriers. */
template <int R, int SRC, typename OutT>
__global__ void __launch_bounds__(G3_THREADS, 2) gemv3_kernel(GemvSegs sg, const bf16 *x, int K,
                                                              int SR, int NS) {
    extern __shared__ __align__(128) unsigned char g3_smem[];
    __shared__ float red[2][G3_THREADS / 32][R * SRC];
    pdl_trigger();
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const size_t stage_bytes = (size_t)SR * K * sizeof(bf16);
    uint64_t *bars = (uint64_t *)(g3_smem + (size_t)NS * stage_bytes);
    /* tile offsets of the segments (every thread computes them: no barrier needed) */
    int ts[GEMV_MAX_SEGS + 1];
    ts[0] = 0;
#pragma unroll
    for (int s = 0; s < GEMV_MAX_SEGS; s++)
        ts[s + 1] = ts[s] + (s < sg.nseg ? (sg.start[s + 1] - sg.start[s] + SR - 1) / SR : 0);
    const int ntiles_all = ts[GEMV_MAX_SEGS];
    const int G = gridDim.x;
    const int my_tiles = blockIdx.x < ntiles_all ? (ntiles_all - 1 - blockIdx.x) / G + 1 : 0;
    if (tid == 0) {
        for (int s = 0; s < NS; s++) mbar_init(&bars[s], 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        /* weights are constants: request the first NS tiles before waiting on the producer of x */
        for (int k = 0; k < NS && k < my_tiles; k++) {
            G3Tile t = g3_tile(sg, ts, SR, blockIdx.x + k * G);
            uint32_t bytes = (uint32_t)((size_t)t.nr * K * sizeof(bf16));
            mbar_expect_tx(&bars[k], bytes);
            bulk_g2s(g3_smem + (size_t)k * stage_bytes, sg.w[t.seg] + (size_t)t.row0 * K, bytes, &bars[k]);
        }
    }
    __syncthreads(); /* barriers initialised before anyone waits on them */
    pdl_wait();
    const int K8 = K / 8;
    const uint4 *x4 = (const uint4 *)x;
    for (int k = 0; k < my_tiles; k++) {
        const int s = k % NS;
        const G3Tile t = g3_tile(sg, ts, SR, blockIdx.x + k * G);
        mbar_wait(&bars[s], (uint32_t)((k / NS) & 1));
        const uint4 *wt = (const uint4 *)(g3_smem + (size_t)s * stage_bytes);
        float acc[R][SRC];
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int j = 0; j < SRC; j++) acc[r][j] = 0.f;
#pragma unroll
        for (int j = 0; j < SRC; j++) {
            if (j >= t.nr) break;
            for (int kc = tid; kc < K8; kc += G3_THREADS) {
                const uint4 wv = wt[j * K8 + kc];
#pragma unroll
                for (int r = 0; r < R; r++) acc[r][j] += gemv_dot8(wv, __ldg(x4 + (int64_t)r * K8 + kc));
            }
        }
        float(*rd)[R * SRC] = red[k & 1];
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int j = 0; j < SRC; j++) {
                if (j >= t.nr) continue;
                float v = acc[r][j];
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
                if (lane == 0) rd[warp][r * SRC + j] = v;
            }
        __syncthreads(); /* stage s consumed by every thread; partials in rd */
        if (tid == 0 && k + NS < my_tiles) {
            /* the async proxy overwrites what the generic proxy just read */
            asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
            G3Tile tn = g3_tile(sg, ts, SR, blockIdx.x + (k + NS) * G);
            uint32_t bytes = (uint32_t)((size_t)tn.nr * K * sizeof(bf16));
            mbar_expect_tx(&bars[s], bytes);
            bulk_g2s(g3_smem + (size_t)s * stage_bytes, sg.w[tn.seg] + (size_t)tn.row0 * K, bytes, &bars[s]);
        }
        if (tid < R * t.nr) {
            const int r = tid / t.nr, j = tid - r * t.nr;
            float v = 0.f;
#pragma unroll
            for (int q = 0; q < G3_THREADS / 32; q++) v += rd[q][r * SRC + j];
            const int N = sg.start[t.seg + 1] - sg.start[t.seg];
            gemv_store((OutT *)sg.out[t.seg] + (int64_t)r * N + t.row0 + j, v);
        }
        /* red is double-buffered: the next tile writes the other half, and the one after waits
         * behind the next tile's barrier, which every reader of this half has passed */
    }
}

/* Rows per tile and ring depth for K; 0 when the kernel does not handle K. */
static int g3_geometry(int K, int *SR, int *NS) {
    if (K % 8 || K <= 0) return 0;
    size_t row = (size_t)K * sizeof(bf16);
    int sr = (int)(G3_TILE_TARGET / row);
    if (sr < 1) sr = 1;
    if (sr > G3_MAX_SR) sr = G3_MAX_SR;
    size_t stage = row * sr;
    if (stage > 49152) return 0;
    int ns = (int)(G3_SMEM_BUDGET / stage);
    if (ns > G3_MAX_NS) ns = G3_MAX_NS;
    if (ns < 2) return 0;
    *SR = sr;
    *NS = ns;
    return 1;
}

int cuda_gemv3_supported(int rows, int K, const void *x, const GemvSegs *sg) {
    int SR, NS;
    if (rows < 1 || rows > GEMV_MAX_ROWS || !g3_geometry(K, &SR, &NS)) return 0;
    if ((uintptr_t)x & 15) return 0;
    for (int s = 0; s < sg->nseg; s++)
        if ((uintptr_t)sg->w[s] & 15) return 0;
    return 1;
}

template <int R, int SRC, typename OutT>
static void g3_launch_one(CudaCtx *c, const GemvSegs *sg, const bf16 *x, int K, int SR, int NS,
                          int ntiles) {
    /* per instantiation and device; first use is eager (autotune), never in capture */
    static unsigned smem_set;
    size_t smem = (size_t)NS * SR * K * sizeof(bf16) + (size_t)NS * sizeof(uint64_t);
    if (!(smem_set & (1u << (c->device & 31)))) {
        CUDA_CHECK(cudaFuncSetAttribute(gemv3_kernel<R, SRC, OutT>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        G3_SMEM_BUDGET + G3_MAX_NS * (int)sizeof(uint64_t)));
        smem_set |= 1u << (c->device & 31);
    }
    int grid = 2 * c->num_sms;
    if (grid > ntiles) grid = ntiles;
    cuda_launch(c, gemv3_kernel<R, SRC, OutT>, dim3(grid), dim3(G3_THREADS), smem, *sg, x, K, SR, NS);
    CUDA_LAUNCH_CHECK(c);
}

template <int R, typename OutT>
static void g3_launch_sr(CudaCtx *c, const GemvSegs *sg, const bf16 *x, int K, int SR, int NS,
                         int ntiles) {
    /* SRC: compile-time bound on rows per tile (registers: R * SRC accumulators) */
    if (SR <= 1) g3_launch_one<R, 1, OutT>(c, sg, x, K, SR, NS, ntiles);
    else if (SR <= 2) g3_launch_one<R, 2, OutT>(c, sg, x, K, SR, NS, ntiles);
    else if (SR <= 4) g3_launch_one<R, 4, OutT>(c, sg, x, K, SR, NS, ntiles);
    else if (SR <= 8) g3_launch_one<R, 8, OutT>(c, sg, x, K, SR, NS, ntiles);
    else g3_launch_one<R, 16, OutT>(c, sg, x, K, SR, NS, ntiles);
}

template <typename OutT>
static void g3_launch(CudaCtx *c, const GemvSegs *sg, const bf16 *x, int rows, int K) {
    int SR, NS;
    if (!g3_geometry(K, &SR, &NS)) {
        fprintf(stderr, "cuda gemv3: K=%d unsupported\n", K);
        abort();
    }
    /* with many x rows keep the accumulators in registers: fewer weight rows per tile */
    while (rows * SR > 16 && SR > 1) SR /= 2;
    int ntiles = 0;
    for (int s = 0; s < sg->nseg; s++) ntiles += (sg->start[s + 1] - sg->start[s] + SR - 1) / SR;
    if (ntiles <= 0) return;
    switch (rows) {
#define CASE(R) case R: g3_launch_sr<R, OutT>(c, sg, x, K, SR, NS, ntiles); break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    default: fprintf(stderr, "cuda gemv3: rows %d unsupported\n", rows); abort();
    }
}

void cuda_gemv3_multi(CudaCtx *c, const GemvSegs *sg, int out_f32, const bf16 *x, int rows, int K) {
    if (out_f32) g3_launch<float>(c, sg, x, rows, K);
    else g3_launch<bf16>(c, sg, x, rows, K);
}
