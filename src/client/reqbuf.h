/* reqbuf.h — an encoded request shared by its owner and a send in
 * progress.
 *
 * rpc_call_async() may still be writing the request from the caller's
 * thread when the response arrives and the completion runs on the loop
 * thread; whichever finishes last frees the bytes. The owner holds one
 * reference; a send holds another for the duration of rpc_call_async().
 */
#ifndef VALORFS_CLIENT_REQBUF_H
#define VALORFS_CLIENT_REQBUF_H

#include <stdatomic.h>
#include <stdlib.h>

#include "common/wire.h"

struct reqbuf {
    atomic_int refs;
    struct wbuf wb;
};

/* One reference (the owner's); NULL on allocation failure. */
static inline struct reqbuf *reqbuf_new(void)
{
    struct reqbuf *b = malloc(sizeof(*b));
    if (b) {
        atomic_init(&b->refs, 1);
        wb_init(&b->wb, 0);
    }
    return b;
}

static inline struct reqbuf *reqbuf_get(struct reqbuf *b)
{
    atomic_fetch_add(&b->refs, 1);
    return b;
}

static inline void reqbuf_put(struct reqbuf *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
        wb_free(&b->wb);
        free(b);
    }
}

#endif
