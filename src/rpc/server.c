/* server.c — the RPC server of rpc.h: a listener, `loop_threads` epoll loops
 * that own the accepted connections (round-robin), handlers inline on the
 * loop or on a bounded worker pool, and replies from any thread.
 *
 * Lifetimes. The server is reference counted: one reference for its owner
 * plus one per call not yet answered, so a handler may answer after
 * rpc_server_stop()/free() without touching freed memory (the reply is then
 * dropped because its connection is closed). A call holds a reference on its
 * connection for the same reason.
 */
#include "rpc/conn.h"
#include "rpc/loop.h"
#include "rpc/pool.h"
#include "rpc/rpc.h"
#include "rpc/transport.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NMETHODS 65536

struct handler {
    rpc_handler_fn fn;
    void *arg;
    enum rpc_exec exec;
};

struct rpc_server {
    atomic_int refs; /* owner + unanswered calls */
    char *listen_addr;
    char *name;
    int nloops, nworkers;
    size_t max_payload, max_outbuf;
    int max_queued;
    struct handler *handlers;
    const struct rpc_transport *tp;

    struct loop **loops;
    atomic_uint next_loop;
    struct loop_watch lwatch; /* listener, on loops[0] */
    uint16_t port;
    struct rpc_pool *pool;

    atomic_bool stopping;
    bool started, stopped;

    pthread_mutex_t conns_lock;
    struct rpc_conn *conns; /* every open connection */
};

struct rpc_call {
    struct rpc_pool_item item; /* first: the pool hands it back */
    struct rpc_server *s;
    struct rpc_conn *conn;
    rpc_handler_fn fn;
    void *fn_arg;
    uint64_t id;
    uint64_t deadline;
    uint16_t method;
    size_t len;
    const uint8_t *payload;
    void *owned; /* big payloads arrive in their own buffer */
    uint8_t inline_payload[];
};

static void server_unref(struct rpc_server *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&s->conns_lock);
    free(s->name); /* late replies may still log with it */
    free(s);
}

struct rpc_server *rpc_server_new(const struct rpc_server_opts *o)
{
    if (!o || !o->listen)
        return NULL;
    struct rpc_server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    s->listen_addr = strdup(o->listen);
    s->name = strdup(o->name ? o->name : "rpc");
    s->nloops = o->loop_threads > 0 ? o->loop_threads : 2;
    s->nworkers = o->worker_threads > 0 ? o->worker_threads : 8;
    s->max_payload = o->max_payload ? o->max_payload : RPC_DEFAULT_MAX_PAYLOAD;
    if (s->max_payload > UINT32_MAX)
        s->max_payload = UINT32_MAX;
    s->max_outbuf = o->max_outbuf ? o->max_outbuf : (64u << 20);
    s->max_queued = o->max_queued > 0 ? o->max_queued : 4096;
    s->handlers = calloc(NMETHODS, sizeof(*s->handlers));
    s->tp = &rpc_transport_tcp;
    s->lwatch.fd = -1;
    pthread_mutex_init(&s->conns_lock, NULL);
    if (!s->listen_addr || !s->name || !s->handlers) {
        free(s->listen_addr);
        free(s->name);
        free(s->handlers);
        pthread_mutex_destroy(&s->conns_lock);
        free(s);
        return NULL;
    }
    return s;
}

int rpc_server_handle(struct rpc_server *s, uint16_t method, enum rpc_exec exec,
                      rpc_handler_fn fn, void *arg)
{
    if (!s || !fn || s->started)
        return -EINVAL;
    s->handlers[method] = (struct handler){ .fn = fn, .arg = arg, .exec = exec };
    return 0;
}

uint16_t rpc_server_port(const struct rpc_server *s) { return s->port; }

/* ---------------- replies ---------------- */

static void call_free(struct rpc_call *c)
{
    struct rpc_server *s = c->s;
    conn_unref(c->conn);
    free(c->owned);
    free(c);
    server_unref(s);
}

void rpc_replyv(struct rpc_call *c, int status, const struct iovec *iov, int iovcnt)
{
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    if (len > c->s->max_payload) {
        LOG_WARN(c->s->name, "reply over max_payload, answering toobig method=%u len=%zu",
                 c->method, len);
        status = RPC_E_TOOBIG;
        iovcnt = 0;
        len = 0;
    }
    struct rpc_frame_hdr h = {
        .magic = RPC_MAGIC,
        .version = RPC_VERSION,
        .kind = RPC_KIND_RESPONSE,
        .method = c->method,
        .id = c->id,
        .status = status,
        .payload_len = (uint32_t)len,
    };
    int rc = conn_send(c->conn, &h, iov, iovcnt);
    if (rc == RPC_E_BUSY) {
        /* The peer does not read its answers: drop it rather than buffer
         * without limit. */
        LOG_WARN(c->s->name, "peer not reading, closing connection peer=%s", c->conn->peer);
        conn_abort(c->conn, RPC_E_BUSY);
    }
    call_free(c);
}

void rpc_reply(struct rpc_call *c, int status, const void *payload, size_t len)
{
    struct iovec v = { .iov_base = (void *)payload, .iov_len = len };
    rpc_replyv(c, status, &v, len ? 1 : 0);
}

uint16_t rpc_call_method(const struct rpc_call *c) { return c->method; }

const void *rpc_call_payload(const struct rpc_call *c, size_t *len)
{
    if (len)
        *len = c->len;
    return c->payload;
}

uint64_t rpc_call_deadline(const struct rpc_call *c) { return c->deadline; }
const char *rpc_call_peer(const struct rpc_call *c) { return c->conn->peer; }

/* ---------------- requests ---------------- */

static void reply_now(struct rpc_conn *conn, const struct rpc_frame_hdr *req, int status)
{
    struct rpc_frame_hdr h = {
        .magic = RPC_MAGIC,
        .version = RPC_VERSION,
        .kind = RPC_KIND_RESPONSE,
        .method = req->method,
        .id = req->id,
        .status = status,
    };
    if (conn_send(conn, &h, NULL, 0) == RPC_E_BUSY)
        conn_abort(conn, RPC_E_BUSY);
}

static void run_on_worker(struct rpc_pool_item *it)
{
    struct rpc_call *c = (struct rpc_call *)it;
    /* The caller has given up already: don't spend a worker on it. */
    if (c->deadline && now_ns() > c->deadline) {
        rpc_reply(c, RPC_E_TIMEOUT, NULL, 0);
        return;
    }
    c->fn(c, c->fn_arg);
}

static void drop_queued(struct rpc_pool_item *it)
{
    rpc_reply((struct rpc_call *)it, RPC_E_SHUTDOWN, NULL, 0);
}

static void server_on_frame(struct rpc_conn *conn, const struct rpc_frame_hdr *h,
                            const void *body, void *owned)
{
    struct rpc_server *s = conn->owner;
    if (atomic_load_explicit(&s->stopping, memory_order_relaxed)) {
        free(owned);
        reply_now(conn, h, RPC_E_SHUTDOWN);
        return;
    }
    const struct handler *hd = &s->handlers[h->method];
    if (!hd->fn) {
        free(owned);
        reply_now(conn, h, RPC_E_NOMETHOD);
        return;
    }
    size_t extra = owned ? 0 : h->payload_len;
    struct rpc_call *c = malloc(sizeof(*c) + extra);
    if (!c) {
        free(owned);
        reply_now(conn, h, RPC_E_BUSY);
        return;
    }
    c->s = s;
    c->conn = conn;
    c->fn = hd->fn;
    c->fn_arg = hd->arg;
    c->id = h->id;
    c->method = h->method;
    c->deadline = h->timeout_ms ? now_ns() + (uint64_t)h->timeout_ms * 1000000ull : 0;
    c->len = h->payload_len;
    c->owned = owned;
    if (owned) {
        c->payload = owned;
    } else {
        if (extra)
            memcpy(c->inline_payload, body, extra);
        c->payload = c->inline_payload;
    }
    c->item.run = run_on_worker;
    conn_ref(conn);
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    if (hd->exec == RPC_EXEC_INLINE) {
        hd->fn(c, hd->arg);
        return;
    }
    if (pool_submit(s->pool, &c->item) != 0)
        rpc_reply(c, RPC_E_BUSY, NULL, 0);
}

static void server_on_close(struct rpc_conn *conn, int reason)
{
    struct rpc_server *s = conn->owner;
    if (reason == RPC_E_BUSY)
        LOG_DEBUG(s->name, "closed slow peer=%s", conn->peer);
    pthread_mutex_lock(&s->conns_lock);
    if (conn->owner_prev)
        conn->owner_prev->owner_next = conn->owner_next;
    else if (s->conns == conn)
        s->conns = conn->owner_next;
    if (conn->owner_next)
        conn->owner_next->owner_prev = conn->owner_prev;
    conn->owner_prev = conn->owner_next = NULL;
    pthread_mutex_unlock(&s->conns_lock);
}

static const struct rpc_conn_ops server_conn_ops = {
    .on_frame = server_on_frame,
    .on_close = server_on_close,
};

/* An accepted socket on its way to the loop that will own it. The owning
 * loop creates the connection itself, so everything about it is written by
 * the thread that polls it. */
struct accepted {
    struct rpc_server *s;
    struct loop *loop;
    int fd;
    char peer[64];
};

static void adopt_conn(void *arg)
{
    struct accepted *a = arg;
    struct rpc_server *s = a->s;
    if (atomic_load(&s->stopping)) {
        s->tp->close(a->fd);
        free(a);
        return;
    }
    pthread_mutex_lock(&s->conns_lock);
    struct rpc_conn *c = conn_new(a->loop, s->tp, a->fd, a->peer, &server_conn_ops, s, s->name,
                                  s->max_payload, s->max_outbuf, RPC_KIND_REQUEST);
    if (c) {
        c->owner_next = s->conns;
        if (s->conns)
            s->conns->owner_prev = c;
        s->conns = c;
    }
    pthread_mutex_unlock(&s->conns_lock);
    if (!c)
        LOG_WARN(s->name, "dropping connection peer=%s: out of memory", a->peer);
    else
        LOG_DEBUG(s->name, "accepted peer=%s", a->peer);
    free(a);
}

static void accept_cb(struct loop_watch *w, uint32_t events)
{
    (void)events;
    struct rpc_server *s = (struct rpc_server *)((char *)w - offsetof(struct rpc_server, lwatch));
    for (int i = 0; i < 64; i++) {
        struct accepted *a = malloc(sizeof(*a));
        if (!a)
            return;
        int fd = s->tp->accept(w->fd, a->peer, sizeof(a->peer));
        if (fd < 0) {
            free(a);
            /* Out of fds and similar: keep serving existing connections. */
            if (fd != -EAGAIN && fd != -EINTR)
                LOG_WARN(s->name, "accept failed err=%s", strerror(-fd));
            return;
        }
        unsigned idx = atomic_fetch_add_explicit(&s->next_loop, 1, memory_order_relaxed);
        a->s = s;
        a->loop = s->loops[idx % (unsigned)s->nloops];
        a->fd = fd;
        if (a->loop == s->loops[0])
            adopt_conn(a);
        else if (loop_post(a->loop, adopt_conn, a) < 0) {
            s->tp->close(fd);
            free(a);
        }
    }
}

int rpc_server_start(struct rpc_server *s)
{
    if (!s || s->started)
        return -EINVAL;
    struct sockaddr_storage ss;
    unsigned sl;
    int rc = rpc_parse_addr(s->listen_addr, &ss, &sl);
    if (rc < 0) {
        LOG_ERROR(s->name, "bad listen address addr=%s", s->listen_addr);
        return rc;
    }
    int lfd = s->tp->listen((struct sockaddr *)&ss, (socklen_t)sl, 1024, &s->port);
    if (lfd < 0) {
        LOG_ERROR(s->name, "cannot listen addr=%s err=%s", s->listen_addr, strerror(-lfd));
        return lfd;
    }
    s->loops = calloc((size_t)s->nloops, sizeof(*s->loops));
    s->pool = pool_new(s->nworkers, s->max_queued, s->name);
    if (!s->loops || !s->pool)
        goto fail;
    for (int i = 0; i < s->nloops; i++)
        if (!(s->loops[i] = loop_new()))
            goto fail;
    s->lwatch.fd = lfd;
    s->lwatch.cb = accept_cb;
    if (loop_add(s->loops[0], &s->lwatch, EPOLLIN) < 0)
        goto fail;
    for (int i = 0; i < s->nloops; i++) {
        char n[16];
        snprintf(n, sizeof(n), "%.8s-l%u", s->name, (unsigned)i % 1000u);
        if (loop_start_thread(s->loops[i], n) < 0) {
            for (int j = 0; j < i; j++) {
                loop_stop(s->loops[j]);
                loop_join(s->loops[j]);
            }
            goto fail;
        }
    }
    s->started = true;
    return 0;
fail:
    s->tp->close(lfd);
    s->lwatch.fd = -1;
    if (s->loops)
        for (int i = 0; i < s->nloops; i++)
            loop_free(s->loops[i]);
    free(s->loops);
    s->loops = NULL;
    pool_free(s->pool);
    s->pool = NULL;
    return -ENOMEM;
}

/* Run fn on a loop thread and wait for it. */
struct sync_task {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    void (*fn)(void *);
    void *arg;
};

static void sync_task_run(void *arg)
{
    struct sync_task *t = arg;
    t->fn(t->arg);
    pthread_mutex_lock(&t->lock);
    t->done = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static void run_on_loop(struct loop *l, void (*fn)(void *), void *arg)
{
    struct sync_task t = { .fn = fn, .arg = arg };
    pthread_mutex_init(&t.lock, NULL);
    pthread_cond_init(&t.cond, NULL);
    if (loop_post(l, sync_task_run, &t) == 0) {
        pthread_mutex_lock(&t.lock);
        while (!t.done)
            pthread_cond_wait(&t.cond, &t.lock);
        pthread_mutex_unlock(&t.lock);
    }
    pthread_mutex_destroy(&t.lock);
    pthread_cond_destroy(&t.cond);
}

static void close_listener(void *arg)
{
    struct rpc_server *s = arg;
    loop_del(s->loops[0], &s->lwatch);
    s->tp->close(s->lwatch.fd);
    s->lwatch.fd = -1;
}

void rpc_server_stop(struct rpc_server *s, unsigned grace_ms)
{
    if (!s || !s->started || s->stopped)
        return;
    s->stopped = true;
    run_on_loop(s->loops[0], close_listener, s);
    atomic_store(&s->stopping, true);

    /* refs == 1: only the owner's reference, no call unanswered. */
    uint64_t until = now_ns() + (uint64_t)grace_ms * 1000000ull;
    while (atomic_load(&s->refs) > 1 && now_ns() < until) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    int left = atomic_load(&s->refs) - 1;
    if (left > 0)
        LOG_WARN(s->name, "stopping with calls in flight count=%d", left);

    for (int i = 0; i < s->nloops; i++)
        loop_stop(s->loops[i]);
    for (int i = 0; i < s->nloops; i++)
        loop_join(s->loops[i]);
    /* The loops are gone: this thread may now tear the connections down. */
    for (;;) {
        pthread_mutex_lock(&s->conns_lock);
        struct rpc_conn *c = s->conns;
        pthread_mutex_unlock(&s->conns_lock);
        if (!c)
            break;
        conn_close(c, RPC_E_SHUTDOWN); /* on_close unlinks it */
    }
    pool_stop(s->pool, drop_queued);
}

void rpc_server_free(struct rpc_server *s)
{
    if (!s)
        return;
    rpc_server_stop(s, 0);
    if (s->loops)
        for (int i = 0; i < s->nloops; i++)
            loop_free(s->loops[i]);
    free(s->loops);
    s->loops = NULL;
    pool_free(s->pool);
    s->pool = NULL;
    free(s->handlers);
    s->handlers = NULL;
    free(s->listen_addr);
    s->listen_addr = NULL;
    server_unref(s);
}
