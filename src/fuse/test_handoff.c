/* test_handoff.c — the handoff region: counting, handles, records, sealing,
 * import of the current and the previous format, refusal of bad images. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fuse/handoff.h"
#include "fuse/handoff_layout.h"

#include "common/test_check.h"

static struct ho_region *small(void)
{
    struct ho_limits lim = { .nodes = 4096, .handles = 256 };
    struct ho_region *h = ho_create(&lim);
    if (h == NULL) {
        perror("ho_create");
        exit(1);
    }
    return h;
}

static void test_nodes(void)
{
    struct ho_region *h = small();
    CHECK(ho_node_ref(h, 42, "key", 3) == 1);
    CHECK(ho_node_ref(h, 42, NULL, 0) == 2);
    CHECK(ho_node_ref_n(h, 7, 5, NULL, 0) == 5);
    CHECK(ho_node_count(h) == 2);
    CHECK(ho_node_forget(h, 42, 1) == 1);
    CHECK(ho_node_forget(h, 42, 1) == 0);
    CHECK(!ho_node_known(h, 42));
    CHECK(ho_node_lookups(h, 7) == 5);
    CHECK(ho_node_forget(h, 99, 3) == 0); /* unknown: no effect */
    /* many nodes across stripes, then forget all but one */
    for (uint64_t i = 1000; i < 3000; i++)
        CHECK(ho_node_ref(h, i * 0x9e3779b97f4a7c15ull, &i, sizeof(i)) == 1);
    CHECK(ho_node_count(h) == 2001);
    for (uint64_t i = 1000; i < 3000; i++)
        ho_node_forget(h, i * 0x9e3779b97f4a7c15ull, 1);
    CHECK(ho_node_count(h) == 1);
    ho_free(h);
}

static void test_handles(void)
{
    struct ho_region *h = small();
    uint64_t a = ho_fh_reserve(h), b = ho_fh_reserve(h);
    CHECK(a == 1 && b == 2);
    uint64_t bfh;
    CHECK(ho_fh_lookup(h, a, &bfh) == -EBADF); /* reserved, not live */
    ho_fh_commit(h, a, HO_FH_FILE, 10, 02, 0xabc);
    CHECK(ho_fh_lookup(h, a, &bfh) == 0 && bfh == 0xabc);
    memcpy(ho_fh_blob(h, a), "blob", 4);
    ho_fh_release(h, b);
    CHECK(ho_fh_reserve(h) == b); /* reused */
    CHECK(ho_fh_count(h) == 1);
    CHECK(ho_fh_lookup(h, 0, &bfh) == -EBADF);
    CHECK(ho_fh_lookup(h, 100000, &bfh) == -EBADF);
    ho_free(h);
}

static void test_import_roundtrip(void)
{
    struct ho_region *h = small();
    struct ho_init init = { 45, 1, 0x1234 };
    ho_set_init(h, &init);
    ho_set_owner(h, 777, 3);
    ho_node_ref_n(h, 11, 3, "k11", 3);
    ho_node_ref(h, 12, NULL, 0);
    uint64_t f1 = ho_fh_reserve(h), f2 = ho_fh_reserve(h), f3 = ho_fh_reserve(h);
    ho_fh_commit(h, f1, HO_FH_FILE, 11, 01, 5);
    ho_fh_commit(h, f3, HO_FH_DIR, 12, 0, 6);
    memcpy(ho_fh_blob(h, f3), "dirblob", 7);
    (void)f2; /* stays reserved: an open in flight */
    struct ho_rec *rec = ho_rec(h, 2, 5);
    *rec = (struct ho_rec){ .unique = 9000, .opcode = 9, .phase = HO_REC_DISPATCHED };
    CHECK(ho_rec(h, HO_MAX_CHANS, 0) == NULL);
    ho_seal(h);

    size_t len;
    const void *img = ho_map_fd(ho_fd(h), &len);
    CHECK(img != NULL && len == ho_size(h));
    struct ho_region *n = small();
    struct ho_imported imp;
    const char *why = NULL;
    int rc = ho_import(n, img, len, &imp, &why);
    if (rc)
        fprintf(stderr, "import: %s\n", why);
    CHECK(rc == 0);
    CHECK(imp.version == HO_VERSION && imp.sealed && imp.owner_pid == 777 && imp.generation == 3);
    CHECK(imp.init.proto_minor == 45 && imp.init.flags == 0x1234);
    CHECK(ho_node_lookups(n, 11) == 3 && ho_node_lookups(n, 12) == 1);
    uint64_t bfh;
    CHECK(ho_fh_lookup(n, f1, &bfh) == 0);
    CHECK(ho_fh_lookup(n, f2, &bfh) == -EBADF); /* dropped: never reached the kernel */
    CHECK(ho_fh_lookup(n, f3, &bfh) == 0);
    CHECK(memcmp(ho_fh_blob(n, f3), "dirblob", 7) == 0);
    CHECK(ho_fh_reserve(n) == f2); /* the gap is free again */
    const struct ho_rec *r = ho_imported_find(&imp, 9000);
    CHECK(r && r->phase == HO_REC_DISPATCHED && r->opcode == 9);
    CHECK(ho_imported_find(&imp, 9001) == NULL);
    free(imp.recs);

    /* a flipped byte in a sealed image is refused */
    void *copy = malloc(len);
    memcpy(copy, img, len);
    const struct ho_hdr *hd = img;
    const size_t in_records = hd->rec_off + 1; /* a byte the checksum covers */
    ((unsigned char *)copy)[in_records] ^= 0x40;
    struct ho_region *n2 = small();
    rc = ho_import(n2, copy, len, &imp, &why);
    CHECK(rc == -EINVAL && strstr(why, "checksum") != NULL);
    /* truncated, bad magic, future version */
    CHECK(ho_import(n2, copy, 20, &imp, &why) == -EINVAL);
    memcpy(copy, img, len);
    ((char *)copy)[0] = 'X';
    CHECK(ho_import(n2, copy, len, &imp, &why) == -EINVAL && strstr(why, "magic"));
    memcpy(copy, img, len);
    ((uint32_t *)copy)[2] = HO_VERSION + 1;
    CHECK(ho_import(n2, copy, len, &imp, &why) == -EPROTO);
    CHECK(ho_import(n2, copy, len - 4096, &imp, &why) < 0);
    /* an unsealed (crashed) image is imported on structure alone */
    memcpy(copy, img, len);
    ((uint32_t *)copy)[6] = 0; /* sealed = 0 */
    ((unsigned char *)copy)[in_records] ^= 0x40;
    struct ho_region *n3 = small();
    CHECK(ho_import(n3, copy, len, &imp, &why) == 0 && !imp.sealed);
    free(imp.recs);
    free(copy);
    munmap((void *)img, len);
    ho_free(h);
    ho_free(n);
    ho_free(n2);
    ho_free(n3);
}

/* Images in the previous formats are accepted: version 1 (no handle
 * blobs) and version 2 (records without counting progress). */
static void test_import_old_versions(void)
{
    for (uint32_t v = 1; v <= 2; v++) {
        unsigned char buf[65536];
        struct ho_init init = { 44, 0, 0x55 };
        uint64_t ids[3] = { 1, 77, 0x8000000000000001ull };
        uint64_t counts[3] = { 2, 1, 9 };
        struct ho_rec recs[2] = {
            { .unique = 500, .opcode = 1, .phase = HO_REC_COUNTED, .pending_node = 77 },
            { .unique = 501, .opcode = 44, .phase = HO_REC_DISPATCHED, .pending_node = 77 },
        };
        size_t len = ho_test_write_old(buf, sizeof(buf), v, &init, ids, counts, 3, recs, 2);
        CHECK(len > 0);
        struct ho_region *n = small();
        struct ho_imported imp;
        const char *why = NULL;
        int rc = ho_import(n, buf, len, &imp, &why);
        if (rc)
            fprintf(stderr, "v%u import: %s\n", v, why);
        CHECK(rc == 0 && imp.version == v && imp.nodes == 3);
        CHECK(ho_node_lookups(n, 77) == 1 && ho_node_lookups(n, ids[2]) == 9);
        CHECK(imp.init.proto_minor == 44);
        const struct ho_rec *r = ho_imported_find(&imp, 500);
        CHECK(r && r->phase == HO_REC_COUNTED);
        /* an old record knows nothing about partial counting */
        r = ho_imported_find(&imp, 501);
        CHECK(r && r->phase == HO_REC_DISPATCHED && r->progress == 0);
        free(imp.recs);
        ho_free(n);
    }
}

/* A daemon killed while counting a reply's entries: the record's progress
 * plus the pending entry, resolved against the node's count, say exactly
 * how many were counted — wherever the kill landed. */
static void test_counting_progress_survives_kill(void)
{
    struct ho_region *h = small();
    struct ho_rec *rec = ho_rec(h, 1, 3);
    ho_rec_reset(rec);
    *rec = (struct ho_rec){ .unique = 7000, .opcode = 44, .phase = HO_REC_DISPATCHED,
                            .pending_idx = HO_NO_PENDING };
    ho_node_ref(h, 12, NULL, 0); /* 12 was known before: count 1 */
    CHECK(ho_node_ref_rec(h, rec, 11, NULL, 0) == 1);
    CHECK(ho_node_ref_rec(h, rec, 12, NULL, 0) == 2);
    CHECK(rec->progress == 2 && rec->pending_idx == 1 && rec->pending_before == 1);

    struct {
        uint64_t node, before, count_now;
        uint32_t want;
    } cases[] = {
        /* killed after noting entry 2 (node 13, new), before incrementing */
        { 13, 0, 0, 2 },
        /* ...after incrementing, before the progress moved */
        { 13, 0, 1, 3 },
        /* an existing node: 12 had 2, the increment made it 3 */
        { 12, 2, 3, 3 },
        { 12, 2, 2, 2 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ho_region *old = small();
        ho_node_ref_n(old, 11, 1, NULL, 0);
        ho_node_ref_n(old, 12, cases[i].node == 12 ? cases[i].count_now : 2, NULL, 0);
        if (cases[i].node == 13)
            ho_node_ref_n(old, 13, cases[i].count_now, NULL, 0);
        struct ho_rec *r = ho_rec(old, 1, 3);
        *r = (struct ho_rec){ .unique = 7000, .opcode = 44, .phase = HO_REC_DISPATCHED,
                              .pending_node = cases[i].node, .progress = 2,
                              .pending_idx = 2, .pending_before = cases[i].before };
        size_t len;
        const void *img = ho_map_fd(ho_fd(old), &len);
        CHECK(img != NULL);
        struct ho_region *n = small();
        struct ho_imported imp;
        const char *why = NULL;
        CHECK(ho_import(n, img, len, &imp, &why) == 0);
        const struct ho_rec *got = ho_imported_find(&imp, 7000);
        CHECK(got && got->progress == cases[i].want && got->pending_idx == HO_NO_PENDING);
        if (got && got->progress != cases[i].want)
            fprintf(stderr, "case %zu: progress %u, want %u\n", i, got->progress,
                    cases[i].want);
        free(imp.recs);
        munmap((void *)img, len);
        ho_free(n);
        ho_free(old);
    }
    /* a pending note for an entry already past (progress moved on) is ignored */
    rec->pending_idx = 1;
    size_t len;
    const void *img = ho_map_fd(ho_fd(h), &len);
    struct ho_region *n = small();
    struct ho_imported imp;
    const char *why = NULL;
    CHECK(img && ho_import(n, img, len, &imp, &why) == 0);
    const struct ho_rec *got = ho_imported_find(&imp, 7000);
    CHECK(got && got->progress == 2);
    free(imp.recs);
    munmap((void *)img, len);
    ho_free(n);
    ho_free(h);
}

int main(void)
{
    test_nodes();
    test_handles();
    test_import_roundtrip();
    test_import_old_versions();
    test_counting_progress_survives_kill();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("handoff: all checks passed\n");
    return 0;
}
