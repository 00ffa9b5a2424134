/* workq.h — a small fixed pool of threads running queued jobs in FIFO order.
 *
 * The storage service runs blocking work (disk apply after a successor's
 * acknowledgement, the next queued write of a chunk) here so that neither
 * RPC worker threads nor the RPC client's loop thread ever wait on disk for
 * a chunk's turn. workq_push never blocks on the jobs; workq_free runs every
 * job already queued before the threads exit.
 */
#ifndef VALORFS_STORAGE_WORKQ_H
#define VALORFS_STORAGE_WORKQ_H

struct workq;
typedef void (*workq_fn)(void *arg);

struct workq *workq_new(int threads);
/* 0, or -ENOMEM (the job did not run and will not). */
int workq_push(struct workq *q, workq_fn fn, void *arg);
/* Drain the queue, join the threads, free. */
void workq_free(struct workq *q);

#endif
