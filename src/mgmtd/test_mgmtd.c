/* test_mgmtd.c — the cluster manager end to end: in-process mgmtd servers on
 * port 0 over a temporary LMDB store, driven by raw RPC calls (for nodes
 * whose heartbeats the test controls) and by mgmtd_client; plus two
 * valorfs-mgmtd processes sharing one store, the primary killed with SIGKILL.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/mgmtd_client.h"
#include "common/log.h"
#include "kv/kv.h"
#include "mgmtd/mgmtd.h"
#include "rpc/rpc.h"

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                   \
        }                                                                              \
    } while (0)
#define CHECK_EQ(a, b)                                                                 \
    do {                                                                               \
        long long a_ = (long long)(a), b_ = (long long)(b);                            \
        if (a_ != b_) {                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld vs %lld)\n", __FILE__, \
                    __LINE__, #a, #b, a_, b_);                                         \
            abort();                                                                   \
        }                                                                              \
    } while (0)

#define LEASE_MS 1500u
#define ELECTION_MS 100u
#define PRIMARY_LEASE_MS 400u

static struct rpc_client *g_rpc;

static uint64_t real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static char *make_store_dir(void)
{
    char tmpl[] = "/tmp/valorfs-mgmtd-test.XXXXXX";
    char *d = mkdtemp(tmpl);
    CHECK(d);
    return strdup(d);
}

static void remove_dir(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

static struct kv_db *open_store(const char *dir)
{
    char uri[300], err[256];
    snprintf(uri, sizeof(uri), "lmdb:%s", dir);
    struct kv_opts ko = { .map_size = 64u << 20, .sync = KV_SYNC_NONE };
    struct kv_db *db = kv_open(uri, &ko, err, sizeof(err));
    if (!db)
        fprintf(stderr, "kv_open: %s\n", err);
    CHECK(db);
    return db;
}

static struct mgmtd *start_mgmtd(struct kv_db *kv, uint32_t node_id, const char *listen)
{
    struct mgmtd_opts o = {
        .listen = listen, .node_id = node_id, .kv = kv, .lease_ms = LEASE_MS,
        .election_ms = ELECTION_MS, .primary_lease_ms = PRIMARY_LEASE_MS,
    };
    char err[256];
    struct mgmtd *m = mgmtd_start(&o, err, sizeof(err));
    if (!m)
        fprintf(stderr, "mgmtd_start: %s\n", err);
    CHECK(m);
    return m;
}

static bool wait_primary(struct mgmtd *m, unsigned timeout_ms)
{
    uint64_t end = mono_ms() + timeout_ms;
    while (mono_ms() < end) {
        if (mgmtd_is_primary(m))
            return true;
        sleep_ms(5);
    }
    return false;
}

/* ---- raw calls (nodes whose heartbeats the test controls) ---- */

static int call(const char *addr, uint16_t method, struct wbuf *req, void **resp, size_t *rlen)
{
    struct rpc_call_opts co = { .timeout_ms = 3000 };
    void *r = NULL;
    size_t n = 0;
    CHECK(!req || !req->err);
    int rc = rpc_call_sync(g_rpc, addr, method, req ? req->data : NULL, req ? req->len : 0, &co,
                           &r, &n);
    if (req)
        wb_free(req);
    if (resp) {
        *resp = r;
        *rlen = n;
    } else {
        free(r);
    }
    return rc;
}

static int reg_node(const char *addr, uint32_t node_id, const uint32_t *tids, uint32_t nt,
                    struct mg_register_resp *out)
{
    struct mg_register_req *req = calloc(1, sizeof(*req));
    CHECK(req);
    req->type = NODE_STORAGE;
    req->node_id = node_id;
    snprintf(req->addr, sizeof(req->addr), "127.0.0.1:%u", 20000 + node_id);
    req->ntargets = nt;
    for (uint32_t i = 0; i < nt; i++)
        req->targets[i] = (struct mg_target_report){ .id = tids[i], .state = TS_WAITING,
                                                     .capacity = 1u << 30 };
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_register_req_enc(&wb, req);
    free(req);
    void *p;
    size_t n;
    int rc = call(addr, MG_REGISTER, &wb, &p, &n);
    if (rc == 0)
        CHECK(mg_register_resp_dec(p, n, out) == 0);
    free(p);
    return rc;
}

static int heartbeat(const char *addr, uint32_t node_id, struct mg_heartbeat_resp *out)
{
    struct mg_heartbeat_req *req = calloc(1, sizeof(*req));
    CHECK(req);
    req->node_id = node_id;
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_heartbeat_req_enc(&wb, req);
    free(req);
    void *p;
    size_t n;
    int rc = call(addr, MG_HEARTBEAT, &wb, &p, &n);
    if (rc == 0 && out)
        CHECK(mg_heartbeat_resp_dec(p, n, out) == 0);
    free(p);
    return rc;
}

/* Routing newer than have; returns the status, 1 when unchanged. On
 * VF_E_NOT_PRIMARY the redirect address goes to redirect (if given). */
static int get_routing(const char *addr, uint64_t have, struct mg_routing *out, char *redirect)
{
    struct mg_get_routing_req req = { .have_version = have };
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_get_routing_req_enc(&wb, &req);
    void *p;
    size_t n;
    int rc = call(addr, MG_GET_ROUTING, &wb, &p, &n);
    if (rc == VF_E_NOT_PRIMARY && redirect) {
        CHECK(n <= VF_MAX_ADDR);
        if (n)
            memcpy(redirect, p, n);
        redirect[n] = '\0';
    }
    if (rc == 0 && n == 0)
        rc = 1;
    else if (rc == 0)
        CHECK(mg_routing_dec(p, n, out) == 0);
    free(p);
    return rc;
}

static int who_primary(const char *addr, struct mg_primary *out)
{
    void *p;
    size_t n;
    int rc = call(addr, MG_WHO_PRIMARY, NULL, &p, &n);
    if (rc == 0)
        CHECK(mg_primary_dec(p, n, out) == 0);
    free(p);
    return rc;
}

static int set_target(const char *addr, uint32_t tid, uint8_t state)
{
    struct mg_set_target_req req = { .target_id = tid, .state = state };
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_set_target_req_enc(&wb, &req);
    return call(addr, MG_SET_TARGET, &wb, NULL, NULL);
}

static int sync_done(const char *addr, uint32_t tid, uint32_t chain, uint64_t chain_version)
{
    struct mg_sync_done_req req = { tid, chain, chain_version };
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_sync_done_req_enc(&wb, &req);
    return call(addr, MG_SYNC_DONE, &wb, NULL, NULL);
}

static int create_table(const char *addr, uint32_t replicas, uint32_t nchains,
                        struct mg_create_table_resp *out)
{
    struct mg_create_table_req req = { .replicas = replicas, .nchains = nchains };
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_create_table_req_enc(&wb, &req);
    void *p;
    size_t n;
    int rc = call(addr, MG_CREATE_TABLE, &wb, &p, &n);
    if (rc == 0)
        CHECK(mg_create_table_resp_dec(p, n, out) == 0);
    free(p);
    return rc;
}

/* Fetch the current routing (must succeed) and check the version grew. */
static void routing_now(const char *addr, struct mg_routing *r, uint64_t *last_version)
{
    CHECK_EQ(get_routing(addr, 0, r, NULL), 0);
    if (last_version) {
        CHECK(r->version > *last_version);
        *last_version = r->version;
    }
}

/* ---- test 1: registration, chain table, lease loss, admin ---- */

struct beat_arg {
    const char *addr;
    uint32_t ids[4]; /* ids, n and stop change under the beater: atomics */
    int n;
    int stop;
};

static void *beater(void *arg)
{
    struct beat_arg *b = arg;
    while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE)) {
        int n = __atomic_load_n(&b->n, __ATOMIC_ACQUIRE);
        for (int i = 0; i < n; i++)
            heartbeat(b->addr, __atomic_load_n(&b->ids[i], __ATOMIC_RELAXED), NULL);
        sleep_ms(150);
    }
    return NULL;
}

static void test_table_and_leases(void)
{
    char *dir = make_store_dir();
    struct kv_db *kv = open_store(dir);
    struct mgmtd *m = start_mgmtd(kv, 1, "127.0.0.1:0");
    /* fresh store: no earlier primary to wait out */
    CHECK(wait_primary(m, 2000));
    const char *addr = mgmtd_addr(m);
    uint64_t version = 0;
    struct mg_routing r;
    routing_now(addr, &r, &version);
    CHECK_EQ(r.primary_id, 1);
    mg_routing_free(&r);

    /* nothing to build a table from yet */
    struct mg_create_table_resp ct;
    CHECK_EQ(create_table(addr, 3, 0, &ct), EINVAL);

    uint32_t tids[3][2] = { { 101, 102 }, { 201, 202 }, { 301, 302 } };
    for (uint32_t i = 0; i < 3; i++) {
        struct mg_register_resp rr;
        CHECK_EQ(reg_node(addr, 11 + i, tids[i], 2, &rr), 0);
        CHECK_EQ(rr.node_id, 11 + i);
        CHECK_EQ(rr.lease_ms, LEASE_MS);
        CHECK(rr.routing_version > version);
        version = rr.routing_version;
    }
    /* a target claimed by another node is refused */
    struct mg_register_resp rr;
    uint32_t stolen = 101;
    CHECK_EQ(reg_node(addr, 14, &stolen, 1, &rr), EEXIST);
    /* assigned ids */
    CHECK_EQ(reg_node(addr, 0, NULL, 0, &rr), 0);
    CHECK(rr.node_id > 14 || rr.node_id == 14);
    uint32_t assigned = rr.node_id;
    CHECK(rr.routing_version > version);
    version = rr.routing_version;

    routing_now(addr, &r, NULL);
    for (uint32_t i = 0; i < r.ntargets; i++)
        CHECK_EQ(r.targets[i].state, TS_WAITING);
    mg_routing_free(&r);

    CHECK_EQ(create_table(addr, 3, 5, &ct), ENOSPC);
    CHECK_EQ(create_table(addr, 3, 0, &ct), 0);
    CHECK_EQ(ct.nchains, 2);
    CHECK(ct.routing_version > version);
    version = ct.routing_version;
    CHECK_EQ(get_routing(addr, version, &r, NULL), 1); /* have the newest: empty answer */

    CHECK_EQ(get_routing(addr, 0, &r, NULL), 0);
    CHECK_EQ(r.version, version);
    CHECK_EQ(r.ntables, 1);
    CHECK_EQ(r.tables[0].id, ct.table_id);
    CHECK_EQ(r.tables[0].version, 1);
    CHECK_EQ(r.tables[0].replicas, 3);
    CHECK_EQ(r.tables[0].nchains, 2);
    CHECK_EQ(r.nchains, 2);
    for (uint32_t c = 0; c < r.nchains; c++) {
        const struct mg_chain *ch = &r.chains[c];
        CHECK_EQ(ch->version, 1);
        CHECK_EQ(ch->ntargets, 3);
        uint32_t nodes[3];
        for (uint32_t k = 0; k < 3; k++) {
            const struct mg_target *t = mgc_find_target(&r, ch->targets[k]);
            CHECK(t);
            CHECK_EQ(t->state, TS_SERVING);
            CHECK_EQ(t->chain_id, ch->id);
            nodes[k] = t->node_id;
        }
        CHECK(nodes[0] != nodes[1] && nodes[1] != nodes[2] && nodes[0] != nodes[2]);
    }
    /* the chain holding target 301 (node 13) */
    uint32_t chain13 = mgc_find_target(&r, 301)->chain_id;
    mg_routing_free(&r);

    /* nodes 11 and 12 keep heartbeating; 13 (and the assigned one) go silent */
    struct beat_arg b = { .addr = addr, .ids = { 11, 12 }, .n = 2 };
    pthread_t bt;
    CHECK(pthread_create(&bt, NULL, beater, &b) == 0);
    struct mg_heartbeat_resp hr;
    CHECK_EQ(heartbeat(addr, 13, &hr), 0);
    uint64_t last_beat = mono_ms();
    CHECK_EQ(hr.routing_version, version);
    uint64_t lost_at = 0;
    while (mono_ms() < last_beat + 3 * LEASE_MS) {
        CHECK_EQ(get_routing(addr, 0, &r, NULL), 0);
        const struct mg_node *n13 = mgc_find_node(&r, 13);
        bool gone = !n13->alive;
        mg_routing_free(&r);
        if (gone) {
            lost_at = mono_ms();
            break;
        }
        sleep_ms(20);
    }
    CHECK(lost_at);
    /* not before T, and within ~T (one check period + slack) */
    CHECK(lost_at - last_beat >= LEASE_MS);
    CHECK(lost_at - last_beat <= LEASE_MS + 1200);
    /* The assigned node went silent about when 13 did; one sweep may drop
     * them in two routing versions, so wait (bounded) for it too. */
    for (int tries = 0; tries < 100; tries++) {
        CHECK_EQ(get_routing(addr, 0, &r, NULL), 0);
        bool dropped = !mgc_find_node(&r, assigned)->alive;
        mg_routing_free(&r);
        if (dropped)
            break;
        sleep_ms(20);
    }
    routing_now(addr, &r, &version);
    CHECK(mgc_find_node(&r, 11)->alive && mgc_find_node(&r, 12)->alive);
    CHECK(!mgc_find_node(&r, assigned)->alive);
    for (uint32_t i = 0; i < 2; i++)
        CHECK_EQ(mgc_find_target(&r, tids[2][i])->state, TS_OFFLINE);
    for (uint32_t c = 0; c < r.nchains; c++) {
        const struct mg_chain *ch = &r.chains[c];
        CHECK_EQ(ch->version, 2);
        const struct mg_target *tail = mgc_find_target(&r, ch->targets[2]);
        CHECK_EQ(tail->node_id, 13); /* the offline member moved to the end */
        CHECK_EQ(mgc_find_target(&r, ch->targets[0])->state, TS_SERVING);
        CHECK_EQ(mgc_find_target(&r, ch->targets[1])->state, TS_SERVING);
    }
    mg_routing_free(&r);

    /* the silent node must register again */
    CHECK_EQ(heartbeat(addr, 13, NULL), VF_E_NO_LEASE);
    CHECK_EQ(heartbeat(addr, 999, NULL), VF_E_NO_LEASE);
    CHECK_EQ(reg_node(addr, 13, tids[2], 2, &rr), 0);
    CHECK(rr.routing_version > version);
    routing_now(addr, &r, &version);
    CHECK(mgc_find_node(&r, 13)->alive);
    /* back, but it may have missed writes: SYNCING, last in its chain */
    CHECK_EQ(mgc_find_target(&r, 301)->state, TS_SYNCING);
    CHECK_EQ(mgc_find_chain(&r, chain13)->version, 3);
    CHECK_EQ(mgc_find_chain(&r, chain13)->targets[2], 301);
    mg_routing_free(&r);
    /* the predecessor reports it synced: only at the chain's current version */
    CHECK_EQ(sync_done(addr, 301, chain13, 2), VF_E_STALE_CHAIN);
    CHECK_EQ(sync_done(addr, 301, chain13 + 1000, 3), ENOENT);
    CHECK_EQ(sync_done(addr, 301, chain13, 3), 0);
    CHECK_EQ(sync_done(addr, 301, chain13, 4), EINVAL); /* not SYNCING any more */
    routing_now(addr, &r, &version);
    CHECK_EQ(mgc_find_target(&r, 301)->state, TS_SERVING);
    CHECK_EQ(mgc_find_chain(&r, chain13)->version, 4);
    CHECK_EQ(mgc_find_target(&r, tids[2][1])->state, TS_SYNCING); /* its other target */
    mg_routing_free(&r);
    __atomic_store_n(&b.ids[2], 13, __ATOMIC_RELAXED);
    __atomic_store_n(&b.n, 3, __ATOMIC_RELEASE); /* keep 13 alive from now on */

    /* admin: take a target out, then back */
    CHECK_EQ(set_target(addr, 999, TS_OFFLINE), ENOENT);
    CHECK_EQ(set_target(addr, 101, 77), RPC_E_BADREQ); /* the decoder checks enums */
    CHECK_EQ(set_target(addr, 101, TS_WAITING), EINVAL); /* a chained target cannot wait */
    uint32_t chain101;
    routing_now(addr, &r, NULL);
    chain101 = mgc_find_target(&r, 101)->chain_id;
    uint64_t cv = mgc_find_chain(&r, chain101)->version;
    mg_routing_free(&r);
    CHECK_EQ(set_target(addr, 101, TS_OFFLINE), 0);
    routing_now(addr, &r, &version);
    const struct mg_chain *ch = mgc_find_chain(&r, chain101);
    CHECK_EQ(ch->version, cv + 1);
    CHECK_EQ(ch->targets[2], 101);
    CHECK_EQ(mgc_find_target(&r, 101)->state, TS_OFFLINE);
    mg_routing_free(&r);
    CHECK_EQ(set_target(addr, 101, TS_SYNCING), 0);
    routing_now(addr, &r, &version);
    ch = mgc_find_chain(&r, chain101);
    CHECK_EQ(ch->version, cv + 2);
    CHECK_EQ(ch->targets[2], 101); /* syncing follows the serving ones */
    mg_routing_free(&r);

    /* graceful leave */
    struct mg_heartbeat_req *ur = calloc(1, sizeof(*ur));
    ur->node_id = 12;
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_heartbeat_req_enc(&wb, ur);
    free(ur);
    __atomic_store_n(&b.ids[1], 13, __ATOMIC_RELAXED);
    __atomic_store_n(&b.n, 2, __ATOMIC_RELEASE); /* 12 stops heartbeating */
    CHECK_EQ(call(addr, MG_UNREGISTER, &wb, NULL, NULL), 0);
    routing_now(addr, &r, &version);
    CHECK(!mgc_find_node(&r, 12)->alive);
    CHECK_EQ(mgc_find_target(&r, 201)->state, TS_OFFLINE);
    CHECK_EQ(mgc_find_chain(&r, chain101)->version, cv + 3); /* 12 is in every chain */
    mg_routing_free(&r);

    __atomic_store_n(&b.stop, 1, __ATOMIC_RELEASE);
    pthread_join(bt, NULL);

    /* state survives a restart on the same store; the version never goes down */
    mgmtd_stop(m);
    m = start_mgmtd(kv, 1, "127.0.0.1:0");
    CHECK(wait_primary(m, 3000));
    routing_now(mgmtd_addr(m), &r, &version);
    CHECK_EQ(r.ntables, 1);
    CHECK_EQ(r.nchains, 2);
    CHECK_EQ(mgc_find_chain(&r, chain101)->version, cv + 3);
    CHECK_EQ(mgc_find_target(&r, 101)->state, TS_SYNCING);
    mg_routing_free(&r);
    mgmtd_stop(m);
    kv_close(kv);
    remove_dir(dir);
    free(dir);
}

/* ---- a damaged record: the primary refuses to act on it, never crashes ---- */

static void put_raw(struct kv_db *kv, const void *k, size_t kl, const void *v, size_t vl)
{
    struct kv_txn *t;
    CHECK(kv_txn_begin(kv, 0, &t) == 0);
    CHECK(kv_put(t, k, kl, v, vl) == 0);
    CHECK(kv_commit(t) == 0);
}

static void test_damaged_store(void)
{
    char *dir = make_store_dir();
    struct kv_db *kv = open_store(dir);
    static const uint8_t key[9] = { 'M', 'G', '/', 'C', '/', 0, 0, 0, 5 };
    static const uint8_t bad[] = { 1, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 200, 0, 0, 0 };
    put_raw(kv, key, sizeof(key), bad, sizeof(bad)); /* a chain of 200 targets */
    struct mgmtd *m = start_mgmtd(kv, 1, "127.0.0.1:0");
    CHECK(!wait_primary(m, 800));
    struct mg_routing r;
    CHECK_EQ(get_routing(mgmtd_addr(m), 0, &r, NULL), VF_E_NOT_PRIMARY);
    /* repaired: it acts */
    static const uint8_t good[] = { 1, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
    put_raw(kv, key, sizeof(key), good, sizeof(good));
    CHECK(wait_primary(m, 3000));
    CHECK_EQ(get_routing(mgmtd_addr(m), 0, &r, NULL), 0);
    CHECK_EQ(r.nchains, 1);
    CHECK_EQ(r.chains[0].id, 5);
    mg_routing_free(&r);
    mgmtd_stop(m);
    kv_close(kv);
    remove_dir(dir);
    free(dir);
}

/* ---- a refused connection takes a node out before its lease lapses ---- */

static int report_down(const char *addr, uint32_t node)
{
    struct mg_report_down_req req = { node, 7 };
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_report_down_req_enc(&wb, &req);
    return call(addr, MG_REPORT_DOWN, &wb, NULL, NULL);
}

static void test_report_down(void)
{
    char *dir = make_store_dir();
    struct kv_db *kv = open_store(dir);
    struct mgmtd *m = start_mgmtd(kv, 1, "127.0.0.1:0");
    CHECK(wait_primary(m, 2000));
    char addr[VF_MAX_ADDR + 1];
    snprintf(addr, sizeof(addr), "%s", mgmtd_addr(m));
    /* node 20061 listens (a live process), 62's port is closed (a dead one) */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(20061),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    CHECK(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0 && listen(lfd, 4) == 0);
    struct mg_register_resp rr;
    uint32_t t61[1] = { 6101 }, t62[1] = { 6201 };
    CHECK_EQ(reg_node(addr, 61, t61, 1, &rr), 0);
    CHECK_EQ(reg_node(addr, 62, t62, 1, &rr), 0);

    CHECK_EQ(report_down(addr, 61), EAGAIN); /* it answers: left to its lease */
    CHECK_EQ(report_down(addr, 62), 0);
    CHECK_EQ(report_down(addr, 62), 0);      /* already out: nothing to do */
    CHECK_EQ(report_down(addr, 999), ENOENT);
    struct mg_routing r;
    routing_now(addr, &r, NULL);
    CHECK(mgc_find_node(&r, 61)->alive && !mgc_find_node(&r, 62)->alive);
    CHECK_EQ(mgc_find_target(&r, 6201)->state, TS_OFFLINE);
    CHECK_EQ(mgc_find_target(&r, 6101)->state, TS_WAITING);
    mg_routing_free(&r);
    close(lfd);
    mgmtd_stop(m);
    kv_close(kv);
    remove_dir(dir);
    free(dir);
}

/* ---- test 2: the node agent's lease fencing and re-registration ---- */

static int g_lease_lost, g_routing_seen;

static uint32_t report_two(void *arg, struct mg_target_report *out, uint32_t max)
{
    (void)arg;
    CHECK(max >= 2);
    out[0] = (struct mg_target_report){ .id = 501, .state = TS_SERVING, .capacity = 100, .used = 1 };
    out[1] = (struct mg_target_report){ .id = 502, .state = TS_SERVING, .capacity = 100, .used = 2 };
    return 2;
}

static void on_lost(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&g_lease_lost, 1, __ATOMIC_RELAXED);
}

static void on_routing(void *arg, const struct mg_routing *r)
{
    (void)arg;
    CHECK(r->version > 0);
    __atomic_add_fetch(&g_routing_seen, 1, __ATOMIC_RELAXED);
}

static void test_agent_lease(void)
{
    char *dir = make_store_dir();
    struct kv_db *kv = open_store(dir);

    /* first contact with nobody listening fails fast with one clear line */
    char err[300];
    struct mgc_opts bad = { .mgmtd_addrs = "127.0.0.1:1", .rpc = g_rpc, .type = NODE_STORAGE,
                            .node_id = 40, .addr = "127.0.0.1:20040",
                            .connect_timeout_ms = 500 };
    uint64_t t0 = mono_ms();
    CHECK(mgc_start(&bad, err, sizeof(err)) == NULL);
    CHECK(mono_ms() - t0 < 2000);
    CHECK(strstr(err, "127.0.0.1:1") && strstr(err, "unreachable") && !strchr(err, '\n'));

    struct mgmtd *m = start_mgmtd(kv, 1, "127.0.0.1:0");
    CHECK(wait_primary(m, 2000));
    char addr[VF_MAX_ADDR + 1], listen[VF_MAX_ADDR + 1];
    snprintf(addr, sizeof(addr), "%s", mgmtd_addr(m));
    snprintf(listen, sizeof(listen), "%s", addr);

    struct mgc_opts o = { .mgmtd_addrs = addr, .rpc = g_rpc, .type = NODE_STORAGE,
                          .node_id = 41, .addr = "127.0.0.1:20041", .refresh_ms = 200,
                          .connect_timeout_ms = 3000, .report_targets = report_two,
                          .on_routing = on_routing, .on_lease_lost = on_lost };
    struct mgc *c = mgc_start(&o, err, sizeof(err));
    if (!c)
        fprintf(stderr, "mgc_start: %s\n", err);
    CHECK(c);
    CHECK_EQ(mgc_node_id(c), 41);
    CHECK(mgc_lease_valid(c));
    CHECK(__atomic_load_n(&g_routing_seen, __ATOMIC_RELAXED) >= 1);
    struct mgc_routing *rt = mgc_routing(c);
    CHECK(rt && mgc_find_node(&rt->r, 41) && mgc_find_node(&rt->r, 41)->alive);
    CHECK_EQ(mgc_find_target(&rt->r, 501)->state, TS_WAITING);
    CHECK(!strcmp(mgc_target_addr(&rt->r, 502), "127.0.0.1:20041"));
    const struct mg_node *alive[4];
    CHECK_EQ(mgc_alive_nodes(&rt->r, NODE_STORAGE, alive, 4), 1);
    CHECK_EQ(mgc_alive_nodes(&rt->r, NODE_META, alive, 4), 0);
    uint64_t v0 = rt->r.version;
    mgc_routing_put(rt);

    /* admin calls through the client; the cache catches up */
    struct mg_create_table_req ctr = { .replicas = 1 };
    struct mg_create_table_resp ctp;
    CHECK_EQ(mgc_create_table(c, &ctr, &ctp), 0);
    CHECK_EQ(ctp.nchains, 2);
    CHECK_EQ(mgc_refresh(c, ctp.routing_version, 3000), 0);
    rt = mgc_routing(c);
    CHECK(rt->r.version >= ctp.routing_version && rt->r.version > v0);
    uint32_t ch501 = mgc_find_target(&rt->r, 501)->chain_id;
    uint64_t cver = mgc_find_chain(&rt->r, ch501)->version;
    mgc_routing_put(rt);
    CHECK_EQ(mgc_set_target(c, 501, TS_OFFLINE), 0);
    CHECK_EQ(mgc_refresh(c, 0, 3000), 0);
    rt = mgc_routing(c);
    CHECK_EQ(mgc_find_chain(&rt->r, ch501)->version, cver + 1);
    uint64_t v1 = rt->r.version;
    mgc_routing_put(rt);

    /* a non-blocking refresh only asks the refresh thread: a cache-only
     * client polling every 5 s sees the change at once, so the kick worked */
    struct mgc_opts co = { .mgmtd_addrs = addr, .rpc = g_rpc, .type = NODE_CLIENT,
                           .refresh_ms = 5000, .connect_timeout_ms = 3000 };
    struct mgc *cc = mgc_start(&co, err, sizeof(err));
    CHECK(cc);
    CHECK(mgc_lease_valid(cc)); /* clients hold no lease */
    CHECK_EQ(mgc_refresh(cc, v1, 0), 0);
    CHECK_EQ(set_target(addr, 501, TS_SERVING), 0);
    uint64_t kicked = mono_ms();
    CHECK_EQ(mgc_refresh(cc, v1 + 1, 0), RPC_E_TIMEOUT);
    for (;;) {
        rt = mgc_routing(cc);
        bool seen = rt->r.version > v1;
        mgc_routing_put(rt);
        if (seen)
            break;
        CHECK(mono_ms() < kicked + 1000);
        sleep_ms(2);
    }
    mgc_stop(cc);

    /* heartbeats keep the lease across several T/2 periods */
    sleep_ms(LEASE_MS);
    CHECK(mgc_lease_valid(c));
    CHECK_EQ(__atomic_load_n(&g_lease_lost, __ATOMIC_RELAXED), 0);

    /* mgmtd goes away: the node fences itself after T/2 without renewal */
    mgmtd_stop(m);
    uint64_t stopped = mono_ms();
    while (mgc_lease_valid(c) && mono_ms() < stopped + 3 * LEASE_MS)
        sleep_ms(10);
    uint64_t fenced = mono_ms() - stopped;
    CHECK(!mgc_lease_valid(c));
    CHECK(fenced <= LEASE_MS / 2 + 300); /* last renewal was sent <= one interval before */
    while (__atomic_load_n(&g_lease_lost, __ATOMIC_RELAXED) == 0 && mono_ms() < stopped + 3000)
        sleep_ms(10);
    CHECK_EQ(__atomic_load_n(&g_lease_lost, __ATOMIC_RELAXED), 1);
    sleep_ms(300);
    CHECK(!mgc_lease_valid(c));

    /* mgmtd returns on the same address: the node registers again */
    m = start_mgmtd(kv, 1, listen);
    CHECK(!strcmp(mgmtd_addr(m), addr));
    uint64_t back = mono_ms();
    while (!mgc_lease_valid(c) && mono_ms() < back + 5000)
        sleep_ms(10);
    CHECK(mgc_lease_valid(c));
    CHECK_EQ(__atomic_load_n(&g_lease_lost, __ATOMIC_RELAXED), 1);
    CHECK_EQ(mgc_refresh(c, mgmtd_routing_version(m), 3000), 0);
    rt = mgc_routing(c);
    CHECK(mgc_find_node(&rt->r, 41)->alive);
    mgc_routing_put(rt);

    /* graceful leave marks the node down at once */
    mgc_stop(c);
    struct mg_routing r;
    CHECK_EQ(get_routing(addr, 0, &r, NULL), 0);
    CHECK(!mgc_find_node(&r, 41)->alive);
    CHECK_EQ(mgc_find_target(&r, 502)->state, TS_OFFLINE);
    mg_routing_free(&r);

    mgmtd_stop(m);
    kv_close(kv);
    remove_dir(dir);
    free(dir);
}

/* ---- test 3: two mgmtd on one store (in-process) ---- */

static void test_two_primaries_in_process(void)
{
    char *dir = make_store_dir();
    struct kv_db *kv = open_store(dir);
    struct mgmtd *a = start_mgmtd(kv, 1, "127.0.0.1:0");
    CHECK(wait_primary(a, 2000));
    struct mgmtd *b = start_mgmtd(kv, 2, "127.0.0.1:0");
    char aaddr[VF_MAX_ADDR + 1], baddr[VF_MAX_ADDR + 1];
    snprintf(aaddr, sizeof(aaddr), "%s", mgmtd_addr(a));
    snprintf(baddr, sizeof(baddr), "%s", mgmtd_addr(b));
    sleep_ms(3 * ELECTION_MS);

    /* exactly one primary, sampled over several lease renewals */
    for (int i = 0; i < 200; i++) {
        bool pa = mgmtd_is_primary(a), pb = mgmtd_is_primary(b);
        CHECK(pa != pb);
        CHECK(pa);
        sleep_ms(5);
    }
    /* the standby redirects to the primary */
    char redirect[VF_MAX_ADDR + 1] = "";
    struct mg_routing r;
    CHECK_EQ(get_routing(baddr, 0, &r, redirect), VF_E_NOT_PRIMARY);
    if (strcmp(redirect, aaddr) != 0) {
        struct mg_primary dbg = { 0 };
        who_primary(baddr, &dbg);
        fprintf(stderr, "redirect='%s' want '%s'; B says primary=%u %s expires_in=%lld\n",
                redirect, aaddr, dbg.node_id, dbg.addr,
                (long long)dbg.lease_expires_ms - (long long)real_ms());
    }
    CHECK(!strcmp(redirect, aaddr));
    CHECK_EQ(heartbeat(baddr, 11, NULL), VF_E_NOT_PRIMARY);
    struct mg_primary wp;
    CHECK_EQ(who_primary(baddr, &wp), 0);
    CHECK_EQ(wp.node_id, 1);
    CHECK(!strcmp(wp.addr, aaddr));

    /* a client that only knows the standby follows the redirect */
    char err[300];
    struct mgc_opts o = { .mgmtd_addrs = baddr, .rpc = g_rpc, .type = NODE_STORAGE,
                          .node_id = 61, .addr = "127.0.0.1:20061", .refresh_ms = 100,
                          .connect_timeout_ms = 3000 };
    struct mgc *c = mgc_start(&o, err, sizeof(err));
    if (!c)
        fprintf(stderr, "mgc_start: %s\n", err);
    CHECK(c);
    struct mgc_routing *rt = mgc_routing(c);
    CHECK_EQ(rt->r.primary_id, 1);
    CHECK(mgc_find_node(&rt->r, 61));
    mgc_routing_put(rt);

    /* stop the primary: the standby acts only after the old lease expired */
    CHECK_EQ(who_primary(aaddr, &wp), 0);
    CHECK_EQ(wp.node_id, 1);
    uint64_t old_expiry = wp.lease_expires_ms;
    uint64_t stop_real = real_ms();
    mgmtd_stop(a);
    uint64_t acting_at = 0;
    while (real_ms() < stop_real + 10 * PRIMARY_LEASE_MS) {
        if (mgmtd_is_primary(b)) {
            acting_at = real_ms();
            break;
        }
        sleep_ms(2);
    }
    CHECK(acting_at);
    CHECK(acting_at >= old_expiry);
    CHECK(acting_at >= stop_real + PRIMARY_LEASE_MS);
    /* the node agent kept (or regained) its lease through the fail-over and
     * the cache now comes from the new primary */
    uint64_t until = mono_ms() + 5000;
    for (;;) {
        CHECK_EQ(mgc_refresh(c, 0, 3000), 0);
        rt = mgc_routing(c);
        bool from_b = rt->r.primary_id == 2;
        bool alive = mgc_find_node(&rt->r, 61) && mgc_find_node(&rt->r, 61)->alive;
        mgc_routing_put(rt);
        if (from_b && alive && mgc_lease_valid(c))
            break;
        CHECK(mono_ms() < until);
        sleep_ms(20);
    }
    mgc_stop(c);
    mgmtd_stop(b);
    kv_close(kv);
    remove_dir(dir);
    free(dir);
}

/* ---- test 4: two valorfs-mgmtd processes, the primary SIGKILLed ---- */

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    socklen_t sl = sizeof(sa);
    CHECK(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static pid_t spawn_mgmtd(const char *bin, const char *dir, uint32_t id, const char *addr)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char kv[300], listen[100], node[40], log[300];
        snprintf(kv, sizeof(kv), "--kv=lmdb:%s", dir);
        snprintf(listen, sizeof(listen), "--listen=%s", addr);
        snprintf(node, sizeof(node), "--node-id=%u", id);
        snprintf(log, sizeof(log), "--log-file=%s.mgmtd%u.log", dir, id);
        execl(bin, bin, kv, listen, node, log, "--lease-ms=1500", "--election_ms=100",
              "--primary-lease-ms=500", "--log-level=debug", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void test_processes(void)
{
    const char *bin = getenv("VALORFS_MGMTD_BIN");
    if (!bin) {
        fprintf(stderr, "test_processes: VALORFS_MGMTD_BIN not set, skipped\n");
        return;
    }
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "'%s' --help >/dev/null", bin);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof(cmd), "'%s' --kv=lmdb:/tmp/x --bogus=1 2>/dev/null", bin);
    int st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    snprintf(cmd, sizeof(cmd), "'%s' --kv=lmdb:/tmp/x --election-ms=1000 --primary-lease-ms=1000 "
             "2>/dev/null", bin);
    st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);

    char *dir = make_store_dir();
    char addr[2][40];
    pid_t pid[2];
    for (int i = 0; i < 2; i++) {
        snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%u", free_port());
        pid[i] = spawn_mgmtd(bin, dir, (uint32_t)i + 1, addr[i]);
    }
    /* find the primary */
    int p = -1;
    uint64_t until = mono_ms() + 10000;
    struct mg_routing r;
    while (p < 0 && mono_ms() < until) {
        for (int i = 0; i < 2 && p < 0; i++)
            if (get_routing(addr[i], 0, &r, NULL) == 0) {
                mg_routing_free(&r);
                p = i;
            }
        sleep_ms(20);
    }
    CHECK(p >= 0);
    int s = 1 - p;
    /* the standby redirects to the primary (once it serves and has looked) */
    char redirect[VF_MAX_ADDR + 1] = "";
    until = mono_ms() + 10000;
    while (strcmp(redirect, addr[p]) != 0 && mono_ms() < until) {
        int rc = get_routing(addr[s], 0, &r, redirect);
        CHECK(rc == VF_E_NOT_PRIMARY || rc == RPC_E_CONNECT);
        sleep_ms(10);
    }
    CHECK(!strcmp(redirect, addr[p]));
    uint32_t tid = 701;
    struct mg_register_resp rr;
    CHECK_EQ(reg_node(addr[p], 71, &tid, 1, &rr), 0);

    struct mg_primary wp;
    CHECK_EQ(who_primary(addr[p], &wp), 0);
    CHECK(!strcmp(wp.addr, addr[p]));
    uint64_t old_expiry = wp.lease_expires_ms;
    uint64_t kill_real = real_ms();
    CHECK(kill(pid[p], SIGKILL) == 0);
    CHECK(waitpid(pid[p], &st, 0) == pid[p]);

    uint64_t acting_at = 0;
    until = mono_ms() + 10000;
    while (!acting_at && mono_ms() < until) {
        int rc = get_routing(addr[s], 0, &r, NULL);
        if (rc == 0) {
            acting_at = real_ms();
            CHECK_EQ(r.primary_id, (uint32_t)s + 1);
            CHECK(r.version > rr.routing_version);
            CHECK(mgc_find_node(&r, 71) && mgc_find_target(&r, 701)); /* state persisted */
            mg_routing_free(&r);
        } else {
            CHECK_EQ(rc, VF_E_NOT_PRIMARY);
            sleep_ms(5);
        }
    }
    CHECK(acting_at);
    CHECK(acting_at >= old_expiry);
    CHECK(acting_at >= kill_real + 500);

    CHECK(kill(pid[s], SIGTERM) == 0);
    CHECK(waitpid(pid[s], &st, 0) == pid[s]);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(cmd, sizeof(cmd), "grep -q 'ready mgmtd node=%d' %s.mgmtd%d.log", s + 1, dir, s + 1);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof(cmd), "rm -f %s.mgmtd1.log %s.mgmtd2.log", dir, dir);
    CHECK(system(cmd) == 0);
    remove_dir(dir);
    free(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    log_init(getenv("VALORFS_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
    struct rpc_client_opts co = { .connect_timeout_ms = 1000, .name = "test" };
    g_rpc = rpc_client_new(&co);
    CHECK(g_rpc);
    /* the process test forks: run it before this process has many threads.
     * VALORFS_TEST_ONLY=name runs one test. */
    const char *only = getenv("VALORFS_TEST_ONLY");
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        { "processes", test_processes },
        { "table_and_leases", test_table_and_leases },
        { "agent_lease", test_agent_lease },
        { "two_primaries_in_process", test_two_primaries_in_process },
        { "damaged_store", test_damaged_store },
        { "report_down", test_report_down },
    };
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        if (only && strcmp(only, tests[i].name) != 0)
            continue;
        tests[i].fn();
        fprintf(stderr, "ok %s\n", tests[i].name);
    }
    rpc_client_free(g_rpc);
    return 0;
}
