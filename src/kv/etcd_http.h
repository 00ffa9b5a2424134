/* etcd_http.h — requests to an etcd cluster's JSON gateway over HTTP/1.1
 * (libcurl), with keep-alive connections, endpoint failover and retries.
 *
 * A struct etcd_conn is shared by any number of threads: each request takes
 * a curl handle (and its kept-alive connection) from a pool. All requests go
 * to one "current" endpoint; a connection failure or an "unavailable"
 * answer moves everyone to the next one.
 */
#ifndef VALORFS_KV_ETCD_HTTP_H
#define VALORFS_KV_ETCD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct etcd_conn;

/* endpoints: "HOST:PORT[,HOST:PORT...]" (at most 16). NULL with a one-line
 * reason on a malformed list. No I/O happens here. */
struct etcd_conn *etcd_conn_new(const char *endpoints, char *err, size_t errlen);
void etcd_conn_free(struct etcd_conn *c);
/* The endpoint list as given (for messages). */
const char *etcd_conn_endpoints(const struct etcd_conn *c);

struct etcd_reply {
    char *body; /* malloc'd, NUL-terminated; the caller frees */
    size_t len;
};

/* POST body to path (e.g. "/v3/kv/range") until some endpoint answers 200
 * or deadline_ns (CLOCK_MONOTONIC) passes. Connection failures, timeouts and
 * etcd's "unavailable"-class errors are retried on the next endpoint with
 * jittered backoff. *maybe_sent becomes true when an attempt may have
 * reached etcd without its answer reaching us (the caller decides whether
 * that matters; it is never reset to false).
 *
 * Returns 0 (reply filled), or:
 *   -EIO     deadline passed (why is in why[] and logged at most once a second)
 *   -EAGAIN  the revision asked for was compacted
 *   -E2BIG   the request exceeds etcd's limits (size or operations)
 *   -ENOSPC  etcd's space quota is exhausted
 *   -EPROTO  any other error answer (logged with etcd's message)
 *   -ENOMEM
 */
int etcd_call(struct etcd_conn *c, const char *path, const char *body, size_t len,
              int64_t deadline_ns, struct etcd_reply *reply, bool *maybe_sent, char *why,
              size_t whylen);

/* CLOCK_MONOTONIC in ns. */
int64_t etcd_now_ns(void);

#endif
