/* test_meta_client.c — the meta client against a fake meta server, with a
 * second configured address where nothing listens: every call must land
 * on the live server whichever address the client starts with (connection
 * refused = nothing was sent, so mutations move on too), replies decode,
 * and handler errnos pass through unchanged. Mutations carry a request id,
 * the same in every resend: a create whose answer never comes (the attempt
 * times out) is sent again with its id and answered from the fake server's
 * record, applied once; reads carry no id. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/meta_client.h"
#include "common/log.h"
#include "rpc/rpc.h"

#include "common/test_check.h"

#define MAX_IDS 64
static pthread_mutex_t dd_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { uint64_t client, seq, ino; } dd_ids[MAX_IDS];
static int dd_n, dd_applied, dd_replays, dd_no_id, dd_reads_with_id;
static struct rpc_call *dd_held;

static void on_getattr(struct rpc_call *call, void *arg)
{
    (void)arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct meta_req m;
    if (meta_req_dec(p, len, &m) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    if (m.req_client != 0) {
        pthread_mutex_lock(&dd_lock);
        dd_reads_with_id++;
        pthread_mutex_unlock(&dd_lock);
    }
    if (m.ino == 404) {
        rpc_reply(call, ENOENT, NULL, 0);
        return;
    }
    struct meta_resp r = { .has_inode = 1 };
    r.inode.ino = m.ino;
    r.inode.mode = 040755;
    r.inode.uid = m.user.uid; /* echo the caller to check credentials travel */
    r.inode.nlink = m.user.ngroups;
    struct wbuf wb;
    wb_init(&wb, 0);
    meta_resp_enc(&wb, &r);
    rpc_reply(call, 0, wb.data, wb.len);
    wb_free(&wb);
}

static void on_mkdir(struct rpc_call *call, void *arg)
{
    (void)arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct meta_req m;
    if (meta_req_dec(p, len, &m) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    struct meta_resp r = { .has_inode = 1, .data = m.name, .data_len = (uint32_t)strlen(m.name) };
    r.inode.ino = 77;
    struct wbuf wb;
    wb_init(&wb, 0);
    meta_resp_enc(&wb, &r);
    rpc_reply(call, 0, wb.data, wb.len);
    wb_free(&wb);
}

/* A fake meta with de-duplication: the first attempt of each id is applied
 * and its answer held back (as if lost with a dying server); a resend of
 * the id is answered from the record. */

static void reply_inode(struct rpc_call *call, uint64_t ino)
{
    struct meta_resp r = { .has_inode = 1 };
    r.inode.ino = ino;
    r.inode.mode = 0100644;
    struct wbuf wb;
    wb_init(&wb, 0);
    meta_resp_enc(&wb, &r);
    rpc_reply(call, 0, wb.data, wb.len);
    wb_free(&wb);
}

static void on_create(struct rpc_call *call, void *arg)
{
    (void)arg;
    size_t len;
    const void *p = rpc_call_payload(call, &len);
    struct meta_req m;
    if (meta_req_dec(p, len, &m) < 0) {
        rpc_reply(call, RPC_E_BADREQ, NULL, 0);
        return;
    }
    pthread_mutex_lock(&dd_lock);
    if (m.req_client == 0) {
        dd_no_id++;
        pthread_mutex_unlock(&dd_lock);
        rpc_reply(call, EPROTO, NULL, 0);
        return;
    }
    for (int i = 0; i < dd_n; i++) {
        if (dd_ids[i].client == m.req_client && dd_ids[i].seq == m.req_seq) {
            dd_replays++;
            uint64_t ino = dd_ids[i].ino;
            struct rpc_call *late = dd_held;
            dd_held = NULL;
            pthread_mutex_unlock(&dd_lock);
            if (late) /* the lost answer turns up late: the client must ignore it */
                reply_inode(late, 1);
            reply_inode(call, ino);
            return;
        }
    }
    if (dd_n == MAX_IDS || dd_held) {
        pthread_mutex_unlock(&dd_lock);
        rpc_reply(call, ENOSPC, NULL, 0);
        return;
    }
    dd_applied++;
    dd_ids[dd_n].client = m.req_client;
    dd_ids[dd_n].seq = m.req_seq;
    dd_ids[dd_n].ino = 1000 + (uint64_t)dd_applied;
    dd_n++;
    dd_held = call;
    pthread_mutex_unlock(&dd_lock);
}

static uint16_t dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t sl = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &sl);
    close(fd); /* nothing listens there now: connection refused */
    return ntohs(a.sin_port);
}

int main(void)
{
    log_init(LOG_LVL_ERROR);
    struct rpc_server_opts so = { .listen = "127.0.0.1:0", .name = "fake-meta" };
    struct rpc_server *srv = rpc_server_new(&so);
    rpc_server_handle(srv, META_GETATTR, RPC_EXEC_INLINE, on_getattr, NULL);
    rpc_server_handle(srv, META_MKDIR, RPC_EXEC_INLINE, on_mkdir, NULL);
    rpc_server_handle(srv, META_CREATE, RPC_EXEC_INLINE, on_create, NULL);
    if (rpc_server_start(srv) != 0)
        return 1;
    char addrs[128];
    snprintf(addrs, sizeof(addrs), "127.0.0.1:%u,127.0.0.1:%u", dead_port(),
             rpc_server_port(srv));

    struct rpc_client_opts ro = { .connect_timeout_ms = 500, .name = "test-mc" };
    struct rpc_client *rpc = rpc_client_new(&ro);
    CHECK(mc_idempotent(META_LOOKUP) && mc_idempotent(META_READDIR) &&
          !mc_idempotent(META_MKDIR) && !mc_idempotent(META_CLOSE));

    for (int round = 0; round < 6; round++) {
        /* a fresh client starts at a random address: both orders get hit */
        struct mc_opts mo;
        mc_opts_default(&mo);
        mo.addrs = addrs;
        mo.op_timeout_ms = 5000;
        struct mc *mc = mc_new(rpc, NULL, &mo);
        CHECK(mc != NULL);

        struct meta_req q;
        memset(&q, 0, sizeof(q));
        q.ino = 12345;
        q.user.uid = 1000;
        q.user.ngroups = 2;
        q.user.groups[0] = 5;
        q.user.groups[1] = 6;
        struct meta_resp resp;
        void *buf = NULL;
        CHECK(mc_call_sync(mc, META_GETATTR, &q, &resp, &buf) == 0);
        CHECK(resp.has_inode && resp.inode.ino == 12345 && resp.inode.uid == 1000 &&
              resp.inode.nlink == 2);
        free(buf);

        q.ino = 404;
        CHECK(mc_call_sync(mc, META_GETATTR, &q, &resp, &buf) == ENOENT);
        free(buf);

        memset(&q, 0, sizeof(q));
        q.parent = 1;
        snprintf(q.name, sizeof(q.name), "dir%d", round);
        q.mode = 040755;
        CHECK(mc_call_sync(mc, META_MKDIR, &q, &resp, &buf) == 0);
        CHECK(resp.inode.ino == 77 && resp.data_len == strlen(q.name) && buf &&
              memcmp(resp.data, q.name, resp.data_len) == 0);
        free(buf);

        /* a create whose answer is lost: resent with its id after the
         * attempt's timeout, answered from the record, applied once */
        struct mc_opts lossy = mo;
        lossy.rpc_timeout_ms = 150;
        struct mc *mc3 = mc_new(rpc, NULL, &lossy);
        memset(&q, 0, sizeof(q));
        q.parent = 1;
        snprintf(q.name, sizeof(q.name), "file%d", round);
        q.req_client = 99; /* the caller's values are overwritten */
        q.req_seq = 99;
        pthread_mutex_lock(&dd_lock);
        int applied0 = dd_applied, replays0 = dd_replays, n0 = dd_n;
        pthread_mutex_unlock(&dd_lock);
        CHECK(mc_call_sync(mc3, META_CREATE, &q, &resp, &buf) == 0);
        free(buf);
        pthread_mutex_lock(&dd_lock);
        CHECK(dd_applied == applied0 + 1 && dd_replays == replays0 + 1 && dd_n == n0 + 1);
        CHECK(resp.inode.ino == dd_ids[n0].ino);
        CHECK(dd_ids[n0].client != 99 && dd_ids[n0].client != 0);
        pthread_mutex_unlock(&dd_lock);
        /* the next call is another request: a new seq, the same client */
        CHECK(mc_call_sync(mc3, META_CREATE, &q, &resp, &buf) == 0);
        free(buf);
        pthread_mutex_lock(&dd_lock);
        CHECK(dd_applied == applied0 + 2 && dd_n == n0 + 2);
        CHECK(dd_ids[n0 + 1].client == dd_ids[n0].client &&
              dd_ids[n0 + 1].seq != dd_ids[n0].seq);
        CHECK(resp.inode.ino == dd_ids[n0 + 1].ino);
        /* every client instance has its own id */
        for (int i = 0; i < n0; i++)
            CHECK(dd_ids[i].client != dd_ids[n0].client);
        CHECK(dd_no_id == 0 && dd_reads_with_id == 0);
        pthread_mutex_unlock(&dd_lock);
        mc_free(mc3);

        /* no server at all: EIO at the deadline, not a hang */
        struct mc_opts dead = mo;
        char only_dead[64];
        snprintf(only_dead, sizeof(only_dead), "127.0.0.1:%u", dead_port());
        dead.addrs = only_dead;
        dead.op_timeout_ms = 300;
        struct mc *mc2 = mc_new(rpc, NULL, &dead);
        CHECK(mc_call_sync(mc2, META_GETATTR, &q, &resp, &buf) == EIO);
        free(buf);
        mc_free(mc2);
        mc_free(mc);
    }

    rpc_client_free(rpc);
    rpc_server_stop(srv, 1000);
    rpc_server_free(srv);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("test_meta_client: ok\n");
    return 0;
}
