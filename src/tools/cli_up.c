/* cli_up.c — `valorfs up` and `valorfs down`: a whole cluster on one machine.
 *
 * up starts mgmtd, then the storage servers (each with its targets, on plain
 * directories or on loop-device images), creates chain table 1 when the
 * cluster has none, starts meta, and mounts. Every daemon runs detached in
 * its own session with its log in DATA/log and its pid in DATA/run, so down
 * (from any shell, later) finds and stops them. A failed step prints the
 * failing daemon's last log lines and stops what was already started.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "proto/mgmtd_proto.h"
#include "rpc/rpc.h"
#include "tools/cli.h"

static const char up_usage[] =
    "Usage: valorfs up [OPTIONS]\n"
    "\n"
    "Start a complete valorfs cluster on this machine and mount it: one mgmtd,\n"
    "N storage servers (each with its targets), chain table 1 with chains of R\n"
    "replicas on distinct servers, one meta server, and valorfs-fuse. Data, logs\n"
    "and pid files live under --data; running it again on the same --data\n"
    "restarts the cluster with its existing data.\n"
    "\n"
    "Options:\n"
    "  --data=DIR           state directory (default " CLI_DEFAULT_DATA ")\n"
    "  --mount=DIR          mount point (default " CLI_DEFAULT_MOUNT ")\n"
    "  --no-mount           start the servers only\n"
    "  --storage=N          storage servers (default 3)\n"
    "  --targets=N          targets per storage server (default 2)\n"
    "  --replicas=R         replicas per chain (default 3, at most --storage)\n"
    "  --base-port=P        mgmtd listens on P, meta on P+1, storage i on P+10+i\n"
    "                       (default 9600; all on 127.0.0.1)\n"
    "  --loop=SIZE          put each storage server's targets on its own loop-device\n"
    "                       image of SIZE (e.g. 4G), like separate disks\n"
    "  --fs=ext4|xfs        file system for --loop images (default ext4)\n"
    "  --transport=T        valorfs-fuse transport: classic|xfuse|uring (default xfuse)\n"
    "  --chunk-size=BYTES   chunk size of new files (default 1048576; a power of two,\n"
    "                       64 KiB .. 64 MiB)\n"
    "  --stripe=N           chains a new file is striped over (default 4, capped by\n"
    "                       the table's chains)\n"
    "  --kv-sync=commit|none  meta/mgmtd KV durability (default commit: every\n"
    "                       metadata change is on disk before it is acknowledged)\n"
    "  --lease-ms=MS        node lease T (default 60000)\n"
    "  --log-level=L        error|warn|info|debug for every daemon (default info)\n"
    "  --fuse-opt=OPT       extra valorfs-fuse option (repeatable), e.g.\n"
    "                       --fuse-opt=--writeback-cache\n"
    "  -h, --help           show this help\n"
    "\n"
    "Stop everything with: valorfs down --data=DIR\n";

static const char down_usage[] =
    "Usage: valorfs down [--data=DIR] [--force]\n"
    "\n"
    "Unmount and stop the cluster that `valorfs up` started with the same --data\n"
    "(default " CLI_DEFAULT_DATA "): valorfs-fuse, meta, storage servers, mgmtd,\n"
    "in that order, each with SIGTERM and up to 20 s to finish. --force detaches a\n"
    "busy mount (lazy unmount) and kills daemons that do not stop in time.\n";

struct up_opts {
    const char *data, *mount, *transport, *kv_sync, *log_level, *fs, *loop;
    long chunk_size, stripe;
    int nostorage_mount;
    int nstorage, ntargets, replicas, base_port;
    long lease_ms;
    const char *fuse_opts[16];
    int nfuse_opts;
};

static char g_bindir[PATH_MAX];

/* snprintf for paths: a path that does not fit is an error, not a silently
 * shorter path. */
__attribute__((format(printf, 3, 4))) static void pathf(char *out, size_t cap,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "valorfs: path too long: %s\n", out);
        exit(1);
    }
}

/* ---------------- small process helpers ---------------- */

static void die_oom(void *p)
{
    if (!p) {
        fprintf(stderr, "valorfs: out of memory\n");
        exit(1);
    }
}

static void mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    mkdir(tmp, 0755);
}

/* Run argv to completion, output to /dev/null unless verbose. Exit status. */
static int run_cmd(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Start a daemon detached (own session, stdin /dev/null, stdout+stderr to
 * log). The intermediate child exits at once so the daemon is reparented to
 * init and reaped there; its pid comes back through a pipe. */
static pid_t spawn_daemon(char *const argv[], const char *log)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    pid_t mid = fork();
    if (mid < 0)
        return -1;
    if (mid == 0) {
        setsid();
        pid_t pid = fork();
        if (pid == 0) {
            int in = open("/dev/null", O_RDONLY);
            int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (in >= 0)
                dup2(in, 0);
            if (out >= 0) {
                dup2(out, 1);
                dup2(out, 2);
            }
            execv(argv[0], argv);
            fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
            _exit(127);
        }
        if (write(pfd[1], &pid, sizeof(pid)) != sizeof(pid))
            _exit(1);
        _exit(0);
    }
    close(pfd[1]);
    pid_t pid = -1;
    if (read(pfd[0], &pid, sizeof(pid)) != sizeof(pid))
        pid = -1;
    close(pfd[0]);
    waitpid(mid, NULL, 0);
    return pid;
}

static bool pid_alive(pid_t pid)
{
    if (pid <= 0)
        return false;
    char path[64], st[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(st, 1, sizeof(st) - 1, f);
    fclose(f);
    st[n] = 0;
    const char *rp = strrchr(st, ')');
    return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

static void pidfile_path(const char *data, const char *name, char *out, size_t cap)
{
    pathf(out, cap, "%s/run/%s.pid", data, name);
}

static pid_t pidfile_read(const char *data, const char *name)
{
    char path[PATH_MAX];
    pidfile_path(data, name, path, sizeof(path));
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int pid = -1;
    if (fscanf(f, "%d", &pid) != 1)
        pid = -1;
    fclose(f);
    return pid;
}

static void pidfile_write(const char *data, const char *name, pid_t pid)
{
    char path[PATH_MAX];
    pidfile_path(data, name, path, sizeof(path));
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%d\n", pid);
        fclose(f);
    }
}

static void show_log_tail(const char *log, int lines)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return;
    char *buf[64] = {0};
    size_t cap = 0;
    char *line = NULL;
    int n = 0;
    if (lines > 64)
        lines = 64;
    while (getline(&line, &cap, f) >= 0) {
        free(buf[n % lines]);
        buf[n % lines] = strdup(line);
        n++;
    }
    free(line);
    fclose(f);
    fprintf(stderr, "---- last lines of %s ----\n", log);
    for (int i = n > lines ? n - lines : 0; i < n; i++)
        fputs(buf[i % lines], stderr);
    for (int i = 0; i < lines; i++)
        free(buf[i]);
}

static bool is_mounted(const char *dir)
{
    char real[PATH_MAX];
    if (!realpath(dir, real))
        snprintf(real, sizeof(real), "%s", dir);
    FILE *f = fopen("/proc/self/mounts", "r");
    if (!f)
        return false;
    char dev[PATH_MAX], mnt[PATH_MAX];
    bool found = false;
    while (fscanf(f, "%4095s %4095s %*[^\n]", dev, mnt) == 2)
        if (strcmp(mnt, real) == 0)
            found = true;
    fclose(f);
    return found;
}

static void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("valorfs up: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

/* ---------------- waiting on the cluster ---------------- */

static uint64_t ms_now(void) { return now_ns() / 1000000; }

/* Wait until the routing shows `want` alive nodes of `type` (0: just a
 * primary answering). Returns 0 or -1 after timeout_ms. */
static int wait_routing(struct rpc_client *rpc, const char *mgmtd, uint8_t type,
                        uint32_t want, uint32_t timeout_ms, pid_t watch, const char *what)
{
    uint64_t end = ms_now() + timeout_ms;
    char err[256] = "";
    for (;;) {
        struct mg_routing r;
        if (cli_fetch_routing(rpc, mgmtd, &r, err, sizeof(err)) == 0) {
            uint32_t n = 0;
            for (uint32_t i = 0; i < r.nnodes; i++)
                if (r.nodes[i].type == type && r.nodes[i].alive)
                    n++;
            mg_routing_free(&r);
            if (type == 0 || n >= want)
                return 0;
            snprintf(err, sizeof(err), "%u of %u %s registered", n, want, what);
        }
        if (watch > 0 && !pid_alive(watch)) {
            fprintf(stderr, "valorfs up: %s exited during start-up\n", what);
            return -1;
        }
        if (ms_now() > end) {
            fprintf(stderr, "valorfs up: timed out waiting for %s (%s)\n", what, err);
            return -1;
        }
        usleep(100 * 1000);
    }
}

static int ensure_table(struct rpc_client *rpc, const char *mgmtd, uint32_t replicas)
{
    struct mg_routing r;
    char err[256];
    if (cli_fetch_routing(rpc, mgmtd, &r, err, sizeof(err)) != 0) {
        fprintf(stderr, "valorfs up: %s\n", err);
        return -1;
    }
    uint32_t ntables = r.ntables;
    mg_routing_free(&r);
    if (ntables > 0) {
        progress("chain table exists, keeping it");
        return 0;
    }
    struct mg_create_table_req req = {.table_id = 1, .replicas = replicas, .nchains = 0};
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_create_table_req_enc(&wb, &req);
    void *resp = NULL;
    size_t rlen = 0;
    struct rpc_call_opts co = {.timeout_ms = 10000, .flags = RPC_F_RETRY};
    int st = rpc_call_sync(rpc, mgmtd, MG_CREATE_TABLE, wb.data, wb.len, &co, &resp, &rlen);
    wb_free(&wb);
    struct mg_create_table_resp out = {0};
    if (st == 0 && mg_create_table_resp_dec(resp, rlen, &out) != 0)
        st = RPC_E_PROTO;
    free(resp);
    if (st != 0) {
        fprintf(stderr, "valorfs up: creating chain table 1 failed: %s\n", vf_strstatus(st));
        return -1;
    }
    progress("chain table %u: %u chains of %u replicas", out.table_id, out.nchains, replicas);
    return 0;
}

/* ---------------- down ---------------- */

static bool stop_pid(const char *name, pid_t pid, int grace_s, bool force)
{
    if (!pid_alive(pid))
        return true;
    kill(pid, SIGTERM);
    for (int i = 0; i < grace_s * 20; i++) {
        if (!pid_alive(pid))
            return true;
        usleep(50 * 1000);
    }
    if (force) {
        fprintf(stderr, "valorfs down: %s (pid %d) ignored SIGTERM for %d s, killing it\n",
                name, pid, grace_s);
        kill(pid, SIGKILL);
        for (int i = 0; i < 40 && pid_alive(pid); i++)
            usleep(50 * 1000);
        return !pid_alive(pid);
    }
    fprintf(stderr, "valorfs down: %s (pid %d) did not stop in %d s (use --force)\n", name,
            pid, grace_s);
    return false;
}

static int cluster_stop(const char *data, const struct cluster_env *e, bool force, bool quiet)
{
    int rc = 0;
    char path[PATH_MAX];
    if (e->mount[0] && is_mounted(e->mount)) {
        if (umount2(e->mount, 0) < 0) {
            if (errno == EBUSY && force) {
                fprintf(stderr, "valorfs down: %s is busy, detaching it (lazy unmount)\n",
                        e->mount);
                umount2(e->mount, MNT_DETACH);
            } else {
                fprintf(stderr, "valorfs down: cannot unmount %s: %s%s\n", e->mount,
                        strerror(errno), errno == EBUSY ? " (in use; close it or --force)" : "");
                return 1;
            }
        }
        if (!quiet)
            printf("valorfs down: unmounted %s\n", e->mount);
    }
    /* The FUSE daemon exits by itself on unmount; give it time. */
    const char *order[3] = {"fuse", "meta", NULL};
    for (int i = 0; order[i]; i++) {
        pid_t pid = pidfile_read(data, order[i]);
        if (pid > 0 && !stop_pid(order[i], pid, 20, force))
            rc = 1;
        pidfile_path(data, order[i], path, sizeof(path));
        unlink(path);
    }
    for (int i = 0; i < 64; i++) {
        char name[32];
        snprintf(name, sizeof(name), "storage%d", i + 1);
        pid_t pid = pidfile_read(data, name);
        if (pid < 0)
            continue;
        if (!stop_pid(name, pid, 20, force))
            rc = 1;
        pidfile_path(data, name, path, sizeof(path));
        unlink(path);
        if (e->loop) {
            char dir[PATH_MAX];
            pathf(dir, sizeof(dir), "%s/%s", data, name);
            if (is_mounted(dir) && umount2(dir, 0) < 0) {
                fprintf(stderr, "valorfs down: cannot unmount %s: %s\n", dir, strerror(errno));
                rc = 1;
            }
        }
    }
    pid_t pid = pidfile_read(data, "mgmtd");
    if (pid > 0 && !stop_pid("mgmtd", pid, 20, force))
        rc = 1;
    pidfile_path(data, "mgmtd", path, sizeof(path));
    unlink(path);
    return rc;
}

int cmd_down(int argc, char **argv)
{
    const char *data = CLI_DEFAULT_DATA;
    bool force = false;
    static const struct option lo[] = {
        {"data", required_argument, 0, 'd'},
        {"force", no_argument, 0, 'F'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'F': force = true; break;
        case 'h': fputs(down_usage, stdout); return 0;
        default: fputs(down_usage, stderr); return 2;
        }
    }
    struct cluster_env e;
    if (cluster_env_read(data, &e) != 0) {
        fprintf(stderr, "valorfs down: no cluster state in %s (nothing started there?)\n", data);
        return 1;
    }
    int rc = cluster_stop(data, &e, force, false);
    if (rc == 0)
        printf("valorfs down: cluster in %s stopped\n", data);
    return rc;
}

/* ---------------- up ---------------- */

/* Strings built for daemon command lines live until `up` ends: they are
 * kept here and freed together (up_strings_free). */
static char *up_strings[128];
static int up_nstrings;

static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    die_oom(s);
    if (up_nstrings < (int)ARRAY_SIZE(up_strings))
        up_strings[up_nstrings++] = s;
    return s;
}

static void up_strings_free(void)
{
    for (int i = 0; i < up_nstrings; i++)
        free(up_strings[i]);
    up_nstrings = 0;
}

static int prepare_loop(const struct up_opts *o, const char *dir, int idx)
{
    char img[PATH_MAX];
    pathf(img, sizeof(img), "%s/storage%d.img", o->data, idx);
    if (is_mounted(dir))
        return 0;
    struct stat st;
    if (stat(img, &st) != 0) {
        char *tr[] = {"truncate", "-s", (char *)o->loop, img, NULL};
        if (run_cmd(tr) != 0) {
            fprintf(stderr, "valorfs up: cannot create image %s of size %s\n", img, o->loop);
            return -1;
        }
        char *mkfs_ext4[] = {"mkfs.ext4", "-q", "-F", img, NULL};
        char *mkfs_xfs[] = {"mkfs.xfs", "-q", "-f", img, NULL};
        if (run_cmd(strcmp(o->fs, "xfs") == 0 ? mkfs_xfs : mkfs_ext4) != 0) {
            fprintf(stderr, "valorfs up: mkfs.%s %s failed\n", o->fs, img);
            return -1;
        }
    }
    char *mnt[] = {"mount", "-o", "loop", img, (char *)dir, NULL};
    if (run_cmd(mnt) != 0) {
        fprintf(stderr, "valorfs up: cannot loop-mount %s on %s (are you root?)\n", img, dir);
        return -1;
    }
    return 0;
}

static int up_fail(const char *data, struct cluster_env *e, const char *log)
{
    if (log)
        show_log_tail(log, 15);
    fprintf(stderr, "valorfs up: stopping what was started\n");
    cluster_stop(data, e, true, true);
    return 1;
}

static int parse_up(int argc, char **argv, struct up_opts *o)
{
    static const struct option lo[] = {
        {"data", required_argument, 0, 'd'},      {"mount", required_argument, 0, 'm'},
        {"no-mount", no_argument, 0, 'M'},        {"storage", required_argument, 0, 's'},
        {"targets", required_argument, 0, 't'},   {"replicas", required_argument, 0, 'r'},
        {"base-port", required_argument, 0, 'p'}, {"loop", required_argument, 0, 'L'},
        {"fs", required_argument, 0, 'f'},        {"transport", required_argument, 0, 'T'},
        {"kv-sync", required_argument, 0, 'k'},   {"lease-ms", required_argument, 0, 'l'},
        {"log-level", required_argument, 0, 'v'}, {"fuse-opt", required_argument, 0, 'o'},
        {"chunk-size", required_argument, 0, 'C'}, {"stripe", required_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0},
    };
    *o = (struct up_opts){.data = CLI_DEFAULT_DATA, .mount = CLI_DEFAULT_MOUNT,
                          .transport = "xfuse", .kv_sync = "commit", .log_level = "info",
                          .fs = "ext4", .nstorage = 3, .ntargets = 2, .replicas = 3,
                          .base_port = CLI_DEFAULT_BASE_PORT, .lease_ms = 60000};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'd': o->data = optarg; break;
        case 'm': o->mount = optarg; break;
        case 'M': o->nostorage_mount = 1; break;
        case 's': o->nstorage = (int)strtol(optarg, &end, 10); break;
        case 't': o->ntargets = (int)strtol(optarg, &end, 10); break;
        case 'r': o->replicas = (int)strtol(optarg, &end, 10); break;
        case 'p': o->base_port = (int)strtol(optarg, &end, 10); break;
        case 'L': o->loop = optarg; break;
        case 'f': o->fs = optarg; break;
        case 'T': o->transport = optarg; break;
        case 'k': o->kv_sync = optarg; break;
        case 'l': o->lease_ms = strtol(optarg, &end, 10); break;
        case 'v': o->log_level = optarg; break;
        case 'C': o->chunk_size = strtol(optarg, &end, 10); break;
        case 'S': o->stripe = strtol(optarg, &end, 10); break;
        case 'o':
            if (o->nfuse_opts < 16)
                o->fuse_opts[o->nfuse_opts++] = optarg;
            break;
        case 'h': fputs(up_usage, stdout); exit(0);
        default: fputs(up_usage, stderr); return 2;
        }
        if (end && *end) {
            fprintf(stderr, "valorfs up: --%s: not a number: %s\n", lo[optind > 0 ? 0 : 0].name,
                    optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "valorfs up: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o->nstorage < 1 || o->nstorage > 32 || o->ntargets < 1 || o->ntargets > 16 ||
        o->replicas < 1 || o->replicas > o->nstorage || o->replicas > VF_MAX_REPLICAS) {
        fprintf(stderr, "valorfs up: need 1 <= --replicas <= --storage <= 32 and "
                        "1 <= --targets <= 16 (got storage=%d targets=%d replicas=%d)\n",
                o->nstorage, o->ntargets, o->replicas);
        return 2;
    }
    if (o->base_port < 1 || o->base_port + 10 + o->nstorage > 65535) {
        fprintf(stderr, "valorfs up: --base-port out of range\n");
        return 2;
    }
    if (strcmp(o->kv_sync, "commit") && strcmp(o->kv_sync, "none")) {
        fprintf(stderr, "valorfs up: --kv-sync must be commit or none\n");
        return 2;
    }
    if (strcmp(o->fs, "ext4") && strcmp(o->fs, "xfs")) {
        fprintf(stderr, "valorfs up: --fs must be ext4 or xfs\n");
        return 2;
    }
    return 0;
}

static const char *bin(const char *name)
{
    static char paths[8][PATH_MAX];
    static int next;
    char *p = paths[next++ % 8];
    /* Build tree layout: src/tools/valorfs → src/<svc>/valorfs-<svc>; an
     * installed layout has them side by side. */
    pathf(p, PATH_MAX, "%s/%s", g_bindir, name);
    if (access(p, X_OK) == 0)
        return p;
    const char *sub = strchr(name, '-') ? strchr(name, '-') + 1 : name;
    pathf(p, PATH_MAX, "%s/../%s/%s", g_bindir, strcmp(sub, "fuse") == 0 ? "tools" : sub, name);
    if (access(p, X_OK) == 0)
        return p;
    pathf(p, PATH_MAX, "%s", name);
    return p;
}

static struct rpc_client *g_rpc;

static int up_main(int argc, char **argv);

int cmd_up(int argc, char **argv)
{
    int rc = up_main(argc, argv);
    if (g_rpc)
        rpc_client_free(g_rpc);
    g_rpc = NULL;
    up_strings_free();
    return rc;
}

static int up_main(int argc, char **argv)
{
    struct up_opts o;
    int rc = parse_up(argc, argv, &o);
    if (rc)
        return rc;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return 1;
    self[n] = 0;
    snprintf(g_bindir, sizeof(g_bindir), "%s", self);
    *strrchr(g_bindir, '/') = 0;

    char data[PATH_MAX];
    mkdir_p(o.data);
    if (!realpath(o.data, data)) {
        fprintf(stderr, "valorfs up: cannot use --data %s: %s\n", o.data, strerror(errno));
        return 1;
    }
    pid_t old = pidfile_read(data, "mgmtd");
    if (pid_alive(old)) {
        fprintf(stderr, "valorfs up: a cluster is already running from %s (mgmtd pid %d); "
                        "stop it with: valorfs down --data=%s\n", data, old, data);
        return 1;
    }
    char *d;
    const char *sub[] = {"log", "run", "mgmtd", "meta"};
    for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
        d = xasprintf("%s/%s", data, sub[i]);
        mkdir_p(d);
    }
    char mgmtd_addr[64], meta_addr[64];
    snprintf(mgmtd_addr, sizeof(mgmtd_addr), "127.0.0.1:%d", o.base_port);
    snprintf(meta_addr, sizeof(meta_addr), "127.0.0.1:%d", o.base_port + 1);

    struct cluster_env e = {0};
    snprintf(e.mgmtd, sizeof(e.mgmtd), "%s", mgmtd_addr);
    snprintf(e.bindir, sizeof(e.bindir), "%s", g_bindir);
    e.nstorage = o.nstorage;
    e.loop = o.loop != NULL;
    if (!o.nostorage_mount) {
        mkdir_p(o.mount);
        if (!realpath(o.mount, e.mount)) {
            fprintf(stderr, "valorfs up: cannot use --mount %s: %s\n", o.mount, strerror(errno));
            return 1;
        }
        if (is_mounted(e.mount)) {
            fprintf(stderr, "valorfs up: %s is already a mount point\n", e.mount);
            return 1;
        }
    }
    /* Written first so that `down` can clean up after a half-done start. */
    cluster_env_write(data, &e);

    struct rpc_client_opts ro = {.name = "cli"};
    struct rpc_client *rpc = g_rpc = rpc_client_new(&ro);
    if (!rpc) {
        fprintf(stderr, "valorfs up: cannot start the RPC client\n");
        return 1;
    }
    char *lease = xasprintf("--lease_ms=%ld", o.lease_ms);
    char *loglvl = xasprintf("--log-level=%s", o.log_level);

    /* mgmtd */
    char *log = xasprintf("%s/log/mgmtd.log", data);
    char *kv = xasprintf("--kv=lmdb:%s/mgmtd/kv", data);
    char *listen = xasprintf("--listen=%s", mgmtd_addr);
    char *margv[] = {(char *)bin("valorfs-mgmtd"), listen, "--node_id=1", kv, lease, loglvl,
                     NULL};
    pid_t pid = spawn_daemon(margv, log);
    if (pid < 0)
        return up_fail(data, &e, NULL);
    pidfile_write(data, "mgmtd", pid);
    progress("mgmtd    pid %-7d %s  log %s", pid, mgmtd_addr, log);
    if (wait_routing(rpc, mgmtd_addr, 0, 0, 60000, pid, "mgmtd") != 0)
        return up_fail(data, &e, log);

    /* storage servers */
    for (int i = 1; i <= o.nstorage; i++) {
        char *dir = xasprintf("%s/storage%d", data, i);
        mkdir_p(dir);
        if (o.loop && prepare_loop(&o, dir, i) != 0)
            return up_fail(data, &e, NULL);
        int node = 100 + i;
        size_t cap = 64 + (size_t)o.ntargets * (strlen(dir) + 32);
        char *targets = malloc(cap);
        die_oom(targets);
        if (up_nstrings < (int)ARRAY_SIZE(up_strings))
            up_strings[up_nstrings++] = targets;
        strcpy(targets, "--targets=");
        for (int t = 1; t <= o.ntargets; t++) {
            char one[PATH_MAX + 32];
            snprintf(one, sizeof(one), "%s%d:%s/t%d", t > 1 ? "," : "", node * 100 + t, dir, t);
            strcat(targets, one);
        }
        char *slog = xasprintf("%s/log/storage%d.log", data, i);
        char *sl = xasprintf("--listen=127.0.0.1:%d", o.base_port + 10 + i);
        char *sn = xasprintf("--node_id=%d", node);
        char *sm = xasprintf("--mgmtd=%s", mgmtd_addr);
        char *sargv[] = {(char *)bin("valorfs-storage"), sl, sn, sm, targets, loglvl, NULL};
        pid = spawn_daemon(sargv, slog);
        if (pid < 0)
            return up_fail(data, &e, NULL);
        char name[32];
        snprintf(name, sizeof(name), "storage%d", i);
        pidfile_write(data, name, pid);
        progress("storage%d pid %-7d 127.0.0.1:%d  targets %d  data %s", i, pid,
                 o.base_port + 10 + i, o.ntargets, dir);
        if (wait_routing(rpc, mgmtd_addr, NODE_STORAGE, (uint32_t)i, 60000, pid, name) != 0)
            return up_fail(data, &e, slog);
    }
    if (ensure_table(rpc, mgmtd_addr, (uint32_t)o.replicas) != 0)
        return up_fail(data, &e, NULL);

    /* meta */
    log = xasprintf("%s/log/meta.log", data);
    kv = xasprintf("--kv=lmdb:%s/meta/kv", data);
    listen = xasprintf("--listen=%s", meta_addr);
    char *mm = xasprintf("--mgmtd=%s", mgmtd_addr);
    char *ks = xasprintf("--kv_sync=%s", o.kv_sync);
    char *targv[12] = {(char *)bin("valorfs-meta"), listen, "--node_id=50", mm, kv, ks, loglvl};
    int ta = 7;
    if (o.chunk_size)
        targv[ta++] = xasprintf("--chunk_size=%ld", o.chunk_size);
    if (o.stripe)
        targv[ta++] = xasprintf("--stripe=%ld", o.stripe);
    targv[ta] = NULL;
    pid = spawn_daemon(targv, log);
    if (pid < 0)
        return up_fail(data, &e, NULL);
    pidfile_write(data, "meta", pid);
    progress("meta     pid %-7d %s  kv %s/meta/kv", pid, meta_addr, data);
    if (wait_routing(rpc, mgmtd_addr, NODE_META, 1, 60000, pid, "meta") != 0)
        return up_fail(data, &e, log);

    /* mount */
    if (!o.nostorage_mount) {
        log = xasprintf("%s/log/fuse.log", data);
        char *be = xasprintf("--backend=cluster:%s", mgmtd_addr);
        char *tr = xasprintf("--transport=%s", o.transport);
        char *fargv[24] = {(char *)bin("valorfs-fuse"), "-f", be, tr, loglvl};
        int fa = 5;
        for (int i = 0; i < o.nfuse_opts; i++)
            fargv[fa++] = (char *)o.fuse_opts[i];
        fargv[fa++] = e.mount;
        fargv[fa] = NULL;
        pid = spawn_daemon(fargv, log);
        if (pid < 0)
            return up_fail(data, &e, NULL);
        pidfile_write(data, "fuse", pid);
        uint64_t end = ms_now() + 30000;
        while (!is_mounted(e.mount)) {
            if (!pid_alive(pid) || ms_now() > end) {
                fprintf(stderr, "valorfs up: mounting %s failed\n", e.mount);
                return up_fail(data, &e, log);
            }
            usleep(50 * 1000);
        }
        progress("fuse     pid %-7d mounted %s (transport %s)  log %s", pid, e.mount,
                 o.transport, log);
    }
    printf("\nvalorfs is up: %d storage servers x %d targets, chains of %d replicas.\n",
           o.nstorage, o.ntargets, o.replicas);
    if (!o.nostorage_mount) {
        printf("  mount:   %s\n", e.mount);
        printf("  daemon:  valorfs mount-info %s   (upgrade without unmounting: valorfs upgrade %s)\n",
               e.mount, e.mount);
    }
    printf("  mgmtd:   %s   (valorfs status --mgmtd=%s)\n", mgmtd_addr, mgmtd_addr);
    printf("  data:    %s   logs in %s/log\n", data, data);
    printf("  stop:    valorfs down --data=%s\n", data);
    return 0;
}
