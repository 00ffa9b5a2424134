/* handoff.c — the shared-memory state region of handoff.h.
 *
 * Layout (host byte order: a region never leaves the machine):
 *   header | node stripes | handle slots | request records
 * A node stripe is an independent hash table (its own lock in the daemon,
 * its own bucket heads, entries and free list), so lookups on different
 * nodes rarely contend. Entries are handed out from a high-water mark, so
 * the bytes in use (what sealing checksums and import walks) stay small
 * even when the capacity is large; the memfd is sparse.
 */
#include "fuse/handoff.h"

#include <errno.h>
#include <isa-l/crc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "fuse/handoff_layout.h"

/* 32: sealing holds every stripe lock at once, and ThreadSanitizer tracks at
 * most 64 locks held by one thread */
#define NSTRIPES 32u
#define NIL UINT32_MAX

struct ho_region {
    int fd;
    size_t size;
    uint8_t *base;
    struct ho_hdr *hdr;
    pthread_mutex_t stripe_lock[NSTRIPES];
    pthread_mutex_t fh_lock;
};

static struct ho_stripe_hdr *stripe_hdr(struct ho_region *h, unsigned i)
{
    return (struct ho_stripe_hdr *)(h->base + h->hdr->nodes_off + (uint64_t)i * h->hdr->stripe_bytes);
}
static uint32_t *stripe_buckets(struct ho_stripe_hdr *sh) { return (uint32_t *)(sh + 1); }
static struct ho_node *stripe_nodes(struct ho_stripe_hdr *sh)
{
    return (struct ho_node *)(stripe_buckets(sh) + sh->nbuckets);
}
static struct ho_fh *fh_slots(struct ho_region *h)
{
    return (struct ho_fh *)(h->base + h->hdr->fh_off);
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

struct ho_region *ho_create(const struct ho_limits *lim)
{
    uint32_t nodes = lim && lim->nodes ? lim->nodes : 1u << 20;
    uint32_t handles = lim && lim->handles ? lim->handles : 1u << 16;
    uint32_t stripe_cap = (nodes + NSTRIPES - 1) / NSTRIPES;
    uint64_t stripe_bytes = sizeof(struct ho_stripe_hdr) + (uint64_t)stripe_cap * 4 +
                            (uint64_t)stripe_cap * sizeof(struct ho_node);
    stripe_bytes = (stripe_bytes + 63) & ~63ull;
    uint64_t nodes_off = 4096;
    uint64_t fh_off = nodes_off + stripe_bytes * NSTRIPES;
    uint64_t rec_off = fh_off + (uint64_t)handles * sizeof(struct ho_fh);
    uint32_t rec_cap = HO_MAX_CHANS * HO_REC_PER_CHAN;
    uint64_t size = rec_off + (uint64_t)rec_cap * sizeof(struct ho_rec);
    size = (size + 4095) & ~4095ull;

    struct ho_region *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->fd = memfd_create("valorfs-handoff", MFD_CLOEXEC);
    if (h->fd < 0 || ftruncate(h->fd, (off_t)size) < 0)
        goto fail;
    h->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, h->fd, 0);
    if (h->base == MAP_FAILED) {
        h->base = NULL;
        goto fail;
    }
    h->size = size;
    h->hdr = (struct ho_hdr *)h->base;
    struct ho_hdr *hd = h->hdr;
    memcpy(hd->magic, HO_MAGIC, 8);
    hd->version = HO_VERSION;
    hd->hdr_size = sizeof(*hd);
    hd->region_size = size;
    hd->nstripes = NSTRIPES;
    hd->stripe_cap = stripe_cap;
    hd->node_entry_size = sizeof(struct ho_node);
    hd->nodes_off = nodes_off;
    hd->stripe_bytes = stripe_bytes;
    hd->fh_cap = handles;
    hd->fh_entry_size = sizeof(struct ho_fh);
    hd->fh_free = NIL;
    hd->fh_off = fh_off;
    hd->rec_cap = rec_cap;
    hd->rec_entry_size = sizeof(struct ho_rec);
    hd->rec_off = rec_off;
    for (unsigned i = 0; i < NSTRIPES; i++) {
        struct ho_stripe_hdr *sh = stripe_hdr(h, i);
        sh->free_head = NIL;
        sh->nbuckets = stripe_cap;
        memset(stripe_buckets(sh), 0xff, (size_t)stripe_cap * 4);
        pthread_mutex_init(&h->stripe_lock[i], NULL);
    }
    pthread_mutex_init(&h->fh_lock, NULL);
    return h;
fail:;
    int e = errno;
    if (h->fd >= 0)
        close(h->fd);
    free(h);
    errno = e;
    return NULL;
}

void ho_free(struct ho_region *h)
{
    if (h == NULL)
        return;
    munmap(h->base, h->size);
    close(h->fd);
    for (unsigned i = 0; i < NSTRIPES; i++)
        pthread_mutex_destroy(&h->stripe_lock[i]);
    pthread_mutex_destroy(&h->fh_lock);
    free(h);
}

int ho_fd(const struct ho_region *h) { return h->fd; }
size_t ho_size(const struct ho_region *h) { return h->size; }

void ho_set_init(struct ho_region *h, const struct ho_init *init)
{
    h->hdr->proto_minor = init->proto_minor;
    h->hdr->transport = init->transport;
    h->hdr->flags = init->flags;
}

void ho_get_init(const struct ho_region *h, struct ho_init *init)
{
    *init = (struct ho_init){ h->hdr->proto_minor, h->hdr->transport, h->hdr->flags };
}

void ho_set_owner(struct ho_region *h, uint32_t pid, uint64_t generation)
{
    h->hdr->owner_pid = pid;
    h->hdr->generation = generation;
}

uint64_t ho_generation(const struct ho_region *h) { return h->hdr->generation; }

/* ---- nodes ---- */

/* Where a node id lives: its stripe (locked by stripe_lock_find until
 * stripe_unlock), the link pointing at it or where it would be linked. */
struct node_at {
    unsigned si;
    struct ho_stripe_hdr *sh;
    uint32_t *link;
};

static struct ho_node *stripe_lock_find(struct ho_region *h, uint64_t id, int writing,
                                        struct node_at *at)
{
    uint64_t hash = mix(id);
    at->si = (unsigned)(hash % NSTRIPES);
    at->sh = stripe_hdr(h, at->si);
    pthread_mutex_lock(&h->stripe_lock[at->si]);
    if (writing)
        __atomic_store_n(&h->hdr->sealed, 0, __ATOMIC_RELAXED);
    uint32_t *p = &stripe_buckets(at->sh)[(hash >> 8) % at->sh->nbuckets];
    struct ho_node *nodes = stripe_nodes(at->sh);
    while (*p != NIL && nodes[*p].id != id)
        p = &nodes[*p].next;
    at->link = p;
    return *p != NIL ? &nodes[*p] : NULL;
}

static void stripe_unlock(struct ho_region *h, const struct node_at *at)
{
    pthread_mutex_unlock(&h->stripe_lock[at->si]);
}

/* rec != NULL: journal the increment in the record (handoff.h), all under
 * the stripe lock so nothing else moves the node's count meanwhile. */
static uint64_t node_add(struct ho_region *h, uint64_t id, uint64_t count, const void *key,
                         size_t keylen, struct ho_rec *rec)
{
    struct node_at at;
    struct ho_node *n = stripe_lock_find(h, id, 1, &at);
    struct ho_stripe_hdr *sh = at.sh;
    uint64_t res = 0;
    if (rec) {
        __atomic_store_n(&rec->pending_idx, HO_NO_PENDING, __ATOMIC_RELEASE);
        rec->pending_node = id;
        rec->pending_before = n ? n->nlookup : 0;
        __atomic_store_n(&rec->pending_idx, rec->progress, __ATOMIC_RELEASE);
    }
    if (n) {
        n->nlookup += count;
        res = n->nlookup;
    } else {
        uint32_t idx;
        struct ho_node *nodes = stripe_nodes(sh);
        if (sh->free_head != NIL) {
            idx = sh->free_head;
            sh->free_head = nodes[idx].next;
        } else if (sh->hwm < h->hdr->stripe_cap) {
            idx = sh->hwm++;
        } else {
            if (rec)
                __atomic_store_n(&rec->progress, rec->progress + 1, __ATOMIC_RELEASE);
            stripe_unlock(h, &at);
            return 0;
        }
        n = &nodes[idx];
        n->nlookup = count;
        n->keylen = (uint16_t)MIN(keylen, (size_t)HO_NODE_KEY_MAX);
        if (n->keylen)
            memcpy(n->key, key, n->keylen);
        n->next = NIL;
        n->id = id; /* last: an entry with an id is a node (import reads this) */
        *at.link = idx;
        sh->count++;
        res = count;
    }
    if (rec) /* the entry is counted for sure from here on */
        __atomic_store_n(&rec->progress, rec->progress + 1, __ATOMIC_RELEASE);
    stripe_unlock(h, &at);
    return res;
}

uint64_t ho_node_ref(struct ho_region *h, uint64_t id, const void *key, size_t keylen)
{
    return node_add(h, id, 1, key, keylen, NULL);
}

uint64_t ho_node_ref_rec(struct ho_region *h, struct ho_rec *rec, uint64_t id, const void *key,
                         size_t keylen)
{
    return node_add(h, id, 1, key, keylen, rec);
}

void ho_rec_reset(struct ho_rec *r)
{
    __atomic_store_n(&r->pending_idx, HO_NO_PENDING, __ATOMIC_RELEASE);
    r->progress = 0;
    r->pending_node = 0;
    r->pending_before = 0;
}

uint64_t ho_node_ref_n(struct ho_region *h, uint64_t id, uint64_t n, const void *key,
                       size_t keylen)
{
    return n ? node_add(h, id, n, key, keylen, NULL) : 0;
}

int ho_node_known(struct ho_region *h, uint64_t id) { return ho_node_lookups(h, id) > 0; }

uint64_t ho_node_lookups(struct ho_region *h, uint64_t id)
{
    struct node_at at;
    struct ho_node *n = stripe_lock_find(h, id, 0, &at);
    uint64_t v = n ? n->nlookup : 0;
    stripe_unlock(h, &at);
    return v;
}

void ho_node_set_key(struct ho_region *h, uint64_t id, const void *key, size_t keylen)
{
    struct node_at at;
    struct ho_node *n = stripe_lock_find(h, id, 1, &at);
    if (n) {
        n->keylen = (uint16_t)MIN(keylen, (size_t)HO_NODE_KEY_MAX);
        memcpy(n->key, key, n->keylen);
    }
    stripe_unlock(h, &at);
}

uint64_t ho_node_forget(struct ho_region *h, uint64_t id, uint64_t count)
{
    struct node_at at;
    struct ho_node *n = stripe_lock_find(h, id, 1, &at);
    struct ho_stripe_hdr *sh = at.sh;
    uint64_t left = 0;
    if (n) {
        n->nlookup = count >= n->nlookup ? 0 : n->nlookup - count;
        left = n->nlookup;
        if (left == 0) {
            uint32_t idx = *at.link;
            *at.link = n->next;
            n->id = 0;
            n->next = sh->free_head;
            sh->free_head = idx;
            sh->count--;
        }
    }
    stripe_unlock(h, &at);
    return left;
}

uint64_t ho_node_count(struct ho_region *h)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < NSTRIPES; i++) {
        pthread_mutex_lock(&h->stripe_lock[i]);
        total += stripe_hdr(h, i)->count;
        pthread_mutex_unlock(&h->stripe_lock[i]);
    }
    return total;
}

void ho_node_foreach(struct ho_region *h, ho_node_fn fn, void *arg)
{
    for (unsigned i = 0; i < NSTRIPES; i++) {
        struct ho_stripe_hdr *sh = stripe_hdr(h, i);
        struct ho_node *nodes = stripe_nodes(sh);
        for (uint32_t j = 0; j < sh->hwm; j++)
            if (nodes[j].id)
                fn(arg, nodes[j].id, nodes[j].nlookup, nodes[j].key, nodes[j].keylen);
    }
}

/* ---- handles ---- */

uint64_t ho_fh_reserve(struct ho_region *h)
{
    struct ho_hdr *hd = h->hdr;
    struct ho_fh *slots = fh_slots(h);
    pthread_mutex_lock(&h->fh_lock);
    __atomic_store_n(&hd->sealed, 0, __ATOMIC_RELAXED);
    uint32_t idx;
    if (hd->fh_free != NIL) {
        idx = hd->fh_free;
        hd->fh_free = slots[idx].next_free;
    } else if (hd->fh_hwm < hd->fh_cap) {
        /* read without the lock by fh_slot(): atomic */
        idx = hd->fh_hwm;
        __atomic_store_n(&hd->fh_hwm, idx + 1, __ATOMIC_RELEASE);
    } else {
        pthread_mutex_unlock(&h->fh_lock);
        return 0;
    }
    struct ho_fh *f = &slots[idx];
    f->kind = f->flags = f->next_free = 0;
    f->ino = f->backend_fh = 0;
    memset(f->blob, 0, sizeof(f->blob));
    /* the state is read without the lock (ho_fh_lookup): atomic */
    __atomic_store_n(&f->state, HO_FH_RESERVED, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&h->fh_lock);
    return (uint64_t)idx + 1;
}

static struct ho_fh *fh_slot(struct ho_region *h, uint64_t kfh)
{
    if (kfh == 0 || kfh > __atomic_load_n(&h->hdr->fh_hwm, __ATOMIC_ACQUIRE))
        return NULL;
    return &fh_slots(h)[kfh - 1];
}

void ho_fh_commit(struct ho_region *h, uint64_t kfh, enum ho_fh_kind kind, uint64_t ino,
                  uint32_t flags, uint64_t backend_fh)
{
    pthread_mutex_lock(&h->fh_lock);
    struct ho_fh *f = fh_slot(h, kfh);
    if (f && f->state == HO_FH_RESERVED) {
        f->kind = kind;
        f->ino = ino;
        f->flags = flags;
        f->backend_fh = backend_fh;
        __atomic_store_n(&f->state, HO_FH_LIVE, __ATOMIC_RELEASE);
        h->hdr->live_handles++;
    }
    pthread_mutex_unlock(&h->fh_lock);
}

void ho_fh_release(struct ho_region *h, uint64_t kfh)
{
    pthread_mutex_lock(&h->fh_lock);
    __atomic_store_n(&h->hdr->sealed, 0, __ATOMIC_RELAXED);
    struct ho_fh *f = fh_slot(h, kfh);
    if (f && f->state != HO_FH_FREE) {
        if (f->state == HO_FH_LIVE)
            h->hdr->live_handles--;
        __atomic_store_n(&f->state, HO_FH_FREE, __ATOMIC_RELEASE);
        f->next_free = h->hdr->fh_free;
        h->hdr->fh_free = (uint32_t)(kfh - 1);
    }
    pthread_mutex_unlock(&h->fh_lock);
}

int ho_fh_lookup(struct ho_region *h, uint64_t kfh, uint64_t *bfh)
{
    /* no lock: a live slot does not change while the kernel holds its fh */
    struct ho_fh *f = fh_slot(h, kfh);
    if (f == NULL || __atomic_load_n(&f->state, __ATOMIC_ACQUIRE) != HO_FH_LIVE)
        return -EBADF;
    *bfh = f->backend_fh;
    return 0;
}

void *ho_fh_blob(struct ho_region *h, uint64_t kfh)
{
    struct ho_fh *f = fh_slot(h, kfh);
    return f && __atomic_load_n(&f->state, __ATOMIC_ACQUIRE) != HO_FH_FREE ? f->blob : NULL;
}

uint64_t ho_fh_count(struct ho_region *h)
{
    pthread_mutex_lock(&h->fh_lock);
    uint64_t n = h->hdr->live_handles;
    pthread_mutex_unlock(&h->fh_lock);
    return n;
}

void ho_fh_foreach(struct ho_region *h, ho_fh_fn fn, void *arg)
{
    struct ho_fh *slots = fh_slots(h);
    for (uint32_t i = 0; i < h->hdr->fh_hwm; i++)
        if (slots[i].state == HO_FH_LIVE)
            fn(arg, (uint64_t)i + 1, (enum ho_fh_kind)slots[i].kind, slots[i].ino,
               slots[i].flags, slots[i].blob);
}

void ho_fh_set_backend(struct ho_region *h, uint64_t kfh, uint64_t backend_fh)
{
    struct ho_fh *f = fh_slot(h, kfh);
    if (f)
        f->backend_fh = backend_fh;
}

int ho_fh_adopt(struct ho_region *h, uint64_t kfh, enum ho_fh_kind kind, uint64_t ino,
                uint32_t flags, const void *blob)
{
    struct ho_hdr *hd = h->hdr;
    if (kfh == 0 || kfh > hd->fh_cap)
        return -ENOSPC;
    pthread_mutex_lock(&h->fh_lock);
    if (kfh > hd->fh_hwm) {
        /* slots skipped over are zeroed, i.e. free */
        __atomic_store_n(&hd->fh_hwm, (uint32_t)kfh, __ATOMIC_RELEASE);
    }
    struct ho_fh *f = &fh_slots(h)[kfh - 1];
    int rc = -EEXIST;
    if (f->state == HO_FH_FREE) {
        memset(f, 0, sizeof(*f));
        f->kind = kind;
        f->ino = ino;
        f->flags = flags;
        if (blob)
            memcpy(f->blob, blob, HO_FH_BLOB_MAX);
        __atomic_store_n(&f->state, HO_FH_LIVE, __ATOMIC_RELEASE);
        hd->live_handles++;
        rc = 0;
    }
    pthread_mutex_unlock(&h->fh_lock);
    return rc;
}

void ho_fh_rebuild_free(struct ho_region *h)
{
    struct ho_hdr *hd = h->hdr;
    struct ho_fh *slots = fh_slots(h);
    pthread_mutex_lock(&h->fh_lock);
    hd->fh_free = NIL;
    for (uint32_t i = hd->fh_hwm; i-- > 0;)
        if (slots[i].state != HO_FH_LIVE) {
            __atomic_store_n(&slots[i].state, HO_FH_FREE, __ATOMIC_RELEASE);
            slots[i].next_free = hd->fh_free;
            hd->fh_free = i;
        }
    pthread_mutex_unlock(&h->fh_lock);
}

/* ---- records ---- */

struct ho_rec *ho_rec(struct ho_region *h, unsigned chan, unsigned slot)
{
    if (chan >= HO_MAX_CHANS || slot >= HO_REC_PER_CHAN)
        return NULL;
    return (struct ho_rec *)(h->base + h->hdr->rec_off) + chan * HO_REC_PER_CHAN + slot;
}

/* ---- sealing ---- */

void ho_seal(struct ho_region *h)
{
    for (unsigned i = 0; i < NSTRIPES; i++)
        pthread_mutex_lock(&h->stripe_lock[i]);
    pthread_mutex_lock(&h->fh_lock);
    __atomic_store_n(&h->hdr->sealed, 1, __ATOMIC_RELAXED);
    h->hdr->crc = ho_image_crc(h->base, h->hdr);
    pthread_mutex_unlock(&h->fh_lock);
    for (unsigned i = 0; i < NSTRIPES; i++)
        pthread_mutex_unlock(&h->stripe_lock[i]);
}

void ho_unseal(struct ho_region *h) { __atomic_store_n(&h->hdr->sealed, 0, __ATOMIC_RELAXED); }

const void *ho_map_fd(int fd, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return NULL;
    if (st.st_size <= 0) {
        errno = EINVAL;
        return NULL;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return NULL;
    *len = (size_t)st.st_size;
    return p;
}
