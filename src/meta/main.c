/* valorfs-meta — the metadata service.
 *
 * Settings come from a config file (--config, INI) and then from the
 * command line (--key=value for every key), which wins. Startup: open the
 * KV store, serve RPC, register with mgmtd as a meta node, start the orphan
 * collector (which also expires de-duplication records); SIGTERM/SIGINT stop it in the reverse order and exit 0.
 */
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/mgmtd_client.h"
#include "client/storage_client.h"
#include "common/config.h"
#include "common/log.h"
#include "kv/kv.h"
#include "meta/chunk_ops_storage.h"
#include "meta/meta_core.h"
#include "meta/server.h"
#include "rpc/rpc.h"

#define VALORFS_VERSION "0.1.0"
#define PROG "valorfs-meta"

static const char usage_text[] =
    "Usage: valorfs-meta [OPTIONS]\n"
    "\n"
    "Serve the valorfs namespace (inodes, directories, xattrs, open sessions)\n"
    "from a transactional KV store. Any number of meta servers may share one\n"
    "store; each registers with mgmtd so clients find it.\n"
    "\n"
    "Options (each is also a config-file key, in a [meta] section or none;\n"
    "the command line wins over the file):\n"
    "  --listen=HOST:PORT      where to serve RPC (default 127.0.0.1:8200)\n"
    "  --advertise=HOST:PORT   address registered with mgmtd (default: --listen)\n"
    "  --node_id=N             this node's id; 0 = let mgmtd assign one (default 0)\n"
    "  --mgmtd=ADDRS           mgmtd addresses, HOST:PORT[,HOST:PORT...] (required)\n"
    "  --kv=URI                the KV store, lmdb:PATH (default\n"
    "                          lmdb:/var/lib/valorfs/meta-kv) or an etcd cluster,\n"
    "                          etcd://HOST:PORT[,HOST:PORT...][/PREFIX/][?op_timeout_ms=N]\n"
    "                          (every meta server of a cluster on the same PREFIX;\n"
    "                          see docs/etcd.md)\n"
    "  --kv_sync=MODE          commit: every commit reaches stable storage before it\n"
    "                          is acknowledged; none: the OS flushes later (a crash\n"
    "                          may lose the last commits) (default commit)\n"
    "  --kv_map_size=BYTES     LMDB map size (default 16G; K/M/G/T suffixes)\n"
    "  --chunk_size=BYTES      chunk size of new files, a power of two in\n"
    "                          64K..64M (default 1M)\n"
    "  --stripe=N              chains a new file spreads over, 1..64, capped by the\n"
    "                          chain table's size (default 4)\n"
    "  --gc_interval_ms=MS     period of the orphan collector (default 1000)\n"
    "  --dedup_retention_s=S   how long the answer to a state-changing request is\n"
    "                          kept so that a client's retry (after a lost answer,\n"
    "                          on any meta server) is answered, not applied again;\n"
    "                          must exceed the clients' call deadline (30 s);\n"
    "                          10..86400 (default 600)\n"
    "  --workers=N             RPC worker threads (default 8)\n"
    "  --lock_memory=BOOL      keep the metadata this server has touched resident\n"
    "                          (mlockall on fault): the page cache never evicts\n"
    "                          it, so lookups stay memory-speed under pressure\n"
    "                          (default true; needs CAP_IPC_LOCK or RLIMIT_MEMLOCK)\n"
    "  --log_level=L, --log-level=L\n"
    "                          error | warn | info | debug (default info)\n"
    "  --log_file=FILE, --log-file=FILE\n"
    "                          append logs to FILE instead of stderr\n"
    "  --config=FILE           read settings from FILE (INI)\n"
    "  -h, --help              show this help\n"
    "  -V, --version           show the version\n"
    "\n"
    "Exit status: 0 after SIGTERM/SIGINT, 1 when a dependency (KV store, mgmtd,\n"
    "listen address) fails at startup, 2 for bad options or configuration.\n";

struct settings {
    char listen[VF_MAX_ADDR + 1];
    char advertise[VF_MAX_ADDR + 1];
    uint32_t node_id;
    char mgmtd[1024];
    char kv[1024];
    enum kv_sync kv_sync;
    uint64_t kv_map_size;
    uint32_t chunk_size, stripe, gc_interval_ms, workers, dedup_retention_s;
    bool lock_memory;
    int log_level;
    char log_file[1024];
};

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, bool suffix, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return -1;
    if (suffix && *end) {
        unsigned shift = 0;
        switch (*end) {
        case 'K': case 'k': shift = 10; break;
        case 'M': case 'm': shift = 20; break;
        case 'G': case 'g': shift = 30; break;
        case 'T': case 't': shift = 40; break;
        default: return -1;
        }
        if (v > (UINT64_MAX >> shift))
            return -1;
        v <<= shift;
        end++;
    }
    if (*end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, bool suffix, uint32_t *out)
{
    uint64_t v;
    if (parse_u64(s, lo, hi, suffix, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *val)
{
    if (strlen(val) >= cap || val[0] == '\0')
        return -1;
    strcpy(dst, val);
    return 0;
}

/* One setting by its key; shared by the file and the command line. 0 ok,
 * -1 bad value, -2 unknown key. */
static int apply(struct settings *st, const char *key, const char *val)
{
    if (!strcmp(key, "listen"))
        return strchr(val, ':') ? copy_str(st->listen, sizeof(st->listen), val) : -1;
    if (!strcmp(key, "advertise"))
        return strchr(val, ':') ? copy_str(st->advertise, sizeof(st->advertise), val) : -1;
    if (!strcmp(key, "node_id"))
        return parse_u32(val, 0, UINT32_MAX, false, &st->node_id);
    if (!strcmp(key, "mgmtd"))
        return copy_str(st->mgmtd, sizeof(st->mgmtd), val);
    if (!strcmp(key, "kv"))
        return copy_str(st->kv, sizeof(st->kv), val);
    if (!strcmp(key, "kv_sync")) {
        if (!strcmp(val, "commit"))
            st->kv_sync = KV_SYNC_COMMIT;
        else if (!strcmp(val, "none"))
            st->kv_sync = KV_SYNC_NONE;
        else
            return -1;
        return 0;
    }
    if (!strcmp(key, "kv_map_size"))
        return parse_u64(val, 1u << 20, UINT64_MAX, true, &st->kv_map_size);
    if (!strcmp(key, "chunk_size")) {
        uint32_t v;
        if (parse_u32(val, 64u << 10, 64u << 20, true, &v) < 0 || (v & (v - 1)))
            return -1;
        st->chunk_size = v;
        return 0;
    }
    if (!strcmp(key, "stripe"))
        return parse_u32(val, 1, VF_MAX_STRIPE, false, &st->stripe);
    if (!strcmp(key, "lock_memory")) {
        if (!strcmp(val, "true") || !strcmp(val, "1") || !strcmp(val, "yes"))
            st->lock_memory = true;
        else if (!strcmp(val, "false") || !strcmp(val, "0") || !strcmp(val, "no"))
            st->lock_memory = false;
        else
            return -1;
        return 0;
    }
    if (!strcmp(key, "gc_interval_ms"))
        return parse_u32(val, 1, 3600000, false, &st->gc_interval_ms);
    if (!strcmp(key, "dedup_retention_s"))
        return parse_u32(val, 10, 86400, false, &st->dedup_retention_s);
    if (!strcmp(key, "workers"))
        return parse_u32(val, 1, 256, false, &st->workers);
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
    /* keys at the top or in the [meta] section */
    if (section[0] && strcmp(section, "meta") != 0)
        return -2;
    return apply(arg, key, value);
}

static int load_config(struct settings *st, const char *file)
{
    return config_load(PROG, file, ini_apply, st);
}

/* --key=value or --key value; '-' and '_' are the same in key names. */
static int parse_args(int argc, char **argv, struct settings *st)
{
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--config=", 9))
            config = argv[i] + 9;
        else if (!strcmp(argv[i], "--config") && i + 1 < argc)
            config = argv[i + 1];
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage_text, stdout);
            exit(0);
        }
        if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
            printf(PROG " %s\n", VALORFS_VERSION);
            exit(0);
        }
    }
    if (config && load_config(st, config) < 0)
        return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, PROG ": unexpected argument '%s'\nTry '" PROG " --help'.\n", a);
            return -1;
        }
        char key[64];
        const char *eq = strchr(a + 2, '=');
        size_t klen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (klen == 0 || klen >= sizeof(key)) {
            fprintf(stderr, PROG ": unknown option '%s'\nTry '" PROG " --help'.\n", a);
            return -1;
        }
        memcpy(key, a + 2, klen);
        key[klen] = '\0';
        for (char *p = key; *p; p++)
            if (*p == '-')
                *p = '_';
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, PROG ": option '--%s' needs a value\n", key);
                return -1;
            }
            val = argv[++i];
        }
        if (!strcmp(key, "config"))
            continue;
        int rc = apply(st, key, val);
        if (rc == -2) {
            fprintf(stderr, PROG ": unknown option '--%s'\nTry '" PROG " --help'.\n", key);
            return -1;
        }
        if (rc < 0) {
            fprintf(stderr, PROG ": bad value '%s' for --%s\n", val, key);
            return -1;
        }
    }
    if (st->mgmtd[0] == '\0') {
        fprintf(stderr, PROG ": missing --mgmtd=HOST:PORT (the cluster manager)\n");
        return -1;
    }
    return 0;
}

static void on_lease_lost(void *arg)
{
    (void)arg;
    /* all meta state lives in the KV store, so serving on is safe; clients
     * stop routing here until the lease is back */
    LOG_WARN("meta", "lease lost: mgmtd lists this node as dead until it re-registers");
}

/* Advertise the real port when listening on port 0. */
static void actual_addr(const char *addr, uint16_t port, char *out, size_t cap)
{
    const char *colon = strrchr(addr, ':');
    int hostlen = colon ? (int)(colon - addr) : (int)strlen(addr);
    snprintf(out, cap, "%.*s:%u", hostlen, addr, port);
}

int main(int argc, char **argv)
{
    struct settings st = {
        .listen = "127.0.0.1:8200",
        .kv = "lmdb:/var/lib/valorfs/meta-kv",
        .kv_sync = KV_SYNC_COMMIT,
        .chunk_size = META_DEFAULT_CHUNK,
        .stripe = META_DEFAULT_STRIPE,
        .gc_interval_ms = 1000,
        .dedup_retention_s = META_DEDUP_RETENTION_S,
        .workers = 8,
        .lock_memory = true,
        .log_level = LOG_LVL_INFO,
    };
    if (parse_args(argc, argv, &st) < 0)
        return 2;
    if (st.log_file[0]) {
        FILE *f = freopen(st.log_file, "a", stderr);
        if (!f) {
            fprintf(stdout, PROG ": cannot open log file %s: %s\n", st.log_file, strerror(errno));
            return 2;
        }
        setvbuf(stderr, NULL, _IONBF, 0);
    }
    log_init((enum log_level)st.log_level);
    signal(SIGPIPE, SIG_IGN);
    /* every thread inherits the blocked set; main waits for the signal */
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);

    /* Like an in-memory master (MooseFS): the store's pages, once read, stay
     * in RAM. MCL_ONFAULT locks only what is touched, not the sparse map. */
    if (st.lock_memory && mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) < 0)
        LOG_WARN("meta", "lock_memory: mlockall failed (%s); metadata pages may be evicted",
                 strerror(errno));

    char err[256];
    struct kv_opts ko = { .map_size = st.kv_map_size, .sync = st.kv_sync };
    struct kv_db *db = kv_open(st.kv, &ko, err, sizeof(err));
    if (!db) {
        fprintf(stderr, PROG ": cannot open KV store %s: %s\n", st.kv, err);
        LOG_ERROR("meta", "cannot open KV store uri=%s err=%s", st.kv, err);
        return 1;
    }
    struct rpc_client_opts rco = { .name = "meta-client" };
    struct rpc_client *rpc = rpc_client_new(&rco);
    struct meta_storage_glue glue = { .space_lock = PTHREAD_MUTEX_INITIALIZER };
    struct meta_core_opts mo = {
        .db = db,
        .chunk_size = st.chunk_size,
        .stripe = st.stripe,
        .space = meta_storage_space,
        .space_arg = &glue,
        .dedup_retention_s = st.dedup_retention_s,
    };
    meta_chunk_ops_storage(&glue, &mo.chunk);
    struct meta_core *mc = rpc ? meta_core_new(&mo, err, sizeof(err)) : NULL;
    if (!mc) {
        fprintf(stderr, PROG ": %s\n", rpc ? err : "cannot start the RPC client");
        LOG_ERROR("meta", "startup failed err=%s", rpc ? err : "rpc client");
        kv_close(db);
        return 1;
    }
    struct rpc_server_opts so = {
        .listen = st.listen,
        .worker_threads = (int)st.workers,
        .name = "meta",
    };
    struct rpc_server *srv = rpc_server_new(&so);
    int rc = srv ? meta_server_register(srv, mc) : -ENOMEM;
    if (rc == 0)
        rc = rpc_server_start(srv);
    if (rc < 0) {
        fprintf(stderr, PROG ": cannot listen on %s: %s\n", st.listen, strerror(-rc));
        LOG_ERROR("meta", "cannot listen addr=%s err=%s", st.listen, strerror(-rc));
        return 1;
    }
    char addr[VF_MAX_ADDR + 1];
    if (st.advertise[0])
        snprintf(addr, sizeof(addr), "%s", st.advertise);
    else
        actual_addr(st.listen, rpc_server_port(srv), addr, sizeof(addr));

    struct mgc_opts mgo = {
        .mgmtd_addrs = st.mgmtd,
        .rpc = rpc,
        .type = NODE_META,
        .node_id = st.node_id,
        .addr = addr,
        .on_lease_lost = on_lease_lost,
    };
    struct mgc *mgc = mgc_start(&mgo, err, sizeof(err));
    if (!mgc) {
        fprintf(stderr, PROG ": cannot register with mgmtd %s: %s\n", st.mgmtd, err);
        LOG_ERROR("meta", "cannot register with mgmtd addrs=%s err=%s", st.mgmtd, err);
        rpc_server_stop(srv, 0);
        rpc_server_free(srv);
        meta_core_free(mc);
        rpc_client_free(rpc);
        kv_close(db);
        return 1;
    }
    struct sc_opts sco;
    sc_opts_default(&sco);
    struct sc *sc = sc_new(rpc, mgc, &sco);
    /* requests may already run on the workers: publish both at once */
    meta_storage_glue_set(&glue, sc, mgc, rpc);
    if (!sc || meta_gc_start(mc, st.gc_interval_ms) < 0) {
        fprintf(stderr, PROG ": cannot start the storage client or the collector\n");
        return 1;
    }
    LOG_INFO("meta", "ready meta node=%u listen=%s kv=%s kv_sync=%s", mgc_node_id(mgc), addr, st.kv,
             st.kv_sync == KV_SYNC_COMMIT ? "commit" : "none");

    int sig = 0;
    while (sigwait(&stop_set, &sig) != 0)
        ;
    LOG_INFO("meta", "stopping on signal %d", sig);
    rpc_server_stop(srv, 5000);
    meta_gc_stop(mc);
    mgc_stop(mgc);
    meta_storage_glue_set(&glue, NULL, NULL, NULL);
    sc_free(sc);
    rpc_server_free(srv);
    meta_core_free(mc);
    rpc_client_free(rpc);
    kv_close(db);
    LOG_INFO("meta", "stopped");
    return 0;
}
