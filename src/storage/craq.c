/* craq.c — the chain update state machine (see craq.h and service.h).
 *
 * Life of an update at one replica:
 *   craq_submit   take the chunk's turn (or queue behind it / the ino gate)
 *   op_start      de-duplicate, assign (head) or accept (others) a version,
 *                 mark the chunk dirty, then forward or (tail) apply
 *   fwd_done      the successor answered (RPC client loop thread): hand the
 *                 rest to the work queue, never touch the disk there
 *   apply_reply   apply + commit locally, answer upstream
 *   op_finish     release the turn and start what waited for it
 */
#include "storage/craq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "rpc/rpc.h"
#include "storage/chunk_engine.h"
#include "storage/workq.h"

/* ---------------- chunk state table ---------------- */

static struct craq_shard *shard_of(struct local_target *t, uint64_t ino)
{
    uint64_t h = ino * 0x9E3779B97F4A7C15ull;
    return &t->shards[(h >> 40) % CRAQ_SHARDS];
}

static size_t bucket_of(uint64_t ino, uint32_t index, bool ino_level)
{
    uint64_t h = (ino ^ ((uint64_t)index << 1 | ino_level)) * 0xff51afd7ed558ccdull;
    return (size_t)(h >> 33) % CRAQ_BUCKETS;
}

static struct cstate *cs_find(struct craq_shard *sh, uint64_t ino, uint32_t index, bool ino_level)
{
    struct cstate *c = sh->buckets[bucket_of(ino, index, ino_level)];
    for (; c; c = c->hnext)
        if (c->ino == ino && c->index == index && c->ino_level == ino_level)
            return c;
    return NULL;
}

static struct cstate *cs_get(struct craq_shard *sh, uint64_t ino, uint32_t index, bool ino_level)
{
    struct cstate *c = cs_find(sh, ino, index, ino_level);
    if (c)
        return c;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->ino = ino;
    c->index = index;
    c->ino_level = ino_level;
    size_t b = bucket_of(ino, index, ino_level);
    c->hnext = sh->buckets[b];
    sh->buckets[b] = c;
    sh->count++;
    return c;
}

/* Shard lock held: free states no op refers to that were idle long enough.
 * Runs only when the shard grew past its threshold, which then moves to
 * twice what is left, so the cost stays proportional to the growth. */
static void sweep_locked(struct craq_shard *sh, uint64_t now, bool force)
{
    if (sh->count <= sh->sweep_at && !force)
        return;
    for (int b = 0; b < CRAQ_BUCKETS; b++) {
        struct cstate **pp = &sh->buckets[b];
        while (*pp) {
            struct cstate *c = *pp;
            if (c->refs == 0 && !c->busy && !c->dirty && !c->qhead && c->active == 0 &&
                now - c->last_used_ns >= sh->idle_ns) {
                *pp = c->hnext;
                free(c);
                sh->count--;
            } else {
                pp = &c->hnext;
            }
        }
    }
    sh->sweep_at = MAX(sh->soft_max, sh->count * 2);
}

void craq_target_init(struct local_target *t, uint32_t soft_max, uint64_t idle_ns)
{
    for (int i = 0; i < CRAQ_SHARDS; i++) {
        struct craq_shard *sh = &t->shards[i];
        pthread_mutex_init(&sh->mu, NULL);
        memset(sh->buckets, 0, sizeof(sh->buckets));
        sh->count = 0;
        sh->sweep_at = sh->soft_max = soft_max;
        sh->idle_ns = idle_ns;
    }
}

void craq_set_limits(struct local_target *t, uint32_t soft_max, uint64_t idle_ns, bool sweep)
{
    uint64_t now = now_ns();
    for (int i = 0; i < CRAQ_SHARDS; i++) {
        struct craq_shard *sh = &t->shards[i];
        pthread_mutex_lock(&sh->mu);
        sh->sweep_at = sh->soft_max = soft_max;
        sh->idle_ns = idle_ns;
        if (sweep)
            sweep_locked(sh, now, true);
        pthread_mutex_unlock(&sh->mu);
    }
}

void craq_target_destroy(struct local_target *t)
{
    for (int i = 0; i < CRAQ_SHARDS; i++) {
        struct craq_shard *sh = &t->shards[i];
        for (int b = 0; b < CRAQ_BUCKETS; b++) {
            struct cstate *c = sh->buckets[b];
            while (c) {
                struct cstate *n = c->hnext;
                free(c);
                c = n;
            }
        }
        pthread_mutex_destroy(&sh->mu);
    }
}

uint64_t craq_state_count(struct local_target *t)
{
    uint64_t n = 0;
    for (int i = 0; i < CRAQ_SHARDS; i++) {
        pthread_mutex_lock(&t->shards[i].mu);
        n += t->shards[i].count;
        pthread_mutex_unlock(&t->shards[i].mu);
    }
    return n;
}

bool craq_chunk_dirty(struct local_target *t, uint64_t ino, uint32_t index)
{
    struct craq_shard *sh = shard_of(t, ino);
    pthread_mutex_lock(&sh->mu);
    struct cstate *c = cs_find(sh, ino, index, false);
    bool d = c && c->dirty;
    pthread_mutex_unlock(&sh->mu);
    return d;
}

static void enqueue(struct cstate *c, struct craq_op *op)
{
    op->next = NULL;
    if (c->qtail)
        c->qtail->next = op;
    else
        c->qhead = op;
    c->qtail = op;
}

static struct craq_op *dequeue(struct cstate *c)
{
    struct craq_op *op = c->qhead;
    if (op) {
        c->qhead = op->next;
        if (!c->qhead)
            c->qtail = NULL;
        op->next = NULL;
    }
    return op;
}

/* ---------------- turns ---------------- */

/* Shard lock held. True when op may run now; otherwise it was queued. */
static bool admit_locked(struct craq_op *op)
{
    struct cstate *gate = op->gate;
    if (gate->qhead || gate->busy) {
        enqueue(gate, op); /* behind an ino-wide update */
        return false;
    }
    if (op->method == STG_WRITE) {
        if (op->cs->busy) {
            enqueue(op->cs, op);
            return false;
        }
        op->cs->busy = true;
        gate->active++;
        return true;
    }
    if (gate->active > 0) {
        enqueue(gate, op);
        return false;
    }
    gate->busy = true;
    return true;
}

/* Shard lock held: admit what waits at the ino gate, in order, onto *run. */
static void drain_gate_locked(struct cstate *gate, struct craq_op **run)
{
    while (gate->qhead) {
        struct craq_op *x = gate->qhead;
        if (x->method == STG_WRITE) {
            dequeue(gate);
            if (x->cs->busy) {
                enqueue(x->cs, x);
            } else {
                x->cs->busy = true;
                gate->active++;
                x->next = *run;
                *run = x;
            }
            continue;
        }
        if (gate->active == 0 && !gate->busy) {
            dequeue(gate);
            gate->busy = true;
            x->next = *run;
            *run = x;
        }
        break;
    }
}

static void op_start(struct craq_op *op);
static void op_start_job(void *arg) { op_start(arg); }

static void op_free(struct craq_op *op)
{
    wb_free(&op->fwd);
    free(op->full_buf);
    free(op);
}

/* Answered: release the turn, start what waited for it. */
static void op_finish(struct craq_op *op)
{
    struct stg_service *s = op->svc;
    struct craq_shard *sh = shard_of(op->tgt, op->ino);
    struct craq_op *run = NULL;
    pthread_mutex_lock(&sh->mu);
    struct cstate *gate = op->gate;
    if (op->method == STG_WRITE) {
        struct cstate *cs = op->cs;
        struct craq_op *next = dequeue(cs);
        if (next) {
            run = next; /* keeps the chunk's turn and the gate count */
        } else {
            cs->busy = false;
            if (--gate->active == 0)
                drain_gate_locked(gate, &run);
        }
    } else {
        gate->busy = false;
        drain_gate_locked(gate, &run);
    }
    uint64_t now = now_ns();
    gate->refs--;
    gate->last_used_ns = now;
    if (op->cs != gate) {
        op->cs->refs--;
        op->cs->last_used_ns = now;
    }
    sweep_locked(sh, now, false);
    pthread_mutex_unlock(&sh->mu);
    while (run) {
        struct craq_op *x = run;
        run = x->next;
        x->next = NULL;
        if (workq_push(s->wq, op_start_job, x) < 0)
            op_start(x);
    }
    op_free(op);
    svc_inflight_add(s, -1);
}

/* ---------------- answers ---------------- */

static int status_of(int rc)
{
    return rc < 0 ? -rc : rc;
}

static void reply_result(struct craq_op *op, int status, const struct stg_write_resp *resp)
{
    if (op->done) {
        op->done(op->done_arg, status, status ? NULL : resp);
        return;
    }
    if (status != 0 || op->method == STG_REMOVE || !resp) {
        rpc_reply(op->call, status, NULL, 0);
        return;
    }
    uint8_t buf[32];
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_write_resp_enc(&wb, resp);
    size_t n = wb.err ? 0 : MIN(wb.len, sizeof(buf));
    if (n)
        memcpy(buf, wb.data, n);
    wb_free(&wb);
    rpc_reply(op->call, n ? 0 : ENOMEM, buf, n);
}

static void remember_tag_locked(struct cstate *c, uint64_t tag, const struct stg_write_resp *r)
{
    c->tags[c->tag_next] = tag;
    c->results[c->tag_next] = *r;
    c->tag_next = (c->tag_next + 1) % CRAQ_TAGS;
}

static bool find_tag_locked(struct cstate *c, uint64_t tag, struct stg_write_resp *r)
{
    if (tag == 0)
        return false;
    for (int i = 0; i < CRAQ_TAGS; i++)
        if (c->tags[i] == tag) {
            *r = c->results[i];
            return true;
        }
    return false;
}

/* ---------------- local apply ---------------- */

static uint64_t op_version(const struct craq_op *op)
{
    switch (op->method) {
    case STG_WRITE: return op->req.w.version;
    case STG_TRUNCATE: return op->req.tr.version;
    default: return op->req.rm.version;
    }
}

static uint64_t op_tag(const struct craq_op *op)
{
    switch (op->method) {
    case STG_WRITE: return op->req.w.tag;
    case STG_TRUNCATE: return op->req.tr.tag;
    default: return op->req.rm.tag;
    }
}

/* Drop this target's chunks of the ino past the new length, cut the one it
 * falls in; each touched chunk's version goes up by one. */
static int apply_truncate(struct ce_target *ce, const struct stg_truncate_req *r,
                          struct stg_write_resp *resp)
{
    struct ce_chunk *arr;
    uint32_t n;
    int rc = ce_list_ino(ce, r->ino, &arr, &n);
    if (rc < 0)
        return rc;
    memset(resp, 0, sizeof(*resp));
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        uint64_t start = (uint64_t)arr[i].index * r->chunk_size;
        if (start >= r->length) {
            rc = ce_remove(ce, r->ino, arr[i].index);
            if (rc == -ENOENT)
                rc = 0;
        } else if (r->length - start < arr[i].meta.len) {
            struct ce_meta m;
            rc = ce_truncate(ce, r->ino, arr[i].index, (uint32_t)(r->length - start),
                             arr[i].meta.version + 1, &m);
            if (rc == 0) {
                resp->version = m.version;
                resp->chunk_len = m.len;
            }
        }
    }
    free(arr);
    return rc;
}

static void apply_reply(struct craq_op *op)
{
    struct stg_service *s = op->svc;
    struct ce_target *ce = op->tgt->ce;
    struct stg_write_resp resp = { 0 };
    int rc = 0;
    if (s->o.before_apply)
        s->o.before_apply(s->o.hook_arg, op->tgt->id, op->method);
    if (op->push) {
        resp.version = op->req.w.version; /* the copy lives on where it came from */
        resp.chunk_len = op->full_len;
    } else if (op->method == STG_WRITE) {
        const struct stg_write_req *w = &op->req.w;
        struct ce_meta m = { 0 };
        if (w->flags & STG_WF_ABSENT) {
            rc = ce_remove(ce, w->chunk.ino, w->chunk.index);
            rc = rc == -ENOENT ? 0 : rc;
        } else if (w->flags & STG_WF_FULL) {
            rc = ce_replace(ce, w->chunk.ino, w->chunk.index, w->data, w->len, w->version, &m);
        } else {
            rc = ce_write(ce, w->chunk.ino, w->chunk.index, w->offset, w->data, w->len,
                          w->version, &m);
        }
        resp.version = m.version;
        resp.chunk_len = m.len;
    } else if (op->method == STG_TRUNCATE) {
        rc = apply_truncate(ce, &op->req.tr, &resp);
    } else {
        rc = ce_remove_ino(ce, op->req.rm.ino, NULL);
    }
    LOG_DEBUG("craq", "applied target=%u method=%#x ino=%llx index=%u version=%llu rc=%d",
              op->tgt->id, op->method, (unsigned long long)op->ino, op->index,
              (unsigned long long)op_version(op), rc);
    if (rc < 0)
        LOG_ERROR("craq", "apply failed target=%u method=%#x ino=%llx err=%s", op->tgt->id,
                  op->method, (unsigned long long)op->ino, vf_strstatus(status_of(rc)));
    struct craq_shard *sh = shard_of(op->tgt, op->ino);
    pthread_mutex_lock(&sh->mu);
    op->cs->dirty = false;
    if (rc == 0 && op->from_client && op_tag(op))
        remember_tag_locked(op->cs, op_tag(op), &resp);
    pthread_mutex_unlock(&sh->mu);
    reply_result(op, status_of(rc), &resp);
    op_finish(op);
}

/* ---------------- forwarding ---------------- */

static void after_forward(void *arg)
{
    struct craq_op *op = arg;
    if (op->fwd_status == 0) {
        apply_reply(op);
        return;
    }
    LOG_WARN("craq", "successor failed target=%u succ=%u addr=%s ino=%llx status=%s",
             op->tgt->id, op->succ_target, op->succ_addr, (unsigned long long)op->ino,
             vf_strstatus(op->fwd_status));
    const struct stg_routing_src *src = &op->svc->o.routing;
    if (op->fwd_status == RPC_E_CONNECT && src->report_down)
        src->report_down(src->arg, op->succ_target);
    struct craq_shard *sh = shard_of(op->tgt, op->ino);
    pthread_mutex_lock(&sh->mu);
    op->cs->dirty = false;
    pthread_mutex_unlock(&sh->mu);
    reply_result(op, op->fwd_status, NULL);
    op_finish(op);
}

/* RPC client loop thread: no disk work here. */
static void fwd_done(void *arg, int status, const void *payload, size_t len)
{
    (void)payload;
    (void)len;
    struct craq_op *op = arg;
    op->fwd_status = status;
    if (atomic_fetch_sub(&op->fwd_refs, 1) == 1 && workq_push(op->svc->wq, after_forward, op) < 0)
        after_forward(op);
}

static void forward(struct craq_op *op)
{
    struct iovec iov[2];
    int iovcnt = 1;
    wb_init(&op->fwd, 0);
    if (op->method == STG_WRITE) {
        /* The data goes out from the request we received, not copied: encode
         * the header with an empty data field, then set its u32 length (the
         * last 4 bytes: data is the final length-prefixed field). */
        struct stg_write_req h = op->req.w;
        const void *data = op->req.w.data;
        uint32_t n = op->req.w.len;
        h.route.target_id = op->succ_target;
        if (op->full_buf || (op->fwd_flags & STG_WF_ABSENT)) {
            h.offset = 0;
            data = op->full_buf;
            n = op->full_len;
        }
        h.flags = op->fwd_flags;
        h.data = NULL;
        h.len = 0;
        stg_write_req_enc(&op->fwd, &h);
        if (!op->fwd.err && op->fwd.len >= 4) {
            uint8_t *p = op->fwd.data + op->fwd.len - 4;
            for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(n >> (8 * i));
        }
        if (n) {
            iov[1].iov_base = (void *)data;
            iov[1].iov_len = n;
            iovcnt = 2;
        }
    } else if (op->method == STG_TRUNCATE) {
        struct stg_truncate_req h = op->req.tr;
        h.route.target_id = op->succ_target;
        stg_truncate_req_enc(&op->fwd, &h);
    } else {
        struct stg_remove_req h = op->req.rm;
        h.route.target_id = op->succ_target;
        stg_remove_req_enc(&op->fwd, &h);
    }
    if (op->fwd.err) {
        op->fwd_status = ENOMEM;
        after_forward(op);
        return;
    }
    iov[0].iov_base = op->fwd.data;
    iov[0].iov_len = op->fwd.len;
    struct rpc_call_opts co = { .timeout_ms = op->svc->o.forward_timeout_ms };
    atomic_store(&op->fwd_refs, 2);
    int rc = rpc_call_async(op->svc->o.rpc, op->succ_addr, op->method, iov, iovcnt, &co,
                            fwd_done, op);
    if (rc < 0) { /* fwd_done will not run */
        op->fwd_status = rc;
        after_forward(op);
    } else if (atomic_fetch_sub(&op->fwd_refs, 1) == 1) {
        after_forward(op); /* answered already: we are a worker, finish here */
    }
}

/* ---------------- start ---------------- */

/* The smallest chunk size the codec accepts that holds len bytes: a push
 * does not know the file's chunk size, and the receiver only checks it. */
static uint32_t push_chunk_size(uint32_t len)
{
    uint32_t cs = 64u << 10;
    while (cs < len && cs < (64u << 20))
        cs <<= 1;
    return cs;
}

/* Our committed copy of the chunk, whole: the payload of a push. */
static int load_committed(struct craq_op *op, bool absent)
{
    struct stg_write_req *w = &op->req.w;
    if (absent) {
        op->fwd_flags = STG_WF_ABSENT | STG_WF_PUSH;
        op->full_len = 0;
        w->chunk_size = push_chunk_size(0);
        return 0; /* w->version stays non-zero: the receiver removes it */
    }
    struct ce_meta m;
    int rc = ce_get_meta(op->tgt->ce, op->ino, op->index, &m);
    if (rc == -ENOENT)
        return load_committed(op, true);
    if (rc < 0)
        return rc;
    op->full_buf = malloc(m.len ? m.len : 1);
    if (!op->full_buf)
        return -ENOMEM;
    uint32_t nread = 0;
    rc = ce_read(op->tgt->ce, op->ino, op->index, 0, m.len, op->full_buf, &nread, &m);
    if (rc < 0)
        return rc;
    if (nread != m.len || crc32c(op->full_buf, nread) != m.crc32c) {
        LOG_ERROR("craq", "push target=%u ino=%llx index=%u: our own copy fails its CRC32C",
                  op->tgt->id, (unsigned long long)op->ino, op->index);
        return -VF_E_CHECKSUM;
    }
    op->fwd_flags = STG_WF_FULL | STG_WF_PUSH;
    op->full_len = nread;
    w->version = m.version ? m.version : 1;
    w->chunk_size = push_chunk_size(nread);
    return 0;
}

/* A write going to a SYNCING successor travels as the whole chunk it
 * makes: our committed bytes (we hold the turn) with the write laid over. */
static int build_whole(struct craq_op *op, const struct ce_meta *cur)
{
    const struct stg_write_req *w = &op->req.w;
    uint32_t end = w->len ? MAX(cur->len, w->offset + w->len) : cur->len;
    op->full_buf = calloc(1, end ? end : 1);
    if (!op->full_buf)
        return -ENOMEM;
    uint32_t nread = 0;
    struct ce_meta m;
    if (cur->len) {
        int rc = ce_read(op->tgt->ce, op->ino, op->index, 0, cur->len, op->full_buf, &nread, &m);
        if (rc < 0)
            return rc;
    }
    if (w->len)
        memcpy((uint8_t *)op->full_buf + w->offset, w->data, w->len);
    op->full_len = end;
    op->fwd_flags = STG_WF_FULL;
    return 0;
}

/* A full target refuses a write before forwarding it, so no replica
 * applies it (replicas apply on the way back from the tail) and none is
 * left behind the others. */
static int check_room(struct craq_op *op, const struct ce_meta *cur)
{
    const struct stg_write_req *w = &op->req.w;
    uint64_t need = w->flags ? w->len
                             : (w->offset + w->len > cur->len ? w->offset + w->len - cur->len : 0);
    int rc = ce_space_check(op->tgt->ce, need);
    if (rc < 0)
        LOG_WARN("craq", "target=%u full: write of %u bytes to ino=%llx index=%u refused",
                 op->tgt->id, w->len, (unsigned long long)op->ino, op->index);
    return rc;
}

static void op_fail(struct craq_op *op, int rc)
{
    struct craq_shard *sh = shard_of(op->tgt, op->ino);
    pthread_mutex_lock(&sh->mu);
    op->cs->dirty = false;
    pthread_mutex_unlock(&sh->mu);
    reply_result(op, status_of(rc), NULL);
    op_finish(op);
}

static void op_start(struct craq_op *op)
{
    struct craq_shard *sh = shard_of(op->tgt, op->ino);
    struct stg_write_resp dup;
    struct ce_meta cur = { 0 };
    bool absent = false;
    int rc = 0;
    /* we hold the turn: nothing else changes this chunk's committed state */
    if (op->method == STG_WRITE) {
        rc = ce_get_meta(op->tgt->ce, op->ino, op->index, &cur);
        if (rc == -ENOENT) {
            memset(&cur, 0, sizeof(cur));
            absent = true;
            rc = 0;
        }
        if (rc < 0) {
            reply_result(op, status_of(rc), NULL);
            op_finish(op);
            return;
        }
    }
    if (op->push) {
        if ((rc = load_committed(op, absent)) < 0)
            op_fail(op, rc);
        else
            forward(op);
        return;
    }
    pthread_mutex_lock(&sh->mu);
    struct cstate *cs = op->cs;
    if (op->from_client && find_tag_locked(cs, op_tag(op), &dup)) {
        pthread_mutex_unlock(&sh->mu);
        LOG_DEBUG("craq", "duplicate tag=%llx answered from memory",
                  (unsigned long long)op_tag(op));
        reply_result(op, 0, &dup);
        op_finish(op);
        return;
    }
    if (op->method == STG_WRITE) {
        if (op->from_client) {
            op->req.w.version = MAX(cur.version, cs->last_assigned) + 1;
        } else if (!op->req.w.flags && op->req.w.version <= cur.version) {
            /* already applied here (a resent forward): acknowledge. A whole
             * chunk is always applied: it replaces whatever a replica that
             * missed updates holds, even under a higher version. */
            pthread_mutex_unlock(&sh->mu);
            dup.version = cur.version;
            dup.chunk_len = cur.len;
            reply_result(op, 0, &dup);
            op_finish(op);
            return;
        }
        cs->last_assigned = MAX(cs->last_assigned, op->req.w.version);
        cs->dirty = true;
    } else if (op->from_client) {
        /* ino-wide updates only need a non-zero version to mark them forwarded */
        uint64_t v = ++cs->last_assigned;
        if (op->method == STG_TRUNCATE)
            op->req.tr.version = v;
        else
            op->req.rm.version = v;
    }
    pthread_mutex_unlock(&sh->mu);
    if (op->method == STG_WRITE && (rc = check_room(op, &cur)) < 0) {
        op_fail(op, rc);
        return;
    }
    if (!op->succ_target) {
        apply_reply(op);
        return;
    }
    if (op->method == STG_WRITE) {
        op->fwd_flags = op->req.w.flags; /* a whole chunk goes on as received */
        if (!op->req.w.flags && op->succ_syncing && (rc = build_whole(op, &cur)) < 0) {
            op_fail(op, rc);
            return;
        }
    }
    forward(op);
}

int craq_apply_push(struct local_target *t, const struct stg_write_req *w,
                    struct stg_write_resp *resp)
{
    struct ce_meta m = { 0 };
    int rc;
    if (w->flags & STG_WF_ABSENT) {
        rc = ce_remove(t->ce, w->chunk.ino, w->chunk.index);
        rc = rc == -ENOENT ? 0 : rc;
    } else {
        rc = ce_replace(t->ce, w->chunk.ino, w->chunk.index, w->data, w->len, w->version, &m);
    }
    LOG_DEBUG("craq", "push applied target=%u ino=%llx index=%u version=%llu %s rc=%d", t->id,
              (unsigned long long)w->chunk.ino, w->chunk.index, (unsigned long long)w->version,
              w->flags & STG_WF_ABSENT ? "absent" : "full", rc);
    resp->version = m.version;
    resp->chunk_len = m.len;
    return rc;
}

void craq_push(struct stg_service *s, struct local_target *t, const struct stg_route *dest,
               const char *dest_addr, uint64_t ino, uint32_t index,
               void (*done)(void *arg, int status, const struct stg_write_resp *resp),
               void *arg)
{
    struct craq_op *op = calloc(1, sizeof(*op));
    if (!op) {
        done(arg, ENOMEM, NULL);
        return;
    }
    op->svc = s;
    op->method = STG_WRITE;
    op->push = true;
    op->done = done;
    op->done_arg = arg;
    op->ino = ino;
    op->index = index;
    op->req.w.route = *dest;
    op->req.w.chunk = (struct stg_chunk_id){ ino, index };
    op->req.w.chunk_size = push_chunk_size(0);
    op->req.w.version = 1; /* not a client write; load_committed sets the real one */
    struct route_info ri = { .tgt = t, .succ_target = dest->target_id };
    snprintf(ri.succ_addr, sizeof(ri.succ_addr), "%s", dest_addr);
    craq_submit(op, &ri);
}

void craq_submit(struct craq_op *op, const struct route_info *ri)
{
    struct stg_service *s = op->svc;
    svc_inflight_add(s, 1);
    op->tgt = ri->tgt;
    op->succ_target = ri->succ_target;
    op->succ_syncing = ri->succ_syncing;
    memcpy(op->succ_addr, ri->succ_addr, sizeof(op->succ_addr));
    op->from_client = op_version(op) == 0;
    wb_init(&op->fwd, 0);
    struct craq_shard *sh = shard_of(op->tgt, op->ino);
    pthread_mutex_lock(&sh->mu);
    op->gate = cs_get(sh, op->ino, 0, true);
    op->cs = op->method == STG_WRITE ? cs_get(sh, op->ino, op->index, false) : op->gate;
    if (!op->gate || !op->cs) {
        pthread_mutex_unlock(&sh->mu);
        reply_result(op, ENOMEM, NULL);
        op_free(op);
        svc_inflight_add(s, -1);
        return;
    }
    op->gate->refs++;
    if (op->cs != op->gate)
        op->cs->refs++;
    bool run = admit_locked(op);
    pthread_mutex_unlock(&sh->mu);
    if (run)
        op_start(op);
}
