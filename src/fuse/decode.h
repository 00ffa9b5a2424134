/* decode.h — bounds-checked decoding of FUSE requests.
 *
 * The kernel is trusted more than a network peer, but a daemon must never
 * crash on a frame it does not expect: every length is checked against the
 * bytes actually received, every name must be NUL-terminated inside the
 * frame, and variable payloads must match the sizes their headers claim.
 *
 * Two wire shapes reach us:
 *  - /dev/fuse: one contiguous frame  [fuse_in_header][op struct][names|data]
 *  - io_uring:  header area (in_out), op area (op_in, 128 bytes) and a
 *               payload buffer holding the rest.
 * Both decode into the same struct fuse_msg, so the engine never cares.
 */
#ifndef VALORFS_FUSE_DECODE_H
#define VALORFS_FUSE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "fuse/fuse_abi.h"

struct fuse_msg {
    uint32_t opcode;
    uint64_t unique; /* with FUSE_UNIQUE_RESEND masked off */
    int resent;      /* FUSE_UNIQUE_RESEND was set */
    uint64_t nodeid;
    uint32_t uid, gid, pid;

    const void *op;    /* fixed per-opcode struct, or NULL if it has none */
    uint32_t op_len;   /* bytes available at op (>= the struct's size) */
    const char *name;  /* first NUL-terminated name, or NULL */
    const char *name2; /* second name (rename target, symlink target) */
    const void *data;  /* write data, xattr value, forget array, ... */
    uint32_t data_len;
};

/* Decode result codes (negative errno values). */
#define FUSE_DECODE_OK 0
/* -EINVAL: malformed frame (reply EINVAL when the unique is known).
 * -ENOSYS: well-formed header, opcode we do not know. */

/* Size of the fixed op struct for an opcode; -1 if the opcode is unknown. */
int fuse_op_struct_size(uint32_t opcode);

/* Human name of an opcode ("LOOKUP"), "UNKNOWN" otherwise. */
const char *fuse_opcode_name(uint32_t opcode);

/* Decode one /dev/fuse frame of len bytes. On error, *m still carries
 * opcode and unique when at least a header was present (unique == 0 else). */
int fuse_decode_dev(const void *buf, size_t len, struct fuse_msg *m);

/* Decode one io_uring entry: the 128-byte in_out header area, the 128-byte
 * op area, and payload_len valid bytes of payload. */
int fuse_decode_ring(const void *in_out, const void *op_in, const void *payload,
                     size_t payload_len, struct fuse_msg *m);

#endif
