/* sampler.c: logits processing and token selection (see sampler.h for the order of steps). */
#include "sample/sampler.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

#ifdef __SSE__
#include <immintrin.h>
#endif

int sampler_init(Sampler *s, int vocab_size, char *err) {
    memset(s, 0, sizeof *s);
    s->vocab_size = vocab_size;
    s->raw = malloc((size_t)vocab_size * sizeof *s->raw);
    s->probs = malloc((size_t)vocab_size * sizeof *s->probs);
    s->cand = malloc((size_t)vocab_size * sizeof *s->cand);
    s->stamp = calloc((size_t)vocab_size, sizeof *s->stamp);
    if (!s->raw || !s->probs || !s->cand || !s->stamp) {
        sampler_deinit(s);
        return pg_err(err, "sampler: out of memory for vocab %d", vocab_size);
    }
    return 0;
}

void sampler_deinit(Sampler *s) {
    free(s->raw);
    free(s->probs);
    free(s->cand);
    free(s->stamp);
    sample_batch_deinit(&s->one);
    memset(s, 0, sizeof *s);
}

/* max of x[0..n) and the first index holding it: vector compares where SSE exists (x86-64
 * always has it), as GCC will not vectorize a float max without -ffast-math. */
static float max_f32(const float *x, int n) {
    int i = 0;
    float best = -INFINITY;
#ifdef __SSE__
    __m128 m0 = _mm_set1_ps(-INFINITY), m1 = m0;
    for (; i + 8 <= n; i += 8) {
        m0 = _mm_max_ps(m0, _mm_loadu_ps(x + i));
        m1 = _mm_max_ps(m1, _mm_loadu_ps(x + i + 4));
    }
    float lanes[4];
    _mm_storeu_ps(lanes, _mm_max_ps(m0, m1));
    for (int j = 0; j < 4; j++) best = lanes[j] > best ? lanes[j] : best;
#endif
    for (; i < n; i++) best = x[i] > best ? x[i] : best;
    return best;
}

static int find_f32(const float *x, int n, float v) {
    int i = 0;
#ifdef __SSE__
    __m128 vv = _mm_set1_ps(v);
    for (; i + 4 <= n; i += 4)
        if (_mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(x + i), vv))) break;
#endif
    for (; i < n; i++)
        if (x[i] == v) return i;
    return -1;
}

/* A fresh "seen" set: stamp[t] == gen means t is in it. */
static uint32_t new_set(Sampler *s) {
    if (++s->stamp_gen == 0) {
        memset(s->stamp, 0, (size_t)s->vocab_size * sizeof *s->stamp);
        s->stamp_gen = 1;
    }
    return s->stamp_gen;
}

/* Descending by logit, ascending id on ties: a total order, so results never depend on qsort. */
static int cand_cmp(const void *a, const void *b) {
    const SampleCand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}
static inline int cand_better(SampleCand a, SampleCand b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

/* The k best entries of x[0..V) into out[0..k), best first (k small: insertion into a sorted
 * array). Returns how many were found (< k only if V < k or entries are -inf). */
static int top_k_select(const float *x, int V, int k, SampleCand *out) {
    int n = 0, i = 0;
#define TOPK_CONSIDER(j)                                                              \
    do {                                                                              \
        if (x[j] == -INFINITY) break;                                                 \
        SampleCand c = {x[j], (int32_t)(j)};                                          \
        if (n == k && !cand_better(c, out[n - 1])) break;                             \
        int p = n < k ? n++ : n - 1;                                                  \
        while (p > 0 && cand_better(c, out[p - 1])) { out[p] = out[p - 1]; p--; }     \
        out[p] = c;                                                                   \
    } while (0)
#ifdef __SSE__
    /* once k are held, skip groups of 4 that cannot beat the k-th best */
    for (; i + 4 <= V; i += 4) {
        if (n == k && !_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(x + i), _mm_set1_ps(out[k - 1].logit)))) continue;
        for (int j = i; j < i + 4; j++) TOPK_CONSIDER(j);
    }
#endif
    for (; i < V; i++) TOPK_CONSIDER(i);
#undef TOPK_CONSIDER
    return n;
}

static void raw_logprobs(Sampler *s, const float *logits, int num_top, LogprobEntry *lp, float *lse_out) {
    int V = s->vocab_size;
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)(logits[i] - mx));
    float lse = mx + (float)log(sum);
    *lse_out = lse;
    SampleCand top[PG_MAX_TOP_LOGPROBS];
    lp->num_top = num_top > 0 ? top_k_select(logits, V, num_top, top) : 0;
    for (int i = 0; i < lp->num_top; i++) {
        lp->top[i].token = top[i].id;
        lp->top[i].logprob = top[i].logit - lse;
    }
}

static int cand_id_cmp(const void *a, const void *b) {
    const SampleCand *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Candidates c[0..n) sorted best first (logits already scaled; mx the largest): keeps the
 * smallest prefix whose mass reaches top_p, then inverts the CDF at u walking the kept ids in
 * ascending id order (the order every device walks them). */
static int32_t draw_sorted(SampleCand *c, int n, float mx, float top_p, float u) {
    if (top_p < 1.0f) {
        double total = 0;
        for (int i = 0; i < n; i++) total += exp((double)(c[i].logit - mx));
        double acc = 0, need = top_p * total;
        int m = 0;
        while (m < n) {
            acc += exp((double)(c[m].logit - mx));
            m++;
            if (acc >= need) break;
        }
        n = m;
    }
    qsort(c, (size_t)n, sizeof *c, cand_id_cmp);
    double total = 0;
    for (int i = 0; i < n; i++) total += exp((double)(c[i].logit - mx));
    double target = u * total, acc = 0;
    int32_t tok = -1;
    for (int i = 0; i < n; i++) {
        acc += exp((double)(c[i].logit - mx));
        tok = c[i].id;
        if (acc > target) break;
    }
    return tok;
}

/* Nucleus (top-p) sampling without sorting the vocabulary. Tokens are binned by how far their
 * logit is below the max (1/16 nat per bin); whole bins are taken from the top while their mass
 * stays below top_p, and only the boundary bin is sorted to find the exact cut. The kept set is
 * exactly the smallest sorted prefix reaching top_p; the draw walks it in id order. */
#define TOPP_BINS 1024
static inline int topp_bin(float mx, float l) {
    float d = (mx - l) * 16.0f;
    return d < (float)(TOPP_BINS - 1) ? (int)d : TOPP_BINS - 1;
}
static int32_t sample_top_p(Sampler *s, const float *logits, float mx, float top_p, float u) {
    const int V = s->vocab_size;
    float *pr = s->probs;
    double total = 0, mass[TOPP_BINS] = {0};
    for (int i = 0; i < V; i++) {
        pr[i] = logits[i] == -INFINITY ? 0.0f : expf(logits[i] - mx);
        if (pr[i] > 0.0f) {
            total += pr[i];
            mass[topp_bin(mx, logits[i])] += pr[i];
        }
    }
    double need = top_p * total, acc = 0;
    int B = 0;
    while (B < TOPP_BINS - 1 && acc + mass[B] < need) acc += mass[B++];
    int n = 0;
    for (int i = 0; i < V; i++)
        if (pr[i] > 0.0f && topp_bin(mx, logits[i]) == B) s->cand[n++] = (SampleCand){logits[i], i};
    qsort(s->cand, (size_t)n, sizeof *s->cand, cand_cmp);
    int m = 0;
    double kept = acc;
    uint32_t g = new_set(s);
    while (m < n && (m == 0 || kept < need)) {
        kept += pr[s->cand[m].id];
        s->stamp[s->cand[m++].id] = g;
    }
    double target = u * kept, run = 0;
    int32_t tok = -1;
    for (int i = 0; i < V; i++) {
        if (pr[i] > 0.0f && (topp_bin(mx, logits[i]) < B || s->stamp[i] == g)) {
            run += pr[i];
            tok = i;
            if (run > target) return tok;
        }
    }
    return tok;
}

static void apply_edits(float *logits, const SampleRow *r, const LogitEdit *ed, int n) {
    for (int i = 0; i < n; i++) {
        const LogitEdit *e = &ed[i];
        float l = logits[e->token];
        if (e->kill) {
            l = -INFINITY;
        } else {
            l += e->bias;
            if (e->rep) l = l > 0 ? l / r->repetition_penalty : l * r->repetition_penalty;
            l -= r->frequency_penalty * (float)e->out_count + (e->out_count > 0 ? r->presence_penalty : 0.0f);
        }
        logits[e->token] = l;
    }
}

int32_t sampler_sample_row(Sampler *s, float *logits, const SampleBatch *sb, int row, LogprobEntry *lp) {
    const SampleRow *r = &sb->rows[row];
    const int V = s->vocab_size;
    int want_lp = lp && r->num_logprobs >= 0;
    float lse = 0;
    if (want_lp) {
        memcpy(s->raw, logits, (size_t)V * sizeof *logits);
        raw_logprobs(s, logits, r->num_logprobs, lp, &lse);
    }
    apply_edits(logits, r, sb->edits + r->edit_begin, r->edit_end - r->edit_begin);
    if (r->mask_index >= 0) {
        const uint32_t *mask = sb->masks + (size_t)r->mask_index * sb->mask_words;
        for (int i = 0; i < V; i++)
            if (!(mask[i >> 5] >> (i & 31) & 1u)) logits[i] = -INFINITY;
    }

    int32_t tok = -1;
    if (r->temperature < 1e-5f) {
        /* two passes (max, then its first index) so that both loops vectorize */
        float best = max_f32(logits, V);
        if (best != -INFINITY) tok = find_f32(logits, V, best);
    } else {
        float inv_t = r->inv_temperature;
        int k = r->top_k;
        int use_p = r->top_p < 1.0f;
        float u = r->u;
        if (k && k <= 64) {
            /* Temperature, min_p and top_k all keep a prefix of the sorted order: select the k
             * best unscaled logits in one pass and scale only those. */
            int n = top_k_select(logits, V, k, s->cand);
            if (n == 0) goto done;
            for (int i = 0; i < n; i++) s->cand[i].logit *= inv_t;
            float mx = s->cand[0].logit;
            float cut = mx + r->log_min_p;
            while (n > 1 && s->cand[n - 1].logit < cut) n--;
            tok = draw_sorted(s->cand, n, mx, r->top_p, u);
            goto done;
        }
        float mx = -INFINITY;
        for (int i = 0; i < V; i++) {
            logits[i] *= inv_t;
            mx = logits[i] > mx ? logits[i] : mx;
        }
        if (mx == -INFINITY) goto done;
        if (r->log_min_p != -INFINITY) {   /* drop tokens with prob < min_p * max prob */
            float cut = mx + r->log_min_p;
            for (int i = 0; i < V; i++)
                if (logits[i] < cut) logits[i] = -INFINITY;
        }
        if (!k && !use_p) {
            /* plain categorical over all ids in id order */
            float *pr = s->probs;
            double sum = 0;
            for (int i = 0; i < V; i++) {
                pr[i] = logits[i] == -INFINITY ? 0.0f : expf(logits[i] - mx);
                sum += pr[i];
            }
            double target = u * sum, acc = 0;
            for (int i = 0; i < V; i++) {
                if (pr[i] == 0.0f) continue;
                acc += pr[i];
                tok = i;
                if (acc > target) break;
            }
        } else if (!k) {
            tok = sample_top_p(s, logits, mx, r->top_p, u);
        } else {
            /* top_k > 64: sort every finite candidate */
            int n = 0;
            for (int i = 0; i < V; i++)
                if (logits[i] != -INFINITY) s->cand[n++] = (SampleCand){logits[i], i};
            qsort(s->cand, (size_t)n, sizeof *s->cand, cand_cmp);
            if (n > k) n = k;
            if (n == 0) goto done;
            tok = draw_sorted(s->cand, n, mx, r->top_p, u);
        }
    }
done:
    if (want_lp && tok >= 0) {
        float v = s->raw[tok];
        int rank = 1;
        for (int i = 0; i < V; i++) rank += s->raw[i] > v;
        lp->token = tok;
        lp->logprob = v - lse;
        lp->rank = rank;
    }
    return tok;
}

int32_t sampler_sample(Sampler *s, float *logits, const SampleInput *in, LogprobEntry *lp) {
    /* made on first use: the engine and the backends' samplers only ever call sampler_sample_row */
    char err[PG_ERR_LEN];
    if (!s->one.stamp && sample_batch_init(&s->one, s->vocab_size, err) != 0) return -1;
    sample_batch_reset(&s->one);
    if (sample_batch_add(&s->one, in) < 0) return -1;
    return sampler_sample_row(s, logits, &s->one, 0, lp);
}
