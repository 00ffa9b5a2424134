/* valorfs-fuse — mount a valorfs backend through the valorfs FUSE engine.
 *
 * Settings come from a config file (--config, INI) and then from the
 * command line, which wins. Without -f the daemon detaches once the mount
 * is live and reports a failed mount with a non-zero exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "fuse/mount.h"
#include "fuse/session.h"
#include "cluster_fs/cluster_fs.h"
#include "passthrough/passthrough.h"
#include "proto/proto.h"

#define VALORFS_VERSION "0.1.0"

static const char usage_text[] =
    "Usage: valorfs-fuse [OPTIONS] --backend=BACKEND MOUNTPOINT\n"
    "\n"
    "Mount a valorfs file system at MOUNTPOINT, served by valorfs's own FUSE\n"
    "protocol engine (no libfuse).\n"
    "\n"
    "Backends:\n"
    "  --backend=passthrough:DIR   serve the local directory DIR\n"
    "  --backend=cluster:HOST:PORT[,HOST:PORT...]\n"
    "                              serve a valorfs cluster; the addresses are its\n"
    "                              mgmtd servers (the routing names meta and storage)\n"
    "\n"
    "Transport (how requests travel between the kernel and this daemon):\n"
    "  --transport=T         classic | xfuse | uring            (default: xfuse)\n"
    "                          classic: one blocking reader per cloned /dev/fuse fd\n"
    "                          xfuse:   adaptive busy-wait, many requests in flight\n"
    "                                   per channel, independent channels\n"
    "                          uring:   FUSE-over-io_uring, one queue per CPU; falls\n"
    "                                   back to xfuse (one log line says why) when the\n"
    "                                   kernel does not offer it. Enable with\n"
    "                                   echo Y > /sys/module/fuse/parameters/enable_uring\n"
    "  --classic-share=A     knob a in [0,1]: share of channels run as classic FUSE,\n"
    "                        the rest as XFUSE (a=1 pure classic, a=0 pure XFUSE);\n"
    "                        config key fuse.classic_share\n"
    "  --threads=N           channels (classic/xfuse); default: one per online CPU\n"
    "  --queue-depth=N       requests in flight per xfuse channel / uring queue\n"
    "                        (default 16 / 8)\n"
    "  --max-spin-us=N       cap of the adaptive busy-wait, microseconds; 0 = never\n"
    "                        spin (default 50)\n"
    "  --no-pin              do not pin uring queue threads to their CPU\n"
    "\n"
    "Caching:\n"
    "  --writeback-cache     let the kernel buffer writes (FUSE_WRITEBACK_CACHE)\n"
    "  --read-ahead-kb=N     kernel read-ahead window, KiB (default: 4096 for the\n"
    "                        cluster backend, the kernel's 128 for passthrough);\n"
    "                        config key fuse.read_ahead_kb\n"
    "  --direct-io           bypass the kernel page cache for every file\n"
    "  --no-keep-cache       drop a file's page cache on every open\n"
    "  --attr-timeout=S      seconds attributes may be cached (default 1.0)\n"
    "  --entry-timeout=S     seconds names may be cached (default 1.0)\n"
    "\n"
    "Cluster backend (config section [cluster]):\n"
    "  --meta-timeout-ms=N   a metadata call may take this long, retries on other\n"
    "                        meta servers included, before it fails with EIO\n"
    "                        (default 30000)\n"
    "  --io-timeout-ms=N     a read/write/fsync may take this long, retries after\n"
    "                        chain changes included, before it fails with EIO\n"
    "                        (default 30000)\n"
    "  --connect-timeout-ms=N  give up when no mgmtd answers at startup within N ms\n"
    "                        (default 10000)\n"
    "  --chunk-size=BYTES    chunk size of new files, a power of two in\n"
    "                        [65536, 67108864]; 0 = the meta server's default (0)\n"
    "  --stripe=N            chains a new file spreads over, 0..64; 0 = the meta\n"
    "                        server's default (0)\n"
    "  --meta-addrs=HOST:PORT[,HOST:PORT...]  talk only to these meta servers\n"
    "                        instead of the routing's (e.g. to pin a mount to one\n"
    "                        server in a test); default: the routing's\n"
    "\n"
    "Online upgrade and crash restart:\n"
    "  By default the mount is held by valorfs-keeper, a small process that owns\n"
    "  /dev/fuse and runs this daemon as its child: when the daemon dies it starts\n"
    "  a new one that takes over the mount (requests in flight are resent by the\n"
    "  kernel), and `valorfs upgrade MOUNTPOINT [--binary PATH]` replaces it with\n"
    "  no unmount and no failed system call.\n"
    "  --no-keeper           serve the mount directly (it ends with this process)\n"
    "  --handoff-nodes=N     nodes the handoff state can track (default 1048576);\n"
    "                        config key fuse.handoff_nodes\n"
    "  --handoff-handles=N   open handles it can track (default 65536);\n"
    "                        config key fuse.handoff_handles\n"
    "\n"
    "General:\n"
    "  --config=FILE         read settings from FILE (INI: [fuse], [passthrough],\n"
    "                        [cluster], [log]); attr/entry timeouts of [passthrough]\n"
    "                        apply to both backends\n"
    "  --log-level=L         error | warn | info | debug (default info)\n"
    "  --log-file=FILE       append logs to FILE (detached daemons without it log\n"
    "                        to stderr only if it is a file, otherwise nowhere)\n"
    "  -f, --foreground      stay in the foreground\n"
    "  -h, --help            show this help\n"
    "  -V, --version         show the version\n"
    "\n"
    "Unmount with umount(8) or fusermount3 -u; SIGTERM/SIGINT unmount cleanly.\n";

struct settings {
    struct vfs_session_opts fuse;
    struct pt_opts pt;
    struct cfs_opts cfs;
    const char *backend;
    const char *mountpoint;
    const char *config;
    const char *log_file;
    int foreground;
    int log_level;
    int read_ahead_kb; /* -1: the backend's default */
    int no_keeper;
    int keeper_fd;     /* >= 0: a daemon started by the keeper */
};

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_u32(const char *s, unsigned long lo, unsigned long hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end != '\0' || *s == '-' || v < lo || v > hi)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
        *out = 1;
    else if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

/* "host:port[,host:port...]", each at most VF_MAX_ADDR long. Kept in a
 * static buffer: config file values do not outlive the parse. */
static int parse_addr_list(const char *s, const char **out)
{
    static char buf[1024];
    if (*s == '\0' || strlen(s) >= sizeof(buf))
        return -1;
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, ",");
        const char *colon = memchr(p, ':', n);
        if (n == 0 || n > VF_MAX_ADDR || colon == NULL || colon == p || colon == p + n - 1)
            return -1;
        p += n;
        if (*p == ',' && *++p == '\0')
            return -1;
    }
    snprintf(buf, sizeof(buf), "%s", s);
    *out = buf;
    return 0;
}

/* One setting by its config name ("fuse.transport"); shared by the config
 * file and the command line so both accept exactly the same values. */
static int apply(struct settings *st, const char *key, const char *val)
{
    double d;
    if (!strcmp(key, "fuse.transport"))
        return vfs_transport_parse(val, &st->fuse.transport) < 0 ? -1 : 0;
    if (!strcmp(key, "fuse.classic_share")) {
        if (parse_double(val, 0.0, 1.0, &d) < 0)
            return -1;
        st->fuse.classic_share = d;
        return 0;
    }
    if (!strcmp(key, "fuse.threads"))
        return parse_int(val, 1, 64, &st->fuse.threads);
    if (!strcmp(key, "fuse.queue_depth")) /* 256: request records per channel */
        return parse_int(val, 1, 256, &st->fuse.queue_depth);
    if (!strcmp(key, "fuse.max_spin_us"))
        return parse_int(val, 0, 100000, &st->fuse.max_spin_us);
    if (!strcmp(key, "fuse.pin_threads"))
        return parse_bool(val, &st->fuse.pin_threads);
    if (!strcmp(key, "fuse.writeback_cache"))
        return parse_bool(val, &st->fuse.writeback_cache);
    if (!strcmp(key, "fuse.handoff_nodes"))
        return parse_u32(val, 1024, 1u << 26, &st->fuse.handoff_nodes);
    if (!strcmp(key, "fuse.handoff_handles"))
        return parse_u32(val, 256, 1u << 24, &st->fuse.handoff_handles);
    if (!strcmp(key, "fuse.read_ahead_kb"))
        return parse_int(val, 0, 1 << 20, &st->read_ahead_kb);
    if (!strcmp(key, "passthrough.direct_io"))
        return parse_bool(val, &st->pt.direct_io);
    if (!strcmp(key, "passthrough.keep_cache"))
        return parse_bool(val, &st->pt.keep_cache);
    if (!strcmp(key, "passthrough.attr_timeout"))
        return parse_double(val, 0, 86400, &st->pt.attr_timeout);
    if (!strcmp(key, "passthrough.entry_timeout"))
        return parse_double(val, 0, 86400, &st->pt.entry_timeout);
    if (!strcmp(key, "cluster.meta_timeout_ms"))
        return parse_u32(val, 1, 86400000, &st->cfs.meta_timeout_ms);
    if (!strcmp(key, "cluster.io_timeout_ms"))
        return parse_u32(val, 1, 86400000, &st->cfs.io_timeout_ms);
    if (!strcmp(key, "cluster.connect_timeout_ms"))
        return parse_u32(val, 1, 86400000, &st->cfs.connect_timeout_ms);
    if (!strcmp(key, "cluster.chunk_size")) {
        uint32_t v;
        if (parse_u32(val, 0, 64u << 20, &v) < 0 ||
            (v && (v < (64u << 10) || (v & (v - 1)))))
            return -1;
        st->cfs.chunk_size = v;
        return 0;
    }
    if (!strcmp(key, "cluster.stripe"))
        return parse_u32(val, 0, 64, &st->cfs.stripe);
    if (!strcmp(key, "cluster.meta_addrs"))
        return parse_addr_list(val, &st->cfs.meta_addrs);
    if (!strcmp(key, "log.level")) {
        int l = log_level_parse(val);
        if (l < 0)
            return -1;
        st->log_level = l;
        return 0;
    }
    return -2;
}

static int ini_apply(void *arg, const char *section, const char *key, const char *value)
{
    char full[128]; /* settings are named "section.key" */
    snprintf(full, sizeof(full), "%s.%s", section, key);
    return apply(arg, full, value);
}

static int load_config(struct settings *st, const char *file)
{
    return config_load("valorfs-fuse", file, ini_apply, st);
}

enum {
    OPT_BACKEND = 256, OPT_TRANSPORT, OPT_SHARE, OPT_THREADS, OPT_DEPTH, OPT_SPIN, OPT_NOPIN,
    OPT_WB, OPT_DIO, OPT_NOKEEP, OPT_ATTR, OPT_ENTRY, OPT_CONFIG, OPT_LOG, OPT_LOGFILE,
    OPT_META_TMO, OPT_IO_TMO, OPT_CONNECT_TMO, OPT_CHUNK, OPT_STRIPE, OPT_READAHEAD,
    OPT_HO_NODES, OPT_HO_HANDLES, OPT_NO_KEEPER, OPT_KEEPER_FD, OPT_META_ADDRS,
};

static const struct option long_opts[] = {
    { "backend", required_argument, NULL, OPT_BACKEND },
    { "transport", required_argument, NULL, OPT_TRANSPORT },
    { "classic-share", required_argument, NULL, OPT_SHARE },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "queue-depth", required_argument, NULL, OPT_DEPTH },
    { "max-spin-us", required_argument, NULL, OPT_SPIN },
    { "no-pin", no_argument, NULL, OPT_NOPIN },
    { "writeback-cache", no_argument, NULL, OPT_WB },
    { "direct-io", no_argument, NULL, OPT_DIO },
    { "no-keep-cache", no_argument, NULL, OPT_NOKEEP },
    { "attr-timeout", required_argument, NULL, OPT_ATTR },
    { "entry-timeout", required_argument, NULL, OPT_ENTRY },
    { "config", required_argument, NULL, OPT_CONFIG },
    { "log-level", required_argument, NULL, OPT_LOG },
    { "log-file", required_argument, NULL, OPT_LOGFILE },
    { "meta-timeout-ms", required_argument, NULL, OPT_META_TMO },
    { "io-timeout-ms", required_argument, NULL, OPT_IO_TMO },
    { "connect-timeout-ms", required_argument, NULL, OPT_CONNECT_TMO },
    { "chunk-size", required_argument, NULL, OPT_CHUNK },
    { "stripe", required_argument, NULL, OPT_STRIPE },
    { "meta-addrs", required_argument, NULL, OPT_META_ADDRS },
    { "read-ahead-kb", required_argument, NULL, OPT_READAHEAD },
    { "handoff-nodes", required_argument, NULL, OPT_HO_NODES },
    { "handoff-handles", required_argument, NULL, OPT_HO_HANDLES },
    { "no-keeper", no_argument, NULL, OPT_NO_KEEPER },
    { "keeper-fd", required_argument, NULL, OPT_KEEPER_FD },
    { "foreground", no_argument, NULL, 'f' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

static const char *opt_key(int opt)
{
    switch (opt) {
    case OPT_TRANSPORT: return "fuse.transport";
    case OPT_SHARE: return "fuse.classic_share";
    case OPT_THREADS: return "fuse.threads";
    case OPT_DEPTH: return "fuse.queue_depth";
    case OPT_SPIN: return "fuse.max_spin_us";
    case OPT_ATTR: return "passthrough.attr_timeout";
    case OPT_ENTRY: return "passthrough.entry_timeout";
    case OPT_LOG: return "log.level";
    case OPT_META_TMO: return "cluster.meta_timeout_ms";
    case OPT_IO_TMO: return "cluster.io_timeout_ms";
    case OPT_CONNECT_TMO: return "cluster.connect_timeout_ms";
    case OPT_CHUNK: return "cluster.chunk_size";
    case OPT_STRIPE: return "cluster.stripe";
    case OPT_META_ADDRS: return "cluster.meta_addrs";
    case OPT_READAHEAD: return "fuse.read_ahead_kb";
    case OPT_HO_NODES: return "fuse.handoff_nodes";
    case OPT_HO_HANDLES: return "fuse.handoff_handles";
    default: return NULL;
    }
}

static int parse_args(int argc, char **argv, struct settings *st)
{
    /* first pass: the config file, so the command line can override it */
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--config=", 9))
            st->config = argv[i] + 9;
        else if (!strcmp(argv[i], "--config") && i + 1 < argc)
            st->config = argv[i + 1];
    }
    if (st->config && load_config(st, st->config) < 0)
        return -1;
    int opt;
    while ((opt = getopt_long(argc, argv, "fhV", long_opts, NULL)) != -1) {
        const char *key = opt_key(opt);
        if (key) {
            if (apply(st, key, optarg) < 0) {
                const char *name = "?";
                for (const struct option *o = long_opts; o->name; o++)
                    if (o->val == opt)
                        name = o->name;
                fprintf(stderr, "valorfs-fuse: bad value '%s' for --%s\n", optarg, name);
                return -1;
            }
            continue;
        }
        switch (opt) {
        case OPT_BACKEND: st->backend = optarg; break;
        case OPT_NOPIN: st->fuse.pin_threads = 0; break;
        case OPT_WB: st->fuse.writeback_cache = 1; break;
        case OPT_DIO: st->pt.direct_io = 1; break;
        case OPT_NOKEEP: st->pt.keep_cache = 0; break;
        case OPT_CONFIG: break;
        case OPT_LOGFILE: st->log_file = optarg; break;
        case OPT_NO_KEEPER: st->no_keeper = 1; break;
        case OPT_KEEPER_FD:
            if (parse_int(optarg, 0, 1 << 20, &st->keeper_fd) < 0) {
                fprintf(stderr, "valorfs-fuse: bad value '%s' for --keeper-fd\n", optarg);
                return -1;
            }
            break;
        case 'f': st->foreground = 1; break;
        case 'h': fputs(usage_text, stdout); exit(0);
        case 'V': printf("valorfs-fuse %s\n", VALORFS_VERSION); exit(0);
        default:
            fprintf(stderr, "Try 'valorfs-fuse --help'.\n");
            return -1;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "valorfs-fuse: %s\nTry 'valorfs-fuse --help'.\n",
                optind >= argc ? "missing MOUNTPOINT" : "too many arguments");
        return -1;
    }
    st->mountpoint = argv[optind];
    if (st->backend == NULL) {
        fprintf(stderr, "valorfs-fuse: missing --backend (e.g. --backend=passthrough:/srv/data)\n");
        return -1;
    }
    return 0;
}

static struct vfs_session *volatile g_session;

/* The passthrough backend holds one O_PATH fd per inode the kernel knows:
 * lift the soft fd limit (and, as root, the hard one) so large trees work. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (geteuid() == 0 && rl.rlim_max < 1048576) {
        struct rlimit big = { 1048576, 1048576 };
        if (setrlimit(RLIMIT_NOFILE, &big) == 0)
            return;
    }
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* Point stderr (our log) at the log file; a detached daemon must not keep
 * its caller's terminal or pipe open. */
static int setup_log_fd(const char *log_file, int detached)
{
    if (log_file) {
        int fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) {
            fprintf(stderr, "valorfs-fuse: cannot open log file %s: %s\n", log_file, strerror(errno));
            return -1;
        }
        dup2(fd, STDERR_FILENO);
        close(fd);
        return 0;
    }
    struct stat st;
    if (detached && (fstat(STDERR_FILENO, &st) < 0 || !S_ISREG(st.st_mode))) {
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
    }
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    if (g_session)
        vfs_session_stop(g_session);
}

/* The path of the running binary, so the keeper can start it again. */
static int self_exe(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

/* Default mode: mount, then become the keeper (exec valorfs-keeper from
 * the same directory), which runs this binary again as the daemon with
 * --keeper-fd. ready_fd (or -1) is written once the daemon serves. */
static int launch_keeper(struct settings *st, int argc, char **argv, int ready_fd)
{
    char exe[4096], keeper[4200];
    if (self_exe(exe, sizeof(exe)) < 0) {
        fprintf(stderr, "valorfs-fuse: cannot find its own binary: %s\n", strerror(errno));
        return 1;
    }
    const char *env = getenv("VALORFS_KEEPER");
    if (env && *env) {
        snprintf(keeper, sizeof(keeper), "%s", env);
    } else {
        snprintf(keeper, sizeof(keeper), "%s", exe);
        char *slash = strrchr(keeper, '/');
        snprintf(slash + 1, sizeof(keeper) - (size_t)(slash + 1 - keeper), "valorfs-keeper");
    }
    if (access(keeper, X_OK) < 0) {
        fprintf(stderr, "valorfs-fuse: cannot run %s: %s (use --no-keeper to mount without it)\n",
                keeper, strerror(errno));
        return 1;
    }
    int used_fusermount = 0;
    int devfd = vfs_mount(&st->fuse, st->mountpoint, &used_fusermount);
    if (devfd < 0) {
        fprintf(stderr, "valorfs-fuse: cannot mount %s: %s\n", st->mountpoint, strerror(-devfd));
        return 1;
    }
    fcntl(devfd, F_SETFD, 0); /* the keeper inherits it */
    char a_dev[32], a_mnt[4200], a_ready[32], a_log[32], a_logfile[4200];
    snprintf(a_dev, sizeof(a_dev), "--dev-fd=%d", devfd);
    snprintf(a_mnt, sizeof(a_mnt), "--mountpoint=%s", st->mountpoint);
    snprintf(a_ready, sizeof(a_ready), "--ready-fd=%d", ready_fd);
    snprintf(a_log, sizeof(a_log), "--log-level=%s", log_level_name((enum log_level)st->log_level));
    char **kargv = calloc((size_t)argc + 10, sizeof(char *));
    if (kargv == NULL)
        return 1;
    int k = 0;
    kargv[k++] = keeper;
    kargv[k++] = a_dev;
    kargv[k++] = a_mnt;
    kargv[k++] = a_ready;
    kargv[k++] = a_log;
    if (st->log_file) {
        snprintf(a_logfile, sizeof(a_logfile), "--log-file=%s", st->log_file);
        kargv[k++] = a_logfile;
    }
    if (!st->foreground)
        kargv[k++] = (char *)"--detached";
    kargv[k++] = (char *)"--";
    kargv[k++] = exe;
    for (int i = 1; i < argc; i++)
        kargv[k++] = argv[i];
    kargv[k++] = (char *)"--foreground";
    kargv[k] = NULL;
    execv(keeper, kargv);
    fprintf(stderr, "valorfs-fuse: exec %s: %s\n", keeper, strerror(errno));
    fuse_unmount_dir(st->mountpoint, used_fusermount);
    return 1;
}

int main(int argc, char **argv)
{
    struct settings st = { .log_level = LOG_LVL_INFO, .read_ahead_kb = -1, .keeper_fd = -1 };
    vfs_session_opts_default(&st.fuse);
    pt_opts_default(&st.pt);
    cfs_opts_default(&st.cfs);
    if (parse_args(argc, argv, &st) < 0)
        return 2;
    log_init((enum log_level)st.log_level);
    const int daemon_of_keeper = st.keeper_fd >= 0;
    if (daemon_of_keeper)
        st.foreground = 1; /* the keeper is our parent and already detached */

    bool cluster = strncmp(st.backend, "cluster:", 8) == 0;
    if (!cluster && strncmp(st.backend, "passthrough:", 12) != 0) {
        fprintf(stderr, "valorfs-fuse: unknown backend '%s' (known: passthrough:DIR, "
                "cluster:HOST:PORT[,...])\n", st.backend);
        return 2;
    }
    if (cluster && st.backend[8] == '\0') {
        fprintf(stderr, "valorfs-fuse: --backend=cluster: needs mgmtd addresses "
                "(e.g. cluster:127.0.0.1:7000)\n");
        return 2;
    }
    void *fs = NULL;
    const struct vfs_ops *ops = cluster ? &cfs_ops : &pt_ops;
    if (!cluster) {
        const char *dir = st.backend + 12;
        st.pt.writeback = st.fuse.writeback_cache;
        umask(0); /* the kernel already applied the caller's umask */
        raise_fd_limit();
        fs = pt_new(dir, &st.pt);
        if (fs == NULL) {
            fprintf(stderr, "valorfs-fuse: cannot open backend directory %s: %s\n", dir, strerror(errno));
            return 1;
        }
        if (!st.no_keeper && !daemon_of_keeper) {
            pt_free(fs); /* checked; the daemon opens it again */
            fs = NULL;
        }
    }

    /* a daemon under a keeper keeps the caller's stderr until it has
     * attached, so a first start's errors reach the caller */
    if (st.foreground && st.log_file && !daemon_of_keeper && setup_log_fd(st.log_file, 0) < 0)
        return 1;
    if (!st.foreground && st.log_file && access(st.log_file, F_OK) != 0) {
        int fd = open(st.log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) {
            fprintf(stderr, "valorfs-fuse: cannot open log file %s: %s\n", st.log_file, strerror(errno));
            return 1;
        }
        close(fd);
    }
    int ready[2] = { -1, -1 };
    if (!st.foreground) {
        if (pipe(ready) < 0)
            return 1;
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid > 0) {
            close(ready[1]);
            char c = 1;
            ssize_t n = read(ready[0], &c, 1);
            return (n == 1 && c == 0) ? 0 : 1;
        }
        close(ready[0]);
        setsid();
    }
    if (!st.no_keeper && !daemon_of_keeper) {
        if (ready[1] >= 0) {
            /* the keeper writes the ready byte once the daemon serves; until
             * then errors still reach the caller's stderr */
            int fl = fcntl(ready[1], F_GETFD);
            fcntl(ready[1], F_SETFD, fl & ~FD_CLOEXEC);
        }
        return launch_keeper(&st, argc, argv, ready[1]);
    }

    if (cluster) {
        /* after the fork: the client's threads must live in the daemon; a
         * failure still reaches the caller's stderr and exit status */
        signal(SIGPIPE, SIG_IGN);
        st.cfs.mgmtd_addrs = st.backend + 8;
        st.cfs.attr_timeout = st.pt.attr_timeout;
        st.cfs.entry_timeout = st.pt.entry_timeout;
        char err[256] = "";
        fs = cfs_new(&st.cfs, err, sizeof(err));
        if (fs == NULL) {
            fprintf(stderr, "valorfs-fuse: cannot reach the cluster at %s: %s\n",
                    st.cfs.mgmtd_addrs, err);
            return 1;
        }
    }

    /* a cluster read is an RPC round trip: a deep read-ahead window keeps
     * several chunks in flight; a local file system needs no more than the
     * kernel's default */
    st.fuse.read_ahead_kb = st.read_ahead_kb >= 0 ? (unsigned)st.read_ahead_kb
                                                  : cluster ? 4096u : 0u;
    g_session = vfs_session_new(ops, fs, &st.fuse);
    if (g_session == NULL) {
        fprintf(stderr, "valorfs-fuse: out of memory\n");
        return 1;
    }
    int rc = daemon_of_keeper ? vfs_session_attach_keeper(g_session, st.keeper_fd)
                              : vfs_session_mount(g_session, st.mountpoint);
    if (rc < 0) {
        if (daemon_of_keeper)
            fprintf(stderr, "valorfs-fuse: cannot take over from the keeper: %s\n", strerror(-rc));
        else
            fprintf(stderr, "valorfs-fuse: cannot mount %s: %s\n", st.mountpoint, strerror(-rc));
        return 1;
    }
    if (daemon_of_keeper) {
        /* attached: from now on the log file, or nothing when detached */
        const char *detached = getenv("VALORFS_DETACHED");
        if (setup_log_fd(st.log_file, detached && *detached == '1') < 0)
            return 1;
        unsetenv("VALORFS_DETACHED");
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (ready[1] >= 0) {
        char c = 0;
        ssize_t w = write(ready[1], &c, 1);
        (void)w;
        close(ready[1]);
        setup_log_fd(st.log_file, 1);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            close(devnull);
        }
    }
    /* after the detach: the log may be a file by now */
    LOG_INFO("main", "%s %s backend=%s transport=%s",
             daemon_of_keeper ? "serving (under keeper)" : "mounted",
             vfs_session_mountpoint(g_session), st.backend, vfs_transport_name(st.fuse.transport));
    rc = vfs_session_run(g_session);
    LOG_INFO("main", "stopped (%s)", rc == 0 ? "clean" : strerror(-rc));
    /* A late SIGTERM must not reach a freed session (the handler reads
     * g_session): we are stopping anyway, so from here on it is ignored. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    struct vfs_session *done = g_session;
    g_session = NULL;
    vfs_session_quiesce(done);
    if (cluster) {
        /* its RPC calls still in flight fail as it goes, and their replies
         * need the requests the session's channels hold */
        cfs_free(fs);
        vfs_session_free(done);
    } else {
        /* its I/O completes on the channels' rings, freed with the session */
        vfs_session_free(done);
        pt_free(fs);
    }
    return rc == 0 ? 0 : 1;
}
