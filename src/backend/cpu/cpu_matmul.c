/* cpu_matmul.c: out[rows, N] = x[rows, K] @ w[N, K]^T (+ bias), x and out float32, w in its own
 * dtype (f32, f16, bf16) read as it is. Threads split the output columns N (the weight rows):
 * at batch 1 this streams each weight byte exactly once over all cores, which is what decode is
 * bound by. Rows are processed in blocks so a block of x stays in cache while the thread walks
 * its weight rows. The kernels per ISA live in cpu_matmul_x86.c; the scalar one is here. */
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "util/err.h"

#define MATMUL_ROW_BLOCK 64 /* rows of x per block: 64 x K f32 stays in L2 */
#define MATMUL_N_ALIGN 16   /* thread ranges of N start on multiples of this */

void cpu_matmul_scalar(float *out, size_t ldo, const float *x, const uint16_t *xs, int rows,
                       int K, const void *w, DType wdt, int n0, int n1) {
    (void)xs;
    for (int n = n0; n < n1; n++) {
        size_t base = (size_t)n * (size_t)K;
        for (int m = 0; m < rows; m++) {
            const float *xr = x + (size_t)m * K;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            int k = 0;
            for (; k + 4 <= K; k += 4) {
                s0 += xr[k] * cpu_load_elem(w, wdt, base + k);
                s1 += xr[k + 1] * cpu_load_elem(w, wdt, base + k + 1);
                s2 += xr[k + 2] * cpu_load_elem(w, wdt, base + k + 2);
                s3 += xr[k + 3] * cpu_load_elem(w, wdt, base + k + 3);
            }
            for (; k < K; k++) s0 += xr[k] * cpu_load_elem(w, wdt, base + k);
            out[(size_t)m * ldo + n] = (s0 + s1) + (s2 + s3);
        }
    }
}

static CpuMatmulKernel kernel_for(CpuIsa isa, DType wdt) {
#if defined(__x86_64__)
    switch (isa) {
    case CPU_ISA_AVX512_BF16: return wdt == DT_BF16 ? cpu_matmul_avx512bf16 : cpu_matmul_avx512;
    case CPU_ISA_AVX512: return cpu_matmul_avx512;
    case CPU_ISA_AVX2: return cpu_matmul_avx2;
    default: break;
    }
#endif
    (void)isa; (void)wdt;
    return cpu_matmul_scalar;
}

typedef struct {
    CpuMatmulKernel kernel;
    float *out;
    const float *x;
    const uint16_t *xs; /* [rows, 3, K] or NULL */
    const Tensor *w, *bias;
    int rows, K, N;
} MatmulJob;

static void matmul_task(void *arg, int ith, int nth) {
    const MatmulJob *j = arg;
    /* Split N in nth ranges on MATMUL_N_ALIGN boundaries. */
    int units = (j->N + MATMUL_N_ALIGN - 1) / MATMUL_N_ALIGN;
    int u0 = (int)((long long)units * ith / nth), u1 = (int)((long long)units * (ith + 1) / nth);
    int n0 = u0 * MATMUL_N_ALIGN, n1 = u1 * MATMUL_N_ALIGN;
    if (n1 > j->N) n1 = j->N;
    if (n0 >= n1) return;
    for (int m0 = 0; m0 < j->rows; m0 += MATMUL_ROW_BLOCK) {
        int mb = j->rows - m0 < MATMUL_ROW_BLOCK ? j->rows - m0 : MATMUL_ROW_BLOCK;
        j->kernel(j->out + (size_t)m0 * j->N, (size_t)j->N, j->x + (size_t)m0 * j->K,
                  j->xs ? j->xs + (size_t)m0 * 3 * j->K : NULL, mb, j->K, j->w->data, j->w->dtype,
                  n0, n1);
    }
    if (j->bias && j->bias->data)
        for (int m = 0; m < j->rows; m++)
            for (int n = n0; n < n1; n++)
                j->out[(size_t)m * j->N + n] += cpu_load_elem(j->bias->data, j->bias->dtype, (size_t)n);
}

/* x split in three bf16 planes per row (hi + mid + lo == x to ~2^-24 relative), so that the
 * AVX-512-BF16 dot product instruction computes in effect a float32 dot product. */
typedef struct { const float *x; uint16_t *xs; int rows, K; } SplitJob;

static void split_task(void *arg, int ith, int nth) {
    const SplitJob *j = arg;
    int m0 = (int)((long long)j->rows * ith / nth), m1 = (int)((long long)j->rows * (ith + 1) / nth);
#if defined(__x86_64__)
    cpu_split_x_avx512bf16(j->x, j->xs, m0, m1, j->K); /* only used where AVX-512-BF16 runs */
#else
    (void)m0; (void)m1;
#endif
}

static void matmul_run(CpuCtx *c, float *out, const float *x, const Tensor *w, const Tensor *bias,
                       int rows, int N, int K) {
    if (rows <= 0 || N <= 0) return;
    MatmulJob j = {kernel_for(c->isa, w->dtype), out, x, NULL, w, bias, rows, K, N};
    if (j.kernel == NULL) return;
#if defined(__x86_64__)
    if (j.kernel == cpu_matmul_avx512bf16) {
        size_t bytes = (size_t)rows * 3 * (size_t)K * sizeof(uint16_t);
        if (cpu_scratch_reserve((void **)&c->xsplit, &c->xsplit_cap, bytes) != 0) {
            j.kernel = cpu_matmul_avx512; /* no memory for the split: the f32 kernel needs none */
        } else {
            SplitJob sj = {x, c->xsplit, rows, K};
            pool_run_n(c->pool, split_task, &sj, rows < 8 ? 1 : c->nthreads);
            j.xs = c->xsplit;
        }
    }
#endif
    /* Work in multiply-adds; below ~32k, waking the workers costs more than they save. */
    double work = (double)rows * N * K;
    int units = (N + MATMUL_N_ALIGN - 1) / MATMUL_N_ALIGN;
    int nth = work < 32768 ? 1 : (units < c->nthreads ? units : c->nthreads);
    pool_run_n(c->pool, matmul_task, &j, nth);
}

void cpu_matmul(Backend *b, void *out, const void *x, const Tensor *w, const Tensor *bias, int rows) {
    CHECK(w->ndim == 2);
    matmul_run(cpu_ctx(b), out, x, w, bias, rows, (int)w->shape[0], (int)w->shape[1]);
}

void cpu_logits(Backend *b, float *logits_host, const void *x, const Tensor *lm_head, int R, int D, int V) {
    CHECK(lm_head->ndim == 2 && lm_head->shape[0] == V && lm_head->shape[1] == D);
    CpuCtx *c = cpu_ctx(b);
    if (!logits_host) {
        /* kept for the sample op (cpu_sample.c) */
        CHECK(cpu_scratch_reserve((void **)&c->logits_keep, &c->logits_keep_cap, (size_t)R * V * sizeof(float)) == 0);
        logits_host = c->logits_keep;
    }
    c->logits_R = R;
    c->logits_V = V;
    matmul_run(c, logits_host, x, lm_head, NULL, R, V, D);
}
