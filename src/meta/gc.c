/* gc.c — the orphan collector: ORPH inodes (nlink 0) with no session get
 * their chunks removed through chunk.remove(), then the inode, its keys and
 * the ORPH record go in one transaction. A storage failure leaves the
 * orphan for the next round. */
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "meta/meta_internal.h"

#define GC_BATCH 256

struct orph_list {
    uint64_t ino[GC_BATCH];
    size_t n;
};

static int collect_orphan(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val;
    (void)vlen;
    struct orph_list *l = arg;
    if (klen != 12)
        return 0; /* not ours; skip rather than stop collecting */
    l->ino[l->n++] = get_be64((const uint8_t *)key + 4);
    return 0;
}

static int scan_orphans(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct orph_list *l = ctx;
    l->n = 0;
    return kv_scan(t, "ORPH", 4, "ORPI", 4, GC_BATCH, collect_orphan, l);
}

enum gc_verdict { GC_BUSY, GC_REMOVE, GC_STALE };

struct gc_item {
    uint64_t ino;
    struct meta_inode inode;
    enum gc_verdict verdict;
    bool purged;
};

static int gc_inspect(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct gc_item *it = ctx;
    int rc = inode_load(t, it->ino, &it->inode);
    if (rc == -ENOENT || (rc == 0 && it->inode.nlink > 0)) {
        it->verdict = GC_STALE;
        return 0;
    }
    if (rc < 0)
        return rc;
    rc = session_any(t, it->ino);
    if (rc < 0)
        return rc;
    it->verdict = rc ? GC_BUSY : GC_REMOVE;
    return 0;
}

static int gc_finish(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct gc_item *it = ctx;
    struct meta_inode i;
    uint8_t k[12];
    it->purged = false;
    int rc = inode_load(t, it->ino, &i);
    if (rc == -ENOENT || (rc == 0 && i.nlink > 0)) {
        rc = kv_del(t, k, meta_key(k, "ORPH", it->ino, NULL, 0));
        return rc == -ENOENT ? 0 : rc;
    }
    if (rc < 0)
        return rc;
    rc = session_any(t, it->ino);
    if (rc != 0)
        return rc < 0 ? rc : 0; /* reopened by id meanwhile: leave it */
    it->purged = true;
    return inode_purge(t, it->ino);
}

int meta_gc_run_once(struct meta_core *mc)
{
    struct orph_list *l = malloc(sizeof(*l));
    if (!l)
        return -ENOMEM;
    int rc = meta_run_txn(mc, true, scan_orphans, l);
    int removed = 0;
    for (size_t n = 0; rc == 0 && n < l->n; n++) {
        struct gc_item it = { .ino = l->ino[n] };
        int irc = meta_run_txn(mc, true, gc_inspect, &it);
        if (irc < 0 || it.verdict == GC_BUSY)
            continue;
        /* An empty file has no chunks: every session that wrote reported
         * its length when it closed, and a truncation to 0 removed them.
         * Skipping the storage round trips keeps mass deletions cheap. */
        if (it.verdict == GC_REMOVE && mc->chunk.remove && it.inode.size > 0) {
            int src = mc->chunk.remove(mc->chunk.arg, &it.inode);
            if (src < 0) {
                LOG_WARN(META_LOG, "chunk removal failed ino=%016llx err=%s (retrying later)",
                         (unsigned long long)it.ino, strerror(-src));
                continue;
            }
        }
        irc = meta_run_txn(mc, false, gc_finish, &it);
        if (irc < 0)
            LOG_WARN(META_LOG, "orphan cleanup failed ino=%016llx err=%s",
                     (unsigned long long)it.ino, strerror(-irc));
        else if (it.purged) {
            removed++;
            LOG_DEBUG(META_LOG, "removed orphan ino=%016llx", (unsigned long long)it.ino);
        }
    }
    free(l);
    return rc < 0 ? rc : removed;
}

static void *gc_main(void *arg)
{
    struct meta_core *mc = arg;
    pthread_mutex_lock(&mc->gc_lock);
    while (!mc->gc_stop) {
        if (!mc->gc_kick) {
            struct timespec ts = timespec_after_ms(CLOCK_MONOTONIC, mc->gc_interval_ms);
            pthread_cond_timedwait(&mc->gc_cond, &mc->gc_lock, &ts);
            if (mc->gc_stop)
                break;
        }
        mc->gc_kick = false;
        pthread_mutex_unlock(&mc->gc_lock);
        int rc = meta_gc_run_once(mc);
        if (rc < 0)
            LOG_WARN(META_LOG, "gc round failed err=%s", strerror(-rc));
        rc = meta_dedup_sweep(mc, meta_now_ns(), META_DEDUP_SWEEP_BATCHES);
        if (rc < 0)
            LOG_WARN(META_LOG, "de-duplication record sweep failed err=%s", strerror(-rc));
        pthread_mutex_lock(&mc->gc_lock);
    }
    pthread_mutex_unlock(&mc->gc_lock);
    return NULL;
}

int meta_gc_start(struct meta_core *mc, uint32_t interval_ms)
{
    if (mc->gc_running)
        return -EBUSY;
    mc->gc_interval_ms = interval_ms ? interval_ms : 1000;
    mc->gc_stop = false;
    int rc = pthread_create(&mc->gc_thread, NULL, gc_main, mc);
    if (rc != 0)
        return -rc;
    mc->gc_running = true;
    return 0;
}

void meta_gc_stop(struct meta_core *mc)
{
    if (!mc->gc_running)
        return;
    pthread_mutex_lock(&mc->gc_lock);
    mc->gc_stop = true;
    pthread_cond_signal(&mc->gc_cond);
    pthread_mutex_unlock(&mc->gc_lock);
    pthread_join(mc->gc_thread, NULL);
    mc->gc_running = false;
}

void meta_gc_kick(struct meta_core *mc)
{
    pthread_mutex_lock(&mc->gc_lock);
    mc->gc_kick = true;
    pthread_cond_signal(&mc->gc_cond);
    pthread_mutex_unlock(&mc->gc_lock);
}
