/* tag_scan.h: finding markup tags (<think>, </think>, <tool_call>, ...) in streamed model text,
 * shared by the output parsers (reasoning_qwen3.c, tool_hermes.c).
 *
 * A delta may end inside a tag ("...</thi"): a parser keeps that partial tag in a small hold
 * buffer (tag_partial_suffix says how long it is) and rejoins it with the next delta
 * (tag_hold_join) before scanning again, so a tag split across deltas is still seen whole. */
#ifndef PAGELLM_SERVER_PARSERS_TAG_SCAN_H
#define PAGELLM_SERVER_PARSERS_TAG_SCAN_H
#include <stddef.h>

/* First occurrence of tag in s[0..n), or NULL. */
const char *tag_find(const char *s, size_t n, const char *tag);
/* Length of the longest suffix of s[0..n) that is a proper prefix of tag (0 if none). */
size_t tag_partial_suffix(const char *s, size_t n, const char *tag);
/* hold[0..*hold_len) followed by text[0..len) in a new malloc'd buffer of *n bytes (aborts on
 * OOM, as the parsers' other allocations do); *hold_len becomes 0. */
char *tag_hold_join(const char *hold, size_t *hold_len, const char *text, size_t len, size_t *n);

#endif
