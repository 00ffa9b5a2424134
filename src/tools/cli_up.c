/* cli_up.c — `valorfs up` and `valorfs down`: a whole cluster on one machine.
 *
 * up starts the local etcd members when --kv=etcd (cli_etcd.c), mgmtd(s),
 * then the storage servers (each with its targets, on plain directories or
 * on loop-device images), creates chain table 1 when the cluster has none,
 * starts the meta server(s), and mounts. Every daemon and the mount get the
 * list of all mgmtd addresses; meta and mgmtd open the KV URIs plan_kv()
 * derives from --kv. Every daemon runs detached in its own session with its
 * log in DATA/log and its pid in DATA/run, so down (from any shell, later)
 * finds and stops them (the etcd members last). A failed step prints the
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
    "Start a complete valorfs cluster on this machine and mount it: mgmtd, N\n"
    "storage servers (each with its targets), chain table 1 with chains of R\n"
    "replicas on distinct servers, meta server(s), and valorfs-fuse. With\n"
    "--kv=etcd it first starts a local etcd cluster that holds the metadata.\n"
    "Data, logs and pid files live under --data; running it again on the same\n"
    "--data (with the same --kv) restarts the cluster with its existing data.\n"
    "\n"
    "Options:\n"
    "  --data=DIR           state directory (default " CLI_DEFAULT_DATA ")\n"
    "  --mount=DIR          mount point (default " CLI_DEFAULT_MOUNT ")\n"
    "  --no-mount           start the servers only\n"
    "  --storage=N          storage servers (default 3)\n"
    "  --targets=N          targets per storage server (default 2)\n"
    "  --replicas=R         replicas per chain (default 3, at most --storage)\n"
    "  --base-port=P        ports, all on 127.0.0.1 (default 9600): mgmtd 0 on P,\n"
    "                       meta 0 on P+1, meta j>=1 on P+4+j, storage i on P+10+i,\n"
    "                       mgmtd i>=1 on P+20+i, local etcd member N on P+30+N\n"
    "                       (clients) and P+40+N (peers)\n"
    "  --kv=KV              where meta and mgmtd keep their state (default lmdb):\n"
    "                         lmdb   an embedded LMDB file per daemon under --data\n"
    "                                (one meta server and one mgmtd only)\n"
    "                         etcd   a local etcd cluster of --etcd-members members,\n"
    "                                data in DATA/etcd/member-N, log DATA/log/etcd-N.log;\n"
    "                                mgmtd uses the prefix /valorfs/mgmtd/, meta\n"
    "                                /valorfs/meta/\n"
    "                         etcd://HOST:PORT[,HOST:PORT...][/PREFIX/][?op_timeout_ms=N]\n"
    "                                an existing etcd cluster (nothing is started);\n"
    "                                keys under PREFIX (default /valorfs/) + mgmtd/\n"
    "                                and + meta/\n"
    "  --etcd-members=N     members of the local etcd cluster, 1 or 3 (default 1;\n"
    "                       3 survives the loss of one member)\n"
    "  --metas=N            meta servers, 1..5 (default 1; more than one needs a\n"
    "                       shared --kv, i.e. etcd); node ids 50+j\n"
    "  --mgmtds=N           mgmtd servers, 1..3 (default 1; more than one needs etcd):\n"
    "                       one is elected primary, the others stand by; every\n"
    "                       daemon and the mount get the list of all of them\n"
    "  --loop=SIZE          put each storage server's targets on its own loop-device\n"
    "                       image of SIZE (e.g. 4G), like separate disks\n"
    "  --fs=ext4|xfs        file system for --loop images (default ext4)\n"
    "  --transport=T        valorfs-fuse transport: classic|xfuse|uring (default xfuse)\n"
    "  --chunk-size=BYTES   chunk size of new files (default 1048576; a power of two,\n"
    "                       64 KiB .. 64 MiB)\n"
    "  --stripe=N           chains a new file is striped over (default 4, capped by\n"
    "                       the table's chains)\n"
    "  --kv-sync=commit|none  metadata durability (default commit: every metadata\n"
    "                       change is on disk before it is acknowledged; none: LMDB\n"
    "                       flushes later, a local etcd runs with --unsafe-no-fsync)\n"
    "  --lease-ms=MS        node lease T (default 60000)\n"
    "  --log-level=L        error|warn|info|debug for every daemon (default info)\n"
    "  --fuse-opt=OPT       extra valorfs-fuse option (repeatable), e.g.\n"
    "                       --fuse-opt=--writeback-cache\n"
    "  --mgmtd-opt=OPT      extra option for every mgmtd (repeatable), e.g.\n"
    "                       --mgmtd-opt=--election_ms=1000\n"
    "  --meta-opt=OPT       extra option for every meta server (repeatable)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Stop everything with: valorfs down --data=DIR\n";

static const char down_usage[] =
    "Usage: valorfs down [--data=DIR] [--force]\n"
    "\n"
    "Unmount and stop the cluster that `valorfs up` started with the same --data\n"
    "(default " CLI_DEFAULT_DATA "): valorfs-fuse, meta servers, storage servers,\n"
    "mgmtd servers and last the local etcd members, in that order, each with\n"
    "SIGTERM and up to 20 s to finish. --force detaches a busy mount (lazy\n"
    "unmount) and kills daemons that do not stop in time.\n";

#define UP_MAX_EXTRA 16

struct up_opts {
    const char *data, *mount, *transport, *kv_sync, *log_level, *fs, *loop;
    const char *kv;          /* "lmdb", "etcd" or an etcd:// URI */
    int etcd_members, nmetas, nmgmtds;
    const char *mgmtd_opts[UP_MAX_EXTRA], *meta_opts[UP_MAX_EXTRA];
    int nmgmtd_opts, nmeta_opts;
    long chunk_size, stripe;
    int nostorage_mount;
    int nstorage, ntargets, replicas, base_port;
    long lease_ms;
    const char *fuse_opts[16];
    int nfuse_opts;
};

#define UP_MAX_METAS 5
#define UP_MAX_MGMTDS 3

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
pid_t cli_spawn_daemon(char *const argv[], const char *log)
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

bool cli_pid_alive(pid_t pid)
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

pid_t cli_pidfile_read(const char *data, const char *name)
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

void cli_pidfile_write(const char *data, const char *name, pid_t pid)
{
    char path[PATH_MAX];
    pidfile_path(data, name, path, sizeof(path));
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%d\n", pid);
        fclose(f);
    }
}

void cli_pidfile_remove(const char *data, const char *name)
{
    char path[PATH_MAX];
    pidfile_path(data, name, path, sizeof(path));
    unlink(path);
}

void cli_show_log_tail(const char *log, int lines)
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
        if (watch > 0 && !cli_pid_alive(watch)) {
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

int cli_call_mgmtd(struct rpc_client *rpc, const char *addrs, uint16_t method, const void *req,
                   size_t req_len, uint32_t timeout_ms, void **resp, size_t *resp_len)
{
    char list[512];
    snprintf(list, sizeof(list), "%s", addrs);
    /* No RPC_F_RETRY: a dead mgmtd is skipped for the next one at once,
     * and a create is not idempotent. */
    struct rpc_call_opts co = {.timeout_ms = timeout_ms};
    int st = VF_E_NO_ROUTE;
    char *save = NULL;
    for (char *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
        *resp = NULL;
        st = rpc_call_sync(rpc, a, method, req, req_len, &co, resp, resp_len);
        if (st == VF_E_NOT_PRIMARY && *resp && *resp_len > 0 && *resp_len <= VF_MAX_ADDR) {
            char primary[VF_MAX_ADDR + 1];
            memcpy(primary, *resp, *resp_len);
            primary[*resp_len] = 0;
            free(*resp);
            *resp = NULL;
            st = rpc_call_sync(rpc, primary, method, req, req_len, &co, resp, resp_len);
        }
        if (st >= 0 && st != VF_E_NOT_PRIMARY)
            return st; /* the primary's answer, success or not */
        free(*resp);
        *resp = NULL;
    }
    return st;
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
    int st = cli_call_mgmtd(rpc, mgmtd, MG_CREATE_TABLE, wb.data, wb.len, 10000, &resp, &rlen);
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

bool cli_stop_pid(const char *name, pid_t pid, int grace_s, bool force)
{
    if (!cli_pid_alive(pid))
        return true;
    kill(pid, SIGTERM);
    for (int i = 0; i < grace_s * 20; i++) {
        if (!cli_pid_alive(pid))
            return true;
        usleep(50 * 1000);
    }
    if (force) {
        fprintf(stderr, "valorfs down: %s (pid %d) ignored SIGTERM for %d s, killing it\n",
                name, pid, grace_s);
        kill(pid, SIGKILL);
        for (int i = 0; i < 40 && cli_pid_alive(pid); i++)
            usleep(50 * 1000);
        return !cli_pid_alive(pid);
    }
    fprintf(stderr, "valorfs down: %s (pid %d) did not stop in %d s (use --force)\n", name,
            pid, grace_s);
    return false;
}

/* Stop one daemon by its pid-file name, if it has one. */
static bool stop_named(const char *data, const char *name, bool force)
{
    pid_t pid = cli_pidfile_read(data, name);
    if (pid <= 0)
        return true;
    if (!cli_stop_pid(name, pid, 20, force))
        return false;
    cli_pidfile_remove(data, name);
    return true;
}

/* Meta j / mgmtd i are named "meta", "meta1", ... in DATA/run and DATA/log
 * (index 0 keeps the single-server names). */
static void indexed_name(const char *base, int i, char *out, size_t cap)
{
    if (i == 0)
        snprintf(out, cap, "%s", base);
    else
        snprintf(out, cap, "%s%d", base, i);
}

static int cluster_stop(const char *data, const struct cluster_env *e, bool force, bool quiet)
{
    int rc = 0;
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
    char name[32];
    /* The FUSE daemon exits by itself on unmount; give it time. */
    if (!stop_named(data, "fuse", force))
        rc = 1;
    for (int j = UP_MAX_METAS - 1; j >= 0; j--) {
        indexed_name("meta", j, name, sizeof(name));
        if (!stop_named(data, name, force))
            rc = 1;
    }
    for (int i = 0; i < 64; i++) {
        snprintf(name, sizeof(name), "storage%d", i + 1);
        if (cli_pidfile_read(data, name) < 0)
            continue;
        if (!stop_named(data, name, force))
            rc = 1;
        if (e->loop) {
            char dir[PATH_MAX];
            pathf(dir, sizeof(dir), "%s/%s", data, name);
            if (is_mounted(dir) && umount2(dir, 0) < 0) {
                fprintf(stderr, "valorfs down: cannot unmount %s: %s\n", dir, strerror(errno));
                rc = 1;
            }
        }
    }
    /* Standby mgmtd first, the (likely) primary last: no needless failover. */
    for (int i = UP_MAX_MGMTDS - 1; i >= 0; i--) {
        indexed_name("mgmtd", i, name, sizeof(name));
        if (!stop_named(data, name, force))
            rc = 1;
    }
    /* The metadata store goes last: meta and mgmtd write to it while they
     * stop (sessions, the primary's step-down). */
    if (cli_etcd_stop(data, 20, force) != 0)
        rc = 1;
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

/* A daemon that cannot start prints one line "valorfs-<svc>: reason" to
 * its stderr (our log file); that line, not the log noise around it, is
 * what the user needs. The last such line, else the last error-level one. */
static void report_daemon_error(const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return;
    char *line = NULL, *own = NULL, *logged = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        line[strcspn(line, "\n")] = 0;
        char **slot = strncmp(line, "valorfs-", 8) == 0 ? &own
                      : strstr(line, "level=error") ? &logged : NULL;
        if (slot) {
            free(*slot);
            *slot = strdup(line);
        }
    }
    free(line);
    fclose(f);
    if (own || logged)
        fprintf(stderr, "valorfs up: %s\n", own ? own : logged);
    free(own);
    free(logged);
}

static int up_fail(const char *data, struct cluster_env *e, const char *log)
{
    if (log) {
        cli_show_log_tail(log, 15);
        report_daemon_error(log);
    }
    fprintf(stderr, "valorfs up: stopping what was started\n");
    cluster_stop(data, e, true, true);
    return 1;
}

static int parse_int(const char *name, const char *arg, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end) {
        fprintf(stderr, "valorfs up: --%s: not a number: %s\n", name, arg);
        return -1;
    }
    *out = v;
    return 0;
}

static int add_extra(const char **list, int *n, const char *opt, const char *what)
{
    if (*n >= UP_MAX_EXTRA) {
        fprintf(stderr, "valorfs up: at most %d --%s options\n", UP_MAX_EXTRA, what);
        return -1;
    }
    list[(*n)++] = opt;
    return 0;
}

/* Every port `up` will listen on must be in range and distinct (storage
 * servers beyond the 9th would run into mgmtd and etcd ports). */
static int check_ports(const struct up_opts *o)
{
    int ports[64 + 16], n = 0;
    for (int i = 0; i < o->nmgmtds; i++)
        ports[n++] = o->base_port + (i == 0 ? 0 : 20 + i);
    for (int j = 0; j < o->nmetas; j++)
        ports[n++] = o->base_port + (j == 0 ? 1 : 4 + j);
    for (int i = 1; i <= o->nstorage; i++)
        ports[n++] = o->base_port + 10 + i;
    bool local_etcd = strcmp(o->kv, "etcd") == 0;
    for (int m = 1; local_etcd && m <= o->etcd_members; m++) {
        ports[n++] = cli_etcd_client_port(o->base_port, m);
        ports[n++] = cli_etcd_peer_port(o->base_port, m);
    }
    for (int i = 0; i < n; i++) {
        if (ports[i] < 1 || ports[i] > 65535) {
            fprintf(stderr, "valorfs up: --base-port=%d puts port %d out of range\n",
                    o->base_port, ports[i]);
            return -1;
        }
        for (int k = 0; k < i; k++)
            if (ports[k] == ports[i]) {
                fprintf(stderr, "valorfs up: port %d would serve two daemons "
                                "(too many storage servers for mgmtd/etcd ports; see --help)\n",
                        ports[i]);
                return -1;
            }
    }
    return 0;
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
        {"kv", required_argument, 0, 'K'},        {"etcd-members", required_argument, 0, 'E'},
        {"metas", required_argument, 0, 'N'},     {"mgmtds", required_argument, 0, 'G'},
        {"mgmtd-opt", required_argument, 0, 'g'}, {"meta-opt", required_argument, 0, 'n'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0},
    };
    *o = (struct up_opts){.data = CLI_DEFAULT_DATA, .mount = CLI_DEFAULT_MOUNT,
                          .transport = "xfuse", .kv_sync = "commit", .log_level = "info",
                          .fs = "ext4", .nstorage = 3, .ntargets = 2, .replicas = 3,
                          .base_port = CLI_DEFAULT_BASE_PORT, .lease_ms = 60000,
                          .kv = "lmdb", .etcd_members = 1, .nmetas = 1, .nmgmtds = 1};
    int c, idx = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, &idx)) != -1) {
        long v = 0;
        /* every option with a numeric argument */
        if (strchr("strpClSENG", c) && parse_int(lo[idx].name, optarg, &v) != 0)
            return 2;
        switch (c) {
        case 'd': o->data = optarg; break;
        case 'm': o->mount = optarg; break;
        case 'M': o->nostorage_mount = 1; break;
        case 's': o->nstorage = (int)v; break;
        case 't': o->ntargets = (int)v; break;
        case 'r': o->replicas = (int)v; break;
        case 'p': o->base_port = (int)v; break;
        case 'L': o->loop = optarg; break;
        case 'f': o->fs = optarg; break;
        case 'T': o->transport = optarg; break;
        case 'k': o->kv_sync = optarg; break;
        case 'l': o->lease_ms = v; break;
        case 'v': o->log_level = optarg; break;
        case 'C': o->chunk_size = v; break;
        case 'S': o->stripe = v; break;
        case 'K': o->kv = optarg; break;
        case 'E': o->etcd_members = (int)v; break;
        case 'N': o->nmetas = (int)v; break;
        case 'G': o->nmgmtds = (int)v; break;
        case 'o':
            if (add_extra(o->fuse_opts, &o->nfuse_opts, optarg, "fuse-opt") != 0)
                return 2;
            break;
        case 'g':
            if (add_extra(o->mgmtd_opts, &o->nmgmtd_opts, optarg, "mgmtd-opt") != 0)
                return 2;
            break;
        case 'n':
            if (add_extra(o->meta_opts, &o->nmeta_opts, optarg, "meta-opt") != 0)
                return 2;
            break;
        case 'h': fputs(up_usage, stdout); exit(0);
        default: fputs(up_usage, stderr); return 2;
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
    bool lmdb = strcmp(o->kv, "lmdb") == 0;
    if (!lmdb && strcmp(o->kv, "etcd") != 0 && strncmp(o->kv, "etcd://", 7) != 0) {
        fprintf(stderr, "valorfs up: --kv must be lmdb, etcd or etcd://HOST:PORT[,...][/PREFIX/] "
                        "(got '%s')\n", o->kv);
        return 2;
    }
    if (o->etcd_members != 1 && o->etcd_members != 3) {
        fprintf(stderr, "valorfs up: --etcd-members must be 1 or 3 (got %d)\n", o->etcd_members);
        return 2;
    }
    if (o->nmetas < 1 || o->nmetas > UP_MAX_METAS || o->nmgmtds < 1 ||
        o->nmgmtds > UP_MAX_MGMTDS) {
        fprintf(stderr, "valorfs up: need 1 <= --metas <= %d and 1 <= --mgmtds <= %d\n",
                UP_MAX_METAS, UP_MAX_MGMTDS);
        return 2;
    }
    if (lmdb && (o->nmetas > 1 || o->nmgmtds > 1)) {
        fprintf(stderr, "valorfs up: --metas=%d --mgmtds=%d need a shared KV store "
                        "(--kv=etcd or --kv=etcd://...): LMDB is one file per process\n",
                o->nmetas, o->nmgmtds);
        return 2;
    }
    if (o->base_port < 1 || check_ports(o) != 0)
        return 2;
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

/* The KV URIs of meta and mgmtd. An etcd URI gets "mgmtd/" and "meta/"
 * appended to its prefix, so both stores share one etcd cluster. */
static int plan_kv(const struct up_opts *o, const char *data, struct cluster_env *e)
{
    if (strcmp(o->kv, "lmdb") == 0) {
        pathf(e->kv_mgmtd, sizeof(e->kv_mgmtd), "lmdb:%s/mgmtd/kv", data);
        pathf(e->kv_meta, sizeof(e->kv_meta), "lmdb:%s/meta/kv", data);
        return 0;
    }
    char hosts[512], prefix[512] = "/valorfs/", query[256] = "";
    if (strcmp(o->kv, "etcd") == 0) {
        cli_etcd_endpoints(o->base_port, o->etcd_members, hosts, sizeof(hosts));
    } else {
        const char *h = o->kv + 7;
        size_t hl = strcspn(h, "/?");
        const char *rest = h + hl;
        if (hl == 0 || hl >= sizeof(hosts)) {
            fprintf(stderr, "valorfs up: --kv=%s: no HOST:PORT after etcd://\n", o->kv);
            return -1;
        }
        memcpy(hosts, h, hl);
        hosts[hl] = 0;
        if (*rest == '/') {
            size_t pl = strcspn(rest, "?");
            if (pl + 2 > sizeof(prefix)) {
                fprintf(stderr, "valorfs up: --kv: prefix too long\n");
                return -1;
            }
            memcpy(prefix, rest, pl);
            prefix[pl] = 0;
            if (prefix[pl - 1] != '/')
                strcat(prefix, "/");
            rest += pl;
        }
        if (*rest == '?')
            snprintf(query, sizeof(query), "%s", rest);
    }
    pathf(e->kv_mgmtd, sizeof(e->kv_mgmtd), "etcd://%s%smgmtd/%s", hosts, prefix, query);
    pathf(e->kv_meta, sizeof(e->kv_meta), "etcd://%s%smeta/%s", hosts, prefix, query);
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

/* argv for one daemon: the fixed arguments, then the user's extras. */
static char **daemon_argv(char **argv, int n, const char *const *extra, int nextra)
{
    char **out = calloc((size_t)(n + nextra + 1), sizeof(char *));
    die_oom(out);
    if (up_nstrings < (int)ARRAY_SIZE(up_strings))
        up_strings[up_nstrings++] = (char *)out;
    memcpy(out, argv, (size_t)n * sizeof(char *));
    for (int i = 0; i < nextra; i++)
        out[n + i] = (char *)extra[i];
    return out;
}

static char g_mgmtd_list[256]; /* every mgmtd address, comma-separated */

static int start_mgmtds(const struct up_opts *o, const char *data, struct cluster_env *e,
                        struct rpc_client *rpc, char *loglvl, char *lease)
{
    char *kv = xasprintf("--kv=%s", e->kv_mgmtd);
    for (int i = 0; i < o->nmgmtds; i++) {
        char name[32];
        indexed_name("mgmtd", i, name, sizeof(name));
        char *addr = xasprintf("127.0.0.1:%d", o->base_port + (i == 0 ? 0 : 20 + i));
        char *log = xasprintf("%s/log/%s.log", data, name);
        char *fixed[] = {(char *)bin("valorfs-mgmtd"), xasprintf("--listen=%s", addr),
                         xasprintf("--node_id=%d", 1 + i), kv, lease, loglvl};
        char **argv = daemon_argv(fixed, (int)ARRAY_SIZE(fixed), o->mgmtd_opts, o->nmgmtd_opts);
        pid_t pid = cli_spawn_daemon(argv, log);
        if (pid < 0)
            return up_fail(data, e, NULL);
        cli_pidfile_write(data, name, pid);
        progress("%-8s pid %-7d %s  node %d  log %s", name, pid, addr, 1 + i, log);
        /* A standby answers with a redirect to the primary, which
         * cli_fetch_routing follows: this waits for both kinds. */
        if (wait_routing(rpc, addr, 0, 0, 60000, pid, name) != 0)
            return up_fail(data, e, log);
    }
    return 0;
}

static int start_metas(const struct up_opts *o, const char *data, struct cluster_env *e,
                       struct rpc_client *rpc, char *loglvl)
{
    char *kv = xasprintf("--kv=%s", e->kv_meta);
    char *mm = xasprintf("--mgmtd=%s", g_mgmtd_list);
    char *ks = xasprintf("--kv_sync=%s", o->kv_sync);
    for (int j = 0; j < o->nmetas; j++) {
        char name[32];
        indexed_name("meta", j, name, sizeof(name));
        char *addr = xasprintf("127.0.0.1:%d", o->base_port + (j == 0 ? 1 : 4 + j));
        char *log = xasprintf("%s/log/%s.log", data, name);
        char *fixed[10] = {(char *)bin("valorfs-meta"), xasprintf("--listen=%s", addr),
                           xasprintf("--node_id=%d", 50 + j), mm, kv, ks, loglvl};
        int n = 7;
        if (o->chunk_size)
            fixed[n++] = xasprintf("--chunk_size=%ld", o->chunk_size);
        if (o->stripe)
            fixed[n++] = xasprintf("--stripe=%ld", o->stripe);
        char **argv = daemon_argv(fixed, n, o->meta_opts, o->nmeta_opts);
        pid_t pid = cli_spawn_daemon(argv, log);
        if (pid < 0)
            return up_fail(data, e, NULL);
        cli_pidfile_write(data, name, pid);
        progress("%-8s pid %-7d %s  node %d  log %s", name, pid, addr, 50 + j, log);
        if (wait_routing(rpc, g_mgmtd_list, NODE_META, (uint32_t)j + 1, 60000, pid, name) != 0)
            return up_fail(data, e, log);
    }
    progress("meta kv  %s", e->kv_meta);
    return 0;
}

static int start_storage(const struct up_opts *o, const char *data, struct cluster_env *e,
                         struct rpc_client *rpc, char *loglvl)
{
    char *sm = xasprintf("--mgmtd=%s", g_mgmtd_list);
    for (int i = 1; i <= o->nstorage; i++) {
        char *dir = xasprintf("%s/storage%d", data, i);
        mkdir_p(dir);
        if (o->loop && prepare_loop(o, dir, i) != 0)
            return up_fail(data, e, NULL);
        int node = 100 + i;
        size_t cap = 64 + (size_t)o->ntargets * (strlen(dir) + 32);
        char *targets = malloc(cap);
        die_oom(targets);
        if (up_nstrings < (int)ARRAY_SIZE(up_strings))
            up_strings[up_nstrings++] = targets;
        strcpy(targets, "--targets=");
        for (int t = 1; t <= o->ntargets; t++) {
            char one[PATH_MAX + 32];
            snprintf(one, sizeof(one), "%s%d:%s/t%d", t > 1 ? "," : "", node * 100 + t, dir, t);
            strcat(targets, one);
        }
        char *slog = xasprintf("%s/log/storage%d.log", data, i);
        char *sl = xasprintf("--listen=127.0.0.1:%d", o->base_port + 10 + i);
        char *sn = xasprintf("--node_id=%d", node);
        char *sargv[] = {(char *)bin("valorfs-storage"), sl, sn, sm, targets, loglvl, NULL};
        pid_t pid = cli_spawn_daemon(sargv, slog);
        if (pid < 0)
            return up_fail(data, e, NULL);
        char name[32];
        snprintf(name, sizeof(name), "storage%d", i);
        cli_pidfile_write(data, name, pid);
        progress("storage%d pid %-7d 127.0.0.1:%d  targets %d  data %s", i, pid,
                 o->base_port + 10 + i, o->ntargets, dir);
        if (wait_routing(rpc, g_mgmtd_list, NODE_STORAGE, (uint32_t)i, 60000, pid, name) != 0)
            return up_fail(data, e, slog);
    }
    return 0;
}

static int start_fuse(const struct up_opts *o, const char *data, struct cluster_env *e,
                      char *loglvl)
{
    char *log = xasprintf("%s/log/fuse.log", data);
    char *be = xasprintf("--backend=cluster:%s", g_mgmtd_list);
    char *tr = xasprintf("--transport=%s", o->transport);
    char *fargv[24] = {(char *)bin("valorfs-fuse"), "-f", be, tr, loglvl};
    int fa = 5;
    for (int i = 0; i < o->nfuse_opts; i++)
        fargv[fa++] = (char *)o->fuse_opts[i];
    fargv[fa++] = e->mount;
    fargv[fa] = NULL;
    pid_t pid = cli_spawn_daemon(fargv, log);
    if (pid < 0)
        return up_fail(data, e, NULL);
    cli_pidfile_write(data, "fuse", pid);
    uint64_t end = ms_now() + 30000;
    while (!is_mounted(e->mount)) {
        if (!cli_pid_alive(pid) || ms_now() > end) {
            fprintf(stderr, "valorfs up: mounting %s failed\n", e->mount);
            return up_fail(data, e, log);
        }
        usleep(50 * 1000);
    }
    progress("fuse     pid %-7d mounted %s (transport %s)  log %s", pid, e->mount, o->transport,
             log);
    return 0;
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
    for (int i = 0; i < UP_MAX_MGMTDS; i++) {
        char name[32];
        indexed_name("mgmtd", i, name, sizeof(name));
        pid_t old = cli_pidfile_read(data, name);
        if (cli_pid_alive(old)) {
            fprintf(stderr, "valorfs up: a cluster is already running from %s (%s pid %d); "
                            "stop it with: valorfs down --data=%s\n", data, name, old, data);
            return 1;
        }
    }
    const char *sub[] = {"log", "run", "mgmtd", "meta"};
    for (size_t i = 0; i < ARRAY_SIZE(sub); i++)
        mkdir_p(xasprintf("%s/%s", data, sub[i]));

    struct cluster_env e = {0};
    bool local_etcd = strcmp(o.kv, "etcd") == 0;
    if (plan_kv(&o, data, &e) != 0)
        return 2;
    g_mgmtd_list[0] = 0;
    for (int i = 0; i < o.nmgmtds; i++) {
        size_t used = strlen(g_mgmtd_list);
        snprintf(g_mgmtd_list + used, sizeof(g_mgmtd_list) - used, "%s127.0.0.1:%d",
                 i ? "," : "", o.base_port + (i == 0 ? 0 : 20 + i));
    }
    snprintf(e.mgmtd, sizeof(e.mgmtd), "%s", g_mgmtd_list);
    snprintf(e.bindir, sizeof(e.bindir), "%s", g_bindir);
    e.nstorage = o.nstorage;
    e.loop = o.loop != NULL;
    e.nmetas = o.nmetas;
    e.nmgmtds = o.nmgmtds;
    e.etcd_members = local_etcd ? o.etcd_members : 0;
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

    if (local_etcd) {
        struct cli_etcd ec = {.data = data, .members = o.etcd_members,
                              .base_port = o.base_port,
                              .no_fsync = strcmp(o.kv_sync, "none") == 0};
        if (cli_etcd_start(&ec, 60000) != 0)
            return up_fail(data, &e, NULL);
        progress("etcd     %d member%s healthy", o.etcd_members, o.etcd_members > 1 ? "s" : "");
    }
    if (start_mgmtds(&o, data, &e, rpc, loglvl, lease) != 0 ||
        start_storage(&o, data, &e, rpc, loglvl) != 0)
        return 1;
    if (ensure_table(rpc, g_mgmtd_list, (uint32_t)o.replicas) != 0)
        return up_fail(data, &e, NULL);
    if (start_metas(&o, data, &e, rpc, loglvl) != 0)
        return 1;
    if (!o.nostorage_mount && start_fuse(&o, data, &e, loglvl) != 0)
        return 1;

    printf("\nvalorfs is up: %d storage servers x %d targets, chains of %d replicas, "
           "%d meta, %d mgmtd.\n", o.nstorage, o.ntargets, o.replicas, o.nmetas, o.nmgmtds);
    if (!o.nostorage_mount) {
        printf("  mount:   %s\n", e.mount);
        printf("  daemon:  valorfs mount-info %s   (upgrade without unmounting: valorfs upgrade %s)\n",
               e.mount, e.mount);
    }
    printf("  mgmtd:   %s   (valorfs status --mgmtd=%s)\n", g_mgmtd_list, g_mgmtd_list);
    printf("  kv:      %s\n", e.kv_meta);
    printf("  data:    %s   logs in %s/log\n", data, data);
    printf("  stop:    valorfs down --data=%s\n", data);
    return 0;
}
