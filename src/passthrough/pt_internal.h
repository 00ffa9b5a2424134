/* pt_internal.h — shared between the passthrough backend's files. */
#ifndef VALORFS_PASSTHROUGH_INTERNAL_H
#define VALORFS_PASSTHROUGH_INTERNAL_H

#include <stddef.h>

#include "fuse/vfs.h"
#include "passthrough/inode_table.h"
#include "passthrough/passthrough.h"

struct pt_fs {
    struct pt_opts o;
    struct pt_table nodes;
    /* The backing file system keeps data in memory (tmpfs, ramfs): its
     * I/O never blocks, so a plain syscall beats a trip through io-wq. */
    int mem_backed;
    /* Open directory handles: the kernel may never send RELEASEDIR for a
     * handle still open when the connection ends, so pt_free() frees
     * what is left. */
    pthread_mutex_t dirs_lock;
    struct pt_dir *dirs;
    /* open_by_handle_at needs a descriptor that is not O_PATH; opened on
     * the first crash restore (restore.c runs before serving, single-threaded) */
    int handle_mount_fd;
};

/* Free every directory handle still open (at the end of the session). */
void pt_dirs_free_all(struct pt_fs *fs);

void pt_proc_path(int fd, char *buf, size_t len);
int pt_valid_name(const char *name);
/* Resolve name under parent, take a lookup reference, fill the entry. */
int pt_do_lookup(struct pt_fs *fs, struct pt_node *parent, const char *name,
                 struct fuse_entry_out *e);

/* A directory handle reading fd (taken over; closed on failure), or NULL. */
struct pt_dir *pt_dir_from_fd(struct pt_fs *fs, int fd);
/* A handle taken over from another daemon: its descriptor's offset is not
 * the one the kernel's cookies refer to. */
void pt_dir_forget_position(struct pt_dir *d);
/* Online upgrade (restore.c). */
size_t pt_node_key(void *fs, uint64_t ino, void *key, size_t cap);
int pt_restore_node(void *fs, uint64_t ino, uint64_t nlookup, const void *key, size_t keylen,
                    const struct vfs_restore *rc);
int pt_restore_handle(void *fs, uint64_t ino, int is_dir, int flags, void *blob,
                      const struct vfs_restore *rc, uint64_t *fh);
int pt_backing_flags(const struct pt_fs *fs, int flags);
/* Keep fd in the handle's blob for a successor daemon. */
void pt_remember_fd(struct vfs_req *r, int fd);

void pt_opendir(struct vfs_req *r, uint64_t ino, int flags);
void pt_readdir(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, uint32_t size,
                int plus);
void pt_releasedir(struct vfs_req *r, uint64_t ino, uint64_t fh);
void pt_fsyncdir(struct vfs_req *r, uint64_t ino, uint64_t fh, int datasync);

#endif
