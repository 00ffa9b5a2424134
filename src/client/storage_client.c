/* storage_client.c — see storage_client.h.
 *
 * An operation (struct sc_op) is a set of parts, one RPC each: a chunk piece
 * for read/write, a chain for truncate/remove/query/sync. Every part runs
 * independently — send, complete on the RPC loop thread, maybe retry from
 * the timer thread — and the last part to finish completes the operation.
 * A part is only ever touched by one thread at a time (the one that holds
 * its in-flight RPC or timer entry), so only the op's counters are atomic.
 */
#include "client/storage_client.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "client/layout.h"
#include "client/mgmtd_client.h"
#include "client/reqbuf.h"
#include "client/routing_view.h"
#include "client/timer.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/storage_proto.h"
#include "rpc/rpc.h"

enum sc_kind { K_READ, K_WRITE, K_TRUNC, K_REMOVE, K_QUERY, K_SYNC, K_LIST };

struct sc {
    struct rpc_client *rpc;
    struct mgc *mgc;
    struct sc_opts o;
    struct sc_routing_src src;
    uint32_t client_id;
    atomic_uint seq;
    atomic_uint rr;     /* spreads reads over replicas */
    struct ctimer *timer;
};

struct sc_op;

struct sc_part {
    struct sc_op *op;
    uint32_t chain_id;
    uint32_t index, chunk_off, len;
    uint64_t buf_off;
    uint64_t tag;
    uint32_t rr_start;     /* reads: first replica position */
    uint32_t round_tries;  /* reads: replicas tried since the last refresh */
    uint32_t nserving;     /* serving replicas at the last send */
    uint32_t sync_next;    /* sync: next serving replica to sync */
    uint32_t backoff_ms;
    uint64_t dead_since_ns; /* when routing first showed no serving replica (0 = not) */
    uint32_t target_node;  /* the node the last attempt went to */
    uint64_t routing_version;
    int last_status;
    uint32_t list_after;   /* list: resume after this index (0 and !list_started = start) */
    bool list_started;
    struct sc_chunk_len *found; /* list: chunks seen on this chain */
    uint32_t nfound, capfound;
    struct reqbuf *req;    /* the last attempt's bytes */
};

struct sc_op {
    struct sc *sc;
    enum sc_kind kind;
    uint64_t ino;
    struct meta_layout layout;
    uint8_t *rbuf;
    const uint8_t *wdata;
    uint64_t trunc_len;
    int64_t ok_result;
    uint64_t deadline_ns;
    sc_done_fn done;
    sc_list_fn list_done;
    void *arg;
    atomic_int pending;
    atomic_int err;
    _Atomic uint64_t qlen;
    uint32_t nparts;
    struct sc_part parts[];
};

void sc_opts_default(struct sc_opts *o)
{
    *o = (struct sc_opts){ .op_timeout_ms = 30000, .rpc_timeout_ms = 10000,
                           .backoff_min_ms = 20, .backoff_max_ms = 1000,
                           .chain_down_ms = 3000 };
}

/* ---- routing source: mgc by default ---- */

static struct mgc_routing *mgc_src_get(void *arg) { return mgc_routing(arg); }
static void mgc_src_put(void *arg, struct mgc_routing *r)
{
    (void)arg;
    mgc_routing_put(r);
}
static int mgc_src_refresh(void *arg, uint64_t min_version, uint32_t timeout_ms)
{
    return mgc_refresh(arg, min_version, timeout_ms);
}

struct sc *sc_new(struct rpc_client *rpc, struct mgc *mgc, const struct sc_opts *opts)
{
    struct sc *sc = calloc(1, sizeof(*sc));
    if (sc == NULL)
        return NULL;
    sc->rpc = rpc;
    sc->mgc = mgc;
    sc_opts_default(&sc->o);
    if (opts) {
        if (opts->op_timeout_ms)
            sc->o.op_timeout_ms = opts->op_timeout_ms;
        if (opts->rpc_timeout_ms)
            sc->o.rpc_timeout_ms = opts->rpc_timeout_ms;
        if (opts->backoff_min_ms)
            sc->o.backoff_min_ms = opts->backoff_min_ms;
        if (opts->backoff_max_ms)
            sc->o.backoff_max_ms = opts->backoff_max_ms;
        if (opts->chain_down_ms)
            sc->o.chain_down_ms = opts->chain_down_ms;
    }
    if (opts && opts->routing)
        sc->src = *opts->routing;
    else
        sc->src = (struct sc_routing_src){ mgc_src_get, mgc_src_put, mgc_src_refresh, mgc };
    if (getrandom(&sc->client_id, sizeof(sc->client_id), 0) != sizeof(sc->client_id))
        sc->client_id = (uint32_t)now_ns() ^ (uint32_t)getpid();
    sc->rr = sc->client_id;
    sc->timer = ctimer_new();
    if (sc->timer == NULL) {
        free(sc);
        return NULL;
    }
    return sc;
}

void sc_free(struct sc *sc)
{
    if (sc == NULL)
        return;
    ctimer_free(sc->timer);
    free(sc);
}

/* ---- classification ---- */

/* Failures that routing or time can fix. */
static bool retryable(int status)
{
    switch (status) {
    case VF_E_STALE_CHAIN: case VF_E_NEWER_CHAIN: case VF_E_NOT_HEAD: case VF_E_NOT_SERVING:
    case VF_E_NO_ROUTE: case RPC_E_CONNECT: case RPC_E_CLOSED: case RPC_E_TIMEOUT:
    case RPC_E_BUSY:
        return true;
    default:
        return false;
    }
}

/* A read failure another replica may not have. */
static bool replica_specific(int status)
{
    return retryable(status) || status == VF_E_CHECKSUM || status == EIO ||
           status == RPC_E_PROTO || status == RPC_E_BADREQ;
}

static int to_errno(int status)
{
    if (status > 0 && status < 1000)
        return -status;
    return -EIO;
}

/* ---- completion ---- */

static int by_index(const void *a, const void *b)
{
    uint32_t x = ((const struct sc_chunk_len *)a)->index, y = ((const struct sc_chunk_len *)b)->index;
    return x < y ? -1 : x > y;
}

/* K_LIST: merge what every chain reported and hand it over sorted. */
static void list_complete(struct sc_op *op, int err)
{
    uint32_t total = 0;
    for (uint32_t i = 0; i < op->nparts; i++)
        total += op->parts[i].nfound;
    struct sc_chunk_len *all = malloc((total ? total : 1) * sizeof(*all));
    if (all == NULL && !err)
        err = -ENOMEM;
    uint32_t n = 0;
    for (uint32_t i = 0; i < op->nparts; i++) {
        if (all && op->parts[i].nfound)
            memcpy(all + n, op->parts[i].found, op->parts[i].nfound * sizeof(*all));
        n += op->parts[i].nfound;
        free(op->parts[i].found);
        reqbuf_put(op->parts[i].req);
    }
    if (all)
        qsort(all, n, sizeof(*all), by_index);
    sc_list_fn done = op->list_done;
    void *arg = op->arg;
    free(op);
    done(arg, err, err ? NULL : all, err ? 0 : n);
    free(all);
}

static void op_complete(struct sc_op *op)
{
    int err = atomic_load(&op->err);
    if (op->kind == K_LIST) {
        list_complete(op, err);
        return;
    }
    int64_t result = err ? err : op->ok_result;
    if (!err && op->kind == K_QUERY)
        result = (int64_t)atomic_load(&op->qlen);
    sc_done_fn done = op->done;
    void *arg = op->arg;
    for (uint32_t i = 0; i < op->nparts; i++)
        reqbuf_put(op->parts[i].req);
    free(op);
    done(arg, result);
}

static void part_finish(struct sc_part *p, int err)
{
    struct sc_op *op = p->op;
    if (err) {
        int zero = 0;
        atomic_compare_exchange_strong(&op->err, &zero, err);
    }
    if (atomic_fetch_sub(&op->pending, 1) == 1)
        op_complete(op);
}

static void part_send(struct sc_part *p);

static uint32_t jitter(uint32_t ms, uint64_t salt)
{
    /* half fixed, half random: spreads clients that failed together */
    uint64_t x = salt ^ now_ns();
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    uint32_t half = ms / 2;
    return half + (uint32_t)(x % (uint64_t)(ms - half + 1));
}

static void on_retry_timer(void *arg, int cancelled)
{
    struct sc_part *p = arg;
    struct sc_op *op = p->op;
    if (cancelled) {
        part_finish(p, -EIO);
        return;
    }
    uint64_t now = now_ns();
    if (now >= op->deadline_ns) {
        part_finish(p, -EIO);
        return;
    }
    /* every retryable status may mean the routing moved on: fetch anything
     * newer than what the failed attempt used */
    uint64_t left_ms = (op->deadline_ns - now) / 1000000ull;
    uint32_t wait = (uint32_t)MIN(left_ms, 1000ull);
    if (op->sc->src.refresh && wait > 0)
        op->sc->src.refresh(op->sc->src.arg, p->routing_version + 1, wait);
    p->round_tries = 0;
    part_send(p);
}

/* Back off, refresh the routing, send again — or give up at the deadline. */
static void part_retry_later(struct sc_part *p, int status)
{
    struct sc_op *op = p->op;
    struct sc *sc = op->sc;
    p->last_status = status;
    uint64_t now = now_ns();
    if (now >= op->deadline_ns) {
        LOG_WARN("sc", "giving up ino=%llx chunk=%u chain=%u status=%s",
                 (unsigned long long)op->ino, p->index, p->chain_id, vf_strstatus(status));
        part_finish(p, -EIO);
        return;
    }
    uint32_t delay = jitter(p->backoff_ms, p->tag ^ (uintptr_t)p);
    uint64_t left_ms = (op->deadline_ns - now) / 1000000ull;
    if (delay > left_ms)
        delay = (uint32_t)left_ms;
    p->backoff_ms = MIN(p->backoff_ms * 2, sc->o.backoff_max_ms);
    LOG_DEBUG("sc", "retry ino=%llx chunk=%u chain=%u status=%s delay_ms=%u",
              (unsigned long long)op->ino, p->index, p->chain_id, vf_strstatus(status), delay);
    if (ctimer_after(sc->timer, delay, on_retry_timer, p) < 0)
        part_finish(p, -EIO);
}

static void part_handle_ok(struct sc_part *p, const void *payload, size_t len)
{
    struct sc_op *op = p->op;
    switch (op->kind) {
    case K_READ: {
        struct stg_read_resp resp;
        if (stg_read_resp_dec(payload, len, &resp) < 0 || resp.len > p->len) {
            p->last_status = RPC_E_PROTO;
            goto bad;
        }
        uint8_t *dst = op->rbuf + p->buf_off;
        if (resp.len)
            memcpy(dst, resp.data, resp.len);
        /* holes and short chunks read as zeros */
        memset(dst + resp.len, 0, p->len - resp.len);
        break;
    }
    case K_QUERY: {
        struct stg_query_resp resp;
        if (stg_query_resp_dec(payload, len, &resp) < 0) {
            p->last_status = RPC_E_PROTO;
            goto bad;
        }
        if (resp.nchunks) {
            uint64_t end = (uint64_t)resp.last_index * op->layout.chunk_size + resp.last_len;
            uint64_t cur = atomic_load(&op->qlen);
            while (end > cur && !atomic_compare_exchange_weak(&op->qlen, &cur, end))
                ;
        }
        break;
    }
    case K_SYNC:
        p->sync_next++;
        part_send(p); /* next replica of the chain, or finishes */
        return;
    case K_LIST: {
        struct stg_list_resp resp;
        if (stg_list_resp_dec(payload, len, &resp) < 0) {
            p->last_status = RPC_E_PROTO;
            goto bad;
        }
        for (uint32_t i = 0; i < resp.n; i++) {
            const struct stg_chunk_meta *c = &resp.chunks[i];
            if (c->chunk.ino != op->ino || !c->exists)
                continue;
            if (p->nfound == p->capfound) {
                uint32_t cap = p->capfound ? p->capfound * 2 : 64;
                struct sc_chunk_len *f = realloc(p->found, cap * sizeof(*f));
                if (f == NULL) {
                    stg_list_resp_free(&resp);
                    part_finish(p, -ENOMEM);
                    return;
                }
                p->found = f;
                p->capfound = cap;
            }
            p->found[p->nfound++] = (struct sc_chunk_len){ c->chunk.index, c->len };
        }
        bool more = !resp.eof && resp.n > 0;
        if (more)
            p->list_after = resp.chunks[resp.n - 1].chunk.index;
        stg_list_resp_free(&resp);
        if (more) {
            p->list_started = true;
            part_send(p);
            return;
        }
        break;
    }
    default:
        break;
    }
    part_finish(p, 0);
    return;
bad:
    LOG_WARN("sc", "undecodable reply ino=%llx chunk=%u chain=%u",
             (unsigned long long)op->ino, p->index, p->chain_id);
    part_retry_later(p, RPC_E_PROTO);
}

static void on_part_done(void *arg, int status, const void *payload, size_t len)
{
    struct sc_part *p = arg;
    if (status == 0) {
        part_handle_ok(p, payload, len);
        return;
    }
    p->last_status = status;
    if (status == RPC_E_CONNECT && p->op->sc->mgc)
        mgc_report_down(p->op->sc->mgc, p->target_node); /* its process may be gone */
    if (p->op->kind == K_READ && replica_specific(status)) {
        /* another replica may serve it at once; refresh only when all failed */
        p->round_tries++;
        p->rr_start++;
        if (p->round_tries < p->nserving && status != VF_E_STALE_CHAIN &&
            status != VF_E_NEWER_CHAIN && status != VF_E_NO_ROUTE) {
            part_send(p);
            return;
        }
        part_retry_later(p, status);
        return;
    }
    if (retryable(status)) {
        part_retry_later(p, status);
        return;
    }
    LOG_DEBUG("sc", "failed ino=%llx chunk=%u chain=%u status=%s",
              (unsigned long long)p->op->ino, p->index, p->chain_id, vf_strstatus(status));
    part_finish(p, to_errno(status));
}

/* Encode the request for target `target` of chain c. Returns the method. */
static uint16_t part_encode(struct sc_part *p, const struct mg_chain *c, uint32_t target)
{
    struct sc_op *op = p->op;
    struct stg_route route = { .target_id = target, .chain_id = c->id,
                               .chain_version = c->version };
    reqbuf_put(p->req);
    p->req = reqbuf_new();
    if (p->req == NULL)
        return 0;
    struct wbuf *wb = &p->req->wb;
    switch (op->kind) {
    case K_READ: {
        struct stg_read_req m = { .route = route, .chunk = { op->ino, p->index },
                                  .offset = p->chunk_off, .len = p->len };
        stg_read_req_enc(wb, &m);
        return STG_READ;
    }
    case K_WRITE: {
        struct stg_write_req m = { .route = route, .chunk = { op->ino, p->index },
                                   .chunk_size = op->layout.chunk_size,
                                   .offset = p->chunk_off, .tag = p->tag,
                                   .data = op->wdata + p->buf_off, .len = p->len };
        stg_write_req_enc(wb, &m);
        return STG_WRITE;
    }
    case K_TRUNC: {
        struct stg_truncate_req m = { .route = route, .ino = op->ino,
                                      .chunk_size = op->layout.chunk_size,
                                      .length = op->trunc_len, .tag = p->tag };
        stg_truncate_req_enc(wb, &m);
        return STG_TRUNCATE;
    }
    case K_REMOVE: {
        struct stg_remove_req m = { .route = route, .ino = op->ino, .tag = p->tag };
        stg_remove_req_enc(wb, &m);
        return STG_REMOVE;
    }
    case K_QUERY: {
        struct stg_query_req m = { .route = route, .ino = op->ino };
        stg_query_req_enc(wb, &m);
        return STG_QUERY;
    }
    case K_SYNC: {
        struct stg_sync_req m = { .target_id = target };
        stg_sync_req_enc(wb, &m);
        return STG_SYNC;
    }
    case K_LIST: {
        /* the first page starts at (ino, 0) inclusive: "after {0,0}" */
        struct stg_list_req m = { .target_id = target, .max = 4096, .ino = op->ino };
        if (p->list_started)
            m.after = (struct stg_chunk_id){ op->ino, p->list_after };
        stg_list_req_enc(wb, &m);
        return STG_LIST;
    }
    }
    return 0;
}

static void part_send(struct sc_part *p)
{
    struct sc_op *op = p->op;
    struct sc *sc = op->sc;
    struct mgc_routing *rt = sc->src.get(sc->src.arg);
    if (rt == NULL) {
        part_retry_later(p, VF_E_NO_ROUTE);
        return;
    }
    p->routing_version = rt->r.version;
    const struct mg_chain *c = mg_routing_chain(&rt->r, p->chain_id);
    uint32_t serving[VF_MAX_REPLICAS];
    uint32_t n = c ? rv_serving(&rt->r, c, serving) : 0;
    if (n == 0) {
        sc->src.put(sc->src.arg, rt);
        /* every replica is out (mgmtd took them out after their leases):
         * say so soon rather than at the operation's deadline */
        uint64_t now = now_ns();
        if (!p->dead_since_ns)
            p->dead_since_ns = now;
        if (c && now - p->dead_since_ns >= (uint64_t)sc->o.chain_down_ms * 1000000ull) {
            LOG_WARN("sc", "chain %u has no serving replica for %u ms: ino=%llx chunk=%u "
                     "fails with EIO", p->chain_id, sc->o.chain_down_ms,
                     (unsigned long long)op->ino, p->index);
            part_finish(p, -EIO);
            return;
        }
        part_retry_later(p, VF_E_NO_ROUTE);
        return;
    }
    p->dead_since_ns = 0;
    uint32_t target;
    p->nserving = n;
    switch (op->kind) {
    case K_READ:
        target = serving[p->rr_start % n];
        break;
    case K_QUERY:
    case K_LIST:
        target = serving[n - 1]; /* the tail holds only committed data */
        break;
    case K_SYNC:
        if (p->sync_next >= n) {
            sc->src.put(sc->src.arg, rt);
            part_finish(p, 0);
            return;
        }
        target = serving[p->sync_next];
        break;
    default:
        target = serving[0]; /* chain writes enter at the head */
        break;
    }
    const char *a = mg_routing_target_addr(&rt->r, target);
    const struct mg_target *tt = mg_routing_target(&rt->r, target);
    p->target_node = tt ? tt->node_id : 0;
    char addr[VF_MAX_ADDR + 1];
    if (a)
        snprintf(addr, sizeof(addr), "%s", a);
    uint16_t method = a ? part_encode(p, c, target) : 0;
    sc->src.put(sc->src.arg, rt);
    if (a == NULL) {
        part_retry_later(p, VF_E_NO_ROUTE);
        return;
    }
    if (p->req == NULL || p->req->wb.err) {
        part_finish(p, -ENOMEM);
        return;
    }
    uint64_t now = now_ns();
    if (now >= op->deadline_ns) {
        part_finish(p, -EIO);
        return;
    }
    uint64_t left_ms = (op->deadline_ns - now) / 1000000ull + 1;
    struct rpc_call_opts co = { .timeout_ms = (uint32_t)MIN(left_ms, (uint64_t)sc->o.rpc_timeout_ms) };
    /* p may be finished and freed by the completion before the call returns */
    struct reqbuf *req = reqbuf_get(p->req);
    struct iovec iov = { req->wb.data, req->wb.len };
    int rc = rpc_call_async(sc->rpc, addr, method, &iov, 1, &co, on_part_done, p);
    reqbuf_put(req);
    if (rc < 0)
        on_part_done(p, rc, NULL, 0);
}

/* ---- building operations ---- */

static struct sc_op *op_new(struct sc *sc, enum sc_kind kind, const struct meta_inode *inode,
                            uint32_t nparts, sc_done_fn done, void *arg)
{
    struct sc_op *op = calloc(1, sizeof(*op) + (size_t)nparts * sizeof(struct sc_part));
    if (op == NULL)
        return NULL;
    op->sc = sc;
    op->kind = kind;
    op->ino = inode->ino;
    op->layout = inode->layout;
    op->deadline_ns = now_ns() + (uint64_t)sc->o.op_timeout_ms * 1000000ull;
    op->done = done;
    op->arg = arg;
    op->nparts = nparts;
    atomic_init(&op->pending, (int)nparts);
    atomic_init(&op->err, 0);
    atomic_init(&op->qlen, 0);
    for (uint32_t i = 0; i < nparts; i++) {
        struct sc_part *p = &op->parts[i];
        p->op = op;
        p->backoff_ms = sc->o.backoff_min_ms;
        p->tag = ((uint64_t)sc->client_id << 32) | atomic_fetch_add(&sc->seq, 1);
        p->rr_start = atomic_fetch_add(&sc->rr, 1);
    }
    return op;
}

static void op_start(struct sc_op *op)
{
    uint32_t n = op->nparts; /* op may be gone once the last part is sent */
    struct sc_part *parts = op->parts;
    for (uint32_t i = 0; i < n; i++)
        part_send(&parts[i]);
}

static void start_io(struct sc *sc, enum sc_kind kind, const struct meta_inode *inode,
                     uint64_t off, uint32_t len, uint8_t *rbuf, const uint8_t *wdata,
                     sc_done_fn done, void *arg)
{
    if (len == 0) {
        done(arg, 0);
        return;
    }
    if (!layout_valid(&inode->layout)) {
        done(arg, -EINVAL);
        return;
    }
    uint32_t n = layout_npieces(inode->layout.chunk_size, off, len);
    struct sc_op *op = op_new(sc, kind, inode, n, done, arg);
    if (op == NULL) {
        done(arg, -ENOMEM);
        return;
    }
    struct layout_piece *pieces = malloc((size_t)n * sizeof(*pieces));
    int got = pieces ? layout_split(&inode->layout, off, len, pieces) : -ENOMEM;
    if (got < 0) {
        free(pieces);
        free(op);
        done(arg, got);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct sc_part *p = &op->parts[i];
        p->chain_id = pieces[i].chain_id;
        p->index = pieces[i].index;
        p->chunk_off = pieces[i].chunk_off;
        p->len = pieces[i].len;
        p->buf_off = pieces[i].buf_off;
    }
    free(pieces);
    op->rbuf = rbuf;
    op->wdata = wdata;
    op->ok_result = len;
    op_start(op);
}

void sc_read(struct sc *sc, const struct meta_inode *inode, uint64_t off, uint32_t len, void *buf,
             uint64_t file_size, sc_done_fn done, void *arg)
{
    uint32_t eff = off >= file_size ? 0 : (uint32_t)MIN((uint64_t)len, file_size - off);
    start_io(sc, K_READ, inode, off, eff, buf, NULL, done, arg);
}

void sc_write(struct sc *sc, const struct meta_inode *inode, uint64_t off, const void *buf,
              uint32_t len, sc_done_fn done, void *arg)
{
    start_io(sc, K_WRITE, inode, off, len, NULL, buf, done, arg);
}

/* One part per chain of the layout. */
static void start_per_chain(struct sc *sc, enum sc_kind kind, const struct meta_inode *inode,
                            uint64_t trunc_len, sc_done_fn done, void *arg)
{
    const struct meta_layout *l = &inode->layout;
    if (l->nchains == 0) { /* not a regular file: nothing stored */
        done(arg, 0);
        return;
    }
    if (!layout_valid(l)) {
        done(arg, -EINVAL);
        return;
    }
    struct sc_op *op = op_new(sc, kind, inode, l->nchains, done, arg);
    if (op == NULL) {
        done(arg, -ENOMEM);
        return;
    }
    for (uint32_t i = 0; i < l->nchains; i++)
        op->parts[i].chain_id = l->chains[i];
    op->trunc_len = trunc_len;
    op->ok_result = 0;
    op_start(op);
}

void sc_truncate_file_async(struct sc *sc, const struct meta_inode *inode, uint64_t len,
                            sc_done_fn done, void *arg)
{
    start_per_chain(sc, K_TRUNC, inode, len, done, arg);
}

void sc_remove_file_async(struct sc *sc, const struct meta_inode *inode, sc_done_fn done,
                          void *arg)
{
    start_per_chain(sc, K_REMOVE, inode, 0, done, arg);
}

void sc_query_length_async(struct sc *sc, const struct meta_inode *inode, sc_done_fn done,
                           void *arg)
{
    start_per_chain(sc, K_QUERY, inode, 0, done, arg);
}

void sc_sync_file_async(struct sc *sc, const struct meta_inode *inode, sc_done_fn done,
                        void *arg)
{
    start_per_chain(sc, K_SYNC, inode, 0, done, arg);
}

void sc_list_chunks_async(struct sc *sc, const struct meta_inode *inode, sc_list_fn done,
                          void *arg)
{
    const struct meta_layout *l = &inode->layout;
    if (l->nchains == 0) {
        done(arg, 0, NULL, 0);
        return;
    }
    if (!layout_valid(l)) {
        done(arg, -EINVAL, NULL, 0);
        return;
    }
    struct sc_op *op = op_new(sc, K_LIST, inode, l->nchains, NULL, arg);
    if (op == NULL) {
        done(arg, -ENOMEM, NULL, 0);
        return;
    }
    op->list_done = done;
    for (uint32_t i = 0; i < l->nchains; i++)
        op->parts[i].chain_id = l->chains[i];
    op_start(op);
}

/* ---- blocking wrappers ---- */

struct sc_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int64_t result;
};

static void waiter_init(struct sc_waiter *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->done = false;
    w->result = 0;
}

static void waiter_done(void *arg, int64_t result)
{
    struct sc_waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->result = result;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int64_t waiter_wait(struct sc_waiter *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    return w->result;
}

int64_t sc_read_sync(struct sc *sc, const struct meta_inode *inode, uint64_t off, uint32_t len,
                     void *buf, uint64_t file_size)
{
    struct sc_waiter w;
    waiter_init(&w);
    sc_read(sc, inode, off, len, buf, file_size, waiter_done, &w);
    return waiter_wait(&w);
}

int64_t sc_write_sync(struct sc *sc, const struct meta_inode *inode, uint64_t off,
                      const void *buf, uint32_t len)
{
    struct sc_waiter w;
    waiter_init(&w);
    sc_write(sc, inode, off, buf, len, waiter_done, &w);
    return waiter_wait(&w);
}

int sc_truncate_file(struct sc *sc, const struct meta_inode *inode, uint64_t len)
{
    struct sc_waiter w;
    waiter_init(&w);
    sc_truncate_file_async(sc, inode, len, waiter_done, &w);
    return (int)waiter_wait(&w);
}

int sc_remove_file(struct sc *sc, const struct meta_inode *inode)
{
    struct sc_waiter w;
    waiter_init(&w);
    sc_remove_file_async(sc, inode, waiter_done, &w);
    return (int)waiter_wait(&w);
}

int sc_query_length(struct sc *sc, const struct meta_inode *inode, uint64_t *len)
{
    struct sc_waiter w;
    waiter_init(&w);
    sc_query_length_async(sc, inode, waiter_done, &w);
    int64_t r = waiter_wait(&w);
    if (r < 0)
        return (int)r;
    *len = (uint64_t)r;
    return 0;
}

int sc_sync_file(struct sc *sc, const struct meta_inode *inode)
{
    struct sc_waiter w;
    waiter_init(&w);
    sc_sync_file_async(sc, inode, waiter_done, &w);
    return (int)waiter_wait(&w);
}
