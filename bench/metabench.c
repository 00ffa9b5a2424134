/*
 * metabench - small metadata / QD1 read micro-benchmark for valorfs and peers.
 *
 * Measures, on one directory:
 *   stat    stat(2) of N existing files                       (ops/s)
 *   create  open(O_CREAT|O_EXCL)+close of N new files, then
 *           unlink of the N files                              (ops/s)
 *   list    opendir/readdir/closedir of an N-entry directory   (entries/s, ms)
 *   pread   4 KiB random pread at QD1 on a file, per-op latency
 *           recorded                                          (IOPS, p50/p99 us)
 *
 * Output: one JSON object per run on stdout. Progress/errors on stderr.
 * Benchmarks never assert times: the exit status only reports errors.
 *
 * Build: cc -O2 -Wall -Wextra -Werror -o metabench metabench.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define FILES_SUBDIR "mb-files"
#define CREATE_SUBDIR "mb-create"

struct opts {
    const char *dir;
    const char *file;       /* pread target; default DIR/mb-pread.dat */
    long n;                 /* files for stat/create/list */
    double max_seconds;     /* cap for each of stat/create/list */
    double pread_seconds;   /* duration of the pread run */
    long pread_max_ops;     /* cap of pread ops (0 = none) */
    int list_passes;
    int pin;                /* -1 = no pin */
    int direct;             /* O_DIRECT for pread */
    int drop_caches;        /* echo 3 > /proc/sys/vm/drop_caches before each op */
    unsigned bs;
    unsigned long long seed;
    int do_setup, do_stat, do_create, do_list, do_pread;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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
    fputs("metabench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("metabench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void drop_caches(const struct opts *o)
{
    if (!o->drop_caches)
        return;
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0 || write(fd, "3\n", 2) != 2)
        die("cannot write /proc/sys/vm/drop_caches: %s", strerror(errno));
    close(fd);
}

static void fname(char *buf, size_t len, const char *dir, const char *sub, long i)
{
    int r = snprintf(buf, len, "%s/%s/f%07ld", dir, sub, i);
    if (r < 0 || (size_t)r >= len)
        die("path too long");
}

static void subdir(char *buf, size_t len, const char *dir, const char *sub)
{
    int r = snprintf(buf, len, "%s/%s", dir, sub);
    if (r < 0 || (size_t)r >= len)
        die("path too long");
}

/* Create DIR/mb-files/f0000000..f(N-1) (empty) and DIR/mb-create; idempotent. */
static void op_setup(const struct opts *o)
{
    char p[4096];
    subdir(p, sizeof p, o->dir, FILES_SUBDIR);
    if (mkdir(p, 0755) && errno != EEXIST)
        die("mkdir %s: %s", p, strerror(errno));
    subdir(p, sizeof p, o->dir, CREATE_SUBDIR);
    if (mkdir(p, 0755) && errno != EEXIST)
        die("mkdir %s: %s", p, strerror(errno));
    for (long i = 0; i < o->n; i++) {
        fname(p, sizeof p, o->dir, FILES_SUBDIR, i);
        int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0)
            die("create %s: %s", p, strerror(errno));
        close(fd);
    }
}

static void op_stat(const struct opts *o, FILE *out)
{
    char p[4096];
    struct stat st;
    drop_caches(o);
    long done = 0;
    double t0 = now_s(), t = t0;
    for (long i = 0; i < o->n; i++) {
        fname(p, sizeof p, o->dir, FILES_SUBDIR, i);
        if (stat(p, &st))
            die("stat %s: %s", p, strerror(errno));
        done++;
        if ((i & 255) == 255 && (t = now_s()) - t0 > o->max_seconds)
            break;
    }
    t = now_s() - t0;
    fprintf(out, "\"stat\":{\"ops\":%ld,\"seconds\":%.6f,\"ops_per_s\":%.1f,\"capped\":%s}",
            done, t, done / t, done < o->n ? "true" : "false");
}

static void op_create(const struct opts *o, FILE *out)
{
    char p[4096];
    drop_caches(o);
    long created = 0;
    double t0 = now_s();
    for (long i = 0; i < o->n; i++) {
        fname(p, sizeof p, o->dir, CREATE_SUBDIR, i);
        int fd = open(p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0)
            die("create %s: %s", p, strerror(errno));
        if (close(fd))
            die("close %s: %s", p, strerror(errno));
        created++;
        if ((i & 255) == 255 && now_s() - t0 > o->max_seconds)
            break;
    }
    double t1 = now_s();
    for (long i = 0; i < created; i++) {
        fname(p, sizeof p, o->dir, CREATE_SUBDIR, i);
        if (unlink(p))
            die("unlink %s: %s", p, strerror(errno));
    }
    double t2 = now_s();
    double tc = t1 - t0, tu = t2 - t1;
    fprintf(out,
            "\"create\":{\"files\":%ld,\"create_seconds\":%.6f,\"unlink_seconds\":%.6f,"
            "\"create_close_per_s\":%.1f,\"unlink_per_s\":%.1f,\"create_unlink_per_s\":%.1f,"
            "\"capped\":%s}",
            created, tc, tu, created / tc, created / tu, created / (tc + tu),
            created < o->n ? "true" : "false");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void op_list(const struct opts *o, FILE *out)
{
    char p[4096];
    subdir(p, sizeof p, o->dir, FILES_SUBDIR);
    drop_caches(o);
    int passes = o->list_passes < 1 ? 1 : o->list_passes;
    double *ms = calloc((size_t)passes, sizeof *ms);
    if (!ms)
        die("out of memory");
    long entries = 0;
    int done = 0;
    double tstart = now_s();
    for (int k = 0; k < passes; k++) {
        double t0 = now_s();
        DIR *d = opendir(p);
        if (!d)
            die("opendir %s: %s", p, strerror(errno));
        long e = 0;
        struct dirent *de;
        errno = 0;
        while ((de = readdir(d)) != NULL)
            e++;
        if (errno)
            die("readdir %s: %s", p, strerror(errno));
        closedir(d);
        ms[k] = (now_s() - t0) * 1e3;
        entries = e;
        done++;
        if (now_s() - tstart > o->max_seconds)
            break;
    }
    double first = ms[0];
    qsort(ms, (size_t)done, sizeof *ms, cmp_double);
    double med = ms[done / 2];
    fprintf(out,
            "\"list\":{\"entries\":%ld,\"passes\":%d,\"first_ms\":%.3f,\"median_ms\":%.3f,"
            "\"min_ms\":%.3f,\"entries_per_s\":%.1f,\"first_entries_per_s\":%.1f}",
            entries, done, first, med, ms[0], entries / (med / 1e3), entries / (first / 1e3));
    free(ms);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static double pct_us(const uint64_t *v, size_t n, double q)
{
    if (!n)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e3;
}

static void op_pread(const struct opts *o, FILE *out)
{
    char p[4096];
    const char *path = o->file;
    if (!path) {
        subdir(p, sizeof p, o->dir, "mb-pread.dat");
        path = p;
    }
    drop_caches(o);
    int fd = open(path, O_RDONLY | O_CLOEXEC | (o->direct ? O_DIRECT : 0));
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st))
        die("fstat %s: %s", path, strerror(errno));
    uint64_t blocks = (uint64_t)st.st_size / o->bs;
    if (blocks == 0)
        die("%s is smaller than one block (%u bytes)", path, o->bs);
    void *buf;
    if (posix_memalign(&buf, 4096, o->bs))
        die("out of memory");
    size_t cap = 1u << 20, n = 0;
    uint64_t *lat = malloc(cap * sizeof *lat);
    if (!lat)
        die("out of memory");
    uint64_t seed = o->seed ? o->seed : 0x9e3779b97f4a7c15ull;
    uint64_t end = now_ns() + (uint64_t)(o->pread_seconds * 1e9);
    uint64_t t_begin = now_ns(), t = t_begin;
    for (;;) {
        uint64_t off = (xorshift64(&seed) % blocks) * o->bs;
        uint64_t a = now_ns();
        ssize_t r = pread(fd, buf, o->bs, (off_t)off);
        t = now_ns();
        if (r != (ssize_t)o->bs)
            die("pread %s at %llu: %s", path, (unsigned long long)off,
                r < 0 ? strerror(errno) : "short read");
        if (n == cap) {
            cap *= 2;
            uint64_t *nl = realloc(lat, cap * sizeof *lat);
            if (!nl)
                die("out of memory");
            lat = nl;
        }
        lat[n++] = t - a;
        if (t >= end || (o->pread_max_ops && (long)n >= o->pread_max_ops))
            break;
    }
    close(fd);
    double secs = (double)(t - t_begin) / 1e9;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)lat[i];
    qsort(lat, n, sizeof *lat, cmp_u64);
    fputs("\"pread\":{\"file\":", out);
    json_str(out, path);
    fprintf(out,
            ",\"bs\":%u,\"direct\":%s,\"ops\":%zu,\"seconds\":%.6f,"
            "\"iops\":%.1f,\"mean_us\":%.3f,\"p50_us\":%.3f,\"p90_us\":%.3f,\"p99_us\":%.3f,"
            "\"p999_us\":%.3f,\"min_us\":%.3f,\"max_us\":%.3f}",
            o->bs, o->direct ? "true" : "false", n, secs, (double)n / secs,
            sum / (double)n / 1e3, pct_us(lat, n, 0.50), pct_us(lat, n, 0.90),
            pct_us(lat, n, 0.99), pct_us(lat, n, 0.999), (double)lat[0] / 1e3,
            (double)lat[n - 1] / 1e3);
    free(lat);
    free(buf);
}

static void usage(FILE *f)
{
    fputs(
        "Usage: metabench --dir DIR [OPTIONS]\n"
        "\n"
        "Metadata and QD1 read micro-benchmark. Prints one JSON object on stdout.\n"
        "\n"
        "  -d, --dir DIR          directory to work in (files in DIR/" FILES_SUBDIR ",\n"
        "                         creates in DIR/" CREATE_SUBDIR ")\n"
        "  -o, --ops LIST         comma list of setup,stat,create,list,pread,all\n"
        "                         (default: stat,create,list,pread); setup creates\n"
        "                         the N files and the create directory\n"
        "  -n, --n N              files for stat/create/list (default 10000)\n"
        "  -t, --max-seconds S    cap of each stat/create/list phase (default 60)\n"
        "      --list-passes K    directory listing passes (default 5)\n"
        "  -f, --file FILE        pread target (default DIR/mb-pread.dat)\n"
        "  -s, --pread-seconds S  duration of the pread run (default 10)\n"
        "      --pread-max-ops K  stop pread after K ops (default 0 = no cap)\n"
        "      --bs BYTES         pread block size (default 4096)\n"
        "      --direct           open the pread file with O_DIRECT\n"
        "      --seed X           random seed for pread offsets\n"
        "  -p, --pin CPU          pin this process to CPU (sched_setaffinity)\n"
        "      --drop-caches      echo 3 > /proc/sys/vm/drop_caches before each op\n"
        "  -h, --help             show this help\n",
        f);
}

static void parse_ops(struct opts *o, const char *list)
{
    char *dup = strdup(list), *save = NULL;
    if (!dup)
        die("out of memory");
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!strcmp(tok, "setup"))
            o->do_setup = 1;
        else if (!strcmp(tok, "stat"))
            o->do_stat = 1;
        else if (!strcmp(tok, "create"))
            o->do_create = 1;
        else if (!strcmp(tok, "list"))
            o->do_list = 1;
        else if (!strcmp(tok, "pread"))
            o->do_pread = 1;
        else if (!strcmp(tok, "all"))
            o->do_stat = o->do_create = o->do_list = o->do_pread = 1;
        else
            die("unknown op '%s'", tok);
    }
    free(dup);
}

int main(int argc, char **argv)
{
    struct opts o = {
        .n = 10000, .max_seconds = 60, .pread_seconds = 10, .list_passes = 5,
        .pin = -1, .bs = 4096,
    };
    int ops_given = 0;
    enum { OPT_LIST_PASSES = 256, OPT_MAX_OPS, OPT_BS, OPT_DIRECT, OPT_SEED, OPT_DROP };
    static const struct option lo[] = {
        { "dir", required_argument, 0, 'd' },
        { "ops", required_argument, 0, 'o' },
        { "n", required_argument, 0, 'n' },
        { "max-seconds", required_argument, 0, 't' },
        { "list-passes", required_argument, 0, OPT_LIST_PASSES },
        { "file", required_argument, 0, 'f' },
        { "pread-seconds", required_argument, 0, 's' },
        { "pread-max-ops", required_argument, 0, OPT_MAX_OPS },
        { "bs", required_argument, 0, OPT_BS },
        { "direct", no_argument, 0, OPT_DIRECT },
        { "seed", required_argument, 0, OPT_SEED },
        { "pin", required_argument, 0, 'p' },
        { "drop-caches", no_argument, 0, OPT_DROP },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "d:o:n:t:f:s:p:h", lo, NULL)) != -1) {
        switch (c) {
        case 'd': o.dir = optarg; break;
        case 'o': parse_ops(&o, optarg); ops_given = 1; break;
        case 'n': o.n = atol(optarg); break;
        case 't': o.max_seconds = atof(optarg); break;
        case OPT_LIST_PASSES: o.list_passes = atoi(optarg); break;
        case 'f': o.file = optarg; break;
        case 's': o.pread_seconds = atof(optarg); break;
        case OPT_MAX_OPS: o.pread_max_ops = atol(optarg); break;
        case OPT_BS: o.bs = (unsigned)atol(optarg); break;
        case OPT_DIRECT: o.direct = 1; break;
        case OPT_SEED: o.seed = strtoull(optarg, NULL, 0); break;
        case 'p': o.pin = atoi(optarg); break;
        case OPT_DROP: o.drop_caches = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !o.dir) {
        usage(stderr);
        return 2;
    }
    if (!ops_given)
        o.do_stat = o.do_create = o.do_list = o.do_pread = 1;
    if (o.n < 1 || o.bs < 512 || o.max_seconds <= 0 || o.pread_seconds <= 0)
        die("bad numeric option");

    if (o.pin >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(o.pin, &set);
        if (sched_setaffinity(0, sizeof set, &set))
            die("sched_setaffinity(%d): %s", o.pin, strerror(errno));
    }

    if (o.do_setup) {
        progress("setup: %ld files in %s/" FILES_SUBDIR, o.n, o.dir);
        op_setup(&o);
    }

    FILE *out = stdout;
    fputs("{\"tool\":\"metabench\",\"dir\":", out);
    json_str(out, o.dir);
    fprintf(out, ",\"n\":%ld,\"pin\":%d,\"drop_caches\":%s", o.n, o.pin,
            o.drop_caches ? "true" : "false");
    if (o.do_stat) {
        progress("stat: %ld files", o.n);
        fputc(',', out);
        op_stat(&o, out);
    }
    if (o.do_create) {
        progress("create+unlink: %ld files", o.n);
        fputc(',', out);
        op_create(&o, out);
    }
    if (o.do_list) {
        progress("list: %d passes", o.list_passes);
        fputc(',', out);
        op_list(&o, out);
    }
    if (o.do_pread) {
        progress("pread: %u B QD1 for %.1f s%s", o.bs, o.pread_seconds,
                 o.direct ? " (O_DIRECT)" : "");
        fputc(',', out);
        op_pread(&o, out);
    }
    fputs("}\n", out);
    return fflush(out) ? 1 : 0;
}
