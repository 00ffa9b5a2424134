/* inode.c — inode records, ids, counts and per-inode key cleanup.
 *
 * Record (version 1): u8 version, u32 mode, uid, gid, nlink, u64 size, rdev,
 * i64 atime, mtime, ctime, u64 parent, u32 chunk_size, table_id, nchains,
 * u32 chains[nchains]. The id is the key, not part of the record.
 */
#include <sys/random.h>

#include "common/log.h"
#include "meta/meta_internal.h"

#define INODE_RECORD_V1 1

void meta_inode_record_enc(struct wbuf *wb, const struct meta_inode *i)
{
    uint32_t n = i->layout.nchains > VF_MAX_STRIPE ? VF_MAX_STRIPE : i->layout.nchains;
    wb_u8(wb, INODE_RECORD_V1);
    wb_u32(wb, i->mode);
    wb_u32(wb, i->uid);
    wb_u32(wb, i->gid);
    wb_u32(wb, i->nlink);
    wb_u64(wb, i->size);
    wb_u64(wb, i->rdev);
    wb_i64(wb, i->atime_ns);
    wb_i64(wb, i->mtime_ns);
    wb_i64(wb, i->ctime_ns);
    wb_u64(wb, i->parent);
    wb_u32(wb, i->layout.chunk_size);
    wb_u32(wb, i->layout.table_id);
    wb_u32(wb, n);
    for (uint32_t c = 0; c < n; c++)
        wb_u32(wb, i->layout.chains[c]);
}

int meta_inode_record_dec(const void *buf, size_t len, uint64_t ino, struct meta_inode *out)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(out, 0, sizeof(*out));
    out->ino = ino;
    if (rb_u8(&rb) != INODE_RECORD_V1)
        return -EIO;
    out->mode = rb_u32(&rb);
    out->uid = rb_u32(&rb);
    out->gid = rb_u32(&rb);
    out->nlink = rb_u32(&rb);
    out->size = rb_u64(&rb);
    out->rdev = rb_u64(&rb);
    out->atime_ns = rb_i64(&rb);
    out->mtime_ns = rb_i64(&rb);
    out->ctime_ns = rb_i64(&rb);
    out->parent = rb_u64(&rb);
    out->layout.chunk_size = rb_u32(&rb);
    out->layout.table_id = rb_u32(&rb);
    uint32_t n = rb_u32(&rb);
    if (n > VF_MAX_STRIPE)
        return -EIO;
    out->layout.nchains = n;
    for (uint32_t c = 0; c < n; c++)
        out->layout.chains[c] = rb_u32(&rb);
    return rb_done(&rb) ? 0 : -EIO;
}

int inode_load(struct kv_txn *t, uint64_t ino, struct meta_inode *out)
{
    uint8_t k[12];
    struct kv_val v;
    int rc = kv_get(t, k, meta_key(k, "INOD", ino, NULL, 0), &v);
    if (rc < 0)
        return rc;
    rc = meta_inode_record_dec(v.data, v.len, ino, out);
    if (rc < 0)
        LOG_ERROR(META_LOG, "corrupt inode record ino=%016llx len=%zu", (unsigned long long)ino,
                  v.len);
    return rc;
}

int inode_store(struct kv_txn *t, const struct meta_inode *i)
{
    uint8_t k[12];
    uint8_t buf[128 + 4 * VF_MAX_STRIPE];
    struct wbuf wb;
    wb_init(&wb, sizeof(buf));
    meta_inode_record_enc(&wb, i);
    if (wb.err) {
        wb_free(&wb);
        return -ENOMEM;
    }
    int rc = kv_put(t, k, meta_key(k, "INOD", i->ino, NULL, 0), wb.data, wb.len);
    wb_free(&wb);
    return rc;
}

int inode_new_id(struct kv_txn *t, uint64_t *out)
{
    for (int tries = 0; tries < 16; tries++) {
        uint64_t id;
        if (getrandom(&id, sizeof(id), 0) != sizeof(id))
            return -EIO;
        if (id <= VF_ROOT_INO || id == UINT64_MAX)
            continue;
        uint8_t k[12];
        struct kv_val v;
        int rc = kv_get(t, k, meta_key(k, "INOD", id, NULL, 0), &v);
        if (rc == -ENOENT) {
            *out = id;
            return 0;
        }
        if (rc < 0)
            return rc;
    }
    return -EIO;
}

static int icnt_key(uint8_t *k, unsigned shard)
{
    memcpy(k, "ICNT", 4);
    k[4] = (uint8_t)shard;
    return 5;
}

static uint64_t icnt_decode(const struct kv_val *v)
{
    struct rbuf rb;
    rb_init(&rb, v->data, v->len);
    uint64_t n = rb_u64(&rb);
    return rb_done(&rb) ? n : 0;
}

/* Sharded so creates in different directories rarely conflict on it. */
int inode_count_add(struct kv_txn *t, uint64_t ino, int64_t delta)
{
    uint8_t k[8], b[8];
    size_t kl = (size_t)icnt_key(k, (unsigned)(ino % META_ICNT_SHARDS));
    struct kv_val v;
    uint64_t n = 0;
    int rc = kv_get(t, k, kl, &v);
    if (rc == 0)
        n = icnt_decode(&v);
    else if (rc != -ENOENT)
        return rc;
    n = (delta < 0 && (uint64_t)-delta > n) ? 0 : n + (uint64_t)delta;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(n >> (8 * i));
    return kv_put(t, k, kl, b, 8);
}

int inode_count_total(struct kv_txn *t, uint64_t *out)
{
    uint64_t sum = 0;
    for (unsigned s = 0; s < META_ICNT_SHARDS; s++) {
        uint8_t k[8];
        size_t kl = (size_t)icnt_key(k, s);
        struct kv_val v;
        int rc = kv_get(t, k, kl, &v);
        if (rc == 0)
            sum += icnt_decode(&v);
        else if (rc != -ENOENT)
            return rc;
    }
    *out = sum;
    return 0;
}

struct key_list {
    uint8_t (*keys)[META_KEY_MAX];
    size_t *lens;
    size_t n, cap;
    int err;
};

static int collect_key(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val;
    (void)vlen;
    struct key_list *l = arg;
    if (klen > META_KEY_MAX)
        return -EIO;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *nk = realloc(l->keys, cap * sizeof(*l->keys));
        if (!nk)
            return -ENOMEM;
        l->keys = nk;
        size_t *nl = realloc(l->lens, cap * sizeof(*l->lens));
        if (!nl)
            return -ENOMEM;
        l->lens = nl;
        l->cap = cap;
    }
    memcpy(l->keys[l->n], key, klen);
    l->lens[l->n++] = klen;
    return 0;
}

/* The first key after every key starting with prefix (prefix "+1"); 0 when
 * the prefix is all 0xff (scan to the end). */
static size_t prefix_end(const uint8_t *prefix, size_t plen, uint8_t *end)
{
    memcpy(end, prefix, plen);
    while (plen > 0) {
        if (end[plen - 1] != 0xff) {
            end[plen - 1]++;
            return plen;
        }
        plen--;
    }
    return 0;
}

int kv_del_prefix(struct kv_txn *t, const uint8_t *prefix, size_t plen)
{
    uint8_t end[META_KEY_MAX];
    size_t elen = prefix_end(prefix, plen, end);
    struct key_list l = { 0 };
    int rc = kv_scan(t, prefix, plen, elen ? end : NULL, elen, 0, collect_key, &l);
    for (size_t i = 0; rc == 0 && i < l.n; i++)
        rc = kv_del(t, l.keys[i], l.lens[i]);
    free(l.keys);
    free(l.lens);
    return rc;
}

static int stop_at_first(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key;
    (void)klen;
    (void)val;
    (void)vlen;
    *(int *)arg = 1;
    return 1;
}

int kv_prefix_any(struct kv_txn *t, const uint8_t *prefix, size_t plen)
{
    uint8_t end[META_KEY_MAX];
    size_t elen = prefix_end(prefix, plen, end);
    int found = 0;
    int rc = kv_scan(t, prefix, plen, elen ? end : NULL, elen, 1, stop_at_first, &found);
    return rc < 0 ? rc : found;
}

int inode_purge(struct kv_txn *t, uint64_t ino)
{
    static const char *const owned[] = { "LINK", "ORPH" };
    uint8_t k[12];
    int rc;
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
        rc = kv_del(t, k, meta_key(k, owned[i], ino, NULL, 0));
        if (rc < 0 && rc != -ENOENT)
            return rc;
    }
    static const char *const prefixed[] = { "XATR", "SESS" };
    for (size_t i = 0; i < sizeof(prefixed) / sizeof(prefixed[0]); i++) {
        rc = kv_del_prefix(t, k, meta_key(k, prefixed[i], ino, NULL, 0));
        if (rc < 0)
            return rc;
    }
    rc = kv_del(t, k, meta_key(k, "INOD", ino, NULL, 0));
    if (rc < 0 && rc != -ENOENT)
        return rc;
    return inode_count_add(t, ino, -1);
}
