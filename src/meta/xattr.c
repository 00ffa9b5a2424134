/* xattr.c — extended attributes as XATR+ino+name keys.
 *
 * Namespaces as the kernel treats them: user.* needs read/write permission
 * and exists only on regular files and directories; trusted.* is for root
 * only; security.* and system.* are stored as given (setting them needs
 * ownership); any other prefix is EOPNOTSUPP. */
#include <sys/xattr.h>

#include "meta/meta_internal.h"

static bool has_prefix(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

/* 0 or -errno: may u read (write=false) or change the xattr name of i? */
static int xattr_perm(const struct vf_user *u, const struct meta_inode *i, const char *name,
                      bool write)
{
    if (has_prefix(name, "user.")) {
        if (!S_ISREG(i->mode) && !S_ISDIR(i->mode))
            return write ? -EPERM : -ENODATA;
        if (write && S_ISDIR(i->mode) && (i->mode & S_ISVTX) && !user_owns(u, i))
            return -EPERM;
        return perm_check(u, i, write ? MAY_W : MAY_R);
    }
    if (has_prefix(name, "trusted."))
        return u->uid == 0 ? 0 : (write ? -EPERM : -ENODATA);
    if (has_prefix(name, "security.") || has_prefix(name, "system."))
        return (!write || user_owns(u, i)) ? 0 : -EPERM;
    return -EOPNOTSUPP;
}

static size_t xattr_key(uint8_t *k, uint64_t ino, const char *name)
{
    return meta_key(k, "XATR", ino, name, strlen(name));
}

static int xattr_prepare(struct kv_txn *t, const struct meta_req *req, bool write,
                         struct meta_inode *i)
{
    size_t n = strnlen(req->name, sizeof(req->name));
    if (n == 0)
        return -EINVAL;
    if (n > VF_MAX_XATTR_NAME)
        return -ERANGE;
    int rc = inode_load(t, req->ino, i);
    if (rc < 0)
        return rc;
    return xattr_perm(&req->user, i, req->name, write);
}

int op_setxattr(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct meta_op *op = ctx;
    const struct meta_req *req = op->req;
    if (req->flags & ~(uint32_t)(XATTR_CREATE | XATTR_REPLACE))
        return -EINVAL;
    if (req->data_len > VF_MAX_XATTR_VALUE)
        return -E2BIG;
    struct meta_inode i;
    int rc = xattr_prepare(t, req, true, &i);
    if (rc < 0)
        return rc;
    uint8_t k[META_KEY_MAX];
    size_t kl = xattr_key(k, i.ino, req->name);
    struct kv_val v;
    rc = kv_get(t, k, kl, &v);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    if (rc == 0 && (req->flags & XATTR_CREATE))
        return -EEXIST;
    if (rc == -ENOENT && (req->flags & XATTR_REPLACE))
        return -ENODATA;
    rc = kv_put(t, k, kl, req->data_len ? req->data : "", req->data_len);
    if (rc < 0)
        return rc;
    i.ctime_ns = op->now;
    return inode_store(t, &i);
}

int op_getxattr(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct meta_op *op = ctx;
    struct meta_inode i;
    int rc = xattr_prepare(t, op->req, false, &i);
    if (rc < 0)
        return rc;
    uint8_t k[META_KEY_MAX];
    struct kv_val v;
    rc = kv_get(t, k, xattr_key(k, i.ino, op->req->name), &v);
    if (rc == -ENOENT)
        return -ENODATA;
    if (rc < 0)
        return rc;
    if (v.len > VF_MAX_XATTR_VALUE)
        return -EIO;
    op->out->len = 0;
    wb_bytes(op->out, v.data, v.len);
    if (op->out->err)
        return -ENOMEM;
    op->resp->data = op->out->data;
    op->resp->data_len = (uint32_t)op->out->len;
    return 0;
}

struct list_scan {
    struct wbuf *out;
    const struct vf_user *u;
    const struct meta_inode *i;
};

static int list_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val;
    (void)vlen;
    struct list_scan *s = arg;
    if (klen <= 12 || klen - 12 > VF_MAX_XATTR_NAME)
        return -EIO;
    char name[VF_MAX_XATTR_NAME + 1];
    memcpy(name, (const uint8_t *)key + 12, klen - 12);
    name[klen - 12] = '\0';
    /* like the kernel, hide trusted.* from non-root callers */
    if (has_prefix(name, "trusted.") && s->u->uid != 0)
        return 0;
    wb_bytes(s->out, name, klen - 12);
    wb_u8(s->out, 0);
    if (s->out->len > META_XATTR_LIST_MAX)
        return -E2BIG;
    return s->out->err ? -ENOMEM : 0;
}

int op_listxattr(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct meta_op *op = ctx;
    struct meta_inode i;
    int rc = inode_load(t, op->req->ino, &i);
    if (rc < 0)
        return rc;
    uint8_t begin[12], end[12];
    size_t bl = meta_key(begin, "XATR", i.ino, NULL, 0);
    size_t el = i.ino == UINT64_MAX ? 4 : meta_key(end, "XATR", i.ino + 1, NULL, 0);
    if (i.ino == UINT64_MAX)
        memcpy(end, "XATS", 4);
    op->out->len = 0;
    struct list_scan s = { op->out, &op->req->user, &i };
    rc = kv_scan(t, begin, bl, end, el, 0, list_one, &s);
    if (rc < 0)
        return rc;
    op->resp->data = op->out->data;
    op->resp->data_len = (uint32_t)op->out->len;
    return 0;
}

int op_removexattr(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct meta_op *op = ctx;
    struct meta_inode i;
    int rc = xattr_prepare(t, op->req, true, &i);
    if (rc < 0)
        return rc;
    uint8_t k[META_KEY_MAX];
    size_t kl = xattr_key(k, i.ino, op->req->name);
    struct kv_val v;
    rc = kv_get(t, k, kl, &v);
    if (rc < 0)
        return rc == -ENOENT ? -ENODATA : rc;
    rc = kv_del(t, k, kl);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    i.ctime_ns = op->now;
    return inode_store(t, &i);
}
