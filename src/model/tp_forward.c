/* tp_forward.c: a tensor-parallel group over N ranks (model/tp_forward.h): the config and host
 * weights loaded once, one worker thread per rank, and the jobs they run in lock step. The
 * forward itself is qwen3.c's model_forward on each rank's Model (model_load_rank). */
#include "model/tp_forward.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/model_internal.h"
#include "util/err.h"

typedef struct TpRank {
    Backend *be;               /* not owned */
    Comm *comm;                /* not owned */
    Model *m;                  /* the rank's Model: its shards, KV heads, scratch (model_load_rank) */
} TpRank;

typedef enum { JOB_NONE, JOB_LOAD, JOB_KV, JOB_MEM_FREE, JOB_FORWARD, JOB_FORWARD_SAMPLE, JOB_FREE, JOB_EXIT } JobKind;

struct TpGroup {
    ModelConfig cfg;
    GenerationConfig gen;
    ModelWeights host;         /* full host weights, read-only, shared by the ranks */
    ModelLoadOptions opt;      /* max_tokens, max_seqs, dummy seed for every rank */
    int n;
    TpRank *ranks;             /* [n] */
    /* the job every worker runs once per generation */
    pthread_t *threads;        /* [n] */
    int nthreads;              /* started */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned gen_no;           /* bumped per job */
    int pending;               /* workers still running the current job */
    JobKind job;
    const BatchMeta *batch;
    float *logits;
    const struct SampleBatch *sb;   /* JOB_FORWARD_SAMPLE: rank 0 samples into tokens / lps */
    int32_t *tokens;
    LogprobEntry *lps;
    long long *mem_free;       /* [n] JOB_MEM_FREE */
    int num_blocks, block_size;
    int *rc;                   /* [n] */
    char (*errs)[PG_ERR_LEN];  /* [n] */
};

typedef struct { TpGroup *g; int r; } WorkerArg;

/* ---------- workers ---------- */

static void *worker_main(void *p) {
    WorkerArg a = *(WorkerArg *)p;
    free(p);
    TpGroup *g = a.g;
    TpRank *rk = &g->ranks[a.r];
    unsigned seen = 0;
    if (rk->comm->ops->bind_thread) rk->comm->ops->bind_thread(rk->comm);
    for (;;) {
        pthread_mutex_lock(&g->mu);
        while (g->gen_no == seen) pthread_cond_wait(&g->go, &g->mu);
        seen = g->gen_no;
        JobKind job = g->job;
        pthread_mutex_unlock(&g->mu);
        if (job == JOB_EXIT) return NULL;
        char *err = g->errs[a.r];
        int rc = 0;
        switch (job) {
        case JOB_LOAD: rc = model_load_rank(&rk->m, &g->cfg, &g->host, rk->comm, rk->be, &g->opt, err); break;
        case JOB_KV: rc = model_alloc_kv(rk->m, g->num_blocks, g->block_size, err); break;
        case JOB_MEM_FREE: g->mem_free[a.r] = rk->be->ops->mem_free ? rk->be->ops->mem_free(rk->be) : -1; break;
        /* the shared forward (qwen3.c) on the rank's shards, with the collectives on its comm */
        case JOB_FORWARD: rc = model_forward(rk->m, g->batch, g->logits, err); break;
        case JOB_FORWARD_SAMPLE:
            /* logits == NULL: the shards stay on the devices and rank 0 gets all of them */
            rc = model_forward(rk->m, g->batch, NULL, err);
            if (rc == 0 && a.r == 0 && g->batch->num_logits_rows > 0)
                rc = rk->be->ops->sample(rk->be, g->sb, g->tokens, g->lps, err);
            break;
        /* on the rank's own thread: a CUDA rank frees on its current device */
        case JOB_FREE: model_free(rk->m); rk->m = NULL; break;
        default: break;
        }
        pthread_mutex_lock(&g->mu);
        g->rc[a.r] = rc;
        if (--g->pending == 0) pthread_cond_signal(&g->done);
        pthread_mutex_unlock(&g->mu);
    }
}

/* Runs `job` on every rank's worker and waits; the first failing rank's message goes to err. */
static int run_job(TpGroup *g, JobKind job, char *err) {
    pthread_mutex_lock(&g->mu);
    g->job = job;
    g->pending = g->nthreads;
    g->gen_no++;
    pthread_cond_broadcast(&g->go);
    if (job != JOB_EXIT)
        while (g->pending > 0) pthread_cond_wait(&g->done, &g->mu);
    pthread_mutex_unlock(&g->mu);
    if (job == JOB_EXIT) return 0;
    for (int r = 0; r < g->n; r++)
        if (g->rc[r] != 0) return pg_err(err, "tensor parallel rank %d: %s", r, g->errs[r]);
    return 0;
}

/* ---------- group ---------- */

static int is_regular_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int tp_group_new(TpGroup **out, const char *dir, int n, Backend **backends, Comm **comms,
                 const ModelLoadOptions *opt, char *err) {
    *out = NULL;
    if (!opt || opt->max_tokens <= 0) return pg_err(err, "tensor parallel: max_tokens must be positive");
    if (n <= 0) return pg_err(err, "tensor parallel: size %d must be positive", n);
    for (int r = 0; r < n; r++)
        if (!backends[r] || !comms[r] || comms[r]->rank != r || comms[r]->size != n)
            return pg_err(err, "tensor parallel: rank %d needs a backend and a comm of rank %d of %d", r, r, n);
    TpGroup *g = calloc(1, sizeof *g);
    if (!g) return pg_err(err, "out of memory");
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->go, NULL);
    pthread_cond_init(&g->done, NULL);
    g->n = n;
    g->opt = *opt;
    if (is_regular_file(dir)) {
        if (opt->weights.format != LOAD_FORMAT_DUMMY) {
            pg_err(err, "%s: a config.json file (not a model directory) needs load format dummy", dir);
            goto err;
        }
        if (config_load_file(dir, &g->cfg, err) != 0) goto err;
    } else if (config_load(dir, &g->cfg, &g->gen, err) != 0) {
        goto err;
    }
    TpLayout probe;
    if (tp_layout_init(&probe, &g->cfg, 0, n, err) != 0) goto err;
    if (weights_load(dir, &g->cfg, &opt->weights, &g->host, err) != 0) goto err;
    g->ranks = calloc((size_t)n, sizeof *g->ranks);
    g->threads = calloc((size_t)n, sizeof *g->threads);
    g->rc = calloc((size_t)n, sizeof *g->rc);
    g->errs = calloc((size_t)n, sizeof *g->errs);
    g->mem_free = calloc((size_t)n, sizeof *g->mem_free);
    if (!g->ranks || !g->threads || !g->rc || !g->errs || !g->mem_free) { pg_err(err, "out of memory"); goto err; }
    for (int r = 0; r < n; r++) {
        g->ranks[r].be = backends[r];
        g->ranks[r].comm = comms[r];
        WorkerArg *a = malloc(sizeof *a);
        if (!a) { pg_err(err, "out of memory"); goto err; }
        a->g = g, a->r = r;
        if (pthread_create(&g->threads[r], NULL, worker_main, a) != 0) {
            free(a);
            pg_err(err, "tensor parallel: cannot start the worker of rank %d", r);
            goto err;
        }
        g->nthreads++;
    }
    if (run_job(g, JOB_LOAD, err) != 0) goto err;
    *out = g;
    return 0;
err:
    tp_group_free(g);
    return -1;
}

const ModelConfig *tp_group_config(const TpGroup *g) { return &g->cfg; }
const TpLayout *tp_group_layout(const TpGroup *g, int r) { return g->ranks[r].m->tp; }
const ModelWeights *tp_group_rank_weights(const TpGroup *g, int r) { return &g->ranks[r].m->dev; }
const ModelWeights *tp_group_host_weights(const TpGroup *g) { return &g->host; }

int tp_group_alloc_kv(TpGroup *g, int num_blocks, int block_size, char *err) {
    if (num_blocks <= 0 || block_size <= 0 || block_size > 64)
        return pg_err(err, "kv cache: need num_blocks > 0 and block_size in [1, 64], got %d blocks of %d",
                      num_blocks, block_size);
    g->num_blocks = num_blocks;
    g->block_size = block_size;
    return run_job(g, JOB_KV, err);
}

size_t tp_group_kv_bytes_per_block(const TpGroup *g, int block_size) {
    return model_kv_bytes_per_block(g->ranks[0].m, block_size);
}

/* The batch is checked once here, on the engine thread, before any rank starts: a rank
 * failing alone would leave the others waiting in a collective. Every rank's Model has the
 * same max_tokens and KV cache geometry, so rank 0's verdict holds for all. */
int tp_group_forward(TpGroup *g, const BatchMeta *b, float *logits, char *err) {
    if (!logits) return pg_err(err, "tensor parallel forward: no logits buffer (use tp_group_forward_sample)");
    if (model_check_batch(g->ranks[0].m, b, err) != 0) return -1;
    g->batch = b;
    g->logits = logits;
    return run_job(g, JOB_FORWARD, err);
}

long long tp_group_mem_free(TpGroup *g) {
    if (run_job(g, JOB_MEM_FREE, NULL) != 0) return -1;
    long long lo = -1;
    for (int r = 0; r < g->n; r++) {
        if (g->mem_free[r] < 0) return -1;
        if (lo < 0 || g->mem_free[r] < lo) lo = g->mem_free[r];
    }
    return lo;
}

int tp_group_can_sample(const TpGroup *g) {
    for (int r = 0; r < g->n; r++) {
        const Model *m = g->ranks[r].m;
        if (!m || !((ModelScratch *)m->scratch)->gather) return 0;
    }
    return 1;
}

/* As tp_group_forward, with the checks made once here, before any rank starts. */
int tp_group_forward_sample(TpGroup *g, const BatchMeta *b, const struct SampleBatch *sb, int32_t *tokens,
                            LogprobEntry *lps, char *err) {
    if (!tp_group_can_sample(g)) return pg_err(err, "tensor parallel: the backends cannot sample on the device");
    if (model_check_batch(g->ranks[0].m, b, err) != 0) return -1;
    if (b->num_logits_rows > g->ranks[0].m->max_seqs || sb->num_rows != b->num_logits_rows)
        return pg_err(err, "tensor parallel sampling: %d logits rows, %d sample rows (at most max_seqs %d)",
                      b->num_logits_rows, sb->num_rows, g->ranks[0].m->max_seqs);
    g->batch = b;
    g->logits = NULL;
    g->sb = sb;
    g->tokens = tokens;
    g->lps = lps;
    return run_job(g, JOB_FORWARD_SAMPLE, err);
}

void tp_group_free(TpGroup *g) {
    if (!g) return;
    /* the rank Models first (the CPU backend aliases views into the host weights), each on its
     * worker when every worker runs (else here: a worker that failed to start has no Model) */
    if (g->nthreads == g->n) run_job(g, JOB_FREE, NULL);
    if (g->nthreads > 0) {
        run_job(g, JOB_EXIT, NULL);
        for (int r = 0; r < g->nthreads; r++) pthread_join(g->threads[r], NULL);
    }
    if (g->ranks)
        for (int r = 0; r < g->n; r++) model_free(g->ranks[r].m);
    weights_free(&g->host);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->go);
    pthread_cond_destroy(&g->done);
    free(g->ranks);
    free(g->threads);
    free(g->rc);
    free(g->errs);
    free(g->mem_free);
    free(g);
}
