/* routing_view.c — see routing_view.h. Linear scans: a routing snapshot
 * holds at most a few thousand chains and a scan is cheaper than the RPC it
 * routes. */
#include "client/routing_view.h"

#include <stddef.h>

const struct mg_chain *rv_chain(const struct mg_routing *r, uint32_t chain_id)
{
    for (uint32_t i = 0; i < r->nchains; i++)
        if (r->chains[i].id == chain_id)
            return &r->chains[i];
    return NULL;
}

const struct mg_target *rv_target(const struct mg_routing *r, uint32_t target_id)
{
    for (uint32_t i = 0; i < r->ntargets; i++)
        if (r->targets[i].id == target_id)
            return &r->targets[i];
    return NULL;
}

const char *rv_target_addr(const struct mg_routing *r, uint32_t target_id)
{
    const struct mg_target *t = rv_target(r, target_id);
    if (t == NULL)
        return NULL;
    for (uint32_t i = 0; i < r->nnodes; i++)
        if (r->nodes[i].id == t->node_id)
            return r->nodes[i].addr[0] ? r->nodes[i].addr : NULL;
    return NULL;
}

uint32_t rv_serving(const struct mg_routing *r, const struct mg_chain *c,
                    uint32_t out[VF_MAX_REPLICAS])
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->ntargets && i < VF_MAX_REPLICAS; i++) {
        const struct mg_target *t = rv_target(r, c->targets[i]);
        if (t && t->state == TS_SERVING)
            out[n++] = c->targets[i];
    }
    return n;
}
