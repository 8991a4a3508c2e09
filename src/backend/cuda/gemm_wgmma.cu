/* gemm_wgmma.cu: out[M, N] = x[M, K] . w[N, K]^T for decode batches on Hopper's asynchronous
 * tensor cores (wgmma), bf16 in and out, f32 accumulation. One of the GEMM paths gemm.cu times
 * per shape (GEMM_PATH_WGMMA, opt-in with PAGELLM_CUDA_WGMMA while unmeasured).
 *
 * Why: at 256 rows the 8B decode GEMMs sit at the ridge point (386 MB of weights and 98.8 GFLOP
 * per layer: 127 us of bandwidth, 126 us of math) and cuBLASLt takes ~178 us per layer in the
 * graph (dev/cuda/NOTES.md, session 8): its 128 x 128 tiles put 32-64 CTAs on 132 SMs for the
 * q/o/down shapes. Here one CTA covers all of a batch's rows (so each weight byte is read once
 * from DRAM) and K is split across a thread-block cluster to fill the SMs, the split partial
 * sums reduced through distributed shared memory instead of global memory.
 *
 * Contract (cuda_wgmma_supported): M <= 256, K % 64 == 0, N % 8 == 0, x, w and out 16-byte
 * aligned, a compute capability 9.0 device. CTA: 3 warpgroups. WG0 (one thread) streams 64-wide
 * K tiles of x [bm x 64] (bm: M rounded up to 64) and w [128 x 64] with TMA (128-byte swizzle)
 * into a 4-stage ring (48 KB a stage), full/empty mbarriers; WG1 and WG2 each own 128 rows of
 * the output tile (one m64n128k16 wgmma per k-step for each of their 64-row tiles below bm; rows
 * in [M, bm) are TMA's zero fill, computed and not stored; one k tile's wgmma group stays in
 * flight while the next is issued). Grid (N / 128, S), cluster (1, S, 1): the S CTAs of a
 * cluster share an output tile and take K tiles [r kt / S, (r + 1) kt / S). With S > 1 each CTA
 * parks its f32 tile in its own shared memory (the ring, now idle), the cluster syncs, and CTA r
 * sums rows [r bm / S, (r + 1) bm / S) over the S tiles (loads through map_shared_rank) and
 * stores them as bf16.
 *
 * Status (session 9, run14 on an H100): correct (dev/cuda/gemm_wgmma.cu checks every entry against
 * cuBLASLt; test_cuda_ops "cuda-wgmma" through the backend) but 1.2-2.8x slower than cuBLASLt at
 * the 8B decode shapes, so PAGELLM_CUDA_WGMMA=1 keeps cuBLASLt; why, and what a next version
 * needs: dev/cuda/NOTES.md, Session 9. */
#include <cooperative_groups.h>
#include <cuda.h>
#include <cudaTypedefs.h>
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

namespace cg = cooperative_groups;

namespace {

enum { BM = 256, BN = 128, BK = 64, STAGES = 4, THREADS = 384 };
enum { A_BYTES = BM * BK * 2, B_BYTES = BN * BK * 2, STAGE_BYTES = A_BYTES + B_BYTES };
/* dynamic shared memory: 1 KB of alignment slack (128-byte swizzle atoms are 1 KB), the ring,
 * then the 2 x STAGES mbarriers; the split reduction reuses the ring for a [256 x 128] f32 tile */
enum { RING_BYTES = STAGES * STAGE_BYTES, SMEM_BYTES = 1024 + RING_BYTES + 2 * STAGES * 8 };
/* the split-K tile's row stride in floats: BN + 8 keeps the epilogue's float2 stores (8 rows x 4
 * column pairs per warp) free of bank conflicts; 128 put all 8 rows on the same banks */
enum { RED_LD = BN + 8 };
static_assert(BM * RED_LD * 4 <= RING_BYTES, "the split-K tile must fit in the ring");

/* ---------------- PTX helpers ---------------- */

__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
/* Returns once the phase of parity `parity` has completed (a fresh barrier counts its phase
 * "parity 1" as completed, so a producer's first wait on an empty slot passes at once). A wait of
 * more than ~2^34 cycles (~9 s) traps: a protocol bug becomes a launch error, not a hung GPU. */
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done = 0;
    const long long t0 = clock64();
    while (!done) {
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     " selp.u32 %0, 1, 0, p;\n}\n" : "=r"(done) : "r"(bar), "r"(parity) : "memory");
        if (!done && clock64() - t0 > (1ll << 34)) __trap();
    }
}
/* TMA: the box at (x = k, y = row) of the tensor map into shared memory, completing on bar */
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap *tm, int x, int y, uint32_t bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%2, %3}], [%4];\n"
                 ::"r"(dst), "l"((uint64_t)tm), "r"(x), "r"(y), "r"(bar) : "memory");
}
/* wgmma shared-memory descriptor of a K-major tile written by TMA with the 128-byte swizzle:
 * rows of 64 bf16 (128 bytes), 8-row atoms 1 KB apart (stride byte offset 1024), leading byte
 * offset 16 (unused with this swizzle), swizzle mode 1 (128 B) in bits 62-63. Advancing K by 16
 * elements inside the 128-byte row is +32 bytes on the start address. */
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr) {
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(16 >> 4) << 16) |
           ((uint64_t)(1024 >> 4) << 32) | (1ull << 62);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait1() { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }
/* keeps the compiler from moving accumulator reads/writes across the asynchronous wgmma */
__device__ __forceinline__ void acc_fence(float (&d)[64]) {
#pragma unroll
    for (int i = 0; i < 64; i++) asm volatile("" : "+f"(d[i])::"memory");
}

/* D[64 x 128] (+)= A[64 x 16] . B[128 x 16]^T, both K-major in shared memory (descriptors);
 * scale_d 0 overwrites D (the first k-step of a tile), 1 accumulates. */
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], uint64_t da, uint64_t db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16\n"
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,\n"
        " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,\n"
        " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,\n"
        " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63},\n"
        "%64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(scale_d));
}

/* ---------------- the kernel ---------------- */

/* Calls f(row, col, v0, v1) for each pair of adjacent outputs (row, col), (row, col + 1) of the
 * tile that consumer thread `tid` (0-127) of consumer warpgroup c holds in d: the m64nNk16 D
 * fragment, where warp w owns rows 16 w .. 16 w + 15 of each 64-row wgmma tile (rows 128 c +
 * 64 ms + ...), and per 8-column block j lane l holds row l / 4, columns 8 j + 2 (l % 4) + {0, 1}
 * in d[ms][4 j], d[ms][4 j + 1] and the same 8 rows further down in d[ms][4 j + 2], [4 j + 3]. */
template <typename F>
__device__ __forceinline__ void frag_pairs(const float (&d)[2][64], int c, int tid, F f) {
    const int w = tid / 32, lane = tid % 32;
#pragma unroll
    for (int ms = 0; ms < 2; ms++) {
        const int row = 128 * c + 64 * ms + 16 * w + lane / 4;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            const int col = 8 * j + 2 * (lane % 4);
            f(row, col, d[ms][4 * j], d[ms][4 * j + 1]);
            f(row + 8, col, d[ms][4 * j + 2], d[ms][4 * j + 3]);
        }
    }
}

/* A consumer warpgroup's k loop over `n` k tiles of the ring: MT (0, 1 or 2) of its two 64-row
 * tiles get one m64n128k16 wgmma per 16-wide k step (MT 0 only hands the stages back). One k
 * tile's wgmma group stays in flight while the next is issued: after issuing tile i, wait for
 * tile i - 1's group and hand its stage back to the producer. a0: this warpgroup's rows in
 * stage 0's x tile. */
template <int MT>
__device__ __forceinline__ void consume(float (&d)[2][64], uint32_t a0, uint32_t base, uint32_t full0,
                                        uint32_t empty0, int n, int tid) {
    for (int i = 0; i < n; i++) {
        const int s = i % STAGES, r = i / STAGES;
        mbar_wait(full0 + 8 * s, r & 1);
        const uint32_t a = a0 + s * STAGE_BYTES, b = base + s * STAGE_BYTES + A_BYTES;
        if (MT > 0) {
            acc_fence(d[0]);
            acc_fence(d[1]);
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) {
                const uint64_t db = smem_desc(b + 32 * kk);
                wgmma_m64n128k16(d[0], smem_desc(a + 32 * kk), db, 1);
                if (MT > 1) wgmma_m64n128k16(d[1], smem_desc(a + 64 * 128 + 32 * kk), db, 1);
            }
            wgmma_commit();
            wgmma_wait1();
            acc_fence(d[0]);
            acc_fence(d[1]);
        }
        if (i > 0 && tid == 0) mbar_arrive(empty0 + 8 * ((i - 1) % STAGES)); /* tile i - 1 read */
    }
    if (MT > 0) {
        wgmma_wait0();
        acc_fence(d[0]);
        acc_fence(d[1]);
    }
}

/* S: CTAs per cluster, splitting K (1: no split, the tile is stored from registers). */
template <int S>
__global__ void __launch_bounds__(THREADS, 1)
gemm_wgmma_kernel(const __grid_constant__ CUtensorMap tm_x, const __grid_constant__ CUtensorMap tm_w,
                  bf16 *out, int M, int N, int K, int bm) {
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
    __trap(); /* built for another architecture (PAGELLM_CUDA_GENCODE): wgmma needs sm_90a */
#else
    extern __shared__ uint8_t smem_raw[];
    const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u; /* the ring, 1 KB aligned */
    uint8_t *const base_ptr = smem_raw + (base - smem_u32(smem_raw));
    const uint32_t full0 = base + RING_BYTES, empty0 = full0 + STAGES * 8;
    const int wg = threadIdx.x / 128, tid = threadIdx.x % 128;
    const int n0 = blockIdx.x * BN;
    const int rank = S > 1 ? (int)blockIdx.y : 0; /* cluster (1, S, 1) along grid y */
    const int kt = K / BK, kt0 = kt * rank / S, kt1 = kt * (rank + 1) / S;

    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; s++) {
            mbar_init(full0 + 8 * s, 1);  /* the producer's arrive.expect_tx; TMA completes the bytes */
            mbar_init(empty0 + 8 * s, 2); /* one arrive per consumer warpgroup */
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    float d[2][64];
    if (wg == 0) {
        /* producer: one thread keeps up to STAGES k tiles in flight */
        if (tid == 0) {
            for (int i = 0; i < kt1 - kt0; i++) {
                const int s = i % STAGES, r = i / STAGES;
                mbar_wait(empty0 + 8 * s, (r & 1) ^ 1);
                const uint32_t a = base + s * STAGE_BYTES, b = a + A_BYTES, full = full0 + 8 * s;
                mbar_arrive_expect_tx(full, (uint32_t)(bm + BN) * BK * 2); /* x box: bm rows */
                tma_load_2d(a, &tm_x, (kt0 + i) * BK, 0, full);
                tma_load_2d(b, &tm_w, (kt0 + i) * BK, n0, full);
            }
        }
    } else {
        /* consumers: warpgroup c owns rows [128 c, 128 c + 128) as two 64-row wgmma tiles, of
         * which those below bm (the rows rounded up to 64) are computed. The choice is made once,
         * outside the k loop: a branch inside it made ptxas serialize every wgmma (C7520). */
        const int c = wg - 1, avail = bm - 128 * c;
#pragma unroll
        for (int ms = 0; ms < 2; ms++)
#pragma unroll
            for (int i = 0; i < 64; i++) d[ms][i] = 0.f;
        const uint32_t a0 = base + (128 * c) * 128;
        if (avail >= 128) consume<2>(d, a0, base, full0, empty0, kt1 - kt0, tid);
        else if (avail >= 64) consume<1>(d, a0, base, full0, empty0, kt1 - kt0, tid);
        else consume<0>(d, a0, base, full0, empty0, kt1 - kt0, tid);
    }

    if (S == 1) {
        if (wg == 0) return;
        frag_pairs(d, wg - 1, tid, [&](int row, int col, float v0, float v1) {
            if (row < M && n0 + col < N)
                *(__nv_bfloat162 *)(out + (size_t)row * N + n0 + col) = __floats2bfloat162_rn(v0, v1);
        });
        return;
    }

    /* split K: park this CTA's f32 tile [256 x 128] in the ring (every TMA of this CTA has
     * landed and every wgmma has read its stage: the consumers waited for both; the named
     * barrier makes both consumer warpgroups finish before either overwrites the ring) */
    float *red = (float *)base_ptr;
    if (wg > 0) {
        asm volatile("bar.sync 1, 256;\n" ::: "memory");
        frag_pairs(d, wg - 1, tid, [&](int row, int col, float v0, float v1) {
            if (row < bm) *(float2 *)(red + row * RED_LD + col) = make_float2(v0, v1);
        });
    }
    cg::cluster_group cl = cg::this_cluster();
    cl.sync();
    /* CTA `rank` sums its slab of rows over the S tiles of the cluster and stores it */
    const int rows = bm / S, r0 = rank * rows; /* bm is a multiple of 64, S <= 8 */
    for (int e = threadIdx.x; e < rows * BN / 4; e += THREADS) {
        const int row = r0 + e / (BN / 4), col = 4 * (e % (BN / 4));
        float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int q = 0; q < S; q++) {
            const float4 v = *(const float4 *)(cl.map_shared_rank(red, q) + row * RED_LD + col);
            acc.x += v.x; acc.y += v.y; acc.z += v.z; acc.w += v.w;
        }
        if (row < M && n0 + col + 3 < N) {
            __nv_bfloat162 *o = (__nv_bfloat162 *)(out + (size_t)row * N + n0 + col);
            o[0] = __floats2bfloat162_rn(acc.x, acc.y);
            o[1] = __floats2bfloat162_rn(acc.z, acc.w);
        }
    }
    cl.sync(); /* no CTA leaves while a peer still reads its tile */
#endif
}

} /* namespace */

/* ---------------- host ---------------- */

static PFN_cuTensorMapEncodeTiled_v12000 encode_tiled(void) {
    static PFN_cuTensorMapEncodeTiled_v12000 fn;
    if (!fn) {
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", (void **)&fn, 12000, cudaEnableDefault,
                                             &q) != cudaSuccess || q != cudaDriverEntryPointSuccess)
            fn = NULL;
    }
    return fn;
}

/* [rows, K] bf16 row-major, boxes of [box_rows, 64] with the 128-byte swizzle, zeros past the edge */
static int tensor_map(CUtensorMap *tm, const bf16 *p, int rows, int K, int box_rows) {
    PFN_cuTensorMapEncodeTiled_v12000 enc = encode_tiled();
    if (!enc) return 0;
    cuuint64_t dims[2] = {(cuuint64_t)K, (cuuint64_t)rows}, strides[1] = {(cuuint64_t)K * 2};
    cuuint32_t box[2] = {BK, (cuuint32_t)box_rows}, estr[2] = {1, 1};
    return enc(tm, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (void *)p, dims, strides, box, estr,
               CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

int cuda_wgmma_supported(int M, int N, int K, const void *x, const void *w, const void *out) {
    static int cc_major = -1;
    if (cc_major < 0) {
        int dev = 0;
        cc_major = cudaGetDevice(&dev) == cudaSuccess &&
                   cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess
                       ? cc_major : 0;
    }
    return cc_major == 9 && encode_tiled() && M >= 1 && M <= BM && K >= BK && K % BK == 0 && N >= 8 &&
           N % 8 == 0 && ((((uintptr_t)x) | ((uintptr_t)w) | ((uintptr_t)out)) & 15) == 0;
}

int cuda_wgmma_default_splits(int N, int K, int num_sms) {
    const int tiles = (N + BN - 1) / BN;
    int s = 1;
    while (s < 8 && tiles * s * 2 <= num_sms && K / BK >= 2 * s) s *= 2;
    return s;
}

/* The kernel's launch: grid, 384 threads, the ring's shared memory, clusters of (1, S, 1) (the
 * attribute lives in *at, which must outlive the config). */
static cudaLaunchConfig_t launch_config(dim3 grid, int S, cudaStream_t st, cudaLaunchAttribute *at) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = dim3(THREADS);
    cfg.dynamicSmemBytes = SMEM_BYTES;
    cfg.stream = st;
    at->id = cudaLaunchAttributeClusterDimension;
    at->val.clusterDim.x = 1; at->val.clusterDim.y = S; at->val.clusterDim.z = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    return cfg;
}

/* Raises kernel S's dynamic shared memory limit to the ring's size, once per device. */
template <int S>
static cudaError_t smem_limit_set(int device) {
    static int done[32];
    if (done[device & 31]) return cudaSuccess;
    const cudaError_t e =
        cudaFuncSetAttribute(gemm_wgmma_kernel<S>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES);
    done[device & 31] = e == cudaSuccess;
    return e;
}

template <int S>
static void launch_s(cudaStream_t st, int device, const CUtensorMap &tx, const CUtensorMap &tw, bf16 *out,
                     int M, int N, int K, int bm) {
    CUDA_CHECK(smem_limit_set<S>(device));
    cudaLaunchAttribute at;
    const cudaLaunchConfig_t cfg = launch_config(dim3((N + BN - 1) / BN, S), S, st, &at);
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, gemm_wgmma_kernel<S>, tx, tw, out, M, N, K, bm));
}

template <int S>
static int max_clusters_s(void) {
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess || smem_limit_set<S>(device) != cudaSuccess) return 0;
    cudaLaunchAttribute at;
    const cudaLaunchConfig_t cfg = launch_config(dim3(64, S), S, 0, &at);
    int n = 0;
    return cudaOccupancyMaxActiveClusters(&n, gemm_wgmma_kernel<S>, &cfg) == cudaSuccess ? n : 0;
}

int cuda_wgmma_max_clusters(int S) {
    switch (S) {
    case 1: return max_clusters_s<1>();
    case 2: return max_clusters_s<2>();
    case 4: return max_clusters_s<4>();
    case 8: return max_clusters_s<8>();
    default: return 0;
    }
}

void cuda_wgmma(cudaStream_t st, int device, bf16 *out, const bf16 *x, const bf16 *w, int M, int N, int K,
                int S) {
    /* the x tile holds the batch's rows rounded up to 64 (run14: 64 rows paid 256 rows of math) */
    const int bm = (M + 63) / 64 * 64;
    CUtensorMap tx, tw;
    if (!tensor_map(&tx, x, M, K, bm) || !tensor_map(&tw, w, N, K, BN)) {
        fprintf(stderr, "cuda wgmma: no tensor map for M=%d N=%d K=%d\n", M, N, K);
        abort();
    }
    switch (S) {
    case 1: launch_s<1>(st, device, tx, tw, out, M, N, K, bm); break;
    case 2: launch_s<2>(st, device, tx, tw, out, M, N, K, bm); break;
    case 4: launch_s<4>(st, device, tx, tw, out, M, N, K, bm); break;
    case 8: launch_s<8>(st, device, tx, tw, out, M, N, K, bm); break;
    default: fprintf(stderr, "cuda wgmma: %d splits unsupported\n", S); abort();
    }
}
