/* writers.c — which inodes this client has open, and how far it wrote.
 *
 * Meta learns a file's new end only at flush/fsync/close; until then
 * getattr and read must not hide this client's own writes. */
#include <stdlib.h>

#include "cluster_fs/cfs_internal.h"

struct cfs_writer {
    struct cfs_writer *next;
    uint64_t ino;
    uint32_t refs;      /* open handles; under writers_mu */
    _Atomic uint64_t end;       /* highest end written through this client */
    _Atomic uint64_t meta_size; /* size meta reported last */
};

static unsigned bucket(uint64_t ino) { return (unsigned)((ino * 0x9e3779b97f4a7c15ull) >> 56); }

struct cfs_writer *cfs_writer_get(struct cfs *fs, uint64_t ino, uint64_t meta_size)
{
    pthread_mutex_lock(&fs->writers_mu);
    struct cfs_writer **head = &fs->writers[bucket(ino)];
    struct cfs_writer *w = *head;
    while (w && w->ino != ino)
        w = w->next;
    if (w == NULL) {
        w = calloc(1, sizeof(*w));
        if (w) {
            w->ino = ino;
            w->next = *head;
            *head = w;
        }
    }
    if (w) {
        w->refs++;
        atomic_store(&w->meta_size, meta_size);
    }
    pthread_mutex_unlock(&fs->writers_mu);
    return w;
}

void cfs_writer_put(struct cfs *fs, struct cfs_writer *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&fs->writers_mu);
    if (--w->refs == 0) {
        struct cfs_writer **pp = &fs->writers[bucket(w->ino)];
        while (*pp != w)
            pp = &(*pp)->next;
        *pp = w->next;
        free(w);
    }
    pthread_mutex_unlock(&fs->writers_mu);
}

void cfs_writer_wrote(struct cfs_writer *w, uint64_t end)
{
    if (w == NULL)
        return;
    uint64_t cur = atomic_load(&w->end);
    while (end > cur && !atomic_compare_exchange_weak(&w->end, &cur, end))
        ;
}

uint64_t cfs_writer_end(struct cfs_writer *w) { return w ? atomic_load(&w->end) : 0; }

uint64_t cfs_writer_size(struct cfs_writer *w)
{
    if (w == NULL)
        return 0;
    uint64_t end = atomic_load(&w->end), ms = atomic_load(&w->meta_size);
    return end > ms ? end : ms;
}

uint64_t cfs_local_end(struct cfs *fs, uint64_t ino, uint64_t meta_size)
{
    uint64_t end = 0;
    pthread_mutex_lock(&fs->writers_mu);
    for (struct cfs_writer *w = fs->writers[bucket(ino)]; w; w = w->next)
        if (w->ino == ino) {
            end = atomic_load(&w->end);
            atomic_store(&w->meta_size, meta_size);
        }
    pthread_mutex_unlock(&fs->writers_mu);
    return end;
}

void cfs_local_truncate(struct cfs *fs, uint64_t ino, uint64_t size)
{
    pthread_mutex_lock(&fs->writers_mu);
    for (struct cfs_writer *w = fs->writers[bucket(ino)]; w; w = w->next)
        if (w->ino == ino) {
            if (atomic_load(&w->end) > size)
                atomic_store(&w->end, size);
            atomic_store(&w->meta_size, size);
        }
    pthread_mutex_unlock(&fs->writers_mu);
}
