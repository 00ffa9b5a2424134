/* client.c — the RPC client of rpc.h.
 *
 * One loop thread per client; one connection per peer address, shared by
 * every caller. All call bookkeeping (the id table, the deadline heap, the
 * per-peer queues) sits under one client mutex: whoever removes a call from
 * the id table under it owns the call and runs its done() exactly once, so
 * a response, a timeout, a lost connection and client shutdown never race.
 *
 * Send path. A caller registers its call under the mutex and then writes the
 * frame itself (conn_send writes directly when nothing is queued), so a call
 * costs no loop wake-up. The loop sleeps until the earliest deadline; a call
 * only wakes it when its deadline is earlier than that (rare: timeouts are
 * mostly equal, so deadlines arrive in increasing order).
 *
 * Calls wait on their peer's `waiting` queue (with a private copy of the
 * request) while there is no connection; RPC_F_RETRY calls keep that copy
 * after sending so a lost connection can resend them.
 */
#include "rpc/conn.h"
#include "rpc/loop.h"
#include "rpc/rpc.h"
#include "rpc/transport.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* With no call pending the loop still wakes this often, so that a new call
 * with an ordinary timeout finds the loop's wake-up already early enough and
 * does not have to wake it (no eventfd write on the send path). */
#define IDLE_TICK_NS 1000000000ull
/* A deadline may fire this late rather than cost a wake-up. */
#define TIMER_SLACK_NS 1000000ull
#define BACKOFF_MIN_MS 5u
#define PEER_BUCKETS 256
#define BACKOFF_MAX_MS 500u

enum call_where { IN_NONE, IN_WAITING, IN_SENT };

struct ccall {
    uint64_t id;
    struct ccall *hnext;       /* id table chain */
    struct ccall *prev, *next; /* peer queue */
    enum call_where where;
    size_t heap_idx;
    uint64_t deadline;
    struct peer *peer;
    rpc_done_fn done;
    void *arg;
    uint32_t flags;
    uint16_t method;
    uint8_t *req; /* private copy of the payload (waiting or RETRY) */
    size_t req_len;
    int status; /* set when completed outside the lock */
};

struct callq {
    struct ccall *head, *tail;
};

enum peer_state { P_IDLE, P_CONNECTING, P_UP, P_BACKOFF };

struct peer {
    struct peer *next;  /* every peer, for scans */
    struct peer *hnext; /* address hash chain */
    struct rpc_client *cl;
    char *addr;
    struct sockaddr_storage ss;
    unsigned sslen;
    enum peer_state state;
    struct rpc_conn *conn; /* P_UP; the peer holds a reference */
    struct loop_watch cwatch;
    uint64_t connect_deadline; /* P_CONNECTING */
    uint64_t retry_at;         /* P_BACKOFF */
    uint32_t backoff_ms;
    bool kick_posted;
    struct callq waiting, sent;
};

struct rpc_client {
    uint32_t connect_timeout_ms, default_timeout_ms;
    size_t max_payload, max_outbuf;
    char *name;
    const struct rpc_transport *tp;
    struct loop *loop;

    pthread_mutex_t lock;
    bool stopping;
    struct peer *peers;
    struct peer *peer_hash[PEER_BUCKETS];
    int timed_peers; /* peers in P_CONNECTING or P_BACKOFF */
    struct ccall **buckets;
    size_t nbuckets, ncalls;
    struct ccall **heap;
    size_t heap_len, heap_cap;
    uint64_t next_id;
    uint64_t armed; /* deadline the loop sleeps until; UINT64_MAX = none */
    uint64_t rng;
};

/* ---------------- id table ---------------- */

static bool table_grow(struct rpc_client *c)
{
    size_t nb = c->nbuckets ? c->nbuckets * 2 : 256;
    struct ccall **b = calloc(nb, sizeof(*b));
    if (!b)
        return false;
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct ccall *k = c->buckets[i];
        while (k) {
            struct ccall *next = k->hnext;
            size_t j = (size_t)k->id & (nb - 1);
            k->hnext = b[j];
            b[j] = k;
            k = next;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
    return true;
}

static bool table_insert(struct rpc_client *c, struct ccall *k)
{
    if (c->ncalls >= c->nbuckets && !table_grow(c) && !c->nbuckets)
        return false;
    size_t j = (size_t)k->id & (c->nbuckets - 1);
    k->hnext = c->buckets[j];
    c->buckets[j] = k;
    c->ncalls++;
    return true;
}

static struct ccall *table_remove(struct rpc_client *c, uint64_t id)
{
    if (!c->nbuckets)
        return NULL;
    struct ccall **pp = &c->buckets[(size_t)id & (c->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->hnext)
        if ((*pp)->id == id) {
            struct ccall *k = *pp;
            *pp = k->hnext;
            c->ncalls--;
            return k;
        }
    return NULL;
}

/* ---------------- deadline heap ---------------- */

static void heap_set(struct rpc_client *c, size_t i, struct ccall *k)
{
    c->heap[i] = k;
    k->heap_idx = i;
}

static void heap_up(struct rpc_client *c, size_t i)
{
    struct ccall *k = c->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (c->heap[p]->deadline <= k->deadline)
            break;
        heap_set(c, i, c->heap[p]);
        i = p;
    }
    heap_set(c, i, k);
}

static void heap_down(struct rpc_client *c, size_t i)
{
    struct ccall *k = c->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        uint64_t md = k->deadline;
        if (l < c->heap_len && c->heap[l]->deadline < md) {
            m = l;
            md = c->heap[l]->deadline;
        }
        if (r < c->heap_len && c->heap[r]->deadline < md)
            m = r;
        if (m == i)
            break;
        heap_set(c, i, c->heap[m]);
        i = m;
    }
    heap_set(c, i, k);
}

static bool heap_push(struct rpc_client *c, struct ccall *k)
{
    if (c->heap_len == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 256;
        struct ccall **h = realloc(c->heap, cap * sizeof(*h));
        if (!h)
            return false;
        c->heap = h;
        c->heap_cap = cap;
    }
    heap_set(c, c->heap_len++, k);
    heap_up(c, c->heap_len - 1);
    return true;
}

static void heap_remove(struct rpc_client *c, struct ccall *k)
{
    size_t i = k->heap_idx;
    struct ccall *last = c->heap[--c->heap_len];
    if (i == c->heap_len)
        return;
    heap_set(c, i, last);
    heap_up(c, i);
    heap_down(c, last->heap_idx);
}

/* ---------------- peer queues ---------------- */

static void q_push(struct callq *q, struct ccall *k)
{
    k->next = NULL;
    k->prev = q->tail;
    if (q->tail)
        q->tail->next = k;
    else
        q->head = k;
    q->tail = k;
}

static void q_remove(struct callq *q, struct ccall *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        q->head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        q->tail = k->prev;
    k->prev = k->next = NULL;
}

static void call_unqueue(struct ccall *k)
{
    if (k->where == IN_WAITING)
        q_remove(&k->peer->waiting, k);
    else if (k->where == IN_SENT)
        q_remove(&k->peer->sent, k);
    k->where = IN_NONE;
}

/* Take a call out of every structure; the caller now owns it. Lock held. */
static void call_detach(struct rpc_client *c, struct ccall *k)
{
    table_remove(c, k->id);
    heap_remove(c, k);
    call_unqueue(k);
}

static void call_finish(struct ccall *k, int status, const void *payload, size_t len)
{
    k->done(k->arg, status, payload, len);
    free(k->req);
    free(k);
}

/* A list of calls to complete once the lock is dropped (done() may call back
 * into the client). Linked through ->next. */
struct donelist {
    struct ccall *head;
};

static void done_add(struct donelist *d, struct ccall *k, int status)
{
    k->status = status;
    k->next = d->head;
    d->head = k;
}

static void done_run(struct donelist *d)
{
    struct ccall *k = d->head;
    d->head = NULL;
    while (k) {
        struct ccall *next = k->next;
        call_finish(k, k->status, NULL, 0);
        k = next;
    }
}

/* ---------------- sending ---------------- */

static uint32_t remaining_ms(uint64_t deadline, uint64_t now)
{
    if (deadline <= now)
        return 1;
    uint64_t ms = (deadline - now + 999999) / 1000000;
    return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

static struct rpc_frame_hdr request_hdr(const struct ccall *k, size_t len, uint64_t now)
{
    return (struct rpc_frame_hdr){
        .magic = RPC_MAGIC,
        .version = RPC_VERSION,
        .kind = RPC_KIND_REQUEST,
        .method = k->method,
        .id = k->id,
        .timeout_ms = remaining_ms(k->deadline, now),
        .payload_len = (uint32_t)len,
    };
}

/* Loop thread, lock held: the connection is up, send what waited for it. */
static void flush_waiting(struct rpc_client *c, struct peer *p, struct donelist *fail)
{
    uint64_t now = now_ns();
    while (p->waiting.head) {
        struct ccall *k = p->waiting.head;
        q_remove(&p->waiting, k);
        struct rpc_frame_hdr h = request_hdr(k, k->req_len, now);
        struct iovec v = { .iov_base = k->req, .iov_len = k->req_len };
        int rc = conn_send(p->conn, &h, &v, 1);
        if (rc == RPC_E_BUSY) {
            k->where = IN_NONE;
            table_remove(c, k->id);
            heap_remove(c, k);
            done_add(fail, k, RPC_E_BUSY);
            continue;
        }
        /* On RPC_E_CLOSED the connection's on_close will handle it. */
        k->where = IN_SENT;
        q_push(&p->sent, k);
        if (!(k->flags & RPC_F_RETRY)) {
            free(k->req); /* not resent: the copy is no longer needed */
            k->req = NULL;
        }
    }
}

static uint32_t next_backoff(struct rpc_client *c, struct peer *p)
{
    uint32_t b = p->backoff_ms ? p->backoff_ms : BACKOFF_MIN_MS;
    p->backoff_ms = b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2;
    /* Jitter in [b/2, b] so clients that lost the same server spread out. */
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    uint32_t half = b / 2;
    return half + (uint32_t)(c->rng % (half + 1));
}

static void set_state(struct rpc_client *c, struct peer *p, enum peer_state st)
{
    bool was_timed = p->state == P_CONNECTING || p->state == P_BACKOFF;
    bool is_timed = st == P_CONNECTING || st == P_BACKOFF;
    c->timed_peers += (int)is_timed - (int)was_timed;
    p->state = st;
}

/* Lock held: no connection; fail what may not wait, schedule a retry for
 * the RETRY calls. */
static void peer_down(struct rpc_client *c, struct peer *p, int status, struct donelist *fail)
{
    struct ccall *k = p->waiting.head;
    while (k) {
        struct ccall *next = k->next;
        if (!(k->flags & RPC_F_RETRY) || c->stopping) {
            call_detach(c, k);
            done_add(fail, k, c->stopping ? RPC_E_SHUTDOWN : status);
        }
        k = next;
    }
    if (p->waiting.head && !c->stopping) {
        set_state(c, p, P_BACKOFF);
        p->retry_at = now_ns() + (uint64_t)next_backoff(c, p) * 1000000ull;
    } else {
        set_state(c, p, P_IDLE);
    }
}

static void connect_cb(struct loop_watch *w, uint32_t events);

/* Loop thread, lock held. */
static void start_connect(struct rpc_client *c, struct peer *p, struct donelist *fail)
{
    int fd = c->tp->connect_start((struct sockaddr *)&p->ss, (socklen_t)p->sslen);
    if (fd >= 0) {
        p->cwatch.fd = fd;
        p->cwatch.cb = connect_cb;
        if (loop_add(c->loop, &p->cwatch, EPOLLOUT) == 0) {
            set_state(c, p, P_CONNECTING);
            p->connect_deadline = now_ns() + (uint64_t)c->connect_timeout_ms * 1000000ull;
            return;
        }
        c->tp->close(fd);
        fd = -ENOMEM;
    }
    LOG_DEBUG(c->name, "connect failed peer=%s err=%s", p->addr, strerror(-fd));
    peer_down(c, p, RPC_E_CONNECT, fail);
}

static void client_on_frame(struct rpc_conn *conn, const struct rpc_frame_hdr *h,
                            const void *body, void *owned)
{
    struct peer *p = conn->owner;
    struct rpc_client *c = p->cl;
    pthread_mutex_lock(&c->lock);
    struct ccall *k = table_remove(c, h->id);
    if (k) {
        heap_remove(c, k);
        call_unqueue(k);
        p->backoff_ms = 0; /* the peer answers: next failure retries fast */
    }
    pthread_mutex_unlock(&c->lock);
    if (k) /* else: a late answer to a call that timed out — dropped */
        call_finish(k, h->status, h->payload_len ? body : NULL, h->payload_len);
    free(owned);
}

static void client_on_close(struct rpc_conn *conn, int reason)
{
    struct peer *p = conn->owner;
    struct rpc_client *c = p->cl;
    struct donelist fail = { 0 };
    int status = reason == RPC_E_PROTO ? RPC_E_PROTO : RPC_E_CLOSED;
    pthread_mutex_lock(&c->lock);
    if (p->conn == conn) {
        p->conn = NULL;
        /* Sent calls: RETRY ones wait again for a new connection. */
        struct ccall *k = p->sent.head;
        while (k) {
            struct ccall *next = k->next;
            q_remove(&p->sent, k);
            if ((k->flags & RPC_F_RETRY) && !c->stopping) {
                k->where = IN_WAITING;
                q_push(&p->waiting, k);
            } else {
                k->where = IN_NONE;
                table_remove(c, k->id);
                heap_remove(c, k);
                done_add(&fail, k, c->stopping ? RPC_E_SHUTDOWN : status);
            }
            k = next;
        }
        LOG_DEBUG(c->name, "connection lost peer=%s reason=%s", p->addr, rpc_strerror(reason));
        peer_down(c, p, status, &fail);
        conn_unref(conn); /* the peer's reference */
    }
    pthread_mutex_unlock(&c->lock);
    done_run(&fail);
}

static const struct rpc_conn_ops client_conn_ops = {
    .on_frame = client_on_frame,
    .on_close = client_on_close,
};

static void connect_cb(struct loop_watch *w, uint32_t events)
{
    (void)events;
    struct peer *p = (struct peer *)((char *)w - offsetof(struct peer, cwatch));
    struct rpc_client *c = p->cl;
    int rc = c->tp->connect_finish(w->fd);
    if (rc == -EINPROGRESS)
        return;
    struct donelist fail = { 0 };
    loop_del(c->loop, w);
    pthread_mutex_lock(&c->lock);
    if (rc < 0) {
        c->tp->close(w->fd);
        LOG_DEBUG(c->name, "connect failed peer=%s err=%s", p->addr, strerror(-rc));
        peer_down(c, p, RPC_E_CONNECT, &fail);
    } else {
        struct rpc_conn *conn = conn_new(c->loop, c->tp, w->fd, p->addr, &client_conn_ops, p,
                                         c->name, c->max_payload, c->max_outbuf,
                                         RPC_KIND_RESPONSE);
        if (!conn) {
            peer_down(c, p, RPC_E_CONNECT, &fail);
        } else {
            conn_ref(conn);
            p->conn = conn;
            set_state(c, p, P_UP);
            flush_waiting(c, p, &fail);
        }
    }
    pthread_mutex_unlock(&c->lock);
    done_run(&fail);
}

static void kick_peer(void *arg)
{
    struct peer *p = arg;
    struct rpc_client *c = p->cl;
    struct donelist fail = { 0 };
    pthread_mutex_lock(&c->lock);
    p->kick_posted = false;
    if ((p->state == P_IDLE || p->state == P_BACKOFF) && p->waiting.head && !c->stopping)
        start_connect(c, p, &fail);
    pthread_mutex_unlock(&c->lock);
    done_run(&fail);
}

/* Loop thread, before each sleep: expire calls, drive connects and backoff. */
static uint64_t client_tick(void *arg)
{
    struct rpc_client *c = arg;
    struct donelist fail = { 0 };
    pthread_mutex_lock(&c->lock);
    uint64_t now = now_ns();
    while (c->heap_len && c->heap[0]->deadline <= now) {
        struct ccall *k = c->heap[0];
        call_detach(c, k);
        done_add(&fail, k, RPC_E_TIMEOUT);
    }
    uint64_t next = c->heap_len ? c->heap[0]->deadline : now + IDLE_TICK_NS;
    if (c->timed_peers > 0) {
        for (struct peer *p = c->peers; p; p = p->next) {
            if (p->state == P_CONNECTING && now >= p->connect_deadline) {
                loop_del(c->loop, &p->cwatch);
                c->tp->close(p->cwatch.fd);
                LOG_DEBUG(c->name, "connect timed out peer=%s", p->addr);
                peer_down(c, p, RPC_E_CONNECT, &fail);
            } else if (p->state == P_BACKOFF && now >= p->retry_at) {
                if (p->waiting.head)
                    start_connect(c, p, &fail);
                else
                    set_state(c, p, P_IDLE);
            }
            if (p->state == P_CONNECTING && p->connect_deadline < next)
                next = p->connect_deadline;
            if (p->state == P_BACKOFF && p->retry_at < next)
                next = p->retry_at;
        }
    }
    c->armed = next;
    pthread_mutex_unlock(&c->lock);
    done_run(&fail);
    return next;
}

/* ---------------- public API ---------------- */

struct rpc_client *rpc_client_new(const struct rpc_client_opts *o)
{
    struct rpc_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->connect_timeout_ms = o && o->connect_timeout_ms ? o->connect_timeout_ms : 2000;
    c->default_timeout_ms = o && o->default_timeout_ms ? o->default_timeout_ms : 10000;
    c->max_payload = o && o->max_payload ? o->max_payload : RPC_DEFAULT_MAX_PAYLOAD;
    if (c->max_payload > UINT32_MAX)
        c->max_payload = UINT32_MAX;
    c->max_outbuf = o && o->max_outbuf ? o->max_outbuf : (64u << 20);
    c->name = strdup(o && o->name ? o->name : "rpc-client");
    c->tp = &rpc_transport_tcp;
    c->armed = UINT64_MAX;
    c->rng = now_ns() | 1;
    pthread_mutex_init(&c->lock, NULL);
    c->loop = loop_new();
    if (!c->name || !c->loop || !table_grow(c))
        goto fail;
    loop_set_tick(c->loop, client_tick, c);
    char n[16];
    snprintf(n, sizeof(n), "%.10s-cl", c->name);
    if (loop_start_thread(c->loop, n) < 0)
        goto fail;
    return c;
fail:
    loop_free(c->loop);
    free(c->buckets);
    free(c->name);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return NULL;
}

void rpc_client_free(struct rpc_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_mutex_unlock(&c->lock);
    loop_stop(c->loop);
    loop_join(c->loop);

    /* The loop thread is gone: this thread tears everything down. */
    struct donelist fail = { 0 };
    for (struct peer *p = c->peers; p; p = p->next) {
        if (p->state == P_CONNECTING) {
            loop_del(c->loop, &p->cwatch);
            c->tp->close(p->cwatch.fd);
        }
        pthread_mutex_lock(&c->lock);
        struct rpc_conn *conn = p->conn;
        if (conn)
            conn_ref(conn);
        pthread_mutex_unlock(&c->lock);
        if (conn) {
            conn_close(conn, RPC_E_SHUTDOWN); /* on_close fails its calls */
            conn_unref(conn);
        }
    }
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct ccall *k;
        while ((k = c->buckets[i])) {
            call_detach(c, k);
            done_add(&fail, k, RPC_E_SHUTDOWN);
        }
    }
    pthread_mutex_unlock(&c->lock);
    done_run(&fail);

    struct peer *p = c->peers;
    while (p) {
        struct peer *next = p->next;
        if (p->conn)
            conn_unref(p->conn);
        free(p->addr);
        free(p);
        p = next;
    }
    loop_free(c->loop);
    free(c->buckets);
    free(c->heap);
    free(c->name);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Every call looks its peer up by address: hashed, a client talking to
 * hundreds of storage nodes does not pay a scan per call. */
static size_t addr_hash(const char *addr)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % PEER_BUCKETS;
}

static struct peer *find_peer(struct rpc_client *c, const char *addr)
{
    for (struct peer *p = c->peer_hash[addr_hash(addr)]; p; p = p->hnext)
        if (strcmp(p->addr, addr) == 0)
            return p;
    return NULL;
}

/* Lock held on entry and exit; may drop it to resolve the name. */
static struct peer *get_peer(struct rpc_client *c, const char *addr)
{
    struct peer *p = find_peer(c, addr);
    if (p)
        return p;
    pthread_mutex_unlock(&c->lock);
    struct peer *np = calloc(1, sizeof(*np));
    if (np) {
        np->addr = strdup(addr);
        if (!np->addr || rpc_parse_addr(addr, &np->ss, &np->sslen) < 0) {
            free(np->addr);
            free(np);
            np = NULL;
        }
    }
    pthread_mutex_lock(&c->lock);
    if (!np)
        return NULL;
    p = find_peer(c, addr);
    if (p) { /* another thread won the race */
        free(np->addr);
        free(np);
        return p;
    }
    np->cl = c;
    np->cwatch.fd = -1;
    np->next = c->peers;
    c->peers = np;
    size_t b = addr_hash(addr);
    np->hnext = c->peer_hash[b];
    c->peer_hash[b] = np;
    return np;
}

int rpc_call_async(struct rpc_client *c, const char *addr, uint16_t method,
                   const struct iovec *iov, int iovcnt, const struct rpc_call_opts *o,
                   rpc_done_fn done, void *arg)
{
    if (!c || !addr || !done || iovcnt < 0 || (iovcnt && !iov))
        return RPC_E_BADREQ;
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    if (len > c->max_payload)
        return RPC_E_TOOBIG;
    uint32_t timeout = o && o->timeout_ms ? o->timeout_ms : c->default_timeout_ms;
    uint32_t flags = o ? o->flags : 0;

    struct ccall *k = calloc(1, sizeof(*k));
    if (!k)
        return RPC_E_BUSY;
    k->done = done;
    k->arg = arg;
    k->flags = flags;
    k->method = method;
    k->req_len = len;
    uint64_t now = now_ns();
    k->deadline = now + (uint64_t)timeout * 1000000ull;
    /* RETRY calls may be resent: keep a copy (made outside the lock). */
    if ((flags & RPC_F_RETRY) && len) {
        k->req = malloc(len);
        if (!k->req) {
            free(k);
            return RPC_E_BUSY;
        }
        size_t pos = 0;
        for (int i = 0; i < iovcnt; i++) {
            memcpy(k->req + pos, iov[i].iov_base, iov[i].iov_len);
            pos += iov[i].iov_len;
        }
    }

    pthread_mutex_lock(&c->lock);
    struct peer *p = c->stopping ? NULL : get_peer(c, addr);
    /* get_peer may have dropped the lock: look at stopping afterwards. */
    int err = c->stopping ? RPC_E_SHUTDOWN : !p ? RPC_E_CONNECT : 0;
    if (!err && p->state != P_UP && !k->req && len) {
        /* It has to wait for the connection: it needs its own copy. */
        k->req = malloc(len);
        if (k->req) {
            size_t pos = 0;
            for (int i = 0; i < iovcnt; i++) {
                memcpy(k->req + pos, iov[i].iov_base, iov[i].iov_len);
                pos += iov[i].iov_len;
            }
        } else {
            err = RPC_E_BUSY;
        }
    }
    if (!err) {
        k->id = ++c->next_id;
        k->peer = p;
        if (!table_insert(c, k))
            err = RPC_E_BUSY;
        else if (!heap_push(c, k)) {
            table_remove(c, k->id);
            err = RPC_E_BUSY;
        }
    }
    if (err) {
        pthread_mutex_unlock(&c->lock);
        free(k->req);
        free(k);
        return err;
    }
    struct rpc_conn *conn = NULL;
    bool kick = false;
    if (p->state == P_UP) {
        conn = p->conn;
        conn_ref(conn);
        k->where = IN_SENT;
        q_push(&p->sent, k);
    } else {
        k->where = IN_WAITING;
        q_push(&p->waiting, k);
        /* Connect now, unless a RETRY-only backoff is running. */
        bool idle = p->state == P_IDLE || (p->state == P_BACKOFF && !(flags & RPC_F_RETRY));
        if (idle && !p->kick_posted) {
            p->kick_posted = true;
            kick = true;
        }
    }
    bool wake = k->deadline + TIMER_SLACK_NS < c->armed;
    if (wake)
        c->armed = k->deadline;
    uint64_t id = k->id;
    pthread_mutex_unlock(&c->lock);
    /* From here on the call may complete at any moment on the loop thread:
     * only its id may be used. */
    if (kick)
        loop_post(c->loop, kick_peer, p);
    else if (wake)
        loop_wake(c->loop);
    if (conn) {
        struct rpc_frame_hdr h = {
            .magic = RPC_MAGIC,
            .version = RPC_VERSION,
            .kind = RPC_KIND_REQUEST,
            .method = method,
            .id = id,
            .timeout_ms = timeout,
            .payload_len = (uint32_t)len,
        };
        int rc = conn_send(conn, &h, iov, iovcnt);
        conn_unref(conn);
        if (rc == RPC_E_BUSY) {
            pthread_mutex_lock(&c->lock);
            struct ccall *mine = table_remove(c, id);
            if (mine) {
                heap_remove(c, mine);
                call_unqueue(mine);
            }
            pthread_mutex_unlock(&c->lock);
            if (mine)
                call_finish(mine, RPC_E_BUSY, NULL, 0);
        }
        /* RPC_E_CLOSED: the connection's on_close completes or resends it. */
    }
    return 0;
}

/* ---------------- blocking calls ---------------- */

struct sync_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_bool done;
    int status;
    void *resp;
    size_t len;
};

static void sync_done(void *arg, int status, const void *payload, size_t len)
{
    struct sync_wait *w = arg;
    void *copy = NULL;
    if (len && payload && (status >= 0)) {
        copy = malloc(len);
        if (copy)
            memcpy(copy, payload, len);
        else
            status = RPC_E_BUSY;
    }
    pthread_mutex_lock(&w->lock);
    w->status = status;
    w->resp = copy;
    w->len = copy ? len : 0;
    atomic_store_explicit(&w->done, true, memory_order_release);
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* A loopback round trip is tens of microseconds: spinning that long before
 * sleeping saves the waiter a futex wake-up on the data path — but only when
 * there are cores to spare for the loop threads (measured: on 2 cores the
 * spinning waiter slows the round trip down). */
#define SYNC_SPIN_NS 30000ull
#define SYNC_SPIN_MIN_CPUS 4

static uint64_t sync_spin_ns(void)
{
    static atomic_int cpus; /* 0 = not probed yet */
    int n = atomic_load_explicit(&cpus, memory_order_relaxed);
    if (n == 0) {
        long v = sysconf(_SC_NPROCESSORS_ONLN);
        n = v > 0 ? (int)v : 1;
        atomic_store_explicit(&cpus, n, memory_order_relaxed);
    }
    return n >= SYNC_SPIN_MIN_CPUS ? SYNC_SPIN_NS : 0;
}

int rpc_call_sync(struct rpc_client *c, const char *addr, uint16_t method, const void *req,
                  size_t req_len, const struct rpc_call_opts *o, void **resp, size_t *resp_len)
{
    if (resp)
        *resp = NULL;
    if (resp_len)
        *resp_len = 0;
    struct sync_wait w = { .status = 0 };
    atomic_init(&w.done, false);
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    struct iovec v = { .iov_base = (void *)req, .iov_len = req_len };
    int rc = rpc_call_async(c, addr, method, &v, req_len ? 1 : 0, o, sync_done, &w);
    if (rc == 0) {
        uint64_t spin = sync_spin_ns();
        uint64_t spin_until = spin ? now_ns() + spin : 0;
        while (spin_until && !atomic_load_explicit(&w.done, memory_order_acquire) &&
               now_ns() < spin_until)
            cpu_relax();
        /* Taking the lock also waits for sync_done to be out of it before
         * w goes away. */
        pthread_mutex_lock(&w.lock);
        while (!atomic_load_explicit(&w.done, memory_order_relaxed))
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        rc = w.status;
        if (resp) {
            *resp = w.resp;
            if (resp_len)
                *resp_len = w.len;
        } else {
            free(w.resp);
        }
    }
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);
    return rc;
}
