/* fuzz_proto_common.h — what the protocol fuzz targets (fuzz_proto_*.c)
 * share.
 *
 * Each target takes a selector byte and a payload. The payload is copied
 * to a heap buffer of exactly its size (so ASan sees any read past it) and
 * decoded as the selected message. A successful decode must
 *   - re-encode to exactly the input bytes (the encoding is canonical: a
 *     decoder that accepted slack, e.g. a bool of 2 or unread bytes, shows
 *     up here),
 *   - decode again from that encoding to an equal struct (proto_eq.h),
 * and both structs are freed, so a leak on either path is reported.
 */
#ifndef VALORFS_FUZZ_PROTO_COMMON_H
#define VALORFS_FUZZ_PROTO_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto_eq.h"

#include "fuzz_check.h"

static inline void fuzz_nofree(void *p) { (void)p; }

/* A heap copy of exactly n bytes (1 allocated when n is 0). */
static inline uint8_t *fuzz_dup(const void *p, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    FUZZ_CHECK(b != NULL);
    if (n)
        memcpy(b, p, n);
    return b;
}

/* A view [p, p+n) must lie inside [lo, lo+len); an empty view is NULL. */
static inline void fuzz_check_view(const void *p, size_t n, const uint8_t *lo, size_t len)
{
    if (n == 0) {
        FUZZ_CHECK(p == NULL);
        return;
    }
    const uint8_t *c = p;
    FUZZ_CHECK(c >= lo && c <= lo + len && n <= (size_t)(lo + len - c));
}

/* Defines fuzz_<T>(buf, len); views(m, buf, len) checks T's views. */
#define FUZZ_DEFINE_CODEC(T, freefn, views)                                        \
    static void fuzz_##T(const uint8_t *buf, size_t len)                           \
    {                                                                              \
        struct T m;                                                                \
        int rc = T##_dec(buf, len, &m);                                            \
        FUZZ_CHECK(rc == 0 || rc == -EBADMSG);                                     \
        if (rc)                                                                    \
            return;                                                                \
        views(&m, buf, len);                                                       \
        struct wbuf wb;                                                            \
        wb_init(&wb, 0);                                                           \
        T##_enc(&wb, &m);                                                          \
        FUZZ_CHECK(!wb.err);                                                       \
        FUZZ_CHECK(wb.len == len && (len == 0 || memcmp(wb.data, buf, len) == 0)); \
        uint8_t *copy = fuzz_dup(wb.data, wb.len);                                 \
        struct T again;                                                            \
        FUZZ_CHECK(T##_dec(copy, wb.len, &again) == 0);                            \
        FUZZ_CHECK(T##_eq(&m, &again));                                            \
        freefn(&again);                                                            \
        freefn(&m);                                                                \
        free(copy);                                                                \
        wb_free(&wb);                                                              \
    }

#define FUZZ_NO_VIEWS(m, buf, len) ((void)(m), (void)(buf), (void)(len))

typedef void (*fuzz_codec_fn)(const uint8_t *buf, size_t len);

/* The entry point: data[0] picks one of n codecs, the rest is its input. */
static inline void fuzz_dispatch(const fuzz_codec_fn *codecs, size_t n, const uint8_t *data,
                                 size_t size)
{
    if (size == 0)
        return;
    uint8_t *buf = fuzz_dup(data + 1, size - 1);
    codecs[data[0] % n](buf, size - 1);
    free(buf);
}

#endif
