/* service.h — the storage service: local targets served over RPC, writes
 * replicated along CRAQ chains (protocol: src/proto/storage_proto.h).
 *
 * Contract.
 *  - The service takes its routing from a stg_routing_src (the binary wires
 *    it to the mgmtd client; tests give it a static snapshot), so the core
 *    needs no mgmtd.
 *  - stg_service_attach() registers every STG_* method on an RPC server
 *    (worker exec). Handlers never wait for a chunk's turn: a write that
 *    must wait is queued on its chunk and answered later.
 *  - Writes to one chunk are serialised through the whole chain (the head
 *    starts the next one when the previous is acknowledged by the tail);
 *    writes to different chunks run in parallel. TRUNCATE/REMOVE of an ino
 *    wait for that ino's writes in flight and hold back later ones.
 *  - Every request is checked: the target is local; the chain version
 *    equals ours (older: VF_E_STALE_CHAIN; newer: refresh, then
 *    VF_E_NEWER_CHAIN); the target is in the chain (VF_E_NO_ROUTE); client
 *    updates (version 0) only at the head (VF_E_NOT_HEAD); lease valid and
 *    target SERVING/SYNCING (reads: SERVING) else VF_E_NOT_SERVING.
 *  - A successor failure (timeout, connection) is answered upstream with
 *    that status; the client retries once routing changes.
 *  - Retried client updates with the same tag are answered from a per-chunk
 *    memory of recent tags instead of being applied twice.
 *  - A SYNCING successor gets every write as a whole chunk, and the last
 *    SERVING target of a chain resyncs it (resync.h) when routing has
 *    report_synced.
 *
 * Threads: all entry points are thread-safe. stg_service_drain() waits for
 * updates in flight; stg_service_free() must follow rpc_server_stop().
 */
#ifndef VALORFS_STORAGE_SERVICE_H
#define VALORFS_STORAGE_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/mgmtd_proto.h"

struct rpc_server;
struct rpc_client;
struct ce_target;
struct stg_service;

/* Where the routing snapshot comes from. */
struct stg_routing_src {
    /* The current snapshot (never NULL once running) and a reference that
     * release() drops; the snapshot stays valid until then. */
    const struct mg_routing *(*acquire)(void *arg, void **ref);
    void (*release)(void *arg, void *ref);
    /* Fetch a fresh snapshot now (may block up to timeout_ms). 0 or status. */
    int (*refresh)(void *arg, uint32_t timeout_ms);
    /* False once the node's lease lapsed: stop serving. NULL = always. */
    bool (*lease_valid)(void *arg);
    /* Tell mgmtd a SYNCING target caught up (resync.h): 0 or a status.
     * NULL = this service runs no resync. */
    int (*report_synced)(void *arg, const struct mg_sync_done_req *req);
    /* A connection to the node of target_id was refused (mgc_report_down).
     * Must not block. NULL = not reported. */
    void (*report_down)(void *arg, uint32_t target_id);
    void *arg;
};

/* Test hook: runs before a replica applies an update locally. */
typedef void (*stg_apply_hook)(void *arg, uint32_t target_id, uint16_t method);

struct stg_service_opts {
    uint32_t node_id;
    struct ce_target **targets; /* local targets (not owned) */
    uint32_t ntargets;
    struct stg_routing_src routing;
    struct rpc_client *rpc;     /* forwards to successors (not owned) */
    int apply_threads;          /* default 4 */
    uint32_t forward_timeout_ms;/* default 10000 */
    uint32_t state_idle_ms;     /* forget a chunk's turn state (and its tag
                                 * memory) idle this long; default 30000 */
    uint32_t state_soft_max;    /* ...once a shard holds more; default 2048 */
    uint32_t resync_interval_ms;/* how often to look for a SYNCING successor; default 500 */
    stg_apply_hook before_apply;
    void *hook_arg;
};

struct stg_service *stg_service_new(const struct stg_service_opts *o);
int stg_service_attach(struct stg_service *s, struct rpc_server *srv);
/* Wait (up to timeout_ms) until no update is in flight; true if drained. */
bool stg_service_drain(struct stg_service *s, uint32_t timeout_ms);
/* Sync every target (0) or one. 0 or -errno. */
int stg_service_sync(struct stg_service *s, uint32_t target_id);
/* Target reports for mgmtd heartbeats: capacity/used and the state. */
uint32_t stg_service_report(struct stg_service *s, struct mg_target_report *out, uint32_t max);
/* Change state_idle_ms / state_soft_max while running; sweep_now forgets
 * the states idle that long at once (tests). */
void stg_service_set_state_limits(struct stg_service *s, uint32_t idle_ms, uint32_t soft_max,
                                  bool sweep_now);
struct resync_stats;
/* Resync counters (zeros without resync) and a nudge to look for work now. */
void stg_service_resync_stats(struct stg_service *s, struct resync_stats *out);
void stg_service_resync_kick(struct stg_service *s);
/* Chunk turn states held in memory over every target (tests, stats). */
uint64_t stg_service_state_count(struct stg_service *s);
void stg_service_free(struct stg_service *s);

#endif
