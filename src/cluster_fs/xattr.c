/* xattr.c — extended attributes, stored by meta. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_fs/cfs_internal.h"

struct xattr_ctx {
    struct vfs_req *r;
    uint32_t size; /* 0: the caller asks for the length only */
};

static void value_done(void *arg, int status, const struct meta_resp *resp)
{
    struct xattr_ctx c = *(struct xattr_ctx *)arg;
    free(arg);
    if (status)
        vfs_reply_err(c.r, status);
    else if (c.size == 0)
        vfs_reply_xattr_size(c.r, resp->data_len);
    else if (resp->data_len > c.size)
        vfs_reply_err(c.r, ERANGE);
    else
        vfs_reply_buf(c.r, resp->data, resp->data_len);
}

static bool xattr_name_ok(struct vfs_req *r, const char *name)
{
    size_t n = strnlen(name, VF_MAX_XATTR_NAME + 1);
    if (n == 0 || n > VF_MAX_XATTR_NAME) {
        vfs_reply_err(r, n ? ERANGE : EINVAL);
        return false;
    }
    return true;
}

static void sized_call(struct vfs_req *r, uint16_t method, struct meta_req *m, uint32_t size)
{
    struct xattr_ctx *c = malloc(sizeof(*c));
    if (c == NULL) {
        vfs_reply_err(r, ENOMEM);
        return;
    }
    *c = (struct xattr_ctx){ r, size };
    mc_call(req_fs(r)->mc, method, m, value_done, c);
}

void cfs_getxattr(struct vfs_req *r, uint64_t ino, const char *name, uint32_t size)
{
    if (!xattr_name_ok(r, name))
        return;
    struct meta_req m;
    cfs_req_init(r, &m);
    m.ino = ino;
    snprintf(m.name, sizeof(m.name), "%s", name);
    sized_call(r, META_GETXATTR, &m, size);
}

void cfs_listxattr(struct vfs_req *r, uint64_t ino, uint32_t size)
{
    struct meta_req m;
    cfs_req_init(r, &m);
    m.ino = ino;
    sized_call(r, META_LISTXATTR, &m, size);
}

void cfs_setxattr(struct vfs_req *r, uint64_t ino, const char *name, const void *value,
                  uint32_t size, int flags)
{
    if (!xattr_name_ok(r, name))
        return;
    if (size > VF_MAX_XATTR_VALUE) {
        vfs_reply_err(r, E2BIG);
        return;
    }
    struct meta_req m;
    cfs_req_init(r, &m);
    m.ino = ino;
    snprintf(m.name, sizeof(m.name), "%s", name);
    m.data = value;
    m.data_len = size;
    m.flags = (uint32_t)flags;
    mc_call(req_fs(r)->mc, META_SETXATTR, &m, cfs_cb_empty, r);
}

void cfs_removexattr(struct vfs_req *r, uint64_t ino, const char *name)
{
    if (!xattr_name_ok(r, name))
        return;
    struct meta_req m;
    cfs_req_init(r, &m);
    m.ino = ino;
    snprintf(m.name, sizeof(m.name), "%s", name);
    mc_call(req_fs(r)->mc, META_REMOVEXATTR, &m, cfs_cb_empty, r);
}
