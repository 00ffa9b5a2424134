/* kv_wbuf.h — a transaction's buffered writes, kept sorted by key.
 *
 * A sorted array of entries: lookups and range positioning are binary
 * searches and a scan merges it with the snapshot in one ordered pass.
 * Transactions write few keys, so insertion's pointer shifting is cheap.
 *
 * An entry that is overwritten is retired, not freed, because kv.h promises
 * the value a kv_get() returned stays valid until the transaction ends.
 * `version` changes on every insertion so an iterating scan can tell that
 * its index went stale (a scan callback may write to the transaction).
 */
#ifndef VALORFS_KV_KV_WBUF_H
#define VALORFS_KV_KV_WBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kv_wentry {
    struct kv_wentry *retired_next;
    uint32_t klen;
    uint32_t vlen;
    bool deleted;
    uint8_t data[]; /* key bytes, then value bytes */
};

static inline const uint8_t *kv_wentry_key(const struct kv_wentry *e) { return e->data; }
static inline const uint8_t *kv_wentry_val(const struct kv_wentry *e) { return e->data + e->klen; }

struct kv_wbuf {
    struct kv_wentry **e; /* sorted by key */
    size_t n, cap;
    struct kv_wentry *retired;
    uint64_t version;
};

void kv_wbuf_init(struct kv_wbuf *w);
void kv_wbuf_free(struct kv_wbuf *w);
/* Insert or replace; deleted = a tombstone. 0 or -ENOMEM. */
int kv_wbuf_set(struct kv_wbuf *w, const void *key, size_t klen, const void *val, size_t vlen,
                bool deleted);
/* The entry for key, or NULL. */
struct kv_wentry *kv_wbuf_find(const struct kv_wbuf *w, const void *key, size_t klen);
/* A get answered by the transaction's own writes: 0 with *val and *vlen set
 * (written), -ENOENT (deleted), or 1 (the buffer does not hold key: ask
 * the snapshot). */
int kv_wbuf_get(const struct kv_wbuf *w, const void *key, size_t klen, const void **val,
                size_t *vlen);
/* Index of the first entry with key >= (or > when strict) the given key. */
size_t kv_wbuf_lower_bound(const struct kv_wbuf *w, const void *key, size_t klen, bool strict);

#endif
