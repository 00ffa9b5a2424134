/* takeover.c — a daemon under a keeper (keeper/keeper.h): how it takes a
 * mount over (first start, after a crash, in a graceful upgrade), how it
 * drains for a successor, and how its channels park meanwhile.
 *
 * Draining. The old daemon stops reading: every channel thread parks at
 * its next chan_pause_point(); a thread asleep in read(2) or io_uring_enter
 * is woken by SIGURG (handler without SA_RESTART, so the syscall returns
 * EINTR), re-sent until it has parked, since a signal may land just before
 * the thread enters the syscall. A channel parks only once its own requests
 * are answered, so when all are parked nothing is in flight: the region is
 * sealed and handed over. Requests arriving meanwhile wait in the kernel.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fuse/engine_internal.h"
#include "fuse/forget_recovery.h"
#include "fuse/takeover.h"
#include "keeper/keeper_proto.h"

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_sigurg(int sig) { (void)sig; }

void takeover_install_signal(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigurg; /* no SA_RESTART: blocking syscalls return EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGURG, &sa, NULL);
}

/* ---- parking ---- */

static int chan_has_busy(struct vfs_chan *c)
{
    for (int i = 0; i < c->nslots; i++)
        if (atomic_load_explicit(&c->slots[i].busy, memory_order_acquire))
            return 1;
    return 0;
}

void chan_park(struct vfs_chan *c)
{
    struct vfs_session *s = c->s;
    /* answer what this channel has taken first; its backend I/O completes
     * on its own ring */
    while (chan_has_busy(c) && !atomic_load(&s->stopping)) {
        if (c->ring_ok && c->aio_inflight > 0) {
            struct io_uring_cqe *cqe;
            struct __kernel_timespec ts = { 0, 1000000 };
            chan_flush_sq(c);
            if (io_uring_wait_cqe_timeout(&c->ring, &cqe, &ts) == 0)
                chan_reap(c, cqe);
            while (io_uring_peek_cqe(&c->ring, &cqe) == 0)
                chan_reap(c, cqe);
        } else {
            usleep(100);
        }
    }
    pthread_mutex_lock(&s->park_lock);
    s->parked++;
    pthread_cond_broadcast(&s->park_cond);
    while (atomic_load(&s->paused) && !atomic_load(&s->stopping))
        pthread_cond_wait(&s->park_cond, &s->park_lock);
    s->parked--;
    pthread_mutex_unlock(&s->park_lock);
}

/* Channels that read requests themselves (all but uring queues). */
static int parkable(const struct vfs_chan *c)
{
    return c->thread_started && c->mode != CHAN_URING;
}

static int busy_anywhere(struct vfs_session *s)
{
    for (int i = 0; i < s->nchans; i++)
        if (chan_has_busy(s->chans[i]))
            return 1;
    return 0;
}

int takeover_pause(struct vfs_session *s, unsigned timeout_ms, char *why, size_t whylen)
{
    uint64_t deadline = mono_ms() + timeout_ms;
    int want = 0;
    for (int i = 0; i < s->nchans; i++)
        want += parkable(s->chans[i]);
    atomic_store(&s->paused, 1);
    for (;;) {
        pthread_mutex_lock(&s->park_lock);
        int parked = s->parked;
        pthread_mutex_unlock(&s->park_lock);
        if (parked >= want && !busy_anywhere(s))
            return 0;
        if (mono_ms() > deadline) {
            snprintf(why, whylen, "%d of %d channels still busy after %u ms", want - parked,
                     want, timeout_ms);
            takeover_resume(s);
            return -ETIMEDOUT;
        }
        /* wake sleepers; a signal that came too early is simply re-sent */
        for (int i = 0; i < s->nchans; i++)
            if (parkable(s->chans[i]))
                pthread_kill(s->chans[i]->thread, SIGURG);
        for (int i = 0; i < s->nchans; i++)
            if (s->chans[i]->efd >= 0) {
                uint64_t one = 1;
                ssize_t w = write(s->chans[i]->efd, &one, sizeof(one));
                (void)w;
            }
        pthread_mutex_lock(&s->park_lock);
        struct timespec ts = timespec_after_ms(CLOCK_REALTIME, 1);
        pthread_cond_timedwait(&s->park_cond, &s->park_lock, &ts);
        pthread_mutex_unlock(&s->park_lock);
    }
}

void takeover_resume(struct vfs_session *s)
{
    pthread_mutex_lock(&s->park_lock);
    atomic_store(&s->paused, 0);
    pthread_cond_broadcast(&s->park_cond);
    pthread_mutex_unlock(&s->park_lock);
    if (s->ho)
        ho_unseal(s->ho);
}

void takeover_release_parked(struct vfs_session *s)
{
    pthread_mutex_lock(&s->park_lock);
    pthread_cond_broadcast(&s->park_cond);
    pthread_mutex_unlock(&s->park_lock);
}

/* ---- attaching to the keeper ---- */

int vfs_session_attach_keeper(struct vfs_session *s, int keeper_fd)
{
    s->keeper_fd = keeper_fd;
    for (;;) {
        struct kp_msg m;
        int fds[KP_MAX_FDS];
        int nfds = KP_MAX_FDS;
        int rc = kp_recv(keeper_fd, &m, fds, &nfds);
        if (rc < 0) {
            LOG_ERROR("fuse", "keeper link: %s", strerror(-rc));
            return rc;
        }
        switch (m.type) {
        case KP_HELLO:
            if (nfds < 1 || m.arg < KP_MODE_FIRST || m.arg > KP_MODE_UPGRADE) {
                for (int i = 0; i < nfds; i++)
                    close(fds[i]);
                return -EPROTO;
            }
            s->devfd = fds[0];
            s->old_region_fd = nfds > 1 ? fds[1] : -1;
            s->keeper_mode = (int)m.arg;
            s->generation = m.val;
            free(s->mountpoint);
            s->mountpoint = strdup(m.text);
            if (s->mountpoint == NULL)
                return -ENOMEM;
            break;
        case KP_OLDCHANS:
            for (int i = 0; i < nfds; i++) {
                if (s->nold_chans < (int)(sizeof(s->old_chans) / sizeof(s->old_chans[0])))
                    s->old_chans[s->nold_chans++] = fds[i];
                else
                    close(fds[i]);
            }
            break;
        case KP_GO:
            if (s->devfd < 0)
                return -EPROTO;
            return 0;
        default:
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            LOG_WARN("fuse", "keeper link: unexpected %s", kp_type_name(m.type));
        }
    }
}

const char *vfs_session_mountpoint(const struct vfs_session *s) { return s->mountpoint; }

/* ---- restoring a predecessor's state ---- */

struct restore_ctx {
    struct vfs_session *s;
    struct vfs_restore rc;
    uint64_t nodes_failed, handles_failed;
};

static void restore_node(void *arg, uint64_t id, uint64_t nlookup, const void *key, size_t keylen)
{
    struct restore_ctx *c = arg;
    if (c->s->ops->restore_node &&
        c->s->ops->restore_node(c->s->fs, id, nlookup, key, keylen, &c->rc) < 0) {
        c->nodes_failed++;
        return;
    }
    if (c->s->ops->node_key) {
        /* the key now describes this daemon's copy, for the next successor */
        uint8_t k[HO_NODE_KEY_MAX];
        size_t n = c->s->ops->node_key(c->s->fs, id, k, sizeof(k));
        if (n)
            ho_node_set_key(c->s->ho, id, k, n);
    }
}

static void restore_handle(void *arg, uint64_t kfh, enum ho_fh_kind kind, uint64_t ino,
                           uint32_t flags, void *blob)
{
    struct restore_ctx *c = arg;
    uint64_t fh = 0;
    int rc = c->s->ops->restore_handle
                 ? c->s->ops->restore_handle(c->s->fs, ino, kind == HO_FH_DIR, (int)flags, blob,
                                             &c->rc, &fh)
                 : -ENOSYS;
    if (rc < 0) {
        /* the kernel keeps the fh; requests on it get EBADF */
        c->handles_failed++;
        ho_fh_release(c->s->ho, kfh);
        return;
    }
    ho_fh_set_backend(c->s->ho, kfh, fh);
}

/* Imports the image in fd into a fresh region and restores the backend. */
static int import_state(struct vfs_session *s, int fd, int need_sealed, uint32_t *old_pid,
                        char *why, size_t whylen)
{
    size_t len;
    const void *img = ho_map_fd(fd, &len);
    if (img == NULL) {
        snprintf(why, whylen, "cannot map the handoff state: %s", strerror(errno));
        return -EIO;
    }
    const char *reason = NULL;
    int rc = ho_import(s->ho, img, len, &s->imported, &reason);
    munmap((void *)img, len);
    if (rc < 0) {
        snprintf(why, whylen, "handoff state refused: %s", reason);
        return rc;
    }
    if (need_sealed && !s->imported.sealed) {
        snprintf(why, whylen, "handoff state refused: the snapshot is not sealed");
        return -EPROTO;
    }
    s->proto_minor = s->imported.init.proto_minor;
    s->flags = s->imported.init.flags;
    s->active = (enum vfs_transport)s->imported.init.transport;
    if (old_pid)
        *old_pid = s->imported.owner_pid;
    return 0;
}

static void restore_backend(struct vfs_session *s, int old_pidfd)
{
    struct restore_ctx c = { .s = s, .rc = { .old_pidfd = old_pidfd } };
    uint64_t t0 = mono_ms();
    ho_node_foreach(s->ho, restore_node, &c);
    ho_fh_foreach(s->ho, restore_handle, &c);
    LOG_INFO("fuse", "restored %llu nodes (%llu failed), %llu handles (%llu failed) from "
                     "handoff format v%u in %llu ms",
             (unsigned long long)s->imported.nodes, (unsigned long long)c.nodes_failed,
             (unsigned long long)s->imported.handles, (unsigned long long)c.handles_failed,
             s->imported.version, (unsigned long long)(mono_ms() - t0));
}

static int new_region(struct vfs_session *s)
{
    struct ho_limits lim = { .nodes = s->o.handoff_nodes, .handles = s->o.handoff_handles };
    s->ho = ho_create(&lim);
    if (s->ho == NULL)
        return -errno;
    ho_set_owner(s->ho, (uint32_t)getpid(), s->generation);
    return 0;
}

int takeover_before_init(struct vfs_session *s)
{
    return new_region(s);
}

void takeover_after_init(struct vfs_session *s)
{
    struct ho_init init = { s->proto_minor, (uint32_t)s->active, s->flags };
    ho_set_init(s->ho, &init);
}

int takeover_restart(struct vfs_session *s)
{
    char why[256];
    if (s->old_region_fd < 0) {
        LOG_ERROR("fuse", "restart without the previous daemon's state: nodes it handed out "
                          "will answer ESTALE");
        return -EPROTO;
    }
    int rc = import_state(s, s->old_region_fd, 0, NULL, why, sizeof(why));
    close(s->old_region_fd);
    s->old_region_fd = -1;
    if (rc < 0) {
        LOG_ERROR("fuse", "%s", why);
        return rc;
    }
    restore_backend(s, -1);
    fr_begin(s); /* before serving: no reply of ours is in flight yet */
    return 0;
}

void takeover_resend(struct vfs_session *s)
{
    /* every request the dead daemon had read comes back, marked
     * FUSE_UNIQUE_RESEND; its channel fds (held by the keeper) kept them
     * from being ended */
    if (s->flags & FUSE_HAS_RESEND) {
        struct fuse_out_header oh = { .len = sizeof(oh), .error = VFS_FUSE_NOTIFY_RESEND };
        if (write(s->devfd, &oh, sizeof(oh)) < 0)
            LOG_WARN("fuse", "FUSE_NOTIFY_RESEND: %s", strerror(errno));
        else
            LOG_INFO("fuse", "asked the kernel to resend the requests of the previous daemon "
                             "(%zu of them had reached its backend)", s->imported.nrecs);
    } else {
        LOG_WARN("fuse", "kernel without FUSE_HAS_RESEND: requests the previous daemon held "
                         "fail with ECONNABORTED");
    }
    for (int i = 0; i < s->nold_chans; i++)
        close(s->old_chans[i]);
    s->nold_chans = 0;
    if (s->keeper_fd >= 0)
        kp_send(s->keeper_fd, KP_DROP_OLD, 0, 0, NULL, NULL, 0);
}

int takeover_upgrade(struct vfs_session *s)
{
    kp_send(s->keeper_fd, KP_PREPARED, 0, 0, NULL, NULL, 0);
    for (;;) {
        struct kp_msg m;
        int fds[KP_MAX_FDS];
        int nfds = KP_MAX_FDS;
        int rc = kp_recv(s->keeper_fd, &m, fds, &nfds);
        if (rc < 0) {
            LOG_ERROR("fuse", "keeper link lost while waiting to take over: %s", strerror(-rc));
            return rc;
        }
        if (m.type != KP_TAKEOVER || nfds != 1) {
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            continue;
        }
        char why[256];
        uint32_t old_pid = 0;
        rc = import_state(s, fds[0], 1, &old_pid, why, sizeof(why));
        close(fds[0]);
        if (rc < 0) {
            LOG_ERROR("fuse", "%s", why);
            kp_send(s->keeper_fd, KP_REFUSED, 0, 0, why, NULL, 0);
            return rc;
        }
        int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)m.val, 0);
        restore_backend(s, pidfd);
        if (pidfd >= 0)
            close(pidfd);
        return 0;
    }
}

void takeover_announce(struct vfs_session *s, int nchans)
{
    if (s->keeper_fd < 0)
        return;
    int fd = ho_fd(s->ho);
    kp_send(s->keeper_fd, KP_REGION, 0, 0, NULL, &fd, 1);
    /* the keeper holds a duplicate of every clone, so a crash cannot end
     * the requests on them before the successor asks for a resend */
    for (int i = 0; i < nchans; i++) {
        struct vfs_chan *c = s->chans[i];
        int fds[2];
        int n = 0;
        if (c->fd >= 0 && c->fd != s->devfd)
            fds[n++] = c->fd;
        if (c->fd_block >= 0)
            fds[n++] = c->fd_block;
        if (n)
            kp_send(s->keeper_fd, KP_CHAN, 0, 0, NULL, fds, n);
    }
    char text[128];
    snprintf(text, sizeof(text), "transport=%s channels=%d", vfs_transport_name(s->active), nchans);
    kp_send(s->keeper_fd, KP_READY, 0, 0, text, NULL, 0);
}

/* One message from the keeper while serving. Returns 1 when the session
 * should end (handed over). */
int takeover_on_keeper(struct vfs_session *s)
{
    struct kp_msg m;
    int fds[KP_MAX_FDS];
    int nfds = KP_MAX_FDS;
    int rc = kp_recv(s->keeper_fd, &m, fds, &nfds);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    if (rc == -ECONNRESET) {
        LOG_WARN("fuse", "the keeper is gone; serving on without it (no restart after a crash)");
        close(s->keeper_fd);
        s->keeper_fd = -1;
        return 0;
    }
    if (rc < 0)
        return 0;
    switch (m.type) {
    case KP_DRAIN: {
        uint64_t t0 = mono_ms();
        char why[200];
        rc = takeover_pause(s, 10000, why, sizeof(why));
        if (rc < 0) {
            LOG_WARN("fuse", "drain for upgrade failed: %s; serving on", why);
            kp_send(s->keeper_fd, KP_FAILED, 0, 0, why, NULL, 0);
            break;
        }
        fr_settle(s); /* a successor must not inherit lookups the kernel dropped */
        ho_seal(s->ho);
        LOG_INFO("fuse", "drained for upgrade in %llu ms: %llu nodes, %llu handles",
                 (unsigned long long)(mono_ms() - t0), (unsigned long long)ho_node_count(s->ho),
                 (unsigned long long)ho_fh_count(s->ho));
        int fd = ho_fd(s->ho);
        kp_send(s->keeper_fd, KP_DRAINED, 0, 0, NULL, &fd, 1);
        break;
    }
    case KP_RESUME:
        LOG_INFO("fuse", "upgrade cancelled: resuming");
        takeover_resume(s);
        break;
    case KP_EXIT:
        LOG_INFO("fuse", "a successor serves the mount: exiting without unmounting");
        atomic_store(&s->handed_over, 1);
        return 1;
    case KP_CTL_STATUS: {
        char text[KP_TEXT_MAX];
        uint64_t nreq = 0;
        for (int i = 0; i < s->nchans; i++)
            nreq += __atomic_load_n(&s->chans[i]->nreq, __ATOMIC_RELAXED);
        snprintf(text, sizeof(text),
                 "daemon_pid=%d transport=%s channels=%d nodes=%llu handles=%llu requests=%llu",
                 (int)getpid(), vfs_transport_name(s->active), s->nchans,
                 (unsigned long long)ho_node_count(s->ho), (unsigned long long)ho_fh_count(s->ho),
                 (unsigned long long)nreq);
        kp_send(s->keeper_fd, KP_CTL_REPLY, 0, 0, text, NULL, 0);
        break;
    }
    default:
        LOG_WARN("fuse", "keeper link: unexpected %s", kp_type_name(m.type));
    }
    return 0;
}

void takeover_goodbye(struct vfs_session *s)
{
    if (s->keeper_fd >= 0 && !atomic_load(&s->handed_over))
        kp_send(s->keeper_fd, KP_UNMOUNTED, 0, 0, NULL, NULL, 0);
}
