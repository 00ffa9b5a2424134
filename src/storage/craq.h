/* craq.h — internals of the storage service shared by service.c (RPC
 * handlers, request checks) and craq.c (the chain update state machine).
 * Not a public contract; see service.h.
 *
 * Per-chunk turn. Each local target has a table of chunk states, sharded by
 * ino so that one shard mutex covers a chunk and its ino's gate. An update
 * holds its chunk's turn from version assignment until it is committed
 * locally and answered; updates arriving meanwhile wait in the chunk's
 * queue (the RPC call stays open, no thread waits). Ino-wide updates
 * (TRUNCATE, REMOVE) hold the ino's gate exclusively: they wait for the
 * ino's chunk updates in flight, and everything arriving after them waits
 * in the ino's queue, so every replica sees one order per ino.
 */
#ifndef VALORFS_STORAGE_CRAQ_H
#define VALORFS_STORAGE_CRAQ_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/wire.h"
#include "proto/storage_proto.h"
#include "storage/service.h"

#define CRAQ_SHARDS 64
#define CRAQ_BUCKETS 1024 /* per shard */
#define CRAQ_TAGS 8       /* recent client tags remembered per chunk / ino */
/* Idle chunk states are forgotten once a shard holds more than
 * state_soft_max of them and they were unused for state_idle_ms (service
 * options): the tag memory only has to outlive a client's retries. */

struct craq_op;

struct cstate {
    struct cstate *hnext;
    uint64_t ino;
    uint32_t index;
    bool ino_level;          /* the ino's gate rather than one chunk */
    bool busy;               /* an update holds the turn */
    struct craq_op *qhead, *qtail;
    uint64_t last_assigned;  /* head: never reuse a version that failed */
    bool dirty;              /* a version is pending (not committed here) */
    uint32_t active;         /* ino gate: chunk updates holding a turn */
    uint32_t refs;           /* ops pointing here (queued or running) */
    uint64_t last_used_ns;
    uint64_t tags[CRAQ_TAGS];
    struct stg_write_resp results[CRAQ_TAGS];
    int tag_next;
};

struct craq_shard {
    pthread_mutex_t mu;
    uint32_t count;          /* chunk states held */
    uint32_t sweep_at;       /* sweep idle states when count exceeds it */
    uint32_t soft_max;       /* sweep_at never goes below it */
    uint64_t idle_ns;        /* states unused this long may go */
    struct cstate *buckets[CRAQ_BUCKETS];
};

struct local_target {
    uint32_t id;
    struct ce_target *ce;
    struct craq_shard shards[CRAQ_SHARDS];
};

struct stg_service {
    struct stg_service_opts o;
    struct local_target *targets;
    uint32_t ntargets;
    struct workq *wq;
    pthread_mutex_t inflight_mu;
    pthread_cond_t inflight_cv;
    uint64_t inflight;       /* updates accepted and not answered yet */
    struct resync *resync;   /* NULL without routing.report_synced */
    pthread_mutex_t repair_mu;
    uint64_t repairs_asked;  /* reads that found a chunk failing its CRC here */
    uint32_t repairs_inflight;
};

/* What the request checks found out about the receiving replica. */
struct route_info {
    struct local_target *tgt;
    bool is_head;
    uint32_t succ_target;    /* 0 = this replica is the tail */
    char succ_addr[VF_MAX_ADDR + 1];
    bool succ_syncing;       /* the successor is SYNCING: forward whole chunks */
};

struct craq_op {
    struct craq_op *next;
    struct stg_service *svc;
    struct local_target *tgt;
    struct rpc_call *call;
    uint16_t method;         /* STG_WRITE / STG_TRUNCATE / STG_REMOVE */
    union {
        struct stg_write_req w;
        struct stg_truncate_req tr;
        struct stg_remove_req rm;
    } req;
    uint64_t ino;
    uint32_t index;          /* STG_WRITE only */
    bool from_client;        /* arrived with version 0 */
    struct cstate *cs;       /* the chunk (STG_WRITE) or the ino gate */
    struct cstate *gate;     /* the ino gate */
    uint32_t succ_target;
    char succ_addr[VF_MAX_ADDR + 1];
    struct wbuf fwd;         /* the forwarded request's header */
    int fwd_status;
    /* rpc_call_async may still be reading the iovecs when the answer
     * arrives: the forward completes when both the caller and the callback
     * let go of it */
    atomic_int fwd_refs;
    /* STG_WRITE forwarded as a whole chunk (STG_WF_FULL/ABSENT): to a
     * SYNCING successor, as received, or as a push */
    bool succ_syncing;
    bool push;               /* send our committed copy, apply nothing here */
    uint8_t fwd_flags;
    void *full_buf;          /* owned; the forwarded chunk when we built it */
    uint32_t full_len;
    /* ops started here rather than by an RPC (call == NULL) answer this */
    void (*done)(void *arg, int status, const struct stg_write_resp *resp);
    void *done_arg;
};

struct local_target *svc_find_target(struct stg_service *s, uint32_t id);

/* Start a chain update (decoded request in op->req, checks passed, op->call
 * open). Answers the call exactly once, now or later. */
void craq_submit(struct craq_op *op, const struct route_info *ri);

/* Push our committed copy of chunk (ino, index) of local target t to the
 * replica named by dest (its target id, chain id and version) at dest_addr,
 * under the chunk's turn here, so no update of the chunk is in flight
 * meanwhile: a resync step (dest = our SYNCING successor) or a repair.
 * done(arg, status, resp) runs exactly once, on a worker or RPC thread;
 * resp (NULL on failure) says the version and length pushed. */
void craq_push(struct stg_service *s, struct local_target *t, const struct stg_route *dest,
               const char *dest_addr, uint64_t ino, uint32_t index,
               void (*done)(void *arg, int status, const struct stg_write_resp *resp),
               void *arg);

/* Apply a push (STG_WF_PUSH) received for local target t: replace or
 * remove the chunk, without taking its turn here — the pusher holds the
 * chunk's turn at its end, so no update of the chunk is in flight below
 * it, and one waiting above it (a repair of an upstream replica) applies
 * here only after the push is answered. 0 or -errno. */
int craq_apply_push(struct local_target *t, const struct stg_write_req *w,
                    struct stg_write_resp *resp);

/* True when the chunk has a pending (uncommitted) version here. */
bool craq_chunk_dirty(struct local_target *t, uint64_t ino, uint32_t index);

/* Chunk and ino states held in memory. */
uint64_t craq_state_count(struct local_target *t);

void craq_target_init(struct local_target *t, uint32_t soft_max, uint64_t idle_ns);
/* New limits; sweep = forget idle states now. */
void craq_set_limits(struct local_target *t, uint32_t soft_max, uint64_t idle_ns, bool sweep);
void craq_target_destroy(struct local_target *t);

void svc_inflight_add(struct stg_service *s, int delta);

#endif
