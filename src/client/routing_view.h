/* routing_view.h — lookups in a routing snapshot for the data path.
 *
 * The storage client needs, per chain: the head, the SERVING replicas in
 * chain order, and each target's RPC address. These read an immutable
 * struct mg_routing and never block.
 */
#ifndef VALORFS_CLIENT_ROUTING_VIEW_H
#define VALORFS_CLIENT_ROUTING_VIEW_H

#include <stdint.h>

#include "proto/mgmtd_proto.h"

const struct mg_chain *rv_chain(const struct mg_routing *r, uint32_t chain_id);
const struct mg_target *rv_target(const struct mg_routing *r, uint32_t target_id);
/* The address of the node hosting target_id, or NULL (unknown or not alive). */
const char *rv_target_addr(const struct mg_routing *r, uint32_t target_id);
/* SERVING targets of the chain in chain order (out[0] is the head); count. */
uint32_t rv_serving(const struct mg_routing *r, const struct mg_chain *c,
                    uint32_t out[VF_MAX_REPLICAS]);

#endif
