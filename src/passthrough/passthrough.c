/* passthrough.c — the namespace, attribute and file operations of the
 * passthrough backend (directories are in dir_ops.c). */
#include "passthrough/passthrough.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <linux/magic.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/log.h"
#include "passthrough/pt_internal.h"

void pt_opts_default(struct pt_opts *o)
{
    *o = (struct pt_opts){ .entry_timeout = 1.0, .attr_timeout = 1.0, .keep_cache = 1 };
}

void *pt_new(const char *root_dir, const struct pt_opts *o)
{
    struct pt_fs *fs = calloc(1, sizeof(*fs));
    if (fs == NULL)
        return NULL;
    fs->o = *o;
    pthread_mutex_init(&fs->dirs_lock, NULL);
    fs->handle_mount_fd = -1;
    int fd = open(root_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        free(fs);
        errno = e;
        return NULL;
    }
    struct statfs sf;
    if (fstatfs(fd, &sf) == 0)
        fs->mem_backed = sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC;
    if (pt_table_init(&fs->nodes, fd, st.st_dev, st.st_ino) < 0) {
        close(fd);
        free(fs);
        errno = ENOMEM;
        return NULL;
    }
    return fs;
}

void pt_free(void *p)
{
    struct pt_fs *fs = p;
    if (fs == NULL)
        return;
    pt_dirs_free_all(fs);
    pthread_mutex_destroy(&fs->dirs_lock);
    close(fs->nodes.root.fd);
    if (fs->handle_mount_fd >= 0)
        close(fs->handle_mount_fd);
    pt_table_destroy(&fs->nodes);
    free(fs);
}

void pt_proc_path(int fd, char *buf, size_t len) { snprintf(buf, len, "/proc/self/fd/%d", fd); }

int pt_valid_name(const char *name)
{
    size_t n = strnlen(name, NAME_MAX + 1);
    return n > 0 && n <= NAME_MAX && strchr(name, '/') == NULL;
}

static void set_timeouts(const struct pt_fs *fs, struct fuse_entry_out *e)
{
    e->entry_valid = (uint64_t)fs->o.entry_timeout;
    e->entry_valid_nsec = (uint32_t)((fs->o.entry_timeout - (double)e->entry_valid) * 1e9);
    e->attr_valid = (uint64_t)fs->o.attr_timeout;
    e->attr_valid_nsec = (uint32_t)((fs->o.attr_timeout - (double)e->attr_valid) * 1e9);
}

int pt_do_lookup(struct pt_fs *fs, struct pt_node *parent, const char *name,
                 struct fuse_entry_out *e)
{
    memset(e, 0, sizeof(*e));
    /* never step above the exported root */
    if (parent == &fs->nodes.root && strcmp(name, "..") == 0)
        name = ".";
    int fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    struct pt_node *n = pt_table_ref(&fs->nodes, fd, st.st_dev, st.st_ino, st.st_mode & S_IFMT);
    if (n == NULL)
        return -ENOMEM;
    e->nodeid = n->id;
    vfs_stat_to_attr(&st, &e->attr);
    set_timeouts(fs, e);
    return 0;
}

/* Look name up under p and answer the request with the entry. */
static void reply_lookup(struct vfs_req *r, struct pt_fs *fs, struct pt_node *p, const char *name)
{
    struct fuse_entry_out e;
    int rc = pt_do_lookup(fs, p, name, &e);
    if (rc < 0)
        vfs_reply_err(r, -rc);
    else
        vfs_reply_entry(r, &e);
}

static void reply_attr_stat(struct vfs_req *r, struct pt_fs *fs, const struct stat *st)
{
    struct fuse_attr_out a;
    memset(&a, 0, sizeof(a));
    vfs_stat_to_attr(st, &a.attr);
    a.attr_valid = (uint64_t)fs->o.attr_timeout;
    a.attr_valid_nsec = (uint32_t)((fs->o.attr_timeout - (double)a.attr_valid) * 1e9);
    vfs_reply_attr(r, &a);
}

#define GET_NODE(var, id)                                         \
    struct pt_node *var = pt_table_get(&fs->nodes, (id));         \
    if (var == NULL) {                                            \
        vfs_reply_err(r, ESTALE);                                 \
        return;                                                   \
    }

#define CHECK_NAME(nm)                \
    if (!pt_valid_name(nm)) {         \
        vfs_reply_err(r, EINVAL);     \
        return;                       \
    }

static void pt_lookup(struct vfs_req *r, uint64_t parent, const char *name)
{
    struct pt_fs *fs = vfs_req_fs(r);
    GET_NODE(p, parent);
    if (strnlen(name, NAME_MAX + 1) > NAME_MAX) {
        vfs_reply_err(r, ENAMETOOLONG);
        return;
    }
    if (strchr(name, '/') != NULL || name[0] == '\0') {
        vfs_reply_err(r, EINVAL);
        return;
    }
    reply_lookup(r, fs, p, name);
}

static void pt_forget(void *p, uint64_t ino, uint64_t nlookup)
{
    struct pt_fs *fs = p;
    pt_table_forget(&fs->nodes, ino, nlookup);
}

static void pt_getattr(struct vfs_req *r, uint64_t ino, const uint64_t *fh)
{
    struct pt_fs *fs = vfs_req_fs(r);
    struct stat st;
    int rc;
    if (fh) {
        rc = fstat((int)*fh, &st);
    } else {
        GET_NODE(n, ino);
        rc = fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
    }
    if (rc < 0)
        vfs_reply_err(r, errno);
    else
        reply_attr_stat(r, fs, &st);
}

static void pt_setattr(struct vfs_req *r, uint64_t ino, const struct fuse_setattr_in *in)
{
    struct pt_fs *fs = vfs_req_fs(r);
    GET_NODE(n, ino);
    char path[64];
    pt_proc_path(n->fd, path, sizeof(path));
    int fh = (in->valid & FATTR_FH) ? (int)in->fh : -1;
    int rc = 0;
    if (in->valid & FATTR_MODE) {
        if (S_ISLNK(n->type))
            rc = -EOPNOTSUPP;
        else
            rc = fh >= 0 ? fchmod(fh, in->mode) : chmod(path, in->mode);
    }
    if (rc == 0 && (in->valid & (FATTR_UID | FATTR_GID))) {
        uid_t uid = (in->valid & FATTR_UID) ? in->uid : (uid_t)-1;
        gid_t gid = (in->valid & FATTR_GID) ? in->gid : (gid_t)-1;
        rc = fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
    }
    if (rc == 0 && (in->valid & FATTR_SIZE))
        rc = fh >= 0 ? ftruncate(fh, (off_t)in->size) : truncate(path, (off_t)in->size);
    if (rc == 0 && (in->valid & (FATTR_ATIME | FATTR_MTIME))) {
        struct timespec tv[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };
        if (in->valid & FATTR_ATIME_NOW)
            tv[0].tv_nsec = UTIME_NOW;
        else if (in->valid & FATTR_ATIME)
            tv[0] = (struct timespec){ (time_t)in->atime, in->atimensec };
        if (in->valid & FATTR_MTIME_NOW)
            tv[1].tv_nsec = UTIME_NOW;
        else if (in->valid & FATTR_MTIME)
            tv[1] = (struct timespec){ (time_t)in->mtime, in->mtimensec };
        if (fh >= 0)
            rc = futimens(fh, tv);
        else if (S_ISLNK(n->type))
            rc = utimensat(n->fd, "", tv, AT_EMPTY_PATH);
        else
            rc = utimensat(AT_FDCWD, path, tv, 0);
    }
    if (rc != 0) {
        vfs_reply_err(r, rc < 0 && rc != -1 ? -rc : errno);
        return;
    }
    pt_getattr(r, ino, NULL);
}

static void pt_readlink(struct vfs_req *r, uint64_t ino)
{
    struct pt_fs *fs = vfs_req_fs(r);
    GET_NODE(n, ino);
    char buf[PATH_MAX + 1];
    ssize_t len = readlinkat(n->fd, "", buf, sizeof(buf));
    if (len < 0)
        vfs_reply_err(r, errno);
    else if ((size_t)len >= sizeof(buf))
        vfs_reply_err(r, ENAMETOOLONG);
    else
        vfs_reply_buf(r, buf, (size_t)len);
}

/* New nodes belong to the caller: the daemon creates them as root, then
 * hands them over. Under a setgid directory the group stays inherited. */
static int give_to_caller(struct vfs_req *r, struct pt_node *parent, const char *name)
{
    const struct vfs_ctx *ctx = vfs_req_ctx(r);
    struct stat pst;
    gid_t gid = ctx->gid;
    if (fstatat(parent->fd, "", &pst, AT_EMPTY_PATH) == 0 && (pst.st_mode & S_ISGID))
        gid = (gid_t)-1;
    if (ctx->uid == 0 && (gid == (gid_t)-1 || gid == 0))
        return 0;
    return fchownat(parent->fd, name, ctx->uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static void finish_create(struct vfs_req *r, struct pt_node *p, const char *name, int is_dir)
{
    struct pt_fs *fs = vfs_req_fs(r);
    int rc = give_to_caller(r, p, name);
    struct fuse_entry_out e;
    if (rc == 0)
        rc = pt_do_lookup(fs, p, name, &e);
    if (rc < 0) {
        unlinkat(p->fd, name, is_dir ? AT_REMOVEDIR : 0);
        vfs_reply_err(r, -rc);
        return;
    }
    vfs_reply_entry(r, &e);
}

static void pt_mknod(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode,
                     dev_t rdev, mode_t umask)
{
    (void)umask; /* the kernel applied it (no FUSE_DONT_MASK) */
    struct pt_fs *fs = vfs_req_fs(r);
    GET_NODE(p, parent);
    CHECK_NAME(name);
    if (mknodat(p->fd, name, mode, rdev) < 0) {
        vfs_reply_err(r, errno);
        return;
    }
    finish_create(r, p, name, 0);
}

static void pt_mkdir(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode,
                     mode_t umask)
{
    (void)umask;
    struct pt_fs *fs = vfs_req_fs(r);
    GET_NODE(p, parent);
    CHECK_NAME(name);
    if (mkdirat(p->fd, name, mode) < 0) {
        vfs_reply_err(r, errno);
        return;
    }
    finish_create(r, p, name, 1);
}

static void pt_symlink(struct vfs_req *r, const char *target, uint64_t parent, const char *name)
{
    struct pt_fs *fs = vfs_req_fs(r);
    GET_NODE(p, parent);
    CHECK_NAME(name);
    if (symlinkat(target, p->fd, name) < 0) {
        vfs_reply_err(r, errno);
        return;
    }
    finish_create(r, p, name, 0);
}

static void pt_link(struct vfs_req *r, uint64_t ino, uint64_t newparent, const char *newname)
{
    struct pt_fs *fs = vfs_req_fs(r);
    GET_NODE(n, ino);
    GET_NODE(p, newparent);
    CHECK_NAME(newname);
    if (linkat(n->fd, "", p->fd, newname, AT_EMPTY_PATH) < 0) {
        vfs_reply_err(r, errno);
        return;
    }
    reply_lookup(r, fs, p, newname);
}

static void remove_entry(struct vfs_req *r, uint64_t parent, const char *name, int flags)
{
    struct pt_fs *fs = vfs_req_fs(r);
    GET_NODE(p, parent);
    CHECK_NAME(name);
    vfs_reply_err(r, unlinkat(p->fd, name, flags) < 0 ? errno : 0);
}

static void pt_unlink(struct vfs_req *r, uint64_t parent, const char *name)
{
    remove_entry(r, parent, name, 0);
}

static void pt_rmdir(struct vfs_req *r, uint64_t parent, const char *name)
{
    remove_entry(r, parent, name, AT_REMOVEDIR);
}

static void pt_rename(struct vfs_req *r, uint64_t parent, const char *name, uint64_t newparent,
                      const char *newname, unsigned flags)
{
    struct pt_fs *fs = vfs_req_fs(r);
    GET_NODE(p, parent);
    GET_NODE(np, newparent);
    CHECK_NAME(name);
    CHECK_NAME(newname);
    vfs_reply_err(r, renameat2(p->fd, name, np->fd, newname, flags) < 0 ? errno : 0);
}

static void pt_statfs(struct vfs_req *r, uint64_t ino)
{
    struct pt_fs *fs = vfs_req_fs(r);
    struct pt_node *n = pt_table_get(&fs->nodes, ino);
    struct statvfs sv;
    if (fstatvfs(n ? n->fd : fs->nodes.root.fd, &sv) < 0) {
        vfs_reply_err(r, errno);
        return;
    }
    struct fuse_kstatfs st = {
        .blocks = sv.f_blocks, .bfree = sv.f_bfree, .bavail = sv.f_bavail,
        .files = sv.f_files, .ffree = sv.f_ffree, .bsize = (uint32_t)sv.f_bsize,
        .namelen = (uint32_t)sv.f_namemax, .frsize = (uint32_t)sv.f_frsize,
    };
    vfs_reply_statfs(r, &st);
}

static void pt_access(struct vfs_req *r, uint64_t ino, int mask)
{
    struct pt_fs *fs = vfs_req_fs(r);
    GET_NODE(n, ino);
    struct stat st;
    if (fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
        vfs_reply_err(r, errno);
        return;
    }
    const struct vfs_ctx *c = vfs_req_ctx(r);
    if (mask == F_OK || c->uid == 0) {
        int x_ok = !(mask & X_OK) || S_ISDIR(st.st_mode) || (st.st_mode & 0111);
        vfs_reply_err(r, x_ok ? 0 : EACCES);
        return;
    }
    unsigned bits = c->uid == st.st_uid ? (st.st_mode >> 6) : c->gid == st.st_gid ? (st.st_mode >> 3) : st.st_mode;
    vfs_reply_err(r, ((unsigned)mask & ~bits & 7) ? EACCES : 0);
}

/* ---- files ---- */

int pt_backing_flags(const struct pt_fs *fs, int flags)
{
    flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT);
    if (fs->o.writeback) {
        /* the kernel may read to fill pages, and computes append offsets */
        if ((flags & O_ACCMODE) == O_WRONLY)
            flags = (flags & ~O_ACCMODE) | O_RDWR;
        flags &= ~O_APPEND;
    }
    return flags | O_CLOEXEC;
}

static void fill_open_out(const struct pt_fs *fs, int fd, int flags, struct vfs_fuse_open_out *o)
{
    memset(o, 0, sizeof(*o));
    o->fh = (uint64_t)fd;
    if (fs->o.direct_io || (flags & O_DIRECT))
        o->open_flags |= FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
    else if (fs->o.keep_cache)
        o->open_flags |= FOPEN_KEEP_CACHE;
}

static void pt_create(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode,
                      int flags, mode_t umask)
{
    (void)umask;
    struct pt_fs *fs = vfs_req_fs(r);
    GET_NODE(p, parent);
    CHECK_NAME(name);
    int fd = openat(p->fd, name, pt_backing_flags(fs, flags) | O_CREAT, mode);
    if (fd < 0) {
        vfs_reply_err(r, errno);
        return;
    }
    int rc = give_to_caller(r, p, name);
    struct fuse_entry_out e;
    if (rc == 0)
        rc = pt_do_lookup(fs, p, name, &e);
    if (rc < 0) {
        close(fd);
        vfs_reply_err(r, -rc);
        return;
    }
    struct vfs_fuse_open_out o;
    fill_open_out(fs, fd, flags, &o);
    pt_remember_fd(r, fd);
    vfs_reply_create(r, &e, &o);
}

/* An unprivileged truncate kills setuid (and setgid on group-executable
 * files), as the kernel does on local file systems; the daemon truncates
 * as root, so it must do it itself. */
static void kill_suid_on_trunc(struct vfs_req *r, int fd)
{
    struct stat st;
    if (vfs_req_ctx(r)->uid == 0 || fstat(fd, &st) < 0 || !(st.st_mode & (S_ISUID | S_ISGID)))
        return;
    mode_t m = st.st_mode & 07777 & ~S_ISUID;
    if (st.st_mode & S_IXGRP)
        m &= ~S_ISGID;
    if (m != (st.st_mode & 07777))
        fchmod(fd, m);
}

static void pt_open(struct vfs_req *r, uint64_t ino, int flags)
{
    struct pt_fs *fs = vfs_req_fs(r);
    GET_NODE(n, ino);
    char path[64];
    pt_proc_path(n->fd, path, sizeof(path));
    int fd = open(path, pt_backing_flags(fs, flags));
    if (fd < 0) {
        vfs_reply_err(r, errno);
        return;
    }
    if (flags & O_TRUNC)
        kill_suid_on_trunc(r, fd);
    struct vfs_fuse_open_out o;
    fill_open_out(fs, fd, flags, &o);
    pt_remember_fd(r, fd);
    vfs_reply_open(r, &o);
}

static void read_done(struct vfs_req *r, int res, void *buf)
{
    if (res < 0)
        vfs_reply_err(r, -res);
    else
        vfs_reply_buf(r, buf, (size_t)res);
}

static void pt_read(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, uint32_t size)
{
    (void)ino;
    size_t cap;
    void *buf = vfs_req_payload(r, &cap);
    if (buf == NULL) {
        vfs_reply_err(r, ENOMEM);
        return;
    }
    if (size > cap)
        size = (uint32_t)cap;
    struct pt_fs *fs = vfs_req_fs(r);
    struct iovec iov = { buf, size };
    ssize_t n;
    if (!fs->mem_backed) {
        /* served from the page cache without blocking? then answer now;
         * otherwise let the channel's ring do the waiting */
        n = preadv2((int)fh, &iov, 1, (off_t)off, RWF_NOWAIT);
        /* a short NOWAIT read may just mean "rest not cached": only a full
         * one (or a real error) is final; a short read would read as EOF */
        if (n == (ssize_t)size || (n < 0 && errno != EAGAIN && errno != EOPNOTSUPP)) {
            read_done(r, n < 0 ? -errno : (int)n, buf);
            return;
        }
        if (vfs_aio_read(r, (int)fh, buf, size, off, read_done, buf) == 0)
            return;
    }
    n = pread((int)fh, buf, size, (off_t)off);
    read_done(r, n < 0 ? -errno : (int)n, buf);
}

static void write_done(struct vfs_req *r, int res, void *arg)
{
    (void)arg;
    if (res < 0)
        vfs_reply_err(r, -res);
    else
        vfs_reply_write(r, (uint32_t)res);
}

static void pt_write(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off,
                     const void *data, uint32_t size, uint32_t write_flags)
{
    (void)ino;
    (void)write_flags;
    struct pt_fs *fs = vfs_req_fs(r);
    if (!fs->mem_backed && vfs_aio_write(r, (int)fh, data, size, off, write_done, NULL) == 0)
        return;
    ssize_t n = pwrite((int)fh, data, size, (off_t)off);
    write_done(r, n < 0 ? -errno : (int)n, NULL);
}

static void pt_flush(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t lock_owner)
{
    (void)ino;
    (void)lock_owner;
    /* close a duplicate: errors of delayed writes surface at close(2) */
    int d = dup((int)fh);
    vfs_reply_err(r, d < 0 ? errno : (close(d) < 0 ? errno : 0));
}

static void pt_release(struct vfs_req *r, uint64_t ino, uint64_t fh, int flags)
{
    (void)ino;
    (void)flags;
    close((int)fh);
    vfs_reply_err(r, 0);
}

static void fsync_done(struct vfs_req *r, int res, void *arg)
{
    (void)arg;
    vfs_reply_err(r, res < 0 ? -res : 0);
}

static void pt_fsync(struct vfs_req *r, uint64_t ino, uint64_t fh, int datasync)
{
    (void)ino;
    if (vfs_aio_fsync(r, (int)fh, datasync, fsync_done, NULL) == 0)
        return;
    int rc = datasync ? fdatasync((int)fh) : fsync((int)fh);
    fsync_done(r, rc < 0 ? -errno : 0, NULL);
}

static void pt_fallocate(struct vfs_req *r, uint64_t ino, uint64_t fh, int mode, uint64_t off,
                         uint64_t len)
{
    (void)ino;
    vfs_reply_err(r, fallocate((int)fh, mode, (off_t)off, (off_t)len) < 0 ? errno : 0);
}

static void pt_lseek(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, int whence)
{
    (void)ino;
    off_t res = lseek((int)fh, (off_t)off, whence);
    if (res < 0)
        vfs_reply_err(r, errno);
    else
        vfs_reply_lseek(r, (uint64_t)res);
}

static void pt_copy_file_range(struct vfs_req *r, uint64_t ino_in, uint64_t fh_in,
                               uint64_t off_in, uint64_t ino_out, uint64_t fh_out,
                               uint64_t off_out, uint64_t len, uint64_t flags)
{
    (void)ino_in;
    (void)ino_out;
    loff_t oi = (loff_t)off_in, oo = (loff_t)off_out;
    if (len > UINT32_MAX)
        len = UINT32_MAX; /* the reply carries a 32-bit count */
    ssize_t n = copy_file_range((int)fh_in, &oi, (int)fh_out, &oo, len, (unsigned)flags);
    if (n < 0)
        vfs_reply_err(r, errno);
    else
        vfs_reply_write(r, (uint32_t)n);
}

/* ---- xattrs ---- */

static int xattr_path(struct vfs_req *r, uint64_t ino, char *path, size_t len)
{
    struct pt_fs *fs = vfs_req_fs(r);
    struct pt_node *n = pt_table_get(&fs->nodes, ino);
    if (n == NULL)
        return -ESTALE;
    if (S_ISLNK(n->type))
        return -EPERM; /* Linux allows no user xattrs on symlinks */
    pt_proc_path(n->fd, path, len);
    return 0;
}

static void pt_setxattr(struct vfs_req *r, uint64_t ino, const char *name, const void *value,
                        uint32_t size, int flags)
{
    char path[64];
    int rc = xattr_path(r, ino, path, sizeof(path));
    if (rc == 0 && setxattr(path, name, value, size, flags) < 0)
        rc = -errno;
    vfs_reply_err(r, -rc);
}

static void pt_getxattr(struct vfs_req *r, uint64_t ino, const char *name, uint32_t size)
{
    char path[64], nm[XATTR_NAME_MAX + 1];
    int rc = xattr_path(r, ino, path, sizeof(path));
    if (rc < 0) {
        vfs_reply_err(r, rc == -EPERM ? ENODATA : -rc);
        return;
    }
    /* the name may live in the buffer the value is read into: copy it */
    if (strlen(name) > XATTR_NAME_MAX) {
        vfs_reply_err(r, ERANGE);
        return;
    }
    strcpy(nm, name);
    if (size == 0) {
        ssize_t n = getxattr(path, nm, NULL, 0);
        if (n < 0)
            vfs_reply_err(r, errno);
        else
            vfs_reply_xattr_size(r, (uint32_t)n);
        return;
    }
    size_t cap;
    void *buf = vfs_req_payload(r, &cap);
    ssize_t n = getxattr(path, nm, buf, size < cap ? size : cap);
    if (n < 0)
        vfs_reply_err(r, errno);
    else
        vfs_reply_buf(r, buf, (size_t)n);
}

static void pt_listxattr(struct vfs_req *r, uint64_t ino, uint32_t size)
{
    char path[64];
    int rc = xattr_path(r, ino, path, sizeof(path));
    if (rc < 0) {
        if (rc == -EPERM) {
            if (size == 0)
                vfs_reply_xattr_size(r, 0);
            else
                vfs_reply_buf(r, NULL, 0);
        } else {
            vfs_reply_err(r, -rc);
        }
        return;
    }
    if (size == 0) {
        ssize_t n = listxattr(path, NULL, 0);
        if (n < 0)
            vfs_reply_err(r, errno);
        else
            vfs_reply_xattr_size(r, (uint32_t)n);
        return;
    }
    size_t cap;
    void *buf = vfs_req_payload(r, &cap);
    ssize_t n = listxattr(path, buf, size < cap ? size : cap);
    if (n < 0)
        vfs_reply_err(r, errno);
    else
        vfs_reply_buf(r, buf, (size_t)n);
}

static void pt_removexattr(struct vfs_req *r, uint64_t ino, const char *name)
{
    char path[64];
    int rc = xattr_path(r, ino, path, sizeof(path));
    if (rc == 0 && removexattr(path, name) < 0)
        rc = -errno;
    vfs_reply_err(r, -rc);
}

static void pt_syncfs(struct vfs_req *r)
{
    struct pt_fs *fs = vfs_req_fs(r);
    int fd = openat(fs->nodes.root.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0 ? errno : (syncfs(fd) < 0 ? errno : 0);
    if (fd >= 0)
        close(fd);
    vfs_reply_err(r, rc);
}

static void pt_destroy(void *fs) { (void)fs; }

const struct vfs_ops pt_ops = {
    .destroy = pt_destroy,
    .lookup = pt_lookup,
    .forget = pt_forget,
    .node_key = pt_node_key,
    .restore_node = pt_restore_node,
    .restore_handle = pt_restore_handle,
    .getattr = pt_getattr,
    .setattr = pt_setattr,
    .readlink = pt_readlink,
    .mknod = pt_mknod,
    .mkdir = pt_mkdir,
    .unlink = pt_unlink,
    .rmdir = pt_rmdir,
    .symlink = pt_symlink,
    .rename = pt_rename,
    .link = pt_link,
    .statfs = pt_statfs,
    .access = pt_access,
    .create = pt_create,
    .open = pt_open,
    .read = pt_read,
    .write = pt_write,
    .flush = pt_flush,
    .release = pt_release,
    .fsync = pt_fsync,
    .fallocate = pt_fallocate,
    .lseek = pt_lseek,
    .copy_file_range = pt_copy_file_range,
    .opendir = pt_opendir,
    .readdir = pt_readdir,
    .releasedir = pt_releasedir,
    .fsyncdir = pt_fsyncdir,
    .setxattr = pt_setxattr,
    .getxattr = pt_getxattr,
    .listxattr = pt_listxattr,
    .removexattr = pt_removexattr,
    .syncfs = pt_syncfs,
};
