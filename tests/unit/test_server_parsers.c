/* test_server_parsers.c: the Qwen3 reasoning parser and the hermes tool-call parser on scripted
 * model text, whole and streamed in every split (one byte at a time, and every two-piece cut). */
#include <jansson.h>

#include "server/parsers/reasoning_qwen3.h"
#include "server/parsers/tool_hermes.h"
#include "test.h"

static void rq3_whole(const char *text, int opens, StrBuf *r, StrBuf *c) {
    ReasoningQwen3 p;
    rq3_init(&p, opens);
    rq3_feed(&p, text, strlen(text), r, c);
    rq3_finish(&p, r, c);
}

/* Streams text in pieces of `step` bytes (0 = two pieces cut at `cut`). */
static void rq3_stream(const char *text, int opens, size_t step, size_t cut, StrBuf *r, StrBuf *c) {
    ReasoningQwen3 p;
    rq3_init(&p, opens);
    size_t n = strlen(text);
    if (step == 0) {
        rq3_feed(&p, text, cut, r, c);
        rq3_feed(&p, text + cut, n - cut, r, c);
    } else {
        for (size_t i = 0; i < n; i += step) rq3_feed(&p, text + i, i + step <= n ? step : n - i, r, c);
    }
    rq3_finish(&p, r, c);
}

static void check_rq3(const char *text, int opens, const char *want_r, const char *want_c) {
    StrBuf r = {0}, c = {0};
    rq3_whole(text, opens, &r, &c);
    EXPECT_STR(sb_str(&r), want_r);
    EXPECT_STR(sb_str(&c), want_c);
    size_t n = strlen(text);
    for (size_t cut = 0; cut <= n; cut++) {
        sb_clear(&r);
        sb_clear(&c);
        rq3_stream(text, opens, 0, cut, &r, &c);
        EXPECT_MSG(!strcmp(sb_str(&r), want_r) && !strcmp(sb_str(&c), want_c),
                   "cut %zu: r=\"%s\" c=\"%s\"", cut, sb_str(&r), sb_str(&c));
    }
    sb_clear(&r);
    sb_clear(&c);
    rq3_stream(text, opens, 1, 0, &r, &c);
    EXPECT_STR(sb_str(&r), want_r);
    EXPECT_STR(sb_str(&c), want_c);
    sb_free(&r);
    sb_free(&c);
}

TEST(reasoning_basic) {
    check_rq3("<think>\nLet me think.\n</think>\n\nHello!", 0, "\nLet me think.\n", "\n\nHello!");
    check_rq3("plain answer, no thinking", 0, "", "plain answer, no thinking");
    /* Prompt opened the block (templates that end the generation prompt with <think>). */
    check_rq3("reasoning here</think>answer", 1, "reasoning here", "answer");
    /* Cut off by max_tokens inside the think block: all reasoning. */
    check_rq3("<think>still thinking <thi", 0, "still thinking <thi", "");
    /* A stray </think> without <think> and no block opened by the prompt: streamed text cannot be
     * taken back, so what came before stays content (the same whole or streamed). */
    check_rq3("abc</think>def", 0, "", "abcdef");
    /* Tags inside content after the block are plain text. */
    check_rq3("<think>r</think>c <think>x</think>", 0, "r", "c <think>x</think>");
    /* Almost-tags are text. */
    check_rq3("a <thin k> b </thinking>", 0, "", "a <thin k> b </thinking>");
    check_rq3("<think></think>", 0, "", "");
}

TEST(reasoning_prompt_detection) {
    EXPECT(!rq3_prompt_opens_think("<|im_start|>assistant\n"));
    EXPECT(rq3_prompt_opens_think("<|im_start|>assistant\n<think>\n"));
    EXPECT(!rq3_prompt_opens_think("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
}

/* Runs the streaming parser over text in the given pieces and rebuilds content and calls. */
typedef struct Rebuilt {
    StrBuf content;
    int ncalls;
    StrBuf names[4], args[4];
    int order_ok;   /* every ARGS event comes after its CALL_START */
} Rebuilt;

static void rebuild(const char *text, size_t step, size_t cut, Rebuilt *out) {
    memset(out, 0, sizeof *out);
    out->order_ok = 1;
    HermesParser p;
    hermes_init(&p);
    ToolEvents ev = {0};
    size_t n = strlen(text);
    if (step == 0) {
        hermes_feed(&p, text, cut, &ev);
        hermes_feed(&p, text + cut, n - cut, &ev);
    } else {
        for (size_t i = 0; i < n; i += step) hermes_feed(&p, text + i, i + step <= n ? step : n - i, &ev);
    }
    hermes_finish(&p, &ev);
    for (int i = 0; i < ev.n; i++) {
        ToolEvent *e = &ev.ev[i];
        if (e->kind == TOOL_EV_CONTENT) sb_puts(&out->content, e->text);
        else if (e->kind == TOOL_EV_CALL_START) {
            EXPECT(e->index == out->ncalls && e->index < 4);
            EXPECT(!strncmp(e->id, "chatcmpl-tool-", 14) && strlen(e->id) == 14 + 32);
            sb_puts(&out->names[out->ncalls++], e->text);
        } else {
            if (e->index >= out->ncalls) out->order_ok = 0;
            else sb_puts(&out->args[e->index], e->text);
        }
    }
    tool_events_free(&ev);
    hermes_deinit(&p);
}
static void rebuilt_free(Rebuilt *r) {
    sb_free(&r->content);
    for (int i = 0; i < 4; i++) sb_free(&r->names[i]), sb_free(&r->args[i]);
}

/* Checks hermes_extract and every streamed split against the expected calls. */
static void check_hermes(const char *text, const char *want_content, int want_n, const char **names,
                         const char **args) {
    ToolCall *calls;
    char *content;
    int n = hermes_extract(text, strlen(text), &calls, &content);
    EXPECT_EQ_INT(n, want_n);
    if (want_content) EXPECT_MSG(content && !strcmp(content, want_content), "content \"%s\"", content ? content : "(null)");
    else EXPECT_MSG(content == NULL, "content \"%s\"", content);
    for (int i = 0; i < n && i < want_n; i++) {
        EXPECT_STR(calls[i].name, names[i]);
        EXPECT_STR(calls[i].arguments, args[i]);
        EXPECT(!strncmp(calls[i].id, "chatcmpl-tool-", 14));
    }
    tool_calls_free(calls, n);
    free(content);
    size_t len = strlen(text);
    for (size_t cut = 0; cut <= len + 1; cut++) {
        Rebuilt r;
        if (cut == len + 1) rebuild(text, 1, 0, &r);
        else rebuild(text, 0, cut, &r);
        EXPECT_MSG(r.ncalls == want_n, "cut %zu: %d calls", cut, r.ncalls);
        EXPECT(r.order_ok);
        EXPECT_MSG(!strcmp(sb_str(&r.content), want_content ? want_content : ""), "cut %zu: content \"%s\"", cut, sb_str(&r.content));
        for (int i = 0; i < r.ncalls && i < want_n; i++) {
            EXPECT_MSG(!strcmp(sb_str(&r.names[i]), names[i]), "cut %zu: name \"%s\"", cut, sb_str(&r.names[i]));
            EXPECT_MSG(!strcmp(sb_str(&r.args[i]), args[i]), "cut %zu: args \"%s\"", cut, sb_str(&r.args[i]));
        }
        rebuilt_free(&r);
    }
}

TEST(hermes_single_and_multi) {
    const char *n1[] = {"get_weather"}, *a1[] = {"{\"city\": \"Paris\", \"unit\": \"c\"}"};
    check_hermes("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>",
                 NULL, 1, n1, a1);
    check_hermes("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>",
                 "Let me check.\n", 1, n1, a1);
    const char *n2[] = {"a", "b"}, *a2[] = {"{\"x\": {\"y\": [1, 2]}}", "{}"};
    check_hermes("<tool_call>{\"name\": \"a\", \"arguments\": {\"x\": {\"y\": [1, 2]}}}</tool_call>\n"
                 "<tool_call>{\"name\": \"b\", \"arguments\": {}}</tool_call>",
                 NULL, 2, n2, a2);
    /* Unterminated last call (cut by max_tokens right after the JSON) still counts. */
    check_hermes("<tool_call>{\"name\": \"a\", \"arguments\": {}}", NULL, 1, n2, a2 + 1);
    /* Escaped quotes and non-ASCII in name and arguments. */
    const char *n3[] = {"say\"hi"}, *a3[] = {"{\"t\": \"h\\u00e9 \\\"q\\\" caf\xc3\xa9 }\"}"};
    check_hermes("<tool_call>{\"name\": \"say\\\"hi\", \"arguments\": {\"t\": \"h\\u00e9 \\\"q\\\" caf\xc3\xa9 }\"}}</tool_call>",
                 NULL, 1, n3, a3);
}

TEST(hermes_fallbacks) {
    /* Invalid JSON: the whole text is content. */
    const char *t1 = "<tool_call>{\"name\": oops}</tool_call>";
    check_hermes(t1, t1, 0, NULL, NULL);
    /* No "arguments": not a call. */
    const char *t2 = "x <tool_call>{\"name\": \"a\"}</tool_call>";
    check_hermes(t2, t2, 0, NULL, NULL);
    /* No tags at all, and almost-tags. */
    check_hermes("just text <tool_cal", "just text <tool_cal", 0, NULL, NULL);
}

TEST(hermes_arguments_not_last) {
    /* "arguments" before "name": the value's own text, sent after the name at the end. */
    const char *n[] = {"f"}, *a[] = {"{\"k\":1}"};
    check_hermes("<tool_call>{\"arguments\": {\"k\":1}, \"name\": \"f\"}</tool_call>", NULL, 1, n, a);
    const char *n2[] = {"g"}, *a2[] = {"[1,2]"};
    check_hermes("<tool_call>{\"name\": \"g\", \"arguments\": [1,2], \"extra\": true}</tool_call>", NULL, 1, n2, a2);
    const char *n3[] = {"h"}, *a3[] = {"12.5"};
    check_hermes("<tool_call>{\"name\": \"h\", \"arguments\": 12.5 }</tool_call>", NULL, 1, n3, a3);
    /* Duplicate key: the raw text differs from the parsed value, so it is re-serialized. */
    const char *n4[] = {"d"}, *a4[] = {"{\"z\": 2}"};
    ToolCall *calls; char *content;
    /* the length is the literal's own: the old hard-coded 80 read past its end */
    const char *dup = "<tool_call>{\"name\": \"d\", \"arguments\": 1, \"arguments\": {\"z\":2}}</tool_call>";
    EXPECT_EQ_INT(hermes_extract(dup, strlen(dup), &calls, &content), 1);
    (void)n4; EXPECT_STR(calls[0].arguments, a4[0]);
    tool_calls_free(calls, 1); free(content);
}

TEST(hermes_streams_incrementally) {
    /* Name is sent before the arguments complete, and arguments arrive in several deltas. */
    const char *text = "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": \"long value here\"}}</tool_call>";
    HermesParser p;
    hermes_init(&p);
    ToolEvents ev = {0};
    int name_seen_at = -1, args_events = 0;
    for (size_t i = 0; i < strlen(text); i++) {
        hermes_feed(&p, text + i, 1, &ev);
        for (int k = 0; k < ev.n; k++) {
            if (ev.ev[k].kind == TOOL_EV_CALL_START) name_seen_at = (int)i;
            if (ev.ev[k].kind == TOOL_EV_ARGS) args_events++;
        }
        tool_events_clear(&ev);
    }
    hermes_finish(&p, &ev);
    tool_events_free(&ev);
    hermes_deinit(&p);
    EXPECT(name_seen_at > 0 && name_seen_at < (int)strlen("<tool_call>{\"name\": \"f\", \"arguments\": {"));
    EXPECT(args_events > 10);
}

int main(void) {
    RUN(reasoning_basic);
    RUN(reasoning_prompt_detection);
    RUN(hermes_single_and_multi);
    RUN(hermes_fallbacks);
    RUN(hermes_arguments_not_last);
    RUN(hermes_streams_incrementally);
    TEST_MAIN_END();
}
