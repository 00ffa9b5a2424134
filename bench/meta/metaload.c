/*
 * metaload - metadata load generator for bench/meta/run.sh.
 *
 * Runs ONE phase per invocation so that the harness can read server-side
 * counters (etcd's Prometheus metrics, LMDB's last transaction id, MooseFS's
 * operation counters) right before and after it. Layout under --dir:
 *
 *   w<T>/f<I>   files of worker T (create, stat, rename f->r, unlink r)
 *   w<T>/r<I>   the same files after the rename phase
 *   big/e<I>    the --big-n entry directory for readdir (made by "mkbig")
 *
 * Phases (P = --threads workers, each on its own directory w<T>, N = --n
 * operations in total, split evenly; all workers start at one barrier and the
 * phase time is barrier to last worker done, CLOCK_MONOTONIC):
 *   create   open(O_CREAT|O_EXCL|O_WRONLY)+close of w<T>/f<I>
 *   stat     stat(2) of w<T>/f<I>
 *   rename   rename(2) w<T>/f<I> -> w<T>/r<I> (same directory)
 *   unlink   unlink(2) of w<T>/r<I>
 *   mkbig    mknod(S_IFREG) of big/e<I>, I < --big-n (setup of readdir)
 *   readdir  --passes passes; in each, every worker lists big/ once
 *            (opendir, readdir to the end, closedir)
 * --drop-dentries writes 2 to /proc/sys/vm/drop_caches before the phase (and
 * before every readdir pass), untimed: the client's dentries and inodes go
 * (so stat is a LOOKUP and a listing is not served from the kernel's cache)
 * while open server files (LMDB, etcd's bbolt) keep their page cache.
 *
 * --state FILE remembers how many files each worker has (create and rename
 * write it, later phases read it), so a phase cut short by --max-seconds
 * leaves the next phases working on files that exist.
 *
 * Output: one JSON object on stdout. Errors on stderr; the exit status is 1
 * only when the phase could not run at all. Benchmarks never assert times.
 *
 * Build: cc -O2 -Wall -Wextra -Werror -pthread -o metaload metaload.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256

enum phase { PH_CREATE, PH_STAT, PH_RENAME, PH_UNLINK, PH_MKBIG, PH_READDIR };
static const char *const phase_names[] = {"create", "stat", "rename", "unlink", "mkbig", "readdir"};

struct opts {
    const char *dir;
    const char *state;
    enum phase phase;
    int threads;
    long n;
    long big_n;
    int passes;
    double max_seconds;
    int drop;
};

struct worker {
    pthread_t tid;
    int idx;
    long first, count;      /* indices [first, first+count) of this worker */
    long done, errors;
    uint64_t *lat_ns;       /* one entry per completed op (not readdir) */
    long entries;           /* readdir: entries seen in the last listing */
    uint64_t end_ns;
    char first_error[160];
};

static struct opts g_o;
static pthread_barrier_t g_barrier;
static uint64_t g_start_ns;
static uint64_t g_deadline_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("metaload: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void drop_dentries(void)
{
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0 || write(fd, "2\n", 2) != 2)
        die("drop_caches: %s (needs root)", strerror(errno));
    close(fd);
}

static void note_error(struct worker *w, const char *what, const char *path)
{
    int e = errno;
    if (w->errors++ == 0)
        /* bounded pieces: the message is a hint, not a full path */
        snprintf(w->first_error, sizeof(w->first_error), "%.16s %.100s: %.30s", what, path,
                 strerror(e));
}

/* One metadata operation on file index i of worker w; 0 or -1 (errno set). */
static int one_op(struct worker *w, long i, char *path, size_t plen)
{
    char to[4096];
    int fd;
    switch (g_o.phase) {
    case PH_CREATE:
        snprintf(path, plen, "%s/w%d/f%ld", g_o.dir, w->idx, i);
        fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0)
            return -1;
        return close(fd);
    case PH_MKBIG:
        /* mknod, not open+close: one request instead of create+flush+release,
         * as this setup phase is the slow part of a run on a slow KV */
        snprintf(path, plen, "%s/big/e%ld", g_o.dir, i);
        return mknod(path, S_IFREG | 0644, 0);
    case PH_STAT: {
        struct stat st;
        snprintf(path, plen, "%s/w%d/f%ld", g_o.dir, w->idx, i);
        return stat(path, &st);
    }
    case PH_RENAME:
        snprintf(path, plen, "%s/w%d/f%ld", g_o.dir, w->idx, i);
        snprintf(to, sizeof(to), "%s/w%d/r%ld", g_o.dir, w->idx, i);
        return rename(path, to);
    case PH_UNLINK:
        snprintf(path, plen, "%s/w%d/r%ld", g_o.dir, w->idx, i);
        return unlink(path);
    case PH_READDIR:
        break;
    }
    errno = EINVAL;
    return -1;
}

static long list_big(struct worker *w)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/big", g_o.dir);
    DIR *d = opendir(path);
    if (!d) {
        note_error(w, "opendir", path);
        return -1;
    }
    long n = 0;
    errno = 0;
    while (readdir(d))
        n++;
    if (errno)
        note_error(w, "readdir", path);
    closedir(d);
    return n;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char path[4096];
    pthread_barrier_wait(&g_barrier);
    if (g_o.phase == PH_READDIR) {
        long n = list_big(w);
        if (n >= 0) {
            w->entries = n;
            w->done++;
        }
        w->end_ns = now_ns();
        return NULL;
    }
    for (long k = 0; k < w->count; k++) {
        uint64_t t0 = now_ns();
        if (g_deadline_ns && t0 >= g_deadline_ns)
            break;
        if (one_op(w, w->first + k, path, sizeof(path)) == 0)
            w->lat_ns[w->done++] = now_ns() - t0;
        else
            note_error(w, phase_names[g_o.phase], path);
    }
    w->end_ns = now_ns();
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* --state: "T COUNT" lines. Missing file = every worker has n/P files. */
static void load_state(struct worker *ws)
{
    if (!g_o.state)
        return;
    FILE *f = fopen(g_o.state, "r");
    if (!f)
        return;
    int t;
    long c;
    while (fscanf(f, "%d %ld", &t, &c) == 2)
        if (t >= 0 && t < g_o.threads && c >= 0 && c <= ws[t].count)
            ws[t].count = c;
    fclose(f);
}

static void save_state(const struct worker *ws)
{
    if (!g_o.state)
        return;
    FILE *f = fopen(g_o.state, "w");
    if (!f)
        die("%s: %s", g_o.state, strerror(errno));
    for (int t = 0; t < g_o.threads; t++)
        fprintf(f, "%d %ld\n", t, ws[t].done);
    if (fclose(f))
        die("%s: %s", g_o.state, strerror(errno));
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void print_errors(const struct worker *ws, long errors)
{
    printf(", \"errors\": %ld, \"first_error\": ", errors);
    const char *fe = "";
    for (int t = 0; t < g_o.threads; t++)
        if (ws[t].errors) {
            fe = ws[t].first_error;
            break;
        }
    json_str(fe);
}

/* Run P workers once; returns the wall time from barrier to last done. */
static double run_workers(struct worker *ws)
{
    pthread_barrier_init(&g_barrier, NULL, (unsigned)g_o.threads + 1);
    for (int t = 0; t < g_o.threads; t++)
        if ((errno = pthread_create(&ws[t].tid, NULL, worker_main, &ws[t])))
            die("pthread_create: %s", strerror(errno));
    g_start_ns = now_ns();
    g_deadline_ns = g_o.max_seconds > 0 ? g_start_ns + (uint64_t)(g_o.max_seconds * 1e9) : 0;
    pthread_barrier_wait(&g_barrier);
    uint64_t end = g_start_ns;
    for (int t = 0; t < g_o.threads; t++) {
        pthread_join(ws[t].tid, NULL);
        if (ws[t].end_ns > end)
            end = ws[t].end_ns;
    }
    pthread_barrier_destroy(&g_barrier);
    return (double)(end - g_start_ns) * 1e-9;
}

static int run_readdir(struct worker *ws)
{
    double *pass_s = calloc((size_t)g_o.passes, sizeof(double));
    if (!pass_s)
        die("out of memory");
    long listings = 0, entries = 0, errors = 0;
    double total = 0;
    for (int p = 0; p < g_o.passes; p++) {
        if (g_o.drop)
            drop_dentries();
        for (int t = 0; t < g_o.threads; t++)
            ws[t].done = 0;
        pass_s[p] = run_workers(ws);
        total += pass_s[p];
        for (int t = 0; t < g_o.threads; t++) {
            listings += ws[t].done;
            if (ws[t].done)
                entries = ws[t].entries;
        }
        fprintf(stderr, "metaload: readdir pass %d: %.1f ms\n", p + 1, pass_s[p] * 1e3);
    }
    for (int t = 0; t < g_o.threads; t++)
        errors += ws[t].errors;
    double first = pass_s[0];
    qsort(pass_s, (size_t)g_o.passes, sizeof(double), cmp_double);
    double med = pass_s[g_o.passes / 2];
    printf("{\"phase\": \"readdir\", \"threads\": %d, \"passes\": %d, \"listings\": %ld, "
           "\"entries_per_listing\": %ld, \"seconds\": %.6f, \"pass_ms_median\": %.3f, "
           "\"pass_ms_first\": %.3f, \"pass_ms_min\": %.3f, \"pass_ms_max\": %.3f, "
           "\"listings_per_s\": %.3f, \"entries_per_s\": %.1f, \"ops\": %ld, "
           "\"ops_per_s\": %.3f, \"lat_us\": {\"mean\": %.1f}",
           g_o.threads, g_o.passes, listings, entries, total, med * 1e3, first * 1e3,
           pass_s[0] * 1e3, pass_s[g_o.passes - 1] * 1e3, med > 0 ? g_o.threads / med : 0,
           med > 0 ? (double)g_o.threads * (double)entries / med : 0, listings,
           total > 0 ? (double)listings / total : 0,
           listings ? total * 1e6 * g_o.threads / (double)listings : 0);
    print_errors(ws, errors);
    printf("}\n");
    free(pass_s);
    return 0;
}

static int run_ops(struct worker *ws)
{
    long total_n = g_o.phase == PH_MKBIG ? g_o.big_n : g_o.n;
    long per = total_n / g_o.threads, rest = total_n % g_o.threads, next = 0;
    for (int t = 0; t < g_o.threads; t++) {
        /* mkbig: one shared directory, disjoint index ranges */
        ws[t].count = per + (t < rest);
        ws[t].first = g_o.phase == PH_MKBIG ? next : 0;
        next += ws[t].count;
    }
    if (g_o.phase != PH_CREATE && g_o.phase != PH_MKBIG)
        load_state(ws);
    char path[4096];
    if (g_o.phase == PH_CREATE) {
        for (int t = 0; t < g_o.threads; t++) {
            snprintf(path, sizeof(path), "%s/w%d", g_o.dir, t);
            if (mkdir(path, 0755) && errno != EEXIST)
                die("mkdir %s: %s", path, strerror(errno));
        }
    } else if (g_o.phase == PH_MKBIG) {
        snprintf(path, sizeof(path), "%s/big", g_o.dir);
        if (mkdir(path, 0755) && errno != EEXIST)
            die("mkdir %s: %s", path, strerror(errno));
    }
    for (int t = 0; t < g_o.threads; t++) {
        ws[t].lat_ns = malloc(sizeof(uint64_t) * (size_t)(ws[t].count ? ws[t].count : 1));
        if (!ws[t].lat_ns)
            die("out of memory");
    }
    if (g_o.drop)
        drop_dentries();
    double secs = run_workers(ws);

    long done = 0, errors = 0, attempted = 0;
    for (int t = 0; t < g_o.threads; t++) {
        done += ws[t].done;
        errors += ws[t].errors;
        attempted += ws[t].count;
    }
    uint64_t *all = malloc(sizeof(uint64_t) * (size_t)(done ? done : 1));
    if (!all)
        die("out of memory");
    long k = 0;
    double sum = 0;
    for (int t = 0; t < g_o.threads; t++)
        for (long i = 0; i < ws[t].done; i++) {
            all[k++] = ws[t].lat_ns[i];
            sum += (double)ws[t].lat_ns[i];
        }
    qsort(all, (size_t)done, sizeof(uint64_t), cmp_u64);
#define PCT(q) (done ? (double)all[(long)((double)(done - 1) * (q))] / 1e3 : 0)
    printf("{\"phase\": \"%s\", \"threads\": %d, \"ops\": %ld, \"planned\": %ld, "
           "\"seconds\": %.6f, \"ops_per_s\": %.3f, \"capped\": %s, "
           "\"lat_us\": {\"mean\": %.1f, \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, "
           "\"max\": %.1f}",
           phase_names[g_o.phase], g_o.threads, done, attempted, secs,
           secs > 0 ? (double)done / secs : 0, done + errors < attempted ? "true" : "false",
           done ? sum / (double)done / 1e3 : 0, PCT(0.5), PCT(0.9), PCT(0.99), PCT(1.0));
#undef PCT
    print_errors(ws, errors);
    printf("}\n");
    if (g_o.phase == PH_CREATE || g_o.phase == PH_RENAME)
        save_state(ws);
    free(all);
    for (int t = 0; t < g_o.threads; t++)
        free(ws[t].lat_ns);
    return 0;
}

static void usage(FILE *f)
{
    fputs("Usage: metaload --dir DIR --phase PHASE [OPTIONS]\n"
          "\n"
          "Phases: create stat rename unlink (on DIR/w<T>/), mkbig readdir (on DIR/big/).\n"
          "\n"
          "  --dir DIR          directory on the file system under test (required)\n"
          "  --phase PHASE      the one phase to run (required)\n"
          "  --threads P        parallel workers, one directory each (default 1)\n"
          "  --n N              operations in total for create/stat/rename/unlink\n"
          "                     (default 2000)\n"
          "  --big-n N          entries of DIR/big (mkbig; default 10000)\n"
          "  --passes R         readdir passes (default 3)\n"
          "  --max-seconds S    stop a phase after S seconds (default 0 = no cap)\n"
          "  --state FILE       per-worker file counts carried between phases\n"
          "  --drop-dentries    echo 2 > /proc/sys/vm/drop_caches before the phase\n"
          "                     and before every readdir pass (root)\n"
          "  -h, --help         this text\n",
          f);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"dir", required_argument, 0, 'd'},     {"phase", required_argument, 0, 'p'},
        {"threads", required_argument, 0, 't'}, {"n", required_argument, 0, 'n'},
        {"big-n", required_argument, 0, 'b'},   {"passes", required_argument, 0, 'r'},
        {"max-seconds", required_argument, 0, 'm'}, {"state", required_argument, 0, 's'},
        {"drop-dentries", no_argument, 0, 'D'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    g_o = (struct opts){.threads = 1, .n = 2000, .big_n = 10000, .passes = 3, .phase = -1};
    int c;
    const char *phase = NULL;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'd': g_o.dir = optarg; break;
        case 'p': phase = optarg; break;
        case 't': g_o.threads = atoi(optarg); break;
        case 'n': g_o.n = atol(optarg); break;
        case 'b': g_o.big_n = atol(optarg); break;
        case 'r': g_o.passes = atoi(optarg); break;
        case 'm': g_o.max_seconds = atof(optarg); break;
        case 's': g_o.state = optarg; break;
        case 'D': g_o.drop = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!g_o.dir || !phase) {
        usage(stderr);
        return 2;
    }
    for (unsigned i = 0; i < sizeof(phase_names) / sizeof(phase_names[0]); i++)
        if (!strcmp(phase, phase_names[i]))
            g_o.phase = (enum phase)i;
    if ((int)g_o.phase < 0)
        die("unknown phase '%s'", phase);
    if (g_o.threads < 1 || g_o.threads > MAX_THREADS || g_o.n < 0 || g_o.big_n < 0 ||
        g_o.passes < 1)
        die("bad --threads/--n/--big-n/--passes");
    struct worker *ws = calloc((size_t)g_o.threads, sizeof(*ws));
    if (!ws)
        die("out of memory");
    for (int t = 0; t < g_o.threads; t++)
        ws[t].idx = t;
    int rc = g_o.phase == PH_READDIR ? run_readdir(ws) : run_ops(ws);
    free(ws);
    return rc;
}
