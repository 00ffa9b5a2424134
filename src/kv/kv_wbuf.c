/* kv_wbuf.c — sorted write buffer (see kv_wbuf.h). */
#include "kv/kv_wbuf.h"
#include "kv/kv_backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void kv_wbuf_init(struct kv_wbuf *w)
{
    memset(w, 0, sizeof(*w));
}

void kv_wbuf_free(struct kv_wbuf *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->e[i]);
    for (struct kv_wentry *r = w->retired, *nx; r; r = nx) {
        nx = r->retired_next;
        free(r);
    }
    free(w->e);
    kv_wbuf_init(w);
}

size_t kv_wbuf_lower_bound(const struct kv_wbuf *w, const void *key, size_t klen, bool strict)
{
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct kv_wentry *e = w->e[mid];
        int c = kv_key_cmp(kv_wentry_key(e), e->klen, key, klen);
        if (c < 0 || (strict && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct kv_wentry *kv_wbuf_find(const struct kv_wbuf *w, const void *key, size_t klen)
{
    size_t i = kv_wbuf_lower_bound(w, key, klen, false);
    if (i < w->n && kv_key_cmp(kv_wentry_key(w->e[i]), w->e[i]->klen, key, klen) == 0)
        return w->e[i];
    return NULL;
}

int kv_wbuf_get(const struct kv_wbuf *w, const void *key, size_t klen, const void **val,
                size_t *vlen)
{
    const struct kv_wentry *e = kv_wbuf_find(w, key, klen);
    if (!e)
        return 1;
    if (e->deleted)
        return -ENOENT;
    *val = kv_wentry_val(e);
    *vlen = e->vlen;
    return 0;
}

int kv_wbuf_set(struct kv_wbuf *w, const void *key, size_t klen, const void *val, size_t vlen,
                bool deleted)
{
    struct kv_wentry *ne = malloc(sizeof(*ne) + klen + vlen);
    if (!ne)
        return -ENOMEM;
    ne->retired_next = NULL;
    ne->klen = (uint32_t)klen;
    ne->vlen = (uint32_t)vlen;
    ne->deleted = deleted;
    memcpy(ne->data, key, klen);
    if (vlen)
        memcpy(ne->data + klen, val, vlen);

    size_t i = kv_wbuf_lower_bound(w, key, klen, false);
    if (i < w->n && kv_key_cmp(kv_wentry_key(w->e[i]), w->e[i]->klen, key, klen) == 0) {
        w->e[i]->retired_next = w->retired;
        w->retired = w->e[i];
        w->e[i] = ne;
        w->version++;
        return 0;
    }
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 8;
        struct kv_wentry **ng = realloc(w->e, nc * sizeof(*ng));
        if (!ng) {
            free(ne);
            return -ENOMEM;
        }
        w->e = ng;
        w->cap = nc;
    }
    memmove(&w->e[i + 1], &w->e[i], (w->n - i) * sizeof(*w->e));
    w->e[i] = ne;
    w->n++;
    w->version++;
    return 0;
}
