/* handoff_layout.h — the bytes of a handoff region (handoff.h), shared by
 * the writer (handoff.c), the decoder (handoff_import.c) and the fuzzer's
 * image builder. Not for anyone else: use handoff.h.
 *
 *   header | node stripes | handle slots | request records
 *
 * Host byte order (a region never leaves the machine). Versions 1-3
 * share the header and node entries; version 1 handle slots had no blob
 * (HO_FH_V1_SIZE bytes); versions 1-2 request records had no counting
 * progress (HO_REC_V2_SIZE bytes).
 */
#ifndef VALORFS_FUSE_HANDOFF_LAYOUT_H
#define VALORFS_FUSE_HANDOFF_LAYOUT_H

#include <stdint.h>

#include "fuse/handoff.h"

#define HO_MAGIC "VLFSHAND"
#define HO_FH_V1_SIZE 32u
#define HO_REC_V2_SIZE 24u /* versions 1-2: unique, opcode, phase, nodeid */

struct ho_hdr {
    char magic[8];
    uint32_t version, hdr_size;
    uint64_t region_size;
    uint32_t sealed, crc;      /* crc: CRC32C of the bytes in use, valid when sealed */
    uint64_t generation;
    uint32_t owner_pid, proto_minor;
    uint64_t flags;
    uint32_t transport, nstripes;
    uint32_t stripe_cap, node_entry_size;
    uint64_t nodes_off, stripe_bytes;
    uint32_t fh_cap, fh_hwm, fh_entry_size, fh_free;
    uint64_t fh_off;
    uint32_t rec_cap, rec_entry_size;
    uint64_t rec_off;
    uint64_t live_handles;
};

/* A node stripe: this header, nbuckets bucket heads (u32), then entries. */
struct ho_stripe_hdr {
    uint32_t hwm, free_head, count, nbuckets;
};

struct ho_node {
    uint64_t id, nlookup; /* id 0: a free entry */
    uint32_t next;
    uint16_t keylen, pad;
    uint8_t key[HO_NODE_KEY_MAX];
};

enum { HO_FH_FREE = 0, HO_FH_RESERVED = 1, HO_FH_LIVE = 2 };

struct ho_fh {
    uint32_t state, kind, flags, next_free;
    uint64_t ino, backend_fh;
    uint8_t blob[HO_FH_BLOB_MAX]; /* version 2 */
};

/* CRC32C of the header (crc taken as 0) and the bytes in use: each
 * stripe's header, buckets and entries below its high-water mark, the
 * handle slots below fh_hwm, every request record. The caller has checked
 * every offset and count of hd against the image. */
uint32_t ho_image_crc(const uint8_t *base, const struct ho_hdr *hd);

#endif
