/* chunk_ops_storage.c — meta_chunk_ops over the storage client and the
 * routing cache (see chunk_ops_storage.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "client/mgmtd_client.h"
#include "client/storage_client.h"
#include "common/log.h"
#include "meta/chunk_ops_storage.h"

struct meta_storage_ready {
    struct sc *sc;
    struct mgc *mgc;
};

/* Set once after registration; cleared (and freed) at shutdown only after
 * the RPC server and the collector stopped, so no reader is left. */
void meta_storage_glue_set(struct meta_storage_glue *glue, struct sc *sc, struct mgc *mgc)
{
    struct meta_storage_ready *r = NULL;
    if (sc && mgc) {
        r = malloc(sizeof(*r));
        if (r) {
            r->sc = sc;
            r->mgc = mgc;
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

/* Space of table 1: each chain counts once, by its head's report. */
int meta_storage_space(void *arg, uint64_t *total_bytes, uint64_t *free_bytes)
{
    const struct meta_storage_ready *g = ready(arg);
    *total_bytes = *free_bytes = 0;
    struct mgc_routing *snap = g ? mgc_routing(g->mgc) : NULL;
    if (!snap)
        return -ENOENT;
    const struct mg_table *t = mgc_find_table(&snap->r, META_LAYOUT_TABLE);
    for (uint32_t i = 0; t && i < t->nchains; i++) {
        const struct mg_chain *c = mgc_find_chain(&snap->r, t->chains[i]);
        if (!c || c->ntargets == 0)
            continue;
        const struct mg_target *tg = mgc_find_target(&snap->r, c->targets[0]);
        if (!tg)
            continue;
        *total_bytes += tg->capacity;
        *free_bytes += tg->capacity > tg->used ? tg->capacity - tg->used : 0;
    }
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
