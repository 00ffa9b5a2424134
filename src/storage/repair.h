/* repair.h — replacing a replica's chunk that fails its CRC32C with a
 * serving peer's copy (see repair.c and "Resync" in storage_proto.h).
 * Internal to the storage service. */
#ifndef VALORFS_STORAGE_REPAIR_H
#define VALORFS_STORAGE_REPAIR_H

#include <stdint.h>

#include "proto/storage_proto.h"

struct stg_service;
struct local_target;
struct rpc_call;

/* Our copy of (ino, index) on rt->target_id failed its CRC: ask a SERVING
 * peer of chain rt->chain_id to push its copy to us. Never blocks. */
void repair_ask(struct stg_service *s, const struct stg_route *rt, uint64_t ino, uint32_t index);

/* STG_REPAIR at the peer (route checks passed; tgt is ours): push our copy
 * to q->dest_target under the chunk's turn and answer the call after. */
void repair_serve(struct stg_service *s, struct rpc_call *call, const struct stg_repair_req *q,
                  struct local_target *tgt);

#endif
