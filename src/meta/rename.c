/* rename.c — RENAME with RENAME_NOREPLACE / RENAME_EXCHANGE.
 *
 * A directory moving to another parent must not land in its own subtree:
 * the new parent's ancestors are walked up to the root inside the
 * transaction, so each inode read there is conflict-checked and of two
 * concurrent renames that together would form a cycle only one commits. */
#include <linux/fs.h>

#include "common/log.h"
#include "meta/meta_internal.h"

#define META_MAX_DEPTH 4096

/* 1 when anc is start or one of its ancestors, 0 when not, -errno. */
static int is_ancestor(struct kv_txn *t, uint64_t anc, uint64_t start)
{
    uint64_t cur = start;
    for (int depth = 0; depth < META_MAX_DEPTH; depth++) {
        if (cur == anc)
            return 1;
        if (cur == VF_ROOT_INO)
            return 0;
        struct meta_inode i;
        int rc = inode_load(t, cur, &i);
        if (rc < 0)
            return rc == -ENOENT ? -EIO : rc;
        cur = i.parent;
    }
    LOG_ERROR(META_LOG, "parent chain too deep from ino=%016llx", (unsigned long long)start);
    return -EIO;
}

/* A directory changing parents rewrites its "..": the kernel wants write
 * permission on it, and it must not move under itself. */
static int check_move_dir(struct kv_txn *t, const struct vf_user *u, const struct meta_inode *d,
                          uint64_t to)
{
    int rc = is_ancestor(t, d->ino, to);
    if (rc < 0)
        return rc;
    if (rc == 1)
        return -EINVAL;
    return perm_check(u, d, MAY_W);
}

struct rename_state {
    struct meta_inode pdir, npdir_own, *npdir;
    struct meta_inode src, dst;
    struct meta_dent sd, dd;
    bool have_dst, cross;
};

static int rename_load(struct kv_txn *t, const struct meta_req *req, struct rename_state *s)
{
    const struct vf_user *u = &req->user;
    dirent_prefetch(t, req->parent, req->name, req->newparent, req->newname);
    int rc = load_dir(t, u, req->parent, MAY_W | MAY_X, &s->pdir);
    if (rc < 0)
        return rc;
    s->cross = req->parent != req->newparent;
    s->npdir = s->cross ? &s->npdir_own : &s->pdir;
    if (s->cross && (rc = load_dir(t, u, req->newparent, MAY_W | MAY_X, s->npdir)) < 0)
        return rc;
    rc = dirent_get(t, req->parent, req->name, &s->sd);
    if (rc < 0)
        return rc;
    rc = inode_load(t, s->sd.ino, &s->src);
    if (rc < 0)
        return rc == -ENOENT ? -EIO : rc;
    rc = dirent_get(t, req->newparent, req->newname, &s->dd);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    s->have_dst = rc == 0;
    if (s->have_dst && s->dd.ino != s->sd.ino) {
        rc = inode_load(t, s->dd.ino, &s->dst);
        if (rc < 0)
            return rc == -ENOENT ? -EIO : rc;
    }
    return 0;
}

static int store_dirs(struct kv_txn *t, struct rename_state *s, int64_t now)
{
    dir_touch(&s->pdir, now);
    int rc = inode_store(t, &s->pdir);
    if (rc == 0 && s->cross) {
        dir_touch(s->npdir, now);
        rc = inode_store(t, s->npdir);
    }
    return rc;
}

static int do_exchange(struct kv_txn *t, const struct meta_req *req, struct rename_state *s,
                       int64_t now)
{
    int rc;
    if (s->cross) {
        if (S_ISDIR(s->src.mode) && (rc = check_move_dir(t, &req->user, &s->src, req->newparent)) < 0)
            return rc;
        if (S_ISDIR(s->dst.mode) && (rc = check_move_dir(t, &req->user, &s->dst, req->parent)) < 0)
            return rc;
        if (S_ISDIR(s->src.mode)) {
            s->src.parent = req->newparent;
            s->pdir.nlink--;
            s->npdir->nlink++;
        }
        if (S_ISDIR(s->dst.mode)) {
            s->dst.parent = req->parent;
            s->npdir->nlink--;
            s->pdir.nlink++;
        }
    }
    rc = dirent_put(t, req->parent, req->name, s->dst.ino, mode_dtype(s->dst.mode));
    if (rc == 0)
        rc = dirent_put(t, req->newparent, req->newname, s->src.ino, mode_dtype(s->src.mode));
    s->src.ctime_ns = s->dst.ctime_ns = now;
    if (rc == 0)
        rc = inode_store(t, &s->src);
    if (rc == 0)
        rc = inode_store(t, &s->dst);
    return rc < 0 ? rc : store_dirs(t, s, now);
}

static int do_move(struct kv_txn *t, const struct meta_req *req, struct rename_state *s,
                   int64_t now)
{
    int rc;
    bool src_dir = S_ISDIR(s->src.mode);
    if (s->have_dst) {
        bool dst_dir = S_ISDIR(s->dst.mode);
        if (src_dir && !dst_dir)
            return -ENOTDIR;
        if (!src_dir && dst_dir)
            return -EISDIR;
        if (dst_dir) {
            rc = dir_is_empty(t, s->dst.ino);
            if (rc < 0)
                return rc;
            if (rc == 0)
                return -ENOTEMPTY;
        }
    }
    if (src_dir && s->cross && (rc = check_move_dir(t, &req->user, &s->src, req->newparent)) < 0)
        return rc;
    if (s->have_dst) {
        if (S_ISDIR(s->dst.mode)) {
            rc = inode_purge(t, s->dst.ino);
            s->npdir->nlink--;
        } else {
            rc = inode_drop_link(t, &s->dst, now);
        }
        if (rc < 0)
            return rc;
    }
    if (src_dir && s->cross) {
        s->src.parent = req->newparent;
        s->pdir.nlink--;
        s->npdir->nlink++;
    }
    rc = dirent_del(t, req->parent, req->name);
    if (rc == 0)
        rc = dirent_put(t, req->newparent, req->newname, s->src.ino, mode_dtype(s->src.mode));
    s->src.ctime_ns = now;
    if (rc == 0)
        rc = inode_store(t, &s->src);
    return rc < 0 ? rc : store_dirs(t, s, now);
}

int op_rename(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct meta_op *op = ctx;
    const struct meta_req *req = op->req;
    uint32_t flags = req->flags;
    if ((flags & ~(uint32_t)(RENAME_NOREPLACE | RENAME_EXCHANGE)) ||
        (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE))
        return -EINVAL;
    int rc = name_check(req->name);
    if (rc == 0)
        rc = name_check(req->newname);
    if (rc < 0)
        return rc;
    if (!strcmp(req->name, ".") || !strcmp(req->name, "..") || !strcmp(req->newname, ".") ||
        !strcmp(req->newname, ".."))
        return -EBUSY;
    struct rename_state s;
    memset(&s, 0, sizeof(s));
    rc = rename_load(t, req, &s);
    if (rc < 0)
        return rc;
    if ((flags & RENAME_EXCHANGE) && !s.have_dst)
        return -ENOENT;
    if ((flags & RENAME_NOREPLACE) && s.have_dst)
        return -EEXIST;
    if (s.have_dst && s.dd.ino == s.sd.ino)
        return 0; /* two names of one inode: POSIX says do nothing */
    rc = perm_sticky(&req->user, &s.pdir, &s.src);
    if (rc == 0 && s.have_dst)
        rc = perm_sticky(&req->user, s.npdir, &s.dst);
    if (rc < 0)
        return rc;
    if (flags & RENAME_EXCHANGE)
        return do_exchange(t, req, &s, op->now);
    return do_move(t, req, &s, op->now);
}
