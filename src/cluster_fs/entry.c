/* entry.c — namespace and attribute operations: one META_* call each. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_fs/cfs_internal.h"

void cfs_lookup(struct vfs_req *r, uint64_t parent, const char *name)
{
    if (strnlen(name, VF_MAX_NAME + 1) > VF_MAX_NAME) {
        vfs_reply_err(r, ENAMETOOLONG);
        return;
    }
    struct meta_req m;
    cfs_req_init(r, &m);
    m.parent = parent;
    snprintf(m.name, sizeof(m.name), "%s", name);
    mc_call(req_fs(r)->mc, META_LOOKUP, &m, cfs_cb_entry, r);
}

void cfs_forget(void *fs, uint64_t ino, uint64_t nlookup)
{
    /* node ids are inode ids: nothing to drop */
    (void)fs;
    (void)ino;
    (void)nlookup;
}

void cfs_getattr(struct vfs_req *r, uint64_t ino, const uint64_t *fh)
{
    (void)fh;
    struct meta_req m;
    cfs_req_init(r, &m);
    m.ino = ino;
    mc_call(req_fs(r)->mc, META_GETATTR, &m, cfs_cb_attr, r);
}

struct setattr_ctx {
    struct vfs_req *r;
    uint64_t ino;
    bool size_set;
};

static void setattr_done(void *arg, int status, const struct meta_resp *resp)
{
    struct setattr_ctx *c = arg;
    struct vfs_req *r = c->r;
    if (status == 0 && c->size_set && resp->has_inode)
        cfs_local_truncate(req_fs(r), c->ino, resp->inode.size);
    free(c);
    cfs_cb_attr(r, status, resp);
}

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void cfs_setattr(struct vfs_req *r, uint64_t ino, const struct fuse_setattr_in *in)
{
    struct setattr_ctx *c = malloc(sizeof(*c));
    if (c == NULL) {
        vfs_reply_err(r, ENOMEM);
        return;
    }
    *c = (struct setattr_ctx){ r, ino, (in->valid & FATTR_SIZE) != 0 };
    struct meta_req m;
    cfs_req_init(r, &m);
    m.ino = ino;
    m.valid = in->valid;
    m.mode = in->mode;
    m.uid = in->uid;
    m.gid = in->gid;
    m.size = in->size;
    int64_t now = realtime_ns();
    m.atime_ns = (in->valid & FATTR_ATIME_NOW) ? now
                 : (int64_t)in->atime * 1000000000 + in->atimensec;
    m.mtime_ns = (in->valid & FATTR_MTIME_NOW) ? now
                 : (int64_t)in->mtime * 1000000000 + in->mtimensec;
    m.ctime_ns = (in->valid & FATTR_CTIME) ? (int64_t)in->ctime * 1000000000 + in->ctimensec
                                           : now;
    if (in->valid & FATTR_FH) {
        struct cfs_fh *f = fh_of(in->fh);
        m.session = f->session;
    }
    mc_call(req_fs(r)->mc, META_SETATTR, &m, setattr_done, c);
}

static void readlink_done(void *arg, int status, const struct meta_resp *resp)
{
    struct vfs_req *r = arg;
    if (status)
        vfs_reply_err(r, status);
    else
        vfs_reply_buf(r, resp->data, resp->data_len);
}

void cfs_readlink(struct vfs_req *r, uint64_t ino)
{
    struct meta_req m;
    cfs_req_init(r, &m);
    m.ino = ino;
    mc_call(req_fs(r)->mc, META_READLINK, &m, readlink_done, r);
}

/* A request naming a new entry parent/name; false (and answered) if the
 * name is unusable. */
static bool named(struct vfs_req *r, struct meta_req *m, uint64_t parent, const char *name)
{
    if (strnlen(name, VF_MAX_NAME + 1) > VF_MAX_NAME) {
        vfs_reply_err(r, ENAMETOOLONG);
        return false;
    }
    if (!cfs_name_ok(name)) {
        vfs_reply_err(r, EINVAL);
        return false;
    }
    cfs_req_init(r, m);
    m->parent = parent;
    snprintf(m->name, sizeof(m->name), "%s", name);
    return true;
}

void cfs_mknod(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
               mode_t umask)
{
    struct meta_req m;
    if (!named(r, &m, parent, name))
        return;
    m.mode = mode;
    m.umask = umask;
    m.rdev = rdev;
    mc_call(req_fs(r)->mc, META_MKNOD, &m, cfs_cb_entry, r);
}

void cfs_mkdir(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode, mode_t umask)
{
    struct meta_req m;
    if (!named(r, &m, parent, name))
        return;
    m.mode = mode | S_IFDIR;
    m.umask = umask;
    mc_call(req_fs(r)->mc, META_MKDIR, &m, cfs_cb_entry, r);
}

void cfs_unlink(struct vfs_req *r, uint64_t parent, const char *name)
{
    struct meta_req m;
    if (!named(r, &m, parent, name))
        return;
    mc_call(req_fs(r)->mc, META_UNLINK, &m, cfs_cb_empty, r);
}

void cfs_rmdir(struct vfs_req *r, uint64_t parent, const char *name)
{
    struct meta_req m;
    if (!named(r, &m, parent, name))
        return;
    mc_call(req_fs(r)->mc, META_RMDIR, &m, cfs_cb_empty, r);
}

void cfs_symlink(struct vfs_req *r, const char *target, uint64_t parent, const char *name)
{
    size_t n = strnlen(target, VF_MAX_SYMLINK + 1);
    if (n > VF_MAX_SYMLINK) {
        vfs_reply_err(r, ENAMETOOLONG);
        return;
    }
    if (n == 0) {
        vfs_reply_err(r, ENOENT);
        return;
    }
    struct meta_req m;
    if (!named(r, &m, parent, name))
        return;
    m.data = target;
    m.data_len = (uint32_t)n;
    mc_call(req_fs(r)->mc, META_SYMLINK, &m, cfs_cb_entry, r);
}

void cfs_rename(struct vfs_req *r, uint64_t parent, const char *name, uint64_t newparent,
                const char *newname, unsigned flags)
{
    struct meta_req m;
    if (!named(r, &m, parent, name))
        return;
    if (strnlen(newname, VF_MAX_NAME + 1) > VF_MAX_NAME) {
        vfs_reply_err(r, ENAMETOOLONG);
        return;
    }
    m.newparent = newparent;
    snprintf(m.newname, sizeof(m.newname), "%s", newname);
    m.flags = flags;
    mc_call(req_fs(r)->mc, META_RENAME, &m, cfs_cb_empty, r);
}

void cfs_link(struct vfs_req *r, uint64_t ino, uint64_t newparent, const char *newname)
{
    if (strnlen(newname, VF_MAX_NAME + 1) > VF_MAX_NAME) {
        vfs_reply_err(r, ENAMETOOLONG);
        return;
    }
    struct meta_req m;
    cfs_req_init(r, &m);
    m.ino = ino;
    m.newparent = newparent;
    snprintf(m.newname, sizeof(m.newname), "%s", newname);
    mc_call(req_fs(r)->mc, META_LINK, &m, cfs_cb_entry, r);
}

static void statfs_done(void *arg, int status, const struct meta_resp *resp)
{
    struct vfs_req *r = arg;
    if (status) {
        vfs_reply_err(r, status);
        return;
    }
    struct fuse_kstatfs st;
    memset(&st, 0, sizeof(st));
    st.bsize = st.frsize = 4096;
    st.blocks = resp->total_bytes / 4096;
    st.bfree = st.bavail = resp->free_bytes / 4096;
    st.files = resp->total_inodes;
    st.ffree = resp->total_inodes > resp->used_inodes ? resp->total_inodes - resp->used_inodes : 0;
    st.namelen = VF_MAX_NAME;
    vfs_reply_statfs(r, &st);
}

void cfs_statfs(struct vfs_req *r, uint64_t ino)
{
    struct meta_req m;
    cfs_req_init(r, &m);
    m.ino = ino;
    mc_call(req_fs(r)->mc, META_STATFS, &m, statfs_done, r);
}

void cfs_access(struct vfs_req *r, uint64_t ino, int mask)
{
    struct meta_req m;
    cfs_req_init(r, &m);
    m.ino = ino;
    m.mode = (uint32_t)mask;
    mc_call(req_fs(r)->mc, META_ACCESS, &m, cfs_cb_empty, r);
}
