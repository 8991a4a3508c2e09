/* cutlass_gemm.cu: can a CUTLASS (PyPI nvidia-cutlass headers) Hopper GEMM with a stream-K or
 * split-K schedule beat cuBLASLt at the Qwen3-8B decode matmuls of 256 (and 128) rows?
 *
 * Why: at 256 rows the step's GEMMs take ~7.1 ms against ~5.3 ms of math at 780 TFLOP/s
 * (run16 ncu: q/o ~20 us and the fused qkv 34 us against floors of 12 and 18 us; down 52.6 us
 * against 37). The small ones lose to wave quantization (a 128-row tile grid of 64-96 tiles on
 * 132 SMs) and to L2 traffic of small tiles; a stream-K schedule spreads the K loop of every
 * tile over all SMs, and a 2-CTA cluster multicasts the shared operand. cuBLASLt's heuristic
 * offers neither at these shapes (run12-algos), and our own wgmma GEMM (gemm_wgmma.cu, session
 * 9) ran 1.2-2.8x slower than cuBLASLt.
 *
 * One configuration per binary (compile time): -DCG_TM / CG_TN (CTA tile, M = weight rows, N =
 * tokens), -DCG_CM / CG_CN (cluster), -DCG_PINGPONG=1 (ping-pong kernel instead of cooperative).
 * The problem is the backend's column-major view: D[N_w, rows] = W[N_w, K] x X[rows, K]^T, both
 * operands K-major, D column-major (= out[rows, N_w] row-major, what the backend writes).
 * Per shape: cuBLASLt's best of its heuristic's first 8 (as gemm.cu times them), then this
 * CUTLASS kernel with each decomposition (heuristic, data-parallel, stream-K, split-K 2 / 3 / 4);
 * 20 launches rotating over weight copies that exceed L2, captured into a CUDA graph (no host
 * launch overhead: session 12's first, uncaptured run was host-bound at ~40 us), median of 5; each CUTLASS
 * output against cuBLASLt's (max |diff| / max |ref|).
 *
 * Result (run20, H100): no configuration beats cuBLASLt at any of these shapes (best 0.90x, down
 * with split-K 2; qkv and o 0.66-0.68x). Stream-K's barrier flags are cleared by initialize(),
 * not by the kernel (the first, uncaptured try ran bare run()s on one workspace and hung), so
 * every timed launch is initialize + run, as a backend would have to do.
 *
 * Build and run on the GPU machine: `DEV_TOOLS=cutlass_gemm scripts/gpu_check.sh --dev ...`
 * (three configurations, the wheel from `scripts/gpu_env.sh --fetch`), or by hand:
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr \
 *     -I$CUTLASS/include -I$CUTLASS/tools/util/include -DCG_TM=128 -DCG_TN=256 -DCG_CM=2 -DCG_CN=1 \
 *     dev/cuda/cutlass_gemm.cu -lcublasLt -o /tmp/cg && /tmp/cg [rows N K]
 * where CUTLASS is cutlass_library/source inside the nvidia-cutlass wheel. */
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/gemm/kernel/tile_scheduler.hpp"
#include "cutlass/util/packed_stride.hpp"

#include "dev_timing.cuh"

#ifndef CG_TM
#define CG_TM 128
#endif
#ifndef CG_TN
#define CG_TN 256
#endif
#ifndef CG_CM
#define CG_CM 2
#endif
#ifndef CG_CN
#define CG_CN 1
#endif
#ifndef CG_PINGPONG
#define CG_PINGPONG 0
#endif

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); exit(1); } } while (0)
#define LK(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) { \
    fprintf(stderr, "%s:%d: cublasLt status %d\n", __FILE__, __LINE__, (int)s_); exit(1); } } while (0)

using namespace cute;

/* ---------------------------------------------------------------- the CUTLASS kernel */
using ElemIn = cutlass::bfloat16_t;
using ElemOut = cutlass::bfloat16_t;
using ElemAcc = float;
using LayoutA = cutlass::layout::RowMajor;    /* W [N_w, K]: K-major */
using LayoutB = cutlass::layout::ColumnMajor; /* X^T [K, rows]: K-major */
using LayoutD = cutlass::layout::ColumnMajor; /* D [N_w, rows] column-major */
constexpr int kAlign = 8;                     /* 16 bytes of bf16 */
using TileShape = Shape<Int<CG_TM>, Int<CG_TN>, _64>;
using ClusterShape = Shape<Int<CG_CM>, Int<CG_CN>, _1>;
#if CG_PINGPONG
using MainPolicy = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
using EpiPolicy = cutlass::epilogue::TmaWarpSpecialized;
using Scheduler = cutlass::gemm::PersistentScheduler;
#else
using MainPolicy = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
using EpiPolicy = cutlass::epilogue::TmaWarpSpecializedCooperative;
using Scheduler = cutlass::gemm::StreamKScheduler;
#endif

using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
    cutlass::epilogue::collective::EpilogueTileAuto, ElemAcc, ElemAcc, void, LayoutD, kAlign, ElemOut, LayoutD,
    kAlign, EpiPolicy>::CollectiveOp;

using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, ElemIn, LayoutA, kAlign, ElemIn, LayoutB, kAlign, ElemAcc,
    TileShape, ClusterShape,
    cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
    MainPolicy>::CollectiveOp;

using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop, Epilogue, Scheduler>;
using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

/* ---------------------------------------------------------------- problems */
typedef struct Shape_ { int rows, N, K; const char *name; } ShapeT;

typedef struct Problem {
    ShapeT s;
    int ncopies;
    __nv_bfloat16 *w, *x, *out, *ref; /* w: ncopies x [N, K]; x [rows, K]; out/ref [rows, N] */
    void *ws;
    size_t ws_bytes;
} Problem;

__global__ void fill_kernel(__nv_bfloat16 *p, size_t n, uint32_t seed, float scale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
        p[i] = __float2bfloat16(((h & 0xffff) / 65535.0f - 0.5f) * scale);
    }
}

static const size_t LT_WS = 64u << 20;

/* us per launch of the 20 launches that enqueue(stream) issues, captured once into a CUDA graph
 * and replayed (median of 5 replays after one untimed): the kernels back to back without host
 * launch overhead, as the backend's decode graphs run them. 1e30 if the capture fails. */
template <typename F> static float graph_us(F enqueue) {
    cudaStream_t cs;
    CK(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking));
    cudaGraph_t g;
    CK(cudaStreamBeginCapture(cs, cudaStreamCaptureModeRelaxed));
    enqueue(cs);
    if (cudaStreamEndCapture(cs, &g) != cudaSuccess) { cudaGetLastError(); cudaStreamDestroy(cs); return 1e30f; }
    cudaGraphExec_t ge;
    if (cudaGraphInstantiate(&ge, g, 0) != cudaSuccess) {
        cudaGetLastError(); cudaGraphDestroy(g); cudaStreamDestroy(cs); return 1e30f;
    }
    float ms = dev_median_ms([&] { CK(cudaGraphLaunch(ge, 0)); }, 1, 5);
    cudaGraphExecDestroy(ge); cudaGraphDestroy(g); cudaStreamDestroy(cs);
    return ms * 1e3f / 20;
}

/* cuBLASLt's best of the heuristic's first 8 at this shape (gemm.cu's choice), us per launch;
 * its output lands in p->ref. */
static float cublaslt_best(cublasLtHandle_t lt, Problem *p) {
    const ShapeT s = p->s;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    LK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, s.K, s.N, s.K));
    LK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, s.K, s.rows, s.K));
    LK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, s.N, s.rows, s.N));
    cublasLtMatmulPreference_t pref;
    LK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t wsb = LT_WS;
    LK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb));
    cublasLtMatmulHeuristicResult_t res[8];
    int nres = 0;
    LK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, lc, pref, 8, res, &nres));
    cublasLtMatmulPreferenceDestroy(pref);
    void *ws;
    CK(cudaMalloc(&ws, LT_WS));
    const float one = 1.0f, zero = 0.0f;
    float best = 1e30f;
    int bi = -1;
    for (int i = 0; i < nres; i++) {
        int copy = 0;
        cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
        float us = graph_us([&](cudaStream_t cs) {
            for (int r = 0; r < 20; r++) {
                const __nv_bfloat16 *w = p->w + (size_t)copy * s.N * s.K;
                cublasStatus_t e = cublasLtMatmul(lt, desc, &one, w, la, p->x, lb, &zero, p->out, lc, p->out, lc,
                                                  &res[i].algo, ws, LT_WS, cs);
                if (e != CUBLAS_STATUS_SUCCESS) st = e;
                copy = (copy + 1) % p->ncopies;
            }
        });
        if (st == CUBLAS_STATUS_SUCCESS && us < best) { best = us; bi = i; }
    }
    if (bi >= 0)
        LK(cublasLtMatmul(lt, desc, &one, p->w, la, p->x, lb, &zero, p->ref, lc, p->ref, lc, &res[bi].algo, ws, LT_WS, 0));
    CK(cudaDeviceSynchronize());
    cudaFree(ws);
    cublasLtMatrixLayoutDestroy(la); cublasLtMatrixLayoutDestroy(lb); cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(desc);
    return best;
}

using Decomp = cutlass::gemm::kernel::detail::PersistentTileSchedulerSm90StreamKParams::DecompositionMode;

static typename Gemm::Arguments make_args(const Problem *p, const __nv_bfloat16 *w, __nv_bfloat16 *out, int sm_count,
                                          int mode, int splits) {
    using StrideA = typename Gemm::GemmKernel::StrideA;
    using StrideB = typename Gemm::GemmKernel::StrideB;
    using StrideC = typename Gemm::GemmKernel::StrideC;
    using StrideD = typename Gemm::GemmKernel::StrideD;
    const int M = p->s.N, N = p->s.rows, K = p->s.K;
    cutlass::KernelHardwareInfo hw;
    hw.device_id = 0;
    hw.sm_count = sm_count;
    typename Gemm::Arguments args{
        cutlass::gemm::GemmUniversalMode::kGemm,
        {M, N, K, 1},
        {(const ElemIn *)w, cutlass::make_cute_packed_stride(StrideA{}, make_shape(M, K, 1)), (const ElemIn *)p->x,
         cutlass::make_cute_packed_stride(StrideB{}, make_shape(N, K, 1))},
        {{1.0f, 0.0f}, nullptr, cutlass::make_cute_packed_stride(StrideC{}, make_shape(M, N, 1)), (ElemOut *)out,
         cutlass::make_cute_packed_stride(StrideD{}, make_shape(M, N, 1))},
        hw};
#if !CG_PINGPONG
    args.scheduler.splits = splits;
    args.scheduler.decomposition_mode = mode == 0 ? Decomp::Heuristic
                                        : mode == 1 ? Decomp::DataParallel
                                        : mode == 2 ? Decomp::StreamK
                                                    : Decomp::SplitK;
#else
    (void)mode; (void)splits;
#endif
    return args;
}

static float max_rel_diff(const Problem *p) {
    size_t n = (size_t)p->s.rows * p->s.N;
    __nv_bfloat16 *h0 = (__nv_bfloat16 *)malloc(n * 2), *h1 = (__nv_bfloat16 *)malloc(n * 2);
    CK(cudaMemcpy(h0, p->ref, n * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(h1, p->out, n * 2, cudaMemcpyDeviceToHost));
    float md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        float a = __bfloat162float(h0[i]), b = __bfloat162float(h1[i]);
        float d = fabsf(a - b);
        if (!(d <= md)) md = d != d ? INFINITY : d;
        if (fabsf(a) > mr) mr = fabsf(a);
    }
    free(h0); free(h1);
    return md / (mr > 0 ? mr : 1);
}

/* This binary's kernel with one decomposition: us per launch (1e30 if it cannot run), and its
 * output against cuBLASLt's in *diff. */
static float time_cutlass(Problem *p, int sm_count, int mode, int splits, float *diff) {
    Gemm gemm;
    typename Gemm::Arguments args = make_args(p, p->w, p->out, sm_count, mode, splits);
    if (gemm.can_implement(args) != cutlass::Status::kSuccess) return 1e30f;
    size_t need = Gemm::get_workspace_size(args);
    if (need > p->ws_bytes) { fprintf(stderr, "cutlass_gemm: workspace %zu > %zu\n", need, p->ws_bytes); return 1e30f; }
    /* correctness on copy 0 first, with a NaN-poisoned output */
    CK(cudaMemset(p->out, 0xff, (size_t)p->s.rows * p->s.N * 2));
    if (gemm.initialize(args, p->ws) != cutlass::Status::kSuccess || gemm.run() != cutlass::Status::kSuccess)
        return 1e30f;
    CK(cudaDeviceSynchronize());
    *diff = max_rel_diff(p);
    /* per launch: initialize (which clears the stream-K barrier flags; session 12's first try ran
     * bare run()s on one workspace and hung) then
     * the kernel, on arguments for the launch's weight copy, as the backend would do per layer */
    int copy = 0;
    bool ok = true;
    float us = graph_us([&](cudaStream_t cs) {
        for (int r = 0; r < 20; r++) {
            typename Gemm::Arguments a = make_args(p, p->w + (size_t)copy * p->s.N * p->s.K, p->out, sm_count, mode,
                                                   splits);
            ok = ok && gemm.run(a, p->ws, cs) == cutlass::Status::kSuccess;
            copy = (copy + 1) % p->ncopies;
        }
    });
    return ok ? us : 1e30f;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const int sms = prop.multiProcessorCount;
    cublasLtHandle_t lt;
    LK(cublasLtCreate(&lt));
    ShapeT shapes[] = {
        {256, 6144, 4096, "qkv"}, {256, 4096, 4096, "o"},  {256, 24576, 4096, "gate+up"}, {256, 4096, 12288, "down"},
        {128, 6144, 4096, "qkv"}, {128, 4096, 4096, "o"},  {128, 24576, 4096, "gate+up"}, {128, 4096, 12288, "down"},
    };
    int nshapes = sizeof shapes / sizeof shapes[0];
    if (argc >= 4) { /* one shape from the command line: rows N K */
        shapes[0] = ShapeT{atoi(argv[1]), atoi(argv[2]), atoi(argv[3]), "arg"};
        nshapes = 1;
    }
    const char *cfg = CG_PINGPONG ? "pingpong persistent" : "cooperative stream-K";
    printf("cutlass_gemm: tile %dx%d cluster %dx%d %s, %d SMs\n", CG_TM, CG_TN, CG_CM, CG_CN, cfg, sms);
    for (int si = 0; si < nshapes; si++) {
        Problem p;
        memset(&p, 0, sizeof p);
        p.s = shapes[si];
        size_t wbytes = (size_t)p.s.N * p.s.K * 2;
        p.ncopies = (int)((size_t)(256u << 20) / wbytes) + 1;
        if (p.ncopies > 32) p.ncopies = 32;
        size_t nw = (size_t)p.ncopies * p.s.N * p.s.K;
        CK(cudaMalloc(&p.w, nw * 2));
        CK(cudaMalloc(&p.x, (size_t)p.s.rows * p.s.K * 2));
        CK(cudaMalloc(&p.out, (size_t)p.s.rows * p.s.N * 2));
        CK(cudaMalloc(&p.ref, (size_t)p.s.rows * p.s.N * 2));
        p.ws_bytes = 256u << 20;
        CK(cudaMalloc(&p.ws, p.ws_bytes));
        fill_kernel<<<1024, 256>>>(p.w, nw, 17u, 0.05f);
        fill_kernel<<<1024, 256>>>(p.x, (size_t)p.s.rows * p.s.K, 29u, 2.0f);
        CK(cudaDeviceSynchronize());
        float lt_us = cublaslt_best(lt, &p);
        double flops = 2.0 * p.s.rows * (double)p.s.N * p.s.K;
        printf("cutlass_gemm %-8s rows %3d N %6d K %6d: cuBLASLt %7.2f us (%5.0f TFLOP/s)\n", p.s.name, p.s.rows, p.s.N,
               p.s.K, lt_us, flops / lt_us * 1e-6);
        const struct { int mode, splits; const char *name; } runs[] = {
            {0, 1, "heuristic"}, {1, 1, "data-parallel"}, {2, 1, "stream-K"}, {3, 2, "split-K 2"},
            {3, 3, "split-K 3"}, {3, 4, "split-K 4"},
        };
        for (int r = 0; r < (CG_PINGPONG ? 1 : 6); r++) {
            float diff = -1;
            float us = time_cutlass(&p, sms, runs[r].mode, runs[r].splits, &diff);
            if (us >= 1e29f) { printf("    %-14s cannot run\n", runs[r].name); continue; }
            printf("    %-14s %7.2f us (%5.0f TFLOP/s) = %.3fx cuBLASLt, max diff %.2e%s\n", runs[r].name, us,
                   flops / us * 1e-6, lt_us / us, diff, diff > 2e-2 || diff != diff ? "  WRONG" : "");
        }
        cudaFree(p.w); cudaFree(p.x); cudaFree(p.out); cudaFree(p.ref); cudaFree(p.ws);
    }
    cublasLtDestroy(lt);
    return 0;
}
