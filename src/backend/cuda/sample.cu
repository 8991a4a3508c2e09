/* sample.cu: the device sampler (backend op `sample`), one thread block per logits row.
 *
 * Semantics: sample/sample_batch.h (the host sampler in sample/sampler.c is the reference the
 * tests compare with). Only token ids and the requested logprobs cross to the host: at 256
 * rows of Qwen3's 151,936-token vocabulary that is ~50 KB instead of 155 MB of float32 logits.
 *
 * Per row:
 *   1. raw logprob statistics (max, log-sum-exp) when the row wants logprobs;
 *   2. the processed row (mask, temperature, then the sparse edits) written to a work buffer,
 *      unless the row is greedy with nothing to apply or plain categorical (then the raw row
 *      is read directly);
 *   3. greedy: block argmax. Plain categorical (temperature only): one online-softmax pass over
 *      the raw row gives each warp's mass, then the picked warp's segment is walked
 *      (sample_plain). Otherwise random: m = max;
 *      top-k / top-p first try the fast path: the smallest "closed prefix" {v >= m - d} (d from
 *      a fixed ladder) that holds the whole kept set and at most CAND_CAP tokens is compacted
 *      into shared memory, sorted, cut exactly and drawn from. Only flat distributions (more
 *      than CAND_CAP tokens near the top) take the general path: thresholds by bisection over
 *      the order-preserving integer keys of the floats, ties resolved in id order;
 *   4. logprobs of the sampled token (rank = 1 + tokens with a larger raw logit) and the top n.
 * Every pass walks the row coalesced (thread t reads t, t + 1024, ...); the id-order draw of
 * the general path gives each warp a contiguous segment of ids. */
#include <math.h>
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "sample/sample_batch.h"
#include "util/err.h"
#include "util/timeutil.h"
}

#define SB_THREADS 1024
#define SB_WARPS (SB_THREADS / 32)
#define CAND_CAP 1024
#define NUM_DELTAS 10

/* The ladder of prefix widths (in scaled-logit units below the max) the fast path tries. */
__constant__ float k_deltas[NUM_DELTAS] = {0.25f, 0.5f, 1.0f, 2.0f, 4.0f, 8.0f, 16.0f, 32.0f, 64.0f, INFINITY};

typedef struct SampleOut {
    int32_t token;
    float logprob;
    int32_t rank;
    int32_t num_top;
    int32_t top_ids[PG_MAX_TOP_LOGPROBS];
    float top_lp[PG_MAX_TOP_LOGPROBS];
} SampleOut;

typedef struct Cand { float v; int32_t id; } Cand;

struct SampleShared {
    Cand cand[CAND_CAP];
    float pref[CAND_CAP];       /* inclusive prefix masses of cand */
    float redf[SB_WARPS][NUM_DELTAS * 2 + 1];
    int redi[SB_WARPS];
    float redw[SB_WARPS];
    float wmass[SB_WARPS];
    int wties[SB_WARPS];
    float bf;
    int bi, ncand;
};

/* float -> unsigned key with the same order (-inf smallest among non-NaN). */
__device__ __forceinline__ uint32_t fkey(float v) {
    uint32_t u = __float_as_uint(v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float keyf(uint32_t k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}
__device__ __forceinline__ bool before(Cand a, Cand b) { return a.v > b.v || (a.v == b.v && a.id < b.id); }

/* --- block reductions (all threads call; the result is returned to every thread) --- */
struct MaxOp { __device__ float operator()(float a, float b) const { return fmaxf(a, b); } };
struct SumOp { template <typename T> __device__ T operator()(T a, T b) const { return a + b; } };

/* slots: SB_WARPS shared words for the warps' partials; out: one shared word for the result. */
template <typename T, typename Op>
__device__ T block_reduce(T *slots, T *out, T v, Op op) {
    for (int o = 16; o; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    __syncthreads();
    if (l == 0) slots[w] = v;
    __syncthreads();
    if (w == 0) {
        v = slots[l];
        for (int o = 16; o; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
        if (l == 0) *out = v;
    }
    __syncthreads();
    return *out;
}
__device__ float block_max(SampleShared *sh, float v) { return block_reduce(sh->redw, &sh->bf, v, MaxOp()); }
__device__ float block_sum(SampleShared *sh, float v) { return block_reduce(sh->redw, &sh->bf, v, SumOp()); }
__device__ int block_sum_i(SampleShared *sh, int v) { return block_reduce(sh->redi, &sh->bi, v, SumOp()); }

/* The largest value, lowest index on ties; -1 if every value is -inf. */
__device__ int block_argmax(SampleShared *sh, const float *x, int V) {
    float best = -INFINITY;
    int bi = INT_MAX;
    for (int i = threadIdx.x; i < V; i += SB_THREADS) {
        float v = x[i];
        if (v > best) { best = v; bi = i; }   /* ascending i: first max of this thread */
    }
    for (int o = 16; o; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, best, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
    }
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    __syncthreads();
    if (l == 0) { sh->redf[w][0] = best; sh->redi[w] = bi; }
    __syncthreads();
    if (w == 0) {
        best = sh->redf[l][0];
        bi = sh->redi[l];
        for (int o = 16; o; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, best, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
        }
        if (l == 0) sh->bi = best == -INFINITY ? -1 : bi;
    }
    __syncthreads();
    return sh->bi;
}

/* Sorts cand[0..n) (n <= CAND_CAP) in `before` order, or by id ascending (by_id). */
__device__ void block_sort(SampleShared *sh, int n, bool by_id) {
    int N = 1;
    while (N < n) N <<= 1;
    for (int i = n + threadIdx.x; i < N; i += SB_THREADS) sh->cand[i] = Cand{-INFINITY, INT_MAX};
    __syncthreads();
    for (int size = 2; size <= N; size <<= 1)
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = threadIdx.x; i < N; i += SB_THREADS) {
                int j = i ^ stride;
                if (j > i) {
                    Cand a = sh->cand[i], b = sh->cand[j];
                    bool b_first = by_id ? b.id < a.id : before(b, a);
                    bool asc = (i & size) == 0;
                    if (asc == b_first) { sh->cand[i] = b; sh->cand[j] = a; }
                }
            }
            __syncthreads();
        }
}

/* Inclusive scan of w over threads 0..SB_THREADS-1 (one value each); returns this thread's
 * prefix; *total gets the sum. */
__device__ float block_scan(SampleShared *sh, float w, float *total) {
    int l = threadIdx.x & 31, wi = threadIdx.x >> 5;
    float x = w;
    for (int o = 1; o < 32; o <<= 1) {
        float y = __shfl_up_sync(0xffffffffu, x, o);
        if (l >= o) x += y;
    }
    __syncthreads();
    if (l == 31) sh->wmass[wi] = x;
    __syncthreads();
    if (wi == 0) {
        float s = sh->wmass[l];
        for (int o = 1; o < 32; o <<= 1) {
            float y = __shfl_up_sync(0xffffffffu, s, o);
            if (l >= o) s += y;
        }
        sh->wmass[l] = s;   /* inclusive over warps */
    }
    __syncthreads();
    float before_w = wi ? sh->wmass[wi - 1] : 0.0f;
    *total = sh->wmass[SB_WARPS - 1];
    __syncthreads();
    return x + before_w;
}

/* Is x (key k) included: finite and at least the min_p cut. */
__device__ __forceinline__ bool incl(float v, float cut) { return v != -INFINITY && v >= cut; }

/* Count / mass (exp(v - m)) of included values with key >= K. */
__device__ void count_mass_ge(SampleShared *sh, const float *x, int V, float cut, float m, uint32_t K,
                              int *cnt, float *mass) {
    int c = 0;
    float s = 0.0f;
    for (int i = threadIdx.x; i < V; i += SB_THREADS) {
        float v = x[i];
        if (incl(v, cut) && fkey(v) >= K) { c++; s += __expf(v - m); }
    }
    *cnt = block_sum_i(sh, c);
    *mass = block_sum(sh, s);
}

/* The ids each warp owns in draw_id_order and plain_masses: a contiguous segment, 32-aligned. */
__device__ __forceinline__ int warp_segment(int V) { return ((V + SB_WARPS - 1) / SB_WARPS + 31) & ~31; }

/* Draws in ascending id order among the kept values of x * it: included and (no threshold, or
 * key > T, or key == T among the first c such ties in id order). target = u * kept mass. Each
 * warp owns a contiguous segment of ids. masses_ready: plain_masses already left each warp's
 * mass in sh->wmass (and no ties), so the first pass is skipped. it is 1 for the work buffer
 * (exact) and the row's inverse temperature when x is the raw row. */
__device__ int draw_id_order(SampleShared *sh, const float *x, int V, float it, float cut, float m,
                             bool has_t, uint32_t T, int c, float u, bool masses_ready) {
    const int seg = warp_segment(V);
    const int wi = threadIdx.x >> 5, l = threadIdx.x & 31;
    const int lo = wi * seg, hi = min(V, lo + seg);
    if (!masses_ready) {
        float ms = 0.0f;
        int ties = 0;
        for (int i = lo + l; i < hi; i += 32) {
            float v = x[i] * it;
            if (!incl(v, cut)) continue;
            uint32_t k = fkey(v);
            if (!has_t || k > T) ms += __expf(v - m);
            else if (k == T) ties++;
        }
        for (int o = 16; o; o >>= 1) {
            ms += __shfl_xor_sync(0xffffffffu, ms, o);
            ties += __shfl_xor_sync(0xffffffffu, ties, o);
        }
        __syncthreads();
        if (l == 0) { sh->wmass[wi] = ms; sh->wties[wi] = ties; }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float wt = has_t ? __expf(keyf(T) - m) : 0.0f;
        int tie_pre = 0;
        float pre = 0.0f;
        float pres[SB_WARPS];
        int tpre[SB_WARPS];
        for (int w = 0; w < SB_WARPS; w++) {
            int kt = has_t ? max(0, min(sh->wties[w], c - tie_pre)) : 0;
            tpre[w] = tie_pre;
            tie_pre += sh->wties[w];
            float mw = sh->wmass[w] + kt * wt;
            pres[w] = pre;
            sh->wmass[w] = mw;
            pre += mw;
        }
        float target = u * pre;
        int pick = -1;
        for (int w = 0; w < SB_WARPS; w++)
            if (sh->wmass[w] > 0.0f && (pick < 0 || pres[w] <= target)) pick = w;
        sh->bi = pick;
        sh->bf = pick >= 0 ? target - pres[pick] : 0.0f;
        sh->redi[0] = pick >= 0 ? tpre[pick] : 0;
    }
    __syncthreads();
    const int pick = sh->bi;
    const float rel = sh->bf;
    const int tie_base = sh->redi[0];
    __syncthreads();
    if (pick < 0) return -1;
    int tok = -1;
    if (wi == pick) {
        float run = 0.0f;
        int trun = tie_base, last = -1;
        for (int base = lo; base < hi; base += 32) {
            int i = base + l;
            float v = i < hi ? x[i] * it : -INFINITY;
            bool in = i < hi && incl(v, cut);
            uint32_t k = in ? fkey(v) : 0u;
            bool is_tie = in && has_t && k == T;
            unsigned tmask = __ballot_sync(0xffffffffu, is_tie);
            int trank = trun + __popc(tmask & ((1u << l) - 1u));
            bool kept = in && (!has_t || k > T || (is_tie && trank < c));
            float w = kept ? __expf(v - m) : 0.0f;
            float x2 = w;
            for (int o = 1; o < 32; o <<= 1) {
                float y = __shfl_up_sync(0xffffffffu, x2, o);
                if (l >= o) x2 += y;
            }
            unsigned hit = __ballot_sync(0xffffffffu, kept && run + x2 > rel);
            unsigned km = __ballot_sync(0xffffffffu, kept);
            if (hit) { tok = base + __ffs(hit) - 1; break; }
            if (km) last = base + 31 - __clz(km);
            run += __shfl_sync(0xffffffffu, x2, 31);
            trun += __popc(tmask);
        }
        if (tok < 0) tok = last;
        if (l == 0) sh->bi = tok;
    }
    __syncthreads();
    tok = sh->bi;
    __syncthreads();
    return tok;
}

/* A plain categorical row (temperature only: no top-k / top-p / min-p, edits or mask) read
 * straight from the raw logits in one pass: each warp keeps a running (max, mass) of x * it over
 * its own segment (the online softmax: the mass is rescaled when the max grows), the block turns
 * them into each warp's mass relative to the row's max, and draw_id_order draws from those
 * masses, re-reading only the picked warp's segment (1/32 of the row). Same draw as
 * sample_random's plain case (u * mass, ids ascending) up to float rounding, which
 * sample_batch.h allows; it skips the work-buffer copy and two of its passes (256 rows of
 * Qwen3's vocabulary: ~4 passes of 155 MB down to ~1). Returns -1 if every value is -inf. */
__device__ int sample_plain(SampleShared *sh, const float *raw, int V, float it, float u) {
    const int seg = warp_segment(V);
    const int wi = threadIdx.x >> 5, l = threadIdx.x & 31;
    const int lo = wi * seg, hi = min(V, lo + seg);
    float m = -INFINITY, s = 0.0f;
    for (int i = lo + l; i < hi; i += 32) {
        float v = raw[i] * it;
        if (v == -INFINITY) continue;
        if (v > m) { s = s * __expf(m - v) + 1.0f; m = v; }   /* m = -inf first: s stays 0 */
        else s += __expf(v - m);
    }
    for (int o = 16; o; o >>= 1) {
        float om = __shfl_xor_sync(0xffffffffu, m, o), os = __shfl_xor_sync(0xffffffffu, s, o);
        float mm = fmaxf(m, om);
        s = (m == -INFINITY ? 0.0f : s * __expf(m - mm)) + (om == -INFINITY ? 0.0f : os * __expf(om - mm));
        m = mm;
    }
    __syncthreads();
    if (l == 0) { sh->redf[wi][0] = m; sh->redf[wi][1] = s; }
    __syncthreads();
    if (wi == 0) {
        float mw = sh->redf[l][0], sw = sh->redf[l][1], M = mw;
        for (int o = 16; o; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
        sh->wmass[l] = mw == -INFINITY ? 0.0f : sw * __expf(mw - M);
        sh->wties[l] = 0;
        if (l == 0) sh->bf = M;
    }
    __syncthreads();
    const float M = sh->bf;
    if (M == -INFINITY) return -1;
    return draw_id_order(sh, raw, V, it, -INFINITY, M, false, 0u, 0, u, true);
}

/* Fast path over the compacted candidates cand[0..n) (a closed prefix of the sorted order that
 * holds the whole kept set): sort, apply top_k and top_p exactly, draw in id order. total_all:
 * the mass of every included token (top_p's base when there is no top_k); with top_k the base
 * is the mass of the k kept, all in cand. */
__device__ int draw_from_cands(SampleShared *sh, int n, float m, int k, float top_p, float total_all, float u) {
    block_sort(sh, n, false);
    if (k > 0 && n > k) n = k;
    int t = threadIdx.x;
    float total;
    if (top_p < 1.0f) {
        float w = t < n ? __expf(sh->cand[t].v - m) : 0.0f;
        float pre = block_scan(sh, w, &total);
        sh->pref[t] = pre;
        float need = top_p * (k > 0 ? total : total_all);
        /* smallest prefix reaching need: the first index whose inclusive prefix >= need */
        if (t == 0) sh->bi = n;
        __syncthreads();
        if (t < n && pre >= need && (t == 0 || sh->pref[t - 1] < need)) atomicMin(&sh->bi, t + 1);
        __syncthreads();
        n = sh->bi;
        __syncthreads();
    }
    block_sort(sh, n, true);
    float w = t < n ? __expf(sh->cand[t].v - m) : 0.0f;
    float pre = block_scan(sh, w, &total);
    sh->pref[t] = pre;
    float target = u * total;
    if (t == 0) sh->bi = n - 1;
    __syncthreads();
    if (t < n && pre > target && (t == 0 || sh->pref[t - 1] <= target)) atomicMin(&sh->bi, t);
    __syncthreads();
    if (t == 0) sh->bi = sh->cand[sh->bi].id;
    __syncthreads();
    int tok = sh->bi;
    __syncthreads();
    return tok;
}

/* Compacts the included values with v >= lo_v into cand (unordered); returns the count
 * (capped at CAND_CAP: the caller checked it fits). */
__device__ int compact(SampleShared *sh, const float *x, int V, float cut, float lo_v) {
    if (threadIdx.x == 0) sh->ncand = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < V; i += SB_THREADS) {
        float v = x[i];
        if (incl(v, cut) && v >= lo_v) {
            int s = atomicAdd(&sh->ncand, 1);
            if (s < CAND_CAP) sh->cand[s] = Cand{v, i};
        }
    }
    __syncthreads();
    int n = min(sh->ncand, CAND_CAP);
    __syncthreads();
    return n;
}

/* Random sampling of one processed row x (see the header for the path choice). */
__device__ int sample_random(SampleShared *sh, const float *x, int V, const SampleRow &r) {
    float m = -INFINITY;
    for (int i = threadIdx.x; i < V; i += SB_THREADS) m = fmaxf(m, x[i]);
    m = block_max(sh, m);
    if (m == -INFINITY) return -1;
    const float cut = r.log_min_p == -INFINITY ? -INFINITY : m + r.log_min_p;
    const int k = r.top_k;
    const bool use_p = r.top_p < 1.0f;
    if (!k && !use_p) return draw_id_order(sh, x, V, 1.0f, cut, m, false, 0u, 0, r.u, false);

    /* counts and masses of the ladder's prefixes {v >= m - d} */
    int cnt[NUM_DELTAS];
    float ms[NUM_DELTAS];
#pragma unroll
    for (int j = 0; j < NUM_DELTAS; j++) { cnt[j] = 0; ms[j] = 0.0f; }
    for (int i = threadIdx.x; i < V; i += SB_THREADS) {
        float v = x[i];
        if (!incl(v, cut)) continue;
        float d = m - v, w = __expf(v - m);
#pragma unroll
        for (int j = 0; j < NUM_DELTAS; j++)
            if (d <= k_deltas[j]) { cnt[j]++; ms[j] += w; }
    }
    const int wi = threadIdx.x >> 5, l = threadIdx.x & 31;
#pragma unroll
    for (int j = 0; j < NUM_DELTAS; j++)
        for (int o = 16; o; o >>= 1) {
            cnt[j] += __shfl_xor_sync(0xffffffffu, cnt[j], o);
            ms[j] += __shfl_xor_sync(0xffffffffu, ms[j], o);
        }
    __syncthreads();
    if (l == 0)
        for (int j = 0; j < NUM_DELTAS; j++) { sh->redf[wi][j] = (float)cnt[j]; sh->redf[wi][NUM_DELTAS + j] = ms[j]; }
    __syncthreads();
    if (threadIdx.x == 0) {
        float c2[NUM_DELTAS], m2[NUM_DELTAS];
        for (int j = 0; j < NUM_DELTAS; j++) {
            c2[j] = 0; m2[j] = 0;
            for (int w = 0; w < SB_WARPS; w++) { c2[j] += sh->redf[w][j]; m2[j] += sh->redf[w][NUM_DELTAS + j]; }
        }
        float total = m2[NUM_DELTAS - 1];
        int pick = -1;
        for (int j = 0; j < NUM_DELTAS && pick < 0; j++) {
            if (c2[j] > CAND_CAP) break;
            bool ok = j == NUM_DELTAS - 1 ||
                      (k > 0 ? c2[j] >= k : (m2[j] >= r.top_p * total * 1.0001f));
            if (ok) pick = j;
        }
        sh->bi = pick;
        sh->bf = total;
    }
    __syncthreads();
    const int pick = sh->bi;
    const float total_all = sh->bf;
    __syncthreads();
    if (pick >= 0) {
        int n = compact(sh, x, V, cut, m - k_deltas[pick]);
        return draw_from_cands(sh, n, m, k, r.top_p, total_all, r.u);
    }

    /* General path: thresholds by bisection over keys. */
    int n_all;
    float mass_all;
    count_mass_ge(sh, x, V, cut, m, 0u, &n_all, &mass_all);
    bool has_t = false;
    uint32_t T = 0;
    int c = INT_MAX;
    float massK1 = mass_all;
    if (k > 0 && n_all > k) {
        uint32_t lo = 0, hi = fkey(m);
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo + 1) / 2;
            int cn; float mm;
            count_mass_ge(sh, x, V, cut, m, mid, &cn, &mm);
            if (cn >= k) lo = mid; else hi = mid - 1;
        }
        int n_gt; float m_gt;
        count_mass_ge(sh, x, V, cut, m, lo + 1, &n_gt, &m_gt);
        has_t = true; T = lo; c = k - n_gt;
        massK1 = m_gt + c * __expf(keyf(T) - m);
    }
    if (use_p) {
        float need = r.top_p * massK1;
        uint32_t lo = has_t ? T : 0u, hi = fkey(m);
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo + 1) / 2;
            int cn; float mm;
            count_mass_ge(sh, x, V, cut, m, mid, &cn, &mm);
            if (mm >= need) lo = mid; else hi = mid - 1;
        }
        int n_gt, n_ge; float m_gt, m_ge;
        count_mass_ge(sh, x, V, cut, m, lo + 1, &n_gt, &m_gt);
        count_mass_ge(sh, x, V, cut, m, lo, &n_ge, &m_ge);
        float wt = __expf(keyf(lo) - m);
        int cp = wt > 0.0f ? (int)ceilf((need - m_gt) / wt) : 1;
        cp = max(1, min(cp, n_ge - n_gt));
        if (has_t && lo == T) c = min(c, cp);
        else { T = lo; c = cp; }
        has_t = true;
    }
    return draw_id_order(sh, x, V, 1.0f, cut, m, has_t, T, c, r.u, false);
}

/* The top n (<= PG_MAX_TOP_LOGPROBS) raw logits into cand[0..n), best first. */
__device__ int top_raw(SampleShared *sh, const float *x, int V, float mraw, int n) {
    int cnt[NUM_DELTAS];
#pragma unroll
    for (int j = 0; j < NUM_DELTAS; j++) cnt[j] = 0;
    for (int i = threadIdx.x; i < V; i += SB_THREADS) {
        float d = mraw - x[i];
#pragma unroll
        for (int j = 0; j < NUM_DELTAS; j++) cnt[j] += d <= k_deltas[j];
    }
    int pick = -1;
    for (int j = 0; j < NUM_DELTAS && pick < 0; j++) {
        int c = block_sum_i(sh, cnt[j]);
        if (c >= n && c <= CAND_CAP) pick = j;
        if (c > CAND_CAP) break;
    }
    float lo_v;
    if (pick >= 0) {
        lo_v = mraw - k_deltas[pick];
    } else {
        /* more than CAND_CAP values within the smallest step: the n-th largest by bisection */
        uint32_t lo = 0, hi = fkey(mraw);
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo + 1) / 2;
            int c = 0;
            for (int i = threadIdx.x; i < V; i += SB_THREADS) c += fkey(x[i]) >= mid;
            if (block_sum_i(sh, c) >= n) lo = mid; else hi = mid - 1;
        }
        lo_v = keyf(lo);
    }
    int got = compact(sh, x, V, -INFINITY, lo_v);
    block_sort(sh, got, false);
    return min(got, n);
}

__global__ void __launch_bounds__(SB_THREADS) sample_kernel(const float *__restrict__ logits,
        float *__restrict__ work, int V, const SampleRow *__restrict__ rows,
        const LogitEdit *__restrict__ edits, const uint32_t *__restrict__ masks, int mask_words,
        SampleOut *__restrict__ out, int32_t *__restrict__ tok_out, int plain_ok) {
    __shared__ SampleShared sh;
    const int row = blockIdx.x;
    const SampleRow r = rows[row];
    const float *raw = logits + (size_t)row * V;
    const int t = threadIdx.x;

    float mraw = 0.0f, lse = 0.0f;
    if (r.num_logprobs >= 0) {
        float mx = -INFINITY;
        for (int i = t; i < V; i += SB_THREADS) mx = fmaxf(mx, raw[i]);
        mraw = block_max(&sh, mx);
        float s = 0.0f;
        for (int i = t; i < V; i += SB_THREADS) s += __expf(raw[i] - mraw);
        lse = mraw + logf(block_sum(&sh, s));
    }

    const bool greedy = r.temperature < 1e-5f;
    const bool plain = plain_ok && !greedy && r.edit_end == r.edit_begin && r.mask_index < 0 && !r.top_k &&
                       r.top_p >= 1.0f && r.log_min_p == -INFINITY;
    const float *x = raw;
    if (!plain && (!greedy || r.edit_end > r.edit_begin || r.mask_index >= 0)) {
        float *w = work + (size_t)row * V;
        const uint32_t *mask = r.mask_index >= 0 ? masks + (size_t)r.mask_index * mask_words : NULL;
        const float it = greedy ? 1.0f : r.inv_temperature;
        for (int i = t; i < V; i += SB_THREADS) {
            bool ok = !mask || (mask[i >> 5] >> (i & 31) & 1u);
            w[i] = ok ? (greedy ? raw[i] : raw[i] * it) : -INFINITY;
        }
        __syncthreads();
        for (int e = r.edit_begin + t; e < r.edit_end; e += SB_THREADS) {
            LogitEdit ed = edits[e];
            int id = ed.token;
            if (mask && !(mask[id >> 5] >> (id & 31) & 1u)) continue;
            float l = raw[id];
            if (ed.kill) {
                l = -INFINITY;
            } else {
                l += ed.bias;
                if (ed.rep) l = l > 0 ? l / r.repetition_penalty : l * r.repetition_penalty;
                l -= r.frequency_penalty * (float)ed.out_count + (ed.out_count > 0 ? r.presence_penalty : 0.0f);
            }
            w[id] = greedy ? l : l * it;
        }
        __syncthreads();
        x = w;
    }

    int tok = greedy ? block_argmax(&sh, x, V)
              : plain ? sample_plain(&sh, raw, V, r.inv_temperature, r.u)
                      : sample_random(&sh, x, V, r);

    if (r.num_logprobs >= 0) {
        int n = top_raw(&sh, raw, V, mraw, max(r.num_logprobs, 1));
        if (t < n && t < r.num_logprobs) {
            out[row].top_ids[t] = sh.cand[t].id;
            out[row].top_lp[t] = sh.cand[t].v - lse;
        }
        int rank = 0;
        if (tok >= 0) {
            float v = raw[tok];
            for (int i = t; i < V; i += SB_THREADS) rank += raw[i] > v;
        }
        rank = block_sum_i(&sh, rank);
        if (t == 0) {
            out[row].num_top = min(n, r.num_logprobs);
            out[row].rank = rank + 1;
            out[row].logprob = tok >= 0 ? raw[tok] - lse : 0.0f;
        }
    }
    if (t == 0) {
        out[row].token = tok;
        if (tok_out) tok_out[row] = tok;   /* async scheduling: the next step's embed reads it */
    }
}

/* ------------------------------------------------------------------ host side */

/* Grows a device / pinned host pair to `bytes` (x2 headroom); the frees synchronize. */
static void grow_pair(void **d, void **h, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return;
    if (d && *d) CUDA_CHECK(cudaFree(*d));
    if (h && *h) CUDA_CHECK(cudaFreeHost(*h));
    size_t cap2 = bytes * 2;
    if (d) CUDA_CHECK(cudaMalloc(d, cap2));
    if (h) CUDA_CHECK(cudaMallocHost(h, cap2));
    *cap = cap2;
}

int cuda_sample_enqueue(CudaCtx *c, const SampleBatch *sb, void **h_in, size_t *h_in_cap, void **d_out,
                        void **h_out, size_t *out_cap, int32_t *tok_out, char *err) {
    const int R = sb->num_rows, V = sb->vocab_size;
    if (R != c->logits_R || V != c->logits_V)
        return pg_err(err, "cuda sample: %d rows of vocab %d, but the last logits were %d x %d", R, V,
                      c->logits_R, c->logits_V);
    size_t rows_b = (size_t)R * sizeof(SampleRow);
    size_t edits_b = (size_t)sb->num_edits * sizeof(LogitEdit);
    size_t masks_b = (size_t)sb->num_masks * sb->mask_words * sizeof(uint32_t);
    size_t off_e = (rows_b + 255) & ~(size_t)255, off_m = (off_e + edits_b + 255) & ~(size_t)255;
    size_t in_b = off_m + masks_b;
    size_t out_b = (size_t)R * sizeof(SampleOut);
    /* The device input buffer is one for every call: the copy below queues behind the kernel
     * of the previous call. The pinned staging buffer *h_in must not be in use by a queued copy
     * (the caller's contract). The reallocations synchronize. */
    grow_pair(&c->d_samp_in, NULL, &c->samp_in_cap, in_b);
    if (in_b > *h_in_cap) {
        if (*h_in) CUDA_CHECK(cudaFreeHost(*h_in));
        CUDA_CHECK(cudaMallocHost(h_in, in_b * 2));
        *h_in_cap = in_b * 2;
    }
    grow_pair(d_out, h_out, out_cap, out_b);
    if ((size_t)R * V > c->samp_work_cap) {
        if (c->samp_work) CUDA_CHECK(cudaFree(c->samp_work));
        CUDA_CHECK(cudaMalloc(&c->samp_work, (size_t)R * V * sizeof(float)));
        c->samp_work_cap = (size_t)R * V;
    }
    char *h = (char *)*h_in;
    memcpy(h, sb->rows, rows_b);
    if (edits_b) memcpy(h + off_e, sb->edits, edits_b);
    if (masks_b) memcpy(h + off_m, sb->masks, masks_b);
    CUDA_CHECK(cudaMemcpyAsync(c->d_samp_in, h, in_b, cudaMemcpyHostToDevice, c->stream));
    char *d = (char *)c->d_samp_in;
    sample_kernel<<<R, SB_THREADS, 0, c->stream>>>(c->logits_f32, c->samp_work, V, (const SampleRow *)d,
                                                   (const LogitEdit *)(d + off_e), (const uint32_t *)(d + off_m),
                                                   sb->mask_words, (SampleOut *)*d_out, tok_out,
                                                   c->sample_plain);
    CUDA_LAUNCH_CHECK(c);
    CUDA_CHECK(cudaMemcpyAsync(*h_out, *d_out, out_b, cudaMemcpyDeviceToHost, c->stream));
    return 0;
}

void cuda_sample_unpack(const void *h_out, int R, const SampleRow *rows, int32_t *tokens, LogprobEntry *lps) {
    const SampleOut *o = (const SampleOut *)h_out;
    for (int r = 0; r < R; r++) {
        tokens[r] = o[r].token;
        if (lps && rows[r].num_logprobs >= 0) {
            LogprobEntry *lp = &lps[r];
            lp->token = o[r].token;
            lp->logprob = o[r].logprob;
            lp->rank = o[r].rank;
            lp->num_top = o[r].num_top;
            for (int i = 0; i < o[r].num_top; i++) {
                lp->top[i].token = o[r].top_ids[i];
                lp->top[i].logprob = o[r].top_lp[i];
            }
        }
    }
}

/* No wait before the kernel: the previous call's copies of the staging buffers ended with its
 * final cudaStreamSynchronize, and this step's forward may still be running: the copies and the
 * kernel queue behind it (model_forward_sample). */
int cuda_sample(CudaCtx *c, const SampleBatch *sb, int32_t *tokens, LogprobEntry *lps, char *err) {
    const int R = sb->num_rows;
    if (R <= 0) return 0;
    cuda_graph_flush(c);
    const double ht0 = c->host_times ? time_now_s() : 0;
    if (cuda_sample_enqueue(c, sb, &c->h_samp_in, &c->samp_h_in_cap, &c->d_samp_out, &c->h_samp_out, &c->samp_out_cap,
                            NULL, err) != 0)
        return -1;
    const double ht1 = c->host_times ? time_now_s() : 0;
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    if (c->host_times) {
        c->ht_samples++;
        c->ht_sample += ht1 - ht0;
        c->ht_wait += time_now_s() - ht1;
    }
    cuda_sample_unpack(c->h_samp_out, R, sb->rows, tokens, lps);
    return 0;
}
