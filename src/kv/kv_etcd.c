/* kv_etcd.c — the etcd v3 engine behind kv.h (see kv.h for the URI).
 *
 * A transaction's first read fixes its snapshot: the store revision etcd
 * served it at; every later read asks for that revision. Writes are
 * buffered (kv_wbuf). kv_commit() sends one etcd txn whose compares are
 *   - every key read: mod_revision == the one seen (0 = was absent),
 *   - every scanned interval: all mod_revisions < snapshot + 1 (nothing
 *     inserted or changed since), plus each key visited in it (== seen,
 *     which also catches deletions),
 *   - a fresh marker key M: absent,
 * and whose success branch applies the writes and creates M. A commit whose
 * answer was lost (connection dropped, etcd timed the proposal out) is sent
 * again unchanged: if the first copy had applied, the second fails its
 * compares, and M's existence tells a commit that applied from a real
 * conflict — so a retried commit applies exactly once. Markers are deleted
 * by a later commit of the same handle once their outcome is known.
 *
 * etcd keys: PREFIX "d/" KEY for data, PREFIX "m/" CLIENT "/" SEQ for markers.
 */
#include "kv/kv_backend.h"
#include "kv/etcd_codec.h"
#include "kv/etcd_http.h"
#include "kv/kv_wbuf.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define DEFAULT_PREFIX "/valorfs/"
#define DEFAULT_OP_TIMEOUT_MS 5000
#define MAX_PREFIX 128
#define SCAN_PAGE 512
#define MAX_PENDING_MARKERS 4096
#define MARKER_DELETES_PER_COMMIT 16

struct etcd_db {
    struct kv_db base;
    struct etcd_conn *conn;
    uint8_t dpfx[MAX_PREFIX + 2]; /* PREFIX "d/" */
    size_t dplen;
    uint8_t dend[MAX_PREFIX + 2]; /* first key after every data key */
    char mpfx[MAX_PREFIX + 40];   /* PREFIX "m/" CLIENT "/" */
    size_t mplen;
    int64_t op_timeout_ns;
    _Atomic uint64_t seq;
    pthread_mutex_t mu;
    uint64_t pending[MAX_PENDING_MARKERS]; /* markers whose outcome is known: delete */
    size_t npending;
};

struct etcd_read {
    uint8_t *key; /* full etcd key */
    size_t klen;
    int64_t mod; /* 0: absent */
    const uint8_t *val; /* the value seen (in t->keep), for a repeated get */
    size_t vlen;
};

struct etcd_span {
    uint8_t *begin, *end; /* full etcd keys, [begin, end) */
    size_t blen, elen;
};

struct etcd_txn {
    struct kv_txn base;
    struct etcd_db *db;
    int64_t rev; /* snapshot; 0 until the first read */
    struct kv_wbuf wb;
    struct etcd_read *reads;
    size_t nreads, capreads;
    struct etcd_span *spans;
    size_t nspans, capspans;
    void **keep; /* answers whose bytes callers may still hold */
    size_t nkeep, capkeep;
    int err;
};

static const uint8_t empty_byte;

static bool tracking(const struct etcd_txn *t) { return !(t->base.flags & KV_TXN_RDONLY); }

static int64_t deadline(const struct etcd_db *db) { return etcd_now_ns() + db->op_timeout_ns; }

/* Full etcd key of a kv key into buf (room for dplen + KV_MAX_KEY + 2). */
static size_t full_key(const struct etcd_db *db, const void *key, size_t klen, uint8_t *buf)
{
    memcpy(buf, db->dpfx, db->dplen);
    if (klen)
        memcpy(buf + db->dplen, key, klen);
    return db->dplen + klen;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static int keep(struct etcd_txn *t, void *mem)
{
    if (grow((void **)&t->keep, &t->capkeep, t->nkeep + 1, sizeof(void *))) {
        free(mem);
        return -ENOMEM;
    }
    t->keep[t->nkeep++] = mem;
    return 0;
}

static int add_read(struct etcd_txn *t, const uint8_t *key, size_t klen, int64_t mod,
                    const uint8_t *val, size_t vlen)
{
    if (grow((void **)&t->reads, &t->capreads, t->nreads + 1, sizeof(*t->reads)))
        return -ENOMEM;
    uint8_t *k = malloc(klen);
    if (!k)
        return -ENOMEM;
    memcpy(k, key, klen);
    t->reads[t->nreads++] =
        (struct etcd_read){ .key = k, .klen = klen, .mod = mod, .val = val, .vlen = vlen };
    return 0;
}

static int add_span(struct etcd_txn *t, const uint8_t *b, size_t blen, const uint8_t *e,
                    size_t elen)
{
    if (grow((void **)&t->spans, &t->capspans, t->nspans + 1, sizeof(*t->spans)))
        return -ENOMEM;
    uint8_t *bb = malloc(blen), *ee = malloc(elen);
    if (!bb || !ee) {
        free(bb);
        free(ee);
        return -ENOMEM;
    }
    memcpy(bb, b, blen);
    memcpy(ee, e, elen);
    t->spans[t->nspans++] = (struct etcd_span){ .begin = bb, .blen = blen, .end = ee, .elen = elen };
    return 0;
}

/* ---- requests ---- */

/* One range request at the transaction's snapshot (fixing it if unset). */
static int range_at(struct etcd_txn *t, const uint8_t *key, size_t klen, const uint8_t *end,
                    size_t elen, int64_t limit, struct etcd_range_result *res)
{
    struct etcd_db *db = t->db;
    size_t len;
    char *body = etcd_req_range(key, klen, end, elen, t->rev, limit, &len);
    if (!body)
        return -ENOMEM;
    struct etcd_reply r;
    bool sent = false;
    char why[256];
    int rc = etcd_call(db->conn, "/v3/kv/range", body, len, deadline(db), &r, &sent, why,
                       sizeof(why));
    free(body);
    if (rc)
        return rc;
    rc = etcd_decode_range(r.body, r.len, res);
    free(r.body);
    if (rc) {
        LOG_ERROR("kv", "etcd sent a malformed range answer endpoints=%s",
                  etcd_conn_endpoints(db->conn));
        return -EIO;
    }
    if (t->rev == 0)
        t->rev = res->revision;
    return 0;
}

/* ---- open / close ---- */

static int parse_location(const char *loc, char *eps, size_t epslen, char *prefix,
                          int64_t *timeout_ms, char *err, size_t errlen)
{
    if (!strncmp(loc, "//", 2))
        loc += 2;
    size_t n = strcspn(loc, "/?");
    if (n == 0 || n >= epslen) {
        snprintf(err, errlen, "kv: etcd URI needs HOST:PORT[,HOST:PORT...] (got '%s')", loc);
        return -1;
    }
    memcpy(eps, loc, n);
    eps[n] = 0;
    loc += n;
    snprintf(prefix, MAX_PREFIX + 1, "%s", DEFAULT_PREFIX);
    if (*loc == '/') {
        size_t p = strcspn(loc, "?");
        if (p > MAX_PREFIX - 1) {
            snprintf(err, errlen, "kv: etcd key prefix longer than %d bytes", MAX_PREFIX - 1);
            return -1;
        }
        memcpy(prefix, loc, p);
        prefix[p] = 0;
        if (prefix[p - 1] != '/')
            strcat(prefix, "/"); /* "/a/b" and "/a/b/" name the same store */
        loc += p;
    }
    *timeout_ms = DEFAULT_OP_TIMEOUT_MS;
    if (*loc == '?') {
        char *end;
        if (strncmp(loc + 1, "op_timeout_ms=", 14) ||
            (*timeout_ms = strtoll(loc + 15, &end, 10)) <= 0 || *end || *timeout_ms > 3600000) {
            snprintf(err, errlen, "kv: bad etcd URI option '%s' (supported: op_timeout_ms=1..3600000)",
                     loc + 1);
            return -1;
        }
    }
    return 0;
}

static void flush_markers(struct etcd_db *db, int64_t until_ns);

static struct kv_db *etcd_open(const char *location, const struct kv_opts *o, char *err,
                               size_t errlen)
{
    (void)o; /* durability is etcd's: every commit is fsynced by a quorum */
    char eps[1024], prefix[MAX_PREFIX + 1];
    int64_t timeout_ms;
    if (parse_location(location, eps, sizeof(eps), prefix, &timeout_ms, err, errlen))
        return NULL;
    struct etcd_db *db = calloc(1, sizeof(*db));
    if (!db) {
        snprintf(err, errlen, "kv: out of memory");
        return NULL;
    }
    db->base.ops = &kv_etcd_ops;
    db->op_timeout_ns = timeout_ms * 1000000ll;
    pthread_mutex_init(&db->mu, NULL);
    size_t pl = strlen(prefix);
    memcpy(db->dpfx, prefix, pl);
    memcpy(db->dpfx + pl, "d/", 2);
    db->dplen = pl + 2;
    memcpy(db->dend, db->dpfx, db->dplen);
    db->dend[db->dplen - 1]++; /* "d/" -> "d0": just past every data key */
    uint64_t id = 0;
    if (getrandom(&id, sizeof(id), 0) != sizeof(id))
        id = (uint64_t)etcd_now_ns() ^ ((uint64_t)getpid() << 32);
    db->mplen = (size_t)snprintf(db->mpfx, sizeof(db->mpfx), "%sm/%016" PRIx64 "/", prefix, id);
    if (!(db->conn = etcd_conn_new(eps, err, errlen))) {
        free(db);
        return NULL;
    }
    /* Fail fast and clearly when nothing answers: one probe read. */
    struct etcd_range_result res;
    char why[256] = "";
    size_t len;
    char *body = etcd_req_range(db->dpfx, db->dplen, db->dend, db->dplen, 0, 1, &len);
    struct etcd_reply r = { 0 };
    bool sent = false;
    int rc = body ? etcd_call(db->conn, "/v3/kv/range", body, len, deadline(db), &r, &sent, why,
                              sizeof(why))
                  : -ENOMEM;
    free(body);
    if (rc == 0) {
        rc = etcd_decode_range(r.body, r.len, &res) ? -EPROTO : 0;
        if (rc == 0)
            etcd_range_result_free(&res);
        else
            snprintf(why, sizeof(why), "the answer is not an etcd v3 range response");
        free(r.body);
    }
    if (rc) {
        snprintf(err, errlen, "kv: etcd at %s unreachable after %.1f s: %s", eps,
                 (double)timeout_ms / 1000.0, why);
        etcd_conn_free(db->conn);
        free(db);
        return NULL;
    }
    LOG_INFO("kv", "etcd store open endpoints=%s prefix=%s op_timeout_ms=%" PRId64, eps, prefix,
             timeout_ms);
    return &db->base;
}

static void etcd_close(struct kv_db *base)
{
    struct etcd_db *db = (struct etcd_db *)base;
    flush_markers(db, etcd_now_ns() + 1000000000ll);
    etcd_conn_free(db->conn);
    pthread_mutex_destroy(&db->mu);
    free(db);
}

/* ---- transactions ---- */

static int etcd_begin(struct kv_db *base, unsigned flags, struct kv_txn **out)
{
    struct etcd_txn *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->base.ops = &kv_etcd_ops;
    t->base.flags = flags;
    t->db = (struct etcd_db *)base;
    kv_wbuf_init(&t->wb);
    *out = &t->base;
    return 0;
}

static void txn_free(struct etcd_txn *t)
{
    kv_wbuf_free(&t->wb);
    for (size_t i = 0; i < t->nreads; i++)
        free(t->reads[i].key);
    free(t->reads);
    for (size_t i = 0; i < t->nspans; i++) {
        free(t->spans[i].begin);
        free(t->spans[i].end);
    }
    free(t->spans);
    for (size_t i = 0; i < t->nkeep; i++)
        free(t->keep[i]);
    free(t->keep);
    free(t);
}

/* The read of full key fk this transaction already made, or NULL. */
static const struct etcd_read *find_read(const struct etcd_txn *t, const uint8_t *fk, size_t fl)
{
    for (size_t i = t->nreads; i-- > 0;)
        if (t->reads[i].klen == fl && !memcmp(t->reads[i].key, fk, fl))
            return &t->reads[i];
    return NULL;
}

/* Take etcd's answer to a point read of fk into the transaction: check it
 * names that key, keep its memory until the transaction ends (kv.h) and
 * remember it as a read. Every point read is remembered (a repeat is free);
 * only read-write transactions turn reads into commit compares. Consumes
 * res; 0 or a sticky -errno. */
static int take_point(struct etcd_txn *t, const uint8_t *fk, size_t fl,
                      struct etcd_range_result *res)
{
    const struct etcd_kv *e = res->n == 1 ? &res->kvs[0] : NULL;
    if (res->n > 1 || (e && (e->klen != fl || memcmp(e->key, fk, fl)))) {
        etcd_range_result_free(res);
        LOG_ERROR("kv", "etcd answered a point read with another key");
        return t->err = -EIO;
    }
    const uint8_t *val = e && e->vlen ? e->val : &empty_byte;
    size_t vlen = e ? e->vlen : 0;
    int64_t mod = e ? e->mod_revision : 0;
    if (keep(t, res->mem) || add_read(t, fk, fl, mod, val, vlen))
        return t->err = -ENOMEM;
    return 0;
}

static int etcd_get(struct kv_txn *base, const void *key, size_t klen, struct kv_val *out)
{
    struct etcd_txn *t = (struct etcd_txn *)base;
    if (t->err)
        return t->err;
    int rc = kv_wbuf_get(&t->wb, key, klen, &out->data, &out->len);
    if (rc <= 0)
        return rc; /* our own write answers it */
    uint8_t fk[MAX_PREFIX + 2 + KV_MAX_KEY + 2];
    size_t fl = full_key(t->db, key, klen, fk);
    const struct etcd_read *rd = find_read(t, fk, fl);
    if (!rd) {
        struct etcd_range_result res;
        rc = range_at(t, fk, fl, NULL, 0, 0, &res);
        if (rc)
            return rc == -EAGAIN ? -EAGAIN : (t->err = rc);
        if ((rc = take_point(t, fk, fl, &res)) != 0)
            return rc;
        rd = &t->reads[t->nreads - 1];
    }
    if (rd->mod == 0)
        return -ENOENT;
    out->data = rd->val;
    out->len = rd->vlen;
    return 0;
}

/* Fetch the keys a caller is about to get in one round trip (a read-only
 * etcd txn of point ranges at the snapshot) and remember them as reads. */
static int etcd_prefetch(struct kv_txn *base, const struct kv_key *keys, size_t n)
{
    struct etcd_txn *t = (struct etcd_txn *)base;
    struct etcd_db *db = t->db;
    if (t->err)
        return t->err;
    enum { MAX_BATCH = 16 };
    uint8_t fks[MAX_BATCH][MAX_PREFIX + 2 + KV_MAX_KEY + 2];
    struct etcd_key want[MAX_BATCH];
    size_t m = 0;
    for (size_t i = 0; i < n && m < MAX_BATCH; i++) {
        if (kv_wbuf_find(&t->wb, keys[i].key, keys[i].klen))
            continue; /* our own write answers it */
        size_t fl = full_key(db, keys[i].key, keys[i].klen, fks[m]);
        bool known = find_read(t, fks[m], fl) != NULL;
        for (size_t j = 0; j < m && !known; j++)
            known = want[j].klen == fl && !memcmp(want[j].key, fks[m], fl);
        if (!known) {
            want[m] = (struct etcd_key){ .key = fks[m], .klen = fl };
            m++;
        }
    }
    if (m < 2)
        return 0; /* one key costs the same round trip through kv_get */
    size_t len;
    char *body = etcd_req_multi_range(want, m, t->rev, &len);
    if (!body)
        return -ENOMEM;
    struct etcd_reply r;
    bool sent = false;
    char why[256];
    int rc = etcd_call(db->conn, "/v3/kv/txn", body, len, deadline(db), &r, &sent, why,
                       sizeof(why));
    free(body);
    if (rc)
        return rc == -EAGAIN ? -EAGAIN : (t->err = rc);
    struct etcd_range_result res[MAX_BATCH];
    rc = etcd_decode_multi_range(r.body, r.len, res, m);
    free(r.body);
    if (rc) {
        LOG_ERROR("kv", "etcd sent a malformed multi-read answer endpoints=%s",
                  etcd_conn_endpoints(db->conn));
        return t->err = -EIO;
    }
    if (t->rev == 0)
        t->rev = res[0].revision;
    for (size_t i = 0; i < m; i++) {
        if ((rc = take_point(t, want[i].key, want[i].klen, &res[i])) != 0) {
            for (size_t j = i + 1; j < m; j++)
                etcd_range_result_free(&res[j]);
            return rc;
        }
    }
    return 0;
}

static int etcd_put(struct kv_txn *base, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
    struct etcd_txn *t = (struct etcd_txn *)base;
    return kv_wbuf_set(&t->wb, key, klen, val, vlen, false);
}

static int etcd_del(struct kv_txn *base, const void *key, size_t klen)
{
    struct etcd_txn *t = (struct etcd_txn *)base;
    return kv_wbuf_set(&t->wb, key, klen, NULL, 0, true);
}

/* The snapshot side of a scan: pages of [cursor, end) fetched on demand. */
struct snap_iter {
    struct etcd_txn *t;
    uint8_t cursor[MAX_PREFIX + 2 + KV_MAX_KEY + 2];
    size_t clen;
    const uint8_t *end;
    size_t elen;
    int64_t page;
    struct etcd_kv *kvs; /* current page (owned by t->keep) */
    size_t n, i;
    bool more, started;
};

/* Advance to the next snapshot pair: 1 (cur set), 0 (no more), -errno. */
static int snap_next(struct snap_iter *it, const struct etcd_kv **cur)
{
    struct etcd_db *db = it->t->db;
    while (it->i >= it->n) {
        if (it->started && !it->more)
            return 0;
        struct etcd_range_result res;
        int rc = range_at(it->t, it->cursor, it->clen, it->end, it->elen, it->page, &res);
        if (rc)
            return rc;
        it->started = true;
        it->more = res.more;
        it->kvs = res.kvs;
        it->n = res.n;
        it->i = 0;
        if (res.n == 0) {
            etcd_range_result_free(&res);
            it->more = false;
            return 0;
        }
        /* Every key must lie in the asked interval and carry our prefix. */
        for (size_t j = 0; j < res.n; j++) {
            const struct etcd_kv *e = &res.kvs[j];
            if (e->klen <= db->dplen || e->klen > db->dplen + KV_MAX_KEY ||
                memcmp(e->key, db->dpfx, db->dplen) ||
                kv_key_cmp(e->key, e->klen, it->cursor, it->clen) < 0 ||
                kv_key_cmp(e->key, e->klen, it->end, it->elen) >= 0) {
                etcd_range_result_free(&res);
                LOG_ERROR("kv", "etcd answered a range with a key outside it");
                return -EIO;
            }
        }
        const struct etcd_kv *last = &res.kvs[res.n - 1];
        memcpy(it->cursor, last->key, last->klen);
        it->cursor[last->klen] = 0; /* next page starts just after the last key */
        it->clen = last->klen + 1;
        if (keep(it->t, res.mem))
            return -ENOMEM;
    }
    *cur = &it->kvs[it->i++];
    return 1;
}

static int etcd_scan(struct kv_txn *base, const void *begin, size_t blen, const void *end,
                     size_t elen, size_t limit, kv_scan_fn fn, void *arg)
{
    struct etcd_txn *t = (struct etcd_txn *)base;
    struct etcd_db *db = t->db;
    if (t->err)
        return t->err;
    if (end && kv_key_cmp(begin, blen, end, elen) >= 0)
        return 0;
    struct snap_iter it = { .t = t };
    it.clen = full_key(db, begin, blen, it.cursor);
    uint8_t fbegin[sizeof(it.cursor)], fend[sizeof(it.cursor)];
    size_t fblen = it.clen, felen;
    memcpy(fbegin, it.cursor, fblen);
    if (end) {
        felen = full_key(db, end, elen, fend);
    } else {
        memcpy(fend, db->dend, db->dplen);
        felen = db->dplen;
    }
    it.end = fend;
    it.elen = felen;
    it.page = limit && limit < SCAN_PAGE - 16 ? (int64_t)limit + 16 : SCAN_PAGE;

    size_t wi = kv_wbuf_lower_bound(&t->wb, begin, blen, false);
    uint64_t wver = t->wb.version;
    uint8_t pos[KV_MAX_KEY + 1];
    size_t poslen = 0;
    bool have_pos = false;
    uint8_t last[KV_MAX_KEY + 1];
    size_t lastlen = 0;
    bool stopped = false;
    size_t emitted = 0;
    int ret = 0;
    const struct etcd_kv *sk = NULL;
    int src = snap_next(&it, &sk);

    for (;;) {
        if (src < 0) {
            ret = src == -EAGAIN ? -EAGAIN : (t->err = src);
            break;
        }
        if (t->wb.version != wver) { /* fn wrote to this txn: re-find our place */
            wi = have_pos ? kv_wbuf_lower_bound(&t->wb, pos, poslen, true)
                          : kv_wbuf_lower_bound(&t->wb, begin, blen, false);
            wver = t->wb.version;
        }
        const struct kv_wentry *we = wi < t->wb.n ? t->wb.e[wi] : NULL;
        if (we && end && kv_key_cmp(kv_wentry_key(we), we->klen, end, elen) >= 0)
            we = NULL;
        bool have_snap = src == 1;
        if (!have_snap && !we)
            break;
        const uint8_t *sk_key = have_snap ? sk->key + db->dplen : NULL;
        size_t sk_len = have_snap ? sk->klen - db->dplen : 0;
        int cmp = !have_snap ? 1 : !we ? -1 : kv_key_cmp(sk_key, sk_len, kv_wentry_key(we), we->klen);
        const void *k = NULL, *v = NULL;
        size_t klen = 0, vlen = 0;
        bool skip = false;
        if (cmp <= 0) {
            if (tracking(t) && add_read(t, sk->key, sk->klen, sk->mod_revision,
                                        sk->vlen ? sk->val : &empty_byte, sk->vlen)) {
                ret = t->err = -ENOMEM;
                break;
            }
            k = sk_key;
            klen = sk_len;
            v = sk->vlen ? sk->val : &empty_byte;
            vlen = sk->vlen;
            src = snap_next(&it, &sk);
        }
        if (cmp >= 0) {
            k = kv_wentry_key(we);
            klen = we->klen;
            v = kv_wentry_val(we);
            vlen = we->vlen;
            skip = we->deleted;
            wi++;
        }
        memcpy(pos, k, klen);
        poslen = klen;
        have_pos = true;
        if (skip)
            continue;
        memcpy(last, k, klen);
        lastlen = klen;
        emitted++;
        int r = fn(arg, k, klen, v, vlen);
        if (r != 0 || (limit && emitted == limit)) {
            stopped = true;
            if (r < 0)
                ret = r;
            break;
        }
    }
    if (t->err || ret == -EAGAIN || !tracking(t) || t->rev == 0)
        return ret;
    /* Protect what the scan covered: up to the end, or through the last key seen. */
    int arc;
    if (stopped) {
        uint8_t fl[sizeof(it.cursor)];
        size_t fll = full_key(db, last, lastlen, fl);
        fl[fll++] = 0;
        arc = add_span(t, fbegin, fblen, fl, fll);
    } else {
        arc = add_span(t, fbegin, fblen, fend, felen);
    }
    if (arc)
        return t->err = arc;
    return ret;
}

/* ---- commit ---- */

static void marker_key(const struct etcd_db *db, uint64_t seq, char *buf, size_t *len)
{
    *len = (size_t)snprintf(buf, MAX_PREFIX + 64, "%s%016" PRIx64, db->mpfx, seq);
}

static void pending_push(struct etcd_db *db, uint64_t seq)
{
    pthread_mutex_lock(&db->mu);
    if (db->npending < MAX_PENDING_MARKERS)
        db->pending[db->npending++] = seq;
    pthread_mutex_unlock(&db->mu);
}

static size_t pending_take(struct etcd_db *db, uint64_t *out, size_t max)
{
    pthread_mutex_lock(&db->mu);
    size_t n = db->npending < max ? db->npending : max;
    db->npending -= n;
    memcpy(out, db->pending + db->npending, n * sizeof(*out));
    pthread_mutex_unlock(&db->mu);
    return n;
}

/* Does marker seq exist (i.e. did its commit apply)? 1, 0 or -errno. */
static int marker_exists(struct etcd_db *db, uint64_t seq)
{
    char mk[MAX_PREFIX + 64];
    size_t ml;
    marker_key(db, seq, mk, &ml);
    struct etcd_txn probe = { .db = db };
    struct etcd_range_result res;
    int rc = range_at(&probe, (const uint8_t *)mk, ml, NULL, 0, 0, &res);
    if (rc)
        return rc;
    int found = res.n > 0;
    etcd_range_result_free(&res);
    return found;
}

/* Send a txn (cmps, ops) until it has a known outcome. 0 applied, -EAGAIN a
 * compare failed, else -errno. marker: this txn's marker seq. */
static int send_txn(struct etcd_db *db, const struct etcd_cmp *cmps, size_t nc,
                    const struct etcd_op *ops, size_t no, uint64_t marker)
{
    size_t len;
    char *body = etcd_req_txn(cmps, nc, ops, no, &len);
    if (!body)
        return -ENOMEM;
    struct etcd_reply r;
    bool maybe_sent = false, succeeded = false;
    char why[256] = "";
    int64_t rev;
    int rc = etcd_call(db->conn, "/v3/kv/txn", body, len, deadline(db), &r, &maybe_sent, why,
                       sizeof(why));
    free(body);
    if (rc == -E2BIG) {
        LOG_ERROR("kv", "transaction too large for etcd compares=%zu writes=%zu bytes=%zu: %s "
                  "(raise etcd's --max-txn-ops / --max-request-bytes)", nc, no, len, why);
        return -E2BIG;
    }
    if (rc) {
        if (maybe_sent)
            LOG_WARN("kv", "etcd commit outcome unknown after %.1f s marker=%016" PRIx64 ": %s",
                     (double)db->op_timeout_ns / 1e9, marker, why);
        return rc == -EAGAIN ? -EIO : rc;
    }
    rc = etcd_decode_txn(r.body, r.len, &succeeded, &rev);
    free(r.body);
    if (rc) {
        LOG_ERROR("kv", "etcd sent a malformed txn answer");
        return -EIO;
    }
    if (succeeded)
        return 0;
    if (!maybe_sent)
        return -EAGAIN;
    /* An earlier copy may have applied: its marker says so. */
    int ex = marker_exists(db, marker);
    if (ex < 0)
        return ex == -EAGAIN ? -EIO : ex;
    return ex ? 0 : -EAGAIN;
}

static void flush_markers(struct etcd_db *db, int64_t until_ns)
{
    uint64_t seqs[MARKER_DELETES_PER_COMMIT];
    while (etcd_now_ns() < until_ns) {
        size_t n = pending_take(db, seqs, MARKER_DELETES_PER_COMMIT);
        if (!n)
            return;
        char keys[MARKER_DELETES_PER_COMMIT][MAX_PREFIX + 64];
        struct etcd_op ops[MARKER_DELETES_PER_COMMIT];
        for (size_t i = 0; i < n; i++) {
            size_t l;
            marker_key(db, seqs[i], keys[i], &l);
            ops[i] = (struct etcd_op){ .del = true, .key = keys[i], .klen = l };
        }
        size_t len;
        char *body = etcd_req_txn(NULL, 0, ops, n, &len);
        struct etcd_reply r;
        bool sent = false;
        if (!body || etcd_call(db->conn, "/v3/kv/txn", body, len, until_ns, &r, &sent, NULL, 0)) {
            free(body);
            return;
        }
        free(body);
        free(r.body);
    }
}

static int etcd_commit(struct kv_txn *base)
{
    struct etcd_txn *t = (struct etcd_txn *)base;
    struct etcd_db *db = t->db;
    int rc = t->err;
    if (rc || !tracking(t) || t->wb.n == 0)
        goto out;
    uint64_t old[MARKER_DELETES_PER_COMMIT];
    size_t nold = pending_take(db, old, MARKER_DELETES_PER_COMMIT);
    size_t nc = t->nreads + t->nspans + 1, no = t->wb.n + 1 + nold;
    struct etcd_cmp *cmps = calloc(nc, sizeof(*cmps));
    struct etcd_op *ops = calloc(no, sizeof(*ops));
    uint8_t *fkeys = malloc(t->wb.n * (db->dplen + KV_MAX_KEY + 1));
    char (*mkeys)[MAX_PREFIX + 64] = calloc(nold + 1, sizeof(*mkeys));
    rc = -ENOMEM;
    if (!cmps || !ops || !fkeys || !mkeys)
        goto done;
    size_t c = 0, o = 0;
    for (size_t i = 0; i < t->nreads; i++)
        cmps[c++] = (struct etcd_cmp){ .kind = ETCD_CMP_MOD_EQ, .key = t->reads[i].key,
                                       .klen = t->reads[i].klen, .rev = t->reads[i].mod };
    for (size_t i = 0; i < t->nspans; i++)
        cmps[c++] = (struct etcd_cmp){ .kind = ETCD_CMP_MOD_LT, .key = t->spans[i].begin,
                                       .klen = t->spans[i].blen, .end = t->spans[i].end,
                                       .elen = t->spans[i].elen, .rev = t->rev + 1 };
    uint64_t seq = atomic_fetch_add(&db->seq, 1) + 1;
    size_t ml;
    marker_key(db, seq, mkeys[0], &ml);
    cmps[c++] = (struct etcd_cmp){ .kind = ETCD_CMP_MOD_EQ, .key = mkeys[0], .klen = ml, .rev = 0 };
    for (size_t i = 0; i < t->wb.n; i++) {
        const struct kv_wentry *e = t->wb.e[i];
        uint8_t *fk = fkeys + i * (db->dplen + KV_MAX_KEY + 1);
        size_t fl = full_key(db, kv_wentry_key(e), e->klen, fk);
        ops[o++] = (struct etcd_op){ .del = e->deleted, .key = fk, .klen = fl,
                                     .val = kv_wentry_val(e), .vlen = e->vlen };
    }
    ops[o++] = (struct etcd_op){ .key = mkeys[0], .klen = ml, .val = "", .vlen = 0 };
    for (size_t i = 0; i < nold; i++) {
        size_t l;
        marker_key(db, old[i], mkeys[i + 1], &l);
        ops[o++] = (struct etcd_op){ .del = true, .key = mkeys[i + 1], .klen = l };
    }
    rc = send_txn(db, cmps, c, ops, o, seq);
    if (rc == 0 || rc == -EIO)
        pending_push(db, seq); /* applied, or perhaps: delete it later either way */
done:
    if (rc != 0)
        for (size_t i = 0; i < nold; i++)
            pending_push(db, old[i]);
    free(cmps);
    free(ops);
    free(fkeys);
    free(mkeys);
out:
    txn_free(t);
    return rc;
}

static void etcd_abort(struct kv_txn *base)
{
    txn_free((struct etcd_txn *)base);
}

const struct kv_backend_ops kv_etcd_ops = {
    .scheme = "etcd",
    .remote = true,
    .open = etcd_open,
    .close = etcd_close,
    .begin = etcd_begin,
    .get = etcd_get,
    .prefetch = etcd_prefetch,
    .put = etcd_put,
    .del = etcd_del,
    .scan = etcd_scan,
    .commit = etcd_commit,
    .abort = etcd_abort,
};
