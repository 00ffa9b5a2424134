/* fuzz_handoff.c — libFuzzer target: ho_import(), the decoder of a
 * predecessor daemon's handoff region (bytes another process wrote, which
 * may have crashed mid-update or be an older binary).
 *
 * Each input is one region image, imported into a fresh small region
 * (256 nodes, 16 handles, so "new table full" is reachable). It must never
 * crash, read outside the input (an exact-size copy) or leak. When the
 * import succeeds, the result is compared with an independent walk of the
 * same bytes (fuzz_handoff_image.h):
 *  - init, version, sealed, owner and generation as in the header;
 *  - every node entry with an id and lookups is present with the sum of
 *    its lookups; out.nodes == ho_node_count() == the distinct node ids;
 *    no imported node has 0 lookups;
 *  - every live slot i is live as kernel fh i+1 with its kind, ino, flags
 *    and blob (zero for version 1); no other slot is live;
 *    out.handles == ho_fh_count(); a new reservation gets a free slot;
 *  - out.recs holds exactly the records with a phase and a unique;
 *  - the new region, sealed, imports again with the same counts.
 * LLVMFuzzerInitialize also round-trips a real, full-size region once.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fuse/handoff.h"
#include "fuzz_handoff_image.h"

#include "fuzz_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct ho_limits small_limits = { .nodes = 256, .handles = 16 };

static struct ho_region *fresh(const struct ho_limits *lim)
{
    struct ho_region *h = ho_create(lim);
    if (h == NULL) {
        perror("ho_create");
        abort();
    }
    return h;
}

/* ---- the independent walk of an accepted image ---- */

#define MAX_IDS 4096 /* more node entries than an 8 KiB input can hold */

struct expect {
    uint64_t ids[MAX_IDS], lookups[MAX_IDS];
    size_t nids;
};

static void expect_add(struct expect *e, uint64_t id, uint64_t n)
{
    for (size_t i = 0; i < e->nids; i++)
        if (e->ids[i] == id) {
            e->lookups[i] += n; /* what ho_node_ref_n does with a repeat */
            return;
        }
    FUZZ_CHECK(e->nids < MAX_IDS);
    e->ids[e->nids] = id;
    e->lookups[e->nids++] = n;
}

static void check_nonzero_node(void *arg, uint64_t id, uint64_t nlookup, const void *key,
                               size_t keylen)
{
    (void)arg;
    (void)key;
    FUZZ_CHECK(id != 0);
    FUZZ_CHECK(nlookup != 0);
    FUZZ_CHECK(keylen <= HO_NODE_KEY_MAX);
}

struct fh_walk {
    const uint8_t *img;
    const struct fi_hdr *hd;
    uint64_t seen;
};

static void check_handle(void *arg, uint64_t kfh, enum ho_fh_kind kind, uint64_t ino,
                         uint32_t flags, void *blob)
{
    struct fh_walk *w = arg;
    FUZZ_CHECK(kfh >= 1 && kfh <= w->hd->fh_hwm);
    struct fi_fh f;
    memset(&f, 0, sizeof(f));
    memcpy(&f, w->img + w->hd->fh_off + (kfh - 1) * w->hd->fh_entry_size, w->hd->fh_entry_size);
    FUZZ_CHECK(f.state == FI_FH_LIVE);
    FUZZ_CHECK((uint32_t)kind == f.kind && ino == f.ino && flags == f.flags);
    FUZZ_CHECK(memcmp(blob, f.blob, HO_FH_BLOB_MAX) == 0);
    w->seen++;
}

static void check_accepted(struct ho_region *into, const uint8_t *img, size_t len,
                           const struct ho_imported *out)
{
    struct fi_hdr hd;
    FUZZ_CHECK(len >= sizeof(hd));
    memcpy(&hd, img, sizeof(hd));
    FUZZ_CHECK(out->version == hd.version && out->version >= 1 && out->version <= HO_VERSION);
    FUZZ_CHECK(out->sealed == (hd.sealed != 0));
    FUZZ_CHECK(out->owner_pid == hd.owner_pid && out->generation == hd.generation);
    struct ho_init init;
    ho_get_init(into, &init);
    FUZZ_CHECK(init.proto_minor == hd.proto_minor && init.transport == hd.transport &&
          init.flags == hd.flags);
    FUZZ_CHECK(memcmp(&init, &out->init, sizeof(init)) == 0);

    /* nodes */
    static struct expect e;
    e.nids = 0;
    for (uint32_t s = 0; s < hd.nstripes; s++) {
        const uint8_t *st = img + hd.nodes_off + (uint64_t)s * hd.stripe_bytes;
        struct fi_stripe sh;
        memcpy(&sh, st, sizeof(sh));
        const uint8_t *entries = st + sizeof(sh) + (uint64_t)sh.nbuckets * 4;
        for (uint32_t j = 0; j < sh.hwm; j++) {
            struct fi_node n;
            memcpy(&n, entries + (uint64_t)j * sizeof(n), sizeof(n));
            if (n.id != 0 && n.nlookup != 0)
                expect_add(&e, n.id, n.nlookup);
        }
    }
    for (size_t i = 0; i < e.nids; i++)
        FUZZ_CHECK(ho_node_lookups(into, e.ids[i]) == e.lookups[i]);
    FUZZ_CHECK(ho_node_count(into) == e.nids);
    FUZZ_CHECK(out->nodes == ho_node_count(into));
    ho_node_foreach(into, check_nonzero_node, NULL);

    /* handles */
    uint64_t live = 0;
    for (uint32_t i = 0; i < hd.fh_hwm; i++) {
        struct fi_fh f;
        memset(&f, 0, sizeof(f));
        memcpy(&f, img + hd.fh_off + (uint64_t)i * hd.fh_entry_size, hd.fh_entry_size);
        uint64_t bfh;
        int rc = ho_fh_lookup(into, (uint64_t)i + 1, &bfh);
        FUZZ_CHECK(f.state == FI_FH_LIVE ? rc == 0 : rc == -EBADF);
        live += f.state == FI_FH_LIVE;
    }
    FUZZ_CHECK(out->handles == live && ho_fh_count(into) == live);
    struct fh_walk w = { img, &hd, 0 };
    ho_fh_foreach(into, check_handle, &w);
    FUZZ_CHECK(w.seen == live);
    /* the rebuilt free list hands out a slot nobody holds */
    uint64_t kfh = ho_fh_reserve(into);
    if (kfh != 0) {
        uint64_t bfh;
        FUZZ_CHECK(kfh <= small_limits.handles);
        FUZZ_CHECK(ho_fh_lookup(into, kfh, &bfh) == -EBADF);
        ho_fh_release(into, kfh);
    } else {
        FUZZ_CHECK(live == small_limits.handles);
    }

    /* records */
    size_t nrecs = 0;
    for (uint32_t i = 0; i < hd.rec_cap; i++) {
        struct ho_rec r;
        memset(&r, 0, sizeof(r));
        memcpy(&r, img + hd.rec_off + (uint64_t)i * hd.rec_entry_size, hd.rec_entry_size);
        if (r.phase == HO_REC_NONE || r.unique == 0)
            continue;
        FUZZ_CHECK(nrecs < out->nrecs);
        const struct ho_rec *o = &out->recs[nrecs];
        FUZZ_CHECK(o->unique == r.unique && o->opcode == r.opcode && o->phase == r.phase);
        /* the pending entry is resolved: at most one more than the progress */
        uint32_t base = hd.version <= 2 ? 0 : r.progress;
        FUZZ_CHECK(o->pending_idx == HO_NO_PENDING &&
                   (o->progress == base || o->progress == base + 1));
        FUZZ_CHECK(ho_imported_find(out, r.unique) != NULL);
        nrecs++;
    }
    FUZZ_CHECK(nrecs == out->nrecs);

    /* what we imported is itself a valid region for the next daemon */
    ho_seal(into);
    size_t mlen;
    const void *m = ho_map_fd(ho_fd(into), &mlen);
    FUZZ_CHECK(m != NULL);
    struct ho_region *again = fresh(&small_limits);
    struct ho_imported out2;
    const char *why = NULL;
    int rc = ho_import(again, m, mlen, &out2, &why);
    if (rc != 0)
        fprintf(stderr, "re-import failed: %d %s\n", rc, why);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(out2.sealed && out2.version == HO_VERSION);
    FUZZ_CHECK(out2.nodes == out->nodes && out2.handles == out->handles);
    FUZZ_CHECK(ho_node_count(again) == out->nodes && ho_fh_count(again) == out->handles);
    free(out2.recs);
    ho_free(again);
    munmap((void *)m, mlen);
}

/* ---- one input ---- */

static struct ho_region *target;
static int verbose; /* FUZZ_VERBOSE=1: one line per input (replaying seeds) */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy, so ASan sees any read past the image */
    uint8_t *img = malloc(size ? size : 1);
    FUZZ_CHECK(img != NULL);
    memcpy(img, data, size);
    if (target == NULL)
        target = fresh(&small_limits);
    struct ho_imported out;
    const char *why = NULL;
    int rc = ho_import(target, img, size, &out, &why);
    if (verbose)
        fprintf(stderr, "ho_import: %d %s\n", rc, rc ? why : "");
    if (rc == 0) {
        check_accepted(target, img, size, &out);
        free(out.recs);
    } else {
        FUZZ_CHECK(rc == -EINVAL || rc == -EPROTO || rc == -ENOSPC);
        FUZZ_CHECK(why != NULL && why[0] != '\0');
        FUZZ_CHECK(out.recs == NULL);
    }
    /* a refused import may have placed part of the image: start clean */
    if (rc == 0 || ho_node_count(target) != 0 || ho_fh_count(target) != 0) {
        ho_free(target);
        target = NULL;
    }
    free(img);
    return 0;
}

/* ---- once per process: full-size regions of both versions ---- */

static void roundtrip_real_region(void)
{
    struct ho_region *old = fresh(&(struct ho_limits){ .nodes = 1024, .handles = 64 });
    ho_set_init(old, &(struct ho_init){ 41, 1, 0x12345 });
    ho_set_owner(old, 4242, 7);
    for (uint64_t i = 1; i <= 100; i++)
        FUZZ_CHECK(ho_node_ref_n(old, i * 977, i, &i, sizeof(i)) == i);
    uint64_t a = ho_fh_reserve(old), b = ho_fh_reserve(old), c = ho_fh_reserve(old);
    ho_fh_commit(old, a, HO_FH_FILE, 977, 02, 11);
    ho_fh_commit(old, c, HO_FH_DIR, 2 * 977, 0, 12);
    memcpy(ho_fh_blob(old, c), "blob", 4);
    (void)b; /* stays reserved: not imported */
    *ho_rec(old, 3, 9) = (struct ho_rec){ 555, 1, HO_REC_COUNTED, 977 };
    ho_seal(old);
    size_t len;
    const void *m = ho_map_fd(ho_fd(old), &len);
    FUZZ_CHECK(m != NULL);
    /* room for 100 nodes however they hash to stripes */
    struct ho_region *into = fresh(&(struct ho_limits){ .nodes = 4096, .handles = 64 });
    struct ho_imported out;
    const char *why = NULL;
    int rc = ho_import(into, m, len, &out, &why);
    if (rc != 0)
        fprintf(stderr, "import of a real region failed: %d %s\n", rc, why);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(out.sealed && out.version == HO_VERSION && out.generation == 7);
    FUZZ_CHECK(out.nodes == 100 && out.handles == 2 && out.nrecs == 1);
    FUZZ_CHECK(ho_node_lookups(into, 50 * 977) == 50);
    uint64_t bfh;
    FUZZ_CHECK(ho_fh_lookup(into, a, &bfh) == 0 && ho_fh_lookup(into, b, &bfh) == -EBADF);
    FUZZ_CHECK(memcmp(ho_fh_blob(into, c), "blob", 4) == 0);
    free(out.recs);
    ho_free(into);
    munmap((void *)m, len);
    ho_free(old);

    uint8_t v1[8192];
    uint64_t ids[3] = { 5, 6, 7 }, counts[3] = { 1, 2, 3 };
    size_t n = ho_test_write_old(v1, sizeof(v1), 1, &(struct ho_init){ 31, 0, 1 }, ids,
                               counts, 3, NULL, 0);
    FUZZ_CHECK(n > 0);
    if (LLVMFuzzerTestOneInput(v1, n) != 0)
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    roundtrip_real_region();
    return 0;
}
