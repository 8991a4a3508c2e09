/* comm.h: the collectives a tensor-parallel forward needs, over N ranks of one group.
 *
 * A Comm is one rank's handle on a group of `size` ranks (model/tp_forward.c holds one per
 * rank). The forward needs two collectives: an in-place sum all-reduce (after the row-parallel
 * o_proj and down_proj, and after the masked vocabulary-parallel embedding lookup) and an
 * all-gather (vocabulary-parallel logits). Buffers are in the rank's backend memory (host memory
 * for the CPU backend, device memory for CUDA), in the backend's activation dtype.
 *
 * Every rank of a group must make the same calls in the same order with the same counts (as
 * with MPI/NCCL); a call returns when this rank's result is ready to use by its next backend op
 * (CPU: the sum is in the buffer; NCCL: enqueued on the backend's stream, ordered after the ops
 * before it). Each Comm is used by one thread: the thread that drives its rank.
 *
 * Implementations:
 *   comm_cpu_*   ranks are threads of this process (one CPU backend each): a shared CommWorld,
 *                pthread barriers, and a sum in rank order (so every rank gets bit-identical
 *                results, whatever the thread timing).
 *   comm_nccl_*  (backend/cuda/comm_nccl.cu, -DPAGELLM_CUDA=ON with libnccl found): one GPU per
 *                rank, ncclAllReduce / ncclAllGather on the CUDA backend's stream. */
#ifndef PAGELLM_BACKEND_COMM_H
#define PAGELLM_BACKEND_COMM_H
#include <stddef.h>

#include "util/dtype.h"

typedef struct Comm Comm;

typedef struct CommOps {
    /* buf[count] = sum over ranks of every rank's buf[count]. Returns 0 or -1 + err. */
    int (*all_reduce_sum)(Comm *c, void *buf, size_t count, DType dt, char *err);
    /* dst[size * count] = concat over ranks r of rank r's src[count]. dst must not alias src. */
    int (*all_gather)(Comm *c, void *dst, const void *src, size_t count, DType dt, char *err);
    /* Returns when every rank has called it (host-side; for tests and start-up). */
    void (*barrier)(Comm *c);
    /* Optional (may be NULL): called once by the thread that will drive this rank, before any
     * backend op of the rank on that thread (NCCL: cudaSetDevice of the rank's GPU). */
    void (*bind_thread)(Comm *c);
    void (*destroy)(Comm *c);
} CommOps;

struct Comm {
    const CommOps *ops;
    int rank;               /* 0 .. size-1 */
    int size;               /* ranks in the group */
    void *ctx;              /* implementation private */
};

/* ---- in-process CPU implementation: ranks are threads ---- */
typedef struct CommWorld CommWorld;
/* The shared state of `size` thread ranks. Made once (any thread), before the rank threads. */
CommWorld *comm_world_cpu_new(int size, char *err);
/* Rank `rank`'s handle on world w (w must outlive it). NULL + err on bad rank / OOM. */
Comm *comm_cpu_new(CommWorld *w, int rank, char *err);
/* After every Comm of w is destroyed. */
void comm_world_cpu_free(CommWorld *w);

#ifdef PAGELLM_HAVE_CUDA
typedef struct Backend Backend;
/* NCCL (backend/cuda/comm_nccl.cu): out[r] for r < n, rank r on CUDA backend backends[r] (one
 * GPU each, distinct devices), all made at once with ncclCommInitAll; collectives are enqueued on
 * each backend's stream. The ranks are threads of this process. all_reduce_sum is an op of the
 * CUDA backend (OP_ALLREDUCE): in a step the backend records for a CUDA graph it is recorded,
 * captured and replayed with the other ops, so TP decode steps run as graphs. -1 + err when
 * built without NCCL or when NCCL fails. Free each with comm_free. */
int comm_nccl_new_all(Comm **out, Backend **backends, int n, char *err);
#endif

static inline void comm_free(Comm *c) {
    if (c) c->ops->destroy(c);
}

#endif
