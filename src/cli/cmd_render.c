/* cmd_render.c: `pagellm render --model DIR --messages FILE.json [--tools FILE.json]
 * [--kwargs JSON] [--add-generation-prompt] [--continue-final-message] [--chat-template FILE]`
 * prints the prompt the model's chat template makes of a conversation, byte-identical to HF
 * apply_chat_template(..., tokenize=False). The messages file holds a JSON array of messages,
 * or an OpenAI request body ({"messages": [...], "tools": [...]}). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "tok/chat.h"
#include "tok/tokenizer.h"
#include "util/err.h"
#include "util/file.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: pagellm render --model DIR --messages FILE.json [options]\n"
            "  --model DIR                 tokenizer directory (tokenizer.json, tokenizer_config.json)\n"
            "  --messages FILE.json        a JSON array of messages, or {\"messages\": [...], \"tools\": [...]}\n"
            "  --tools FILE.json           a JSON array of tool schemas\n"
            "  --kwargs JSON               extra template variables, e.g. '{\"enable_thinking\": false}'\n"
            "  --add-generation-prompt     end with the assistant header\n"
            "  --continue-final-message    leave the final message open for the model to continue\n"
            "  --chat-template FILE        use this Jinja template instead of the tokenizer's\n");
}

static json_t *load_json_file(const char *path, char *err) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j && je.line < 0) pg_err(err, "%s: %s", path, je.text);
    else if (!j) pg_err(err, "%s: invalid JSON at line %d, column %d: %s", path, je.line, je.column, je.text);
    return j;
}

int cmd_render(int argc, char **argv) {
    const char *model = NULL, *messages_path = NULL, *tools_path = NULL, *kwargs_text = NULL, *template_path = NULL;
    ChatRenderOptions opt = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--model") && has_val) model = argv[++i];
        else if (!strcmp(a, "--messages") && has_val) messages_path = argv[++i];
        else if (!strcmp(a, "--tools") && has_val) tools_path = argv[++i];
        else if (!strcmp(a, "--kwargs") && has_val) kwargs_text = argv[++i];
        else if (!strcmp(a, "--chat-template") && has_val) template_path = argv[++i];
        else if (!strcmp(a, "--add-generation-prompt")) opt.add_generation_prompt = 1;
        else if (!strcmp(a, "--continue-final-message")) opt.continue_final_message = 1;
        else {
            fprintf(stderr, "pagellm render: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model || !messages_path) {
        fprintf(stderr, "pagellm render: --model and --messages are required\n");
        usage(stderr);
        return 2;
    }
    char err[PG_ERR_LEN];
    int rc = 1;
    Tokenizer *tok = NULL;
    json_t *doc = NULL, *tools_doc = NULL, *kwargs = NULL;
    char *template_src = NULL, *out = NULL;

    doc = load_json_file(messages_path, err);
    if (!doc) goto fail;
    json_t *messages = doc;
    if (json_is_object(doc)) {
        messages = json_object_get(doc, "messages");
        if (!messages) { pg_err(err, "%s: an object must have a \"messages\" array", messages_path); goto fail; }
        opt.tools = json_object_get(doc, "tools");
        json_t *ctk = json_object_get(doc, "chat_template_kwargs");
        if (ctk) opt.kwargs = ctk;
    }
    if (!json_is_array(messages)) { pg_err(err, "%s: messages must be a JSON array", messages_path); goto fail; }
    if (tools_path) {
        tools_doc = load_json_file(tools_path, err);
        if (!tools_doc) goto fail;
        if (!json_is_array(tools_doc)) { pg_err(err, "%s: tools must be a JSON array", tools_path); goto fail; }
        opt.tools = tools_doc;
    }
    if (kwargs_text) {
        json_error_t je;
        kwargs = json_loads(kwargs_text, 0, &je);
        if (!kwargs || !json_is_object(kwargs)) { pg_err(err, "--kwargs: must be a JSON object (%s)", kwargs ? "got another type" : je.text); goto fail; }
        opt.kwargs = kwargs;
    }
    if (template_path) {
        template_src = file_read_all(template_path, 0, NULL, err);
        if (!template_src) goto fail;
        opt.template_override = template_src;
    }
    if (tok_load(&tok, model, err)) goto fail;
    out = chat_render(tok, messages, &opt, err);
    if (!out) {
        char msg[PG_ERR_LEN];
        snprintf(msg, sizeof msg, "%s", err);
        pg_err(err, "%s: %s", messages_path, msg);
        goto fail;
    }
    fwrite(out, 1, strlen(out), stdout);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "pagellm render: %s\n", err);
done:
    free(out);
    free(template_src);
    json_decref(doc);
    json_decref(tools_doc);
    json_decref(kwargs);
    tok_free(tok);
    return rc;
}
