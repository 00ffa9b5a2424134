/* dispatch.c — turn a decoded request into one backend operation.
 * Opcodes the backend does not implement are answered ENOSYS, which the
 * kernel remembers for those where the protocol lets it stop sending. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "common/log.h"
#include "fuse/engine_internal.h"
#include "fuse/forget_recovery.h"

#define NEED(fn) do { if (ops->fn == NULL) { vfs_reply_err(r, ENOSYS); return; } } while (0)
/* The kernel names handles by their slot in the handoff region; the
 * backend gets its own fh back (ho_backend_fh answers EBADF on a bad one). */
#define BFH(var, kfh) uint64_t var; if (ho_backend_fh(r, (kfh), &var) < 0) return
/* Opens reserve the handle slot the reply will fill. */
#define RESERVE_FH() do { if (s->ho && (r->kfh = ho_fh_reserve(s->ho)) == 0) { vfs_reply_err(r, ENFILE); return; } } while (0)

/* The kernel never sends a FORGET twice: one read by a daemon that dies
 * before applying it is lost. So the handoff region takes the whole batch
 * first, in a tight loop of memory updates, and only then does the backend
 * do its slower part (closing handles): the window a kill -9 can hit stays
 * as short as the read itself. */
static void do_forget_batch(struct vfs_session *s, const struct fuse_msg *m)
{
    const struct fuse_batch_forget_in *b = m->op;
    const struct fuse_forget_one *one = m->data;
    struct fuse_forget_one f;
    for (uint32_t i = 0; s->ho && i < b->count; i++) {
        memcpy(&f, &one[i], sizeof(f));
        ho_node_forget(s->ho, f.nodeid, f.nlookup);
        fr_on_forget(s, f.nodeid);
    }
    for (uint32_t i = 0; s->ops->forget && i < b->count; i++) {
        memcpy(&f, &one[i], sizeof(f));
        s->ops->forget(s->fs, f.nodeid, f.nlookup);
    }
}

/* Requests that have no reply release their slot here. */
static void finish_noreply(struct vfs_req *r)
{
    atomic_store_explicit(&r->busy, 0, memory_order_release);
}

void vfs_dispatch(struct vfs_req *r)
{
    struct vfs_session *s = r->chan->s;
    const struct vfs_ops *ops = s->ops;
    const struct fuse_msg *m = &r->m;
    const uint64_t ino = m->nodeid;
    kernel_hb_acquire(s);
    r->ctx = (struct vfs_ctx){ m->uid, m->gid, m->pid };
    atomic_store_explicit(&r->interrupted, 0, memory_order_relaxed);
    /* without the resend bit (decode strips it): INTERRUPT names the original */
    atomic_store_explicit(&r->unique, m->unique, memory_order_release);
    r->kfh = 0;
    ho_before_dispatch(r);

    switch (m->opcode) {
    case FUSE_LOOKUP: NEED(lookup); ops->lookup(r, ino, m->name); return;
    case FUSE_FORGET: {
        const struct fuse_forget_in *f = m->op;
        if (s->ho) {
            ho_node_forget(s->ho, ino, f->nlookup);
            fr_on_forget(s, ino);
        }
        if (ops->forget)
            ops->forget(s->fs, ino, f->nlookup);
        finish_noreply(r);
        return;
    }
    case FUSE_BATCH_FORGET:
        do_forget_batch(s, m);
        finish_noreply(r);
        return;
    case FUSE_INTERRUPT: {
        const struct fuse_interrupt_in *in = m->op;
        vfs_handle_interrupt(s, in->unique & ~FUSE_UNIQUE_RESEND);
        finish_noreply(r);
        return;
    }
    case FUSE_GETATTR: {
        NEED(getattr);
        const struct fuse_getattr_in *in = m->op;
        if (in->getattr_flags & FUSE_GETATTR_FH) {
            BFH(fh, in->fh);
            ops->getattr(r, ino, &fh);
        } else {
            ops->getattr(r, ino, NULL);
        }
        return;
    }
    case FUSE_SETATTR: {
        NEED(setattr);
        struct fuse_setattr_in in;
        memcpy(&in, m->op, sizeof(in));
        if (in.valid & FATTR_FH) {
            BFH(fh, in.fh);
            in.fh = fh;
        }
        ops->setattr(r, ino, &in);
        return;
    }
    case FUSE_READLINK: NEED(readlink); ops->readlink(r, ino); return;
    case FUSE_SYMLINK: NEED(symlink); ops->symlink(r, m->name2, ino, m->name); return;
    case FUSE_MKNOD: {
        NEED(mknod);
        const struct fuse_mknod_in *in = m->op;
        ops->mknod(r, ino, m->name, in->mode, in->rdev, in->umask);
        return;
    }
    case FUSE_MKDIR: {
        NEED(mkdir);
        const struct fuse_mkdir_in *in = m->op;
        ops->mkdir(r, ino, m->name, in->mode, in->umask);
        return;
    }
    case FUSE_UNLINK: NEED(unlink); ops->unlink(r, ino, m->name); return;
    case FUSE_RMDIR: NEED(rmdir); ops->rmdir(r, ino, m->name); return;
    case FUSE_RENAME: {
        NEED(rename);
        const struct fuse_rename_in *in = m->op;
        ops->rename(r, ino, m->name, in->newdir, m->name2, 0);
        return;
    }
    case FUSE_RENAME2: {
        NEED(rename);
        const struct fuse_rename2_in *in = m->op;
        ops->rename(r, ino, m->name, in->newdir, m->name2, in->flags);
        return;
    }
    case FUSE_LINK: {
        NEED(link);
        const struct fuse_link_in *in = m->op;
        ops->link(r, in->oldnodeid, ino, m->name);
        return;
    }
    case FUSE_OPEN: {
        NEED(open);
        const struct fuse_open_in *in = m->op;
        RESERVE_FH();
        ops->open(r, ino, (int)in->flags);
        return;
    }
    case FUSE_READ: {
        NEED(read);
        const struct fuse_read_in *in = m->op;
        if (in->size > VFS_MAX_WRITE) { vfs_reply_err(r, EINVAL); return; }
        BFH(fh, in->fh);
        ops->read(r, ino, fh, in->offset, in->size);
        return;
    }
    case FUSE_WRITE: {
        NEED(write);
        const struct fuse_write_in *in = m->op;
        BFH(fh, in->fh);
        ops->write(r, ino, fh, in->offset, m->data, m->data_len, in->write_flags);
        return;
    }
    case FUSE_STATFS: NEED(statfs); ops->statfs(r, ino); return;
    case FUSE_RELEASE: {
        const struct fuse_release_in *in = m->op;
        BFH(fh, in->fh);
        r->kfh = in->fh; /* freed when answered */
        if (ops->release == NULL) { vfs_reply_err(r, 0); return; }
        ops->release(r, ino, fh, (int)in->flags);
        return;
    }
    case FUSE_FSYNC: {
        NEED(fsync);
        const struct fuse_fsync_in *in = m->op;
        BFH(fh, in->fh);
        ops->fsync(r, ino, fh, in->fsync_flags & FUSE_FSYNC_FDATASYNC);
        return;
    }
    case FUSE_SETXATTR: {
        NEED(setxattr);
        const struct fuse_setxattr_in *in = m->op;
        ops->setxattr(r, ino, m->name, m->data, m->data_len, (int)in->flags);
        return;
    }
    case FUSE_GETXATTR: {
        NEED(getxattr);
        const struct fuse_getxattr_in *in = m->op;
        ops->getxattr(r, ino, m->name, in->size);
        return;
    }
    case FUSE_LISTXATTR: {
        NEED(listxattr);
        const struct fuse_getxattr_in *in = m->op;
        ops->listxattr(r, ino, in->size);
        return;
    }
    case FUSE_REMOVEXATTR: NEED(removexattr); ops->removexattr(r, ino, m->name); return;
    case FUSE_FLUSH: {
        const struct fuse_flush_in *in = m->op;
        BFH(fh, in->fh);
        r->kfh = in->fh;
        if (ops->flush == NULL) { vfs_reply_err(r, 0); return; }
        ops->flush(r, ino, fh, in->lock_owner);
        return;
    }
    case FUSE_OPENDIR: {
        const struct fuse_open_in *in = m->op;
        NEED(opendir);
        RESERVE_FH();
        ops->opendir(r, ino, (int)in->flags);
        return;
    }
    case FUSE_READDIR:
    case FUSE_READDIRPLUS: {
        NEED(readdir);
        const struct fuse_read_in *in = m->op;
        if (in->size > VFS_MAX_WRITE) { vfs_reply_err(r, EINVAL); return; }
        BFH(fh, in->fh);
        ops->readdir(r, ino, fh, in->offset, in->size, m->opcode == FUSE_READDIRPLUS);
        return;
    }
    case FUSE_RELEASEDIR: {
        const struct fuse_release_in *in = m->op;
        BFH(fh, in->fh);
        r->kfh = in->fh; /* freed when answered */
        if (ops->releasedir == NULL) { vfs_reply_err(r, 0); return; }
        ops->releasedir(r, ino, fh);
        return;
    }
    case FUSE_FSYNCDIR: {
        NEED(fsyncdir);
        const struct fuse_fsync_in *in = m->op;
        BFH(fh, in->fh);
        ops->fsyncdir(r, ino, fh, in->fsync_flags & FUSE_FSYNC_FDATASYNC);
        return;
    }
    case FUSE_ACCESS: {
        NEED(access);
        const struct fuse_access_in *in = m->op;
        ops->access(r, ino, (int)in->mask);
        return;
    }
    case FUSE_CREATE: {
        NEED(create);
        const struct fuse_create_in *in = m->op;
        RESERVE_FH();
        int flags = (int)in->flags;
        /* resent after a crash and maybe already applied: the file may
         * exist because of this very request, so open it if it does */
        if (r->tolerant)
            flags &= ~O_EXCL;
        ops->create(r, ino, m->name, in->mode, flags, in->umask);
        return;
    }
    case FUSE_FALLOCATE: {
        NEED(fallocate);
        const struct fuse_fallocate_in *in = m->op;
        BFH(fh, in->fh);
        ops->fallocate(r, ino, fh, (int)in->mode, in->offset, in->length);
        return;
    }
    case FUSE_LSEEK: {
        NEED(lseek);
        const struct fuse_lseek_in *in = m->op;
        BFH(fh, in->fh);
        ops->lseek(r, ino, fh, in->offset, (int)in->whence);
        return;
    }
    case FUSE_COPY_FILE_RANGE: {
        NEED(copy_file_range);
        const struct fuse_copy_file_range_in *in = m->op;
        BFH(fh_in, in->fh_in);
        BFH(fh_out, in->fh_out);
        ops->copy_file_range(r, ino, fh_in, in->off_in, in->nodeid_out, fh_out, in->off_out,
                             in->len, in->flags);
        return;
    }
    case FUSE_SYNCFS: NEED(syncfs); ops->syncfs(r); return;
    case FUSE_DESTROY:
        /* the kernel waits for this reply before the unmount completes */
        vfs_reply_err(r, 0);
        return;
    case FUSE_INIT:
        /* a second INIT is a protocol violation */
        vfs_reply_err(r, EPROTO);
        return;
    case FUSE_NOTIFY_REPLY:
        finish_noreply(r); /* we never send RETRIEVE; nothing to match */
        return;
    default:
        /* GETLK/SETLK/SETLKW are not negotiated (the kernel locks locally);
         * BMAP, IOCTL, POLL, DAX mappings, TMPFILE, STATX and
         * COPY_FILE_RANGE_64 are answered ENOSYS and the kernel falls back
         * or stops sending them. */
        vfs_reply_err(r, ENOSYS);
        return;
    }
}

void vfs_handle_interrupt(struct vfs_session *s, uint64_t unique)
{
    /* Lock-free scan: slots publish their unique while busy. Our
     * operations are bounded in time, so marking is enough; a backend that
     * waits (e.g. on the network) polls vfs_req_interrupted(). */
    for (int i = 0; i < s->nchans; i++) {
        struct vfs_chan *c = s->chans[i];
        for (int j = 0; j < c->nslots; j++) {
            struct vfs_req *r = &c->slots[j];
            if (atomic_load_explicit(&r->busy, memory_order_acquire) &&
                atomic_load_explicit(&r->unique, memory_order_acquire) == unique) {
                atomic_store_explicit(&r->interrupted, 1, memory_order_release);
                LOG_DEBUG("fuse", "interrupt unique=%llu", (unsigned long long)unique);
                return;
            }
        }
    }
}
