/* test_kv_lmdb.c — behaviour specific to the LMDB engine: URI forms, the
 * store directory, a full map (-ENOSPC) and recovery from it. */
#include "kv/kv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(c)                                                                  \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

static char base[256];

static void cleanup(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", base);
}

static void test_uri_forms(void)
{
    char uri[400], err[512];
    /* lmdb:PATH creates missing parents. */
    snprintf(uri, sizeof(uri), "lmdb:%s/a/b/c", base);
    struct kv_db *db = kv_open(uri, NULL, err, sizeof(err));
    CHECK(db);
    struct kv_txn *t;
    CHECK(kv_txn_begin(db, 0, &t) == 0);
    CHECK(kv_put(t, "k", 1, "v", 1) == 0);
    CHECK(kv_commit(t) == 0);
    kv_close(db);
    /* The same store as a plain path. */
    snprintf(uri, sizeof(uri), "%s/a/b/c", base);
    db = kv_open(uri, NULL, err, sizeof(err));
    CHECK(db);
    CHECK(kv_txn_begin(db, KV_TXN_RDONLY, &t) == 0);
    struct kv_val v;
    CHECK(kv_get(t, "k", 1, &v) == 0 && v.len == 1 && *(const char *)v.data == 'v');
    kv_abort(t);
    kv_close(db);
    /* A file where the directory should be: one-line error naming it. */
    snprintf(uri, sizeof(uri), "%s/file", base);
    FILE *f = fopen(uri, "w");
    CHECK(f);
    fclose(f);
    CHECK(kv_open(uri, NULL, err, sizeof(err)) == NULL);
    CHECK(strstr(err, uri) && !strchr(err, '\n'));
    CHECK(kv_open("s3:bucket", NULL, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "'s3'"));
}

static void test_map_full(void)
{
    char uri[400], err[512];
    snprintf(uri, sizeof(uri), "%s/small", base);
    struct kv_opts o = { .map_size = 1 << 20, .sync = KV_SYNC_NONE };
    struct kv_db *db = kv_open(uri, &o, err, sizeof(err));
    CHECK(db);
    static char val[64 * 1024];
    int rc = 0, n;
    for (n = 0; n < 100; n++) {
        struct kv_txn *t;
        CHECK(kv_txn_begin(db, 0, &t) == 0);
        char k[16];
        snprintf(k, sizeof(k), "k%03d", n);
        CHECK(kv_put(t, k, strlen(k), val, sizeof(val)) == 0);
        rc = kv_commit(t);
        if (rc)
            break;
    }
    CHECK(rc == -ENOSPC);
    CHECK(n > 2);
    /* Still usable: reads work, deleting frees room for new writes. */
    struct kv_txn *t;
    CHECK(kv_txn_begin(db, 0, &t) == 0);
    struct kv_val v;
    CHECK(kv_get(t, "k000", 4, &v) == 0 && v.len == sizeof(val));
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%03d", i);
        CHECK(kv_del(t, k, strlen(k)) == 0);
    }
    CHECK(kv_commit(t) == 0);
    /* LMDB reuses freed pages only two commits later; then big values fit. */
    for (int i = 0; i < 3; i++) {
        CHECK(kv_txn_begin(db, 0, &t) == 0);
        CHECK(kv_put(t, "small", 5, "x", 1) == 0);
        CHECK(kv_commit(t) == 0);
    }
    for (int i = 0; i < 4; i++) {
        char k[16];
        snprintf(k, sizeof(k), "after%d", i);
        CHECK(kv_txn_begin(db, 0, &t) == 0);
        CHECK(kv_put(t, k, strlen(k), val, sizeof(val)) == 0);
        CHECK(kv_commit(t) == 0);
    }
    kv_close(db);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(base, sizeof(base), "%s/test_kv_lmdb.XXXXXX", tmp);
    CHECK(mkdtemp(base));
    atexit(cleanup);
    test_uri_forms();
    test_map_full();
    fprintf(stderr, "lmdb engine tests passed\n");
    return 0;
}
