/* fuzz_proto_corpus.c — writes the seed corpora of the protocol fuzz
 * targets from the real encoders, so seeds always match the codecs.
 *
 *   build-fuzz/fuzz/fuzz_proto_corpus fuzz/corpus
 *
 * writes fuzz/corpus/{fuzz_rpc_frame,fuzz_proto_mgmtd,fuzz_proto_meta,
 * fuzz_proto_storage}/<name>: one selector byte (the message's index in
 * the target's codec table) + one valid encoding, plus a few near misses.
 * The output is deterministic; existing files of the same name are
 * replaced.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto/meta_proto.h"
#include "proto/mgmtd_proto.h"
#include "proto/storage_proto.h"
#include "rpc/rpc.h"

static const char *root;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void write_seed(const char *target, const char *name, uint8_t sel, const void *p,
                       size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", root, target);
    if (mkdir(path, 0755) && errno != EEXIST)
        die(path);
    snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        die(path);
    if (sel != 0xff)
        fputc(sel, f);
    if (n && fwrite(p, 1, n, f) != n)
        die(path);
    if (fclose(f))
        die(path);
}

/* Encode with enc into a fresh wbuf and write it as a seed. */
#define SEED(target, name, sel, T, x)                                          \
    do {                                                                       \
        struct wbuf wb_;                                                       \
        wb_init(&wb_, 0);                                                      \
        T##_enc(&wb_, (x));                                                    \
        if (wb_.err) {                                                         \
            fprintf(stderr, "encoding seed %s failed\n", name);               \
            exit(1);                                                           \
        }                                                                      \
        write_seed(target, name, sel, wb_.data, wb_.len);                      \
        wb_free(&wb_);                                                         \
    } while (0)

static void sample_inode(struct meta_inode *i, uint64_t ino, int regular)
{
    memset(i, 0, sizeof(*i));
    i->ino = ino;
    i->mode = regular ? 0100644 : 040755;
    i->uid = 1000;
    i->gid = 1000;
    i->nlink = regular ? 1 : 2;
    i->size = regular ? 5000000 : 4096;
    i->atime_ns = 1700000000000000000ll;
    i->mtime_ns = 1700000000000000001ll;
    i->ctime_ns = 1700000000000000002ll;
    i->parent = VF_ROOT_INO;
    if (regular) {
        i->layout.chunk_size = 1u << 20;
        i->layout.table_id = 1;
        i->layout.nchains = 4;
        for (uint32_t k = 0; k < 4; k++)
            i->layout.chains[k] = 100 + k;
    }
}

static void mgmtd_seeds(void)
{
    const char *t = "fuzz_proto_mgmtd";
    struct mg_node nodes[2] = {
        {.id = 1, .type = NODE_MGMTD, .alive = 1, .addr = "127.0.0.1:9000", .lease_expires_ms = 5},
        {.id = 2, .type = NODE_STORAGE, .alive = 0, .addr = "[::1]:9100"},
    };
    struct mg_target targets[2] = {
        {.id = 10, .node_id = 2, .chain_id = 100, .state = TS_SERVING, .capacity = 1 << 30},
        {.id = 11, .node_id = 2, .state = TS_WAITING},
    };
    struct mg_chain chains[2] = {
        {.id = 100, .version = 3, .ntargets = 2, .targets = {10, 12}},
        {.id = 101, .version = 1, .ntargets = VF_MAX_REPLICAS, .targets = {1, 2, 3, 4, 5, 6, 7, 8}},
    };
    uint32_t tc[3] = {100, 101, 102};
    struct mg_table tables[1] = {{.id = 1, .version = 2, .replicas = 2, .nchains = 3, .chains = tc}};
    struct mg_routing r = {.version = 9, .primary_id = 1, .nnodes = 2, .ntargets = 2,
                           .nchains = 2, .ntables = 1, .nodes = nodes, .targets = targets,
                           .chains = chains, .tables = tables};
    SEED(t, "routing", 0, mg_routing, &r);
    struct mg_routing empty = {.version = 1};
    SEED(t, "routing-empty", 0, mg_routing, &empty);

    struct mg_register_req reg = {.type = NODE_STORAGE, .node_id = 2, .addr = "10.1.2.3:9100",
                                  .ntargets = 2};
    reg.targets[0] = (struct mg_target_report){10, TS_SERVING, 1 << 30, 100};
    reg.targets[1] = (struct mg_target_report){11, TS_SYNCING, 1 << 30, 0};
    SEED(t, "register", 1, mg_register_req, &reg);
    struct mg_register_resp rr = {.node_id = 2, .lease_ms = 5000, .routing_version = 9};
    SEED(t, "register-resp", 2, mg_register_resp, &rr);
    struct mg_heartbeat_req hb = {.node_id = 2, .routing_version = 9, .ntargets = 1};
    hb.targets[0] = reg.targets[0];
    SEED(t, "heartbeat", 3, mg_heartbeat_req, &hb);
    /* full arrays: a mutation that adds one more item must be refused */
    hb.ntargets = 64;
    for (uint32_t i = 0; i < 64; i++)
        hb.targets[i] = (struct mg_target_report){20 + i, TS_SERVING, 1 << 30, i};
    SEED(t, "heartbeat-full", 3, mg_heartbeat_req, &hb);
    reg.ntargets = 64;
    memcpy(reg.targets, hb.targets, sizeof(reg.targets));
    SEED(t, "register-full", 1, mg_register_req, &reg);
    struct mg_heartbeat_resp hr = {.lease_ms = 5000, .routing_version = 10};
    SEED(t, "heartbeat-resp", 4, mg_heartbeat_resp, &hr);
    struct mg_get_routing_req gr = {.have_version = 9};
    SEED(t, "get-routing", 5, mg_get_routing_req, &gr);
    struct mg_create_table_req ct = {.table_id = 0, .replicas = 3, .nchains = 8};
    SEED(t, "create-table", 6, mg_create_table_req, &ct);
    struct mg_create_table_resp ctr = {.table_id = 1, .nchains = 8, .routing_version = 11};
    SEED(t, "create-table-resp", 7, mg_create_table_resp, &ctr);
    struct mg_set_target_req st = {.target_id = 10, .state = TS_OFFLINE};
    SEED(t, "set-target", 8, mg_set_target_req, &st);
    struct mg_primary pr = {.node_id = 1, .addr = "127.0.0.1:9000", .lease_expires_ms = 77};
    SEED(t, "primary", 9, mg_primary, &pr);
    struct mg_sync_done_req sd = {.target_id = 11, .chain_id = 100, .chain_version = 4};
    SEED(t, "sync-done", 10, mg_sync_done_req, &sd);
    struct mg_report_down_req rd = {.node_id = 103, .reporter_id = 101};
    SEED(t, "report-down", 11, mg_report_down_req, &rd);
}

static void meta_seeds(void)
{
    const char *t = "fuzz_proto_meta";
    struct meta_req q;
    memset(&q, 0, sizeof(q));
    q.user = (struct vf_user){.uid = 1000, .gid = 1000, .ngroups = 2, .groups = {10, 20}};
    q.parent = VF_ROOT_INO;
    strcpy(q.name, "file.txt");
    q.mode = 0100644;
    q.umask = 022;
    q.flags = 0301;
    SEED(t, "req-create", 0, meta_req, &q);
    q.req_client = 0x1d0fc11e27ull; /* a request id: the optional trailer */
    q.req_seq = 7;
    SEED(t, "req-create-id", 0, meta_req, &q);
    q.req_client = q.req_seq = 0;
    strcpy(q.newname, "other");
    q.newparent = 5;
    SEED(t, "req-rename", 0, meta_req, &q);
    q.data = "target/of/link";
    q.data_len = 14;
    SEED(t, "req-symlink", 0, meta_req, &q);
    memset(&q, 0, sizeof(q));
    q.ino = 7;
    q.valid = 0x1f;
    q.size = 12345;
    q.max_entries = 64;
    q.chunk_size = 1u << 20;
    q.stripe = 4;
    SEED(t, "req-setattr", 0, meta_req, &q);
    q.user.ngroups = VF_MAX_GROUPS;
    for (uint32_t i = 0; i < VF_MAX_GROUPS; i++)
        q.user.groups[i] = 100 + i;
    SEED(t, "req-groups-full", 0, meta_req, &q);

    struct meta_resp r;
    memset(&r, 0, sizeof(r));
    r.has_inode = 1;
    sample_inode(&r.inode, 7, 1);
    r.session = 99;
    SEED(t, "resp-inode", 1, meta_resp, &r);
    r.inode.layout.nchains = VF_MAX_STRIPE;
    for (uint32_t k = 0; k < VF_MAX_STRIPE; k++)
        r.inode.layout.chains[k] = 200 + k;
    SEED(t, "resp-stripe-full", 1, meta_resp, &r);
    memset(&r, 0, sizeof(r));
    r.total_bytes = 1ull << 40;
    r.free_bytes = 1ull << 39;
    r.total_inodes = 1 << 20;
    r.used_inodes = 5;
    SEED(t, "resp-statfs", 1, meta_resp, &r);

    /* a READDIR listing, also as the data of a response */
    struct meta_dirent d[3];
    memset(d, 0, sizeof(d));
    strcpy(d[0].name, ".");
    d[0].ino = 1;
    d[0].type = 4;
    strcpy(d[1].name, "dir");
    d[1].ino = 8;
    d[1].type = 4;
    d[1].has_inode = 1;
    sample_inode(&d[1].inode, 8, 0);
    strcpy(d[2].name, "file");
    d[2].ino = 7;
    d[2].type = 8;
    d[2].has_inode = 1;
    sample_inode(&d[2].inode, 7, 1);
    struct wbuf wb;
    wb_init(&wb, 0);
    for (int i = 0; i < 3; i++)
        meta_dirent_enc(&wb, &d[i]);
    write_seed(t, "dirents", 2, wb.data, wb.len);
    memset(&r, 0, sizeof(r));
    r.eof = 1;
    r.data = wb.data;
    r.data_len = (uint32_t)wb.len;
    SEED(t, "resp-readdir", 1, meta_resp, &r);
    wb_free(&wb);
}

static void storage_seeds(void)
{
    const char *t = "fuzz_proto_storage";
    static const char data[] = "0123456789abcdef0123456789abcdef";
    struct stg_route route = {.target_id = 10, .chain_id = 100, .chain_version = 3};
    struct stg_chunk_id chunk = {.ino = 7, .index = 2};
    struct stg_write_req w = {.route = route, .chunk = chunk, .chunk_size = 1u << 16,
                              .offset = 100, .version = 0, .tag = (1ull << 32) | 5,
                              .data = data, .len = 32};
    SEED(t, "write", 0, stg_write_req, &w);
    w.offset = (1u << 16) - 32;
    w.version = 4;
    SEED(t, "write-end", 0, stg_write_req, &w);
    w.offset = 0;
    w.flags = STG_WF_FULL;
    SEED(t, "write-full", 0, stg_write_req, &w);
    w.flags = STG_WF_ABSENT;
    w.len = 0;
    SEED(t, "write-absent", 0, stg_write_req, &w);
    w.flags = STG_WF_FULL | STG_WF_PUSH;
    w.len = 32;
    SEED(t, "write-push", 0, stg_write_req, &w);
    struct stg_write_resp wr = {.version = 4, .chunk_len = 1u << 16};
    SEED(t, "write-resp", 1, stg_write_resp, &wr);
    struct stg_read_req rq = {.route = route, .chunk = chunk, .offset = 0, .len = 4096};
    SEED(t, "read", 2, stg_read_req, &rq);
    struct stg_read_resp rr = {.version = 4, .chunk_len = 132, .data = data, .len = 32};
    SEED(t, "read-resp", 3, stg_read_resp, &rr);
    struct stg_truncate_req tr = {.route = route, .ino = 7, .chunk_size = 1u << 20,
                                  .length = 3000000, .tag = 6};
    SEED(t, "truncate", 4, stg_truncate_req, &tr);
    struct stg_remove_req rm = {.route = route, .ino = 7, .version = 1, .tag = 7};
    SEED(t, "remove", 5, stg_remove_req, &rm);
    struct stg_query_req qq = {.route = route, .ino = 7};
    SEED(t, "query", 6, stg_query_req, &qq);
    struct stg_query_resp qr = {.nchunks = 3, .last_index = 6, .last_len = 100, .bytes = 2000000};
    SEED(t, "query-resp", 7, stg_query_resp, &qr);
    struct stg_chunk_meta_req cq = {.target_id = 10, .chunk = chunk};
    SEED(t, "chunk-meta-req", 8, stg_chunk_meta_req, &cq);
    struct stg_chunk_meta cm = {.chunk = chunk, .exists = 1, .dirty = 0, .version = 4,
                                .len = 4096, .crc32c = 0x12345678};
    SEED(t, "chunk-meta", 9, stg_chunk_meta, &cm);
    struct stg_list_req lq = {.target_id = 10, .after = {7, 0}, .max = 100, .ino = 7};
    SEED(t, "list", 10, stg_list_req, &lq);
    struct stg_chunk_meta list[2] = {cm, {.chunk = {7, 3}, .exists = 1, .dirty = 1, .len = 1}};
    struct stg_list_resp lr = {.n = 2, .eof = 1, .chunks = list};
    SEED(t, "list-resp", 11, stg_list_resp, &lr);
    struct stg_sync_req sy = {.target_id = 10};
    SEED(t, "sync", 12, stg_sync_req, &sy);
    struct stg_statfs_resp sf = {.ntargets = 2};
    sf.targets[0].id = 10;
    sf.targets[0].capacity = 1ull << 36;
    sf.targets[1].id = 11;
    sf.targets[1].used = 5;
    SEED(t, "statfs-resp", 13, stg_statfs_resp, &sf);
    struct stg_repair_req rp = {.route = route, .chunk = chunk, .dest_target = 11};
    SEED(t, "repair", 14, stg_repair_req, &rp);
    sf.ntargets = 64;
    for (uint32_t i = 0; i < 64; i++) {
        sf.targets[i].id = 10 + i;
        sf.targets[i].capacity = 1ull << 36;
        sf.targets[i].used = i;
    }
    SEED(t, "statfs-full", 13, stg_statfs_resp, &sf);
}

static void frame_seeds(void)
{
    const char *t = "fuzz_rpc_frame";
    uint8_t buf[RPC_HDR_SIZE + 16];
    memset(buf, 0x5a, sizeof(buf));
    struct rpc_frame_hdr h = {.magic = RPC_MAGIC, .version = RPC_VERSION,
                              .kind = RPC_KIND_REQUEST, .method = META_LOOKUP, .id = 42,
                              .timeout_ms = 5000, .payload_len = 16};
    rpc_frame_encode_hdr(&h, buf);
    write_seed(t, "request", 0xff, buf, sizeof(buf));
    h.kind = RPC_KIND_RESPONSE;
    h.status = VF_E_STALE_CHAIN;
    h.payload_len = 0;
    rpc_frame_encode_hdr(&h, buf);
    write_seed(t, "response-status", 0xff, buf, RPC_HDR_SIZE);
    h.status = RPC_E_NOMETHOD;
    rpc_frame_encode_hdr(&h, buf);
    write_seed(t, "response-rpc-error", 0xff, buf, RPC_HDR_SIZE);
    h.payload_len = RPC_DEFAULT_MAX_PAYLOAD + 1;
    rpc_frame_encode_hdr(&h, buf);
    write_seed(t, "too-big", 0xff, buf, RPC_HDR_SIZE);
    h.payload_len = 0;
    h.magic = 0x12345678;
    rpc_frame_encode_hdr(&h, buf);
    write_seed(t, "bad-magic", 0xff, buf, RPC_HDR_SIZE);
    h.magic = RPC_MAGIC;
    rpc_frame_encode_hdr(&h, buf);
    write_seed(t, "short", 0xff, buf, RPC_HDR_SIZE - 1);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR   (e.g. fuzz/corpus)\n", argv[0]);
        return 2;
    }
    root = argv[1];
    mgmtd_seeds();
    meta_seeds();
    storage_seeds();
    frame_seeds();
    return 0;
}
