/* uring_handoff.c — experiment: what happens to FUSE-over-io_uring queues
 * when the daemon process that registered them exits, and can another
 * process take them over?
 *
 * The main process plays the keeper K: it opens /dev/fuse, mounts a tiny
 * file system and holds the master fd for the whole run. Daemons (A, B,
 * ...) are forked from K, so they inherit the master fd exactly as a
 * daemon handed the fd over SCM_RIGHTS would. Applications are forked
 * from K too, pinned to a CPU so the kernel picks a known queue (qid ==
 * CPU of the calling task).
 *
 * File system: "f" (ino 2) and "slow" (ino 3), 1 MiB each, reads return
 * pattern(off); a daemon started with hold=1 never answers a READ of
 * "slow" (the request stays inside its ring entry). Anything can be
 * created and written (writes are discarded). Attribute and entry
 * timeouts are 0 and files are opened FOPEN_DIRECT_IO so every
 * application call reaches the daemon.
 *
 * Ring buffers live in a memfd that K creates and every daemon maps at
 * the same fixed address: a successor can then read a dead daemon's
 * entry headers (commit_id, request) and answer them (scenario "adopt").
 *
 * Not part of valorfs: built by hand (see README.md), never installed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fuse/fuse_abi.h"

#define FILE_SIZE (1u << 20)
#define PAYLOAD_SZ (1u << 20)
#define HDR_STRIDE 4096u
#define SLOT_STRIDE (HDR_STRIDE + PAYLOAD_SZ)
#define ARENA_ADDR ((void *)0x5a0000000000ULL)
#define MAX_Q 8
#define MAX_DEPTH 4
#define GENS 2 /* arena halves: consecutive daemons alternate */

static int g_nq;           /* possible CPUs == kernel queue count */
static int g_depth = 2;    /* entries per queue per daemon */
static int g_devfd = -1;   /* master /dev/fuse fd (K's) */
static int g_memfd = -1;   /* ring buffer arena */
static char *g_mnt;
static int g_conn = -1;
static struct timespec g_t0;

/* ------------------------------------------------------------ logging */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - g_t0.tv_sec) + (double)(t.tv_nsec - g_t0.tv_nsec) / 1e9;
}

static char g_who[16] = "K";

static void logf_(const char *fmt, ...)
{
    char buf[1024];
    int n = snprintf(buf, sizeof(buf), "%8.3f [%s] ", now_s(), g_who);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    ssize_t w = write(1, buf, (size_t)n);
    (void)w;
}
#define LOG(...) logf_(__VA_ARGS__)

static void msleep(int ms)
{
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) < 0 && errno == EINTR) {
    }
}

static int possible_cpus(void)
{
    FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
    int a = 0, b = 0;
    if (f == NULL)
        return 1;
    int n = fscanf(f, "%d-%d", &a, &b);
    fclose(f);
    return n == 2 ? b + 1 : a + 1;
}

static void show_conn(const char *when)
{
    char p[128], v[64] = "?";
    snprintf(p, sizeof(p), "/sys/fs/fuse/connections/%d/waiting", g_conn);
    int fd = open(p, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, v, sizeof(v) - 1);
        v[n > 0 ? n : 0] = 0;
        close(fd);
        char *nl = strchr(v, '\n');
        if (nl)
            *nl = 0;
    }
    LOG("conn %d waiting=%s (%s)", g_conn, v, when);
}

static int g_dmesg_base; /* dmesg lines present before this run */

static int dmesg_lines(void)
{
    FILE *p = popen("dmesg | wc -l", "r");
    int n = 0;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = 0;
        pclose(p);
    }
    return n;
}

static void show_dmesg(void)
{
    /* kernel lines logged since this run started */
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "dmesg | tail -n +%d | tail -n 12", g_dmesg_base + 1);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return;
    char line[512];
    int any = 0;
    while (fgets(line, sizeof(line), p)) {
        line[strcspn(line, "\n")] = 0;
        LOG("dmesg: %s", line);
        any = 1;
    }
    if (!any)
        LOG("dmesg: (nothing new)");
    pclose(p);
}

/* ------------------------------------------------------------ the fs */

static uint8_t pattern(uint64_t off) { return (uint8_t)(off * 7 + 13); }

struct reply {
    int error; /* negative errno or 0 */
    size_t len;
    int noreply;
    int hold;
};

static void fill_attr(struct fuse_attr *a, uint64_t ino)
{
    memset(a, 0, sizeof(*a));
    a->ino = ino;
    a->nlink = 1;
    a->blksize = 4096;
    if (ino == 1) {
        a->mode = S_IFDIR | 0755;
        a->nlink = 2;
    } else {
        a->mode = S_IFREG | 0644;
        a->size = ino <= 3 ? FILE_SIZE : 0;
        a->blocks = a->size / 512;
    }
}

/* names created by this daemon process (not shared with successors) */
static char g_created[64][64];
static int g_ncreated;

static uint64_t lookup_ino(const char *name)
{
    if (strcmp(name, "f") == 0)
        return 2;
    if (strcmp(name, "slow") == 0)
        return 3;
    for (int i = 0; i < g_ncreated; i++)
        if (strcmp(g_created[i], name) == 0)
            return 100 + (uint64_t)i;
    return 0;
}

static int g_hold;                  /* hold READs of "slow" */
static atomic_int g_stop;
static atomic_ulong g_served_ring[MAX_Q], g_served_dev, g_resent_seen;

/* op: the op's fixed struct; data: what follows it. out: reply payload. */
static void handle(const struct fuse_in_header *h, const void *op, const char *data, size_t dlen,
                   char *out, size_t outcap, struct reply *r)
{
    memset(r, 0, sizeof(*r));
    switch (h->opcode) {
    case FUSE_LOOKUP: {
        char name[256];
        size_t n = strnlen(data, dlen < 255 ? dlen : 255);
        memcpy(name, data, n);
        name[n] = 0;
        uint64_t ino = h->nodeid == 1 ? lookup_ino(name) : 0;
        if (ino == 0) {
            r->error = -ENOENT;
            return;
        }
        struct fuse_entry_out *e = (void *)out;
        memset(e, 0, sizeof(*e));
        e->nodeid = ino;
        fill_attr(&e->attr, ino);
        r->len = sizeof(*e);
        return;
    }
    case FUSE_GETATTR:
    case FUSE_SETATTR: {
        struct fuse_attr_out *a = (void *)out;
        memset(a, 0, sizeof(*a));
        fill_attr(&a->attr, h->nodeid);
        r->len = sizeof(*a);
        return;
    }
    case FUSE_OPEN:
    case FUSE_OPENDIR: {
        struct fuse_open_out *o = (void *)out;
        memset(o, 0, sizeof(*o));
        o->fh = h->nodeid;
        o->open_flags = h->opcode == FUSE_OPEN ? FOPEN_DIRECT_IO : 0;
        r->len = sizeof(*o);
        return;
    }
    case FUSE_CREATE: {
        const char *name = data;
        int i = g_ncreated < 64 ? g_ncreated++ : 63;
        snprintf(g_created[i], sizeof(g_created[i]), "%.*s", (int)strnlen(name, dlen), name);
        struct fuse_entry_out *e = (void *)out;
        memset(e, 0, sizeof(*e) + sizeof(struct fuse_open_out));
        e->nodeid = 100 + (uint64_t)i;
        fill_attr(&e->attr, e->nodeid);
        struct fuse_open_out *o = (void *)(out + sizeof(*e));
        o->fh = e->nodeid;
        o->open_flags = FOPEN_DIRECT_IO;
        r->len = sizeof(*e) + sizeof(*o);
        return;
    }
    case FUSE_READ: {
        const struct fuse_read_in *in = op;
        if (h->nodeid == 3 && g_hold) {
            r->hold = 1;
            return;
        }
        uint64_t end = h->nodeid <= 3 ? FILE_SIZE : 0;
        size_t n = 0;
        if (in->offset < end)
            n = (size_t)(end - in->offset < in->size ? end - in->offset : in->size);
        if (n > outcap)
            n = outcap;
        for (size_t i = 0; i < n; i++)
            out[i] = (char)pattern(in->offset + i);
        r->len = n;
        return;
    }
    case FUSE_WRITE: {
        const struct fuse_write_in *in = op;
        struct fuse_write_out *w = (void *)out;
        memset(w, 0, sizeof(*w));
        w->size = in->size;
        r->len = sizeof(*w);
        return;
    }
    case FUSE_READDIR:
        r->len = 0;
        return;
    case FUSE_STATFS: {
        struct fuse_statfs_out *s = (void *)out;
        memset(s, 0, sizeof(*s));
        s->st.bsize = 4096;
        s->st.namelen = 255;
        s->st.frsize = 4096;
        r->len = sizeof(*s);
        return;
    }
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR:
    case FUSE_FLUSH:
    case FUSE_FSYNC:
        return;
    case FUSE_FORGET:
    case FUSE_BATCH_FORGET:
    case FUSE_INTERRUPT:
        r->noreply = 1;
        return;
    default:
        r->error = -ENOSYS;
        return;
    }
}

/* size of the fixed op struct in the classic /dev/fuse layout */
static size_t op_size(uint32_t opcode)
{
    switch (opcode) {
    case FUSE_GETATTR: return sizeof(struct fuse_getattr_in);
    case FUSE_SETATTR: return sizeof(struct fuse_setattr_in);
    case FUSE_OPEN: case FUSE_OPENDIR: return sizeof(struct fuse_open_in);
    case FUSE_CREATE: return sizeof(struct fuse_create_in);
    case FUSE_READ: case FUSE_READDIR: return sizeof(struct fuse_read_in);
    case FUSE_WRITE: return sizeof(struct fuse_write_in);
    case FUSE_RELEASE: case FUSE_RELEASEDIR: return sizeof(struct fuse_release_in);
    case FUSE_FLUSH: return sizeof(struct fuse_flush_in);
    case FUSE_FSYNC: return sizeof(struct fuse_fsync_in);
    case FUSE_FORGET: return sizeof(struct fuse_forget_in);
    case FUSE_INTERRUPT: return sizeof(struct fuse_interrupt_in);
    case FUSE_INIT: return sizeof(struct fuse_init_in);
    default: return 0;
    }
}

/* ------------------------------------------------------------ /dev/fuse */

static int dev_reply(int fd, uint64_t unique, int error, const void *p, size_t len)
{
    struct fuse_out_header oh = { .len = (uint32_t)(sizeof(oh) + len), .error = error,
                                  .unique = unique };
    struct iovec iov[2] = { { &oh, sizeof(oh) }, { (void *)p, len } };
    return writev(fd, iov, len ? 2 : 1) < 0 ? -errno : 0;
}

static int do_init(int fd)
{
    static char buf[PAYLOAD_SZ + 8192];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == ENOENT))
            continue;
        if (n < (ssize_t)sizeof(struct fuse_in_header))
            return -EIO;
        struct fuse_in_header *h = (void *)buf;
        if (h->opcode != FUSE_INIT) {
            dev_reply(fd, h->unique, -EIO, NULL, 0);
            continue;
        }
        struct fuse_init_in *in = (void *)(h + 1);
        uint64_t kflags = in->flags | ((uint64_t)in->flags2 << 32);
        uint64_t want = FUSE_INIT_EXT | FUSE_MAX_PAGES | FUSE_BIG_WRITES | FUSE_OVER_IO_URING |
                        FUSE_HAS_RESEND;
        uint64_t fl = kflags & want;
        struct vfs_fuse_init_out out;
        memset(&out, 0, sizeof(out));
        out.major = 7;
        out.minor = in->minor < VFS_FUSE_MINOR ? in->minor : VFS_FUSE_MINOR;
        out.max_readahead = in->max_readahead;
        out.flags = (uint32_t)fl;
        out.flags2 = (uint32_t)(fl >> 32);
        out.max_background = 16;
        out.congestion_threshold = 12;
        out.max_write = PAYLOAD_SZ;
        out.time_gran = 1;
        out.max_pages = PAYLOAD_SZ / 4096;
        LOG("INIT kernel 7.%u, io_uring offered=%s resend offered=%s", in->minor,
            (kflags & FUSE_OVER_IO_URING) ? "yes" : "NO",
            (kflags & FUSE_HAS_RESEND) ? "yes" : "no");
        return dev_reply(fd, h->unique, 0, &out, sizeof(out));
    }
}

/* A reader on a cloned /dev/fuse fd: whatever does not travel over the
 * rings (FORGET, INTERRUPT, requests before the rings are ready, requests
 * resent by NOTIFY_RESEND) shows up here. */
static void *dev_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *buf = aligned_alloc(4096, PAYLOAD_SZ + 8192);
    static char out[PAYLOAD_SZ + 4096];
    while (!atomic_load(&g_stop)) {
        ssize_t n = read(fd, buf, PAYLOAD_SZ + 8192);
        if (n < 0) {
            if (errno == EINTR || errno == ENOENT || errno == EAGAIN) {
                if (errno == EAGAIN)
                    msleep(20);
                continue;
            }
            LOG("dev reader: read: %s", strerror(errno));
            break;
        }
        struct fuse_in_header *h = (void *)buf;
        size_t osz = op_size(h->opcode);
        const char *data = buf + sizeof(*h) + osz;
        size_t dlen = (size_t)n - sizeof(*h) - osz;
        int resent = (h->unique & FUSE_UNIQUE_RESEND) != 0;
        if (resent)
            atomic_fetch_add(&g_resent_seen, 1);
        struct reply r;
        handle(h, buf + sizeof(*h), data, dlen, out, sizeof(out), &r);
        atomic_fetch_add(&g_served_dev, 1);
        if (h->opcode != FUSE_FORGET && h->opcode != FUSE_BATCH_FORGET)
            LOG("via /dev/fuse: opcode=%u unique=%#" PRIx64 "%s nodeid=%" PRIu64 "%s", h->opcode,
                h->unique & ~FUSE_UNIQUE_RESEND, resent ? " (FUSE_UNIQUE_RESEND set)" : "",
                h->nodeid, r.hold ? " -> HOLD" : "");
        if (r.noreply || r.hold)
            continue;
        int rc = dev_reply(fd, h->unique, r.error, out, r.len);
        if (rc < 0)
            LOG("dev reply unique=%#" PRIx64 ": %s", h->unique, strerror(-rc));
    }
    free(buf);
    return NULL;
}

static int send_resend(int fd)
{
    struct fuse_out_header oh = { .len = sizeof(oh), .error = VFS_FUSE_NOTIFY_RESEND, .unique = 0 };
    ssize_t n = write(fd, &oh, sizeof(oh));
    return n < 0 ? -errno : 0;
}

/* ------------------------------------------------------------ rings */

struct ent {
    struct fuse_uring_req_header *hdr;
    char *payload;
    int qid;
    int gen;
    struct iovec iov[2];
};

static char *g_arena;

static struct ent *ent_at(int gen, int q, int i)
{
    static struct ent ents[GENS][MAX_Q][MAX_DEPTH];
    struct ent *e = &ents[gen][q][i];
    size_t slot = ((size_t)gen * MAX_Q + (size_t)q) * MAX_DEPTH + (size_t)i;
    e->hdr = (void *)(g_arena + slot * SLOT_STRIDE);
    e->payload = g_arena + slot * SLOT_STRIDE + HDR_STRIDE;
    e->qid = q;
    e->gen = gen;
    return e;
}

static int map_arena(void)
{
    size_t sz = (size_t)GENS * MAX_Q * MAX_DEPTH * SLOT_STRIDE;
    void *p = mmap(ARENA_ADDR, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE,
                   g_memfd, 0);
    if (p != ARENA_ADDR) {
        LOG("map arena at %p: %s", ARENA_ADDR, p == MAP_FAILED ? strerror(errno) : "wrong addr");
        return -1;
    }
    g_arena = p;
    return 0;
}

static struct io_uring_sqe *sqe_get(struct io_uring *ring)
{
    struct io_uring_sqe *s = io_uring_get_sqe(ring);
    if (s == NULL) {
        io_uring_submit(ring);
        s = io_uring_get_sqe(ring);
    }
    return s;
}

static void prep(struct io_uring *ring, struct ent *e, uint32_t cmd, uint64_t commit_id, int fd)
{
    struct io_uring_sqe *sqe = sqe_get(ring);
    if (sqe == NULL) {
        LOG("no sqe");
        return;
    }
    memset(sqe, 0, 128);
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fd;
    sqe->cmd_op = cmd;
    if (cmd == FUSE_IO_URING_CMD_REGISTER) {
        e->iov[0] = (struct iovec){ e->hdr, sizeof(*e->hdr) };
        e->iov[1] = (struct iovec){ e->payload, PAYLOAD_SZ };
        sqe->addr = (uint64_t)(uintptr_t)e->iov;
        sqe->len = 2;
    }
    struct fuse_uring_cmd_req *req = (void *)sqe->cmd;
    req->qid = (uint16_t)e->qid;
    req->commit_id = commit_id;
    io_uring_sqe_set_data(sqe, e);
}

/* Answer the request in entry e (from its header and payload). Returns
 * 1 if it was answered (a COMMIT_AND_FETCH was queued), 0 if held. */
static int ring_answer(struct io_uring *ring, struct ent *e, int fd, const char *how)
{
    struct fuse_in_header h;
    memcpy(&h, e->hdr->in_out, sizeof(h));
    uint64_t commit_id = e->hdr->ring_ent_in_out.commit_id;
    size_t plen = e->hdr->ring_ent_in_out.payload_sz;
    static char out[PAYLOAD_SZ];
    struct reply r;
    handle(&h, e->hdr->op_in, e->payload, plen, out, sizeof(out), &r);
    atomic_fetch_add(&g_served_ring[e->qid], 1);
    if (r.hold) {
        LOG("%s q%d gen%d: opcode=%u unique=%#" PRIx64 " commit_id=%#" PRIx64
            " nodeid=%" PRIu64 " -> HOLD (never answered)",
            how, e->qid, e->gen, h.opcode, h.unique, commit_id, h.nodeid);
        return 0;
    }
    if (h.opcode != FUSE_GETATTR && h.opcode != FUSE_LOOKUP && h.opcode != FUSE_READ &&
        h.opcode != FUSE_OPEN && h.opcode != FUSE_RELEASE && h.opcode != FUSE_FLUSH)
        LOG("%s q%d gen%d: opcode=%u unique=%#" PRIx64, how, e->qid, e->gen, h.opcode, h.unique);
    struct fuse_out_header oh = { .len = (uint32_t)(sizeof(oh) + r.len), .error = r.error,
                                  .unique = h.unique };
    memcpy(e->payload, out, r.len);
    memcpy(e->hdr->in_out, &oh, sizeof(oh));
    e->hdr->ring_ent_in_out.payload_sz = (uint32_t)r.len;
    prep(ring, e, FUSE_IO_URING_CMD_COMMIT_AND_FETCH, commit_id, fd);
    return 1;
}

/* ------------------------------------------------------------ daemon */

struct daemon_opts {
    const char *name;
    int gen;          /* arena half to use */
    int do_init;      /* first daemon answers INIT */
    int hold;         /* hold READs of "slow" */
    int adopt_gen;    /* -1, or the arena half of a dead predecessor */
    int send_ringfd;  /* socket to pass the ring fd to K, or -1 */
    int ready_fd;     /* pipe: one byte once registered */
};

struct ringfd_msg {
    struct io_uring_params p;
    int fdnum;
};

static void on_term(int sig) { (void)sig; atomic_store(&g_stop, 1); }
static atomic_int g_want_resend, g_want_stats;
static void on_usr1(int sig) { (void)sig; atomic_store(&g_want_stats, 1); }
static void on_usr2(int sig) { (void)sig; atomic_store(&g_want_resend, 1); }
static atomic_int g_want_adopt;
static void on_winch(int sig) { (void)sig; atomic_store(&g_want_adopt, 1); }

static int send_fd(int sock, int fd, const void *data, size_t len)
{
    struct iovec iov = { (void *)data, len };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                        .msg_controllen = sizeof(u.buf) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &m, 0) < 0 ? -errno : 0;
}

static int recv_fd(int sock, void *data, size_t len)
{
    memset(data, 0, len);
    struct iovec iov = { data, len };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                        .msg_controllen = sizeof(u.buf) };
    if (recvmsg(sock, &m, MSG_WAITALL) <= 0)
        return -EIO;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (c == NULL || c->cmsg_type != SCM_RIGHTS)
        return -ENOENT; /* data only */
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

static void stats(void)
{
    char b[256];
    int n = 0;
    for (int q = 0; q < g_nq; q++)
        n += snprintf(b + n, sizeof(b) - (size_t)n, " q%d=%lu", q,
                      atomic_load(&g_served_ring[q]));
    LOG("served: ring%s dev=%lu resent_seen=%lu", b, atomic_load(&g_served_dev),
        atomic_load(&g_resent_seen));
}

/* answer every request a dead predecessor's entries still hold: their
 * headers (commit_id, request) live in the shared arena at the same address */
static int adopt(struct io_uring *ring, int fd, int gen)
{
    int n = 0;
    if (gen < 0)
        return 0;
    for (int q = 0; q < g_nq; q++)
        for (int i = 0; i < g_depth; i++) {
            struct ent *e = ent_at(gen, q, i);
            uint64_t cid = e->hdr->ring_ent_in_out.commit_id;
            struct fuse_in_header h;
            memcpy(&h, e->hdr->in_out, sizeof(h));
            if (cid == 0 || h.unique != cid)
                continue; /* never used, or already answered (out header written) */
            LOG("adopt: gen%d q%d slot%d header has commit_id=%#" PRIx64 ", answering it", gen, q,
                i, cid);
            n += ring_answer(ring, e, fd, "adopt");
        }
    return n;
}

static int daemon_main(const struct daemon_opts *o)
{
    snprintf(g_who, sizeof(g_who), "%s", o->name);
    g_hold = o->hold;
    signal(SIGTERM, on_term);
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, on_usr2);
    signal(SIGWINCH, on_winch);
    if (map_arena() < 0)
        return 1;
    int fd = g_devfd; /* the master fd, inherited: ring commands go here */
    if (o->do_init && do_init(fd) < 0) {
        LOG("INIT failed");
        return 1;
    }
    int clone = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    uint32_t master = (uint32_t)fd;
    if (clone < 0 || ioctl(clone, FUSE_DEV_IOC_CLONE, &master) < 0) {
        LOG("clone: %s", strerror(errno));
        return 1;
    }
    pthread_t rd;
    pthread_create(&rd, NULL, dev_reader, (void *)(intptr_t)clone);

    struct io_uring ring;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SQE128;
    int rc = io_uring_queue_init_params(64, &ring, &p);
    if (rc < 0) {
        LOG("io_uring_queue_init: %s", strerror(-rc));
        return 1;
    }
    if (o->send_ringfd >= 0) {
        struct ringfd_msg m = { .p = p, .fdnum = ring.ring_fd };
        rc = send_fd(o->send_ringfd, ring.ring_fd, &m, sizeof(m));
        LOG("pass ring fd %d to K over SCM_RIGHTS: %s", ring.ring_fd, rc ? strerror(-rc) : "ok");
        if (rc < 0) {
            /* fall back: tell K the fd number, K takes it with pidfd_getfd */
            ssize_t w = write(o->send_ringfd, &m, sizeof(m));
            (void)w;
        }
    }
    /* adopt: answer whatever the dead predecessor's entries still hold */
    int adopted = adopt(&ring, fd, o->adopt_gen);
    for (int q = 0; q < g_nq; q++)
        for (int i = 0; i < g_depth; i++)
            prep(&ring, ent_at(o->gen, q, i), FUSE_IO_URING_CMD_REGISTER, 0, fd);
    rc = io_uring_submit(&ring);
    LOG("submitted %d REGISTER (+%d adopt commits): io_uring_submit=%d", g_nq * g_depth, adopted,
        rc);
    if (o->ready_fd >= 0) {
        ssize_t w = write(o->ready_fd, "r", 1);
        (void)w;
    }
    while (!atomic_load(&g_stop)) {
        if (atomic_exchange(&g_want_stats, 0))
            stats();
        if (atomic_exchange(&g_want_adopt, 0)) {
            int n = adopt(&ring, fd, 1 - o->gen);
            io_uring_submit(&ring);
            LOG("late adopt of gen%d: %d request(s) answered", 1 - o->gen, n);
        }
        if (atomic_exchange(&g_want_resend, 0)) {
            rc = send_resend(fd);
            LOG("wrote FUSE_NOTIFY_RESEND to /dev/fuse: %s", rc ? strerror(-rc) : "ok");
        }
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = { 0, 50 * 1000 * 1000 };
        rc = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
        if (rc == -ETIME || rc == -EINTR)
            continue;
        if (rc < 0) {
            LOG("wait_cqe: %s", strerror(-rc));
            break;
        }
        struct ent *e = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&ring, cqe);
        if (res < 0) {
            LOG("entry q%d gen%d completed with %d (%s)", e->qid, e->gen, res, strerror(-res));
            continue;
        }
        ring_answer(&ring, e, fd, "ring");
        io_uring_submit(&ring);
    }
    /* answer what was already delivered, then tear the ring down */
    int drained = 0;
    struct io_uring_cqe *dq;
    while (io_uring_peek_cqe(&ring, &dq) == 0) {
        struct ent *e = io_uring_cqe_get_data(dq);
        int res = dq->res;
        io_uring_cqe_seen(&ring, dq);
        if (res >= 0)
            drained += ring_answer(&ring, e, fd, "drain");
    }
    io_uring_submit(&ring);
    stats();
    LOG("graceful exit: answered %d delivered requests, io_uring_queue_exit", drained);
    io_uring_queue_exit(&ring);
    atomic_store(&g_stop, 1);
    LOG("exiting");
    _exit(0);
}

static pid_t spawn_daemon(struct daemon_opts o)
{
    int pfd[2];
    if (pipe(pfd) < 0)
        return -1;
    o.ready_fd = pfd[1];
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        _exit(daemon_main(&o));
    }
    close(pfd[1]);
    char c;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ssize_t n = read(pfd[0], &c, 1);
    close(pfd[0]);
    if (n != 1)
        LOG("daemon %s did not become ready", o.name);
    msleep(100); /* let the REGISTERs land */
    return pid;
}

/* ------------------------------------------------------------ apps */

/* shared progress counters for looping apps */
struct app_shm {
    atomic_ulong ops[8];
    atomic_ulong errors[8];
    atomic_int done[8];
};
static struct app_shm *g_shm;

static int read_check(const char *name, size_t len, uint64_t off, char *err, size_t errlen)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", g_mnt, name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, errlen, "open: %s", strerror(errno));
        return -1;
    }
    static char buf[65536];
    ssize_t n = pread(fd, buf, len, (off_t)off);
    int e = errno;
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "pread: %s", strerror(e));
        return -1;
    }
    for (ssize_t i = 0; i < n; i++)
        if ((uint8_t)buf[i] != pattern(off + (uint64_t)i)) {
            snprintf(err, errlen, "pattern mismatch at %zd", i);
            return -1;
        }
    if ((size_t)n != len) {
        snprintf(err, errlen, "short read %zd", n);
        return -1;
    }
    return 0;
}

/* one application read pinned to cpu; prints the outcome when it returns */
static pid_t app_read(const char *tag, int cpu, const char *name)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    snprintf(g_who, sizeof(g_who), "%s", tag);
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof(s), &s);
    double t = now_s();
    char err[128] = "";
    int rc = read_check(name, 4096, 8192, err, sizeof(err));
    LOG("read %s on cpu%d: %s%s after %.3f s", name, cpu, rc ? "FAILED " : "ok", err,
        now_s() - t);
    _exit(rc ? 1 : 0);
}

/* loop: stat + read + create/write, until told to stop (shm done flag) */
static pid_t app_loop(int idx, int cpu)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    snprintf(g_who, sizeof(g_who), "loop%d", idx);
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof(s), &s);
    char path[512], err[128];
    unsigned long k = 0;
    while (!atomic_load(&g_shm->done[idx])) {
        struct stat st;
        snprintf(path, sizeof(path), "%s/f", g_mnt);
        int bad = stat(path, &st) < 0 || st.st_size != FILE_SIZE;
        if (bad)
            LOG("stat: %s", strerror(errno));
        if (!bad && read_check("f", 4096, (k * 4096) % FILE_SIZE, err, sizeof(err)) < 0) {
            LOG("%s", err);
            bad = 1;
        }
        if (!bad && (k % 16) == 0) {
            snprintf(path, sizeof(path), "%s/new%d_%lu", g_mnt, idx, k);
            int fd = open(path, O_CREAT | O_WRONLY, 0644);
            if (fd < 0 || write(fd, "hello", 5) != 5) {
                LOG("create/write %s: %s", path, strerror(errno));
                bad = 1;
            }
            if (fd >= 0)
                close(fd);
        }
        atomic_fetch_add(&g_shm->ops[idx], 1);
        if (bad)
            atomic_fetch_add(&g_shm->errors[idx], 1);
        k++;
    }
    _exit(0);
}

/* ------------------------------------------------------------ keeper */

#define MAX_PIDS 32
static pid_t g_pids[MAX_PIDS];
static int g_npids;
static void track(pid_t p)
{
    if (p > 0 && g_npids < MAX_PIDS)
        g_pids[g_npids++] = p;
}

/* returns 1 if pid exited within ms (reaped), 0 if still running */
static int wait_for(pid_t pid, int ms, int *status)
{
    for (int t = 0; t <= ms; t += 10) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 1;
        if (r < 0)
            return 1;
        msleep(10);
    }
    return 0;
}

static void show_blocked(pid_t pid, const char *tag)
{
    char p[64], wchan[128] = "?", st[256] = "";
    snprintf(p, sizeof(p), "/proc/%d/wchan", pid);
    int fd = open(p, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, wchan, sizeof(wchan) - 1);
        wchan[n > 0 ? n : 0] = 0;
        close(fd);
    }
    snprintf(p, sizeof(p), "/proc/%d/stat", pid);
    fd = open(p, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, st, sizeof(st) - 1);
        st[n > 0 ? n : 0] = 0;
        close(fd);
    }
    char *rp = strrchr(st, ')');
    LOG("%s (pid %d) still blocked: state=%c wchan=%s", tag, pid, rp ? rp[2] : '?', wchan);
}

static int keeper_mount(void)
{
    g_devfd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (g_devfd < 0) {
        perror("/dev/fuse");
        return -1;
    }
    char data[256];
    snprintf(data, sizeof(data), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", g_devfd);
    if (mount("uhexp", g_mnt, "fuse.uhexp", MS_NOSUID | MS_NODEV, data) < 0) {
        perror("mount");
        return -1;
    }
    struct stat st;
    /* the root GETATTR would block before INIT: take the id from mountinfo */
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    while (f && fgets(line, sizeof(line), f)) {
        unsigned maj, min;
        char m[1024];
        if (sscanf(line, "%*d %*d %u:%u %*s %1023s", &maj, &min, m) == 3 &&
            strcmp(m, g_mnt) == 0)
            g_conn = (int)min;
    }
    if (f)
        fclose(f);
    (void)st;
    g_memfd = memfd_create("uring-arena", 0);
    if (g_memfd < 0 || ftruncate(g_memfd, (off_t)GENS * MAX_Q * MAX_DEPTH * SLOT_STRIDE) < 0) {
        perror("memfd");
        return -1;
    }
    LOG("mounted %s, connection %d, keeper holds /dev/fuse fd %d; queues=%d depth=%d", g_mnt,
        g_conn, g_devfd, g_nq, g_depth);
    return 0;
}

static void keeper_cleanup(void)
{
    LOG("cleanup: umount -l, abort connection, kill children");
    umount2(g_mnt, MNT_DETACH);
    char p[128];
    snprintf(p, sizeof(p), "/sys/fs/fuse/connections/%d/abort", g_conn);
    int fd = open(p, O_WRONLY);
    if (fd >= 0) {
        ssize_t w = write(fd, "1", 1);
        (void)w;
        close(fd);
    }
    for (int i = 0; i < g_npids; i++) {
        int st;
        if (wait_for(g_pids[i], 500, &st))
            continue;
        kill(g_pids[i], SIGKILL);
        waitpid(g_pids[i], &st, 0);
    }
    if (g_devfd >= 0)
        close(g_devfd);
    show_dmesg();
}

static void report_app(pid_t pid, const char *tag, int ms)
{
    int st;
    if (wait_for(pid, ms, &st))
        LOG("%s (pid %d) returned, exit=%d", tag, pid, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    else
        show_blocked(pid, tag);
}

/* K's view of a ring it holds a dup of: the completions A never reaped */
static struct io_uring g_kring;
static int g_kring_ok;
static void peek_kring(const char *when)
{
    if (!g_kring_ok)
        return;
    unsigned n = 0;
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&g_kring, &cqe) == 0) {
        struct ent *e = io_uring_cqe_get_data(cqe);
        (void)e;
        LOG("K reads A's ring CQ (%s): user_data=%#llx res=%d (%s)", when,
            (unsigned long long)cqe->user_data, cqe->res,
            cqe->res < 0 ? strerror(-cqe->res) : "request delivered");
        io_uring_cqe_seen(&g_kring, cqe);
        n++;
    }
    LOG("K: %u completions in A's ring CQ (%s)", n, when);
}

/* crash scenarios: busy = A holds a read of "slow"; ringfd = K keeps A's ring */
static void scenario_crash(int busy, int ringfd, int adopt)
{
    int sv[2] = { -1, -1 };
    if (ringfd)
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct daemon_opts a = { .name = "A", .gen = 0, .do_init = 1, .hold = busy, .adopt_gen = -1,
                             .send_ringfd = ringfd ? sv[1] : -1 };
    pid_t pa = spawn_daemon(a);
    track(pa);
    if (ringfd) {
        struct ringfd_msg m;
        int rfd = recv_fd(sv[0], &m, sizeof(m));
        if (rfd == -ENOENT) {
            int pidfd = (int)syscall(SYS_pidfd_open, pa, 0);
            rfd = pidfd < 0 ? -errno : (int)syscall(SYS_pidfd_getfd, pidfd, m.fdnum, 0);
            if (rfd < 0 && pidfd >= 0)
                rfd = -errno;
            LOG("K takes A's ring fd %d with pidfd_getfd: %s", m.fdnum,
                rfd < 0 ? strerror(-rfd) : "ok");
            if (pidfd >= 0)
                close(pidfd);
        }
        int rc = rfd < 0 ? rfd : io_uring_queue_mmap(rfd, &m.p, &g_kring);
        g_kring_ok = rc == 0;
        LOG("K holds a dup of A's ring fd (%d): %s", rfd, rc ? strerror(-rc) : "mapped");
        close(sv[1]);
    }
    pid_t r0 = app_read("app0", 0, "f");
    track(r0);
    report_app(r0, "app0 (A alive)", 2000);
    pid_t held = -1;
    if (busy) {
        held = app_read("held", 0, "slow");
        track(held);
        msleep(300);
        show_blocked(held, "held read (inside A's ring entry)");
    }
    peek_kring("A alive");
    show_conn("A alive");
    LOG("kill -9 A (pid %d)", pa);
    kill(pa, SIGKILL);
    int st;
    waitpid(pa, &st, 0);
    msleep(300);
    show_conn("A dead");
    peek_kring("after A died");
    if (busy)
        report_app(held, "held read after A died", 2000);
    pid_t r1 = app_read("app1", 0, "f");
    track(r1);
    report_app(r1, "app1 (new request, A dead, no B)", 2000);
    show_conn("A dead, app1 issued");
    show_dmesg();

    struct daemon_opts b = { .name = "B", .gen = 1, .do_init = 0, .hold = 0,
                             .adopt_gen = adopt ? 0 : -1, .send_ringfd = -1 };
    pid_t pb = spawn_daemon(b);
    track(pb);
    report_app(r1, "app1 after B registered", 1500);
    pid_t r2 = app_read("app2", 0, "f");
    track(r2);
    report_app(r2, "app2 (new request on q0, B registered)", 2000);
    report_app(r1, "app1 after app2 went through q0", 1000);
    pid_t r3 = app_read("app3", 1, "f");
    track(r3);
    report_app(r3, "app3 (new request on q1)", 2000);
    show_conn("B serving");
    if (busy) {
        report_app(held, "held read after B registered", 500);
        LOG("K asks B to write FUSE_NOTIFY_RESEND");
        kill(pb, SIGUSR2);
        msleep(1500);
        report_app(held, "held read after NOTIFY_RESEND", 500);
    }
    kill(pb, SIGUSR1);
    msleep(200);
    show_conn("end");
    peek_kring("end");
    show_dmesg();
}

/* graceful: generations of daemons replace each other under load */
static void scenario_graceful(int rounds, int adopt_after)
{
    g_shm = mmap(NULL, sizeof(*g_shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(g_shm, 0, sizeof(*g_shm));
    char name[8] = "A";
    struct daemon_opts o = { .name = name, .gen = 0, .do_init = 1, .adopt_gen = -1,
                             .send_ringfd = -1 };
    pid_t cur = spawn_daemon(o);
    track(cur);
    pid_t loops[4];
    int nloops = g_nq < 4 ? g_nq * 2 : 4;
    for (int i = 0; i < nloops; i++) {
        loops[i] = app_loop(i, i % g_nq);
        track(loops[i]);
    }
    int hangs = 0;
    unsigned long last[8] = { 0 };
    for (int r = 1; r <= rounds; r++) {
        msleep(700);
        char nm[8];
        snprintf(nm, sizeof(nm), "%c", 'A' + (r % 26));
        struct daemon_opts n = { .name = nm, .gen = r % GENS, .do_init = 0, .adopt_gen = -1,
                                 .send_ringfd = -1 };
        pid_t next = spawn_daemon(n);
        track(next);
        msleep(500); /* both registered: load spreads? */
        kill(cur, SIGUSR1);
        kill(next, SIGUSR1);
        msleep(100);
        kill(cur, SIGTERM); /* old daemon: io_uring_queue_exit + exit(0) */
        int st;
        if (!wait_for(cur, 3000, &st))
            LOG("old daemon %d did not exit", cur);
        show_conn("old daemon gone");
        if (adopt_after)
            kill(next, SIGWINCH);
        cur = next;
        /* any loop stuck? check progress over 1.5 s */
        for (int i = 0; i < nloops; i++)
            last[i] = atomic_load(&g_shm->ops[i]);
        msleep(1500);
        for (int i = 0; i < nloops; i++) {
            unsigned long now = atomic_load(&g_shm->ops[i]);
            if (now == last[i]) {
                hangs++;
                show_blocked(loops[i], "loop (no progress for 1.5 s)");
            }
        }
        show_conn("after handoff");
        LOG("round %d: ops=[%lu %lu %lu %lu] errors=[%lu %lu %lu %lu]", r,
            atomic_load(&g_shm->ops[0]), atomic_load(&g_shm->ops[1]),
            atomic_load(&g_shm->ops[2]), atomic_load(&g_shm->ops[3]),
            atomic_load(&g_shm->errors[0]), atomic_load(&g_shm->errors[1]),
            atomic_load(&g_shm->errors[2]), atomic_load(&g_shm->errors[3]));
        if (hangs)
            break;
    }
    LOG("graceful: %d stuck loop(s) observed", hangs);
    for (int i = 0; i < nloops; i++)
        atomic_store(&g_shm->done[i], 1);
    for (int i = 0; i < nloops; i++) {
        int st;
        if (!wait_for(loops[i], 1000, &st))
            show_blocked(loops[i], "loop at end");
    }
    kill(cur, SIGUSR1);
    msleep(100);
    show_dmesg();
}

int main(int argc, char **argv)
{
    clock_gettime(CLOCK_MONOTONIC, &g_t0);
    if (argc < 3) {
        fprintf(stderr,
                "usage: %s SCENARIO MOUNTDIR [depth] [rounds]\n"
                "  crash-idle        kill -9 A while idle; B re-registers\n"
                "  crash-busy        kill -9 A while it holds a read; B registers + RESEND\n"
                "  crash-busy-ringfd as crash-busy, K holds a dup of A's ring fd\n"
                "  crash-adopt       as crash-busy, B answers A's held entry from the shared arena\n"
                "  graceful          successive daemons register, then the old one exits\n"
                "  graceful-adopt    as graceful, the successor answers what the old one left\n",
                argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *sc = argv[1];
    g_mnt = realpath(argv[2], NULL);
    if (g_mnt == NULL) {
        perror(argv[2]);
        return 2;
    }
    if (argc > 3)
        g_depth = atoi(argv[3]);
    int rounds = argc > 4 ? atoi(argv[4]) : 10;
    if (g_depth < 1 || g_depth > MAX_DEPTH)
        g_depth = 2;
    g_nq = possible_cpus();
    if (g_nq > MAX_Q) {
        fprintf(stderr, "too many possible CPUs (%d)\n", g_nq);
        return 2;
    }
    g_dmesg_base = dmesg_lines();
    if (keeper_mount() < 0)
        return 1;
    LOG("scenario %s", sc);
    if (strcmp(sc, "crash-idle") == 0)
        scenario_crash(0, 0, 0);
    else if (strcmp(sc, "crash-busy") == 0)
        scenario_crash(1, 0, 0);
    else if (strcmp(sc, "crash-busy-ringfd") == 0)
        scenario_crash(1, 1, 0);
    else if (strcmp(sc, "crash-adopt") == 0)
        scenario_crash(1, 0, 1);
    else if (strcmp(sc, "graceful") == 0)
        scenario_graceful(rounds, 0);
    else if (strcmp(sc, "graceful-adopt") == 0)
        scenario_graceful(rounds, 1);
    else
        LOG("unknown scenario");
    keeper_cleanup();
    return 0;
}
