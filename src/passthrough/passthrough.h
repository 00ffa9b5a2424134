/* passthrough.h — a valorfs backend that serves a local directory.
 *
 * Full POSIX semantics of the underlying file system (files, directories,
 * symlinks, hard links, rename flags, xattrs, truncate, fallocate,
 * SEEK_DATA/SEEK_HOLE, fsync, O_DIRECT, mmap). Node ids are assigned on
 * first lookup and live until the kernel forgets them; every node holds
 * an O_PATH fd, so renames in the tree never invalidate it.
 *
 * Ownership and permissions: the engine mounts with default_permissions,
 * so the kernel checks mode bits as the calling uid/gid (with its
 * supplementary groups); new files are created by the daemon and then
 * given to the caller's uid/gid (the parent's gid under a setgid dir).
 *
 * File data moves through the channel's io_uring (vfs_aio_*), so reads,
 * writes and fsyncs never block a channel thread.
 */
#ifndef VALORFS_PASSTHROUGH_H
#define VALORFS_PASSTHROUGH_H

#include "fuse/vfs.h"

struct pt_opts {
    double entry_timeout; /* seconds the kernel may cache names */
    double attr_timeout;  /* seconds the kernel may cache attributes */
    int keep_cache;       /* keep page cache across opens (FOPEN_KEEP_CACHE) */
    int direct_io;        /* bypass the kernel page cache for every file */
    int writeback;        /* the session negotiates writeback cache */
};

void pt_opts_default(struct pt_opts *o);
/* Opens root_dir; returns NULL with errno set on failure. */
void *pt_new(const char *root_dir, const struct pt_opts *o);
void pt_free(void *fs);
extern const struct vfs_ops pt_ops;

#endif
