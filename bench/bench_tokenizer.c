/* bench_tokenizer.c: tokenizer speed, one thread, side by side with scripts/bench_tokenizer_hf.py
 * (HF tokenizers) on the same corpus file and the same generated no-space texts.
 *
 *   build-x/bench_tokenizer MODEL_DIR CORPUS_FILE [REPEATS]
 *
 * Prints: the machine floor (memcpy bandwidth, measured here), tokenizer.json load time,
 * encode throughput over the corpus cut into ~2 KB documents at line ends (first pass = cold
 * word cache, then the median of REPEATS passes), decode and streaming-detok throughput, and
 * encode time of one word without spaces of 10 KB, 100 KB and 1 MB (linear vs quadratic). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/detok.h"
#include "tok/tokenizer.h"
#include "benchtool/bench_stats.h"
#include "util/err.h"
#include "util/file.h"
#include "util/timeutil.h"

/* Median of v[n] (benchtool/bench_stats.h, as bench serve reports it). */
static double median(const double *v, int n) { return summarize(v, (size_t)n).median; }

/* The same generator as scripts/bench_tokenizer_hf.py: lowercase letters from a 64-bit LCG. */
static char *no_space_word(size_t n, uint64_t seed) {
    char *s = malloc(n + 1);
    uint64_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        s[i] = (char)('a' + (x >> 33) % 26);
    }
    s[n] = 0;
    return s;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR CORPUS_FILE [REPEATS]\n", argv[0]);
        return 2;
    }
    int repeats = argc > 3 ? atoi(argv[3]) : 5;
    if (repeats < 1) repeats = 1;
    char err[PG_ERR_LEN];

    /* Floor: memcpy bandwidth on this machine, now. */
    size_t fl = 64u << 20;
    char *a = malloc(fl), *b = malloc(fl);
    memset(a, 1, fl);
    memset(b, 0, fl);
    double tf[5];
    for (int r = 0; r < 5; r++) {
        double t0 = time_now_s();
        memcpy(b, a, fl);
        tf[r] = time_now_s() - t0;
    }
    printf("floor: memcpy %.1f GB/s (64 MiB, median of 5)\n", fl / median(tf, 5) / 1e9);
    free(a);
    free(b);

    Tokenizer *tok = NULL;
    double tl[3];
    for (int r = 0; r < 3; r++) {
        double t0 = time_now_s();
        if (tok_load(&tok, argv[1], err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        tl[r] = time_now_s() - t0;
        if (r < 2) tok_free(tok);
    }
    printf("load: %.3f s (median of 3)\n", median(tl, 3));

    size_t len;
    char *corpus = file_read_all(argv[2], 0, &len, NULL);
    if (!corpus) {
        fprintf(stderr, "%s: cannot read\n", argv[2]);
        return 1;
    }
    /* Documents: ~2 KB, cut after a newline. */
    size_t ndocs = 0, cap = len / 1024 + 16;
    size_t *starts = malloc(cap * sizeof *starts), *lens = malloc(cap * sizeof *lens);
    for (size_t p = 0; p < len;) {
        size_t e = p + 2048 < len ? p + 2048 : len;
        while (e < len && corpus[e - 1] != '\n') e++;
        starts[ndocs] = p, lens[ndocs] = e - p, ndocs++;
        p = e;
    }
    size_t total_tokens = 0;
    double te[64];
    int32_t **all_ids = calloc(ndocs, sizeof *all_ids);
    size_t *all_n = calloc(ndocs, sizeof *all_n);
    for (int r = 0; r <= repeats && r < 64; r++) {
        double t0 = time_now_s();
        size_t ntok = 0;
        for (size_t d = 0; d < ndocs; d++) {
            int32_t *ids;
            size_t n;
            if (tok_encode(tok, corpus + starts[d], lens[d], 0, &ids, &n, err) != 0) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            ntok += n;
            free(all_ids[d]);
            all_ids[d] = ids, all_n[d] = n;
        }
        te[r] = time_now_s() - t0;
        total_tokens = ntok;
    }
    printf("corpus: %s, %zu bytes, %zu documents, %zu tokens\n", argv[2], len, ndocs, total_tokens);
    printf("encode cold (first pass): %.2f MB/s\n", len / te[0] / 1e6);
    double warm = median(te + 1, repeats);
    printf("encode warm: %.2f MB/s, %.0f tokens/s (median of %d passes)\n", len / warm / 1e6, total_tokens / warm,
           repeats);

    double td[5], ts[5];
    for (int r = 0; r < 5; r++) {
        double t0 = time_now_s();
        for (size_t d = 0; d < ndocs; d++) {
            size_t dl;
            free(tok_decode(tok, all_ids[d], all_n[d], 0, &dl));
        }
        td[r] = time_now_s() - t0;
        t0 = time_now_s();
        char *out = NULL;
        size_t out_len = 0, out_cap = 0;
        for (size_t d = 0; d < ndocs; d++) {
            Detok dt;
            detok_init(&dt, tok, 0);
            for (size_t i = 0; i < all_n[d]; i++) detok_push(&dt, all_ids[d][i], &out, &out_len, &out_cap);
            detok_flush(&dt, &out, &out_len, &out_cap);
            detok_deinit(&dt);
            out_len = 0;
        }
        free(out);
        ts[r] = time_now_s() - t0;
    }
    printf("decode: %.0f tokens/s; detok streaming: %.0f tokens/s (median of 5)\n", total_tokens / median(td, 5),
           total_tokens / median(ts, 5));

    size_t sizes[] = {10000, 100000, 1000000};
    for (int k = 0; k < 3; k++) {
        char *w = no_space_word(sizes[k], 12345);
        double tw[3];
        size_t n = 0;
        for (int r = 0; r < 3; r++) {
            int32_t *ids;
            double t0 = time_now_s();
            if (tok_encode(tok, w, sizes[k], 0, &ids, &n, err) != 0) return 1;
            tw[r] = time_now_s() - t0;
            free(ids);
        }
        double m = median(tw, 3);
        printf("no-space word %7zu bytes: %8.2f ms, %zu tokens, %.2f MB/s\n", sizes[k], m * 1e3, n, sizes[k] / m / 1e6);
        free(w);
    }
    for (size_t d = 0; d < ndocs; d++) free(all_ids[d]);
    free(all_ids);
    free(all_n);
    free(starts);
    free(lens);
    free(corpus);
    tok_free(tok);
    return 0;
}
