/* codec_internal.h — helpers shared by the proto codecs (not a contract).
 *
 * Every decoder reads all fields through wire.h, validates them with the
 * checks below (each sets rb->err instead of returning, so the decoder
 * stays a straight list of fields) and finishes with proto_finish().
 */
#ifndef VALORFS_PROTO_CODEC_INTERNAL_H
#define VALORFS_PROTO_CODEC_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/wire.h"

#define PROTO_CHUNK_MIN (64u << 10)
#define PROTO_CHUNK_MAX (64u << 20)

static inline void rb_fail(struct rbuf *rb) { rb->err = true; }
/* Encoders refuse a struct whose counts overrun its arrays (the decoder
 * would refuse it too): the caller sees wb->err. */
static inline void wb_fail(struct wbuf *wb) { wb->err = true; }

/* Fail unless cond holds. */
static inline void rb_require(struct rbuf *rb, bool cond)
{
    if (!cond)
        rb->err = true;
}

/* A NUL-terminated string held in a char[cap]; refuses one that fills the
 * array without a NUL (it would overrun when read with strlen). */
static inline void wb_fixed_cstr(struct wbuf *wb, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap) {
        wb_fail(wb);
        return;
    }
    wb_str(wb, s, n);
}

/* A u8 that must be 0 or 1. */
static inline uint8_t rb_bool(struct rbuf *rb)
{
    uint8_t v = rb_u8(rb);
    rb_require(rb, v <= 1);
    return v;
}

/* A u8 enum that must lie in [lo, hi]. */
static inline uint8_t rb_enum8(struct rbuf *rb, uint8_t lo, uint8_t hi)
{
    uint8_t v = rb_u8(rb);
    rb_require(rb, v >= lo && v <= hi);
    return v;
}

/* A count of items of at least min_item_bytes each on the wire: at most max,
 * and not more than the remaining bytes can hold — checked before anything
 * is allocated for them, so a forged count cannot make us allocate more
 * than a small multiple of the input. */
static inline uint32_t rb_count(struct rbuf *rb, uint32_t max, size_t min_item_bytes)
{
    uint32_t n = rb_u32(rb);
    rb_require(rb, n <= max && (uint64_t)n * min_item_bytes <= rb->left);
    return n;
}

/* A path component: 1..VF_MAX_NAME bytes (0 allowed when may_be_empty), no
 * NUL, no '/'. out has room for max+1 bytes. */
static inline void rb_name(struct rbuf *rb, char *out, size_t max, bool may_be_empty)
{
    rb_cstr(rb, out, max + 1);
    if (rb->err)
        return;
    size_t n = strlen(out);
    rb_require(rb, (n > 0 || may_be_empty) && !memchr(out, '/', n));
}

static inline bool proto_chunk_size_ok(uint32_t cs)
{
    return cs >= PROTO_CHUNK_MIN && cs <= PROTO_CHUNK_MAX && (cs & (cs - 1)) == 0;
}

/* The end of every decoder: all bytes consumed, nothing failed. */
static inline int proto_finish(const struct rbuf *rb)
{
    return rb_done(rb) ? 0 : -EBADMSG;
}

#endif
