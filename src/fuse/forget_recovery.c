/* forget_recovery.c — see forget_recovery.h. */
#include "fuse/forget_recovery.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "fuse/engine_internal.h"

#define SETTLE_AFTER_MS 1000

struct suspect {
    uint64_t id, count;
    int forgotten; /* its FORGET came after all */
};

struct fr_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t timer;
    int timer_started, settled, stop;
    struct suspect *v;
    size_t n, cap;
    /* nodes of requests counted and not answered: not probed */
    uint64_t *skip;
    size_t nskip;
};

struct probe_ctx {
    struct vfs_session *s;
    struct fr_state *fr;
    uint64_t probed;
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_suspect(const void *a, const void *b)
{
    return cmp_u64(&((const struct suspect *)a)->id, &((const struct suspect *)b)->id);
}

static void probe(void *arg, uint64_t id, uint64_t nlookup, const void *key, size_t keylen)
{
    (void)key;
    (void)keylen;
    struct probe_ctx *c = arg;
    struct fr_state *fr = c->fr;
    if (id == FUSE_ROOT_ID || bsearch(&id, fr->skip, fr->nskip, sizeof(uint64_t), cmp_u64))
        return;
    c->probed++;
    /* offset < 0: attributes only, no page cache work */
    if (vfs_notify_inval_inode(c->s, id, -1, 0) != -ENOENT)
        return;
    if (fr->n == fr->cap) {
        size_t cap = fr->cap ? fr->cap * 2 : 64;
        struct suspect *v = realloc(fr->v, cap * sizeof(*v));
        if (!v)
            return; /* a leak, not a wrong count */
        fr->v = v;
        fr->cap = cap;
    }
    fr->v[fr->n++] = (struct suspect){ id, nlookup, 0 };
}

static void *timer_main(void *arg)
{
    struct vfs_session *s = arg;
    struct fr_state *fr = s->fr;
    struct timespec ts = timespec_after_ms(CLOCK_REALTIME, SETTLE_AFTER_MS);
    pthread_mutex_lock(&fr->mu);
    while (!fr->stop && !fr->settled)
        if (pthread_cond_timedwait(&fr->cv, &fr->mu, &ts) == ETIMEDOUT)
            break;
    int stop = fr->stop;
    pthread_mutex_unlock(&fr->mu);
    if (!stop)
        fr_settle(s);
    return NULL;
}

static void fr_free(struct fr_state *fr)
{
    free(fr->v);
    free(fr->skip);
    pthread_cond_destroy(&fr->cv);
    pthread_mutex_destroy(&fr->mu);
    free(fr);
}

/* Nodes of requests the dead daemon counted and did not answer; false when
 * one of them is a READDIRPLUS (its nodes are not known). */
static bool collect_skips(struct fr_state *fr, const struct ho_imported *imp)
{
    fr->skip = calloc(imp->nrecs + 1, sizeof(uint64_t));
    if (!fr->skip)
        return false;
    for (size_t i = 0; i < imp->nrecs; i++) {
        const struct ho_rec *r = &imp->recs[i];
        if (r->progress == 0 && r->phase != HO_REC_COUNTED)
            continue;
        if (r->opcode == FUSE_READDIRPLUS) {
            LOG_INFO("fuse", "a READDIRPLUS the previous daemon counted is unanswered: lookups "
                             "whose FORGET it took with it are not recovered this time");
            return false;
        }
        fr->skip[fr->nskip++] = r->pending_node;
    }
    qsort(fr->skip, fr->nskip, sizeof(uint64_t), cmp_u64);
    return true;
}

void fr_begin(struct vfs_session *s)
{
    struct fr_state *fr = calloc(1, sizeof(*fr));
    if (!fr)
        return;
    pthread_mutex_init(&fr->mu, NULL);
    pthread_cond_init(&fr->cv, NULL);
    if (!collect_skips(fr, &s->imported)) {
        fr_free(fr);
        return;
    }
    struct probe_ctx c = { .s = s, .fr = fr };
    ho_node_foreach(s->ho, probe, &c);
    if (fr->n)
        qsort(fr->v, fr->n, sizeof(*fr->v), cmp_suspect);
    LOG_INFO("fuse", "probed %llu imported nodes: the kernel no longer holds %zu of them",
             (unsigned long long)c.probed, fr->n);
    if (fr->n == 0) {
        fr_free(fr);
        return;
    }
    __atomic_store_n(&s->fr, fr, __ATOMIC_RELEASE);
    if (pthread_create(&fr->timer, NULL, timer_main, s) == 0)
        fr->timer_started = 1;
}

void fr_on_forget(struct vfs_session *s, uint64_t id)
{
    struct fr_state *fr = __atomic_load_n(&s->fr, __ATOMIC_ACQUIRE);
    if (!fr)
        return;
    pthread_mutex_lock(&fr->mu);
    struct suspect key = { .id = id };
    struct suspect *x = fr->settled ? NULL : bsearch(&key, fr->v, fr->n, sizeof(*fr->v),
                                                      cmp_suspect);
    if (x)
        x->forgotten = 1;
    pthread_mutex_unlock(&fr->mu);
}

void fr_settle(struct vfs_session *s)
{
    struct fr_state *fr = __atomic_load_n(&s->fr, __ATOMIC_ACQUIRE);
    if (!fr)
        return;
    pthread_mutex_lock(&fr->mu);
    if (fr->settled) {
        pthread_mutex_unlock(&fr->mu);
        return;
    }
    fr->settled = 1;
    size_t dropped = 0;
    uint64_t lookups = 0;
    for (size_t i = 0; i < fr->n; i++) {
        const struct suspect *x = &fr->v[i];
        if (x->forgotten)
            continue;
        ho_node_forget(s->ho, x->id, x->count);
        if (s->ops->forget)
            s->ops->forget(s->fs, x->id, x->count);
        dropped++;
        lookups += x->count;
    }
    pthread_cond_broadcast(&fr->cv);
    pthread_mutex_unlock(&fr->mu);
    if (dropped)
        LOG_INFO("fuse", "dropped %llu lookups of %zu nodes whose FORGET was lost with the "
                         "previous daemon", (unsigned long long)lookups, dropped);
}

void fr_end(struct vfs_session *s)
{
    struct fr_state *fr = __atomic_exchange_n(&s->fr, NULL, __ATOMIC_ACQ_REL);
    if (!fr)
        return;
    pthread_mutex_lock(&fr->mu);
    fr->stop = 1;
    pthread_cond_broadcast(&fr->cv);
    pthread_mutex_unlock(&fr->mu);
    if (fr->timer_started)
        pthread_join(fr->timer, NULL);
    fr_free(fr);
}
