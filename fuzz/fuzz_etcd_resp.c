/* fuzz_etcd_resp.c — libFuzzer target: the decoders of etcd's JSON-gateway
 * answers (src/kv/etcd_codec.h) and the base64 codec under them. Every
 * byte of an answer comes from the network.
 *
 * The first input byte picks the decoder, the rest is the body:
 *  - etcd_decode_range: on success every pair has a non-empty key, a
 *    non-NULL value, and lies inside the result's own allocation (ASan
 *    checks every byte is readable); the revision is positive;
 *  - etcd_decode_txn / etcd_decode_error: return 0 or -EPROTO only, and
 *    the message is NUL-terminated within its buffer;
 *  - b64_decode: never writes past outcap, and whatever it accepts
 *    re-encodes to exactly the input (canonical base64 only).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kv/base64.h"
#include "kv/etcd_codec.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_range(const char *body, size_t len)
{
    struct etcd_range_result r;
    int rc = etcd_decode_range(body, len, &r);
    FUZZ_CHECK(rc == 0 || rc == -EPROTO || rc == -ENOMEM);
    if (rc)
        return;
    FUZZ_CHECK(r.revision > 0);
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < r.n; i++) {
        FUZZ_CHECK(r.kvs[i].klen > 0 && r.kvs[i].val != NULL && r.kvs[i].mod_revision > 0);
        for (size_t j = 0; j < r.kvs[i].klen; j++)
            sink ^= r.kvs[i].key[j];
        for (size_t j = 0; j < r.kvs[i].vlen; j++)
            sink ^= r.kvs[i].val[j];
    }
    (void)sink;
    etcd_range_result_free(&r);
}

static void check_b64(const char *in, size_t n)
{
    size_t cap = b64_decoded_max(n);
    uint8_t *out = malloc(cap ? cap : 1);
    FUZZ_CHECK(out != NULL);
    long d = b64_decode(in, n, out, cap);
    FUZZ_CHECK(d >= -1 && d <= (long)cap);
    if (d >= 0) {
        char *again = malloc(b64_encoded_len((size_t)d) + 1);
        FUZZ_CHECK(again != NULL);
        size_t e = b64_encode(out, (size_t)d, again);
        FUZZ_CHECK(e == n && memcmp(again, in, n) == 0);
        free(again);
        /* One byte less room must be refused, never overrun. */
        if (d > 0)
            FUZZ_CHECK(b64_decode(in, n, out, (size_t)d - 1) == -1);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* An exact-size copy so that ASan sees any read past the body. */
    size_t len = size - 1;
    char *body = malloc(len ? len : 1);
    FUZZ_CHECK(body != NULL);
    memcpy(body, data + 1, len);
    switch (data[0] % 4) {
    case 0:
        check_range(body, len);
        break;
    case 1: {
        bool ok = false;
        int64_t rev = 0;
        int rc = etcd_decode_txn(body, len, &ok, &rev);
        FUZZ_CHECK(rc == 0 || rc == -EPROTO);
        FUZZ_CHECK(rc || rev > 0);
        break;
    }
    case 2: {
        char msg[64];
        memset(msg, 'x', sizeof(msg));
        int code = -1;
        int rc = etcd_decode_error(body, len, &code, msg, sizeof(msg));
        FUZZ_CHECK(rc == 0 || rc == -EPROTO);
        FUZZ_CHECK(rc || (code >= 0 && memchr(msg, 0, sizeof(msg)) != NULL));
        break;
    }
    default:
        check_b64(body, len);
        break;
    }
    free(body);
    return 0;
}
