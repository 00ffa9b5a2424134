/* dir.c — directory handles and readdir.
 *
 * A handle keeps every entry returned so far; the readdir cookie of entry
 * k (0-based, after "." and "..") is k + 3, so cookie n resumes after the
 * n-th name whatever happens in the directory meanwhile ("." is cookie 1,
 * ".." cookie 2). More names are fetched from meta, in name order, after
 * the last one kept. A read from offset 0 (rewinddir) starts afresh.
 * The kernel runs one readdir at a time per open directory.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_fs/cfs_internal.h"
#include "common/log.h"

struct cfs_dent {
    char *name;
    uint64_t ino;
    uint32_t type;
    bool has_inode;
    struct meta_inode inode;
};

struct cfs_dh {
    uint64_t ino, parent;
    struct cfs_dent *ents;
    uint32_t n, cap;
    bool eof;
};

static void dh_clear(struct cfs_dh *d)
{
    for (uint32_t i = 0; i < d->n; i++)
        free(d->ents[i].name);
    free(d->ents);
    d->ents = NULL;
    d->n = d->cap = 0;
    d->eof = false;
}

/* ---- open/release ---- */

static void opendir_done(void *arg, int status, const struct meta_resp *resp)
{
    struct vfs_req *r = arg;
    if (status) {
        vfs_reply_err(r, status);
        return;
    }
    if (!resp->has_inode || !S_ISDIR(resp->inode.mode)) {
        vfs_reply_err(r, resp->has_inode ? ENOTDIR : EIO);
        return;
    }
    struct cfs_dh *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        vfs_reply_err(r, ENOMEM);
        return;
    }
    d->ino = resp->inode.ino;
    d->parent = resp->inode.parent ? resp->inode.parent : resp->inode.ino;
    struct vfs_fuse_open_out o;
    memset(&o, 0, sizeof(o));
    o.fh = (uint64_t)(uintptr_t)d;
    struct cfs_fh_blob *b = vfs_req_fh_blob(r);
    if (b)
        *b = (struct cfs_fh_blob){ .parent = d->parent };
    /* the kernel caches the listing; it drops it itself when this mount
     * changes the directory, and we keep it only while meta's mtime says
     * no other client did */
    o.open_flags = FOPEN_CACHE_DIR;
    if (cfs_dircache_check(req_fs(r), d->ino, resp->inode.mtime_ns))
        o.open_flags |= FOPEN_KEEP_CACHE;
    vfs_reply_open(r, &o);
}

int cfs_restore_dir(struct cfs *fs, uint64_t ino, void *blob, uint64_t *fh)
{
    (void)fs;
    struct cfs_fh_blob b;
    memcpy(&b, blob, sizeof(b));
    struct cfs_dh *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->ino = ino;
    d->parent = b.parent ? b.parent : ino;
    *fh = (uint64_t)(uintptr_t)d;
    return 0;
}

bool cfs_dircache_check(struct cfs *fs, uint64_t ino, int64_t mtime_ns)
{
    size_t slot = (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 54) % 1024;
    pthread_mutex_lock(&fs->dircache_mu);
    bool same = fs->dircache[slot].ino == ino && fs->dircache[slot].mtime_ns == mtime_ns;
    fs->dircache[slot].ino = ino;
    fs->dircache[slot].mtime_ns = mtime_ns;
    pthread_mutex_unlock(&fs->dircache_mu);
    return same;
}

void cfs_opendir(struct vfs_req *r, uint64_t ino, int flags)
{
    (void)flags;
    struct meta_req m;
    cfs_req_init(r, &m);
    m.ino = ino;
    mc_call(req_fs(r)->mc, META_GETATTR, &m, opendir_done, r);
}

void cfs_releasedir(struct vfs_req *r, uint64_t ino, uint64_t fh)
{
    (void)ino;
    struct cfs_dh *d = (struct cfs_dh *)(uintptr_t)fh;
    dh_clear(d);
    free(d);
    vfs_reply_err(r, 0);
}

void cfs_fsyncdir(struct vfs_req *r, uint64_t ino, uint64_t fh, int datasync)
{
    /* meta commits every namespace change before answering */
    (void)ino;
    (void)fh;
    (void)datasync;
    vfs_reply_err(r, 0);
}

/* ---- readdir ---- */

struct readdir_ctx {
    struct vfs_req *r;
    struct cfs_dh *d;
    uint64_t off;
    uint32_t size;
    int plus;
    int fetches;
    struct meta_req m; /* credentials taken on the FUSE thread */
};

static size_t add_one(struct cfs *fs, void *buf, size_t cap, size_t used, int plus,
                      const char *name, uint64_t ino, uint32_t type, const struct meta_inode *in,
                      uint64_t cookie)
{
    if (!plus)
        return vfs_dirent_add(buf, cap, used, name, ino, type, cookie);
    struct fuse_entry_out e;
    if (in) {
        cfs_fill_entry(fs, in, &e);
    } else {
        /* no attributes: nodeid 0 tells the kernel not to instantiate it */
        memset(&e, 0, sizeof(e));
        e.attr.ino = ino;
        e.attr.mode = type << 12;
    }
    return vfs_direntplus_add(buf, cap, used, name, &e, cookie);
}

/* Fill buf from the kept entries starting after cookie off; *more is set
 * when the kept entries ran out before the buffer did. */
static size_t fill(struct cfs *fs, struct cfs_dh *d, void *buf, size_t cap, uint64_t off,
                   int plus, bool *more)
{
    size_t used = 0;
    uint64_t pos = off;
    *more = false;
    for (;;) {
        size_t next;
        if (pos == 0) {
            next = add_one(fs, buf, cap, used, plus, ".", d->ino, DT_DIR, NULL, 1);
        } else if (pos == 1) {
            next = add_one(fs, buf, cap, used, plus, "..", d->parent, DT_DIR, NULL, 2);
        } else if (pos - 2 < d->n) {
            const struct cfs_dent *e = &d->ents[pos - 2];
            next = add_one(fs, buf, cap, used, plus, e->name, e->ino, e->type,
                           e->has_inode ? &e->inode : NULL, pos + 1);
        } else {
            *more = !d->eof;
            return used;
        }
        if (next == 0)
            return used;
        used = next;
        pos++;
    }
}

static void readdir_fetch(struct readdir_ctx *c);

static void readdir_answer(struct readdir_ctx *c)
{
    struct cfs *fs = req_fs(c->r);
    size_t cap = 0;
    void *payload = vfs_req_payload(c->r, &cap);
    bool owned = payload == NULL;
    if (cap > c->size)
        cap = c->size;
    void *buf = owned ? malloc(c->size ? c->size : 1) : payload;
    if (owned)
        cap = c->size;
    if (buf == NULL) {
        vfs_reply_err(c->r, ENOMEM);
        free(c);
        return;
    }
    bool more;
    size_t used = fill(fs, c->d, buf, cap, c->off, c->plus, &more);
    if (used == 0 && more && c->fetches < 1000) {
        if (owned)
            free(buf);
        readdir_fetch(c);
        return;
    }
    vfs_reply_buf(c->r, buf, used);
    if (owned)
        free(buf);
    free(c);
}

static int keep_entry(struct cfs_dh *d, const struct meta_dirent *de)
{
    if (d->n == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 64;
        struct cfs_dent *e = realloc(d->ents, cap * sizeof(*e));
        if (e == NULL)
            return -ENOMEM;
        d->ents = e;
        d->cap = cap;
    }
    struct cfs_dent *e = &d->ents[d->n];
    e->name = strdup(de->name);
    if (e->name == NULL)
        return -ENOMEM;
    e->ino = de->ino;
    e->type = de->type;
    e->has_inode = de->has_inode;
    if (de->has_inode)
        e->inode = de->inode;
    d->n++;
    return 0;
}

static void readdir_fetched(void *arg, int status, const struct meta_resp *resp)
{
    struct readdir_ctx *c = arg;
    if (status) {
        vfs_reply_err(c->r, status);
        free(c);
        return;
    }
    struct rbuf rb;
    rb_init(&rb, resp->data, resp->data_len);
    while (rb.left > 0) {
        struct meta_dirent de;
        if (meta_dirent_next(&rb, &de) < 0) {
            LOG_WARN("cfs", "undecodable readdir reply ino=%llx", (unsigned long long)c->d->ino);
            vfs_reply_err(c->r, EIO);
            free(c);
            return;
        }
        if (keep_entry(c->d, &de) < 0) {
            vfs_reply_err(c->r, ENOMEM);
            free(c);
            return;
        }
    }
    c->d->eof = resp->eof != 0;
    readdir_answer(c);
}

static void readdir_fetch(struct readdir_ctx *c)
{
    struct cfs *fs = req_fs(c->r);
    c->fetches++;
    c->m.ino = c->d->ino;
    c->m.max_entries = fs->o.readdir_batch;
    c->m.flags = c->plus ? META_F_PLUS : 0;
    snprintf(c->m.name, sizeof(c->m.name), "%s", c->d->n ? c->d->ents[c->d->n - 1].name : "");
    mc_call(fs->mc, META_READDIR, &c->m, readdir_fetched, c);
}

void cfs_readdir(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, uint32_t size,
                 int plus)
{
    (void)ino;
    struct cfs_dh *d = (struct cfs_dh *)(uintptr_t)fh;
    if (off == 0)
        dh_clear(d); /* rewinddir: see the directory as it is now */
    struct readdir_ctx *c = malloc(sizeof(*c));
    if (c == NULL) {
        vfs_reply_err(r, ENOMEM);
        return;
    }
    c->r = r;
    c->d = d;
    c->off = off;
    c->size = size;
    c->plus = plus;
    c->fetches = 0;
    cfs_req_init(r, &c->m);
    readdir_answer(c);
}
