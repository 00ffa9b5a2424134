/* bench_rpc.c — loopback latency and throughput of small echo calls.
 * Usage: bench_rpc [seconds]. Not a unit test (suite 'bench'). */
#include "rpc/rpc.h"

#include "common/log.h"
#include "common/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void h_echo(struct rpc_call *c, void *arg)
{
    (void)arg;
    size_t len;
    const void *p = rpc_call_payload(c, &len);
    rpc_reply(c, 0, p, len);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct pipe_state {
    struct rpc_client *c;
    const char *addr;
    atomic_ulong done;
    atomic_bool stop;
    atomic_int outstanding;
};

static void pipe_done(void *arg, int status, const void *p, size_t len)
{
    (void)p;
    (void)len;
    struct pipe_state *st = arg;
    if (status != 0) {
        fprintf(stderr, "call failed: %s\n", rpc_strerror(status));
        exit(1);
    }
    atomic_fetch_add(&st->done, 1);
    if (!atomic_load(&st->stop)) {
        char msg[32] = "0123456789abcdef0123456789abcde";
        struct iovec v = { .iov_base = msg, .iov_len = 32 };
        if (rpc_call_async(st->c, st->addr, 1, &v, 1, NULL, pipe_done, st) == 0)
            return;
    }
    atomic_fetch_sub(&st->outstanding, 1);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    log_init(LOG_LVL_WARN);
    struct rpc_server_opts so = { .listen = "127.0.0.1:0", .loop_threads = 1, .name = "bench" };
    struct rpc_server *s = rpc_server_new(&so);
    rpc_server_handle(s, 1, RPC_EXEC_INLINE, h_echo, NULL);
    rpc_server_handle(s, 2, RPC_EXEC_WORKER, h_echo, NULL);
    if (!s || rpc_server_start(s) != 0)
        return 1;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", rpc_server_port(s));
    struct rpc_client *c = rpc_client_new(NULL);
    char msg[32] = "0123456789abcdef0123456789abcde";

    for (int m = 1; m <= 2; m++) {
        enum { N = 20000 };
        static uint64_t lat[N];
        for (int i = 0; i < 1000; i++)
            rpc_call_sync(c, addr, (uint16_t)m, msg, 32, NULL, NULL, NULL);
        uint64_t t0 = now_ns();
        for (int i = 0; i < N; i++) {
            uint64_t a = now_ns();
            if (rpc_call_sync(c, addr, (uint16_t)m, msg, 32, NULL, NULL, NULL) != 0)
                return 1;
            lat[i] = now_ns() - a;
        }
        uint64_t total = now_ns() - t0;
        qsort(lat, N, sizeof(lat[0]), cmp_u64);
        printf("sync %s: p50=%.1fus p99=%.1fus calls/s=%.0f\n",
               m == 1 ? "inline" : "worker", lat[N / 2] / 1000.0, lat[N * 99 / 100] / 1000.0,
               N / (total / 1e9));
    }

    int windows[] = { 1, 16, 128 };
    for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++) {
        struct pipe_state st = { .c = c, .addr = addr };
        atomic_store(&st.outstanding, windows[w]);
        uint64_t t0 = now_ns();
        for (int i = 0; i < windows[w]; i++) {
            struct iovec v = { .iov_base = msg, .iov_len = 32 };
            rpc_call_async(c, addr, 1, &v, 1, NULL, pipe_done, &st);
        }
        while (now_ns() - t0 < (uint64_t)(secs * 1e9))
            usleep(10000);
        atomic_store(&st.stop, true);
        unsigned long n = atomic_load(&st.done);
        uint64_t el = now_ns() - t0;
        while (atomic_load(&st.outstanding) > 0)
            usleep(1000);
        printf("async window=%d: calls/s=%.0f\n", windows[w], n / (el / 1e9));
    }
    rpc_client_free(c);
    rpc_server_free(s);
    return 0;
}
