/* inode_table.c — see inode_table.h. Two chained hash tables under one
 * mutex; the critical sections are a few pointer moves. */
#include "passthrough/inode_table.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static size_t hash64(uint64_t x, size_t n)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)(x & (n - 1));
}

static size_t key_hash(dev_t dev, ino_t ino, size_t n)
{
    return hash64((uint64_t)ino * 31 + (uint64_t)dev, n);
}

int pt_table_init(struct pt_table *t, int root_fd, dev_t dev, ino_t ino)
{
    pthread_mutex_init(&t->lock, NULL);
    t->nbuckets = 1024;
    t->by_id = calloc(t->nbuckets, sizeof(*t->by_id));
    t->by_key = calloc(t->nbuckets, sizeof(*t->by_key));
    if (t->by_id == NULL || t->by_key == NULL)
        return -ENOMEM;
    t->next_id = 2;
    t->root = (struct pt_node){ .id = 1, .fd = root_fd, .dev = dev, .ino = ino,
                                .type = 0040000, .nlookup = 1 };
    return 0;
}

static void insert(struct pt_table *t, struct pt_node *n)
{
    size_t i = hash64(n->id, t->nbuckets), k = key_hash(n->dev, n->ino, t->nbuckets);
    n->next_by_id = t->by_id[i];
    t->by_id[i] = n;
    n->next_by_key = t->by_key[k];
    t->by_key[k] = n;
    t->count++;
}

static void grow(struct pt_table *t)
{
    size_t old = t->nbuckets, nb = old * 2;
    struct pt_node **id = calloc(nb, sizeof(*id)), **key = calloc(nb, sizeof(*key));
    if (id == NULL || key == NULL) {
        free(id);
        free(key);
        return; /* keep the old, longer chains */
    }
    struct pt_node **oid = t->by_id;
    free(t->by_key);
    t->by_id = id;
    t->by_key = key;
    t->nbuckets = nb;
    t->count = 0;
    for (size_t b = 0; b < old; b++) {
        struct pt_node *n = oid[b];
        while (n) {
            struct pt_node *next = n->next_by_id;
            insert(t, n);
            n = next;
        }
    }
    free(oid);
}

struct pt_node *pt_table_get(struct pt_table *t, uint64_t id)
{
    if (id == 1)
        return &t->root;
    pthread_mutex_lock(&t->lock);
    struct pt_node *n = t->by_id[hash64(id, t->nbuckets)];
    while (n && n->id != id)
        n = n->next_by_id;
    pthread_mutex_unlock(&t->lock);
    return n;
}

struct pt_node *pt_table_ref(struct pt_table *t, int fd, dev_t dev, ino_t ino, mode_t type)
{
    if (dev == t->root.dev && ino == t->root.ino) {
        close(fd);
        pthread_mutex_lock(&t->lock);
        t->root.nlookup++;
        pthread_mutex_unlock(&t->lock);
        return &t->root;
    }
    pthread_mutex_lock(&t->lock);
    struct pt_node *n = t->by_key[key_hash(dev, ino, t->nbuckets)];
    while (n && !(n->dev == dev && n->ino == ino))
        n = n->next_by_key;
    if (n) {
        n->nlookup++;
        pthread_mutex_unlock(&t->lock);
        close(fd);
        return n;
    }
    n = calloc(1, sizeof(*n));
    if (n == NULL) {
        pthread_mutex_unlock(&t->lock);
        close(fd);
        return NULL;
    }
    *n = (struct pt_node){ .id = t->next_id++, .fd = fd, .dev = dev, .ino = ino,
                           .type = type, .nlookup = 1 };
    if (t->count >= t->nbuckets)
        grow(t);
    insert(t, n);
    pthread_mutex_unlock(&t->lock);
    return n;
}

struct pt_node *pt_table_adopt(struct pt_table *t, uint64_t id, int fd, dev_t dev, ino_t ino,
                               mode_t type, uint64_t nlookup)
{
    if (id <= 1) {
        close(fd);
        return NULL;
    }
    pthread_mutex_lock(&t->lock);
    struct pt_node *n = t->by_id[hash64(id, t->nbuckets)];
    while (n && n->id != id)
        n = n->next_by_id;
    if (n == NULL)
        n = calloc(1, sizeof(*n));
    else
        n = NULL; /* taken */
    if (n == NULL) {
        pthread_mutex_unlock(&t->lock);
        close(fd);
        return NULL;
    }
    *n = (struct pt_node){ .id = id, .fd = fd, .dev = dev, .ino = ino, .type = type,
                           .nlookup = nlookup };
    if (id >= t->next_id)
        t->next_id = id + 1;
    if (t->count >= t->nbuckets)
        grow(t);
    insert(t, n);
    pthread_mutex_unlock(&t->lock);
    return n;
}

static void unlink_node(struct pt_table *t, struct pt_node *n)
{
    struct pt_node **p = &t->by_id[hash64(n->id, t->nbuckets)];
    while (*p && *p != n)
        p = &(*p)->next_by_id;
    if (*p)
        *p = n->next_by_id;
    p = &t->by_key[key_hash(n->dev, n->ino, t->nbuckets)];
    while (*p && *p != n)
        p = &(*p)->next_by_key;
    if (*p)
        *p = n->next_by_key;
    t->count--;
}

void pt_table_forget(struct pt_table *t, uint64_t id, uint64_t nl)
{
    pthread_mutex_lock(&t->lock);
    if (id == 1) {
        t->root.nlookup = t->root.nlookup > nl ? t->root.nlookup - nl : 1;
        pthread_mutex_unlock(&t->lock);
        return;
    }
    struct pt_node *n = t->by_id[hash64(id, t->nbuckets)];
    while (n && n->id != id)
        n = n->next_by_id;
    if (n == NULL) {
        pthread_mutex_unlock(&t->lock);
        return;
    }
    n->nlookup = n->nlookup > nl ? n->nlookup - nl : 0;
    if (n->nlookup == 0) {
        unlink_node(t, n);
        pthread_mutex_unlock(&t->lock);
        close(n->fd);
        free(n);
        return;
    }
    pthread_mutex_unlock(&t->lock);
}

void pt_table_destroy(struct pt_table *t)
{
    for (size_t b = 0; b < t->nbuckets && t->by_id; b++) {
        struct pt_node *n = t->by_id[b];
        while (n) {
            struct pt_node *next = n->next_by_id;
            close(n->fd);
            free(n);
            n = next;
        }
    }
    free(t->by_id);
    free(t->by_key);
    t->by_id = t->by_key = NULL;
    pthread_mutex_destroy(&t->lock);
}
