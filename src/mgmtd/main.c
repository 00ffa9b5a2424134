/* valorfs-mgmtd — the valorfs cluster manager daemon.
 *
 * Settings come from an INI config file (--config) and then from the
 * command line (--key=value for every config key), which wins.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "mgmtd/mgmtd.h"

#define VALORFS_VERSION "0.1.0"

static const char usage_text[] =
    "Usage: valorfs-mgmtd [--config=FILE] [--KEY=VALUE ...]\n"
    "\n"
    "Run the valorfs cluster manager: node registration and leases, routing\n"
    "information, chain tables and target states. Several mgmtd may share one\n"
    "KV store; one of them is elected primary through a lease in the store and\n"
    "the others stand by, redirecting callers to it.\n"
    "\n"
    "Every setting is a config file key (INI, in a [mgmtd] section or before\n"
    "any section) and a command-line override --KEY=VALUE (dashes and\n"
    "underscores are interchangeable in KEY):\n"
    "\n"
    "  listen=HOST:PORT        address to serve RPC on (default 0.0.0.0:9000)\n"
    "  advertise=HOST:PORT     address other nodes reach this mgmtd at (default:\n"
    "                          the listen host, or the host name when listening\n"
    "                          on a wildcard, with the listen port)\n"
    "  node_id=N               this mgmtd's id, distinct for every mgmtd sharing\n"
    "                          a store, 1..4294967295 (default 1)\n"
    "  kv=URI                  the KV store holding the cluster state: lmdb:PATH\n"
    "                          (one mgmtd) or etcd://HOST:PORT[,...][/PREFIX/]\n"
    "                          (several mgmtd on one PREFIX; docs/etcd.md), e.g.\n"
    "                          lmdb:/var/lib/valorfs/mgmtd-kv (required)\n"
    "  lease_ms=MS             node lease T: a node silent for T loses its lease,\n"
    "                          its targets go offline (default 60000)\n"
    "  election_ms=MS          period of the primary election round, which also\n"
    "                          renews the primary's lease (default 10000)\n"
    "  primary_lease_ms=MS     length of the primary lease; a new primary waits\n"
    "                          this long before acting; at least 2 x election_ms\n"
    "                          (default 30000)\n"
    "  loop_threads=N          RPC event-loop threads (default 1)\n"
    "  worker_threads=N        RPC worker threads (default 2)\n"
    "  log_level=L             error | warn | info | debug (default info)\n"
    "  log_file=FILE           append logs to FILE instead of stderr\n"
    "\n"
    "Other options:\n"
    "  --config=FILE           read settings from FILE first\n"
    "  -h, --help              show this help\n"
    "  -V, --version           show the version\n"
    "\n"
    "The daemon logs one line 'ready mgmtd node=ID listen=ADDR' once it\n"
    "serves, and stops cleanly (stepping down as primary) on SIGTERM/SIGINT.\n"
    "Exit status: 0 after a clean stop, 1 when it cannot start (store or\n"
    "listen address unusable), 2 on a bad config or command line.\n";

struct settings {
    struct mgmtd_opts o;
    char *listen, *advertise, *kv, *log_file;
    int log_level;
};

static int parse_u32(const char *s, unsigned long lo, unsigned long hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0' || *s == '-' || v < lo || v > hi)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int set_str(char **dst, const char *v)
{
    char *d = strdup(v);
    if (!d)
        return -1;
    free(*dst);
    *dst = d;
    return 0;
}

/* One setting by name; -2 unknown key, -1 bad value. Shared by the config
 * file and the command line so both accept exactly the same values. */
static int apply(struct settings *st, const char *key, const char *val)
{
    uint32_t u;
    if (!strcmp(key, "listen"))
        return *val && strchr(val, ':') ? set_str(&st->listen, val) : -1;
    if (!strcmp(key, "advertise"))
        return set_str(&st->advertise, val);
    if (!strcmp(key, "kv"))
        return *val ? set_str(&st->kv, val) : -1;
    if (!strcmp(key, "node_id"))
        return parse_u32(val, 1, UINT32_MAX, &st->o.node_id);
    if (!strcmp(key, "lease_ms"))
        return parse_u32(val, 100, 86400000, &st->o.lease_ms);
    if (!strcmp(key, "election_ms"))
        return parse_u32(val, 10, 3600000, &st->o.election_ms);
    if (!strcmp(key, "primary_lease_ms"))
        return parse_u32(val, 20, 7200000, &st->o.primary_lease_ms);
    if (!strcmp(key, "loop_threads") || !strcmp(key, "worker_threads")) {
        if (parse_u32(val, 1, 64, &u) < 0)
            return -1;
        *(key[0] == 'l' ? &st->o.loop_threads : &st->o.worker_threads) = (int)u;
        return 0;
    }
    if (!strcmp(key, "log_level")) {
        int l = log_level_parse(val);
        if (l < 0)
            return -1;
        st->log_level = l;
        return 0;
    }
    if (!strcmp(key, "log_file"))
        return *val ? set_str(&st->log_file, val) : -1;
    return -2;
}

static int ini_apply(void *arg, const char *section, const char *key, const char *value)
{
    /* keys at the top or in the [mgmtd] section */
    if (section[0] && strcmp(section, "mgmtd") != 0)
        return -2;
    return apply(arg, key, value);
}

static int load_config(struct settings *st, const char *file)
{
    return config_load("valorfs-mgmtd", file, ini_apply, st);
}

static int parse_args(int argc, char **argv, struct settings *st)
{
    /* the config file first, so the command line overrides it */
    for (int i = 1; i < argc; i++) {
        const char *cfg = NULL;
        if (!strncmp(argv[i], "--config=", 9))
            cfg = argv[i] + 9;
        else if (!strcmp(argv[i], "--config") && i + 1 < argc)
            cfg = argv[++i];
        if (cfg && load_config(st, cfg) < 0)
            return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            exit(0);
        }
        if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("valorfs-mgmtd %s\n", VALORFS_VERSION);
            exit(0);
        }
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9))
            continue;
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "valorfs-mgmtd: unexpected argument '%s'\nTry 'valorfs-mgmtd --help'.\n",
                    a);
            return -1;
        }
        char key[64];
        const char *eq = strchr(a + 2, '=');
        size_t klen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "valorfs-mgmtd: option '%s' needs a value\n", a);
                return -1;
            }
            val = argv[++i];
        }
        if (klen >= sizeof(key))
            klen = sizeof(key) - 1;
        for (size_t j = 0; j < klen; j++)
            key[j] = a[2 + j] == '-' ? '_' : a[2 + j];
        key[klen] = '\0';
        int rc = apply(st, key, val);
        if (rc == -2) {
            fprintf(stderr, "valorfs-mgmtd: unknown option '--%s'\nTry 'valorfs-mgmtd --help'.\n",
                    key);
            return -1;
        }
        if (rc < 0) {
            fprintf(stderr, "valorfs-mgmtd: bad value '%s' for --%s\n", val, key);
            return -1;
        }
    }
    if (!st->kv) {
        fprintf(stderr, "valorfs-mgmtd: no KV store: set kv=lmdb:PATH or kv=etcd://HOST:PORT "
                        "(config or --kv=)\n");
        return -1;
    }
    uint32_t el = st->o.election_ms ? st->o.election_ms : MGMTD_DEFAULT_ELECTION_MS;
    uint32_t pl = st->o.primary_lease_ms ? st->o.primary_lease_ms : MGMTD_DEFAULT_PRIMARY_LEASE_MS;
    if (pl < 2 * el) {
        fprintf(stderr, "valorfs-mgmtd: primary_lease_ms (%u) must be at least 2 x election_ms (%u)\n",
                pl, el);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct settings st = { .log_level = LOG_LVL_INFO };
    int rc = parse_args(argc, argv, &st) < 0 ? 2 : 0;
    int orig_stderr = -1; /* the caller's terminal, for a fatal start error */
    if (rc == 0 && st.log_file) {
        orig_stderr = dup(STDERR_FILENO);
        int fd = open(st.log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) {
            fprintf(stderr, "valorfs-mgmtd: cannot open log file %s: %s\n", st.log_file,
                    strerror(errno));
            rc = 1;
        } else {
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
    }
    if (rc == 0) {
        log_init((enum log_level)st.log_level);
        /* signals are taken synchronously by sigwait below; block them before
         * any thread starts so every thread inherits the mask */
        sigset_t sigs;
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        signal(SIGPIPE, SIG_IGN);

        st.o.listen = st.listen ? st.listen : "0.0.0.0:9000";
        st.o.advertise = st.advertise;
        st.o.kv_uri = st.kv;
        char err[512] = "";
        struct mgmtd *m = mgmtd_start(&st.o, err, sizeof(err));
        if (!m) {
            if (orig_stderr >= 0) /* the log file gets it too */
                LOG_ERROR("mgmtd", "cannot start: %s", err);
            dprintf(orig_stderr >= 0 ? orig_stderr : STDERR_FILENO, "valorfs-mgmtd: %s\n", err);
            rc = 1;
        } else {
            LOG_INFO("mgmtd", "ready mgmtd node=%u listen=%s", st.o.node_id ? st.o.node_id : 1,
                     mgmtd_addr(m));
            int sig = 0;
            sigwait(&sigs, &sig);
            LOG_INFO("mgmtd", "signal %d: stopping", sig);
            mgmtd_stop(m);
        }
    }
    if (orig_stderr >= 0)
        close(orig_stderr);
    free(st.listen);
    free(st.advertise);
    free(st.kv);
    free(st.log_file);
    return rc;
}
