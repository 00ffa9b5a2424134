/* fuzz_common.h — helpers shared by the libFuzzer targets.
 *
 * The decoder hands out views (op struct, names, data) into the bytes it
 * was given. Every target copies its input into buffers of exactly the
 * input's size, so reading a view past its end is an ASan report; the
 * checks below read every byte of every view and also check that each
 * view lies inside the part of the frame it may come from (the body
 * without the extension headers), which ASan alone cannot see.
 */
#ifndef VALORFS_FUZZ_COMMON_H
#define VALORFS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/decode.h"

#include "fuzz_check.h"

/* A byte range [lo, hi) a view must stay in. */
struct fuzz_range {
    const char *lo, *hi;
};

/* Read n bytes so that ASan sees every one of them; the result is only
 * used to keep the reads alive. */
static inline uint32_t fuzz_touch(const void *p, size_t n)
{
    const volatile unsigned char *b = p;
    uint32_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum = sum * 31u + b[i];
    return sum;
}

static inline int fuzz_in_range(const struct fuzz_range *r, const void *p, size_t n)
{
    const char *c = p;
    return c >= r->lo && c <= r->hi && n <= (size_t)(r->hi - c);
}

/* A name: inside the range, NUL-terminated inside the range. */
static inline void fuzz_check_name(const struct fuzz_range *r, const char *name)
{
    FUZZ_CHECK(name != NULL);
    FUZZ_CHECK(name >= r->lo && name < r->hi);
    size_t len = strlen(name); /* ASan: must stop inside the buffer */
    FUZZ_CHECK(len < (size_t)(r->hi - name));
    fuzz_touch(name, len + 1);
}

/* A data view: inside the range (len 0 may sit at its end). */
static inline void fuzz_check_data(const struct fuzz_range *r, const void *data, size_t len)
{
    if (len == 0)
        return;
    FUZZ_CHECK(data != NULL);
    FUZZ_CHECK(fuzz_in_range(r, data, len));
    fuzz_touch(data, len);
}

/* Everything a successful decode returned. op: where the op struct may
 * live; body: where names and data may live. */
static inline void fuzz_check_msg(const struct fuse_msg *m, const struct fuzz_range *op,
                                  const struct fuzz_range *body)
{
    int sz = fuse_op_struct_size(m->opcode);
    FUZZ_CHECK(sz >= 0); /* success is only possible for known opcodes */
    if (sz > 0) {
        FUZZ_CHECK(m->op != NULL);
        FUZZ_CHECK(m->op_len >= (uint32_t)sz);
        FUZZ_CHECK(((uintptr_t)m->op & 7) == 0); /* read in place as a struct */
        FUZZ_CHECK(fuzz_in_range(op, m->op, m->op_len));
        fuzz_touch(m->op, m->op_len);
    } else {
        FUZZ_CHECK(m->op == NULL && m->op_len == 0);
    }
    if (m->name)
        fuzz_check_name(body, m->name);
    if (m->name2) {
        FUZZ_CHECK(m->name != NULL);
        fuzz_check_name(body, m->name2);
        FUZZ_CHECK(m->name2 > m->name + strlen(m->name)); /* after the first name */
    }
    fuzz_check_data(body, m->data, m->data_len);
    if (m->name && m->data && m->data_len)
        FUZZ_CHECK((const char *)m->data > m->name + strlen(m->name));

    /* what each body kind promises */
    switch (m->opcode) {
    case FUSE_LOOKUP: case FUSE_MKNOD: case FUSE_MKDIR: case FUSE_UNLINK: case FUSE_RMDIR:
    case FUSE_LINK: case FUSE_GETXATTR: case FUSE_REMOVEXATTR: case FUSE_CREATE:
    case FUSE_TMPFILE:
        FUZZ_CHECK(m->name != NULL);
        break;
    case FUSE_SYMLINK: case FUSE_RENAME: case FUSE_RENAME2:
        FUZZ_CHECK(m->name != NULL && m->name2 != NULL);
        break;
    case FUSE_WRITE: {
        const struct fuse_write_in *w = m->op;
        FUZZ_CHECK(m->data_len == w->size);
        break;
    }
    case FUSE_SETXATTR: {
        const struct fuse_setxattr_in *x = m->op;
        FUZZ_CHECK(m->name != NULL && m->data_len == x->size);
        break;
    }
    case FUSE_BATCH_FORGET: {
        const struct fuse_batch_forget_in *b = m->op;
        FUZZ_CHECK((uint64_t)m->data_len == (uint64_t)b->count * sizeof(struct fuse_forget_one));
        break;
    }
    default:
        break;
    }
}

/* The header fields must be reported whether or not the decode worked. */
static inline void fuzz_check_header(const struct fuse_msg *m, const struct fuse_in_header *h)
{
    FUZZ_CHECK(m->opcode == h->opcode);
    FUZZ_CHECK(m->unique == (h->unique & ~FUSE_UNIQUE_RESEND));
    FUZZ_CHECK(m->resent == ((h->unique & FUSE_UNIQUE_RESEND) != 0));
    FUZZ_CHECK(m->nodeid == h->nodeid);
}

/* A heap copy of exactly n bytes (at least 1 allocated), 8-byte aligned. */
static inline void *fuzz_dup(const void *p, size_t n)
{
    void *b = malloc(n ? n : 1);
    FUZZ_CHECK(b != NULL && ((uintptr_t)b & 7) == 0);
    if (n)
        memcpy(b, p, n);
    return b;
}

/* The io_uring shape: 128-byte header area, 128-byte op area, payload. */
struct fuzz_ring_in {
    void *in_out, *op_in, *payload;
    size_t payload_len;
};

static inline void fuzz_ring_split(const uint8_t *data, size_t size, struct fuzz_ring_in *ri)
{
    size_t a = size < FUSE_URING_IN_OUT_HEADER_SZ ? size : FUSE_URING_IN_OUT_HEADER_SZ;
    ri->in_out = calloc(1, FUSE_URING_IN_OUT_HEADER_SZ);
    ri->op_in = calloc(1, FUSE_URING_OP_IN_OUT_SZ);
    FUZZ_CHECK(ri->in_out && ri->op_in && ((uintptr_t)ri->op_in & 7) == 0);
    memcpy(ri->in_out, data, a);
    data += a;
    size -= a;
    size_t b = size < FUSE_URING_OP_IN_OUT_SZ ? size : FUSE_URING_OP_IN_OUT_SZ;
    memcpy(ri->op_in, data, b);
    data += b;
    size -= b;
    ri->payload_len = size;
    ri->payload = fuzz_dup(data, size);
}

static inline void fuzz_ring_free(struct fuzz_ring_in *ri)
{
    free(ri->in_out);
    free(ri->op_in);
    free(ri->payload);
}

/* Ranges for a ring entry: op area, and payload minus extensions. */
static inline void fuzz_ring_ranges(const struct fuzz_ring_in *ri, struct fuzz_range *op,
                                    struct fuzz_range *body)
{
    struct fuse_in_header h;
    memcpy(&h, ri->in_out, sizeof(h));
    size_t ext = (size_t)h.total_extlen * 8;
    op->lo = ri->op_in;
    op->hi = op->lo + FUSE_URING_OP_IN_OUT_SZ;
    body->lo = ri->payload;
    body->hi = body->lo + (ext <= ri->payload_len ? ri->payload_len - ext : 0);
}

/* Ranges for a /dev/fuse frame of len bytes (header already validated). */
static inline void fuzz_dev_ranges(const void *buf, size_t len, struct fuzz_range *op,
                                   struct fuzz_range *body)
{
    struct fuse_in_header h;
    memcpy(&h, buf, sizeof(h));
    size_t ext = (size_t)h.total_extlen * 8;
    size_t body_len = len > sizeof(h) ? len - sizeof(h) : 0;
    body->lo = (const char *)buf + (len > sizeof(h) ? sizeof(h) : len);
    body->hi = body->lo + (ext <= body_len ? body_len - ext : 0);
    *op = *body;
}

#endif
