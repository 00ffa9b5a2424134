/* fuzz_proto_meta.c — libFuzzer target: the meta message decoders.
 * Input: one selector byte (0 meta_req, 1 meta_resp, 2 a READDIR entry
 * list; modulo 3), then the payload; see fuzz_proto_common.h for what is
 * checked. A decoded request also goes through meta_req_check() for every
 * method. */
#include "fuzz_proto_common.h"

#define REQ_VIEWS(m, buf, len) fuzz_check_view((m)->data, (m)->data_len, buf, len)
#define RESP_VIEWS(m, buf, len) fuzz_check_view((m)->data, (m)->data_len, buf, len)

FUZZ_DEFINE_CODEC(meta_req, fuzz_nofree, REQ_VIEWS)
FUZZ_DEFINE_CODEC(meta_resp, fuzz_nofree, RESP_VIEWS)

static void fuzz_meta_req_check(const uint8_t *buf, size_t len)
{
    fuzz_meta_req(buf, len);
    struct meta_req m;
    if (meta_req_dec(buf, len, &m) != 0)
        return;
    for (uint16_t method = META_LOOKUP; method <= META_ACCESS + 1; method++) {
        int rc = meta_req_check(method, &m);
        FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
    }
}

/* A READDIR listing: entries until the bytes run out or one fails; what
 * decoded re-encodes to exactly the bytes it came from. */
static void fuzz_dirents(const uint8_t *buf, size_t len)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    while (rb.left > 0) {
        const uint8_t *start = rb.p;
        struct meta_dirent d;
        int rc = meta_dirent_next(&rb, &d);
        FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
        if (rc)
            break;
        FUZZ_CHECK(d.name[0] != '\0' && !strchr(d.name, '/'));
        struct wbuf wb;
        wb_init(&wb, 0);
        meta_dirent_enc(&wb, &d);
        FUZZ_CHECK(!wb.err);
        FUZZ_CHECK(wb.len == (size_t)(rb.p - start) && memcmp(wb.data, start, wb.len) == 0);
        struct rbuf again;
        rb_init(&again, wb.data, wb.len);
        struct meta_dirent e;
        FUZZ_CHECK(meta_dirent_next(&again, &e) == 0 && rb_done(&again));
        FUZZ_CHECK(meta_dirent_eq(&d, &e));
        wb_free(&wb);
    }
}

static const fuzz_codec_fn codecs[] = {fuzz_meta_req_check, fuzz_meta_resp, fuzz_dirents};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_dispatch(codecs, sizeof(codecs) / sizeof(codecs[0]), data, size);
    return 0;
}
