/* pool.c — see pool.h. */
#include "rpc/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct rpc_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct rpc_pool_item *head, *tail;
    int queued, max_queued;
    bool stopping;
    int nthreads;
    pthread_t *threads;
};

static void *pool_main(void *arg)
{
    struct rpc_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->stopping)
            break;
        struct rpc_pool_item *it = p->head;
        p->head = it->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->lock);
        it->run(it);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct rpc_pool *pool_new(int threads, int max_queued, const char *name)
{
    struct rpc_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->max_queued = max_queued;
    p->threads = calloc((size_t)threads, sizeof(pthread_t));
    if (!p->threads) {
        pool_free(p);
        return NULL;
    }
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, pool_main, p) != 0)
            break;
        char n[16];
        snprintf(n, sizeof(n), "%.8s-w%u", name ? name : "rpc", (unsigned)i % 1000u);
        pthread_setname_np(p->threads[i], n);
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        pool_free(p);
        return NULL;
    }
    return p;
}

int pool_submit(struct rpc_pool *p, struct rpc_pool_item *it)
{
    it->next = NULL;
    pthread_mutex_lock(&p->lock);
    int rc = 0;
    if (p->stopping)
        rc = -ESHUTDOWN;
    else if (p->queued >= p->max_queued)
        rc = -EBUSY;
    else {
        if (p->tail)
            p->tail->next = it;
        else
            p->head = it;
        p->tail = it;
        p->queued++;
        pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void pool_stop(struct rpc_pool *p, void (*drop)(struct rpc_pool_item *it))
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    p->nthreads = 0;
    pthread_mutex_lock(&p->lock);
    struct rpc_pool_item *it = p->head;
    p->head = p->tail = NULL;
    p->queued = 0;
    pthread_mutex_unlock(&p->lock);
    while (it) {
        struct rpc_pool_item *next = it->next;
        if (drop)
            drop(it);
        it = next;
    }
}

void pool_free(struct rpc_pool *p)
{
    if (!p)
        return;
    if (p->nthreads)
        pool_stop(p, NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->threads);
    free(p);
}
