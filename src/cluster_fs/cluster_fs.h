/* cluster_fs.h — the FUSE backend that serves a valorfs cluster.
 *
 * Every vfs_ops operation is asynchronous: it sends meta/storage RPCs and
 * returns; the completion (on the RPC client's loop thread) builds the
 * reply. A FUSE node id is the inode id (the root is VF_ROOT_INO), so there
 * is no inode table and forget() has nothing to drop.
 *
 * Sizes. A file's size on meta lags behind this client's writes until the
 * handle is flushed/closed (META_SYNC/META_CLOSE carry the end written);
 * getattr and read report max(meta size, end written by this client's open
 * handles), so a process sees its own writes at once.
 */
#ifndef VALORFS_CLUSTER_FS_H
#define VALORFS_CLUSTER_FS_H

#include <stddef.h>
#include <stdint.h>

#include "fuse/vfs.h"

struct cfs_opts {
    const char *mgmtd_addrs;    /* "host:port[,host:port...]" */
    double entry_timeout;       /* seconds the kernel may cache names (default 1) */
    double attr_timeout;        /* seconds the kernel may cache attributes (default 1) */
    uint32_t meta_timeout_ms;   /* a meta call incl. retries (default 30000) */
    uint32_t io_timeout_ms;     /* a data operation incl. retries (default 30000) */
    uint32_t connect_timeout_ms;/* first contact with mgmtd (default 10000) */
    uint32_t chunk_size;        /* layout hint for new files; 0 = meta's default */
    uint32_t stripe;            /* chains per new file; 0 = meta's default */
    uint32_t readdir_batch;     /* entries per META_READDIR (default 128) */
    const char *meta_addrs;     /* fixed meta servers "host:port[,...]" instead of the
                                 * routing's (tests pin a mount to one server); NULL */
};

void cfs_opts_default(struct cfs_opts *o);
/* Connects to mgmtd and fetches the routing. NULL with a one-line reason. */
void *cfs_new(const struct cfs_opts *o, char *err, size_t errlen);
void cfs_free(void *fs);
extern const struct vfs_ops cfs_ops;

#endif
