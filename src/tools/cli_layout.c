/* cli_layout.c — `valorfs layout PATH`: a file's layout and, with --chunks,
 * what every target of each chunk's chain holds (version, length, CRC32C). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client/mgmtd_client.h"
#include "proto/meta_proto.h"
#include "proto/storage_proto.h"
#include "rpc/rpc.h"
#include "tools/cli.h"

static const char layout_usage[] =
    "Usage: valorfs layout PATH [--chunks] [--mgmtd=ADDR|--data=DIR] [--json]\n"
    "\n"
    "Show how the file at PATH (inside a valorfs mount) is laid out: chunk size,\n"
    "chain table, the chains it is striped over and, for each chunk, its chain\n"
    "and that chain's targets. --chunks also asks every target for what it holds\n"
    "of each chunk: committed version, length, CRC32C, and whether an update is\n"
    "still pending. Replicas that disagree are marked MISMATCH.\n";

static int rpc_sync(struct rpc_client *rpc, const char *addr, uint16_t method, struct wbuf *wb,
                    void **resp, size_t *len)
{
    struct rpc_call_opts co = {.timeout_ms = 5000};
    int st = wb->err ? RPC_E_TOOBIG : rpc_call_sync(rpc, addr, method, wb->data, wb->len, &co,
                                                    resp, len);
    wb_free(wb);
    return st;
}

static int get_inode(struct rpc_client *rpc, const struct mg_routing *r, uint64_t ino,
                     struct meta_inode *out)
{
    int st = VF_E_NO_ROUTE;
    for (uint32_t i = 0; i < r->nnodes; i++) {
        if (r->nodes[i].type != NODE_META || !r->nodes[i].alive)
            continue;
        struct meta_req req = {.ino = ino};
        struct wbuf wb;
        wb_init(&wb, 0);
        meta_req_enc(&wb, &req);
        void *resp = NULL;
        size_t len = 0;
        st = rpc_sync(rpc, r->nodes[i].addr, META_GETATTR, &wb, &resp, &len);
        struct meta_resp mr;
        if (st == 0 && (meta_resp_dec(resp, len, &mr) != 0 || !mr.has_inode))
            st = RPC_E_PROTO;
        if (st == 0)
            *out = mr.inode;
        free(resp);
        if (st == 0 || st > 0)
            return st;
    }
    return st;
}

static int chunk_meta(struct rpc_client *rpc, const struct mg_routing *r, uint32_t target,
                      uint64_t ino, uint32_t index, struct stg_chunk_meta *out)
{
    const char *addr = mgc_target_addr(r, target);
    if (!addr)
        return VF_E_NO_ROUTE;
    struct stg_chunk_meta_req req = {.target_id = target, .chunk = {.ino = ino, .index = index}};
    struct wbuf wb;
    wb_init(&wb, 0);
    stg_chunk_meta_req_enc(&wb, &req);
    void *resp = NULL;
    size_t len = 0;
    int st = rpc_sync(rpc, addr, STG_CHUNK_META, &wb, &resp, &len);
    if (st == 0 && stg_chunk_meta_dec(resp, len, out) != 0)
        st = RPC_E_PROTO;
    free(resp);
    return st;
}

int cmd_layout(int argc, char **argv)
{
    static const struct option lo[] = {
        {"mgmtd", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
        {"json", no_argument, 0, 'j'},        {"chunks", no_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0},
    };
    const char *mgmtd = NULL, *data = CLI_DEFAULT_DATA;
    bool json = false, chunks = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'm': mgmtd = optarg; break;
        case 'd': data = optarg; break;
        case 'j': json = true; break;
        case 'c': chunks = true; break;
        case 'h': fputs(layout_usage, stdout); return 0;
        default: fputs(layout_usage, stderr); return 2;
        }
    }
    if (optind + 1 != argc) {
        fputs(layout_usage, stderr);
        return 2;
    }
    const char *path = argv[optind];
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "valorfs layout: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "valorfs layout: %s: not a regular file\n", path);
        return 1;
    }
    char addr[256];
    if (cli_mgmtd_addr(mgmtd, data, addr, sizeof(addr)) != 0) {
        fprintf(stderr, "valorfs layout: no --mgmtd given and no cluster state in %s\n", data);
        return 1;
    }
    struct rpc_client_opts ro = {.name = "cli"};
    struct rpc_client *rpc = rpc_client_new(&ro);
    if (!rpc)
        return 1;
    struct mg_routing r;
    char err[256] = "";
    if (cli_fetch_routing(rpc, addr, &r, err, sizeof(err)) != 0) {
        fprintf(stderr, "valorfs layout: %s\n", err);
        rpc_client_free(rpc);
        return 1;
    }
    struct meta_inode ino = {0};
    int s = get_inode(rpc, &r, (uint64_t)st.st_ino, &ino);
    if (s != 0) {
        fprintf(stderr, "valorfs layout: %s: inode %" PRIu64 ": %s (is it on valorfs?)\n", path,
                (uint64_t)st.st_ino, vf_strstatus(s));
        mg_routing_free(&r);
        rpc_client_free(rpc);
        return 1;
    }
    const struct meta_layout *l = &ino.layout;
    uint64_t size = ino.size > (uint64_t)st.st_size ? ino.size : (uint64_t)st.st_size;
    uint64_t nchunks = l->chunk_size ? (size + l->chunk_size - 1) / l->chunk_size : 0;
    int rc = 0;
    if (json) {
        printf("{\"path\":");
        json_str(stdout, path);
        printf(",\"ino\":%" PRIu64 ",\"size\":%" PRIu64 ",\"chunk_size\":%u,\"table\":%u,"
               "\"chains\":[", ino.ino, size, l->chunk_size, l->table_id);
        for (uint32_t i = 0; i < l->nchains; i++)
            printf("%s%u", i ? "," : "", l->chains[i]);
        printf("],\"chunks\":[");
    } else {
        printf("%s: inode %" PRIu64 ", %" PRIu64 " bytes, %" PRIu64 " chunks of %u bytes, "
               "chain table %u, striped over %u chains:",
               path, ino.ino, size, nchunks, l->chunk_size, l->table_id, l->nchains);
        for (uint32_t i = 0; i < l->nchains; i++)
            printf(" %u", l->chains[i]);
        printf("\n\n");
    }
    struct cli_table t;
    if (!json) {
        if (chunks)
            cli_table_init(&t, 7, "CHUNK", "CHAIN", "TARGET", "VERSION", "LENGTH", "CRC32C",
                           "NOTE");
        else
            cli_table_init(&t, 3, "CHUNK", "CHAIN", "TARGETS (head → tail)");
    }
    for (uint64_t i = 0; i < nchunks && l->nchains; i++) {
        uint32_t chain_id = l->chains[i % l->nchains];
        const struct mg_chain *ch = mgc_find_chain(&r, chain_id);
        char idx[24], chs[16];
        snprintf(idx, sizeof(idx), "%" PRIu64, i);
        snprintf(chs, sizeof(chs), "%u", chain_id);
        if (json)
            printf("%s{\"index\":%" PRIu64 ",\"chain\":%u,\"replicas\":[", i ? "," : "", i,
                   chain_id);
        char list[256] = "";
        struct stg_chunk_meta first = {0};
        for (uint32_t j = 0; ch && j < ch->ntargets; j++) {
            uint32_t tid = ch->targets[j];
            if (!chunks) {
                size_t u = strlen(list);
                snprintf(list + u, sizeof(list) - u, "%s%u", j ? " → " : "", tid);
                if (json)
                    printf("%s{\"target\":%u}", j ? "," : "", tid);
                continue;
            }
            struct stg_chunk_meta m = {0};
            int cs = chunk_meta(rpc, &r, tid, ino.ino, (uint32_t)i, &m);
            bool mismatch = false;
            if (j == 0)
                first = m;
            else if (cs == 0 && (m.exists != first.exists || m.version != first.version ||
                                 m.len != first.len || m.crc32c != first.crc32c))
                mismatch = true;
            if (cs != 0 || mismatch)
                rc = 3;
            if (json) {
                printf("%s{\"target\":%u,\"status\":", j ? "," : "", tid);
                json_str(stdout, cs ? vf_strstatus(cs) : "ok");
                printf(",\"exists\":%s,\"dirty\":%s,\"version\":%" PRIu64 ",\"len\":%u,"
                       "\"crc32c\":%u}", m.exists ? "true" : "false", m.dirty ? "true" : "false",
                       m.version, m.len, m.crc32c);
            } else {
                char tg[16], ver[24], len[16], crc[16];
                snprintf(tg, sizeof(tg), "%u", tid);
                snprintf(ver, sizeof(ver), "%" PRIu64, m.version);
                snprintf(len, sizeof(len), "%u", m.len);
                snprintf(crc, sizeof(crc), "%08x", m.crc32c);
                cli_table_row(&t, j ? "" : idx, j ? "" : chs, tg, m.exists ? ver : "-",
                              m.exists ? len : "-", m.exists ? crc : "-",
                              cs ? vf_strstatus(cs)
                                 : mismatch ? "MISMATCH" : m.dirty ? "pending update" : "");
            }
        }
        if (json)
            printf("]}");
        else if (!chunks)
            cli_table_row(&t, idx, chs, ch ? list : "(chain not in routing)");
    }
    if (json) {
        printf("]}\n");
    } else {
        cli_table_print(&t, stdout);
        cli_table_free(&t);
        if (rc == 3)
            printf("\nsome replicas are missing or disagree (exit status 3)\n");
    }
    mg_routing_free(&r);
    rpc_client_free(rpc);
    return rc;
}
