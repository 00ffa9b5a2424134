/* state.h — the cluster manager's in-memory model and the rules that change
 * it: registration, lease loss, target states, chain order, chain tables.
 *
 * Contract. Pure logic: no locks, no I/O, no clocks (times are passed in).
 * The caller (server.c) serializes every call. Each mutating function bumps
 * the routing version (st->version) when it changed anything a reader of
 * the routing snapshot could see, bumps the version of every chain whose
 * member list or member states changed, and returns 0 or a positive errno
 * (VF_E_* for protocol answers). Chain order is always: SERVING targets
 * first, then SYNCING, then WAITING, then OFFLINE (stable within a class).
 */
#ifndef VALORFS_MGMTD_STATE_H
#define VALORFS_MGMTD_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/wire.h"
#include "proto/mgmtd_proto.h"

struct mg_state {
    uint64_t version;          /* routing version; never goes down */
    uint32_t nnodes, ntargets, nchains, ntables;
    uint32_t cap_nodes, cap_targets, cap_chains, cap_tables;
    struct mg_node *nodes;
    uint64_t *node_last_hb_ms; /* parallel to nodes: monotonic ms of the last renewal */
    struct mg_target *targets;
    struct mg_chain *chains;
    struct mg_table *tables;   /* each table's chains array is owned */
};

void st_init(struct mg_state *st);
void st_free(struct mg_state *st);

struct mg_node *st_find_node(struct mg_state *st, uint32_t id);
struct mg_target *st_find_target(struct mg_state *st, uint32_t id);
struct mg_chain *st_find_chain(struct mg_state *st, uint32_t id);
struct mg_table *st_find_table(struct mg_state *st, uint32_t id);

/* Add records while loading from the KV (no version bumps). 0 or ENOMEM. */
int st_add_node(struct mg_state *st, const struct mg_node *n);
int st_add_target(struct mg_state *st, const struct mg_target *t);
int st_add_chain(struct mg_state *st, const struct mg_chain *c);
int st_add_table(struct mg_state *st, const struct mg_table *t); /* copies t->chains */

/* Register (or re-register) a node. now_real_ms: CLOCK_REALTIME for the
 * lease expiry shown in routing; now_mono_ms: for lease accounting.
 * Registration means a new process (or one back after losing its lease):
 * its chain targets may have missed updates, so each returns as SYNCING
 * while another member of its chain is SERVING (a chain with none left
 * takes it back as SERVING: there is nobody to catch up from).
 * *node_id_out gets the (possibly assigned) id. Errors: EINVAL (bad type,
 * too many targets), EEXIST (id taken by another node type, or a target
 * owned by another node). */
int st_register(struct mg_state *st, const struct mg_register_req *req, uint32_t lease_ms,
                uint64_t now_real_ms, uint64_t now_mono_ms, uint32_t *node_id_out);

/* The node stops holding a lease (expired or left): alive=0, its targets go
 * OFFLINE, their chains are reordered. ENOENT if unknown. */
int st_node_down(struct mg_state *st, uint32_t node_id);

/* A SYNCING target caught up with its chain at chain_version: it becomes
 * SERVING (the chain's new tail). ENOENT (no such target/chain), EINVAL
 * (not SYNCING, or not in that chain), VF_E_STALE_CHAIN (the chain moved
 * on since: the pass must run again). */
int st_sync_done(struct mg_state *st, uint32_t target_id, uint32_t chain_id,
                 uint64_t chain_version);

/* Admin: set one target's state. ENOENT / EINVAL. */
int st_set_target(struct mg_state *st, uint32_t target_id, uint8_t state);

/* Build a chain table from WAITING targets of live nodes; each chain takes
 * `replicas` targets on distinct nodes. EINVAL (bad replicas, fewer live
 * nodes with waiting targets than replicas), ENOSPC (not enough targets for
 * the requested nchains), EEXIST (table id taken). A short reason goes to
 * why[whylen]. */
int st_create_table(struct mg_state *st, const struct mg_create_table_req *req,
                    struct mg_create_table_resp *resp, char *why, size_t whylen);

/* Nodes whose lease (lease_ms since their last renewal) lapsed at now_mono_ms;
 * fills ids (up to max) and returns how many. */
uint32_t st_expired_nodes(const struct mg_state *st, uint32_t lease_ms, uint64_t now_mono_ms,
                          uint32_t *ids, uint32_t max);

/* Reorder a chain by state class; bumps its version and returns true when
 * the order changed or `force` is set. */
bool st_chain_reorder(struct mg_state *st, struct mg_chain *c, bool force);

/* The routing snapshot of the whole state. */
void st_encode_routing(const struct mg_state *st, uint32_t primary_id, struct wbuf *wb);

#endif
