/* kv_group_sync.h — group commit: many committers, few flushes.
 *
 * A committer calls kv_group_sync_wait() after its data is written. It
 * returns once a flush that *started after* that call has finished: if a
 * flush is already running (it may have started before our write, so it
 * does not count), the caller waits for it and then either starts the next
 * one or finds that another waiter already did. All threads that arrive
 * while one flush runs are covered by the single next flush.
 *
 * Thread-safe; per process (other processes flush for themselves).
 */
#ifndef VALORFS_KV_KV_GROUP_SYNC_H
#define VALORFS_KV_KV_GROUP_SYNC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct kv_group_sync {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running;
    uint64_t started;   /* flushes started so far */
    uint64_t completed; /* flushes finished so far (in order) */
    int last_rc;        /* result of the most recent finished flush */
    int (*flush)(void *arg); /* 0 or -errno */
    void *arg;
    uint64_t nflushes;  /* statistics: flushes actually issued */
};

void kv_group_sync_init(struct kv_group_sync *g, int (*flush)(void *arg), void *arg);
void kv_group_sync_destroy(struct kv_group_sync *g);
/* 0 once everything written before the call is flushed, or the flush error. */
int kv_group_sync_wait(struct kv_group_sync *g);

#endif
