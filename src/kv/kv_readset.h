/* kv_readset.h — what an optimistic transaction read, for commit-time checks.
 *
 * Point reads: the key and a 64-bit hash of the value seen, or "absent".
 * Range scans: the interval actually covered (begin up to the last key
 * visited, inclusive, when the scan stopped early; up to the end bound,
 * exclusive, when it ran to completion) and a hash and count of the
 * snapshot's (key, value) pairs inside it in key order. At commit the
 * engine recomputes the same figures on the current data; any difference
 * means a later commit changed what the transaction saw.
 *
 * Engine-neutral: the engine supplies the current data; this module only
 * stores and hashes.
 */
#ifndef VALORFS_KV_KV_READSET_H
#define VALORFS_KV_KV_READSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kv_read {
    uint8_t *key;
    uint32_t klen;
    bool present;
    uint64_t hash; /* of the value when present */
};

enum kv_range_bound {
    KV_RANGE_TO_INFINITY, /* scanned to the end of the key space */
    KV_RANGE_END_EXCL,    /* scanned up to `bound`, exclusive */
    KV_RANGE_LAST_INCL,   /* stopped early after visiting `bound` */
};

struct kv_range {
    uint8_t *begin; /* NULL/0 = from the first key */
    uint32_t blen;
    enum kv_range_bound kind;
    uint8_t *bound;
    uint32_t bndlen;
    uint64_t hash;  /* kv_range_hash_step over the pairs, starting at KV_RANGE_HASH_INIT */
    uint64_t count;
};

struct kv_readset {
    struct kv_read *reads;
    size_t nreads, capreads;
    struct kv_range *ranges;
    size_t nranges, capranges;
};

#define KV_RANGE_HASH_INIT 0x6a09e667f3bcc908ull

uint64_t kv_hash_bytes(const void *p, size_t n, uint64_t seed);
/* Fold one (key, value) pair into a running range hash (order-sensitive). */
uint64_t kv_range_hash_step(uint64_t h, const void *k, size_t klen, const void *v, size_t vlen);

void kv_readset_init(struct kv_readset *rs);
void kv_readset_free(struct kv_readset *rs);
/* 0 or -ENOMEM. */
int kv_readset_add_read(struct kv_readset *rs, const void *key, size_t klen, bool present,
                        const void *val, size_t vlen);
int kv_readset_add_range(struct kv_readset *rs, const void *begin, size_t blen,
                         enum kv_range_bound kind, const void *bound, size_t bndlen,
                         uint64_t hash, uint64_t count);
/* True if key k lies in the covered interval of r (used when re-scanning). */
bool kv_range_contains(const struct kv_range *r, const void *k, size_t klen);

#endif
