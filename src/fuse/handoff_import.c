/* handoff_import.c — decode a predecessor's region into a fresh one.
 *
 * The bytes come from another process (possibly one that crashed in the
 * middle of an update, possibly an older binary), so every offset, count
 * and size is checked against the image length before it is used, and
 * every entry is copied out before it is looked at. Fuzzed by
 * fuzz/fuzz_handoff.c.
 */
#include <errno.h>
#include <isa-l/crc.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "fuse/handoff.h"
#include "fuse/handoff_layout.h"

/* [off, off+n) inside len, without overflow */
static int in_bounds(uint64_t off, uint64_t n, size_t len)
{
    return off <= len && n <= len - off;
}

static int fail(const char **why, const char *msg, int err)
{
    *why = msg;
    return err;
}

uint32_t ho_image_crc(const uint8_t *b, const struct ho_hdr *hd)
{
    struct ho_hdr copy;
    memcpy(&copy, b, sizeof(copy)); /* as stored: crc zeroed below */
    copy.crc = 0;
    uint32_t crc = crc32_iscsi((unsigned char *)&copy, sizeof(copy), 0xffffffffu);
    for (uint32_t i = 0; i < hd->nstripes; i++) {
        const uint8_t *s = b + hd->nodes_off + (uint64_t)i * hd->stripe_bytes;
        struct ho_stripe_hdr sh;
        memcpy(&sh, s, sizeof(sh));
        if (sh.hwm > hd->stripe_cap || sh.nbuckets != hd->stripe_cap)
            return ~hd->crc; /* changed since it was checked: cannot match */
        uint64_t used = sizeof(sh) + (uint64_t)sh.nbuckets * 4 + (uint64_t)sh.hwm * hd->node_entry_size;
        crc = crc32_iscsi((unsigned char *)s, (int)used, crc);
    }
    crc = crc32_iscsi((unsigned char *)b + hd->fh_off, (int)((uint64_t)hd->fh_hwm * hd->fh_entry_size), crc);
    crc = crc32_iscsi((unsigned char *)b + hd->rec_off, (int)((uint64_t)hd->rec_cap * hd->rec_entry_size), crc);
    return ~crc;
}

/* Structure checks shared by every version. */
static int check_layout(const struct ho_hdr *hd, size_t len, const char **why)
{
    if (hd->hdr_size < sizeof(*hd) || hd->hdr_size > 4096)
        return fail(why, "bad header size", -EINVAL);
    if (hd->region_size != len)
        return fail(why, "region size does not match the image", -EINVAL);
    if (hd->node_entry_size != sizeof(struct ho_node))
        return fail(why, "bad node entry size", -EINVAL);
    uint32_t want_fh = hd->version == 1 ? HO_FH_V1_SIZE : (uint32_t)sizeof(struct ho_fh);
    if (hd->fh_entry_size != want_fh)
        return fail(why, "bad handle entry size", -EINVAL);
    uint32_t want_rec = hd->version <= 2 ? HO_REC_V2_SIZE : (uint32_t)sizeof(struct ho_rec);
    if (hd->rec_entry_size != want_rec)
        return fail(why, "bad request record size", -EINVAL);
    if (hd->nstripes == 0 || hd->nstripes > 4096 || hd->stripe_cap > (1u << 26))
        return fail(why, "bad node table geometry", -EINVAL);
    uint64_t min_stripe = sizeof(struct ho_stripe_hdr) + (uint64_t)hd->stripe_cap * 4 +
                          (uint64_t)hd->stripe_cap * sizeof(struct ho_node);
    if (hd->stripe_bytes < min_stripe || hd->stripe_bytes > (1ull << 40))
        return fail(why, "bad node stripe size", -EINVAL);
    if (!in_bounds(hd->nodes_off, hd->stripe_bytes * hd->nstripes, len))
        return fail(why, "node table outside the image", -EINVAL);
    if (hd->fh_hwm > hd->fh_cap ||
        !in_bounds(hd->fh_off, (uint64_t)hd->fh_cap * hd->fh_entry_size, len))
        return fail(why, "handle table outside the image", -EINVAL);
    if (hd->rec_cap > HO_MAX_CHANS * HO_REC_PER_CHAN ||
        !in_bounds(hd->rec_off, (uint64_t)hd->rec_cap * hd->rec_entry_size, len))
        return fail(why, "request records outside the image", -EINVAL);
    return 0;
}

static int import_nodes(struct ho_region *into, const uint8_t *b, const struct ho_hdr *hd,
                        struct ho_imported *out, const char **why)
{
    for (uint32_t i = 0; i < hd->nstripes; i++) {
        const uint8_t *s = b + hd->nodes_off + (uint64_t)i * hd->stripe_bytes;
        struct ho_stripe_hdr sh;
        memcpy(&sh, s, sizeof(sh));
        if (sh.hwm > hd->stripe_cap || sh.nbuckets != hd->stripe_cap)
            return fail(why, "bad node stripe header", -EINVAL);
        const uint8_t *nodes = s + sizeof(sh) + (uint64_t)sh.nbuckets * 4;
        for (uint32_t j = 0; j < sh.hwm; j++) {
            struct ho_node n;
            memcpy(&n, nodes + (uint64_t)j * sizeof(n), sizeof(n));
            if (n.id == 0)
                continue;
            if (n.keylen > HO_NODE_KEY_MAX)
                return fail(why, "node key too long", -EINVAL);
            if (n.nlookup == 0)
                continue;
            if (ho_node_known(into, n.id))
                return fail(why, "node imported twice", -EINVAL);
            if (ho_node_ref_n(into, n.id, n.nlookup, n.key, n.keylen) == 0)
                return fail(why, "node table of the new daemon is full", -ENOSPC);
            out->nodes++;
        }
    }
    return 0;
}

static int import_handles(struct ho_region *into, const uint8_t *b, const struct ho_hdr *hd,
                          struct ho_imported *out, const char **why)
{
    for (uint32_t i = 0; i < hd->fh_hwm; i++) {
        struct ho_fh f;
        memset(&f, 0, sizeof(f));
        memcpy(&f, b + hd->fh_off + (uint64_t)i * hd->fh_entry_size, hd->fh_entry_size);
        if (f.state > HO_FH_LIVE || f.kind > HO_FH_DIR)
            return fail(why, "bad handle slot", -EINVAL);
        if (f.state != HO_FH_LIVE)
            continue; /* reserved: its open never reached the kernel */
        /* keep the kernel's fh number */
        int rc = ho_fh_adopt(into, (uint64_t)i + 1, (enum ho_fh_kind)f.kind, f.ino, f.flags,
                             f.blob); /* blob all zero for version 1 */
        if (rc == -ENOSPC)
            return fail(why, "handle table of the new daemon is too small", rc);
        if (rc < 0)
            return fail(why, "handle slot imported twice", -EINVAL);
        out->handles++;
    }
    ho_fh_rebuild_free(into);
    return 0;
}

/* Entries of a record's reply that were counted: the progress, plus the
 * pending entry when its node's count (as imported into `into`) shows the
 * increment. */
static uint32_t counted_entries(struct ho_region *into, const struct ho_rec *r)
{
    uint32_t done = r->progress;
    if (r->pending_idx == r->progress && r->pending_idx != HO_NO_PENDING &&
        ho_node_lookups(into, r->pending_node) == r->pending_before + 1)
        done++;
    return done;
}

static int import_records(struct ho_region *into, const uint8_t *b, const struct ho_hdr *hd,
                          struct ho_imported *out, const char **why)
{
    out->recs = calloc(hd->rec_cap ? hd->rec_cap : 1, sizeof(struct ho_rec));
    if (out->recs == NULL)
        return fail(why, "out of memory", -ENOMEM);
    for (uint32_t i = 0; i < hd->rec_cap; i++) {
        struct ho_rec r;
        memset(&r, 0, sizeof(r));
        memcpy(&r, b + hd->rec_off + (uint64_t)i * hd->rec_entry_size, hd->rec_entry_size);
        if (hd->version <= 2) { /* no progress: nothing known to be counted but COUNTED */
            r.pending_node = 0;
            r.progress = 0;
            r.pending_idx = HO_NO_PENDING;
        }
        if (r.phase > HO_REC_COUNTED)
            return fail(why, "bad request record", -EINVAL);
        if (r.phase == HO_REC_NONE || r.unique == 0)
            continue;
        r.progress = counted_entries(into, &r);
        r.pending_idx = HO_NO_PENDING;
        out->recs[out->nrecs++] = r;
    }
    return 0;
}

int ho_import(struct ho_region *into, const void *bytes, size_t len, struct ho_imported *out,
              const char **why)
{
    memset(out, 0, sizeof(*out));
    const uint8_t *b = bytes;
    struct ho_hdr hd;
    if (len < sizeof(hd))
        return fail(why, "image shorter than a header", -EINVAL);
    memcpy(&hd, b, sizeof(hd));
    if (memcmp(hd.magic, HO_MAGIC, 8) != 0)
        return fail(why, "not a valorfs handoff region (bad magic)", -EINVAL);
    if (hd.version == 0 || hd.version > HO_VERSION)
        return fail(why, "handoff format version unknown to this binary", -EPROTO);
    int rc = check_layout(&hd, len, why);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < hd.nstripes; i++) {
        struct ho_stripe_hdr sh;
        memcpy(&sh, b + hd.nodes_off + (uint64_t)i * hd.stripe_bytes, sizeof(sh));
        if (sh.hwm > hd.stripe_cap || sh.nbuckets != hd.stripe_cap)
            return fail(why, "bad node stripe header", -EINVAL);
    }
    if (hd.sealed && ho_image_crc(b, &hd) != hd.crc)
        return fail(why, "snapshot checksum mismatch (corrupt handoff state)", -EINVAL);
    out->version = hd.version;
    out->sealed = hd.sealed != 0;
    out->owner_pid = hd.owner_pid;
    out->generation = hd.generation;
    out->init = (struct ho_init){ hd.proto_minor, hd.transport, hd.flags };
    if ((rc = import_nodes(into, b, &hd, out, why)) < 0 ||
        (rc = import_handles(into, b, &hd, out, why)) < 0 ||
        (rc = import_records(into, b, &hd, out, why)) < 0) {
        free(out->recs);
        out->recs = NULL;
        return rc;
    }
    ho_set_init(into, &out->init);
    return 0;
}

const struct ho_rec *ho_imported_find(const struct ho_imported *imp, uint64_t unique)
{
    for (size_t i = 0; i < imp->nrecs; i++)
        if (imp->recs[i].unique == unique)
            return &imp->recs[i];
    return NULL;
}

size_t ho_test_write_old(void *buf, size_t cap, uint32_t version, const struct ho_init *init,
                         const uint64_t *node_ids, const uint64_t *nlookups, size_t nnodes,
                         const struct ho_rec *recs, size_t nrecs)
{
    if (version < 1 || version > 2)
        return 0;
    /* one stripe of capacity nnodes, no handles, nrecs old-format records */
    uint32_t stripe_cap = (uint32_t)(nnodes ? nnodes : 1);
    uint64_t stripe_bytes = sizeof(struct ho_stripe_hdr) + (uint64_t)stripe_cap * 4 +
                            (uint64_t)stripe_cap * sizeof(struct ho_node);
    uint64_t nodes_off = sizeof(struct ho_hdr);
    uint64_t fh_off = nodes_off + stripe_bytes;
    uint64_t rec_off = fh_off;
    uint64_t size = rec_off + (uint64_t)nrecs * HO_REC_V2_SIZE;
    if (size > cap)
        return 0;
    memset(buf, 0, size);
    uint8_t *b = buf;
    struct ho_hdr hd = { .version = version, .hdr_size = sizeof(hd), .region_size = size,
                          .proto_minor = init->proto_minor, .transport = init->transport,
                          .flags = init->flags, .nstripes = 1, .stripe_cap = stripe_cap,
                          .node_entry_size = sizeof(struct ho_node), .nodes_off = nodes_off,
                          .stripe_bytes = stripe_bytes,
                          .fh_entry_size = version == 1 ? HO_FH_V1_SIZE : sizeof(struct ho_fh),
                          .fh_off = fh_off, .rec_entry_size = HO_REC_V2_SIZE,
                          .rec_cap = (uint32_t)nrecs, .rec_off = rec_off, .generation = 1 };
    memcpy(hd.magic, HO_MAGIC, 8);
    struct ho_stripe_hdr sh = { .hwm = (uint32_t)nnodes, .free_head = UINT32_MAX,
                             .count = (uint32_t)nnodes, .nbuckets = stripe_cap };
    memcpy(b + nodes_off, &sh, sizeof(sh));
    memset(b + nodes_off + sizeof(sh), 0xff, (size_t)stripe_cap * 4);
    uint8_t *nodes = b + nodes_off + sizeof(sh) + (uint64_t)stripe_cap * 4;
    for (size_t i = 0; i < nnodes; i++) {
        struct ho_node n = { .id = node_ids[i], .nlookup = nlookups[i], .next = UINT32_MAX };
        memcpy(nodes + i * sizeof(n), &n, sizeof(n));
    }
    for (size_t i = 0; i < nrecs; i++) { /* unique, opcode, phase, nodeid */
        uint8_t *r = b + rec_off + i * HO_REC_V2_SIZE;
        memcpy(r, &recs[i].unique, 8);
        memcpy(r + 8, &recs[i].opcode, 4);
        memcpy(r + 12, &recs[i].phase, 4);
        memcpy(r + 16, &recs[i].pending_node, 8);
    }
    hd.sealed = 1;
    memcpy(b, &hd, sizeof(hd));
    hd.crc = ho_image_crc(b, &hd);
    memcpy(b, &hd, sizeof(hd));
    return size;
}
