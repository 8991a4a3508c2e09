/* test_startup.c: vLLM's CUDA graph capture sizes and default step token budget (engine/startup.h). The profiling forward and
 * the capture itself need a GPU (tests/gpu, scripts/gpu_check.sh). */
#include <stdlib.h>
#include "engine/startup.h"
#include "test.h"

/* vLLM's list for max = min(2 * max_seqs, 512): [1, 2, 4] + range(8, 256, 8) + range(256, max+1, 16) */
static int vllm_list(int max_seqs, int *out) {
    int max = 2 * max_seqs < 512 ? 2 * max_seqs : 512, n = 0;
    for (int b = 1; b <= 4 && b <= max; b *= 2) out[n++] = b;
    for (int b = 8; b < 256 && b <= max; b += 8) out[n++] = b;
    for (int b = 256; b <= max; b += 16) out[n++] = b;
    return n;
}

TEST(default_256) {
    int s[64], n = startup_capture_sizes(256, 2048, s, 64);
    EXPECT_EQ_INT(n, 35); /* 1, 2, 4, 8..248 (31), 256 */
    EXPECT_EQ_INT(s[0], 1);
    EXPECT_EQ_INT(s[3], 8);
    EXPECT_EQ_INT(s[4], 16);
    EXPECT_EQ_INT(s[33], 248);
    EXPECT_EQ_INT(s[34], 256);
}

TEST(prefix_of_vllm_list) {
    int v[64], s[64];
    for (int seqs = 1; seqs <= 600; seqs++) {
        int nv = vllm_list(seqs, v), n = startup_capture_sizes(seqs, 1 << 20, s, 64);
        EXPECT_MSG(n >= 1 && n <= nv, "max_seqs %d: %d sizes of vLLM's %d", seqs, n, nv);
        for (int i = 0; i < n; i++) EXPECT_MSG(s[i] == v[i], "max_seqs %d: size %d is %d, vLLM %d", seqs, i, s[i], v[i]);
        /* every decode batch fits the last size, unless vLLM's list stops below max_seqs */
        if (n) EXPECT_MSG(s[n - 1] >= seqs || n == nv, "max_seqs %d: last size %d", seqs, s[n - 1]);
        if (n >= 2) EXPECT_MSG(s[n - 2] < seqs, "max_seqs %d: size %d not needed", seqs, s[n - 2]);
    }
}

TEST(bounded_by_tokens_and_cap) {
    int s[64], n = startup_capture_sizes(256, 20, s, 64);
    EXPECT_EQ_INT(n, 5); /* 1 2 4 8 16 */
    EXPECT_EQ_INT(s[n - 1], 16);
    n = startup_capture_sizes(20, 4096, s, 64);
    EXPECT_EQ_INT(n, 6); /* 1 2 4 8 16 24 */
    EXPECT_EQ_INT(s[n - 1], 24);
    n = startup_capture_sizes(512, 8192, s, 64);
    EXPECT_EQ_INT(n, 51);
    EXPECT_EQ_INT(s[n - 1], 512);
    n = startup_capture_sizes(512, 8192, s, 10);
    EXPECT_EQ_INT(n, 10);
    n = startup_capture_sizes(1, 8192, s, 64);
    EXPECT_EQ_INT(n, 1);
}

/* vLLM's EngineArgs.get_batch_defaults for its OpenAI server: 8192 at >= 70 GiB unless the name
 * says A100, else 2048 */
TEST(default_budget_by_device) {
    const long long GiB = 1LL << 30;
    EXPECT_EQ_INT(startup_default_batched_tokens(85020000000LL, "NVIDIA H100 80GB HBM3"), 8192);
    EXPECT_EQ_INT(startup_default_batched_tokens(150000000000LL, "NVIDIA H200"), 8192);
    EXPECT_EQ_INT(startup_default_batched_tokens(85100000000LL, "NVIDIA A100-SXM4-80GB"), 2048);
    EXPECT_EQ_INT(startup_default_batched_tokens(85100000000LL, "nvidia a100 80gb pcie"), 2048);
    EXPECT_EQ_INT(startup_default_batched_tokens(70 * GiB, NULL), 8192);
    EXPECT_EQ_INT(startup_default_batched_tokens(70 * GiB - 1, "NVIDIA H100 PCIe"), 2048);
    EXPECT_EQ_INT(startup_default_batched_tokens(24 * GiB, "NVIDIA GeForce RTX 4090"), 2048);
    EXPECT_EQ_INT(startup_default_batched_tokens(-1, NULL), 2048); /* CPU: unknown */
    EXPECT_EQ_INT(startup_default_batched_tokens(0, "A1"), 2048);
    EXPECT_EQ_INT(startup_default_batched_tokens(80 * GiB, "A10"), 8192); /* not an A100 */
}

int main(void) {
    unsetenv("PAGELLM_GRAPH_MAX_SIZE"); /* the A/B knob would cap the sizes checked here */
    RUN(default_256);
    RUN(prefix_of_vllm_list);
    RUN(bounded_by_tokens_and_cap);
    RUN(default_budget_by_device);
    TEST_MAIN_END();
}
