/* tag_scan.c: see tag_scan.h. */
#define _GNU_SOURCE   /* memmem */
#include "server/parsers/tag_scan.h"

#include <stdlib.h>
#include <string.h>

#include "util/err.h"

const char *tag_find(const char *s, size_t n, const char *tag) { return memmem(s, n, tag, strlen(tag)); }

size_t tag_partial_suffix(const char *s, size_t n, const char *tag) {
    size_t tl = strlen(tag);
    for (size_t k = tl - 1; k > 0; k--)
        if (k <= n && memcmp(s + n - k, tag, k) == 0) return k;
    return 0;
}

char *tag_hold_join(const char *hold, size_t *hold_len, const char *text, size_t len, size_t *n) {
    *n = *hold_len + len;
    char *all = malloc(*n + 1);
    CHECK(all != NULL);
    memcpy(all, hold, *hold_len);
    memcpy(all + *hold_len, text, len);
    all[*n] = 0;
    *hold_len = 0;
    return all;
}
