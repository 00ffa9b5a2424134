/* kv.h — the transactional key-value interface under meta and mgmtd.
 *
 * Model: optimistic, serializable transactions, the shape of FoundationDB
 * and etcd. A transaction reads from one consistent snapshot that contains
 * every commit completed before kv_txn_begin() and is fixed by its first
 * read at the latest (LMDB takes it at begin, etcd at the first read), buffers its writes (a transaction sees its own writes),
 * and kv_commit() atomically applies them only if nothing it read — each
 * key got (present or absent) and each range scanned — was changed by a
 * transaction that committed after the snapshot. Otherwise kv_commit()
 * returns -EAGAIN and applies nothing; the caller retries the whole
 * operation (kv_retry_backoff() spaces attempts). Read-only transactions
 * always commit.
 *
 * Keys are byte strings up to KV_MAX_KEY bytes ordered by memcmp (shorter
 * first on a common prefix); values up to KV_MAX_VALUE bytes.
 *
 * Durability: by default kv_commit() returns after the data is on stable
 * storage (concurrent commits share one flush: group commit). kv_opts.sync
 * may relax that (KV_SYNC_NONE: the OS flushes later; a crash may lose the
 * last commits but never corrupts the store).
 *
 * Backends are chosen by URI in kv_open():
 *   "lmdb:PATH" (or a plain path): the embedded LMDB store (one machine).
 *   "etcd://HOST:PORT[,HOST:PORT...][/PREFIX/][?op_timeout_ms=N]": an etcd v3
 *     cluster through its JSON gateway (kv_etcd.c). Keys live under PREFIX
 *     (default "/valorfs/"), so several stores can share one etcd cluster.
 *     Snapshot reads at one etcd revision; kv_commit() is one etcd txn whose
 *     compares check the mod_revision of every key read (and absence), and of
 *     every scanned range, so a conflicting commit makes it fail with -EAGAIN.
 *     kv_open() fails with a one-line reason when no endpoint answers. When
 *     the cluster is lost during operation, calls retry with backoff over the
 *     endpoints for op_timeout_ms (default 5000), then return -EIO; a commit
 *     whose outcome was unknown is resolved exactly once (a per-transaction
 *     marker key), never applied twice. A transaction larger than etcd's
 *     request limits fails with -E2BIG and a logged reason.
 * The engine is invisible to callers.
 *
 * Threads: a struct kv_db is shared by any number of threads; a struct
 * kv_txn belongs to one thread at a time.
 */
#ifndef VALORFS_KV_KV_H
#define VALORFS_KV_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KV_MAX_KEY 511
#define KV_MAX_VALUE (1u << 20)

struct kv_db;
struct kv_txn;

enum kv_sync { KV_SYNC_COMMIT = 0, KV_SYNC_NONE = 1 };

struct kv_opts {
    size_t map_size;     /* LMDB map size; default 16 GiB (sparse) */
    enum kv_sync sync;   /* default KV_SYNC_COMMIT */
};

struct kv_val {
    const void *data; /* valid until the transaction ends */
    size_t len;
};

/* Open a store. On failure returns NULL and writes a one-line reason. */
struct kv_db *kv_open(const char *uri, const struct kv_opts *o, char *err, size_t errlen);
void kv_close(struct kv_db *db);

#define KV_TXN_RDONLY 1u
/* True when reads cost a network round trip (etcd), false for an embedded
 * engine (LMDB). A server uses it to keep reads off a latency-critical
 * thread (an event loop) when they would block it. */
bool kv_is_remote(const struct kv_db *db);

/* 0 or -errno. */
int kv_txn_begin(struct kv_db *db, unsigned flags, struct kv_txn **out);

/* 0 (found), -ENOENT, or -errno. Sees the transaction's own writes. */
int kv_get(struct kv_txn *t, const void *key, size_t klen, struct kv_val *out);
/* A hint: the transaction is about to kv_get() these keys. An engine that
 * pays a network round trip per read (etcd) fetches them all in one, at the
 * transaction's snapshot; LMDB ignores it. Never changes a result: the
 * kv_get()s that follow answer exactly as without it. 0 or -errno (the
 * error is also what those kv_get()s return). */
struct kv_key {
    const void *key;
    size_t klen;
};
int kv_prefetch(struct kv_txn *t, const struct kv_key *keys, size_t n);

/* Buffer a write. -EINVAL for oversized keys/values, -EROFS in RDONLY. */
int kv_put(struct kv_txn *t, const void *key, size_t klen, const void *val, size_t vlen);
int kv_del(struct kv_txn *t, const void *key, size_t klen);

/* Visit keys in [begin, end) in ascending order (end NULL = to the end),
 * at most limit of them (0 = no limit), merged with the transaction's own
 * writes. fn returns 0 to go on, 1 to stop early, < 0 to abort the scan with
 * that value. Returns 0, fn's negative value, or -errno. Conflict tracking
 * covers the part of the range actually visited. */
typedef int (*kv_scan_fn)(void *arg, const void *key, size_t klen, const void *val,
                          size_t vlen);
int kv_scan(struct kv_txn *t, const void *begin, size_t blen, const void *end, size_t elen,
            size_t limit, kv_scan_fn fn, void *arg);

/* Commit and free. 0, -EAGAIN (conflict: nothing applied, retry), or -errno. */
int kv_commit(struct kv_txn *t);
/* Discard and free. */
void kv_abort(struct kv_txn *t);

/* Sleep before retry number `attempt` (1, 2, ...): jittered exponential
 * backoff from 100 µs up to 50 ms. */
void kv_retry_backoff(unsigned attempt);

#endif
