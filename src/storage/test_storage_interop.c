/* test_storage_interop.c — the real storage client (src/client) against
 * three in-process storage services holding two chains of 3 (each node has
 * a target in both chains), static routing, no mgmtd.
 *
 * Checks: a striped file written in random pieces (parallel chunk I/O over
 * both chains) reads back byte for byte; every chunk is identical (version,
 * length, CRC) on its three replicas; the length query, truncate and
 * remove of the client land on every replica.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/mgmtd_client.h"
#include "client/storage_client.h"
#include "common/log.h"
#include "rpc/rpc.h"
#include "storage/chunk_engine.h"
#include "storage/service.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#define NNODES 3
#define NCHAINS 2
#define CS (64u << 10)

struct node {
    char dir[NCHAINS][64];
    struct ce_target *ce[NCHAINS];
    struct rpc_server *srv;
    struct rpc_client *fwd;
    struct stg_service *svc;
};

static struct node nodes[NNODES];
static struct mgc_routing snapshot; /* never freed: static arrays below */
static struct mg_node rt_nodes[NNODES];
static struct mg_target rt_targets[NNODES * NCHAINS];
static struct mg_chain rt_chains[NCHAINS];
static pthread_rwlock_t rt_lock = PTHREAD_RWLOCK_INITIALIZER;

/* target id of chain c (1-based) on node n (0-based): c*100 + n + 1 */
static uint32_t tid(int chain, int node) { return (uint32_t)(chain * 100 + node + 1); }

static const struct mg_routing *svc_acquire(void *arg, void **ref)
{
    (void)arg;
    pthread_rwlock_rdlock(&rt_lock);
    *ref = &snapshot;
    return &snapshot.r;
}

static void svc_release(void *arg, void *ref)
{
    (void)arg;
    if (ref)
        pthread_rwlock_unlock(&rt_lock);
}

static struct mgc_routing *sc_get(void *arg)
{
    (void)arg;
    pthread_rwlock_rdlock(&rt_lock);
    return &snapshot;
}

static void sc_put(void *arg, struct mgc_routing *r)
{
    (void)arg;
    if (r)
        pthread_rwlock_unlock(&rt_lock);
}

static int sc_refresh(void *arg, uint64_t min_version, uint32_t timeout_ms)
{
    (void)arg;
    (void)min_version;
    (void)timeout_ms;
    return 0;
}

static void setup(void)
{
    for (int n = 0; n < NNODES; n++) {
        struct node *nd = &nodes[n];
        for (int c = 0; c < NCHAINS; c++) {
            snprintf(nd->dir[c], sizeof(nd->dir[c]), "/tmp/test_stg_interop.XXXXXX");
            CHECK(mkdtemp(nd->dir[c]));
            char err[256];
            struct ce_opts co = { .target_id = tid(c + 1, n), .path = nd->dir[c],
                                  .verify_reads = true };
            nd->ce[c] = ce_open(&co, err, sizeof(err));
            CHECK(nd->ce[c]);
        }
        nd->fwd = rpc_client_new(&(struct rpc_client_opts){ .name = "fwd" });
        struct stg_service_opts so = {
            .node_id = (uint32_t)n + 1, .targets = nd->ce, .ntargets = NCHAINS, .rpc = nd->fwd,
            .apply_threads = 2, .routing = { svc_acquire, svc_release, NULL, NULL, NULL },
        };
        nd->svc = stg_service_new(&so);
        nd->srv = rpc_server_new(&(struct rpc_server_opts){
            .listen = "127.0.0.1:0", .loop_threads = 1, .worker_threads = 4, .name = "stg" });
        CHECK(nd->fwd && nd->svc && nd->srv);
        CHECK(stg_service_attach(nd->svc, nd->srv) == 0);
        CHECK(rpc_server_start(nd->srv) == 0);
    }
    pthread_rwlock_wrlock(&rt_lock);
    for (int n = 0; n < NNODES; n++) {
        rt_nodes[n] = (struct mg_node){ .id = (uint32_t)n + 1, .type = NODE_STORAGE, .alive = 1 };
        snprintf(rt_nodes[n].addr, sizeof(rt_nodes[n].addr), "127.0.0.1:%u",
                 rpc_server_port(nodes[n].srv));
        for (int c = 0; c < NCHAINS; c++)
            rt_targets[n * NCHAINS + c] = (struct mg_target){
                .id = tid(c + 1, n), .node_id = (uint32_t)n + 1, .chain_id = (uint32_t)c + 1,
                .state = TS_SERVING };
    }
    for (int c = 0; c < NCHAINS; c++) {
        rt_chains[c] = (struct mg_chain){ .id = (uint32_t)c + 1, .version = 3,
                                          .ntargets = NNODES };
        for (int i = 0; i < NNODES; i++) /* chain 2 starts on the next node */
            rt_chains[c].targets[i] = tid(c + 1, (i + c) % NNODES);
    }
    snapshot.r = (struct mg_routing){ .version = 9, .nnodes = NNODES,
                                      .ntargets = NNODES * NCHAINS, .nchains = NCHAINS,
                                      .nodes = rt_nodes, .targets = rt_targets,
                                      .chains = rt_chains };
    pthread_rwlock_unlock(&rt_lock);
}

static void teardown(void)
{
    for (int n = 0; n < NNODES; n++) {
        struct node *nd = &nodes[n];
        rpc_server_stop(nd->srv, 5000);
        CHECK(stg_service_drain(nd->svc, 5000));
        stg_service_free(nd->svc);
        rpc_server_free(nd->srv);
        rpc_client_free(nd->fwd);
        for (int c = 0; c < NCHAINS; c++) {
            ce_close(nd->ce[c]);
            char cmd[128];
            snprintf(cmd, sizeof(cmd), "rm -rf %.100s", nd->dir[c]);
            CHECK(system(cmd) == 0);
        }
    }
}

/* Every chunk of ino on chain c: same list, versions, lengths and CRCs on
 * all three replicas. Returns the number of chunks. */
static uint32_t check_chain_replicas(int c, uint64_t ino)
{
    struct ce_chunk *ref = NULL;
    uint32_t nref = 0;
    for (int n = 0; n < NNODES; n++) {
        struct ce_chunk *arr;
        uint32_t cnt;
        CHECK(ce_list_ino(nodes[n].ce[c], ino, &arr, &cnt) == 0);
        if (n == 0) {
            ref = arr;
            nref = cnt;
            continue;
        }
        CHECK(cnt == nref);
        for (uint32_t i = 0; i < cnt; i++) {
            CHECK(arr[i].index == ref[i].index);
            CHECK(arr[i].meta.version == ref[i].meta.version);
            CHECK(arr[i].meta.len == ref[i].meta.len);
            CHECK(arr[i].meta.crc32c == ref[i].meta.crc32c);
        }
        free(arr);
    }
    for (uint32_t i = 0; i < nref; i++) /* chunk i lives on chains[i % NCHAINS] */
        CHECK(ref[i].index % NCHAINS == (uint32_t)c);
    free(ref);
    return nref;
}

int main(void)
{
    log_init(LOG_LVL_WARN);
    setup();
    struct rpc_client *rpc = rpc_client_new(&(struct rpc_client_opts){ .name = "client" });
    struct sc_routing_src src = { sc_get, sc_put, sc_refresh, NULL };
    struct sc_opts so;
    sc_opts_default(&so);
    so.routing = &src;
    so.op_timeout_ms = 20000;
    struct sc *sc = sc_new(rpc, NULL, &so);
    CHECK(rpc && sc);

    struct meta_inode in;
    memset(&in, 0, sizeof(in));
    in.ino = 0x77aa0001;
    in.layout = (struct meta_layout){ .chunk_size = CS, .table_id = 1, .nchains = NCHAINS,
                                      .chains = { 1, 2 } };
    const size_t fsize = 7 * CS + 4321;
    uint8_t *shadow = calloc(1, fsize), *buf = malloc(fsize);
    CHECK(shadow && buf);

    /* random pieces, some crossing chunk (and so chain) boundaries */
    srand(42);
    size_t written_end = 0;
    for (int i = 0; i < 60; i++) {
        size_t off = (size_t)rand() % fsize;
        size_t len = 1 + (size_t)rand() % (2 * CS);
        if (off + len > fsize)
            len = fsize - off;
        for (size_t k = 0; k < len; k++)
            shadow[off + k] = (uint8_t)rand();
        CHECK(sc_write_sync(sc, &in, off, shadow + off, (uint32_t)len) == (int64_t)len);
        written_end = off + len > written_end ? off + len : written_end;
    }
    /* the last byte, so the file has its full length */
    CHECK(sc_write_sync(sc, &in, fsize - 1, shadow + fsize - 1, 1) == 1);
    written_end = fsize;
    CHECK(sc_read_sync(sc, &in, 0, (uint32_t)fsize, buf, fsize) == (int64_t)fsize);
    CHECK(memcmp(buf, shadow, fsize) == 0);
    uint32_t nchunks = 0;
    for (int c = 0; c < NCHAINS; c++)
        nchunks += check_chain_replicas(c, in.ino);
    CHECK(nchunks == 8);
    uint64_t qlen = 0;
    CHECK(sc_query_length(sc, &in, &qlen) == 0 && qlen == written_end);
    printf("striped random writes read back, replicas identical (%u chunks): ok\n", nchunks);

    /* truncate into chunk 3 (chain 2): chunks 4.. go, 3 is cut, on every replica */
    const uint64_t tlen = 3 * (uint64_t)CS + 100;
    CHECK(sc_truncate_file(sc, &in, tlen) == 0);
    CHECK(sc_query_length(sc, &in, &qlen) == 0 && qlen == tlen);
    memset(buf, 0xee, fsize);
    CHECK(sc_read_sync(sc, &in, 0, (uint32_t)fsize, buf, tlen) == (int64_t)tlen);
    CHECK(memcmp(buf, shadow, tlen) == 0);
    CHECK(check_chain_replicas(0, in.ino) == 2 && check_chain_replicas(1, in.ino) == 2);
    struct ce_meta m;
    for (int n = 0; n < NNODES; n++)
        CHECK(ce_get_meta(nodes[n].ce[1], in.ino, 3, &m) == 0 && m.len == 100);
    printf("truncate through the client: ok\n");

    CHECK(sc_remove_file(sc, &in) == 0);
    CHECK(check_chain_replicas(0, in.ino) == 0 && check_chain_replicas(1, in.ino) == 0);
    CHECK(sc_query_length(sc, &in, &qlen) == 0 && qlen == 0);
    printf("remove through the client: ok\n");

    sc_free(sc);
    rpc_client_free(rpc);
    free(shadow);
    free(buf);
    teardown();
    printf("test_storage_interop: ok\n");
    return 0;
}
