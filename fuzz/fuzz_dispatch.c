/* fuzz_dispatch.c — libFuzzer target: decoder + engine dispatch into a
 * stub backend, with no kernel.
 *
 * A fake session / channel / request is built around the CHAN_TEST hook
 * (engine_internal.h): in that mode vfs_send() records the reply in the
 * request instead of writing it anywhere. The stub backend implements
 * every vfs_ops callback by checking its arguments (names NUL-terminated
 * inside the frame, data inside the frame, values equal to what was
 * decoded, the request's accessors) and answering exactly once. After each
 * request the harness checks that
 *   - the right callback (and only one) ran for the opcode,
 *   - exactly one reply was sent to a request that needs one, none to
 *     FORGET, BATCH_FORGET, INTERRUPT and NOTIFY_REPLY,
 *   - the reply is what the backend (or the engine) meant to send,
 *   - the slot was released.
 *
 * Input: byte 0 selects the variant, the rest is the frame.
 *   bit 0: backend with no callbacks at all (engine ENOSYS/default paths)
 *   bit 1: io_uring shape (128-byte header area, 128-byte op area, payload)
 *          instead of one /dev/fuse frame
 *   bit 2: the backend answers with an error instead of success
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/engine_internal.h"
#include "fuzz_common.h"

#define CTL_NULL_OPS 1u
#define CTL_RING 2u
#define CTL_ERRORS 4u

/* What the harness expects and what the stub saw, for one request. */
static struct {
    int fs_tag;               /* &st.fs_tag is the backend's fs pointer */
    struct fuzz_range op;     /* where op structs may live */
    struct fuzz_range body;   /* where names and data may live */
    int errors;               /* CTL_ERRORS */
    uint32_t called;          /* opcode whose callback ran (0 = none) */
    int ncalls;               /* backend callbacks that take a request */
    uint64_t nforgets;
    const struct fuse_forget_one *forgets; /* expected BATCH_FORGET entries */
    int expect_err;           /* reply the stub sent */
    size_t expect_len;
} st;

static struct vfs_session sess;
static struct vfs_chan chan;
static struct vfs_req req;

/* ---- checks shared by every callback ---- */

static const struct fuse_msg *begin(struct vfs_req *r, uint32_t opcode)
{
    FUZZ_CHECK(r == &req);
    st.ncalls++;
    FUZZ_CHECK(st.ncalls == 1); /* one backend call per request */
    st.called = opcode;
    const struct fuse_msg *m = &r->m;
    FUZZ_CHECK(vfs_req_fs(r) == &st.fs_tag);
    FUZZ_CHECK(vfs_req_session(r) == &sess);
    FUZZ_CHECK(vfs_req_opcode(r) == m->opcode);
    FUZZ_CHECK(!vfs_req_interrupted(r));
    const struct vfs_ctx *ctx = vfs_req_ctx(r);
    FUZZ_CHECK(ctx->uid == m->uid && ctx->gid == m->gid && ctx->pid == m->pid);
    FUZZ_CHECK(atomic_load(&r->busy) == 1);
    FUZZ_CHECK(r->test_nreplies == 0);
    return m;
}

static void name_ok(const char *name) { fuzz_check_name(&st.body, name); }

static void op_ok(const void *p, size_t n)
{
    FUZZ_CHECK(p != NULL && fuzz_in_range(&st.op, p, n));
    fuzz_touch(p, n);
}

/* ---- replies: each records what the harness must then see ---- */

static void reply_err(struct vfs_req *r, int err)
{
    st.expect_err = err;
    st.expect_len = 0;
    vfs_reply_err(r, err);
}

/* Answer with an error in CTL_ERRORS mode; returns 1 if it did. */
static int maybe_fail(struct vfs_req *r)
{
    if (!st.errors)
        return 0;
    reply_err(r, EIO);
    return 1;
}

static void reply_entry(struct vfs_req *r, uint64_t ino)
{
    struct fuse_entry_out e;
    memset(&e, 0, sizeof(e));
    e.nodeid = ino + 1;
    e.attr.ino = ino + 1;
    e.attr.mode = 0100644;
    st.expect_err = 0;
    st.expect_len = sizeof(e);
    vfs_reply_entry(r, &e);
}

static void reply_attr(struct vfs_req *r, uint64_t ino)
{
    struct fuse_attr_out a;
    memset(&a, 0, sizeof(a));
    a.attr.ino = ino;
    st.expect_err = 0;
    st.expect_len = sizeof(a);
    vfs_reply_attr(r, &a);
}

static void reply_open(struct vfs_req *r)
{
    struct vfs_fuse_open_out o = { .fh = 42 };
    st.expect_err = 0;
    st.expect_len = sizeof(o);
    vfs_reply_open(r, &o);
}

static void reply_write(struct vfs_req *r, uint32_t n)
{
    st.expect_err = 0;
    st.expect_len = sizeof(struct fuse_write_out);
    vfs_reply_write(r, n);
}

/* len payload bytes built in the request's payload buffer. */
static void reply_payload(struct vfs_req *r, uint32_t len)
{
    size_t cap = 0;
    unsigned char *p = vfs_req_payload(r, &cap);
    FUZZ_CHECK(p != NULL && cap >= VFS_MAX_WRITE);
    FUZZ_CHECK(len <= cap);
    if (len) {
        p[0] = 1; /* ASan: the whole [0, len) is ours */
        p[len - 1] = 2;
    }
    st.expect_err = 0;
    st.expect_len = len;
    vfs_reply_buf(r, p, len);
}

/* ---- the stub backend ---- */

static void stub_lookup(struct vfs_req *r, uint64_t parent, const char *name)
{
    const struct fuse_msg *m = begin(r, FUSE_LOOKUP);
    FUZZ_CHECK(parent == m->nodeid && name == m->name);
    name_ok(name);
    if (!maybe_fail(r))
        reply_entry(r, parent);
}

static void stub_forget(void *fs, uint64_t ino, uint64_t nlookup)
{
    FUZZ_CHECK(fs == &st.fs_tag);
    const struct fuse_msg *m = &req.m;
    if (m->opcode == FUSE_FORGET) {
        const struct fuse_forget_in *f = m->op;
        FUZZ_CHECK(st.nforgets == 0 && ino == m->nodeid && nlookup == f->nlookup);
    } else {
        FUZZ_CHECK(m->opcode == FUSE_BATCH_FORGET);
        const struct fuse_batch_forget_in *b = m->op;
        FUZZ_CHECK(st.nforgets < b->count);
        struct fuse_forget_one one;
        memcpy(&one, &st.forgets[st.nforgets], sizeof(one));
        FUZZ_CHECK(ino == one.nodeid && nlookup == one.nlookup);
    }
    st.nforgets++;
}

static void stub_getattr(struct vfs_req *r, uint64_t ino, const uint64_t *fh)
{
    const struct fuse_msg *m = begin(r, FUSE_GETATTR);
    const struct fuse_getattr_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid);
    if (in->getattr_flags & FUSE_GETATTR_FH)
        FUZZ_CHECK(fh != NULL && *fh == in->fh);
    else
        FUZZ_CHECK(fh == NULL);
    if (!maybe_fail(r))
        reply_attr(r, ino);
}

static void stub_setattr(struct vfs_req *r, uint64_t ino, const struct fuse_setattr_in *in)
{
    const struct fuse_msg *m = begin(r, FUSE_SETATTR);
    /* dispatch hands over a copy (its fh translated when there is a
     * handoff region; the harness runs without one) */
    FUZZ_CHECK(ino == m->nodeid && memcmp(in, m->op, sizeof(*in)) == 0);
    op_ok(m->op, sizeof(*in));
    if (!maybe_fail(r))
        reply_attr(r, ino);
}

static void stub_readlink(struct vfs_req *r, uint64_t ino)
{
    const struct fuse_msg *m = begin(r, FUSE_READLINK);
    FUZZ_CHECK(ino == m->nodeid);
    if (!maybe_fail(r))
        reply_payload(r, 6);
}

static void stub_mknod(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode,
                       dev_t rdev, mode_t umask)
{
    const struct fuse_msg *m = begin(r, FUSE_MKNOD);
    const struct fuse_mknod_in *in = m->op;
    FUZZ_CHECK(parent == m->nodeid && name == m->name);
    FUZZ_CHECK(mode == in->mode && rdev == in->rdev && umask == in->umask);
    name_ok(name);
    if (!maybe_fail(r))
        reply_entry(r, parent);
}

static void stub_mkdir(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode,
                       mode_t umask)
{
    const struct fuse_msg *m = begin(r, FUSE_MKDIR);
    const struct fuse_mkdir_in *in = m->op;
    FUZZ_CHECK(parent == m->nodeid && name == m->name);
    FUZZ_CHECK(mode == in->mode && umask == in->umask);
    name_ok(name);
    if (!maybe_fail(r))
        reply_entry(r, parent);
}

static void stub_unlink(struct vfs_req *r, uint64_t parent, const char *name)
{
    const struct fuse_msg *m = begin(r, FUSE_UNLINK);
    FUZZ_CHECK(parent == m->nodeid && name == m->name);
    name_ok(name);
    if (!maybe_fail(r))
        reply_err(r, 0);
}

static void stub_rmdir(struct vfs_req *r, uint64_t parent, const char *name)
{
    const struct fuse_msg *m = begin(r, FUSE_RMDIR);
    FUZZ_CHECK(parent == m->nodeid && name == m->name);
    name_ok(name);
    if (!maybe_fail(r))
        reply_err(r, 0);
}

static void stub_symlink(struct vfs_req *r, const char *target, uint64_t parent,
                         const char *name)
{
    const struct fuse_msg *m = begin(r, FUSE_SYMLINK);
    /* the kernel sends the link name first, then the target */
    FUZZ_CHECK(parent == m->nodeid && name == m->name && target == m->name2);
    name_ok(name);
    name_ok(target);
    if (!maybe_fail(r))
        reply_entry(r, parent);
}

static void stub_rename(struct vfs_req *r, uint64_t parent, const char *name,
                        uint64_t newparent, const char *newname, unsigned flags)
{
    const struct fuse_msg *m = begin(r, FUSE_RENAME);
    FUZZ_CHECK(m->opcode == FUSE_RENAME || m->opcode == FUSE_RENAME2);
    FUZZ_CHECK(parent == m->nodeid && name == m->name && newname == m->name2);
    if (m->opcode == FUSE_RENAME2) {
        const struct fuse_rename2_in *in = m->op;
        FUZZ_CHECK(newparent == in->newdir && flags == in->flags);
    } else {
        const struct fuse_rename_in *in = m->op;
        FUZZ_CHECK(newparent == in->newdir && flags == 0);
    }
    name_ok(name);
    name_ok(newname);
    if (!maybe_fail(r))
        reply_err(r, 0);
}

static void stub_link(struct vfs_req *r, uint64_t ino, uint64_t newparent, const char *newname)
{
    const struct fuse_msg *m = begin(r, FUSE_LINK);
    const struct fuse_link_in *in = m->op;
    FUZZ_CHECK(ino == in->oldnodeid && newparent == m->nodeid && newname == m->name);
    name_ok(newname);
    if (!maybe_fail(r))
        reply_entry(r, ino);
}

static void stub_statfs(struct vfs_req *r, uint64_t ino)
{
    const struct fuse_msg *m = begin(r, FUSE_STATFS);
    FUZZ_CHECK(ino == m->nodeid);
    if (maybe_fail(r))
        return;
    struct fuse_kstatfs k;
    memset(&k, 0, sizeof(k));
    k.bsize = 4096;
    st.expect_err = 0;
    st.expect_len = sizeof(struct fuse_statfs_out);
    vfs_reply_statfs(r, &k);
}

static void stub_access(struct vfs_req *r, uint64_t ino, int mask)
{
    const struct fuse_msg *m = begin(r, FUSE_ACCESS);
    const struct fuse_access_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && mask == (int)in->mask);
    if (!maybe_fail(r))
        reply_err(r, 0);
}

static void stub_create(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode,
                        int flags, mode_t umask)
{
    const struct fuse_msg *m = begin(r, FUSE_CREATE);
    const struct fuse_create_in *in = m->op;
    FUZZ_CHECK(parent == m->nodeid && name == m->name);
    FUZZ_CHECK(mode == in->mode && flags == (int)in->flags && umask == in->umask);
    name_ok(name);
    if (maybe_fail(r))
        return;
    struct fuse_entry_out e;
    memset(&e, 0, sizeof(e));
    e.nodeid = parent + 1;
    struct vfs_fuse_open_out o = { .fh = 7 };
    st.expect_err = 0;
    st.expect_len = sizeof(e) + sizeof(o);
    vfs_reply_create(r, &e, &o);
}

static void stub_open(struct vfs_req *r, uint64_t ino, int flags)
{
    const struct fuse_msg *m = begin(r, FUSE_OPEN);
    const struct fuse_open_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && flags == (int)in->flags);
    if (!maybe_fail(r))
        reply_open(r);
}

static void stub_read(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, uint32_t size)
{
    const struct fuse_msg *m = begin(r, FUSE_READ);
    const struct fuse_read_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && fh == in->fh && off == in->offset && size == in->size);
    FUZZ_CHECK(size <= VFS_MAX_WRITE); /* the engine refuses larger reads */
    if (!maybe_fail(r))
        reply_payload(r, size);
}

static void stub_write(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off,
                       const void *data, uint32_t size, uint32_t write_flags)
{
    const struct fuse_msg *m = begin(r, FUSE_WRITE);
    const struct fuse_write_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && fh == in->fh && off == in->offset);
    FUZZ_CHECK(write_flags == in->write_flags && size == in->size);
    FUZZ_CHECK(data == m->data && size == m->data_len);
    fuzz_check_data(&st.body, data, size);
    if (!maybe_fail(r))
        reply_write(r, size);
}

static void stub_flush(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t lock_owner)
{
    const struct fuse_msg *m = begin(r, FUSE_FLUSH);
    const struct fuse_flush_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && fh == in->fh && lock_owner == in->lock_owner);
    if (!maybe_fail(r))
        reply_err(r, 0);
}

static void stub_release(struct vfs_req *r, uint64_t ino, uint64_t fh, int flags)
{
    const struct fuse_msg *m = begin(r, FUSE_RELEASE);
    const struct fuse_release_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && fh == in->fh && flags == (int)in->flags);
    reply_err(r, 0); /* release cannot fail */
}

static void stub_fsync(struct vfs_req *r, uint64_t ino, uint64_t fh, int datasync)
{
    const struct fuse_msg *m = begin(r, FUSE_FSYNC);
    const struct fuse_fsync_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && fh == in->fh);
    FUZZ_CHECK(datasync == (int)(in->fsync_flags & FUSE_FSYNC_FDATASYNC));
    if (!maybe_fail(r))
        reply_err(r, 0);
}

static void stub_fallocate(struct vfs_req *r, uint64_t ino, uint64_t fh, int mode, uint64_t off,
                           uint64_t len)
{
    const struct fuse_msg *m = begin(r, FUSE_FALLOCATE);
    const struct fuse_fallocate_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && fh == in->fh && mode == (int)in->mode);
    FUZZ_CHECK(off == in->offset && len == in->length);
    if (!maybe_fail(r))
        reply_err(r, 0);
}

static void stub_lseek(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, int whence)
{
    const struct fuse_msg *m = begin(r, FUSE_LSEEK);
    const struct fuse_lseek_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && fh == in->fh && off == in->offset);
    FUZZ_CHECK(whence == (int)in->whence);
    if (maybe_fail(r))
        return;
    st.expect_err = 0;
    st.expect_len = sizeof(struct fuse_lseek_out);
    vfs_reply_lseek(r, off);
}

static void stub_copy_file_range(struct vfs_req *r, uint64_t ino_in, uint64_t fh_in,
                                 uint64_t off_in, uint64_t ino_out, uint64_t fh_out,
                                 uint64_t off_out, uint64_t len, uint64_t flags)
{
    const struct fuse_msg *m = begin(r, FUSE_COPY_FILE_RANGE);
    const struct fuse_copy_file_range_in *in = m->op;
    FUZZ_CHECK(ino_in == m->nodeid && fh_in == in->fh_in && off_in == in->off_in);
    FUZZ_CHECK(ino_out == in->nodeid_out && fh_out == in->fh_out && off_out == in->off_out);
    FUZZ_CHECK(len == in->len && flags == in->flags);
    if (!maybe_fail(r))
        reply_write(r, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);
}

static void stub_opendir(struct vfs_req *r, uint64_t ino, int flags)
{
    const struct fuse_msg *m = begin(r, FUSE_OPENDIR);
    const struct fuse_open_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && flags == (int)in->flags);
    if (!maybe_fail(r))
        reply_open(r);
}

static void stub_readdir(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off,
                         uint32_t size, int plus)
{
    const struct fuse_msg *m = begin(r, FUSE_READDIR);
    const struct fuse_read_in *in = m->op;
    FUZZ_CHECK(m->opcode == FUSE_READDIR || m->opcode == FUSE_READDIRPLUS);
    FUZZ_CHECK(plus == (m->opcode == FUSE_READDIRPLUS));
    FUZZ_CHECK(ino == m->nodeid && fh == in->fh && off == in->offset && size == in->size);
    FUZZ_CHECK(size <= VFS_MAX_WRITE);
    if (maybe_fail(r))
        return;
    size_t cap = 0;
    char *buf = vfs_req_payload(r, &cap);
    FUZZ_CHECK(buf != NULL && cap >= size);
    static const char *const names[] = { ".", "..", "a", "some-longer-file-name.txt" };
    size_t used = 0;
    for (unsigned i = 0; i < 64; i++) {
        const char *nm = names[i % 4];
        size_t n;
        if (plus) {
            struct fuse_entry_out e;
            memset(&e, 0, sizeof(e));
            e.attr.ino = i + 1;
            e.attr.mode = 040755;
            n = vfs_direntplus_add(buf, size, used, nm, &e, off + i + 1);
            if (n)
                FUZZ_CHECK(n - used == vfs_direntplus_size(strlen(nm)));
        } else {
            n = vfs_dirent_add(buf, size, used, nm, i + 1, 4, off + i + 1);
        }
        if (n == 0)
            break;
        FUZZ_CHECK(n > used && n <= size && n % 8 == 0);
        used = n;
    }
    st.expect_err = 0;
    st.expect_len = used;
    vfs_reply_buf(r, buf, used);
}

static void stub_releasedir(struct vfs_req *r, uint64_t ino, uint64_t fh)
{
    const struct fuse_msg *m = begin(r, FUSE_RELEASEDIR);
    const struct fuse_release_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && fh == in->fh);
    reply_err(r, 0);
}

static void stub_fsyncdir(struct vfs_req *r, uint64_t ino, uint64_t fh, int datasync)
{
    const struct fuse_msg *m = begin(r, FUSE_FSYNCDIR);
    const struct fuse_fsync_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && fh == in->fh);
    FUZZ_CHECK(datasync == (int)(in->fsync_flags & FUSE_FSYNC_FDATASYNC));
    if (!maybe_fail(r))
        reply_err(r, 0);
}

static void stub_setxattr(struct vfs_req *r, uint64_t ino, const char *name, const void *value,
                          uint32_t size, int flags)
{
    const struct fuse_msg *m = begin(r, FUSE_SETXATTR);
    const struct fuse_setxattr_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && name == m->name && flags == (int)in->flags);
    FUZZ_CHECK(value == m->data && size == m->data_len && size == in->size);
    name_ok(name);
    fuzz_check_data(&st.body, value, size);
    if (!maybe_fail(r))
        reply_err(r, 0);
}

static void stub_getxattr(struct vfs_req *r, uint64_t ino, const char *name, uint32_t size)
{
    const struct fuse_msg *m = begin(r, FUSE_GETXATTR);
    const struct fuse_getxattr_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && name == m->name && size == in->size);
    name_ok(name);
    if (maybe_fail(r))
        return;
    if (size == 0) {
        st.expect_err = 0;
        st.expect_len = sizeof(struct fuse_getxattr_out);
        vfs_reply_xattr_size(r, 5);
    } else if (size < 5) {
        reply_err(r, ERANGE);
    } else {
        reply_payload(r, 5);
    }
}

static void stub_listxattr(struct vfs_req *r, uint64_t ino, uint32_t size)
{
    const struct fuse_msg *m = begin(r, FUSE_LISTXATTR);
    const struct fuse_getxattr_in *in = m->op;
    FUZZ_CHECK(ino == m->nodeid && size == in->size);
    if (maybe_fail(r))
        return;
    if (size == 0) {
        st.expect_err = 0;
        st.expect_len = sizeof(struct fuse_getxattr_out);
        vfs_reply_xattr_size(r, 0);
    } else {
        reply_payload(r, 0);
    }
}

static void stub_removexattr(struct vfs_req *r, uint64_t ino, const char *name)
{
    const struct fuse_msg *m = begin(r, FUSE_REMOVEXATTR);
    FUZZ_CHECK(ino == m->nodeid && name == m->name);
    name_ok(name);
    if (!maybe_fail(r))
        reply_err(r, 0);
}

static void stub_syncfs(struct vfs_req *r)
{
    begin(r, FUSE_SYNCFS);
    if (!maybe_fail(r))
        reply_err(r, 0);
}

static const struct vfs_ops stub_ops = {
    .lookup = stub_lookup,
    .forget = stub_forget,
    .getattr = stub_getattr,
    .setattr = stub_setattr,
    .readlink = stub_readlink,
    .mknod = stub_mknod,
    .mkdir = stub_mkdir,
    .unlink = stub_unlink,
    .rmdir = stub_rmdir,
    .symlink = stub_symlink,
    .rename = stub_rename,
    .link = stub_link,
    .statfs = stub_statfs,
    .access = stub_access,
    .create = stub_create,
    .open = stub_open,
    .read = stub_read,
    .write = stub_write,
    .flush = stub_flush,
    .release = stub_release,
    .fsync = stub_fsync,
    .fallocate = stub_fallocate,
    .lseek = stub_lseek,
    .copy_file_range = stub_copy_file_range,
    .opendir = stub_opendir,
    .readdir = stub_readdir,
    .releasedir = stub_releasedir,
    .fsyncdir = stub_fsyncdir,
    .setxattr = stub_setxattr,
    .getxattr = stub_getxattr,
    .listxattr = stub_listxattr,
    .removexattr = stub_removexattr,
    .syncfs = stub_syncfs,
};

static const struct vfs_ops empty_ops; /* every callback NULL */

/* ---- expectations per opcode ---- */

static int needs_reply(uint32_t opcode)
{
    return opcode != FUSE_FORGET && opcode != FUSE_BATCH_FORGET &&
           opcode != FUSE_INTERRUPT && opcode != FUSE_NOTIFY_REPLY;
}

/* The callback dispatch must reach for a decoded opcode (0: none). */
static uint32_t backend_callback(const struct fuse_msg *m)
{
    switch (m->opcode) {
    case FUSE_LOOKUP: case FUSE_GETATTR: case FUSE_SETATTR: case FUSE_READLINK:
    case FUSE_SYMLINK: case FUSE_MKNOD: case FUSE_MKDIR: case FUSE_UNLINK: case FUSE_RMDIR:
    case FUSE_LINK: case FUSE_OPEN: case FUSE_WRITE: case FUSE_STATFS: case FUSE_RELEASE:
    case FUSE_FSYNC: case FUSE_SETXATTR: case FUSE_GETXATTR: case FUSE_LISTXATTR:
    case FUSE_REMOVEXATTR: case FUSE_FLUSH: case FUSE_OPENDIR: case FUSE_RELEASEDIR:
    case FUSE_FSYNCDIR: case FUSE_ACCESS: case FUSE_CREATE: case FUSE_FALLOCATE:
    case FUSE_LSEEK: case FUSE_COPY_FILE_RANGE: case FUSE_SYNCFS:
        return m->opcode;
    case FUSE_RENAME: case FUSE_RENAME2:
        return FUSE_RENAME;
    case FUSE_READ: {
        const struct fuse_read_in *in = m->op;
        return in->size > VFS_MAX_WRITE ? 0 : FUSE_READ;
    }
    case FUSE_READDIR: case FUSE_READDIRPLUS: {
        const struct fuse_read_in *in = m->op;
        return in->size > VFS_MAX_WRITE ? 0 : FUSE_READDIR;
    }
    default:
        return 0; /* FORGET*, INTERRUPT, INIT, DESTROY, NOTIFY_REPLY, ENOSYS ones */
    }
}

/* What the engine itself answers when no callback runs. */
static int engine_reply(const struct fuse_msg *m, int null_ops)
{
    switch (m->opcode) {
    case FUSE_RELEASE: case FUSE_FLUSH: case FUSE_RELEASEDIR: case FUSE_DESTROY:
        return 0;
    case FUSE_INIT:
        return EPROTO;
    case FUSE_READ: case FUSE_READDIR: case FUSE_READDIRPLUS:
        return null_ops ? ENOSYS : EINVAL; /* oversized */
    default:
        return ENOSYS;
    }
}

static void setup_once(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    sess.fs = &st.fs_tag;
    sess.devfd = -1;
    sess.stop_pipe[0] = sess.stop_pipe[1] = -1;
    sess.chans[0] = &chan;
    sess.nchans = 1;
    chan.s = &sess;
    chan.mode = CHAN_TEST;
    chan.fd = chan.efd = -1;
    chan.slots = &req;
    chan.nslots = 1;
    req.chan = &chan;
    /* req.reply_buf is allocated by vfs_req_payload() on first use and
     * kept for the whole run, as a real slot does. */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 21))
        return 0;
    setup_once();
    const unsigned ctl = data[0];
    data++;
    size--;
    const int null_ops = (ctl & CTL_NULL_OPS) != 0;
    sess.ops = null_ops ? &empty_ops : &stub_ops;

    memset(&st, 0, sizeof(st));
    st.errors = (ctl & CTL_ERRORS) != 0;
    struct vfs_req *r = &req;
    memset(&r->m, 0, sizeof(r->m));
    r->test_nreplies = 0;
    r->test_error = -1;
    r->test_len = (size_t)-1;

    /* decode, as chan_dev.c's handle_frame / chan_uring.c's on_cqe do */
    struct fuzz_ring_in ri = { 0 };
    char *frame = NULL;
    int rc;
    if (ctl & CTL_RING) {
        fuzz_ring_split(data, size, &ri);
        rc = fuse_decode_ring(ri.in_out, ri.op_in, ri.payload, ri.payload_len, &r->m);
        if (rc == 0)
            fuzz_ring_ranges(&ri, &st.op, &st.body);
    } else {
        frame = fuzz_dup(data, size);
        rc = fuse_decode_dev(frame, size, &r->m);
        if (rc == 0)
            fuzz_dev_ranges(frame, size, &st.op, &st.body);
    }
    FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOSYS);
    atomic_store(&r->busy, 1);

    const struct fuse_msg *m = &r->m;
    if (rc == 0) {
        fuzz_check_msg(m, &st.op, &st.body);
        if (m->opcode == FUSE_BATCH_FORGET)
            st.forgets = m->data;
        vfs_dispatch(r);

        FUZZ_CHECK(atomic_load(&r->busy) == 0); /* the slot was given back */
        FUZZ_CHECK(r->test_nreplies == needs_reply(m->opcode));
        uint32_t cb = null_ops ? 0 : backend_callback(m);
        FUZZ_CHECK(st.called == cb);
        if (cb != 0) {
            FUZZ_CHECK(st.ncalls == 1);
            FUZZ_CHECK(r->test_error == st.expect_err && r->test_len == st.expect_len);
        } else if (needs_reply(m->opcode)) {
            FUZZ_CHECK(st.ncalls == 0);
            FUZZ_CHECK(r->test_error == engine_reply(m, null_ops) && r->test_len == 0);
        }
        /* forgets reach the backend one by one */
        if (m->opcode == FUSE_FORGET)
            FUZZ_CHECK(st.nforgets == (null_ops ? 0u : 1u));
        if (m->opcode == FUSE_BATCH_FORGET) {
            const struct fuse_batch_forget_in *b = m->op;
            FUZZ_CHECK(st.nforgets == (null_ops ? 0u : b->count));
        }
        /* INTERRUPT marks the busy slot with that unique: here, ourselves */
        if (m->opcode == FUSE_INTERRUPT) {
            const struct fuse_interrupt_in *in = m->op;
            int self = (in->unique & ~FUSE_UNIQUE_RESEND) == m->unique;
            FUZZ_CHECK(vfs_req_interrupted(r) == self);
        }
    } else {
        /* a bad frame: answered EINVAL/ENOSYS when it can be, never twice */
        int reply = (ctl & CTL_RING) ||
                    (m->unique != 0 && m->opcode != FUSE_FORGET &&
                     m->opcode != FUSE_BATCH_FORGET && m->opcode != FUSE_INTERRUPT);
        if (reply)
            vfs_reply_err(r, -rc);
        else
            atomic_store(&r->busy, 0);
        FUZZ_CHECK(r->test_nreplies == reply);
        if (reply)
            FUZZ_CHECK(r->test_error == -rc && r->test_len == 0);
        FUZZ_CHECK(atomic_load(&r->busy) == 0);
        FUZZ_CHECK(st.ncalls == 0 && st.nforgets == 0);
    }
    free(frame);
    if (ctl & CTL_RING)
        fuzz_ring_free(&ri);
    return 0;
}
