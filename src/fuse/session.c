/* session.c — a mount's lifetime: open and mount /dev/fuse, negotiate
 * INIT, start the transport's channels, serve, tear down. */
#include "fuse/session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fuse/engine_internal.h"
#include "fuse/forget_recovery.h"
#include "fuse/mount.h"
#include "fuse/takeover.h"
#include "keeper/keeper_proto.h"

void vfs_session_opts_default(struct vfs_session_opts *o)
{
    *o = (struct vfs_session_opts){
        .transport = VFS_TRANSPORT_XFUSE,
        .classic_share = -1,
        .threads = 0,
        .queue_depth = 0,
        .max_spin_us = 50,
        .pin_threads = 1,
        .writeback_cache = 0,
        .allow_other = 1,
        .default_permissions = 1,
        .fsname = "valorfs",
        .subtype = "valorfs",
    };
}

static const char *const transport_names[] = { "classic", "xfuse", "uring" };

const char *vfs_transport_name(enum vfs_transport t)
{
    return (unsigned)t < ARRAY_SIZE(transport_names) ? transport_names[t] : "?";
}

int vfs_transport_parse(const char *str, enum vfs_transport *t)
{
    for (unsigned i = 0; i < ARRAY_SIZE(transport_names); i++)
        if (strcmp(str, transport_names[i]) == 0) {
            *t = (enum vfs_transport)i;
            return 0;
        }
    return -EINVAL;
}

struct vfs_session *vfs_session_new(const struct vfs_ops *ops, void *fs,
                                    const struct vfs_session_opts *o)
{
    struct vfs_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->ops = ops;
    s->fs = fs;
    s->o = *o;
    s->devfd = -1;
    s->keeper_fd = -1;
    s->prefault_left = VFS_PREFAULT_BUDGET;
    s->old_region_fd = -1;
    pthread_mutex_init(&s->park_lock, NULL);
    pthread_cond_init(&s->park_cond, NULL);
    atomic_init(&s->xfuse_leader, -1);
    if (pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

uint32_t vfs_session_proto_minor(const struct vfs_session *s) { return s->proto_minor; }
uint64_t vfs_session_flags(const struct vfs_session *s) { return s->flags; }
enum vfs_transport vfs_session_active_transport(const struct vfs_session *s) { return s->active; }

int vfs_mount(const struct vfs_session_opts *o, const char *mountpoint, int *used_fusermount)
{
    char opts[256];
    snprintf(opts, sizeof(opts), "%s%s", o->default_permissions ? "default_permissions" : "",
             o->allow_other ? (o->default_permissions ? ",allow_other" : "allow_other") : "");
    return fuse_mount_dir(mountpoint, o->fsname, o->subtype, opts, used_fusermount);
}

int vfs_session_mount(struct vfs_session *s, const char *mountpoint)
{
    int fd = vfs_mount(&s->o, mountpoint, &s->mounted_with_fusermount);
    if (fd < 0)
        return fd;
    s->devfd = fd;
    s->mountpoint = strdup(mountpoint);
    return s->mountpoint ? 0 : -ENOMEM;
}

/* ---- INIT ---- */

static int write_reply(int fd, uint64_t unique, int error, const void *p, size_t len)
{
    struct fuse_out_header oh = { .len = (uint32_t)(sizeof(oh) + len), .error = -error,
                                  .unique = unique };
    struct iovec iov[2] = { { &oh, sizeof(oh) }, { (void *)p, len } };
    return writev(fd, iov, len ? 2 : 1) < 0 ? -errno : 0;
}

static int negotiate_init(struct vfs_session *s)
{
    void *buf = aligned_alloc(4096, VFS_DEV_BUF_SIZE);
    if (buf == NULL)
        return -ENOMEM;
    int rc = -EPROTO;
    for (;;) {
        ssize_t n = read(s->devfd, buf, VFS_DEV_BUF_SIZE);
        if (n < 0 && (errno == EINTR || errno == ENOENT))
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -ENODEV;
            break;
        }
        struct fuse_msg m;
        int drc = fuse_decode_dev(buf, (size_t)n, &m);
        if (drc < 0 || m.opcode != FUSE_INIT) {
            LOG_WARN("fuse", "expected INIT, got opcode %u", m.opcode);
            if (m.unique)
                write_reply(s->devfd, m.unique, EIO, NULL, 0);
            continue;
        }
        struct fuse_init_in in;
        memset(&in, 0, sizeof(in));
        memcpy(&in, m.op, MIN(m.op_len, sizeof(in)));
        if (in.major != VFS_FUSE_MAJOR || in.minor < 31) {
            /* major > 7: answer with ours and wait for a retry; < 7.31: refuse */
            struct vfs_fuse_init_out out = { .major = VFS_FUSE_MAJOR, .minor = VFS_FUSE_MINOR };
            if (in.major > VFS_FUSE_MAJOR) {
                write_reply(s->devfd, m.unique, 0, &out, sizeof(out));
                continue;
            }
            LOG_ERROR("fuse", "kernel FUSE protocol %u.%u is too old (need 7.31)", in.major, in.minor);
            write_reply(s->devfd, m.unique, EPROTO, NULL, 0);
            break;
        }
        uint64_t kflags = in.flags;
        if (in.flags & FUSE_INIT_EXT)
            kflags |= (uint64_t)in.flags2 << 32;
        s->kernel_flags = kflags;
        s->proto_minor = MIN(in.minor, (uint32_t)VFS_FUSE_MINOR);

        uint64_t want = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES |
                        FUSE_AUTO_INVAL_DATA | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO |
                        FUSE_ASYNC_DIO | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES |
                        FUSE_CACHE_SYMLINKS | FUSE_INIT_EXT | FUSE_EXPORT_SUPPORT |
                        FUSE_DIRECT_IO_ALLOW_MMAP | FUSE_HAS_RESEND;
        /* FUSE_HANDLE_KILLPRIV(_V2) stays off: the kernel then clears
         * setuid/setgid on write/truncate/chown itself (via SETATTR), which a
         * daemon running as root would otherwise never do */
        if (s->o.writeback_cache)
            want |= FUSE_WRITEBACK_CACHE;
        s->active = s->o.transport;
        if (s->o.transport == VFS_TRANSPORT_URING && s->keeper_fd >= 0) {
            /* Linux 6.18 cannot hand io_uring queues to another process
             * without losing requests (docs/uring-handoff-findings.md): a
             * kept mount serves /dev/fuse, where NOTIFY_RESEND works */
            s->active = VFS_TRANSPORT_XFUSE;
            LOG_WARN("fuse", "transport uring under the keeper: FUSE-over-io_uring queues do not "
                             "survive a daemon change on this kernel (requests in their entries "
                             "are stranded); serving with xfuse so upgrades and restarts lose "
                             "nothing. Mount with --no-keeper to use uring.");
        } else if (s->o.transport == VFS_TRANSPORT_URING) {
            if (kflags & FUSE_OVER_IO_URING) {
                want |= FUSE_OVER_IO_URING;
            } else {
                s->active = VFS_TRANSPORT_XFUSE;
                LOG_WARN("fuse", "transport uring unavailable: the kernel did not offer "
                                 "FUSE_OVER_IO_URING (needs Linux >= 6.14 and "
                                 "'echo Y > /sys/module/fuse/parameters/enable_uring'); "
                                 "falling back to xfuse");
            }
        }
        s->flags = kflags & want;

        struct vfs_fuse_init_out out;
        memset(&out, 0, sizeof(out));
        out.major = VFS_FUSE_MAJOR;
        out.minor = s->proto_minor;
        out.max_readahead = in.max_readahead;
        out.flags = (uint32_t)s->flags;
        out.flags2 = (uint32_t)(s->flags >> 32);
        out.max_background = 64;
        out.congestion_threshold = 48;
        out.max_write = VFS_MAX_WRITE;
        out.time_gran = 1;
        out.max_pages = VFS_MAX_PAGES;
        rc = write_reply(s->devfd, m.unique, 0, &out, sizeof(out));
        /* the kernel applied min(its bdi read-ahead, ours) while taking the
         * reply; only now can a larger window stick */
        if (rc == 0 && s->o.read_ahead_kb && s->mountpoint) {
            int ra = fuse_set_read_ahead(fuse_mount_conn_id(s->mountpoint), s->o.read_ahead_kb);
            if (ra < 0)
                LOG_WARN("fuse", "cannot set read-ahead to %u KiB: %s", s->o.read_ahead_kb,
                         strerror(-ra));
        }
        if (rc == 0)
            LOG_INFO("fuse", "INIT: protocol 7.%u (kernel 7.%u), max_write=%u, flags=0x%llx, "
                             "io_uring=%s, writeback_cache=%s",
                     s->proto_minor, in.minor, VFS_MAX_WRITE, (unsigned long long)s->flags,
                     (s->flags & FUSE_OVER_IO_URING) ? "on" : "off",
                     (s->flags & FUSE_WRITEBACK_CACHE) ? "on" : "off");
        break;
    }
    free(buf);
    return rc;
}

/* ---- channels ---- */

static struct vfs_chan *chan_new_dev(struct vfs_session *s, enum chan_mode mode, int nslots)
{
    struct vfs_chan *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->s = s;
    c->idx = s->nchans;
    c->mode = mode;
    c->efd = -1;
    c->fd_block = -1;
    c->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    pthread_mutex_init(&c->mbox_lock, NULL);
    uint32_t master = (uint32_t)s->devfd;
    if (c->fd < 0 || ioctl(c->fd, FUSE_DEV_IOC_CLONE, &master) < 0) {
        LOG_ERROR("fuse", "clone /dev/fuse: %s", strerror(errno));
        chan_free(c);
        return NULL;
    }
    if (mode == CHAN_XFUSE) {
        c->fd_block = open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (c->fd_block < 0 || ioctl(c->fd_block, FUSE_DEV_IOC_CLONE, &master) < 0) {
            LOG_ERROR("fuse", "clone /dev/fuse: %s", strerror(errno));
            chan_free(c);
            return NULL;
        }
    }
    aw_init(&c->aw, (uint64_t)s->o.max_spin_us * 1000);
    if (chan_ring_init(c, (unsigned)(nslots * 2 + 8), 0) < 0) {
        chan_free(c);
        return NULL;
    }
    c->nslots = nslots;
    c->slots = calloc((size_t)nslots, sizeof(*c->slots));
    if (c->slots == NULL) {
        chan_free(c);
        return NULL;
    }
    for (int i = 0; i < nslots; i++) {
        c->slots[i].chan = c;
        c->slots[i].buf_cap = VFS_DEV_BUF_SIZE;
        c->slots[i].buf = aligned_alloc(4096, VFS_DEV_BUF_SIZE);
        if (c->slots[i].buf == NULL) {
            c->nslots = i;
            chan_free(c);
            return NULL;
        }
        /* Under a keeper, fault the pages in now. The kernel copies a request
         * into this buffer with get_user_pages; if a page is not present and
         * the daemon is being killed (crash restart), that slow path fails
         * and the kernel ends the request with EIO instead of keeping it for
         * the successor. Present pages take the fast path, which cannot fail.
         * Bounded (VFS_PREFAULT_BUDGET): a default mount's slots all fit;
         * extreme channel x depth settings keep the rest lazy. */
        if (s->keeper_fd >= 0 && s->prefault_left >= VFS_DEV_BUF_SIZE) {
            memset(c->slots[i].buf, 0, VFS_DEV_BUF_SIZE);
            s->prefault_left -= VFS_DEV_BUF_SIZE;
        }
    }
    s->chans[s->nchans++] = c;
    return c;
}

static int start_channels(struct vfs_session *s)
{
    int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (s->active == VFS_TRANSPORT_URING) {
        /* the /dev/fuse reader beside the rings: FORGET, INTERRUPT, and
         * whatever comes before every queue is registered */
        struct vfs_chan *rd = chan_new_dev(s, CHAN_CLASSIC, 1);
        if (rd == NULL)
            return -ENOMEM;
        int rc = chan_uring_setup(s);
        if (rc < 0)
            return rc;
        rc = pthread_create(&rd->thread, NULL, chan_dev_reader_main, rd);
        if (rc)
            return -rc;
        rd->thread_started = 1;
        LOG_INFO("fuse", "transport=uring queues=%d depth=%d pinned=%s max_spin_us=%d",
                 s->nchans - 1, s->o.queue_depth > 0 ? s->o.queue_depth : 8,
                 s->o.pin_threads ? "yes" : "no", s->o.max_spin_us);
        return 0;
    }
    int n = s->o.threads > 0 ? s->o.threads : ncpu;
    if (n > VFS_MAX_CHANNELS)
        n = VFS_MAX_CHANNELS;
    double a = s->o.classic_share;
    if (a < 0)
        a = s->active == VFS_TRANSPORT_CLASSIC ? 1.0 : 0.0;
    int nclassic = (int)(a * n + 0.5);
    int depth = s->o.queue_depth > 0 ? s->o.queue_depth : 16;
    for (int i = 0; i < n; i++) {
        enum chan_mode mode = i < nclassic ? CHAN_CLASSIC : CHAN_XFUSE;
        struct vfs_chan *c = chan_new_dev(s, mode, mode == CHAN_CLASSIC ? 1 : depth);
        if (c == NULL)
            return -ENOMEM;
        int rc = chan_dev_start(c);
        if (rc < 0)
            return rc;
    }
    LOG_INFO("fuse", "transport=%s channels=%d classic=%d xfuse=%d (a=%.2f) depth=%d max_spin_us=%d",
             vfs_transport_name(s->active), n, nclassic, n - nclassic, a, depth, s->o.max_spin_us);
    return 0;
}

static void wake_all(struct vfs_session *s)
{
    for (int i = 0; i < s->nchans; i++) {
        struct vfs_chan *c = s->chans[i];
        if (c->efd >= 0) {
            uint64_t one = 1;
            ssize_t w = write(c->efd, &one, sizeof(one));
            (void)w;
        }
    }
}

/* Take the mount over as this daemon's mode says; then the backend is
 * ready and the INIT state known. */
static int take_over(struct vfs_session *s)
{
    int rc = takeover_before_init(s);
    if (rc < 0) {
        LOG_ERROR("fuse", "handoff region: %s", strerror(-rc));
        return rc;
    }
    if (s->keeper_fd < 0 || s->keeper_mode == KP_MODE_FIRST) {
        rc = negotiate_init(s);
        if (rc < 0) {
            LOG_ERROR("fuse", "INIT failed: %s", strerror(-rc));
            return rc;
        }
        takeover_after_init(s);
        return s->ops->init ? s->ops->init(s->fs, s) : 0;
    }
    /* the backend comes up before the old daemon stops (upgrade) or
     * before the kernel resends (restart), to keep the stall short */
    if (s->ops->init && (rc = s->ops->init(s->fs, s)) < 0)
        return rc;
    if (s->keeper_mode == KP_MODE_UPGRADE)
        return takeover_upgrade(s);
    rc = takeover_restart(s);
    if (rc < 0)
        LOG_WARN("fuse", "continuing with empty state after a failed import");
    return 0;
}

static void log_node(void *arg, uint64_t id, uint64_t nlookup, const void *key, size_t keylen)
{
    (void)arg;
    (void)key;
    (void)keylen;
    LOG_DEBUG("fuse", "node %llu: %llu lookups held", (unsigned long long)id,
              (unsigned long long)nlookup);
}

int vfs_session_run(struct vfs_session *s)
{
    int conn_id = fuse_mount_conn_id(s->mountpoint);
    takeover_install_signal();
    int rc = take_over(s);
    if (rc < 0)
        return rc;
    if (s->keeper_mode == KP_MODE_RESTART)
        takeover_resend(s);
    rc = start_channels(s);
    if (rc < 0) {
        LOG_ERROR("fuse", "starting channels: %s", strerror(-rc));
        atomic_store(&s->stopping, 1);
    } else {
        takeover_announce(s, s->nchans);
        /* wait for a stop request, the connection to end, or the keeper */
        while (!atomic_load(&s->stopping) && !atomic_load(&s->exited)) {
            struct pollfd p[2] = { { .fd = s->stop_pipe[0], .events = POLLIN },
                                   { .fd = s->keeper_fd, .events = POLLIN } };
            if (poll(p, s->keeper_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
                break;
            char tmp[16];
            while (read(s->stop_pipe[0], tmp, sizeof(tmp)) > 0) {
            }
            if (s->keeper_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP)) && takeover_on_keeper(s))
                break;
        }
    }
    int was_exited = atomic_load(&s->exited);
    int handed_over = atomic_load(&s->handed_over);
    atomic_store(&s->stopping, 1);
    takeover_release_parked(s);
    if (!was_exited && !handed_over && s->mountpoint) {
        LOG_INFO("fuse", "unmounting %s", s->mountpoint);
        fuse_unmount_dir(s->mountpoint, s->mounted_with_fusermount);
        /* readers blocked in read(2) return even if the detached mount
         * is still referenced by open files */
        fuse_abort_conn(conn_id);
    }
    wake_all(s);
    for (int i = 0; i < s->nchans; i++) {
        struct vfs_chan *c = s->chans[i];
        if (!c->thread_started)
            continue;
        /* a reader in read(2) returns on abort; after a handover the
         * readers are parked, or woken from a sleep by SIGURG */
        if (handed_over && c->mode != CHAN_URING)
            pthread_kill(c->thread, SIGURG);
        pthread_join(c->thread, NULL);
    }
    static const char *const mode_names[] = { "classic", "xfuse", "uring" };
    for (int i = 0; i < s->nchans; i++) {
        struct vfs_chan *c = s->chans[i];
        LOG_INFO("fuse", "channel %d mode=%s requests=%llu spin_hits=%llu spin_misses=%llu",
                 c->idx, mode_names[c->mode], (unsigned long long)c->nreq,
                 (unsigned long long)c->aw.hits, (unsigned long long)c->aw.misses);
    }
    if (s->ho) {
        LOG_INFO("fuse", "lookup accounting at exit: %llu nodes held by the kernel, %llu open handles",
                 (unsigned long long)ho_node_count(s->ho), (unsigned long long)ho_fh_count(s->ho));
        if (log_current_level >= LOG_LVL_DEBUG)
            ho_node_foreach(s->ho, log_node, NULL);
    }
    if (s->ops->destroy)
        s->ops->destroy(s->fs);
    takeover_goodbye(s);
    return rc < 0 ? rc : 0;
}

void vfs_session_stop(struct vfs_session *s)
{
    atomic_store(&s->stopping, 1);
    ssize_t w = write(s->stop_pipe[1], "s", 1);
    (void)w;
}

void vfs_session_quiesce(struct vfs_session *s)
{
    if (s)
        fr_end(s);
}

void vfs_session_free(struct vfs_session *s)
{
    if (s == NULL)
        return;
    fr_end(s); /* its timer may still settle through the backend */
    for (int i = 0; i < s->nchans; i++)
        chan_free(s->chans[i]);
    if (s->devfd >= 0)
        close(s->devfd);
    if (s->keeper_fd >= 0)
        close(s->keeper_fd);
    ho_free(s->ho);
    free(s->imported.recs);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    free(s->mountpoint);
    free(s);
}

/* ---- notifications ---- */

static int notify(struct vfs_session *s, int code, const struct iovec *iov, int n)
{
    struct fuse_out_header oh = { .error = code, .unique = 0 };
    struct iovec all[4];
    size_t len = sizeof(oh);
    all[0] = (struct iovec){ &oh, sizeof(oh) };
    for (int i = 0; i < n && i < 3; i++) {
        all[i + 1] = iov[i];
        len += iov[i].iov_len;
    }
    oh.len = (uint32_t)len;
    return writev(s->devfd, all, n + 1) < 0 ? -errno : 0;
}

int vfs_notify_inval_inode(struct vfs_session *s, uint64_t ino, int64_t off, int64_t len)
{
    struct fuse_notify_inval_inode_out o = { .ino = ino, .off = off, .len = len };
    struct iovec iov = { &o, sizeof(o) };
    return notify(s, FUSE_NOTIFY_INVAL_INODE, &iov, 1);
}

int vfs_notify_inval_entry(struct vfs_session *s, uint64_t parent, const char *name)
{
    struct fuse_notify_inval_entry_out o = { .parent = parent, .namelen = (uint32_t)strlen(name) };
    struct iovec iov[2] = { { &o, sizeof(o) }, { (void *)name, o.namelen + 1 } };
    return notify(s, FUSE_NOTIFY_INVAL_ENTRY, iov, 2);
}
