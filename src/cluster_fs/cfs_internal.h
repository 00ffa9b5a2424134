/* cfs_internal.h — shared state and helpers of the cluster backend. */
#ifndef VALORFS_CLUSTER_FS_INTERNAL_H
#define VALORFS_CLUSTER_FS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "client/meta_client.h"
#include "client/storage_client.h"
#include "cluster_fs/cluster_fs.h"
#include "proto/meta_proto.h"

struct cfs_writer; /* writers.c */

struct cfs {
    struct cfs_opts o;
    struct rpc_client *rpc;
    struct mgc *mgc;
    struct mc *mc;
    struct sc *sc;
    /* open handles per inode and the end this client wrote through them */
    pthread_mutex_t writers_mu;
    struct cfs_writer *writers[256];
    /* Directory listings the kernel may keep (FOPEN_CACHE_DIR): the mtime
     * each directory had at its last opendir; an unchanged mtime at the
     * next opendir lets the kernel reuse its cached listing. */
    pthread_mutex_t dircache_mu;
    struct { uint64_t ino; int64_t mtime_ns; } dircache[1024];
};

/* Record dir ino's mtime at opendir; true when it equals the last one
 * recorded (the kernel's cached listing is still current). */
bool cfs_dircache_check(struct cfs *fs, uint64_t ino, int64_t mtime_ns);

/* An open file. */
struct cfs_fh {
    uint64_t ino;
    struct meta_inode inode;    /* as of open (layout, size) */
    uint64_t session;
    int flags;
    atomic_bool dirty;          /* wrote since the last flush/sync told meta */
    atomic_bool wrote;          /* wrote at all */
    _Atomic uint64_t end;       /* highest end written through this handle */
    struct cfs_writer *w;
    void *blob;                 /* its record for a successor daemon (struct cfs_fh_blob) */
};

/* What a successor daemon needs to take an open handle over
 * (vfs_req_fh_blob): the meta session stays the same, so the length this
 * handle wrote is still reconciled when the file is closed. */
struct cfs_fh_blob {
    uint64_t session;
    uint64_t end;    /* files: highest end written */
    uint32_t flags;
    uint32_t wrote;
    uint64_t parent; /* directories: the parent, for ".." */
};
_Static_assert(sizeof(struct cfs_fh_blob) <= VFS_FH_BLOB_MAX, "handle blob size");

/* Online upgrade: handles taken over from a predecessor daemon. */
int cfs_restore_handle(void *fs, uint64_t ino, int is_dir, int flags, void *blob,
                       const struct vfs_restore *rc, uint64_t *fh);
int cfs_restore_file(struct cfs *fs, uint64_t ino, int flags, void *blob, uint64_t *fh);
int cfs_restore_dir(struct cfs *fs, uint64_t ino, void *blob, uint64_t *fh);

static inline struct cfs *req_fs(struct vfs_req *r) { return vfs_req_fs(r); }
static inline struct cfs_fh *fh_of(uint64_t fh) { return (struct cfs_fh *)(uintptr_t)fh; }

/* The caller's credentials (supplementary groups from /proc/<pid>/status). */
void cfs_user(struct vfs_req *r, struct vf_user *u);
/* A request for r with the caller's credentials, everything else zero. */
void cfs_req_init(struct vfs_req *r, struct meta_req *m);
/* Valid name for a new entry (1..255 bytes, no '/'). */
bool cfs_name_ok(const char *name);

/* Attributes from a meta inode, with the size raised to this client's
 * writes. */
void cfs_fill_attr(struct cfs *fs, const struct meta_inode *in, struct fuse_attr *a);
void cfs_fill_entry(struct cfs *fs, const struct meta_inode *in, struct fuse_entry_out *e);

/* Generic completions; arg is the struct vfs_req *. */
void cfs_cb_entry(void *arg, int status, const struct meta_resp *resp);
void cfs_cb_attr(void *arg, int status, const struct meta_resp *resp);
void cfs_cb_empty(void *arg, int status, const struct meta_resp *resp);

/* writers.c — per-inode bookkeeping of open handles. */
struct cfs_writer *cfs_writer_get(struct cfs *fs, uint64_t ino, uint64_t meta_size);
void cfs_writer_put(struct cfs *fs, struct cfs_writer *w);
void cfs_writer_wrote(struct cfs_writer *w, uint64_t end);
uint64_t cfs_writer_end(struct cfs_writer *w);
/* What reads through an open handle may return: max(end written, meta size
 * seen last). */
uint64_t cfs_writer_size(struct cfs_writer *w);
/* End written by open handles of ino (0 when none is open); records
 * meta_size as the size meta reports now. */
uint64_t cfs_local_end(struct cfs *fs, uint64_t ino, uint64_t meta_size);
/* A truncate set the file to size: forget writes past it. */
void cfs_local_truncate(struct cfs *fs, uint64_t ino, uint64_t size);

/* Operations, by file. */
void cfs_lookup(struct vfs_req *r, uint64_t parent, const char *name);
void cfs_forget(void *fs, uint64_t ino, uint64_t nlookup);
void cfs_getattr(struct vfs_req *r, uint64_t ino, const uint64_t *fh);
void cfs_setattr(struct vfs_req *r, uint64_t ino, const struct fuse_setattr_in *in);
void cfs_readlink(struct vfs_req *r, uint64_t ino);
void cfs_mknod(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
               mode_t umask);
void cfs_mkdir(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode, mode_t umask);
void cfs_unlink(struct vfs_req *r, uint64_t parent, const char *name);
void cfs_rmdir(struct vfs_req *r, uint64_t parent, const char *name);
void cfs_symlink(struct vfs_req *r, const char *target, uint64_t parent, const char *name);
void cfs_rename(struct vfs_req *r, uint64_t parent, const char *name, uint64_t newparent,
                const char *newname, unsigned flags);
void cfs_link(struct vfs_req *r, uint64_t ino, uint64_t newparent, const char *newname);
void cfs_statfs(struct vfs_req *r, uint64_t ino);
void cfs_access(struct vfs_req *r, uint64_t ino, int mask);

void cfs_create(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode, int flags,
                mode_t umask);
void cfs_open(struct vfs_req *r, uint64_t ino, int flags);
void cfs_read(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, uint32_t size);
void cfs_write(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, const void *data,
               uint32_t size, uint32_t write_flags);
void cfs_flush(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t lock_owner);
void cfs_release(struct vfs_req *r, uint64_t ino, uint64_t fh, int flags);
void cfs_fsync(struct vfs_req *r, uint64_t ino, uint64_t fh, int datasync);
void cfs_lseek(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, int whence);
void cfs_fallocate(struct vfs_req *r, uint64_t ino, uint64_t fh, int mode, uint64_t off,
                   uint64_t len);

void cfs_opendir(struct vfs_req *r, uint64_t ino, int flags);
void cfs_readdir(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, uint32_t size,
                 int plus);
void cfs_releasedir(struct vfs_req *r, uint64_t ino, uint64_t fh);
void cfs_fsyncdir(struct vfs_req *r, uint64_t ino, uint64_t fh, int datasync);

void cfs_setxattr(struct vfs_req *r, uint64_t ino, const char *name, const void *value,
                  uint32_t size, int flags);
void cfs_getxattr(struct vfs_req *r, uint64_t ino, const char *name, uint32_t size);
void cfs_listxattr(struct vfs_req *r, uint64_t ino, uint32_t size);
void cfs_removexattr(struct vfs_req *r, uint64_t ino, const char *name);

#endif
