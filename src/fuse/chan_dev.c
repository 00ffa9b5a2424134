/* chan_dev.c — the /dev/fuse transports.
 *
 * classic: the textbook FUSE daemon. The thread blocks in read(2) on its
 *   own cloned fd, serves the one request, waits for its reply, reads on.
 * xfuse:   XFUSE's daemon side. The fd is non-blocking; the thread keeps up
 *   to nslots requests in flight (the asynchronous model), reaps backend
 *   I/O completions, and when idle spins for an adaptive budget (see
 *   adaptive_wait.h) before sleeping in io_uring on "fd readable or a
 *   completion or a wake-up".
 *
 * Channel selection (xfuse). Every cloned fd reads the same kernel queue,
 * so the daemon decides which channels listen: one leader watches the fd
 * (spinning, then polling); the other channels are followers that sleep on
 * their own eventfd and are recruited one at a time when the leader finds
 * more than one request waiting (load > 1). At QD1 a single channel serves
 * everything with no thundering herd of wake-ups; under load as many
 * channels run as there are requests to spread.
 *
 * A reply is one writev(2) on the channel's fd; it may come from any
 * thread, since the kernel matches replies to requests by unique.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fuse/engine_internal.h"

static void conn_gone(struct vfs_chan *c)
{
    struct vfs_session *s = c->s;
    if (!atomic_exchange(&s->exited, 1)) {
        LOG_INFO("fuse", "connection closed (unmounted); channel %d stops", c->idx);
        ssize_t w = write(s->stop_pipe[1], "x", 1);
        (void)w;
    }
}

void chan_dev_send(struct vfs_req *r, const struct fuse_out_header *oh, const void *payload,
                   size_t len)
{
    struct vfs_chan *c = r->chan;
    struct iovec iov[2] = {
        { (void *)oh, sizeof(*oh) },
        { (void *)payload, len },
    };
    ssize_t n;
    do {
        n = writev(r->reply_fd, iov, len ? 2 : 1);
    } while (n < 0 && errno == EINTR);
    /* ENOENT: the request was interrupted and already ended by the kernel. */
    if (n < 0 && errno != ENOENT && errno != ENODEV)
        LOG_WARN("fuse", "reply unique=%llu: %s", (unsigned long long)oh->unique, strerror(errno));
    atomic_store_explicit(&r->busy, 0, memory_order_release);
    if (vfs_current_chan != c && c->efd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(c->efd, &one, sizeof(one)); /* a slot freed: wake the channel */
        (void)w;
    }
}

/* Decode the frame in r and dispatch it, or answer a bad frame. */
static void handle_frame(struct vfs_req *r, size_t n)
{
    int rc = fuse_decode_dev(r->buf, n, &r->m);
    atomic_store_explicit(&r->busy, 1, memory_order_relaxed);
    __atomic_store_n(&r->chan->nreq, r->chan->nreq + 1, __ATOMIC_RELAXED); /* read by status */
    if (rc == 0) {
        vfs_dispatch(r);
        return;
    }
    LOG_DEBUG("fuse", "bad frame opcode=%u len=%zu: %s", r->m.opcode, n, strerror(-rc));
    if (r->m.unique != 0 && r->m.opcode != FUSE_FORGET && r->m.opcode != FUSE_BATCH_FORGET &&
        r->m.opcode != FUSE_INTERRUPT)
        vfs_reply_err(r, -rc);
    else
        atomic_store_explicit(&r->busy, 0, memory_order_release);
}

/* read(2) one frame; returns bytes, 0 for "try again", -1 when the
 * connection is gone. */
static ssize_t read_frame(struct vfs_chan *c, struct vfs_req *r)
{
    r->reply_fd = c->fd;
    ssize_t n = read(c->fd, r->buf, r->buf_cap);
    if (n > 0)
        return n;
    if (n == 0)
        return -1;
    switch (errno) {
    case EINTR:
    case EAGAIN:
    case ENOENT: /* request interrupted while we were reading it */
        return 0;
    case ENODEV:       /* unmounted */
    case ECONNABORTED: /* aborted through fusectl */
        return -1;
    default:
        LOG_ERROR("fuse", "chan %d: read /dev/fuse: %s", c->idx, strerror(errno));
        return -1;
    }
}

static void wait_and_reap(struct vfs_chan *c)
{
    struct io_uring_cqe *cqe;
    chan_arm_wake(c);
    chan_flush_sq(c);
    int rc = io_uring_wait_cqe(&c->ring, &cqe);
    if (rc == 0)
        chan_reap(c, cqe);
    while (io_uring_peek_cqe(&c->ring, &cqe) == 0)
        chan_reap(c, cqe);
}

static void *classic_main(void *arg)
{
    struct vfs_chan *c = arg;
    vfs_current_chan = c;
    struct vfs_req *r = &c->slots[0];
    while (!atomic_load(&c->s->stopping)) {
        chan_pause_point(c);
        if (atomic_load(&c->s->stopping))
            break;
        ssize_t n = read_frame(c, r);
        if (n < 0) {
            conn_gone(c);
            break;
        }
        if (n == 0)
            continue;
        handle_frame(r, (size_t)n);
        /* classic: one request at a time, so wait for its reply */
        while (atomic_load_explicit(&r->busy, memory_order_acquire))
            wait_and_reap(c);
    }
    return NULL;
}

static struct vfs_req *free_slot(struct vfs_chan *c)
{
    for (int i = 0; i < c->nslots; i++) {
        int j = (c->free_hint + i) % c->nslots;
        if (!atomic_load_explicit(&c->slots[j].busy, memory_order_acquire)) {
            c->free_hint = j + 1;
            return &c->slots[j];
        }
    }
    return NULL;
}

static void arm_fd_poll(struct vfs_chan *c)
{
    if (c->poll_armed)
        return;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
    if (sqe == NULL) {
        chan_flush_sq(c);
        sqe = io_uring_get_sqe(&c->ring);
        if (sqe == NULL)
            return;
    }
    io_uring_prep_poll_add(sqe, c->fd, POLLIN);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | TAG_POLL);
    c->sq_pending++;
    c->poll_armed = 1;
}

/* Wake one sleeping follower, if any. */
static void recruit_follower(struct vfs_session *s)
{
    uint64_t mask = atomic_load_explicit(&s->idle_followers, memory_order_acquire);
    while (mask) {
        int i = __builtin_ctzll(mask);
        if (atomic_compare_exchange_weak(&s->idle_followers, &mask, mask & ~(1ull << i))) {
            uint64_t one = 1;
            ssize_t w = write(s->chans[i]->efd, &one, sizeof(one));
            (void)w;
            return;
        }
    }
}

static int is_leader(struct vfs_chan *c)
{
    int expect = -1;
    int cur = atomic_load_explicit(&c->s->xfuse_leader, memory_order_relaxed);
    if (cur == c->idx)
        return 1;
    if (cur == -1 && atomic_compare_exchange_strong(&c->s->xfuse_leader, &expect, c->idx))
        return 1;
    return 0;
}

static void *xfuse_main(void *arg)
{
    struct vfs_chan *c = arg;
    struct vfs_session *s = c->s;
    vfs_current_chan = c;
    int gone = 0;

    while (!gone && !atomic_load_explicit(&s->stopping, memory_order_relaxed)) {
        chan_pause_point(c);
        if (atomic_load(&s->stopping))
            break;
        int progress = 0, nread = 0;
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&c->ring, &cqe) == 0) {
            chan_reap(c, cqe);
            progress = 1;
        }
        struct vfs_req *r;
        while (!atomic_load_explicit(&s->paused, memory_order_relaxed) &&
               (r = free_slot(c)) != NULL) {
            ssize_t n = read_frame(c, r);
            if (n < 0) {
                gone = 1;
                break;
            }
            if (n == 0)
                break;
            if (++nread == 2)
                recruit_follower(s); /* more than one waiting: spread the load */
            handle_frame(r, (size_t)n);
            progress = 1;
        }
        chan_flush_sq(c);
        if (progress) {
            chan_spin_end(c, 1);
            continue;
        }
        /* idle: only the leader spins, while the budget lasts and a core is free */
        int leader = is_leader(c);
        if (leader && chan_spin_should_continue(c)) {
            for (int i = 0; i < 16; i++)
                cpu_relax();
            continue;
        }
        /* sleep: the leader until the fd is readable (if it has room), an
         * I/O ends or it is woken; a follower until recruited or an I/O ends */
        if (leader) {
            /* nothing else to wait for: a plain blocking read is the
             * cheapest sleep (one syscall, woken by the request itself) */
            if (c->aio_inflight == 0 && !atomic_load(&s->paused) && (r = free_slot(c)) != NULL) {
                r->reply_fd = c->fd_block;
                ssize_t n = read(c->fd_block, r->buf, r->buf_cap);
                if (n > 0) {
                    handle_frame(r, (size_t)n);
                } else if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != ENOENT)) {
                    gone = 1;
                }
                continue;
            }
            if (free_slot(c) != NULL)
                arm_fd_poll(c);
        } else {
            atomic_fetch_or(&s->idle_followers, 1ull << c->idx);
        }
        wait_and_reap(c);
        if (!leader)
            atomic_fetch_and(&s->idle_followers, ~(1ull << c->idx));
    }
    chan_spin_end(c, 0);
    if (gone)
        conn_gone(c);
    return NULL;
}

void *chan_dev_reader_main(void *arg) { return classic_main(arg); }

int chan_dev_start(struct vfs_chan *c)
{
    int fl = fcntl(c->fd, F_GETFL);
    if (c->mode == CHAN_XFUSE)
        fl |= O_NONBLOCK;
    else
        fl &= ~O_NONBLOCK;
    if (fcntl(c->fd, F_SETFL, fl) < 0)
        return -errno;
    int rc = pthread_create(&c->thread, NULL, c->mode == CHAN_XFUSE ? xfuse_main : classic_main, c);
    if (rc)
        return -rc;
    c->thread_started = 1;
    return 0;
}
