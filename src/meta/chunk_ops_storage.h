/* chunk_ops_storage.h — the meta core's storage side effects, served by the
 * client library: truncate/remove/query through the storage client (sc_*),
 * new layouts and STATFS space from the mgmtd routing snapshot.
 *
 * Layout rule: chain table 1, `stripe` consecutive chains (capped by the
 * table's size) starting at a random chain of the table.
 */
#ifndef VALORFS_META_CHUNK_OPS_STORAGE_H
#define VALORFS_META_CHUNK_OPS_STORAGE_H

#include <pthread.h>

#include "meta/meta_core.h"

struct sc;
struct mgc;
struct mg_routing;

#define META_LAYOUT_TABLE 1u

/* Until both are set, every operation fails with ENOTCONN (requests can
 * arrive between listening and registering with mgmtd). Clear it (NULL,
 * NULL) only when no operation can run any more. */
struct rpc_client;
struct meta_storage_glue {
    struct meta_storage_ready *ready; /* atomically published */
    /* STATFS space, asked of the storage servers at most once a second
     * (routing snapshots do not carry fresh usage: heartbeats update it in
     * mgmtd without a new routing version). */
    pthread_mutex_t space_lock;
    uint64_t space_at_ms, space_total, space_free;
};
void meta_storage_glue_set(struct meta_storage_glue *glue, struct sc *sc, struct mgc *mgc,
                           struct rpc_client *rpc);

/* Fill ops with functions over glue (which must outlive the core). */
void meta_chunk_ops_storage(struct meta_storage_glue *glue, struct meta_chunk_ops *ops);
/* The STATFS space callback of meta_core_opts; arg = glue. */
int meta_storage_space(void *arg, uint64_t *total_bytes, uint64_t *free_bytes);

/* The layout rule on one snapshot (pure; start = random chain index).
 * 0, or -ENOSPC when the table is missing or has no chains. */
int meta_layout_from_routing(const struct mg_routing *r, uint32_t table_id, uint32_t chunk_size,
                             uint32_t stripe, uint32_t start, struct meta_layout *out);

#endif
