/* bench/upgrade/probe.c - the application side of the online-upgrade
 * benchmark: N threads each run a tight loop of small synchronous operations
 * on a mount and log every one of them (start, latency, op, errno), so that
 * bench/upgrade/report.py can find the longest stall an application sees
 * while the FUSE daemon is upgraded or killed underneath it.
 *
 * Modes:
 *   probe run --dir=DIR --out=FILE [--threads=N] [--file-mib=M] [--ready=F]
 *       run until SIGINT/SIGTERM, then write the records and a summary line
 *   probe now          print CLOCK_MONOTONIC in ns (the probe's clock)
 *   probe kill PID     print CLOCK_MONOTONIC in ns, then kill -9 PID at once
 *
 * Every operation reaches the daemon: data goes through O_DIRECT, metadata
 * operations create and unlink fresh names. Each thread cycles through
 *   pread 4 KiB (random offset), pwrite 4 KiB (random offset),
 *   create (open O_CREAT|O_EXCL + close), stat of that new name, unlink.
 *
 * Record format (little endian, 24 bytes): int64 start_ns, int64 latency_ns,
 * uint8 op, uint8 thread, int16 unused, int32 errno (0 = success).
 * A benchmark, not a test: it counts failures, it never asserts. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { OP_PREAD, OP_PWRITE, OP_CREATE, OP_STAT, OP_UNLINK, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"pread", "pwrite", "create", "stat", "unlink"};

struct record {
    int64_t start_ns;
    int64_t latency_ns;
    uint8_t op;
    uint8_t thread;
    int16_t unused;
    int32_t err;
};
_Static_assert(sizeof(struct record) == 24, "record layout is the file format");

struct worker {
    pthread_t tid;
    int index;
    int fd;
    const char *dir;
    uint64_t file_blocks;
    struct record *recs;
    size_t n, cap;
    uint64_t failures;
    int alloc_failed;
};

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig) { (void)sig; stop_flag = 1; }

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Grows the in-memory log; records stay in memory during the run so that
 * logging never adds a write(2) to the timed loop. */
static void log_op(struct worker *w, int op, int64_t start, int64_t end, int err)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 1 << 16;
        struct record *r = realloc(w->recs, cap * sizeof *r);
        if (!r) { w->alloc_failed = 1; return; }
        w->recs = r;
        w->cap = cap;
    }
    w->recs[w->n++] = (struct record){start, end - start, (uint8_t)op, (uint8_t)w->index, 0, err};
    if (err) w->failures++;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    void *buf;
    if (posix_memalign(&buf, 4096, 4096)) { w->alloc_failed = 1; return NULL; }
    memset(buf, 0x5a, 4096);
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)(w->index + 1) * 0x100000001b3ull;
    char name[4096];
    uint64_t seq = 0;
    while (!stop_flag) {
        int64_t t0, t1;
        int err;
        off_t off = (off_t)(xorshift(&seed) % w->file_blocks) * 4096;

        errno = 0;
        t0 = now_ns();
        err = pread(w->fd, buf, 4096, off) == 4096 ? 0 : (errno ? errno : EIO);
        t1 = now_ns();
        log_op(w, OP_PREAD, t0, t1, err);

        off = (off_t)(xorshift(&seed) % w->file_blocks) * 4096;
        errno = 0;
        t0 = now_ns();
        err = pwrite(w->fd, buf, 4096, off) == 4096 ? 0 : (errno ? errno : EIO);
        t1 = now_ns();
        log_op(w, OP_PWRITE, t0, t1, err);

        snprintf(name, sizeof name, "%s/t%d-%" PRIu64, w->dir, w->index, seq++);
        errno = 0;
        t0 = now_ns();
        int fd = open(name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        err = fd >= 0 ? 0 : errno;
        if (fd >= 0 && close(fd) != 0) err = errno;
        t1 = now_ns();
        log_op(w, OP_CREATE, t0, t1, err);
        if (err) continue; /* stat and unlink of a name that was never created would only repeat the failure */

        struct stat st;
        t0 = now_ns();
        err = stat(name, &st) == 0 ? 0 : errno;
        t1 = now_ns();
        log_op(w, OP_STAT, t0, t1, err);

        t0 = now_ns();
        err = unlink(name) == 0 ? 0 : errno;
        t1 = now_ns();
        log_op(w, OP_UNLINK, t0, t1, err);
    }
    free(buf);
    return NULL;
}

/* Pre-writes the thread's data file through the page cache, then reopens it
 * with O_DIRECT so that every timed read and write reaches the daemon. */
static int prepare_file(struct worker *w, unsigned file_mib)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data-%d", w->dir, w->index);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) { fprintf(stderr, "probe: create %s: %s\n", path, strerror(errno)); return -1; }
    static char chunk[1 << 20];
    memset(chunk, 0xa5, sizeof chunk);
    for (unsigned i = 0; i < file_mib; i++) {
        if (write(fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk) {
            fprintf(stderr, "probe: write %s: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    if (fsync(fd) != 0 || close(fd) != 0) { fprintf(stderr, "probe: close %s: %s\n", path, strerror(errno)); return -1; }
    w->fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
    if (w->fd < 0) { fprintf(stderr, "probe: open O_DIRECT %s: %s\n", path, strerror(errno)); return -1; }
    w->file_blocks = (uint64_t)file_mib * 256;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: probe run --dir=DIR --out=FILE [--threads=N] [--file-mib=M] [--ready=FILE]\n"
        "       probe now\n"
        "       probe kill PID\n"
        "\n"
        "run    N threads (default 2) loop pread/pwrite 4 KiB (O_DIRECT, random offset\n"
        "       in a pre-written M MiB file per thread, default 16), create, stat,\n"
        "       unlink in DIR until SIGINT/SIGTERM; then writes 24-byte records\n"
        "       (int64 start_ns, int64 latency_ns, u8 op, u8 thread, i16 0, i32 errno)\n"
        "       to FILE and prints one summary line. --ready=FILE is created once\n"
        "       the loops run. Ops: 0 pread 1 pwrite 2 create 3 stat 4 unlink.\n"
        "now    print CLOCK_MONOTONIC (ns), the clock of the records\n"
        "kill   print CLOCK_MONOTONIC (ns), then send SIGKILL to PID\n");
}

static int cmd_run(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL, *ready = NULL;
    int threads = 2;
    unsigned file_mib = 16;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--dir=", 6)) dir = a + 6;
        else if (!strncmp(a, "--out=", 6)) out = a + 6;
        else if (!strncmp(a, "--ready=", 8)) ready = a + 8;
        else if (!strncmp(a, "--threads=", 10)) threads = atoi(a + 10);
        else if (!strncmp(a, "--file-mib=", 11)) file_mib = (unsigned)atoi(a + 11);
        else { fprintf(stderr, "probe: unknown option '%s'\n", a); usage(stderr); return 2; }
    }
    if (!dir || !out || threads < 1 || threads > 255 || file_mib < 1) { usage(stderr); return 2; }

    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct worker *ws = calloc((size_t)threads, sizeof *ws);
    if (!ws) return 1;
    for (int i = 0; i < threads; i++) {
        ws[i].index = i;
        ws[i].dir = dir;
        if (prepare_file(&ws[i], file_mib) != 0) return 1;
    }
    for (int i = 0; i < threads; i++)
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) { fprintf(stderr, "probe: pthread_create failed\n"); return 1; }
    if (ready) {
        int fd = open(ready, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd >= 0) close(fd);
    }
    for (int i = 0; i < threads; i++) pthread_join(ws[i].tid, NULL);

    FILE *f = fopen(out, "wb");
    if (!f) { fprintf(stderr, "probe: %s: %s\n", out, strerror(errno)); return 1; }
    uint64_t total = 0, failures = 0, per_op_fail[OP_COUNT] = {0};
    int alloc_failed = 0;
    for (int i = 0; i < threads; i++) {
        if (fwrite(ws[i].recs, sizeof(struct record), ws[i].n, f) != ws[i].n) { fprintf(stderr, "probe: write %s failed\n", out); return 1; }
        total += ws[i].n;
        failures += ws[i].failures;
        alloc_failed |= ws[i].alloc_failed;
        for (size_t k = 0; k < ws[i].n; k++)
            if (ws[i].recs[k].err) per_op_fail[ws[i].recs[k].op]++;
        close(ws[i].fd);
        free(ws[i].recs);
    }
    if (fclose(f) != 0) { fprintf(stderr, "probe: close %s failed\n", out); return 1; }
    printf("probe: %" PRIu64 " ops, %" PRIu64 " failed", total, failures);
    for (int o = 0; o < OP_COUNT; o++)
        if (per_op_fail[o]) printf(" %s=%" PRIu64, op_names[o], per_op_fail[o]);
    printf("%s\n", alloc_failed ? " (log memory exhausted: records lost)" : "");
    free(ws);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "run")) return cmd_run(argc, argv);
    if (argc == 2 && !strcmp(argv[1], "now")) { printf("%" PRId64 "\n", now_ns()); return 0; }
    if (argc == 3 && !strcmp(argv[1], "kill")) {
        pid_t pid = (pid_t)atoi(argv[2]);
        if (pid <= 1) { fprintf(stderr, "probe: bad pid '%s'\n", argv[2]); return 2; }
        int64_t t = now_ns();
        if (kill(pid, SIGKILL) != 0) { fprintf(stderr, "probe: kill %d: %s\n", (int)pid, strerror(errno)); return 1; }
        printf("%" PRId64 "\n", t);
        return 0;
    }
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) { usage(stdout); return 0; }
    usage(stderr);
    return 2;
}
