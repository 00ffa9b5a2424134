/* routing_view.c — see routing_view.h. */
#include "client/routing_view.h"

#include <stddef.h>

uint32_t rv_serving(const struct mg_routing *r, const struct mg_chain *c,
                    uint32_t out[VF_MAX_REPLICAS])
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->ntargets && i < VF_MAX_REPLICAS; i++) {
        const struct mg_target *t = mg_routing_target(r, c->targets[i]);
        if (t && t->state == TS_SERVING)
            out[n++] = c->targets[i];
    }
    return n;
}
