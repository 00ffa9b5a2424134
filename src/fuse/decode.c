/* decode.c — see decode.h. One table says what each opcode carries; the
 * two entry points only differ in where the bytes after the header live. */
#include "fuse/decode.h"

#include <errno.h>
#include <string.h>

#include "common/util.h"

enum body_kind {
    BODY_NONE,      /* nothing after the op struct */
    BODY_NAME,      /* one name */
    BODY_NAME2,     /* two names */
    BODY_WRITE,     /* write_in.size bytes of data */
    BODY_XATTR_SET, /* name, then setxattr_in.size bytes of value */
    BODY_FORGETS,   /* batch_forget_in.count fuse_forget_one */
    BODY_RAW,       /* opaque bytes (ioctl, notify reply) */
};

struct op_desc {
    const char *name;
    int16_t size; /* fixed op struct size; -1 = unknown opcode */
    uint8_t body;
};

#define OP(code, nm, sz, bd) [code] = { nm, (int16_t)(sz), bd }
static const struct op_desc op_table[] = {
    OP(FUSE_LOOKUP, "LOOKUP", 0, BODY_NAME),
    OP(FUSE_FORGET, "FORGET", sizeof(struct fuse_forget_in), BODY_NONE),
    OP(FUSE_GETATTR, "GETATTR", sizeof(struct fuse_getattr_in), BODY_NONE),
    OP(FUSE_SETATTR, "SETATTR", sizeof(struct fuse_setattr_in), BODY_NONE),
    OP(FUSE_READLINK, "READLINK", 0, BODY_NONE),
    OP(FUSE_SYMLINK, "SYMLINK", 0, BODY_NAME2),
    OP(FUSE_MKNOD, "MKNOD", sizeof(struct fuse_mknod_in), BODY_NAME),
    OP(FUSE_MKDIR, "MKDIR", sizeof(struct fuse_mkdir_in), BODY_NAME),
    OP(FUSE_UNLINK, "UNLINK", 0, BODY_NAME),
    OP(FUSE_RMDIR, "RMDIR", 0, BODY_NAME),
    OP(FUSE_RENAME, "RENAME", sizeof(struct fuse_rename_in), BODY_NAME2),
    OP(FUSE_LINK, "LINK", sizeof(struct fuse_link_in), BODY_NAME),
    OP(FUSE_OPEN, "OPEN", sizeof(struct fuse_open_in), BODY_NONE),
    OP(FUSE_READ, "READ", sizeof(struct fuse_read_in), BODY_NONE),
    OP(FUSE_WRITE, "WRITE", sizeof(struct fuse_write_in), BODY_WRITE),
    OP(FUSE_STATFS, "STATFS", 0, BODY_NONE),
    OP(FUSE_RELEASE, "RELEASE", sizeof(struct fuse_release_in), BODY_NONE),
    OP(FUSE_FSYNC, "FSYNC", sizeof(struct fuse_fsync_in), BODY_NONE),
    /* without FUSE_SETXATTR_EXT (we never ask for it) the kernel sends the
     * 8-byte compat struct: size, flags */
    OP(FUSE_SETXATTR, "SETXATTR", FUSE_COMPAT_SETXATTR_IN_SIZE, BODY_XATTR_SET),
    OP(FUSE_GETXATTR, "GETXATTR", sizeof(struct fuse_getxattr_in), BODY_NAME),
    OP(FUSE_LISTXATTR, "LISTXATTR", sizeof(struct fuse_getxattr_in), BODY_NONE),
    OP(FUSE_REMOVEXATTR, "REMOVEXATTR", 0, BODY_NAME),
    OP(FUSE_FLUSH, "FLUSH", sizeof(struct fuse_flush_in), BODY_NONE),
    /* INIT: the 7.36+ struct is 64 bytes; older kernels send 16. We require
     * the first 16 and look at flags2 only when the kernel sent it. */
    OP(FUSE_INIT, "INIT", 16, BODY_RAW),
    OP(FUSE_OPENDIR, "OPENDIR", sizeof(struct fuse_open_in), BODY_NONE),
    OP(FUSE_READDIR, "READDIR", sizeof(struct fuse_read_in), BODY_NONE),
    OP(FUSE_RELEASEDIR, "RELEASEDIR", sizeof(struct fuse_release_in), BODY_NONE),
    OP(FUSE_FSYNCDIR, "FSYNCDIR", sizeof(struct fuse_fsync_in), BODY_NONE),
    OP(FUSE_GETLK, "GETLK", sizeof(struct fuse_lk_in), BODY_NONE),
    OP(FUSE_SETLK, "SETLK", sizeof(struct fuse_lk_in), BODY_NONE),
    OP(FUSE_SETLKW, "SETLKW", sizeof(struct fuse_lk_in), BODY_NONE),
    OP(FUSE_ACCESS, "ACCESS", sizeof(struct fuse_access_in), BODY_NONE),
    OP(FUSE_CREATE, "CREATE", sizeof(struct fuse_create_in), BODY_NAME),
    OP(FUSE_INTERRUPT, "INTERRUPT", sizeof(struct fuse_interrupt_in), BODY_NONE),
    OP(FUSE_BMAP, "BMAP", sizeof(struct fuse_bmap_in), BODY_NONE),
    OP(FUSE_DESTROY, "DESTROY", 0, BODY_NONE),
    OP(FUSE_IOCTL, "IOCTL", sizeof(struct fuse_ioctl_in), BODY_RAW),
    OP(FUSE_POLL, "POLL", sizeof(struct fuse_poll_in), BODY_NONE),
    OP(FUSE_NOTIFY_REPLY, "NOTIFY_REPLY", sizeof(struct fuse_notify_retrieve_in), BODY_RAW),
    OP(FUSE_BATCH_FORGET, "BATCH_FORGET", sizeof(struct fuse_batch_forget_in), BODY_FORGETS),
    OP(FUSE_FALLOCATE, "FALLOCATE", sizeof(struct fuse_fallocate_in), BODY_NONE),
    OP(FUSE_READDIRPLUS, "READDIRPLUS", sizeof(struct fuse_read_in), BODY_NONE),
    OP(FUSE_RENAME2, "RENAME2", sizeof(struct fuse_rename2_in), BODY_NAME2),
    OP(FUSE_LSEEK, "LSEEK", sizeof(struct fuse_lseek_in), BODY_NONE),
    OP(FUSE_COPY_FILE_RANGE, "COPY_FILE_RANGE", sizeof(struct fuse_copy_file_range_in), BODY_NONE),
    OP(FUSE_SETUPMAPPING, "SETUPMAPPING", sizeof(struct fuse_setupmapping_in), BODY_NONE),
    OP(FUSE_REMOVEMAPPING, "REMOVEMAPPING", sizeof(struct fuse_removemapping_in), BODY_RAW),
    OP(FUSE_SYNCFS, "SYNCFS", sizeof(struct fuse_syncfs_in), BODY_NONE),
    OP(FUSE_TMPFILE, "TMPFILE", sizeof(struct fuse_create_in), BODY_NAME),
    OP(VFS_FUSE_STATX, "STATX", 24, BODY_NONE),
    OP(VFS_FUSE_COPY_FILE_RANGE_64, "COPY_FILE_RANGE_64", sizeof(struct fuse_copy_file_range_in), BODY_NONE),
};
#undef OP

static const struct op_desc *op_lookup(uint32_t opcode)
{
    if (opcode >= ARRAY_SIZE(op_table) || op_table[opcode].name == NULL)
        return NULL;
    return &op_table[opcode];
}

int fuse_op_struct_size(uint32_t opcode)
{
    const struct op_desc *d = op_lookup(opcode);
    return d ? d->size : -1;
}

const char *fuse_opcode_name(uint32_t opcode)
{
    const struct op_desc *d = op_lookup(opcode);
    return d ? d->name : "UNKNOWN";
}

/* Take one NUL-terminated string from [*p, end). */
static const char *take_name(const char **p, const char *end)
{
    const char *s = *p;
    if (s >= end)
        return NULL;
    const char *nul = memchr(s, '\0', (size_t)(end - s));
    if (nul == NULL)
        return NULL;
    *p = nul + 1;
    return s;
}

static void fill_header(const struct fuse_in_header *h, struct fuse_msg *m)
{
    m->opcode = h->opcode;
    m->unique = h->unique & ~FUSE_UNIQUE_RESEND;
    m->resent = (h->unique & FUSE_UNIQUE_RESEND) != 0;
    m->nodeid = h->nodeid;
    m->uid = h->uid;
    m->gid = h->gid;
    m->pid = h->pid;
}

/* Parse the bytes after the op struct according to the opcode's body kind. */
static int parse_body(const struct op_desc *d, struct fuse_msg *m, const char *p,
                      const char *end)
{
    switch (d->body) {
    case BODY_NONE:
        return 0; /* trailing bytes from newer kernels are tolerated */
    case BODY_NAME:
        m->name = take_name(&p, end);
        return m->name ? 0 : -EINVAL;
    case BODY_NAME2:
        m->name = take_name(&p, end);
        m->name2 = m->name ? take_name(&p, end) : NULL;
        return m->name2 ? 0 : -EINVAL;
    case BODY_WRITE: {
        const struct fuse_write_in *w = m->op;
        if ((size_t)(end - p) < w->size)
            return -EINVAL;
        m->data = p;
        m->data_len = w->size;
        return 0;
    }
    case BODY_XATTR_SET: {
        const struct fuse_setxattr_in *x = m->op;
        m->name = take_name(&p, end);
        if (m->name == NULL || (size_t)(end - p) < x->size)
            return -EINVAL;
        m->data = p;
        m->data_len = x->size;
        return 0;
    }
    case BODY_FORGETS: {
        const struct fuse_batch_forget_in *b = m->op;
        size_t need = (size_t)b->count * sizeof(struct fuse_forget_one);
        if (b->count > (1u << 20) || (size_t)(end - p) < need)
            return -EINVAL;
        m->data = p;
        m->data_len = (uint32_t)need;
        return 0;
    }
    case BODY_RAW:
        m->data = p;
        m->data_len = (uint32_t)(end - p);
        return 0;
    }
    return -EINVAL;
}

int fuse_decode_dev(const void *buf, size_t len, struct fuse_msg *m)
{
    memset(m, 0, sizeof(*m));
    /* Callers hand us 8-byte aligned frames; op structs are read in place. */
    if (buf == NULL || len < sizeof(struct fuse_in_header) || ((uintptr_t)buf & 7) != 0)
        return -EINVAL;
    struct fuse_in_header h;
    memcpy(&h, buf, sizeof(h));
    fill_header(&h, m);
    /* The header's own length must be exactly what we received. */
    if (h.len != len || h.len < sizeof(h))
        return -EINVAL;
    size_t ext = (size_t)h.total_extlen * 8;
    size_t body_len = len - sizeof(h);
    if (ext > body_len)
        return -EINVAL;
    body_len -= ext; /* extension headers (secctx, groups) live at the end */

    const struct op_desc *d = op_lookup(h.opcode);
    if (d == NULL)
        return -ENOSYS;
    const char *p = (const char *)buf + sizeof(h);
    const char *end = p + body_len;
    if (body_len < (size_t)d->size)
        return -EINVAL;
    if (d->size > 0) {
        m->op = p;
        m->op_len = (uint32_t)(d->body == BODY_RAW && h.opcode == FUSE_INIT ? body_len : (size_t)d->size);
    }
    return parse_body(d, m, p + d->size, end);
}

int fuse_decode_ring(const void *in_out, const void *op_in, const void *payload,
                     size_t payload_len, struct fuse_msg *m)
{
    memset(m, 0, sizeof(*m));
    if (in_out == NULL || op_in == NULL || (payload == NULL && payload_len != 0) ||
        ((uintptr_t)op_in & 7) != 0 || ((uintptr_t)payload & 7) != 0)
        return -EINVAL;
    struct fuse_in_header h;
    memcpy(&h, in_out, sizeof(h));
    fill_header(&h, m);
    const struct op_desc *d = op_lookup(h.opcode);
    if (d == NULL)
        return -ENOSYS;
    if (d->size > FUSE_URING_OP_IN_OUT_SZ)
        return -EINVAL;
    if (h.opcode == FUSE_INIT)
        return -EINVAL; /* INIT never travels over a ring */
    if (d->size > 0) {
        m->op = op_in;
        m->op_len = (uint32_t)d->size;
    }
    size_t ext = (size_t)h.total_extlen * 8;
    if (ext > payload_len)
        return -EINVAL;
    if (payload_len == 0)
        return parse_body(d, m, "", ""); /* never offset a NULL pointer */
    const char *p = payload;
    return parse_body(d, m, p, p + (payload_len - ext));
}
