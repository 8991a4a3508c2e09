/* file.h: reading a whole file into memory (templates, tokenizer.json, schemas).
 *
 * file_read_all() returns a malloc'd buffer holding the file's bytes and a terminating NUL (the
 * caller frees it), or NULL with err ("PATH: cannot open (reason)", "PATH: larger than N bytes",
 * "PATH: out of memory") when it cannot. */
#ifndef PAGELLM_UTIL_FILE_H
#define PAGELLM_UTIL_FILE_H
#include <stddef.h>

/* max: largest file accepted (0: no limit); len (may be NULL): bytes read; err (may be NULL):
 * PG_ERR_LEN bytes. */
char *file_read_all(const char *path, size_t max, size_t *len, char *err);

#endif
