/* namespace_ops.c — lookup, getattr, create/mknod/mkdir/symlink, link,
 * unlink, rmdir, readlink, readdir, statfs, access. Each op_* runs inside
 * one transaction attempt (meta_run_txn) and fills op->resp. */
#include <fcntl.h>

#include "common/log.h"
#include "meta/meta_internal.h"

static bool is_dot(const char *name)
{
    return !strcmp(name, ".") || !strcmp(name, "..");
}

static void resp_inode(struct meta_op *op, const struct meta_inode *i)
{
    op->resp->has_inode = 1;
    op->resp->inode = *i;
}

int op_lookup(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct meta_op *op = ctx;
    const struct meta_req *req = op->req;
    int rc = name_check(req->name);
    if (rc < 0)
        return rc;
    struct meta_inode dir, child;
    if (!is_dot(req->name))
        dirent_prefetch(t, req->parent, req->name, 0, NULL);
    rc = load_dir(t, &req->user, req->parent, MAY_X, &dir);
    if (rc < 0)
        return rc;
    if (!strcmp(req->name, ".")) {
        resp_inode(op, &dir);
        return 0;
    }
    if (!strcmp(req->name, "..")) {
        rc = inode_load(t, dir.parent, &child);
        if (rc == 0)
            resp_inode(op, &child);
        return rc == -ENOENT ? -EIO : rc;
    }
    struct meta_dent d;
    rc = dirent_get(t, req->parent, req->name, &d);
    if (rc < 0)
        return rc;
    rc = inode_load(t, d.ino, &child);
    if (rc == -ENOENT) {
        LOG_ERROR(META_LOG, "dangling dirent parent=%016llx name=%s ino=%016llx",
                  (unsigned long long)req->parent, req->name, (unsigned long long)d.ino);
        return -EIO;
    }
    if (rc < 0)
        return rc;
    resp_inode(op, &child);
    return 0;
}

int op_getattr(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct meta_op *op = ctx;
    struct meta_inode i;
    int rc = inode_load(t, op->req->ino, &i);
    if (rc < 0)
        return rc;
    resp_inode(op, &i);
    return 0;
}

/* The parent of a new entry: search permission, the name free, then write
 * permission (the kernel answers EEXIST before EACCES). */
static int prepare_new(struct kv_txn *t, const struct meta_req *req, uint64_t parent,
                       const char *name, struct meta_inode *dir)
{
    int rc = name_check(name);
    if (rc < 0)
        return rc;
    if (!is_dot(name))
        dirent_prefetch(t, parent, name, 0, NULL);
    rc = load_dir(t, &req->user, parent, MAY_X, dir);
    if (rc < 0)
        return rc;
    if (is_dot(name))
        return -EEXIST;
    struct meta_dent d;
    rc = dirent_get(t, parent, name, &d);
    if (rc == 0)
        return -EEXIST;
    if (rc != -ENOENT)
        return rc;
    return perm_check(&req->user, dir, MAY_W | MAY_X);
}

/* A fresh inode owned by the caller, group and setgid bit as the kernel's
 * inode_init_owner() decides. */
static int init_inode(struct kv_txn *t, const struct meta_op *op, const struct meta_inode *dir,
                      uint32_t mode, struct meta_inode *out)
{
    const struct vf_user *u = &op->req->user;
    memset(out, 0, sizeof(*out));
    int rc = inode_new_id(t, &out->ino);
    if (rc < 0)
        return rc;
    out->uid = u->uid;
    if (dir->mode & S_ISGID) {
        out->gid = dir->gid;
        if (S_ISDIR(mode))
            mode |= S_ISGID;
    } else {
        out->gid = u->gid;
    }
    if (!S_ISDIR(mode) && (mode & S_ISGID) && u->uid != 0 && !user_in_group(u, out->gid))
        mode &= ~(uint32_t)S_ISGID;
    out->mode = mode;
    out->nlink = S_ISDIR(mode) ? 2 : 1;
    out->atime_ns = out->mtime_ns = out->ctime_ns = op->now;
    out->parent = dir->ino;
    return 0;
}

static int link_new(struct kv_txn *t, struct meta_op *op, struct meta_inode *dir, const char *name,
                    const struct meta_inode *child)
{
    int rc = inode_store(t, child);
    if (rc == 0)
        rc = dirent_put(t, dir->ino, name, child->ino, mode_dtype(child->mode));
    if (rc < 0)
        return rc;
    if (S_ISDIR(child->mode))
        dir->nlink++;
    dir_touch(dir, op->now);
    rc = inode_store(t, dir);
    if (rc == 0)
        rc = inode_count_add(t, child->ino, 1);
    if (rc == 0)
        resp_inode(op, child);
    return rc;
}

/* The layout of a new regular file, chosen once per operation. */
static int new_layout(struct meta_core *mc, struct meta_op *op, struct meta_layout *out)
{
    if (!op->layout_done) {
        uint32_t cs = op->req->chunk_size ? op->req->chunk_size : mc->chunk_size;
        uint32_t stripe = op->req->stripe ? op->req->stripe : mc->stripe;
        if (stripe > VF_MAX_STRIPE)
            stripe = VF_MAX_STRIPE;
        memset(&op->layout, 0, sizeof(op->layout));
        if (cs < (64u << 10) || cs > (64u << 20) || (cs & (cs - 1)))
            op->layout_rc = -EINVAL;
        else if (mc->chunk.alloc_layout)
            op->layout_rc = mc->chunk.alloc_layout(mc->chunk.arg, cs, stripe, &op->layout);
        else
            op->layout_rc = 0, op->layout.chunk_size = cs;
        if (op->layout_rc == 0 && op->layout.nchains > VF_MAX_STRIPE)
            op->layout_rc = -EIO;
        if (op->layout_rc < 0)
            LOG_WARN(META_LOG, "no layout for a new file err=%s", strerror(-op->layout_rc));
        op->layout_done = true;
    }
    *out = op->layout;
    return op->layout_rc;
}

int op_truncate_chunks(struct meta_core *mc, struct meta_op *op, const struct meta_inode *i,
                       uint64_t new_len)
{
    if (op->truncated && op->truncated_to == new_len)
        return 0;
    if (mc->chunk.truncate) {
        int rc = mc->chunk.truncate(mc->chunk.arg, i, new_len);
        if (rc < 0) {
            LOG_WARN(META_LOG, "chunk truncate failed ino=%016llx len=%llu err=%s",
                     (unsigned long long)i->ino, (unsigned long long)new_len, strerror(-rc));
            return rc == -EAGAIN ? -EIO : rc;
        }
    }
    op->truncated = true;
    op->truncated_to = new_len;
    return 0;
}

/* Open an existing inode for req->flags: permission by access mode,
 * O_TRUNC, and a session for regular files. */
static int open_inode(struct meta_core *mc, struct kv_txn *t, struct meta_op *op,
                      struct meta_inode *i)
{
    uint32_t flags = op->req->flags;
    int mask = 0;
    switch (flags & O_ACCMODE) {
    case O_RDONLY: mask = MAY_R; break;
    case O_WRONLY: mask = MAY_W; break;
    default: mask = MAY_R | MAY_W; break;
    }
    if (flags & O_TRUNC)
        mask |= MAY_W;
    if (S_ISDIR(i->mode) && (mask & MAY_W))
        return -EISDIR;
    if (S_ISLNK(i->mode))
        return -ELOOP;
    int rc = perm_check(&op->req->user, i, mask);
    if (rc < 0)
        return rc;
    if (!S_ISREG(i->mode)) {
        resp_inode(op, i);
        return 0;
    }
    /* an unprivileged O_TRUNC drops setuid, and setgid with group exec,
     * as the kernel's do_truncate() does for local file systems */
    uint32_t kill = 0;
    if ((flags & O_TRUNC) && op->req->user.uid != 0) {
        kill = i->mode & S_ISUID;
        if ((i->mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
            kill |= S_ISGID;
    }
    if ((flags & O_TRUNC) && (i->size > 0 || kill)) {
        if (i->size > 0 && (rc = op_truncate_chunks(mc, op, i, 0)) < 0)
            return rc;
        i->size = 0;
        i->mode &= ~kill;
        i->mtime_ns = i->ctime_ns = op->now;
        rc = inode_store(t, i);
        if (rc < 0)
            return rc;
    }
    rc = session_add(t, i->ino, flags, op->now, &op->resp->session);
    if (rc == 0)
        resp_inode(op, i);
    return rc;
}

int op_open(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    struct meta_op *op = ctx;
    struct meta_inode i;
    int rc = inode_load(t, op->req->ino, &i);
    if (rc < 0)
        return rc;
    return open_inode(mc, t, op, &i);
}

int op_create(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    struct meta_op *op = ctx;
    const struct meta_req *req = op->req;
    struct meta_inode dir, child;
    int rc = name_check(req->name);
    if (rc < 0)
        return rc;
    rc = load_dir(t, &req->user, req->parent, MAY_X, &dir);
    if (rc < 0)
        return rc;
    struct meta_dent d;
    rc = is_dot(req->name) ? 0 : dirent_get(t, req->parent, req->name, &d);
    if (rc == 0) {
        if (req->flags & O_EXCL)
            return -EEXIST;
        if (is_dot(req->name))
            return -EISDIR;
        rc = inode_load(t, d.ino, &child);
        if (rc < 0)
            return rc == -ENOENT ? -EIO : rc;
        return open_inode(mc, t, op, &child);
    }
    if (rc != -ENOENT)
        return rc;
    rc = perm_check(&req->user, &dir, MAY_W | MAY_X);
    if (rc < 0)
        return rc;
    rc = init_inode(t, op, &dir, S_IFREG | (req->mode & 07777 & ~req->umask), &child);
    if (rc == 0)
        rc = new_layout(mc, op, &child.layout);
    if (rc == 0)
        rc = link_new(t, op, &dir, req->name, &child);
    if (rc == 0)
        rc = session_add(t, child.ino, req->flags, op->now, &op->resp->session);
    return rc;
}

int op_mknod(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    struct meta_op *op = ctx;
    const struct meta_req *req = op->req;
    uint32_t type = req->mode & S_IFMT;
    if (type == 0)
        type = S_IFREG;
    switch (type) {
    case S_IFREG: case S_IFIFO: case S_IFSOCK: break;
    case S_IFCHR: case S_IFBLK:
        if (req->user.uid != 0)
            return -EPERM;
        break;
    case S_IFDIR: return -EPERM;
    default: return -EINVAL;
    }
    struct meta_inode dir, child;
    int rc = prepare_new(t, req, req->parent, req->name, &dir);
    if (rc < 0)
        return rc;
    rc = init_inode(t, op, &dir, type | (req->mode & 07777 & ~req->umask), &child);
    if (rc < 0)
        return rc;
    if (type == S_IFCHR || type == S_IFBLK)
        child.rdev = req->rdev;
    if (type == S_IFREG)
        rc = new_layout(mc, op, &child.layout);
    return rc < 0 ? rc : link_new(t, op, &dir, req->name, &child);
}

int op_mkdir(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct meta_op *op = ctx;
    const struct meta_req *req = op->req;
    struct meta_inode dir, child;
    int rc = prepare_new(t, req, req->parent, req->name, &dir);
    if (rc < 0)
        return rc;
    if (dir.nlink >= META_MAX_LINKS)
        return -EMLINK;
    rc = init_inode(t, op, &dir, S_IFDIR | (req->mode & 01777 & ~req->umask), &child);
    return rc < 0 ? rc : link_new(t, op, &dir, req->name, &child);
}

int op_symlink(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct meta_op *op = ctx;
    const struct meta_req *req = op->req;
    if (req->data_len == 0 || !req->data)
        return -ENOENT;
    if (req->data_len > VF_MAX_SYMLINK)
        return -ENAMETOOLONG;
    if (memchr(req->data, 0, req->data_len))
        return -EINVAL;
    struct meta_inode dir, child;
    int rc = prepare_new(t, req, req->parent, req->name, &dir);
    if (rc < 0)
        return rc;
    rc = init_inode(t, op, &dir, S_IFLNK | 0777, &child);
    if (rc < 0)
        return rc;
    child.size = req->data_len;
    uint8_t k[12];
    rc = kv_put(t, k, meta_key(k, "LINK", child.ino, NULL, 0), req->data, req->data_len);
    return rc < 0 ? rc : link_new(t, op, &dir, req->name, &child);
}

int op_link(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct meta_op *op = ctx;
    const struct meta_req *req = op->req;
    struct meta_inode src, dir;
    int rc = inode_load(t, req->ino, &src);
    if (rc < 0)
        return rc;
    if (S_ISDIR(src.mode))
        return -EPERM;
    rc = prepare_new(t, req, req->newparent, req->newname, &dir);
    if (rc < 0)
        return rc;
    if (src.nlink == 0)
        return -ENOENT;
    if (src.nlink >= META_MAX_LINKS)
        return -EMLINK;
    src.nlink++;
    src.ctime_ns = op->now;
    rc = inode_store(t, &src);
    if (rc == 0)
        rc = dirent_put(t, dir.ino, req->newname, src.ino, mode_dtype(src.mode));
    if (rc < 0)
        return rc;
    dir_touch(&dir, op->now);
    rc = inode_store(t, &dir);
    if (rc == 0)
        resp_inode(op, &src);
    return rc;
}

/* The entry parent/name for removal: the parent with write+search
 * permission, the child, and the sticky-bit rule. */
static int load_victim(struct kv_txn *t, const struct meta_req *req, struct meta_inode *dir,
                       struct meta_inode *child)
{
    if (!is_dot(req->name))
        dirent_prefetch(t, req->parent, req->name, 0, NULL);
    int rc = load_dir(t, &req->user, req->parent, MAY_W | MAY_X, dir);
    if (rc < 0)
        return rc;
    struct meta_dent d;
    rc = dirent_get(t, req->parent, req->name, &d);
    if (rc < 0)
        return rc;
    rc = inode_load(t, d.ino, child);
    if (rc < 0)
        return rc == -ENOENT ? -EIO : rc;
    return 0;
}

int op_unlink(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct meta_op *op = ctx;
    const struct meta_req *req = op->req;
    int rc = name_check(req->name);
    if (rc < 0)
        return rc;
    if (is_dot(req->name))
        return -EISDIR;
    struct meta_inode dir, child;
    rc = load_victim(t, req, &dir, &child);
    if (rc < 0)
        return rc;
    if (S_ISDIR(child.mode))
        return -EISDIR;
    rc = perm_sticky(&req->user, &dir, &child);
    if (rc == 0)
        rc = dirent_del(t, dir.ino, req->name);
    if (rc < 0)
        return rc;
    dir_touch(&dir, op->now);
    rc = inode_store(t, &dir);
    return rc < 0 ? rc : inode_drop_link(t, &child, op->now);
}

int op_rmdir(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct meta_op *op = ctx;
    const struct meta_req *req = op->req;
    int rc = name_check(req->name);
    if (rc < 0)
        return rc;
    if (!strcmp(req->name, "."))
        return -EINVAL;
    if (!strcmp(req->name, ".."))
        return -ENOTEMPTY;
    struct meta_inode dir, child;
    rc = load_victim(t, req, &dir, &child);
    if (rc < 0)
        return rc;
    if (!S_ISDIR(child.mode))
        return -ENOTDIR;
    rc = perm_sticky(&req->user, &dir, &child);
    if (rc < 0)
        return rc;
    rc = dir_is_empty(t, child.ino);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return -ENOTEMPTY;
    rc = dirent_del(t, dir.ino, req->name);
    if (rc < 0)
        return rc;
    if (dir.nlink > 2)
        dir.nlink--;
    dir_touch(&dir, op->now);
    rc = inode_store(t, &dir);
    return rc < 0 ? rc : inode_purge(t, child.ino);
}

int op_readlink(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct meta_op *op = ctx;
    struct meta_inode i;
    int rc = inode_load(t, op->req->ino, &i);
    if (rc < 0)
        return rc;
    if (!S_ISLNK(i.mode))
        return -EINVAL;
    uint8_t k[12];
    struct kv_val v;
    rc = kv_get(t, k, meta_key(k, "LINK", i.ino, NULL, 0), &v);
    if (rc < 0)
        return rc == -ENOENT ? -EIO : rc;
    if (v.len == 0 || v.len > VF_MAX_SYMLINK)
        return -EIO;
    op->out->len = 0;
    wb_bytes(op->out, v.data, v.len);
    if (op->out->err)
        return -ENOMEM;
    op->resp->data = op->out->data;
    op->resp->data_len = (uint32_t)op->out->len;
    return 0;
}

int op_readdir(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    struct meta_op *op = ctx;
    op->out->len = 0;
    return meta_readdir_txn(mc, t, op->req, op->resp, op->out);
}

int op_statfs(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    struct meta_op *op = ctx;
    uint64_t used;
    int rc = inode_count_total(t, &used);
    if (rc < 0)
        return rc;
    op->resp->used_inodes = used + 1; /* the root is not counted in the shards */
    op->resp->total_inodes = 1ull << 40;
    if (mc->space) {
        rc = mc->space(mc->space_arg, &op->resp->total_bytes, &op->resp->free_bytes);
        if (rc < 0)
            op->resp->total_bytes = op->resp->free_bytes = 0;
    }
    return 0;
}

int op_access(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct meta_op *op = ctx;
    struct meta_inode i;
    int rc = inode_load(t, op->req->ino, &i);
    if (rc < 0)
        return rc;
    int mask = (int)(op->req->mode & 7); /* R_OK 4, W_OK 2, X_OK 1 == MAY_* */
    return mask ? perm_check(&op->req->user, &i, mask) : 0;
}
