/* txn.c — one meta operation = one KV transaction, retried on conflict. */
#include <time.h>

#include "common/log.h"
#include "meta/meta_internal.h"

int64_t meta_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

int meta_run_txn(struct meta_core *mc, bool rdonly, meta_txn_fn fn, void *ctx)
{
    for (unsigned attempt = 1; attempt <= META_MAX_ATTEMPTS; attempt++) {
        if (attempt > 1)
            kv_retry_backoff(attempt - 1);
        struct kv_txn *t;
        int rc = kv_txn_begin(mc->db, rdonly ? KV_TXN_RDONLY : 0, &t);
        if (rc < 0) {
            if (rc == -EAGAIN)
                continue;
            LOG_ERROR(META_LOG, "txn begin failed err=%s", strerror(-rc));
            return -EIO;
        }
        rc = fn(mc, t, ctx);
        if (rc < 0) {
            kv_abort(t);
            if (rc == -EAGAIN)
                continue;
            return rc;
        }
        rc = kv_commit(t);
        if (rc == 0)
            return 0;
        if (rc != -EAGAIN) {
            LOG_ERROR(META_LOG, "txn commit failed err=%s", strerror(-rc));
            return -EIO;
        }
    }
    LOG_WARN(META_LOG, "txn gave up after %d conflicting attempts", META_MAX_ATTEMPTS);
    return -EIO;
}
