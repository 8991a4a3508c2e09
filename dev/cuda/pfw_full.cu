/* pfw_full.cu: prefill attention variant 7 (prefill_attn_wgmma.cu) end to end, outside the
 * backend: its kernel on a paged cache with a shuffled block table (garbage past each table's
 * end), chunked prefills after cached context, decode rows beside them (which it must not
 * write), GQA groups 1-16, block sizes 8-128, flat and peaked softmax, against a
 * double-precision CPU reference, for variants 7 and 8 (ping-pong); each configuration is run `reps` times and any difference
 * between runs is reported as NONDETERMINISTIC (a race). Complements test_cuda_ops "cuda-pf7"
 * (which covers the backend's shapes) with the shapes no model of ours has.
 * Usage: pfw_full [reps=5] [big=0] (big adds a 4k prompt and a chunk at 12k context).
 * Build (written in session 15's review, not yet run):
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a --use_fast_math -Isrc dev/cuda/pfw_full.cu -o pfw_full */
#include "../../src/backend/cuda/prefill_attn_wgmma.cu"
#include <stdio.h>
#include <stdlib.h>
#include <vector>
#include <algorithm>
#include <random>
#include <string.h>

static float bfr(float x) { return __bfloat162float(__float2bfloat16(x)); }

struct Seq { int ctx, qlen; bool prefill; };

/* the kernel under test: variant 7 (no ping-pong) or 8 (ping-pong), set by main */
static void (*KERN)(CUtensorMap, CUtensorMap, CUtensorMap, bf16 *, const int32_t *, const int32_t *, const int32_t *,
                    const int32_t *, const int32_t *, int, int, int, int, float) = prefill_attn_wgmma_kernel<false>;

static int run_cfg(const char *name, int Hkv, int G, int bs, std::vector<Seq> seqs, float qscale, int reps,
                   unsigned seed) {
    const int Hq = Hkv * G, S = (int)seqs.size();
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> U(-1.f, 1.f);
    std::vector<int> qstart(S + 1, 0), seqlen(S), nblocks(S);
    int T = 0, mbps = 0, NB = 0, maxq = 0;
    std::vector<int> pseqs;
    for (int s = 0; s < S; s++) {
        qstart[s] = T;
        T += seqs[s].qlen;
        seqlen[s] = seqs[s].ctx + seqs[s].qlen;
        nblocks[s] = (seqlen[s] + bs - 1) / bs;
        mbps = std::max(mbps, nblocks[s] + 2);
        NB += nblocks[s];
        if (seqs[s].prefill) { pseqs.push_back(s); maxq = std::max(maxq, seqs[s].qlen); }
    }
    qstart[S] = T;
    NB += 5; /* spare blocks */
    std::vector<int> perm(NB);
    for (int i = 0; i < NB; i++) perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), rng);
    std::vector<int> bt((size_t)S * mbps, 0x3fffffff); /* garbage past each table's end */
    int nx = 0;
    for (int s = 0; s < S; s++)
        for (int b = 0; b < nblocks[s]; b++) bt[(size_t)s * mbps + b] = perm[nx++];
    std::vector<int> pos(T);
    for (int s = 0; s < S; s++)
        for (int i = 0; i < seqs[s].qlen; i++) pos[qstart[s] + i] = seqs[s].ctx + i;
    const size_t nq = (size_t)T * Hq * HD, nkv = (size_t)NB * bs * Hkv * HD;
    std::vector<float> hq(nq), hk(nkv), hv(nkv);
    std::vector<bf16> bq(nq), bk(nkv), bv(nkv);
    for (size_t i = 0; i < nq; i++) { hq[i] = bfr(qscale * U(rng)); bq[i] = __float2bfloat16(hq[i]); }
    for (size_t i = 0; i < nkv; i++) {
        hk[i] = bfr(U(rng)); bk[i] = __float2bfloat16(hk[i]);
        hv[i] = bfr(U(rng)); bv[i] = __float2bfloat16(hv[i]);
    }
    bf16 *dq, *dk, *dv, *dout;
    int *dps, *dqs, *dsl, *dpos, *dbt;
    CUDA_CHECK(cudaMalloc(&dq, nq * 2));
    CUDA_CHECK(cudaMalloc(&dk, nkv * 2));
    CUDA_CHECK(cudaMalloc(&dv, nkv * 2));
    CUDA_CHECK(cudaMalloc(&dout, nq * 2));
    CUDA_CHECK(cudaMalloc(&dps, pseqs.size() * 4 + 4));
    CUDA_CHECK(cudaMalloc(&dqs, (S + 1) * 4));
    CUDA_CHECK(cudaMalloc(&dsl, S * 4));
    CUDA_CHECK(cudaMalloc(&dpos, T * 4));
    CUDA_CHECK(cudaMalloc(&dbt, bt.size() * 4));
    CUDA_CHECK(cudaMemcpy(dq, bq.data(), nq * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dk, bk.data(), nkv * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dv, bv.data(), nkv * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dps, pseqs.data(), pseqs.size() * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dqs, qstart.data(), (S + 1) * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dsl, seqlen.data(), S * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dpos, pos.data(), T * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dbt, bt.data(), bt.size() * 4, cudaMemcpyHostToDevice));
    CUtensorMap tq, tk, tv;
    const uint64_t slots = 1ull << 26;
    if (!pfw_map(&tq, dq, (uint64_t)T, Hq, HD, (uint64_t)Hq * HD, G, BM / G) ||
        !pfw_map(&tk, dk, slots, Hkv, HD, (uint64_t)Hkv * HD, 1, bs) ||
        !pfw_map(&tv, dv, slots, Hkv, HD, (uint64_t)Hkv * HD, 1, bs)) {
        printf("%s: map encode failed\n", name);
        return 1;
    }
    CUDA_CHECK(cudaFuncSetAttribute(KERN, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES));
    const float sl2 = 1.4426950408889634f / sqrtf((float)HD);
    dim3 grid(Hkv, (unsigned)pseqs.size(), (maxq + BM / G - 1) / (BM / G));
    std::vector<bf16> first(nq), cur(nq);
    bool nondet = false;
    float ms = 0;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0); cudaEventCreate(&e1);
    for (int r = 0; r < reps; r++) {
        CUDA_CHECK(cudaMemset(dout, 0xFF, nq * 2)); /* bf16 NaN sentinel */
        cudaEventRecord(e0);
        KERN<<<grid, THREADS, SMEM_BYTES>>>(tq, tk, tv, dout, dps, dqs, dsl, dpos, dbt, mbps, bs,
                                                                 Hq, Hkv, sl2);
        cudaEventRecord(e1);
        cudaError_t e = cudaDeviceSynchronize();
        if (e == cudaSuccess) e = cudaGetLastError();
        if (e != cudaSuccess) { printf("%s: KERNEL ERROR %s\n", name, cudaGetErrorString(e)); exit(2); }
        float t; cudaEventElapsedTime(&t, e0, e1); ms = r ? std::min(ms, t) : t;
        CUDA_CHECK(cudaMemcpy(r ? cur.data() : first.data(), dout, nq * 2, cudaMemcpyDeviceToHost));
        if (r && memcmp(cur.data(), first.data(), nq * 2) != 0) nondet = true;
    }
    /* reference */
    double maxerr = 0, maxref = 0, sumerr = 0; long nerr = 0, bad_untouched = 0, nan_cnt = 0;
    std::vector<double> sc;
    for (int s = 0; s < S; s++) {
        for (int i = 0; i < seqs[s].qlen; i++) {
            const int t = qstart[s] + i;
            for (int h = 0; h < Hq; h++) {
                const bf16 *o = first.data() + ((size_t)t * Hq + h) * HD;
                if (!seqs[s].prefill) {
                    for (int d = 0; d < HD; d++) {
                        uint16_t raw; memcpy(&raw, o + d, 2);
                        if (raw != 0xFFFF) bad_untouched++;
                    }
                    continue;
                }
                const int kvh = h / G, P = pos[t];
                const float *qr = hq.data() + ((size_t)t * Hq + h) * HD;
                sc.assign(P + 1, 0);
                double mx = -1e300;
                for (int k = 0; k <= P; k++) {
                    const int slot = bt[(size_t)s * mbps + k / bs] * bs + k % bs;
                    const float *kr = hk.data() + ((size_t)slot * Hkv + kvh) * HD;
                    double a = 0;
                    for (int d = 0; d < HD; d++) a += (double)qr[d] * kr[d];
                    sc[k] = a / sqrt((double)HD);
                    mx = std::max(mx, sc[k]);
                }
                double l = 0;
                for (int k = 0; k <= P; k++) { sc[k] = exp(sc[k] - mx); l += sc[k]; }
                for (int d = 0; d < HD; d++) {
                    double acc = 0;
                    for (int k = 0; k <= P; k++) {
                        const int slot = bt[(size_t)s * mbps + k / bs] * bs + k % bs;
                        acc += sc[k] * hv[((size_t)slot * Hkv + kvh) * HD + d];
                    }
                    acc /= l;
                    const float got = __bfloat162float(o[d]);
                    if (got != got) { nan_cnt++; continue; }
                    const double err = fabs(got - acc);
                    maxerr = std::max(maxerr, err); maxref = std::max(maxref, fabs(acc));
                    sumerr += err; nerr++;
                }
            }
        }
    }
    const bool ok = nan_cnt == 0 && bad_untouched == 0 && !nondet && maxerr < 2e-2;
    printf("%-34s Hkv %d G %2d bs %3d T %5d: max err %.3g (max |ref| %.3g, mean err %.2g) nan/unwritten %ld "
           "decode rows touched %ld %s | %.3f ms  => %s\n",
           name, Hkv, G, bs, T, maxerr, maxref, nerr ? sumerr / nerr : 0.0, nan_cnt, bad_untouched,
           nondet ? "NONDETERMINISTIC" : "deterministic", ms, ok ? "ok" : "FAIL");
    cudaFree(dq); cudaFree(dk); cudaFree(dv); cudaFree(dout); cudaFree(dps); cudaFree(dqs); cudaFree(dsl);
    cudaFree(dpos); cudaFree(dbt);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    int fails = 0;
    const int reps = argc > 1 ? atoi(argv[1]) : 5;
    const bool big = argc > 2 && atoi(argv[2]);
    for (int pp = 0; pp < 2; pp++) {
        KERN = pp ? prefill_attn_wgmma_kernel<true> : prefill_attn_wgmma_kernel<false>;
        printf("-- variant %d (%s)\n", 7 + pp, pp ? "ping-pong" : "no ping-pong");
        /* small: ntiles 1..3 */
        fails += run_cfg("1 seq, 1 tile", 1, 1, 16, {{0, 100, true}}, 4.f, reps, 1);
        fails += run_cfg("1 seq, 2 tiles, G1", 2, 1, 16, {{0, 250, true}}, 4.f, reps, 2);
        fails += run_cfg("chunked ctx, G4 bs64", 2, 4, 64, {{700, 300, true}, {0, 5, false}, {37, 90, true}}, 4.f, reps, 3);
        fails += run_cfg("G8 bs8 (16 boxes/tile)", 2, 8, 8, {{0, 400, true}, {1000, 1, true}, {13, 77, true}}, 4.f, reps, 4);
        fails += run_cfg("G16 bs128", 1, 16, 128, {{300, 200, true}, {0, 1, false}, {5, 130, true}}, 4.f, reps, 5);
        fails += run_cfg("G2 bs32 many seqs", 4, 2, 32, {{0, 129, true}, {255, 1, true}, {0, 64, false}, {1, 512, true},
                                                          {2000, 17, true}}, 4.f, reps, 6);
        fails += run_cfg("G4 flat softmax", 2, 4, 16, {{0, 600, true}}, 0.5f, reps, 7);
        fails += run_cfg("G1 peaky softmax", 2, 1, 16, {{0, 600, true}}, 12.f, reps, 8);
        if (big) {
            fails += run_cfg("long prompt 4k G4 bs16", 2, 4, 16, {{0, 4096, true}}, 4.f, reps, 9);
            fails += run_cfg("chunk at 12k ctx G8 bs64", 1, 8, 64, {{12000, 512, true}, {0, 3000, true}}, 4.f, reps, 10);
        }
    }
    printf("pfw_full: %d config(s) failed\n", fails);
    return fails ? 1 : 0;
}
