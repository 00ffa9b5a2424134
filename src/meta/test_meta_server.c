/* test_meta_server.c — the meta RPC service end to end over TCP: requests
 * encoded by the real codecs reach the core and come back; errors are
 * positive errnos; undecodable or truncated requests are RPC_E_BADREQ;
 * random bytes never crash the dispatcher. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "kv/kv.h"
#include "meta/meta_core.h"
#include "meta/server.h"
#include "rpc/rpc.h"

#include "common/test_check.h"

static struct rpc_client *cli;
static char addr[64];

static int call(uint16_t method, const struct meta_req *req, struct meta_resp *resp, void **buf)
{
    struct wbuf wb;
    wb_init(&wb, 0);
    meta_req_enc(&wb, req);
    if (wb.err)
        return -1000;
    void *out = NULL;
    size_t out_len = 0;
    int st = rpc_call_sync(cli, addr, method, wb.data, wb.len, NULL, &out, &out_len);
    wb_free(&wb);
    if (st == 0 && resp) {
        if (meta_resp_dec(out, out_len, resp) < 0)
            st = -1001;
    }
    if (buf)
        *buf = out;
    else
        free(out);
    return st;
}

int main(void)
{
    log_init(LOG_LVL_ERROR);
    char dir[] = "/tmp/test_meta_server.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char uri[128], err[256];
    snprintf(uri, sizeof(uri), "lmdb:%s", dir);
    struct kv_opts ko = { .map_size = 1u << 28, .sync = KV_SYNC_NONE };
    struct kv_db *db = kv_open(uri, &ko, err, sizeof(err));
    if (!db) {
        fprintf(stderr, "kv_open: %s\n", err);
        return 1;
    }
    struct meta_core_opts mo = { .db = db };
    struct meta_core *mc = meta_core_new(&mo, err, sizeof(err));
    struct rpc_server_opts so = { .listen = "127.0.0.1:0", .worker_threads = 2, .name = "meta" };
    struct rpc_server *srv = rpc_server_new(&so);
    CHECK(mc && srv && meta_server_register(srv, mc) == 0 && rpc_server_start(srv) == 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", rpc_server_port(srv));
    struct rpc_client_opts co = { .name = "test" };
    cli = rpc_client_new(&co);

    struct meta_req req;
    struct meta_resp resp;
    memset(&req, 0, sizeof(req));
    req.parent = 1;
    strcpy(req.name, "d");
    req.mode = 0755;
    CHECK(call(META_MKDIR, &req, &resp, NULL) == 0);
    CHECK(resp.has_inode && S_ISDIR(resp.inode.mode) && resp.inode.nlink == 2);
    uint64_t d = resp.inode.ino;
    CHECK(call(META_MKDIR, &req, NULL, NULL) == EEXIST);
    CHECK(call(META_LOOKUP, &req, &resp, NULL) == 0 && resp.inode.ino == d);
    strcpy(req.name, "missing");
    CHECK(call(META_LOOKUP, &req, NULL, NULL) == ENOENT);
    /* a non-root caller is refused by the permission check */
    req.user.uid = 1000;
    strcpy(req.name, "x");
    CHECK(call(META_MKDIR, &req, NULL, NULL) == EACCES);
    req.user.uid = 0;
    /* readdir data survives the trip */
    req.ino = 1;
    req.name[0] = '\0';
    req.flags = META_F_PLUS;
    void *buf = NULL;
    CHECK(call(META_READDIR, &req, &resp, &buf) == 0);
    struct rbuf rb;
    rb_init(&rb, resp.data, resp.data_len);
    struct meta_dirent de;
    CHECK(meta_dirent_next(&rb, &de) == 0 && !strcmp(de.name, "d") && de.ino == d && de.has_inode);
    CHECK(rb.left == 0 && resp.eof);
    free(buf);
    /* a name breaking the per-method rules, garbage, truncation */
    memset(&req, 0, sizeof(req));
    req.parent = 1;
    CHECK(call(META_MKDIR, &req, NULL, NULL) == RPC_E_BADREQ);
    const char junk[] = "not a meta request";
    void *out = NULL;
    size_t out_len;
    CHECK(rpc_call_sync(cli, addr, META_GETATTR, junk, sizeof(junk), NULL, &out, &out_len) ==
          RPC_E_BADREQ);
    free(out);
    struct wbuf wb;
    wb_init(&wb, 0);
    req.ino = 1;
    meta_req_enc(&wb, &req);
    CHECK(rpc_call_sync(cli, addr, META_GETATTR, wb.data, wb.len - 1, NULL, &out, &out_len) ==
          RPC_E_BADREQ);
    free(out);
    CHECK(rpc_call_sync(cli, addr, META_GETATTR, wb.data, wb.len, NULL, &out, &out_len) == 0);
    free(out);
    CHECK(rpc_call_sync(cli, addr, 0x02ff, wb.data, wb.len, NULL, &out, &out_len) ==
          RPC_E_NOMETHOD);
    free(out);
    /* random mutations of a valid request never crash the dispatcher */
    srand(7);
    uint8_t *m = malloc(wb.len);
    for (int n = 0; n < 20000; n++) {
        memcpy(m, wb.data, wb.len);
        int flips = 1 + rand() % 4;
        for (int f = 0; f < flips; f++)
            m[rand() % wb.len] = (uint8_t)rand();
        size_t len = (size_t)rand() % (wb.len + 1);
        uint16_t method = (uint16_t)(META_LOOKUP + rand() % 23);
        void *o;
        size_t ol;
        int st = meta_server_dispatch(mc, method, m, len, &o, &ol);
        CHECK(st == 0 || st == RPC_E_BADREQ || (st > 0 && st < 1000));
        free(o);
    }
    free(m);
    wb_free(&wb);

    rpc_client_free(cli);
    rpc_server_stop(srv, 1000);
    rpc_server_free(srv);
    meta_core_free(mc);
    kv_close(db);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        failures++;
    if (failures) {
        fprintf(stderr, "test_meta_server: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_meta_server: all passed\n");
    return 0;
}
