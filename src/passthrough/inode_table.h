/* inode_table.h — node id ↔ local inode map of the passthrough backend.
 *
 * A node is created on the first lookup of a (st_dev, st_ino) pair and
 * holds an O_PATH fd and the kernel's lookup count; it is freed when the
 * count drops to zero (FORGET). Node id 1 is the root and never freed.
 * Thread-safe; the kernel never forgets a node while a request on it is
 * in flight, so a node pointer stays valid during an operation.
 */
#ifndef VALORFS_PASSTHROUGH_INODE_TABLE_H
#define VALORFS_PASSTHROUGH_INODE_TABLE_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

struct pt_node {
    uint64_t id;
    int fd; /* O_PATH | O_NOFOLLOW */
    dev_t dev;
    ino_t ino;
    mode_t type;
    uint64_t nlookup;
    struct pt_node *next_by_id, *next_by_key;
};

struct pt_table {
    pthread_mutex_t lock;
    struct pt_node **by_id, **by_key;
    size_t nbuckets, count;
    uint64_t next_id;
    struct pt_node root;
};

int pt_table_init(struct pt_table *t, int root_fd, dev_t dev, ino_t ino);
void pt_table_destroy(struct pt_table *t);
/* The node for id, or NULL if the kernel names a node we do not know. */
struct pt_node *pt_table_get(struct pt_table *t, uint64_t id);
/* Take ownership of fd for (dev, ino): returns the existing node (fd is
 * closed) or a new one; either way its lookup count grows by one. NULL
 * (fd closed) on allocation failure. */
struct pt_node *pt_table_ref(struct pt_table *t, int fd, dev_t dev, ino_t ino, mode_t type);
/* Restoring a predecessor's node (online upgrade): take fd as node id with
 * nlookup references; later ids are allocated above it. NULL (fd closed)
 * on allocation failure or when id is taken. */
struct pt_node *pt_table_adopt(struct pt_table *t, uint64_t id, int fd, dev_t dev, ino_t ino,
                               mode_t type, uint64_t nlookup);
/* Drop n lookups; frees the node at zero. */
void pt_table_forget(struct pt_table *t, uint64_t id, uint64_t n);

#endif
