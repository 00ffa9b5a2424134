/* server.h — the meta RPC service: every META_* method on the worker pool,
 * decoded, run by the meta core, encoded back.
 *
 * Contract. A request that does not decode (or breaks meta_req_check's
 * per-method rules) is answered RPC_E_BADREQ; an operation error is its
 * positive errno; success carries an encoded meta_resp. Nothing a client
 * sends can crash the server.
 */
#ifndef VALORFS_META_SERVER_H
#define VALORFS_META_SERVER_H

#include <stdint.h>

struct rpc_server;
struct meta_core;

/* Register the handlers on s (before rpc_server_start). 0 or -errno. */
int meta_server_register(struct rpc_server *s, struct meta_core *mc);

/* One request's payload → status and encoded answer (malloc'd in *out,
 * NULL when empty). The handler's core, exposed for tests and fuzzing. */
int meta_server_dispatch(struct meta_core *mc, uint16_t method, const void *payload, size_t len,
                         void **out, size_t *out_len);

#endif
