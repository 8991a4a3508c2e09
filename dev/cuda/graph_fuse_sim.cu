/* graph_fuse_sim.cu: host-only check of graph.cu's peephole rewrites (run_log, try_fuse_pro)
 * on a Qwen3-shaped decode log (2 layers, D 4096, F 12288, 32/8 heads of 128): every launcher is
 * a stub that prints what it would launch, and each scenario's count of fused launches is
 * checked. No GPU needed (nvcc for the CUDA headers and runtime library only). Build and run,
 * after the CPU build (for util/):
 *   nvcc -std=c++17 -Isrc dev/cuda/graph_fuse_sim.cu build/libpagellm_core.a -o /tmp/graph_fuse_sim \
 *     -lm -lpthread && /tmp/graph_fuse_sim
 * Expected per layer with everything on GEMV v4 and rows <= 4: qkv(+norm), rope, kv store,
 * attention, o(+add), gate/up(+norm), down(+silu, +add): 7 launches instead of 10. */
#include "backend/cuda/graph.cu"

static const char *nm(const void *p);
void cuda_embed(CudaCtx *, bf16 *o, const bf16 *, int) { printf("  embed -> %s\n", nm(o)); }
void cuda_rmsnorm(CudaCtx *, bf16 *o, bf16 *res, const bf16 *x, const bf16 *, int, int, float) {
    printf("  rmsnorm out=%s res=%s x=%s\n", nm(o), nm(res), nm(x)); }
void cuda_gemm(CudaCtx *, void *o, int, const bf16 *x, const bf16 *w, int, int, int) {
    printf("  gemm %s = %s @ %s\n", nm(o), nm(x), nm(w)); }
void cuda_add_bias(CudaCtx *, bf16 *, const bf16 *, int, int) {}
void cuda_qk_norm_rope(CudaCtx *, bf16 *, bf16 *, const bf16 *, const bf16 *, int, int, int, float, const RopeParams *) { printf("  qk_norm_rope\n"); }
void cuda_kv_store(CudaCtx *, void *, void *, const bf16 *, const bf16 *, int, int) { printf("  kv_store\n"); }
void cuda_attention(CudaCtx *, bf16 *o, const bf16 *, const void *, const void *, int, int, int) { printf("  attention -> %s\n", nm(o)); }
void cuda_silu_mul(CudaCtx *, bf16 *o, const bf16 *g, const bf16 *u, int, int) { printf("  silu %s = silu(%s)*%s\n", nm(o), nm(g), nm(u)); }
void cuda_gather_rows(CudaCtx *, bf16 *o, const bf16 *x, int) { printf("  gather %s <- %s\n", nm(o), nm(x)); }
void cuda_comm_exec(CudaCtx *, const OpRec *) { printf("  allreduce\n"); }
void cuda_gemv1_multi(CudaCtx *, const GemvSegs *, int, const bf16 *, int, int) { printf("  gemv1 multi\n"); }
void cuda_gemv4_multi(CudaCtx *, const GemvSegs *sg, int, const bf16 *x, int, int) {
    printf("  gemv4 multi x=%s:", nm(x)); for (int i = 0; i < sg->nseg; i++) printf(" %s@%s", nm(sg->out[i]), nm(sg->w[i])); printf("\n"); }
void cuda_meta_reserve(CudaCtx *, int, int, int) {}
void cuda_attn_reserve(CudaCtx *, int) {}
void cuda_rope_reserve(CudaCtx *, int) {}
void cuda_logits_reserve(CudaCtx *, int) {}
float cuda_time_median_us(CudaCtx *, void (*)(void *), void *) { printf("  (timing)\n"); return 1.f; }
int SIM_LT = 0; /* 1: cuBLASLt for the o-proj shape */
int cuda_gemm_path(CudaCtx *, void *, int, const bf16 *, const bf16 *w, int, int N, int K) {
    return SIM_LT && K == 4096 && N == 4096 ? 0 : 4; }
int cuda_gemv_supported(int rows, int N, int K, const void *, const void *, const void *) { return rows <= 8 && K % 8 == 0 && N > 0; }
int cuda_gemv4_supported(int rows, int K, const void *, const GemvSegs *) { return rows <= 8 && K % 512 == 0; }
int cuda_gemv4_pro_supported(const CudaCtx *, const GemvPro *p, int rows, int K, const GemvSegs *sg) {
    if (p->kind == GEMV_PRO_NONE && !p->add) return 0;
    if (p->add && sg->nseg != 1) return 0;
    return rows <= 4 && K % 512 == 0; }
void cuda_gemv4_pro(CudaCtx *, const GemvSegs *sg, const GemvPro *p, int, int) {
    static const char *k[] = {"NONE", "SILU", "NORM"};
    printf("  GEMV4-PRO %s%s x=%s a=%s b=%s:", k[p->kind], p->add ? "+ADD" : "", nm(p->x), nm(p->a), nm(p->b));
    for (int i = 0; i < sg->nseg; i++) printf(" %s@%s", nm(sg->out[i]), nm(sg->w[i])); printf("\n"); }

/* buffers: named addresses */
static char B[64][256];
static const char *names[64];
static int nb;
static void *buf(const char *n) { for (int i = 0; i < nb; i++) if (!strcmp(names[i], n)) return B[i]; names[nb] = n; return B[nb++]; }
static const char *nm(const void *p) { if (!p) return "-"; for (int i = 0; i < nb; i++) if (p == B[i]) return names[i]; return "?"; }

static CudaCtx C;
static void rec(int kind, const char *p0, const char *p1, const char *p2, const char *p3, int i0, int i1, int i2) {
    OpRec *r = cuda_graph_append(&C);
    r->kind = kind; r->p[0] = p0 ? buf(p0) : NULL; r->p[1] = p1 ? buf(p1) : NULL; r->p[2] = p2 ? buf(p2) : NULL; r->p[3] = p3 ? buf(p3) : NULL;
    r->i[0] = i0; r->i[1] = i1; r->i[2] = i2; r->f = 1e-6f;
}
static void build_log(int T) {
    const int D = 4096, F = 12288, QD = 4096, KD = 1024, L = 2;
    static char w[64][16];
    int nw = 0;
    C.nlog = 0;
    C.T = T;
    rec(OP_EMBED, "x", "emb", 0, 0, D, 0, 0);
    for (int l = 0; l < L; l++) {
#define W(s) (snprintf(w[nw], 16, "%s%d", s, l), w[nw++])
        rec(OP_RMSNORM, "xn", l ? "x" : NULL, l ? "tmp" : "x", W("in_n"), T, D, 0);
        rec(OP_MATMUL, "q", "xn", W("wq"), 0, T, QD, D);
        rec(OP_MATMUL, "k", "xn", W("wk"), 0, T, KD, D);
        rec(OP_MATMUL, "v", "xn", W("wv"), 0, T, KD, D);
        rec(OP_QKROPE, "q", "k", W("qn"), W("kn"), 32, 8, 128);
        rec(OP_KVSTORE, "kc", "vc", "k", "v", 8, 128, 0);
        rec(OP_ATTN, "att", "q", "kc", "vc", 32, 8, 128);
        rec(OP_MATMUL, "tmp", "att", W("wo"), 0, T, D, QD);
        rec(OP_RMSNORM, "xn", "x", "tmp", W("post_n"), T, D, 0);
        rec(OP_MATMUL, "gate", "xn", W("wg"), 0, T, F, D);
        rec(OP_MATMUL, "up", "xn", W("wu"), 0, T, F, D);
        rec(OP_SILU, "gate", "gate", "up", 0, T, F, 0);
        rec(OP_MATMUL, "tmp", "gate", W("wd"), 0, T, D, F);
#undef W
    }
    rec(OP_RMSNORM, "xn", "x", "tmp", "fnorm", T, D, 0);
    rec(OP_GATHER, "rows", "xn", 0, 0, D, 0, 0);
    rec(OP_LOGITS, "logits", "rows", "lm", 0, T, 151936, D);
}

/* One scenario: rows T, o-proj on cuBLASLt or not, whole step or flushed part; want fused launches. */
static int scenario(int T, int lt, int whole, long want) {
    SIM_LT = lt;
    C.fused_pro = 0;
    build_log(T);
    printf("T=%d, o-proj on cuBLASLt=%d, %s:\n", T, lt, whole ? "whole step" : "flushed part");
    run_log(&C, whole);
    printf("fused launches %ld (want %ld) %s\n\n", C.fused_pro, want, C.fused_pro == want ? "ok" : "FAIL");
    return C.fused_pro == want;
}

int main(void) {
    C.fuse = 1; C.fuse_pro = 1; C.gemv_mode = 4; C.smem_optin = 227 * 1024;
    int ok = 1;
    ok &= scenario(1, 0, 1, 8);  /* 2 x (qkv, o, gate/up, down) fused; the last down has no add */
    ok &= scenario(3, 0, 1, 8);
    ok &= scenario(1, 0, 0, 7);  /* the last silu output is not proven dead: left alone */
    ok &= scenario(1, 1, 1, 4);  /* o-proj on cuBLASLt: its add and the next norm stay */
    ok &= scenario(5, 0, 1, 0);  /* more rows than GEMV_PRO_MAX_ROWS */
    C.fuse_pro = 0;
    ok &= scenario(1, 0, 1, 0);
    printf(ok ? "graph_fuse_sim: all ok\n" : "graph_fuse_sim: FAILED\n");
    return ok ? 0 : 1;
}
