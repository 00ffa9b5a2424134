/* test_craq.c — three storage services in one process (each with its own
 * RPC server on a loopback port and a temp target) and a static routing of
 * one chain of 3: replication, per-chunk ordering, pending reads, routing
 * checks, de-duplication, truncate/remove, and 1 MiB write throughput. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "proto/storage_proto.h"
#include "rpc/rpc.h"
#include "storage/chunk_engine.h"
#include "storage/resync.h"
#include "storage/service.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#define NREP 3
#define CHAIN_ID 1
#define CHAIN_VER 5
#define CS (1u << 20)

struct node {
    char dir[64];
    struct ce_target *ce;
    struct rpc_server *srv;
    struct rpc_client *fwd;
    struct stg_service *svc;
    char addr[VF_MAX_ADDR + 1];
};

static struct node nodes[NREP];
static const uint32_t tids[NREP] = { 101, 102, 103 };

/* ---------------- static routing ---------------- */

static pthread_rwlock_t rt_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct mg_routing routing;
static struct mg_node rt_nodes[NREP];
static struct mg_target rt_targets[NREP];
static struct mg_chain rt_chain;
static atomic_int refreshes;
static atomic_bool lease_ok = true;

static const struct mg_routing *rt_acquire(void *arg, void **ref)
{
    (void)arg;
    pthread_rwlock_rdlock(&rt_lock);
    *ref = &routing;
    return &routing;
}

static void rt_release(void *arg, void *ref)
{
    (void)arg;
    if (ref)
        pthread_rwlock_unlock(&rt_lock);
}

static int rt_refresh(void *arg, uint32_t timeout_ms)
{
    (void)arg;
    (void)timeout_ms;
    atomic_fetch_add(&refreshes, 1);
    return 0;
}

static bool rt_lease(void *arg)
{
    (void)arg;
    return atomic_load(&lease_ok);
}

/* What mgmtd does with MG_SYNC_DONE: the SYNCING target serves, the chain
 * version moves on. */
static atomic_int syncs_reported;
static int rt_report_synced(void *arg, const struct mg_sync_done_req *req)
{
    (void)arg;
    int rc = 0;
    pthread_rwlock_wrlock(&rt_lock);
    struct mg_target *t = NULL;
    for (int i = 0; i < NREP; i++)
        if (rt_targets[i].id == req->target_id)
            t = &rt_targets[i];
    if (!t || t->state != TS_SYNCING)
        rc = EINVAL;
    else if (req->chain_version != rt_chain.version)
        rc = VF_E_STALE_CHAIN;
    else {
        t->state = TS_SERVING;
        rt_chain.version++;
        routing.version++;
    }
    pthread_rwlock_unlock(&rt_lock);
    if (rc == 0)
        atomic_fetch_add(&syncs_reported, 1);
    return rc;
}

/* The last replica's state changes; the chain version moves on. */
static uint64_t set_last_state(uint8_t state)
{
    pthread_rwlock_wrlock(&rt_lock);
    rt_targets[NREP - 1].state = state;
    uint64_t v = ++rt_chain.version;
    routing.version++;
    pthread_rwlock_unlock(&rt_lock);
    return v;
}

static uint64_t chain_version_now(void)
{
    pthread_rwlock_rdlock(&rt_lock);
    uint64_t v = rt_chain.version;
    pthread_rwlock_unlock(&rt_lock);
    return v;
}

/* ---------------- slow-tail hook ---------------- */

static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hook_cv = PTHREAD_COND_INITIALIZER;
static bool hook_armed, hook_entered, hook_released;

static void before_apply(void *arg, uint32_t target_id, uint16_t method)
{
    (void)arg;
    (void)method;
    if (target_id != tids[NREP - 1])
        return;
    pthread_mutex_lock(&hook_mu);
    if (hook_armed) {
        hook_armed = false;
        hook_entered = true;
        pthread_cond_broadcast(&hook_cv);
        while (!hook_released)
            pthread_cond_wait(&hook_cv, &hook_mu);
    }
    pthread_mutex_unlock(&hook_mu);
}

/* ---------------- client helpers ---------------- */

static struct rpc_client *cli;

static struct stg_route route_to(int rep, uint64_t chain_version)
{
    return (struct stg_route){ .target_id = tids[rep], .chain_id = CHAIN_ID,
                               .chain_version = chain_version };
}

static int call(int rep, uint16_t method, struct wbuf *req, void **resp, size_t *resp_len)
{
    CHECK(!req->err);
    struct rpc_call_opts o = { .timeout_ms = 20000 };
    void *r = NULL;
    size_t rl = 0;
    int st = rpc_call_sync(cli, nodes[rep].addr, method, req->data, req->len, &o, &r, &rl);
    wb_free(req);
    if (resp) {
        *resp = r;
        *resp_len = rl;
    } else {
        free(r);
    }
    return st;
}

static int do_write_v(int rep, uint64_t chain_version, uint64_t ino, uint32_t index,
                      uint32_t off, const void *data, uint32_t len, uint64_t tag,
                      struct stg_write_resp *out)
{
    struct stg_write_req w = { .route = route_to(rep, chain_version), .chunk = { ino, index },
                               .chunk_size = CS, .offset = off, .tag = tag, .data = data,
                               .len = len };
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_write_req_enc(&wb, &w);
    void *r;
    size_t rl;
    int st = call(rep, STG_WRITE, &wb, &r, &rl);
    if (st == 0 && out)
        CHECK(stg_write_resp_dec(r, rl, out) == 0);
    free(r);
    return st;
}

static int do_write(int rep, uint64_t ino, uint32_t index, uint32_t off, const void *data,
                    uint32_t len, uint64_t tag, struct stg_write_resp *out)
{
    return do_write_v(rep, CHAIN_VER, ino, index, off, data, len, tag, out);
}

/* Reads the chunk at a replica; returns status, fills buf/len/version. */
static int do_read(int rep, uint64_t ino, uint32_t index, void *buf, uint32_t *len,
                   uint64_t *version)
{
    struct stg_read_req rq = { .route = route_to(rep, CHAIN_VER), .chunk = { ino, index },
                               .offset = 0, .len = CS };
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_read_req_enc(&wb, &rq);
    void *r;
    size_t rl;
    int st = call(rep, STG_READ, &wb, &r, &rl);
    if (st == 0) {
        struct stg_read_resp rr;
        CHECK(stg_read_resp_dec(r, rl, &rr) == 0);
        CHECK(rr.len == rr.chunk_len);
        if (rr.len)
            memcpy(buf, rr.data, rr.len);
        *len = rr.len;
        *version = rr.version;
    }
    free(r);
    return st;
}

static int chunk_meta(int rep, uint64_t ino, uint32_t index, struct stg_chunk_meta *m)
{
    struct stg_chunk_meta_req rq = { .target_id = tids[rep], .chunk = { ino, index } };
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_chunk_meta_req_enc(&wb, &rq);
    void *r;
    size_t rl;
    int st = call(rep, STG_CHUNK_META, &wb, &r, &rl);
    if (st == 0)
        CHECK(stg_chunk_meta_dec(r, rl, m) == 0);
    free(r);
    return st;
}

/* The chunk is identical (meta and bytes) on every replica and equals want. */
static uint64_t check_replicas(uint64_t ino, uint32_t index, const uint8_t *want, uint32_t len)
{
    static uint8_t buf[CS];
    uint64_t v0 = 0;
    for (int r = 0; r < NREP; r++) {
        struct ce_meta m;
        CHECK(ce_get_meta(nodes[r].ce, ino, index, &m) == 0);
        CHECK(m.len == len);
        CHECK(m.crc32c == crc32c(want, len));
        if (r == 0)
            v0 = m.version;
        CHECK(m.version == v0);
        uint32_t got;
        uint64_t ver;
        CHECK(do_read(r, ino, index, buf, &got, &ver) == 0);
        CHECK(got == len && ver == v0);
        CHECK(memcmp(buf, want, len) == 0);
    }
    return v0;
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 11));
}

/* ---------------- setup ---------------- */

static void setup(void)
{
    for (int i = 0; i < NREP; i++) {
        struct node *n = &nodes[i];
        const char *base = getenv("TEST_CRAQ_DIR"); /* e.g. /dev/shm to leave disks out */
        snprintf(n->dir, sizeof(n->dir), "%.40s/test_craq.XXXXXX", base ? base : "/tmp");
        CHECK(mkdtemp(n->dir));
        char err[256];
        struct ce_opts co = { .target_id = tids[i], .path = n->dir, .verify_reads = true };
        n->ce = ce_open(&co, err, sizeof(err));
        CHECK(n->ce);
        n->fwd = rpc_client_new(&(struct rpc_client_opts){ .name = "fwd" });
        CHECK(n->fwd);
        struct stg_service_opts so = {
            .node_id = (uint32_t)i + 1, .targets = &n->ce, .ntargets = 1, .rpc = n->fwd,
            .apply_threads = 2, .forward_timeout_ms = 20000,
            .routing = { rt_acquire, rt_release, rt_refresh, rt_lease, rt_report_synced,
                         NULL },
            .resync_interval_ms = 50,
            .before_apply = before_apply,
        };
        n->svc = stg_service_new(&so);
        CHECK(n->svc);
        n->srv = rpc_server_new(&(struct rpc_server_opts){
            .listen = "127.0.0.1:0", .loop_threads = 1, .worker_threads = 4, .name = "stg" });
        CHECK(n->srv);
        CHECK(stg_service_attach(n->svc, n->srv) == 0);
        CHECK(rpc_server_start(n->srv) == 0);
        snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%u", rpc_server_port(n->srv));
    }
    pthread_rwlock_wrlock(&rt_lock);
    for (int i = 0; i < NREP; i++) {
        rt_nodes[i] = (struct mg_node){ .id = (uint32_t)i + 1, .type = NODE_STORAGE, .alive = 1 };
        snprintf(rt_nodes[i].addr, sizeof(rt_nodes[i].addr), "%s", nodes[i].addr);
        rt_targets[i] = (struct mg_target){ .id = tids[i], .node_id = (uint32_t)i + 1,
                                            .chain_id = CHAIN_ID, .state = TS_SERVING };
        rt_chain.targets[i] = tids[i];
    }
    rt_chain.id = CHAIN_ID;
    rt_chain.version = CHAIN_VER;
    rt_chain.ntargets = NREP;
    routing = (struct mg_routing){ .version = 1, .nnodes = NREP, .ntargets = NREP, .nchains = 1,
                                   .nodes = rt_nodes, .targets = rt_targets, .chains = &rt_chain };
    pthread_rwlock_unlock(&rt_lock);
    cli = rpc_client_new(&(struct rpc_client_opts){ .name = "test" });
    CHECK(cli);
}

static void teardown(void)
{
    rpc_client_free(cli);
    for (int i = 0; i < NREP; i++) {
        struct node *n = &nodes[i];
        rpc_server_stop(n->srv, 5000);
        CHECK(stg_service_drain(n->svc, 5000));
        stg_service_free(n->svc);
        rpc_server_free(n->srv);
        rpc_client_free(n->fwd);
        ce_close(n->ce);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %.100s", n->dir);
        CHECK(system(cmd) == 0);
    }
}

/* ---------------- tests ---------------- */

static void test_basic_replication(void)
{
    static uint8_t data[100000];
    fill(data, sizeof(data), 1);
    struct stg_write_resp wr;
    CHECK(do_write(0, 0x1234, 0, 0, data, sizeof(data), 0x100000001ull, &wr) == 0);
    CHECK(wr.version == 1 && wr.chunk_len == sizeof(data));
    CHECK(check_replicas(0x1234, 0, data, sizeof(data)) == 1);
    /* partial reads: a range inside, one crossing the end, one past it */
    static const uint32_t ranges[][3] = { { 1000, 500, 500 },
                                          { sizeof(data) - 10, 4096, 10 },
                                          { sizeof(data) + 5, 100, 0 } };
    for (size_t i = 0; i < ARRAY_SIZE(ranges); i++) {
        struct stg_read_req rq = { .route = route_to(1, CHAIN_VER), .chunk = { 0x1234, 0 },
                                   .offset = ranges[i][0], .len = ranges[i][1] };
        struct wbuf wb;
        wb_init(&wb, 0);
        stg_read_req_enc(&wb, &rq);
        void *r;
        size_t rl;
        CHECK(call(1, STG_READ, &wb, &r, &rl) == 0);
        struct stg_read_resp rr;
        CHECK(stg_read_resp_dec(r, rl, &rr) == 0);
        CHECK(rr.version == 1 && rr.chunk_len == sizeof(data) && rr.len == ranges[i][2]);
        CHECK(rr.len == 0 || memcmp(rr.data, data + ranges[i][0], rr.len) == 0);
        free(r);
    }
    /* an absent chunk reads as version 0, length 0 */
    uint32_t got = 1;
    uint64_t ver = 1;
    CHECK(do_read(1, 0x1234, 7, data, &got, &ver) == 0 && got == 0 && ver == 0);
    printf("basic replication: ok\n");
}

struct writer_arg {
    int id;
    uint64_t ino;
};

#define WR_THREADS 8
#define WR_EACH 6
#define WR_SIZE 8192

static void *writer(void *p)
{
    struct writer_arg *a = p;
    uint8_t buf[WR_SIZE];
    for (int j = 0; j < WR_EACH; j++) {
        uint32_t slot = (uint32_t)(a->id * WR_EACH + j);
        fill(buf, sizeof(buf), slot + 7);
        CHECK(do_write(0, a->ino, 3, slot * WR_SIZE, buf, WR_SIZE,
                       ((uint64_t)(a->id + 10) << 32) | ((uint64_t)j + 1), NULL) == 0);
    }
    return NULL;
}

static void test_concurrent_writers(void)
{
    pthread_t th[WR_THREADS];
    struct writer_arg args[WR_THREADS];
    for (int i = 0; i < WR_THREADS; i++) {
        args[i] = (struct writer_arg){ i, 0x2000 };
        CHECK(pthread_create(&th[i], NULL, writer, &args[i]) == 0);
    }
    for (int i = 0; i < WR_THREADS; i++)
        pthread_join(th[i], NULL);
    static uint8_t want[WR_THREADS * WR_EACH * WR_SIZE];
    for (uint32_t s = 0; s < WR_THREADS * WR_EACH; s++)
        fill(want + s * WR_SIZE, WR_SIZE, s + 7);
    uint64_t v = check_replicas(0x2000, 3, want, sizeof(want));
    CHECK(v == WR_THREADS * WR_EACH);
    printf("8 concurrent writers to one chunk: ok (version %llu on all replicas)\n",
           (unsigned long long)v);
}

struct bg_write {
    uint64_t ino;
    const uint8_t *data;
    uint32_t len;
    int status;
    struct stg_write_resp resp;
};

static void *bg_writer(void *p)
{
    struct bg_write *b = p;
    b->status = do_write(0, b->ino, 0, 0, b->data, b->len, 0x300000001ull, &b->resp);
    return NULL;
}

static void test_pending_read(void)
{
    static uint8_t old[5000], neu[5000], buf[CS];
    fill(old, sizeof(old), 3);
    fill(neu, sizeof(neu), 4);
    CHECK(do_write(0, 0x3000, 0, 0, old, sizeof(old), 0, NULL) == 0);
    pthread_mutex_lock(&hook_mu);
    hook_armed = true;
    hook_entered = hook_released = false;
    pthread_mutex_unlock(&hook_mu);
    struct bg_write b = { 0x3000, neu, sizeof(neu), -1, { 0, 0 } };
    pthread_t th;
    CHECK(pthread_create(&th, NULL, bg_writer, &b) == 0);
    pthread_mutex_lock(&hook_mu);
    while (!hook_entered)
        pthread_cond_wait(&hook_cv, &hook_mu);
    pthread_mutex_unlock(&hook_mu);
    /* the tail holds the update: the middle has it pending */
    struct stg_chunk_meta cm;
    CHECK(chunk_meta(1, 0x3000, 0, &cm) == 0 && cm.exists && cm.dirty && cm.version == 1);
    for (int r = 0; r < NREP; r++) {
        uint32_t got;
        uint64_t ver;
        CHECK(do_read(r, 0x3000, 0, buf, &got, &ver) == 0);
        CHECK(ver == 1 && got == sizeof(old) && memcmp(buf, old, sizeof(old)) == 0);
    }
    pthread_mutex_lock(&hook_mu);
    hook_released = true;
    pthread_cond_broadcast(&hook_cv);
    pthread_mutex_unlock(&hook_mu);
    pthread_join(th, NULL);
    CHECK(b.status == 0 && b.resp.version == 2);
    CHECK(check_replicas(0x3000, 0, neu, sizeof(neu)) == 2);
    CHECK(chunk_meta(1, 0x3000, 0, &cm) == 0 && !cm.dirty && cm.version == 2);
    printf("read at a middle replica during a pending write: old data: ok\n");
}

static void test_routing_checks(void)
{
    uint8_t d[100] = { 9 };
    struct ce_meta before[NREP], after;
    for (int r = 0; r < NREP; r++)
        CHECK(ce_get_meta(nodes[r].ce, 0x1234, 0, &before[r]) == 0);
    CHECK(do_write_v(0, CHAIN_VER - 1, 0x1234, 0, 0, d, sizeof(d), 0, NULL) == VF_E_STALE_CHAIN);
    int rf = atomic_load(&refreshes);
    CHECK(do_write_v(0, CHAIN_VER + 1, 0x1234, 0, 0, d, sizeof(d), 0, NULL) == VF_E_NEWER_CHAIN);
    CHECK(atomic_load(&refreshes) == rf + 1);
    CHECK(do_write(1, 0x1234, 0, 0, d, sizeof(d), 0, NULL) == VF_E_NOT_HEAD);
    CHECK(do_write(2, 0x1234, 0, 0, d, sizeof(d), 0, NULL) == VF_E_NOT_HEAD);
    /* a target this node does not have */
    struct stg_write_req w = { .route = { 999, CHAIN_ID, CHAIN_VER }, .chunk = { 0x1234, 0 },
                               .chunk_size = CS, .data = d, .len = sizeof(d) };
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_write_req_enc(&wb, &w);
    CHECK(call(0, STG_WRITE, &wb, NULL, NULL) == VF_E_NO_ROUTE);
    atomic_store(&lease_ok, false);
    CHECK(do_write(0, 0x1234, 0, 0, d, sizeof(d), 0, NULL) == VF_E_NOT_SERVING);
    atomic_store(&lease_ok, true);
    for (int r = 0; r < NREP; r++) {
        CHECK(ce_get_meta(nodes[r].ce, 0x1234, 0, &after) == 0);
        CHECK(after.version == before[r].version && after.crc32c == before[r].crc32c);
    }
    printf("stale chain / newer chain / not head / no route / no lease: ok\n");
}

static void test_dedup(void)
{
    uint8_t a[4096], b[4096];
    fill(a, sizeof(a), 5);
    fill(b, sizeof(b), 6);
    struct stg_write_resp r1, r2, r3;
    CHECK(do_write(0, 0x4000, 0, 0, a, sizeof(a), 0x500000001ull, &r1) == 0);
    CHECK(do_write(0, 0x4000, 0, 0, b, sizeof(b), 0x500000002ull, &r2) == 0);
    CHECK(r2.version == r1.version + 1);
    /* the first request again (a client retry): answered, not applied */
    CHECK(do_write(0, 0x4000, 0, 0, a, sizeof(a), 0x500000001ull, &r3) == 0);
    CHECK(r3.version == r1.version && r3.chunk_len == r1.chunk_len);
    CHECK(check_replicas(0x4000, 0, b, sizeof(b)) == r2.version);
    printf("retried write with the same tag applied once: ok\n");
}

static void test_truncate_remove(void)
{
    const uint64_t ino = 0x5000;
    const uint32_t cs = 64 << 10;
    static uint8_t d[64 << 10];
    fill(d, sizeof(d), 8);
    for (uint32_t i = 0; i < 3; i++) {
        struct stg_write_req w = { .route = route_to(0, CHAIN_VER), .chunk = { ino, i },
                                   .chunk_size = cs, .data = d, .len = cs };
        struct wbuf wb;
        wb_init(&wb, 0);
        stg_write_req_enc(&wb, &w);
        CHECK(call(0, STG_WRITE, &wb, NULL, NULL) == 0);
    }
    struct stg_truncate_req t = { .route = route_to(0, CHAIN_VER), .ino = ino, .chunk_size = cs,
                                  .length = cs + 1000, .tag = 0x600000001ull };
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_truncate_req_enc(&wb, &t);
    void *r;
    size_t rl;
    CHECK(call(0, STG_TRUNCATE, &wb, &r, &rl) == 0);
    struct stg_write_resp tr;
    CHECK(stg_write_resp_dec(r, rl, &tr) == 0 && tr.chunk_len == 1000);
    free(r);
    for (int rep = 0; rep < NREP; rep++) {
        struct ce_query q;
        CHECK(ce_query_ino(nodes[rep].ce, ino, &q) == 0);
        CHECK(q.nchunks == 2 && q.last_index == 1 && q.last_len == 1000 && q.bytes == cs + 1000);
        struct ce_meta m;
        CHECK(ce_get_meta(nodes[rep].ce, ino, 1, &m) == 0 && m.crc32c == crc32c(d, 1000));
        CHECK(ce_get_meta(nodes[rep].ce, ino, 2, &m) == -ENOENT);
    }
    /* the query RPC agrees */
    struct stg_query_req qr = { .route = route_to(2, CHAIN_VER), .ino = ino };
    wb_init(&wb, 0);
    stg_query_req_enc(&wb, &qr);
    CHECK(call(2, STG_QUERY, &wb, &r, &rl) == 0);
    struct stg_query_resp qq;
    CHECK(stg_query_resp_dec(r, rl, &qq) == 0 && qq.nchunks == 2 && qq.last_len == 1000);
    free(r);
    /* a client REMOVE at a non-head is refused; at the head it reaches all */
    struct stg_remove_req rm = { .route = route_to(1, CHAIN_VER), .ino = ino, .tag = 7 };
    wb_init(&wb, 0);
    stg_remove_req_enc(&wb, &rm);
    CHECK(call(1, STG_REMOVE, &wb, NULL, NULL) == VF_E_NOT_HEAD);
    rm.route = route_to(0, CHAIN_VER);
    wb_init(&wb, 0);
    stg_remove_req_enc(&wb, &rm);
    CHECK(call(0, STG_REMOVE, &wb, NULL, NULL) == 0);
    for (int rep = 0; rep < NREP; rep++) {
        struct ce_query q;
        CHECK(ce_query_ino(nodes[rep].ce, ino, &q) == 0 && q.nchunks == 0);
    }
    /* other files are untouched */
    struct ce_meta m;
    CHECK(ce_get_meta(nodes[2].ce, 0x4000, 0, &m) == 0);
    printf("truncate and remove reach all replicas: ok\n");
}

/* The tail's node is unreachable: the write fails upstream, nothing is
 * committed anywhere; once routing is right again the retry lands with
 * equal versions everywhere. */
static void test_successor_failure(void)
{
    uint8_t d[3000];
    fill(d, sizeof(d), 11);
    struct ce_meta before[NREP], m;
    CHECK(do_write(0, 0x8000, 0, 0, d, 1000, 0, NULL) == 0);
    for (int r = 0; r < NREP; r++)
        CHECK(ce_get_meta(nodes[r].ce, 0x8000, 0, &before[r]) == 0);
    char saved[VF_MAX_ADDR + 1];
    pthread_rwlock_wrlock(&rt_lock);
    memcpy(saved, rt_nodes[2].addr, sizeof(saved));
    snprintf(rt_nodes[2].addr, sizeof(rt_nodes[2].addr), "127.0.0.1:1");
    pthread_rwlock_unlock(&rt_lock);
    int st = do_write(0, 0x8000, 0, 0, d, sizeof(d), 0x900000001ull, NULL);
    CHECK(st == RPC_E_CONNECT || st == RPC_E_CLOSED || st == RPC_E_TIMEOUT);
    for (int r = 0; r < NREP; r++) {
        CHECK(ce_get_meta(nodes[r].ce, 0x8000, 0, &m) == 0);
        CHECK(m.version == before[r].version && m.len == 1000);
    }
    struct stg_chunk_meta cm;
    CHECK(chunk_meta(0, 0x8000, 0, &cm) == 0 && !cm.dirty);
    pthread_rwlock_wrlock(&rt_lock);
    memcpy(rt_nodes[2].addr, saved, sizeof(saved));
    pthread_rwlock_unlock(&rt_lock);
    struct stg_write_resp wr;
    CHECK(do_write(0, 0x8000, 0, 0, d, sizeof(d), 0x900000001ull, &wr) == 0);
    CHECK(wr.version > before[0].version && wr.chunk_len == sizeof(d));
    CHECK(check_replicas(0x8000, 0, d, sizeof(d)) == wr.version);
    printf("successor failure answered upstream, nothing committed; retry lands: ok (%s)\n",
           rpc_strerror(st));
}

/* Idle chunk states are forgotten past the limits, and the chain keeps
 * working on fresh ones (run last: it drops the tag memory). */
static void test_state_eviction(void)
{
    struct timespec ts = { 0, 5 * 1000000L };
    /* the previous tests' last acknowledgements may still be releasing
     * their chunk states on other threads: wait until the count holds */
    uint64_t before = stg_service_state_count(nodes[0].svc);
    for (int i = 0; i < 200; i++) {
        nanosleep(&ts, NULL);
        uint64_t now = stg_service_state_count(nodes[0].svc);
        if (now == before)
            break;
        before = now;
    }
    CHECK(before > 10);
    /* nothing is idle for an hour yet: a sweep keeps everything */
    stg_service_set_state_limits(nodes[0].svc, 3600 * 1000, 1, true);
    CHECK(stg_service_state_count(nodes[0].svc) == before);
    for (int r = 0; r < NREP; r++)
        stg_service_set_state_limits(nodes[r].svc, 1, 1, false);
    nanosleep(&ts, NULL);
    /* writes sweep the shards they finish in */
    uint8_t d[512];
    fill(d, sizeof(d), 12);
    for (uint32_t i = 0; i < 40; i++)
        CHECK(do_write(0, 0x9000 + i, 0, 0, d, sizeof(d), 0, NULL) == 0);
    /* an answered update lets go of its state just after the answer */
    for (int r = 0; r < NREP; r++)
        CHECK(stg_service_drain(nodes[r].svc, 5000));
    nanosleep(&ts, NULL);
    for (int r = 0; r < NREP; r++)
        stg_service_set_state_limits(nodes[r].svc, 1, 1, true);
    CHECK(stg_service_state_count(nodes[0].svc) == 0);
    for (uint32_t i = 0; i < 40; i += 13)
        CHECK(check_replicas(0x9000 + i, 0, d, sizeof(d)) == 1);
    /* a chunk whose state went away continues from its committed version */
    CHECK(do_write(0, 0x9000, 0, 0, d, sizeof(d), 0, NULL) == 0);
    CHECK(check_replicas(0x9000, 0, d, sizeof(d)) == 2);
    CHECK(stg_service_state_count(nodes[0].svc) == 2); /* its chunk and its ino gate */
    printf("idle chunk states forgotten (%llu -> 0): ok\n", (unsigned long long)before);
}

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || \
    __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TP_EACH 6 /* sanitizers are slow; keep the test well inside its timeout */
#else
#define TP_EACH 24
#endif
#define TP_THREADS 4

static void *tp_writer(void *p)
{
    int id = (int)(intptr_t)p;
    uint8_t *buf = malloc(CS);
    CHECK(buf);
    fill(buf, CS, (unsigned)id);
    for (int j = 0; j < TP_EACH; j++)
        CHECK(do_write(0, 0x7000 + (uint64_t)id, (uint32_t)j, 0, buf, CS, 0, NULL) == 0);
    free(buf);
    return NULL;
}

static void test_throughput(void)
{
    pthread_t th[TP_THREADS];
    uint64_t t0 = now_ns();
    for (int i = 0; i < TP_THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, tp_writer, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < TP_THREADS; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    double mb = (double)TP_THREADS * TP_EACH * CS / 1e6;
    printf("throughput: %d x 1 MiB writes through a 3-chain over loopback, %d writers: "
           "%.1f MB/s (%.2f s)\n", TP_THREADS * TP_EACH, TP_THREADS, mb / secs, secs);
    struct ce_meta m;
    for (int r = 0; r < NREP; r++)
        CHECK(ce_get_meta(nodes[r].ce, 0x7000 + TP_THREADS - 1, TP_EACH - 1, &m) == 0 &&
              m.len == CS);
}

/* Every target holds the same chunks with the same metadata and bytes. */
static void check_targets_identical(void)
{
    struct ce_chunk a[256], b[256];
    uint32_t na, nb;
    bool eof;
    CHECK(ce_list(nodes[0].ce, 0, 0, 0, 256, a, &na, &eof) == 0 && eof);
    static uint8_t x[CS], y[CS];
    for (int r = 1; r < NREP; r++) {
        CHECK(ce_list(nodes[r].ce, 0, 0, 0, 256, b, &nb, &eof) == 0 && eof);
        if (nb != na)
            fprintf(stderr, "target %u has %u chunks, target %u has %u\n", tids[r], nb,
                    tids[0], na);
        CHECK(nb == na);
        for (uint32_t i = 0; i < na; i++) {
            CHECK(a[i].ino == b[i].ino && a[i].index == b[i].index);
            CHECK(a[i].meta.version == b[i].meta.version && a[i].meta.len == b[i].meta.len &&
                  a[i].meta.crc32c == b[i].meta.crc32c);
            uint32_t nx, ny;
            struct ce_meta mx, my;
            CHECK(ce_read(nodes[0].ce, a[i].ino, a[i].index, 0, CS, x, &nx, &mx) == 0);
            CHECK(ce_read(nodes[r].ce, b[i].ino, b[i].index, 0, CS, y, &ny, &my) == 0);
            CHECK(nx == ny && memcmp(x, y, nx) == 0);
        }
    }
}

struct sync_writer {
    atomic_bool stop;
    int writes;
};

/* Keeps rewriting pieces of chunks 0x5000/2..5 while the resync runs:
 * each write reaches the SYNCING target as a whole chunk. */
static void *sync_writer_main(void *arg)
{
    struct sync_writer *w = arg;
    static uint8_t piece[8192];
    for (unsigned i = 0; !atomic_load(&w->stop); i++) {
        fill(piece, sizeof(piece), 500 + i);
        uint32_t off = (i * 12289u) % (CS - sizeof(piece));
        int st;
        do {
            st = do_write_v(0, chain_version_now(), 0x5000, 2 + i % 4, off, piece,
                            sizeof(piece), (9ull << 32) | (i + 1), NULL);
        } while (st == VF_E_STALE_CHAIN || st == VF_E_NEWER_CHAIN);
        CHECK(st == 0);
        w->writes++;
    }
    return NULL;
}

/* A replica misses updates while OFFLINE (new chunks, overwrites, a removed
 * file), holds a chunk nobody else has, and loses one chunk outright;
 * back as SYNCING it is caught up by its predecessor, with writes going on,
 * and reported synced exactly when it is identical. */
static void test_resync(void)
{
    static uint8_t d[CS];
    uint64_t v = chain_version_now();
    for (uint32_t i = 0; i < 4; i++) {
        fill(d, 300000, 40 + i);
        CHECK(do_write_v(0, v, 0x5001 + i, 0, 0, d, 300000, 0, NULL) == 0);
    }
    v = set_last_state(TS_OFFLINE);
    /* missed: new chunks, a partial overwrite, a removed file */
    for (uint32_t i = 0; i < 6; i++) {
        fill(d, CS - i * 1000, 60 + i);
        CHECK(do_write_v(0, v, 0x5000, i, 0, d, CS - i * 1000, 0, NULL) == 0);
    }
    fill(d, 4096, 77);
    CHECK(do_write_v(0, v, 0x5001, 0, 5000, d, 4096, 0, NULL) == 0);
    struct stg_remove_req rm = { .route = route_to(0, v), .ino = 0x5002 };
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_remove_req_enc(&wb, &rm);
    CHECK(call(0, STG_REMOVE, &wb, NULL, NULL) == 0);
    /* only the returning replica has this one, at a version above anything */
    struct ce_meta m;
    fill(d, 1000, 88);
    CHECK(ce_write(nodes[NREP - 1].ce, 0x4fff, 0, 0, d, 1000, 99, &m) == 0);
    /* and it lost one chunk it should have (a damaged disk) */
    CHECK(ce_remove(nodes[NREP - 1].ce, 0x5003, 0) == 0);

    int before = atomic_load(&syncs_reported);
    struct sync_writer w = { 0 };
    pthread_t th;
    CHECK(pthread_create(&th, NULL, sync_writer_main, &w) == 0);
    usleep(20000);
    set_last_state(TS_SYNCING);
    for (int i = 0; i < 1000 && atomic_load(&syncs_reported) == before; i++)
        usleep(10000);
    CHECK(atomic_load(&syncs_reported) == before + 1);
    usleep(50000); /* writes keep going with the target SERVING */
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    CHECK(w.writes > 0);
    check_targets_identical();
    struct ce_meta gone;
    CHECK(ce_get_meta(nodes[NREP - 1].ce, 0x4fff, 0, &gone) == -ENOENT);
    struct resync_stats rs;
    stg_service_resync_stats(nodes[NREP - 2].svc, &rs);
    /* at least: chunks 0 and 1 of 0x5000 (2..5 the writer may have sent
     * whole already), the overwrite, the removed file, the extra chunk and
     * the lost one */
    CHECK(rs.passes_done >= 1 && rs.chunks_pushed >= 6 && rs.bytes_pushed > 0);
    printf("resync of a replica that missed updates, with writes going on: ok "
           "(%llu chunks pushed, %d writes during it)\n",
           (unsigned long long)rs.chunks_pushed, w.writes);
}

/* The head's copy of a chunk is damaged on disk: its read answers
 * VF_E_CHECKSUM (never the bad bytes) and a serving peer pushes a good copy
 * back — to a replica upstream of it, while writes to the chunk go on. */
static void test_repair_of_upstream_replica(void)
{
    static uint8_t d[200000], got[CS];
    const uint64_t ino = 0x6000;
    uint64_t v = chain_version_now();
    fill(d, sizeof(d), 91);
    CHECK(do_write_v(0, v, ino, 0, 0, d, sizeof(d), 0, NULL) == 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/data/%02x/%llx.0", nodes[0].dir, (unsigned)(ino % 256),
             (unsigned long long)ino);
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    CHECK(fseek(f, 777, SEEK_SET) == 0 && fputc(d[777] ^ 0x5a, f) != EOF);
    fclose(f);
    struct stg_read_req rq = { .route = route_to(0, v), .chunk = { ino, 0 }, .offset = 1000,
                               .len = 100 };
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_read_req_enc(&wb, &rq);
    CHECK(call(0, STG_READ, &wb, NULL, NULL) == VF_E_CHECKSUM);
    /* a write to the chunk right away waits for the repair, then lands */
    fill(d + 5000, 3000, 92);
    CHECK(do_write_v(0, v, ino, 0, 5000, d + 5000, 3000, 0, NULL) == 0);
    uint32_t n = 0;
    uint64_t ver = 0;
    int st = -1;
    for (int i = 0; i < 500 && st != 0; i++) {
        struct stg_read_req r2 = rq;
        r2.offset = 0;
        r2.len = CS;
        wb_init(&wb, 0);
        stg_read_req_enc(&wb, &r2);
        void *r;
        size_t rl;
        st = call(0, STG_READ, &wb, &r, &rl);
        if (st == 0) {
            struct stg_read_resp rr;
            CHECK(stg_read_resp_dec(r, rl, &rr) == 0);
            memcpy(got, rr.data, rr.len);
            n = rr.len;
            ver = rr.version;
        }
        free(r);
        if (st)
            usleep(10000);
    }
    CHECK(st == 0 && n == sizeof(d) && memcmp(got, d, n) == 0 && ver == 2);
    check_targets_identical();
    printf("a damaged copy is refused and repaired from a peer: ok\n");
}

int main(void)
{
    log_init(getenv("TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
    setup();
    test_basic_replication();
    test_concurrent_writers();
    test_pending_read();
    test_routing_checks();
    test_dedup();
    test_truncate_remove();
    test_successor_failure();
    test_throughput();
    test_state_eviction();
    test_resync();
    test_repair_of_upstream_replica();
    teardown();
    printf("test_craq: ok\n");
    return 0;
}
