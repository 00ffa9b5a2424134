/* server_internal.h — the mgmtd instance shared by server.c (lifecycle,
 * election, lease checks) and handlers.c (RPC methods).
 *
 * Locks: change_lock serializes every state change from mutation through
 * its KV commit to publication, so commits land in order; lock guards the
 * in-memory fields below and is held only briefly (never across the KV or
 * the network). Order: change_lock before lock.
 */
#ifndef VALORFS_MGMTD_SERVER_INTERNAL_H
#define VALORFS_MGMTD_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "mgmtd/mgmtd.h"
#include "mgmtd/state.h"
#include "proto/mgmtd_proto.h"

struct rpc_server;

/* An encoded routing snapshot shared by concurrent replies. */
struct routing_blob {
    int refs;
    uint64_t version;
    size_t len;
    uint8_t data[];
};

struct mgmtd {
    struct mgmtd_opts o;
    char self_addr[VF_MAX_ADDR + 1];
    struct kv_db *kv;
    bool own_kv;
    struct rpc_server *srv;
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t change_lock;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;

    /* election */
    bool holder;                /* MG/PRIMARY names us */
    bool loaded;                /* state reloaded: we act as primary */
    uint64_t my_expires_ms;     /* our lease, CLOCK_REALTIME */
    uint64_t active_at_ms;      /* CLOCK_REALTIME when we may start acting */
    struct mg_primary known;    /* the record as last read */

    struct mg_state st;
    struct routing_blob *routing; /* published snapshot; NULL when not acting */
};

uint64_t mg_now_real_ms(void);
uint64_t mg_now_mono_ms(void);

/* Under m->lock. */
bool mg_acting(const struct mgmtd *m, uint64_t now_real_ms);

/* Run mutate on the state (as primary), commit the result to the KV and
 * publish it. Returns 0, mutate's error, or VF_E_NOT_PRIMARY (we are not,
 * or no longer, the primary). */
typedef int (*mg_mutate_fn)(struct mgmtd *m, struct mg_state *st, void *arg);
int mg_apply_change(struct mgmtd *m, mg_mutate_fn mutate, void *arg, uint64_t *version_out);

/* Register every method on m->srv. */
int mg_register_handlers(struct mgmtd *m);

void routing_blob_put(struct routing_blob *b);

#endif
