/* mgmtd_codec.c — codecs of the cluster manager messages (mgmtd_proto.h). */
#include <stdlib.h>
#include <string.h>

#include "proto/codec_internal.h"
#include "proto/mgmtd_proto.h"

/* Wire sizes of the smallest encoding of each repeated item; they bound
 * counts by the bytes actually present before anything is allocated. */
#define NODE_MIN_BYTES (4 + 1 + 1 + 4 + 8)
#define TARGET_BYTES (4 + 4 + 4 + 1 + 8 + 8)
#define CHAIN_MIN_BYTES (4 + 8 + 4)
#define TABLE_MIN_BYTES (4 + 8 + 4 + 4)
#define REPORT_BYTES (4 + 1 + 8 + 8)

/* Sane maxima of a routing snapshot, far above any real cluster. */
#define MG_MAX_NODES 65536u
#define MG_MAX_TARGETS (1u << 20)
#define MG_MAX_CHAINS (1u << 20)
#define MG_MAX_TABLES 4096u
#define MG_MAX_TABLE_CHAINS (1u << 20)
#define MG_MAX_REPORTS 64u /* the arrays in mg_register_req / mg_heartbeat_req */

static void rb_addr(struct rbuf *rb, char out[VF_MAX_ADDR + 1])
{
    rb_cstr(rb, out, VF_MAX_ADDR + 1);
}

/* ---------------- routing ---------------- */

static void node_enc(struct wbuf *wb, const struct mg_node *n)
{
    wb_u32(wb, n->id);
    wb_u8(wb, n->type);
    wb_u8(wb, n->alive);
    wb_fixed_cstr(wb, n->addr, sizeof(n->addr));
    wb_u64(wb, n->lease_expires_ms);
}

static void node_dec(struct rbuf *rb, struct mg_node *n)
{
    n->id = rb_u32(rb);
    n->type = rb_enum8(rb, NODE_MGMTD, NODE_CLIENT);
    n->alive = rb_bool(rb);
    rb_addr(rb, n->addr);
    n->lease_expires_ms = rb_u64(rb);
}

static void target_enc(struct wbuf *wb, const struct mg_target *t)
{
    wb_u32(wb, t->id);
    wb_u32(wb, t->node_id);
    wb_u32(wb, t->chain_id);
    wb_u8(wb, t->state);
    wb_u64(wb, t->capacity);
    wb_u64(wb, t->used);
}

static void target_dec(struct rbuf *rb, struct mg_target *t)
{
    t->id = rb_u32(rb);
    t->node_id = rb_u32(rb);
    t->chain_id = rb_u32(rb);
    t->state = rb_enum8(rb, TS_SERVING, TS_OFFLINE);
    t->capacity = rb_u64(rb);
    t->used = rb_u64(rb);
}

static void chain_enc(struct wbuf *wb, const struct mg_chain *c)
{
    if (c->ntargets > VF_MAX_REPLICAS) {
        wb_fail(wb);
        return;
    }
    wb_u32(wb, c->id);
    wb_u64(wb, c->version);
    wb_u32(wb, c->ntargets);
    for (uint32_t i = 0; i < c->ntargets; i++)
        wb_u32(wb, c->targets[i]);
}

static void chain_dec(struct rbuf *rb, struct mg_chain *c)
{
    c->id = rb_u32(rb);
    c->version = rb_u64(rb);
    c->ntargets = rb_count(rb, VF_MAX_REPLICAS, 4);
    if (rb->err) {
        c->ntargets = 0;
        return;
    }
    for (uint32_t i = 0; i < c->ntargets; i++)
        c->targets[i] = rb_u32(rb);
}

static void table_enc(struct wbuf *wb, const struct mg_table *t)
{
    if (t->nchains > MG_MAX_TABLE_CHAINS || (t->nchains && !t->chains)) {
        wb_fail(wb);
        return;
    }
    wb_u32(wb, t->id);
    wb_u64(wb, t->version);
    wb_u32(wb, t->replicas);
    wb_u32(wb, t->nchains);
    for (uint32_t i = 0; i < t->nchains; i++)
        wb_u32(wb, t->chains[i]);
}

/* Allocates t->chains (NULL when empty); the caller frees on failure. */
static void table_dec(struct rbuf *rb, struct mg_table *t)
{
    t->id = rb_u32(rb);
    t->version = rb_u64(rb);
    t->replicas = rb_u32(rb);
    rb_require(rb, t->replicas <= VF_MAX_REPLICAS);
    uint32_t n = rb_count(rb, MG_MAX_TABLE_CHAINS, 4);
    if (rb->err || n == 0)
        return;
    t->chains = calloc(n, sizeof(*t->chains));
    if (!t->chains) {
        rb_fail(rb);
        return;
    }
    t->nchains = n;
    for (uint32_t i = 0; i < n; i++)
        t->chains[i] = rb_u32(rb);
}

void mg_routing_enc(struct wbuf *wb, const struct mg_routing *m)
{
    if ((m->nnodes && !m->nodes) || (m->ntargets && !m->targets) ||
        (m->nchains && !m->chains) || (m->ntables && !m->tables) ||
        m->nnodes > MG_MAX_NODES || m->ntargets > MG_MAX_TARGETS ||
        m->nchains > MG_MAX_CHAINS || m->ntables > MG_MAX_TABLES) {
        wb_fail(wb);
        return;
    }
    wb_u64(wb, m->version);
    wb_u32(wb, m->primary_id);
    wb_u32(wb, m->nnodes);
    for (uint32_t i = 0; i < m->nnodes; i++)
        node_enc(wb, &m->nodes[i]);
    wb_u32(wb, m->ntargets);
    for (uint32_t i = 0; i < m->ntargets; i++)
        target_enc(wb, &m->targets[i]);
    wb_u32(wb, m->nchains);
    for (uint32_t i = 0; i < m->nchains; i++)
        chain_enc(wb, &m->chains[i]);
    wb_u32(wb, m->ntables);
    for (uint32_t i = 0; i < m->ntables; i++)
        table_enc(wb, &m->tables[i]);
}

const struct mg_chain *mg_routing_chain(const struct mg_routing *r, uint32_t chain_id)
{
    for (uint32_t i = 0; r && i < r->nchains; i++)
        if (r->chains[i].id == chain_id)
            return &r->chains[i];
    return NULL;
}

const struct mg_target *mg_routing_target(const struct mg_routing *r, uint32_t target_id)
{
    for (uint32_t i = 0; r && i < r->ntargets; i++)
        if (r->targets[i].id == target_id)
            return &r->targets[i];
    return NULL;
}

const struct mg_node *mg_routing_node(const struct mg_routing *r, uint32_t node_id)
{
    for (uint32_t i = 0; r && i < r->nnodes; i++)
        if (r->nodes[i].id == node_id)
            return &r->nodes[i];
    return NULL;
}

const struct mg_table *mg_routing_table(const struct mg_routing *r, uint32_t table_id)
{
    for (uint32_t i = 0; r && i < r->ntables; i++)
        if (r->tables[i].id == table_id)
            return &r->tables[i];
    return NULL;
}

const char *mg_routing_target_addr(const struct mg_routing *r, uint32_t target_id)
{
    const struct mg_target *t = mg_routing_target(r, target_id);
    const struct mg_node *n = t ? mg_routing_node(r, t->node_id) : NULL;
    return n && n->addr[0] ? n->addr : NULL;
}

void mg_routing_free(struct mg_routing *r)
{
    if (!r)
        return;
    free(r->nodes);
    free(r->targets);
    free(r->chains);
    if (r->tables)
        for (uint32_t i = 0; i < r->ntables; i++)
            free(r->tables[i].chains);
    free(r->tables);
    r->nodes = NULL;
    r->targets = NULL;
    r->chains = NULL;
    r->tables = NULL;
    r->nnodes = r->ntargets = r->nchains = r->ntables = 0;
}

/* Read a count, then allocate (zeroed) room for that many items. */
static void *rb_array(struct rbuf *rb, uint32_t max, size_t min_bytes, size_t item_size,
                      uint32_t *count)
{
    *count = 0;
    uint32_t n = rb_count(rb, max, min_bytes);
    if (rb->err || n == 0)
        return NULL;
    void *a = calloc(n, item_size);
    if (!a) {
        rb_fail(rb);
        return NULL;
    }
    *count = n;
    return a;
}

int mg_routing_dec(const void *buf, size_t len, struct mg_routing *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->version = rb_u64(&rb);
    m->primary_id = rb_u32(&rb);

    m->nodes = rb_array(&rb, MG_MAX_NODES, NODE_MIN_BYTES, sizeof(*m->nodes), &m->nnodes);
    for (uint32_t i = 0; i < m->nnodes && !rb.err; i++)
        node_dec(&rb, &m->nodes[i]);
    m->targets = rb_array(&rb, MG_MAX_TARGETS, TARGET_BYTES, sizeof(*m->targets),
                          &m->ntargets);
    for (uint32_t i = 0; i < m->ntargets && !rb.err; i++)
        target_dec(&rb, &m->targets[i]);
    m->chains = rb_array(&rb, MG_MAX_CHAINS, CHAIN_MIN_BYTES, sizeof(*m->chains),
                         &m->nchains);
    for (uint32_t i = 0; i < m->nchains && !rb.err; i++)
        chain_dec(&rb, &m->chains[i]);
    m->tables = rb_array(&rb, MG_MAX_TABLES, TABLE_MIN_BYTES, sizeof(*m->tables),
                         &m->ntables);
    for (uint32_t i = 0; i < m->ntables && !rb.err; i++)
        table_dec(&rb, &m->tables[i]);

    int rc = proto_finish(&rb);
    if (rc)
        mg_routing_free(m);
    return rc;
}

/* ---------------- registration and heartbeats ---------------- */

static void reports_enc(struct wbuf *wb, uint32_t n, const struct mg_target_report *r)
{
    wb_u32(wb, n);
    for (uint32_t i = 0; i < n; i++) {
        wb_u32(wb, r[i].id);
        wb_u8(wb, r[i].state);
        wb_u64(wb, r[i].capacity);
        wb_u64(wb, r[i].used);
    }
}

static uint32_t reports_dec(struct rbuf *rb, struct mg_target_report *r)
{
    uint32_t n = rb_count(rb, MG_MAX_REPORTS, REPORT_BYTES);
    if (rb->err)
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        r[i].id = rb_u32(rb);
        r[i].state = rb_enum8(rb, TS_SERVING, TS_OFFLINE);
        r[i].capacity = rb_u64(rb);
        r[i].used = rb_u64(rb);
    }
    return n;
}

void mg_register_req_enc(struct wbuf *wb, const struct mg_register_req *m)
{
    if (m->ntargets > MG_MAX_REPORTS) {
        wb_fail(wb);
        return;
    }
    wb_u8(wb, m->type);
    wb_u32(wb, m->node_id);
    wb_fixed_cstr(wb, m->addr, sizeof(m->addr));
    reports_enc(wb, m->ntargets, m->targets);
}

int mg_register_req_dec(const void *buf, size_t len, struct mg_register_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->type = rb_enum8(&rb, NODE_MGMTD, NODE_CLIENT);
    m->node_id = rb_u32(&rb);
    rb_addr(&rb, m->addr);
    m->ntargets = reports_dec(&rb, m->targets);
    return proto_finish(&rb);
}

void mg_register_resp_enc(struct wbuf *wb, const struct mg_register_resp *m)
{
    wb_u32(wb, m->node_id);
    wb_u32(wb, m->lease_ms);
    wb_u64(wb, m->routing_version);
}

int mg_register_resp_dec(const void *buf, size_t len, struct mg_register_resp *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->node_id = rb_u32(&rb);
    m->lease_ms = rb_u32(&rb);
    m->routing_version = rb_u64(&rb);
    return proto_finish(&rb);
}

void mg_heartbeat_req_enc(struct wbuf *wb, const struct mg_heartbeat_req *m)
{
    if (m->ntargets > MG_MAX_REPORTS) {
        wb_fail(wb);
        return;
    }
    wb_u32(wb, m->node_id);
    wb_u64(wb, m->routing_version);
    reports_enc(wb, m->ntargets, m->targets);
}

int mg_heartbeat_req_dec(const void *buf, size_t len, struct mg_heartbeat_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->node_id = rb_u32(&rb);
    m->routing_version = rb_u64(&rb);
    m->ntargets = reports_dec(&rb, m->targets);
    return proto_finish(&rb);
}

void mg_heartbeat_resp_enc(struct wbuf *wb, const struct mg_heartbeat_resp *m)
{
    wb_u32(wb, m->lease_ms);
    wb_u64(wb, m->routing_version);
}

int mg_heartbeat_resp_dec(const void *buf, size_t len, struct mg_heartbeat_resp *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->lease_ms = rb_u32(&rb);
    m->routing_version = rb_u64(&rb);
    return proto_finish(&rb);
}

void mg_get_routing_req_enc(struct wbuf *wb, const struct mg_get_routing_req *m)
{
    wb_u64(wb, m->have_version);
}

int mg_get_routing_req_dec(const void *buf, size_t len, struct mg_get_routing_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->have_version = rb_u64(&rb);
    return proto_finish(&rb);
}

/* ---------------- administration ---------------- */

void mg_create_table_req_enc(struct wbuf *wb, const struct mg_create_table_req *m)
{
    wb_u32(wb, m->table_id);
    wb_u32(wb, m->replicas);
    wb_u32(wb, m->nchains);
}

int mg_create_table_req_dec(const void *buf, size_t len, struct mg_create_table_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->table_id = rb_u32(&rb);
    m->replicas = rb_u32(&rb);
    rb_require(&rb, m->replicas <= VF_MAX_REPLICAS); /* 0: mgmtd's default */
    m->nchains = rb_u32(&rb);
    rb_require(&rb, m->nchains <= MG_MAX_TABLE_CHAINS);
    return proto_finish(&rb);
}

void mg_create_table_resp_enc(struct wbuf *wb, const struct mg_create_table_resp *m)
{
    wb_u32(wb, m->table_id);
    wb_u32(wb, m->nchains);
    wb_u64(wb, m->routing_version);
}

int mg_create_table_resp_dec(const void *buf, size_t len, struct mg_create_table_resp *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->table_id = rb_u32(&rb);
    m->nchains = rb_u32(&rb);
    m->routing_version = rb_u64(&rb);
    return proto_finish(&rb);
}

void mg_set_target_req_enc(struct wbuf *wb, const struct mg_set_target_req *m)
{
    wb_u32(wb, m->target_id);
    wb_u8(wb, m->state);
}

int mg_set_target_req_dec(const void *buf, size_t len, struct mg_set_target_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->target_id = rb_u32(&rb);
    m->state = rb_enum8(&rb, TS_SERVING, TS_OFFLINE);
    return proto_finish(&rb);
}

void mg_sync_done_req_enc(struct wbuf *wb, const struct mg_sync_done_req *m)
{
    wb_u32(wb, m->target_id);
    wb_u32(wb, m->chain_id);
    wb_u64(wb, m->chain_version);
}

int mg_sync_done_req_dec(const void *buf, size_t len, struct mg_sync_done_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->target_id = rb_u32(&rb);
    m->chain_id = rb_u32(&rb);
    m->chain_version = rb_u64(&rb);
    return proto_finish(&rb);
}

void mg_report_down_req_enc(struct wbuf *wb, const struct mg_report_down_req *m)
{
    wb_u32(wb, m->node_id);
    wb_u32(wb, m->reporter_id);
}

int mg_report_down_req_dec(const void *buf, size_t len, struct mg_report_down_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->node_id = rb_u32(&rb);
    m->reporter_id = rb_u32(&rb);
    return proto_finish(&rb);
}

void mg_primary_enc(struct wbuf *wb, const struct mg_primary *m)
{
    wb_u32(wb, m->node_id);
    wb_fixed_cstr(wb, m->addr, sizeof(m->addr));
    wb_u64(wb, m->lease_expires_ms);
}

int mg_primary_dec(const void *buf, size_t len, struct mg_primary *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->node_id = rb_u32(&rb);
    rb_addr(&rb, m->addr);
    m->lease_expires_ms = rb_u64(&rb);
    return proto_finish(&rb);
}
