/* common_codec.c — what every protocol shares: credentials, status text,
 * enum names. */
#include <string.h>

#include "proto/codec_internal.h"
#include "proto/mgmtd_proto.h"
#include "proto/proto.h"
#include "rpc/rpc.h"

void vf_user_enc(struct wbuf *wb, const struct vf_user *u)
{
    if (u->ngroups > VF_MAX_GROUPS) {
        wb_fail(wb);
        return;
    }
    wb_u32(wb, u->uid);
    wb_u32(wb, u->gid);
    wb_u32(wb, u->ngroups);
    for (uint32_t i = 0; i < u->ngroups; i++)
        wb_u32(wb, u->groups[i]);
}

void vf_user_dec(struct rbuf *rb, struct vf_user *u)
{
    memset(u, 0, sizeof(*u));
    u->uid = rb_u32(rb);
    u->gid = rb_u32(rb);
    u->ngroups = rb_count(rb, VF_MAX_GROUPS, 4);
    if (rb->err) {
        u->ngroups = 0;
        return;
    }
    for (uint32_t i = 0; i < u->ngroups; i++)
        u->groups[i] = rb_u32(rb);
}

const char *vf_strstatus(int status)
{
    if (status == 0)
        return "ok";
    if (status < 0)
        return rpc_strerror(status);
    switch (status) {
    case VF_E_STALE_CHAIN: return "stale chain version";
    case VF_E_NOT_PRIMARY: return "not the primary mgmtd";
    case VF_E_NOT_HEAD: return "not the chain head";
    case VF_E_NOT_SERVING: return "target not serving";
    case VF_E_NO_LEASE: return "no lease";
    case VF_E_CHECKSUM: return "checksum mismatch";
    case VF_E_NO_ROUTE: return "no route";
    case VF_E_NEWER_CHAIN: return "newer chain version";
    }
    if (status < 1000) {
        /* strerrordesc_np: the same text as strerror, but a constant
         * string, so it is safe from any thread. */
        const char *s = strerrordesc_np(status);
        return s ? s : "unknown errno";
    }
    return "unknown status";
}

const char *vf_node_type_name(int t)
{
    switch (t) {
    case NODE_MGMTD: return "mgmtd";
    case NODE_META: return "meta";
    case NODE_STORAGE: return "storage";
    case NODE_CLIENT: return "client";
    }
    return "unknown";
}

const char *vf_target_state_name(int s)
{
    switch (s) {
    case TS_SERVING: return "serving";
    case TS_SYNCING: return "syncing";
    case TS_WAITING: return "waiting";
    case TS_OFFLINE: return "offline";
    }
    return "unknown";
}
