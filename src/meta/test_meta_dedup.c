/* test_meta_dedup.c — exactly-once state changes (dedup.c) over a
 * temporary LMDB store (or VALORFS_TEST_KV_URI, e.g. a private etcd):
 * a request whose answer was lost and is sent again with the same id gets
 * the same answer and is applied once; different ids for one name still
 * conflict; a retry racing its original is applied once; a reused id or a
 * damaged record gives EIO; the sweep removes old records and keeps new
 * ones; the request id's wire form and the record codec. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "kv/kv.h"
#include "meta/meta_core.h"
#include "meta/meta_internal.h"

#include "common/test_check.h"
#define CHECK_RC(expr, want)                                                          \
    do {                                                                              \
        int rc_ = (expr);                                                             \
        if (rc_ != (want)) {                                                          \
            fprintf(stderr, "%s:%d: %s = %d (%s), want %d (%s)\n", __FILE__, __LINE__, \
                    #expr, rc_, strerror(-rc_), (want), strerror(-(want)));           \
            atomic_fetch_add(&failures, 1);                                           \
        }                                                                             \
    } while (0)

static struct meta_core *mc;
static struct kv_db *db;
static const uint64_t client_a = 0xa11ce0000000001ull, client_b = 0xb0b0000000000002ull;

static int fake_truncate(void *arg, const struct meta_inode *ino, uint64_t len)
{
    (void)arg, (void)ino, (void)len;
    return 0;
}

static int fake_remove(void *arg, const struct meta_inode *ino)
{
    (void)arg, (void)ino;
    return 0;
}

static int fake_query(void *arg, const struct meta_inode *ino, uint64_t *len)
{
    (void)arg, (void)ino;
    *len = 0;
    return 0;
}

static int fake_alloc(void *arg, uint32_t chunk_size, uint32_t stripe, struct meta_layout *out)
{
    (void)arg, (void)stripe;
    memset(out, 0, sizeof(*out));
    out->chunk_size = chunk_size;
    out->table_id = 1;
    out->nchains = 1;
    out->chains[0] = 100;
    return 0;
}

static struct meta_chunk_ops fake_ops = { fake_truncate, fake_remove, fake_query, fake_alloc, NULL };

/* ---------------- helpers ---------------- */

static struct meta_req req_named(uint64_t parent, const char *name, uint64_t client, uint64_t seq)
{
    struct meta_req r;
    memset(&r, 0, sizeof(r));
    r.parent = parent;
    snprintf(r.name, sizeof(r.name), "%s", name);
    r.req_client = client;
    r.req_seq = seq;
    return r;
}

static int exec(uint16_t m, const struct meta_req *req, struct meta_resp *resp)
{
    struct wbuf out;
    wb_init(&out, 0);
    struct meta_resp r;
    int rc = meta_exec(mc, m, req, &r, &out);
    r.data = NULL; /* out is freed below */
    r.data_len = 0;
    if (resp)
        *resp = r;
    wb_free(&out);
    return rc;
}

static int lookup(uint64_t parent, const char *name, struct meta_inode *out)
{
    struct meta_req r = req_named(parent, name, 0, 0);
    struct meta_resp resp;
    int rc = exec(META_LOOKUP, &r, &resp);
    if (rc == 0 && out)
        *out = resp.inode;
    return rc;
}

static uint64_t used_inodes(void)
{
    struct meta_req r;
    memset(&r, 0, sizeof(r));
    struct meta_resp resp;
    CHECK_RC(exec(META_STATFS, &r, &resp), 0);
    return resp.used_inodes;
}

static int count_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key, (void)klen, (void)val, (void)vlen;
    (*(int *)arg)++;
    return 0;
}

/* Keys under a 4-byte tag ("DDUP", "DDTM"). */
static int count_keys(const char *tag)
{
    struct kv_txn *t;
    if (kv_txn_begin(db, KV_TXN_RDONLY, &t) < 0)
        return -1;
    char end[4];
    memcpy(end, tag, 4);
    end[3]++;
    int n = 0;
    int rc = kv_scan(t, tag, 4, end, 4, 0, count_cb, &n);
    kv_abort(t);
    return rc < 0 ? rc : n;
}

/* ---------------- tests ---------------- */

/* create(O_EXCL) applied, answer lost, sent again: the same inode and
 * session, one inode more in the store, and the file exists once. */
static void test_create_retry(void)
{
    uint64_t before = used_inodes();
    struct meta_req r = req_named(VF_ROOT_INO, "excl", client_a, 1);
    r.mode = S_IFREG | 0644;
    r.flags = O_CREAT | O_EXCL | O_WRONLY;
    struct meta_resp first, again;
    CHECK_RC(exec(META_CREATE, &r, &first), 0);
    CHECK_RC(exec(META_CREATE, &r, &again), 0);
    CHECK(first.has_inode && again.has_inode && first.inode.ino == again.inode.ino);
    CHECK(first.session != 0 && first.session == again.session);
    CHECK(again.inode.nlink == 1 && again.inode.mtime_ns == first.inode.mtime_ns);
    CHECK(used_inodes() == before + 1);
    struct meta_inode i;
    CHECK_RC(lookup(VF_ROOT_INO, "excl", &i), 0);
    CHECK(i.ino == first.inode.ino);

    /* another call (a new id) for the same name still conflicts */
    struct meta_req other = r;
    other.req_seq = 2;
    CHECK_RC(exec(META_CREATE, &other, NULL), -EEXIST);
    other.req_client = client_b;
    other.req_seq = 1; /* the same seq from another client is another call */
    CHECK_RC(exec(META_CREATE, &other, NULL), -EEXIST);
    /* and so does one without an id (an old client) */
    other.req_client = other.req_seq = 0;
    CHECK_RC(exec(META_CREATE, &other, NULL), -EEXIST);
    CHECK(used_inodes() == before + 1);

    /* close the session once, however often the close is sent */
    struct meta_req c;
    memset(&c, 0, sizeof(c));
    c.ino = first.inode.ino;
    c.session = first.session;
    c.req_client = client_a;
    c.req_seq = 3;
    CHECK_RC(exec(META_CLOSE, &c, NULL), 0);
    CHECK_RC(exec(META_CLOSE, &c, NULL), 0);
}

/* unlink applied, sent again: success both times, applied once (a second
 * real unlink would be ENOENT); a new unlink of the name is ENOENT. */
static void test_unlink_rename_retry(void)
{
    struct meta_req r = req_named(VF_ROOT_INO, "gone", client_a, 10);
    r.mode = S_IFREG | 0644;
    CHECK_RC(exec(META_MKNOD, &r, NULL), 0);
    int orphans = count_keys("ORPH");
    struct meta_req u = req_named(VF_ROOT_INO, "gone", client_a, 11);
    CHECK_RC(exec(META_UNLINK, &u, NULL), 0);
    CHECK_RC(exec(META_UNLINK, &u, NULL), 0);
    CHECK_RC(lookup(VF_ROOT_INO, "gone", NULL), -ENOENT);
    CHECK(count_keys("ORPH") == orphans + 1); /* its last link went once */
    u.req_seq = 12;
    CHECK_RC(exec(META_UNLINK, &u, NULL), -ENOENT);

    /* mkdir + rename + rmdir: each retried once more, no EEXIST/ENOENT */
    struct meta_req d = req_named(VF_ROOT_INO, "d1", client_a, 13);
    d.mode = S_IFDIR | 0755;
    struct meta_resp a, b;
    CHECK_RC(exec(META_MKDIR, &d, &a), 0);
    CHECK_RC(exec(META_MKDIR, &d, &b), 0);
    CHECK(a.inode.ino == b.inode.ino);
    struct meta_req mv = req_named(VF_ROOT_INO, "d1", client_a, 14);
    mv.newparent = VF_ROOT_INO;
    snprintf(mv.newname, sizeof(mv.newname), "d2");
    CHECK_RC(exec(META_RENAME, &mv, NULL), 0);
    CHECK_RC(exec(META_RENAME, &mv, NULL), 0);
    struct meta_inode i;
    CHECK_RC(lookup(VF_ROOT_INO, "d2", &i), 0);
    CHECK(i.ino == a.inode.ino);
    CHECK_RC(lookup(VF_ROOT_INO, "d1", NULL), -ENOENT);
    struct meta_req rm = req_named(VF_ROOT_INO, "d2", client_a, 15);
    CHECK_RC(exec(META_RMDIR, &rm, NULL), 0);
    CHECK_RC(exec(META_RMDIR, &rm, NULL), 0);
    CHECK_RC(lookup(VF_ROOT_INO, "d2", NULL), -ENOENT);

    /* a failed call records nothing: its retry runs again (and may now
     * succeed, which is the call taking effect later, once) */
    struct meta_req miss = req_named(VF_ROOT_INO, "later", client_a, 16);
    CHECK_RC(exec(META_UNLINK, &miss, NULL), -ENOENT);
    struct meta_req mk = req_named(VF_ROOT_INO, "later", client_a, 17);
    mk.mode = S_IFREG | 0600;
    CHECK_RC(exec(META_MKNOD, &mk, NULL), 0);
    CHECK_RC(exec(META_UNLINK, &miss, NULL), 0);
    CHECK_RC(exec(META_UNLINK, &miss, NULL), 0);
    CHECK_RC(lookup(VF_ROOT_INO, "later", NULL), -ENOENT);
}

/* The original and its retry at the same moment (two meta servers): both
 * answer success with the same inode, and one inode was made. */
static pthread_barrier_t barrier;
struct racer {
    struct meta_req req;
    int rc;
    uint64_t ino;
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    struct meta_resp resp;
    pthread_barrier_wait(&barrier);
    r->rc = exec(META_MKDIR, &r->req, &resp);
    r->ino = r->rc == 0 ? resp.inode.ino : 0;
    return NULL;
}

static void test_race(void)
{
    for (int round = 0; round < 20; round++) {
        uint64_t before = used_inodes();
        char name[32];
        snprintf(name, sizeof(name), "race%d", round);
        struct racer rs[3];
        pthread_t th[3];
        pthread_barrier_init(&barrier, NULL, 3);
        for (int k = 0; k < 3; k++) {
            rs[k].req = req_named(VF_ROOT_INO, name, client_b, 100 + (uint64_t)round);
            rs[k].req.mode = S_IFDIR | 0700;
            pthread_create(&th[k], NULL, racer_main, &rs[k]);
        }
        for (int k = 0; k < 3; k++)
            pthread_join(th[k], NULL);
        pthread_barrier_destroy(&barrier);
        for (int k = 0; k < 3; k++) {
            CHECK_RC(rs[k].rc, 0);
            CHECK(rs[k].ino != 0 && rs[k].ino == rs[0].ino);
        }
        CHECK(used_inodes() == before + 1);
    }
}

/* An id reused for another method, and a damaged record: EIO, nothing
 * applied, no crash. */
static void test_bad_records(void)
{
    struct meta_req d = req_named(VF_ROOT_INO, "reuse", client_a, 200);
    d.mode = S_IFDIR | 0755;
    CHECK_RC(exec(META_MKDIR, &d, NULL), 0);
    struct meta_req u = req_named(VF_ROOT_INO, "reuse", client_a, 200);
    CHECK_RC(exec(META_RMDIR, &u, NULL), -EIO);
    CHECK_RC(lookup(VF_ROOT_INO, "reuse", NULL), 0);

    static const uint8_t junk[][12] = {
        { 0 },                                   /* version 0 */
        { 1, 4, 2 },                             /* truncated */
        { 1, 6, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0 },  /* no answer length */
    };
    static const size_t junk_len[] = { 1, 3, 12 };
    for (size_t j = 0; j < sizeof(junk) / sizeof(junk[0]); j++) {
        uint8_t k[20];
        memcpy(k, "DDUP", 4);
        put_be64(k + 4, client_a);
        put_be64(k + 12, 300 + j);
        struct kv_txn *t;
        CHECK_RC(kv_txn_begin(db, 0, &t), 0);
        CHECK_RC(kv_put(t, k, sizeof(k), junk[j], junk_len[j]), 0);
        CHECK_RC(kv_commit(t), 0);
        struct meta_req m = req_named(VF_ROOT_INO, "never", client_a, 300 + j);
        m.mode = S_IFDIR | 0755;
        CHECK_RC(exec(META_MKDIR, &m, NULL), -EIO);
        CHECK_RC(lookup(VF_ROOT_INO, "never", NULL), -ENOENT);
    }
}

static int64_t sleep_ms(int ms)
{
    struct timespec ts = { 0, (long)ms * 1000000l };
    nanosleep(&ts, NULL);
    return meta_now_ns();
}

/* The sweep removes both keys of every record older than the retention
 * and keeps the newer ones; an expired id runs again, a kept one does not. */
static void test_sweep(void)
{
    /* everything so far is old: clear it */
    int64_t retention = (int64_t)META_DEDUP_RETENTION_S * 1000000000ll;
    int64_t split = sleep_ms(20);
    CHECK(meta_dedup_sweep(mc, split + retention, 1000) > 0);
    CHECK(count_keys("DDUP") == 3); /* the three junk records have no time key */
    CHECK(count_keys("DDTM") == 0);

    enum { N_OLD = 300, N_NEW = 5 }; /* more than one sweep batch of old ones */
    for (int i = 0; i < N_OLD; i++) {
        char name[32];
        snprintf(name, sizeof(name), "old%d", i);
        struct meta_req d = req_named(VF_ROOT_INO, name, client_a, 1000 + (uint64_t)i);
        d.mode = S_IFDIR | 0755;
        CHECK_RC(exec(META_MKDIR, &d, NULL), 0);
    }
    split = sleep_ms(20);
    sleep_ms(20);
    for (int i = 0; i < N_NEW; i++) {
        char name[32];
        snprintf(name, sizeof(name), "new%d", i);
        struct meta_req d = req_named(VF_ROOT_INO, name, client_a, 2000 + (uint64_t)i);
        d.mode = S_IFDIR | 0755;
        CHECK_RC(exec(META_MKDIR, &d, NULL), 0);
    }
    CHECK(count_keys("DDTM") == N_OLD + N_NEW);
    /* nothing is old enough yet */
    CHECK_RC(meta_dedup_sweep(mc, meta_now_ns(), 1000), 0);
    /* one batch of 256 at most per call of max_batches 1 */
    CHECK_RC(meta_dedup_sweep(mc, split + retention, 1), 256);
    CHECK_RC(meta_dedup_sweep(mc, split + retention, 1000), N_OLD - 256);
    CHECK(count_keys("DDTM") == N_NEW);
    CHECK(count_keys("DDUP") == N_NEW + 3);

    /* an expired record: the retry runs again (EEXIST shows it did) */
    struct meta_req d = req_named(VF_ROOT_INO, "old0", client_a, 1000);
    d.mode = S_IFDIR | 0755;
    CHECK_RC(exec(META_MKDIR, &d, NULL), -EEXIST);
    /* a kept one answers from its record */
    d = req_named(VF_ROOT_INO, "new0", client_a, 2000);
    d.mode = S_IFDIR | 0755;
    CHECK_RC(exec(META_MKDIR, &d, NULL), 0);
}

/* The request id on the wire and the record codec. */
static void test_codecs(void)
{
    struct meta_req q = req_named(VF_ROOT_INO, "x", client_b, 77);
    struct wbuf wb;
    wb_init(&wb, 0);
    meta_req_enc(&wb, &q);
    struct meta_req back;
    CHECK_RC(meta_req_dec(wb.data, wb.len, &back), 0);
    CHECK(back.req_client == client_b && back.req_seq == 77 && !strcmp(back.name, "x"));
    /* without the trailer: the old encoding, no id */
    CHECK_RC(meta_req_dec(wb.data, wb.len - 16, &back), 0);
    CHECK(back.req_client == 0 && back.req_seq == 0);
    /* a partial trailer, and a trailer naming client 0, are refused */
    for (size_t cut = 1; cut < 16; cut++)
        CHECK_RC(meta_req_dec(wb.data, wb.len - cut, &back), -EBADMSG);
    memset(wb.data + wb.len - 16, 0, 8);
    CHECK_RC(meta_req_dec(wb.data, wb.len, &back), -EBADMSG);
    wb_free(&wb);
    q.req_client = 0;
    wb_init(&wb, 0);
    meta_req_enc(&wb, &q);
    size_t old_len = wb.len;
    wb_free(&wb);
    q.req_client = 1;
    wb_init(&wb, 0);
    meta_req_enc(&wb, &q);
    CHECK(wb.len == old_len + 16);
    wb_free(&wb);

    struct meta_dedup_rec rec = { .method = META_CREATE, .commit_ns = 123456789 };
    rec.resp.has_inode = 1;
    rec.resp.inode.ino = 42;
    rec.resp.inode.mode = S_IFREG | 0644;
    rec.resp.inode.layout.chunk_size = 1u << 20;
    rec.resp.inode.layout.nchains = 2;
    rec.resp.inode.layout.chains[1] = 9;
    rec.resp.session = 0x5e55;
    wb_init(&wb, 0);
    meta_dedup_record_enc(&wb, &rec);
    CHECK(!wb.err);
    struct meta_dedup_rec got;
    CHECK_RC(meta_dedup_record_dec(wb.data, wb.len, &got), 0);
    CHECK(got.method == META_CREATE && got.commit_ns == 123456789 && got.resp.has_inode &&
          got.resp.inode.ino == 42 && got.resp.session == 0x5e55 &&
          got.resp.inode.layout.nchains == 2 && got.resp.inode.layout.chains[1] == 9);
    /* every strict prefix and one extra byte are damaged records */
    for (size_t n = 0; n < wb.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, wb.data, n);
        CHECK_RC(meta_dedup_record_dec(copy, n, &got), -EIO);
        free(copy);
    }
    wb_u8(&wb, 0);
    CHECK_RC(meta_dedup_record_dec(wb.data, wb.len, &got), -EIO);
    wb_free(&wb);
}

static char dir_tmpl[] = "/tmp/test_meta_dedup.XXXXXX";

int main(void)
{
    log_init(LOG_LVL_ERROR); /* the damaged records below log one error each */
    if (!mkdtemp(dir_tmpl))
        return 1;
    char uri[256], err[256];
    const char *other = getenv("VALORFS_TEST_KV_URI");
    snprintf(uri, sizeof(uri), other ? "%s" : "lmdb:%s", other ? other : dir_tmpl);
    struct kv_opts o = { .map_size = 1ull << 30, .sync = KV_SYNC_NONE };
    db = kv_open(uri, &o, err, sizeof(err));
    struct meta_core_opts mo = { .db = db, .chunk = fake_ops };
    mc = db ? meta_core_new(&mo, err, sizeof(err)) : NULL;
    if (!mc) {
        fprintf(stderr, "cannot open the store %s: %s\n", uri, err);
        return 1;
    }
    test_codecs();
    test_create_retry();
    test_unlink_rename_retry();
    test_race();
    test_bad_records();
    test_sweep();
    meta_core_free(mc);
    kv_close(db);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir_tmpl);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir_tmpl);
    if (failures) {
        fprintf(stderr, "test_meta_dedup: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_meta_dedup: all passed\n");
    return 0;
}
