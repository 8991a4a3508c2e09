/* tool_hermes.c: see tool_hermes.h. */
#include "server/parsers/tool_hermes.h"

#include <jansson.h>
#include <string.h>

#include "server/ids.h"
#include "server/parsers/tag_scan.h"

static const char CALL_OPEN[] = "<tool_call>";
static const char CALL_CLOSE[] = "</tool_call>";

void tool_call_id_new(char out[TOOL_CALL_ID_LEN]) {
    char hex[33];
    random_hex32(hex);
    snprintf(out, TOOL_CALL_ID_LEN, "chatcmpl-tool-%s", hex);
}

void tool_events_clear(ToolEvents *e) {
    for (int i = 0; i < e->n; i++) free(e->ev[i].text);
    e->n = 0;
}
void tool_events_free(ToolEvents *e) {
    tool_events_clear(e);
    free(e->ev);
    e->ev = NULL;
    e->cap = 0;
}

static void push_event(ToolEvents *e, ToolEventKind kind, int index, const char *id, const char *s,
                       size_t n) {
    if (e->n == e->cap) {
        int cap = e->cap ? e->cap * 2 : 8;
        ToolEvent *p = realloc(e->ev, (size_t)cap * sizeof *p);
        CHECK(p != NULL);
        e->ev = p;
        e->cap = cap;
    }
    /* Merge consecutive content or argument text of the same call into one event. */
    if (e->n > 0 && kind != TOOL_EV_CALL_START && e->ev[e->n - 1].kind == kind &&
        e->ev[e->n - 1].index == index) {
        ToolEvent *last = &e->ev[e->n - 1];
        size_t ol = strlen(last->text);
        char *t = realloc(last->text, ol + n + 1);
        CHECK(t != NULL);
        memcpy(t + ol, s, n);
        t[ol + n] = 0;
        last->text = t;
        return;
    }
    ToolEvent *ev = &e->ev[e->n++];
    memset(ev, 0, sizeof *ev);
    ev->kind = kind;
    ev->index = index;
    if (id) snprintf(ev->id, sizeof ev->id, "%s", id);
    ev->text = malloc(n + 1);
    CHECK(ev->text != NULL);
    memcpy(ev->text, s, n);
    ev->text[n] = 0;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Finds `"key"` followed by optional whitespace and ':' in s[from..n); returns the offset just
 * after the ':' and whitespace, or -1. *key_at gets the offset of the key's opening quote. */
static long find_key(const char *s, size_t n, size_t from, const char *key, size_t *key_at) {
    size_t kl = strlen(key);
    for (size_t i = from; i + kl + 2 <= n; i++) {
        if (s[i] != '"' || memcmp(s + i + 1, key, kl) != 0 || s[i + 1 + kl] != '"') continue;
        size_t j = i + kl + 2;
        while (j < n && is_ws(s[j])) j++;
        if (j >= n) return -1;            /* incomplete: maybe later */
        if (s[j] != ':') continue;
        j++;
        while (j < n && is_ws(s[j])) j++;
        if (key_at) *key_at = i;
        return (long)j;
    }
    return -1;
}

/* Decodes the complete JSON string literal at s[at..n); returns malloc'd text or NULL if the
 * literal is not complete yet (or not a string). *end gets the offset after the closing quote. */
static char *read_string_at(const char *s, size_t n, size_t at, size_t *end) {
    if (at >= n || s[at] != '"') return NULL;
    size_t j = at + 1;
    while (j < n && s[j] != '"') j += s[j] == '\\' ? 2 : 1;
    if (j >= n) return NULL;
    json_t *v = json_loadb(s + at, j + 1 - at, JSON_DECODE_ANY, NULL);
    if (!v || !json_is_string(v)) {
        json_decref(v);
        return NULL;
    }
    char *out = strdup(json_string_value(v));
    json_decref(v);
    *end = j + 1;
    return out;
}

/* Extent of the JSON value starting at s[at] (at < n). Returns the end offset of the value text
 * that is certainly part of it (for streaming), and sets *complete when the value is closed.
 * Objects and arrays end at their matching bracket; strings at the closing quote; other
 * values (numbers, true, false, null) only once a delimiter follows them. */
static size_t value_extent(const char *s, size_t n, size_t at, int *complete) {
    *complete = 0;
    char c = s[at];
    if (c == '{' || c == '[') {
        int depth = 0, in_str = 0;
        for (size_t i = at; i < n; i++) {
            char ch = s[i];
            if (in_str) {
                if (ch == '\\') i++;
                else if (ch == '"') in_str = 0;
            } else if (ch == '"') in_str = 1;
            else if (ch == '{' || ch == '[') depth++;
            else if ((ch == '}' || ch == ']') && --depth == 0) {
                *complete = 1;
                return i + 1;
            }
        }
        return n;
    }
    if (c == '"') {
        for (size_t i = at + 1; i < n; i++) {
            if (s[i] == '\\') i++;
            else if (s[i] == '"') {
                *complete = 1;
                return i + 1;
            }
        }
        return n;
    }
    for (size_t i = at; i < n; i++)
        if (strchr(",}] \t\r\n", s[i])) {
            *complete = 1;
            return i;
        }
    return at;
}

/* The model's own text of the "arguments" value, or NULL if absent or not complete. */
static char *raw_arguments(const char *body, size_t n) {
    long a = find_key(body, n, 0, "arguments", NULL);
    if (a < 0 || (size_t)a >= n) return NULL;
    int complete;
    size_t end = value_extent(body, n, (size_t)a, &complete);
    return complete ? strndup(body + a, end - (size_t)a) : NULL;
}

int hermes_parse_call(const char *body, size_t len, char **name, char **arguments) {
    *name = *arguments = NULL;
    json_t *obj = json_loadb(body, len, 0, NULL);
    if (!obj || !json_is_object(obj)) goto err;
    json_t *jn = json_object_get(obj, "name"), *ja = json_object_get(obj, "arguments");
    if (!json_is_string(jn) || !ja) goto err;
    char *raw = raw_arguments(body, len);
    if (raw) {
        json_t *rv = json_loads(raw, JSON_DECODE_ANY, NULL);
        int same = rv && json_equal(rv, ja);
        json_decref(rv);
        if (!same) {
            free(raw);
            raw = NULL;
        }
    }
    *arguments = raw ? raw : json_dumps(ja, JSON_ENCODE_ANY);
    *name = strdup(json_string_value(jn));
    json_decref(obj);
    return 0;
err:
    json_decref(obj);
    return -1;
}

void tool_calls_free(ToolCall *calls, int n) {
    for (int i = 0; i < n; i++) {
        free(calls[i].name);
        free(calls[i].arguments);
    }
    free(calls);
}

int hermes_extract(const char *text, size_t len, ToolCall **calls_out, char **content) {
    *calls_out = NULL;
    *content = NULL;
    const char *first = tag_find(text, len, CALL_OPEN);
    if (!first) goto plain;
    ToolCall *calls = NULL;
    int n = 0;
    const char *p = first, *end = text + len;
    while (p) {
        const char *b = p + strlen(CALL_OPEN);
        const char *c = tag_find(b, (size_t)(end - b), CALL_CLOSE);
        const char *bend = c ? c : end;
        ToolCall tc = {0};
        if (hermes_parse_call(b, (size_t)(bend - b), &tc.name, &tc.arguments) < 0) {
            tool_calls_free(calls, n);
            goto plain;
        }
        tool_call_id_new(tc.id);
        ToolCall *nc = realloc(calls, (size_t)(n + 1) * sizeof *nc);
        CHECK(nc != NULL);
        calls = nc;
        calls[n++] = tc;
        if (!c) break;
        const char *after = c + strlen(CALL_CLOSE);
        p = tag_find(after, (size_t)(end - after), CALL_OPEN);
    }
    *calls_out = calls;
    if (first > text) *content = strndup(text, (size_t)(first - text));
    return n;
plain:
    *content = strndup(text, len);
    return 0;
}

void hermes_init(HermesParser *p) { memset(p, 0, sizeof *p); }
void hermes_deinit(HermesParser *p) { sb_free(&p->body); }

static void start_call(HermesParser *p, ToolEvents *ev, const char *name) {
    tool_call_id_new(p->cur_id);
    push_event(ev, TOOL_EV_CALL_START, p->num_calls - 1, p->cur_id, name, strlen(name));
    p->name_sent = 1;
    p->calls_emitted = 1;
}

/* Streams what can be streamed of the current (open) call body. */
static void stream_partial(HermesParser *p, ToolEvents *ev) {
    const char *b = sb_str(&p->body);
    size_t n = p->body.len;
    n -= tag_partial_suffix(b, n, CALL_CLOSE);
    if (!p->name_sent && !p->args_first) {
        size_t name_at = 0, args_at = 0, end = 0;
        long nv = find_key(b, n, 0, "name", &name_at);
        long av = find_key(b, n, 0, "arguments", &args_at);
        if (av >= 0 && (nv < 0 || args_at < name_at)) {
            p->args_first = 1;
            return;
        }
        if (nv < 0 || av < 0) return;   /* name first, and only once "arguments" follows */
        char *name = read_string_at(b, n, (size_t)nv, &end);
        if (!name) return;
        start_call(p, ev, name);
        free(name);
    }
    if (!p->name_sent || p->args_first) return;
    long a = find_key(b, n, 0, "arguments", NULL);
    if (a < 0 || (size_t)a >= n) return;
    int complete;
    size_t have = value_extent(b, n, (size_t)a, &complete) - (size_t)a;
    if (have > p->args_sent) {
        push_event(ev, TOOL_EV_ARGS, p->num_calls - 1, NULL, b + a + p->args_sent, have - p->args_sent);
        p->args_sent = have;
    }
}

/* The current call's body is complete (closed by </tool_call> or end of output). */
static void end_call(HermesParser *p, ToolEvents *ev, int closed) {
    char *name = NULL, *args = NULL;
    if (hermes_parse_call(sb_str(&p->body), p->body.len, &name, &args) == 0) {
        if (!p->name_sent) start_call(p, ev, name);
        size_t al = strlen(args);
        if (al > p->args_sent)
            push_event(ev, TOOL_EV_ARGS, p->num_calls - 1, NULL, args + p->args_sent, al - p->args_sent);
    } else if (!p->name_sent) {
        /* Invalid JSON and nothing sent for it: the text is plain content after all. */
        p->num_calls--;
        if (!p->calls_emitted) {
            push_event(ev, TOOL_EV_CONTENT, 0, NULL, CALL_OPEN, strlen(CALL_OPEN));
            push_event(ev, TOOL_EV_CONTENT, 0, NULL, sb_str(&p->body), p->body.len);
            if (closed) push_event(ev, TOOL_EV_CONTENT, 0, NULL, CALL_CLOSE, strlen(CALL_CLOSE));
        }
    }
    free(name);
    free(args);
    sb_clear(&p->body);
    p->in_call = 0;
    p->body_scanned = 0;
    p->name_sent = p->args_first = 0;
    p->args_sent = 0;
}

static void feed_span(HermesParser *p, const char *s, size_t n, ToolEvents *ev) {
    while (n > 0) {
        if (p->in_call) {
            size_t old = p->body.len;
            sb_append(&p->body, s, n);
            size_t from = p->body_scanned;
            const char *c = tag_find(p->body.p + from, p->body.len - from, CALL_CLOSE);
            if (!c) {
                size_t k = tag_partial_suffix(p->body.p, p->body.len, CALL_CLOSE);
                p->body_scanned = p->body.len - k;
                stream_partial(p, ev);
                return;
            }
            size_t body_len = (size_t)(c - p->body.p);
            size_t consumed = body_len + strlen(CALL_CLOSE) - old;   /* bytes of s used */
            p->body.len = body_len;
            p->body.p[body_len] = 0;
            stream_partial(p, ev);
            end_call(p, ev, 1);
            s += consumed;
            n -= consumed;
            continue;
        }
        const char *o = tag_find(s, n, CALL_OPEN);
        size_t plain = o ? (size_t)(o - s) : n;
        size_t k = o ? 0 : tag_partial_suffix(s, n, CALL_OPEN);
        if (!p->calls_emitted && plain - k > 0) push_event(ev, TOOL_EV_CONTENT, 0, NULL, s, plain - k);
        if (!o) {
            memcpy(p->hold, s + n - k, k);
            p->hold_len = k;
            return;
        }
        p->in_call = 1;
        p->num_calls++;
        s = o + strlen(CALL_OPEN);
        n -= plain + strlen(CALL_OPEN);
    }
}

void hermes_feed(HermesParser *p, const char *text, size_t len, ToolEvents *ev) {
    if (p->hold_len == 0) {
        feed_span(p, text, len, ev);
        return;
    }
    size_t n;
    char *all = tag_hold_join(p->hold, &p->hold_len, text, len, &n);
    feed_span(p, all, n, ev);
    free(all);
}

void hermes_finish(HermesParser *p, ToolEvents *ev) {
    if (p->in_call) end_call(p, ev, 0);
    if (p->hold_len && !p->calls_emitted) push_event(ev, TOOL_EV_CONTENT, 0, NULL, p->hold, p->hold_len);
    p->hold_len = 0;
}
