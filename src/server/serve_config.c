/* serve_config.c: see serve_config.h. The flag table below is also the --help text. */
#include "server/serve_config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/engine_flags.h"
#include "util/err.h"
#include "util/file.h"

typedef struct FlagDoc { const char *name, *metavar, *help; } FlagDoc;

static const FlagDoc FLAGS[] = {
    {"--model", "DIR", "model directory (or give it as the first positional argument)"},
    {"--host", "HOST", "address to listen on (default: all interfaces)"},
    {"--port", "PORT", "port to listen on (default: 8000)"},
    {"--api-key", "KEY", "require `Authorization: Bearer KEY` on /v1/* (default: $VLLM_API_KEY or $PAGELLM_API_KEY, else none)"},
    {"--served-model-name", "NAME [NAME ...]", "model name(s) accepted in requests; the first is reported (default: the model path)"},
    {"--generation-config", "auto|vllm", "auto: sampling defaults from the model's generation_config.json; vllm: ignore it (default: auto)"},
    {"--chat-template", "FILE|TEMPLATE", "chat template file (or inline Jinja text) instead of the tokenizer's"},
    {"--default-chat-template-kwargs", "JSON", "template variables for every chat request, e.g. '{\"enable_thinking\": false}'"},
    {"--reasoning-parser", "qwen3", "split <think>...</think> into reasoning_content"},
    {"--enable-auto-tool-choice", NULL, "let the model call tools on its own (tool_choice auto); needs --tool-call-parser"},
    {"--tool-call-parser", "hermes", "format of tool calls in the output (Qwen3: hermes)"},
    {"--max-logprobs", "N", "most logprobs / top_logprobs a request may ask for (default: 20)"},
    {"--max-request-body-bytes", "BYTES", "larger request bodies get 413 (default: 32MiB) [pagellm]"},
    {"--shutdown-grace-period", "SECONDS", "on SIGTERM/SIGINT, let in-flight requests finish this long (default: 30) [pagellm]"},
    {"--data-parallel-size", "N", "engine replicas behind this one server, each request routed to the least loaded one (prompts sharing a prefix kept together); CPU: --threads split between them; CUDA: only 1 in this version (alias -dp)"},
    {"--worker-threads", "N", "threads for chat templates and tokenization (default: 0 = min(4, cores)) [pagellm]"},
    {"--help", NULL, "show this help"},
};

void serve_config_usage(FILE *f) {
    fprintf(f, "usage: pagellm serve MODEL_DIR [options]\n\n"
               "OpenAI-compatible HTTP server (vLLM's `vllm serve` flags). Endpoints: /v1/models,\n"
               "/v1/completions, /v1/chat/completions, /tokenize, /detokenize, /health, /version, /metrics.\n\n"
               "options:\n");
    for (size_t i = 0; i < sizeof FLAGS / sizeof FLAGS[0]; i++) {
        char left[80];
        snprintf(left, sizeof left, "%s%s%s", FLAGS[i].name, FLAGS[i].metavar ? " " : "",
                 FLAGS[i].metavar ? FLAGS[i].metavar : "");
        fprintf(f, "  %-38s %s\n", left, FLAGS[i].help);
    }
    fprintf(f, "\nengine options:\n");
    engine_flags_usage(f);
}

static int flag_known(const char *name) {
    for (size_t i = 0; i < sizeof FLAGS / sizeof FLAGS[0]; i++)
        if (!strcmp(FLAGS[i].name, name)) return 1;
    return engine_flags_known(name, NULL) || !strcmp(name, "-tp") || !strcmp(name, "-dp") || !strcmp(name, "-h");
}
static int flag_takes_value(const char *name) {
    if (!strcmp(name, "-dp")) return 1;
    for (size_t i = 0; i < sizeof FLAGS / sizeof FLAGS[0]; i++)
        if (!strcmp(FLAGS[i].name, name)) return FLAGS[i].metavar != NULL;
    int takes = 0;
    return engine_flags_known(name, &takes) && takes;
}

const char *serve_config_model_name(const ServeConfig *c) {
    return c->num_served_names ? c->served_names[0] : c->engine.model_dir;
}

int serve_config_parse(int argc, char **argv, ServeConfig *c, char *err) {
    memset(c, 0, sizeof *c);
    engine_config_default(&c->engine);
    c->port = 8000;
    c->max_logprobs = 20;
    c->max_request_body = 32ll << 20;
    c->shutdown_grace_s = 30;
    c->data_parallel_size = 1;
    EngineFlags ef;
    engine_flags_init(&ef);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) {
            if (c->engine.model_dir) return pg_err(err, "unexpected argument '%s' (the model is already '%s')", a, c->engine.model_dir);
            c->engine.model_dir = a;
            continue;
        }
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        if (eq && eq - a < (long)sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
        for (char *p = name + 2; *p; p++) if (*p == '_') *p = '-';   /* vLLM accepts --max_model_len */
        if (!strcmp(name, "-dp")) snprintf(name, sizeof name, "--data-parallel-size");
        if (!flag_known(name)) return pg_err(err, "unknown flag '%s' (see pagellm serve --help)", name);
        if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            serve_config_usage(stdout);
            return 1;
        }
        if (flag_takes_value(name)) {
            if (!val) {
                if (i + 1 >= argc) return pg_err(err, "%s: missing value", name);
                val = argv[++i];
            }
        } else if (val) {
            return pg_err(err, "%s takes no value (got '%s')", name, val);
        }
        int applied = engine_flags_apply(&ef, name, val, err);
        if (applied < 0) return -1;
        if (applied) continue;
        if (!strcmp(name, "--model")) c->engine.model_dir = val;
        else if (!strcmp(name, "--host")) snprintf(c->host, sizeof c->host, "%s", val);
        else if (!strcmp(name, "--port")) { if (flag_parse_int(name, val, 0, 65535, &c->port, err)) return -1; }
        else if (!strcmp(name, "--api-key")) { free(c->api_key); c->api_key = strdup(val); }
        else if (!strcmp(name, "--served-model-name")) {
            /* nargs='+': this value and the following non-flag arguments. */
            for (;;) {
                if (!*val) return pg_err(err, "--served-model-name: empty name");
                if (c->num_served_names >= SERVE_MAX_NAMES) return pg_err(err, "--served-model-name: at most %d names", SERVE_MAX_NAMES);
                c->served_names[c->num_served_names++] = strdup(val);
                if (i + 1 < argc && argv[i + 1][0] != '-' && !eq && c->engine.model_dir) val = argv[++i];
                else break;
            }
        }
        else if (!strcmp(name, "--generation-config")) {
            if (!strcmp(val, "vllm")) c->generation_config_vllm = 1;
            else if (!strcmp(val, "auto")) c->generation_config_vllm = 0;
            else return pg_err(err, "--generation-config %s: only 'auto' (the model's generation_config.json) and 'vllm' are supported", val);
        }
        else if (!strcmp(name, "--chat-template")) {
            free(c->chat_template);
            c->chat_template = file_read_all(val, 1 << 20, NULL, NULL);
            if (!c->chat_template) {
                if (!strpbrk(val, "{}")) return pg_err(err, "--chat-template: cannot read file '%s'", val);
                c->chat_template = strdup(val);   /* vLLM also takes the template text inline */
            }
        }
        else if (!strcmp(name, "--default-chat-template-kwargs")) {
            json_error_t je;
            json_decref(c->default_chat_template_kwargs);
            c->default_chat_template_kwargs = json_loads(val, 0, &je);
            if (!json_is_object(c->default_chat_template_kwargs))
                return pg_err(err, "--default-chat-template-kwargs: expected a JSON object, got '%s'", val);
        }
        else if (!strcmp(name, "--reasoning-parser")) {
            if (strcmp(val, "qwen3")) return pg_err(err, "--reasoning-parser: invalid choice '%s' (choose from qwen3)", val);
            c->reasoning_parser_qwen3 = 1;
        }
        else if (!strcmp(name, "--enable-auto-tool-choice")) c->enable_auto_tool_choice = 1;
        else if (!strcmp(name, "--tool-call-parser")) {
            if (strcmp(val, "hermes")) return pg_err(err, "--tool-call-parser: invalid choice '%s' (choose from hermes)", val);
            c->tool_parser_hermes = 1;
        }
        else if (!strcmp(name, "--max-logprobs")) { if (flag_parse_int(name, val, 0, PG_MAX_TOP_LOGPROBS, &c->max_logprobs, err)) return -1; }
        else if (!strcmp(name, "--max-request-body-bytes")) {
            c->max_request_body = parse_byte_size(val);
            if (c->max_request_body < 1024) return pg_err(err, "--max-request-body-bytes: invalid size '%s' (at least 1024)", val);
        }
        else if (!strcmp(name, "--shutdown-grace-period")) {
            char *end; double s = strtod(val, &end);
            if (*end || end == val || !(s >= 0 && s <= 86400)) return pg_err(err, "--shutdown-grace-period: invalid value '%s'", val);
            c->shutdown_grace_s = s;
        }
        else if (!strcmp(name, "--data-parallel-size")) {
            if (flag_parse_int(name, val, 1, 64, &c->data_parallel_size, err)) return -1;
        }
        else if (!strcmp(name, "--worker-threads")) { if (flag_parse_int(name, val, 0, 256, &c->worker_threads, err)) return -1; }
        else return pg_err(err, "flag '%s' is not handled", name);   /* table and parser out of sync */
    }
    if (!c->engine.model_dir) return pg_err(err, "missing MODEL_DIR (pagellm serve MODEL_DIR [options])");
    /* Engine flags: everything but the model path, which this parser owns. */
    ef.engine.model_dir = c->engine.model_dir;
    if (engine_flags_finish(&ef, err)) return -1;
    c->engine = ef.engine;
    c->log_level = ef.log_level;
    c->tensor_parallel_size = ef.tensor_parallel_size;
    if (c->enable_auto_tool_choice && !c->tool_parser_hermes)
        return pg_err(err, "--enable-auto-tool-choice requires --tool-call-parser");
    if (!c->api_key) {
        const char *k = getenv("VLLM_API_KEY");
        if (!k || !*k) k = getenv("PAGELLM_API_KEY");
        if (k && *k) c->api_key = strdup(k);
    }
    return 0;
}

void serve_config_free(ServeConfig *c) {
    free(c->api_key);
    for (int i = 0; i < c->num_served_names; i++) free(c->served_names[i]);
    free(c->chat_template);
    json_decref(c->default_chat_template_kwargs);
    memset(c, 0, sizeof *c);
}
