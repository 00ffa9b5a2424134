/* service.c — storage RPC handlers: request checks against the routing,
 * reads and per-target queries served here, chain updates handed to
 * craq.c (see service.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "rpc/rpc.h"
#include "storage/chunk_engine.h"
#include "storage/craq.h"
#include "storage/repair.h"
#include "storage/resync.h"
#include "storage/service.h"
#include "storage/workq.h"

#define REFRESH_TIMEOUT_MS 2000
#define SMALL_READ (64u << 10) /* bytes a loop thread may read from the disk itself */
#define LIST_MAX 4096

/* ---------------- routing lookups ---------------- */

struct local_target *svc_find_target(struct stg_service *s, uint32_t id)
{
    for (uint32_t i = 0; i < s->ntargets; i++)
        if (s->targets[i].id == id)
            return &s->targets[i];
    return NULL;
}

void svc_inflight_add(struct stg_service *s, int delta)
{
    pthread_mutex_lock(&s->inflight_mu);
    s->inflight += (uint64_t)(int64_t)delta;
    if (s->inflight == 0)
        pthread_cond_broadcast(&s->inflight_cv);
    pthread_mutex_unlock(&s->inflight_mu);
}

/* ---------------- request checks ---------------- */

enum access { ACC_READ, ACC_UPDATE };

/* The chain-level checks against one snapshot: 0, a status, or 1 = our
 * chain is older than the request's / 2 = chain unknown (refresh first). */
static int check_snapshot(const struct mg_routing *r, const struct stg_route *rt,
                          enum access acc, bool client_update, struct route_info *ri)
{
    const struct mg_chain *ch = mg_routing_chain(r, rt->chain_id);
    if (!ch)
        return 2;
    if (rt->chain_version < ch->version)
        return VF_E_STALE_CHAIN;
    if (rt->chain_version > ch->version)
        return 1;
    uint32_t pos = UINT32_MAX;
    for (uint32_t i = 0; i < ch->ntargets && i < VF_MAX_REPLICAS; i++)
        if (ch->targets[i] == rt->target_id)
            pos = i;
    if (pos == UINT32_MAX)
        return VF_E_NO_ROUTE;
    if (client_update && pos != 0)
        return VF_E_NOT_HEAD;
    const struct mg_target *mt = mg_routing_target(r, rt->target_id);
    if (!mt)
        return VF_E_NO_ROUTE;
    bool ok = mt->state == TS_SERVING || (acc == ACC_UPDATE && mt->state == TS_SYNCING);
    if (!ok)
        return VF_E_NOT_SERVING;
    ri->is_head = pos == 0;
    ri->succ_target = 0;
    ri->succ_syncing = false;
    ri->succ_addr[0] = '\0';
    if (acc == ACC_UPDATE) {
        /* the successor: the next member that takes writes */
        for (uint32_t i = pos + 1; i < ch->ntargets && i < VF_MAX_REPLICAS; i++) {
            const struct mg_target *nt = mg_routing_target(r, ch->targets[i]);
            if (!nt || (nt->state != TS_SERVING && nt->state != TS_SYNCING))
                continue;
            const char *addr = mg_routing_target_addr(r, nt->id);
            if (!addr)
                return VF_E_NO_ROUTE;
            ri->succ_target = nt->id;
            ri->succ_syncing = nt->state == TS_SYNCING;
            snprintf(ri->succ_addr, sizeof(ri->succ_addr), "%s", addr);
            break;
        }
    }
    return 0;
}

static int check_once(struct stg_service *s, const struct stg_route *rt, enum access acc,
                      bool client_update, struct route_info *ri)
{
    const struct stg_routing_src *src = &s->o.routing;
    void *ref = NULL;
    const struct mg_routing *r = src->acquire(src->arg, &ref);
    int rc = r ? check_snapshot(r, rt, acc, client_update, ri) : 2;
    src->release(src->arg, ref);
    return rc;
}

/* Returns 0, a status, or (only when !may_block) -EAGAIN: the routing must
 * be refreshed first, which may wait. */
static int check_route_ex(struct stg_service *s, const struct stg_route *rt, enum access acc,
                          bool client_update, struct route_info *ri, bool may_block)
{
    ri->tgt = svc_find_target(s, rt->target_id);
    if (!ri->tgt)
        return VF_E_NO_ROUTE;
    const struct stg_routing_src *src = &s->o.routing;
    int rc = check_once(s, rt, acc, client_update, ri);
    if ((rc == 1 || rc == 2) && !may_block)
        return -EAGAIN;
    /* the sender knows a newer chain (or one we have not seen): catch up */
    if ((rc == 1 || rc == 2) && src->refresh && src->refresh(src->arg, REFRESH_TIMEOUT_MS) == 0)
        rc = check_once(s, rt, acc, client_update, ri);
    if (rc == 1)
        return VF_E_NEWER_CHAIN;
    if (rc == 2)
        return VF_E_NO_ROUTE;
    if (rc == 0 && src->lease_valid && !src->lease_valid(src->arg))
        return VF_E_NOT_SERVING;
    return rc;
}

static int check_route(struct stg_service *s, const struct stg_route *rt, enum access acc,
                       bool client_update, struct route_info *ri)
{
    return check_route_ex(s, rt, acc, client_update, ri, true);
}

/* ---------------- chain updates ---------------- */

static void reply_wb(struct rpc_call *call, struct wbuf *wb);

static struct craq_op *new_op(struct stg_service *s, struct rpc_call *call, uint16_t method)
{
    struct craq_op *op = calloc(1, sizeof(*op));
    if (!op) {
        rpc_reply(call, ENOMEM, NULL, 0);
        return NULL;
    }
    op->svc = s;
    op->call = call;
    op->method = method;
    return op;
}

static void h_write(struct rpc_call *call, void *arg)
{
    struct stg_service *s = arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct craq_op *op = new_op(s, call, STG_WRITE);
    if (!op)
        return;
    struct stg_write_req *w = &op->req.w;
    if (stg_write_req_dec(p, len, w) < 0 || (uint64_t)w->offset + w->len > w->chunk_size) {
        free(op);
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    struct route_info ri;
    int rc = check_route(s, &w->route, ACC_UPDATE, w->version == 0, &ri);
    if (rc) {
        free(op);
        rpc_reply(call, rc, NULL, 0);
        return;
    }
    if (w->flags & STG_WF_PUSH) {
        struct stg_write_resp resp;
        rc = craq_apply_push(ri.tgt, w, &resp);
        free(op);
        if (rc < 0) {
            rpc_reply(call, (int)-rc, NULL, 0);
            return;
        }
        struct wbuf wb;
        wb_init(&wb, 0);
        stg_write_resp_enc(&wb, &resp);
        reply_wb(call, &wb);
        return;
    }
    op->ino = w->chunk.ino;
    op->index = w->chunk.index;
    craq_submit(op, &ri);
}

static void h_truncate(struct rpc_call *call, void *arg)
{
    struct stg_service *s = arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct craq_op *op = new_op(s, call, STG_TRUNCATE);
    if (!op)
        return;
    if (stg_truncate_req_dec(p, len, &op->req.tr) < 0) {
        free(op);
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    struct route_info ri;
    int rc = check_route(s, &op->req.tr.route, ACC_UPDATE, op->req.tr.version == 0, &ri);
    if (rc) {
        free(op);
        rpc_reply(call, rc, NULL, 0);
        return;
    }
    op->ino = op->req.tr.ino;
    craq_submit(op, &ri);
}

static void h_remove(struct rpc_call *call, void *arg)
{
    struct stg_service *s = arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct craq_op *op = new_op(s, call, STG_REMOVE);
    if (!op)
        return;
    if (stg_remove_req_dec(p, len, &op->req.rm) < 0) {
        free(op);
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    struct route_info ri;
    int rc = check_route(s, &op->req.rm.route, ACC_UPDATE, op->req.rm.version == 0, &ri);
    if (rc) {
        free(op);
        rpc_reply(call, rc, NULL, 0);
        return;
    }
    op->ino = op->req.rm.ino;
    craq_submit(op, &ri);
}

/* ---------------- reads and per-target queries ---------------- */

static int status_of(int rc) { return rc < 0 ? -rc : rc; }

static void reply_wb(struct rpc_call *call, struct wbuf *wb)
{
    if (wb->err)
        rpc_reply(call, ENOMEM, NULL, 0);
    else
        rpc_reply(call, 0, wb->data, wb->len);
    wb_free(wb);
}

/* Serve a read. With nowait (on the RPC loop thread) it returns false,
 * having answered nothing, when the data would have to come from the disk;
 * the read then runs again on a work-queue thread. */
static bool serve_read(struct stg_service *s, struct rpc_call *call, bool nowait)
{
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct stg_read_req r;
    if (stg_read_req_dec(p, len, &r) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return true;
    }
    struct route_info ri;
    int rc = check_route_ex(s, &r.route, ACC_READ, false, &ri, !nowait);
    if (rc == -EAGAIN)
        return false; /* a routing refresh may wait: not on the loop thread */
    if (rc) {
        rpc_reply(call, rc, NULL, 0);
        return true;
    }
    /* size the buffer by what the chunk holds, not by what was asked for:
     * a 64 MiB read of a small or absent chunk must not allocate 64 MiB */
    struct ce_meta m;
    rc = ce_get_meta(ri.tgt->ce, r.chunk.ino, r.chunk.index, &m);
    if (rc < 0 && rc != -ENOENT) {
        rpc_reply(call, status_of(rc), NULL, 0);
        return true;
    }
    uint32_t want = rc == 0 && r.offset < m.len ? MIN(r.len, m.len - r.offset) : 0;
    void *buf = want ? malloc(want) : NULL;
    if (want && !buf) {
        rpc_reply(call, ENOMEM, NULL, 0);
        return true;
    }
    uint32_t nread = 0;
    /* only committed bytes are on disk: a pending update is applied after
     * the successor acknowledges it, so this never sees it */
    /* a small read waits for the disk right here: one device read costs
     * about what a hand-off to another thread does, and saves that hop */
    rc = ce_read_ex(ri.tgt->ce, r.chunk.ino, r.chunk.index, r.offset, want, buf, &nread, &m,
                    nowait && want > SMALL_READ);
    if (rc == -EAGAIN && nowait) {
        free(buf);
        return false;
    }
    if (rc == -VF_E_CHECKSUM) {
        LOG_ERROR("storage", "target=%u ino=%llx index=%u: chunk fails its CRC32C; the reader "
                  "goes to another replica, a peer pushes a good copy",
                  r.route.target_id, (unsigned long long)r.chunk.ino, r.chunk.index);
        repair_ask(s, &r.route, r.chunk.ino, r.chunk.index);
    }
    if (rc < 0) {
        free(buf);
        rpc_reply(call, status_of(rc), NULL, 0);
        return true;
    }
    /* header encoded with empty data, then its u32 length set: the data
     * (the last length-prefixed field) goes out from buf uncopied */
    struct stg_read_resp resp = { .version = m.version, .chunk_len = m.len };
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_read_resp_enc(&wb, &resp);
    if (wb.err || wb.len < 4) {
        wb_free(&wb);
        free(buf);
        rpc_reply(call, ENOMEM, NULL, 0);
        return true;
    }
    for (int i = 0; i < 4; i++)
        wb.data[wb.len - 4 + (size_t)i] = (uint8_t)(nread >> (8 * i));
    struct iovec iov[2] = { { wb.data, wb.len }, { buf, nread } };
    rpc_replyv(call, 0, iov, nread ? 2 : 1);
    wb_free(&wb);
    free(buf);
    return true;
}

struct read_job {
    struct stg_service *s;
    struct rpc_call *call;
};

static void read_job_run(void *arg)
{
    struct read_job *j = arg;
    serve_read(j->s, j->call, false);
    free(j);
}

/* Reads run on the loop thread when the page cache has the bytes (no
 * hand-off: the common case of a hot chunk costs no thread wake-up), and on
 * the work queue when the disk must be waited for. */
static void h_read(struct rpc_call *call, void *arg)
{
    struct stg_service *s = arg;
    if (serve_read(s, call, true))
        return;
    struct read_job *j = malloc(sizeof(*j));
    if (j) {
        *j = (struct read_job){ s, call };
        if (workq_push(s->wq, read_job_run, j) == 0)
            return;
        free(j);
    }
    serve_read(s, call, false); /* no queue: block here rather than fail */
}

static void h_query(struct rpc_call *call, void *arg)
{
    struct stg_service *s = arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct stg_query_req r;
    if (stg_query_req_dec(p, len, &r) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    struct route_info ri;
    int rc = check_route(s, &r.route, ACC_READ, false, &ri);
    if (rc) {
        rpc_reply(call, rc, NULL, 0);
        return;
    }
    struct ce_query q;
    if ((rc = ce_query_ino(ri.tgt->ce, r.ino, &q)) < 0) {
        rpc_reply(call, status_of(rc), NULL, 0);
        return;
    }
    struct stg_query_resp resp = { q.nchunks, q.last_index, q.last_len, q.bytes };
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_query_resp_enc(&wb, &resp);
    reply_wb(call, &wb);
}

static void h_chunk_meta(struct rpc_call *call, void *arg)
{
    struct stg_service *s = arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct stg_chunk_meta_req r;
    if (stg_chunk_meta_req_dec(p, len, &r) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    struct local_target *t = svc_find_target(s, r.target_id);
    if (!t) {
        rpc_reply(call, VF_E_NO_ROUTE, NULL, 0);
        return;
    }
    struct ce_meta m;
    int rc = ce_get_meta(t->ce, r.chunk.ino, r.chunk.index, &m);
    if (rc < 0 && rc != -ENOENT) {
        rpc_reply(call, status_of(rc), NULL, 0);
        return;
    }
    struct stg_chunk_meta resp = { .chunk = r.chunk, .exists = rc == 0 };
    if (rc == 0) {
        resp.version = m.version;
        resp.len = m.len;
        resp.crc32c = m.crc32c;
    }
    resp.dirty = craq_chunk_dirty(t, r.chunk.ino, r.chunk.index);
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_chunk_meta_enc(&wb, &resp);
    reply_wb(call, &wb);
}

static void h_repair(struct rpc_call *call, void *arg)
{
    struct stg_service *s = arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct stg_repair_req q;
    if (stg_repair_req_dec(p, len, &q) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    struct route_info ri;
    int rc = check_route(s, &q.route, ACC_READ, false, &ri); /* we must be SERVING */
    if (rc) {
        rpc_reply(call, rc, NULL, 0);
        return;
    }
    repair_serve(s, call, &q, ri.tgt);
}

static void h_list(struct rpc_call *call, void *arg)
{
    struct stg_service *s = arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct stg_list_req r;
    if (stg_list_req_dec(p, len, &r) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    struct local_target *t = svc_find_target(s, r.target_id);
    if (!t) {
        rpc_reply(call, VF_E_NO_ROUTE, NULL, 0);
        return;
    }
    uint32_t max = MIN(r.max, LIST_MAX);
    struct ce_chunk *arr = malloc((max ? max : 1) * sizeof(*arr));
    struct stg_chunk_meta *out = calloc(max ? max : 1, sizeof(*out));
    uint32_t n = 0;
    bool eof = false;
    int rc = arr && out ? ce_list(t->ce, r.after.ino, r.after.index, r.ino, max, arr, &n, &eof)
                        : -ENOMEM;
    if (rc < 0) {
        free(arr);
        free(out);
        rpc_reply(call, status_of(rc), NULL, 0);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        out[i].chunk.ino = arr[i].ino;
        out[i].chunk.index = arr[i].index;
        out[i].exists = 1;
        out[i].dirty = craq_chunk_dirty(t, arr[i].ino, arr[i].index);
        out[i].version = arr[i].meta.version;
        out[i].len = arr[i].meta.len;
        out[i].crc32c = arr[i].meta.crc32c;
    }
    struct stg_list_resp resp = { .n = n, .eof = eof, .chunks = out };
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_list_resp_enc(&wb, &resp);
    free(arr);
    free(out);
    reply_wb(call, &wb);
}

int stg_service_sync(struct stg_service *s, uint32_t target_id)
{
    int rc = 0;
    bool found = target_id == 0;
    for (uint32_t i = 0; i < s->ntargets; i++) {
        if (target_id && s->targets[i].id != target_id)
            continue;
        found = true;
        int r = ce_sync(s->targets[i].ce);
        if (r < 0 && rc == 0)
            rc = r;
    }
    return found ? rc : -ENOENT;
}

static void h_sync(struct rpc_call *call, void *arg)
{
    struct stg_service *s = arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct stg_sync_req r;
    if (stg_sync_req_dec(p, len, &r) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    int rc = stg_service_sync(s, r.target_id);
    rpc_reply(call, rc == -ENOENT ? VF_E_NO_ROUTE : status_of(rc), NULL, 0);
}

static void h_statfs(struct rpc_call *call, void *arg)
{
    struct stg_service *s = arg;
    struct stg_statfs_resp resp;
    memset(&resp, 0, sizeof(resp));
    for (uint32_t i = 0; i < s->ntargets && resp.ntargets < ARRAY_SIZE(resp.targets); i++) {
        uint64_t cap = 0, used = 0;
        ce_statfs(s->targets[i].ce, &cap, &used);
        resp.targets[resp.ntargets].id = s->targets[i].id;
        resp.targets[resp.ntargets].capacity = cap;
        resp.targets[resp.ntargets].used = used;
        resp.ntargets++;
    }
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_statfs_resp_enc(&wb, &resp);
    reply_wb(call, &wb);
}

/* ---------------- life cycle ---------------- */

struct stg_service *stg_service_new(const struct stg_service_opts *o)
{
    struct stg_service *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->o = *o;
    if (s->o.apply_threads <= 0)
        s->o.apply_threads = 4;
    if (!s->o.forward_timeout_ms)
        s->o.forward_timeout_ms = 10000;
    if (!s->o.state_idle_ms)
        s->o.state_idle_ms = 30000;
    if (!s->o.state_soft_max)
        s->o.state_soft_max = 2048;
    pthread_mutex_init(&s->inflight_mu, NULL);
    pthread_cond_init(&s->inflight_cv, NULL);
    s->targets = calloc(o->ntargets ? o->ntargets : 1, sizeof(*s->targets));
    s->wq = workq_new(s->o.apply_threads);
    if (!s->targets || !s->wq) {
        workq_free(s->wq);
        free(s->targets);
        free(s);
        return NULL;
    }
    s->ntargets = o->ntargets;
    for (uint32_t i = 0; i < o->ntargets; i++) {
        s->targets[i].id = ce_target_id(o->targets[i]);
        s->targets[i].ce = o->targets[i];
        craq_target_init(&s->targets[i], s->o.state_soft_max,
                         (uint64_t)s->o.state_idle_ms * 1000000ull);
    }
    pthread_mutex_init(&s->repair_mu, NULL);
    if (s->o.routing.report_synced && !(s->resync = resync_start(s, s->o.resync_interval_ms))) {
        stg_service_free(s);
        return NULL;
    }
    return s;
}

int stg_service_attach(struct stg_service *s, struct rpc_server *srv)
{
    static const struct {
        uint16_t method;
        rpc_handler_fn fn;
    } tab[] = {
        { STG_WRITE, h_write },   { STG_READ, h_read },         { STG_TRUNCATE, h_truncate },
        { STG_REMOVE, h_remove }, { STG_QUERY, h_query },       { STG_CHUNK_META, h_chunk_meta },
        { STG_LIST, h_list },     { STG_SYNC, h_sync },         { STG_STATFS, h_statfs },
        { STG_REPAIR, h_repair },
    };
    for (size_t i = 0; i < ARRAY_SIZE(tab); i++) {
        enum rpc_exec ex = tab[i].method == STG_READ ? RPC_EXEC_INLINE : RPC_EXEC_WORKER;
        int rc = rpc_server_handle(srv, tab[i].method, ex, tab[i].fn, s);
        if (rc < 0)
            return rc;
    }
    return 0;
}

bool stg_service_drain(struct stg_service *s, uint32_t timeout_ms)
{
    struct timespec ts = timespec_after_ms(CLOCK_REALTIME, timeout_ms);
    pthread_mutex_lock(&s->inflight_mu);
    int rc = 0;
    while (s->inflight > 0 && rc == 0)
        rc = pthread_cond_timedwait(&s->inflight_cv, &s->inflight_mu, &ts);
    bool drained = s->inflight == 0;
    pthread_mutex_unlock(&s->inflight_mu);
    return drained;
}

uint32_t stg_service_report(struct stg_service *s, struct mg_target_report *out, uint32_t max)
{
    void *ref = NULL;
    const struct stg_routing_src *src = &s->o.routing;
    const struct mg_routing *r = src->acquire(src->arg, &ref);
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->ntargets && n < max; i++) {
        struct mg_target_report *rep = &out[n++];
        memset(rep, 0, sizeof(*rep));
        rep->id = s->targets[i].id;
        ce_statfs(s->targets[i].ce, &rep->capacity, &rep->used);
        /* the node has no opinion of its own beyond "usable": it reports
         * the state mgmtd gave the target, WAITING for one it never saw */
        const struct mg_target *mt = r ? mg_routing_target(r, rep->id) : NULL;
        rep->state = mt ? mt->state : TS_WAITING;
    }
    src->release(src->arg, ref);
    return n;
}

void stg_service_set_state_limits(struct stg_service *s, uint32_t idle_ms, uint32_t soft_max,
                                  bool sweep_now)
{
    for (uint32_t i = 0; i < s->ntargets; i++)
        craq_set_limits(&s->targets[i], soft_max, (uint64_t)idle_ms * 1000000ull, sweep_now);
}

uint64_t stg_service_state_count(struct stg_service *s)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < s->ntargets; i++)
        n += craq_state_count(&s->targets[i]);
    return n;
}

void stg_service_free(struct stg_service *s)
{
    if (!s)
        return;
    resync_stop(s->resync);
    workq_free(s->wq); /* runs whatever is still queued */
    for (uint32_t i = 0; i < s->ntargets; i++)
        craq_target_destroy(&s->targets[i]);
    pthread_mutex_destroy(&s->inflight_mu);
    pthread_cond_destroy(&s->inflight_cv);
    pthread_mutex_destroy(&s->repair_mu);
    free(s->targets);
    free(s);
}

void stg_service_resync_stats(struct stg_service *s, struct resync_stats *out)
{
    resync_stats(s->resync, out);
}

void stg_service_resync_kick(struct stg_service *s)
{
    resync_kick(s->resync);
}
