/* Unit tests of the FUSE request decoder: well-formed frames of every
 * shape, then truncated, oversized and inconsistent ones, which must be
 * rejected with an error, never read out of bounds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/decode.h"

#include "common/test_check.h"

static _Alignas(8) unsigned char frame[1 << 16];

/* Build a /dev/fuse frame: header + op struct + tail bytes. */
static size_t build(uint32_t opcode, const void *op, size_t oplen, const void *tail,
                    size_t taillen)
{
    struct fuse_in_header h = { .len = (uint32_t)(sizeof(h) + oplen + taillen),
                                .opcode = opcode, .unique = 42, .nodeid = 7,
                                .uid = 1000, .gid = 100, .pid = 99 };
    memcpy(frame, &h, sizeof(h));
    if (oplen)
        memcpy(frame + sizeof(h), op, oplen);
    if (taillen)
        memcpy(frame + sizeof(h) + oplen, tail, taillen);
    return h.len;
}

static void set_len(uint32_t len) { memcpy(frame, &len, sizeof(len)); }

int main(void)
{
    struct fuse_msg m;
    size_t n;

    /* LOOKUP: one name */
    n = build(FUSE_LOOKUP, NULL, 0, "hello", 6);
    CHECK(fuse_decode_dev(frame, n, &m) == 0);
    CHECK(m.opcode == FUSE_LOOKUP && m.unique == 42 && m.nodeid == 7 && m.uid == 1000);
    CHECK(m.name && strcmp(m.name, "hello") == 0);
    /* name without its NUL */
    n = build(FUSE_LOOKUP, NULL, 0, "hello", 5);
    CHECK(fuse_decode_dev(frame, n, &m) == -EINVAL);
    CHECK(m.unique == 42); /* still known, so the engine can answer */

    /* RENAME2: op + two names */
    struct fuse_rename2_in rn = { .newdir = 9, .flags = 1 };
    n = build(FUSE_RENAME2, &rn, sizeof(rn), "a\0bb", 5);
    CHECK(fuse_decode_dev(frame, n, &m) == 0);
    CHECK(m.name && !strcmp(m.name, "a") && m.name2 && !strcmp(m.name2, "bb"));
    n = build(FUSE_RENAME2, &rn, sizeof(rn), "a\0bb", 4); /* second name cut */
    CHECK(fuse_decode_dev(frame, n, &m) == -EINVAL);

    /* WRITE: size must be covered by the data */
    struct fuse_write_in w = { .fh = 3, .offset = 4096, .size = 8 };
    n = build(FUSE_WRITE, &w, sizeof(w), "12345678", 8);
    CHECK(fuse_decode_dev(frame, n, &m) == 0);
    CHECK(m.data_len == 8 && memcmp(m.data, "12345678", 8) == 0);
    w.size = 9; /* claims more than was sent */
    n = build(FUSE_WRITE, &w, sizeof(w), "12345678", 8);
    CHECK(fuse_decode_dev(frame, n, &m) == -EINVAL);
    w.size = 0xffffffffu; /* absurd size */
    n = build(FUSE_WRITE, &w, sizeof(w), "1", 1);
    CHECK(fuse_decode_dev(frame, n, &m) == -EINVAL);

    /* truncated op struct */
    n = build(FUSE_WRITE, &w, 10, NULL, 0);
    CHECK(fuse_decode_dev(frame, n, &m) == -EINVAL);

    /* header length disagrees with the bytes received */
    n = build(FUSE_GETATTR, &(struct fuse_getattr_in){ 0 }, sizeof(struct fuse_getattr_in), NULL, 0);
    CHECK(fuse_decode_dev(frame, n, &m) == 0);
    set_len((uint32_t)n + 1);
    CHECK(fuse_decode_dev(frame, n, &m) == -EINVAL);
    set_len(8);
    CHECK(fuse_decode_dev(frame, n, &m) == -EINVAL);
    CHECK(fuse_decode_dev(frame, 10, &m) == -EINVAL); /* shorter than a header */
    CHECK(fuse_decode_dev(NULL, 0, &m) == -EINVAL);
    CHECK(fuse_decode_dev(frame + 1, n, &m) == -EINVAL); /* misaligned */

    /* unknown opcode: ENOSYS with the unique kept */
    n = build(4000, NULL, 0, NULL, 0);
    CHECK(fuse_decode_dev(frame, n, &m) == -ENOSYS && m.unique == 42);

    /* BATCH_FORGET: count must match the array */
    struct { struct fuse_batch_forget_in b; struct fuse_forget_one f[2]; } bf = {
        { .count = 2 }, { { 5, 1 }, { 6, 2 } } };
    n = build(FUSE_BATCH_FORGET, &bf, sizeof(bf), NULL, 0);
    CHECK(fuse_decode_dev(frame, n, &m) == 0 && m.data_len == 32);
    bf.b.count = 3;
    n = build(FUSE_BATCH_FORGET, &bf, sizeof(bf), NULL, 0);
    CHECK(fuse_decode_dev(frame, n, &m) == -EINVAL);
    bf.b.count = 0xffffffffu;
    n = build(FUSE_BATCH_FORGET, &bf, sizeof(bf), NULL, 0);
    CHECK(fuse_decode_dev(frame, n, &m) == -EINVAL);

    /* SETXATTR: name then value of the declared size */
    struct fuse_setxattr_in sx = { .size = 3 };
    n = build(FUSE_SETXATTR, &sx, FUSE_COMPAT_SETXATTR_IN_SIZE, "user.k\0abc", 10);
    CHECK(fuse_decode_dev(frame, n, &m) == 0 && m.data_len == 3 && !strcmp(m.name, "user.k"));
    sx.size = 4;
    n = build(FUSE_SETXATTR, &sx, FUSE_COMPAT_SETXATTR_IN_SIZE, "user.k\0abc", 10);
    CHECK(fuse_decode_dev(frame, n, &m) == -EINVAL);

    /* extension length larger than the body */
    n = build(FUSE_LOOKUP, NULL, 0, "x", 2);
    ((struct fuse_in_header *)frame)->total_extlen = 100;
    CHECK(fuse_decode_dev(frame, n, &m) == -EINVAL);

    /* resend bit is reported and masked */
    n = build(FUSE_LOOKUP, NULL, 0, "x", 2);
    ((struct fuse_in_header *)frame)->unique = 42 | FUSE_UNIQUE_RESEND;
    CHECK(fuse_decode_dev(frame, n, &m) == 0 && m.resent && m.unique == 42);

    /* ring shape: header area, op area, payload */
    _Alignas(8) unsigned char in_out[128] = { 0 }, op_in[128] = { 0 }, payload[64] = { 0 };
    struct fuse_in_header h = { .opcode = FUSE_CREATE, .unique = 77, .nodeid = 1 };
    memcpy(in_out, &h, sizeof(h));
    struct fuse_create_in ci = { .flags = 2, .mode = 0100644 };
    memcpy(op_in, &ci, sizeof(ci));
    memcpy(payload, "file.txt", 9);
    CHECK(fuse_decode_ring(in_out, op_in, payload, 9, &m) == 0);
    CHECK(m.unique == 77 && m.name && !strcmp(m.name, "file.txt"));
    CHECK(fuse_decode_ring(in_out, op_in, payload, 8, &m) == -EINVAL); /* NUL outside */
    h.opcode = FUSE_INIT; /* never over a ring */
    memcpy(in_out, &h, sizeof(h));
    CHECK(fuse_decode_ring(in_out, op_in, payload, 9, &m) == -EINVAL);
    h.opcode = 9999;
    memcpy(in_out, &h, sizeof(h));
    CHECK(fuse_decode_ring(in_out, op_in, payload, 9, &m) == -ENOSYS);

    /* every known opcode with an empty body is either accepted (no body
     * needed) or rejected, never crashes; names are stable */
    for (uint32_t op = 0; op < 64; op++) {
        int sz = fuse_op_struct_size(op);
        if (sz < 0) {
            CHECK(strcmp(fuse_opcode_name(op), "UNKNOWN") == 0);
            continue;
        }
        n = build(op, NULL, 0, NULL, 0);
        int rc = fuse_decode_dev(frame, n, &m);
        CHECK(rc == 0 || rc == -EINVAL);
        if (sz > 0)
            CHECK(rc == -EINVAL);
    }
    printf("%s\n", failures ? "decode: FAILED" : "decode: ok");
    return failures ? 1 : 0;
}
