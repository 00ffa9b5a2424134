/* restore.c — the passthrough backend across daemon upgrades and crashes.
 *
 * A node's key is its O_PATH descriptor number in the daemon that made it
 * plus its file handle (name_to_handle_at). A successor in a graceful
 * upgrade copies the descriptor out of the still-running predecessor
 * (pidfd_getfd), which works for every file, unlinked ones included; after
 * a crash it reopens the file handle (open_by_handle_at, needs
 * CAP_DAC_READ_SEARCH), which works for every file still linked. Open
 * files and directories are taken over the same way: the descriptor
 * (same open file description, same offset) or a fresh open.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "passthrough/pt_internal.h"

struct pt_key {
    int32_t fd;           /* O_PATH descriptor in the daemon that made the node */
    int32_t handle_type;
    uint32_t handle_bytes; /* 0: no file handle (crash restore impossible) */
    uint8_t handle[VFS_NODE_KEY_MAX - 12];
};
_Static_assert(sizeof(struct pt_key) == VFS_NODE_KEY_MAX, "node key size");

size_t pt_node_key(void *fsp, uint64_t ino, void *key, size_t cap)
{
    struct pt_fs *fs = fsp;
    struct pt_node *n = pt_table_get(&fs->nodes, ino);
    if (n == NULL || ino == 1 || cap < sizeof(struct pt_key))
        return 0;
    struct pt_key k = { .fd = n->fd };
    union {
        struct file_handle fh;
        char buf[sizeof(struct file_handle) + 128];
    } u;
    u.fh.handle_bytes = 128;
    int mount_id;
    if (name_to_handle_at(n->fd, "", &u.fh, &mount_id, AT_EMPTY_PATH) == 0 &&
        u.fh.handle_bytes <= sizeof(k.handle)) {
        k.handle_type = u.fh.handle_type;
        k.handle_bytes = u.fh.handle_bytes;
        memcpy(k.handle, u.fh.f_handle, u.fh.handle_bytes);
    }
    memcpy(key, &k, sizeof(k));
    return sizeof(k);
}

/* The file handle of fd equals the one in k (so a descriptor copied from
 * the predecessor is the node's, not a number reused for another file). */
static int same_handle(int fd, const struct pt_key *k)
{
    union {
        struct file_handle fh;
        char buf[sizeof(struct file_handle) + 128];
    } u;
    u.fh.handle_bytes = 128;
    int mount_id;
    if (name_to_handle_at(fd, "", &u.fh, &mount_id, AT_EMPTY_PATH) < 0)
        return k->handle_bytes == 0;
    return u.fh.handle_type == k->handle_type && u.fh.handle_bytes == k->handle_bytes &&
           memcmp(u.fh.f_handle, k->handle, k->handle_bytes) == 0;
}

/* An O_PATH descriptor for the node described by key. */
static int node_fd(struct pt_fs *fs, const struct pt_key *k, const struct vfs_restore *rc)
{
    int fd = vfs_restore_getfd(rc, k->fd);
    if (fd >= 0) {
        if (same_handle(fd, k))
            return fd;
        close(fd);
    }
    if (k->handle_bytes == 0 || k->handle_bytes > sizeof(k->handle))
        return -ESTALE;
    union {
        struct file_handle fh;
        char buf[sizeof(struct file_handle) + sizeof(k->handle)];
    } u;
    u.fh.handle_bytes = k->handle_bytes;
    u.fh.handle_type = k->handle_type;
    memcpy(u.fh.f_handle, k->handle, k->handle_bytes);
    if (fs->handle_mount_fd < 0)
        fs->handle_mount_fd = openat(fs->nodes.root.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    fd = open_by_handle_at(fs->handle_mount_fd, &u.fh, O_PATH | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int pt_restore_node(void *fsp, uint64_t ino, uint64_t nlookup, const void *key, size_t keylen,
                    const struct vfs_restore *rc)
{
    struct pt_fs *fs = fsp;
    if (ino == 1) {
        fs->nodes.root.nlookup += nlookup;
        return 0;
    }
    struct pt_key k;
    if (keylen != sizeof(k))
        return -EINVAL;
    memcpy(&k, key, sizeof(k));
    int fd = node_fd(fs, &k, rc);
    if (fd < 0) {
        LOG_DEBUG("pt", "node %llu cannot be restored: %s", (unsigned long long)ino, strerror(-fd));
        return fd;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (fcntl(fd, F_GETFL) >= 0 && !(fcntl(fd, F_GETFL) & O_PATH)) {
        close(fd);
        return -EINVAL; /* not what a node holds */
    }
    return pt_table_adopt(&fs->nodes, ino, fd, st.st_dev, st.st_ino, st.st_mode & S_IFMT,
                          nlookup)
               ? 0
               : -ENOMEM;
}

/* What an open handle's blob holds: its descriptor and the inode behind it. */
struct pt_handle_blob {
    int32_t fd;
    uint32_t pad;
    uint64_t dev, ino;
};
_Static_assert(sizeof(struct pt_handle_blob) <= VFS_FH_BLOB_MAX, "handle blob size");

void pt_remember_fd(struct vfs_req *r, int fd)
{
    void *blob = vfs_req_fh_blob(r);
    struct stat st;
    if (blob == NULL || fstat(fd, &st) < 0)
        return;
    struct pt_handle_blob b = { .fd = fd, .dev = st.st_dev, .ino = st.st_ino };
    memcpy(blob, &b, sizeof(b));
}

int pt_restore_handle(void *fsp, uint64_t ino, int is_dir, int flags, void *blob,
                      const struct vfs_restore *rc, uint64_t *fh)
{
    struct pt_fs *fs = fsp;
    struct pt_handle_blob b;
    memcpy(&b, blob, sizeof(b));
    int fd = vfs_restore_getfd(rc, b.fd);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_dev != b.dev || st.st_ino != b.ino)) {
        close(fd); /* the number was reused for another file */
        fd = -1;
    }
    if (fd < 0) {
        /* after a crash: open the node again as the kernel opened it */
        struct pt_node *n = pt_table_get(&fs->nodes, ino);
        if (n == NULL)
            return -ESTALE;
        if (is_dir) {
            fd = openat(n->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        } else {
            char path[64];
            pt_proc_path(n->fd, path, sizeof(path));
            fd = open(path, pt_backing_flags(fs, flags & ~O_TRUNC));
        }
        if (fd < 0)
            return -errno;
    }
    if (fstat(fd, &st) == 0) {
        b = (struct pt_handle_blob){ .fd = fd, .dev = st.st_dev, .ino = st.st_ino };
        memcpy(blob, &b, sizeof(b));
    }
    if (is_dir) {
        struct pt_dir *d = pt_dir_from_fd(fs, fd);
        if (d == NULL)
            return -ENOMEM;
        pt_dir_forget_position(d); /* the next READDIR seeks to its cookie */
        *fh = (uint64_t)(uintptr_t)d;
    } else {
        *fh = (uint64_t)fd;
    }
    return 0;
}
