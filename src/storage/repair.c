/* repair.c — a replica whose chunk fails its CRC32C gets a good copy back.
 *
 * The damaged replica (serve_read found the mismatch) answers the reader
 * VF_E_CHECKSUM, so the client reads another replica, and asks a SERVING
 * peer of the chain for the chunk (STG_REPAIR). The peer pushes its copy
 * under the chunk's turn (craq_push), exactly as a resync does, so a write
 * racing the repair cannot be undone by it. Repairs asked for are bounded
 * (REPAIRS_MAX in flight); a chunk read again while its repair runs just
 * asks again, which is harmless: a push is idempotent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "rpc/rpc.h"
#include "storage/craq.h"
#include "storage/repair.h"

#define REPAIRS_MAX 64

struct ask {
    struct stg_service *svc;
    uint32_t target, peer;
    struct stg_chunk_id chunk;
    struct wbuf wb;
};

static void ask_done(void *arg, int status, const void *payload, size_t len)
{
    (void)payload;
    (void)len;
    struct ask *a = arg;
    if (status)
        LOG_WARN("repair", "target=%u ino=%llx index=%u: peer %u could not push its copy: %s",
                 a->target, (unsigned long long)a->chunk.ino, a->chunk.index, a->peer,
                 vf_strstatus(status));
    else
        LOG_INFO("repair", "target=%u ino=%llx index=%u: repaired from peer %u", a->target,
                 (unsigned long long)a->chunk.ino, a->chunk.index, a->peer);
    pthread_mutex_lock(&a->svc->repair_mu);
    a->svc->repairs_inflight--;
    pthread_mutex_unlock(&a->svc->repair_mu);
    wb_free(&a->wb);
    free(a);
}

void repair_ask(struct stg_service *s, const struct stg_route *rt, uint64_t ino, uint32_t index)
{
    pthread_mutex_lock(&s->repair_mu);
    s->repairs_asked++;
    bool room = s->repairs_inflight < REPAIRS_MAX;
    if (room)
        s->repairs_inflight++;
    pthread_mutex_unlock(&s->repair_mu);
    if (!room)
        return;
    struct ask *a = calloc(1, sizeof(*a));
    const struct stg_routing_src *src = &s->o.routing;
    void *ref = NULL;
    const struct mg_routing *r = src->acquire(src->arg, &ref);
    const struct mg_chain *ch = mg_routing_chain(r, rt->chain_id);
    char addr[VF_MAX_ADDR + 1] = "";
    struct stg_repair_req q = { .chunk = { ino, index }, .dest_target = rt->target_id };
    for (uint32_t i = 0; a && ch && i < ch->ntargets && i < VF_MAX_REPLICAS; i++) {
        const struct mg_target *t = mg_routing_target(r, ch->targets[i]);
        const char *ad = t ? mg_routing_target_addr(r, t->id) : NULL;
        if (t && t->id != rt->target_id && t->state == TS_SERVING && ad) {
            q.route = (struct stg_route){ t->id, ch->id, ch->version };
            snprintf(addr, sizeof(addr), "%s", ad);
            break;
        }
    }
    src->release(src->arg, ref);
    if (!a || !addr[0]) {
        LOG_ERROR("repair", "target=%u ino=%llx index=%u: no serving peer to repair from",
                  rt->target_id, (unsigned long long)ino, index);
        free(a);
        pthread_mutex_lock(&s->repair_mu);
        s->repairs_inflight--;
        pthread_mutex_unlock(&s->repair_mu);
        return;
    }
    *a = (struct ask){ .svc = s, .target = rt->target_id, .peer = q.route.target_id,
                       .chunk = q.chunk };
    wb_init(&a->wb, 0);
    stg_repair_req_enc(&a->wb, &q);
    struct iovec iov = { a->wb.data, a->wb.len };
    struct rpc_call_opts co = { .timeout_ms = s->o.forward_timeout_ms };
    int rc = a->wb.err ? -ENOMEM
                       : rpc_call_async(s->o.rpc, addr, STG_REPAIR, &iov, 1, &co, ask_done, a);
    if (rc < 0)
        ask_done(a, ENOMEM, NULL, 0);
}

/* ---- the healthy peer's side ---- */

static void push_answered(void *arg, int status, const struct stg_write_resp *resp)
{
    (void)resp;
    rpc_reply(arg, status, NULL, 0);
}

void repair_serve(struct stg_service *s, struct rpc_call *call, const struct stg_repair_req *q,
                  struct local_target *tgt)
{
    const struct stg_routing_src *src = &s->o.routing;
    void *ref = NULL;
    const struct mg_routing *r = src->acquire(src->arg, &ref);
    const char *ad = r ? mg_routing_target_addr(r, q->dest_target) : NULL;
    char addr[VF_MAX_ADDR + 1] = "";
    if (ad)
        snprintf(addr, sizeof(addr), "%s", ad);
    src->release(src->arg, ref);
    if (!addr[0]) {
        rpc_reply(call, VF_E_NO_ROUTE, NULL, 0);
        return;
    }
    struct stg_route dest = { q->dest_target, q->route.chain_id, q->route.chain_version };
    LOG_INFO("repair", "pushing ino=%llx index=%u from target=%u to target=%u",
             (unsigned long long)q->chunk.ino, q->chunk.index, tgt->id, q->dest_target);
    craq_push(s, tgt, &dest, addr, q->chunk.ino, q->chunk.index, push_answered, call);
}
