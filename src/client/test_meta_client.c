/* test_meta_client.c — the meta client against a fake meta server, with a
 * second configured address where nothing listens: every call must land
 * on the live server whichever address the client starts with (connection
 * refused = nothing was sent, so mutations move on too), replies decode,
 * and handler errnos pass through unchanged. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/meta_client.h"
#include "common/log.h"
#include "rpc/rpc.h"

#include "common/test_check.h"

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
