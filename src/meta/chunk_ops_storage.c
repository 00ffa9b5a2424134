/* chunk_ops_storage.c — meta_chunk_ops over the storage client and the
 * routing cache (see chunk_ops_storage.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "client/mgmtd_client.h"
#include "client/storage_client.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/storage_proto.h"
#include "rpc/rpc.h"
#include "meta/chunk_ops_storage.h"

struct meta_storage_ready {
    struct sc *sc;
    struct mgc *mgc;
    struct rpc_client *rpc;
};

/* Set once after registration; cleared (and freed) at shutdown only after
 * the RPC server and the collector stopped, so no reader is left. */
void meta_storage_glue_set(struct meta_storage_glue *glue, struct sc *sc, struct mgc *mgc,
                           struct rpc_client *rpc)
{
    struct meta_storage_ready *r = NULL;
    if (sc && mgc) {
        r = malloc(sizeof(*r));
        if (r) {
            r->sc = sc;
            r->mgc = mgc;
            r->rpc = rpc;
        }
    }
    struct meta_storage_ready *old = __atomic_exchange_n(&glue->ready, r, __ATOMIC_ACQ_REL);
    free(old);
}

static const struct meta_storage_ready *ready(void *arg)
{
    struct meta_storage_glue *g = arg;
    return __atomic_load_n(&g->ready, __ATOMIC_ACQUIRE);
}

static int st_truncate(void *arg, const struct meta_inode *ino, uint64_t new_len)
{
    const struct meta_storage_ready *g = ready(arg);
    if (ino->layout.nchains == 0)
        return 0;
    return g ? sc_truncate_file(g->sc, ino, new_len) : -ENOTCONN;
}

static int st_remove(void *arg, const struct meta_inode *ino)
{
    const struct meta_storage_ready *g = ready(arg);
    if (ino->layout.nchains == 0)
        return 0;
    return g ? sc_remove_file(g->sc, ino) : -ENOTCONN;
}

static int st_query_len(void *arg, const struct meta_inode *ino, uint64_t *len)
{
    const struct meta_storage_ready *g = ready(arg);
    if (ino->layout.nchains == 0) {
        *len = 0;
        return 0;
    }
    return g ? sc_query_length(g->sc, ino, len) : -ENOTCONN;
}

int meta_layout_from_routing(const struct mg_routing *r, uint32_t table_id, uint32_t chunk_size,
                             uint32_t stripe, uint32_t start, struct meta_layout *out)
{
    const struct mg_table *t = mgc_find_table(r, table_id);
    if (!t || t->nchains == 0)
        return -ENOSPC;
    if (stripe == 0)
        stripe = 1;
    if (stripe > t->nchains)
        stripe = t->nchains;
    if (stripe > VF_MAX_STRIPE)
        stripe = VF_MAX_STRIPE;
    memset(out, 0, sizeof(*out));
    out->chunk_size = chunk_size;
    out->table_id = table_id;
    out->nchains = stripe;
    for (uint32_t i = 0; i < stripe; i++)
        out->chains[i] = t->chains[(start + i) % t->nchains];
    return 0;
}

static int st_alloc_layout(void *arg, uint32_t chunk_size, uint32_t stripe, struct meta_layout *out)
{
    const struct meta_storage_ready *g = ready(arg);
    struct mgc_routing *snap = g ? mgc_routing(g->mgc) : NULL;
    if (!snap)
        return -ENOTCONN;
    uint32_t start;
    if (getrandom(&start, sizeof(start), 0) != sizeof(start))
        start = 0;
    int rc = meta_layout_from_routing(&snap->r, META_LAYOUT_TABLE, chunk_size, stripe, start, out);
    mgc_routing_put(snap);
    if (rc < 0)
        LOG_WARN("meta", "no chain table %u to place a new file in", META_LAYOUT_TABLE);
    return rc;
}

/* Ask one storage node for its targets' space (STG_STATFS). */
static int node_statfs(struct rpc_client *rpc, const char *addr, struct stg_statfs_resp *out)
{
    void *resp = NULL;
    size_t len = 0;
    struct rpc_call_opts co = {.timeout_ms = 2000};
    int st = rpc_call_sync(rpc, addr, STG_STATFS, NULL, 0, &co, &resp, &len);
    if (st == 0 && stg_statfs_resp_dec(resp, len, out) != 0)
        st = RPC_E_PROTO;
    free(resp);
    return st;
}

/* Space of table 1: each chain counts once, by its head's live report
 * (falling back to the routing snapshot's last figures). */
static void space_collect(const struct meta_storage_ready *g, const struct mg_routing *r,
                          uint64_t *total, uint64_t *free_b)
{
    const struct mg_table *t = mgc_find_table(r, META_LAYOUT_TABLE);
    struct { uint32_t node; int st; struct stg_statfs_resp resp; } nodes[16];
    uint32_t nnodes = 0;
    for (uint32_t i = 0; t && i < t->nchains; i++) {
        const struct mg_chain *c = mgc_find_chain(r, t->chains[i]);
        if (!c || c->ntargets == 0)
            continue;
        const struct mg_target *tg = mgc_find_target(r, c->targets[0]);
        if (!tg)
            continue;
        uint64_t cap = tg->capacity, used = tg->used;
        uint32_t k = 0;
        while (k < nnodes && nodes[k].node != tg->node_id)
            k++;
        if (k == nnodes && nnodes < 16 && g->rpc) {
            const char *addr = mgc_target_addr(r, tg->id);
            nodes[k].node = tg->node_id;
            nodes[k].st = addr ? node_statfs(g->rpc, addr, &nodes[k].resp) : VF_E_NO_ROUTE;
            nnodes++;
        }
        if (k < nnodes && nodes[k].st == 0)
            for (uint32_t j = 0; j < nodes[k].resp.ntargets; j++)
                if (nodes[k].resp.targets[j].id == tg->id) {
                    cap = nodes[k].resp.targets[j].capacity;
                    used = nodes[k].resp.targets[j].used;
                }
        *total += cap;
        *free_b += cap > used ? cap - used : 0;
    }
}

int meta_storage_space(void *arg, uint64_t *total_bytes, uint64_t *free_bytes)
{
    struct meta_storage_glue *glue = arg;
    const struct meta_storage_ready *g = ready(arg);
    *total_bytes = *free_bytes = 0;
    struct mgc_routing *snap = g ? mgc_routing(g->mgc) : NULL;
    if (!snap)
        return -ENOENT;
    uint64_t now = now_ns() / 1000000u;
    pthread_mutex_lock(&glue->space_lock);
    if (glue->space_at_ms && now - glue->space_at_ms < 1000) {
        *total_bytes = glue->space_total;
        *free_bytes = glue->space_free;
    } else {
        space_collect(g, &snap->r, total_bytes, free_bytes);
        glue->space_at_ms = now;
        glue->space_total = *total_bytes;
        glue->space_free = *free_bytes;
    }
    pthread_mutex_unlock(&glue->space_lock);
    mgc_routing_put(snap);
    return 0;
}

void meta_chunk_ops_storage(struct meta_storage_glue *glue, struct meta_chunk_ops *ops)
{
    ops->truncate = st_truncate;
    ops->remove = st_remove;
    ops->query_len = st_query_len;
    ops->alloc_layout = st_alloc_layout;
    ops->arg = glue;
}
