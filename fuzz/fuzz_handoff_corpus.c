/* fuzz_handoff_corpus.c — writes the seed corpora of fuzz_handoff and
 * fuzz_keeper_msg:
 *
 *   build-fuzz/fuzz/fuzz_handoff_corpus fuzz/corpus
 *
 * fuzz_handoff: compact region images (fuzz_handoff_image.h) of both
 * versions, sealed and unsealed (a crashed daemon's), with nodes, live,
 * reserved and free handle slots and request records, two images larger
 * than the target's small region (too many handles, too many nodes), and
 * the version-1 image the importer's own test writer makes;
 * fuzz_keeper_msg: one valid message of every type and two malformed ones. Deterministic; files of the same name are
 * replaced.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuse/handoff.h"
#include "fuzz_handoff_image.h"
#include "keeper/keeper_proto.h"

static const char *root;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void write_seed(const char *target, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", root, target);
    if (mkdir(path, 0755) && errno != EEXIST)
        die(path);
    snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        die(path);
    if (n && fwrite(p, 1, n, f) != n)
        die(path);
    if (fclose(f))
        die(path);
}

static void image_seed(const char *name, const struct fi_spec *sp)
{
    static uint8_t buf[8192];
    size_t n = fi_build(buf, sizeof(buf), sp);
    if (n == 0) {
        fprintf(stderr, "seed %s does not fit\n", name);
        exit(1);
    }
    write_seed("fuzz_handoff", name, buf, n);
}

static void handoff_seeds(void)
{
    struct fi_node nodes[6];
    memset(nodes, 0, sizeof(nodes));
    for (int i = 0; i < 6; i++) {
        nodes[i].id = 100 + (uint64_t)i * 7;
        nodes[i].nlookup = (uint64_t)i + 1;
        nodes[i].keylen = (uint16_t)(i * 8);
        memset(nodes[i].key, 'a' + i, nodes[i].keylen);
    }
    nodes[5].id = 0; /* a freed entry */
    struct fi_fh fhs[4];
    memset(fhs, 0, sizeof(fhs));
    fhs[0] = (struct fi_fh){ .state = FI_FH_LIVE, .kind = HO_FH_FILE, .flags = 02, .ino = 100,
                             .backend_fh = 9 };
    memcpy(fhs[0].blob, "session-and-end", 15);
    fhs[1] = (struct fi_fh){ .state = FI_FH_RESERVED, .ino = 107 };
    fhs[2] = (struct fi_fh){ .state = FI_FH_FREE, .next_free = UINT32_MAX };
    fhs[3] = (struct fi_fh){ .state = FI_FH_LIVE, .kind = HO_FH_DIR, .ino = 114 };
    struct ho_rec recs[3] = {
        { .unique = 17, .opcode = 1, .phase = HO_REC_COUNTED, .pending_node = 100 },
        { .unique = 18, .opcode = 35, .phase = HO_REC_DISPATCHED },
        { .unique = 0, .phase = HO_REC_NONE },
    };
    struct fi_spec sp = {
        .version = 2, .sealed = 1, .nstripes = 2, .stripe_cap = 4, .fh_cap = 6, .rec_cap = 4,
        .generation = 3, .owner_pid = 1234, .init = { 41, 1, 0x40000 },
        .nodes = nodes, .nnodes = 6, .fhs = fhs, .nfhs = 4, .recs = recs, .nrecs = 3,
    };
    image_seed("v2-sealed", &sp);
    sp.sealed = 0;
    image_seed("v2-crashed", &sp);
    /* version 3: a READDIRPLUS killed while counting its third entry */
    struct ho_rec recs3[2] = {
        { .unique = 21, .opcode = 44, .phase = HO_REC_DISPATCHED, .pending_node = 100,
          .progress = 2, .pending_idx = 2, .pending_before = 0 },
        { .unique = 22, .opcode = 1, .phase = HO_REC_COUNTED, .pending_node = 107,
          .progress = 1, .pending_idx = HO_NO_PENDING },
    };
    sp.version = 3, sp.recs = recs3, sp.nrecs = 2;
    image_seed("v3-crashed-counting", &sp);
    sp.version = 2, sp.recs = recs, sp.nrecs = 3;
    sp.nnodes = 0, sp.nfhs = 0, sp.nrecs = 0, sp.sealed = 1;
    image_seed("v2-empty", &sp);
    /* more than the fuzz target's region holds (16 handles) */
    struct fi_fh many[20];
    memset(many, 0, sizeof(many));
    for (int i = 0; i < 20; i++)
        many[i] = (struct fi_fh){ .state = FI_FH_LIVE, .ino = 100 };
    sp = (struct fi_spec){ .version = 2, .sealed = 0, .nstripes = 1, .stripe_cap = 1,
                           .fh_cap = 20, .rec_cap = 0, .fhs = many, .nfhs = 20 };
    image_seed("v2-many-handles", &sp);
    /* 100 distinct nodes: more than one stripe of the target's region
     * (256 nodes in 64 stripes of 4) holds, so its node table fills */
    static struct fi_node lots[100];
    memset(lots, 0, sizeof(lots));
    for (int i = 0; i < 100; i++)
        lots[i] = (struct fi_node){ .id = 1000 + (uint64_t)i, .nlookup = 1 };
    sp = (struct fi_spec){ .version = 2, .sealed = 1, .nstripes = 1, .stripe_cap = 100,
                           .fh_cap = 0, .rec_cap = 0, .nodes = lots, .nnodes = 100 };
    image_seed("v2-many-nodes", &sp);

    sp = (struct fi_spec){
        .version = 1, .sealed = 1, .nstripes = 3, .stripe_cap = 2, .fh_cap = 4, .rec_cap = 2,
        .generation = 1, .owner_pid = 99, .init = { 31, 0, 1 },
        .nodes = nodes, .nnodes = 5, .fhs = fhs, .nfhs = 4, .recs = recs, .nrecs = 2,
    };
    image_seed("v1-sealed", &sp);
    sp.sealed = 0;
    image_seed("v1-crashed", &sp);

    uint8_t buf[8192];
    uint64_t ids[4] = { 1, 2, 3, 1u << 20 }, counts[4] = { 1, 5, 1, 2 };
    size_t n = ho_test_write_old(buf, sizeof(buf), 1, &(struct ho_init){ 31, 0, 1 }, ids,
                               counts, 4, NULL, 0);
    if (n == 0) {
        fprintf(stderr, "ho_test_write_old failed\n");
        exit(1);
    }
    write_seed("fuzz_handoff", "v1-test-writer", buf, n);
}

static void keeper_seeds(void)
{
    for (uint32_t t = 1; t < KP_TYPE_MAX; t++) {
        struct kp_msg m;
        memset(&m, 0, sizeof(m));
        m.type = t;
        m.arg = t == KP_HELLO ? KP_MODE_RESTART : 0;
        m.val = 7;
        snprintf(m.text, sizeof(m.text), "%s", t == KP_CTL_UPGRADE ? "/usr/bin/valorfs-fuse"
                                                  : t == KP_FAILED ? "drain timed out" : "");
        char name[64];
        snprintf(name, sizeof(name), "%s", kp_type_name(t));
        write_seed("fuzz_keeper_msg", name, &m, sizeof(m));
    }
    struct kp_msg m;
    memset(&m, 'x', sizeof(m));
    m.type = KP_READY;
    write_seed("fuzz_keeper_msg", "unterminated", &m, sizeof(m));
    write_seed("fuzz_keeper_msg", "short", &m, 8);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_ROOT   (e.g. fuzz/corpus)\n", argv[0]);
        return 2;
    }
    root = argv[1];
    handoff_seeds();
    keeper_seeds();
    return 0;
}
