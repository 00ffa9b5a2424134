/* test_proto.c — unit tests of the message codecs.
 *
 * For every message: a round trip with non-trivial values compared field
 * by field; every strict prefix and the encoding plus one trailing byte
 * must fail to decode (each decode reads an exact-size heap copy, so ASan
 * sees any over-read; failed decodes must not leak). Then targeted
 * rejections: counts over their limits, enums out of range, bad names,
 * storage ranges.
 */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/meta_proto.h"
#include "proto/mgmtd_proto.h"
#include "proto/proto_eq.h"
#include "proto/storage_proto.h"
#include "rpc/rpc.h"

#include "common/test_check.h"

static void *dup_exact(const void *p, size_t n)
{
    void *b = malloc(n ? n : 1);
    if (!b)
        abort();
    if (n)
        memcpy(b, p, n);
    return b;
}

static void nofree(void *p) { (void)p; }

/* Encode *x, decode it back and compare; then every prefix and one extra
 * trailing byte must be refused. */
#define ROUNDTRIP(T, x, freefn)                                                    \
    do {                                                                           \
        struct wbuf wb_;                                                           \
        wb_init(&wb_, 0);                                                          \
        T##_enc(&wb_, (x));                                                        \
        CHECK(!wb_.err && wb_.len > 0);                                            \
        uint8_t *copy_ = dup_exact(wb_.data, wb_.len);                             \
        struct T y_;                                                               \
        int rc_ = T##_dec(copy_, wb_.len, &y_);                                    \
        CHECK(rc_ == 0);                                                           \
        if (rc_ == 0) {                                                            \
            if (!T##_eq((x), &y_))                                                 \
                fprintf(stderr, "%s: round trip differs\n", #T);                   \
            CHECK(T##_eq((x), &y_));                                               \
            freefn(&y_);                                                           \
        }                                                                          \
        free(copy_);                                                               \
        for (size_t k_ = 0; k_ < wb_.len; k_++) {                                  \
            uint8_t *p_ = dup_exact(wb_.data, k_);                                 \
            struct T z_;                                                           \
            int r_ = T##_dec(p_, k_, &z_);                                         \
            if (r_ != -EBADMSG)                                                    \
                fprintf(stderr, "%s: prefix %zu of %zu decoded\n", #T, k_, wb_.len); \
            CHECK(r_ == -EBADMSG);                                                 \
            if (r_ == 0)                                                           \
                freefn(&z_);                                                       \
            free(p_);                                                              \
        }                                                                          \
        uint8_t *longer_ = malloc(wb_.len + 1);                                    \
        memcpy(longer_, wb_.data, wb_.len);                                        \
        longer_[wb_.len] = 0;                                                      \
        struct T t_;                                                               \
        CHECK(T##_dec(longer_, wb_.len + 1, &t_) == -EBADMSG);                     \
        free(longer_);                                                             \
        wb_free(&wb_);                                                             \
    } while (0)

/* Decode bytes built by hand; expect rc. */
#define EXPECT_DEC(T, wb, rc, freefn)                                              \
    do {                                                                           \
        CHECK(!(wb)->err);                                                         \
        uint8_t *c_ = dup_exact((wb)->data, (wb)->len);                            \
        struct T v_;                                                               \
        int r_ = T##_dec(c_, (wb)->len, &v_);                                      \
        if (r_ != (rc))                                                            \
            fprintf(stderr, "%s:%d: %s decode gave %d, want %d\n", __FILE__, __LINE__, \
                    #T, r_, (rc));                                                 \
        CHECK(r_ == (rc));                                                         \
        if (r_ == 0)                                                               \
            freefn(&v_);                                                           \
        free(c_);                                                                  \
        wb_free(wb);                                                               \
    } while (0)

/* ---------------- samples ---------------- */

static void sample_user(struct vf_user *u)
{
    memset(u, 0, sizeof(*u));
    u->uid = 1000;
    u->gid = 100;
    u->ngroups = 3;
    u->groups[0] = 4;
    u->groups[1] = 27;
    u->groups[2] = 0xfffffffe;
}

static void sample_inode(struct meta_inode *i, uint64_t ino)
{
    memset(i, 0, sizeof(*i));
    i->ino = ino;
    i->mode = 0100644;
    i->uid = 1000;
    i->gid = 100;
    i->nlink = 2;
    i->size = 0x123456789abull;
    i->rdev = 0x0801;
    i->atime_ns = 1700000000123456789ll;
    i->mtime_ns = -5; /* before the epoch */
    i->ctime_ns = 1700000000000000001ll;
    i->parent = VF_ROOT_INO;
    i->layout.chunk_size = 1u << 20;
    i->layout.table_id = 7;
    i->layout.nchains = 3;
    i->layout.chains[0] = 11;
    i->layout.chains[1] = 12;
    i->layout.chains[2] = 0xffffffff;
}

/* ---------------- mgmtd ---------------- */

static void test_mgmtd_roundtrips(void)
{
    struct mg_node nodes[3] = {
        {.id = 1, .type = NODE_MGMTD, .alive = 1, .addr = "10.0.0.1:9000", .lease_expires_ms = 1},
        {.id = 2, .type = NODE_META, .alive = 0, .addr = "", .lease_expires_ms = ~0ull},
        {.id = 300, .type = NODE_STORAGE, .alive = 1, .addr = "[::1]:65535",
         .lease_expires_ms = 1700000000000ull},
    };
    struct mg_target targets[2] = {
        {.id = 101, .node_id = 300, .chain_id = 5, .state = TS_SERVING, .capacity = 1ull << 40,
         .used = 12345},
        {.id = 102, .node_id = 300, .chain_id = 0, .state = TS_OFFLINE, .capacity = 0, .used = 0},
    };
    struct mg_chain chains[2] = {
        {.id = 5, .version = 9, .ntargets = 3, .targets = {101, 205, 309}},
        {.id = 6, .version = 1ull << 50, .ntargets = VF_MAX_REPLICAS,
         .targets = {1, 2, 3, 4, 5, 6, 7, 8}},
    };
    uint32_t tchains[4] = {5, 6, 5, 6};
    struct mg_table tables[2] = {
        {.id = 1, .version = 3, .replicas = 3, .nchains = 4, .chains = tchains},
        {.id = 2, .version = 4, .replicas = 1, .nchains = 0, .chains = NULL},
    };
    struct mg_routing r = {.version = 42, .primary_id = 1, .nnodes = 3, .ntargets = 2,
                           .nchains = 2, .ntables = 2, .nodes = nodes, .targets = targets,
                           .chains = chains, .tables = tables};
    ROUNDTRIP(mg_routing, &r, mg_routing_free);
    struct mg_routing empty = {.version = 1};
    ROUNDTRIP(mg_routing, &empty, mg_routing_free);

    struct mg_register_req reg = {.type = NODE_STORAGE, .node_id = 300,
                                  .addr = "storage-1.example:8000", .ntargets = 2};
    reg.targets[0] = (struct mg_target_report){101, TS_SERVING, 1ull << 40, 99};
    reg.targets[1] = (struct mg_target_report){102, TS_SYNCING, 5, 6};
    ROUNDTRIP(mg_register_req, &reg, nofree);
    struct mg_register_req client = {.type = NODE_CLIENT};
    ROUNDTRIP(mg_register_req, &client, nofree);

    struct mg_register_resp rr = {.node_id = 77, .lease_ms = 5000, .routing_version = 1ull << 33};
    ROUNDTRIP(mg_register_resp, &rr, nofree);

    struct mg_heartbeat_req hb = {.node_id = 300, .routing_version = 41, .ntargets = 64};
    for (uint32_t i = 0; i < 64; i++)
        hb.targets[i] = (struct mg_target_report){1000 + i, (uint8_t)(1 + i % 4), i << 20, i};
    ROUNDTRIP(mg_heartbeat_req, &hb, nofree);

    struct mg_heartbeat_resp hr = {.lease_ms = 3000, .routing_version = 43};
    ROUNDTRIP(mg_heartbeat_resp, &hr, nofree);
    struct mg_get_routing_req gr = {.have_version = 0x0102030405060708ull};
    ROUNDTRIP(mg_get_routing_req, &gr, nofree);
    struct mg_create_table_req ct = {.table_id = 3, .replicas = 3, .nchains = 16};
    ROUNDTRIP(mg_create_table_req, &ct, nofree);
    struct mg_create_table_resp ctr = {.table_id = 3, .nchains = 16, .routing_version = 50};
    ROUNDTRIP(mg_create_table_resp, &ctr, nofree);
    struct mg_set_target_req st = {.target_id = 101, .state = TS_WAITING};
    ROUNDTRIP(mg_set_target_req, &st, nofree);
    struct mg_primary pr = {.node_id = 1, .addr = "127.0.0.1:7000", .lease_expires_ms = 99};
    ROUNDTRIP(mg_primary, &pr, nofree);
}

static void test_mgmtd_rejects(void)
{
    struct wbuf wb;

    /* enums: node type and target state */
    for (int t = 0; t <= 6; t++) {
        wb_init(&wb, 0);
        wb_u8(&wb, (uint8_t)t);
        wb_u32(&wb, 1);
        wb_cstr(&wb, "a:1");
        wb_u32(&wb, 0);
        EXPECT_DEC(mg_register_req, &wb, (t >= NODE_MGMTD && t <= NODE_CLIENT) ? 0 : -EBADMSG,
                   nofree);
    }
    for (int s = 0; s <= 6; s++) {
        wb_init(&wb, 0);
        wb_u32(&wb, 5);
        wb_u8(&wb, (uint8_t)s);
        EXPECT_DEC(mg_set_target_req, &wb, (s >= TS_SERVING && s <= TS_OFFLINE) ? 0 : -EBADMSG,
                   nofree);
    }
    /* a target report with a bad state */
    wb_init(&wb, 0);
    wb_u32(&wb, 1);
    wb_u64(&wb, 1);
    wb_u32(&wb, 1);
    wb_u32(&wb, 9);
    wb_u8(&wb, 0);
    wb_u64(&wb, 0);
    wb_u64(&wb, 0);
    EXPECT_DEC(mg_heartbeat_req, &wb, -EBADMSG, nofree);

    /* 65 target reports (the arrays hold 64), with all their bytes present */
    wb_init(&wb, 0);
    wb_u32(&wb, 1);
    wb_u64(&wb, 1);
    wb_u32(&wb, 65);
    for (int i = 0; i < 65; i++) {
        wb_u32(&wb, (uint32_t)i);
        wb_u8(&wb, TS_SERVING);
        wb_u64(&wb, 0);
        wb_u64(&wb, 0);
    }
    EXPECT_DEC(mg_heartbeat_req, &wb, -EBADMSG, nofree);

    /* an address longer than VF_MAX_ADDR, and one holding a NUL */
    char longaddr[VF_MAX_ADDR + 2];
    memset(longaddr, 'x', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = 0;
    wb_init(&wb, 0);
    wb_u32(&wb, 1);
    wb_cstr(&wb, longaddr);
    wb_u64(&wb, 0);
    EXPECT_DEC(mg_primary, &wb, -EBADMSG, nofree);
    wb_init(&wb, 0);
    wb_u32(&wb, 1);
    wb_str(&wb, "a\0b", 3);
    wb_u64(&wb, 0);
    EXPECT_DEC(mg_primary, &wb, -EBADMSG, nofree);

    /* routing: a huge node count with few bytes must fail without
     * allocating for it */
    wb_init(&wb, 0);
    wb_u64(&wb, 1);
    wb_u32(&wb, 1);
    wb_u32(&wb, 0xffffffffu);
    wb_u32(&wb, 0);
    EXPECT_DEC(mg_routing, &wb, -EBADMSG, mg_routing_free);

    /* a chain with VF_MAX_REPLICAS + 1 targets */
    wb_init(&wb, 0);
    wb_u64(&wb, 1);
    wb_u32(&wb, 1);
    wb_u32(&wb, 0); /* nodes */
    wb_u32(&wb, 0); /* targets */
    wb_u32(&wb, 1); /* chains */
    wb_u32(&wb, 5);
    wb_u64(&wb, 1);
    wb_u32(&wb, VF_MAX_REPLICAS + 1);
    for (int i = 0; i <= VF_MAX_REPLICAS; i++)
        wb_u32(&wb, (uint32_t)i);
    wb_u32(&wb, 0); /* tables */
    EXPECT_DEC(mg_routing, &wb, -EBADMSG, mg_routing_free);

    /* a failure after the tables were allocated: a trailing byte
     * (ASan's leak check sees what the decoder did not free) */
    wb_init(&wb, 0);
    wb_u64(&wb, 1);
    wb_u32(&wb, 1);
    wb_u32(&wb, 0);
    wb_u32(&wb, 0);
    wb_u32(&wb, 0);
    wb_u32(&wb, 2); /* tables */
    wb_u32(&wb, 1);
    wb_u64(&wb, 1);
    wb_u32(&wb, 3);
    wb_u32(&wb, 2);
    wb_u32(&wb, 10);
    wb_u32(&wb, 11);
    wb_u32(&wb, 2);
    wb_u64(&wb, 1);
    wb_u32(&wb, 3);
    wb_u32(&wb, 1);
    wb_u32(&wb, 10);
    wb_u8(&wb, 0); /* one byte too many after everything was allocated */
    EXPECT_DEC(mg_routing, &wb, -EBADMSG, mg_routing_free);

    /* encoders refuse counts that overrun their arrays */
    struct mg_heartbeat_req hb = {.ntargets = 65};
    wb_init(&wb, 0);
    mg_heartbeat_req_enc(&wb, &hb);
    CHECK(wb.err);
    wb_free(&wb);
    struct mg_chain bad = {.ntargets = VF_MAX_REPLICAS + 1};
    struct mg_routing r = {.nchains = 1, .chains = &bad};
    wb_init(&wb, 0);
    mg_routing_enc(&wb, &r);
    CHECK(wb.err);
    wb_free(&wb);
    struct mg_primary full;
    memset(&full, 'a', sizeof(full)); /* addr without a NUL */
    wb_init(&wb, 0);
    mg_primary_enc(&wb, &full);
    CHECK(wb.err);
    wb_free(&wb);
}

/* ---------------- meta ---------------- */

static void test_meta_roundtrips(void)
{
    static const char target[] = "../some/where/else";
    struct meta_req q;
    memset(&q, 0, sizeof(q));
    sample_user(&q.user);
    q.ino = 0x1122334455667788ull;
    q.parent = VF_ROOT_INO;
    q.newparent = 99;
    strcpy(q.name, "hello.txt");
    strcpy(q.newname, "renamed");
    q.mode = 040755;
    q.umask = 022;
    q.flags = 0x8241;
    q.rdev = 0x1234;
    q.valid = 0x1ff;
    q.uid = 5;
    q.gid = 6;
    q.size = 1ull << 45;
    q.atime_ns = 1;
    q.mtime_ns = -2;
    q.ctime_ns = 3;
    q.session = 0xdeadbeefcafeull;
    q.length_hint = 4096;
    q.max_entries = 128;
    q.chunk_size = 4u << 20;
    q.stripe = 16;
    q.data = target;
    q.data_len = sizeof(target) - 1;
    ROUNDTRIP(meta_req, &q, nofree);

    /* a name of exactly VF_MAX_NAME bytes, no data */
    memset(q.name, 'n', VF_MAX_NAME);
    q.name[VF_MAX_NAME] = 0;
    q.data = NULL;
    q.data_len = 0;
    ROUNDTRIP(meta_req, &q, nofree);

    struct meta_req zero;
    memset(&zero, 0, sizeof(zero));
    ROUNDTRIP(meta_req, &zero, nofree);

    static const char listing[] = "user.a\0user.b\0";
    struct meta_resp r;
    memset(&r, 0, sizeof(r));
    r.has_inode = 1;
    sample_inode(&r.inode, 1234);
    r.session = 77;
    r.eof = 1;
    r.data = listing;
    r.data_len = sizeof(listing) - 1;
    r.total_bytes = 1ull << 50;
    r.free_bytes = 1ull << 49;
    r.total_inodes = 1000000;
    r.used_inodes = 12;
    ROUNDTRIP(meta_resp, &r, nofree);

    /* a directory inode: no layout */
    r.has_inode = 1;
    sample_inode(&r.inode, VF_ROOT_INO);
    r.inode.mode = 040755;
    memset(&r.inode.layout, 0, sizeof(r.inode.layout));
    ROUNDTRIP(meta_resp, &r, nofree);

    /* a full stripe */
    sample_inode(&r.inode, 5);
    r.inode.layout.nchains = VF_MAX_STRIPE;
    for (uint32_t i = 0; i < VF_MAX_STRIPE; i++)
        r.inode.layout.chains[i] = 1000 + i;
    ROUNDTRIP(meta_resp, &r, nofree);

    struct meta_resp none;
    memset(&none, 0, sizeof(none));
    ROUNDTRIP(meta_resp, &none, nofree);
}

static void test_meta_dirents(void)
{
    struct meta_dirent ents[3];
    memset(ents, 0, sizeof(ents));
    strcpy(ents[0].name, ".");
    ents[0].ino = VF_ROOT_INO;
    ents[0].type = DT_DIR;
    strcpy(ents[1].name, "file with spaces");
    ents[1].ino = 1ull << 60;
    ents[1].type = DT_REG;
    ents[1].has_inode = 1;
    sample_inode(&ents[1].inode, 1ull << 60);
    memset(ents[2].name, 'z', VF_MAX_NAME);
    ents[2].ino = 3;
    ents[2].type = DT_LNK;

    struct wbuf wb;
    size_t ends[3]; /* where each entry ends */
    wb_init(&wb, 0);
    for (int i = 0; i < 3; i++) {
        meta_dirent_enc(&wb, &ents[i]);
        ends[i] = wb.len;
    }
    CHECK(!wb.err);
    uint8_t *copy = dup_exact(wb.data, wb.len);
    struct rbuf rb;
    rb_init(&rb, copy, wb.len);
    int n = 0;
    while (rb.left > 0 && n < 4) {
        struct meta_dirent d;
        int rc = meta_dirent_next(&rb, &d);
        CHECK(rc == 0);
        if (rc)
            break;
        CHECK(n < 3 && meta_dirent_eq(&ents[n], &d));
        n++;
    }
    CHECK(n == 3 && rb_done(&rb));
    free(copy);

    /* a prefix ending exactly where an entry ends is a valid shorter list;
     * every other prefix must end in a failed entry */
    for (size_t k = 0; k < wb.len; k++) {
        uint8_t *p = dup_exact(wb.data, k);
        rb_init(&rb, p, k);
        int rc = 0, got = 0;
        while (rb.left > 0 && rc == 0) {
            struct meta_dirent d;
            rc = meta_dirent_next(&rb, &d);
            got += rc == 0;
        }
        bool boundary = k == 0 || k == ends[0] || k == ends[1];
        CHECK(boundary ? rc == 0 : rc == -EBADMSG);
        CHECK(got == (k >= ends[1] ? 2 : k >= ends[0] ? 1 : 0));
        free(p);
    }
    wb_free(&wb);

    /* bad names and types */
    const struct {
        const char *name;
        size_t len;
        uint32_t type;
        uint8_t has_inode;
    } bad[] = {
        {"a/b", 3, DT_REG, 0}, {"/", 1, DT_REG, 0}, {"a\0b", 3, DT_REG, 0},
        {"", 0, DT_REG, 0},    {"ok", 2, 16, 0},    {"ok", 2, DT_REG, 2},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wb_init(&wb, 0);
        wb_str(&wb, bad[i].name, bad[i].len);
        wb_u64(&wb, 1);
        wb_u32(&wb, bad[i].type);
        wb_u8(&wb, bad[i].has_inode);
        uint8_t *p = dup_exact(wb.data, wb.len);
        rb_init(&rb, p, wb.len);
        struct meta_dirent d;
        CHECK(meta_dirent_next(&rb, &d) == -EBADMSG);
        free(p);
        wb_free(&wb);
    }
    /* too long a name */
    char longname[VF_MAX_NAME + 1];
    memset(longname, 'q', sizeof(longname));
    wb_init(&wb, 0);
    wb_str(&wb, longname, sizeof(longname));
    wb_u64(&wb, 1);
    wb_u32(&wb, DT_REG);
    wb_u8(&wb, 0);
    rb_init(&rb, wb.data, wb.len);
    struct meta_dirent d;
    CHECK(meta_dirent_next(&rb, &d) == -EBADMSG);
    wb_free(&wb);
}

/* A meta_req encoding with one field replaced: the pieces before and after
 * the names are built from a zero request. */
static void enc_req_names(struct wbuf *wb, const void *name, size_t nlen, const void *newname,
                          size_t nnlen, uint32_t ngroups)
{
    wb_u32(wb, 1);
    wb_u32(wb, 2);
    wb_u32(wb, ngroups);
    for (uint32_t i = 0; i < ngroups; i++)
        wb_u32(wb, i);
    wb_u64(wb, 1);
    wb_u64(wb, 2);
    wb_u64(wb, 3);
    wb_str(wb, name, nlen);
    wb_str(wb, newname, nnlen);
    for (int i = 0; i < 3; i++)
        wb_u32(wb, 0); /* mode umask flags */
    wb_u64(wb, 0);     /* rdev */
    for (int i = 0; i < 3; i++)
        wb_u32(wb, 0); /* valid uid gid */
    for (int i = 0; i < 6; i++)
        wb_u64(wb, 0); /* size atime mtime ctime session length_hint */
    for (int i = 0; i < 3; i++)
        wb_u32(wb, 0); /* max_entries chunk_size stripe */
    wb_u32(wb, 0);     /* data */
}

static void test_meta_rejects(void)
{
    struct wbuf wb;

    /* the hand encoder matches the real one */
    wb_init(&wb, 0);
    enc_req_names(&wb, "a", 1, "b", 1, 2);
    EXPECT_DEC(meta_req, &wb, 0, nofree);

    /* groups: 32 fit, 33 do not */
    wb_init(&wb, 0);
    enc_req_names(&wb, "a", 1, "", 0, VF_MAX_GROUPS);
    EXPECT_DEC(meta_req, &wb, 0, nofree);
    wb_init(&wb, 0);
    enc_req_names(&wb, "a", 1, "", 0, VF_MAX_GROUPS + 1);
    EXPECT_DEC(meta_req, &wb, -EBADMSG, nofree);

    /* NUL in either name; '/' in newname; over-long name */
    wb_init(&wb, 0);
    enc_req_names(&wb, "a\0b", 3, "", 0, 0);
    EXPECT_DEC(meta_req, &wb, -EBADMSG, nofree);
    wb_init(&wb, 0);
    enc_req_names(&wb, "a", 1, "x\0", 2, 0);
    EXPECT_DEC(meta_req, &wb, -EBADMSG, nofree);
    wb_init(&wb, 0);
    enc_req_names(&wb, "a", 1, "x/y", 3, 0);
    EXPECT_DEC(meta_req, &wb, -EBADMSG, nofree);
    char longname[VF_MAX_NAME + 1];
    memset(longname, 'q', sizeof(longname));
    wb_init(&wb, 0);
    enc_req_names(&wb, longname, sizeof(longname), "", 0, 0);
    EXPECT_DEC(meta_req, &wb, -EBADMSG, nofree);

    /* CREATE layout hints: chunk size must be a power of two in range,
     * stripe at most VF_MAX_STRIPE */
    struct meta_req q;
    memset(&q, 0, sizeof(q));
    const struct {
        uint32_t chunk_size, stripe;
        int rc;
    } hints[] = {
        {0, 0, 0}, {64u << 10, 1, 0}, {64u << 20, VF_MAX_STRIPE, 0}, {32u << 10, 0, -EBADMSG},
        {128u << 20, 0, -EBADMSG}, {(1u << 20) + 4096, 0, -EBADMSG},
        {1u << 20, VF_MAX_STRIPE + 1, -EBADMSG},
    };
    for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
        q.chunk_size = hints[i].chunk_size;
        q.stripe = hints[i].stripe;
        wb_init(&wb, 0);
        meta_req_enc(&wb, &q);
        EXPECT_DEC(meta_req, &wb, hints[i].rc, nofree);
    }

    /* per-method name rules */
    memset(&q, 0, sizeof(q));
    strcpy(q.name, "a/b");
    CHECK(meta_req_check(META_LOOKUP, &q) == -EBADMSG);
    CHECK(meta_req_check(META_SETXATTR, &q) == 0); /* xattr names may hold '/' */
    CHECK(meta_req_check(META_READDIR, &q) == -EBADMSG);
    strcpy(q.name, "");
    CHECK(meta_req_check(META_LOOKUP, &q) == -EBADMSG);
    CHECK(meta_req_check(META_MKDIR, &q) == -EBADMSG);
    CHECK(meta_req_check(META_READDIR, &q) == 0);
    CHECK(meta_req_check(META_GETXATTR, &q) == -EBADMSG);
    CHECK(meta_req_check(META_GETATTR, &q) == 0);
    strcpy(q.name, "ok");
    CHECK(meta_req_check(META_LOOKUP, &q) == 0);
    CHECK(meta_req_check(META_RENAME, &q) == -EBADMSG); /* newname missing */
    strcpy(q.newname, "new");
    CHECK(meta_req_check(META_RENAME, &q) == 0);
    CHECK(meta_req_check(META_SYMLINK, &q) == -EBADMSG); /* no target */
    q.data = "t\0x";
    q.data_len = 3;
    CHECK(meta_req_check(META_SYMLINK, &q) == -EBADMSG); /* NUL in target */
    q.data_len = 1;
    CHECK(meta_req_check(META_SYMLINK, &q) == 0);
    CHECK(meta_req_check(0x02ff, &q) == -EBADMSG);
    CHECK(meta_req_check(MG_REGISTER, &q) == -EBADMSG);

    /* response: bools must be 0/1; inode layout limits */
    struct meta_resp r;
    memset(&r, 0, sizeof(r));
    r.has_inode = 1;
    sample_inode(&r.inode, 9);
    wb_init(&wb, 0);
    meta_resp_enc(&wb, &r);
    CHECK(!wb.err && wb.data[0] == 1);
    wb.data[0] = 2;
    EXPECT_DEC(meta_resp, &wb, -EBADMSG, nofree);

    const struct {
        uint32_t chunk_size, nchains;
        int rc;
    } layouts[] = {
        {0, 0, 0}, {1u << 16, VF_MAX_STRIPE, 0}, {0, 1, -EBADMSG}, {3u << 16, 1, -EBADMSG},
        {1u << 20, VF_MAX_STRIPE + 1, -EBADMSG},
    };
    for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
        /* hand-encode so the encoder's own checks do not interfere */
        wb_init(&wb, 0);
        wb_u8(&wb, 1);
        wb_u64(&wb, 9);
        for (int k = 0; k < 4; k++)
            wb_u32(&wb, 1);
        for (int k = 0; k < 6; k++)
            wb_u64(&wb, 1);
        wb_u32(&wb, layouts[i].chunk_size);
        wb_u32(&wb, 1);
        wb_u32(&wb, layouts[i].nchains);
        for (uint32_t k = 0; k < layouts[i].nchains; k++)
            wb_u32(&wb, k);
        wb_u64(&wb, 0); /* session */
        wb_u8(&wb, 0);  /* eof */
        wb_u32(&wb, 0); /* data */
        for (int k = 0; k < 4; k++)
            wb_u64(&wb, 0);
        EXPECT_DEC(meta_resp, &wb, layouts[i].rc, nofree);
    }

    /* data length beyond the bytes present */
    wb_init(&wb, 0);
    wb_u8(&wb, 0);
    wb_u64(&wb, 0);
    wb_u8(&wb, 0);
    wb_u32(&wb, 100);
    wb_bytes(&wb, "short", 5);
    EXPECT_DEC(meta_resp, &wb, -EBADMSG, nofree);
}

/* ---------------- storage ---------------- */

static void test_storage_roundtrips(void)
{
    static uint8_t data[4096];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 3);
    struct stg_route route = {.target_id = 101, .chain_id = 5, .chain_version = 1ull << 40};
    struct stg_chunk_id chunk = {.ino = 0xabcdef0123456789ull, .index = 77};

    struct stg_write_req w = {.route = route, .chunk = chunk, .chunk_size = 64u << 10,
                              .offset = (64u << 10) - sizeof(data), .version = 3,
                              .tag = (5ull << 32) | 9, .data = data, .len = sizeof(data)};
    ROUNDTRIP(stg_write_req, &w, nofree);
    w.data = NULL;
    w.len = 0;
    w.offset = 64u << 10; /* an empty write at the end of the chunk */
    ROUNDTRIP(stg_write_req, &w, nofree);
    /* a whole-chunk push (resync) and an absent one; flags only with offset
     * 0 and a version, and no unknown flag bits */
    w.offset = 0;
    w.data = data;
    w.len = sizeof(data);
    w.flags = STG_WF_FULL;
    ROUNDTRIP(stg_write_req, &w, nofree);
    w.flags = STG_WF_ABSENT;
    w.len = 0;
    w.data = NULL;
    ROUNDTRIP(stg_write_req, &w, nofree);
    w.flags = STG_WF_ABSENT | STG_WF_PUSH;
    ROUNDTRIP(stg_write_req, &w, nofree);
    {
        struct stg_write_req bad[4] = {w, w, w, w};
        bad[0].flags = 8;
        bad[1].flags = STG_WF_FULL, bad[1].offset = 1;
        bad[2].flags = STG_WF_FULL, bad[2].version = 0;
        bad[3].flags = STG_WF_PUSH; /* a push of what? */
        for (int i = 0; i < 4; i++) {
            struct wbuf b;
            wb_init(&b, 0);
            stg_write_req_enc(&b, &bad[i]);
            struct stg_write_req got;
            CHECK(!b.err && stg_write_req_dec(b.data, b.len, &got) == -EBADMSG);
            wb_free(&b);
        }
    }
    w.flags = 0;

    struct stg_write_resp wr = {.version = 4, .chunk_len = 65536};
    ROUNDTRIP(stg_write_resp, &wr, nofree);
    struct stg_read_req rq = {.route = route, .chunk = chunk, .offset = 100, .len = 1u << 20};
    ROUNDTRIP(stg_read_req, &rq, nofree);
    struct stg_read_resp rr = {.version = 4, .chunk_len = 5000, .data = data, .len = 4096};
    ROUNDTRIP(stg_read_resp, &rr, nofree);
    struct stg_truncate_req tr = {.route = route, .ino = 5, .chunk_size = 64u << 20,
                                  .length = 12345678901ull, .version = 0, .tag = 8};
    ROUNDTRIP(stg_truncate_req, &tr, nofree);
    struct stg_remove_req rm = {.route = route, .ino = 5, .version = 2, .tag = 9};
    ROUNDTRIP(stg_remove_req, &rm, nofree);
    struct stg_query_req qq = {.route = route, .ino = 6};
    ROUNDTRIP(stg_query_req, &qq, nofree);
    struct stg_query_resp qr = {.nchunks = 3, .last_index = 40, .last_len = 100,
                                .bytes = 1ull << 33};
    ROUNDTRIP(stg_query_resp, &qr, nofree);
    struct stg_chunk_meta_req cmq = {.target_id = 101, .chunk = chunk};
    ROUNDTRIP(stg_chunk_meta_req, &cmq, nofree);
    struct stg_chunk_meta cm = {.chunk = chunk, .exists = 1, .dirty = 1, .version = 7,
                                .len = 1u << 20, .crc32c = 0xe3069283};
    ROUNDTRIP(stg_chunk_meta, &cm, nofree);
    struct stg_list_req lq = {.target_id = 101, .after = chunk, .max = 4096, .ino = 0};
    ROUNDTRIP(stg_list_req, &lq, nofree);
    struct stg_chunk_meta list[3] = {
        cm, {.chunk = {1, 2}, .exists = 1, .version = 1, .len = 5, .crc32c = 1},
        {.chunk = {~0ull, ~0u}, .exists = 0}};
    struct stg_list_resp lr = {.n = 3, .eof = 1, .chunks = list};
    ROUNDTRIP(stg_list_resp, &lr, stg_list_resp_free);
    struct stg_list_resp lr0 = {.n = 0, .eof = 0};
    ROUNDTRIP(stg_list_resp, &lr0, stg_list_resp_free);
    struct stg_sync_req sy = {.target_id = 0};
    ROUNDTRIP(stg_sync_req, &sy, nofree);
    struct stg_repair_req rp = {.route = {5, 6, 7}, .chunk = {0x99, 3}, .dest_target = 8};
    ROUNDTRIP(stg_repair_req, &rp, nofree);
    struct mg_sync_done_req sd = {.target_id = 11, .chain_id = 100, .chain_version = 1ull << 40};
    ROUNDTRIP(mg_sync_done_req, &sd, nofree);
    struct mg_report_down_req rd = {.node_id = 103, .reporter_id = 0};
    ROUNDTRIP(mg_report_down_req, &rd, nofree);
    struct stg_statfs_resp sf = {.ntargets = 64};
    for (uint32_t i = 0; i < 64; i++) {
        sf.targets[i].id = i + 100;
        sf.targets[i].capacity = (uint64_t)i << 35;
        sf.targets[i].used = i;
    }
    ROUNDTRIP(stg_statfs_resp, &sf, nofree);
}

static void enc_write(struct wbuf *wb, uint32_t chunk_size, uint32_t offset, uint32_t announced,
                      uint32_t present)
{
    static const uint8_t zeros[256];
    wb_init(wb, 0);
    wb_u32(wb, 1);
    wb_u32(wb, 2);
    wb_u64(wb, 3);
    wb_u64(wb, 4);
    wb_u32(wb, 5);
    wb_u32(wb, chunk_size);
    wb_u32(wb, offset);
    wb_u64(wb, 6);
    wb_u64(wb, 7);
    wb_u8(wb, 0); /* flags */
    wb_u32(wb, announced);
    wb_bytes(wb, zeros, present);
}

static void test_storage_rejects(void)
{
    struct wbuf wb;
    const uint32_t cs = 64u << 10;

    enc_write(&wb, cs, 0, 100, 100);
    EXPECT_DEC(stg_write_req, &wb, 0, nofree);
    enc_write(&wb, cs, cs - 100, 100, 100);
    EXPECT_DEC(stg_write_req, &wb, 0, nofree);
    enc_write(&wb, cs, cs - 99, 100, 100); /* one byte past the chunk */
    EXPECT_DEC(stg_write_req, &wb, -EBADMSG, nofree);
    enc_write(&wb, cs, cs + 1, 0, 0);
    EXPECT_DEC(stg_write_req, &wb, -EBADMSG, nofree);
    enc_write(&wb, cs, 0xffffff00u, 0x100, 0); /* offset+len wraps in 32 bits */
    EXPECT_DEC(stg_write_req, &wb, -EBADMSG, nofree);
    enc_write(&wb, cs, 0, 100, 99); /* fewer bytes than announced */
    EXPECT_DEC(stg_write_req, &wb, -EBADMSG, nofree);
    enc_write(&wb, cs, 0, 99, 100); /* more */
    EXPECT_DEC(stg_write_req, &wb, -EBADMSG, nofree);
    const uint32_t bad_cs[] = {0, 1, 32u << 10, 128u << 20, (64u << 10) + 1, 3u << 16,
                               0x80000000u};
    for (size_t i = 0; i < sizeof(bad_cs) / sizeof(bad_cs[0]); i++) {
        enc_write(&wb, bad_cs[i], 0, 0, 0);
        EXPECT_DEC(stg_write_req, &wb, -EBADMSG, nofree);
    }
    const uint32_t good_cs[] = {64u << 10, 1u << 20, 64u << 20};
    for (size_t i = 0; i < sizeof(good_cs) / sizeof(good_cs[0]); i++) {
        enc_write(&wb, good_cs[i], 0, 1, 1);
        EXPECT_DEC(stg_write_req, &wb, 0, nofree);
    }

    /* truncate: chunk size rules too */
    struct stg_truncate_req tr = {.chunk_size = 1000};
    wb_init(&wb, 0);
    stg_truncate_req_enc(&wb, &tr);
    EXPECT_DEC(stg_truncate_req, &wb, -EBADMSG, nofree);

    /* read: offset+len within the largest chunk */
    struct stg_read_req rq = {.offset = 64u << 20, .len = 0};
    wb_init(&wb, 0);
    stg_read_req_enc(&wb, &rq);
    EXPECT_DEC(stg_read_req, &wb, 0, nofree);
    rq.offset = 1;
    rq.len = 64u << 20;
    wb_init(&wb, 0);
    stg_read_req_enc(&wb, &rq);
    EXPECT_DEC(stg_read_req, &wb, -EBADMSG, nofree);
    rq.offset = 0xffffffffu;
    rq.len = 2;
    wb_init(&wb, 0);
    stg_read_req_enc(&wb, &rq);
    EXPECT_DEC(stg_read_req, &wb, -EBADMSG, nofree);

    /* read response: no more data than the chunk holds */
    static const uint8_t bytes[16];
    struct stg_read_resp rr = {.version = 1, .chunk_len = 15, .data = bytes, .len = 16};
    wb_init(&wb, 0);
    stg_read_resp_enc(&wb, &rr);
    EXPECT_DEC(stg_read_resp, &wb, -EBADMSG, nofree);

    /* list: max and n over 4096, bools */
    struct stg_list_req lq = {.max = 4097};
    wb_init(&wb, 0);
    stg_list_req_enc(&wb, &lq);
    EXPECT_DEC(stg_list_req, &wb, -EBADMSG, nofree);
    wb_init(&wb, 0);
    wb_u32(&wb, 4097);
    wb_u8(&wb, 1);
    for (int i = 0; i < 4097; i++) {
        wb_u64(&wb, 1);
        wb_u32(&wb, (uint32_t)i);
        wb_u8(&wb, 1);
        wb_u8(&wb, 0);
        wb_u64(&wb, 1);
        wb_u32(&wb, 0);
        wb_u32(&wb, 0);
    }
    EXPECT_DEC(stg_list_resp, &wb, -EBADMSG, stg_list_resp_free);
    /* the same with 4096 entries decodes */
    wb_init(&wb, 0);
    wb_u32(&wb, 4096);
    wb_u8(&wb, 1);
    for (int i = 0; i < 4096; i++) {
        wb_u64(&wb, 1);
        wb_u32(&wb, (uint32_t)i);
        wb_u8(&wb, 1);
        wb_u8(&wb, 0);
        wb_u64(&wb, 1);
        wb_u32(&wb, 0);
        wb_u32(&wb, 0);
    }
    EXPECT_DEC(stg_list_resp, &wb, 0, stg_list_resp_free);
    /* a bad bool in the last of two entries: allocated, then freed */
    struct stg_chunk_meta two[2] = {{.exists = 1}, {.exists = 1, .dirty = 1}};
    struct stg_list_resp lr = {.n = 2, .chunks = two};
    wb_init(&wb, 0);
    stg_list_resp_enc(&wb, &lr);
    CHECK(!wb.err);
    wb.data[wb.len - 4 - 4 - 8 - 1] = 2; /* the second entry's dirty flag */
    EXPECT_DEC(stg_list_resp, &wb, -EBADMSG, stg_list_resp_free);

    /* statfs: 65 targets */
    wb_init(&wb, 0);
    wb_u32(&wb, 65);
    for (int i = 0; i < 65; i++) {
        wb_u32(&wb, (uint32_t)i);
        wb_u64(&wb, 1);
        wb_u64(&wb, 1);
    }
    EXPECT_DEC(stg_statfs_resp, &wb, -EBADMSG, nofree);
    struct stg_statfs_resp sf = {.ntargets = 65};
    wb_init(&wb, 0);
    stg_statfs_resp_enc(&wb, &sf);
    CHECK(wb.err);
    wb_free(&wb);

    /* chunk meta bools */
    struct stg_chunk_meta cm = {.exists = 1};
    wb_init(&wb, 0);
    stg_chunk_meta_enc(&wb, &cm);
    wb.data[12] = 3;
    EXPECT_DEC(stg_chunk_meta, &wb, -EBADMSG, nofree);
}

/* ---------------- names ---------------- */

static void test_names(void)
{
    CHECK(strcmp(vf_strstatus(0), "ok") == 0);
    CHECK(strcmp(vf_strstatus(ENOENT), strerror(ENOENT)) == 0);
    CHECK(strcmp(vf_strstatus(EEXIST), strerror(EEXIST)) == 0);
    CHECK(strcmp(vf_strstatus(VF_E_STALE_CHAIN), "stale chain version") == 0);
    CHECK(strcmp(vf_strstatus(VF_E_NOT_PRIMARY), "not the primary mgmtd") == 0);
    CHECK(strcmp(vf_strstatus(RPC_E_TIMEOUT), rpc_strerror(RPC_E_TIMEOUT)) == 0);
    CHECK(strcmp(vf_strstatus(999999), "unknown status") == 0);
    CHECK(vf_strstatus(990) != NULL);
    CHECK(strcmp(vf_node_type_name(NODE_STORAGE), "storage") == 0);
    CHECK(strcmp(vf_node_type_name(0), "unknown") == 0);
    CHECK(strcmp(vf_target_state_name(TS_SYNCING), "syncing") == 0);
    CHECK(strcmp(vf_target_state_name(99), "unknown") == 0);
}

int main(void)
{
    test_mgmtd_roundtrips();
    test_mgmtd_rejects();
    test_meta_roundtrips();
    test_meta_dirents();
    test_meta_rejects();
    test_storage_roundtrips();
    test_storage_rejects();
    test_names();
    if (failures) {
        fprintf(stderr, "test_proto: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_proto: ok\n");
    return 0;
}
