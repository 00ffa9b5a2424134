/* meta_client.c — see meta_client.h. */
#include "client/meta_client.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "client/mgmtd_client.h"
#include "client/reqbuf.h"
#include "client/timer.h"
#include "common/log.h"
#include "common/util.h"
#include "rpc/rpc.h"

#define MC_MAX_SERVERS 64

struct mc {
    struct rpc_client *rpc;
    struct mgc *mgc;
    struct mc_opts o;
    char (*fixed)[VF_MAX_ADDR + 1];
    uint32_t nfixed;
    atomic_uint shift;  /* which server this client uses; bumped on failures */
    struct ctimer *timer;
    uint64_t client_id;         /* random, non-zero: names this instance's calls */
    atomic_uint_fast64_t next_seq;
};

struct mc_pending {
    struct mc *mc;
    uint16_t method;
    struct reqbuf *req;
    mc_done_fn cb;
    void *arg;
    uint64_t deadline_ns;
    uint32_t tries;
    uint32_t backoff_ms;
};

void mc_opts_default(struct mc_opts *o)
{
    *o = (struct mc_opts){ .rpc_timeout_ms = 10000, .op_timeout_ms = 30000 };
}

bool mc_idempotent(uint16_t method)
{
    switch (method) {
    case META_LOOKUP: case META_GETATTR: case META_READDIR: case META_READLINK:
    case META_GETXATTR: case META_LISTXATTR: case META_STATFS: case META_ACCESS:
        return true;
    default:
        return false;
    }
}

struct mc *mc_new(struct rpc_client *rpc, struct mgc *mgc, const struct mc_opts *opts)
{
    struct mc *mc = calloc(1, sizeof(*mc));
    if (mc == NULL)
        return NULL;
    mc->rpc = rpc;
    mc->mgc = mgc;
    mc_opts_default(&mc->o);
    if (opts) {
        if (opts->rpc_timeout_ms)
            mc->o.rpc_timeout_ms = opts->rpc_timeout_ms;
        if (opts->op_timeout_ms)
            mc->o.op_timeout_ms = opts->op_timeout_ms;
        if (opts->addrs && *opts->addrs) {
            mc->fixed = calloc(MC_MAX_SERVERS, sizeof(*mc->fixed));
            if (mc->fixed == NULL) {
                free(mc);
                return NULL;
            }
            const char *s = opts->addrs;
            while (*s && mc->nfixed < MC_MAX_SERVERS) {
                size_t n = strcspn(s, ",");
                if (n > 0 && n <= VF_MAX_ADDR)
                    memcpy(mc->fixed[mc->nfixed++], s, n);
                s += n;
                if (*s == ',')
                    s++;
            }
        }
    }
    mc->o.addrs = NULL;
    unsigned seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (unsigned)now_ns();
    atomic_init(&mc->shift, seed);
    /* A fresh id per instance: a restarted client never reuses a
     * (client, seq) pair that meta still remembers. */
    while (mc->client_id == 0)
        if (getrandom(&mc->client_id, sizeof(mc->client_id), 0) != sizeof(mc->client_id))
            mc->client_id = now_ns() ^ ((uint64_t)seed << 32) ^ (uint64_t)(uintptr_t)mc;
    atomic_init(&mc->next_seq, 1);
    mc->timer = ctimer_new();
    if (mc->timer == NULL) {
        free(mc->fixed);
        free(mc);
        return NULL;
    }
    return mc;
}

void mc_free(struct mc *mc)
{
    if (mc == NULL)
        return;
    ctimer_free(mc->timer);
    free(mc->fixed);
    free(mc);
}

/* The server this client talks to now; false when none is known. */
static bool pick_server(struct mc *mc, char out[VF_MAX_ADDR + 1])
{
    unsigned k = atomic_load(&mc->shift);
    if (mc->fixed) {
        if (mc->nfixed == 0)
            return false;
        snprintf(out, VF_MAX_ADDR + 1, "%s", mc->fixed[k % mc->nfixed]);
        return true;
    }
    struct mgc_routing *rt = mgc_routing(mc->mgc);
    if (rt == NULL)
        return false;
    const struct mg_node *nodes[MC_MAX_SERVERS];
    uint32_t n = mgc_alive_nodes(&rt->r, NODE_META, nodes, MC_MAX_SERVERS);
    if (n)
        snprintf(out, VF_MAX_ADDR + 1, "%s", nodes[k % n]->addr);
    mgc_routing_put(rt);
    return n > 0;
}

static void pending_finish(struct mc_pending *pc, int status, const struct meta_resp *resp)
{
    struct meta_resp empty;
    if (resp == NULL) {
        memset(&empty, 0, sizeof(empty));
        resp = &empty;
    }
    mc_done_fn cb = pc->cb;
    void *arg = pc->arg;
    reqbuf_put(pc->req);
    free(pc);
    cb(arg, status, resp);
}

static void pending_send(struct mc_pending *pc);

static void on_retry(void *arg, int cancelled)
{
    struct mc_pending *pc = arg;
    if (cancelled) {
        pending_finish(pc, EIO, NULL);
        return;
    }
    if (pc->mc->mgc && !pc->mc->fixed)
        mgc_refresh(pc->mc->mgc, 0, 1000);
    pending_send(pc);
}

static void retry_later(struct mc_pending *pc, int status)
{
    uint64_t now = now_ns();
    if (now >= pc->deadline_ns) {
        LOG_WARN("mc", "giving up method=0x%x status=%s", pc->method, vf_strstatus(status));
        pending_finish(pc, EIO, NULL);
        return;
    }
    uint32_t delay = pc->backoff_ms / 2 + (uint32_t)(now_ns() % (pc->backoff_ms / 2 + 1));
    pc->backoff_ms = MIN(pc->backoff_ms * 2, 1000u);
    if (ctimer_after(pc->mc->timer, delay, on_retry, pc) < 0)
        pending_finish(pc, EIO, NULL);
}

static void on_done(void *arg, int status, const void *payload, size_t len)
{
    struct mc_pending *pc = arg;
    struct mc *mc = pc->mc;
    if (status == RPC_E_CONNECT || status == RPC_E_BUSY || status == VF_E_NOT_SERVING ||
        status == RPC_E_CLOSED || status == RPC_E_TIMEOUT) {
        /* move this client to another server; the request is safe to resend
         * (never sent, read-only, or answered from meta's record if it was
         * applied already) */
        atomic_fetch_add(&mc->shift, 1);
        pc->tries++;
        retry_later(pc, status);
        return;
    }
    if (status < 0 || status >= 1000) {
        LOG_DEBUG("mc", "method=0x%x failed status=%s", pc->method, vf_strstatus(status));
        pending_finish(pc, EIO, NULL);
        return;
    }
    if (status > 0) {
        pending_finish(pc, status, NULL);
        return;
    }
    struct meta_resp resp;
    if (len == 0) {
        memset(&resp, 0, sizeof(resp));
    } else if (meta_resp_dec(payload, len, &resp) < 0) {
        LOG_WARN("mc", "undecodable reply method=0x%x len=%zu", pc->method, len);
        pending_finish(pc, EIO, NULL);
        return;
    }
    pending_finish(pc, 0, &resp);
}

static void pending_send(struct mc_pending *pc)
{
    struct mc *mc = pc->mc;
    char addr[VF_MAX_ADDR + 1];
    if (!pick_server(mc, addr)) {
        retry_later(pc, VF_E_NO_ROUTE);
        return;
    }
    uint64_t now = now_ns();
    if (now >= pc->deadline_ns) {
        pending_finish(pc, EIO, NULL);
        return;
    }
    uint64_t left_ms = (pc->deadline_ns - now) / 1000000ull + 1;
    struct rpc_call_opts co = { .timeout_ms = (uint32_t)MIN(left_ms, (uint64_t)mc->o.rpc_timeout_ms) };
    /* pc may be finished and freed by the completion before the call returns */
    struct reqbuf *req = reqbuf_get(pc->req);
    struct iovec iov = { req->wb.data, req->wb.len };
    int rc = rpc_call_async(mc->rpc, addr, pc->method, &iov, 1, &co, on_done, pc);
    reqbuf_put(req);
    if (rc < 0)
        on_done(pc, rc, NULL, 0);
}

void mc_call(struct mc *mc, uint16_t method, const struct meta_req *req, mc_done_fn cb,
             void *arg)
{
    struct mc_pending *pc = calloc(1, sizeof(*pc));
    if (pc == NULL) {
        struct meta_resp empty;
        memset(&empty, 0, sizeof(empty));
        cb(arg, ENOMEM, &empty);
        return;
    }
    *pc = (struct mc_pending){ .mc = mc, .method = method, .cb = cb, .arg = arg,
                               .deadline_ns = now_ns() + (uint64_t)mc->o.op_timeout_ms * 1000000ull,
                               .backoff_ms = 20 };
    pc->req = reqbuf_new();
    if (pc->req && !mc_idempotent(method)) {
        /* every resend of this call carries the same id */
        struct meta_req with_id = *req;
        with_id.req_client = mc->client_id;
        with_id.req_seq = atomic_fetch_add(&mc->next_seq, 1);
        meta_req_enc(&pc->req->wb, &with_id);
    } else if (pc->req) {
        meta_req_enc(&pc->req->wb, req);
    }
    if (pc->req == NULL || pc->req->wb.err) {
        pending_finish(pc, ENOMEM, NULL);
        return;
    }
    pending_send(pc);
}

struct mc_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int status;
    struct meta_resp *resp;
    void *buf;
};

static void waiter_cb(void *arg, int status, const struct meta_resp *resp)
{
    struct mc_waiter *w = arg;
    /* resp points into the RPC payload: copy its data before returning */
    *w->resp = *resp;
    if (status == 0 && resp->data_len) {
        w->buf = malloc(resp->data_len);
        if (w->buf == NULL) {
            status = ENOMEM;
        } else {
            memcpy(w->buf, resp->data, resp->data_len);
            w->resp->data = w->buf;
        }
    }
    pthread_mutex_lock(&w->mu);
    w->status = status;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int mc_call_sync(struct mc *mc, uint16_t method, const struct meta_req *req,
                 struct meta_resp *resp, void **buf)
{
    struct mc_waiter w = { .resp = resp };
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    mc_call(mc, method, req, waiter_cb, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    *buf = w.buf;
    return w.status;
}
