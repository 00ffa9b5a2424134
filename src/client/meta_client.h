/* meta_client.h — calls to the metadata service.
 *
 * mc_call() encodes a meta_req, sends it to one meta server and hands the
 * decoded meta_resp to cb on the RPC client's loop thread (or on the meta
 * client's timer thread after a retry, or before mc_call returns on an
 * immediate failure). cb must not block; resp (and its data) is valid only
 * during cb. status is 0 or a positive errno; transport and service
 * failures that could not be retried become EIO.
 *
 * Server choice. The meta servers are the alive NODE_META nodes of the
 * routing; each client starts at a random one (spreading clients) and moves
 * to the next, after a jittered backoff (20 ms doubling to 1 s), on
 * RPC_E_CONNECT, RPC_E_BUSY, VF_E_NOT_SERVING, RPC_E_CLOSED or
 * RPC_E_TIMEOUT, until the call's deadline (op_timeout_ms); only then EIO.
 *
 * Exactly once. Every call of a state-changing method (all but the
 * idempotent ones: lookup, getattr, readdir, readlink, getxattr, listxattr,
 * statfs, access) carries a request id (meta_req.req_client = this
 * instance's random 64-bit id, req_seq = its call counter), the same in
 * every resend. meta records the answer with the effect, so a resend of a
 * call that was applied but whose answer was lost (the server died, the
 * connection broke, the attempt timed out) is answered from the record on
 * any meta server and never applied twice (src/meta/meta_core.h). A caller
 * never sets the id fields itself; mc_call overwrites them.
 */
#ifndef VALORFS_CLIENT_META_CLIENT_H
#define VALORFS_CLIENT_META_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/meta_proto.h"

struct rpc_client;
struct mgc;
struct mc;

struct mc_opts {
    uint32_t rpc_timeout_ms;   /* one attempt; default 10000 */
    uint32_t op_timeout_ms;    /* whole call incl. moving between servers; default 30000 */
    const char *addrs;         /* fixed "host:port[,...]" instead of routing (tests); NULL */
};
void mc_opts_default(struct mc_opts *o);

/* rpc and mgc are shared, not owned; mgc may be NULL when opts->addrs is set. */
struct mc *mc_new(struct rpc_client *rpc, struct mgc *mgc, const struct mc_opts *opts);
void mc_free(struct mc *mc);

typedef void (*mc_done_fn)(void *arg, int status, const struct meta_resp *resp);

/* cb runs exactly once. */
void mc_call(struct mc *mc, uint16_t method, const struct meta_req *req, mc_done_fn cb,
             void *arg);
/* Blocking: status; on 0, *resp is filled and its data points into *buf,
 * which the caller frees (free(NULL) is fine). */
int mc_call_sync(struct mc *mc, uint16_t method, const struct meta_req *req,
                 struct meta_resp *resp, void **buf);

bool mc_idempotent(uint16_t method);

#endif
