/* attr.c — SETATTR with the kernel's rules (setattr_prepare/notify_change):
 * chmod by owner or root; chown only by root, or by the owner to one of its
 * own groups; chown of a non-directory clears setuid (and setgid when group
 * execute is set); explicit times by owner or root, *_NOW also with write
 * permission; size changes truncate the chunks first. */
#include <linux/fuse.h>

#include "meta/meta_internal.h"

static int check_chown(const struct vf_user *u, const struct meta_inode *i, uint32_t valid,
                       uint32_t uid, uint32_t gid)
{
    if (u->uid == 0)
        return 0;
    if ((valid & FATTR_UID) && !(uid == i->uid && u->uid == i->uid))
        return -EPERM;
    if ((valid & FATTR_GID) && !(u->uid == i->uid && (gid == i->gid || user_in_group(u, gid))))
        return -EPERM;
    return 0;
}

static int check_times(const struct vf_user *u, const struct meta_inode *i, uint32_t valid)
{
    bool explicit_time = ((valid & FATTR_ATIME) && !(valid & FATTR_ATIME_NOW)) ||
                         ((valid & FATTR_MTIME) && !(valid & FATTR_MTIME_NOW));
    if (explicit_time)
        return user_owns(u, i) ? 0 : -EPERM;
    if (valid & (FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW)) {
        if (user_owns(u, i))
            return 0;
        return perm_check(u, i, MAY_W);
    }
    return 0;
}

int op_setattr(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    struct meta_op *op = ctx;
    const struct meta_req *req = op->req;
    const struct vf_user *u = &req->user;
    uint32_t valid = req->valid;
    struct meta_inode i;
    int rc = inode_load(t, req->ino, &i);
    if (rc < 0)
        return rc;
    if ((valid & FATTR_MODE) && !user_owns(u, &i))
        return -EPERM;
    rc = check_chown(u, &i, valid, req->uid, req->gid);
    if (rc == 0)
        rc = check_times(u, &i, valid);
    if (rc < 0)
        return rc;
    if (valid & FATTR_SIZE) {
        if (S_ISDIR(i.mode))
            return -EISDIR;
        if (!S_ISREG(i.mode))
            return -EINVAL;
        /* an open file descriptor (FATTR_FH) already proved write access */
        if (!(valid & FATTR_FH)) {
            rc = perm_check(u, &i, MAY_W);
            if (rc < 0)
                return rc;
        }
    }
    bool changed = false;
    if (valid & FATTR_MODE) {
        uint32_t mode = req->mode & 07777;
        /* the kernel drops setgid when a non-member without CAP_FSETID chmods */
        if (u->uid != 0 && !user_in_group(u, i.gid))
            mode &= ~(uint32_t)S_ISGID;
        i.mode = (i.mode & S_IFMT) | mode;
        changed = true;
    }
    if (valid & (FATTR_UID | FATTR_GID)) {
        if (valid & FATTR_UID)
            i.uid = req->uid;
        if (valid & FATTR_GID)
            i.gid = req->gid;
        if (!S_ISDIR(i.mode)) {
            i.mode &= ~(uint32_t)S_ISUID;
            if ((i.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
                i.mode &= ~(uint32_t)S_ISGID;
        }
        changed = true;
    }
    if (valid & FATTR_SIZE) {
        if (req->size < i.size) {
            rc = op_truncate_chunks(mc, op, &i, req->size);
            if (rc < 0)
                return rc;
        }
        if (!(valid & (FATTR_MTIME | FATTR_MTIME_NOW)))
            i.mtime_ns = op->now;
        i.size = req->size;
        changed = true;
    }
    if (valid & (FATTR_ATIME | FATTR_ATIME_NOW)) {
        i.atime_ns = (valid & FATTR_ATIME_NOW) ? op->now : req->atime_ns;
        changed = true;
    }
    if (valid & (FATTR_MTIME | FATTR_MTIME_NOW)) {
        i.mtime_ns = (valid & FATTR_MTIME_NOW) ? op->now : req->mtime_ns;
        changed = true;
    }
    if (changed || (valid & FATTR_CTIME))
        i.ctime_ns = (valid & FATTR_CTIME) ? req->ctime_ns : op->now;
    if (changed || (valid & FATTR_CTIME)) {
        rc = inode_store(t, &i);
        if (rc < 0)
            return rc;
    }
    op->resp->has_inode = 1;
    op->resp->inode = i;
    return 0;
}
