/* wire.h — bounds-checked little-endian encoding of RPC payloads.
 *
 * Contract. A struct wbuf grows a heap buffer (up to its limit); a struct
 * rbuf reads from bytes it does not own. Every read checks the remaining
 * length; the first short or invalid read sets rb->err and every later read
 * returns zero/empty, so a decoder reads all fields and checks rb_ok() once
 * at the end. Nothing here can read or write outside its buffer.
 *
 * Strings on the wire are u32 length + bytes (no NUL). rb_str() returns a
 * pointer into the input and its length; rb_cstr() copies into a caller
 * buffer with a NUL and fails when it does not fit or the string contains a
 * NUL byte (names and paths must not).
 */
#ifndef VALORFS_COMMON_WIRE_H
#define VALORFS_COMMON_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct wbuf {
    uint8_t *data;
    size_t len, cap;
    size_t limit; /* 0 = no limit other than memory */
    bool err;     /* allocation failed or limit exceeded */
};

struct rbuf {
    const uint8_t *p;
    size_t left;
    bool err;
};

static inline void wb_init(struct wbuf *wb, size_t limit)
{
    wb->data = NULL;
    wb->len = wb->cap = 0;
    wb->limit = limit;
    wb->err = false;
}

static inline void wb_free(struct wbuf *wb)
{
    free(wb->data);
    wb->data = NULL;
    wb->len = wb->cap = 0;
}

/* Make room for n more bytes; returns a pointer to them or NULL (sets err). */
static inline uint8_t *wb_reserve(struct wbuf *wb, size_t n)
{
    if (wb->err || n == 0) /* n == 0: nothing to write (and data may be NULL) */
        return NULL;
    if (n > SIZE_MAX - wb->len || (wb->limit && wb->len + n > wb->limit)) {
        wb->err = true;
        return NULL;
    }
    if (wb->len + n > wb->cap) {
        size_t cap = wb->cap ? wb->cap : 256;
        while (cap < wb->len + n)
            cap *= 2;
        uint8_t *d = realloc(wb->data, cap);
        if (!d) {
            wb->err = true;
            return NULL;
        }
        wb->data = d;
        wb->cap = cap;
    }
    uint8_t *p = wb->data + wb->len;
    wb->len += n;
    return p;
}

static inline void wb_bytes(struct wbuf *wb, const void *src, size_t n)
{
    uint8_t *p = wb_reserve(wb, n);
    if (p && n)
        memcpy(p, src, n);
}

#define WB_INT(name, type)                                          \
    static inline void wb_##name(struct wbuf *wb, type v)           \
    {                                                               \
        uint8_t *p = wb_reserve(wb, sizeof(type));                  \
        if (p)                                                      \
            for (size_t i = 0; i < sizeof(type); i++)               \
                p[i] = (uint8_t)((uint64_t)v >> (8 * i));           \
    }
WB_INT(u8, uint8_t)
WB_INT(u16, uint16_t)
WB_INT(u32, uint32_t)
WB_INT(u64, uint64_t)
#undef WB_INT

static inline void wb_i32(struct wbuf *wb, int32_t v) { wb_u32(wb, (uint32_t)v); }
static inline void wb_i64(struct wbuf *wb, int64_t v) { wb_u64(wb, (uint64_t)v); }

static inline void wb_str(struct wbuf *wb, const void *s, size_t n)
{
    if (n > UINT32_MAX) {
        wb->err = true;
        return;
    }
    wb_u32(wb, (uint32_t)n);
    wb_bytes(wb, s, n);
}

static inline void wb_cstr(struct wbuf *wb, const char *s)
{
    wb_str(wb, s, s ? strlen(s) : 0);
}

static inline void rb_init(struct rbuf *rb, const void *p, size_t len)
{
    rb->p = p;
    rb->left = len;
    rb->err = false;
}

static inline bool rb_ok(const struct rbuf *rb) { return !rb->err; }
/* True when every byte was consumed and nothing failed. */
static inline bool rb_done(const struct rbuf *rb) { return !rb->err && rb->left == 0; }

/* Take n bytes; NULL (and err) if fewer remain. */
static inline const uint8_t *rb_take(struct rbuf *rb, size_t n)
{
    if (rb->err || n > rb->left) {
        rb->err = true;
        return NULL;
    }
    const uint8_t *p = rb->p;
    rb->p += n;
    rb->left -= n;
    return p;
}

#define RB_INT(name, type)                                          \
    static inline type rb_##name(struct rbuf *rb)                   \
    {                                                               \
        const uint8_t *p = rb_take(rb, sizeof(type));               \
        uint64_t v = 0;                                             \
        if (p)                                                      \
            for (size_t i = 0; i < sizeof(type); i++)               \
                v |= (uint64_t)p[i] << (8 * i);                     \
        return (type)v;                                             \
    }
RB_INT(u8, uint8_t)
RB_INT(u16, uint16_t)
RB_INT(u32, uint32_t)
RB_INT(u64, uint64_t)
#undef RB_INT

static inline int32_t rb_i32(struct rbuf *rb) { return (int32_t)rb_u32(rb); }
static inline int64_t rb_i64(struct rbuf *rb) { return (int64_t)rb_u64(rb); }

/* A length-prefixed byte string, at most max bytes; pointer into input. */
static inline const uint8_t *rb_str(struct rbuf *rb, size_t max, uint32_t *len)
{
    uint32_t n = rb_u32(rb);
    *len = 0;
    if (rb->err || n > max) {
        rb->err = true;
        return NULL;
    }
    const uint8_t *p = rb_take(rb, n);
    if (p)
        *len = n;
    return p;
}

/* A string copied into out[cap] with a NUL; fails if it does not fit or
 * holds a NUL byte. */
static inline void rb_cstr(struct rbuf *rb, char *out, size_t cap)
{
    uint32_t n;
    const uint8_t *p = rb_str(rb, cap ? cap - 1 : 0, &n);
    if (cap)
        out[0] = '\0';
    if (!p && n == 0 && rb->err)
        return;
    if (n && memchr(p, 0, n)) {
        rb->err = true;
        return;
    }
    if (n)
        memcpy(out, p, n);
    if (cap)
        out[n] = '\0';
}

#endif
