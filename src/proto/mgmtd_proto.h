/* mgmtd_proto.h — cluster manager messages: registration, heartbeats and
 * leases, routing info, chain tables, target states.
 *
 * Routing info is one versioned snapshot of the cluster: nodes, targets,
 * chains and chain tables. Its version only grows; every change (a node
 * joins or loses its lease, a target changes state, a chain changes) bumps
 * it. A chain's own version bumps whenever its target list or a member's
 * state changes; storage refuses requests carrying an older chain version.
 *
 * Chain order: targets[0] is the head, targets[n-1] the tail among the
 * targets that are SERVING; SYNCING targets follow the serving ones (they
 * receive forwarded writes but serve no reads); OFFLINE targets are at the
 * end and take no traffic. A target whose node registers (a new process,
 * or one back after losing its lease) returns to its chain as SYNCING
 * while another member is SERVING; the chain's last SERVING target
 * resyncs it (storage_proto.h) and reports MG_SYNC_DONE.
 */
#ifndef VALORFS_PROTO_MGMTD_PROTO_H
#define VALORFS_PROTO_MGMTD_PROTO_H

#include "proto/proto.h"

enum mgmtd_method {
    MG_REGISTER = 0x0101,       /* mg_register_req -> mg_register_resp */
    MG_HEARTBEAT = 0x0102,      /* mg_heartbeat_req -> mg_heartbeat_resp */
    MG_GET_ROUTING = 0x0103,    /* mg_get_routing_req -> mg_routing (or empty payload: unchanged) */
    MG_CREATE_TABLE = 0x0104,   /* mg_create_table_req -> mg_create_table_resp */
    MG_SET_TARGET = 0x0105,     /* mg_set_target_req -> empty (admin: change a target's state) */
    MG_WHO_PRIMARY = 0x0106,    /* empty -> mg_primary */
    MG_UNREGISTER = 0x0107,     /* mg_heartbeat_req (node_id only) -> empty: graceful leave */
    MG_SYNC_DONE = 0x0108,      /* mg_sync_done_req -> empty: a SYNCING target caught up */
    MG_REPORT_DOWN = 0x0109,    /* mg_report_down_req -> empty (0: taken out; EAGAIN: it
                                 * still accepts connections, left to its lease) */
};

enum vf_node_type { NODE_MGMTD = 1, NODE_META = 2, NODE_STORAGE = 3, NODE_CLIENT = 4 };
enum vf_target_state {
    TS_SERVING = 1,   /* in the chain, reads and writes */
    TS_SYNCING = 2,   /* catching up from the chain; writes only */
    TS_WAITING = 3,   /* registered, not in any chain yet */
    TS_OFFLINE = 4,   /* its node lost its lease or an admin took it out */
};
const char *vf_node_type_name(int t);
const char *vf_target_state_name(int s);

struct mg_node {
    uint32_t id;
    uint8_t type;              /* vf_node_type */
    uint8_t alive;             /* holds a valid lease */
    char addr[VF_MAX_ADDR + 1];
    uint64_t lease_expires_ms; /* CLOCK_REALTIME ms when the lease lapses */
};

struct mg_target {
    uint32_t id;
    uint32_t node_id;
    uint32_t chain_id;         /* 0 = none */
    uint8_t state;             /* vf_target_state */
    uint64_t capacity, used;   /* bytes, as last reported */
};

struct mg_chain {
    uint32_t id;
    uint64_t version;
    uint32_t ntargets;
    uint32_t targets[VF_MAX_REPLICAS]; /* order as described above */
};

struct mg_table {
    uint32_t id;
    uint64_t version;
    uint32_t replicas;
    uint32_t nchains;
    uint32_t *chains;          /* allocated by _dec */
};

struct mg_routing {
    uint64_t version;
    uint32_t primary_id;       /* mgmtd node id that produced it */
    uint32_t nnodes, ntargets, nchains, ntables;
    struct mg_node *nodes;     /* all four arrays allocated by _dec */
    struct mg_target *targets;
    struct mg_chain *chains;
    struct mg_table *tables;
};
PROTO_CODEC(mg_routing);
void mg_routing_free(struct mg_routing *r);
/* Lookups in a snapshot (r may be NULL); NULL when absent. Linear scans: a
 * snapshot holds at most a few thousand entries, cheaper than any RPC. */
const struct mg_chain *mg_routing_chain(const struct mg_routing *r, uint32_t chain_id);
const struct mg_target *mg_routing_target(const struct mg_routing *r, uint32_t target_id);
const struct mg_node *mg_routing_node(const struct mg_routing *r, uint32_t node_id);
const struct mg_table *mg_routing_table(const struct mg_routing *r, uint32_t table_id);
/* The RPC address of the node that hosts target_id, or NULL. */
const char *mg_routing_target_addr(const struct mg_routing *r, uint32_t target_id);

struct mg_target_report {
    uint32_t id;
    uint8_t state;             /* what the node believes (SERVING/SYNCING/...) */
    uint64_t capacity, used;
};

struct mg_register_req {
    uint8_t type;              /* vf_node_type */
    uint32_t node_id;          /* configured id; 0 = let mgmtd assign one */
    char addr[VF_MAX_ADDR + 1];/* where the node serves RPC ("" for clients) */
    uint32_t ntargets;
    struct mg_target_report targets[64];
};
PROTO_CODEC(mg_register_req);

struct mg_register_resp {
    uint32_t node_id;
    uint32_t lease_ms;         /* lease length T */
    uint64_t routing_version;
};
PROTO_CODEC(mg_register_resp);

struct mg_heartbeat_req {
    uint32_t node_id;
    uint64_t routing_version;  /* the version the node runs with */
    uint32_t ntargets;
    struct mg_target_report targets[64];
};
PROTO_CODEC(mg_heartbeat_req);

struct mg_heartbeat_resp {
    uint32_t lease_ms;         /* lease renewed for this long from now */
    uint64_t routing_version;  /* newer than the node's: fetch routing */
};
PROTO_CODEC(mg_heartbeat_resp);

struct mg_get_routing_req {
    uint64_t have_version;     /* answer is empty when nothing newer */
};
PROTO_CODEC(mg_get_routing_req);

struct mg_create_table_req {
    uint32_t table_id;         /* 0 = next free id */
    uint32_t replicas;         /* chain length, e.g. 3 */
    uint32_t nchains;          /* 0 = as many as the WAITING targets allow */
};
PROTO_CODEC(mg_create_table_req);

struct mg_create_table_resp {
    uint32_t table_id;
    uint32_t nchains;
    uint64_t routing_version;
};
PROTO_CODEC(mg_create_table_resp);

struct mg_set_target_req {
    uint32_t target_id;
    uint8_t state;             /* vf_target_state */
};
PROTO_CODEC(mg_set_target_req);

/* Sent by the predecessor that resynced target_id, for the chain version
 * it synced under: mgmtd makes the target SERVING only if the chain is
 * still at that version (else VF_E_STALE_CHAIN: sync again). */
struct mg_sync_done_req {
    uint32_t target_id;
    uint32_t chain_id;
    uint64_t chain_version;
};
PROTO_CODEC(mg_sync_done_req);

/* "My connection to node_id was refused": sent by servers and clients so a
 * dead process is taken out at once rather than after its lease. mgmtd
 * believes it only if its own connection attempt is refused too (a process
 * that died leaves a closed port; a partition or an overload does not), and
 * then handles the node as if its lease had lapsed. */
struct mg_report_down_req {
    uint32_t node_id;
    uint32_t reporter_id;      /* 0 = a client */
};
PROTO_CODEC(mg_report_down_req);

struct mg_primary {
    uint32_t node_id;          /* 0 = none yet */
    char addr[VF_MAX_ADDR + 1];
    uint64_t lease_expires_ms;
};
PROTO_CODEC(mg_primary);

#endif
