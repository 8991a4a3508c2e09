/* reasoning_qwen3.c: see reasoning_qwen3.h. */
#include "server/parsers/reasoning_qwen3.h"

#include <string.h>

#include "server/parsers/tag_scan.h"

static const char THINK_OPEN[] = "<think>";
static const char THINK_CLOSE[] = "</think>";

void rq3_init(ReasoningQwen3 *r, int starts_in_reasoning) {
    memset(r, 0, sizeof *r);
    r->state = starts_in_reasoning ? RQ3_REASONING : RQ3_BEFORE;
    r->saw_reasoning = starts_in_reasoning;
}

static const char *find_last(const char *hay, const char *needle) {
    const char *last = NULL, *p = hay;
    while ((p = strstr(p, needle)) != NULL) last = p++;
    return last;
}

int rq3_prompt_opens_think(const char *prompt) {
    const char *o = find_last(prompt, THINK_OPEN), *c = find_last(prompt, THINK_CLOSE);
    return o && (!c || o > c);
}


static StrBuf *out_for(Rq3State st, StrBuf *reasoning, StrBuf *content) {
    return st == RQ3_REASONING ? reasoning : content;
}

/* Processes s[0..n) with no held bytes in front; may leave a partial tag in r->hold. */
static void feed_span(ReasoningQwen3 *r, const char *s, size_t n, StrBuf *reasoning, StrBuf *content) {
    while (n > 0) {
        if (r->state == RQ3_CONTENT) {
            sb_append(content, s, n);
            return;
        }
        const char *open = r->state == RQ3_BEFORE ? tag_find(s, n, THINK_OPEN) : NULL;
        const char *close = tag_find(s, n, THINK_CLOSE);
        const char *tag = NULL;
        if (open && (!close || open < close)) tag = open;
        else if (close) tag = close;
        if (!tag) {
            size_t k = tag_partial_suffix(s, n, THINK_CLOSE);
            if (r->state == RQ3_BEFORE) {
                size_t k2 = tag_partial_suffix(s, n, THINK_OPEN);
                if (k2 > k) k = k2;
            }
            sb_append(out_for(r->state, reasoning, content), s, n - k);
            memcpy(r->hold, s + n - k, k);
            r->hold_len = k;
            return;
        }
        sb_append(out_for(r->state, reasoning, content), s, (size_t)(tag - s));
        size_t tl;
        if (tag == open) {
            r->state = RQ3_REASONING;
            r->saw_reasoning = 1;
            tl = strlen(THINK_OPEN);
        } else {
            r->state = RQ3_CONTENT;
            tl = strlen(THINK_CLOSE);
        }
        n -= (size_t)(tag - s) + tl;
        s = tag + tl;
    }
}

void rq3_feed(ReasoningQwen3 *r, const char *text, size_t len, StrBuf *reasoning, StrBuf *content) {
    if (r->hold_len == 0) {
        feed_span(r, text, len, reasoning, content);
        return;
    }
    /* Rejoin the held partial tag with the new text, then process them as one span. */
    size_t n;
    char *all = tag_hold_join(r->hold, &r->hold_len, text, len, &n);
    feed_span(r, all, n, reasoning, content);
    free(all);
}

void rq3_finish(ReasoningQwen3 *r, StrBuf *reasoning, StrBuf *content) {
    if (r->hold_len) sb_append(out_for(r->state, reasoning, content), r->hold, r->hold_len);
    r->hold_len = 0;
}
