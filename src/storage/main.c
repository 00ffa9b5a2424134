/* valorfs-storage — serve local storage targets to the cluster.
 *
 * Settings come from a config file (--config, INI) and then from the
 * command line, which wins. The node registers with mgmtd, heartbeats with
 * its targets' capacity, and serves STG_* requests along CRAQ chains.
 */
#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/mgmtd_client.h"
#include "common/config.h"
#include "common/log.h"
#include "rpc/rpc.h"
#include "storage/chunk_engine.h"
#include "storage/service.h"

#define PROG "valorfs-storage"
#define MAX_TARGETS 64

static const char usage_text[] =
    "Usage: " PROG " [OPTIONS]\n"
    "\n"
    "Serve local storage targets of a valorfs cluster: chunk data files with\n"
    "per-target LMDB metadata and CRC32C checksums, replicated along CRAQ chains.\n"
    "The node registers with mgmtd and keeps its lease by heartbeats.\n"
    "\n"
    "Options (config keys in the [storage] section, or before any section):\n"
    "  --listen=HOST:PORT    address to serve RPC on (default 0.0.0.0:8200)\n"
    "  --advertise=HOST:PORT address other nodes use to reach this one (default:\n"
    "                        the listen address with the bound port, the host\n"
    "                        name in place of a wildcard host)\n"
    "  --node-id=N           this node's id (default 0: mgmtd assigns one)\n"
    "  --mgmtd=ADDRS         mgmtd addresses, HOST:PORT[,HOST:PORT...] (required)\n"
    "  --targets=LIST        local targets, ID:PATH[,ID:PATH...], e.g.\n"
    "                        101:/data/t1,102:/data/t2 (required); each PATH is\n"
    "                        created when missing and locked while served\n"
    "  --verify-reads=BOOL   check a chunk's CRC32C before serving it, once per version\n"
    "                        (a bad copy: the reader goes elsewhere, a peer repairs\n"
    "                        it; default true)\n"
    "  --rpc-threads=N       RPC worker threads (default 8)\n"
    "  --apply-threads=N     threads applying replicated updates (default 4)\n"
    "  --forward-timeout-ms=N  deadline of an update forwarded to the next\n"
    "                        replica (default 10000)\n"
    "  --config=FILE         read settings from FILE (INI)\n"
    "  --log-level=L         error | warn | info | debug (default info)\n"
    "  --log-file=FILE       append logs to FILE instead of stderr\n"
    "  -h, --help            show this help\n"
    "  -V, --version         show the version\n"
    "\n"
    "SIGTERM/SIGINT: stop accepting requests, finish updates in flight, sync\n"
    "every target, leave the cluster and exit 0.\n"
    "\n"
    "Exit status: 0 after a graceful stop; 1 when a target cannot be opened or\n"
    "mgmtd cannot be reached; 2 on a bad option or config value.\n";

struct target_spec {
    uint32_t id;
    char path[1024];
};

struct settings {
    char listen[VF_MAX_ADDR + 1];
    char advertise[VF_MAX_ADDR + 1];
    uint32_t node_id;
    char mgmtd[512];
    struct target_spec targets[MAX_TARGETS];
    uint32_t ntargets;
    int verify_reads;
    int rpc_threads;
    int apply_threads;
    int forward_timeout_ms;
    int log_level;
    char log_file[1024];
};

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    long v;
    if (parse_long(s, lo, hi, &v) < 0)
        return -1;
    *out = (int)v;
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

static int copy_str(char *dst, size_t cap, const char *s)
{
    if (!*s || strlen(s) >= cap)
        return -1;
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

/* "ID:PATH[,ID:PATH...]" with distinct ids and paths */
static int parse_targets(struct settings *st, const char *val)
{
    char *dup = strdup(val), *save = NULL;
    if (!dup)
        return -1;
    uint32_t n = 0;
    int rc = 0;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        long id;
        if (!colon || n == MAX_TARGETS) {
            rc = -1;
            break;
        }
        *colon = '\0';
        if (parse_long(tok, 1, UINT32_MAX, &id) < 0 ||
            copy_str(st->targets[n].path, sizeof(st->targets[n].path), colon + 1) < 0) {
            rc = -1;
            break;
        }
        st->targets[n].id = (uint32_t)id;
        for (uint32_t i = 0; i < n; i++)
            if (st->targets[i].id == (uint32_t)id || !strcmp(st->targets[i].path, colon + 1))
                rc = -1;
        n++;
    }
    free(dup);
    if (rc == 0 && n == 0)
        rc = -1;
    if (rc == 0)
        st->ntargets = n;
    return rc;
}

/* One setting by its config name; shared by the config file and the
 * command line so both accept exactly the same values. -2 = unknown key. */
static int apply(struct settings *st, const char *key, const char *val)
{
    long v;
    if (!strcmp(key, "listen"))
        return copy_str(st->listen, sizeof(st->listen), val);
    if (!strcmp(key, "advertise"))
        return copy_str(st->advertise, sizeof(st->advertise), val);
    if (!strcmp(key, "node_id")) {
        if (parse_long(val, 0, UINT32_MAX, &v) < 0)
            return -1;
        st->node_id = (uint32_t)v;
        return 0;
    }
    if (!strcmp(key, "mgmtd"))
        return copy_str(st->mgmtd, sizeof(st->mgmtd), val);
    if (!strcmp(key, "targets"))
        return parse_targets(st, val);
    if (!strcmp(key, "verify_reads"))
        return parse_bool(val, &st->verify_reads);
    if (!strcmp(key, "rpc_threads"))
        return parse_int(val, 1, 256, &st->rpc_threads);
    if (!strcmp(key, "apply_threads"))
        return parse_int(val, 1, 256, &st->apply_threads);
    if (!strcmp(key, "forward_timeout_ms"))
        return parse_int(val, 100, 3600000, &st->forward_timeout_ms);
    if (!strcmp(key, "log_level")) {
        int l = log_level_parse(val);
        if (l < 0)
            return -1;
        st->log_level = l;
        return 0;
    }
    if (!strcmp(key, "log_file"))
        return copy_str(st->log_file, sizeof(st->log_file), val);
    return -2;
}

static int ini_apply(void *arg, const char *section, const char *key, const char *value)
{
    /* keys at the top or in the [storage] section */
    if (section[0] && strcmp(section, "storage") != 0)
        return -2;
    return apply(arg, key, value);
}

static int load_config(struct settings *st, const char *file)
{
    return config_load(PROG, file, ini_apply, st);
}

/* The listen address, with the port actually bound and, for a wildcard
 * host, this machine's name: what other nodes can connect to. */
static int default_advertise(struct settings *st, uint16_t port)
{
    char host[VF_MAX_ADDR + 1];
    const char *colon = strrchr(st->listen, ':');
    if (!colon || (size_t)(colon - st->listen) >= sizeof(host))
        return -1;
    memcpy(host, st->listen, (size_t)(colon - st->listen));
    host[colon - st->listen] = '\0';
    if (!host[0] || !strcmp(host, "0.0.0.0") || !strcmp(host, "[::]") || !strcmp(host, "::")) {
        if (gethostname(host, sizeof(host)) < 0)
            return -1;
        host[sizeof(host) - 1] = '\0';
    }
    int n = snprintf(st->advertise, sizeof(st->advertise), "%s:%u", host, port);
    return n > 0 && (size_t)n < sizeof(st->advertise) ? 0 : -1;
}

/* ---------------- routing through the mgmtd client ---------------- */

struct app {
    _Atomic(struct mgc *) mgc;
    struct stg_service *svc;
};

static const struct mg_routing *rt_acquire(void *arg, void **ref)
{
    struct app *a = arg;
    struct mgc *m = atomic_load(&a->mgc);
    struct mgc_routing *r = m ? mgc_routing(m) : NULL;
    *ref = r;
    return r ? &r->r : NULL;
}

static void rt_release(void *arg, void *ref)
{
    (void)arg;
    if (ref)
        mgc_routing_put(ref);
}

static int rt_refresh(void *arg, uint32_t timeout_ms)
{
    struct app *a = arg;
    struct mgc *m = atomic_load(&a->mgc);
    return m ? mgc_refresh(m, 0, timeout_ms) : VF_E_NO_ROUTE;
}

static bool rt_lease_valid(void *arg)
{
    struct app *a = arg;
    struct mgc *m = atomic_load(&a->mgc);
    return m && mgc_lease_valid(m);
}

static int rt_report_synced(void *arg, const struct mg_sync_done_req *req)
{
    struct app *a = arg;
    struct mgc *m = atomic_load(&a->mgc);
    return m ? mgc_sync_done(m, req) : VF_E_NO_ROUTE;
}

static void rt_report_down(void *arg, uint32_t target_id)
{
    struct app *a = arg;
    struct mgc *m = atomic_load(&a->mgc);
    struct mgc_routing *r = m ? mgc_routing(m) : NULL;
    const struct mg_target *t = r ? mg_routing_target(&r->r, target_id) : NULL;
    if (t)
        mgc_report_down(m, t->node_id);
    if (r)
        mgc_routing_put(r);
}

static uint32_t report_targets(void *arg, struct mg_target_report *out, uint32_t max)
{
    struct app *a = arg;
    return stg_service_report(a->svc, out, max);
}

/* A new routing may have made a successor SYNCING: look for resync work. */
static void on_routing(void *arg, const struct mg_routing *r)
{
    (void)r;
    struct app *a = arg;
    if (a->svc)
        stg_service_resync_kick(a->svc);
}

static void on_lease_lost(void *arg)
{
    (void)arg;
    LOG_WARN("storage", "lease lost: refusing requests until mgmtd renews it");
}

/* ---------------- main ---------------- */

enum {
    OPT_CONFIG = 256, OPT_LISTEN, OPT_ADVERTISE, OPT_NODE_ID, OPT_MGMTD, OPT_TARGETS,
    OPT_VERIFY, OPT_RPC_THREADS, OPT_APPLY_THREADS, OPT_FWD_TIMEOUT, OPT_LOG_LEVEL, OPT_LOG_FILE,
};

static const struct option long_opts[] = {
    { "config", required_argument, NULL, OPT_CONFIG },
    { "listen", required_argument, NULL, OPT_LISTEN },
    { "advertise", required_argument, NULL, OPT_ADVERTISE },
    { "node-id", required_argument, NULL, OPT_NODE_ID },
    { "node_id", required_argument, NULL, OPT_NODE_ID },
    { "mgmtd", required_argument, NULL, OPT_MGMTD },
    { "targets", required_argument, NULL, OPT_TARGETS },
    { "verify-reads", required_argument, NULL, OPT_VERIFY },
    { "verify_reads", required_argument, NULL, OPT_VERIFY },
    { "rpc-threads", required_argument, NULL, OPT_RPC_THREADS },
    { "rpc_threads", required_argument, NULL, OPT_RPC_THREADS },
    { "apply-threads", required_argument, NULL, OPT_APPLY_THREADS },
    { "apply_threads", required_argument, NULL, OPT_APPLY_THREADS },
    { "forward-timeout-ms", required_argument, NULL, OPT_FWD_TIMEOUT },
    { "forward_timeout_ms", required_argument, NULL, OPT_FWD_TIMEOUT },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
    { "log_level", required_argument, NULL, OPT_LOG_LEVEL },
    { "log-file", required_argument, NULL, OPT_LOG_FILE },
    { "log_file", required_argument, NULL, OPT_LOG_FILE },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

static const char *opt_key(int c)
{
    switch (c) {
    case OPT_LISTEN: return "listen";
    case OPT_ADVERTISE: return "advertise";
    case OPT_NODE_ID: return "node_id";
    case OPT_MGMTD: return "mgmtd";
    case OPT_TARGETS: return "targets";
    case OPT_VERIFY: return "verify_reads";
    case OPT_RPC_THREADS: return "rpc_threads";
    case OPT_APPLY_THREADS: return "apply_threads";
    case OPT_FWD_TIMEOUT: return "forward_timeout_ms";
    case OPT_LOG_LEVEL: return "log_level";
    case OPT_LOG_FILE: return "log_file";
    default: return NULL;
    }
}

static int parse_args(struct settings *st, int argc, char **argv)
{
    /* the config file first, wherever --config appears; then the rest */
    for (int i = 1; i < argc; i++) {
        const char *file = NULL;
        if (!strncmp(argv[i], "--config=", 9))
            file = argv[i] + 9;
        else if (!strcmp(argv[i], "--config") && i + 1 < argc)
            file = argv[i + 1];
        if (file && load_config(st, file) < 0)
            return 2;
    }
    int c;
    opterr = 0; /* our own one-line message below */
    while ((c = getopt_long(argc, argv, "hV", long_opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return 0;
        }
        if (c == 'V') {
            printf(PROG " 0.1.0\n");
            return 0;
        }
        if (c == OPT_CONFIG)
            continue;
        const char *key = opt_key(c);
        if (!key) {
            fprintf(stderr, PROG ": unknown option or missing value: %s (try --help)\n",
                    argv[optind - 1]);
            return 2;
        }
        if (apply(st, key, optarg) < 0) {
            fprintf(stderr, PROG ": bad value '%s' for --%s\n", optarg, key);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s' (try --help)\n", argv[optind]);
        return 2;
    }
    if (!st->mgmtd[0]) {
        fprintf(stderr, PROG ": --mgmtd is required (try --help)\n");
        return 2;
    }
    if (!st->ntargets) {
        fprintf(stderr, PROG ": --targets is required (try --help)\n");
        return 2;
    }
    return -1; /* go on */
}

int main(int argc, char **argv)
{
    static struct settings st = {
        .listen = "0.0.0.0:8200", .verify_reads = 1, .rpc_threads = 8, .apply_threads = 4,
        .forward_timeout_ms = 10000, .log_level = LOG_LVL_INFO,
    };
    int rc = parse_args(&st, argc, argv);
    if (rc >= 0)
        return rc;
    if (st.log_file[0]) {
        int fd = open(st.log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) {
            fprintf(stderr, PROG ": cannot open log file %s: %s\n", st.log_file, strerror(errno));
            return 2;
        }
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    log_init(st.log_level);

    /* every thread inherits the blocked set; main takes them with sigwait */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    static struct ce_target *targets[MAX_TARGETS];
    uint32_t nt = 0;
    int exit_code = 1;
    struct rpc_client *cli = NULL;
    struct rpc_server *srv = NULL;
    struct app app = { NULL, NULL };
    bool server_stopped = false;
    for (; nt < st.ntargets; nt++) {
        char err[512];
        struct ce_opts co = { .target_id = st.targets[nt].id, .path = st.targets[nt].path,
                              .verify_reads = st.verify_reads };
        targets[nt] = ce_open(&co, err, sizeof(err));
        if (!targets[nt]) {
            fprintf(stderr, PROG ": %s\n", err);
            goto out;
        }
    }
    cli = rpc_client_new(&(struct rpc_client_opts){ .name = "storage-fwd" });
    struct stg_service_opts so = {
        .node_id = st.node_id, .targets = targets, .ntargets = nt, .rpc = cli,
        .apply_threads = st.apply_threads, .forward_timeout_ms = (uint32_t)st.forward_timeout_ms,
        .routing = { rt_acquire, rt_release, rt_refresh, rt_lease_valid, rt_report_synced,
                     rt_report_down, &app },
    };
    app.svc = cli ? stg_service_new(&so) : NULL;
    srv = rpc_server_new(&(struct rpc_server_opts){
        .listen = st.listen, .worker_threads = st.rpc_threads, .name = "storage" });
    if (!app.svc || !srv || stg_service_attach(app.svc, srv) < 0) {
        fprintf(stderr, PROG ": out of memory setting up the service\n");
        goto out;
    }
    if ((rc = rpc_server_start(srv)) < 0) {
        fprintf(stderr, PROG ": cannot listen on %s: %s\n", st.listen, strerror(-rc));
        goto out;
    }
    if (!st.advertise[0] && default_advertise(&st, rpc_server_port(srv)) < 0) {
        fprintf(stderr, PROG ": cannot tell which address to advertise for %s; set --advertise\n",
                st.listen);
        goto out;
    }
    char err[512] = "";
    struct mgc_opts mo = {
        .mgmtd_addrs = st.mgmtd, .rpc = cli, .type = NODE_STORAGE, .node_id = st.node_id,
        .addr = st.advertise, .report_targets = report_targets, .on_lease_lost = on_lease_lost,
        .on_routing = on_routing,
        .arg = &app,
    };
    struct mgc *m = mgc_start(&mo, err, sizeof(err));
    if (!m) {
        fprintf(stderr, PROG ": %s\n", err);
        goto out;
    }
    atomic_store(&app.mgc, m);
    LOG_INFO("storage", "ready storage node=%u listen=%s targets=%u", mgc_node_id(m), st.advertise,
             nt);

    int sig = 0;
    sigwait(&sigs, &sig);
    LOG_INFO("storage", "stopping signal=%d", sig);
    /* no new requests; the updates in flight finish (they hold their calls) */
    rpc_server_stop(srv, 15000);
    server_stopped = true;
    bool drained = stg_service_drain(app.svc, 5000);
    mgc_stop(m);
    atomic_store(&app.mgc, NULL);
    exit_code = 0;
    if (!drained) {
        /* a forward still in flight would call into a freed service: keep
         * it, make the data durable and leave */
        LOG_WARN("storage", "updates still in flight at exit; syncing and leaving");
        for (uint32_t i = 0; i < nt; i++)
            ce_sync(targets[i]);
        _exit(0);
    }
out:
    if (srv && !server_stopped)
        rpc_server_stop(srv, 0);
    stg_service_free(app.svc);
    rpc_server_free(srv);
    for (uint32_t i = 0; i < nt; i++) {
        int src = ce_sync(targets[i]);
        if (src < 0) {
            LOG_ERROR("storage", "sync failed target=%u err=%s", ce_target_id(targets[i]),
                      strerror(-src));
            exit_code = exit_code ? exit_code : 1;
        }
        ce_close(targets[i]);
    }
    if (cli)
        rpc_client_free(cli);
    if (exit_code == 0)
        LOG_INFO("storage", "stopped");
    return exit_code;
}
