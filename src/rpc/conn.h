/* conn.h — one framed RPC connection, shared by the server and the client.
 *
 * Contract.
 *  - Input is read and parsed on the owning loop thread only. Each complete
 *    frame goes to ops->on_frame(): `body` is valid during the call; when
 *    `owned` is non-NULL the callee takes it (free() it) — big payloads are
 *    read straight into their own buffer instead of being copied. The input
 *    buffer never holds more than one max_payload frame + header.
 *  - A bad frame (magic/version/kind/length) or a frame of the wrong kind is
 *    logged once with the peer and the connection is closed.
 *  - conn_send() may be called from any thread: with an empty output queue
 *    it writes directly on the calling thread; what the socket does not take
 *    is queued (bounded by max_outbuf) and flushed by the loop on EPOLLOUT.
 *  - conn_abort() (any thread) makes further sends fail and has the loop
 *    tear the connection down; the loop calls ops->on_close() exactly once.
 *  - Connections are reference counted: the loop holds one reference until
 *    close; whoever keeps a pointer beyond that takes its own.
 */
#ifndef VALORFS_RPC_CONN_H
#define VALORFS_RPC_CONN_H

#include "rpc/loop.h"
#include "rpc/rpc.h"
#include "rpc/transport.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rpc_conn;

struct rpc_conn_ops {
    void (*on_frame)(struct rpc_conn *c, const struct rpc_frame_hdr *h, const void *body,
                     void *owned);
    /* reason: RPC_E_CLOSED (EOF/reset/abort), RPC_E_PROTO or RPC_E_BUSY. */
    void (*on_close)(struct rpc_conn *c, int reason);
};

struct rpc_outbuf {
    struct rpc_outbuf *next;
    size_t len, off;
    uint8_t data[];
};

struct rpc_conn {
    atomic_int refs;
    struct loop *loop;
    struct loop_watch watch;
    const struct rpc_transport *tp;
    const struct rpc_conn_ops *ops;
    void *owner; /* server or client peer */
    struct rpc_conn *owner_prev, *owner_next; /* the owner's list of its connections */
    const char *log_comp;
    char peer[64];
    size_t max_payload;
    size_t max_outbuf;
    uint8_t expect_kind; /* RPC_KIND_REQUEST on a server, RESPONSE on a client */

    /* Output, any thread, under out_lock. */
    pthread_mutex_t out_lock;
    struct rpc_outbuf *out_head, *out_tail;
    size_t out_bytes;
    bool out_closed;  /* no more writes: aborted or torn down */
    bool want_out;    /* EPOLLOUT is armed */
    int abort_reason;

    /* Input, loop thread only. */
    bool dead; /* torn down (fd closed) */
    uint8_t *in;
    size_t in_start, in_end, in_cap;
    struct rpc_frame_hdr body_hdr; /* frame whose big payload is being read */
    uint8_t *body;
    size_t body_got;
};

/* Wrap a connected non-blocking fd and register it with the loop.
 * NULL on failure (the fd is closed). */
struct rpc_conn *conn_new(struct loop *l, const struct rpc_transport *tp, int fd,
                          const char *peer, const struct rpc_conn_ops *ops, void *owner,
                          const char *log_comp, size_t max_payload, size_t max_outbuf,
                          uint8_t expect_kind);
void conn_ref(struct rpc_conn *c);
void conn_unref(struct rpc_conn *c);

/* Send one frame: header + iov. 0, RPC_E_CLOSED (connection gone) or
 * RPC_E_BUSY (queued output would exceed max_outbuf; nothing was sent). */
int conn_send(struct rpc_conn *c, const struct rpc_frame_hdr *h, const struct iovec *iov,
              int iovcnt);
/* Any thread: stop writing, and have the loop close the connection. */
void conn_abort(struct rpc_conn *c, int reason);
/* Loop thread (or after the loop stopped): tear down now; on_close runs. */
void conn_close(struct rpc_conn *c, int reason);

#endif
