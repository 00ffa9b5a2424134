/* test_etcd_codec.c — base64 (RFC 4648 vectors) and the etcd gateway bodies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_check.h"
#include "kv/base64.h"
#include "kv/etcd_codec.h"

static void test_base64(void)
{
    static const char *const vec[][2] = { { "", "" },          { "f", "Zg==" },
                                          { "fo", "Zm8=" },    { "foo", "Zm9v" },
                                          { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
                                          { "foobar", "Zm9vYmFy" } };
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        char enc[16];
        uint8_t dec[16];
        size_t n = strlen(vec[i][0]);
        CHECK(b64_encode(vec[i][0], n, enc) == strlen(vec[i][1]));
        CHECK(memcmp(enc, vec[i][1], strlen(vec[i][1])) == 0);
        CHECK(b64_decode(vec[i][1], strlen(vec[i][1]), dec, sizeof(dec)) == (long)n);
        CHECK(memcmp(dec, vec[i][0], n) == 0);
    }
    uint8_t out[8];
    CHECK(b64_decode("Zm9", 3, out, sizeof(out)) == -1);      /* not a multiple of 4 */
    CHECK(b64_decode("Zm9v", 4, out, 2) == -1);               /* does not fit */
    CHECK(b64_decode("Zh==", 4, out, sizeof(out)) == -1);     /* non-canonical bits */
    CHECK(b64_decode("Z===", 4, out, sizeof(out)) == -1);
    CHECK(b64_decode("Zm=v", 4, out, sizeof(out)) == -1);     /* padding inside */
    CHECK(b64_decode("Zg==Zg==", 8, out, sizeof(out)) == -1); /* padding before the end */
    CHECK(b64_decode("Zm9!", 4, out, sizeof(out)) == -1);
}

static void test_requests(void)
{
    size_t len;
    char *s = etcd_req_range("a", 1, "b", 1, 7, 3, &len);
    CHECK(s && strlen(s) == len);
    CHECK(s && !strcmp(s, "{\"key\":\"YQ==\",\"range_end\":\"Yg==\",\"revision\":\"7\",\"limit\":\"3\"}"));
    free(s);
    s = etcd_req_range("a", 1, NULL, 0, 0, 0, &len);
    CHECK(s && !strcmp(s, "{\"key\":\"YQ==\"}"));
    free(s);
    struct etcd_cmp c[2] = { { .kind = ETCD_CMP_MOD_EQ, .key = "k", .klen = 1, .rev = 0 },
                             { .kind = ETCD_CMP_MOD_LT, .key = "a", .klen = 1, .end = "b",
                               .elen = 1, .rev = 9 } };
    struct etcd_op o[2] = { { .key = "k", .klen = 1, .val = "v", .vlen = 1 },
                            { .del = true, .key = "x", .klen = 1 } };
    s = etcd_req_txn(c, 2, o, 2, &len);
    CHECK(s && !strcmp(s, "{\"compare\":[{\"key\":\"aw==\",\"target\":\"MOD\",\"result\":\"EQUAL\","
                          "\"mod_revision\":\"0\"},{\"key\":\"YQ==\",\"range_end\":\"Yg==\","
                          "\"target\":\"MOD\",\"result\":\"LESS\",\"mod_revision\":\"9\"}],"
                          "\"success\":[{\"request_put\":{\"key\":\"aw==\",\"value\":\"dg==\"}},"
                          "{\"request_delete_range\":{\"key\":\"eA==\"}}]}"));
    free(s);
}

static void test_responses(void)
{
    const char *ok = "{\"header\":{\"revision\":\"12\"},\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":"
                     "\"4\",\"value\":\"MQ==\"},{\"key\":\"Yg==\",\"mod_revision\":\"11\"}],"
                     "\"more\":true}\n";
    struct etcd_range_result r;
    CHECK(etcd_decode_range(ok, strlen(ok), &r) == 0);
    CHECK(r.revision == 12 && r.n == 2 && r.more);
    if (r.n == 2) {
        CHECK(r.kvs[0].klen == 1 && r.kvs[0].key[0] == 'a' && r.kvs[0].vlen == 1 &&
              r.kvs[0].val[0] == '1' && r.kvs[0].mod_revision == 4);
        CHECK(r.kvs[1].vlen == 0 && r.kvs[1].val != NULL && r.kvs[1].mod_revision == 11);
    }
    etcd_range_result_free(&r);
    static const char *const bad[] = {
        "",
        "{}",                                                       /* no header */
        "{\"header\":{\"revision\":\"0\"}}",                        /* impossible revision */
        "{\"header\":{\"revision\":\"12\"}} x",                     /* trailing bytes */
        "{\"header\":{\"revision\":\"99999999999999999999999\"}}",   /* overflow */
        "{\"header\":{\"revision\":\"1\"},\"kvs\":{}}",             /* kvs not an array */
        "{\"header\":{\"revision\":\"1\"},\"kvs\":[{\"key\":\"YQ\",\"mod_revision\":\"1\"}]}",
        "{\"header\":{\"revision\":\"1\"},\"kvs\":[{\"mod_revision\":\"1\"}]}", /* no key */
        "{\"header\":{\"revision\":\"1\"},\"kvs\":[{\"key\":\"YQ==\"}]}",       /* no mod_rev */
        "[1,2]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = etcd_decode_range(bad[i], strlen(bad[i]), &r);
        if (rc != -EPROTO)
            fprintf(stderr, "accepted bad range #%zu: %s\n", i, bad[i]);
        CHECK(rc == -EPROTO);
    }
    bool succeeded = true;
    int64_t rev = 0;
    const char *failed = "{\"header\":{\"revision\":\"3\"}}";
    CHECK(etcd_decode_txn(failed, strlen(failed), &succeeded, &rev) == 0 && !succeeded && rev == 3);
    const char *done = "{\"header\":{\"revision\":\"4\"},\"succeeded\":true}";
    CHECK(etcd_decode_txn(done, strlen(done), &succeeded, &rev) == 0 && succeeded && rev == 4);
    const char *notbool = "{\"header\":{\"revision\":\"4\"},\"succeeded\":\"yes\"}";
    CHECK(etcd_decode_txn(notbool, strlen(notbool), &succeeded, &rev) == -EPROTO);
    const char *err = "{\"error\":\"e\",\"code\":11,\"message\":\"mvcc: required revision has been "
                      "compacted\"}";
    int code = 0;
    char msg[16];
    CHECK(etcd_decode_error(err, strlen(err), &code, msg, sizeof(msg)) == 0 && code == 11);
    CHECK(strlen(msg) == sizeof(msg) - 1); /* truncated, terminated */
    CHECK(etcd_decode_error(ok, strlen(ok), &code, msg, sizeof(msg)) == -EPROTO);
}

int main(void)
{
    test_base64();
    test_requests();
    test_responses();
    if (failures)
        fprintf(stderr, "%d checks failed\n", failures);
    return failures != 0;
}
