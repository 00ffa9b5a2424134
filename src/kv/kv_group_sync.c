/* kv_group_sync.c — group commit (see kv_group_sync.h). */
#include "kv/kv_group_sync.h"

void kv_group_sync_init(struct kv_group_sync *g, int (*flush)(void *arg), void *arg)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->running = false;
    g->started = g->completed = 0;
    g->last_rc = 0;
    g->flush = flush;
    g->arg = arg;
    g->nflushes = 0;
}

void kv_group_sync_destroy(struct kv_group_sync *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

int kv_group_sync_wait(struct kv_group_sync *g)
{
    pthread_mutex_lock(&g->mu);
    /* The flush numbered started+1 is the first that can begin after now. */
    uint64_t target = g->started + 1;
    while (g->completed < target) {
        if (g->running) {
            pthread_cond_wait(&g->cv, &g->mu);
            continue;
        }
        g->running = true;
        uint64_t mine = ++g->started;
        pthread_mutex_unlock(&g->mu);
        int rc = g->flush(g->arg);
        pthread_mutex_lock(&g->mu);
        g->completed = mine;
        g->last_rc = rc;
        g->nflushes++;
        g->running = false;
        pthread_cond_broadcast(&g->cv);
    }
    /* Flushes finish in order, so the latest result speaks for our data. */
    int rc = g->last_rc;
    pthread_mutex_unlock(&g->mu);
    return rc;
}
