/* fuzz_handoff_image.h — a second, independent reader and writer of the
 * handoff region layout (src/fuse/handoff.c), for the fuzz target and its
 * seed generator.
 *
 * The writer builds compact images (a few stripes, a few handle slots, a
 * few request records) that fit libFuzzer's -max_len, which a real region
 * (~400 KiB of request records) never would. The reader walks an image
 * ho_import() accepted, so the harness can compare what the importer did
 * with what the bytes say. Both follow handoff.h's layout on purpose
 * without sharing code with it: a change of the format must be made here
 * too, and the fuzz target then tells whether the two still agree.
 */
#ifndef VALORFS_FUZZ_HANDOFF_IMAGE_H
#define VALORFS_FUZZ_HANDOFF_IMAGE_H

#include <isa-l/crc.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuse/handoff.h"
#include "fuse/handoff_layout.h"

/* the layout itself comes from the engine (fuse/handoff_layout.h) */
#define fi_hdr ho_hdr
#define fi_stripe ho_stripe_hdr
#define fi_node ho_node
#define fi_fh ho_fh
#define FI_FH_V1_SIZE HO_FH_V1_SIZE
#define FI_FH_FREE HO_FH_FREE
#define FI_FH_RESERVED HO_FH_RESERVED
#define FI_FH_LIVE HO_FH_LIVE

/* What a compact image holds. Nodes go to stripes round-robin (import
 * walks entries, not hash chains, so placement does not matter to it). */
struct fi_spec {
    uint32_t version; /* 1 or 2 */
    int sealed;
    uint32_t nstripes, stripe_cap, fh_cap, rec_cap;
    uint64_t generation;
    uint32_t owner_pid;
    struct ho_init init;
    const struct fi_node *nodes;
    size_t nnodes;
    const struct fi_fh *fhs; /* slots 0..nfhs-1 (fh_hwm = nfhs) */
    size_t nfhs;
    const struct ho_rec *recs; /* records 0..nrecs-1 (nrecs <= rec_cap) */
    size_t nrecs;
};

static inline uint32_t fi_fh_size(uint32_t version)
{
    return version == 1 ? FI_FH_V1_SIZE : (uint32_t)sizeof(struct fi_fh);
}

/* The CRC32C a sealed image carries: header with crc 0, then of every
 * stripe its header, buckets and used entries, the used handle slots and
 * all records. The image must be structurally valid. */

/* Writes the image of spec into buf; returns its size, or 0 if it does not
 * fit in cap or the spec is inconsistent. */
/* Versions 1-2 records are the first 24 bytes of today's struct ho_rec. */
static inline uint32_t fi_rec_size(uint32_t version)
{
    return version <= 2 ? 24u : (uint32_t)sizeof(struct ho_rec);
}

static inline size_t fi_build(void *buf, size_t cap, const struct fi_spec *sp)
{
    uint32_t fh_size = fi_fh_size(sp->version);
    if (sp->nstripes == 0 || sp->nfhs > sp->fh_cap || sp->nrecs > sp->rec_cap ||
        sp->nnodes > (uint64_t)sp->nstripes * sp->stripe_cap)
        return 0;
    uint64_t stripe_bytes = sizeof(struct fi_stripe) + (uint64_t)sp->stripe_cap * 4 +
                            (uint64_t)sp->stripe_cap * sizeof(struct fi_node);
    uint64_t nodes_off = sizeof(struct fi_hdr);
    uint64_t fh_off = nodes_off + stripe_bytes * sp->nstripes;
    uint64_t rec_off = fh_off + (uint64_t)sp->fh_cap * fh_size;
    uint32_t rec_size = fi_rec_size(sp->version);
    uint64_t size = rec_off + (uint64_t)sp->rec_cap * rec_size;
    if (size > cap)
        return 0;
    uint8_t *b = buf;
    memset(b, 0, size);
    struct fi_hdr hd = {
        .version = sp->version, .hdr_size = sizeof(hd), .region_size = size,
        .generation = sp->generation, .owner_pid = sp->owner_pid,
        .proto_minor = sp->init.proto_minor, .flags = sp->init.flags,
        .transport = sp->init.transport, .nstripes = sp->nstripes,
        .stripe_cap = sp->stripe_cap, .node_entry_size = sizeof(struct fi_node),
        .nodes_off = nodes_off, .stripe_bytes = stripe_bytes, .fh_cap = sp->fh_cap,
        .fh_hwm = (uint32_t)sp->nfhs, .fh_entry_size = fh_size, .fh_free = UINT32_MAX,
        .fh_off = fh_off, .rec_cap = sp->rec_cap, .rec_entry_size = rec_size,
        .rec_off = rec_off,
    };
    memcpy(hd.magic, "VLFSHAND", 8);
    for (uint32_t s = 0; s < sp->nstripes; s++) {
        uint8_t *st = b + nodes_off + (uint64_t)s * stripe_bytes;
        struct fi_stripe sh = { .free_head = UINT32_MAX, .nbuckets = sp->stripe_cap };
        uint8_t *entries = st + sizeof(sh) + (uint64_t)sp->stripe_cap * 4;
        memset(st + sizeof(sh), 0xff, (size_t)sp->stripe_cap * 4);
        for (size_t i = s; i < sp->nnodes; i += sp->nstripes) {
            struct fi_node n = sp->nodes[i];
            n.next = UINT32_MAX;
            memcpy(entries + (uint64_t)sh.hwm * sizeof(n), &n, sizeof(n));
            sh.hwm++;
            sh.count++;
        }
        memcpy(st, &sh, sizeof(sh));
    }
    for (size_t i = 0; i < sp->nfhs; i++) {
        memcpy(b + fh_off + i * fh_size, &sp->fhs[i], fh_size);
        hd.live_handles += sp->fhs[i].state == FI_FH_LIVE;
    }
    for (size_t i = 0; i < sp->nrecs; i++)
        memcpy(b + rec_off + i * rec_size, &sp->recs[i], rec_size);
    hd.sealed = sp->sealed ? 1 : 0;
    memcpy(b, &hd, sizeof(hd));
    if (sp->sealed) {
        hd.crc = ho_image_crc(b, &hd);
        memcpy(b, &hd, sizeof(hd));
    }
    return (size_t)size;
}

#endif
