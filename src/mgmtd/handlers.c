/* handlers.c — mgmtd's RPC methods (see mgmtd_proto.h for the messages).
 *
 * Heartbeats, routing fetches and WHO_PRIMARY only touch memory and run on
 * the event loop; everything that changes the cluster state commits to the
 * KV and runs on a worker.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "mgmtd/probe.h"
#include "mgmtd/server_internal.h"
#include "rpc/rpc.h"

static void reply_enc(struct rpc_call *c, struct wbuf *wb)
{
    if (wb->err)
        rpc_reply(c, ENOMEM, NULL, 0);
    else
        rpc_reply(c, 0, wb->data, wb->len);
    wb_free(wb);
}

/* Not acting as primary: VF_E_NOT_PRIMARY with the primary's address, or
 * empty when none is acting (nobody holds an unexpired lease, or we hold it
 * but are still waiting out the previous one). Under m->lock. */
static void reply_not_primary_locked(struct mgmtd *m, struct rpc_call *c)
{
    char addr[VF_MAX_ADDR + 1] = "";
    bool is_us = m->known.node_id == m->o.node_id && !strcmp(m->known.addr, m->self_addr);
    if (m->known.node_id && !is_us && m->known.lease_expires_ms > mg_now_real_ms())
        snprintf(addr, sizeof(addr), "%s", m->known.addr);
    pthread_mutex_unlock(&m->lock);
    rpc_reply(c, VF_E_NOT_PRIMARY, addr, strlen(addr));
}

/* Reply NOT_PRIMARY (and return false) unless we act as primary. Returns
 * with m->lock held when true. */
static bool lock_if_primary(struct mgmtd *m, struct rpc_call *c)
{
    pthread_mutex_lock(&m->lock);
    if (mg_acting(m, mg_now_real_ms()))
        return true;
    reply_not_primary_locked(m, c);
    return false;
}

/* For worker methods: answer a status from mg_apply_change(). */
static void reply_status(struct mgmtd *m, struct rpc_call *c, int rc)
{
    if (rc == VF_E_NOT_PRIMARY) {
        pthread_mutex_lock(&m->lock);
        reply_not_primary_locked(m, c);
        return;
    }
    rpc_reply(c, rc, NULL, 0);
}

/* ---- MG_REGISTER ---- */

struct register_arg {
    const struct mg_register_req *req;
    uint32_t node_id;
};

static int do_register(struct mgmtd *m, struct mg_state *st, void *arg)
{
    struct register_arg *a = arg;
    struct mg_node *old = a->req->node_id ? st_find_node(st, a->req->node_id) : NULL;
    bool returning = old && !old->alive;
    int rc = st_register(st, a->req, m->o.lease_ms, mg_now_real_ms(), mg_now_mono_ms(),
                         &a->node_id);
    if (rc == 0)
        LOG_INFO("mgmtd", "node %u registered type=%s addr=%s targets=%u%s", a->node_id,
                 vf_node_type_name(a->req->type), a->req->addr, a->req->ntargets,
                 returning ? " (returning after lease loss)" : "");
    return rc;
}

static void h_register(struct rpc_call *c, void *arg)
{
    struct mgmtd *m = arg;
    size_t len;
    const void *p = rpc_call_payload(c, &len);
    struct mg_register_req *req = malloc(sizeof(*req));
    if (!req) {
        rpc_reply(c, ENOMEM, NULL, 0);
        return;
    }
    if (mg_register_req_dec(p, len, req) != 0) {
        free(req);
        rpc_reply(c, RPC_E_BADREQ, NULL, 0);
        return;
    }
    struct register_arg a = { req, 0 };
    uint64_t version = 0;
    int rc = mg_apply_change(m, do_register, &a, &version);
    free(req);
    if (rc != 0) {
        reply_status(m, c, rc);
        return;
    }
    struct mg_register_resp resp = { .node_id = a.node_id, .lease_ms = m->o.lease_ms,
                                     .routing_version = version };
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_register_resp_enc(&wb, &resp);
    reply_enc(c, &wb);
}

/* ---- MG_HEARTBEAT ---- */

static void h_heartbeat(struct rpc_call *c, void *arg)
{
    struct mgmtd *m = arg;
    size_t len;
    const void *p = rpc_call_payload(c, &len);
    struct mg_heartbeat_req *req = malloc(sizeof(*req));
    if (!req) {
        rpc_reply(c, ENOMEM, NULL, 0);
        return;
    }
    if (mg_heartbeat_req_dec(p, len, req) != 0) {
        free(req);
        rpc_reply(c, RPC_E_BADREQ, NULL, 0);
        return;
    }
    if (!lock_if_primary(m, c)) {
        free(req);
        return;
    }
    struct mg_node *n = st_find_node(&m->st, req->node_id);
    if (!n || !n->alive) {
        pthread_mutex_unlock(&m->lock);
        LOG_INFO("mgmtd", "heartbeat from node %u without a lease: it must register again",
                 req->node_id);
        free(req);
        rpc_reply(c, VF_E_NO_LEASE, NULL, 0);
        return;
    }
    m->st.node_last_hb_ms[n - m->st.nodes] = mg_now_mono_ms();
    n->lease_expires_ms = mg_now_real_ms() + m->o.lease_ms;
    for (uint32_t i = 0; i < req->ntargets; i++) {
        struct mg_target *t = st_find_target(&m->st, req->targets[i].id);
        if (t && t->node_id == n->id) {
            t->capacity = req->targets[i].capacity;
            t->used = req->targets[i].used;
        }
    }
    struct mg_heartbeat_resp resp = { .lease_ms = m->o.lease_ms,
                                      .routing_version = m->routing ? m->routing->version : 0 };
    pthread_mutex_unlock(&m->lock);
    free(req);
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_heartbeat_resp_enc(&wb, &resp);
    reply_enc(c, &wb);
}

/* ---- MG_GET_ROUTING ---- */

static void h_get_routing(struct rpc_call *c, void *arg)
{
    struct mgmtd *m = arg;
    size_t len;
    const void *p = rpc_call_payload(c, &len);
    struct mg_get_routing_req req;
    if (mg_get_routing_req_dec(p, len, &req) != 0) {
        rpc_reply(c, RPC_E_BADREQ, NULL, 0);
        return;
    }
    if (!lock_if_primary(m, c))
        return;
    struct routing_blob *b = m->routing;
    if (b && req.have_version < b->version)
        __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
    else
        b = NULL;
    pthread_mutex_unlock(&m->lock);
    if (b) {
        rpc_reply(c, 0, b->data, b->len);
        routing_blob_put(b);
    } else {
        rpc_reply(c, 0, NULL, 0); /* nothing newer than what the caller has */
    }
}

/* ---- MG_CREATE_TABLE ---- */

struct create_arg {
    const struct mg_create_table_req *req;
    struct mg_create_table_resp resp;
};

static int do_create_table(struct mgmtd *m, struct mg_state *st, void *arg)
{
    (void)m;
    struct create_arg *a = arg;
    char why[200] = "";
    int rc = st_create_table(st, a->req, &a->resp, why, sizeof(why));
    if (rc)
        LOG_WARN("mgmtd", "create table refused: %s (%s)", why, strerror(rc));
    else
        LOG_INFO("mgmtd", "created chain table %u: %u chains x %u replicas routing_version=%llu",
                 a->resp.table_id, a->resp.nchains, a->req->replicas,
                 (unsigned long long)a->resp.routing_version);
    return rc;
}

static void h_create_table(struct rpc_call *c, void *arg)
{
    struct mgmtd *m = arg;
    size_t len;
    const void *p = rpc_call_payload(c, &len);
    struct mg_create_table_req req;
    if (mg_create_table_req_dec(p, len, &req) != 0) {
        rpc_reply(c, RPC_E_BADREQ, NULL, 0);
        return;
    }
    struct create_arg a = { .req = &req };
    int rc = mg_apply_change(m, do_create_table, &a, NULL);
    if (rc != 0) {
        reply_status(m, c, rc);
        return;
    }
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_create_table_resp_enc(&wb, &a.resp);
    reply_enc(c, &wb);
}

/* ---- MG_SET_TARGET ---- */

static int do_set_target(struct mgmtd *m, struct mg_state *st, void *arg)
{
    (void)m;
    const struct mg_set_target_req *req = arg;
    int rc = st_set_target(st, req->target_id, req->state);
    if (rc)
        LOG_WARN("mgmtd", "set target %u to %s refused: %s", req->target_id,
                 vf_target_state_name(req->state), strerror(rc));
    else
        LOG_INFO("mgmtd", "target %u set to %s (admin)", req->target_id,
                 vf_target_state_name(req->state));
    return rc;
}

static void h_set_target(struct rpc_call *c, void *arg)
{
    struct mgmtd *m = arg;
    size_t len;
    const void *p = rpc_call_payload(c, &len);
    struct mg_set_target_req req;
    if (mg_set_target_req_dec(p, len, &req) != 0) {
        rpc_reply(c, RPC_E_BADREQ, NULL, 0);
        return;
    }
    reply_status(m, c, mg_apply_change(m, do_set_target, &req, NULL));
}

/* ---- MG_SYNC_DONE ---- */

static int do_sync_done(struct mgmtd *m, struct mg_state *st, void *arg)
{
    (void)m;
    const struct mg_sync_done_req *req = arg;
    int rc = st_sync_done(st, req->target_id, req->chain_id, req->chain_version);
    if (rc)
        LOG_WARN("mgmtd", "sync of target %u in chain %u (version %llu) not accepted: %s",
                 req->target_id, req->chain_id, (unsigned long long)req->chain_version,
                 vf_strstatus(rc));
    else
        LOG_INFO("mgmtd", "target %u caught up: SERVING in chain %u", req->target_id,
                 req->chain_id);
    return rc;
}

static void h_sync_done(struct rpc_call *c, void *arg)
{
    struct mgmtd *m = arg;
    size_t len;
    const void *p = rpc_call_payload(c, &len);
    struct mg_sync_done_req req;
    if (mg_sync_done_req_dec(p, len, &req) != 0) {
        rpc_reply(c, RPC_E_BADREQ, NULL, 0);
        return;
    }
    reply_status(m, c, mg_apply_change(m, do_sync_done, &req, NULL));
}

/* ---- MG_REPORT_DOWN ---- */

struct down_report {
    struct mg_report_down_req req;
    char addr[VF_MAX_ADDR + 1];
};

static int do_report_down(struct mgmtd *m, struct mg_state *st, void *arg)
{
    (void)m;
    const struct down_report *d = arg;
    struct mg_node *n = st_find_node(st, d->req.node_id);
    if (!n)
        return ENOENT;
    /* (re-registered meanwhile at another address: not the one we probed) */
    if (!n->alive || strcmp(n->addr, d->addr) != 0)
        return 0;
    LOG_WARN("mgmtd", "node %u (%s) refuses connections (reported by %u, confirmed): taken "
             "out now instead of when its lease lapses", n->id, n->addr, d->req.reporter_id);
    return st_node_down(st, n->id);
}

static void h_report_down(struct rpc_call *c, void *arg)
{
    struct mgmtd *m = arg;
    size_t len;
    const void *p = rpc_call_payload(c, &len);
    struct down_report d;
    memset(&d, 0, sizeof(d));
    if (mg_report_down_req_dec(p, len, &d.req) != 0) {
        rpc_reply(c, RPC_E_BADREQ, NULL, 0);
        return;
    }
    pthread_mutex_lock(&m->lock);
    struct mg_node *n = st_find_node(&m->st, d.req.node_id);
    bool alive = n && n->alive && n->type != NODE_CLIENT;
    if (n)
        snprintf(d.addr, sizeof(d.addr), "%s", n->addr);
    pthread_mutex_unlock(&m->lock);
    if (!n) {
        rpc_reply(c, ENOENT, NULL, 0);
        return;
    }
    /* our own look, outside the lock: only a refusal counts */
    if (!alive || !d.addr[0]) {
        rpc_reply(c, 0, NULL, 0);
        return;
    }
    if (!probe_port_closed(d.addr, 500)) {
        LOG_INFO("mgmtd", "node %u (%s) reported down by %u but accepts connections: left to "
                 "its lease", d.req.node_id, d.addr, d.req.reporter_id);
        rpc_reply(c, EAGAIN, NULL, 0);
        return;
    }
    reply_status(m, c, mg_apply_change(m, do_report_down, &d, NULL));
}

/* ---- MG_UNREGISTER ---- */

static int do_unregister(struct mgmtd *m, struct mg_state *st, void *arg)
{
    (void)m;
    uint32_t id = *(const uint32_t *)arg;
    struct mg_node *n = st_find_node(st, id);
    if (!n)
        return ENOENT;
    if (!n->alive)
        return 0;
    LOG_INFO("mgmtd", "node %u (%s) left the cluster", id, n->addr);
    return st_node_down(st, id);
}

static void h_unregister(struct rpc_call *c, void *arg)
{
    struct mgmtd *m = arg;
    size_t len;
    const void *p = rpc_call_payload(c, &len);
    struct mg_heartbeat_req *req = malloc(sizeof(*req));
    if (!req) {
        rpc_reply(c, ENOMEM, NULL, 0);
        return;
    }
    if (mg_heartbeat_req_dec(p, len, req) != 0) {
        free(req);
        rpc_reply(c, RPC_E_BADREQ, NULL, 0);
        return;
    }
    uint32_t id = req->node_id;
    free(req);
    reply_status(m, c, mg_apply_change(m, do_unregister, &id, NULL));
}

/* ---- MG_WHO_PRIMARY ---- */

static void h_who_primary(struct rpc_call *c, void *arg)
{
    struct mgmtd *m = arg;
    struct mg_primary pr = { 0 };
    pthread_mutex_lock(&m->lock);
    uint64_t now = mg_now_real_ms();
    if (mg_acting(m, now)) {
        pr.node_id = m->o.node_id;
        snprintf(pr.addr, sizeof(pr.addr), "%s", m->self_addr);
        pr.lease_expires_ms = m->my_expires_ms;
    } else if (m->known.node_id && m->known.lease_expires_ms > now) {
        pr = m->known; /* may be us while we wait out the previous lease */
    }
    pthread_mutex_unlock(&m->lock);
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_primary_enc(&wb, &pr);
    reply_enc(c, &wb);
}

int mg_register_handlers(struct mgmtd *m)
{
    struct {
        uint16_t method;
        enum rpc_exec exec;
        rpc_handler_fn fn;
    } table[] = {
        { MG_REGISTER, RPC_EXEC_WORKER, h_register },
        { MG_HEARTBEAT, RPC_EXEC_INLINE, h_heartbeat },
        { MG_GET_ROUTING, RPC_EXEC_INLINE, h_get_routing },
        { MG_CREATE_TABLE, RPC_EXEC_WORKER, h_create_table },
        { MG_SET_TARGET, RPC_EXEC_WORKER, h_set_target },
        { MG_WHO_PRIMARY, RPC_EXEC_INLINE, h_who_primary },
        { MG_UNREGISTER, RPC_EXEC_WORKER, h_unregister },
        { MG_SYNC_DONE, RPC_EXEC_WORKER, h_sync_done },
        { MG_REPORT_DOWN, RPC_EXEC_WORKER, h_report_down },
    };
    for (size_t i = 0; i < ARRAY_SIZE(table); i++)
        if (rpc_server_handle(m->srv, table[i].method, table[i].exec, table[i].fn, m) != 0)
            return -1;
    return 0;
}
