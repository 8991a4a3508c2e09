/* test_server_flags.c: `pagellm serve` flags: vLLM's names and defaults, --flag=value and
 * --flag value forms, several --served-model-name, the API key from the environment, and
 * refusals naming the flag. */
#include <stdarg.h>
#include <stdlib.h>

#include "server/serve_config.h"
#include "util/err.h"
#include "test.h"

static int parse(ServeConfig *c, char *err, int n, ...) {
    char *argv[64] = {"serve"};
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) argv[i + 1] = va_arg(ap, char *);
    va_end(ap);
    return serve_config_parse(n + 1, argv, c, err);
}

TEST(defaults) {
    ServeConfig c;
    char err[PG_ERR_LEN];
    unsetenv("VLLM_API_KEY");
    unsetenv("PAGELLM_API_KEY");
    EXPECT_EQ_INT(parse(&c, err, 1, "models/tiny-qwen3"), 0);
    EXPECT_STR(c.engine.model_dir, "models/tiny-qwen3");
    EXPECT_EQ_INT(c.port, 8000);
    EXPECT_STR(c.host, "");
    EXPECT(c.api_key == NULL);
    EXPECT_STR(serve_config_model_name(&c), "models/tiny-qwen3");
    EXPECT_EQ_INT(c.engine.async_scheduling, 0);   /* off unless asked for */
    EXPECT_EQ_INT(c.max_logprobs, 20);
    EXPECT_EQ_INT(c.engine.block_size, 16);
    EXPECT_EQ_INT(c.engine.enable_prefix_caching, 1);
    EXPECT_EQ_INT(c.engine.max_num_seqs, 256);
    EXPECT_EQ_INT(c.tensor_parallel_size, 1);
    EXPECT_EQ_INT(c.data_parallel_size, 1);
    EXPECT_EQ_INT(c.generation_config_vllm, 0);
    EXPECT_EQ_INT(c.engine.kv_cache_dtype, DT_COUNT);
    EXPECT(!c.reasoning_parser_qwen3 && !c.tool_parser_hermes && !c.enable_auto_tool_choice);
    serve_config_free(&c);
}

TEST(every_flag) {
    ServeConfig c;
    char err[PG_ERR_LEN];
    int rc = parse(&c, err, 40, "m", "--host", "127.0.0.1", "--port=9000", "--api-key", "k",
                   "--served-model-name", "a", "b", "--max-model-len", "32k", "--max-num-seqs", "8",
                   "--max-num-batched-tokens", "512", "--block-size", "32", "--no-enable-prefix-caching",
                   "--gpu-memory-utilization", "0.5", "--kv-cache-memory", "1GiB", "--seed", "5",
                   "--generation-config", "vllm", "--default-chat-template-kwargs", "{\"enable_thinking\": false}",
                   "--reasoning-parser", "qwen3", "--enable-auto-tool-choice", "--tool-call-parser=hermes",
                   "--max-logprobs", "5", "--load-format", "dummy", "--threads", "3", "--log-level", "warning");
    EXPECT_MSG(rc == 0, "%s", err);
    EXPECT_STR(c.host, "127.0.0.1");
    EXPECT_EQ_INT(c.port, 9000);
    EXPECT_STR(c.api_key, "k");
    EXPECT(c.num_served_names == 2 && !strcmp(c.served_names[1], "b"));
    EXPECT_STR(serve_config_model_name(&c), "a");
    EXPECT_EQ_INT(c.engine.max_model_len, 32000);
    EXPECT(c.engine.max_num_seqs == 8 && c.engine.max_num_batched_tokens == 512 && c.engine.block_size == 32);
    EXPECT_EQ_INT(c.engine.enable_prefix_caching, 0);
    EXPECT(c.engine.gpu_memory_utilization == 0.5f);
    EXPECT_EQ_INT(c.engine.kv_cache_memory, 1ll << 30);
    EXPECT_EQ_INT(c.engine.seed, 5);
    EXPECT_EQ_INT(c.generation_config_vllm, 1);
    EXPECT(json_is_false(json_object_get(c.default_chat_template_kwargs, "enable_thinking")));
    EXPECT(c.reasoning_parser_qwen3 && c.enable_auto_tool_choice && c.tool_parser_hermes);
    EXPECT_EQ_INT(c.max_logprobs, 5);
    EXPECT_EQ_INT(c.engine.load_format, LOAD_FORMAT_DUMMY);
    EXPECT_EQ_INT(c.engine.threads, 3);
    EXPECT_EQ_INT(c.log_level, LOG_WARN);
    serve_config_free(&c);
}

TEST(async_scheduling) {
    ServeConfig c;
    char err[PG_ERR_LEN] = "";
    EXPECT_MSG(parse(&c, err, 3, "m", "--async-scheduling", "--device=cpu") == 0, "%s", err);
    EXPECT_EQ_INT(c.engine.async_scheduling, 1);
    serve_config_free(&c);
}

TEST(data_parallel_size) {
    ServeConfig c;
    char err[PG_ERR_LEN] = "";
    EXPECT_MSG(parse(&c, err, 4, "m", "--data-parallel-size", "3", "--device=cpu") == 0, "%s", err);
    EXPECT_EQ_INT(c.data_parallel_size, 3);
    serve_config_free(&c);
    EXPECT_MSG(parse(&c, err, 4, "m", "-dp", "2", "--device=cpu") == 0, "%s", err);
    EXPECT_EQ_INT(c.data_parallel_size, 2);
    serve_config_free(&c);
    EXPECT_MSG(parse(&c, err, 3, "m", "--data_parallel_size=4", "--device=cpu") == 0, "%s", err);
    EXPECT_EQ_INT(c.data_parallel_size, 4);
    serve_config_free(&c);
    EXPECT_MSG(parse(&c, err, 3, "m", "-dp=1", "--device=cpu") == 0, "%s", err);
    EXPECT_EQ_INT(c.data_parallel_size, 1);
    serve_config_free(&c);
}

TEST(api_key_env) {
    ServeConfig c;
    char err[PG_ERR_LEN];
    setenv("PAGELLM_API_KEY", "p", 1);
    EXPECT_EQ_INT(parse(&c, err, 1, "m"), 0);
    EXPECT_STR(c.api_key, "p");
    serve_config_free(&c);
    setenv("VLLM_API_KEY", "v", 1);
    EXPECT_EQ_INT(parse(&c, err, 1, "m"), 0);
    EXPECT_STR(c.api_key, "v");
    serve_config_free(&c);
    EXPECT_EQ_INT(parse(&c, err, 3, "m", "--api-key", "flag"), 0);   /* the flag wins */
    EXPECT_STR(c.api_key, "flag");
    serve_config_free(&c);
    unsetenv("VLLM_API_KEY");
    unsetenv("PAGELLM_API_KEY");
}

TEST(tensor_parallel) {
    ServeConfig c;
    char err[PG_ERR_LEN] = "";
    EXPECT_EQ_INT(parse(&c, err, 3, "m", "-tp", "2"), 0);
    EXPECT(c.tensor_parallel_size == 2 && c.engine.tensor_parallel_size == 2);
    serve_config_free(&c);
    EXPECT_EQ_INT(parse(&c, err, 2, "m", "--tensor-parallel-size=4"), 0);
    EXPECT_EQ_INT(c.engine.tensor_parallel_size, 4);
    serve_config_free(&c);
}

TEST(byte_sizes) {
    EXPECT_EQ_INT(parse_byte_size("1000"), 1000);
    EXPECT_EQ_INT(parse_byte_size("4KiB"), 4096);
    EXPECT_EQ_INT(parse_byte_size("2GiB"), 2ll << 30);
    EXPECT_EQ_INT(parse_byte_size("1.5G"), 3ll << 29);
    EXPECT_EQ_INT(parse_byte_size("512MB"), 512000000);
    EXPECT_EQ_INT(parse_byte_size("lots"), -1);
    EXPECT_EQ_INT(parse_byte_size("-5"), -1);
    EXPECT_EQ_INT(parse_byte_size("3 parsecs"), -1);
}

static void refused(const char *want, int n, const char *a, const char *b, const char *c2) {
    ServeConfig c;
    char err[PG_ERR_LEN] = "";
    int rc = n == 1 ? parse(&c, err, 2, "m", a) : n == 2 ? parse(&c, err, 3, "m", a, b) : parse(&c, err, 4, "m", a, b, c2);
    EXPECT_MSG(rc == -1 && strstr(err, want), "%s %s: rc %d, '%s' lacks '%s'", a, b ? b : "", rc, err, want);
    serve_config_free(&c);
}

TEST(refusals) {
    refused("unknown flag '--nope'", 1, "--nope", NULL, NULL);
    refused("--port: invalid integer value 'x'", 2, "--port", "x", NULL);
    refused("--port: value 65536 is out of range", 2, "--port", "65536", NULL);
    refused("--port: missing value", 1, "--port", NULL, NULL);
    refused("--block-size: invalid choice 12", 2, "--block-size", "12", NULL);
    refused("--tensor-parallel-size: value 0 is out of range [1, 64]", 2, "--tensor-parallel-size", "0", NULL);
    refused("--tensor-parallel-size: invalid integer value 'two'", 2, "-tp", "two", NULL);
    refused("fp8 KV cache needs the CUDA backend", 3, "--kv-cache-dtype", "fp8", "--device=cpu");
    refused("--kv-cache-dtype: invalid choice 'int3'", 2, "--kv-cache-dtype", "int3", NULL);
    refused("--dtype float16: not supported", 2, "--dtype", "float16", NULL);
    refused("--gpu-memory-utilization: must be in (0, 1]", 2, "--gpu-memory-utilization", "0", NULL);
    refused("--generation-config", 2, "--generation-config", "some/dir", NULL);
    refused("--reasoning-parser: invalid choice 'r1'", 2, "--reasoning-parser", "r1", NULL);
    refused("--enable-auto-tool-choice requires --tool-call-parser", 1, "--enable-auto-tool-choice", NULL, NULL);
    refused("--default-chat-template-kwargs: expected a JSON object", 2, "--default-chat-template-kwargs", "3", NULL);
    refused("--load-format: invalid choice 'gguf'", 2, "--load-format", "gguf", NULL);
    refused("--log-level: invalid choice 'loud'", 2, "--log-level", "loud", NULL);
    refused("--enforce-eager takes no value", 1, "--enforce-eager=1", NULL, NULL);
    refused("--async-scheduling takes no value", 1, "--async-scheduling=1", NULL, NULL);
    refused("--chat-template: cannot read file", 2, "--chat-template", "/no/such/file", NULL);
    refused("--data-parallel-size: value 0 is out of range [1, 64]", 2, "--data-parallel-size", "0", NULL);
    refused("--data-parallel-size: value 65 is out of range", 2, "-dp", "65", NULL);
    refused("--data-parallel-size: invalid integer value '1.5'", 2, "--data-parallel-size", "1.5", NULL);
    refused("--data-parallel-size: invalid integer value 'two'", 2, "-dp", "two", NULL);
    refused("--data-parallel-size: missing value", 1, "-dp", NULL, NULL);
#ifndef PAGELLM_HAVE_CUDA
    refused("built without CUDA", 2, "--device", "cuda", NULL);
#else
    {   /* one replica per GPU (or per TP group): accepted; the GPUs are checked at start-up */
        ServeConfig dc;
        char derr[PG_ERR_LEN] = "";
        EXPECT_MSG(parse(&dc, derr, 4, "m", "-dp", "2", "--device=cuda") == 0, "%s", derr);
        EXPECT_EQ_INT(dc.data_parallel_size, 2);
        serve_config_free(&dc);
    }
#endif
    ServeConfig c;
    char err[PG_ERR_LEN] = "";
    char *argv[] = {"serve", "--port", "1"};
    EXPECT_EQ_INT(serve_config_parse(3, argv, &c, err), -1);
    EXPECT_CONTAINS(err, "missing MODEL_DIR");
    serve_config_free(&c);
}

int main(void) {
    RUN(defaults);
    RUN(every_flag);
    RUN(async_scheduling);
    RUN(data_parallel_size);
    RUN(api_key_env);
    RUN(tensor_parallel);
    RUN(byte_sizes);
    RUN(refusals);
    TEST_MAIN_END();
}
