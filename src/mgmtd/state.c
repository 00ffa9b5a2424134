/* state.c — see state.h. */
#include "mgmtd/state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

void st_init(struct mg_state *st) { memset(st, 0, sizeof(*st)); }

void st_free(struct mg_state *st)
{
    for (uint32_t i = 0; i < st->ntables; i++)
        free(st->tables[i].chains);
    free(st->nodes);
    free(st->node_last_hb_ms);
    free(st->targets);
    free(st->chains);
    free(st->tables);
    memset(st, 0, sizeof(*st));
}

/* Grow an array to hold one more element; false on ENOMEM. */
static bool grow(void **arr, uint32_t *cap, uint32_t n, size_t elem)
{
    if (n < *cap)
        return true;
    uint32_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = nc;
    return true;
}

struct mg_node *st_find_node(struct mg_state *st, uint32_t id)
{
    for (uint32_t i = 0; i < st->nnodes; i++)
        if (st->nodes[i].id == id)
            return &st->nodes[i];
    return NULL;
}

struct mg_target *st_find_target(struct mg_state *st, uint32_t id)
{
    for (uint32_t i = 0; i < st->ntargets; i++)
        if (st->targets[i].id == id)
            return &st->targets[i];
    return NULL;
}

struct mg_chain *st_find_chain(struct mg_state *st, uint32_t id)
{
    for (uint32_t i = 0; i < st->nchains; i++)
        if (st->chains[i].id == id)
            return &st->chains[i];
    return NULL;
}

struct mg_table *st_find_table(struct mg_state *st, uint32_t id)
{
    for (uint32_t i = 0; i < st->ntables; i++)
        if (st->tables[i].id == id)
            return &st->tables[i];
    return NULL;
}

int st_add_node(struct mg_state *st, const struct mg_node *n)
{
    if (!grow((void **)&st->nodes, &st->cap_nodes, st->nnodes, sizeof(*st->nodes)))
        return ENOMEM;
    /* the parallel array follows the nodes array's capacity */
    uint64_t *hb = realloc(st->node_last_hb_ms, (size_t)st->cap_nodes * sizeof(*hb));
    if (!hb)
        return ENOMEM;
    st->node_last_hb_ms = hb;
    st->nodes[st->nnodes] = *n;
    st->node_last_hb_ms[st->nnodes] = 0;
    st->nnodes++;
    return 0;
}

int st_add_target(struct mg_state *st, const struct mg_target *t)
{
    if (!grow((void **)&st->targets, &st->cap_targets, st->ntargets, sizeof(*st->targets)))
        return ENOMEM;
    st->targets[st->ntargets++] = *t;
    return 0;
}

int st_add_chain(struct mg_state *st, const struct mg_chain *c)
{
    if (!grow((void **)&st->chains, &st->cap_chains, st->nchains, sizeof(*st->chains)))
        return ENOMEM;
    st->chains[st->nchains++] = *c;
    return 0;
}

int st_add_table(struct mg_state *st, const struct mg_table *t)
{
    if (!grow((void **)&st->tables, &st->cap_tables, st->ntables, sizeof(*st->tables)))
        return ENOMEM;
    uint32_t *chains = malloc(((size_t)t->nchains + 1) * sizeof(uint32_t));
    if (!chains)
        return ENOMEM;
    if (t->nchains)
        memcpy(chains, t->chains, (size_t)t->nchains * sizeof(uint32_t));
    struct mg_table *dst = &st->tables[st->ntables++];
    *dst = *t;
    dst->chains = chains;
    return 0;
}

static int state_rank(uint8_t s)
{
    switch (s) {
    case TS_SERVING: return 0;
    case TS_SYNCING: return 1;
    case TS_WAITING: return 2;
    default: return 3;
    }
}

bool st_chain_reorder(struct mg_state *st, struct mg_chain *c, bool force)
{
    uint32_t sorted[VF_MAX_REPLICAS];
    uint32_t n = 0;
    /* stable: one pass per class keeps the relative order inside a class */
    for (int rank = 0; rank <= 3; rank++)
        for (uint32_t i = 0; i < c->ntargets && i < VF_MAX_REPLICAS; i++) {
            struct mg_target *t = st_find_target(st, c->targets[i]);
            if (state_rank(t ? t->state : TS_OFFLINE) == rank)
                sorted[n++] = c->targets[i];
        }
    bool changed = memcmp(sorted, c->targets, (size_t)n * sizeof(uint32_t)) != 0;
    memcpy(c->targets, sorted, (size_t)n * sizeof(uint32_t));
    if (changed || force) {
        c->version++;
        return true;
    }
    return false;
}

/* A member of chain_id changed state: reorder it and bump its version. */
static void chain_member_changed(struct mg_state *st, uint32_t chain_id)
{
    struct mg_chain *c = chain_id ? st_find_chain(st, chain_id) : NULL;
    if (c)
        st_chain_reorder(st, c, true);
}

static bool chain_has_other_serving(struct mg_state *st, uint32_t chain_id, uint32_t except)
{
    struct mg_chain *c = st_find_chain(st, chain_id);
    for (uint32_t i = 0; c && i < c->ntargets && i < VF_MAX_REPLICAS; i++) {
        struct mg_target *t = st_find_target(st, c->targets[i]);
        if (t && t->id != except && t->state == TS_SERVING)
            return true;
    }
    return false;
}

int st_sync_done(struct mg_state *st, uint32_t target_id, uint32_t chain_id,
                 uint64_t chain_version)
{
    struct mg_target *t = st_find_target(st, target_id);
    struct mg_chain *c = st_find_chain(st, chain_id);
    if (!t || !c)
        return ENOENT;
    if (t->chain_id != chain_id || t->state != TS_SYNCING)
        return EINVAL;
    if (c->version != chain_version)
        return VF_E_STALE_CHAIN;
    t->state = TS_SERVING;
    chain_member_changed(st, chain_id);
    st->version++;
    return 0;
}

static bool valid_node_type(uint8_t t)
{
    return t == NODE_META || t == NODE_STORAGE || t == NODE_CLIENT;
}

static uint32_t next_node_id(const struct mg_state *st)
{
    uint32_t max = 0;
    for (uint32_t i = 0; i < st->nnodes; i++)
        if (st->nodes[i].id > max)
            max = st->nodes[i].id;
    return max + 1;
}

int st_register(struct mg_state *st, const struct mg_register_req *req, uint32_t lease_ms,
                uint64_t now_real_ms, uint64_t now_mono_ms, uint32_t *node_id_out)
{
    if (!valid_node_type(req->type) || req->ntargets > ARRAY_SIZE(req->targets))
        return EINVAL;
    uint32_t id = req->node_id ? req->node_id : next_node_id(st);
    struct mg_node *n = st_find_node(st, id);
    if (n && n->type != req->type) {
        LOG_WARN("mgmtd", "register refused node=%u: registered as %s, now claims %s", id,
                 vf_node_type_name(n->type), vf_node_type_name(req->type));
        return EEXIST;
    }
    /* validate every target before changing anything */
    for (uint32_t i = 0; i < req->ntargets; i++) {
        struct mg_target *t = st_find_target(st, req->targets[i].id);
        if (req->targets[i].id == 0 || (t && t->node_id != id)) {
            LOG_WARN("mgmtd", "register refused node=%u: target %u belongs to node %u", id,
                     req->targets[i].id, t ? t->node_id : 0);
            return req->targets[i].id == 0 ? EINVAL : EEXIST;
        }
    }
    bool was_alive = n && n->alive;
    if (!n) {
        struct mg_node nn = { .id = id, .type = req->type, .alive = 1 };
        snprintf(nn.addr, sizeof(nn.addr), "%s", req->addr);
        int rc = st_add_node(st, &nn);
        if (rc)
            return rc;
        n = &st->nodes[st->nnodes - 1];
    }
    snprintf(n->addr, sizeof(n->addr), "%s", req->addr);
    n->alive = 1;
    n->lease_expires_ms = now_real_ms + lease_ms;
    st->node_last_hb_ms[n - st->nodes] = now_mono_ms;

    for (uint32_t i = 0; i < req->ntargets; i++) {
        const struct mg_target_report *r = &req->targets[i];
        struct mg_target *t = st_find_target(st, r->id);
        if (!t) {
            struct mg_target nt = { .id = r->id, .node_id = id, .state = TS_WAITING,
                                    .capacity = r->capacity, .used = r->used };
            int rc = st_add_target(st, &nt);
            if (rc)
                return rc;
            continue;
        }
        t->capacity = r->capacity;
        t->used = r->used;
        if (t->chain_id && t->state != TS_SYNCING) {
            /* a new process may have missed writes (or lost its disk) */
            bool other = chain_has_other_serving(st, t->chain_id, t->id);
            uint8_t want = other ? TS_SYNCING : TS_SERVING;
            if (!other)
                LOG_WARN("mgmtd", "target %u of node %u returns to chain %u as SERVING: no "
                         "other member serves, nobody to resync it from", t->id, id,
                         t->chain_id);
            if (t->state != want) {
                LOG_INFO("mgmtd", "target %u of node %u returns to chain %u as %s", t->id, id,
                         t->chain_id, vf_target_state_name(want));
                t->state = want;
                chain_member_changed(st, t->chain_id);
            }
        } else if (!t->chain_id && t->state == TS_OFFLINE) {
            t->state = TS_WAITING;
        }
        (void)was_alive;
    }
    st->version++;
    *node_id_out = id;
    return 0;
}

int st_node_down(struct mg_state *st, uint32_t node_id)
{
    struct mg_node *n = st_find_node(st, node_id);
    if (!n)
        return ENOENT;
    n->alive = 0;
    for (uint32_t i = 0; i < st->ntargets; i++) {
        struct mg_target *t = &st->targets[i];
        if (t->node_id != node_id || t->state == TS_OFFLINE)
            continue;
        t->state = TS_OFFLINE;
        chain_member_changed(st, t->chain_id);
    }
    st->version++;
    return 0;
}

int st_set_target(struct mg_state *st, uint32_t target_id, uint8_t state)
{
    struct mg_target *t = st_find_target(st, target_id);
    if (!t)
        return ENOENT;
    bool ok = t->chain_id ? (state == TS_SERVING || state == TS_SYNCING || state == TS_OFFLINE)
                          : (state == TS_WAITING || state == TS_OFFLINE);
    if (!ok)
        return EINVAL;
    if (t->state == state)
        return 0;
    t->state = state;
    chain_member_changed(st, t->chain_id);
    st->version++;
    return 0;
}

struct cand_node {
    uint32_t node_id;
    uint32_t order;      /* position among candidate nodes, for round-robin ties */
    uint32_t nwait, used;
    uint32_t *targets;   /* waiting target ids, ascending */
};

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Does x go before y for chain number k? Most waiting targets left first;
 * ties rotate with k so chains start on different nodes (round-robin). */
static bool cand_before(const struct cand_node *x, const struct cand_node *y, uint32_t k,
                        uint32_t n)
{
    uint32_t rx = x->nwait - x->used, ry = y->nwait - y->used;
    if (rx != ry)
        return rx > ry;
    return (x->order + n - k % n) % n < (y->order + n - k % n) % n;
}

static void sort_cands(struct cand_node **v, uint32_t n, uint32_t k)
{
    for (uint32_t i = 1; i < n; i++) {
        struct cand_node *c = v[i];
        uint32_t j = i;
        for (; j > 0 && cand_before(c, v[j - 1], k, n); j--)
            v[j] = v[j - 1];
        v[j] = c;
    }
}

int st_create_table(struct mg_state *st, const struct mg_create_table_req *req,
                    struct mg_create_table_resp *resp, char *why, size_t whylen)
{
    uint32_t R = req->replicas;
    if (R < 1 || R > VF_MAX_REPLICAS) {
        snprintf(why, whylen, "replicas=%u out of range 1..%d", R, VF_MAX_REPLICAS);
        return EINVAL;
    }
    if (req->table_id && st_find_table(st, req->table_id)) {
        snprintf(why, whylen, "table %u exists", req->table_id);
        return EEXIST;
    }
    /* candidate nodes: live, with WAITING targets */
    struct cand_node *cands = calloc(st->nnodes + 1, sizeof(*cands));
    struct cand_node **order = calloc(st->nnodes + 1, sizeof(*order));
    uint32_t *tids = calloc(st->ntargets + 1, sizeof(*tids));
    int rc = 0;
    if (!cands || !order || !tids) {
        rc = ENOMEM;
        goto out;
    }
    uint32_t nc = 0, used_tids = 0, total_wait = 0;
    for (uint32_t i = 0; i < st->nnodes; i++) {
        const struct mg_node *n = &st->nodes[i];
        if (!n->alive)
            continue;
        struct cand_node *c = &cands[nc];
        c->targets = tids + used_tids;
        for (uint32_t j = 0; j < st->ntargets; j++)
            if (st->targets[j].node_id == n->id && st->targets[j].state == TS_WAITING)
                c->targets[c->nwait++] = st->targets[j].id;
        if (!c->nwait)
            continue;
        qsort(c->targets, c->nwait, sizeof(uint32_t), cmp_u32);
        c->node_id = n->id;
        c->order = nc;
        used_tids += c->nwait;
        total_wait += c->nwait;
        order[nc] = c;
        nc++;
    }
    if (nc < R) {
        snprintf(why, whylen, "replicas=%u needs %u live nodes with waiting targets, have %u", R,
                 R, nc);
        rc = EINVAL;
        goto out;
    }
    /* how many chains fit: greedy on a scratch copy of the counts */
    uint32_t want = req->nchains;
    uint32_t max_chains = total_wait / R;
    if (want > max_chains) {
        snprintf(why, whylen, "nchains=%u x replicas=%u needs %u waiting targets, have %u", want,
                 R, want * R, total_wait);
        rc = ENOSPC;
        goto out;
    }
    uint32_t limit = want ? want : max_chains;
    struct mg_chain *built = calloc(limit + 1, sizeof(*built));
    if (!built) {
        rc = ENOMEM;
        goto out;
    }
    uint32_t nbuilt = 0;
    for (uint32_t k = 0; k < limit; k++) {
        sort_cands(order, nc, k);
        if (order[R - 1]->nwait == order[R - 1]->used)
            break; /* fewer than R nodes have targets left */
        built[nbuilt].ntargets = R;
        for (uint32_t r = 0; r < R; r++)
            built[nbuilt].targets[r] = order[r]->targets[order[r]->used++];
        nbuilt++;
    }
    if (nbuilt == 0 || (want && nbuilt < want)) {
        snprintf(why, whylen, "only %u chains of %u targets on distinct nodes fit (wanted %u)",
                 nbuilt, R, want ? want : 1);
        free(built);
        rc = ENOSPC;
        goto out;
    }
    uint32_t next_chain = 1, next_table = 1;
    for (uint32_t i = 0; i < st->nchains; i++)
        if (st->chains[i].id >= next_chain)
            next_chain = st->chains[i].id + 1;
    for (uint32_t i = 0; i < st->ntables; i++)
        if (st->tables[i].id >= next_table)
            next_table = st->tables[i].id + 1;
    struct mg_table tab = { .id = req->table_id ? req->table_id : next_table, .version = 1,
                            .replicas = R, .nchains = nbuilt };
    tab.chains = calloc(nbuilt, sizeof(uint32_t));
    if (!tab.chains) {
        free(built);
        rc = ENOMEM;
        goto out;
    }
    for (uint32_t k = 0; k < nbuilt; k++) {
        built[k].id = next_chain + k;
        built[k].version = 1;
        tab.chains[k] = built[k].id;
        if ((rc = st_add_chain(st, &built[k])) != 0)
            break;
        for (uint32_t r = 0; r < R; r++) {
            struct mg_target *t = st_find_target(st, built[k].targets[r]);
            t->state = TS_SERVING;
            t->chain_id = built[k].id;
        }
    }
    if (rc == 0)
        rc = st_add_table(st, &tab);
    free(tab.chains);
    free(built);
    if (rc == 0) {
        st->version++;
        resp->table_id = tab.id;
        resp->nchains = nbuilt;
        resp->routing_version = st->version;
    }
out:
    free(cands);
    free(order);
    free(tids);
    return rc;
}

uint32_t st_expired_nodes(const struct mg_state *st, uint32_t lease_ms, uint64_t now_mono_ms,
                          uint32_t *ids, uint32_t max)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < st->nnodes && n < max; i++)
        if (st->nodes[i].alive && now_mono_ms > st->node_last_hb_ms[i] + lease_ms)
            ids[n++] = st->nodes[i].id;
    return n;
}

void st_encode_routing(const struct mg_state *st, uint32_t primary_id, struct wbuf *wb)
{
    struct mg_routing r = {
        .version = st->version, .primary_id = primary_id,
        .nnodes = st->nnodes, .ntargets = st->ntargets,
        .nchains = st->nchains, .ntables = st->ntables,
        .nodes = st->nodes, .targets = st->targets,
        .chains = st->chains, .tables = st->tables,
    };
    mg_routing_enc(wb, &r);
}
