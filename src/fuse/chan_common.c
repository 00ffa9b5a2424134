/* chan_common.c — what every channel has: an io_uring for backend file
 * I/O (and, for the uring transport, the FUSE commands themselves), an
 * eventfd through which other threads wake it, and a mailbox of requests
 * that other threads answered. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fuse/engine_internal.h"

_Thread_local struct vfs_chan *vfs_current_chan;

void chan_uring_on_cqe(struct vfs_chan *c, struct vfs_req *r, int res);

int chan_ring_init(struct vfs_chan *c, unsigned entries, unsigned flags)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = flags;
    int rc = io_uring_queue_init_params(entries, &c->ring, &p);
    if (rc < 0)
        return rc;
    c->ring_ok = 1;
    c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->efd < 0)
        return -errno;
    return 0;
}

static struct io_uring_sqe *chan_get_sqe(struct vfs_chan *c)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
    if (sqe == NULL) {
        chan_flush_sq(c);
        sqe = io_uring_get_sqe(&c->ring);
    }
    if (sqe != NULL)
        c->sq_pending++;
    return sqe;
}

void chan_flush_sq(struct vfs_chan *c)
{
    if (c->sq_pending == 0)
        return;
    int rc;
    do {
        rc = io_uring_submit(&c->ring);
    } while (rc == -EINTR);
    if (rc < 0)
        LOG_ERROR("fuse", "chan %d: io_uring_submit: %s", c->idx, strerror(-rc));
    c->sq_pending = 0;
}

void chan_arm_wake(struct vfs_chan *c)
{
    if (c->efd_armed || c->efd < 0)
        return;
    struct io_uring_sqe *sqe = chan_get_sqe(c);
    if (sqe == NULL)
        return;
    io_uring_prep_read(sqe, c->efd, &c->efd_val, sizeof(c->efd_val), 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | TAG_WAKE);
    c->efd_armed = 1;
}

int chan_process_mbox(struct vfs_chan *c)
{
    pthread_mutex_lock(&c->mbox_lock);
    struct vfs_req *list = c->mbox;
    c->mbox = NULL;
    pthread_mutex_unlock(&c->mbox_lock);
    int n = 0;
    while (list) {
        struct vfs_req *r = list;
        list = r->mbox_next;
        r->mbox_next = NULL;
        /* re-enter the send path now that we are on the owning thread */
        struct fuse_out_header oh;
        memcpy(&oh, r->hdr->in_out, sizeof(oh));
        chan_uring_send(r, &oh, r->buf, oh.len - sizeof(oh));
        n++;
    }
    return n;
}

void chan_reap(struct vfs_chan *c, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    int res = cqe->res;
    void *ptr = (void *)(uintptr_t)(ud & ~TAG_MASK);
    io_uring_cqe_seen(&c->ring, cqe);
    switch (ud & TAG_MASK) {
    case TAG_AIO: {
        struct vfs_req *r = ptr;
        c->aio_inflight--;
        vfs_aio_cb cb = r->aio_cb;
        r->aio_cb = NULL;
        if (cb)
            cb(r, res, r->aio_arg);
        break;
    }
    case TAG_WAKE:
        c->efd_armed = 0;
        chan_process_mbox(c);
        break;
    case TAG_POLL:
        c->poll_armed = 0;
        break;
    case TAG_FUSE:
        chan_uring_on_cqe(c, ptr, res);
        break;
    default:
        break;
    }
}

static int aio_prep(struct vfs_req *r, vfs_aio_cb cb, void *arg, struct io_uring_sqe **out)
{
    struct vfs_chan *c = r->chan;
    /* classic channels are the textbook daemon: synchronous I/O */
    if (c->mode == CHAN_CLASSIC || vfs_current_chan != c || !c->ring_ok || r->aio_cb != NULL)
        return -EAGAIN;
    struct io_uring_sqe *sqe = chan_get_sqe(c);
    if (sqe == NULL)
        return -EBUSY;
    r->aio_cb = cb;
    r->aio_arg = arg;
    c->aio_inflight++;
    *out = sqe;
    return 0;
}

int vfs_aio_read(struct vfs_req *r, int fd, void *buf, uint32_t len, uint64_t off,
                 vfs_aio_cb cb, void *arg)
{
    struct io_uring_sqe *sqe;
    int rc = aio_prep(r, cb, arg, &sqe);
    if (rc)
        return rc;
    io_uring_prep_read(sqe, fd, buf, len, off);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)r | TAG_AIO);
    return 0;
}

int vfs_aio_write(struct vfs_req *r, int fd, const void *buf, uint32_t len, uint64_t off,
                  vfs_aio_cb cb, void *arg)
{
    struct io_uring_sqe *sqe;
    int rc = aio_prep(r, cb, arg, &sqe);
    if (rc)
        return rc;
    io_uring_prep_write(sqe, fd, buf, len, off);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)r | TAG_AIO);
    return 0;
}

int vfs_aio_fsync(struct vfs_req *r, int fd, int datasync, vfs_aio_cb cb, void *arg)
{
    struct io_uring_sqe *sqe;
    int rc = aio_prep(r, cb, arg, &sqe);
    if (rc)
        return rc;
    io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)r | TAG_AIO);
    return 0;
}

void chan_free(struct vfs_chan *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->nslots; i++) {
        if (c->mode == CHAN_URING) {
            free(c->slots[i].hdr);
        }
        free(c->slots[i].buf);
        free(c->slots[i].reply_buf);
    }
    free(c->slots);
    if (c->ring_ok)
        io_uring_queue_exit(&c->ring);
    if (c->efd >= 0)
        close(c->efd);
    if (c->fd >= 0 && c->fd != c->s->devfd)
        close(c->fd);
    if (c->fd_block >= 0)
        close(c->fd_block);
    pthread_mutex_destroy(&c->mbox_lock);
    free(c);
}

int chan_spin_should_continue(struct vfs_chan *c)
{
    struct vfs_session *s = c->s;
    uint64_t now = now_ns();
    if (c->spin_start == 0) {
        int spinners = atomic_load_explicit(&s->spinners, memory_order_relaxed);
        /* spin only with a core to spare for the application */
        if (aw_budget(&c->aw) == 0 || aw_cores_free(spinners) <= spinners) {
            aw_on_sleep(&c->aw);
            return 0;
        }
        c->spin_start = now;
        atomic_fetch_add(&s->spinners, 1);
        return 1;
    }
    if (now - c->spin_start < aw_budget(&c->aw))
        return 1;
    chan_spin_end(c, 0);
    aw_on_sleep(&c->aw);
    return 0;
}

void chan_spin_end(struct vfs_chan *c, int hit)
{
    if (c->spin_start == 0)
        return;
    aw_on_spin_end(&c->aw, hit, now_ns() - c->spin_start);
    c->spin_start = 0;
    atomic_fetch_sub(&c->s->spinners, 1);
}
