/* rpc.h — valorfs RPC: framed request/response calls over a stream transport.
 *
 * Wire format (all little-endian). Every message is one frame:
 *
 *   struct rpc_frame_hdr (32 bytes)
 *     u32 magic       RPC_MAGIC ("VRPC")
 *     u8  version     RPC_VERSION (1); a peer refuses other versions
 *     u8  kind        RPC_KIND_REQUEST / RPC_KIND_RESPONSE
 *     u16 method      service method id (see src/proto/)
 *     u64 id          request id, chosen by the caller, echoed in the response
 *     i32 status      response: 0 ok, > 0 an errno from the handler,
 *                     < 0 an RPC-level failure (RPC_E_*); request: 0
 *     u32 timeout_ms  request: the caller's remaining budget (0 = none)
 *     u32 payload_len bytes that follow, at most the receiver's max_payload
 *     u32 reserved    0
 *   payload (payload_len bytes)
 *
 * A frame with a bad magic, version, kind or an oversized length is a
 * protocol error: the receiver logs it, answers nothing more and closes the
 * connection. rpc_frame_decode_hdr() is the one decoder of untrusted header
 * bytes; it is bounds-checked and fuzzed.
 *
 * Threads. A server runs `loop_threads` event loops (epoll), each owning the
 * connections it accepted; handlers run either inline on the loop thread
 * (must not block) or on a bounded worker pool (may block). A handler answers
 * with exactly one rpc_reply*() — before returning or later, from any thread.
 *
 * A client owns one event-loop thread and one connection per peer address,
 * shared by every caller: many calls are in flight on a connection at once,
 * matched by id. Completion callbacks run on the client's loop thread and
 * must not block (never call rpc_call_sync() from one); they may start new
 * async calls. Each call has a deadline; when it passes the call completes
 * with RPC_E_TIMEOUT. With RPC_F_RETRY, transport failures (connect refused,
 * connection lost) are retried with exponential backoff until the deadline;
 * only set it for idempotent calls or calls the server de-duplicates.
 *
 * Bounds. max_payload caps frames both ways (default RPC_DEFAULT_MAX_PAYLOAD);
 * a connection's queued output is capped at max_outbuf, beyond which new
 * calls fail with RPC_E_BUSY instead of growing memory without limit.
 */
#ifndef VALORFS_RPC_RPC_H
#define VALORFS_RPC_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define RPC_MAGIC 0x43505256u /* "VRPC" */
#define RPC_VERSION 1
#define RPC_KIND_REQUEST 1
#define RPC_KIND_RESPONSE 2
#define RPC_HDR_SIZE 32
#define RPC_DEFAULT_MAX_PAYLOAD (17u << 20) /* 16 MiB data + room for headers */

/* RPC-level status codes (negative; handler errors are positive errnos). */
enum {
    RPC_E_TIMEOUT = -1,     /* deadline passed */
    RPC_E_CONNECT = -2,     /* could not connect */
    RPC_E_CLOSED = -3,      /* connection lost with the call in flight */
    RPC_E_PROTO = -4,       /* peer sent a malformed frame */
    RPC_E_NOMETHOD = -5,    /* no handler for the method */
    RPC_E_TOOBIG = -6,      /* payload over max_payload */
    RPC_E_BUSY = -7,        /* output buffer full / server overloaded */
    RPC_E_SHUTDOWN = -8,    /* client or server is stopping */
    RPC_E_BADREQ = -9,      /* handler could not decode the request */
};
const char *rpc_strerror(int status);

struct rpc_frame_hdr {
    uint32_t magic;
    uint8_t version, kind;
    uint16_t method;
    uint64_t id;
    int32_t status;
    uint32_t timeout_ms;
    uint32_t payload_len;
    uint32_t reserved;
};

/* Decode the 32-byte header at buf (len bytes available). Returns 0,
 * -EAGAIN when fewer than RPC_HDR_SIZE bytes are available, or -EPROTO when
 * the header is invalid or announces more than max_payload bytes. */
int rpc_frame_decode_hdr(const void *buf, size_t len, size_t max_payload,
                         struct rpc_frame_hdr *out);
void rpc_frame_encode_hdr(const struct rpc_frame_hdr *h, uint8_t out[RPC_HDR_SIZE]);

/* "host:port" → sockaddr; host may be an IPv4/IPv6 literal or a name. */
struct sockaddr_storage;
int rpc_parse_addr(const char *addr, struct sockaddr_storage *ss, unsigned *sslen);

/* ---------------- server ---------------- */

struct rpc_server;
struct rpc_call; /* one incoming request */

enum rpc_exec { RPC_EXEC_INLINE, RPC_EXEC_WORKER };
typedef void (*rpc_handler_fn)(struct rpc_call *call, void *arg);

struct rpc_server_opts {
    const char *listen;      /* "host:port"; port 0 picks one (rpc_server_port) */
    int loop_threads;        /* default 2 */
    int worker_threads;      /* default 8 */
    size_t max_payload;      /* default RPC_DEFAULT_MAX_PAYLOAD */
    size_t max_outbuf;       /* per connection, default 64 MiB */
    int max_queued;          /* requests waiting for a worker, default 4096 */
    const char *name;        /* log component, e.g. "meta" */
};

struct rpc_server *rpc_server_new(const struct rpc_server_opts *o);
/* Register before rpc_server_start(). */
int rpc_server_handle(struct rpc_server *s, uint16_t method, enum rpc_exec exec,
                      rpc_handler_fn fn, void *arg);
/* Bind, listen and start the threads. 0 or -errno (e.g. -EADDRINUSE). */
int rpc_server_start(struct rpc_server *s);
uint16_t rpc_server_port(const struct rpc_server *s);
/* Stop accepting, wait (up to grace_ms) for in-flight calls, close all. */
void rpc_server_stop(struct rpc_server *s, unsigned grace_ms);
void rpc_server_free(struct rpc_server *s);

uint16_t rpc_call_method(const struct rpc_call *c);
const void *rpc_call_payload(const struct rpc_call *c, size_t *len);
/* Absolute CLOCK_MONOTONIC deadline in ns derived from timeout_ms (0 = none). */
uint64_t rpc_call_deadline(const struct rpc_call *c);
const char *rpc_call_peer(const struct rpc_call *c);
/* Answer exactly once; any thread. Frees the call. */
void rpc_reply(struct rpc_call *c, int status, const void *payload, size_t len);
void rpc_replyv(struct rpc_call *c, int status, const struct iovec *iov, int iovcnt);

/* ---------------- client ---------------- */

struct rpc_client;

struct rpc_client_opts {
    uint32_t connect_timeout_ms; /* default 2000 */
    uint32_t default_timeout_ms; /* used when a call passes 0; default 10000 */
    size_t max_payload;          /* default RPC_DEFAULT_MAX_PAYLOAD */
    size_t max_outbuf;           /* per connection, default 64 MiB */
    const char *name;            /* log component */
};

#define RPC_F_RETRY 1u

struct rpc_call_opts {
    uint32_t timeout_ms; /* 0 = client default */
    uint32_t flags;      /* RPC_F_* */
};

/* status: 0, a positive errno from the handler, or RPC_E_*. payload is valid
 * only during the callback. */
typedef void (*rpc_done_fn)(void *arg, int status, const void *payload, size_t len);

struct rpc_client *rpc_client_new(const struct rpc_client_opts *o);
/* Fails every pending call with RPC_E_SHUTDOWN, then frees. */
void rpc_client_free(struct rpc_client *c);

/* Start a call; done() runs exactly once (possibly before this returns, on
 * an immediate failure). Returns 0, or a negative RPC_E_* when done() will
 * NOT run (bad address, payload too big, shutting down).
 * The request bytes are copied or sent before this returns: they need to
 * stay valid until then only — but until then even when done() already ran
 * (so done() must not free them). */
int rpc_call_async(struct rpc_client *c, const char *addr, uint16_t method,
                   const struct iovec *iov, int iovcnt, const struct rpc_call_opts *o,
                   rpc_done_fn done, void *arg);

/* Blocking convenience: returns the status; on status 0 (and on positive
 * errnos that carry a payload) *resp is a malloc'd copy the caller frees
 * (NULL when empty). */
int rpc_call_sync(struct rpc_client *c, const char *addr, uint16_t method,
                  const void *req, size_t req_len, const struct rpc_call_opts *o,
                  void **resp, size_t *resp_len);

#endif
