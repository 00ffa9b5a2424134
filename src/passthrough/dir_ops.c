/* dir_ops.c — directory handles of the passthrough backend.
 *
 * Cookies are the underlying file system's d_off values, so a listing
 * resumed at any cookie continues exactly where the kernel stopped, even
 * across handles. A handle buffers one getdents64 batch; a READDIRPLUS
 * looks an entry up (taking a lookup reference) only once the record is
 * sure to fit in the reply, so no reference is ever leaked.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "passthrough/pt_internal.h"

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

struct pt_dir {
    int fd;
    struct pt_dir *prev, *next; /* fs->dirs */
    pthread_mutex_t lock;
    uint64_t pos;   /* cookie the next buffered entry follows */
    size_t bpos, blen;
    char buf[32768];
};

void pt_opendir(struct vfs_req *r, uint64_t ino, int flags)
{
    (void)flags;
    struct pt_fs *fs = vfs_req_fs(r);
    struct pt_node *n = pt_table_get(&fs->nodes, ino);
    if (n == NULL) {
        vfs_reply_err(r, ESTALE);
        return;
    }
    int fd = openat(n->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        vfs_reply_err(r, errno);
        return;
    }
    struct pt_dir *d = pt_dir_from_fd(fs, fd);
    if (d == NULL) {
        vfs_reply_err(r, ENOMEM);
        return;
    }
    pt_remember_fd(r, fd); /* a successor daemon takes the handle over through it */
    struct vfs_fuse_open_out o = { .fh = (uint64_t)(uintptr_t)d };
    vfs_reply_open(r, &o);
}

void pt_dir_forget_position(struct pt_dir *d)
{
    d->pos = UINT64_MAX; /* no cookie is this: the next READDIR seeks */
    d->bpos = d->blen = 0;
}

struct pt_dir *pt_dir_from_fd(struct pt_fs *fs, int fd)
{
    struct pt_dir *d = malloc(sizeof(*d));
    if (d == NULL) {
        close(fd);
        return NULL;
    }
    d->fd = fd;
    pthread_mutex_init(&d->lock, NULL);
    d->pos = 0;
    d->bpos = d->blen = 0;
    pthread_mutex_lock(&fs->dirs_lock);
    d->prev = NULL;
    d->next = fs->dirs;
    if (fs->dirs)
        fs->dirs->prev = d;
    fs->dirs = d;
    pthread_mutex_unlock(&fs->dirs_lock);
    return d;
}

static int fill(struct pt_dir *d)
{
    long n = syscall(SYS_getdents64, d->fd, d->buf, sizeof(d->buf));
    if (n < 0)
        return -errno;
    d->bpos = 0;
    d->blen = (size_t)n;
    return (int)n;
}

void pt_readdir(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, uint32_t size,
                int plus)
{
    struct pt_fs *fs = vfs_req_fs(r);
    struct pt_dir *d = (struct pt_dir *)(uintptr_t)fh;
    struct pt_node *dir = pt_table_get(&fs->nodes, ino);
    if (dir == NULL) {
        vfs_reply_err(r, ESTALE);
        return;
    }
    size_t cap;
    char *out = vfs_req_payload(r, &cap);
    if (out == NULL) {
        vfs_reply_err(r, ENOMEM);
        return;
    }
    if (size < cap)
        cap = size;
    pthread_mutex_lock(&d->lock);
    if (off != d->pos) {
        if (lseek(d->fd, (off_t)off, SEEK_SET) < 0) {
            int e = errno;
            pthread_mutex_unlock(&d->lock);
            vfs_reply_err(r, e);
            return;
        }
        d->pos = off;
        d->bpos = d->blen = 0;
    }
    size_t used = 0;
    int err = 0;
    for (;;) {
        if (d->bpos >= d->blen) {
            int n = fill(d);
            if (n <= 0) {
                err = n < 0 ? -n : 0;
                break;
            }
        }
        struct linux_dirent64 *de = (struct linux_dirent64 *)(d->buf + d->bpos);
        size_t next;
        if (!plus) {
            next = vfs_dirent_add(out, cap, used, de->d_name, de->d_ino, de->d_type,
                                  (uint64_t)de->d_off);
        } else {
            if (used + vfs_direntplus_size(strlen(de->d_name)) > cap)
                break;
            struct fuse_entry_out e;
            memset(&e, 0, sizeof(e));
            int is_dot = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
            if (is_dot || pt_do_lookup(fs, dir, de->d_name, &e) < 0) {
                /* nodeid 0: the kernel lists the name without caching it */
                memset(&e, 0, sizeof(e));
                e.attr.ino = de->d_ino;
                e.attr.mode = (uint32_t)de->d_type << 12;
            }
            next = vfs_direntplus_add(out, cap, used, de->d_name, &e, (uint64_t)de->d_off);
        }
        if (next == 0)
            break; /* full: the entry stays buffered for the next call */
        used = next;
        d->pos = (uint64_t)de->d_off;
        d->bpos += de->d_reclen;
    }
    pthread_mutex_unlock(&d->lock);
    if (err && used == 0)
        vfs_reply_err(r, err);
    else
        vfs_reply_buf(r, out, used);
}

static void dir_free(struct pt_fs *fs, struct pt_dir *d)
{
    pthread_mutex_lock(&fs->dirs_lock);
    if (d->prev)
        d->prev->next = d->next;
    else
        fs->dirs = d->next;
    if (d->next)
        d->next->prev = d->prev;
    pthread_mutex_unlock(&fs->dirs_lock);
    close(d->fd);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

void pt_releasedir(struct vfs_req *r, uint64_t ino, uint64_t fh)
{
    (void)ino;
    dir_free(vfs_req_fs(r), (struct pt_dir *)(uintptr_t)fh);
    vfs_reply_err(r, 0);
}

void pt_dirs_free_all(struct pt_fs *fs)
{
    while (fs->dirs)
        dir_free(fs, fs->dirs);
}

void pt_fsyncdir(struct vfs_req *r, uint64_t ino, uint64_t fh, int datasync)
{
    (void)ino;
    struct pt_dir *d = (struct pt_dir *)(uintptr_t)fh;
    int rc = datasync ? fdatasync(d->fd) : fsync(d->fd);
    vfs_reply_err(r, rc < 0 ? errno : 0);
}
