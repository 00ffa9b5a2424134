/* mgmtd_client.c — routing cache and node agent (see mgmtd_client.h).
 *
 * Threads: a refresh thread polls routing every refresh_ms (or at once when
 * kicked); servers also run a heartbeat thread. Both call mgmtd through
 * mgc_call(), which finds the primary: the last known primary first, then
 * every configured address, following VF_E_NOT_PRIMARY redirects.
 *
 * Locks: `lock` guards the fields marked below and is never held across a
 * call; `install_lock` serializes installing a snapshot and running
 * on_routing, so callbacks see versions in increasing order. on_routing and
 * on_lease_lost run on mgc threads (or the mgc_refresh() caller) and must
 * not call mgc_refresh().
 */
#include "client/mgmtd_client.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "rpc/rpc.h"

#define MGC_MAX_ADDRS 16
#define MGC_MAX_REDIRECTS 4
#define MGC_TRY_TIMEOUT_MS 2000u /* one address may not eat the whole budget */

#define MGC_MAX_DOWN 16

struct mgc {
    struct mgc_opts o;
    char addrs[MGC_MAX_ADDRS][VF_MAX_ADDR + 1];
    uint32_t naddrs;
    char addr_list[MGC_MAX_ADDRS * (VF_MAX_ADDR + 2)]; /* for messages */
    char self_addr[VF_MAX_ADDR + 1];
    struct rpc_client *rpc;
    bool own_rpc;
    bool is_server;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* under lock: */
    struct mgc_routing *cur;
    char primary[VF_MAX_ADDR + 1]; /* last known primary, "" = unknown */
    bool stopping;
    bool kick;                     /* refresh routing now */
    bool registered;               /* lease granted; heartbeats renew it */
    bool lease_lost_reported;
    uint32_t lease_ms;
    uint64_t last_renew_ms;        /* monotonic ms when the last renewal was SENT */

    /* under lock: nodes whose connections were refused, to report to mgmtd
     * from the refresh thread (MG_REPORT_DOWN), at most once a second each */
    struct { uint32_t node; uint64_t at_ms; } down[MGC_MAX_DOWN];
    uint32_t ndown;
    uint32_t down_pending[MGC_MAX_DOWN];
    uint32_t ndown_pending;

    uint32_t node_id;              /* atomic */
    pthread_mutex_t install_lock;
    pthread_t refresh_thr, hb_thr;
    bool refresh_started, hb_started;
};

static uint64_t mono_ms(void) { return now_ns() / 1000000u; }

static void send_down_reports(struct mgc *m);

/* Wait on m->wake for up to ms (under m->lock); returns early on a signal. */
static void wait_ms_locked(struct mgc *m, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_cond_timedwait(&m->wake, &m->lock, &ts);
}

static bool is_stopping(struct mgc *m)
{
    pthread_mutex_lock(&m->lock);
    bool s = m->stopping;
    pthread_mutex_unlock(&m->lock);
    return s;
}

/* ---------------- calls to the primary ---------------- */

static bool transient(int rc)
{
    return rc == RPC_E_TIMEOUT || rc == RPC_E_CONNECT || rc == RPC_E_CLOSED ||
           rc == RPC_E_BUSY || rc == RPC_E_PROTO || rc == VF_E_NOT_PRIMARY;
}

/* One request to the primary mgmtd, retried over every address until
 * timeout_ms passes. Returns the status; on 0 *resp and *rlen hold the malloc'd
 * answer (NULL when empty). why gets the last failure when not 0. */
static int mgc_call(struct mgc *m, uint16_t method, const void *req, size_t len,
                    uint32_t timeout_ms, void **resp, size_t *rlen, char *why, size_t whylen)
{
    uint64_t deadline = mono_ms() + timeout_ms;
    int rc = RPC_E_TIMEOUT;
    uint32_t pause_ms = 20;
    if (why && whylen)
        snprintf(why, whylen, "no answer within %u ms", timeout_ms);
    *resp = NULL;
    *rlen = 0;
    for (;;) {
        /* one round: the known primary, then each configured address */
        char hint[VF_MAX_ADDR + 1];
        pthread_mutex_lock(&m->lock);
        snprintf(hint, sizeof(hint), "%s", m->primary);
        pthread_mutex_unlock(&m->lock);
        int redirects = 0;
        for (int i = -1; i < (int)m->naddrs; i++) {
            char addr[VF_MAX_ADDR + 1];
            if (i < 0) {
                if (!hint[0])
                    continue;
                snprintf(addr, sizeof(addr), "%s", hint);
            } else {
                if (!strcmp(m->addrs[i], hint))
                    continue; /* already tried this round */
                snprintf(addr, sizeof(addr), "%s", m->addrs[i]);
            }
        redirected:;
            uint64_t now = mono_ms();
            if (now >= deadline || is_stopping(m))
                return rc == 0 ? RPC_E_TIMEOUT : rc;
            struct rpc_call_opts co = { .timeout_ms = (uint32_t)MIN(deadline - now,
                                                                    MGC_TRY_TIMEOUT_MS) };
            void *p = NULL;
            size_t plen = 0;
            rc = rpc_call_sync(m->rpc, addr, method, req, len, &co, &p, &plen);
            if (rc == VF_E_NOT_PRIMARY) {
                char next[VF_MAX_ADDR + 1] = "";
                if (p && plen && plen <= VF_MAX_ADDR && !memchr(p, 0, plen)) {
                    memcpy(next, p, plen);
                    next[plen] = '\0';
                }
                free(p);
                if (why && whylen)
                    snprintf(why, whylen, "%s: not the primary (%s)", addr,
                             next[0] ? next : "no primary acting yet");
                if (next[0] && strcmp(next, addr) != 0 && redirects++ < MGC_MAX_REDIRECTS) {
                    pthread_mutex_lock(&m->lock);
                    snprintf(m->primary, sizeof(m->primary), "%s", next);
                    pthread_mutex_unlock(&m->lock);
                    LOG_DEBUG("mgc", "redirected from %s to primary %s", addr, next);
                    snprintf(addr, sizeof(addr), "%s", next);
                    goto redirected;
                }
                continue;
            }
            if (transient(rc)) {
                free(p);
                if (why && whylen)
                    snprintf(why, whylen, "mgmtd %s unreachable: %s", addr, vf_strstatus(rc));
                pthread_mutex_lock(&m->lock);
                if (!strcmp(m->primary, addr))
                    m->primary[0] = '\0';
                pthread_mutex_unlock(&m->lock);
                continue;
            }
            /* an answer from the primary (success or its verdict) */
            if (rc == 0) {
                pthread_mutex_lock(&m->lock);
                snprintf(m->primary, sizeof(m->primary), "%s", addr);
                pthread_mutex_unlock(&m->lock);
                *resp = p;
                *rlen = plen;
            } else {
                free(p);
                if (why && whylen)
                    snprintf(why, whylen, "mgmtd %s: %s", addr, vf_strstatus(rc));
            }
            return rc;
        }
        /* nobody answered as primary this round: pause, then go again */
        uint64_t now = mono_ms();
        if (now >= deadline)
            return rc;
        pthread_mutex_lock(&m->lock);
        if (!m->stopping)
            wait_ms_locked(m, MIN(pause_ms, deadline - now));
        pthread_mutex_unlock(&m->lock);
        pause_ms = MIN(pause_ms * 2, 500u);
    }
}

/* ---------------- routing cache ---------------- */

struct mgc_routing *mgc_routing(struct mgc *m)
{
    pthread_mutex_lock(&m->lock);
    struct mgc_routing *r = m->cur;
    if (r)
        __atomic_add_fetch(&r->refs_, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&m->lock);
    return r;
}

void mgc_routing_put(struct mgc_routing *r)
{
    if (r && __atomic_sub_fetch(&r->refs_, 1, __ATOMIC_ACQ_REL) == 0) {
        mg_routing_free(&r->r);
        free(r);
    }
}

static uint64_t cached_version(struct mgc *m)
{
    pthread_mutex_lock(&m->lock);
    uint64_t v = m->cur ? m->cur->r.version : 0;
    pthread_mutex_unlock(&m->lock);
    return v;
}

/* Install a decoded snapshot if it is newer; takes ownership of nr. */
static void install(struct mgc *m, struct mgc_routing *nr)
{
    pthread_mutex_lock(&m->install_lock);
    pthread_mutex_lock(&m->lock);
    struct mgc_routing *old = m->cur;
    bool newer = !old || nr->r.version > old->r.version;
    if (newer) {
        m->cur = nr;
        __atomic_add_fetch(&nr->refs_, 1, __ATOMIC_RELAXED); /* for the callback */
    }
    pthread_mutex_unlock(&m->lock);
    if (!newer) {
        pthread_mutex_unlock(&m->install_lock);
        mgc_routing_put(nr);
        return;
    }
    mgc_routing_put(old);
    LOG_DEBUG("mgc", "routing version=%llu nodes=%u targets=%u chains=%u",
              (unsigned long long)nr->r.version, nr->r.nnodes, nr->r.ntargets, nr->r.nchains);
    if (m->o.on_routing)
        m->o.on_routing(m->o.arg, &nr->r);
    pthread_mutex_unlock(&m->install_lock);
    mgc_routing_put(nr);
}

/* Fetch routing once; 0 (installed or unchanged) or a status. */
static int fetch_routing(struct mgc *m, uint32_t timeout_ms, char *why, size_t whylen)
{
    struct mg_get_routing_req req = { .have_version = cached_version(m) };
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_get_routing_req_enc(&wb, &req);
    void *resp;
    size_t rlen;
    int rc = wb.err ? ENOMEM
                    : mgc_call(m, MG_GET_ROUTING, wb.data, wb.len, timeout_ms, &resp, &rlen, why,
                               whylen);
    wb_free(&wb);
    if (rc != 0 || rlen == 0) {
        if (rc == 0)
            free(resp);
        return rc;
    }
    struct mgc_routing *nr = calloc(1, sizeof(*nr));
    if (!nr) {
        free(resp);
        return ENOMEM;
    }
    nr->refs_ = 1;
    if (mg_routing_dec(resp, rlen, &nr->r) != 0) {
        free(resp);
        free(nr);
        if (why && whylen)
            snprintf(why, whylen, "mgmtd sent routing that does not decode");
        LOG_WARN("mgc", "mgmtd sent a routing snapshot that does not decode (%zu bytes)", rlen);
        return EBADMSG;
    }
    free(resp);
    install(m, nr);
    return 0;
}

static void kick_refresh(struct mgc *m);

int mgc_refresh(struct mgc *m, uint64_t min_version, uint32_t timeout_ms)
{
    if (timeout_ms == 0) {
        /* never block: let the refresh thread fetch */
        if (min_version && cached_version(m) >= min_version)
            return 0;
        kick_refresh(m);
        return RPC_E_TIMEOUT;
    }
    uint64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        if (min_version && cached_version(m) >= min_version)
            return 0;
        uint64_t now = mono_ms();
        if (now >= deadline)
            return RPC_E_TIMEOUT;
        int rc = fetch_routing(m, (uint32_t)(deadline - now), NULL, 0);
        if (rc != 0)
            return rc;
        if (!min_version || cached_version(m) >= min_version)
            return 0;
        /* mgmtd has not reached min_version yet: look again shortly */
        pthread_mutex_lock(&m->lock);
        if (!m->stopping)
            wait_ms_locked(m, MIN(50u, deadline - mono_ms() + 1));
        bool stop = m->stopping;
        pthread_mutex_unlock(&m->lock);
        if (stop)
            return RPC_E_SHUTDOWN;
    }
}

static void kick_refresh(struct mgc *m)
{
    pthread_mutex_lock(&m->lock);
    m->kick = true;
    pthread_cond_broadcast(&m->wake);
    pthread_mutex_unlock(&m->lock);
}

static void *refresh_main(void *arg)
{
    struct mgc *m = arg;
    uint32_t period = m->o.refresh_ms;
    pthread_mutex_lock(&m->lock);
    while (!m->stopping) {
        if (!m->kick)
            wait_ms_locked(m, period);
        if (m->stopping)
            break;
        m->kick = false;
        pthread_mutex_unlock(&m->lock);
        send_down_reports(m);
        char why[160];
        int rc = fetch_routing(m, MAX(period, 1000u), why, sizeof(why));
        if (rc != 0 && rc != RPC_E_SHUTDOWN)
            LOG_DEBUG("mgc", "routing refresh failed: %s", why);
        pthread_mutex_lock(&m->lock);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* ---------------- node agent ---------------- */

static uint32_t fill_reports(struct mgc *m, struct mg_target_report *out, uint32_t max)
{
    if (!m->o.report_targets)
        return 0;
    uint32_t n = m->o.report_targets(m->o.arg, out, max);
    return MIN(n, max);
}

/* Register (or re-register) this node. 0 or status (why filled). */
static int do_register(struct mgc *m, uint32_t timeout_ms, char *why, size_t whylen)
{
    struct mg_register_req *req = calloc(1, sizeof(*req));
    if (!req)
        return ENOMEM;
    req->type = m->o.type;
    req->node_id = __atomic_load_n(&m->node_id, __ATOMIC_RELAXED);
    snprintf(req->addr, sizeof(req->addr), "%s", m->self_addr);
    req->ntargets = fill_reports(m, req->targets, ARRAY_SIZE(req->targets));
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_register_req_enc(&wb, req);
    free(req);
    void *resp;
    size_t rlen;
    uint64_t sent = mono_ms();
    int rc = wb.err ? ENOMEM
                    : mgc_call(m, MG_REGISTER, wb.data, wb.len, timeout_ms, &resp, &rlen, why,
                               whylen);
    wb_free(&wb);
    if (rc != 0)
        return rc;
    struct mg_register_resp r;
    int drc = mg_register_resp_dec(resp, rlen, &r);
    free(resp);
    if (drc != 0 || r.lease_ms == 0) {
        snprintf(why, whylen, "mgmtd sent a registration answer that does not decode");
        return EBADMSG;
    }
    __atomic_store_n(&m->node_id, r.node_id, __ATOMIC_RELAXED);
    pthread_mutex_lock(&m->lock);
    m->registered = true;
    m->lease_lost_reported = false;
    m->lease_ms = r.lease_ms;
    m->last_renew_ms = sent;
    pthread_mutex_unlock(&m->lock);
    if (r.routing_version > cached_version(m))
        kick_refresh(m);
    return 0;
}

/* Lease fencing: no renewal SENT within the last T/2 (or mgmtd said the
 * lease is gone: `dropped`) → stop serving. */
static void check_lease(struct mgc *m, bool dropped)
{
    pthread_mutex_lock(&m->lock);
    bool lost = !m->lease_lost_reported && m->lease_ms &&
                (dropped || mono_ms() >= m->last_renew_ms + m->lease_ms / 2);
    if (lost) {
        m->lease_lost_reported = true;
        m->registered = false; /* next contact registers again */
    }
    pthread_mutex_unlock(&m->lock);
    if (lost) {
        LOG_WARN("mgc", "lease lost node=%u: %s; stop serving until re-registered",
                 __atomic_load_n(&m->node_id, __ATOMIC_RELAXED),
                 dropped ? "mgmtd dropped it" : "no renewal for T/2");
        if (m->o.on_lease_lost)
            m->o.on_lease_lost(m->o.arg);
    }
}

static int heartbeat_once(struct mgc *m, uint32_t timeout_ms)
{
    struct mg_heartbeat_req *req = calloc(1, sizeof(*req));
    if (!req)
        return ENOMEM;
    req->node_id = __atomic_load_n(&m->node_id, __ATOMIC_RELAXED);
    req->routing_version = cached_version(m);
    req->ntargets = fill_reports(m, req->targets, ARRAY_SIZE(req->targets));
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_heartbeat_req_enc(&wb, req);
    free(req);
    void *resp;
    size_t rlen;
    uint64_t sent = mono_ms();
    char why[160];
    int rc = wb.err ? ENOMEM
                    : mgc_call(m, MG_HEARTBEAT, wb.data, wb.len, timeout_ms, &resp, &rlen, why,
                               sizeof(why));
    wb_free(&wb);
    if (rc != 0) {
        LOG_DEBUG("mgc", "heartbeat failed: %s", why);
        return rc;
    }
    struct mg_heartbeat_resp r;
    int drc = mg_heartbeat_resp_dec(resp, rlen, &r);
    free(resp);
    if (drc != 0)
        return EBADMSG;
    pthread_mutex_lock(&m->lock);
    if (m->registered) /* a lease already given up is not revived by a late answer */
        m->last_renew_ms = sent;
    if (r.lease_ms)
        m->lease_ms = r.lease_ms;
    pthread_mutex_unlock(&m->lock);
    if (r.routing_version > cached_version(m))
        kick_refresh(m);
    return 0;
}

static void *heartbeat_main(void *arg)
{
    struct mgc *m = arg;
    pthread_mutex_lock(&m->lock);
    while (!m->stopping) {
        uint32_t interval = MAX(10u, MIN(m->lease_ms / 6, 1000u));
        wait_ms_locked(m, interval);
        if (m->stopping)
            break;
        bool registered = m->registered;
        pthread_mutex_unlock(&m->lock);
        uint32_t call_ms = MAX(interval, 100u);
        if (!registered) {
            char why[160];
            int rc = do_register(m, call_ms, why, sizeof(why));
            if (rc == 0)
                LOG_INFO("mgc", "re-registered node=%u with mgmtd; lease valid again",
                         __atomic_load_n(&m->node_id, __ATOMIC_RELAXED));
            else
                LOG_DEBUG("mgc", "re-registration failed: %s", why);
        } else {
            int rc = heartbeat_once(m, call_ms);
            if (rc == VF_E_NO_LEASE) {
                LOG_WARN("mgc", "mgmtd dropped the lease of node=%u; registering again",
                         __atomic_load_n(&m->node_id, __ATOMIC_RELAXED));
                check_lease(m, true);
                char why[160];
                if (do_register(m, call_ms, why, sizeof(why)) == 0)
                    LOG_INFO("mgc", "re-registered node=%u with mgmtd",
                             __atomic_load_n(&m->node_id, __ATOMIC_RELAXED));
            }
        }
        check_lease(m, false);
        pthread_mutex_lock(&m->lock);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* ---------------- lifecycle ---------------- */

static int parse_addrs(struct mgc *m, const char *list, char *err, size_t errlen)
{
    const char *p = list ? list : "";
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t n = strcspn(p, ", ");
        if (!n)
            break;
        if (m->naddrs == MGC_MAX_ADDRS || n > VF_MAX_ADDR) {
            snprintf(err, errlen, "mgmtd address list too long: %s", list);
            return -1;
        }
        memcpy(m->addrs[m->naddrs], p, n);
        m->addrs[m->naddrs][n] = '\0';
        m->naddrs++;
        p += n;
    }
    if (!m->naddrs) {
        snprintf(err, errlen, "no mgmtd address given");
        return -1;
    }
    size_t off = 0;
    for (uint32_t i = 0; i < m->naddrs; i++)
        off += (size_t)snprintf(m->addr_list + off, sizeof(m->addr_list) - off, "%s%s",
                                i ? "," : "", m->addrs[i]);
    return 0;
}

static void stop_threads(struct mgc *m)
{
    pthread_mutex_lock(&m->lock);
    m->stopping = true;
    pthread_cond_broadcast(&m->wake);
    pthread_mutex_unlock(&m->lock);
    if (m->refresh_started)
        pthread_join(m->refresh_thr, NULL);
    if (m->hb_started)
        pthread_join(m->hb_thr, NULL);
}

static void free_mgc(struct mgc *m)
{
    mgc_routing_put(m->cur);
    if (m->own_rpc)
        rpc_client_free(m->rpc);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->install_lock);
    pthread_cond_destroy(&m->wake);
    free(m);
}

struct mgc *mgc_start(const struct mgc_opts *o, char *err, size_t errlen)
{
    struct mgc *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->o = *o;
    if (!m->o.refresh_ms)
        m->o.refresh_ms = 1000;
    if (!m->o.connect_timeout_ms)
        m->o.connect_timeout_ms = 10000;
    if (!m->o.type)
        m->o.type = NODE_CLIENT;
    m->is_server = m->o.type != NODE_CLIENT;
    m->node_id = o->node_id;
    snprintf(m->self_addr, sizeof(m->self_addr), "%s", o->addr ? o->addr : "");
    m->o.mgmtd_addrs = NULL; /* not kept: the caller's string may go away */
    m->o.addr = NULL;
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->install_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (parse_addrs(m, o->mgmtd_addrs, err, errlen) < 0) {
        free_mgc(m);
        return NULL;
    }
    m->rpc = o->rpc;
    if (!m->rpc) {
        struct rpc_client_opts co = { .connect_timeout_ms = MIN(m->o.connect_timeout_ms, 2000u),
                                      .name = "mgc" };
        m->rpc = rpc_client_new(&co);
        m->own_rpc = true;
        if (!m->rpc) {
            snprintf(err, errlen, "cannot create the RPC client");
            free_mgc(m);
            return NULL;
        }
    }

    uint64_t deadline = mono_ms() + m->o.connect_timeout_ms;
    char why[200] = "";
    int rc = 0;
    if (m->is_server) {
        rc = do_register(m, m->o.connect_timeout_ms, why, sizeof(why));
        if (rc != 0) {
            if (transient(rc) || rc == RPC_E_TIMEOUT)
                snprintf(err, errlen, "%s (tried %s for %u ms)", why, m->addr_list,
                         m->o.connect_timeout_ms);
            else
                snprintf(err, errlen, "registration refused: %s", why);
            free_mgc(m);
            return NULL;
        }
    }
    uint64_t now = mono_ms();
    rc = fetch_routing(m, deadline > now ? (uint32_t)(deadline - now) : 1000u, why, sizeof(why));
    if (rc == 0 && !m->cur)
        rc = VF_E_NO_ROUTE, snprintf(why, sizeof(why), "mgmtd sent no routing");
    if (rc != 0) {
        snprintf(err, errlen, "%s%s (tried %s for %u ms)",
                 transient(rc) ? "" : "cannot fetch routing: ", why, m->addr_list,
                 m->o.connect_timeout_ms);
        free_mgc(m);
        return NULL;
    }
    uint64_t first_version = m->cur->r.version; /* m->cur may change once threads run */
    if (pthread_create(&m->refresh_thr, NULL, refresh_main, m) != 0) {
        snprintf(err, errlen, "cannot start the routing thread");
        free_mgc(m);
        return NULL;
    }
    m->refresh_started = true;
    if (m->is_server) {
        if (pthread_create(&m->hb_thr, NULL, heartbeat_main, m) != 0) {
            snprintf(err, errlen, "cannot start the heartbeat thread");
            stop_threads(m);
            free_mgc(m);
            return NULL;
        }
        m->hb_started = true;
    }
    LOG_INFO("mgc", "connected to mgmtd %s type=%s node=%u routing_version=%llu", m->addr_list,
             vf_node_type_name(m->o.type), mgc_node_id(m), (unsigned long long)first_version);
    return m;
}

void mgc_stop(struct mgc *m)
{
    if (!m)
        return;
    stop_threads(m);
    if (m->is_server) {
        pthread_mutex_lock(&m->lock);
        bool registered = m->registered;
        m->stopping = false; /* let the farewell call through */
        pthread_mutex_unlock(&m->lock);
        if (registered) {
            struct mg_heartbeat_req *req = calloc(1, sizeof(*req));
            if (req) {
                req->node_id = m->node_id;
                struct wbuf wb;
                wb_init(&wb, 0);
                mg_heartbeat_req_enc(&wb, req);
                free(req);
                void *resp;
                size_t rlen;
                char why[160];
                int rc = wb.err ? ENOMEM
                                : mgc_call(m, MG_UNREGISTER, wb.data, wb.len, 1000, &resp, &rlen,
                                           why, sizeof(why));
                wb_free(&wb);
                if (rc == 0) {
                    free(resp);
                    LOG_INFO("mgc", "node %u left the cluster", m->node_id);
                } else {
                    LOG_WARN("mgc", "could not unregister node %u: %s", m->node_id, why);
                }
            }
        }
    }
    free_mgc(m);
}

uint32_t mgc_node_id(const struct mgc *m) { return __atomic_load_n(&m->node_id, __ATOMIC_RELAXED); }

bool mgc_lease_valid(const struct mgc *m)
{
    if (!m->is_server)
        return true; /* clients hold no lease */
    struct mgc *mm = (struct mgc *)m; /* the lock is not part of the logical state */
    pthread_mutex_lock(&mm->lock);
    bool ok = mm->registered && mono_ms() < mm->last_renew_ms + mm->lease_ms / 2;
    pthread_mutex_unlock(&mm->lock);
    return ok;
}

/* ---------------- lookups (the snapshot's own, in proto) ---------------- */

const struct mg_chain *mgc_find_chain(const struct mg_routing *r, uint32_t chain_id)
{
    return mg_routing_chain(r, chain_id);
}

const struct mg_target *mgc_find_target(const struct mg_routing *r, uint32_t target_id)
{
    return mg_routing_target(r, target_id);
}

const struct mg_node *mgc_find_node(const struct mg_routing *r, uint32_t node_id)
{
    return mg_routing_node(r, node_id);
}

const struct mg_table *mgc_find_table(const struct mg_routing *r, uint32_t table_id)
{
    return mg_routing_table(r, table_id);
}

const char *mgc_target_addr(const struct mg_routing *r, uint32_t target_id)
{
    return mg_routing_target_addr(r, target_id);
}

uint32_t mgc_alive_nodes(const struct mg_routing *r, uint8_t type, const struct mg_node **out,
                         uint32_t max)
{
    uint32_t n = 0;
    for (uint32_t i = 0; r && i < r->nnodes && n < max; i++)
        if (r->nodes[i].type == type && r->nodes[i].alive)
            out[n++] = &r->nodes[i];
    return n;
}

/* ---------------- admin ---------------- */

int mgc_create_table(struct mgc *m, const struct mg_create_table_req *req,
                     struct mg_create_table_resp *resp)
{
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_create_table_req_enc(&wb, req);
    void *p;
    size_t plen;
    char why[160];
    int rc = wb.err ? ENOMEM
                    : mgc_call(m, MG_CREATE_TABLE, wb.data, wb.len, 10000, &p, &plen, why,
                               sizeof(why));
    wb_free(&wb);
    if (rc != 0)
        return rc;
    rc = mg_create_table_resp_dec(p, plen, resp) == 0 ? 0 : EBADMSG;
    free(p);
    if (rc == 0)
        kick_refresh(m);
    return rc;
}

/* A call whose answer is empty and changes the routing: refresh after. */
static int call_and_refresh(struct mgc *m, uint16_t method, struct wbuf *wb)
{
    void *p;
    size_t plen;
    char why[160];
    int rc = wb->err ? ENOMEM
                     : mgc_call(m, method, wb->data, wb->len, 10000, &p, &plen, why, sizeof(why));
    wb_free(wb);
    if (rc == 0) {
        free(p);
        kick_refresh(m);
    }
    return rc;
}

int mgc_set_target(struct mgc *m, uint32_t target_id, uint8_t state)
{
    struct mg_set_target_req req = { .target_id = target_id, .state = state };
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_set_target_req_enc(&wb, &req);
    return call_and_refresh(m, MG_SET_TARGET, &wb);
}

void mgc_report_down(struct mgc *m, uint32_t node_id)
{
    if (!m || node_id == 0)
        return;
    uint64_t now = mono_ms();
    pthread_mutex_lock(&m->lock);
    int slot = -1, old = -1;
    for (uint32_t i = 0; i < m->ndown; i++) {
        if (m->down[i].node == node_id)
            slot = (int)i;
        else if (old < 0 && now - m->down[i].at_ms >= 1000)
            old = (int)i; /* its report is done: the entry can be reused */
    }
    if (slot >= 0 && now - m->down[slot].at_ms < 1000)
        slot = -2; /* reported within the last second */
    else if (slot < 0)
        slot = m->ndown < MGC_MAX_DOWN ? (int)m->ndown++ : old;
    if (slot >= 0 && m->ndown_pending < MGC_MAX_DOWN) {
        m->down[slot].node = node_id;
        m->down[slot].at_ms = now;
        m->down_pending[m->ndown_pending++] = node_id;
        m->kick = true;
        pthread_cond_broadcast(&m->wake);
    }
    pthread_mutex_unlock(&m->lock);
}

/* Refresh thread: tell mgmtd about refused connections before fetching the
 * routing that may follow from them. */
static void send_down_reports(struct mgc *m)
{
    uint32_t ids[MGC_MAX_DOWN];
    pthread_mutex_lock(&m->lock);
    uint32_t n = m->ndown_pending;
    memcpy(ids, m->down_pending, n * sizeof(ids[0]));
    m->ndown_pending = 0;
    pthread_mutex_unlock(&m->lock);
    for (uint32_t i = 0; i < n; i++) {
        struct mg_report_down_req req = { ids[i], __atomic_load_n(&m->node_id, __ATOMIC_RELAXED) };
        struct wbuf wb;
        wb_init(&wb, 0);
        mg_report_down_req_enc(&wb, &req);
        void *p = NULL;
        size_t plen;
        char why[160];
        int rc = wb.err ? ENOMEM
                        : mgc_call(m, MG_REPORT_DOWN, wb.data, wb.len, 2000, &p, &plen, why,
                                   sizeof(why));
        wb_free(&wb);
        free(p);
        LOG_DEBUG("mgc", "reported node %u refusing connections: %s", ids[i],
                  rc == 0 ? "taken out" : vf_strstatus(rc));
    }
}

int mgc_sync_done(struct mgc *m, const struct mg_sync_done_req *req)
{
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_sync_done_req_enc(&wb, req);
    return call_and_refresh(m, MG_SYNC_DONE, &wb);
}
