/* kv.c — URI dispatch, argument checks shared by every engine, retry backoff. */
#include "kv/kv_backend.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const struct kv_backend_ops *const backends[] = { &kv_lmdb_ops, &kv_etcd_ops };

struct kv_db *kv_open(const char *uri, const struct kv_opts *o, char *err, size_t errlen)
{
    if (!uri || !*uri) {
        snprintf(err, errlen, "kv: empty store URI");
        return NULL;
    }
    /* A scheme is letters/digits/+-. before ':'; anything else is a plain path. */
    size_t n = strspn(uri, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
    if (n == 0 || uri[n] != ':' || uri[0] == '.')
        return kv_lmdb_ops.open(uri, o, err, errlen);
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
        if (strlen(backends[i]->scheme) == n && !strncmp(uri, backends[i]->scheme, n))
            return backends[i]->open(uri + n + 1, o, err, errlen);
    }
    snprintf(err, errlen, "kv: unsupported store scheme '%.*s' in '%s' (supported: lmdb:PATH, etcd://HOST:PORT[,...])",
             (int)n, uri, uri);
    return NULL;
}

void kv_close(struct kv_db *db)
{
    if (db)
        db->ops->close(db);
}

bool kv_is_remote(const struct kv_db *db)
{
    return db->ops->remote;
}

int kv_txn_begin(struct kv_db *db, unsigned flags, struct kv_txn **out)
{
    *out = NULL;
    if (flags & ~KV_TXN_RDONLY)
        return -EINVAL;
    return db->ops->begin(db, flags, out);
}

static bool key_ok(const void *key, size_t klen)
{
    return key && klen > 0 && klen <= KV_MAX_KEY;
}

int kv_get(struct kv_txn *t, const void *key, size_t klen, struct kv_val *out)
{
    if (!key_ok(key, klen))
        return -EINVAL;
    return t->ops->get(t, key, klen, out);
}

int kv_prefetch(struct kv_txn *t, const struct kv_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!key_ok(keys[i].key, keys[i].klen))
            return -EINVAL;
    return t->ops->prefetch ? t->ops->prefetch(t, keys, n) : 0;
}

int kv_put(struct kv_txn *t, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (!key_ok(key, klen) || vlen > KV_MAX_VALUE || (vlen && !val))
        return -EINVAL;
    if (t->flags & KV_TXN_RDONLY)
        return -EROFS;
    return t->ops->put(t, key, klen, val, vlen);
}

int kv_del(struct kv_txn *t, const void *key, size_t klen)
{
    if (!key_ok(key, klen))
        return -EINVAL;
    if (t->flags & KV_TXN_RDONLY)
        return -EROFS;
    return t->ops->del(t, key, klen);
}

int kv_scan(struct kv_txn *t, const void *begin, size_t blen, const void *end, size_t elen,
            size_t limit, kv_scan_fn fn, void *arg)
{
    if (blen > KV_MAX_KEY || (blen && !begin) || !fn)
        return -EINVAL;
    if (end && elen > KV_MAX_KEY + 1)
        return -EINVAL;
    return t->ops->scan(t, begin, blen, end, elen, limit, fn, arg);
}

int kv_commit(struct kv_txn *t)
{
    return t->ops->commit(t);
}

void kv_abort(struct kv_txn *t)
{
    if (t)
        t->ops->abort(t);
}

/* xorshift64*, one state per thread: no locking, seeds differ per thread. */
static uint64_t backoff_rand(void)
{
    static __thread uint64_t s;
    if (!s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = ((uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)gettid() << 32) ^
            (uint64_t)(uintptr_t)&s;
        if (!s)
            s = 1;
    }
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
}

void kv_retry_backoff(unsigned attempt)
{
    const uint64_t base_ns = 100000, cap_ns = 50000000;
    if (attempt == 0)
        attempt = 1;
    uint64_t d = attempt > 20 ? cap_ns : base_ns << (attempt - 1);
    if (d > cap_ns)
        d = cap_ns;
    /* Full window [d/2, d]: spreads contenders apart yet keeps growth. */
    uint64_t ns = d / 2 + backoff_rand() % (d / 2 + 1);
    struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
                           .tv_nsec = (long)(ns % 1000000000ull) };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}
