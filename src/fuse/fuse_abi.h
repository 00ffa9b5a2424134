/* fuse_abi.h — the FUSE kernel ABI as valorfs speaks it (up to 7.45).
 *
 * The build machines ship <linux/fuse.h> from Linux 6.1 (protocol 7.38);
 * the kernels we run speak 7.45. Everything newer than 7.38 that valorfs
 * uses is defined here, once, from the kernel's published uapi header.
 * Nothing else in the tree may redefine FUSE ABI pieces.
 */
#ifndef VALORFS_FUSE_ABI_H
#define VALORFS_FUSE_ABI_H

#include <linux/fuse.h>
#include <stdint.h>
#include <sys/ioctl.h>

#define VFS_FUSE_MAJOR 7
#define VFS_FUSE_MINOR 45 /* highest minor valorfs understands */

/* --- INIT flags newer than 7.38 (bits >= 32 travel in flags2) --- */
#ifndef FUSE_DIRECT_IO_ALLOW_MMAP
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36) /* 7.39 */
#endif
#ifndef FUSE_PASSTHROUGH
#define FUSE_PASSTHROUGH (1ULL << 37) /* 7.40 */
#endif
#ifndef FUSE_NO_EXPORT_SUPPORT
#define FUSE_NO_EXPORT_SUPPORT (1ULL << 38) /* 7.40 */
#endif
#ifndef FUSE_HAS_RESEND
#define FUSE_HAS_RESEND (1ULL << 39) /* 7.40: NOTIFY_RESEND + UNIQUE_RESEND */
#endif
#ifndef FUSE_ALLOW_IDMAP
#define FUSE_ALLOW_IDMAP (1ULL << 40) /* 7.40 */
#endif
#ifndef FUSE_OVER_IO_URING
#define FUSE_OVER_IO_URING (1ULL << 41) /* 7.42 */
#endif
#ifndef FUSE_REQUEST_TIMEOUT
#define FUSE_REQUEST_TIMEOUT (1ULL << 42) /* 7.43 */
#endif

/* High bit of fuse_in_header.unique marks a request the kernel resent
 * after FUSE_NOTIFY_RESEND (7.40). */
#define FUSE_UNIQUE_RESEND (1ULL << 63)

/* FOPEN_PASSTHROUGH (7.40): open_out.backing_id names a backing file. */
#ifndef FOPEN_PASSTHROUGH
#define FOPEN_PASSTHROUGH (1 << 7)
#endif

/* --- opcodes newer than 7.38 --- */
enum {
    VFS_FUSE_STATX = 52,               /* 7.39 */
    VFS_FUSE_COPY_FILE_RANGE_64 = 53,  /* 7.45 */
};

/* --- notification codes newer than 7.38 --- */
enum {
    VFS_FUSE_NOTIFY_RESEND = 7,    /* 7.40 */
    VFS_FUSE_NOTIFY_INC_EPOCH = 8, /* 7.44 */
    VFS_FUSE_NOTIFY_PRUNE = 9,     /* 7.45 */
};

/* fuse_init_out as of 7.43+: flags2, max_stack_depth, request_timeout.
 * Same 64-byte size as the 7.38 struct. */
struct vfs_fuse_init_out {
    uint32_t major;
    uint32_t minor;
    uint32_t max_readahead;
    uint32_t flags;
    uint16_t max_background;
    uint16_t congestion_threshold;
    uint32_t max_write;
    uint32_t time_gran;
    uint16_t max_pages;
    uint16_t map_alignment;
    uint32_t flags2;
    uint32_t max_stack_depth;
    uint16_t request_timeout;
    uint16_t unused[11];
};
_Static_assert(sizeof(struct vfs_fuse_init_out) == 64, "init_out is 64 bytes");

/* fuse_open_out as of 7.40: padding became backing_id. */
struct vfs_fuse_open_out {
    uint64_t fh;
    uint32_t open_flags;
    int32_t backing_id;
};
_Static_assert(sizeof(struct vfs_fuse_open_out) == sizeof(struct fuse_open_out), "open_out");

/* Passthrough backing files (7.40). */
struct vfs_fuse_backing_map {
    int32_t fd;
    uint32_t flags;
    uint64_t padding;
};
#define VFS_FUSE_DEV_IOC_BACKING_OPEN _IOW(229, 1, struct vfs_fuse_backing_map)
#define VFS_FUSE_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)
#ifndef FUSE_DEV_IOC_CLONE
#define FUSE_DEV_IOC_CLONE _IOR(229, 0, uint32_t)
#endif

/* --- FUSE-over-io_uring (7.42) --- */
#define FUSE_URING_IN_OUT_HEADER_SZ 128
#define FUSE_URING_OP_IN_OUT_SZ 128

struct fuse_uring_ent_in_out {
    uint64_t flags;
    uint64_t commit_id;  /* kernel's id of the request in this entry */
    uint32_t payload_sz; /* valid payload bytes, either direction */
    uint32_t padding;
    uint64_t reserved;
};

/* iov[0] of a REGISTER: the per-entry header buffer. */
struct fuse_uring_req_header {
    char in_out[FUSE_URING_IN_OUT_HEADER_SZ]; /* fuse_in_header / fuse_out_header */
    char op_in[FUSE_URING_OP_IN_OUT_SZ];      /* in_args[0]: the fixed per-op struct */
    struct fuse_uring_ent_in_out ring_ent_in_out;
};

enum fuse_uring_cmd {
    FUSE_IO_URING_CMD_INVALID = 0,
    FUSE_IO_URING_CMD_REGISTER = 1,         /* register buffers, fetch a request */
    FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2, /* answer a request, fetch the next */
};

/* Lives in the 80-byte command area of a 128-byte SQE. */
struct fuse_uring_cmd_req {
    uint64_t flags;
    uint64_t commit_id;
    uint16_t qid;
    uint8_t padding[6];
};

#endif
