/* test_rpc.c — unit tests of the RPC library over loopback TCP. */
#include "rpc/rpc.h"

#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

enum {
    M_ECHO = 1,
    M_ECHO_WORKER = 2,
    M_SLOW = 3,      /* worker: sleeps the u32 ms in the payload, then echoes */
    M_LATER = 4,     /* worker: answers from another thread 20 ms later */
    M_THREE = 5,     /* answers with three iovecs */
    M_HOLD = 6,      /* never answers until the test releases the calls */
    M_ERRNO = 7,     /* answers ENOENT with a payload */
};

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void h_echo(struct rpc_call *c, void *arg)
{
    (void)arg;
    size_t len;
    const void *p = rpc_call_payload(c, &len);
    rpc_reply(c, 0, p, len);
}

static void h_slow(struct rpc_call *c, void *arg)
{
    (void)arg;
    size_t len;
    const uint8_t *p = rpc_call_payload(c, &len);
    uint32_t ms = 0;
    if (len >= 4)
        memcpy(&ms, p, 4);
    sleep_ms(ms);
    rpc_reply(c, 0, p, len);
}

static void *later_thread(void *arg)
{
    struct rpc_call *c = arg;
    sleep_ms(20);
    size_t len;
    const void *p = rpc_call_payload(c, &len);
    rpc_reply(c, 0, p, len);
    return NULL;
}

static void h_later(struct rpc_call *c, void *arg)
{
    (void)arg;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, later_thread, c) == 0);
    pthread_detach(t);
}

static void h_three(struct rpc_call *c, void *arg)
{
    (void)arg;
    struct iovec v[3] = {
        { .iov_base = "abc", .iov_len = 3 },
        { .iov_base = "", .iov_len = 0 },
        { .iov_base = "defgh", .iov_len = 5 },
    };
    rpc_replyv(c, 0, v, 3);
}

static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rpc_call *held[64];
static int nheld;

static void h_hold(struct rpc_call *c, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&held_lock);
    CHECK(nheld < 64);
    held[nheld++] = c;
    pthread_mutex_unlock(&held_lock);
}

static void release_held(void)
{
    pthread_mutex_lock(&held_lock);
    for (int i = 0; i < nheld; i++)
        rpc_reply(held[i], 0, NULL, 0);
    nheld = 0;
    pthread_mutex_unlock(&held_lock);
}

static void h_errno(struct rpc_call *c, void *arg)
{
    (void)arg;
    rpc_reply(c, ENOENT, "why", 3);
}

static struct rpc_server *start_server(const char *listen, size_t max_payload)
{
    struct rpc_server_opts o = {
        .listen = listen, .loop_threads = 2, .worker_threads = 4,
        .max_payload = max_payload, .name = "test-srv",
    };
    struct rpc_server *s = rpc_server_new(&o);
    CHECK(s);
    CHECK(rpc_server_handle(s, M_ECHO, RPC_EXEC_INLINE, h_echo, NULL) == 0);
    CHECK(rpc_server_handle(s, M_ECHO_WORKER, RPC_EXEC_WORKER, h_echo, NULL) == 0);
    CHECK(rpc_server_handle(s, M_SLOW, RPC_EXEC_WORKER, h_slow, NULL) == 0);
    CHECK(rpc_server_handle(s, M_LATER, RPC_EXEC_WORKER, h_later, NULL) == 0);
    CHECK(rpc_server_handle(s, M_THREE, RPC_EXEC_INLINE, h_three, NULL) == 0);
    CHECK(rpc_server_handle(s, M_HOLD, RPC_EXEC_INLINE, h_hold, NULL) == 0);
    CHECK(rpc_server_handle(s, M_ERRNO, RPC_EXEC_INLINE, h_errno, NULL) == 0);
    int rc = rpc_server_start(s);
    CHECK(rc == 0);
    CHECK(rpc_server_port(s) != 0);
    return s;
}

static void addr_of(const struct rpc_server *s, char *out, size_t len)
{
    snprintf(out, len, "127.0.0.1:%u", rpc_server_port(s));
}

static struct rpc_client *new_client(void)
{
    struct rpc_client_opts o = { .connect_timeout_ms = 1000, .default_timeout_ms = 5000,
                                 .name = "test-cl" };
    struct rpc_client *c = rpc_client_new(&o);
    CHECK(c);
    return c;
}

/* A tiny completion counter. */
struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, want;
};

static void waiter_init(struct waiter *w, int want)
{
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->done = 0;
    w->want = want;
}

static void waiter_add(struct waiter *w)
{
    pthread_mutex_lock(&w->lock);
    w->done++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static int waiter_wait(struct waiter *w, unsigned ms)
{
    uint64_t until = now_ns() + (uint64_t)ms * 1000000ull;
    pthread_mutex_lock(&w->lock);
    while (w->done < w->want && now_ns() < until) {
        pthread_mutex_unlock(&w->lock);
        sleep_ms(1);
        pthread_mutex_lock(&w->lock);
    }
    int d = w->done;
    pthread_mutex_unlock(&w->lock);
    return d;
}

static void waiter_destroy(struct waiter *w)
{
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
}

/* ---------------- tests ---------------- */

static void test_frame_codec(void)
{
    struct rpc_frame_hdr h = { .magic = RPC_MAGIC, .version = RPC_VERSION,
                               .kind = RPC_KIND_REQUEST, .method = 0xBEEF,
                               .id = 0x0102030405060708ull, .status = -7,
                               .timeout_ms = 1234, .payload_len = 99 };
    uint8_t b[RPC_HDR_SIZE];
    rpc_frame_encode_hdr(&h, b);
    CHECK(memcmp(b, "VRPC", 4) == 0);
    struct rpc_frame_hdr d;
    CHECK(rpc_frame_decode_hdr(b, sizeof(b), 1000, &d) == 0);
    CHECK(d.method == 0xBEEF && d.id == h.id && d.status == -7 && d.timeout_ms == 1234 &&
          d.payload_len == 99 && d.kind == RPC_KIND_REQUEST);
    CHECK(rpc_frame_decode_hdr(b, RPC_HDR_SIZE - 1, 1000, &d) == -EAGAIN);
    CHECK(rpc_frame_decode_hdr(b, sizeof(b), 98, &d) == -EPROTO);
    b[4] = 2;
    CHECK(rpc_frame_decode_hdr(b, sizeof(b), 1000, &d) == -EPROTO);
    b[4] = RPC_VERSION;
    b[5] = 3;
    CHECK(rpc_frame_decode_hdr(b, sizeof(b), 1000, &d) == -EPROTO);
    b[5] = RPC_KIND_RESPONSE;
    b[0] = 'X';
    CHECK(rpc_frame_decode_hdr(b, sizeof(b), 1000, &d) == -EPROTO);

    struct sockaddr_storage ss;
    unsigned sl;
    CHECK(rpc_parse_addr("127.0.0.1:80", &ss, &sl) == 0 && ss.ss_family == AF_INET);
    CHECK(ntohs(((struct sockaddr_in *)&ss)->sin_port) == 80);
    CHECK(rpc_parse_addr("[::1]:9000", &ss, &sl) == 0 && ss.ss_family == AF_INET6);
    CHECK(rpc_parse_addr("localhost:1", &ss, &sl) == 0);
    CHECK(rpc_parse_addr("127.0.0.1", &ss, &sl) < 0);
    CHECK(rpc_parse_addr("127.0.0.1:99999", &ss, &sl) < 0);
    CHECK(rpc_parse_addr("127.0.0.1:8x", &ss, &sl) < 0);
    CHECK(rpc_parse_addr("[::1:80", &ss, &sl) < 0);
    CHECK(strcmp(rpc_strerror(RPC_E_TIMEOUT), "rpc: timed out") == 0);
}

static void test_echo(struct rpc_client *c, const char *addr)
{
    void *resp;
    size_t len;
    int rc = rpc_call_sync(c, addr, M_ECHO, "hello", 5, NULL, &resp, &len);
    CHECK(rc == 0 && len == 5 && memcmp(resp, "hello", 5) == 0);
    free(resp);
    rc = rpc_call_sync(c, addr, M_ECHO_WORKER, "w", 1, NULL, &resp, &len);
    CHECK(rc == 0 && len == 1 && memcmp(resp, "w", 1) == 0);
    free(resp);
    rc = rpc_call_sync(c, addr, M_ECHO, NULL, 0, NULL, &resp, &len);
    CHECK(rc == 0 && len == 0 && resp == NULL);
    rc = rpc_call_sync(c, addr, M_ERRNO, NULL, 0, NULL, &resp, &len);
    CHECK(rc == ENOENT && len == 3 && memcmp(resp, "why", 3) == 0);
    free(resp);
}

static void test_big(struct rpc_client *c, const char *addr)
{
    size_t n = 4u << 20;
    uint8_t *buf = malloc(n);
    CHECK(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(i * 7 + (i >> 13));
    void *resp;
    size_t len;
    CHECK(rpc_call_sync(c, addr, M_ECHO_WORKER, buf, n, NULL, &resp, &len) == 0);
    CHECK(len == n && memcmp(resp, buf, n) == 0);
    free(resp);
    free(buf);
}

static void test_nomethod(struct rpc_client *c, const char *addr)
{
    void *resp;
    size_t len;
    CHECK(rpc_call_sync(c, addr, 999, "x", 1, NULL, &resp, &len) == RPC_E_NOMETHOD);
    CHECK(resp == NULL);
}

static void test_replyv(struct rpc_client *c, const char *addr)
{
    void *resp;
    size_t len;
    CHECK(rpc_call_sync(c, addr, M_THREE, NULL, 0, NULL, &resp, &len) == 0);
    CHECK(len == 8 && memcmp(resp, "abcdefgh", 8) == 0);
    free(resp);
}

static void test_later(struct rpc_client *c, const char *addr)
{
    void *resp;
    size_t len;
    uint64_t t0 = now_ns();
    CHECK(rpc_call_sync(c, addr, M_LATER, "late", 4, NULL, &resp, &len) == 0);
    CHECK(now_ns() - t0 >= 19000000ull);
    CHECK(len == 4 && memcmp(resp, "late", 4) == 0);
    free(resp);
}

/* 1000 calls in flight on one connection from 4 threads. */
struct inflight_call {
    uint32_t seq[2]; /* thread, index */
    atomic_int hits;
    int status;
    bool match;
    struct waiter *w;
};

static void inflight_done(void *arg, int status, const void *p, size_t len)
{
    struct inflight_call *k = arg;
    k->status = status;
    k->match = len == sizeof(k->seq) && memcmp(p, k->seq, len) == 0;
    atomic_fetch_add(&k->hits, 1);
    waiter_add(k->w);
}

struct inflight_thread {
    struct rpc_client *c;
    const char *addr;
    struct inflight_call *calls;
    int n;
};

static void *inflight_main(void *arg)
{
    struct inflight_thread *t = arg;
    for (int i = 0; i < t->n; i++) {
        struct iovec v = { .iov_base = t->calls[i].seq, .iov_len = sizeof(t->calls[i].seq) };
        uint16_t m = (i % 3 == 0) ? M_ECHO_WORKER : M_ECHO;
        CHECK(rpc_call_async(t->c, t->addr, m, &v, 1, NULL, inflight_done, &t->calls[i]) == 0);
    }
    return NULL;
}

static void test_inflight(struct rpc_client *c, const char *addr)
{
    enum { THREADS = 4, PER = 250 };
    static struct inflight_call calls[THREADS][PER];
    struct waiter w;
    waiter_init(&w, THREADS * PER);
    struct inflight_thread ts[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < PER; i++) {
            calls[t][i].seq[0] = (uint32_t)t;
            calls[t][i].seq[1] = (uint32_t)i;
            atomic_init(&calls[t][i].hits, 0);
            calls[t][i].w = &w;
        }
        ts[t] = (struct inflight_thread){ c, addr, calls[t], PER };
        CHECK(pthread_create(&th[t], NULL, inflight_main, &ts[t]) == 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    CHECK(waiter_wait(&w, 10000) == THREADS * PER);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER; i++) {
            CHECK(atomic_load(&calls[t][i].hits) == 1);
            CHECK(calls[t][i].status == 0);
            CHECK(calls[t][i].match);
        }
    waiter_destroy(&w);
}

/* A done() callback starts the next call. */
struct chain {
    struct rpc_client *c;
    const char *addr;
    int left;
    int bad;
    struct waiter w;
};

static void chain_done(void *arg, int status, const void *p, size_t len)
{
    struct chain *ch = arg;
    if (status != 0 || len != 5 || memcmp(p, "chain", 5) != 0)
        ch->bad++;
    if (--ch->left > 0) {
        struct iovec v = { .iov_base = "chain", .iov_len = 5 };
        if (rpc_call_async(ch->c, ch->addr, M_ECHO, &v, 1, NULL, chain_done, ch) != 0)
            ch->bad++;
    } else {
        waiter_add(&ch->w);
    }
}

static void test_chain(struct rpc_client *c, const char *addr)
{
    struct chain ch = { .c = c, .addr = addr, .left = 20 };
    waiter_init(&ch.w, 1);
    struct iovec v = { .iov_base = "chain", .iov_len = 5 };
    CHECK(rpc_call_async(c, addr, M_ECHO, &v, 1, NULL, chain_done, &ch) == 0);
    CHECK(waiter_wait(&ch.w, 5000) == 1);
    CHECK(ch.bad == 0 && ch.left == 0);
    waiter_destroy(&ch.w);
}

/* Slow handler, short timeout: RPC_E_TIMEOUT once; the late answer is dropped. */
struct once {
    atomic_int hits;
    int status;
    uint64_t at;
    struct waiter w;
};

static void once_done(void *arg, int status, const void *p, size_t len)
{
    (void)p;
    (void)len;
    struct once *o = arg;
    o->status = status;
    o->at = now_ns();
    atomic_fetch_add(&o->hits, 1);
    waiter_add(&o->w);
}

static void test_timeout(struct rpc_client *c, const char *addr)
{
    struct once o = { .status = 1 };
    waiter_init(&o.w, 1);
    uint32_t ms = 300;
    struct iovec v = { .iov_base = &ms, .iov_len = 4 };
    struct rpc_call_opts co = { .timeout_ms = 50 };
    uint64_t t0 = now_ns();
    CHECK(rpc_call_async(c, addr, M_SLOW, &v, 1, &co, once_done, &o) == 0);
    CHECK(waiter_wait(&o.w, 2000) == 1);
    CHECK(o.status == RPC_E_TIMEOUT);
    uint64_t took = o.at - t0;
    CHECK(took >= 49000000ull && took < 250000000ull);
    sleep_ms(400); /* the late answer arrives meanwhile and must be dropped */
    CHECK(atomic_load(&o.hits) == 1);
    test_echo(c, addr); /* the connection still works */
    waiter_destroy(&o.w);
}

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(bind(fd, (struct sockaddr *)&in, sizeof(in)) == 0);
    socklen_t sl = sizeof(in);
    CHECK(getsockname(fd, (struct sockaddr *)&in, &sl) == 0);
    close(fd);
    return ntohs(in.sin_port);
}

static void test_retry_late_server(void)
{
    uint16_t port = free_port();
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    struct rpc_client *c = new_client();
    struct once o = { .status = 1 };
    waiter_init(&o.w, 1);
    struct rpc_call_opts co = { .timeout_ms = 3000, .flags = RPC_F_RETRY };
    struct iovec v = { .iov_base = "retry", .iov_len = 5 };
    uint64_t t0 = now_ns();
    CHECK(rpc_call_async(c, addr, M_ECHO, &v, 1, &co, once_done, &o) == 0);
    sleep_ms(200);
    CHECK(atomic_load(&o.hits) == 0);
    struct rpc_server *s = start_server(addr, 0);
    CHECK(waiter_wait(&o.w, 3000) == 1);
    CHECK(o.status == 0);
    CHECK(o.at - t0 < 1000000000ull); /* backoff is capped at 500 ms */
    /* Without RETRY, a dead port fails fast with RPC_E_CONNECT. */
    uint16_t dead = free_port();
    char dead_addr[64];
    snprintf(dead_addr, sizeof(dead_addr), "127.0.0.1:%u", dead);
    t0 = now_ns();
    CHECK(rpc_call_sync(c, dead_addr, M_ECHO, "x", 1, NULL, NULL, NULL) == RPC_E_CONNECT);
    CHECK(now_ns() - t0 < 200000000ull);
    /* With RETRY, a dead port runs until the deadline. */
    co.timeout_ms = 150;
    t0 = now_ns();
    CHECK(rpc_call_sync(c, dead_addr, M_ECHO, "x", 1, &co, NULL, NULL) == RPC_E_TIMEOUT);
    CHECK(now_ns() - t0 >= 149000000ull);
    /* Bad addresses are refused up front. */
    CHECK(rpc_call_sync(c, "nonsense", M_ECHO, "x", 1, NULL, NULL, NULL) == RPC_E_CONNECT);
    rpc_client_free(c);
    rpc_server_free(s);
    waiter_destroy(&o.w);
}

static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(connect(fd, (struct sockaddr *)&in, sizeof(in)) == 0);
    return fd;
}

/* true when the server closed the connection within 2 s. */
static bool closed_by_server(int fd)
{
    struct pollfd pf = { .fd = fd, .events = POLLIN };
    uint8_t buf[256];
    for (;;) {
        if (poll(&pf, 1, 2000) <= 0)
            return false;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            return false;
    }
}

static void test_bad_frames(struct rpc_server *s, struct rpc_client *c, const char *addr)
{
    uint16_t port = rpc_server_port(s);
    /* Garbage. */
    int fd = raw_connect(port);
    char junk[64];
    memset(junk, 'Z', sizeof(junk));
    CHECK(send(fd, junk, sizeof(junk), 0) == (ssize_t)sizeof(junk));
    CHECK(closed_by_server(fd));
    close(fd);
    /* A valid header announcing more than max_payload (1 MiB here). */
    fd = raw_connect(port);
    struct rpc_frame_hdr h = { .magic = RPC_MAGIC, .version = RPC_VERSION,
                               .kind = RPC_KIND_REQUEST, .method = M_ECHO, .id = 1,
                               .payload_len = (1u << 20) + 1 };
    uint8_t b[RPC_HDR_SIZE];
    rpc_frame_encode_hdr(&h, b);
    CHECK(send(fd, b, sizeof(b), 0) == (ssize_t)sizeof(b));
    CHECK(closed_by_server(fd));
    close(fd);
    /* A response sent to a server is a protocol error too. */
    fd = raw_connect(port);
    h.payload_len = 0;
    h.kind = RPC_KIND_RESPONSE;
    rpc_frame_encode_hdr(&h, b);
    CHECK(send(fd, b, sizeof(b), 0) == (ssize_t)sizeof(b));
    CHECK(closed_by_server(fd));
    close(fd);
    /* A well-formed raw request gets its answer, split across writes. */
    fd = raw_connect(port);
    h.kind = RPC_KIND_REQUEST;
    h.id = 77;
    h.payload_len = 2;
    rpc_frame_encode_hdr(&h, b);
    CHECK(send(fd, b, 10, 0) == 10);
    sleep_ms(5);
    CHECK(send(fd, b + 10, sizeof(b) - 10, 0) == (ssize_t)sizeof(b) - 10);
    sleep_ms(5);
    CHECK(send(fd, "ok", 2, 0) == 2);
    uint8_t r[RPC_HDR_SIZE + 2];
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t n = recv(fd, r + got, sizeof(r) - got, 0);
        CHECK(n > 0);
        got += (size_t)n;
    }
    struct rpc_frame_hdr rh;
    CHECK(rpc_frame_decode_hdr(r, sizeof(r), 100, &rh) == 0);
    CHECK(rh.kind == RPC_KIND_RESPONSE && rh.id == 77 && rh.status == 0 && rh.payload_len == 2);
    CHECK(memcmp(r + RPC_HDR_SIZE, "ok", 2) == 0);
    close(fd);
    /* The server still serves the others. */
    test_echo(c, addr);
}

static void test_toobig(struct rpc_client *c, const char *addr)
{
    /* The client refuses a payload over its max_payload up front. */
    struct rpc_client_opts o = { .max_payload = 100 };
    struct rpc_client *small = rpc_client_new(&o);
    CHECK(small);
    char buf[101] = { 0 };
    struct iovec v = { .iov_base = buf, .iov_len = sizeof(buf) };
    struct once on = { .status = 1 };
    CHECK(rpc_call_async(small, addr, M_ECHO, &v, 1, NULL, once_done, &on) == RPC_E_TOOBIG);
    CHECK(atomic_load(&on.hits) == 0);
    rpc_client_free(small);
    /* A frame over the server's limit (1 MiB) closes that connection only. */
    size_t n = (1u << 20) + 1;
    void *big = calloc(1, n);
    CHECK(rpc_call_sync(c, addr, M_ECHO, big, n, NULL, NULL, NULL) == RPC_E_CLOSED);
    free(big);
    test_echo(c, addr);
}

static void test_stop_inflight(void)
{
    struct rpc_server *s = start_server("127.0.0.1:0", 0);
    char addr[64];
    addr_of(s, addr, sizeof(addr));
    struct rpc_client *c = new_client();
    CHECK(rpc_call_sync(c, addr, M_ECHO, "x", 1, NULL, NULL, NULL) == 0); /* connected */
    enum { N = 6 };
    struct once o[N];
    uint32_t ms = 100;
    struct iovec v = { .iov_base = &ms, .iov_len = 4 };
    for (int i = 0; i < N; i++) {
        o[i] = (struct once){ .status = 1 };
        waiter_init(&o[i].w, 1);
        CHECK(rpc_call_async(c, addr, M_SLOW, &v, 1, NULL, once_done, &o[i]) == 0);
    }
    sleep_ms(50); /* all reached the server (4 run, 2 queued) */
    rpc_server_stop(s, 2000); /* generous grace: every call finishes */
    for (int i = 0; i < N; i++) {
        CHECK(waiter_wait(&o[i].w, 3000) == 1);
        if (o[i].status != 0)
            fprintf(stderr, "call %d: %s\n", i, rpc_strerror(o[i].status));
        CHECK(o[i].status == 0);
        CHECK(atomic_load(&o[i].hits) == 1);
        waiter_destroy(&o[i].w);
    }
    rpc_server_free(s);

    /* Grace too short: the calls are cut off and fail once with CLOSED. */
    s = start_server("127.0.0.1:0", 0);
    addr_of(s, addr, sizeof(addr));
    ms = 300;
    CHECK(rpc_call_sync(c, addr, M_ECHO, "x", 1, NULL, NULL, NULL) == 0);
    for (int i = 0; i < N; i++) {
        o[i] = (struct once){ .status = 1 };
        waiter_init(&o[i].w, 1);
        CHECK(rpc_call_async(c, addr, M_SLOW, &v, 1, NULL, once_done, &o[i]) == 0);
    }
    sleep_ms(50);
    rpc_server_stop(s, 10);
    for (int i = 0; i < N; i++) {
        CHECK(waiter_wait(&o[i].w, 3000) == 1);
        CHECK(o[i].status == RPC_E_CLOSED);
    }
    rpc_server_free(s); /* handlers still sleeping answer into a closed connection */
    sleep_ms(400);
    for (int i = 0; i < N; i++) {
        CHECK(atomic_load(&o[i].hits) == 1);
        waiter_destroy(&o[i].w);
    }
    rpc_client_free(c);
}

static void test_client_free_pending(void)
{
    struct rpc_server *s = start_server("127.0.0.1:0", 0);
    char addr[64];
    addr_of(s, addr, sizeof(addr));
    struct rpc_client *c = new_client();
    enum { N = 8 };
    struct once o[N];
    char dead_addr[64];
    snprintf(dead_addr, sizeof(dead_addr), "127.0.0.1:%u", free_port());
    struct rpc_call_opts retry = { .timeout_ms = 5000, .flags = RPC_F_RETRY };
    for (int i = 0; i < N; i++) {
        o[i] = (struct once){ .status = 1 };
        waiter_init(&o[i].w, 1);
        /* Half held by the server, half retrying against a dead port. */
        if (i % 2)
            CHECK(rpc_call_async(c, addr, M_HOLD, NULL, 0, NULL, once_done, &o[i]) == 0);
        else
            CHECK(rpc_call_async(c, dead_addr, M_ECHO, NULL, 0, &retry, once_done, &o[i]) == 0);
    }
    for (int tries = 0; tries < 1000; tries++) {
        pthread_mutex_lock(&held_lock);
        int n = nheld;
        pthread_mutex_unlock(&held_lock);
        if (n == N / 2)
            break;
        sleep_ms(1);
    }
    rpc_client_free(c);
    for (int i = 0; i < N; i++) {
        CHECK(atomic_load(&o[i].hits) == 1);
        CHECK(o[i].status == RPC_E_SHUTDOWN);
        waiter_destroy(&o[i].w);
    }
    release_held(); /* answers to a client that is gone: dropped */
    rpc_server_free(s);
}

static void test_server_busy_queue(void)
{
    /* max_queued bounds the worker queue: the excess is answered BUSY. */
    struct rpc_server_opts so = { .listen = "127.0.0.1:0", .loop_threads = 1,
                                  .worker_threads = 1, .max_queued = 2, .name = "busy" };
    struct rpc_server *s = rpc_server_new(&so);
    CHECK(s);
    CHECK(rpc_server_handle(s, M_SLOW, RPC_EXEC_WORKER, h_slow, NULL) == 0);
    CHECK(rpc_server_start(s) == 0);
    char addr[64];
    addr_of(s, addr, sizeof(addr));
    struct rpc_client *c = new_client();
    enum { N = 8 };
    struct once o[N];
    uint32_t ms = 50;
    struct iovec v = { .iov_base = &ms, .iov_len = 4 };
    for (int i = 0; i < N; i++) {
        o[i] = (struct once){ .status = 1 };
        waiter_init(&o[i].w, 1);
        CHECK(rpc_call_async(c, addr, M_SLOW, &v, 1, NULL, once_done, &o[i]) == 0);
    }
    int ok = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        CHECK(waiter_wait(&o[i].w, 3000) == 1);
        ok += o[i].status == 0;
        busy += o[i].status == RPC_E_BUSY;
        waiter_destroy(&o[i].w);
    }
    CHECK(ok + busy == N);
    CHECK(ok >= 2 && ok <= 4 && busy >= 4);
    rpc_client_free(c);
    rpc_server_free(s);
}

/* A RETRY call survives the loss of its connection: it is resent to the
 * server that comes back on the same address. */
static void test_retry_lost_connection(void)
{
    struct rpc_server *s = start_server("127.0.0.1:0", 0);
    char addr[64];
    addr_of(s, addr, sizeof(addr));
    struct rpc_client *c = new_client();
    CHECK(rpc_call_sync(c, addr, M_ECHO, "x", 1, NULL, NULL, NULL) == 0);
    struct once retry = { .status = 1 }, plain = { .status = 1 };
    waiter_init(&retry.w, 1);
    waiter_init(&plain.w, 1);
    uint32_t ms = 150;
    struct iovec v = { .iov_base = &ms, .iov_len = 4 };
    struct rpc_call_opts ro = { .timeout_ms = 5000, .flags = RPC_F_RETRY };
    CHECK(rpc_call_async(c, addr, M_SLOW, &v, 1, &ro, once_done, &retry) == 0);
    CHECK(rpc_call_async(c, addr, M_SLOW, &v, 1, NULL, once_done, &plain) == 0);
    sleep_ms(30);
    rpc_server_free(s); /* cuts the connection (waits for its sleeping workers) */
    CHECK(waiter_wait(&plain.w, 2000) == 1);
    CHECK(plain.status == RPC_E_CLOSED);
    CHECK(atomic_load(&retry.hits) == 0);
    s = start_server(addr, 0); /* same port: SO_REUSEADDR */
    CHECK(waiter_wait(&retry.w, 4000) == 1);
    CHECK(retry.status == 0);
    CHECK(atomic_load(&retry.hits) == 1 && atomic_load(&plain.hits) == 1);
    rpc_client_free(c);
    rpc_server_free(s);
    waiter_destroy(&retry.w);
    waiter_destroy(&plain.w);
}

/* A peer that sends requests but never reads the answers is disconnected
 * once max_outbuf bytes of answers are queued for it. */
static void test_peer_not_reading(void)
{
    struct rpc_server_opts so = { .listen = "127.0.0.1:0", .loop_threads = 1,
                                  .max_outbuf = 256u << 10, .name = "slowpeer" };
    struct rpc_server *s = rpc_server_new(&so);
    CHECK(s);
    CHECK(rpc_server_handle(s, M_ECHO, RPC_EXEC_INLINE, h_echo, NULL) == 0);
    CHECK(rpc_server_start(s) == 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) == 0);
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(rpc_server_port(s)),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(connect(fd, (struct sockaddr *)&in, sizeof(in)) == 0);
    size_t plen = 64u << 10;
    uint8_t *frame = calloc(1, RPC_HDR_SIZE + plen);
    CHECK(frame);
    bool cut = false;
    for (int i = 0; i < 400 && !cut; i++) {
        struct rpc_frame_hdr h = { .magic = RPC_MAGIC, .version = RPC_VERSION,
                                   .kind = RPC_KIND_REQUEST, .method = M_ECHO,
                                   .id = (uint64_t)i, .payload_len = (uint32_t)plen };
        rpc_frame_encode_hdr(&h, frame);
        size_t off = 0;
        while (off < RPC_HDR_SIZE + plen) {
            struct pollfd pf = { .fd = fd, .events = POLLOUT };
            if (poll(&pf, 1, 2000) <= 0)
                break; /* the server stopped reading: only possible if stuck */
            ssize_t n = send(fd, frame + off, RPC_HDR_SIZE + plen - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
                cut = true;
                break;
            }
            if (n < 0 && errno == EAGAIN)
                continue;
            CHECK(n > 0);
            off += (size_t)n;
        }
    }
    free(frame);
    CHECK(cut || closed_by_server(fd));
    close(fd);
    /* The server is fine. */
    struct rpc_client *c = new_client();
    char addr[64];
    addr_of(s, addr, sizeof(addr));
    CHECK(rpc_call_sync(c, addr, M_ECHO, "x", 1, NULL, NULL, NULL) == 0);
    rpc_client_free(c);
    rpc_server_free(s);
}

/* Calls from several threads while the server restarts under them: every
 * done() runs exactly once with an allowed status, nothing leaks or races. */
struct churn {
    struct rpc_client *c;
    const char *addr;
    atomic_bool stop;
    atomic_long issued, completed, ok, bad;
};

struct churn_call {
    struct churn *ch;
    uint32_t flags;
    atomic_int hits;
    uint64_t tag;
};

static void churn_done(void *arg, int status, const void *p, size_t len)
{
    struct churn_call *k = arg;
    struct churn *ch = k->ch;
    if (atomic_fetch_add(&k->hits, 1) != 0)
        atomic_fetch_add(&ch->bad, 1); /* twice */
    bool allowed = status == 0 || status == RPC_E_TIMEOUT || status == RPC_E_SHUTDOWN ||
                   (!(k->flags & RPC_F_RETRY) && (status == RPC_E_CLOSED || status == RPC_E_CONNECT));
    if (!allowed || (status == 0 && (len != 8 || memcmp(p, &k->tag, 8) != 0)))
        atomic_fetch_add(&ch->bad, 1);
    if (status == 0)
        atomic_fetch_add(&ch->ok, 1);
    atomic_fetch_add(&ch->completed, 1);
    free(k);
}

static void *churn_main(void *arg)
{
    struct churn *ch = arg;
    uint64_t n = 0;
    while (!atomic_load(&ch->stop)) {
        struct churn_call *k = calloc(1, sizeof(*k));
        CHECK(k);
        k->ch = ch;
        k->flags = (n & 1) ? RPC_F_RETRY : 0;
        k->tag = ((uint64_t)(uintptr_t)ch << 20) ^ n++;
        atomic_init(&k->hits, 0);
        /* The request must outlive rpc_call_async(), and done() (which frees
         * k) may run before it returns: send from a copy. */
        uint64_t tag = k->tag;
        struct iovec v = { .iov_base = &tag, .iov_len = 8 };
        struct rpc_call_opts o = { .timeout_ms = 300, .flags = k->flags };
        uint16_t m = (n % 3 == 0) ? M_ECHO_WORKER : M_ECHO;
        atomic_fetch_add(&ch->issued, 1);
        if (rpc_call_async(ch->c, ch->addr, m, &v, 1, &o, churn_done, k) != 0) {
            atomic_fetch_add(&ch->bad, 1);
            atomic_fetch_add(&ch->completed, 1);
            free(k);
        }
        while (atomic_load(&ch->issued) - atomic_load(&ch->completed) > 200)
            sleep_ms(1);
    }
    return NULL;
}

static void test_churn(void)
{
    struct rpc_server *s = start_server("127.0.0.1:0", 0);
    char addr[64];
    addr_of(s, addr, sizeof(addr));
    struct churn ch = { .c = new_client(), .addr = addr };
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        CHECK(pthread_create(&th[i], NULL, churn_main, &ch) == 0);
    for (int round = 0; round < 4; round++) {
        sleep_ms(80);
        rpc_server_free(s);
        sleep_ms(20);
        s = start_server(addr, 0);
    }
    sleep_ms(100);
    atomic_store(&ch.stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    uint64_t until = now_ns() + 3000000000ull;
    while (atomic_load(&ch.completed) < atomic_load(&ch.issued) && now_ns() < until)
        sleep_ms(1);
    CHECK(atomic_load(&ch.completed) == atomic_load(&ch.issued));
    CHECK(atomic_load(&ch.bad) == 0);
    CHECK(atomic_load(&ch.ok) > 100);
    rpc_client_free(ch.c);
    rpc_server_free(s);
}

/* A server that never reads: once max_outbuf bytes wait in the client's
 * queue, new calls fail fast with RPC_E_BUSY instead of growing memory. */
static void test_client_outbuf_full(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(bind(lfd, (struct sockaddr *)&in, sizeof(in)) == 0 && listen(lfd, 4) == 0);
    socklen_t sl = sizeof(in);
    CHECK(getsockname(lfd, (struct sockaddr *)&in, &sl) == 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(in.sin_port));
    struct rpc_client_opts co = { .max_outbuf = 1u << 20, .default_timeout_ms = 1500 };
    struct rpc_client *c = rpc_client_new(&co);
    CHECK(c);
    /* Connect first (the kernel completes the handshake without accept). */
    struct once first = { .status = 1 };
    waiter_init(&first.w, 1);
    struct rpc_call_opts shortt = { .timeout_ms = 100 };
    CHECK(rpc_call_async(c, addr, M_ECHO, NULL, 0, &shortt, once_done, &first) == 0);
    CHECK(waiter_wait(&first.w, 2000) == 1 && first.status == RPC_E_TIMEOUT);
    enum { N = 40 };
    size_t n = 1u << 20;
    uint8_t *buf = calloc(1, n);
    CHECK(buf);
    struct once o[N];
    struct iovec v = { .iov_base = buf, .iov_len = n };
    for (int i = 0; i < N; i++) {
        o[i] = (struct once){ .status = 1 };
        waiter_init(&o[i].w, 1);
        CHECK(rpc_call_async(c, addr, M_ECHO, &v, 1, NULL, once_done, &o[i]) == 0);
    }
    int busy = 0, timeout = 0;
    for (int i = 0; i < N; i++) {
        CHECK(waiter_wait(&o[i].w, 5000) == 1);
        busy += o[i].status == RPC_E_BUSY;
        timeout += o[i].status == RPC_E_TIMEOUT;
        waiter_destroy(&o[i].w);
    }
    CHECK(busy > 0 && timeout > 0 && busy + timeout == N);
    CHECK(o[0].status == RPC_E_TIMEOUT);
    free(buf);
    rpc_client_free(c);
    close(lfd);
    waiter_destroy(&first.w);
}

/* A connect that hangs (the listener's backlog is full, SYNs are dropped)
 * fails after connect_timeout_ms, not after the call's deadline. */
static void test_connect_timeout(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(bind(lfd, (struct sockaddr *)&in, sizeof(in)) == 0 && listen(lfd, 0) == 0);
    socklen_t sl = sizeof(in);
    CHECK(getsockname(lfd, (struct sockaddr *)&in, &sl) == 0);
    int fill[4];
    int nfill = 0;
    for (int i = 0; i < 4; i++) { /* fill the backlog */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&in, sizeof(in));
        nfill++;
    }
    sleep_ms(50);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(in.sin_port));
    struct rpc_client_opts co = { .connect_timeout_ms = 200 };
    struct rpc_client *c = rpc_client_new(&co);
    CHECK(c);
    struct rpc_call_opts o = { .timeout_ms = 5000 };
    uint64_t t0 = now_ns();
    int rc = rpc_call_sync(c, addr, M_ECHO, "x", 1, &o, NULL, NULL);
    uint64_t took = now_ns() - t0;
    CHECK(rc == RPC_E_CONNECT);
    CHECK(took >= 190000000ull && took < 1000000000ull); /* the SYN was dropped */
    rpc_client_free(c);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(lfd);
}

static void h_whoami(struct rpc_call *c, void *arg)
{
    int id = (int)(intptr_t)arg;
    rpc_reply(c, 0, &id, sizeof(id));
}

/* One client, several servers: each call reaches the address it named. */
static void test_many_peers(void)
{
    enum { NS = 3 };
    struct rpc_server *s[NS];
    char addr[NS][64];
    for (int i = 0; i < NS; i++) {
        struct rpc_server_opts so = { .listen = "127.0.0.1:0", .loop_threads = 1,
                                      .worker_threads = 1 };
        s[i] = rpc_server_new(&so);
        CHECK(s[i]);
        CHECK(rpc_server_handle(s[i], 9, RPC_EXEC_INLINE, h_whoami, (void *)(intptr_t)i) == 0);
        CHECK(rpc_server_start(s[i]) == 0);
        addr_of(s[i], addr[i], sizeof(addr[i]));
    }
    struct rpc_client *c = new_client();
    for (int k = 0; k < 60; k++) {
        int want = (k * 7) % NS;
        void *resp;
        size_t len;
        CHECK(rpc_call_sync(c, addr[want], 9, NULL, 0, NULL, &resp, &len) == 0);
        CHECK(len == sizeof(int) && *(int *)resp == want);
        free(resp);
    }
    /* "localhost:port" is a different peer string for the same server. */
    char local[64];
    snprintf(local, sizeof(local), "localhost:%u", rpc_server_port(s[1]));
    void *resp;
    size_t len;
    CHECK(rpc_call_sync(c, local, 9, NULL, 0, NULL, &resp, &len) == 0);
    CHECK(len == sizeof(int) && *(int *)resp == 1);
    free(resp);
    rpc_client_free(c);
    for (int i = 0; i < NS; i++)
        rpc_server_free(s[i]);
}

static void test_lifecycle(void)
{
    /* Free without start; free an idle client. */
    struct rpc_server_opts so = { .listen = "127.0.0.1:0" };
    struct rpc_server *s = rpc_server_new(&so);
    CHECK(s);
    rpc_server_free(s);
    rpc_client_free(rpc_client_new(NULL));
    /* A taken port is reported, not hidden. */
    s = start_server("127.0.0.1:0", 0);
    char addr[64];
    addr_of(s, addr, sizeof(addr));
    struct rpc_server_opts so2 = { .listen = addr };
    struct rpc_server *s2 = rpc_server_new(&so2);
    CHECK(s2);
    CHECK(rpc_server_start(s2) == -EADDRINUSE);
    rpc_server_free(s2);
    struct rpc_server_opts bad = { .listen = "no-port-here" };
    s2 = rpc_server_new(&bad);
    CHECK(s2 && rpc_server_start(s2) < 0);
    rpc_server_free(s2);
    /* Registration after start is refused. */
    CHECK(rpc_server_handle(s, 100, RPC_EXEC_INLINE, h_echo, NULL) == -EINVAL);
    /* Stop twice is harmless; a stopped server refuses connections. */
    rpc_server_stop(s, 0);
    rpc_server_stop(s, 0);
    struct rpc_client *c = new_client();
    CHECK(rpc_call_sync(c, addr, M_ECHO, "x", 1, NULL, NULL, NULL) == RPC_E_CONNECT);
    rpc_client_free(c);
    rpc_server_free(s);
}

int main(void)
{
    log_init(LOG_LVL_WARN);
    test_frame_codec();
    test_lifecycle();
    struct rpc_server *s = start_server("127.0.0.1:0", 1u << 20);
    char addr[64];
    addr_of(s, addr, sizeof(addr));
    struct rpc_client *c = new_client();
    test_echo(c, addr);
    test_nomethod(c, addr);
    test_replyv(c, addr);
    test_later(c, addr);
    test_inflight(c, addr);
    test_chain(c, addr);
    test_timeout(c, addr);
    test_bad_frames(s, c, addr);
    test_toobig(c, addr);
    rpc_client_free(c);
    rpc_server_free(s);

    s = start_server("127.0.0.1:0", 0);
    addr_of(s, addr, sizeof(addr));
    c = new_client();
    test_big(c, addr);
    rpc_client_free(c);
    rpc_server_free(s);

    test_retry_late_server();
    test_stop_inflight();
    test_client_free_pending();
    test_server_busy_queue();
    test_retry_lost_connection();
    test_peer_not_reading();
    test_churn();
    test_client_outbuf_full();
    test_connect_timeout();
    test_many_peers();
    printf("test_rpc: all passed\n");
    return 0;
}
