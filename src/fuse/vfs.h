/* vfs.h — the contract between the valorfs FUSE engine and a backend.
 *
 * The engine owns /dev/fuse, the transports (classic, xfuse, uring) and the
 * protocol. A backend (local passthrough, the cluster client) implements
 * struct vfs_ops: inode-based operations named by 64-bit node ids, where
 * FUSE_ROOT_ID (1) is the root.
 *
 * Asynchronous model. Every operation receives a struct vfs_req *. The
 * backend must answer it exactly once with one vfs_reply_*() call — either
 * before the operation returns, or later, from any thread (for example when
 * a network reply arrives). Until it is answered the request, and every
 * pointer the operation received (names, write data), stays valid. A
 * channel keeps many requests in flight while a backend works.
 *
 * Per-channel asynchronous file I/O. vfs_aio_*() queue a read/write/fsync
 * on the io_uring of the channel that delivered the request; the callback
 * runs later on that channel's thread. Backends that do local file I/O use
 * it so that a channel thread never blocks on the disk.
 *
 * Errors are positive errno values in vfs_reply_err(); 0 means success
 * with no payload.
 */
#ifndef VALORFS_FUSE_VFS_H
#define VALORFS_FUSE_VFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "fuse/fuse_abi.h"

struct vfs_req;
struct vfs_session;
struct vfs_restore;

/* Who asked: the calling process's credentials, as the kernel saw them. */
struct vfs_ctx {
    uint32_t uid, gid, pid;
};

struct vfs_ops {
    /* Called once after INIT was negotiated, before any other operation. */
    int (*init)(void *fs, struct vfs_session *s);
    /* Called once when the session ends; no operation runs after it. */
    void (*destroy)(void *fs);

    /* Namespace. Each successful entry reply adds one lookup reference to
     * the returned node, which forget() later drops (no reply to forget). */
    void (*lookup)(struct vfs_req *r, uint64_t parent, const char *name);
    void (*forget)(void *fs, uint64_t ino, uint64_t nlookup);
    void (*getattr)(struct vfs_req *r, uint64_t ino, const uint64_t *fh);
    void (*setattr)(struct vfs_req *r, uint64_t ino, const struct fuse_setattr_in *in);
    void (*readlink)(struct vfs_req *r, uint64_t ino);
    void (*mknod)(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode,
                  dev_t rdev, mode_t umask);
    void (*mkdir)(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode,
                  mode_t umask);
    void (*unlink)(struct vfs_req *r, uint64_t parent, const char *name);
    void (*rmdir)(struct vfs_req *r, uint64_t parent, const char *name);
    void (*symlink)(struct vfs_req *r, const char *target, uint64_t parent, const char *name);
    /* flags: RENAME_NOREPLACE, RENAME_EXCHANGE (or 0). */
    void (*rename)(struct vfs_req *r, uint64_t parent, const char *name, uint64_t newparent,
                   const char *newname, unsigned flags);
    void (*link)(struct vfs_req *r, uint64_t ino, uint64_t newparent, const char *newname);
    void (*statfs)(struct vfs_req *r, uint64_t ino);
    void (*access)(struct vfs_req *r, uint64_t ino, int mask);

    /* Files. */
    void (*create)(struct vfs_req *r, uint64_t parent, const char *name, mode_t mode,
                   int flags, mode_t umask);
    void (*open)(struct vfs_req *r, uint64_t ino, int flags);
    void (*read)(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, uint32_t size);
    void (*write)(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off,
                  const void *data, uint32_t size, uint32_t write_flags);
    void (*flush)(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t lock_owner);
    void (*release)(struct vfs_req *r, uint64_t ino, uint64_t fh, int flags);
    void (*fsync)(struct vfs_req *r, uint64_t ino, uint64_t fh, int datasync);
    void (*fallocate)(struct vfs_req *r, uint64_t ino, uint64_t fh, int mode, uint64_t off,
                      uint64_t len);
    void (*lseek)(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off, int whence);
    void (*copy_file_range)(struct vfs_req *r, uint64_t ino_in, uint64_t fh_in,
                            uint64_t off_in, uint64_t ino_out, uint64_t fh_out,
                            uint64_t off_out, uint64_t len, uint64_t flags);

    /* Directories. readdir answers with vfs_dirent_add()/vfs_direntplus_add()
     * records built in the buffer from vfs_req_payload(); off is the cookie
     * of the last entry the kernel saw (0 = start). */
    void (*opendir)(struct vfs_req *r, uint64_t ino, int flags);
    void (*readdir)(struct vfs_req *r, uint64_t ino, uint64_t fh, uint64_t off,
                    uint32_t size, int plus);
    void (*releasedir)(struct vfs_req *r, uint64_t ino, uint64_t fh);
    void (*fsyncdir)(struct vfs_req *r, uint64_t ino, uint64_t fh, int datasync);

    /* Extended attributes. size == 0 asks for the value's size only. */
    void (*setxattr)(struct vfs_req *r, uint64_t ino, const char *name, const void *value,
                     uint32_t size, int flags);
    void (*getxattr)(struct vfs_req *r, uint64_t ino, const char *name, uint32_t size);
    void (*listxattr)(struct vfs_req *r, uint64_t ino, uint32_t size);
    void (*removexattr)(struct vfs_req *r, uint64_t ino, const char *name);

    void (*syncfs)(struct vfs_req *r);

    /* Online upgrade and crash restart (fuse/handoff.h). Optional; without
     * them node ids and handles do not survive a daemon change.
     * node_key: up to cap bytes that let a successor find node ino again
     * (passthrough: a file handle); called when the kernel first gets a
     * reference to ino, from the thread answering that request. Returns
     * the length (0: the id alone is enough). */
    size_t (*node_key)(void *fs, uint64_t ino, void *key, size_t cap);
    /* A successor learns a node the kernel holds (before serving). */
    int (*restore_node)(void *fs, uint64_t ino, uint64_t nlookup, const void *key,
                        size_t keylen, const struct vfs_restore *rc);
    /* ... and an open handle: sets *fh to its new backend fh. blob is what
     * the predecessor kept in vfs_req_fh_blob(), now this daemon's copy:
     * update it for the next successor. After a restore the engine asks
     * node_key() again, so keys describe this daemon too. */
    int (*restore_handle)(void *fs, uint64_t ino, int is_dir, int flags, void *blob,
                          const struct vfs_restore *rc, uint64_t *fh);
};

/* What a successor knows about its predecessor while restoring. */
struct vfs_restore {
    int old_pidfd; /* graceful upgrade: the predecessor, still alive; -1 after a crash */
};
/* A duplicate of the predecessor's descriptor old_fd (pidfd_getfd), or -errno. */
int vfs_restore_getfd(const struct vfs_restore *rc, int old_fd);
/* HO_FH_BLOB_MAX (32) bytes that travel with the handle the request names
 * (or, in open/create/opendir, the handle being opened) to a successor
 * daemon; NULL when there is none. */
void *vfs_req_fh_blob(struct vfs_req *r);
#define VFS_FH_BLOB_MAX 32
#define VFS_NODE_KEY_MAX 48

/* ---- request accessors ---- */
const struct vfs_ctx *vfs_req_ctx(const struct vfs_req *r);
void *vfs_req_fs(const struct vfs_req *r);            /* the backend's fs pointer */
struct vfs_session *vfs_req_session(const struct vfs_req *r);
int vfs_req_interrupted(const struct vfs_req *r);     /* kernel sent INTERRUPT */
uint32_t vfs_req_opcode(const struct vfs_req *r);
/* A buffer of at least *cap bytes where the backend may build the reply
 * payload in place (read data, directory records): zero copy on every
 * transport. Valid until the request is answered. */
void *vfs_req_payload(struct vfs_req *r, size_t *cap);

/* ---- replies: exactly one per request ---- */
void vfs_reply_err(struct vfs_req *r, int err);
void vfs_reply_entry(struct vfs_req *r, const struct fuse_entry_out *e);
void vfs_reply_create(struct vfs_req *r, const struct fuse_entry_out *e,
                      const struct vfs_fuse_open_out *o);
void vfs_reply_attr(struct vfs_req *r, const struct fuse_attr_out *a);
void vfs_reply_open(struct vfs_req *r, const struct vfs_fuse_open_out *o);
void vfs_reply_write(struct vfs_req *r, uint32_t count);
void vfs_reply_statfs(struct vfs_req *r, const struct fuse_kstatfs *st);
void vfs_reply_xattr_size(struct vfs_req *r, uint32_t size);
void vfs_reply_lseek(struct vfs_req *r, uint64_t offset);
/* Reply with len payload bytes. buf may be (a part of) vfs_req_payload(),
 * in which case nothing is copied. */
void vfs_reply_buf(struct vfs_req *r, const void *buf, size_t len);

/* ---- helpers for backends ---- */
void vfs_stat_to_attr(const struct stat *st, struct fuse_attr *a);
/* Append one directory record at buf+used (capacity cap). Returns the new
 * used size, or 0 when the record does not fit (stop there). */
size_t vfs_dirent_add(void *buf, size_t cap, size_t used, const char *name, uint64_t ino,
                      uint32_t type, uint64_t next_off);
size_t vfs_direntplus_add(void *buf, size_t cap, size_t used, const char *name,
                          const struct fuse_entry_out *e, uint64_t next_off);
/* Size a record would take (to check room before side effects). */
size_t vfs_direntplus_size(size_t namelen);

/* ---- per-channel asynchronous I/O ---- */
typedef void (*vfs_aio_cb)(struct vfs_req *r, int res, void *arg);
/* Queue I/O on the channel of r; cb(r, res, arg) runs on that channel's
 * thread with res as a syscall result (bytes or -errno). Returns 0, or a
 * negative errno when nothing was queued (do the I/O synchronously then).
 * At most one aio per request may be in flight. */
int vfs_aio_read(struct vfs_req *r, int fd, void *buf, uint32_t len, uint64_t off,
                 vfs_aio_cb cb, void *arg);
int vfs_aio_write(struct vfs_req *r, int fd, const void *buf, uint32_t len, uint64_t off,
                  vfs_aio_cb cb, void *arg);
int vfs_aio_fsync(struct vfs_req *r, int fd, int datasync, vfs_aio_cb cb, void *arg);

/* ---- notifications to the kernel (any thread) ---- */
int vfs_notify_inval_inode(struct vfs_session *s, uint64_t ino, int64_t off, int64_t len);
int vfs_notify_inval_entry(struct vfs_session *s, uint64_t parent, const char *name);

#endif
