/* probe.c - availability probe for bench/recovery/run.sh.
 *
 * Every INTERVAL ms: pwrite 4 KiB (a pattern carrying the iteration number)
 * at the next of 256 slots of FILE, fdatasync, pread the slot back and
 * compare. One line per iteration on stdout:
 *
 *   start_epoch_ms  end_epoch_ms  write_us  read_us  status
 *
 * status is "ok", "mismatch" or the errno name of the failing call. Epoch
 * times (CLOCK_REALTIME) line up with the harness's event times and with
 * fio's --log_unix_epoch logs; durations come from CLOCK_MONOTONIC. A call
 * that blocks shows up as one long iteration; the longest gap between two
 * successful iterations is the stall an application saw. Runs until SIGINT
 * or SIGTERM (or --seconds), then exits 0. O_DIRECT is used when the file
 * system accepts it, so every read goes to the servers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOT 4096
#define NSLOTS 256

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int64_t now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fill(uint8_t *buf, uint64_t iter)
{
    for (size_t i = 0; i < SLOT; i += 8) {
        uint64_t v = iter * 0x9E3779B97F4A7C15ull ^ i;
        memcpy(buf + i, &v, 8);
    }
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: probe --file PATH [--interval-ms MS] [--seconds S]\n"
               "Small write+fdatasync+read every MS (default 50) until SIGINT/SIGTERM\n"
               "or S seconds; one line per iteration on stdout (see the source header).\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long interval_ms = 50, seconds = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--file") && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "--interval-ms") && i + 1 < argc)
            interval_ms = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!path || interval_ms < 1 || seconds < 0) {
        usage(stderr);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int direct = 1;
    int fd = open(path, O_RDWR | O_CREAT | O_DIRECT, 0644);
    if (fd < 0 && errno == EINVAL) {
        direct = 0;
        fd = open(path, O_RDWR | O_CREAT, 0644);
    }
    if (fd < 0) {
        fprintf(stderr, "probe: open %s: %s\n", path, strerror(errno));
        return 1;
    }
    fprintf(stderr, "probe: %s O_DIRECT=%s interval=%ld ms\n", path, direct ? "yes" : "no",
            interval_ms);
    uint8_t *wbuf, *rbuf;
    if (posix_memalign((void **)&wbuf, SLOT, SLOT) || posix_memalign((void **)&rbuf, SLOT, SLOT))
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);

    int64_t t_end = seconds ? now_ns(CLOCK_MONOTONIC) + seconds * 1000000000ll : INT64_MAX;
    int64_t next = now_ns(CLOCK_MONOTONIC);
    for (uint64_t iter = 0; !g_stop && now_ns(CLOCK_MONOTONIC) < t_end; iter++) {
        off_t off = (off_t)(iter % NSLOTS) * SLOT;
        const char *status = "ok";
        int64_t e0 = now_ns(CLOCK_REALTIME), m0 = now_ns(CLOCK_MONOTONIC), m1, m2;
        fill(wbuf, iter);
        ssize_t n = pwrite(fd, wbuf, SLOT, off);
        if (n != SLOT)
            status = n < 0 ? strerrorname_np(errno) : "short-write";
        else if (fdatasync(fd) != 0)
            status = strerrorname_np(errno);
        m1 = now_ns(CLOCK_MONOTONIC);
        if (!strcmp(status, "ok")) {
            n = pread(fd, rbuf, SLOT, off);
            if (n != SLOT)
                status = n < 0 ? strerrorname_np(errno) : "short-read";
            else if (memcmp(wbuf, rbuf, SLOT) != 0)
                status = "mismatch";
        }
        m2 = now_ns(CLOCK_MONOTONIC);
        printf("%lld\t%lld\t%lld\t%lld\t%s\n", (long long)(e0 / 1000000),
               (long long)((e0 + (m2 - m0)) / 1000000), (long long)((m1 - m0) / 1000),
               (long long)((m2 - m1) / 1000), status ? status : "error");
        next += interval_ms * 1000000;
        int64_t now = now_ns(CLOCK_MONOTONIC);
        if (next < now)
            next = now; /* after a stall: no burst of catch-up iterations */
        struct timespec ts = {.tv_sec = next / 1000000000, .tv_nsec = next % 1000000000};
        while (!g_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
    }
    close(fd);
    return 0;
}
