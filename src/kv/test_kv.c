/* test_kv.c — conformance suite for kv.h, independent of the engine.
 *
 * Usage: test_kv [STORE-URI]   (default: lmdb store in a fresh temp dir)
 * Every case uses its own key prefix so one store serves them all and a
 * remote engine (etcd) can run the same suite against a shared cluster.
 */
#include "kv/kv.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *uri;
static char tmpdir[256];

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c)) {                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);      \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)
#define CHECK_RC(expr, want)                                                           \
    do {                                                                               \
        int rc_ = (expr);                                                              \
        if (rc_ != (want)) {                                                           \
            fprintf(stderr, "%s:%d: %s = %d (%s), want %d\n", __FILE__, __LINE__, #expr, \
                    rc_, rc_ < 0 ? strerror(-rc_) : "-", (want));                      \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

static struct kv_db *open_db(enum kv_sync sync)
{
    char err[512];
    struct kv_opts o = { .map_size = 0, .sync = sync };
    struct kv_db *db = kv_open(uri, &o, err, sizeof(err));
    if (!db) {
        fprintf(stderr, "open %s: %s\n", uri, err);
        exit(1);
    }
    return db;
}

static struct kv_txn *begin(struct kv_db *db, unsigned flags)
{
    struct kv_txn *t;
    CHECK_RC(kv_txn_begin(db, flags, &t), 0);
    return t;
}

static void put_s(struct kv_txn *t, const char *k, const char *v)
{
    CHECK_RC(kv_put(t, k, strlen(k), v, strlen(v)), 0);
}

/* Value of k as a string in a static buffer, or NULL if absent. */
static const char *get_s(struct kv_txn *t, const char *k)
{
    static __thread char buf[4096];
    struct kv_val v;
    int rc = kv_get(t, k, strlen(k), &v);
    if (rc == -ENOENT)
        return NULL;
    CHECK_RC(rc, 0);
    CHECK(v.len < sizeof(buf));
    memcpy(buf, v.data, v.len);
    buf[v.len] = '\0';
    return buf;
}

/* One committed write, as its own transaction. */
static void commit_put(struct kv_db *db, const char *k, const char *v)
{
    struct kv_txn *t = begin(db, 0);
    put_s(t, k, v);
    CHECK_RC(kv_commit(t), 0);
}

static const char *read_committed(struct kv_db *db, const char *k)
{
    struct kv_txn *t = begin(db, KV_TXN_RDONLY);
    const char *v = get_s(t, k);
    static char copy[4096];
    if (v)
        snprintf(copy, sizeof(copy), "%s", v);
    CHECK_RC(kv_commit(t), 0);
    return v ? copy : NULL;
}

/* Scan collector: "k=v,k=v," */
struct collect {
    char out[8192];
    int stop_after; /* return 1 after this many (0 = never) */
    int fail_after; /* return -fail_code after this many */
    int fail_code;
    int n;
};

static int collect_fn(void *arg, const void *k, size_t klen, const void *v, size_t vlen)
{
    struct collect *c = arg;
    size_t l = strlen(c->out);
    snprintf(c->out + l, sizeof(c->out) - l, "%.*s=%.*s,", (int)klen, (const char *)k,
             (int)vlen, (const char *)v);
    c->n++;
    if (c->fail_after && c->n == c->fail_after)
        return -c->fail_code;
    if (c->stop_after && c->n == c->stop_after)
        return 1;
    return 0;
}

static const char *scan_s(struct kv_txn *t, const char *b, const char *e, size_t limit)
{
    static __thread struct collect c;
    memset(&c, 0, sizeof(c));
    CHECK_RC(kv_scan(t, b, b ? strlen(b) : 0, e, e ? strlen(e) : 0, limit, collect_fn, &c), 0);
    return c.out;
}

#define CHECK_STR(got, want)                                                           \
    do {                                                                               \
        const char *g_ = (got), *w_ = (want);                                          \
        if ((g_ == NULL) != (w_ == NULL) || (g_ && strcmp(g_, w_))) {                  \
            fprintf(stderr, "%s:%d: %s = \"%s\", want \"%s\"\n", __FILE__, __LINE__, #got, \
                    g_ ? g_ : "(absent)", w_ ? w_ : "(absent)");                       \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

static void test_basic(struct kv_db *db)
{
    struct kv_txn *t = begin(db, 0);
    CHECK_STR(get_s(t, "b/x"), NULL);
    put_s(t, "b/x", "1");
    put_s(t, "b/y", "2");
    CHECK_STR(get_s(t, "b/x"), "1"); /* own write visible */
    struct kv_val held;
    CHECK_RC(kv_get(t, "b/x", 3, &held), 0);
    put_s(t, "b/x", "one");         /* overwrite: earlier result must stay valid */
    CHECK(held.len == 1 && memcmp(held.data, "1", 1) == 0);
    CHECK_STR(get_s(t, "b/x"), "one");
    CHECK_RC(kv_del(t, "b/y", 3), 0);
    CHECK_STR(get_s(t, "b/y"), NULL);
    CHECK_RC(kv_put(t, "b/empty", 7, NULL, 0), 0);
    CHECK_RC(kv_commit(t), 0);

    CHECK_STR(read_committed(db, "b/x"), "one");
    CHECK_STR(read_committed(db, "b/y"), NULL);
    CHECK_STR(read_committed(db, "b/empty"), "");

    t = begin(db, 0);
    CHECK_RC(kv_del(t, "b/x", 3), 0);
    CHECK_RC(kv_del(t, "b/never", 7), 0); /* deleting an absent key is fine */
    CHECK_RC(kv_commit(t), 0);
    CHECK_STR(read_committed(db, "b/x"), NULL);

    /* Aborted work is not applied. */
    t = begin(db, 0);
    put_s(t, "b/aborted", "z");
    kv_abort(t);
    CHECK_STR(read_committed(db, "b/aborted"), NULL);

    /* Binary keys and values with NUL bytes. */
    t = begin(db, 0);
    const char bk[] = { 'b', '/', 0, 1, 0 };
    const char bv[] = { 0, 0, 7 };
    CHECK_RC(kv_put(t, bk, sizeof(bk), bv, sizeof(bv)), 0);
    CHECK_RC(kv_commit(t), 0);
    t = begin(db, KV_TXN_RDONLY);
    struct kv_val v;
    CHECK_RC(kv_get(t, bk, sizeof(bk), &v), 0);
    CHECK(v.len == 3 && memcmp(v.data, bv, 3) == 0);
    CHECK_RC(kv_get(t, bk, sizeof(bk) - 1, &v), -ENOENT);
    kv_abort(t);
}

static void test_scan(struct kv_db *db)
{
    struct kv_txn *t = begin(db, 0);
    /* Inserted out of order; includes a prefix pair ("s/a" < "s/aa"). */
    const char *keys[] = { "s/d", "s/b", "s/aa", "s/e", "s/a", "s/c" };
    for (size_t i = 0; i < 6; i++)
        put_s(t, keys[i], keys[i] + 2);
    put_s(t, "r/", "outside-before");
    put_s(t, "t/", "outside-after");
    CHECK_RC(kv_commit(t), 0);

    t = begin(db, KV_TXN_RDONLY);
    CHECK_STR(scan_s(t, "s/", "s0", 0), "s/a=a,s/aa=aa,s/b=b,s/c=c,s/d=d,s/e=e,");
    CHECK_STR(scan_s(t, "s/b", "s/d", 0), "s/b=b,s/c=c,");        /* end exclusive */
    CHECK_STR(scan_s(t, "s/ab", "s/c", 0), "s/b=b,");             /* begin between keys */
    CHECK_STR(scan_s(t, "s/", "s0", 2), "s/a=a,s/aa=aa,");        /* limit */
    /* To the end of the key space (other cases' keys may follow). */
    CHECK(!strncmp(scan_s(t, "s/e", NULL, 0), "s/e=e,t/=outside-after,", 23));
    CHECK_STR(scan_s(t, "s/c", "s/c", 0), "");                   /* empty interval */
    CHECK_STR(scan_s(t, "s/d", "s/b", 0), "");                   /* inverted interval */
    CHECK_STR(scan_s(t, "s/x", "s0", 0), "");
    /* From the very first key: r/ must be the first of ours seen at or after "r". */
    CHECK(strstr(scan_s(t, NULL, "s/", 0), "r/=outside-before,") != NULL);

    struct collect c = { .stop_after = 3 };
    CHECK_RC(kv_scan(t, "s/", 2, "s0", 2, 0, collect_fn, &c), 0);
    CHECK_STR(c.out, "s/a=a,s/aa=aa,s/b=b,");
    struct collect f = { .fail_after = 2, .fail_code = 77 };
    CHECK_RC(kv_scan(t, "s/", 2, "s0", 2, 0, collect_fn, &f), -77);
    CHECK(f.n == 2);
    kv_abort(t);

    /* Own writes merged: new keys, overwrites, deletes, a delete+re-put. */
    t = begin(db, 0);
    put_s(t, "s/bb", "new");
    put_s(t, "s/b", "B");
    CHECK_RC(kv_del(t, "s/c", 3), 0);
    CHECK_RC(kv_del(t, "s/a", 3), 0);
    put_s(t, "s/0", "first");
    put_s(t, "s/z", "last");
    put_s(t, "s0", "past-end");
    CHECK_RC(kv_del(t, "s/nonexistent", 13), 0);
    CHECK_STR(scan_s(t, "s/", "s0", 0), "s/0=first,s/aa=aa,s/b=B,s/bb=new,s/d=d,s/e=e,s/z=last,");
    CHECK_STR(scan_s(t, "s/", "s0", 3), "s/0=first,s/aa=aa,s/b=B,"); /* deletes don't count */
    CHECK_STR(scan_s(t, "s/b", "s/d", 0), "s/b=B,s/bb=new,");
    CHECK_RC(kv_commit(t), 0);

    t = begin(db, KV_TXN_RDONLY);
    CHECK_STR(scan_s(t, "s/", "s0", 0), "s/0=first,s/aa=aa,s/b=B,s/bb=new,s/d=d,s/e=e,s/z=last,");
    kv_abort(t);
}

/* A scan callback that writes into the same transaction while scanning. */
struct writer_arg {
    struct kv_txn *t;
    int n;
    char seen[512];
};

static int writing_fn(void *arg, const void *k, size_t klen, const void *v, size_t vlen)
{
    (void)v;
    (void)vlen;
    struct writer_arg *w = arg;
    size_t l = strlen(w->seen);
    snprintf(w->seen + l, sizeof(w->seen) - l, "%.*s,", (int)klen, (const char *)k);
    if (w->n++ == 0) {
        /* Before the cursor: must not be visited; after it: must be. */
        CHECK_RC(kv_put(w->t, "w/0", 3, "x", 1), 0);
        CHECK_RC(kv_put(w->t, "w/bb", 4, "x", 1), 0);
        CHECK_RC(kv_del(w->t, "w/c", 3), 0);
    }
    return 0;
}

static void test_scan_self_modify(struct kv_db *db)
{
    struct kv_txn *t = begin(db, 0);
    put_s(t, "w/a", "1");
    put_s(t, "w/b", "1");
    put_s(t, "w/c", "1");
    CHECK_RC(kv_commit(t), 0);
    t = begin(db, 0);
    struct writer_arg w = { .t = t };
    CHECK_RC(kv_scan(t, "w/", 2, "w0", 2, 0, writing_fn, &w), 0);
    CHECK_STR(w.seen, "w/a,w/b,w/bb,");
    kv_abort(t);
}

static void test_snapshot(struct kv_db *db)
{
    commit_put(db, "i/k", "old");
    struct kv_txn *t1 = begin(db, 0);
    struct kv_txn *r1 = begin(db, KV_TXN_RDONLY);
    /* A snapshot is fixed by the first read at the latest (kv.h). */
    CHECK_STR(get_s(t1, "i/other"), NULL);
    CHECK_STR(get_s(r1, "i/k"), "old"); /* a read before the change */
    commit_put(db, "i/k", "new");
    commit_put(db, "i/k2", "added");
    CHECK_STR(get_s(t1, "i/k"), "old");
    CHECK_STR(get_s(t1, "i/k2"), NULL);
    CHECK_STR(scan_s(t1, "i/", "i0", 0), "i/k=old,");
    CHECK_STR(get_s(r1, "i/k"), "old");
    CHECK_RC(kv_commit(r1), 0); /* read-only always commits */
    CHECK_RC(kv_commit(t1), 0); /* read, no writes: nothing to apply */
    CHECK_STR(read_committed(db, "i/k"), "new");
}

static void test_conflict_rw(struct kv_db *db)
{
    commit_put(db, "c/k", "0");
    struct kv_txn *a = begin(db, 0), *b = begin(db, 0);
    CHECK_STR(get_s(a, "c/k"), "0");
    CHECK_STR(get_s(b, "c/k"), "0");
    put_s(a, "c/k", "a");
    put_s(b, "c/k", "b");
    put_s(b, "c/side", "b-side");
    CHECK_RC(kv_commit(a), 0);
    CHECK_RC(kv_commit(b), -EAGAIN);
    CHECK_STR(read_committed(db, "c/k"), "a");
    CHECK_STR(read_committed(db, "c/side"), NULL); /* nothing of b applied */

    /* Same value written back by the other txn still counts? No: the value
     * seen is unchanged, so this is serializable either way. A change to a
     * different value must conflict even if the length is the same. */
    a = begin(db, 0);
    b = begin(db, 0);
    CHECK_STR(get_s(a, "c/k"), "a");
    put_s(a, "c/out", "1");
    put_s(b, "c/k", "z");
    CHECK_RC(kv_commit(b), 0);
    CHECK_RC(kv_commit(a), -EAGAIN);

    /* Deleting a key another txn read conflicts too. */
    a = begin(db, 0);
    b = begin(db, 0);
    CHECK_STR(get_s(a, "c/k"), "z");
    put_s(a, "c/out", "2");
    CHECK_RC(kv_del(b, "c/k", 3), 0);
    CHECK_RC(kv_commit(b), 0);
    CHECK_RC(kv_commit(a), -EAGAIN);
    CHECK_STR(read_committed(db, "c/out"), NULL);
}

static void test_conflict_absent(struct kv_db *db)
{
    struct kv_txn *a = begin(db, 0), *b = begin(db, 0);
    CHECK_STR(get_s(a, "n/k"), NULL);
    put_s(a, "n/flag", "a-thinks-k-absent");
    put_s(b, "n/k", "created");
    CHECK_RC(kv_commit(b), 0);
    CHECK_RC(kv_commit(a), -EAGAIN);
    CHECK_STR(read_committed(db, "n/flag"), NULL);
}

static void test_write_skew_range(struct kv_db *db)
{
    struct kv_txn *a = begin(db, 0), *b = begin(db, 0);
    CHECK_STR(scan_s(a, "k/", "k0", 0), "");
    CHECK_STR(scan_s(b, "k/", "k0", 0), "");
    put_s(a, "k/a", "1");
    put_s(b, "k/b", "1");
    CHECK_RC(kv_commit(a), 0);
    CHECK_RC(kv_commit(b), -EAGAIN);
    struct kv_txn *t = begin(db, KV_TXN_RDONLY);
    CHECK_STR(scan_s(t, "k/", "k0", 0), "k/a=1,");
    kv_abort(t);

    /* A scan to the end of the key space is protected as well. */
    a = begin(db, 0);
    CHECK(strstr(scan_s(a, "zz/", NULL, 0), "zz/") == NULL);
    put_s(a, "k/other", "1");
    commit_put(db, "zz/late", "1");
    CHECK_RC(kv_commit(a), -EAGAIN);
    CHECK_STR(read_committed(db, "k/other"), NULL);

    /* Changing a value inside a scanned range conflicts. */
    a = begin(db, 0);
    CHECK_STR(scan_s(a, "k/", "k0", 0), "k/a=1,");
    put_s(a, "k/x", "1");
    commit_put(db, "k/a", "2");
    CHECK_RC(kv_commit(a), -EAGAIN);
}

static void test_limit_no_false_conflict(struct kv_db *db)
{
    struct kv_txn *t = begin(db, 0);
    put_s(t, "l/a", "1");
    put_s(t, "l/b", "1");
    put_s(t, "l/c", "1");
    put_s(t, "l/d", "1");
    CHECK_RC(kv_commit(t), 0);

    /* Writes past the visited part (and outside the range) do not conflict. */
    struct kv_txn *a = begin(db, 0);
    CHECK_STR(scan_s(a, "l/", "l0", 2), "l/a=1,l/b=1,");
    put_s(a, "l/mark", "1");
    t = begin(db, 0);
    put_s(t, "l/bb", "1");   /* just past the last visited key */
    put_s(t, "l/d", "2");
    CHECK_RC(kv_del(t, "l/c", 3), 0);
    put_s(t, "l0", "1");
    CHECK_RC(kv_commit(t), 0);
    CHECK_RC(kv_commit(a), 0);

    /* The same with a callback that stops early. */
    a = begin(db, 0);
    struct collect c = { .stop_after = 1 };
    CHECK_RC(kv_scan(a, "l/", 2, "l0", 2, 0, collect_fn, &c), 0);
    CHECK_STR(c.out, "l/a=1,");
    put_s(a, "l/mark2", "1");
    commit_put(db, "l/b", "changed");
    CHECK_RC(kv_commit(a), 0);

    /* Inserting inside the visited part (between begin and the last key) does. */
    a = begin(db, 0);
    CHECK_STR(scan_s(a, "l/", "l0", 2), "l/a=1,l/b=changed,");
    put_s(a, "l/mark3", "1");
    commit_put(db, "l/ab", "1");
    CHECK_RC(kv_commit(a), -EAGAIN);
    /* ...and so does inserting before the first visited key. */
    a = begin(db, 0);
    CHECK_STR(scan_s(a, "l/", "l0", 1), "l/a=1,");
    put_s(a, "l/mark4", "1");
    commit_put(db, "l/", "1");
    CHECK_RC(kv_commit(a), -EAGAIN);
}

static void test_blind_writes(struct kv_db *db)
{
    struct kv_txn *a = begin(db, 0), *b = begin(db, 0);
    put_s(a, "bw/k", "a");
    put_s(b, "bw/k", "b");
    CHECK_RC(kv_del(a, "bw/gone", 7), 0);
    CHECK_RC(kv_commit(a), 0);
    CHECK_RC(kv_commit(b), 0);
    CHECK_STR(read_committed(db, "bw/k"), "b");
    /* Reading only one's own writes is not a read of the store. */
    a = begin(db, 0);
    put_s(a, "bw/k", "c");
    CHECK_STR(get_s(a, "bw/k"), "c");
    commit_put(db, "bw/k", "d");
    CHECK_RC(kv_commit(a), 0);
    CHECK_STR(read_committed(db, "bw/k"), "c");
}

static void test_limits(struct kv_db *db)
{
    static char big[KV_MAX_VALUE + 1];
    char key[KV_MAX_KEY + 1];
    memset(key, 'x', sizeof(key));
    memcpy(key, "lim/", 4);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 31 + 7);
    struct kv_txn *t = begin(db, 0);
    struct kv_val v;
    CHECK_RC(kv_put(t, key, KV_MAX_KEY + 1, "v", 1), -EINVAL);
    CHECK_RC(kv_put(t, key, 0, "v", 1), -EINVAL);
    CHECK_RC(kv_get(t, key, KV_MAX_KEY + 1, &v), -EINVAL);
    CHECK_RC(kv_del(t, key, KV_MAX_KEY + 1), -EINVAL);
    CHECK_RC(kv_put(t, "lim/v", 5, big, KV_MAX_VALUE + 1), -EINVAL);
    CHECK_RC(kv_put(t, key, KV_MAX_KEY, big, KV_MAX_VALUE), 0);
    CHECK_RC(kv_commit(t), 0);
    t = begin(db, KV_TXN_RDONLY);
    CHECK_RC(kv_get(t, key, KV_MAX_KEY, &v), 0);
    CHECK(v.len == KV_MAX_VALUE && memcmp(v.data, big, KV_MAX_VALUE) == 0);
    kv_abort(t);
}

/* A transaction bigger than a networked engine accepts in one request
 * (etcd: --max-request-bytes, 1.5 MiB by default) fails with -E2BIG and
 * applies nothing; LMDB has no such limit and commits it. */
static void test_too_large(struct kv_db *db)
{
    static char big[KV_MAX_VALUE];
    memset(big, 'b', sizeof(big));
    struct kv_txn *t = begin(db, 0);
    CHECK_STR(get_s(t, "big/0"), NULL);
    for (int i = 0; i < 3; i++) {
        char k[16];
        snprintf(k, sizeof(k), "big/%d", i);
        CHECK_RC(kv_put(t, k, strlen(k), big, sizeof(big)), 0);
    }
    bool etcd = !strncmp(uri, "etcd:", 5);
    CHECK_RC(kv_commit(t), etcd ? -E2BIG : 0);
    t = begin(db, KV_TXN_RDONLY);
    struct kv_val v;
    CHECK_RC(kv_get(t, "big/1", 5, &v), etcd ? -ENOENT : 0);
    kv_abort(t);
}

/* kv_prefetch never changes an answer: present, absent and own-write keys
 * read the same after it, at the same snapshot, and what was prefetched and
 * read still takes part in conflict detection. */
static void test_prefetch(struct kv_db *db)
{
    commit_put(db, "pf/a", "1");
    commit_put(db, "pf/b", "2");
    struct kv_txn *t = begin(db, 0);
    put_s(t, "pf/own", "mine");
    struct kv_key keys[] = { { "pf/a", 4 }, { "pf/b", 4 }, { "pf/none", 7 }, { "pf/own", 6 },
                             { "pf/a", 4 } };
    CHECK_RC(kv_prefetch(t, keys, 5), 0);
    struct kv_key bad = { "", 0 };
    CHECK_RC(kv_prefetch(t, &bad, 1), -EINVAL);
    commit_put(db, "pf/b", "changed"); /* after the snapshot */
    CHECK_STR(get_s(t, "pf/a"), "1");
    CHECK_STR(get_s(t, "pf/b"), "2");
    CHECK_STR(get_s(t, "pf/none"), NULL);
    CHECK_STR(get_s(t, "pf/own"), "mine");
    put_s(t, "pf/a", "from-t");
    CHECK_RC(kv_commit(t), -EAGAIN); /* pf/b changed under it */
    CHECK_STR(read_committed(db, "pf/a"), "1");
    t = begin(db, 0);
    CHECK_RC(kv_prefetch(t, keys, 3), 0);
    CHECK_STR(get_s(t, "pf/b"), "changed");
    put_s(t, "pf/a", "from-t");
    CHECK_RC(kv_commit(t), 0);
    CHECK_STR(read_committed(db, "pf/a"), "from-t");
}

static void test_rdonly(struct kv_db *db)
{
    struct kv_txn *t = begin(db, KV_TXN_RDONLY);
    CHECK_RC(kv_put(t, "ro/k", 4, "v", 1), -EROFS);
    CHECK_RC(kv_del(t, "ro/k", 4), -EROFS);
    CHECK_RC(kv_commit(t), 0);
    CHECK_STR(read_committed(db, "ro/k"), NULL);
}

static void test_bad_uri(void)
{
    char err[256] = "";
    CHECK(kv_open("nosuch://x", NULL, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "unsupported") != NULL);
    /* An etcd nobody serves: one clear line naming etcd, within the op timeout. */
    CHECK(kv_open("etcd://127.0.0.1:1?op_timeout_ms=300", NULL, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "etcd") != NULL && strstr(err, "unreachable") != NULL);
    CHECK(strchr(err, '\n') == NULL);
    CHECK(kv_open("etcd://", NULL, err, sizeof(err)) == NULL);
    CHECK(kv_open("etcd://127.0.0.1:x", NULL, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "bad etcd endpoint") != NULL);
    CHECK(kv_open("etcd://127.0.0.1:1?bogus=1", NULL, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "bogus") != NULL);
}

/* Many transactions held by one thread at once; a txn handed to another thread. */
struct handoff { struct kv_txn *t; };

static void *handoff_thread(void *arg)
{
    struct handoff *h = arg;
    put_s(h->t, "h/k", "from-other-thread");
    CHECK_RC(kv_commit(h->t), 0);
    return NULL;
}

static void test_many_txns_and_handoff(struct kv_db *db)
{
    struct kv_txn *ts[64];
    for (int i = 0; i < 64; i++) {
        ts[i] = begin(db, i % 2 ? KV_TXN_RDONLY : 0);
        CHECK_STR(get_s(ts[i], "h/none"), NULL); /* fixes the snapshot on every engine */
    }
    commit_put(db, "h/x", "1"); /* a writer is not blocked by our readers */
    for (int i = 0; i < 64; i++) {
        CHECK_STR(get_s(ts[i], "h/x"), NULL);
        kv_abort(ts[i]);
    }
    struct handoff h = { begin(db, 0) };
    CHECK_STR(get_s(h.t, "h/k"), NULL);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, handoff_thread, &h) == 0);
    pthread_join(th, NULL);
    CHECK_STR(read_committed(db, "h/k"), "from-other-thread");
}

static void test_durability_sigkill(void)
{
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        struct kv_db *db = open_db(KV_SYNC_COMMIT);
        for (int i = 0; i < 20; i++) {
            char k[32], v[32];
            snprintf(k, sizeof(k), "d/%02d", i);
            snprintf(v, sizeof(v), "v%d", i);
            commit_put(db, k, v);
        }
        /* Die holding a snapshot and a pending write: neither may linger. */
        struct kv_txn *t = begin(db, 0);
        get_s(t, "d/00");
        put_s(t, "d/uncommitted", "x");
        if (write(pfd[1], "k", 1) != 1)
            _exit(3);
        for (;;)
            pause();
    }
    close(pfd[1]);
    char c;
    CHECK(read(pfd[0], &c, 1) == 1);
    close(pfd[0]);
    CHECK(kill(pid, SIGKILL) == 0);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    struct kv_db *db = open_db(KV_SYNC_COMMIT);
    struct kv_txn *t = begin(db, KV_TXN_RDONLY);
    CHECK_STR(get_s(t, "d/00"), "v0");
    CHECK_STR(get_s(t, "d/19"), "v19");
    CHECK_STR(get_s(t, "d/uncommitted"), NULL);
    struct collect cl = { 0 };
    CHECK_RC(kv_scan(t, "d/", 2, "d0", 2, 0, collect_fn, &cl), 0);
    CHECK(cl.n == 20);
    kv_abort(t);
    commit_put(db, "d/after", "writable"); /* the dead process holds no lock */
    CHECK_STR(read_committed(db, "d/after"), "writable");
    kv_close(db);
}

/* A process killed at an arbitrary point of a commit (most likely while
 * writing: large values, synced) must not leave the store locked or torn. */
static void test_killed_mid_commit(void)
{
    static char val[256 * 1024];
    for (int round = 0; round < 3; round++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            struct kv_db *db = open_db(KV_SYNC_COMMIT);
            for (unsigned i = 0;; i++) {
                memset(val, 'a' + (int)(i % 26), sizeof(val));
                struct kv_txn *t = begin(db, 0);
                CHECK_RC(kv_put(t, "mk/big", 6, val, sizeof(val)), 0);
                char n[16];
                int len = snprintf(n, sizeof(n), "%u", i);
                CHECK_RC(kv_put(t, "mk/n", 4, n, (size_t)len), 0);
                CHECK_RC(kv_commit(t), 0);
            }
        }
        usleep(30000 + (useconds_t)round * 17000);
        CHECK(kill(pid, SIGKILL) == 0);
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        alarm(30); /* a lock left held would hang here */
        struct kv_db *db = open_db(KV_SYNC_COMMIT);
        struct kv_txn *t = begin(db, 0);
        struct kv_val v;
        /* The big value is whole: one letter repeated (one transaction's). */
        if (kv_get(t, "mk/big", 6, &v) == 0) {
            CHECK(v.len == sizeof(val));
            const char *p = v.data;
            for (size_t i = 1; i < v.len; i++)
                CHECK(p[i] == p[0]);
            const char *n = get_s(t, "mk/n"); /* written by the same transaction */
            CHECK(n && p[0] == 'a' + (int)(strtoul(n, NULL, 10) % 26));
        }
        put_s(t, "mk/after", "ok");
        CHECK_RC(kv_commit(t), 0);
        kv_close(db);
        alarm(0);
    }
}

/* Primary election as mgmtd does it: two processes each see the lease key
 * absent and try to take it; exactly one commits, the other gets -EAGAIN. */
static void test_election_processes(void)
{
    int ready[2], go[2];
    CHECK(pipe(ready) == 0 && pipe(go) == 0);
    pid_t pids[2];
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        CHECK(pids[p] >= 0);
        if (pids[p] == 0) {
            close(ready[0]);
            close(go[1]);
            struct kv_db *db = open_db(KV_SYNC_COMMIT);
            struct kv_txn *t = begin(db, 0);
            CHECK_STR(get_s(t, "el/primary"), NULL);
            char c = 'r', id[8];
            CHECK(write(ready[1], &c, 1) == 1);
            CHECK(read(go[0], &c, 1) == 1); /* both have read before either commits */
            snprintf(id, sizeof(id), "node%d", p);
            put_s(t, "el/primary", id);
            int rc = kv_commit(t);
            kv_close(db);
            exit(rc == 0 ? 0 : rc == -EAGAIN ? 1 : 2);
        }
    }
    close(ready[1]);
    close(go[0]);
    char c;
    for (int p = 0; p < 2; p++)
        CHECK(read(ready[0], &c, 1) == 1);
    CHECK(write(go[1], "gg", 2) == 2);
    close(go[1]);
    close(ready[0]);
    int codes[2];
    for (int p = 0; p < 2; p++) {
        int st;
        CHECK(waitpid(pids[p], &st, 0) == pids[p]);
        CHECK(WIFEXITED(st));
        codes[p] = WEXITSTATUS(st);
    }
    CHECK((codes[0] == 0 && codes[1] == 1) || (codes[0] == 1 && codes[1] == 0));
    struct kv_db *db = open_db(KV_SYNC_COMMIT);
    CHECK_STR(read_committed(db, "el/primary"), codes[0] == 0 ? "node0" : "node1");
    kv_close(db);
}

/* Counter increments from several processes and threads, retrying conflicts. */
#define INC_PROCS 2
#define INC_THREADS 2
#define INC_PER_THREAD 300

static atomic_int total_retries;

static void *inc_thread(void *arg)
{
    struct kv_db *db = arg;
    for (int i = 0; i < INC_PER_THREAD; i++) {
        for (unsigned attempt = 1;; attempt++) {
            struct kv_txn *t = begin(db, 0);
            struct kv_val v;
            long n = 0;
            int rc = kv_get(t, "ctr/n", 5, &v);
            if (rc == 0) {
                char buf[32];
                CHECK(v.len < sizeof(buf));
                memcpy(buf, v.data, v.len);
                buf[v.len] = '\0';
                n = strtol(buf, NULL, 10);
            } else {
                CHECK_RC(rc, -ENOENT);
            }
            char out[32];
            int len = snprintf(out, sizeof(out), "%ld", n + 1);
            CHECK_RC(kv_put(t, "ctr/n", 5, out, (size_t)len), 0);
            rc = kv_commit(t);
            if (rc == 0)
                break;
            CHECK_RC(rc, -EAGAIN);
            atomic_fetch_add(&total_retries, 1);
            kv_retry_backoff(attempt);
        }
    }
    return NULL;
}

static void run_incrementers(struct kv_db *db)
{
    pthread_t th[INC_THREADS];
    for (int i = 0; i < INC_THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, inc_thread, db) == 0);
    for (int i = 0; i < INC_THREADS; i++)
        pthread_join(th[i], NULL);
}

static void test_counter_processes(void)
{
    pid_t pids[INC_PROCS];
    for (int p = 0; p < INC_PROCS; p++) {
        pids[p] = fork();
        CHECK(pids[p] >= 0);
        if (pids[p] == 0) {
            struct kv_db *db = open_db(KV_SYNC_COMMIT);
            run_incrementers(db);
            fprintf(stderr, "  counter child %d: %d retries\n", p, atomic_load(&total_retries));
            kv_close(db);
            exit(0); /* not _exit: sanitizers report at exit */
        }
    }
    for (int p = 0; p < INC_PROCS; p++) {
        int st;
        CHECK(waitpid(pids[p], &st, 0) == pids[p]);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    struct kv_db *db = open_db(KV_SYNC_COMMIT);
    char want[32];
    snprintf(want, sizeof(want), "%d", INC_PROCS * INC_THREADS * INC_PER_THREAD);
    CHECK_STR(read_committed(db, "ctr/n"), want);
    kv_close(db);
}

/* In-process threads on one shared handle (the TSan-relevant part). */
static void test_counter_threads(struct kv_db *db)
{
    atomic_store(&total_retries, 0);
    commit_put(db, "ctr/n", "0");
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&th[i], NULL, inc_thread, db) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char want[32];
    snprintf(want, sizeof(want), "%d", 4 * INC_PER_THREAD);
    CHECK_STR(read_committed(db, "ctr/n"), want);
    /* Reset for the multi-process case. */
    struct kv_txn *t = begin(db, 0);
    CHECK_RC(kv_del(t, "ctr/n", 5), 0);
    CHECK_RC(kv_commit(t), 0);
}

static pid_t main_pid;

static void rm_tmpdir(void)
{
    if (!tmpdir[0] || getpid() != main_pid) /* forked children exit() too */
        return;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* Remove what an earlier run left in a persistent store: a scan whose
 * callback deletes each key it visits (writes during a scan are allowed). */
static int delete_fn(void *arg, const void *k, size_t klen, const void *v, size_t vlen)
{
    (void)v;
    (void)vlen;
    CHECK_RC(kv_del(arg, k, klen), 0);
    return 0;
}

static void wipe_prefixes(struct kv_db *db)
{
    static const char *const prefixes[] = { "b/", "s/", "s0", "r/", "t/", "w/", "i/", "k/",
                                            "zz/", "l/", "l0", "bw/", "lim/", "ro/", "h/",
                                            "d/", "ctr/", "n/", "c/", "mk/", "el/" };
    struct kv_txn *t = begin(db, 0);
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        char end[16];
        size_t n = strlen(prefixes[i]);
        memcpy(end, prefixes[i], n);
        end[n - 1]++;
        CHECK_RC(kv_scan(t, prefixes[i], n, end, n, 0, delete_fn, t), 0);
    }
    CHECK_RC(kv_commit(t), 0);
    t = begin(db, KV_TXN_RDONLY);
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        char end[16];
        size_t n = strlen(prefixes[i]);
        memcpy(end, prefixes[i], n);
        end[n - 1]++;
        end[n] = '\0';
        CHECK_STR(scan_s(t, prefixes[i], end, 0), "");
    }
    kv_abort(t);
}

#define RUN(call)                                                                      \
    do {                                                                               \
        fprintf(stderr, "test %s\n", #call);                                           \
        call;                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    if (argc > 1) {
        uri = argv[1];
    } else {
        const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(tmpdir, sizeof(tmpdir), "%s/test_kv.XXXXXX", base);
        CHECK(mkdtemp(tmpdir) != NULL);
        uri = tmpdir;
        main_pid = getpid();
        atexit(rm_tmpdir);
    }
    RUN(test_bad_uri());
    struct kv_db *db = open_db(KV_SYNC_COMMIT);
    RUN(wipe_prefixes(db));
    RUN(test_basic(db));
    RUN(test_scan(db));
    RUN(test_scan_self_modify(db));
    RUN(test_snapshot(db));
    RUN(test_conflict_rw(db));
    RUN(test_conflict_absent(db));
    RUN(test_write_skew_range(db));
    RUN(test_limit_no_false_conflict(db));
    RUN(test_blind_writes(db));
    RUN(test_limits(db));
    RUN(test_too_large(db));
    RUN(test_prefetch(db));
    RUN(test_rdonly(db));
    RUN(test_many_txns_and_handoff(db));
    RUN(test_counter_threads(db));
    kv_close(db);
    RUN(test_durability_sigkill());
    RUN(test_killed_mid_commit());
    RUN(test_election_processes());
    RUN(test_counter_processes());
    fprintf(stderr, "all kv tests passed\n");
    return 0;
}
