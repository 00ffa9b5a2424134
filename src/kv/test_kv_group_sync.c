/* test_kv_group_sync.c — group commit: every waiter is covered by a flush
 * that started after it arrived, and concurrent waiters share flushes. */
#include "kv/kv_group_sync.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c)                                                                  \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

#define THREADS 8
#define CALLS 60

/* A logical clock: every event takes a unique, ordered tick. */
static atomic_ulong clock_ticks;
static atomic_ulong last_done_flush_start; /* start tick of the latest finished flush */
static atomic_int in_flush;
static atomic_int fail_next;

static int fake_flush(void *arg)
{
    (void)arg;
    CHECK(atomic_fetch_add(&in_flush, 1) == 0); /* never two flushes at once */
    unsigned long start = atomic_fetch_add(&clock_ticks, 1) + 1;
    usleep(300); /* about an fdatasync */
    atomic_fetch_sub(&in_flush, 1);
    atomic_store(&last_done_flush_start, start);
    return atomic_exchange(&fail_next, 0) ? -5 : 0;
}

static struct kv_group_sync gs;

static void *waiter(void *arg)
{
    (void)arg;
    for (int i = 0; i < CALLS; i++) {
        unsigned long arrived = atomic_fetch_add(&clock_ticks, 1) + 1;
        CHECK(kv_group_sync_wait(&gs) == 0);
        CHECK(atomic_load(&last_done_flush_start) > arrived);
    }
    return NULL;
}

int main(void)
{
    kv_group_sync_init(&gs, fake_flush, NULL);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, waiter, NULL) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "%d waits, %llu flushes\n", THREADS * CALLS,
            (unsigned long long)gs.nflushes);
    CHECK(gs.nflushes < (uint64_t)THREADS * CALLS / 2); /* sharing happened */

    /* A failed flush is reported to the waiter it covered; the next is fine. */
    atomic_store(&fail_next, 1);
    CHECK(kv_group_sync_wait(&gs) == -5);
    CHECK(kv_group_sync_wait(&gs) == 0);
    kv_group_sync_destroy(&gs);
    fprintf(stderr, "group sync tests passed\n");
    return 0;
}
