/* mgmtd_client.h — every node's and client's view of the cluster manager:
 * the routing cache, and (for servers) registration, heartbeats and the
 * lease that fences a node that lost contact.
 *
 * Routing cache. mgc_routing() returns the newest routing snapshot the
 * cache holds, with a reference the caller drops with mgc_routing_put();
 * snapshots are immutable, so readers never lock. A background thread
 * refreshes it every refresh_ms, at once when a heartbeat reports a newer
 * version, and on demand through mgc_refresh() (e.g. after a
 * VF_E_STALE_CHAIN answer). mgmtd addresses are tried in turn; a
 * VF_E_NOT_PRIMARY answer redirects to the primary it names.
 *
 * Node agent (servers only, mgc_opts.type != NODE_CLIENT). mgc_start()
 * registers the node and then heartbeats every lease_ms/6 (at least every
 * 1 s). The lease is T = lease_ms from mgmtd (60 s by default): mgmtd drops
 * a node silent for T; the node itself stops serving when it could not
 * renew for T/2 — mgc_lease_valid() turns false and on_lease_lost runs —
 * and re-registers when mgmtd is reachable again. Registration fails fast
 * (one clear error) when no mgmtd answers within connect_timeout_ms.
 */
#ifndef VALORFS_CLIENT_MGMTD_CLIENT_H
#define VALORFS_CLIENT_MGMTD_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/mgmtd_proto.h"

struct rpc_client;
struct mgc;

struct mgc_routing {
    struct mg_routing r;       /* decoded snapshot; read-only */
    /* private: refcount */
    int refs_;
};

struct mgc_opts {
    const char *mgmtd_addrs;   /* "host:port[,host:port...]" */
    struct rpc_client *rpc;    /* shared RPC client (not owned); NULL: mgc makes its own */
    uint8_t type;              /* vf_node_type; NODE_CLIENT = cache only */
    uint32_t node_id;          /* servers: configured id (0 = assigned) */
    const char *addr;          /* servers: where they serve RPC */
    uint32_t refresh_ms;       /* routing poll period; default 1000 */
    uint32_t connect_timeout_ms; /* first contact; default 10000 */
    /* servers: current target reports, called before each heartbeat */
    uint32_t (*report_targets)(void *arg, struct mg_target_report *out, uint32_t max);
    void (*on_routing)(void *arg, const struct mg_routing *r); /* new snapshot */
    void (*on_lease_lost)(void *arg);
    void *arg;
};

/* Connect, fetch the first routing snapshot and (servers) register. NULL
 * on failure with a one-line reason in err. */
struct mgc *mgc_start(const struct mgc_opts *o, char *err, size_t errlen);
/* Servers: unregister (graceful leave) and stop the threads. */
void mgc_stop(struct mgc *m);

uint32_t mgc_node_id(const struct mgc *m);
bool mgc_lease_valid(const struct mgc *m);

struct mgc_routing *mgc_routing(struct mgc *m);
void mgc_routing_put(struct mgc_routing *r);
/* Fetch now if the cache is older than min_version (0 = always); waits up to
 * timeout_ms. 0, or a negative RPC_E_* / positive VF_E_* status.
 * It blocks: never call it from an RPC completion callback. timeout_ms 0
 * never blocks: it asks the refresh thread to fetch at once and returns 0
 * when the cache is already at min_version, else RPC_E_TIMEOUT. */
int mgc_refresh(struct mgc *m, uint64_t min_version, uint32_t timeout_ms);

/* Lookups in a snapshot (NULL when absent). */
const struct mg_chain *mgc_find_chain(const struct mg_routing *r, uint32_t chain_id);
const struct mg_target *mgc_find_target(const struct mg_routing *r, uint32_t target_id);
const struct mg_node *mgc_find_node(const struct mg_routing *r, uint32_t node_id);
const struct mg_table *mgc_find_table(const struct mg_routing *r, uint32_t table_id);
/* The RPC address of the node that hosts target_id, or NULL. */
const char *mgc_target_addr(const struct mg_routing *r, uint32_t target_id);
/* Nodes of a type with a valid lease (meta servers for clients), up to max. */
uint32_t mgc_alive_nodes(const struct mg_routing *r, uint8_t type, const struct mg_node **out,
                         uint32_t max);

/* Admin calls (valorfs CLI), on the primary. 0 or status. */
int mgc_create_table(struct mgc *m, const struct mg_create_table_req *req,
                     struct mg_create_table_resp *resp);
int mgc_set_target(struct mgc *m, uint32_t target_id, uint8_t state);
/* A connection to node_id was refused (its process may be dead): ask
 * mgmtd, which checks for itself, to take it out now rather than when its
 * lease lapses. Never blocks (sent by the refresh thread); at most once a
 * second per node. */
void mgc_report_down(struct mgc *m, uint32_t node_id);
/* Storage: the SYNCING target in req caught up (resync). 0 or status
 * (VF_E_STALE_CHAIN: the chain changed meanwhile). */
int mgc_sync_done(struct mgc *m, const struct mg_sync_done_req *req);

#endif
