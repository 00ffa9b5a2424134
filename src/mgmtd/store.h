/* store.h — mgmtd's state and primary lease in the KV store.
 *
 * Keys (all under "MG/"): MG/N/<id be32> node, MG/T/<id> target, MG/C/<id>
 * chain, MG/B/<id> chain table, MG/VERSION the routing version (u64),
 * MG/PRIMARY the primary lease {node id, addr, expires_ms CLOCK_REALTIME}.
 * Records are small wire.h encodings with a leading format byte; a record
 * that does not decode makes store_load() fail (EBADMSG) rather than guess.
 *
 * Fencing: store_commit() writes a batch only inside a transaction that
 * also reads MG/PRIMARY and finds this mgmtd's unexpired lease there, so a
 * deposed primary can never overwrite its successor's state.
 */
#ifndef VALORFS_MGMTD_STORE_H
#define VALORFS_MGMTD_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/wire.h"
#include "mgmtd/state.h"

struct kv_db;

/* Every record of st (and the routing version) as a batch of puts. */
void store_batch_state(const struct mg_state *st, struct wbuf *batch);

/* Apply a batch if we still hold the primary lease at now_real_ms.
 * 0, EPERM (lease lost or held by another), or EIO. */
int store_commit(struct kv_db *kv, const struct wbuf *batch, uint32_t self_id,
                 const char *self_addr, uint64_t now_real_ms);

/* Replace st with what the store holds. 0, EBADMSG or EIO. */
int store_load(struct kv_db *kv, struct mg_state *st);

/* One election round (see server.c): extend our lease, take an absent or
 * expired one, or leave another's alone. *holder is the record after the
 * round (node_id 0 = none); *was_absent tells that no record existed before
 * (a fresh store: there is no earlier primary to wait out). 0 or EIO. */
int store_elect(struct kv_db *kv, uint32_t self_id, const char *self_addr, uint32_t lease_ms,
                uint64_t now_real_ms, struct mg_primary *holder, bool *was_absent);

/* Graceful step-down: mark our lease expired now (kept, so a successor
 * still waits one lease before acting). */
void store_release(struct kv_db *kv, uint32_t self_id, const char *self_addr,
                   uint64_t now_real_ms);

#endif
