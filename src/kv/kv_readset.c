/* kv_readset.c — read and range sets with their hashes (see kv_readset.h). */
#include "kv/kv_readset.h"
#include "kv/kv_backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* Final avalanche (the splitmix64 finaliser constants). */
static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* 8 bytes per step multiply-rotate hash; values only need to be told apart
 * from what another transaction wrote, not resist an adversary. */
uint64_t kv_hash_bytes(const void *p, size_t n, uint64_t seed)
{
    const uint8_t *b = p;
    uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h ^= rotl64(w * 0x87c37b91114253d5ull, 31) * 0x4cf5ad432745937full;
        h = rotl64(h, 27) * 5 + 0x52dce729;
        b += 8;
        n -= 8;
    }
    uint64_t tail = 0;
    if (n)
        memcpy(&tail, b, n);
    h ^= rotl64(tail * 0x87c37b91114253d5ull, 33) * 0x4cf5ad432745937full;
    return mix64(h);
}

uint64_t kv_range_hash_step(uint64_t h, const void *k, size_t klen, const void *v, size_t vlen)
{
    uint64_t hk = kv_hash_bytes(k, klen, 0x243f6a8885a308d3ull);
    uint64_t hv = kv_hash_bytes(v, vlen, 0x13198a2e03707344ull);
    return mix64(rotl64(h, 17) ^ hk ^ rotl64(hv, 32));
}

void kv_readset_init(struct kv_readset *rs)
{
    memset(rs, 0, sizeof(*rs));
}

void kv_readset_free(struct kv_readset *rs)
{
    for (size_t i = 0; i < rs->nreads; i++)
        free(rs->reads[i].key);
    for (size_t i = 0; i < rs->nranges; i++) {
        free(rs->ranges[i].begin);
        free(rs->ranges[i].bound);
    }
    free(rs->reads);
    free(rs->ranges);
    kv_readset_init(rs);
}

static int dup_bytes(uint8_t **out, const void *p, size_t n)
{
    *out = NULL;
    if (!n)
        return 0;
    *out = malloc(n);
    if (!*out)
        return -ENOMEM;
    memcpy(*out, p, n);
    return 0;
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    void *na = realloc(*arr, nc * elem);
    if (!na)
        return -ENOMEM;
    *arr = na;
    *cap = nc;
    return 0;
}

int kv_readset_add_read(struct kv_readset *rs, const void *key, size_t klen, bool present,
                        const void *val, size_t vlen)
{
    if (grow((void **)&rs->reads, &rs->capreads, rs->nreads, sizeof(*rs->reads)))
        return -ENOMEM;
    struct kv_read *r = &rs->reads[rs->nreads];
    if (dup_bytes(&r->key, key, klen))
        return -ENOMEM;
    r->klen = (uint32_t)klen;
    r->present = present;
    r->hash = present ? kv_hash_bytes(val, vlen, 0x13198a2e03707344ull) : 0;
    rs->nreads++;
    return 0;
}

int kv_readset_add_range(struct kv_readset *rs, const void *begin, size_t blen,
                         enum kv_range_bound kind, const void *bound, size_t bndlen,
                         uint64_t hash, uint64_t count)
{
    if (grow((void **)&rs->ranges, &rs->capranges, rs->nranges, sizeof(*rs->ranges)))
        return -ENOMEM;
    struct kv_range *r = &rs->ranges[rs->nranges];
    memset(r, 0, sizeof(*r));
    if (dup_bytes(&r->begin, begin, blen))
        return -ENOMEM;
    if (kind != KV_RANGE_TO_INFINITY && dup_bytes(&r->bound, bound, bndlen)) {
        free(r->begin);
        return -ENOMEM;
    }
    r->blen = (uint32_t)blen;
    r->kind = kind;
    r->bndlen = kind == KV_RANGE_TO_INFINITY ? 0 : (uint32_t)bndlen;
    r->hash = hash;
    r->count = count;
    rs->nranges++;
    return 0;
}

bool kv_range_contains(const struct kv_range *r, const void *k, size_t klen)
{
    if (r->blen && kv_key_cmp(k, klen, r->begin, r->blen) < 0)
        return false;
    switch (r->kind) {
    case KV_RANGE_TO_INFINITY:
        return true;
    case KV_RANGE_END_EXCL:
        return kv_key_cmp(k, klen, r->bound, r->bndlen) < 0;
    case KV_RANGE_LAST_INCL:
        return kv_key_cmp(k, klen, r->bound, r->bndlen) <= 0;
    }
    return false;
}
