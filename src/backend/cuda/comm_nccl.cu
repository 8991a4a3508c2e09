/* comm_nccl.cu: the collectives of backend/comm.h over NCCL, one GPU per rank, the ranks being
 * threads of this process (one TP worker per GPU, model/tp_forward.c).
 *
 * comm_nccl_new_all() makes the n communicators at once (ncclCommInitAll over the backends'
 * devices). all_reduce_sum / all_gather enqueue ncclAllReduce / ncclAllGather on the rank's
 * CUDA backend stream, so they are ordered after the rank's previous ops and before its next
 * ones, with no host synchronization. barrier() synchronizes the stream, then meets the other
 * rank threads on a host barrier. NCCL_NVLS_ENABLE=0 (NVLink multicast off) is set unless the
 * environment says otherwise.
 *
 * CUDA graphs: NCCL collectives can be captured into a graph (NCCL >= 2.9). The CUDA backend
 * records a decode step's ops and launches, captures or replays them at logits time, so a
 * collective enqueued directly would overtake them: all_reduce_sum therefore hands the backend
 * an OP_ALLREDUCE record (graph.cu), appended to the log of a recorded step like any op and run
 * through cuda_comm_exec; the graphs of a decode step contain its all-reduces. all_gather (the
 * logits, after the step's graph) flushes any recorded ops first and enqueues directly.
 * A failing NCCL call inside a recorded step cannot be returned as an error (the step is already
 * under way on the other ranks): it aborts with NCCL's message, as CUDA_CHECK does. */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/comm.h"
#include "util/err.h"
}

#ifdef PAGELLM_HAVE_NCCL
#include <nccl.h>

typedef struct NcclShared {
    int n;
    int refs;
    pthread_barrier_t bar;
    pthread_mutex_t mu;
} NcclShared;

typedef struct NcclCtx {
    ncclComm_t comm;
    Backend *be;
    int device;
    NcclShared *shared;
} NcclCtx;

static NcclCtx *nctx(Comm *c) { return (NcclCtx *)c->ctx; }

static int nccl_type(DType dt, ncclDataType_t *t) {
    switch (dt) {
    case DT_F32: *t = ncclFloat32; return 0;
    case DT_F16: *t = ncclFloat16; return 0;
    case DT_BF16: *t = ncclBfloat16; return 0;
    default: return -1;
    }
}

void cuda_comm_exec(CudaCtx *c, const OpRec *r) {
    ncclResult_t e = ncclAllReduce(r->p[0], (void *)r->p[0], (size_t)r->i[0], (ncclDataType_t)r->i[1], ncclSum,
                                   (ncclComm_t)r->p[1], c->stream);
    if (e != ncclSuccess) {
        fprintf(stderr, "nccl: all-reduce of %d elements on GPU %d: %s\n", r->i[0], c->device, ncclGetErrorString(e));
        abort();
    }
}

/* An OP_ALLREDUCE record: logged in a recorded step (so a graph captures it), else run now. */
static int nccl_all_reduce_sum(Comm *c, void *buf, size_t count, DType dt, char *err) {
    ncclDataType_t t = ncclFloat32;
    if (nccl_type(dt, &t) != 0) return pg_err(err, "nccl: dtype %s not supported", dtype_name(dt));
    if (count > (size_t)INT_MAX) return pg_err(err, "nccl: all-reduce of %zu elements: too many", count);
    NcclCtx *x = nctx(c);
    CudaCtx *cc = cuda_ctx(x->be);
    OpRec r;
    memset(&r, 0, sizeof r); /* padding too: logs are compared with memcmp */
    r.kind = OP_ALLREDUCE; r.p[0] = buf; r.p[1] = x->comm; r.i[0] = (int)count; r.i[1] = (int)t;
    if (cc->recording) *cuda_graph_append(cc) = r;
    else cuda_oprec_run(cc, &r);
    return 0;
}

static int nccl_all_gather(Comm *c, void *dst, const void *src, size_t count, DType dt, char *err) {
    ncclDataType_t t = ncclFloat32;
    if (nccl_type(dt, &t) != 0) return pg_err(err, "nccl: dtype %s not supported", dtype_name(dt));
    NcclCtx *x = nctx(c);
    cuda_graph_flush(cuda_ctx(x->be)); /* recorded ops first: they produce src */
    ncclResult_t r = ncclAllGather(src, dst, count, t, x->comm, cuda_ctx(x->be)->stream);
    if (r != ncclSuccess) return pg_err(err, "nccl: all-gather of %zu elements on rank %d: %s", count, c->rank,
                                        ncclGetErrorString(r));
    return 0;
}

static void nccl_barrier(Comm *c) {
    NcclCtx *x = nctx(c);
    CUDA_CHECK(cudaStreamSynchronize(cuda_ctx(x->be)->stream));
    pthread_barrier_wait(&x->shared->bar);
}

static void nccl_bind_thread(Comm *c) { CUDA_CHECK(cudaSetDevice(nctx(c)->device)); }

static void nccl_destroy(Comm *c) {
    NcclCtx *x = nctx(c);
    if (x) {
        if (x->comm) ncclCommDestroy(x->comm);
        NcclShared *s = x->shared;
        pthread_mutex_lock(&s->mu);
        int last = --s->refs == 0;
        pthread_mutex_unlock(&s->mu);
        if (last) {
            pthread_barrier_destroy(&s->bar);
            pthread_mutex_destroy(&s->mu);
            free(s);
        }
        free(x);
    }
    free(c);
}

static const CommOps NCCL_OPS = {
    nccl_all_reduce_sum, nccl_all_gather, nccl_barrier, nccl_bind_thread, nccl_destroy,
};

extern "C" int comm_nccl_new_all(Comm **out, Backend **backends, int n, char *err) {
    if (n <= 0 || n > 64) return pg_err(err, "nccl: group size %d outside [1, 64]", n);
    int devs[64];
    ncclComm_t comms[64];
    for (int r = 0; r < n; r++) out[r] = NULL;
    for (int r = 0; r < n; r++) {
        if (!backends[r] || strcmp(backends[r]->name, "cuda") != 0)
            return pg_err(err, "nccl: rank %d needs a CUDA backend", r);
        devs[r] = cuda_ctx(backends[r])->device;
        for (int q = 0; q < r; q++)
            if (devs[q] == devs[r]) return pg_err(err, "nccl: ranks %d and %d are both on GPU %d", q, r, devs[r]);
    }
    /* host objects first, so that nothing can fail after the communicators exist */
    NcclShared *s = (NcclShared *)calloc(1, sizeof *s);
    if (!s) return pg_err(err, "nccl: out of memory");
    s->n = n;
    pthread_barrier_init(&s->bar, NULL, (unsigned)n);
    pthread_mutex_init(&s->mu, NULL);
    for (int r = 0; r < n; r++) {
        Comm *c = (Comm *)calloc(1, sizeof *c);
        NcclCtx *x = (NcclCtx *)calloc(1, sizeof *x);
        if (!c || !x) {
            free(c);
            free(x);
            goto oom;
        }
        x->be = backends[r];
        x->device = devs[r];
        x->shared = s;
        s->refs++;
        c->ops = &NCCL_OPS;
        c->rank = r;
        c->size = n;
        c->ctx = x;
        out[r] = c;
    }
    {
        setenv("NCCL_NVLS_ENABLE", "0", 0); /* multicast off unless the deployer says otherwise */
        ncclResult_t res = ncclCommInitAll(comms, n, devs);
        if (res != ncclSuccess) {
            pg_err(err, "nccl: ncclCommInitAll over %d GPUs: %s", n, ncclGetErrorString(res));
            goto fail;
        }
        for (int r = 0; r < n; r++) nctx(out[r])->comm = comms[r];
    }
    return 0;
oom:
    pg_err(err, "nccl: out of memory");
fail:
    if (s->refs == 0) { /* no Comm holds it */
        pthread_barrier_destroy(&s->bar);
        pthread_mutex_destroy(&s->mu);
        free(s);
    }
    for (int r = 0; r < n; r++) { /* the last one frees s */
        comm_free(out[r]);
        out[r] = NULL;
    }
    return -1;
}

#else /* built without libnccl */

void cuda_comm_exec(CudaCtx *c, const OpRec *r) {
    (void)r;
    fprintf(stderr, "cuda: an all-reduce record on GPU %d in a build without NCCL\n", c->device);
    abort();
}

extern "C" int comm_nccl_new_all(Comm **out, Backend **backends, int n, char *err) {
    (void)out; (void)backends; (void)n;
    return pg_err(err, "this build has no NCCL (libnccl was not found when CUDA was configured); "
                       "tensor parallelism over GPUs needs it");
}

#endif
