/* conn.c — see conn.h. */
#include "rpc/conn.h"

#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

/* Small frames are parsed straight out of this buffer; a frame that does not
 * fit gets its own payload buffer, so the buffer itself never grows. */
#define CONN_INBUF (64u * 1024u)
/* Reads per readiness event before yielding to other connections. */
#define CONN_READ_BURST 16
#define CONN_IOV_STACK 16

static void conn_io_cb(struct loop_watch *w, uint32_t events);

struct rpc_conn *conn_new(struct loop *l, const struct rpc_transport *tp, int fd,
                          const char *peer, const struct rpc_conn_ops *ops, void *owner,
                          const char *log_comp, size_t max_payload, size_t max_outbuf,
                          uint8_t expect_kind)
{
    struct rpc_conn *c = calloc(1, sizeof(*c));
    uint8_t *in = malloc(CONN_INBUF);
    if (!c || !in) {
        free(c);
        free(in);
        tp->close(fd);
        return NULL;
    }
    atomic_init(&c->refs, 1); /* the loop's */
    c->loop = l;
    c->watch.fd = fd;
    c->watch.cb = conn_io_cb;
    c->tp = tp;
    c->ops = ops;
    c->owner = owner;
    c->log_comp = log_comp ? log_comp : "rpc";
    snprintf(c->peer, sizeof(c->peer), "%s", peer ? peer : "unknown");
    c->max_payload = max_payload;
    c->max_outbuf = max_outbuf;
    c->expect_kind = expect_kind;
    c->in = in;
    c->in_cap = CONN_INBUF;
    c->abort_reason = RPC_E_CLOSED;
    pthread_mutex_init(&c->out_lock, NULL);
    if (loop_add(l, &c->watch, EPOLLIN) < 0) {
        tp->close(fd);
        pthread_mutex_destroy(&c->out_lock);
        free(in);
        free(c);
        return NULL;
    }
    return c;
}

void conn_ref(struct rpc_conn *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

static void free_outq(struct rpc_conn *c)
{
    struct rpc_outbuf *b = c->out_head;
    while (b) {
        struct rpc_outbuf *next = b->next;
        free(b);
        b = next;
    }
    c->out_head = c->out_tail = NULL;
    c->out_bytes = 0;
}

void conn_unref(struct rpc_conn *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    free_outq(c);
    pthread_mutex_destroy(&c->out_lock);
    free(c->in);
    free(c->body);
    free(c);
}

/* Caller holds out_lock. */
static void abort_locked(struct rpc_conn *c, int reason)
{
    if (c->out_closed)
        return;
    c->out_closed = true;
    c->abort_reason = reason;
    free_outq(c);
    /* The fd stays open until the loop tears down, so shutdown is safe here
     * and makes the loop see EOF. */
    c->tp->shutdown(c->watch.fd);
}

void conn_abort(struct rpc_conn *c, int reason)
{
    pthread_mutex_lock(&c->out_lock);
    abort_locked(c, reason);
    pthread_mutex_unlock(&c->out_lock);
}

static int queue_copy(struct rpc_conn *c, const struct iovec *iov, int iovcnt, size_t skip,
                      size_t total)
{
    struct rpc_outbuf *b = malloc(sizeof(*b) + (total - skip));
    if (!b)
        return RPC_E_BUSY;
    b->next = NULL;
    b->len = total - skip;
    b->off = 0;
    size_t pos = 0;
    for (int i = 0; i < iovcnt; i++) {
        size_t n = iov[i].iov_len;
        if (skip >= n) {
            skip -= n;
            continue;
        }
        memcpy(b->data + pos, (const uint8_t *)iov[i].iov_base + skip, n - skip);
        pos += n - skip;
        skip = 0;
    }
    if (c->out_tail)
        c->out_tail->next = b;
    else
        c->out_head = b;
    c->out_tail = b;
    c->out_bytes += b->len;
    if (!c->want_out) {
        c->want_out = true;
        loop_mod(c->loop, &c->watch, EPOLLIN | EPOLLOUT);
    }
    return 0;
}

int conn_send(struct rpc_conn *c, const struct rpc_frame_hdr *h, const struct iovec *iov,
              int iovcnt)
{
    uint8_t hdr[RPC_HDR_SIZE];
    rpc_frame_encode_hdr(h, hdr);
    struct iovec stack_iov[CONN_IOV_STACK];
    struct iovec *v = stack_iov;
    if (iovcnt + 1 > CONN_IOV_STACK) {
        v = malloc(sizeof(*v) * (size_t)(iovcnt + 1));
        if (!v)
            return RPC_E_BUSY;
    }
    v[0].iov_base = hdr;
    v[0].iov_len = RPC_HDR_SIZE;
    size_t total = RPC_HDR_SIZE;
    int n = 1;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_len)
            continue;
        v[n++] = iov[i];
        total += iov[i].iov_len;
    }

    int rc = 0;
    pthread_mutex_lock(&c->out_lock);
    if (c->out_closed) {
        rc = RPC_E_CLOSED;
    } else if (!c->out_head) {
        /* Fast path: nothing queued, write on the caller's thread. */
        size_t done = 0;
        while (done < total) {
            /* Skip the iovecs already written. */
            size_t skip = done;
            int first = 0;
            while (first < n && skip >= v[first].iov_len)
                skip -= v[first++].iov_len;
            struct iovec save = v[first];
            v[first].iov_base = (uint8_t *)v[first].iov_base + skip;
            v[first].iov_len -= skip;
            int cnt = n - first > 1024 ? 1024 : n - first;
            ssize_t w = c->tp->writev(c->watch.fd, v + first, cnt);
            v[first] = save;
            if (w == -EINTR)
                continue;
            if (w == -EAGAIN)
                break;
            if (w < 0) {
                abort_locked(c, RPC_E_CLOSED);
                rc = RPC_E_CLOSED;
                break;
            }
            done += (size_t)w;
        }
        if (rc == 0 && done < total)
            rc = queue_copy(c, v, n, done, total) ? RPC_E_CLOSED : 0;
        if (rc == RPC_E_CLOSED && !c->out_closed)
            abort_locked(c, RPC_E_CLOSED); /* a half-written frame poisons the stream */
    } else if (c->out_bytes + total > c->max_outbuf) {
        rc = RPC_E_BUSY;
    } else {
        rc = queue_copy(c, v, n, 0, total);
    }
    pthread_mutex_unlock(&c->out_lock);
    if (v != stack_iov)
        free(v);
    return rc;
}

/* Loop thread: write queued output. false when the connection failed. */
static bool flush_out(struct rpc_conn *c)
{
    bool ok = true;
    pthread_mutex_lock(&c->out_lock);
    while (c->out_head && !c->out_closed) {
        struct iovec v[64];
        int n = 0;
        for (struct rpc_outbuf *b = c->out_head; b && n < 64; b = b->next, n++) {
            v[n].iov_base = b->data + b->off;
            v[n].iov_len = b->len - b->off;
        }
        ssize_t w = c->tp->writev(c->watch.fd, v, n);
        if (w == -EINTR)
            continue;
        if (w == -EAGAIN)
            break;
        if (w < 0) {
            abort_locked(c, RPC_E_CLOSED);
            ok = false;
            break;
        }
        size_t left = (size_t)w;
        c->out_bytes -= left;
        while (left) {
            struct rpc_outbuf *b = c->out_head;
            size_t rem = b->len - b->off;
            if (left < rem) {
                b->off += left;
                break;
            }
            left -= rem;
            c->out_head = b->next;
            if (!c->out_head)
                c->out_tail = NULL;
            free(b);
        }
    }
    if (!c->out_head && c->want_out && !c->out_closed) {
        c->want_out = false;
        loop_mod(c->loop, &c->watch, EPOLLIN);
    }
    pthread_mutex_unlock(&c->out_lock);
    return ok;
}

void conn_close(struct rpc_conn *c, int reason)
{
    if (c->dead)
        return;
    c->dead = true;
    pthread_mutex_lock(&c->out_lock);
    if (c->out_closed && reason == RPC_E_CLOSED)
        reason = c->abort_reason;
    c->out_closed = true;
    free_outq(c);
    pthread_mutex_unlock(&c->out_lock);
    loop_del(c->loop, &c->watch);
    c->tp->close(c->watch.fd);
    free(c->body);
    c->body = NULL;
    c->ops->on_close(c, reason);
    conn_unref(c);
}

static void protocol_error(struct rpc_conn *c, const char *why)
{
    LOG_WARN(c->log_comp, "protocol error, closing connection peer=%s reason=%s", c->peer, why);
    conn_close(c, RPC_E_PROTO);
}

/* Parse every complete frame in the input buffer. false once closed. */
static bool parse_frames(struct rpc_conn *c)
{
    while (!c->dead && c->in_end - c->in_start >= RPC_HDR_SIZE) {
        size_t avail = c->in_end - c->in_start;
        struct rpc_frame_hdr h;
        if (rpc_frame_decode_hdr(c->in + c->in_start, avail, c->max_payload, &h) < 0) {
            protocol_error(c, "bad frame header");
            return false;
        }
        if (h.kind != c->expect_kind) {
            protocol_error(c, "unexpected frame kind");
            return false;
        }
        size_t frame = RPC_HDR_SIZE + (size_t)h.payload_len;
        if (avail >= frame) {
            const uint8_t *body = c->in + c->in_start + RPC_HDR_SIZE;
            c->in_start += frame;
            c->ops->on_frame(c, &h, body, NULL);
            continue;
        }
        if (frame <= c->in_cap) {
            if (c->in_cap - c->in_start < frame) { /* make room for the rest */
                memmove(c->in, c->in + c->in_start, avail);
                c->in_start = 0;
                c->in_end = avail;
            }
            break;
        }
        /* Too big for the buffer: give the payload its own allocation. */
        c->body = malloc(h.payload_len);
        if (!c->body) {
            protocol_error(c, "out of memory for payload");
            return false;
        }
        c->body_hdr = h;
        c->body_got = avail - RPC_HDR_SIZE;
        memcpy(c->body, c->in + c->in_start + RPC_HDR_SIZE, c->body_got);
        c->in_start = c->in_end = 0;
        break;
    }
    if (c->in_start == c->in_end)
        c->in_start = c->in_end = 0;
    return !c->dead;
}

/* Loop thread: read what is available. false once closed. */
static bool read_input(struct rpc_conn *c)
{
    for (int iter = 0; iter < CONN_READ_BURST && !c->dead; iter++) {
        struct iovec v;
        bool into_body = c->body != NULL;
        if (into_body) {
            v.iov_base = c->body + c->body_got;
            v.iov_len = c->body_hdr.payload_len - c->body_got;
        } else {
            if (c->in_end == c->in_cap) { /* only reachable with in_start > 0 */
                memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
                c->in_end -= c->in_start;
                c->in_start = 0;
            }
            v.iov_base = c->in + c->in_end;
            v.iov_len = c->in_cap - c->in_end;
            if (v.iov_len == 0) { /* cannot happen: parse_frames leaves room */
                protocol_error(c, "input buffer full");
                return false;
            }
        }
        ssize_t n = c->tp->readv(c->watch.fd, &v, 1);
        if (n == -EINTR)
            continue;
        if (n == -EAGAIN)
            return true;
        if (n <= 0) {
            conn_close(c, RPC_E_CLOSED);
            return false;
        }
        if (into_body) {
            c->body_got += (size_t)n;
            if (c->body_got == c->body_hdr.payload_len) {
                uint8_t *body = c->body;
                c->body = NULL;
                c->ops->on_frame(c, &c->body_hdr, body, body);
            }
        } else {
            c->in_end += (size_t)n;
            if (!parse_frames(c))
                return false;
        }
        if ((size_t)n < v.iov_len)
            return true; /* the socket is drained */
    }
    return !c->dead;
}

static void conn_io_cb(struct loop_watch *w, uint32_t events)
{
    struct rpc_conn *c = (struct rpc_conn *)((char *)w - offsetof(struct rpc_conn, watch));
    conn_ref(c); /* callbacks may close it */
    if (!c->dead && (events & EPOLLOUT))
        if (!flush_out(c))
            conn_close(c, RPC_E_CLOSED);
    if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        read_input(c);
    conn_unref(c);
}
