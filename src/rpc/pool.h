/* pool.h — a bounded pool of worker threads for handlers that may block.
 *
 * Contract. pool_submit() queues an item (any thread) unless max_queued items
 * already wait, in which case it returns -EBUSY and the caller answers
 * "busy" itself. Items run in FIFO order on one of the threads. pool_stop()
 * lets running items finish, hands every item still queued to drop(), and
 * joins the threads.
 */
#ifndef VALORFS_RPC_POOL_H
#define VALORFS_RPC_POOL_H

struct rpc_pool_item {
    struct rpc_pool_item *next;
    void (*run)(struct rpc_pool_item *it);
};

struct rpc_pool;

struct rpc_pool *pool_new(int threads, int max_queued, const char *name);
int pool_submit(struct rpc_pool *p, struct rpc_pool_item *it); /* 0, -EBUSY, -ESHUTDOWN */
void pool_stop(struct rpc_pool *p, void (*drop)(struct rpc_pool_item *it));
void pool_free(struct rpc_pool *p);

#endif
