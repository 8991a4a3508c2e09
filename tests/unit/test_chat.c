/* test_chat.c: chat rendering byte-identical to transformers' apply_chat_template(tokenize=False)
 * on the Qwen3 tokenizer, for every conversation in tests/fixtures/chat/qwen3_chat_goldens.json
 * (made by scripts/make_chat_goldens.py): once through chat_render_template with the template
 * text, once through chat_render with the real tokenizer directory. Conversations on which HF
 * raises must fail here too, with a message. Plus input validation and concurrent renders. */
#include <pthread.h>

#include "test.h"
#include "tok/chat.h"
#include "tok/tokenizer.h"
#include "util/err.h"
#include "util/file.h"

static json_t *g_goldens;
static char *g_qwen3_template, *g_parts_template;

static int load_fixtures(void) {
    json_error_t je;
    g_goldens = json_load_file(fixture_path("tests/fixtures/chat/qwen3_chat_goldens.json"), 0, &je);
    json_t *cfg = json_load_file(fixture_path("tests/fixtures/qwen3-tokenizer/tokenizer_config.json"), 0, &je);
    if (cfg) g_qwen3_template = strdup(json_string_value(json_object_get(cfg, "chat_template")));
    json_decref(cfg);
    g_parts_template = file_read_all(fixture_path("tests/fixtures/chat/qwen3_content_parts.jinja"), 0, NULL, NULL);
    return g_goldens && g_qwen3_template && g_parts_template;
}

static void case_options(json_t *c, ChatRenderOptions *opt) {
    memset(opt, 0, sizeof *opt);
    opt->add_generation_prompt = json_is_true(json_object_get(c, "add_generation_prompt"));
    opt->tools = json_object_get(c, "tools");
    opt->kwargs = json_object_get(c, "kwargs");
    opt->continue_final_message = json_is_true(json_object_get(c, "continue_final_message"));
}

/* Checks one golden case's output; returns 1 when it matches. */
static int check_case(json_t *c, const char *out, const char *err, const char *how) {
    const char *name = json_string_value(json_object_get(c, "name"));
    json_t *want = json_object_get(c, "expected");
    if (!want) {
        EXPECT_MSG(out == NULL, "%s (%s): rendered but HF raised %s", name, how, json_string_value(json_object_get(c, "error")));
        EXPECT_MSG(out != NULL || err[0], "%s (%s): failed without a message", name, how);
        return out == NULL;
    }
    EXPECT_MSG(out != NULL, "%s (%s): failed: %s", name, how, err);
    if (!out) return 0;
    int same = !strcmp(out, json_string_value(want));
    EXPECT_MSG(same, "%s (%s):\n---- got ----\n%s\n---- want ----\n%s\n", name, how, out, json_string_value(want));
    return same;
}

TEST(goldens_via_template_text) {
    json_t *cases = json_object_get(g_goldens, "cases");
    json_t *special = json_object_get(g_goldens, "special_tokens_map");
    EXPECT(json_array_size(cases) >= 150);
    size_t i, ok = 0;
    json_t *c;
    json_array_foreach(cases, i, c) {
        ChatRenderOptions opt;
        case_options(c, &opt);
        const char *tpl = json_object_get(c, "template") ? g_parts_template : g_qwen3_template;
        char err[PG_ERR_LEN] = "";
        char *out = chat_render_template(tpl, special, json_object_get(c, "messages"), &opt, err);
        ok += check_case(c, out, err, "template text");
        free(out);
    }
    fprintf(stderr, "  %zu/%zu golden conversations match\n", ok, json_array_size(cases));
}

TEST(goldens_via_tokenizer_dir) {
    Tokenizer *tok = NULL;
    char err[PG_ERR_LEN] = "";
    int rc = tok_load(&tok, fixture_path("tests/fixtures/qwen3-tokenizer"), err);
    EXPECT_MSG(rc == 0, "tok_load: %s", err);
    if (rc) return;
    json_t *cases = json_object_get(g_goldens, "cases");
    size_t i, ok = 0, n = 0;
    json_t *c;
    json_array_foreach(cases, i, c) {
        ChatRenderOptions opt;
        case_options(c, &opt);
        if (json_object_get(c, "template")) opt.template_override = g_parts_template;
        char e2[PG_ERR_LEN] = "";
        char *out = chat_render(tok, json_object_get(c, "messages"), &opt, e2);
        ok += check_case(c, out, e2, "tokenizer dir");
        n++;
        free(out);
    }
    fprintf(stderr, "  %zu/%zu via tok_load + chat_render\n", ok, n);
    tok_free(tok);
}

TEST(input_errors) {
    char err[PG_ERR_LEN];
    json_t *empty = json_array();
    EXPECT(chat_render_template(g_qwen3_template, NULL, empty, NULL, err) == NULL);
    EXPECT_CONTAINS(err, "empty conversation");
    json_t *bad = json_pack("[s]", "hello");
    EXPECT(chat_render_template(g_qwen3_template, NULL, bad, NULL, err) == NULL);
    EXPECT_CONTAINS(err, "messages[0]");
    json_t *msgs = json_pack("[{s:s,s:s}]", "role", "user", "content", "hi");
    json_t *tools = json_pack("[s]", "not a schema");
    ChatRenderOptions opt = {0};
    opt.tools = tools;
    EXPECT(chat_render_template(g_qwen3_template, NULL, msgs, &opt, err) == NULL);
    EXPECT_CONTAINS(err, "tools[0]");
    json_t *kw = json_pack("{s:[]}", "messages");
    ChatRenderOptions opt2 = {0};
    opt2.kwargs = kw;
    EXPECT(chat_render_template(g_qwen3_template, NULL, msgs, &opt2, err) == NULL);
    EXPECT_CONTAINS(err, "messages");
    EXPECT(chat_render_template("{{ raise_exception('System role not supported') }}", NULL, msgs, NULL, err) == NULL);
    EXPECT_CONTAINS(err, "System role not supported");
    EXPECT(chat_render_template("{% if %}", NULL, msgs, NULL, err) == NULL);
    EXPECT_CONTAINS(err, "chat template: line 1");
    ChatRenderOptions both = {0};
    both.add_generation_prompt = 1;
    both.continue_final_message = 1;
    EXPECT(chat_render_template(g_qwen3_template, NULL, msgs, &both, err) == NULL);
    json_decref(empty);
    json_decref(bad);
    json_decref(msgs);
    json_decref(tools);
    json_decref(kw);
}

typedef struct { json_t *cases, *special; int failures; } ThreadArg;

static void *render_all(void *p) {
    ThreadArg *a = p;
    size_t i;
    json_t *c;
    json_array_foreach(a->cases, i, c) {
        if (i % 3) continue;
        ChatRenderOptions opt;
        case_options(c, &opt);
        const char *tpl = json_object_get(c, "template") ? g_parts_template : g_qwen3_template;
        char err[PG_ERR_LEN];
        char *out = chat_render_template(tpl, a->special, json_object_get(c, "messages"), &opt, err);
        json_t *want = json_object_get(c, "expected");
        if (want ? !out || strcmp(out, json_string_value(want)) : out != NULL) a->failures++;
        free(out);
    }
    return NULL;
}

TEST(concurrent_renders) {
    /* jansson values are only read here (json_object_get never writes), so sharing is safe */
    pthread_t th[4];
    ThreadArg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (ThreadArg){json_object_get(g_goldens, "cases"), json_object_get(g_goldens, "special_tokens_map"), 0};
        pthread_create(&th[i], NULL, render_all, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        EXPECT_EQ_INT(args[i].failures, 0);
    }
}

int main(void) {
    if (!load_fixtures()) {
        fprintf(stderr, "cannot load tests/fixtures/chat goldens or the qwen3 tokenizer config\n");
        return 1;
    }
    RUN(goldens_via_template_text);
    RUN(goldens_via_tokenizer_dir);
    RUN(input_errors);
    RUN(concurrent_renders);
    json_decref(g_goldens);
    free(g_qwen3_template);
    free(g_parts_template);
    TEST_MAIN_END();
}
