/* meta_codec.c — codecs of the metadata service messages (meta_proto.h). */
#include <string.h>

#include "proto/codec_internal.h"
#include "proto/meta_proto.h"

#define DT_MAX 15u /* DT_* values are 4 bits (DT_WHT = 14) */
/* Bulk data in a request: a symlink target or an xattr value. */
#define META_REQ_MAX_DATA (VF_MAX_XATTR_VALUE > VF_MAX_SYMLINK ? VF_MAX_XATTR_VALUE : VF_MAX_SYMLINK)

/* ---------------- inode ---------------- */

void meta_inode_enc(struct wbuf *wb, const struct meta_inode *i)
{
    const struct meta_layout *l = &i->layout;
    if (l->nchains > VF_MAX_STRIPE) {
        wb_fail(wb);
        return;
    }
    wb_u64(wb, i->ino);
    wb_u32(wb, i->mode);
    wb_u32(wb, i->uid);
    wb_u32(wb, i->gid);
    wb_u32(wb, i->nlink);
    wb_u64(wb, i->size);
    wb_u64(wb, i->rdev);
    wb_i64(wb, i->atime_ns);
    wb_i64(wb, i->mtime_ns);
    wb_i64(wb, i->ctime_ns);
    wb_u64(wb, i->parent);
    wb_u32(wb, l->chunk_size);
    wb_u32(wb, l->table_id);
    wb_u32(wb, l->nchains);
    for (uint32_t k = 0; k < l->nchains; k++)
        wb_u32(wb, l->chains[k]);
}

void meta_inode_dec(struct rbuf *rb, struct meta_inode *i)
{
    struct meta_layout *l = &i->layout;
    memset(i, 0, sizeof(*i));
    i->ino = rb_u64(rb);
    i->mode = rb_u32(rb);
    i->uid = rb_u32(rb);
    i->gid = rb_u32(rb);
    i->nlink = rb_u32(rb);
    i->size = rb_u64(rb);
    i->rdev = rb_u64(rb);
    i->atime_ns = rb_i64(rb);
    i->mtime_ns = rb_i64(rb);
    i->ctime_ns = rb_i64(rb);
    i->parent = rb_u64(rb);
    l->chunk_size = rb_u32(rb);
    l->table_id = rb_u32(rb);
    /* no layout at all (0) for non-regular files; otherwise a valid one */
    rb_require(rb, l->chunk_size == 0 || proto_chunk_size_ok(l->chunk_size));
    l->nchains = rb_count(rb, VF_MAX_STRIPE, 4);
    rb_require(rb, l->nchains == 0 || l->chunk_size != 0);
    if (rb->err) {
        l->nchains = 0;
        return;
    }
    for (uint32_t k = 0; k < l->nchains; k++)
        l->chains[k] = rb_u32(rb);
}

/* ---------------- request ---------------- */

void meta_req_enc(struct wbuf *wb, const struct meta_req *m)
{
    if (m->data_len > META_REQ_MAX_DATA || (m->data_len && !m->data)) {
        wb_fail(wb);
        return;
    }
    vf_user_enc(wb, &m->user);
    wb_u64(wb, m->ino);
    wb_u64(wb, m->parent);
    wb_u64(wb, m->newparent);
    wb_fixed_cstr(wb, m->name, sizeof(m->name));
    wb_fixed_cstr(wb, m->newname, sizeof(m->newname));
    wb_u32(wb, m->mode);
    wb_u32(wb, m->umask);
    wb_u32(wb, m->flags);
    wb_u64(wb, m->rdev);
    wb_u32(wb, m->valid);
    wb_u32(wb, m->uid);
    wb_u32(wb, m->gid);
    wb_u64(wb, m->size);
    wb_i64(wb, m->atime_ns);
    wb_i64(wb, m->mtime_ns);
    wb_i64(wb, m->ctime_ns);
    wb_u64(wb, m->session);
    wb_u64(wb, m->length_hint);
    wb_u32(wb, m->max_entries);
    wb_u32(wb, m->chunk_size);
    wb_u32(wb, m->stripe);
    wb_str(wb, m->data, m->data_len);
    if (m->req_client) {
        wb_u64(wb, m->req_client);
        wb_u64(wb, m->req_seq);
    }
}

int meta_req_dec(const void *buf, size_t len, struct meta_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    vf_user_dec(&rb, &m->user);
    m->ino = rb_u64(&rb);
    m->parent = rb_u64(&rb);
    m->newparent = rb_u64(&rb);
    /* name may be an xattr name (may hold '/') or READDIR's empty resume
     * point: only meta_req_check() knows the method; newname is always a
     * path component when present. */
    rb_cstr(&rb, m->name, sizeof(m->name));
    rb_name(&rb, m->newname, VF_MAX_NAME, true);
    m->mode = rb_u32(&rb);
    m->umask = rb_u32(&rb);
    m->flags = rb_u32(&rb);
    m->rdev = rb_u64(&rb);
    m->valid = rb_u32(&rb);
    m->uid = rb_u32(&rb);
    m->gid = rb_u32(&rb);
    m->size = rb_u64(&rb);
    m->atime_ns = rb_i64(&rb);
    m->mtime_ns = rb_i64(&rb);
    m->ctime_ns = rb_i64(&rb);
    m->session = rb_u64(&rb);
    m->length_hint = rb_u64(&rb);
    m->max_entries = rb_u32(&rb);
    m->chunk_size = rb_u32(&rb);
    m->stripe = rb_u32(&rb);
    rb_require(&rb, m->chunk_size == 0 || proto_chunk_size_ok(m->chunk_size));
    rb_require(&rb, m->stripe <= VF_MAX_STRIPE);
    uint32_t n;
    const uint8_t *d = rb_str(&rb, META_REQ_MAX_DATA, &n);
    if (!rb.err && n) {
        m->data = d;
        m->data_len = n;
    }
    /* the optional request id trailer (see meta_proto.h) */
    if (!rb.err && rb.left > 0) {
        m->req_client = rb_u64(&rb);
        m->req_seq = rb_u64(&rb);
        rb_require(&rb, m->req_client != 0);
    }
    int rc = proto_finish(&rb);
    if (rc) {
        m->data = NULL;
        m->data_len = 0;
        m->req_client = m->req_seq = 0;
    }
    return rc;
}

static bool is_component(const char *s)
{
    return s[0] != '\0' && !strchr(s, '/');
}

int meta_req_check(uint16_t method, const struct meta_req *m)
{
    switch (method) {
    case META_LOOKUP: case META_CREATE: case META_MKNOD: case META_MKDIR:
    case META_UNLINK: case META_RMDIR:
        return is_component(m->name) ? 0 : -EBADMSG;
    case META_SYMLINK:
        /* the target: 1..VF_MAX_SYMLINK bytes, no NUL */
        if (!is_component(m->name) || m->data_len == 0 || m->data_len > VF_MAX_SYMLINK ||
            memchr(m->data, 0, m->data_len))
            return -EBADMSG;
        return 0;
    case META_LINK:
        return is_component(m->newname) ? 0 : -EBADMSG;
    case META_RENAME:
        return is_component(m->name) && is_component(m->newname) ? 0 : -EBADMSG;
    case META_READDIR:
        return strchr(m->name, '/') ? -EBADMSG : 0;
    case META_SETXATTR:
        return m->name[0] && m->data_len <= VF_MAX_XATTR_VALUE ? 0 : -EBADMSG;
    case META_GETXATTR: case META_REMOVEXATTR:
        return m->name[0] ? 0 : -EBADMSG;
    case META_GETATTR: case META_SETATTR: case META_READLINK: case META_OPEN:
    case META_CLOSE: case META_SYNC: case META_LISTXATTR: case META_STATFS:
    case META_ACCESS:
        return 0;
    }
    return -EBADMSG;
}

/* ---------------- response ---------------- */

void meta_resp_enc(struct wbuf *wb, const struct meta_resp *m)
{
    if (m->has_inode > 1 || m->eof > 1 || (m->data_len && !m->data)) {
        wb_fail(wb);
        return;
    }
    wb_u8(wb, m->has_inode);
    if (m->has_inode)
        meta_inode_enc(wb, &m->inode);
    wb_u64(wb, m->session);
    wb_u8(wb, m->eof);
    wb_str(wb, m->data, m->data_len);
    wb_u64(wb, m->total_bytes);
    wb_u64(wb, m->free_bytes);
    wb_u64(wb, m->total_inodes);
    wb_u64(wb, m->used_inodes);
}

int meta_resp_dec(const void *buf, size_t len, struct meta_resp *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->has_inode = rb_bool(&rb);
    if (m->has_inode && !rb.err)
        meta_inode_dec(&rb, &m->inode);
    m->session = rb_u64(&rb);
    m->eof = rb_bool(&rb);
    uint32_t n;
    const uint8_t *d = rb_str(&rb, UINT32_MAX, &n);
    if (!rb.err && n) {
        m->data = d;
        m->data_len = n;
    }
    m->total_bytes = rb_u64(&rb);
    m->free_bytes = rb_u64(&rb);
    m->total_inodes = rb_u64(&rb);
    m->used_inodes = rb_u64(&rb);
    int rc = proto_finish(&rb);
    if (rc) {
        m->data = NULL;
        m->data_len = 0;
    }
    return rc;
}

/* ---------------- READDIR entries ---------------- */

void meta_dirent_enc(struct wbuf *wb, const struct meta_dirent *d)
{
    if (d->has_inode > 1) {
        wb_fail(wb);
        return;
    }
    wb_fixed_cstr(wb, d->name, sizeof(d->name));
    wb_u64(wb, d->ino);
    wb_u32(wb, d->type);
    wb_u8(wb, d->has_inode);
    if (d->has_inode)
        meta_inode_enc(wb, &d->inode);
}

int meta_dirent_next(struct rbuf *rb, struct meta_dirent *d)
{
    memset(d, 0, sizeof(*d));
    rb_name(rb, d->name, VF_MAX_NAME, false);
    d->ino = rb_u64(rb);
    d->type = rb_u32(rb);
    rb_require(rb, d->type <= DT_MAX);
    d->has_inode = rb_bool(rb);
    if (d->has_inode && !rb->err)
        meta_inode_dec(rb, &d->inode);
    return rb_ok(rb) ? 0 : -EBADMSG;
}
