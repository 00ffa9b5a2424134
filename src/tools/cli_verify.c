/* cli_verify.c — `valorfs verify-chains`: do the replicas of every chain hold
 * the same chunks?
 *
 * For every chain of the routing, every member target (the chain's list,
 * plus targets the routing assigns to the chain but has taken out of the
 * list) is asked for its chunk metadata with STG_LIST, page by page, and
 * the lists are compared chunk by chunk on (ino, index, version, len,
 * crc32c). The metadata is what each replica would serve and what resync
 * compares; the bytes on disk are checked against it by the storage server
 * on every whole-chunk read. Exit 0 only when every chain has all its
 * targets serving, every target answered, and the lists are identical.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/mgmtd_client.h"
#include "common/util.h"
#include "proto/storage_proto.h"
#include "rpc/rpc.h"
#include "tools/cli.h"

static const char verify_usage[] =
    "Usage: valorfs verify-chains [--mgmtd=ADDR[,ADDR...] | --data=DIR] [--ino=N]\n"
    "                             [--max-diffs=N] [--json]\n"
    "\n"
    "Compare the replicas of every chain: list each target's chunks (STG_LIST)\n"
    "and compare (ino, index, version, length, CRC32C) across the chain's\n"
    "targets. Prints, per chain, each target's state and chunk count, then\n"
    "\"identical\" or the chunks that differ (a chunk missing on a replica, or\n"
    "with another version, length or CRC32C).\n"
    "\n"
    "  --mgmtd=ADDRS   mgmtd addresses (default: the cluster `valorfs up` started\n"
    "                  in --data, default " CLI_DEFAULT_DATA ")\n"
    "  --ino=N         only the chunks of inode N (decimal or 0x hex)\n"
    "  --max-diffs=N   differing chunks shown per chain (default 20; all are counted)\n"
    "  --json          one JSON object: {\"ok\":..., \"chains\":[...]}\n"
    "\n"
    "Exit status: 0 when every chain has all its targets serving and identical,\n"
    "1 when not (or a target or mgmtd did not answer), 2 on a usage error.\n";

#define LIST_PAGE 4096
#define LIST_TIMEOUT_MS 10000

struct replica {
    uint32_t target_id, node_id;
    uint8_t state;
    int status;                   /* 0, or why the list is missing */
    struct stg_chunk_meta *chunks;
    uint32_t n, cap;
    uint32_t dirty;               /* chunks with an uncommitted update */
};

struct chain_report {
    uint32_t id;
    uint64_t version;
    struct replica reps[VF_MAX_REPLICAS * 2];
    uint32_t nreps;
    uint32_t nchunks;             /* distinct chunks over all replicas */
    uint32_t ndiff;
    bool all_serving, all_listed;
};

static int list_target(struct rpc_client *rpc, const char *addr, struct replica *rep,
                       uint64_t ino)
{
    struct stg_list_req req = {.target_id = rep->target_id, .max = LIST_PAGE, .ino = ino};
    for (;;) {
        struct wbuf wb;
        wb_init(&wb, 0);
        stg_list_req_enc(&wb, &req);
        void *resp = NULL;
        size_t len = 0;
        struct rpc_call_opts co = {.timeout_ms = LIST_TIMEOUT_MS};
        int st = rpc_call_sync(rpc, addr, STG_LIST, wb.data, wb.len, &co, &resp, &len);
        wb_free(&wb);
        struct stg_list_resp out = {0};
        if (st == 0 && stg_list_resp_dec(resp, len, &out) != 0)
            st = RPC_E_PROTO;
        free(resp);
        if (st != 0)
            return st;
        if (rep->n + out.n > rep->cap) {
            uint32_t cap = MAX(rep->cap * 2, rep->n + out.n);
            struct stg_chunk_meta *p = realloc(rep->chunks, cap * sizeof(*p));
            if (!p) {
                stg_list_resp_free(&out);
                return ENOMEM;
            }
            rep->chunks = p;
            rep->cap = cap;
        }
        for (uint32_t i = 0; i < out.n; i++) {
            rep->chunks[rep->n++] = out.chunks[i];
            rep->dirty += out.chunks[i].dirty != 0;
        }
        bool done = out.eof || out.n == 0;
        if (out.n)
            req.after = out.chunks[out.n - 1].chunk;
        stg_list_resp_free(&out);
        if (done)
            return 0;
    }
}

static int chunk_cmp(const void *a, const void *b)
{
    const struct stg_chunk_meta *x = a, *y = b;
    if (x->chunk.ino != y->chunk.ino)
        return x->chunk.ino < y->chunk.ino ? -1 : 1;
    if (x->chunk.index != y->chunk.index)
        return x->chunk.index < y->chunk.index ? -1 : 1;
    return 0;
}

static bool same_chunk(const struct stg_chunk_meta *a, const struct stg_chunk_meta *b)
{
    return a->version == b->version && a->len == b->len && a->crc32c == b->crc32c;
}

/* One chunk as each replica has it (NULL = missing), for the output. */
static void print_diff_text(const struct chain_report *c, const struct stg_chunk_meta **row,
                            const struct stg_chunk_id *id)
{
    printf("    ino=%" PRIx64 " index=%u:", id->ino, id->index);
    for (uint32_t r = 0; r < c->nreps; r++) {
        if (c->reps[r].status != 0)
            continue;
        if (row[r])
            printf(" %u=v%" PRIu64 "/len %u/crc %08x", c->reps[r].target_id, row[r]->version,
                   row[r]->len, row[r]->crc32c);
        else
            printf(" %u=missing", c->reps[r].target_id);
    }
    printf("\n");
}

static void print_diff_json(const struct chain_report *c, const struct stg_chunk_meta **row,
                            const struct stg_chunk_id *id, bool first)
{
    printf("%s{\"ino\":%" PRIu64 ",\"index\":%u,\"replicas\":[", first ? "" : ",", id->ino,
           id->index);
    bool f = true;
    for (uint32_t r = 0; r < c->nreps; r++) {
        if (c->reps[r].status != 0)
            continue;
        printf("%s{\"target\":%u", f ? "" : ",", c->reps[r].target_id);
        f = false;
        if (row[r])
            printf(",\"exists\":true,\"version\":%" PRIu64 ",\"len\":%u,\"crc32c\":%u}",
                   row[r]->version, row[r]->len, row[r]->crc32c);
        else
            printf(",\"exists\":false}");
    }
    printf("]}");
}

/* Walk the sorted lists of the listed replicas together; count the distinct
 * chunks and those that differ, printing the first max_diffs. */
static void compare(struct chain_report *c, bool json, uint32_t max_diffs)
{
    uint32_t pos[VF_MAX_REPLICAS * 2] = {0};
    const struct stg_chunk_meta *row[VF_MAX_REPLICAS * 2];
    uint32_t listed = 0;
    for (uint32_t r = 0; r < c->nreps; r++)
        if (c->reps[r].status == 0) {
            if (c->reps[r].n) /* (an empty target has no array at all) */
                qsort(c->reps[r].chunks, c->reps[r].n, sizeof(struct stg_chunk_meta),
                      chunk_cmp);
            listed++;
        }
    bool first = true;
    for (;;) {
        const struct stg_chunk_meta *low = NULL;
        for (uint32_t r = 0; r < c->nreps; r++) {
            const struct replica *rep = &c->reps[r];
            if (rep->status == 0 && pos[r] < rep->n &&
                (!low || chunk_cmp(&rep->chunks[pos[r]], low) < 0))
                low = &rep->chunks[pos[r]];
        }
        if (!low)
            break;
        struct stg_chunk_id id = low->chunk;
        const struct stg_chunk_meta *ref = NULL;
        bool differ = false;
        uint32_t have = 0;
        for (uint32_t r = 0; r < c->nreps; r++) {
            const struct replica *rep = &c->reps[r];
            row[r] = NULL;
            if (rep->status != 0 || pos[r] >= rep->n)
                continue;
            const struct stg_chunk_meta *m = &rep->chunks[pos[r]];
            if (m->chunk.ino != id.ino || m->chunk.index != id.index)
                continue;
            row[r] = m;
            have++;
            if (!ref)
                ref = m;
            else if (!same_chunk(ref, m))
                differ = true;
        }
        if (have != listed)
            differ = true;
        c->nchunks++;
        if (differ) {
            if (c->ndiff < max_diffs) {
                if (json)
                    print_diff_json(c, row, &id, first);
                else
                    print_diff_text(c, row, &id);
                first = false;
            }
            c->ndiff++;
        }
        for (uint32_t r = 0; r < c->nreps; r++)
            if (row[r])
                pos[r]++;
    }
}

static void add_member(struct chain_report *c, const struct mg_routing *r, uint32_t target_id)
{
    for (uint32_t i = 0; i < c->nreps; i++)
        if (c->reps[i].target_id == target_id)
            return;
    if (c->nreps >= ARRAY_SIZE(c->reps))
        return;
    const struct mg_target *t = mgc_find_target(r, target_id);
    struct replica *rep = &c->reps[c->nreps++];
    memset(rep, 0, sizeof(*rep));
    rep->target_id = target_id;
    rep->node_id = t ? t->node_id : 0;
    rep->state = t ? t->state : 0;
    rep->status = t ? 0 : VF_E_NO_ROUTE;
}

static const char *status_text(int st)
{
    return st == 0 ? "ok" : vf_strstatus(st);
}

/* Lists every member of chain ch, compares, prints; true when all is well. */
static bool verify_chain(struct rpc_client *rpc, const struct mg_routing *r,
                         const struct mg_chain *ch, uint64_t ino, bool json, bool first,
                         uint32_t max_diffs)
{
    struct chain_report *c = calloc(1, sizeof(*c));
    if (!c) {
        fprintf(stderr, "valorfs verify-chains: out of memory\n");
        exit(1);
    }
    c->id = ch->id;
    c->version = ch->version;
    for (uint32_t i = 0; i < ch->ntargets && i < VF_MAX_REPLICAS; i++)
        add_member(c, r, ch->targets[i]);
    for (uint32_t i = 0; i < r->ntargets; i++)
        if (r->targets[i].chain_id == ch->id)
            add_member(c, r, r->targets[i].id);
    c->all_serving = c->all_listed = true;
    for (uint32_t i = 0; i < c->nreps; i++) {
        struct replica *rep = &c->reps[i];
        c->all_serving &= rep->state == TS_SERVING;
        if (rep->status == 0) {
            const struct mg_node *n = mgc_find_node(r, rep->node_id);
            rep->status = n ? list_target(rpc, n->addr, rep, ino) : VF_E_NO_ROUTE;
        }
        c->all_listed &= rep->status == 0;
    }

    if (json) {
        printf("%s{\"id\":%u,\"version\":%" PRIu64 ",\"targets\":[", first ? "" : ",", c->id,
               c->version);
        for (uint32_t i = 0; i < c->nreps; i++) {
            const struct replica *rep = &c->reps[i];
            printf("%s{\"id\":%u,\"node\":%u,\"state\":", i ? "," : "", rep->target_id,
                   rep->node_id);
            json_str(stdout, vf_target_state_name(rep->state));
            printf(",\"chunks\":%u,\"dirty\":%u,\"list\":", rep->n, rep->dirty);
            json_str(stdout, status_text(rep->status));
            printf("}");
        }
        printf("],\"differing\":[");
    } else {
        printf("chain %u (version %" PRIu64 "):", c->id, c->version);
        for (uint32_t i = 0; i < c->nreps; i++) {
            const struct replica *rep = &c->reps[i];
            printf(" %u %s", rep->target_id, vf_target_state_name(rep->state));
            if (rep->status == 0)
                printf(" (%u chunks%s)", rep->n, rep->dirty ? ", some dirty" : "");
            else
                printf(" (list failed: %s)", status_text(rep->status));
            printf("%s", i + 1 < c->nreps ? "," : "");
        }
        printf("\n");
    }
    compare(c, json, max_diffs);
    bool ok = c->all_serving && c->all_listed && c->ndiff == 0 && c->nreps > 0;
    if (json) {
        printf("],\"chunks\":%u,\"ndiffering\":%u,\"all_serving\":%s,\"identical\":%s}",
               c->nchunks, c->ndiff, c->all_serving ? "true" : "false",
               c->ndiff == 0 && c->all_listed ? "true" : "false");
    } else if (!c->all_listed) {
        printf("  not compared in full: a target did not list its chunks\n");
    } else if (c->ndiff == 0) {
        printf("  %u chunks, identical%s\n", c->nchunks,
               c->all_serving ? "" : " (but not every target is serving)");
    } else {
        if (c->ndiff > max_diffs)
            printf("    ... %u more\n", c->ndiff - max_diffs);
        printf("  %u of %u chunks differ\n", c->ndiff, c->nchunks);
    }
    for (uint32_t i = 0; i < c->nreps; i++)
        free(c->reps[i].chunks);
    free(c);
    return ok;
}

int cmd_verify_chains(int argc, char **argv)
{
    static const struct option lo[] = {
        {"mgmtd", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
        {"json", no_argument, 0, 'j'},        {"ino", required_argument, 0, 'i'},
        {"max-diffs", required_argument, 0, 'x'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *mgmtd = NULL, *data = CLI_DEFAULT_DATA;
    bool json = false;
    uint64_t ino = 0;
    uint32_t max_diffs = 20;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'm': mgmtd = optarg; break;
        case 'd': data = optarg; break;
        case 'j': json = true; break;
        case 'i':
            ino = strtoull(optarg, &end, 0);
            if (!*optarg || *end) {
                fprintf(stderr, "valorfs verify-chains: bad --ino '%s'\n", optarg);
                return 2;
            }
            break;
        case 'x':
            max_diffs = (uint32_t)strtoul(optarg, &end, 10);
            if (!*optarg || *end) {
                fprintf(stderr, "valorfs verify-chains: bad --max-diffs '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h': fputs(verify_usage, stdout); return 0;
        default: fputs(verify_usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "valorfs verify-chains: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    char addr[256];
    if (cli_mgmtd_addr(mgmtd, data, addr, sizeof(addr)) != 0) {
        fprintf(stderr, "valorfs verify-chains: no --mgmtd given and no cluster state in %s\n",
                data);
        return 1;
    }
    struct rpc_client_opts ro = {.name = "cli", .connect_timeout_ms = 2000};
    struct rpc_client *rpc = rpc_client_new(&ro);
    if (!rpc) {
        fprintf(stderr, "valorfs verify-chains: cannot start the RPC client\n");
        return 1;
    }
    struct mg_routing r;
    char err[256] = "";
    if (cli_fetch_routing(rpc, addr, &r, err, sizeof(err)) != 0) {
        fprintf(stderr, "valorfs verify-chains: %s\n", err);
        rpc_client_free(rpc);
        return 1;
    }
    bool ok = r.nchains > 0;
    if (json)
        printf("{\"routing_version\":%" PRIu64 ",\"chains\":[", r.version);
    for (uint32_t i = 0; i < r.nchains; i++)
        ok &= verify_chain(rpc, &r, &r.chains[i], ino, json, i == 0, max_diffs);
    if (json)
        printf("],\"ok\":%s}\n", ok ? "true" : "false");
    else if (r.nchains == 0)
        printf("no chains\n");
    else
        printf("%s\n", ok ? "all chains identical, every target serving"
                          : "NOT all chains are identical and serving");
    mg_routing_free(&r);
    rpc_client_free(rpc);
    return ok ? 0 : 1;
}
