/* kv_backend.h — the seam between kv.h and a storage engine (internal).
 *
 * kv.c parses the URI, checks arguments common to every engine (key and
 * value sizes, read-only transactions) and then calls the engine through
 * struct kv_backend_ops. An engine embeds struct kv_db / struct kv_txn as
 * the first member of its own handle types, so the generic layer can find
 * the vtable without knowing the engine.
 */
#ifndef VALORFS_KV_KV_BACKEND_H
#define VALORFS_KV_KV_BACKEND_H

#include "kv/kv.h"

struct kv_backend_ops {
    const char *scheme; /* URI prefix before ':' */
    bool remote;        /* every read is a network round trip (kv_is_remote) */
    /* location is the URI with "scheme:" removed. */
    struct kv_db *(*open)(const char *location, const struct kv_opts *o, char *err,
                          size_t errlen);
    void (*close)(struct kv_db *db);
    int (*begin)(struct kv_db *db, unsigned flags, struct kv_txn **out);
    /* Arguments are already validated by kv.c when these are called. */
    int (*get)(struct kv_txn *t, const void *key, size_t klen, struct kv_val *out);
    /* Optional (NULL: kv_prefetch does nothing). */
    int (*prefetch)(struct kv_txn *t, const struct kv_key *keys, size_t n);
    int (*put)(struct kv_txn *t, const void *key, size_t klen, const void *val, size_t vlen);
    int (*del)(struct kv_txn *t, const void *key, size_t klen);
    int (*scan)(struct kv_txn *t, const void *begin, size_t blen, const void *end, size_t elen,
                size_t limit, kv_scan_fn fn, void *arg);
    int (*commit)(struct kv_txn *t);
    void (*abort)(struct kv_txn *t);
};

/* First member of every engine's database handle. */
struct kv_db {
    const struct kv_backend_ops *ops;
};

/* First member of every engine's transaction handle. */
struct kv_txn {
    const struct kv_backend_ops *ops;
    unsigned flags; /* KV_TXN_* given to kv_txn_begin */
};

extern const struct kv_backend_ops kv_lmdb_ops;
extern const struct kv_backend_ops kv_etcd_ops;

/* Key order of kv.h: memcmp, shorter first on a common prefix. */
static inline int kv_key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? __builtin_memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

#endif
