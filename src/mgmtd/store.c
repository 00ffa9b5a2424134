/* store.c — see store.h. */
#include "mgmtd/store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "kv/kv.h"

#define REC_FORMAT 1
#define MAX_COMMIT_ATTEMPTS 50

static const char K_VERSION[] = "MG/VERSION";
static const char K_PRIMARY[] = "MG/PRIMARY";

/* "MG/x/" + big-endian id keeps each kind's records together, in id order. */
static size_t make_key(uint8_t out[9], char kind, uint32_t id)
{
    memcpy(out, "MG/", 3);
    out[3] = (uint8_t)kind;
    out[4] = '/';
    out[5] = (uint8_t)(id >> 24);
    out[6] = (uint8_t)(id >> 16);
    out[7] = (uint8_t)(id >> 8);
    out[8] = (uint8_t)id;
    return 9;
}

/* batch entry: u16 klen, key, u32 vlen, value */
static void batch_put(struct wbuf *b, const void *key, size_t klen, const struct wbuf *val)
{
    wb_u16(b, (uint16_t)klen);
    wb_bytes(b, key, klen);
    wb_u32(b, (uint32_t)val->len);
    wb_bytes(b, val->data, val->len);
    if (val->err)
        b->err = true;
}

void store_batch_state(const struct mg_state *st, struct wbuf *batch)
{
    uint8_t key[9];
    struct wbuf v;
    for (uint32_t i = 0; i < st->nnodes; i++) {
        const struct mg_node *n = &st->nodes[i];
        wb_init(&v, 0);
        wb_u8(&v, REC_FORMAT);
        wb_u32(&v, n->id);
        wb_u8(&v, n->type);
        wb_u8(&v, n->alive);
        wb_cstr(&v, n->addr);
        batch_put(batch, key, make_key(key, 'N', n->id), &v);
        wb_free(&v);
    }
    for (uint32_t i = 0; i < st->ntargets; i++) {
        const struct mg_target *t = &st->targets[i];
        wb_init(&v, 0);
        wb_u8(&v, REC_FORMAT);
        wb_u32(&v, t->id);
        wb_u32(&v, t->node_id);
        wb_u32(&v, t->chain_id);
        wb_u8(&v, t->state);
        wb_u64(&v, t->capacity);
        wb_u64(&v, t->used);
        batch_put(batch, key, make_key(key, 'T', t->id), &v);
        wb_free(&v);
    }
    for (uint32_t i = 0; i < st->nchains; i++) {
        const struct mg_chain *c = &st->chains[i];
        wb_init(&v, 0);
        wb_u8(&v, REC_FORMAT);
        wb_u32(&v, c->id);
        wb_u64(&v, c->version);
        wb_u32(&v, c->ntargets);
        for (uint32_t j = 0; j < c->ntargets; j++)
            wb_u32(&v, c->targets[j]);
        batch_put(batch, key, make_key(key, 'C', c->id), &v);
        wb_free(&v);
    }
    for (uint32_t i = 0; i < st->ntables; i++) {
        const struct mg_table *t = &st->tables[i];
        wb_init(&v, 0);
        wb_u8(&v, REC_FORMAT);
        wb_u32(&v, t->id);
        wb_u64(&v, t->version);
        wb_u32(&v, t->replicas);
        wb_u32(&v, t->nchains);
        for (uint32_t j = 0; j < t->nchains; j++)
            wb_u32(&v, t->chains[j]);
        batch_put(batch, key, make_key(key, 'B', t->id), &v);
        wb_free(&v);
    }
    wb_init(&v, 0);
    wb_u64(&v, st->version);
    batch_put(batch, K_VERSION, sizeof(K_VERSION) - 1, &v);
    wb_free(&v);
}

static void primary_enc(struct wbuf *wb, const struct mg_primary *p)
{
    wb_u8(wb, REC_FORMAT);
    wb_u32(wb, p->node_id);
    wb_cstr(wb, p->addr);
    wb_u64(wb, p->lease_expires_ms);
}

static int primary_dec(const void *buf, size_t len, struct mg_primary *p)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    uint8_t fmt = rb_u8(&rb);
    p->node_id = rb_u32(&rb);
    rb_cstr(&rb, p->addr, sizeof(p->addr));
    p->lease_expires_ms = rb_u64(&rb);
    return (rb_done(&rb) && fmt == REC_FORMAT) ? 0 : EBADMSG;
}

/* Read MG/PRIMARY in t. 0 (found), ENOENT, EBADMSG or EIO. */
static int read_primary(struct kv_txn *t, struct mg_primary *p)
{
    struct kv_val v;
    memset(p, 0, sizeof(*p));
    int rc = kv_get(t, K_PRIMARY, sizeof(K_PRIMARY) - 1, &v);
    if (rc == -ENOENT)
        return ENOENT;
    if (rc < 0)
        return EIO;
    if (primary_dec(v.data, v.len, p) != 0) {
        memset(p, 0, sizeof(*p));
        return EBADMSG;
    }
    return 0;
}

static bool is_self(const struct mg_primary *p, uint32_t self_id, const char *self_addr)
{
    return p->node_id == self_id && strcmp(p->addr, self_addr) == 0;
}

int store_commit(struct kv_db *kv, const struct wbuf *batch, uint32_t self_id,
                 const char *self_addr, uint64_t now_real_ms)
{
    if (batch->err)
        return EIO;
    for (unsigned attempt = 1; attempt <= MAX_COMMIT_ATTEMPTS; attempt++) {
        struct kv_txn *t;
        if (kv_txn_begin(kv, 0, &t) < 0)
            return EIO;
        struct mg_primary p;
        int rc = read_primary(t, &p);
        if (rc == EIO) {
            kv_abort(t);
            return EIO;
        }
        if (rc != 0 || !is_self(&p, self_id, self_addr) || p.lease_expires_ms <= now_real_ms) {
            kv_abort(t);
            return EPERM;
        }
        struct rbuf rb;
        rb_init(&rb, batch->data, batch->len);
        int prc = 0;
        while (rb.left && prc == 0) {
            uint16_t klen = rb_u16(&rb);
            const uint8_t *k = rb_take(&rb, klen);
            uint32_t vlen = rb_u32(&rb);
            const uint8_t *v = rb_take(&rb, vlen);
            if (!rb_ok(&rb))
                break;
            prc = kv_put(t, k, klen, v, vlen);
        }
        if (!rb_ok(&rb) || prc < 0) {
            kv_abort(t);
            return EIO;
        }
        rc = kv_commit(t);
        if (rc == 0)
            return 0;
        if (rc != -EAGAIN)
            return EIO;
        kv_retry_backoff(attempt);
    }
    return EIO;
}

struct load_ctx {
    struct mg_state *st;
    int err;
};

static int load_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct load_ctx *c = arg;
    const uint8_t *k = key;
    if (klen != 9 || k[4] != '/')
        return 0; /* not an entity record (MG/VERSION, MG/PRIMARY) */
    struct rbuf rb;
    rb_init(&rb, val, vlen);
    uint8_t fmt = rb_u8(&rb);
    int rc = 0;
    switch (k[3]) {
    case 'N': {
        struct mg_node n = { 0 };
        n.id = rb_u32(&rb);
        n.type = rb_u8(&rb);
        n.alive = rb_u8(&rb);
        rb_cstr(&rb, n.addr, sizeof(n.addr));
        if (rb_done(&rb))
            rc = st_add_node(c->st, &n);
        break;
    }
    case 'T': {
        struct mg_target t = { 0 };
        t.id = rb_u32(&rb);
        t.node_id = rb_u32(&rb);
        t.chain_id = rb_u32(&rb);
        t.state = rb_u8(&rb);
        t.capacity = rb_u64(&rb);
        t.used = rb_u64(&rb);
        if (t.state < TS_SERVING || t.state > TS_OFFLINE)
            rb.err = true;
        if (rb_done(&rb))
            rc = st_add_target(c->st, &t);
        break;
    }
    case 'C': {
        struct mg_chain ch = { 0 };
        ch.id = rb_u32(&rb);
        ch.version = rb_u64(&rb);
        ch.ntargets = rb_u32(&rb);
        if (ch.ntargets > VF_MAX_REPLICAS)
            rb.err = true;
        for (uint32_t i = 0; i < ch.ntargets && rb_ok(&rb); i++)
            ch.targets[i] = rb_u32(&rb);
        if (rb_done(&rb))
            rc = st_add_chain(c->st, &ch);
        break;
    }
    case 'B': {
        struct mg_table tb = { 0 };
        tb.id = rb_u32(&rb);
        tb.version = rb_u64(&rb);
        tb.replicas = rb_u32(&rb);
        tb.nchains = rb_u32(&rb);
        if (tb.nchains > rb.left / 4)
            rb.err = true;
        uint32_t *chains = rb_ok(&rb) ? calloc((size_t)tb.nchains + 1, sizeof(uint32_t)) : NULL;
        for (uint32_t i = 0; i < tb.nchains && chains; i++)
            chains[i] = rb_u32(&rb);
        tb.chains = chains;
        if (chains && rb_done(&rb))
            rc = st_add_table(c->st, &tb);
        else if (!chains && rb_ok(&rb))
            rc = ENOMEM;
        free(chains);
        break;
    }
    default:
        return 0;
    }
    if (rc == 0 && (!rb_done(&rb) || fmt != REC_FORMAT))
        rc = EBADMSG;
    if (rc) {
        LOG_ERROR("mgmtd", "bad record in the store: key=MG/%c/%u", k[3],
                  (unsigned)k[5] << 24 | (unsigned)k[6] << 16 | (unsigned)k[7] << 8 | k[8]);
        c->err = rc;
        return -1;
    }
    return 0;
}

int store_load(struct kv_db *kv, struct mg_state *st)
{
    struct kv_txn *t;
    if (kv_txn_begin(kv, KV_TXN_RDONLY, &t) < 0)
        return EIO;
    st_free(st);
    st_init(st);
    struct kv_val v;
    int rc = kv_get(t, K_VERSION, sizeof(K_VERSION) - 1, &v);
    if (rc == 0) {
        struct rbuf rb;
        rb_init(&rb, v.data, v.len);
        st->version = rb_u64(&rb);
        if (!rb_done(&rb)) {
            kv_abort(t);
            return EBADMSG;
        }
    } else if (rc != -ENOENT) {
        kv_abort(t);
        return EIO;
    }
    struct load_ctx c = { st, 0 };
    rc = kv_scan(t, "MG/", 3, "MG0", 3, 0, load_one, &c);
    kv_abort(t);
    if (c.err)
        return c.err;
    return rc < 0 ? EIO : 0;
}

int store_elect(struct kv_db *kv, uint32_t self_id, const char *self_addr, uint32_t lease_ms,
                uint64_t now_real_ms, struct mg_primary *holder, bool *was_absent)
{
    for (unsigned attempt = 1; attempt <= MAX_COMMIT_ATTEMPTS; attempt++) {
        struct kv_txn *t;
        if (kv_txn_begin(kv, 0, &t) < 0)
            return EIO;
        struct mg_primary p;
        int rc = read_primary(t, &p);
        if (rc == EIO) {
            kv_abort(t);
            return EIO;
        }
        *was_absent = rc == ENOENT;
        /* a record that does not decode is treated as expired: overwrite it */
        bool ours = rc == 0 && is_self(&p, self_id, self_addr);
        bool free_to_take = rc != 0 || p.lease_expires_ms <= now_real_ms;
        if (!ours && !free_to_take) {
            kv_abort(t);
            *holder = p;
            return 0;
        }
        struct mg_primary me = { .node_id = self_id, .lease_expires_ms = now_real_ms + lease_ms };
        snprintf(me.addr, sizeof(me.addr), "%s", self_addr);
        struct wbuf wb;
        wb_init(&wb, 0);
        primary_enc(&wb, &me);
        int prc = wb.err ? -ENOMEM : kv_put(t, K_PRIMARY, sizeof(K_PRIMARY) - 1, wb.data, wb.len);
        wb_free(&wb);
        if (prc < 0) {
            kv_abort(t);
            return EIO;
        }
        rc = kv_commit(t);
        if (rc == 0) {
            *holder = me;
            return 0;
        }
        if (rc != -EAGAIN)
            return EIO;
        kv_retry_backoff(attempt); /* someone else wrote it: look again */
    }
    return EIO;
}

void store_release(struct kv_db *kv, uint32_t self_id, const char *self_addr,
                   uint64_t now_real_ms)
{
    for (unsigned attempt = 1; attempt <= MAX_COMMIT_ATTEMPTS; attempt++) {
        struct kv_txn *t;
        if (kv_txn_begin(kv, 0, &t) < 0)
            return;
        struct mg_primary p;
        if (read_primary(t, &p) != 0 || !is_self(&p, self_id, self_addr) ||
            p.lease_expires_ms <= now_real_ms) {
            kv_abort(t);
            return;
        }
        p.lease_expires_ms = now_real_ms;
        struct wbuf wb;
        wb_init(&wb, 0);
        primary_enc(&wb, &p);
        int prc = wb.err ? -ENOMEM : kv_put(t, K_PRIMARY, sizeof(K_PRIMARY) - 1, wb.data, wb.len);
        wb_free(&wb);
        if (prc < 0) {
            kv_abort(t);
            return;
        }
        int rc = kv_commit(t);
        if (rc != -EAGAIN)
            return;
        kv_retry_backoff(attempt);
    }
}
