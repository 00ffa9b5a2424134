/* routing_view.h — lookups in a routing snapshot for the data path.
 *
 * The storage client needs, per chain, the SERVING replicas in chain order
 * (the head first); chains, targets and addresses come from the snapshot's
 * own lookups (mg_routing_chain/target/target_addr in proto). Reads an
 * immutable struct mg_routing and never blocks.
 */
#ifndef VALORFS_CLIENT_ROUTING_VIEW_H
#define VALORFS_CLIENT_ROUTING_VIEW_H

#include <stdint.h>

#include "proto/mgmtd_proto.h"

/* SERVING targets of the chain in chain order (out[0] is the head); count. */
uint32_t rv_serving(const struct mg_routing *r, const struct mg_chain *c,
                    uint32_t out[VF_MAX_REPLICAS]);

#endif
