/* mgmtd.h — the valorfs cluster manager as a library (valorfs-mgmtd's main.c
 * and the tests run it in-process).
 *
 * Contract. mgmtd_start() opens (or borrows) the KV store, listens, and
 * runs one background thread that every election_ms takes part in the
 * primary election (lease record MG/PRIMARY in the KV, primary_lease_ms
 * long) and, while primary, every min(1 s, lease_ms/4) drops the nodes whose
 * lease (lease_ms since their last heartbeat) lapsed.
 *
 * A mgmtd that takes the primary lease acts only after one full
 * primary_lease_ms has passed (any earlier primary has stopped acting by
 * then, even with modest clock skew), except on a fresh store that never
 * had a primary; it then reloads the state from the KV and bumps the routing
 * version. Until then, and whenever it is a standby, it answers every method
 * except MG_WHO_PRIMARY with VF_E_NOT_PRIMARY carrying the primary's
 * address (empty when no primary is acting). Every state change is
 * committed to the KV, fenced by the lease, before it is answered or
 * published; a primary whose commit is refused steps down.
 *
 * The routing snapshot is rebuilt on every change; heartbeats renew leases
 * and update target capacity/used in memory without a new version, so those
 * fields in a snapshot are as of its version's change.
 *
 * Node ids: a node registering with id 0 gets one above every id known.
 *
 * Requirements: primary_lease_ms >= 2 * election_ms (the lease is renewed at
 * least twice per lease length).
 */
#ifndef VALORFS_MGMTD_MGMTD_H
#define VALORFS_MGMTD_MGMTD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kv_db;
struct mgmtd;

#define MGMTD_DEFAULT_LEASE_MS 60000u
#define MGMTD_DEFAULT_ELECTION_MS 10000u
#define MGMTD_DEFAULT_PRIMARY_LEASE_MS 30000u

struct mgmtd_opts {
    const char *listen;          /* "host:port"; port 0 picks one */
    const char *advertise;       /* address others reach us at; default: listen
                                    host (the host name if a wildcard) + port */
    uint32_t node_id;            /* this mgmtd's id; distinct per mgmtd; default 1 */
    const char *kv_uri;          /* e.g. "lmdb:/var/lib/valorfs/mgmtd-kv" */
    struct kv_db *kv;            /* or an open store to share (not closed by us) */
    uint32_t lease_ms;           /* node lease T; default MGMTD_DEFAULT_LEASE_MS */
    uint32_t election_ms;        /* default MGMTD_DEFAULT_ELECTION_MS */
    uint32_t primary_lease_ms;   /* default MGMTD_DEFAULT_PRIMARY_LEASE_MS */
    int loop_threads;            /* RPC event loops; default 1 */
    int worker_threads;          /* RPC workers (KV commits); default 2 */
};

/* NULL on failure with a one-line reason in err. */
struct mgmtd *mgmtd_start(const struct mgmtd_opts *o, char *err, size_t errlen);
/* Stop serving, step down (our lease is marked expired, so a standby takes
 * over after its own one-lease wait) and free. */
void mgmtd_stop(struct mgmtd *m);

/* The advertised "host:port". */
const char *mgmtd_addr(const struct mgmtd *m);
/* True while this mgmtd acts as the primary. */
bool mgmtd_is_primary(struct mgmtd *m);
/* The routing version this mgmtd last published (0 when not primary). */
uint64_t mgmtd_routing_version(struct mgmtd *m);

#endif
