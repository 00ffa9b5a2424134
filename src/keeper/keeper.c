/* keeper.c — see keeper.h. One poll loop: the signalfd (children, stop),
 * the control socket, and the sockets of the serving daemon and of an
 * upgrade candidate. */
#include "keeper/keeper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <linux/close_range.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fuse/mount.h"
#include "keeper/keeper_proto.h"

#define MAX_HELD 256

struct daemon {
    pid_t pid;
    int sock;
    int chans[MAX_HELD];
    int nchans;
    int region; /* its live handoff region */
    int ready;
    uint64_t ready_ns; /* when it said READY */
    int clean;  /* sent UNMOUNTED */
    int mode;
    uint64_t gen;
};

struct keeper {
    const struct keeper_opts *o;
    int conn_id;
    char ctl_path[108];
    int ctl_fd, sig_fd;
    struct daemon cur, next, old; /* serving; upgrade candidate; retiring/dead */
    /* upgrade in progress */
    int up_client;     /* control connection waiting for the answer, or -1 */
    unsigned up_flags;
    uint64_t up_start_ns;
    int status_client; /* control connection waiting for a status, or -1 */
    uint64_t gen, restarts, upgrades;
    uint64_t last_crash_ns;
    unsigned backoff_ms;
    int first_failed_status;
    int stopping;
};

static void daemon_reset(struct daemon *d)
{
    memset(d, 0, sizeof(*d));
    d->pid = -1;
    d->sock = -1;
    d->region = -1;
}

static void daemon_close_held(struct daemon *d)
{
    for (int i = 0; i < d->nchans; i++)
        close(d->chans[i]);
    d->nchans = 0;
    if (d->region >= 0)
        close(d->region);
    d->region = -1;
}

static void daemon_close(struct daemon *d)
{
    daemon_close_held(d);
    if (d->sock >= 0)
        close(d->sock);
    daemon_reset(d);
}

static void ctl_reply(int *client, const char *text, int ok)
{
    if (*client < 0)
        return;
    kp_send(*client, KP_CTL_REPLY, ok ? 0 : 1, 0, text, NULL, 0);
    close(*client);
    *client = -1;
}

/* fork + exec the daemon; hands it /dev/fuse (and, for a restart, what
 * the dead one left). */
static int spawn(struct keeper *k, struct daemon *d, int mode, const char *binary,
                 const struct daemon *dead)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    int argc = 0;
    while (k->o->daemon_argv[argc])
        argc++;
    char **argv = calloc((size_t)argc + 2, sizeof(char *));
    if (argv == NULL) {
        close(sv[0]);
        close(sv[1]);
        return -ENOMEM;
    }
    for (int i = 0; i < argc; i++)
        argv[i] = k->o->daemon_argv[i];
    if (binary)
        argv[0] = (char *)binary;
    argv[argc] = (char *)"--keeper-fd=3";
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        free(argv);
        close(sv[0]);
        close(sv[1]);
        return -e;
    }
    if (pid == 0) {
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        if (dup2(sv[1], KP_DAEMON_FD) < 0)
            _exit(126);
        if (k->o->detached)
            setenv("VALORFS_DETACHED", "1", 1); /* no terminal: the daemon drops stderr once up */
        execv(argv[0], argv);
        fprintf(stderr, "valorfs-keeper: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    free(argv);
    close(sv[1]);
    daemon_reset(d);
    d->pid = pid;
    d->sock = sv[0];
    d->mode = mode;
    d->gen = ++k->gen;
    int fds[2] = { k->o->dev_fd, dead ? dead->region : -1 };
    int rc = kp_send(d->sock, KP_HELLO, (uint32_t)mode, d->gen, k->o->mountpoint, fds,
                     (dead && dead->region >= 0) ? 2 : 1);
    for (int i = 0; rc == 0 && dead && i < dead->nchans; i += KP_MAX_FDS)
        rc = kp_send(d->sock, KP_OLDCHANS, 0, 0, NULL, dead->chans + i,
                     MIN(KP_MAX_FDS, dead->nchans - i));
    if (rc == 0)
        rc = kp_send(d->sock, KP_GO, 0, 0, NULL, NULL, 0);
    LOG_INFO("keeper", "started daemon pid=%d generation=%llu mode=%s%s%s", (int)pid,
             (unsigned long long)d->gen,
             mode == KP_MODE_FIRST ? "first" : mode == KP_MODE_RESTART ? "restart" : "upgrade",
             binary ? " binary=" : "", binary ? binary : "");
    return rc;
}

static void restart_after_crash(struct keeper *k)
{
    /* the dead daemon's channels and region stay open until the new one
     * has resent their requests (DROP_OLD) */
    daemon_close_held(&k->old);
    if (k->old.sock >= 0)
        close(k->old.sock);
    k->old = k->cur;
    if (k->old.sock >= 0)
        close(k->old.sock);
    k->old.sock = -1;
    k->old.pid = -1;
    daemon_reset(&k->cur);
    uint64_t t = now_ns();
    /* a daemon that dies before it has served a while is restarted ever
     * more slowly (a crash loop must not eat the machine); one that served
     * is restarted at once */
    int served = k->old.ready && t - k->old.ready_ns > 200000000ull;
    k->backoff_ms = served ? 0 : MIN(MAX(k->backoff_ms * 2, 50u), 5000u);
    k->last_crash_ns = t;
    if (k->backoff_ms) {
        LOG_WARN("keeper", "daemon keeps dying; waiting %u ms before the restart", k->backoff_ms);
        usleep(k->backoff_ms * 1000u);
    }
    k->restarts++;
    int rc = spawn(k, &k->cur, KP_MODE_RESTART, NULL, &k->old);
    if (rc < 0)
        LOG_ERROR("keeper", "cannot restart the daemon: %s", strerror(-rc));
}

static void abort_upgrade(struct keeper *k, const char *why)
{
    LOG_WARN("keeper", "upgrade aborted: %s", why);
    if (k->next.pid > 0)
        kill(k->next.pid, SIGKILL);
    /* reaped in on_child; its sock and held fds go now */
    daemon_close_held(&k->next);
    if (k->next.sock >= 0)
        close(k->next.sock);
    k->next.sock = -1;
    if (k->cur.sock >= 0)
        kp_send(k->cur.sock, KP_RESUME, 0, 0, NULL, NULL, 0);
    char msg[KP_TEXT_MAX];
    snprintf(msg, sizeof(msg), "upgrade failed: %.380s; the running daemon (pid %d) keeps serving",
             why, (int)k->cur.pid);
    ctl_reply(&k->up_client, msg, 0);
}

/* A copy of the sealed region with one byte flipped (test hook). */
static int corrupt_copy(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    int c = memfd_create("valorfs-handoff-corrupt", MFD_CLOEXEC);
    if (c < 0)
        return -1;
    off_t off = 0;
    while (off < st.st_size) {
        ssize_t n = sendfile(c, fd, &off, (size_t)(st.st_size - off));
        if (n <= 0)
            break;
    }
    unsigned char b;
    off_t pos = 33; /* the generation field: covered by the checksum only */
    if (pread(c, &b, 1, pos) == 1) {
        b ^= 0x5a;
        if (pwrite(c, &b, 1, pos) != 1)
            LOG_WARN("keeper", "corrupting the copy failed");
    }
    return c;
}

static void on_msg(struct keeper *k, struct daemon *d)
{
    struct kp_msg m;
    int fds[KP_MAX_FDS];
    int nfds = KP_MAX_FDS;
    int rc = kp_recv(d->sock, &m, fds, &nfds);
    if (rc == -ECONNRESET || rc == -EPROTO) {
        if (rc == -EPROTO)
            LOG_WARN("keeper", "malformed message from pid %d", (int)d->pid);
        close(d->sock); /* the exit status arrives through SIGCHLD */
        d->sock = -1;
        return;
    }
    if (rc < 0)
        return;
    switch (m.type) {
    case KP_REGION:
        if (nfds == 1) {
            if (d->region >= 0)
                close(d->region);
            d->region = fds[0];
            nfds = 0;
        }
        break;
    case KP_CHAN:
        for (int i = 0; i < nfds; i++) {
            if (d->nchans < MAX_HELD)
                d->chans[d->nchans++] = fds[i];
            else
                close(fds[i]);
        }
        nfds = 0;
        break;
    case KP_DROP_OLD:
        daemon_close_held(&k->old);
        break;
    case KP_UNMOUNTED:
        d->clean = 1;
        break;
    case KP_READY:
        d->ready = 1;
        d->ready_ns = now_ns();
        if (k->o->ready_fd >= 0) {
            char zero = 0;
            ssize_t w = write(k->o->ready_fd, &zero, 1);
            (void)w;
            close(k->o->ready_fd);
            ((struct keeper_opts *)k->o)->ready_fd = -1;
        }
        if (k->o->log_file || k->o->detached) {
            /* started: stop holding the caller's terminal or pipe */
            int fd = k->o->log_file ? open(k->o->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640)
                                    : open("/dev/null", O_WRONLY | O_CLOEXEC);
            if (fd >= 0) {
                dup2(fd, STDERR_FILENO);
                if (k->o->detached) {
                    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
                    if (nul >= 0) {
                        dup2(nul, STDIN_FILENO);
                        dup2(nul, STDOUT_FILENO);
                        close(nul);
                    }
                }
                close(fd);
            }
            ((struct keeper_opts *)k->o)->log_file = NULL;
            ((struct keeper_opts *)k->o)->detached = 0;
        }
        LOG_INFO("keeper", "daemon pid=%d generation=%llu serving: %s", (int)d->pid,
                 (unsigned long long)d->gen, m.text);
        if (d == &k->next) {
            /* upgrade done: the old daemon may go */
            uint64_t ms = (now_ns() - k->up_start_ns) / 1000000;
            if (k->cur.sock >= 0)
                kp_send(k->cur.sock, KP_EXIT, 0, 0, NULL, NULL, 0);
            daemon_close_held(&k->old);
            if (k->old.sock >= 0)
                close(k->old.sock);
            k->old = k->cur;
            k->cur = k->next;
            daemon_reset(&k->next);
            k->upgrades++;
            char msg[KP_TEXT_MAX];
            snprintf(msg, sizeof(msg), "upgraded: daemon pid %d generation %llu serving (%llu ms)",
                     (int)k->cur.pid, (unsigned long long)k->cur.gen, (unsigned long long)ms);
            ctl_reply(&k->up_client, msg, 1);
        }
        break;
    case KP_PREPARED:
        if (d == &k->next && k->cur.sock >= 0)
            kp_send(k->cur.sock, KP_DRAIN, 0, 0, NULL, NULL, 0);
        break;
    case KP_DRAINED:
        if (d == &k->cur && k->next.sock >= 0 && nfds == 1) {
            int send_fd = fds[0];
            int copy = -1;
            if (k->up_flags & KP_UPGRADE_TEST_CORRUPT) {
                copy = corrupt_copy(fds[0]);
                if (copy >= 0)
                    send_fd = copy;
            }
            kp_send(k->next.sock, KP_TAKEOVER, 0, (uint64_t)k->cur.pid, NULL, &send_fd, 1);
            if (copy >= 0)
                close(copy);
        }
        break;
    case KP_FAILED:
        if (d == &k->cur)
            abort_upgrade(k, m.text);
        break;
    case KP_REFUSED:
        if (d == &k->next)
            abort_upgrade(k, m.text);
        break;
    case KP_CTL_REPLY:
        if (d == &k->cur && k->status_client >= 0) {
            char msg[KP_TEXT_MAX];
            snprintf(msg, sizeof(msg), "keeper_pid=%d generation=%llu restarts=%llu upgrades=%llu %.360s",
                     (int)getpid(), (unsigned long long)k->cur.gen,
                     (unsigned long long)k->restarts, (unsigned long long)k->upgrades, m.text);
            ctl_reply(&k->status_client, msg, 1);
        }
        break;
    default:
        LOG_WARN("keeper", "unexpected %s from pid %d", kp_type_name(m.type), (int)d->pid);
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
}

static int mount_alive(struct keeper *k)
{
    return fuse_mount_conn_id(k->o->mountpoint) == k->conn_id;
}

/* What a dead daemon sent before it died (a REFUSED, a last CHAN whose
 * descriptor is still in flight) is read before its death is handled. */
static void drain_msgs(struct keeper *k, struct daemon *d)
{
    while (d->sock >= 0) {
        struct pollfd p = { .fd = d->sock, .events = POLLIN };
        if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP)))
            return;
        on_msg(k, d);
    }
}

/* returns 1 when the keeper should exit */
static int on_child(struct keeper *k, int *exit_code)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        char how[64];
        if (WIFSIGNALED(status))
            snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
        else
            snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
        int was_next = pid == k->next.pid;
        if (was_next) {
            k->next.pid = -1; /* reaped: never signal that pid again */
            drain_msgs(k, &k->next);
        } else if (pid == k->cur.pid) {
            drain_msgs(k, &k->cur);
        }
        if (pid == k->cur.pid) {
            int clean = k->cur.clean || (WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
                                         !mount_alive(k));
            if (clean || k->stopping) {
                LOG_INFO("keeper", "daemon pid=%d ended (%s); keeper exits", (int)pid, how);
                *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
                return 1;
            }
            if (!k->cur.ready && k->cur.mode == KP_MODE_FIRST) {
                LOG_ERROR("keeper", "daemon failed before serving (%s); unmounting", how);
                *exit_code = WIFEXITED(status) && WEXITSTATUS(status) ? WEXITSTATUS(status) : 1;
                return 1;
            }
            if (!mount_alive(k)) {
                LOG_INFO("keeper", "daemon pid=%d ended (%s) and the mount is gone", (int)pid, how);
                *exit_code = 0;
                return 1;
            }
            LOG_WARN("keeper", "daemon pid=%d died (%s); restarting", (int)pid, how);
            if (k->status_client >= 0) {
                /* the status it was asked for will never come */
                char msg[KP_TEXT_MAX];
                snprintf(msg, sizeof(msg), "keeper_pid=%d generation=%llu restarts=%llu upgrades=%llu daemon=restarting",
                         (int)getpid(), (unsigned long long)k->cur.gen,
                         (unsigned long long)k->restarts + 1, (unsigned long long)k->upgrades);
                ctl_reply(&k->status_client, msg, 1);
            }
            if (k->next.pid > 0)
                abort_upgrade(k, "the running daemon died during the upgrade");
            restart_after_crash(k);
        } else if (was_next) {
            if (k->up_client >= 0) {
                char why[128];
                snprintf(why, sizeof(why), "new daemon exited before taking over (%s)", how);
                abort_upgrade(k, why);
            }
            daemon_reset(&k->next);
        } else if (pid == k->old.pid) {
            /* a retired daemon left: its channels have no requests */
            LOG_INFO("keeper", "previous daemon pid=%d exited (%s)", (int)pid, how);
            daemon_close_held(&k->old);
            if (k->old.sock >= 0)
                close(k->old.sock);
            daemon_reset(&k->old);
        }
    }
    return 0;
}

static void on_control(struct keeper *k)
{
    int c = accept4(k->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;
    struct timeval tv = { 2, 0 };
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct kp_msg m;
    int nfds = 0;
    if (kp_recv(c, &m, NULL, &nfds) < 0) {
        close(c);
        return;
    }
    if (m.type == KP_CTL_STATUS) {
        /* a daemon still starting answers once it serves: the request
         * waits in its socket */
        if (k->status_client >= 0 || k->cur.sock < 0) {
            char msg[KP_TEXT_MAX];
            snprintf(msg, sizeof(msg), "keeper_pid=%d generation=%llu restarts=%llu upgrades=%llu daemon=starting",
                     (int)getpid(), (unsigned long long)k->cur.gen,
                     (unsigned long long)k->restarts, (unsigned long long)k->upgrades);
            ctl_reply(&c, msg, 1);
            return;
        }
        k->status_client = c;
        kp_send(k->cur.sock, KP_CTL_STATUS, 0, 0, NULL, NULL, 0);
        return;
    }
    if (m.type != KP_CTL_UPGRADE) {
        ctl_reply(&c, "unknown request", 0);
        return;
    }
    if (k->up_client >= 0 || k->next.pid > 0) {
        ctl_reply(&c, "an upgrade is already in progress", 0);
        return;
    }
    if (!k->cur.ready || k->cur.sock < 0) {
        ctl_reply(&c, "the daemon is not serving yet; try again", 0);
        return;
    }
    const char *binary = m.text[0] ? m.text : k->o->daemon_argv[0];
    if (access(binary, X_OK) < 0) {
        char msg[KP_TEXT_MAX];
        snprintf(msg, sizeof(msg), "cannot run %.300s: %s", binary, strerror(errno));
        ctl_reply(&c, msg, 0);
        return;
    }
    k->up_client = c;
    k->up_flags = m.arg;
    k->up_start_ns = now_ns();
    int rc = spawn(k, &k->next, KP_MODE_UPGRADE, binary, NULL);
    if (rc < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "cannot start the new daemon: %s", strerror(-rc));
        abort_upgrade(k, msg);
    }
}

static int open_control(struct keeper *k)
{
    mkdir("/run/valorfs", 0700);
    kp_control_path(k->conn_id, k->ctl_path, sizeof(k->ctl_path));
    unlink(k->ctl_path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", k->ctl_path);
    mode_t old = umask(077);
    int rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
    umask(old);
    if (rc < 0 || listen(fd, 8) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    k->ctl_fd = fd;
    return 0;
}

int keeper_run(const struct keeper_opts *o)
{
    struct keeper k = { .o = o, .ctl_fd = -1, .up_client = -1, .status_client = -1 };
    daemon_reset(&k.cur);
    daemon_reset(&k.next);
    daemon_reset(&k.old);
    /* whatever the caller left open (a shell's or a test harness's pipes)
     * must not live on in every daemon generation */
    syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
    fcntl(o->dev_fd, F_SETFD, FD_CLOEXEC);
    if (o->ready_fd >= 0)
        fcntl(o->ready_fd, F_SETFD, FD_CLOEXEC);
    k.conn_id = fuse_mount_conn_id(o->mountpoint);
    struct stat dst;
    if (fstat(o->dev_fd, &dst) < 0 || !S_ISCHR(dst.st_mode)) {
        LOG_ERROR("keeper", "--dev-fd=%d is not an open /dev/fuse descriptor", o->dev_fd);
        return 1;
    }
    if (k.conn_id < 0) {
        LOG_ERROR("keeper", "%s is not a FUSE mount", o->mountpoint);
        return 1;
    }
    int rc = open_control(&k);
    if (rc < 0) {
        LOG_ERROR("keeper", "control socket %s: %s", k.ctl_path, strerror(-rc));
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    k.sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (o->detached) {
        /* nothing of ours or the daemons' may hold the caller's stdin/stdout;
         * stderr stays until the daemon serves, for startup errors */
        int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (nul >= 0) {
            dup2(nul, STDIN_FILENO);
            dup2(nul, STDOUT_FILENO);
            close(nul);
        }
    }
    LOG_INFO("keeper", "keeping %s (fuse connection %d), control %s", o->mountpoint, k.conn_id,
             k.ctl_path);
    rc = spawn(&k, &k.cur, KP_MODE_FIRST, NULL, NULL);
    if (rc < 0) {
        LOG_ERROR("keeper", "cannot start the daemon: %s", strerror(-rc));
        return 1;
    }
    int exit_code = 0;
    uint64_t stop_deadline = 0;
    for (;;) {
        struct pollfd p[5];
        struct daemon *ds[5] = { 0 };
        int n = 0;
        p[n++] = (struct pollfd){ .fd = k.sig_fd, .events = POLLIN };
        p[n++] = (struct pollfd){ .fd = k.ctl_fd, .events = POLLIN };
        struct daemon *all[3] = { &k.cur, &k.next, &k.old };
        for (int i = 0; i < 3; i++)
            if (all[i]->sock >= 0) {
                ds[n] = all[i];
                p[n++] = (struct pollfd){ .fd = all[i]->sock, .events = POLLIN };
            }
        int timeout = -1;
        if (k.up_client >= 0)
            timeout = 1000;
        if (stop_deadline)
            timeout = 200;
        if (poll(p, (nfds_t)n, timeout) < 0 && errno != EINTR)
            break;
        if (k.up_client >= 0 && now_ns() - k.up_start_ns > 60000000000ull)
            abort_upgrade(&k, "timed out after 60 s");
        if (stop_deadline && now_ns() > stop_deadline) {
            LOG_WARN("keeper", "daemon did not stop; unmounting %s", o->mountpoint);
            if (k.cur.pid > 0)
                kill(k.cur.pid, SIGKILL);
            umount2(o->mountpoint, MNT_DETACH);
            fuse_abort_conn(k.conn_id);
            exit_code = 1;
            break;
        }
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            int done = 0;
            while (read(k.sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGCHLD) {
                    if (on_child(&k, &exit_code))
                        done = 1;
                } else if (!k.stopping) {
                    LOG_INFO("keeper", "signal %u: stopping the daemon", si.ssi_signo);
                    k.stopping = 1;
                    stop_deadline = now_ns() + 15000000000ull;
                    if (k.next.pid > 0)
                        kill(k.next.pid, SIGKILL);
                    if (k.cur.pid > 0)
                        kill(k.cur.pid, SIGTERM);
                    else
                        done = 1;
                }
            }
            if (done)
                break;
        }
        if (p[1].revents & POLLIN)
            on_control(&k);
        for (int i = 2; i < n; i++)
            if (ds[i] && ds[i]->sock >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                on_msg(&k, ds[i]);
    }
    if (k.next.pid > 0)
        kill(k.next.pid, SIGKILL);
    if (exit_code != 0 && mount_alive(&k)) {
        /* nobody will serve it again: do not leave a dead mount behind */
        umount2(o->mountpoint, MNT_DETACH);
        fuse_abort_conn(k.conn_id);
    }
    ctl_reply(&k.up_client, "the keeper is exiting", 0);
    ctl_reply(&k.status_client, "the keeper is exiting", 0);
    unlink(k.ctl_path);
    daemon_close(&k.cur);
    daemon_close(&k.next);
    daemon_close(&k.old);
    close(o->dev_fd);
    return exit_code;
}
