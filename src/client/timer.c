/* timer.c — see timer.h. A due-ordered list; retries are few, so O(n)
 * insertion is fine. */
#include "client/timer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "common/util.h"

struct ctimer_entry {
    struct ctimer_entry *next;
    uint64_t due_ns;
    ctimer_fn fn;
    void *arg;
};

struct ctimer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    struct ctimer_entry *head;
    bool stopping;
};

static void *timer_main(void *p)
{
    struct ctimer *t = p;
    pthread_mutex_lock(&t->mu);
    while (!t->stopping) {
        if (t->head == NULL) {
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        uint64_t now = now_ns();
        if (t->head->due_ns > now) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t wait = t->head->due_ns - now;
            ts.tv_sec += (time_t)(wait / 1000000000ull);
            ts.tv_nsec += (long)(wait % 1000000000ull);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
            continue;
        }
        struct ctimer_entry *e = t->head;
        t->head = e->next;
        pthread_mutex_unlock(&t->mu);
        e->fn(e->arg, 0);
        free(e);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

struct ctimer *ctimer_new(void)
{
    struct ctimer *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&t->mu, NULL);
    if (pthread_create(&t->thread, NULL, timer_main, t) != 0) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return NULL;
    }
    return t;
}

void ctimer_free(struct ctimer *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    /* cancelled callbacks may schedule again: those fail with -ESHUTDOWN */
    for (;;) {
        pthread_mutex_lock(&t->mu);
        struct ctimer_entry *e = t->head;
        if (e)
            t->head = e->next;
        pthread_mutex_unlock(&t->mu);
        if (e == NULL)
            break;
        e->fn(e->arg, 1);
        free(e);
    }
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

int ctimer_after(struct ctimer *t, uint32_t delay_ms, ctimer_fn fn, void *arg)
{
    struct ctimer_entry *e = malloc(sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    *e = (struct ctimer_entry){ .due_ns = now_ns() + (uint64_t)delay_ms * 1000000ull,
                                .fn = fn, .arg = arg };
    pthread_mutex_lock(&t->mu);
    if (t->stopping) {
        pthread_mutex_unlock(&t->mu);
        free(e);
        return -ESHUTDOWN;
    }
    struct ctimer_entry **pp = &t->head;
    while (*pp && (*pp)->due_ns <= e->due_ns)
        pp = &(*pp)->next;
    e->next = *pp;
    *pp = e;
    if (t->head == e)
        pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return 0;
}
