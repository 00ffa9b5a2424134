/* resync.h — bringing a SYNCING replica up to date (see "Resync" in
 * proto/storage_proto.h).
 *
 * Contract. One background thread per storage service. Each tick (and at
 * once after resync_kick) it asks the routing, for every local target that
 * is the last SERVING member of its chain, whether the next member is
 * SYNCING. For each such (chain, chain version, syncing target) it runs one
 * pass:
 *   1. walk our chunk list and the syncing target's (STG_LIST, in pages)
 *      side by side in (ino, index) order;
 *   2. push, under the chunk's turn (craq_push), every chunk whose version,
 *      length or CRC32C differ, every chunk it lacks, and an "absent" for
 *      every chunk only it has — a bounded number of pushes in flight;
 *   3. when every push succeeded and the chain is still at that version,
 *      report it (stg_routing_src.report_synced): mgmtd makes the target
 *      SERVING.
 * Writes keep flowing during the pass: the chain forwards them to the
 * syncing target as whole chunks, so one pass is enough. A failed pass
 * (a push failed, the chain changed, mgmtd refused) is retried next tick.
 *
 * Progress and the result (chunks compared and pushed, bytes, GB/s) are
 * logged, and readable with resync_stats for reports.
 */
#ifndef VALORFS_STORAGE_RESYNC_H
#define VALORFS_STORAGE_RESYNC_H

#include <stdint.h>

struct stg_service;
struct resync;

struct resync_stats {
    uint64_t passes_done;    /* passes that ended with the target reported synced */
    uint64_t passes_failed;
    uint64_t chunks_compared;
    uint64_t chunks_pushed;
    uint64_t bytes_pushed;
    uint32_t active_target;  /* target being synced now, 0 = none */
};

/* Starts the thread. interval_ms: how often to look for work. */
struct resync *resync_start(struct stg_service *s, uint32_t interval_ms);
/* Look for work now (routing changed). */
void resync_kick(struct resync *r);
void resync_stats(struct resync *r, struct resync_stats *out);
/* Stops the thread (an active pass is abandoned between pushes). */
void resync_stop(struct resync *r);

#endif
