/* dirent.c — directory entries and READDIR.
 *
 * Record (version 1): u8 version, u64 child ino, u8 DT_* type. Entries of
 * one directory are the keys DENT+parent+name, so a scan from
 * DENT+parent+name+"\0" resumes right after name in name order.
 */
#include "common/log.h"
#include "meta/meta_internal.h"

#define DIRENT_RECORD_V1 1

static size_t dent_key(uint8_t *k, uint64_t parent, const char *name)
{
    return meta_key(k, "DENT", parent, name, strlen(name));
}

static int dirent_dec(const void *buf, size_t len, struct meta_dent *out)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    uint8_t ver = rb_u8(&rb);
    out->ino = rb_u64(&rb);
    out->type = rb_u8(&rb);
    if (!rb_done(&rb) || ver != DIRENT_RECORD_V1 || out->ino == 0)
        return -EIO;
    return 0;
}

void dirent_prefetch_with(struct kv_txn *t, const struct kv_key *extra, size_t nextra,
                          uint64_t ino, uint64_t parent, const char *name, uint64_t parent2,
                          const char *name2)
{
    enum { MAX_EXTRA = 2 };
    uint8_t k[5][META_KEY_MAX];
    struct kv_key keys[5 + MAX_EXTRA];
    size_t n = 0, nk = 0;
    for (size_t i = 0; i < nextra && i < MAX_EXTRA; i++)
        keys[n++] = extra[i];
    if (ino) {
        keys[n++] = (struct kv_key){ k[nk], meta_key(k[nk], "INOD", ino, NULL, 0) };
        nk++;
    }
    if (parent) {
        keys[n++] = (struct kv_key){ k[nk], meta_key(k[nk], "INOD", parent, NULL, 0) };
        nk++;
        keys[n++] = (struct kv_key){ k[nk], dent_key(k[nk], parent, name) };
        nk++;
    }
    if (parent2) {
        keys[n++] = (struct kv_key){ k[nk], meta_key(k[nk], "INOD", parent2, NULL, 0) };
        nk++;
        keys[n++] = (struct kv_key){ k[nk], dent_key(k[nk], parent2, name2) };
        nk++;
    }
    if (n)
        (void)kv_prefetch(t, keys, n);
}

void dirent_prefetch(struct kv_txn *t, uint64_t parent, const char *name, uint64_t parent2,
                     const char *name2)
{
    dirent_prefetch_with(t, NULL, 0, 0, parent, name, parent2, name2);
}

int dirent_get(struct kv_txn *t, uint64_t parent, const char *name, struct meta_dent *out)
{
    uint8_t k[META_KEY_MAX];
    struct kv_val v;
    int rc = kv_get(t, k, dent_key(k, parent, name), &v);
    if (rc < 0)
        return rc;
    rc = dirent_dec(v.data, v.len, out);
    if (rc < 0)
        LOG_ERROR(META_LOG, "corrupt dirent parent=%016llx name=%s", (unsigned long long)parent,
                  name);
    return rc;
}

int dirent_put(struct kv_txn *t, uint64_t parent, const char *name, uint64_t ino, uint32_t type)
{
    uint8_t k[META_KEY_MAX], v[10];
    v[0] = DIRENT_RECORD_V1;
    for (int i = 0; i < 8; i++)
        v[1 + i] = (uint8_t)(ino >> (8 * i));
    v[9] = (uint8_t)type;
    return kv_put(t, k, dent_key(k, parent, name), v, sizeof(v));
}

int dirent_del(struct kv_txn *t, uint64_t parent, const char *name)
{
    uint8_t k[META_KEY_MAX];
    int rc = kv_del(t, k, dent_key(k, parent, name));
    return rc == -ENOENT ? 0 : rc;
}

int dir_is_empty(struct kv_txn *t, uint64_t dir)
{
    uint8_t k[12];
    int any = kv_prefix_any(t, k, meta_key(k, "DENT", dir, NULL, 0));
    return any < 0 ? any : !any;
}

struct readdir_scan {
    struct kv_txn *t;
    struct wbuf *out;
    uint32_t max, count;
    bool plus, more;
    int err;
};

static int readdir_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct readdir_scan *s = arg;
    if (s->count == s->max) {
        s->more = true;
        return 1;
    }
    struct meta_dirent d;
    memset(&d, 0, sizeof(d));
    struct meta_dent de;
    size_t nlen = klen > 12 ? klen - 12 : 0;
    if (nlen == 0 || nlen > VF_MAX_NAME || dirent_dec(val, vlen, &de) < 0) {
        LOG_ERROR(META_LOG, "corrupt dirent in readdir klen=%zu", klen);
        return -EIO;
    }
    memcpy(d.name, (const uint8_t *)key + 12, nlen);
    d.name[nlen] = '\0';
    d.ino = de.ino;
    d.type = de.type;
    if (s->plus) {
        int rc = inode_load(s->t, de.ino, &d.inode);
        if (rc < 0)
            return rc == -ENOENT ? -EIO : rc;
        d.has_inode = 1;
    }
    size_t before = s->out->len;
    meta_dirent_enc(s->out, &d);
    if (s->out->err)
        return -ENOMEM;
    if (s->out->len > META_READDIR_BYTES && s->count > 0) {
        s->out->len = before; /* over budget: this one goes in the next page */
        s->more = true;
        return 1;
    }
    s->count++;
    return 0;
}

int meta_readdir_txn(struct meta_core *mc, struct kv_txn *t, const struct meta_req *req,
                     struct meta_resp *resp, struct wbuf *out)
{
    (void)mc;
    struct meta_inode dir;
    int rc = load_dir(t, &req->user, req->ino, MAY_R, &dir);
    if (rc < 0)
        return rc;
    uint8_t begin[META_KEY_MAX + 1], end[12];
    size_t nlen = strnlen(req->name, VF_MAX_NAME);
    size_t blen = meta_key(begin, "DENT", req->ino, req->name, nlen);
    if (nlen)
        begin[blen++] = 0; /* the smallest key after name itself */
    size_t elen = req->ino == UINT64_MAX ? 4 : meta_key(end, "DENT", req->ino + 1, NULL, 0);
    if (req->ino == UINT64_MAX)
        memcpy(end, "DENU", 4);
    struct readdir_scan s = {
        .t = t,
        .out = out,
        .max = req->max_entries ? req->max_entries : META_READDIR_DEFAULT,
        .plus = (req->flags & META_F_PLUS) != 0,
    };
    rc = kv_scan(t, begin, blen, end, elen, 0, readdir_one, &s);
    if (rc < 0)
        return rc;
    resp->eof = !s.more;
    resp->data = out->data;
    resp->data_len = (uint32_t)out->len;
    return 0;
}
