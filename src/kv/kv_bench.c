/* kv_bench.c — commits per second, sync on and off, 1 and N threads.
 * Usage: kv_bench [DIR] [SECONDS] */
#include "kv/kv.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct job {
    struct kv_db *db;
    int id;
    double until;
    long commits, conflicts;
};

static void *worker(void *arg)
{
    struct job *j = arg;
    char key[32], val[100];
    memset(val, 'v', sizeof(val));
    for (long i = 0; now_s() < j->until; i++) {
        /* Read-modify-write of a per-thread key: realistic, conflict-free. */
        snprintf(key, sizeof(key), "bench/%d/%ld", j->id, i % 1000);
        struct kv_txn *t;
        if (kv_txn_begin(j->db, 0, &t))
            abort();
        struct kv_val v;
        kv_get(t, key, strlen(key), &v);
        kv_put(t, key, strlen(key), val, sizeof(val));
        int rc = kv_commit(t);
        if (rc == 0)
            j->commits++;
        else if (rc == -EAGAIN)
            j->conflicts++;
        else {
            fprintf(stderr, "commit: %s\n", strerror(-rc));
            exit(1);
        }
    }
    return NULL;
}

static void run(const char *dir, enum kv_sync sync, int nthreads, double secs)
{
    char err[256];
    struct kv_opts o = { .sync = sync };
    struct kv_db *db = kv_open(dir, &o, err, sizeof(err));
    if (!db) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    struct job jobs[16];
    pthread_t th[16];
    double start = now_s();
    for (int i = 0; i < nthreads; i++) {
        jobs[i] = (struct job){ .db = db, .id = i, .until = start + secs };
        pthread_create(&th[i], NULL, worker, &jobs[i]);
    }
    long commits = 0, conflicts = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        commits += jobs[i].commits;
        conflicts += jobs[i].conflicts;
    }
    double el = now_s() - start;
    printf("sync=%-6s threads=%d commits/s=%.0f conflicts=%ld\n",
           sync == KV_SYNC_NONE ? "none" : "commit", nthreads, (double)commits / el, conflicts);
    kv_close(db);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp/kv_bench";
    double secs = argc > 2 ? atof(argv[2]) : 3;
    run(dir, KV_SYNC_COMMIT, 1, secs);
    run(dir, KV_SYNC_COMMIT, 4, secs);
    run(dir, KV_SYNC_NONE, 1, secs);
    run(dir, KV_SYNC_NONE, 4, secs);
    return 0;
}
