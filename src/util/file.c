#include "util/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

char *file_read_all(const char *path, size_t max, size_t *len, char *err) {
    char tmp[PG_ERR_LEN];
    if (!err) err = tmp;
    FILE *f = fopen(path, "rb");
    if (!f) {
        pg_err(err, "%s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (max && n > max) {
            pg_err(err, "%s: larger than %zu bytes", path, max);
            free(buf);
            fclose(f);
            return NULL;
        }
        if (n + 1 < cap) break; /* short read: end of file (or an error, checked below) */
        char *b = realloc(buf, cap * 2);
        if (!b) { free(buf); buf = NULL; break; }
        buf = b;
        cap *= 2;
    }
    const int failed = ferror(f);
    fclose(f);
    if (!buf) { pg_err(err, "%s: out of memory", path); return NULL; }
    if (failed) { pg_err(err, "%s: read error", path); free(buf); return NULL; }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}
