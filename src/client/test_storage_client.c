/* test_storage_client.c — the storage client against in-process fake
 * storage servers: three RPC servers on loopback port 0 keep chunks in
 * memory; a chain write at the head is applied to every replica at once
 * (enough CRAQ for the client's view). The routing is static and comes in
 * through sc_routing_src.
 *
 * Checks: random writes read back byte for byte (through every replica),
 * holes and short chunks read as zeros, reads clip at file_size, a replica
 * that fails every read is skipped, a head that answers VF_E_STALE_CHAIN
 * once makes the client refresh and retry with the same tag, chunk RPCs of
 * one request run in parallel, truncate/query/remove over every chain, and
 * an operation on a chain with no server fails with EIO at the deadline.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/mgmtd_client.h"
#include "client/storage_client.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/storage_proto.h"
#include "rpc/rpc.h"

#include "common/test_check.h"

#define NSERVERS 3
#define NCHAINS 4
#define CS (64u << 10)
#define INO 0xabcdef01ull

/* ---------------- fake storage ---------------- */

struct chunk {
    struct chunk *next;
    uint32_t target;
    uint64_t ino;
    uint32_t index;
    uint32_t len;
    uint8_t data[CS];
};

static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;
static struct chunk *store;
static struct mg_routing routing;
static struct mgc_routing routing_ref;

static atomic_int bad_reads_served;     /* reads answered with an error by the bad replica */
static uint32_t bad_read_target;        /* this target fails every read */
static atomic_int stale_once;           /* the next write answers VF_E_STALE_CHAIN */
static uint64_t stale_tag;              /* tag of the write refused as stale */
static atomic_int retried_same_tag;     /* a later write carried stale_tag */
static atomic_int refreshes;
static atomic_int in_flight, max_in_flight;

static struct chunk *find_chunk(uint32_t target, uint64_t ino, uint32_t index, bool create)
{
    for (struct chunk *c = store; c; c = c->next)
        if (c->target == target && c->ino == ino && c->index == index)
            return c;
    if (!create)
        return NULL;
    struct chunk *c = calloc(1, sizeof(*c));
    c->target = target;
    c->ino = ino;
    c->index = index;
    c->next = store;
    store = c;
    return c;
}

static const struct mg_chain *chain_of(uint32_t id)
{
    for (uint32_t i = 0; i < routing.nchains; i++)
        if (routing.chains[i].id == id)
            return &routing.chains[i];
    return NULL;
}

static void track_enter(void)
{
    int n = atomic_fetch_add(&in_flight, 1) + 1;
    int m = atomic_load(&max_in_flight);
    while (n > m && !atomic_compare_exchange_weak(&max_in_flight, &m, n))
        ;
    usleep(3000); /* long enough for the other pieces to arrive */
}

static void on_write(struct rpc_call *call, void *arg)
{
    (void)arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct stg_write_req m;
    if (stg_write_req_dec(p, len, &m) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    track_enter();
    const struct mg_chain *ch = chain_of(m.route.chain_id);
    if (ch == NULL || ch->targets[0] != m.route.target_id) {
        atomic_fetch_sub(&in_flight, 1);
        rpc_reply(call, VF_E_NOT_HEAD, NULL, 0);
        return;
    }
    int one = 1;
    if (atomic_compare_exchange_strong(&stale_once, &one, 0)) {
        stale_tag = m.tag;
        atomic_fetch_sub(&in_flight, 1);
        rpc_reply(call, VF_E_STALE_CHAIN, NULL, 0);
        return;
    }
    if (stale_tag && m.tag == stale_tag)
        atomic_fetch_add(&retried_same_tag, 1);
    pthread_mutex_lock(&store_mu);
    uint32_t clen = 0;
    for (uint32_t i = 0; i < ch->ntargets; i++) {
        struct chunk *c = find_chunk(ch->targets[i], m.chunk.ino, m.chunk.index, true);
        memcpy(c->data + m.offset, m.data, m.len);
        if (m.offset + m.len > c->len)
            c->len = m.offset + m.len;
        clen = c->len;
    }
    pthread_mutex_unlock(&store_mu);
    atomic_fetch_sub(&in_flight, 1);
    struct stg_write_resp r = { .version = 1, .chunk_len = clen };
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_write_resp_enc(&wb, &r);
    rpc_reply(call, 0, wb.data, wb.len);
    wb_free(&wb);
}

static void on_read(struct rpc_call *call, void *arg)
{
    (void)arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct stg_read_req m;
    if (stg_read_req_dec(p, len, &m) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    if (m.route.target_id == bad_read_target) {
        atomic_fetch_add(&bad_reads_served, 1);
        rpc_reply(call, VF_E_CHECKSUM, NULL, 0);
        return;
    }
    track_enter();
    static uint8_t zero[1];
    struct stg_read_resp r = { .data = zero };
    pthread_mutex_lock(&store_mu);
    struct chunk *c = find_chunk(m.route.target_id, m.chunk.ino, m.chunk.index, false);
    uint8_t *copy = NULL;
    if (c) {
        r.version = 1;
        r.chunk_len = c->len;
        if (m.offset < c->len) {
            r.len = c->len - m.offset < m.len ? c->len - m.offset : m.len;
            copy = malloc(r.len);
            memcpy(copy, c->data + m.offset, r.len);
            r.data = copy;
        }
    }
    pthread_mutex_unlock(&store_mu);
    atomic_fetch_sub(&in_flight, 1);
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_read_resp_enc(&wb, &r);
    rpc_reply(call, 0, wb.data, wb.len);
    wb_free(&wb);
    free(copy);
}

static void on_truncate(struct rpc_call *call, void *arg)
{
    (void)arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct stg_truncate_req m;
    if (stg_truncate_req_dec(p, len, &m) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    const struct mg_chain *ch = chain_of(m.route.chain_id);
    pthread_mutex_lock(&store_mu);
    for (struct chunk *c = store; c; c = c->next) {
        bool on_chain = false;
        for (uint32_t i = 0; i < ch->ntargets; i++)
            on_chain |= c->target == ch->targets[i];
        if (!on_chain || c->ino != m.ino)
            continue;
        uint64_t start = (uint64_t)c->index * m.chunk_size;
        if (start >= m.length)
            c->len = 0;
        else if (start + c->len > m.length)
            c->len = (uint32_t)(m.length - start);
    }
    pthread_mutex_unlock(&store_mu);
    struct stg_write_resp r = { 0 };
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_write_resp_enc(&wb, &r);
    rpc_reply(call, 0, wb.data, wb.len);
    wb_free(&wb);
}

static void on_query(struct rpc_call *call, void *arg)
{
    (void)arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct stg_query_req m;
    if (stg_query_req_dec(p, len, &m) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    struct stg_query_resp r = { 0 };
    pthread_mutex_lock(&store_mu);
    for (struct chunk *c = store; c; c = c->next) {
        if (c->target != m.route.target_id || c->ino != m.ino || c->len == 0)
            continue;
        if (r.nchunks == 0 || c->index > r.last_index) {
            r.last_index = c->index;
            r.last_len = c->len;
        }
        r.nchunks++;
        r.bytes += c->len;
    }
    pthread_mutex_unlock(&store_mu);
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_query_resp_enc(&wb, &r);
    rpc_reply(call, 0, wb.data, wb.len);
    wb_free(&wb);
}

static void on_remove(struct rpc_call *call, void *arg)
{
    (void)arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct stg_remove_req m;
    if (stg_remove_req_dec(p, len, &m) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    const struct mg_chain *ch = chain_of(m.route.chain_id);
    pthread_mutex_lock(&store_mu);
    for (struct chunk *c = store; c; c = c->next)
        for (uint32_t i = 0; i < ch->ntargets; i++)
            if (c->target == ch->targets[i] && c->ino == m.ino)
                c->len = 0;
    pthread_mutex_unlock(&store_mu);
    rpc_reply(call, 0, NULL, 0);
}

static void on_list(struct rpc_call *call, void *arg)
{
    (void)arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct stg_list_req m;
    if (stg_list_req_dec(p, len, &m) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    /* pages of at most 2 so the client has to follow them */
    struct stg_chunk_meta out[2];
    struct stg_list_resp r = { .chunks = out };
    bool start = m.after.ino == 0 && m.after.index == 0;
    pthread_mutex_lock(&store_mu);
    uint32_t best_idx[2];
    for (uint32_t k = 0; k < 2; k++) {
        struct chunk *best = NULL;
        for (struct chunk *c = store; c; c = c->next) {
            if (c->target != m.target_id || c->ino != m.ino || c->len == 0)
                continue;
            if (!start && c->index <= m.after.index)
                continue;
            if (k > 0 && c->index <= best_idx[k - 1])
                continue;
            if (best == NULL || c->index < best->index)
                best = c;
        }
        if (best == NULL)
            break;
        best_idx[k] = best->index;
        out[r.n++] = (struct stg_chunk_meta){ .chunk = { best->ino, best->index }, .exists = 1,
                                              .version = 1, .len = best->len };
    }
    r.eof = r.n < 2;
    pthread_mutex_unlock(&store_mu);
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_list_resp_enc(&wb, &r);
    rpc_reply(call, 0, wb.data, wb.len);
    wb_free(&wb);
}

struct list_result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int status;
    uint32_t n;
    struct sc_chunk_len chunks[64];
};

static void list_cb(void *arg, int status, const struct sc_chunk_len *ch, uint32_t n)
{
    struct list_result *lr = arg;
    pthread_mutex_lock(&lr->mu);
    lr->status = status;
    lr->n = n;
    for (uint32_t i = 0; i < n && i < 64; i++)
        lr->chunks[i] = ch[i];
    lr->done = true;
    pthread_cond_signal(&lr->cv);
    pthread_mutex_unlock(&lr->mu);
}

/* ---------------- static routing ---------------- */

static struct mgc_routing *src_get(void *arg)
{
    (void)arg;
    return &routing_ref;
}
static void src_put(void *arg, struct mgc_routing *r)
{
    (void)arg;
    (void)r;
}
static int src_refresh(void *arg, uint64_t min_version, uint32_t timeout_ms)
{
    (void)arg;
    (void)min_version;
    (void)timeout_ms;
    atomic_fetch_add(&refreshes, 1);
    return 0;
}

static void build_routing(const uint16_t *ports)
{
    routing.version = 7;
    routing.nnodes = NSERVERS;
    routing.nodes = calloc(NSERVERS, sizeof(struct mg_node));
    for (int i = 0; i < NSERVERS; i++) {
        routing.nodes[i].id = (uint32_t)i + 1;
        routing.nodes[i].type = NODE_STORAGE;
        routing.nodes[i].alive = 1;
        snprintf(routing.nodes[i].addr, sizeof(routing.nodes[i].addr), "127.0.0.1:%u", ports[i]);
    }
    /* chain c (1..NCHAINS) has target c*10+j on node j+1; one extra chain
     * 99 whose only target lives on a node nobody listens on */
    routing.nchains = NCHAINS + 1;
    routing.chains = calloc(routing.nchains, sizeof(struct mg_chain));
    routing.ntargets = NCHAINS * NSERVERS + 1;
    routing.targets = calloc(routing.ntargets, sizeof(struct mg_target));
    uint32_t t = 0;
    for (uint32_t c = 0; c < NCHAINS; c++) {
        struct mg_chain *ch = &routing.chains[c];
        ch->id = c + 1;
        ch->version = 3;
        ch->ntargets = NSERVERS;
        for (uint32_t j = 0; j < NSERVERS; j++) {
            uint32_t id = (c + 1) * 10 + j;
            ch->targets[j] = id;
            routing.targets[t++] = (struct mg_target){ .id = id, .node_id = j + 1,
                                                      .chain_id = ch->id, .state = TS_SERVING };
        }
    }
    routing.chains[NCHAINS] = (struct mg_chain){ .id = 99, .version = 1, .ntargets = 1,
                                                 .targets = { 990 } };
    routing.targets[t++] = (struct mg_target){ .id = 990, .node_id = 9, .chain_id = 99,
                                              .state = TS_SERVING };
    routing_ref.r = routing;
}

static struct meta_inode file_inode(uint32_t nchains, uint32_t first_chain)
{
    struct meta_inode in = { .ino = INO, .mode = 0100644 };
    in.layout.chunk_size = CS;
    in.layout.table_id = 1;
    in.layout.nchains = nchains;
    for (uint32_t i = 0; i < nchains; i++)
        in.layout.chains[i] = first_chain + i;
    return in;
}

int main(void)
{
    log_init(LOG_LVL_WARN);
    struct rpc_server *srv[NSERVERS];
    uint16_t ports[NSERVERS];
    for (int i = 0; i < NSERVERS; i++) {
        struct rpc_server_opts so = { .listen = "127.0.0.1:0", .worker_threads = 8,
                                      .name = "fake-stg" };
        srv[i] = rpc_server_new(&so);
        rpc_server_handle(srv[i], STG_WRITE, RPC_EXEC_WORKER, on_write, NULL);
        rpc_server_handle(srv[i], STG_READ, RPC_EXEC_WORKER, on_read, NULL);
        rpc_server_handle(srv[i], STG_TRUNCATE, RPC_EXEC_INLINE, on_truncate, NULL);
        rpc_server_handle(srv[i], STG_QUERY, RPC_EXEC_INLINE, on_query, NULL);
        rpc_server_handle(srv[i], STG_REMOVE, RPC_EXEC_INLINE, on_remove, NULL);
        rpc_server_handle(srv[i], STG_LIST, RPC_EXEC_INLINE, on_list, NULL);
        if (rpc_server_start(srv[i]) != 0) {
            fprintf(stderr, "cannot start fake storage server\n");
            return 1;
        }
        ports[i] = rpc_server_port(srv[i]);
    }
    build_routing(ports);

    struct rpc_client_opts ro = { .connect_timeout_ms = 500, .name = "test-sc" };
    struct rpc_client *rpc = rpc_client_new(&ro);
    struct sc_routing_src src = { src_get, src_put, src_refresh, NULL };
    struct sc_opts so;
    sc_opts_default(&so);
    so.routing = &src;
    so.op_timeout_ms = 5000;
    so.backoff_min_ms = 5;
    struct sc *sc = sc_new(rpc, NULL, &so);
    CHECK(sc != NULL);

    struct meta_inode in = file_inode(NCHAINS, 1);
    const size_t fsize = 9 * CS + 1234;
    uint8_t *shadow = calloc(1, fsize);
    uint8_t *buf = malloc(fsize);

    /* 1. a multi-chunk write runs its chunk RPCs in parallel */
    uint8_t *pattern = malloc(4 * CS);
    for (size_t i = 0; i < 4 * CS; i++)
        pattern[i] = (uint8_t)(i * 7 + 3);
    atomic_store(&max_in_flight, 0);
    CHECK(sc_write_sync(sc, &in, 0, pattern, 4 * CS) == 4 * CS);
    memcpy(shadow, pattern, 4 * CS);
    CHECK(atomic_load(&max_in_flight) >= 2);

    /* 2. random ranges, read back byte for byte */
    srand(1234);
    size_t written_end = 4 * CS;
    for (int i = 0; i < 60; i++) {
        size_t off = (size_t)rand() % (fsize - 1);
        size_t len = 1 + (size_t)rand() % (2 * CS + 100);
        if (off + len > fsize)
            len = fsize - off;
        for (size_t k = 0; k < len; k++)
            pattern[k % (4 * CS)] = (uint8_t)rand();
        if (len > 4 * CS)
            len = 4 * CS;
        CHECK(sc_write_sync(sc, &in, off, pattern, (uint32_t)len) == (int64_t)len);
        memcpy(shadow + off, pattern, len);
        if (off + len > written_end)
            written_end = off + len;
    }
    for (int i = 0; i < 60; i++) {
        size_t off = (size_t)rand() % written_end;
        size_t len = 1 + (size_t)rand() % (3 * CS);
        memset(buf, 0xee, fsize);
        int64_t got = sc_read_sync(sc, &in, off, (uint32_t)len, buf, written_end);
        size_t want = off + len > written_end ? written_end - off : len;
        CHECK(got == (int64_t)want);
        CHECK(memcmp(buf, shadow + off, want) == 0);
    }
    /* the whole file, where never-written bytes read as zeros */
    CHECK(sc_read_sync(sc, &in, 0, (uint32_t)written_end, buf, written_end) == (int64_t)written_end);
    CHECK(memcmp(buf, shadow, written_end) == 0);

    /* 3. holes and clipping: chunk 20 is absent, file_size inside it */
    memset(buf, 0xee, 3 * CS);
    CHECK(sc_read_sync(sc, &in, 20ull * CS, 3 * CS, buf, 20ull * CS + 100) == 100);
    bool zeros = true;
    for (int k = 0; k < 100; k++)
        zeros &= buf[k] == 0;
    CHECK(zeros);
    CHECK(sc_read_sync(sc, &in, 30ull * CS, 10, buf, 20ull * CS) == 0);

    /* 4. a replica that fails every read: reads still succeed, byte exact */
    bad_read_target = 11; /* chain 1's second replica */
    for (int i = 0; i < 20; i++) {
        memset(buf, 0xee, CS);
        CHECK(sc_read_sync(sc, &in, 0, CS, buf, written_end) == CS); /* chunk 0: chain 1 */
        CHECK(memcmp(buf, shadow, CS) == 0);
    }
    CHECK(atomic_load(&bad_reads_served) > 0);
    bad_read_target = 0;

    /* 5. a head that answers VF_E_STALE_CHAIN once: refresh, retry, same tag */
    int ref0 = atomic_load(&refreshes);
    atomic_store(&stale_once, 1);
    memset(pattern, 0x5a, 1000);
    CHECK(sc_write_sync(sc, &in, 5 * CS + 10, pattern, 1000) == 1000);
    memset(shadow + 5 * CS + 10, 0x5a, 1000);
    CHECK(atomic_load(&stale_once) == 0);
    CHECK(atomic_load(&refreshes) > ref0);
    CHECK(atomic_load(&retried_same_tag) == 1);
    CHECK(sc_read_sync(sc, &in, 5 * CS, CS, buf, written_end) == CS);
    CHECK(memcmp(buf, shadow + 5 * CS, CS) == 0);

    /* 6. query, truncate, remove over every chain */
    uint64_t qlen = 0;
    CHECK(sc_query_length(sc, &in, &qlen) == 0);
    CHECK(qlen == written_end);
    CHECK(sc_truncate_file(sc, &in, 2 * CS + 5) == 0);
    CHECK(sc_query_length(sc, &in, &qlen) == 0);
    CHECK(qlen == 2 * CS + 5);
    memset(buf, 0xee, 3 * CS);
    CHECK(sc_read_sync(sc, &in, 0, 3 * CS, buf, 3 * CS) == 3 * CS);
    CHECK(memcmp(buf, shadow, 2 * CS + 5) == 0);
    zeros = true;
    for (size_t k = 2 * CS + 5; k < 3 * CS; k++)
        zeros &= buf[k] == 0;
    CHECK(zeros);
    /* the chunks that exist, merged over the chains, sorted, pages followed:
     * after the truncate chunks 0 and 1 are full, chunk 2 holds 5 bytes */
    struct list_result lr = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    sc_list_chunks_async(sc, &in, list_cb, &lr);
    pthread_mutex_lock(&lr.mu);
    while (!lr.done)
        pthread_cond_wait(&lr.cv, &lr.mu);
    pthread_mutex_unlock(&lr.mu);
    CHECK(lr.status == 0 && lr.n == 3);
    CHECK(lr.chunks[0].index == 0 && lr.chunks[0].len == CS);
    CHECK(lr.chunks[1].index == 1 && lr.chunks[1].len == CS);
    CHECK(lr.chunks[2].index == 2 && lr.chunks[2].len == 5);
    /* a file with more chunks per chain than one page: 12 chunks over 4
     * chains, 3 per chain, pages of 2 */
    struct meta_inode in2 = file_inode(NCHAINS, 1);
    in2.ino = INO + 1;
    for (uint32_t k = 0; k < 12; k++)
        CHECK(sc_write_sync(sc, &in2, (uint64_t)k * CS, pattern, k + 1) == (int64_t)k + 1);
    lr.done = false;
    sc_list_chunks_async(sc, &in2, list_cb, &lr);
    pthread_mutex_lock(&lr.mu);
    while (!lr.done)
        pthread_cond_wait(&lr.cv, &lr.mu);
    pthread_mutex_unlock(&lr.mu);
    CHECK(lr.status == 0 && lr.n == 12);
    for (uint32_t k = 0; k < 12 && k < lr.n; k++)
        CHECK(lr.chunks[k].index == k && lr.chunks[k].len == k + 1);

    CHECK(sc_remove_file(sc, &in) == 0);
    CHECK(sc_query_length(sc, &in, &qlen) == 0);
    CHECK(qlen == 0);

    /* 7. a chain nobody serves: EIO after the deadline, not a hang */
    sc_free(sc);
    so.op_timeout_ms = 300;
    sc = sc_new(rpc, NULL, &so);
    struct meta_inode dead = file_inode(1, 99);
    CHECK(sc_write_sync(sc, &dead, 0, pattern, 10) == -EIO);
    CHECK(sc_read_sync(sc, &dead, 0, 10, buf, 10) == -EIO);

    /* 7b. a chain whose every replica mgmtd took out: EIO after
     * chain_down_ms, long before the operation's deadline */
    sc_free(sc);
    so.op_timeout_ms = 20000;
    so.chain_down_ms = 200;
    sc = sc_new(rpc, NULL, &so);
    routing.targets[routing.ntargets - 1].state = TS_OFFLINE;
    routing_ref.r = routing;
    uint64_t t0 = now_ns();
    CHECK(sc_read_sync(sc, &dead, 0, 10, buf, 10) == -EIO);
    CHECK(sc_write_sync(sc, &dead, 0, pattern, 10) == -EIO);
    uint64_t took_ms = (now_ns() - t0) / 1000000;
    CHECK(took_ms >= 2 * 200 && took_ms < 5000);

    /* 8. bad layouts and empty ranges */
    struct meta_inode badl = file_inode(0, 1);
    CHECK(sc_write_sync(sc, &badl, 0, pattern, 10) == -EINVAL);
    CHECK(sc_read_sync(sc, &in, 0, 0, buf, 100) == 0);

    sc_free(sc);
    rpc_client_free(rpc);
    for (int i = 0; i < NSERVERS; i++) {
        rpc_server_stop(srv[i], 1000);
        rpc_server_free(srv[i]);
    }
    while (store) {
        struct chunk *c = store;
        store = c->next;
        free(c);
    }
    free(routing.nodes);
    free(routing.chains);
    free(routing.targets);
    free(shadow);
    free(buf);
    free(pattern);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("test_storage_client: ok\n");
    return 0;
}
