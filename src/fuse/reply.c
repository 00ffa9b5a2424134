/* reply.c — reply encoders and the accessors backends use. Every reply
 * funnels into vfs_send(), which hands a fuse_out_header and one payload
 * to the request's transport. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "fuse/engine_internal.h"

const struct vfs_ctx *vfs_req_ctx(const struct vfs_req *r) { return &r->ctx; }
void *vfs_req_fs(const struct vfs_req *r) { return r->chan->s->fs; }
struct vfs_session *vfs_req_session(const struct vfs_req *r) { return r->chan->s; }
uint32_t vfs_req_opcode(const struct vfs_req *r) { return r->m.opcode; }
int vfs_req_interrupted(const struct vfs_req *r)
{
    return atomic_load_explicit(&r->interrupted, memory_order_acquire);
}

void *vfs_req_payload(struct vfs_req *r, size_t *cap)
{
    if (r->chan->mode == CHAN_URING) {
        *cap = r->buf_cap;
        return r->buf;
    }
    if (r->reply_buf == NULL) {
        r->reply_buf = aligned_alloc(4096, VFS_MAX_WRITE);
        if (r->reply_buf == NULL) {
            *cap = 0;
            return NULL;
        }
    }
    *cap = VFS_MAX_WRITE;
    return r->reply_buf;
}

void vfs_send(struct vfs_req *r, int error, const void *payload, size_t len)
{
    if (error != 0)
        len = 0;
    if (ho_on_reply(r, error, payload, len))
        return; /* a resent request was answered another way */
    struct fuse_out_header oh = {
        .len = (uint32_t)(sizeof(oh) + len),
        .error = -error,
        /* a resent request is known to the kernel by its marked unique */
        .unique = r->m.unique | (r->m.resent ? FUSE_UNIQUE_RESEND : 0),
    };
    if (unlikely(r->chan->mode == CHAN_TEST)) {
        /* test hook (see enum chan_mode): record the reply, send nothing */
        r->test_nreplies++;
        r->test_error = error;
        r->test_len = len;
        atomic_store_explicit(&r->busy, 0, memory_order_release);
        return;
    }
    kernel_hb_release(r->chan->s);
    if (r->chan->mode == CHAN_URING)
        chan_uring_send(r, &oh, payload, len);
    else
        chan_dev_send(r, &oh, payload, len);
}

void vfs_reply_err(struct vfs_req *r, int err)
{
    if (err < 0)
        err = -err;
    vfs_send(r, err, NULL, 0);
}

void vfs_reply_entry(struct vfs_req *r, const struct fuse_entry_out *e)
{
    ho_count_entry(r, e->nodeid);
    vfs_send(r, 0, e, sizeof(*e));
}

void vfs_reply_create(struct vfs_req *r, const struct fuse_entry_out *e,
                      const struct vfs_fuse_open_out *o)
{
    struct {
        struct fuse_entry_out e;
        struct vfs_fuse_open_out o;
    } out;
    out.e = *e;
    out.o = *o;
    ho_count_entry(r, e->nodeid);
    out.o.fh = ho_open_reply(r, o->fh, 0, e->nodeid); /* CREATE's nodeid is the parent */
    vfs_send(r, 0, &out, sizeof(out));
}

void vfs_reply_attr(struct vfs_req *r, const struct fuse_attr_out *a)
{
    vfs_send(r, 0, a, sizeof(*a));
}

void vfs_reply_open(struct vfs_req *r, const struct vfs_fuse_open_out *o)
{
    struct vfs_fuse_open_out out = *o;
    out.fh = ho_open_reply(r, o->fh, r->m.opcode == FUSE_OPENDIR, r->m.nodeid);
    vfs_send(r, 0, &out, sizeof(out));
}

void vfs_reply_write(struct vfs_req *r, uint32_t count)
{
    struct fuse_write_out w = { .size = count };
    vfs_send(r, 0, &w, sizeof(w));
}

void vfs_reply_statfs(struct vfs_req *r, const struct fuse_kstatfs *st)
{
    struct fuse_statfs_out o = { .st = *st };
    vfs_send(r, 0, &o, sizeof(o));
}

void vfs_reply_xattr_size(struct vfs_req *r, uint32_t size)
{
    struct fuse_getxattr_out o = { .size = size };
    vfs_send(r, 0, &o, sizeof(o));
}

void vfs_reply_lseek(struct vfs_req *r, uint64_t offset)
{
    struct fuse_lseek_out o = { .offset = offset };
    vfs_send(r, 0, &o, sizeof(o));
}

void vfs_reply_buf(struct vfs_req *r, const void *buf, size_t len)
{
    if (r->m.opcode == FUSE_READDIRPLUS)
        ho_count_direntplus(r, buf, len);
    vfs_send(r, 0, buf, len);
}

void vfs_stat_to_attr(const struct stat *st, struct fuse_attr *a)
{
    memset(a, 0, sizeof(*a));
    a->ino = st->st_ino;
    a->size = (uint64_t)st->st_size;
    a->blocks = (uint64_t)st->st_blocks;
    a->atime = (uint64_t)st->st_atim.tv_sec;
    a->mtime = (uint64_t)st->st_mtim.tv_sec;
    a->ctime = (uint64_t)st->st_ctim.tv_sec;
    a->atimensec = (uint32_t)st->st_atim.tv_nsec;
    a->mtimensec = (uint32_t)st->st_mtim.tv_nsec;
    a->ctimensec = (uint32_t)st->st_ctim.tv_nsec;
    a->mode = st->st_mode;
    a->nlink = (uint32_t)st->st_nlink;
    a->uid = st->st_uid;
    a->gid = st->st_gid;
    a->rdev = (uint32_t)st->st_rdev;
    a->blksize = (uint32_t)st->st_blksize;
}

#define DIRENT_ALIGN(x) (((x) + sizeof(uint64_t) - 1) & ~(sizeof(uint64_t) - 1))

size_t vfs_dirent_add(void *buf, size_t cap, size_t used, const char *name, uint64_t ino,
                      uint32_t type, uint64_t next_off)
{
    size_t namelen = strlen(name);
    size_t entlen = offsetof(struct fuse_dirent, name) + namelen;
    size_t padded = DIRENT_ALIGN(entlen);
    if (used + padded > cap)
        return 0;
    struct fuse_dirent d = { .ino = ino, .off = next_off, .namelen = (uint32_t)namelen, .type = type };
    char *p = (char *)buf + used;
    memcpy(p, &d, offsetof(struct fuse_dirent, name));
    memcpy(p + offsetof(struct fuse_dirent, name), name, namelen);
    memset(p + entlen, 0, padded - entlen);
    return used + padded;
}

size_t vfs_direntplus_size(size_t namelen)
{
    return DIRENT_ALIGN(offsetof(struct fuse_direntplus, dirent.name) + namelen);
}

size_t vfs_direntplus_add(void *buf, size_t cap, size_t used, const char *name,
                          const struct fuse_entry_out *e, uint64_t next_off)
{
    size_t namelen = strlen(name);
    size_t entlen = offsetof(struct fuse_direntplus, dirent.name) + namelen;
    size_t padded = DIRENT_ALIGN(entlen);
    if (used + padded > cap)
        return 0;
    struct fuse_direntplus d;
    memset(&d, 0, sizeof(d));
    d.entry_out = *e;
    d.dirent.ino = e->attr.ino;
    d.dirent.off = next_off;
    d.dirent.namelen = (uint32_t)namelen;
    d.dirent.type = (e->attr.mode & S_IFMT) >> 12;
    char *p = (char *)buf + used;
    memcpy(p, &d, offsetof(struct fuse_direntplus, dirent.name));
    memcpy(p + offsetof(struct fuse_direntplus, dirent.name), name, namelen);
    memset(p + entlen, 0, padded - entlen);
    return used + padded;
}
