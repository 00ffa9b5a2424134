/* mount.h — attach a /dev/fuse connection to a directory and detach it.
 * As root: mount(2) directly. Otherwise: fusermount3, which passes the
 * opened /dev/fuse fd back over a Unix socket (SCM_RIGHTS). */
#ifndef VALORFS_FUSE_MOUNT_H
#define VALORFS_FUSE_MOUNT_H

/* Returns the /dev/fuse fd (>= 0) or -errno. *used_fusermount is set when
 * the helper did the mount (it must also do the unmount). */
int fuse_mount_dir(const char *mountpoint, const char *fsname, const char *subtype,
                   const char *opts, int *used_fusermount);
/* The FUSE connection id (device minor) of the mount at mountpoint, read
 * from /proc/self/mountinfo so the file system itself is never touched
 * (a daemon that stat()s its own mount before INIT deadlocks). -1 if not
 * found. */
int fuse_mount_conn_id(const char *mountpoint);
/* Abort connection id through fusectl (mounting fusectl if needed), so
 * every reader and waiter on it returns. */
void fuse_abort_conn(int conn_id);
/* Set the mount's backing-device read-ahead (/sys/class/bdi/0:ID/
 * read_ahead_kb). 0 or -errno. */
int fuse_set_read_ahead(int conn_id, unsigned kb);
/* Lazily detaches the mount. */
int fuse_unmount_dir(const char *mountpoint, int used_fusermount);

#endif
