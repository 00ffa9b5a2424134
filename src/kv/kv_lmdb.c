/* kv_lmdb.c — the embedded LMDB engine behind kv.h.
 *
 * A transaction reads from an LMDB read transaction (its snapshot), buffers
 * writes in a kv_wbuf and records what it read in a kv_readset. kv_commit()
 * takes LMDB's single writer lock (shared across threads and processes via
 * the lock file), re-checks the read set against the current data, applies
 * the buffer and commits. The env is opened MDB_NOSYNC so that the flush can
 * be shared between concurrent committers (kv_group_sync); MDB_NOTLS because
 * a thread may hold many transactions and hand them to other threads.
 *
 * Several processes may open one store (LMDB's lock file arbitrates); a
 * handle must not be used across fork() — the child opens its own.
 *
 * Crash safety: a killed process loses nothing it committed (the data is
 * in the page cache). With MDB_NOSYNC LMDB may write the meta page before
 * the data pages reach the disk, so a power loss between a commit and its
 * flush can lose that commit — and, since LMDB keeps no checksums, could in
 * the worst case leave a meta page pointing at unwritten pages. The window
 * is the flush latency with KV_SYNC_COMMIT and unbounded with KV_SYNC_NONE.
 */
#include "kv/kv_backend.h"
#include "kv/kv_group_sync.h"
#include "kv/kv_readset.h"
#include "kv/kv_wbuf.h"
#include "common/log.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <time.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KV_DEFAULT_MAP_SIZE (16ull << 30)
#define KV_MAX_READERS 4096 /* slots in the lock file; 64 bytes each */
#define KV_READ_POOL 32     /* idle read transactions kept for reuse */
#define KV_READER_CHECK_NS (10ull * 1000000000ull)

struct lmdb_db {
    struct kv_db base;
    MDB_env *env;
    MDB_dbi dbi;
    enum kv_sync sync;
    char path[PATH_MAX];
    struct kv_group_sync gsync;
    pthread_mutex_t pool_mu;
    MDB_txn *pool[KV_READ_POOL]; /* reset read txns: hold a reader slot, no snapshot */
    size_t npool;
    _Atomic uint64_t next_reader_check_ns;
};

struct lmdb_txn {
    struct kv_txn base;
    struct lmdb_db *db;
    MDB_txn *snap;
    size_t snap_id;
    struct kv_wbuf wb;
    struct kv_readset rs;
    int err; /* sticky: a failed read makes the transaction uncommittable */
};

static const uint8_t empty_byte;

static int map_err(const struct lmdb_db *db, int rc, const char *what)
{
    if (rc == MDB_MAP_FULL) {
        LOG_WARN("kv", "store full during %s path=%s (raise the map size)", what, db->path);
        return -ENOSPC;
    }
    if (rc == ENOMEM)
        return -ENOMEM;
    LOG_ERROR("kv", "lmdb %s failed path=%s err=\"%s\"", what, db->path, mdb_strerror(rc));
    return -EIO;
}

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -errno;
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Reader slots of processes that died (SIGKILL) keep old pages from being
 * reused, so the file would grow; writers sweep them now and then. */
static void sweep_stale_readers(struct lmdb_db *db, bool force)
{
    uint64_t now = mono_ns();
    uint64_t due = atomic_load_explicit(&db->next_reader_check_ns, memory_order_relaxed);
    if (!force && (now < due || !atomic_compare_exchange_strong(&db->next_reader_check_ns, &due,
                                                                now + KV_READER_CHECK_NS)))
        return;
    if (force)
        atomic_store(&db->next_reader_check_ns, now + KV_READER_CHECK_NS);
    int dead = 0;
    mdb_reader_check(db->env, &dead);
    if (dead)
        LOG_INFO("kv", "cleared stale readers path=%s count=%d", db->path, dead);
}

static int flush_env(void *arg)
{
    struct lmdb_db *db = arg;
    int rc = mdb_env_sync(db->env, 1);
    return rc ? map_err(db, rc, "sync") : 0;
}

static struct kv_db *lmdb_open(const char *path, const struct kv_opts *o, char *err,
                               size_t errlen)
{
    struct lmdb_db *db = calloc(1, sizeof(*db));
    if (!db) {
        snprintf(err, errlen, "kv: out of memory");
        return NULL;
    }
    db->base.ops = &kv_lmdb_ops;
    db->sync = o ? o->sync : KV_SYNC_COMMIT;
    snprintf(db->path, sizeof(db->path), "%s", path);
    pthread_mutex_init(&db->pool_mu, NULL);
    kv_group_sync_init(&db->gsync, flush_env, db);

    int rc = mkdir_p(path);
    if (rc) {
        snprintf(err, errlen, "kv: cannot create store directory %s: %s", path, strerror(-rc));
        goto fail;
    }
    const char *what = "mdb_env_create";
    if ((rc = mdb_env_create(&db->env)))
        goto lmdb_fail;
    what = "mdb_env_set_maxreaders";
    if ((rc = mdb_env_set_maxreaders(db->env, KV_MAX_READERS)))
        goto lmdb_fail;
    what = "mdb_env_set_mapsize";
    size_t map = o && o->map_size ? o->map_size : KV_DEFAULT_MAP_SIZE;
    if ((rc = mdb_env_set_mapsize(db->env, map)))
        goto lmdb_fail;
    what = "mdb_env_open";
    if ((rc = mdb_env_open(db->env, path, MDB_NOTLS | MDB_NOSYNC, 0644)))
        goto lmdb_fail;
    sweep_stale_readers(db, true);
    MDB_txn *txn;
    what = "opening the main database";
    if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)))
        goto lmdb_fail;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &db->dbi))) {
        mdb_txn_abort(txn);
        goto lmdb_fail;
    }
    if ((rc = mdb_txn_commit(txn)))
        goto lmdb_fail;
    LOG_DEBUG("kv", "opened lmdb store path=%s map_size=%zu sync=%s", path, map,
              db->sync == KV_SYNC_NONE ? "none" : "commit");
    return &db->base;

lmdb_fail:
    snprintf(err, errlen, "kv: cannot open LMDB store %s: %s: %s", path, what,
             mdb_strerror(rc));
fail:
    if (db->env)
        mdb_env_close(db->env);
    kv_group_sync_destroy(&db->gsync);
    pthread_mutex_destroy(&db->pool_mu);
    free(db);
    return NULL;
}

static void lmdb_close(struct kv_db *base)
{
    struct lmdb_db *db = (struct lmdb_db *)base;
    for (size_t i = 0; i < db->npool; i++)
        mdb_txn_abort(db->pool[i]);
    /* A clean shutdown leaves even KV_SYNC_NONE commits on stable storage. */
    if (db->sync == KV_SYNC_NONE)
        flush_env(db);
    mdb_env_close(db->env);
    kv_group_sync_destroy(&db->gsync);
    pthread_mutex_destroy(&db->pool_mu);
    free(db);
}

static int snapshot_acquire(struct lmdb_db *db, MDB_txn **out)
{
    MDB_txn *txn = NULL;
    pthread_mutex_lock(&db->pool_mu);
    if (db->npool)
        txn = db->pool[--db->npool];
    pthread_mutex_unlock(&db->pool_mu);
    int rc;
    if (txn) {
        rc = mdb_txn_renew(txn);
        if (rc == 0) {
            *out = txn;
            return 0;
        }
        mdb_txn_abort(txn);
    }
    rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, out);
    return rc ? map_err(db, rc, "read txn begin") : 0;
}

static void snapshot_release(struct lmdb_db *db, MDB_txn *txn)
{
    if (!txn)
        return;
    mdb_txn_reset(txn);
    pthread_mutex_lock(&db->pool_mu);
    if (db->npool < KV_READ_POOL) {
        db->pool[db->npool++] = txn;
        txn = NULL;
    }
    pthread_mutex_unlock(&db->pool_mu);
    if (txn)
        mdb_txn_abort(txn);
}

static void txn_free(struct lmdb_txn *t)
{
    snapshot_release(t->db, t->snap);
    kv_wbuf_free(&t->wb);
    kv_readset_free(&t->rs);
    free(t);
}

static int lmdb_begin(struct kv_db *base, unsigned flags, struct kv_txn **out)
{
    struct lmdb_db *db = (struct lmdb_db *)base;
    struct lmdb_txn *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->base.ops = &kv_lmdb_ops;
    t->base.flags = flags;
    t->db = db;
    kv_wbuf_init(&t->wb);
    kv_readset_init(&t->rs);
    int rc = snapshot_acquire(db, &t->snap);
    if (rc) {
        free(t);
        return rc;
    }
    t->snap_id = mdb_txn_id(t->snap);
    *out = &t->base;
    return 0;
}

static bool tracking(const struct lmdb_txn *t)
{
    return !(t->base.flags & KV_TXN_RDONLY);
}

static int lmdb_get(struct kv_txn *base, const void *key, size_t klen, struct kv_val *out)
{
    struct lmdb_txn *t = (struct lmdb_txn *)base;
    int rc = kv_wbuf_get(&t->wb, key, klen, &out->data, &out->len);
    if (rc <= 0)
        return rc; /* our own write: the answer does not depend on the store */
    MDB_val k = { klen, (void *)key }, v;
    rc = mdb_get(t->snap, t->db->dbi, &k, &v);
    if (rc && rc != MDB_NOTFOUND)
        return t->err = map_err(t->db, rc, "get");
    bool present = rc == 0;
    if (tracking(t) && kv_readset_add_read(&t->rs, key, klen, present, v.mv_data,
                                           present ? v.mv_size : 0))
        return t->err = -ENOMEM;
    if (!present)
        return -ENOENT;
    out->data = v.mv_size ? v.mv_data : &empty_byte;
    out->len = v.mv_size;
    return 0;
}

static int lmdb_put(struct kv_txn *base, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
    struct lmdb_txn *t = (struct lmdb_txn *)base;
    return kv_wbuf_set(&t->wb, key, klen, val, vlen, false);
}

static int lmdb_del(struct kv_txn *base, const void *key, size_t klen)
{
    struct lmdb_txn *t = (struct lmdb_txn *)base;
    return kv_wbuf_set(&t->wb, key, klen, NULL, 0, true);
}

/* Position c at the first key >= begin (or the first key); MDB_NOTFOUND if none. */
static int cursor_seek(MDB_cursor *c, const void *begin, size_t blen, MDB_val *k, MDB_val *v)
{
    if (!blen)
        return mdb_cursor_get(c, k, v, MDB_FIRST);
    k->mv_size = blen;
    k->mv_data = (void *)begin;
    return mdb_cursor_get(c, k, v, MDB_SET_RANGE);
}

static int lmdb_scan(struct kv_txn *base, const void *begin, size_t blen, const void *end,
                     size_t elen, size_t limit, kv_scan_fn fn, void *arg)
{
    struct lmdb_txn *t = (struct lmdb_txn *)base;
    struct lmdb_db *db = t->db;
    if (end && kv_key_cmp(begin, blen, end, elen) >= 0)
        return 0; /* empty interval: nothing to see, nothing to protect */

    MDB_cursor *c;
    int rc = mdb_cursor_open(t->snap, db->dbi, &c);
    if (rc)
        return t->err = map_err(db, rc, "cursor open");
    MDB_val dk, dv;
    rc = cursor_seek(c, begin, blen, &dk, &dv);
    bool have_db = rc == 0;

    uint64_t hash = KV_RANGE_HASH_INIT, count = 0, emitted = 0;
    size_t wi = kv_wbuf_lower_bound(&t->wb, begin, blen, false);
    uint64_t wver = t->wb.version;
    const void *pos = NULL; /* last key consumed from either side */
    size_t poslen = 0;
    const void *last = NULL; /* last key handed to fn */
    size_t lastlen = 0;
    bool stopped = false;
    int ret = 0;

    for (;;) {
        if (rc && rc != MDB_NOTFOUND) {
            ret = t->err = map_err(db, rc, "cursor get");
            break;
        }
        if (have_db && end && kv_key_cmp(dk.mv_data, dk.mv_size, end, elen) >= 0)
            have_db = false;
        if (t->wb.version != wver) { /* fn wrote to this txn: re-find our place */
            wi = pos ? kv_wbuf_lower_bound(&t->wb, pos, poslen, true)
                     : kv_wbuf_lower_bound(&t->wb, begin, blen, false);
            wver = t->wb.version;
        }
        const struct kv_wentry *we = wi < t->wb.n ? t->wb.e[wi] : NULL;
        if (we && end && kv_key_cmp(kv_wentry_key(we), we->klen, end, elen) >= 0)
            we = NULL;
        if (!have_db && !we)
            break;

        int cmp = !have_db ? 1 : !we ? -1
                : kv_key_cmp(dk.mv_data, dk.mv_size, kv_wentry_key(we), we->klen);
        const void *k = NULL, *v = NULL;
        size_t klen = 0, vlen = 0;
        bool skip = false;
        if (cmp <= 0) {
            /* The snapshot's pair counts toward the range even when our own
             * write shadows it: conservative, and keeps validation simple. */
            hash = kv_range_hash_step(hash, dk.mv_data, dk.mv_size, dv.mv_data, dv.mv_size);
            count++;
            k = dk.mv_data;
            klen = dk.mv_size;
            v = dv.mv_size ? dv.mv_data : &empty_byte;
            vlen = dv.mv_size;
            rc = mdb_cursor_get(c, &dk, &dv, MDB_NEXT);
            have_db = rc == 0;
        }
        if (cmp >= 0) {
            k = kv_wentry_key(we);
            klen = we->klen;
            v = kv_wentry_val(we);
            vlen = we->vlen;
            skip = we->deleted;
            wi++;
        }
        pos = k;
        poslen = klen;
        if (skip)
            continue;
        last = k;
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
    mdb_cursor_close(c);
    if (t->err || !tracking(t))
        return ret;
    int arc;
    if (stopped)
        arc = kv_readset_add_range(&t->rs, begin, blen, KV_RANGE_LAST_INCL, last, lastlen,
                                   hash, count);
    else if (end)
        arc = kv_readset_add_range(&t->rs, begin, blen, KV_RANGE_END_EXCL, end, elen, hash,
                                   count);
    else
        arc = kv_readset_add_range(&t->rs, begin, blen, KV_RANGE_TO_INFINITY, NULL, 0, hash,
                                   count);
    if (arc)
        return t->err = arc;
    return ret;
}

/* 0 if everything t read is unchanged in w, -EAGAIN if not, else -errno. */
static int validate(struct lmdb_txn *t, MDB_txn *w)
{
    struct lmdb_db *db = t->db;
    for (size_t i = 0; i < t->rs.nreads; i++) {
        const struct kv_read *r = &t->rs.reads[i];
        MDB_val k = { r->klen, r->key }, v;
        int rc = mdb_get(w, db->dbi, &k, &v);
        if (rc && rc != MDB_NOTFOUND)
            return map_err(db, rc, "validate get");
        if ((rc == 0) != r->present)
            return -EAGAIN;
        if (r->present && kv_hash_bytes(v.mv_data, v.mv_size, 0x13198a2e03707344ull) != r->hash)
            return -EAGAIN;
    }
    for (size_t i = 0; i < t->rs.nranges; i++) {
        const struct kv_range *r = &t->rs.ranges[i];
        MDB_cursor *c;
        int rc = mdb_cursor_open(w, db->dbi, &c);
        if (rc)
            return map_err(db, rc, "validate cursor");
        MDB_val k, v;
        uint64_t hash = KV_RANGE_HASH_INIT, count = 0;
        for (rc = cursor_seek(c, r->begin, r->blen, &k, &v); rc == 0;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            if (!kv_range_contains(r, k.mv_data, k.mv_size))
                break;
            hash = kv_range_hash_step(hash, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
            if (++count > r->count)
                break;
        }
        mdb_cursor_close(c);
        if (rc && rc != MDB_NOTFOUND)
            return map_err(db, rc, "validate scan");
        if (count != r->count || hash != r->hash)
            return -EAGAIN;
    }
    return 0;
}

static int apply(struct lmdb_txn *t, MDB_txn *w)
{
    struct lmdb_db *db = t->db;
    for (size_t i = 0; i < t->wb.n; i++) {
        const struct kv_wentry *e = t->wb.e[i];
        MDB_val k = { e->klen, (void *)kv_wentry_key(e) };
        int rc;
        if (e->deleted) {
            rc = mdb_del(w, db->dbi, &k, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        } else {
            MDB_val v = { e->vlen, e->vlen ? (void *)kv_wentry_val(e) : (void *)&empty_byte };
            rc = mdb_put(w, db->dbi, &k, &v, 0);
        }
        if (rc)
            return map_err(db, rc, e->deleted ? "del" : "put");
    }
    return 0;
}

static int lmdb_commit(struct kv_txn *base)
{
    struct lmdb_txn *t = (struct lmdb_txn *)base;
    struct lmdb_db *db = t->db;
    if (!tracking(t) || t->wb.n == 0) {
        txn_free(t);
        return 0; /* nothing to apply: the snapshot was consistent by construction */
    }
    int rc = t->err;
    if (rc) {
        txn_free(t);
        return rc;
    }
    /* Validation reads current data, not the snapshot: give the slot back
     * now so the writer does not wait on our pinned pages. */
    snapshot_release(db, t->snap);
    t->snap = NULL;
    sweep_stale_readers(db, false);

    MDB_txn *w;
    rc = mdb_txn_begin(db->env, NULL, 0, &w);
    if (rc) {
        rc = map_err(db, rc, "write txn begin");
        txn_free(t);
        return rc;
    }
    /* Txn ids count commits: if ours directly follows the snapshot, nobody
     * committed in between and the read set cannot have changed. */
    if (mdb_txn_id(w) != t->snap_id + 1)
        rc = validate(t, w);
    if (rc == 0)
        rc = apply(t, w);
    if (rc) {
        mdb_txn_abort(w);
        txn_free(t);
        return rc;
    }
    rc = mdb_txn_commit(w);
    txn_free(t);
    if (rc)
        return map_err(db, rc, "commit");
    if (db->sync == KV_SYNC_NONE)
        return 0;
    /* A flush error means applied but maybe not durable: -EIO, logged. */
    return kv_group_sync_wait(&db->gsync);
}

static void lmdb_abort(struct kv_txn *base)
{
    txn_free((struct lmdb_txn *)base);
}

const struct kv_backend_ops kv_lmdb_ops = {
    .scheme = "lmdb",
    .open = lmdb_open,
    .close = lmdb_close,
    .begin = lmdb_begin,
    .get = lmdb_get,
    .put = lmdb_put,
    .del = lmdb_del,
    .scan = lmdb_scan,
    .commit = lmdb_commit,
    .abort = lmdb_abort,
};
