/* file_io.c — open files: create/open hand out a handle carrying the
 * inode (layout), the meta session and the end written; read/write go to
 * storage through the storage client; flush/fsync/release tell meta how
 * far this handle wrote. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_fs/cfs_internal.h"
#include "common/log.h"
#include "common/util.h"

static struct cfs_fh *fh_new(struct cfs *fs, const struct meta_inode *in, uint64_t session,
                             int flags)
{
    struct cfs_fh *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->ino = in->ino;
    f->inode = *in;
    f->session = session;
    f->flags = flags;
    f->w = cfs_writer_get(fs, in->ino, in->size);
    if (f->w == NULL) {
        free(f);
        return NULL;
    }
    return f;
}

static void fh_free(struct cfs *fs, struct cfs_fh *f)
{
    cfs_writer_put(fs, f->w);
    free(f);
}

static void ignore_done(void *arg, int status, const struct meta_resp *resp)
{
    (void)arg;
    (void)status;
    (void)resp;
}

static void open_reply(struct vfs_req *r, int status, const struct meta_resp *resp, int flags,
                       bool with_entry)
{
    struct cfs *fs = req_fs(r);
    if (status) {
        vfs_reply_err(r, status);
        return;
    }
    if (!resp->has_inode) {
        vfs_reply_err(r, EIO);
        return;
    }
    if (flags & O_TRUNC)
        cfs_local_truncate(fs, resp->inode.ino, 0);
    struct cfs_fh *f = fh_new(fs, &resp->inode, resp->session, flags);
    if (f == NULL) {
        struct meta_req m;
        memset(&m, 0, sizeof(m));
        m.ino = resp->inode.ino;
        m.session = resp->session;
        mc_call(fs->mc, META_CLOSE, &m, ignore_done, NULL);
        vfs_reply_err(r, ENOMEM);
        return;
    }
    f->blob = vfs_req_fh_blob(r);
    if (f->blob) {
        struct cfs_fh_blob b = { .session = f->session, .flags = (uint32_t)flags };
        memcpy(f->blob, &b, sizeof(b));
    }
    struct vfs_fuse_open_out o;
    memset(&o, 0, sizeof(o));
    o.fh = (uint64_t)(uintptr_t)f;
    if (!with_entry) {
        /* close-to-open: another client may have changed the file since the
         * kernel cached its attributes; make it ask again (attributes only,
         * the page cache is dropped by the open itself) */
        vfs_notify_inval_inode(vfs_req_session(r), resp->inode.ino, -1, 0);
    }
    if (with_entry) {
        struct fuse_entry_out e;
        cfs_fill_entry(fs, &resp->inode, &e);
        vfs_reply_create(r, &e, &o);
    } else {
        vfs_reply_open(r, &o);
    }
}

struct open_ctx {
    struct vfs_req *r;
    int flags;
    uint32_t uid;
    struct meta_resp opened; /* open_done → kill_suid_done */
};

static void create_done(void *arg, int status, const struct meta_resp *resp)
{
    struct open_ctx c = *(struct open_ctx *)arg;
    free(arg);
    open_reply(c.r, status, resp, c.flags, true);
}

static void kill_suid_done(void *arg, int status, const struct meta_resp *resp)
{
    struct open_ctx *c = arg;
    if (status == 0 && resp->has_inode)
        c->opened.inode = resp->inode;
    open_reply(c->r, 0, &c->opened, c->flags, false);
    free(c);
}

/* An unprivileged O_TRUNC drops setuid (and setgid with group exec), as
 * truncate(2) does on a local file system; the kernel leaves it to us when
 * it sends O_TRUNC with the open. */
static bool must_kill_suid(const struct open_ctx *c, const struct meta_resp *resp)
{
    uint32_t m = resp->inode.mode;
    return (c->flags & O_TRUNC) && c->uid != 0 && resp->has_inode && S_ISREG(m) &&
           ((m & S_ISUID) || ((m & S_ISGID) && (m & S_IXGRP)));
}

static void open_done(void *arg, int status, const struct meta_resp *resp)
{
    struct open_ctx *c = arg;
    if (status == 0 && must_kill_suid(c, resp)) {
        c->opened = *resp;
        c->opened.data = NULL;
        c->opened.data_len = 0;
        struct meta_req m;
        memset(&m, 0, sizeof(m)); /* as root: the kernel's own privilege */
        m.ino = resp->inode.ino;
        m.valid = FATTR_MODE;
        m.mode = resp->inode.mode & ~(uint32_t)S_ISUID;
        if (m.mode & S_IXGRP)
            m.mode &= ~(uint32_t)S_ISGID;
        mc_call(req_fs(c->r)->mc, META_SETATTR, &m, kill_suid_done, c);
        return;
    }
    struct open_ctx copy = *c;
    free(c);
    open_reply(copy.r, status, resp, copy.flags, false);
}

void cfs_create(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode, int flags,
                mode_t umask)
{
    struct cfs *fs = req_fs(r);
    if (strnlen(name, VF_MAX_NAME + 1) > VF_MAX_NAME) {
        vfs_reply_err(r, ENAMETOOLONG);
        return;
    }
    if (!cfs_name_ok(name)) {
        vfs_reply_err(r, EINVAL);
        return;
    }
    struct open_ctx *c = malloc(sizeof(*c));
    if (c == NULL) {
        vfs_reply_err(r, ENOMEM);
        return;
    }
    *c = (struct open_ctx){ .r = r, .flags = flags };
    struct meta_req m;
    cfs_req_init(r, &m);
    m.parent = parent;
    snprintf(m.name, sizeof(m.name), "%s", name);
    m.mode = mode | S_IFREG;
    m.umask = umask;
    m.flags = (uint32_t)flags;
    m.chunk_size = fs->o.chunk_size;
    m.stripe = fs->o.stripe;
    mc_call(fs->mc, META_CREATE, &m, create_done, c);
}

void cfs_open(struct vfs_req *r, uint64_t ino, int flags)
{
    struct open_ctx *c = malloc(sizeof(*c));
    if (c == NULL) {
        vfs_reply_err(r, ENOMEM);
        return;
    }
    *c = (struct open_ctx){ .r = r, .flags = flags, .uid = vfs_req_ctx(r)->uid };
    struct meta_req m;
    cfs_req_init(r, &m);
    m.ino = ino;
    m.flags = (uint32_t)flags;
    mc_call(req_fs(r)->mc, META_OPEN, &m, open_done, c);
}

/* ---- data ---- */

struct read_ctx {
    struct vfs_req *r;
    void *buf;
    bool owned;
};

static void read_done(void *arg, int64_t result)
{
    struct read_ctx *c = arg;
    if (result < 0)
        vfs_reply_err(c->r, (int)-result);
    else
        vfs_reply_buf(c->r, c->buf, (size_t)result);
    if (c->owned)
        free(c->buf);
    free(c);
}

void cfs_read(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, uint32_t size)
{
    (void)ino;
    struct cfs_fh *f = fh_of(fh);
    struct read_ctx *c = malloc(sizeof(*c));
    if (c == NULL) {
        vfs_reply_err(r, ENOMEM);
        return;
    }
    size_t cap = 0;
    void *payload = vfs_req_payload(r, &cap);
    c->r = r;
    c->owned = payload == NULL || cap < size;
    c->buf = c->owned ? malloc(size ? size : 1) : payload;
    if (c->buf == NULL) {
        free(c);
        vfs_reply_err(r, ENOMEM);
        return;
    }
    uint64_t file_size = cfs_writer_size(f->w);
    if (f->inode.size > file_size)
        file_size = f->inode.size;
    sc_read(req_fs(r)->sc, &f->inode, off, size, c->buf, file_size, read_done, c);
}

struct write_ctx {
    struct vfs_req *r;
    struct cfs_fh *f;
    uint64_t end;
    uint32_t size;
};

static void write_done(void *arg, int64_t result)
{
    struct write_ctx *c = arg;
    if (result < 0) {
        vfs_reply_err(c->r, (int)-result);
    } else {
        cfs_writer_wrote(c->f->w, c->end);
        uint64_t cur = atomic_load(&c->f->end);
        while (c->end > cur && !atomic_compare_exchange_weak(&c->f->end, &cur, c->end))
            ;
        atomic_store(&c->f->wrote, true);
        atomic_store(&c->f->dirty, true);
        if (c->f->blob) {
            /* before the reply: a successor must know every acknowledged end */
            struct cfs_fh_blob *b = c->f->blob;
            uint64_t end = atomic_load(&c->f->end);
            __atomic_store_n(&b->end, end, __ATOMIC_RELEASE);
            __atomic_store_n(&b->wrote, 1, __ATOMIC_RELEASE);
        }
        vfs_reply_write(c->r, c->size);
    }
    free(c);
}

void cfs_write(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, const void *data,
               uint32_t size, uint32_t write_flags)
{
    (void)ino;
    (void)write_flags;
    struct cfs_fh *f = fh_of(fh);
    struct write_ctx *c = malloc(sizeof(*c));
    if (c == NULL) {
        vfs_reply_err(r, ENOMEM);
        return;
    }
    *c = (struct write_ctx){ r, f, off + size, size };
    sc_write(req_fs(r)->sc, &f->inode, off, data, size, write_done, c);
}

/* ---- taking handles over from a predecessor daemon ---- */

int cfs_restore_file(struct cfs *fs, uint64_t ino, int flags, void *blob, uint64_t *fh)
{
    struct cfs_fh_blob b;
    memcpy(&b, blob, sizeof(b));
    struct meta_req m;
    memset(&m, 0, sizeof(m));
    m.ino = ino;
    struct meta_resp resp;
    void *buf = NULL;
    int rc = mc_call_sync(fs->mc, META_GETATTR, &m, &resp, &buf);
    if (rc == 0 && !resp.has_inode)
        rc = EIO;
    if (rc) {
        free(buf);
        return -rc;
    }
    struct cfs_fh *f = fh_new(fs, &resp.inode, b.session, flags);
    free(buf);
    if (f == NULL)
        return -ENOMEM;
    atomic_store(&f->end, b.end);
    atomic_store(&f->wrote, b.wrote != 0);
    atomic_store(&f->dirty, b.wrote != 0); /* the next flush tells meta again */
    if (b.wrote)
        cfs_writer_wrote(f->w, b.end);
    f->blob = blob;
    *fh = (uint64_t)(uintptr_t)f;
    return 0;
}

/* ---- telling meta ---- */

/* META_SYNC/META_CLOSE for handle f: length_hint = this handle's end. */
static void session_req(struct vfs_req *r, struct cfs_fh *f, struct meta_req *m)
{
    cfs_req_init(r, m);
    m->ino = f->ino;
    m->session = f->session;
    m->length_hint = atomic_load(&f->end);
    m->flags = atomic_load(&f->wrote) ? META_F_WROTE : 0;
}

void cfs_flush(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t lock_owner)
{
    (void)ino;
    (void)lock_owner;
    struct cfs_fh *f = fh_of(fh);
    /* close(2) of one descriptor: publish the size; the session stays
     * open until release */
    if (!atomic_exchange(&f->dirty, false)) {
        vfs_reply_err(r, 0);
        return;
    }
    struct meta_req m;
    session_req(r, f, &m);
    mc_call(req_fs(r)->mc, META_SYNC, &m, cfs_cb_empty, r);
}

struct release_ctx {
    struct vfs_req *r;
    struct cfs_fh *f;
};

static void release_done(void *arg, int status, const struct meta_resp *resp)
{
    (void)resp;
    struct release_ctx *c = arg;
    if (status)
        LOG_WARN("cfs", "close ino=%llx session=%llx failed: %s",
                 (unsigned long long)c->f->ino, (unsigned long long)c->f->session,
                 strerror(status));
    fh_free(req_fs(c->r), c->f);
    vfs_reply_err(c->r, 0);
    free(c);
}

void cfs_release(struct vfs_req *r, uint64_t ino, uint64_t fh, int flags)
{
    (void)ino;
    (void)flags;
    struct cfs_fh *f = fh_of(fh);
    struct release_ctx *c = malloc(sizeof(*c));
    if (c == NULL) {
        fh_free(req_fs(r), f);
        vfs_reply_err(r, 0);
        return;
    }
    *c = (struct release_ctx){ r, f };
    struct meta_req m;
    session_req(r, f, &m);
    mc_call(req_fs(r)->mc, META_CLOSE, &m, release_done, c);
}

struct fsync_ctx {
    struct vfs_req *r;
    struct cfs_fh *f;
    struct meta_req m; /* built on the FUSE thread: credentials read /proc */
};

static void fsync_meta_done(void *arg, int status, const struct meta_resp *resp)
{
    (void)resp;
    struct fsync_ctx *c = arg;
    vfs_reply_err(c->r, status);
    free(c);
}

static void fsync_data_done(void *arg, int64_t result)
{
    struct fsync_ctx *c = arg;
    if (result < 0) {
        vfs_reply_err(c->r, (int)-result);
        free(c);
        return;
    }
    atomic_store(&c->f->dirty, false);
    c->m.length_hint = atomic_load(&c->f->end);
    c->m.flags = atomic_load(&c->f->wrote) ? META_F_WROTE : 0;
    mc_call(req_fs(c->r)->mc, META_SYNC, &c->m, fsync_meta_done, c);
}

void cfs_fsync(struct vfs_req *r, uint64_t ino, uint64_t fh, int datasync)
{
    (void)ino;
    (void)datasync;
    struct cfs_fh *f = fh_of(fh);
    struct fsync_ctx *c = malloc(sizeof(*c));
    if (c == NULL) {
        vfs_reply_err(r, ENOMEM);
        return;
    }
    c->r = r;
    c->f = f;
    session_req(r, f, &c->m);
    sc_sync_file_async(req_fs(r)->sc, &f->inode, fsync_data_done, c);
}

/* ---- fallocate ---- */

/* Storage allocates on write, so preallocation is only a size change; a
 * punched hole is written as zeros (reads of it must return zeros). */
static const uint8_t zeros[1u << 20];

struct punch_ctx {
    struct vfs_req *r;
    struct cfs_fh *f;
    uint64_t off, end;
};

static void punch_next(struct punch_ctx *c);

static void punch_done(void *arg, int64_t result)
{
    struct punch_ctx *c = arg;
    if (result < 0) {
        vfs_reply_err(c->r, (int)-result);
        free(c);
        return;
    }
    c->off += (uint64_t)result;
    punch_next(c);
}

static void punch_next(struct punch_ctx *c)
{
    if (c->off >= c->end) {
        vfs_reply_err(c->r, 0);
        free(c);
        return;
    }
    uint32_t n = (uint32_t)MIN(c->end - c->off, (uint64_t)sizeof(zeros));
    sc_write(req_fs(c->r)->sc, &c->f->inode, c->off, zeros, n, punch_done, c);
}

struct extend_ctx {
    struct vfs_req *r;
    uint64_t ino;
};

static void extend_done(void *arg, int status, const struct meta_resp *resp)
{
    struct extend_ctx *c = arg;
    if (status == 0 && resp->has_inode)
        cfs_local_truncate(req_fs(c->r), c->ino, resp->inode.size);
    vfs_reply_err(c->r, status);
    free(c);
}

void cfs_fallocate(struct vfs_req *r, uint64_t ino, uint64_t fh, int mode, uint64_t off,
                   uint64_t len)
{
    struct cfs_fh *f = fh_of(fh);
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) {
        vfs_reply_err(r, EOPNOTSUPP);
        return;
    }
    if (len == 0 || off + len < off) {
        vfs_reply_err(r, EINVAL);
        return;
    }
    uint64_t size = MAX(cfs_writer_size(f->w), f->inode.size);
    if (mode & FALLOC_FL_PUNCH_HOLE) {
        struct punch_ctx *c = malloc(sizeof(*c));
        if (c == NULL) {
            vfs_reply_err(r, ENOMEM);
            return;
        }
        *c = (struct punch_ctx){ r, f, off, MIN(off + len, size) };
        punch_next(c);
        return;
    }
    if ((mode & FALLOC_FL_KEEP_SIZE) || off + len <= size) {
        vfs_reply_err(r, 0);
        return;
    }
    struct extend_ctx *c = malloc(sizeof(*c));
    if (c == NULL) {
        vfs_reply_err(r, ENOMEM);
        return;
    }
    *c = (struct extend_ctx){ r, ino };
    struct meta_req m;
    cfs_req_init(r, &m);
    m.ino = ino;
    m.valid = FATTR_SIZE;
    m.size = off + len;
    m.session = f->session;
    mc_call(req_fs(r)->mc, META_SETATTR, &m, extend_done, c);
}

/* ---- SEEK_DATA / SEEK_HOLE ---- */

/* Data is what the chunks hold: chunk i with length len covers
 * [i*chunk_size, i*chunk_size + len); everything else below the size is a
 * hole (it may report a written-then-zeroed range as data, which lseek(2)
 * allows). */
struct lseek_ctx {
    struct vfs_req *r;
    uint64_t off, size;
    uint32_t chunk_size;
    int whence;
};

static void lseek_listed(void *arg, int status, const struct sc_chunk_len *ch, uint32_t n)
{
    struct lseek_ctx *c = arg;
    if (status < 0) {
        vfs_reply_err(c->r, -status);
        free(c);
        return;
    }
    uint64_t pos = c->off;
    if (c->whence == SEEK_DATA) {
        uint64_t found = UINT64_MAX;
        for (uint32_t i = 0; i < n && found == UINT64_MAX; i++) {
            uint64_t start = (uint64_t)ch[i].index * c->chunk_size;
            uint64_t end = MIN(start + ch[i].len, c->size);
            if (ch[i].len && end > pos)
                found = MAX(start, pos);
        }
        if (found == UINT64_MAX || found >= c->size)
            vfs_reply_err(c->r, ENXIO);
        else
            vfs_reply_lseek(c->r, found);
    } else {
        /* walk the extents in order while they cover pos */
        for (uint32_t i = 0; i < n; i++) {
            uint64_t start = (uint64_t)ch[i].index * c->chunk_size;
            uint64_t end = start + ch[i].len;
            if (start > pos)
                break;
            if (end > pos)
                pos = end;
        }
        vfs_reply_lseek(c->r, MIN(pos, c->size));
    }
    free(c);
}

void cfs_lseek(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, int whence)
{
    (void)ino;
    struct cfs_fh *f = fh_of(fh);
    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
        vfs_reply_err(r, EINVAL);
        return;
    }
    uint64_t size = MAX(cfs_writer_size(f->w), f->inode.size);
    if (off >= size) {
        vfs_reply_err(r, ENXIO);
        return;
    }
    struct lseek_ctx *c = malloc(sizeof(*c));
    if (c == NULL) {
        vfs_reply_err(r, ENOMEM);
        return;
    }
    *c = (struct lseek_ctx){ r, off, size, f->inode.layout.chunk_size, whence };
    sc_list_chunks_async(req_fs(r)->sc, &f->inode, lseek_listed, c);
}
