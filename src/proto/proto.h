/* proto.h — what every valorfs service message shares.
 *
 * Each service's messages are C structs in <service>_proto.h with one codec
 * pair per struct, declared by PROTO_CODEC(name):
 *
 *   void name_enc(struct wbuf *wb, const struct name *m);
 *   int  name_dec(const void *buf, size_t len, struct name *m);
 *
 * _dec() is a decoder of untrusted bytes: bounds-checked (src/common/wire.h),
 * it validates lengths, counts and enums, must consume the input exactly, and
 * returns 0 or -EBADMSG, never crashing. Decoded fixed-size fields (names)
 * are NUL-terminated copies; bulk fields (data, values, targets) are
 * pointer+length views into buf, valid as long as buf is. Structs with
 * arrays that _dec() allocates have a name_free(). Every decoder has a
 * fuzz target (fuzz/proto_*.c).
 *
 * Method ids: mgmtd 0x01xx, meta 0x02xx, storage 0x03xx.
 *
 * Status codes in RPC responses: 0, a positive errno (EEXIST, ENOENT, ...),
 * or one of the VF_E_* below (>= 1000), or RPC_E_* (< 0, from src/rpc).
 */
#ifndef VALORFS_PROTO_PROTO_H
#define VALORFS_PROTO_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "common/wire.h"

#define PROTO_CODEC(name)                                       \
    void name##_enc(struct wbuf *wb, const struct name *m);     \
    int name##_dec(const void *buf, size_t len, struct name *m)

#define VF_MAX_NAME 255        /* a path component */
#define VF_MAX_SYMLINK 4095    /* a symlink target */
#define VF_MAX_ADDR 63         /* "host:port" */
#define VF_MAX_XATTR_NAME 255
#define VF_MAX_XATTR_VALUE 65536
#define VF_MAX_REPLICAS 8      /* targets in one chain */
#define VF_MAX_STRIPE 64       /* chains one file spreads over */
#define VF_MAX_GROUPS 32       /* supplementary groups carried per request */
#define VF_ROOT_INO 1ull       /* the root directory; equals FUSE_ROOT_ID */

enum vf_status {
    VF_E_STALE_CHAIN = 1001,   /* request's chain version is older than the server's */
    VF_E_NOT_PRIMARY = 1002,   /* mgmtd: not the primary; payload = primary's addr (may be empty) */
    VF_E_NOT_HEAD = 1003,      /* storage: a client write reached a target that is not the head */
    VF_E_NOT_SERVING = 1004,   /* storage: target offline/syncing/lease lost */
    VF_E_NO_LEASE = 1005,      /* mgmtd: node unknown or its lease expired; register again */
    VF_E_CHECKSUM = 1006,      /* storage: chunk data does not match its CRC32C */
    VF_E_NO_ROUTE = 1007,      /* no routing info / chain unknown */
    VF_E_NEWER_CHAIN = 1008,   /* request's chain version is newer: server must refresh; retry */
};
const char *vf_strstatus(int status); /* errno, VF_E_* or RPC_E_* as text */

/* Caller credentials carried by meta requests. */
struct vf_user {
    uint32_t uid, gid;
    uint32_t ngroups;
    uint32_t groups[VF_MAX_GROUPS];
};
void vf_user_enc(struct wbuf *wb, const struct vf_user *u);
void vf_user_dec(struct rbuf *rb, struct vf_user *u); /* sets rb->err on bad input */

#endif
