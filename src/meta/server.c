/* server.c — RPC handlers of the meta service (see server.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/log.h"
#include "meta/meta_core.h"
#include "meta/server.h"
#include "rpc/rpc.h"

int meta_server_dispatch(struct meta_core *mc, uint16_t method, const void *payload, size_t len,
                         void **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    struct meta_req req;
    if (meta_req_dec(payload, len, &req) < 0 || meta_req_check(method, &req) < 0)
        return RPC_E_BADREQ;
    struct wbuf data;
    wb_init(&data, 0);
    struct meta_resp resp;
    int rc = meta_exec(mc, method, &req, &resp, &data);
    if (rc < 0) {
        wb_free(&data);
        LOG_DEBUG("meta", "%s failed err=%s", meta_method_name(method), strerror(-rc));
        return -rc;
    }
    struct wbuf wb;
    wb_init(&wb, 0);
    meta_resp_enc(&wb, &resp);
    wb_free(&data);
    if (wb.err) {
        wb_free(&wb);
        LOG_ERROR("meta", "%s: cannot encode the answer", meta_method_name(method));
        return EIO;
    }
    *out = wb.data;
    *out_len = wb.len;
    return 0;
}

static void handle(struct rpc_call *call, void *arg)
{
    struct meta_core *mc = arg;
    size_t len;
    const void *payload = rpc_call_payload(call, &len);
    void *out;
    size_t out_len;
    int status = meta_server_dispatch(mc, rpc_call_method(call), payload, len, &out, &out_len);
    if (status == RPC_E_BADREQ)
        LOG_WARN("meta", "undecodable request method=0x%04x peer=%s len=%zu",
                 rpc_call_method(call), rpc_call_peer(call), len);
    rpc_reply(call, status, out, out_len);
    free(out);
}

int meta_server_register(struct rpc_server *s, struct meta_core *mc)
{
    for (uint16_t m = META_LOOKUP; m <= META_ACCESS; m++) {
        /* Reads of an embedded store (an LMDB snapshot: no lock, no I/O
         * wait on a warm store) run on the loop thread: a hand-off to a
         * worker costs a thread wake-up, the larger part of a lookup's
         * latency. Reads of a networked store (etcd) would block the loop
         * for their round trips, so they go to workers like writes (commits
         * may flush) and STATFS (asks storage). */
        bool inline_ok = !meta_core_kv_remote(mc) && (m == META_LOOKUP || m == META_GETATTR || m == META_READLINK ||
                         m == META_READDIR || m == META_GETXATTR || m == META_LISTXATTR ||
                         m == META_ACCESS);
        int rc = rpc_server_handle(s, m, inline_ok ? RPC_EXEC_INLINE : RPC_EXEC_WORKER, handle,
                                   mc);
        if (rc < 0)
            return rc;
    }
    return 0;
}
