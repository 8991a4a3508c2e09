/* prefill_attn_wgmma.cu: causal paged attention of the prefill chunks of a mixed batch on
 * Hopper's asynchronous tensor cores (PAGELLM_CUDA_PREFILL_ATTN=7, and 8 with the warpgroups'
 * ping-pong; bf16 cache, head_dim 128, sm_90a; everything else falls back to prefill_attn_v2's
 * default).
 *
 * Same contract as prefill_attn_v2 (query token t of prefill sequence s attends to keys
 * 0..positions[t] of s through the block table; out[t, h, :] = softmax(q k^T / sqrt(HD)) v for
 * the prefill tokens only), plus one precondition: every slot of the cache holds finite values
 * (model.c zeroes the cache at allocation), because keys past a sequence's end in its last
 * tile are read, masked to probability 0 and multiplied by their V rows.
 *
 * Why: prefill_attn_v2 is latency-bound on mma.sync (ncu, run23: tensor pipe ~39% busy, 0.43
 * eligible warps a scheduler; 257-284 TFLOP/s at a 16k prompt, ~half of that TTFT). wgmma runs
 * a 64-row x 128-key product per warpgroup asynchronously from shared-memory operands, so the
 * registers hold only the accumulators and the softmax of one tile overlaps the next tile's
 * matrix products (FlashAttention-3's in-warpgroup pipelining), and TMA moves the tiles with no
 * thread issuing per-16-byte copies.
 *
 * Structure (one block = BM = 128 query rows of one KV head, 256 threads):
 *  - rows are (token, head of the GQA group) pairs as in v2: row r = token tok0 + r / G, head
 *    kvh * G + r % G, so one K/V tile serves the G query heads of its KV head. Warps 0-3
 *    (warpgroup 0) own rows 0-63, warps 4-7 rows 64-127;
 *  - shared memory: Q [128 rows x 128 dims] and a three-stage ring of K and V tiles [BN = 128
 *    keys x 128 dims] (225 KB in all), each stored as two 64-dim panels of 128-byte rows with the
 *    128-byte swizzle (what TMA writes and the wgmma descriptors read);
 *  - loads, issued by warp 0 between its own tiles (a producer warp of its own makes 288 or 384
 *    threads, and ptxas then caps every thread at 168 registers and spills: the consumers need
 *    ~200): Q by TMA once (a 3-D map [tokens, Hq, HD]: one box = the G heads of BM / G tokens),
 *    then per key tile the block-table ids of its BN / block_size blocks (one lane each, looked up
 *    a tile ahead) and one TMA box per (block, panel) of K and of V (a 3-D map [slots, Hkv, HD] of
 *    the cache), STAGES - 1 tiles ahead. Keys past the sequence's last block read the sequence's
 *    block 0 (finite, masked). Full barriers: one for K and one for V per stage (transaction
 *    bytes); empty: 8 arrivals, one per consumer warp after its last read of the stage;
 *  - consumers, per warpgroup, tile j: S_j = Q K_j^T (8 wgmma m64n128k16, both operands in
 *    shared memory, K-major) and O += P_{j-1} V_{j-1} (8 wgmma with P in registers, V N-major)
 *    are issued together; S_j's softmax (mask on the diagonal tiles, online max / sum in base 2)
 *    is written to run while P V is in flight; after P V completes, O is rescaled and S_j
 *    becomes P_j (bf16, the accumulator layout of S is the A-fragment layout of P).
 *    But ptxas (CUDA 13.0) moves the wait for P V up into the softmax, before its exp2s (the
 *    SASS has no MUFU between the two waits; also with O rescaled before P V as FlashAttention-3
 *    does, and with FFMAs for the exp2s): within a warpgroup the softmax follows P V. The
 *    overlap left is between the two warpgroups, which share each SM sub-partition's tensor
 *    core: variant 8 makes it explicit as FlashAttention-3's ping-pong (the warpgroups take turns
 *    issuing their products, named barriers 1 and 2), because both wait on the same full
 *    barriers and would otherwise run in phase, their softmaxes together with the tensor cores idle.
 * Blocks of later tokens go first (grid z reversed), as in v2. PDL: everything after pdl_wait. */
#include <cuda.h>
#include <cudaTypedefs.h>
#include <math.h>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/mma.cuh"

namespace {

enum { HD = 128, BM = 128, BN = 128, STAGES = 3, THREADS = 256 };
enum { PANEL = 64 };                        /* dims per 128-byte swizzled row */
enum { Q_BYTES = BM * HD * 2, KV_BYTES = BN * HD * 2 };
enum { Q_PANEL = BM * 128, KV_PANEL = BN * 128 }; /* bytes of one 64-dim panel */
enum { RING = Q_BYTES + STAGES * 2 * KV_BYTES };
/* barriers after the ring: q, full_k[STAGES], full_v[STAGES], empty[STAGES] */
enum { NBAR = 1 + 3 * STAGES, SMEM_BYTES = 1024 + RING + NBAR * 8 };

__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
/* Returns once the phase of parity `parity` has completed (a fresh barrier counts "parity 1" as
 * completed, so the producer's first wait on an empty slot passes). A wait of more than ~2^34
 * cycles (~9 s) traps: a protocol bug becomes a launch error, not a hung GPU. */
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done = 0;
    const long long t0 = clock64();
    while (!done) {
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     " selp.u32 %0, 1, 0, p;\n}\n" : "=r"(done) : "r"(bar), "r"(parity) : "memory");
        if (!done && clock64() - t0 > (1ll << 34)) __trap();
    }
}
/* TMA: the box at coordinates (x, y, z) of a 3-D tensor map into shared memory, completing on bar */
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const CUtensorMap *tm, int x, int y, int z, uint32_t bar) {
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%2, %3, %4}], [%5];\n"
                 ::"r"(dst), "l"((uint64_t)tm), "r"(x), "r"(y), "r"(z), "r"(bar) : "memory");
}

/* wgmma shared-memory descriptor, 128-byte swizzle (mode 1 in bits 62-63), start address in
 * bits 0-13, leading byte offset in 16-29, stride byte offset in 32-45 (all >> 4).
 * K-major (Q, K: rows of 64 elements of the reduction dim): stride = 1024 between 8-row atoms,
 * leading unused (16); a 16-wide k step inside the row is +32 bytes on the start.
 * N-major (V: rows = keys, the reduction dim, of 64 output dims): leading = the distance between
 * the 64-dim panels, stride = 1024 between 8-key atoms; a 16-key step is +2048 bytes. */
__device__ __forceinline__ uint64_t desc_sw128(uint32_t addr, uint32_t lead) {
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(lead >> 4) << 16) | ((uint64_t)(1024 >> 4) << 32) |
           (1ull << 62);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* keeps the compiler from moving register reads/writes across the asynchronous wgmma */
__device__ __forceinline__ void fence_f(float (&d)[64]) {
#pragma unroll
    for (int i = 0; i < 64; i++) asm volatile("" : "+f"(d[i])::"memory");
}
__device__ __forceinline__ void fence_u(uint32_t (&d)[32]) {
#pragma unroll
    for (int i = 0; i < 32; i++) asm volatile("" : "+r"(d[i])::"memory");
}

#define PFW_D64                                                                                          \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,\n"                           \
    " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,\n"                 \
    " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,\n"                 \
    " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define PFW_OUT64(d)                                                                                     \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),       \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]),            \
    "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),            \
    "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),            \
    "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),            \
    "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]),            \
    "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]),            \
    "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

/* D[64 x 128] (+)= A[64 x 16] . B[128 x 16]^T, A and B K-major in shared memory; scale_d 0
 * overwrites D. */
__device__ __forceinline__ void wgmma_ss(float (&d)[64], uint64_t da, uint64_t db, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16\n" PFW_D64
                 ",\n%64, %65, p, 1, 1, 0, 0;\n}\n"
                 : PFW_OUT64(d)
                 : "l"(da), "l"(db), "r"(scale_d));
}
/* D[64 x 128] += A[64 x 16] . B[16 x 128], A in registers (the m16n8k16 A fragment per warp, warp
 * w of the warpgroup holding rows 16 w ..), B N-major in shared memory (imm-trans-b 1). */
__device__ __forceinline__ void wgmma_rs(float (&d)[64], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16\n" PFW_D64
                 ",\n{%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
                 : PFW_OUT64(d)
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(db), "r"(1));
}

/* The accumulator of an m64n128 product as softmax_tile's (mma.cuh) 16 blocks of 8 keys: the D
 * layout puts row g + 8 (e >> 1), key 8 j + 2 t4 + (e & 1) of the warp's 16 rows in a[4 j + e]. */
__device__ __forceinline__ float (&pfw_blocks(float (&a)[64]))[16][4] { return *reinterpret_cast<float(*)[16][4]>(&a); }

/* P (bf16 A fragments, 16 keys a k step) from the probabilities in the S accumulator layout:
 * keys 16 kk.. are column blocks 2 kk and 2 kk + 1, i.e. s[8 kk .. 8 kk + 7] in A-register order. */
__device__ __forceinline__ void pfw_to_p(uint32_t (&p)[32], const float (&s)[64]) {
#pragma unroll
    for (int i = 0; i < 32; i++) p[i] = pack_bf16(s[2 * i], s[2 * i + 1]);
}

/* Grid (Hkv, prefill sequences, query tiles reversed), THREADS threads, SMEM_BYTES of dynamic
 * shared memory. PP: the warpgroups' ping-pong (variant 8), below. tm_q: [T, Hq, HD] boxes (64, G, BM / G); tm_k / tm_v: [slots, Hkv, HD] boxes
 * (64, 1, block_size). */
template <bool PP>
__global__ void __launch_bounds__(THREADS, 1) prefill_attn_wgmma_kernel(
    const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_k,
    const __grid_constant__ CUtensorMap tm_v, bf16 *out, const int32_t *prefill_seqs,
    const int32_t *query_start, const int32_t *seq_lens, const int32_t *positions,
    const int32_t *block_tables, int mbps, int block_size, int Hq, int Hkv, float sl2) {
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
    __trap(); /* built for another architecture (PAGELLM_CUDA_GENCODE): wgmma and TMA need sm_90a */
#else
    extern __shared__ uint8_t pfw_smem[];
    pdl_trigger();
    pdl_wait(); /* q, the cache and the metadata were written by earlier kernels */

    const int G = Hq / Hkv, TPT = BM / G;
    const int kvh = blockIdx.x;
    const int s = prefill_seqs[blockIdx.y];
    const int qs = query_start[s], qlen = query_start[s + 1] - qs;
    const int tok0 = (gridDim.z - 1 - blockIdx.z) * TPT; /* heavy tiles (more keys) first */
    if (tok0 >= qlen) return; /* the whole block: before any barrier */
    const int last_tok = min(tok0 + TPT, qlen) - 1;
    const int kend = min(seq_lens[s], positions[qs + last_tok] + 1); /* keys this block needs */
    const int ntiles = (kend + BN - 1) / BN;

    const uint32_t base = (smem_u32(pfw_smem) + 1023u) & ~1023u; /* swizzle atoms are 1 KB */
    const uint32_t sq = base, bar = base + RING;
    auto sk = [&](int st) { return base + Q_BYTES + st * 2 * KV_BYTES; };
    auto sv = [&](int st) { return base + Q_BYTES + st * 2 * KV_BYTES + KV_BYTES; };
    const uint32_t bar_q = bar;
    auto full_k = [&](int st) { return bar + 8 * (1 + st); };
    auto full_v = [&](int st) { return bar + 8 * (1 + STAGES + st); };
    auto empty = [&](int st) { return bar + 8 * (1 + 2 * STAGES + st); };

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (threadIdx.x == 0) {
        mbar_init(bar_q, 1);
        for (int st = 0; st < STAGES; st++) {
            mbar_init(full_k(st), 1); /* the producer's expect_tx; TMA completes the bytes */
            mbar_init(full_v(st), 1);
            mbar_init(empty(st), 8);  /* one arrival per consumer warp */
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    /* the loads: warp 0 issues them between its own tiles (a producer warp of its own would cap
     * every thread at 168 registers: 288 or 384 threads a block; the consumers need ~200).
     * Lane i < bpt looks up block i of a tile one tile ahead (the global load is in flight during
     * a tile's math) and issues that block's K and V boxes; lane 0 first waits until both
     * warpgroups released the stage (tile j - STAGES's P V done) and arms its full barriers. */
    const int32_t *bt = block_tables + (int64_t)s * mbps;
    const int bpt = BN / block_size, nblk = (kend + block_size - 1) / block_size;
    auto lookup = [&](int j) { /* lanes < bpt: block id of the tile's block `lane` */
        const int b = j * bpt + lane;
        return lane < bpt && j < ntiles ? bt[b < nblk ? b : 0] : 0; /* past the end: block 0 */
    };
    auto produce = [&](int j, int id) {
        const int st = j % STAGES;
        if (lane == 0) {
            mbar_wait(empty(st), ((j / STAGES) & 1) ^ 1);
            mbar_expect_tx(full_k(st), KV_BYTES);
            mbar_expect_tx(full_v(st), KV_BYTES);
        }
        __syncwarp();
        if (lane < bpt)
            for (int p = 0; p < HD / PANEL; p++) {
                const uint32_t off = p * KV_PANEL + lane * block_size * 128;
                tma_load_3d(sk(st) + off, &tm_k, p * PANEL, kvh, id * block_size, full_k(st));
                tma_load_3d(sv(st) + off, &tm_v, p * PANEL, kvh, id * block_size, full_v(st));
            }
    };
    int next_id = 0; /* warp 0: the block ids of tile `issued` */
    int issued = 0;  /* warp 0: tiles whose loads were issued */
    if (warp == 0) {
        if (lane == 0) {
            mbar_expect_tx(bar_q, Q_BYTES);
            for (int p = 0; p < HD / PANEL; p++) tma_load_3d(sq + p * Q_PANEL, &tm_q, p * PANEL, kvh * G, qs + tok0, bar_q);
        }
        /* the first STAGES - 1 tiles now; then one a tile, STAGES - 1 ahead */
        for (; issued < STAGES - 1 && issued < ntiles; issued++) produce(issued, lookup(issued));
        next_id = lookup(issued);
    }

    /* consumers: warpgroup c, warp w of it, rows 64 c + 16 w + g (+ 8) */
    const int c = warp >> 2, w = warp & 3, g = lane >> 2, t4 = lane & 3;
    int rpos[2], rtok[2], rhead[2];
    bool rok[2];
    int wmin = INT32_MAX;
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        rok[rr] = prefill_row(64 * c + 16 * w + g + 8 * rr, tok0, TPT, G, qlen, kvh, &rtok[rr], &rhead[rr]);
        rpos[rr] = positions[qs + rtok[rr]];
        wmin = min(wmin, rpos[rr]);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) wmin = min(wmin, __shfl_xor_sync(0xffffffffu, wmin, off));

    float o[64], sacc[64], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, alpha[2];
    uint32_t p[32];
#pragma unroll
    for (int i = 0; i < 64; i++) o[i] = 0.f;
    const uint32_t qa = sq + c * 64 * 128; /* this warpgroup's 64 rows in panel 0 */

    /* S = Q K^T of stage st into sacc (issued, not waited for) */
    auto issue_s = [&](int st) {
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            const uint32_t po = (kk / 4), ko = 32 * (kk % 4);
            wgmma_ss(sacc, desc_sw128(qa + po * Q_PANEL + ko, 16), desc_sw128(sk(st) + po * KV_PANEL + ko, 16),
                     kk > 0);
        }
    };
    /* O += P V of stage st (issued, not waited for) */
    auto issue_pv = [&](int st) {
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++)
            wgmma_rs(o, p[4 * kk], p[4 * kk + 1], p[4 * kk + 2], p[4 * kk + 3],
                     desc_sw128(sv(st) + kk * 16 * 128, KV_PANEL));
    };
    auto release = [&](int st) {
        if (lane == 0) mbar_arrive(empty(st));
    };

    /* PP: the two warpgroups take turns issuing their matrix products (named barriers 1: warpgroup
     * 0's turn, 2: warpgroup 1's; each issue point waits for its turn and, once issued, passes
     * it on), so that one's products run while the other computes its softmax. Each warpgroup
     * has ntiles + 1 issue points; warpgroup 1 passes once up front and not after its last. */
    auto turn_wait = [&]() {
        if (PP) asm volatile("bar.sync %0, 256;\n" ::"r"(1 + c) : "memory");
    };
    auto turn_pass = [&](bool last) {
        if (PP && !(last && c == 1)) asm volatile("bar.arrive %0, 256;\n" ::"r"(2 - c) : "memory");
    };
    if (PP && c == 1) asm volatile("bar.arrive 1, 256;\n" ::: "memory"); /* warpgroup 0 goes first */

    mbar_wait(bar_q, 0);
    mbar_wait(full_k(0), 0);
    turn_wait();
    wgmma_fence();
    issue_s(0);
    wgmma_commit();
    turn_pass(false);
    wgmma_wait<0>();
    fence_f(sacc);
    softmax_tile<16>(pfw_blocks(sacc), m, l, alpha, 0, BN - 1 > wmin, rpos, t4, sl2,
                     SoftmaxKeep<16>{pfw_blocks(sacc)});
    pfw_to_p(p, sacc);
    for (int j = 1; j < ntiles; j++) {
        const int st = j % STAGES, pst = (j - 1) % STAGES;
        if (warp == 0 && issued < ntiles) { /* tile j + STAGES - 2's stage: freed by tile j - 2's P V */
            produce(issued, next_id);
            next_id = lookup(++issued);
        }
        mbar_wait(full_k(st), (j / STAGES) & 1);
        mbar_wait(full_v(pst), ((j - 1) / STAGES) & 1);
        fence_u(p);
        fence_f(o);
        turn_wait();
        wgmma_fence();
        issue_s(st);
        wgmma_commit();
        issue_pv(pst);
        wgmma_commit();
        turn_pass(false);
        wgmma_wait<1>(); /* S_j landed; P_{j-1} V_{j-1} may still run */
        fence_f(sacc);
        const int k0 = j * BN;
        softmax_tile<16>(pfw_blocks(sacc), m, l, alpha, k0, k0 + BN - 1 > wmin, rpos, t4, sl2,
                         SoftmaxKeep<16>{pfw_blocks(sacc)});
        wgmma_wait<0>();
        fence_f(o);
        fence_u(p);
        release(pst);
#pragma unroll
        for (int i = 0; i < 16; i++) {
            o[4 * i] *= alpha[0]; o[4 * i + 1] *= alpha[0];
            o[4 * i + 2] *= alpha[1]; o[4 * i + 3] *= alpha[1];
        }
        pfw_to_p(p, sacc);
    }
    {
        const int pst = (ntiles - 1) % STAGES;
        mbar_wait(full_v(pst), ((ntiles - 1) / STAGES) & 1);
        fence_u(p);
        fence_f(o);
        turn_wait();
        wgmma_fence();
        issue_pv(pst);
        wgmma_commit();
        turn_pass(true);
        wgmma_wait<0>();
        fence_f(o);
        release(pst);
    }

#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        float lt = l[rr];
        lt += __shfl_xor_sync(0xffffffffu, lt, 1);
        lt += __shfl_xor_sync(0xffffffffu, lt, 2);
        if (!rok[rr]) continue;
        const float inv = 1.f / lt;
        bf16 *orow = out + ((int64_t)(qs + rtok[rr]) * Hq + rhead[rr]) * HD + 2 * t4;
#pragma unroll
        for (int j = 0; j < 16; j++)
            *(__nv_bfloat162 *)(orow + 8 * j) = __floats2bfloat162_rn(o[4 * j + 2 * rr] * inv, o[4 * j + 2 * rr + 1] * inv);
    }
#endif
}

/* Writes 1 where the code the driver picked for this device has sm_90a's features (wgmma,
 * TMA), else leaves 0: a build for plain sm_90 (PAGELLM_CUDA_GENCODE) runs the kernel above as
 * a trap, so the host must know before it chooses it. */
__global__ void pfw_arch_probe(int *ok) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    *ok = 1;
#else
    (void)ok;
#endif
}

} /* namespace */

/* ---------------- host ---------------- */

int cuda_prefill_attn_wgmma_probe(CudaCtx *c) {
    if (c->cc_major != 9) return 0;
    int *d = NULL, h = 0;
    if (cudaMalloc(&d, sizeof *d) != cudaSuccess) return 0;
    if (cudaMemset(d, 0, sizeof *d) == cudaSuccess) {
        pfw_arch_probe<<<1, 1>>>(d);
        if (cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost) != cudaSuccess) h = 0;
    }
    cudaFree(d);
    (void)cudaGetLastError(); /* a failed probe means "no", not a sticky error for the next op */
    return h;
}

/* The driver's encoder, looked up until found (threads of TP ranks may race here: each then
 * looks it up itself and stores the same pointer). */
static PFN_cuTensorMapEncodeTiled_v12000 pfw_encode_fn(void) {
    static PFN_cuTensorMapEncodeTiled_v12000 volatile fn;
    if (!fn) {
        PFN_cuTensorMapEncodeTiled_v12000 f = NULL;
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", (void **)&f, 12000, cudaEnableDefault, &q) ==
                cudaSuccess &&
            q == cudaDriverEntryPointSuccess)
            fn = f;
    }
    return fn;
}

/* A 3-D bf16 map [outer, mid, HD] (row strides mid_stride and outer_stride elements) read in
 * boxes of (64, box_mid, box_outer) with the 128-byte swizzle; zeros past the edges. */
static int pfw_map(CUtensorMap *tm, const void *p, uint64_t outer, uint64_t mid, uint64_t mid_stride,
                   uint64_t outer_stride, uint32_t box_mid, uint32_t box_outer) {
    PFN_cuTensorMapEncodeTiled_v12000 enc = pfw_encode_fn();
    if (!enc) return 0;
    cuuint64_t dims[3] = {HD, mid, outer}, strides[2] = {mid_stride * 2, outer_stride * 2};
    cuuint32_t box[3] = {PANEL, box_mid, box_outer}, estr[3] = {1, 1, 1};
    return enc(tm, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, (void *)p, dims, strides, box, estr,
               CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

int cuda_prefill_attn_wgmma(CudaCtx *c, bf16 *out, const bf16 *q, const void *kcache, const void *vcache,
                            int Hq, int Hkv, int hd, float sl2) {
    const int G = Hkv > 0 ? Hq / Hkv : 0, bs = c->block_size;
    /* the boxes: G heads x BM / G tokens of Q, whole cache blocks of at least 8 keys (a box of
     * bs rows of 128 bytes must start on a 1 KB swizzle atom) and at most 32 of them a tile */
    static volatile int told; /* one line on stderr the first time 7 falls back, saying why */
    const char *why = NULL;
    if (c->cc_major != 9) why = "not an sm_90 device";
    else if (!c->sm90a) why = "this build has no sm_90a code (PAGELLM_CUDA_GENCODE)";
    else if (c->kv_fp8) why = "fp8 KV cache";
    else if (hd != HD || G < 1 || Hq % Hkv != 0 || BM % G != 0) why = "head_dim not 128 or GQA group not dividing 128";
    else if (bs < 8 || bs % 8 != 0 || BN % bs != 0) why = "block size not 8, 16, 32, 64 or 128";
    else if ((((uintptr_t)q | (uintptr_t)kcache | (uintptr_t)vcache) & 15) != 0) why = "unaligned q or cache";
    CUtensorMap tq, tk, tv;
    /* the cache's slot count is not known here; the map's outer extent (64 Mi slots, beyond any
     * cache of one layer on one GPU) only bounds zero fill, and every box read is a real block of
     * the table (or the sequence's block 0) */
    const uint64_t slots = 1ull << 26;
    if (!why && (!pfw_map(&tq, q, (uint64_t)c->T, Hq, HD, (uint64_t)Hq * HD, G, BM / G) ||
                 !pfw_map(&tk, kcache, slots, Hkv, HD, (uint64_t)Hkv * HD, 1, bs) ||
                 !pfw_map(&tv, vcache, slots, Hkv, HD, (uint64_t)Hkv * HD, 1, bs)))
        why = "cuTensorMapEncodeTiled failed";
    if (why) {
        if (!told) fprintf(stderr, "cuda: prefill attention %d does not apply (%s): the default kernel runs\n", c->prefill_attn, why);
        told = 1;
        return 0;
    }
    static volatile int smem_set[64][2];
    const int pp = c->prefill_attn == 8;
    auto kern = pp ? prefill_attn_wgmma_kernel<true> : prefill_attn_wgmma_kernel<false>;
    if (c->device < 0 || c->device >= 64 || !smem_set[c->device][pp]) {
        CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES));
        if (c->device >= 0 && c->device < 64) smem_set[c->device][pp] = 1;
    }
    dim3 grid(Hkv, c->num_prefill, cdiv(c->max_query_len, BM / G));
    cuda_launch(c, kern, grid, dim3(THREADS), SMEM_BYTES, tq, tk, tv, out, c->dev.prefill_seqs, c->dev.query_start,
                c->dev.seq_lens, c->dev.positions, c->dev.block_tables, c->max_blocks_per_seq, bs, Hq, Hkv, sl2);
    CUDA_LAUNCH_CHECK(c);
    c->wgmma_prefill_launches++;
    return 1;
}
