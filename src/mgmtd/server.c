/* server.c — mgmtd lifecycle, primary election and node lease checks (see
 * mgmtd.h); the RPC methods live in handlers.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "kv/kv.h"
#include "mgmtd/server_internal.h"
#include "mgmtd/store.h"
#include "rpc/rpc.h"

uint64_t mg_now_real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t mg_now_mono_ms(void) { return now_ns() / 1000000u; }

bool mg_acting(const struct mgmtd *m, uint64_t now_real_ms)
{
    return m->holder && m->loaded && now_real_ms < m->my_expires_ms;
}

void routing_blob_put(struct routing_blob *b)
{
    if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(b);
}

/* Rebuild the published snapshot from m->st. Under m->lock. */
static void publish_locked(struct mgmtd *m)
{
    struct wbuf wb;
    wb_init(&wb, 0);
    st_encode_routing(&m->st, m->o.node_id, &wb);
    struct routing_blob *b = wb.err ? NULL : malloc(sizeof(*b) + wb.len);
    if (!b) {
        LOG_ERROR("mgmtd", "cannot encode the routing snapshot version=%llu",
                  (unsigned long long)m->st.version);
        wb_free(&wb);
        return; /* the previous snapshot stays published */
    }
    b->refs = 1;
    b->version = m->st.version;
    b->len = wb.len;
    memcpy(b->data, wb.data, wb.len);
    wb_free(&wb);
    routing_blob_put(m->routing);
    m->routing = b;
}

/* Stop acting as primary and forget the state (a later term reloads it). */
static void step_down_locked(struct mgmtd *m, const char *why)
{
    if (m->holder || m->loaded)
        LOG_WARN("mgmtd", "stepping down as primary node=%u: %s", m->o.node_id, why);
    m->holder = false;
    m->loaded = false;
    st_free(&m->st);
    routing_blob_put(m->routing);
    m->routing = NULL;
}

int mg_apply_change(struct mgmtd *m, mg_mutate_fn mutate, void *arg, uint64_t *version_out)
{
    pthread_mutex_lock(&m->change_lock);
    pthread_mutex_lock(&m->lock);
    if (!mg_acting(m, mg_now_real_ms())) {
        pthread_mutex_unlock(&m->lock);
        pthread_mutex_unlock(&m->change_lock);
        return VF_E_NOT_PRIMARY;
    }
    uint64_t before = m->st.version;
    int rc = mutate(m, &m->st, arg);
    if (rc != 0 || m->st.version == before) {
        if (version_out)
            *version_out = m->routing ? m->routing->version : m->st.version;
        pthread_mutex_unlock(&m->lock);
        pthread_mutex_unlock(&m->change_lock);
        return rc;
    }
    struct wbuf batch;
    wb_init(&batch, 0);
    store_batch_state(&m->st, &batch);
    pthread_mutex_unlock(&m->lock);

    rc = store_commit(m->kv, &batch, m->o.node_id, m->self_addr, mg_now_real_ms());
    wb_free(&batch);

    pthread_mutex_lock(&m->lock);
    if (rc != 0) {
        step_down_locked(m, rc == EPERM ? "lease lost (commit fenced)" : "KV commit failed");
        rc = VF_E_NOT_PRIMARY;
    } else {
        publish_locked(m);
        if (version_out)
            *version_out = m->st.version;
    }
    pthread_mutex_unlock(&m->lock);
    pthread_mutex_unlock(&m->change_lock);
    return rc;
}

/* ---- election ---- */

static void run_election(struct mgmtd *m)
{
    struct mg_primary h;
    bool was_absent = false;
    uint64_t now = mg_now_real_ms();
    int rc = store_elect(m->kv, m->o.node_id, m->self_addr, m->o.primary_lease_ms, now, &h,
                         &was_absent);
    pthread_mutex_lock(&m->lock);
    if (rc != 0) {
        LOG_WARN("mgmtd", "election round failed: KV error");
        if (m->holder && mg_now_real_ms() >= m->my_expires_ms)
            step_down_locked(m, "lease expired without renewal");
        pthread_mutex_unlock(&m->lock);
        return;
    }
    m->known = h;
    bool mine = h.node_id == m->o.node_id && strcmp(h.addr, m->self_addr) == 0;
    if (mine) {
        if (!m->holder) {
            m->holder = true;
            m->loaded = false;
            m->active_at_ms = was_absent ? now : now + m->o.primary_lease_ms;
            LOG_INFO("mgmtd", "took the primary lease node=%u addr=%s acting_in_ms=%llu",
                     m->o.node_id, m->self_addr,
                     (unsigned long long)(m->active_at_ms - now));
        }
        m->my_expires_ms = h.lease_expires_ms;
    } else if (m->holder) {
        step_down_locked(m, "another mgmtd holds the primary lease");
    }
    pthread_mutex_unlock(&m->lock);
}

/* Become the acting primary: reload the state, give every live node a fresh
 * lease (they could not reach us while we waited), bump the version. */
static void activate(struct mgmtd *m)
{
    pthread_mutex_lock(&m->change_lock);
    struct mg_state st;
    st_init(&st);
    int rc = store_load(m->kv, &st);
    if (rc != 0) {
        LOG_ERROR("mgmtd", "cannot load the cluster state from the KV store: %s", strerror(rc));
        st_free(&st);
        pthread_mutex_unlock(&m->change_lock);
        return;
    }
    uint64_t now_real = mg_now_real_ms(), now_mono = mg_now_mono_ms();
    for (uint32_t i = 0; i < st.nnodes; i++) {
        st.node_last_hb_ms[i] = now_mono;
        st.nodes[i].lease_expires_ms = st.nodes[i].alive ? now_real + m->o.lease_ms : 0;
    }
    st.version++;
    struct wbuf batch;
    wb_init(&batch, 0);
    store_batch_state(&st, &batch);
    rc = store_commit(m->kv, &batch, m->o.node_id, m->self_addr, now_real);
    wb_free(&batch);
    pthread_mutex_lock(&m->lock);
    if (rc != 0) {
        st_free(&st);
        step_down_locked(m, "could not commit the new term");
    } else if (m->holder) {
        st_free(&m->st);
        m->st = st;
        m->loaded = true;
        publish_locked(m);
        LOG_INFO("mgmtd", "acting as primary node=%u addr=%s routing_version=%llu nodes=%u "
                 "targets=%u chains=%u tables=%u", m->o.node_id, m->self_addr,
                 (unsigned long long)st.version, st.nnodes, st.ntargets, st.nchains, st.ntables);
    } else {
        st_free(&st);
    }
    pthread_mutex_unlock(&m->lock);
    pthread_mutex_unlock(&m->change_lock);
}

/* ---- node leases ---- */

struct expire_arg {
    uint32_t node_id;
};

static int expire_node(struct mgmtd *m, struct mg_state *st, void *arg)
{
    struct expire_arg *a = arg;
    struct mg_node *n = st_find_node(st, a->node_id);
    if (!n || !n->alive)
        return 0;
    /* a heartbeat may have arrived since the scan: check again */
    uint64_t now = mg_now_mono_ms();
    uint64_t last = st->node_last_hb_ms[n - st->nodes];
    if (now <= last + m->o.lease_ms)
        return 0;
    LOG_WARN("mgmtd", "node %u (%s) lost its lease: silent for %llu ms > lease %u ms", n->id,
             n->addr, (unsigned long long)(now - last), m->o.lease_ms);
    return st_node_down(st, a->node_id);
}

static void check_leases(struct mgmtd *m)
{
    uint32_t ids[256];
    pthread_mutex_lock(&m->lock);
    uint32_t n = mg_acting(m, mg_now_real_ms())
                     ? st_expired_nodes(&m->st, m->o.lease_ms, mg_now_mono_ms(), ids, 256)
                     : 0;
    pthread_mutex_unlock(&m->lock);
    for (uint32_t i = 0; i < n; i++) {
        struct expire_arg a = { ids[i] };
        mg_apply_change(m, expire_node, &a, NULL);
    }
}

static void *background(void *arg)
{
    struct mgmtd *m = arg;
    uint32_t check_ms = MAX(50u, MIN(1000u, m->o.lease_ms / 4));
    uint64_t next_election = 0, next_check = 0;
    pthread_mutex_lock(&m->lock);
    while (!m->stopping) {
        pthread_mutex_unlock(&m->lock);
        uint64_t now = mg_now_mono_ms();
        if (now >= next_election) {
            run_election(m);
            next_election = now + m->o.election_ms;
        }
        pthread_mutex_lock(&m->lock);
        bool want_activate = m->holder && !m->loaded && mg_now_real_ms() >= m->active_at_ms;
        uint64_t active_in = m->holder && !m->loaded && m->active_at_ms > mg_now_real_ms()
                                 ? m->active_at_ms - mg_now_real_ms()
                                 : UINT64_MAX;
        pthread_mutex_unlock(&m->lock);
        if (want_activate)
            activate(m);
        now = mg_now_mono_ms();
        if (now >= next_check) {
            check_leases(m);
            next_check = now + check_ms;
        }
        now = mg_now_mono_ms();
        uint64_t sleep_ms = MIN(next_election, next_check) > now
                                ? MIN(next_election, next_check) - now : 1;
        if (active_in != UINT64_MAX) /* +1 would wrap to 0: a busy loop */
            sleep_ms = MIN(sleep_ms, active_in + 1);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + sleep_ms * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&m->lock);
        if (!m->stopping)
            pthread_cond_timedwait(&m->wake, &m->lock, &ts);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* ---- lifecycle ---- */

static void derive_advertise(struct mgmtd *m, uint16_t port)
{
    if (m->o.advertise && *m->o.advertise) {
        snprintf(m->self_addr, sizeof(m->self_addr), "%s", m->o.advertise);
        return;
    }
    char host[VF_MAX_ADDR + 1];
    snprintf(host, sizeof(host), "%s", m->o.listen);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    if (!*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "[::]") || !strcmp(host, "::")) {
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "127.0.0.1");
        host[sizeof(host) - 1] = '\0';
    }
    /* at most 56 host bytes leave room for ":port" */
    snprintf(m->self_addr, sizeof(m->self_addr), "%.56s:%u", host, (unsigned)port);
}

static void free_mgmtd(struct mgmtd *m)
{
    if (m->srv)
        rpc_server_free(m->srv);
    if (m->own_kv && m->kv)
        kv_close(m->kv);
    st_free(&m->st);
    routing_blob_put(m->routing);
    pthread_mutex_destroy(&m->change_lock);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->wake);
    free(m);
}

struct mgmtd *mgmtd_start(const struct mgmtd_opts *o, char *err, size_t errlen)
{
    struct mgmtd *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->o = *o;
    if (!m->o.node_id)
        m->o.node_id = 1;
    if (!m->o.lease_ms)
        m->o.lease_ms = MGMTD_DEFAULT_LEASE_MS;
    if (!m->o.election_ms)
        m->o.election_ms = MGMTD_DEFAULT_ELECTION_MS;
    if (!m->o.primary_lease_ms)
        m->o.primary_lease_ms = MGMTD_DEFAULT_PRIMARY_LEASE_MS;
    if (m->o.loop_threads <= 0)
        m->o.loop_threads = 1;
    if (m->o.worker_threads <= 0)
        m->o.worker_threads = 2;
    pthread_mutex_init(&m->change_lock, NULL);
    pthread_mutex_init(&m->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->wake, &ca);
    pthread_condattr_destroy(&ca);
    st_init(&m->st);

    if (m->o.primary_lease_ms < 2 * m->o.election_ms) {
        snprintf(err, errlen, "primary_lease_ms (%u) must be at least 2 x election_ms (%u)",
                 m->o.primary_lease_ms, m->o.election_ms);
        goto fail;
    }
    if (!m->o.listen || !*m->o.listen) {
        snprintf(err, errlen, "no listen address");
        goto fail;
    }
    if (o->kv) {
        m->kv = o->kv;
    } else {
        char kerr[256] = "";
        if (!o->kv_uri || !*o->kv_uri) {
            snprintf(err, errlen, "no KV store configured (kv = lmdb:PATH)");
            goto fail;
        }
        m->kv = kv_open(o->kv_uri, NULL, kerr, sizeof(kerr));
        if (!m->kv) {
            snprintf(err, errlen, "cannot open KV store %s: %s", o->kv_uri, kerr);
            goto fail;
        }
        m->own_kv = true;
    }
    struct rpc_server_opts so = {
        .listen = m->o.listen, .loop_threads = m->o.loop_threads,
        .worker_threads = m->o.worker_threads, .name = "mgmtd",
    };
    m->srv = rpc_server_new(&so);
    if (!m->srv || mg_register_handlers(m) != 0) {
        snprintf(err, errlen, "cannot create the RPC server");
        goto fail;
    }
    int rc = rpc_server_start(m->srv);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", m->o.listen, strerror(-rc));
        goto fail;
    }
    pthread_mutex_lock(&m->lock); /* handlers may already read self_addr */
    derive_advertise(m, rpc_server_port(m->srv));
    pthread_mutex_unlock(&m->lock);
    /* one election round before returning, so a standby can redirect at once */
    run_election(m);
    if (pthread_create(&m->thread, NULL, background, m) != 0) {
        snprintf(err, errlen, "cannot start the background thread");
        rpc_server_stop(m->srv, 0);
        goto fail;
    }
    m->thread_started = true;
    LOG_INFO("mgmtd", "mgmtd started node=%u addr=%s lease_ms=%u election_ms=%u "
             "primary_lease_ms=%u", m->o.node_id, m->self_addr, m->o.lease_ms,
             m->o.election_ms, m->o.primary_lease_ms);
    return m;
fail:
    free_mgmtd(m);
    return NULL;
}

void mgmtd_stop(struct mgmtd *m)
{
    if (!m)
        return;
    rpc_server_stop(m->srv, 1000);
    pthread_mutex_lock(&m->lock);
    m->stopping = true;
    pthread_cond_broadcast(&m->wake);
    pthread_mutex_unlock(&m->lock);
    if (m->thread_started)
        pthread_join(m->thread, NULL);
    pthread_mutex_lock(&m->lock);
    bool was_holder = m->holder;
    step_down_locked(m, "shutting down");
    pthread_mutex_unlock(&m->lock);
    if (was_holder)
        store_release(m->kv, m->o.node_id, m->self_addr, mg_now_real_ms());
    LOG_INFO("mgmtd", "mgmtd stopped node=%u", m->o.node_id);
    free_mgmtd(m);
}

const char *mgmtd_addr(const struct mgmtd *m) { return m->self_addr; }

bool mgmtd_is_primary(struct mgmtd *m)
{
    pthread_mutex_lock(&m->lock);
    bool r = mg_acting(m, mg_now_real_ms());
    pthread_mutex_unlock(&m->lock);
    return r;
}

uint64_t mgmtd_routing_version(struct mgmtd *m)
{
    pthread_mutex_lock(&m->lock);
    uint64_t v = mg_acting(m, mg_now_real_ms()) && m->routing ? m->routing->version : 0;
    pthread_mutex_unlock(&m->lock);
    return v;
}
