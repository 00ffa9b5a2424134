/* chan_uring.c — FUSE-over-io_uring (Linux >= 6.14, protocol 7.42).
 *
 * One queue per possible CPU, each served by its own thread (pinned to
 * that CPU by default) with its own ring: the kernel puts a request on
 * the queue of the CPU the application runs on, so with pinning the
 * hand-off stays on one core. Each queue registers nslots entries (header
 * + 1 MiB payload buffer); answering an entry and fetching the next
 * request is one COMMIT_AND_FETCH command. Backend file I/O completes on
 * the same ring, so one wait covers both.
 *
 * The thread spins on the completion queue for the adaptive budget before
 * sleeping in io_uring_enter. FORGET, INTERRUPT and notifications do not
 * travel over rings: a classic /dev/fuse reader runs beside them.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fuse/engine_internal.h"

struct uring_slot_iov {
    struct iovec iov[2];
};

static int possible_cpus(void)
{
    /* "0-1" or "0-3,5": the kernel sizes its queue table by possible CPUs */
    int fd = open("/sys/devices/system/cpu/possible", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return (int)sysconf(_SC_NPROCESSORS_CONF);
    char buf[256];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return (int)sysconf(_SC_NPROCESSORS_CONF);
    buf[n] = '\0';
    int max = -1;
    for (char *p = buf; *p;) {
        char *end;
        long a = strtol(p, &end, 10);
        if (end == p)
            break;
        long b = a;
        if (*end == '-')
            b = strtol(end + 1, &end, 10);
        if (b > max)
            max = (int)b;
        p = (*end == ',') ? end + 1 : end;
        if (*p == '\n')
            break;
    }
    return max + 1 > 0 ? max + 1 : 1;
}

static void prep_cmd(struct vfs_chan *c, struct io_uring_sqe *sqe, struct vfs_req *r,
                     uint32_t cmd, uint64_t commit_id, struct iovec *iov)
{
    memset(sqe, 0, 128); /* SQE128: the command area is the second half */
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = c->fd;
    sqe->cmd_op = cmd;
    if (iov) {
        sqe->addr = (uint64_t)(uintptr_t)iov;
        sqe->len = 2;
    }
    struct fuse_uring_cmd_req *req = (struct fuse_uring_cmd_req *)sqe->cmd;
    req->qid = (uint16_t)c->qid;
    req->commit_id = commit_id;
    req->flags = 0;
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)r | TAG_FUSE);
}

static struct io_uring_sqe *get_sqe(struct vfs_chan *c)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
    if (sqe == NULL) {
        chan_flush_sq(c);
        sqe = io_uring_get_sqe(&c->ring);
    }
    if (sqe)
        c->sq_pending++;
    return sqe;
}

void chan_uring_send(struct vfs_req *r, const struct fuse_out_header *oh, const void *payload,
                     size_t len)
{
    struct vfs_chan *c = r->chan;
    if (payload != r->buf && len)
        memmove(r->buf, payload, len);
    memcpy(r->hdr->in_out, oh, sizeof(*oh));
    r->hdr->ring_ent_in_out.payload_sz = (uint32_t)len;
    if (vfs_current_chan != c) {
        /* Only the owning thread may touch its ring: post and wake it. */
        pthread_mutex_lock(&c->mbox_lock);
        r->mbox_next = c->mbox;
        c->mbox = r;
        pthread_mutex_unlock(&c->mbox_lock);
        uint64_t one = 1;
        ssize_t w = write(c->efd, &one, sizeof(one));
        (void)w;
        return;
    }
    struct io_uring_sqe *sqe = get_sqe(c);
    if (sqe == NULL) {
        LOG_ERROR("fuse", "queue %d: no sqe for commit", c->qid);
        return;
    }
    prep_cmd(c, sqe, r, FUSE_IO_URING_CMD_COMMIT_AND_FETCH, r->hdr->ring_ent_in_out.commit_id,
             NULL);
    atomic_store_explicit(&r->busy, 0, memory_order_release);
}

void chan_uring_on_cqe(struct vfs_chan *c, struct vfs_req *r, int res)
{
    if (res < 0) {
        if (res != -ENOTCONN && !atomic_load(&c->s->exited) && !atomic_load(&c->s->stopping))
            LOG_WARN("fuse", "queue %d: entry ended: %s", c->qid, strerror(-res));
        c->spinning = -1; /* the queue is torn down; leave the loop */
        return;
    }
    size_t plen = r->hdr->ring_ent_in_out.payload_sz;
    int rc = plen <= r->buf_cap
                 ? fuse_decode_ring(r->hdr->in_out, r->hdr->op_in, r->buf, plen, &r->m)
                 : -EINVAL;
    atomic_store_explicit(&r->busy, 1, memory_order_relaxed);
    __atomic_store_n(&c->nreq, c->nreq + 1, __ATOMIC_RELAXED); /* read by status */
    if (rc == 0) {
        vfs_dispatch(r);
        return;
    }
    LOG_DEBUG("fuse", "queue %d: bad entry opcode=%u: %s", c->qid, r->m.opcode, strerror(-rc));
    if (r->m.unique == 0) {
        struct fuse_in_header h;
        memcpy(&h, r->hdr->in_out, sizeof(h));
        r->m.unique = h.unique & ~FUSE_UNIQUE_RESEND;
        r->m.resent = (h.unique & FUSE_UNIQUE_RESEND) != 0;
    }
    vfs_reply_err(r, -rc);
}

static void *uring_main(void *arg)
{
    struct vfs_chan *c = arg;
    struct vfs_session *s = c->s;
    vfs_current_chan = c;
    if (s->o.pin_threads) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(c->qid, &set);
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    }
    /* register every entry: each immediately waits for a request */
    struct uring_slot_iov *iovs = calloc((size_t)c->nslots, sizeof(*iovs));
    if (iovs == NULL)
        return NULL;
    for (int i = 0; i < c->nslots; i++) {
        struct vfs_req *r = &c->slots[i];
        iovs[i].iov[0] = (struct iovec){ r->hdr, sizeof(*r->hdr) };
        iovs[i].iov[1] = (struct iovec){ r->buf, r->buf_cap };
        struct io_uring_sqe *sqe = get_sqe(c);
        if (sqe == NULL)
            break;
        prep_cmd(c, sqe, r, FUSE_IO_URING_CMD_REGISTER, 0, iovs[i].iov);
    }
    chan_arm_wake(c);
    chan_flush_sq(c);
    free(iovs); /* the kernel imported the iovecs at submit time */

    while (c->spinning >= 0 && !atomic_load_explicit(&s->stopping, memory_order_relaxed) &&
           !atomic_load_explicit(&s->exited, memory_order_relaxed)) {
        struct io_uring_cqe *cqe;
        int progress = 0;
        while (io_uring_peek_cqe(&c->ring, &cqe) == 0) {
            chan_reap(c, cqe);
            progress = 1;
        }
        chan_flush_sq(c);
        if (progress) {
            chan_spin_end(c, 1);
            continue;
        }
        if (chan_spin_should_continue(c)) {
            /* completions arrive through task work: let it run */
            if (IO_URING_READ_ONCE(*c->ring.sq.kflags) & IORING_SQ_TASKRUN)
                io_uring_get_events(&c->ring);
            else
                for (int i = 0; i < 16; i++)
                    cpu_relax();
            continue;
        }
        chan_arm_wake(c);
        chan_flush_sq(c);
        if (io_uring_wait_cqe(&c->ring, &cqe) == 0)
            chan_reap(c, cqe);
    }
    chan_spin_end(c, 0);
    return NULL;
}

int chan_uring_setup(struct vfs_session *s)
{
    int nq = possible_cpus();
    if (nq > VFS_MAX_CHANNELS - 1)
        return -E2BIG;
    int depth = s->o.queue_depth > 0 ? s->o.queue_depth : 8;
    for (int q = 0; q < nq; q++) {
        struct vfs_chan *c = calloc(1, sizeof(*c));
        if (c == NULL)
            return -ENOMEM;
        c->s = s;
        c->idx = s->nchans;
        c->mode = CHAN_URING;
        c->qid = q;
        c->fd = s->devfd;
        c->fd_block = -1;
        c->efd = -1;
        pthread_mutex_init(&c->mbox_lock, NULL);
        aw_init(&c->aw, (uint64_t)s->o.max_spin_us * 1000);
        s->chans[s->nchans++] = c;
        int rc = chan_ring_init(c, (unsigned)(depth * 4 + 64),
                                IORING_SETUP_SQE128 | IORING_SETUP_COOP_TASKRUN |
                                    IORING_SETUP_TASKRUN_FLAG);
        if (rc < 0)
            return rc;
        c->nslots = depth;
        c->slots = calloc((size_t)depth, sizeof(*c->slots));
        if (c->slots == NULL)
            return -ENOMEM;
        for (int i = 0; i < depth; i++) {
            struct vfs_req *r = &c->slots[i];
            r->chan = c;
            r->hdr = aligned_alloc(64, (sizeof(*r->hdr) + 63) & ~(size_t)63);
            r->buf_cap = VFS_MAX_PAGES * 4096;
            r->buf = aligned_alloc(4096, r->buf_cap);
            if (r->hdr == NULL || r->buf == NULL)
                return -ENOMEM;
            memset(r->hdr, 0, sizeof(*r->hdr));
        }
    }
    for (int i = 0; i < s->nchans; i++) {
        struct vfs_chan *c = s->chans[i];
        if (c->mode != CHAN_URING)
            continue;
        int rc = pthread_create(&c->thread, NULL, uring_main, c);
        if (rc)
            return -rc;
        c->thread_started = 1;
    }
    return 0;
}
