/* resync.c — the resync driver (resync.h). */
#include "storage/resync.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "rpc/rpc.h"
#include "storage/chunk_engine.h"
#include "storage/craq.h"

#define PAGE 512           /* chunks per list page, each side */
#define PUSH_WINDOW 16     /* pushes in flight per pass */
#define LIST_TIMEOUT_MS 10000
#define PROGRESS_EVERY_NS (2ull * 1000000000ull)

struct resync {
    struct stg_service *svc;
    uint32_t interval_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, kicked;
    struct resync_stats st;
};

/* One pass: where to push, and the pushes in flight. */
struct pass {
    struct resync *rs;
    struct local_target *tgt;
    struct stg_route dest;     /* the syncing target, at the chain version synced */
    char dest_addr[VF_MAX_ADDR + 1];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t inflight;
    uint32_t failed;
    int first_error;
    uint64_t compared, pushed, bytes;
};

struct work {
    struct local_target *tgt;
    struct stg_route dest;
    char dest_addr[VF_MAX_ADDR + 1];
};

/* ---------------- routing ---------------- */

/* Local targets that are their chain's last SERVING member with a SYNCING
 * member right after: up to max of them into w. */
static uint32_t find_work(struct stg_service *s, struct work *w, uint32_t max)
{
    const struct stg_routing_src *src = &s->o.routing;
    void *ref = NULL;
    const struct mg_routing *r = src->acquire(src->arg, &ref);
    uint32_t n = 0;
    for (uint32_t c = 0; r && c < r->nchains && n < max; c++) {
        const struct mg_chain *ch = &r->chains[c];
        for (uint32_t i = 0; i + 1 < ch->ntargets && i + 1 < VF_MAX_REPLICAS; i++) {
            const struct mg_target *me = mg_routing_target(r, ch->targets[i]);
            const struct mg_target *next = mg_routing_target(r, ch->targets[i + 1]);
            if (!me || !next || me->state != TS_SERVING || next->state != TS_SYNCING)
                continue;
            struct local_target *lt = svc_find_target(s, me->id);
            const char *addr = mg_routing_target_addr(r, next->id);
            if (!lt || !addr)
                break;
            snprintf(w[n].dest_addr, sizeof(w[n].dest_addr), "%s", addr);
            w[n].tgt = lt;
            w[n].dest = (struct stg_route){ next->id, ch->id, ch->version };
            n++;
            break;
        }
    }
    src->release(src->arg, ref);
    return n;
}

/* Still the same chain version, and the lease still ours? */
static bool pass_still_valid(const struct pass *p)
{
    const struct stg_routing_src *src = &p->rs->svc->o.routing;
    if (src->lease_valid && !src->lease_valid(src->arg))
        return false;
    void *ref = NULL;
    const struct mg_routing *r = src->acquire(src->arg, &ref);
    const struct mg_chain *ch = mg_routing_chain(r, p->dest.chain_id);
    bool ok = ch && ch->version == p->dest.chain_version;
    src->release(src->arg, ref);
    return ok;
}

static bool stopping(struct resync *rs)
{
    pthread_mutex_lock(&rs->mu);
    bool s = rs->stop;
    pthread_mutex_unlock(&rs->mu);
    return s;
}

/* ---------------- pushes ---------------- */

static void push_done(void *arg, int status, const struct stg_write_resp *resp)
{
    struct pass *p = arg;
    pthread_mutex_lock(&p->mu);
    if (status) {
        if (p->failed++ == 0)
            p->first_error = status;
    } else {
        p->pushed++;
        p->bytes += resp ? resp->chunk_len : 0;
    }
    p->inflight--;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void push(struct pass *p, uint64_t ino, uint32_t index)
{
    pthread_mutex_lock(&p->mu);
    while (p->inflight >= PUSH_WINDOW)
        pthread_cond_wait(&p->cv, &p->mu);
    p->inflight++;
    pthread_mutex_unlock(&p->mu);
    craq_push(p->rs->svc, p->tgt, &p->dest, p->dest_addr, ino, index, push_done, p);
}

static void wait_pushes(struct pass *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->inflight > 0)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* ---------------- the two chunk lists ---------------- */

struct side {
    struct stg_chunk_meta *v;  /* current page */
    uint32_t n, i;
    bool eof;
    struct stg_chunk_id after; /* the last key of the page */
    struct stg_list_resp resp; /* remote side: owns v */
    struct ce_chunk local[PAGE];
    struct stg_chunk_meta localv[PAGE];
};

static int refill_local(struct pass *p, struct side *a)
{
    uint32_t n = 0;
    bool eof = false;
    int rc = ce_list(p->tgt->ce, a->after.ino, a->after.index, 0, PAGE, a->local, &n, &eof);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < n; i++)
        a->localv[i] = (struct stg_chunk_meta){
            .chunk = { a->local[i].ino, a->local[i].index }, .exists = 1,
            .version = a->local[i].meta.version, .len = a->local[i].meta.len,
            .crc32c = a->local[i].meta.crc32c };
    a->v = a->localv;
    a->n = n;
    a->i = 0;
    a->eof = eof || n == 0;
    if (n)
        a->after = a->localv[n - 1].chunk;
    return 0;
}

static int refill_remote(struct pass *p, struct side *b)
{
    stg_list_resp_free(&b->resp);
    memset(&b->resp, 0, sizeof(b->resp));
    struct stg_list_req q = { .target_id = p->dest.target_id, .after = b->after, .max = PAGE };
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_list_req_enc(&wb, &q);
    if (wb.err) {
        wb_free(&wb);
        return ENOMEM;
    }
    void *resp = NULL;
    size_t len = 0;
    struct rpc_call_opts co = { .timeout_ms = LIST_TIMEOUT_MS };
    int st = rpc_call_sync(p->rs->svc->o.rpc, p->dest_addr, STG_LIST, wb.data, wb.len, &co,
                           &resp, &len);
    wb_free(&wb);
    if (st == 0 && stg_list_resp_dec(resp, len, &b->resp) < 0)
        st = RPC_E_BADREQ;
    free(resp);
    if (st)
        return st;
    b->v = b->resp.chunks;
    b->n = b->resp.n;
    b->i = 0;
    b->eof = b->resp.eof || b->resp.n == 0;
    if (b->n)
        b->after = b->v[b->n - 1].chunk;
    return 0;
}

static int key_cmp(const struct stg_chunk_id *x, const struct stg_chunk_id *y)
{
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static bool same_copy(const struct stg_chunk_meta *x, const struct stg_chunk_meta *y)
{
    return x->version == y->version && x->len == y->len && x->crc32c == y->crc32c;
}

static void progress_log(struct pass *p, const char *what, uint64_t t0)
{
    double secs = (double)(now_ns() - t0) / 1e9;
    LOG_INFO("resync", "%s target=%u chain=%u version=%llu from=%u: %llu compared, %llu pushed, "
             "%llu bytes, %.1f s, %.3f GB/s", what, p->dest.target_id, p->dest.chain_id,
             (unsigned long long)p->dest.chain_version, p->tgt->id,
             (unsigned long long)p->compared, (unsigned long long)p->pushed,
             (unsigned long long)p->bytes, secs, secs > 0 ? (double)p->bytes / secs / 1e9 : 0);
}

/* Walk both lists; push what differs. 0 when the walk completed. */
static int walk(struct pass *p, uint64_t t0)
{
    struct side *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    int rc = (!a || !b) ? ENOMEM : 0;
    uint64_t next_log = now_ns() + PROGRESS_EVERY_NS;
    bool a_started = false, b_started = false;
    while (rc == 0) {
        if (!a_started || (a->i == a->n && !a->eof)) {
            rc = refill_local(p, a);
            a_started = true;
            continue;
        }
        if (!b_started || (b->i == b->n && !b->eof)) {
            if (!pass_still_valid(p) || stopping(p->rs)) {
                rc = ECANCELED;
                break;
            }
            rc = refill_remote(p, b);
            b_started = true;
            continue;
        }
        bool ha = a->i < a->n, hb = b->i < b->n;
        if (!ha && !hb)
            break;
        int c = !ha ? 1 : !hb ? -1 : key_cmp(&a->v[a->i].chunk, &b->v[b->i].chunk);
        const struct stg_chunk_meta *m = c <= 0 ? &a->v[a->i] : &b->v[b->i];
        bool differs = c != 0 || !same_copy(&a->v[a->i], &b->v[b->i]);
        p->compared++;
        if (differs)
            push(p, m->chunk.ino, m->chunk.index);
        if (c <= 0)
            a->i++;
        if (c >= 0)
            b->i++;
        if (now_ns() >= next_log) {
            progress_log(p, "progress", t0);
            next_log = now_ns() + PROGRESS_EVERY_NS;
        }
    }
    if (b)
        stg_list_resp_free(&b->resp);
    free(a);
    free(b);
    return rc;
}

static void run_pass(struct resync *rs, const struct work *w)
{
    struct pass p = { .rs = rs, .tgt = w->tgt, .dest = w->dest };
    memcpy(p.dest_addr, w->dest_addr, sizeof(p.dest_addr));
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    pthread_mutex_lock(&rs->mu);
    rs->st.active_target = w->dest.target_id;
    pthread_mutex_unlock(&rs->mu);
    uint64_t t0 = now_ns();
    LOG_INFO("resync", "start target=%u chain=%u version=%llu from=%u addr=%s",
             p.dest.target_id, p.dest.chain_id, (unsigned long long)p.dest.chain_version,
             p.tgt->id, p.dest_addr);
    int rc = walk(&p, t0);
    wait_pushes(&p);
    if (rc == 0 && p.failed)
        rc = p.first_error;
    if (rc == 0 && !pass_still_valid(&p))
        rc = ECANCELED;
    const struct stg_routing_src *src = &rs->svc->o.routing;
    if (rc == 0) {
        struct mg_sync_done_req d = { p.dest.target_id, p.dest.chain_id, p.dest.chain_version };
        rc = src->report_synced(src->arg, &d);
    }
    pthread_mutex_lock(&rs->mu);
    rs->st.active_target = 0;
    rs->st.chunks_compared += p.compared;
    rs->st.chunks_pushed += p.pushed;
    rs->st.bytes_pushed += p.bytes;
    if (rc == 0)
        rs->st.passes_done++;
    else
        rs->st.passes_failed++;
    pthread_mutex_unlock(&rs->mu);
    if (rc == 0) {
        progress_log(&p, "done", t0);
        if (src->refresh)
            src->refresh(src->arg, 2000); /* see our successor SERVING before the next look */
    } else {
        LOG_WARN("resync", "pass target=%u chain=%u did not complete (%s); retrying",
                 p.dest.target_id, p.dest.chain_id, vf_strstatus(rc));
    }
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
}

/* ---------------- thread ---------------- */

static void *resync_main(void *arg)
{
    struct resync *rs = arg;
    for (;;) {
        pthread_mutex_lock(&rs->mu);
        if (!rs->stop && !rs->kicked) {
            struct timespec ts = timespec_after_ms(CLOCK_REALTIME, rs->interval_ms);
            pthread_cond_timedwait(&rs->cv, &rs->mu, &ts);
        }
        bool stop = rs->stop;
        rs->kicked = false;
        pthread_mutex_unlock(&rs->mu);
        if (stop)
            break;
        struct work w[16];
        uint32_t n = find_work(rs->svc, w, 16);
        for (uint32_t i = 0; i < n && !stopping(rs); i++)
            run_pass(rs, &w[i]);
    }
    return NULL;
}

struct resync *resync_start(struct stg_service *s, uint32_t interval_ms)
{
    struct resync *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return NULL;
    rs->svc = s;
    rs->interval_ms = interval_ms ? interval_ms : 500;
    pthread_mutex_init(&rs->mu, NULL);
    pthread_cond_init(&rs->cv, NULL);
    if (pthread_create(&rs->thread, NULL, resync_main, rs) != 0) {
        pthread_cond_destroy(&rs->cv);
        pthread_mutex_destroy(&rs->mu);
        free(rs);
        return NULL;
    }
    return rs;
}

void resync_kick(struct resync *rs)
{
    if (!rs)
        return;
    pthread_mutex_lock(&rs->mu);
    rs->kicked = true;
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
}

void resync_stats(struct resync *rs, struct resync_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!rs)
        return;
    pthread_mutex_lock(&rs->mu);
    *out = rs->st;
    pthread_mutex_unlock(&rs->mu);
}

void resync_stop(struct resync *rs)
{
    if (!rs)
        return;
    pthread_mutex_lock(&rs->mu);
    rs->stop = true;
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
    pthread_join(rs->thread, NULL);
    pthread_cond_destroy(&rs->cv);
    pthread_mutex_destroy(&rs->mu);
    free(rs);
}
