/* cli_admin.c — `valorfs status`, `valorfs table`, and the pieces every
 * subcommand shares: the local cluster's state file and routing fetches. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/mgmtd_client.h"
#include "proto/mgmtd_proto.h"
#include "rpc/rpc.h"
#include "tools/cli.h"

/* ---------------- cluster.env ---------------- */

int cluster_env_write(const char *data, const struct cluster_env *e)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    snprintf(path, sizeof(path), "%s/cluster.env", data);
    snprintf(tmp, sizeof(tmp), "%s/cluster.env.tmp", data);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "MGMTD=%s\nMOUNT=%s\nBINDIR=%s\nSTORAGE=%d\nLOOP=%d\n", e->mgmtd, e->mount,
            e->bindir, e->nstorage, e->loop);
    fprintf(f, "KV_META=%s\nKV_MGMTD=%s\nMETAS=%d\nMGMTDS=%d\nETCD_MEMBERS=%d\n", e->kv_meta,
            e->kv_mgmtd, e->nmetas, e->nmgmtds, e->etcd_members);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -errno;
    return 0;
}

int cluster_env_read(const char *data, struct cluster_env *e)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/cluster.env", data);
    memset(e, 0, sizeof(*e));
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    char line[PATH_MAX + 32];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq++ = 0;
        if (!strcmp(line, "MGMTD"))
            snprintf(e->mgmtd, sizeof(e->mgmtd), "%s", eq);
        else if (!strcmp(line, "MOUNT"))
            snprintf(e->mount, sizeof(e->mount), "%s", eq);
        else if (!strcmp(line, "BINDIR"))
            snprintf(e->bindir, sizeof(e->bindir), "%s", eq);
        else if (!strcmp(line, "STORAGE"))
            e->nstorage = atoi(eq);
        else if (!strcmp(line, "LOOP"))
            e->loop = atoi(eq);
        else if (!strcmp(line, "KV_META"))
            snprintf(e->kv_meta, sizeof(e->kv_meta), "%s", eq);
        else if (!strcmp(line, "KV_MGMTD"))
            snprintf(e->kv_mgmtd, sizeof(e->kv_mgmtd), "%s", eq);
        else if (!strcmp(line, "METAS"))
            e->nmetas = atoi(eq);
        else if (!strcmp(line, "MGMTDS"))
            e->nmgmtds = atoi(eq);
        else if (!strcmp(line, "ETCD_MEMBERS"))
            e->etcd_members = atoi(eq);
    }
    fclose(f);
    return e->mgmtd[0] ? 0 : -EINVAL;
}

int cli_mgmtd_addr(const char *opt, const char *data, char *out, size_t cap)
{
    if (opt) {
        snprintf(out, cap, "%s", opt);
        return 0;
    }
    struct cluster_env e;
    if (cluster_env_read(data, &e) != 0)
        return -1;
    snprintf(out, cap, "%s", e.mgmtd);
    return 0;
}

/* ---------------- routing ---------------- */

static int fetch_one(struct rpc_client *rpc, const char *addr, struct mg_routing *r,
                     char *redirect, size_t rcap)
{
    struct mg_get_routing_req req = {.have_version = 0};
    struct wbuf wb;
    wb_init(&wb, 0);
    mg_get_routing_req_enc(&wb, &req);
    void *resp = NULL;
    size_t len = 0;
    struct rpc_call_opts co = {.timeout_ms = 3000};
    int st = rpc_call_sync(rpc, addr, MG_GET_ROUTING, wb.data, wb.len, &co, &resp, &len);
    wb_free(&wb);
    redirect[0] = 0;
    if (st == VF_E_NOT_PRIMARY && resp && len < rcap) {
        memcpy(redirect, resp, len);
        redirect[len] = 0;
    }
    if (st == 0 && mg_routing_dec(resp, len, r) != 0)
        st = RPC_E_PROTO;
    free(resp);
    return st;
}

int cli_fetch_routing(struct rpc_client *rpc, const char *addrs, struct mg_routing *r,
                      char *err, size_t errlen)
{
    char list[512];
    snprintf(list, sizeof(list), "%s", addrs);
    int st = VF_E_NO_ROUTE;
    char *save = NULL;
    for (char *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
        char redirect[VF_MAX_ADDR + 1];
        st = fetch_one(rpc, a, r, redirect, sizeof(redirect));
        if (st == VF_E_NOT_PRIMARY && redirect[0])
            st = fetch_one(rpc, redirect, r, redirect, sizeof(redirect));
        if (st == 0)
            return 0;
        snprintf(err, errlen, "mgmtd %s: %s", a, vf_strstatus(st));
    }
    return st;
}

static struct rpc_client *cli_rpc(void)
{
    struct rpc_client_opts ro = {.name = "cli", .connect_timeout_ms = 2000};
    struct rpc_client *rpc = rpc_client_new(&ro);
    if (!rpc)
        fprintf(stderr, "valorfs: cannot start the RPC client\n");
    return rpc;
}

/* ---------------- status ---------------- */

static const char status_usage[] =
    "Usage: valorfs status [--mgmtd=ADDR[,ADDR...] | --data=DIR] [--json]\n"
    "\n"
    "Show the cluster as mgmtd's routing info describes it: nodes (type, address,\n"
    "lease), targets (node, chain, state, space), chains (version, head..tail with\n"
    "each target's state) and chain tables, after a summary of the mgmtd\n"
    "addresses and meta servers. Without --mgmtd the addresses come from the\n"
    "cluster that `valorfs up` started in DIR (default " CLI_DEFAULT_DATA "), and\n"
    "the summary also shows the KV store URIs of meta and mgmtd.\n";

static void fmt_bytes(uint64_t b, char *out, size_t cap)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

/* The metadata services: where they keep their state (known for a cluster
 * `valorfs up` started, i.e. without --mgmtd), the mgmtd addresses asked,
 * and the meta servers the routing names. */
struct status_ctx {
    const char *mgmtd_addrs;
    const struct cluster_env *env; /* NULL with --mgmtd */
};

static void status_json(const struct mg_routing *r, const struct status_ctx *sc, FILE *f)
{
    fprintf(f, "{\"routing_version\":%" PRIu64 ",\"primary\":%u,\"mgmtd_addrs\":[", r->version,
            r->primary_id);
    char list[512];
    snprintf(list, sizeof(list), "%s", sc->mgmtd_addrs);
    char *save = NULL;
    int k = 0;
    for (char *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
        fputs(k++ ? "," : "", f);
        json_str(f, a);
    }
    fputc(']', f);
    if (sc->env && sc->env->kv_meta[0]) {
        fprintf(f, ",\"kv\":{\"meta\":");
        json_str(f, sc->env->kv_meta);
        fprintf(f, ",\"mgmtd\":");
        json_str(f, sc->env->kv_mgmtd);
        fprintf(f, ",\"local_etcd_members\":%d}", sc->env->etcd_members);
    }
    fprintf(f, ",\"nodes\":[");
    for (uint32_t i = 0; i < r->nnodes; i++) {
        const struct mg_node *n = &r->nodes[i];
        fprintf(f, "%s{\"id\":%u,\"type\":", i ? "," : "", n->id);
        json_str(f, vf_node_type_name(n->type));
        fprintf(f, ",\"addr\":");
        json_str(f, n->addr);
        fprintf(f, ",\"alive\":%s,\"lease_expires_ms\":%" PRIu64 "}", n->alive ? "true" : "false",
                n->lease_expires_ms);
    }
    fprintf(f, "],\"targets\":[");
    for (uint32_t i = 0; i < r->ntargets; i++) {
        const struct mg_target *t = &r->targets[i];
        fprintf(f, "%s{\"id\":%u,\"node\":%u,\"chain\":%u,\"state\":", i ? "," : "", t->id,
                t->node_id, t->chain_id);
        json_str(f, vf_target_state_name(t->state));
        fprintf(f, ",\"capacity\":%" PRIu64 ",\"used\":%" PRIu64 "}", t->capacity, t->used);
    }
    fprintf(f, "],\"chains\":[");
    for (uint32_t i = 0; i < r->nchains; i++) {
        const struct mg_chain *c = &r->chains[i];
        fprintf(f, "%s{\"id\":%u,\"version\":%" PRIu64 ",\"targets\":[", i ? "," : "", c->id,
                c->version);
        for (uint32_t j = 0; j < c->ntargets; j++) {
            const struct mg_target *tg = mgc_find_target(r, c->targets[j]);
            uint8_t st = tg ? tg->state : 0;
            fprintf(f, "%s{\"id\":%u,\"state\":", j ? "," : "", c->targets[j]);
            json_str(f, vf_target_state_name(st));
            fputc('}', f);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "],\"tables\":[");
    for (uint32_t i = 0; i < r->ntables; i++) {
        const struct mg_table *t = &r->tables[i];
        fprintf(f, "%s{\"id\":%u,\"version\":%" PRIu64 ",\"replicas\":%u,\"chains\":[",
                i ? "," : "", t->id, t->version, t->replicas);
        for (uint32_t j = 0; j < t->nchains; j++)
            fprintf(f, "%s%u", j ? "," : "", t->chains[j]);
        fprintf(f, "]}");
    }
    fprintf(f, "]}\n");
}

static void status_text(const struct mg_routing *r, const struct status_ctx *sc, FILE *f)
{
    fprintf(f, "routing version %" PRIu64 ", primary mgmtd %u\n", r->version, r->primary_id);
    fprintf(f, "mgmtd    %s\n", sc->mgmtd_addrs);
    char metas[1024] = "";
    uint32_t nmeta = 0, nalive = 0;
    for (uint32_t i = 0; i < r->nnodes; i++) {
        const struct mg_node *n = &r->nodes[i];
        if (n->type != NODE_META)
            continue;
        size_t used = strlen(metas);
        snprintf(metas + used, sizeof(metas) - used, "%s%u@%s%s", nmeta ? ", " : "", n->id,
                 n->addr, n->alive ? "" : " (LOST)");
        nmeta++;
        nalive += n->alive;
    }
    fprintf(f, "meta     %u of %u alive: %s\n", nalive, nmeta, nmeta ? metas : "-");
    if (sc->env && sc->env->kv_meta[0]) {
        fprintf(f, "kv       meta %s\n         mgmtd %s\n", sc->env->kv_meta, sc->env->kv_mgmtd);
        if (sc->env->etcd_members)
            fprintf(f, "etcd     %d local member%s\n", sc->env->etcd_members,
                    sc->env->etcd_members > 1 ? "s" : "");
    }
    fprintf(f, "\nNODES\n");
    struct cli_table t;
    cli_table_init(&t, 5, "ID", "TYPE", "ADDRESS", "LEASE", "EXPIRES IN");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    for (uint32_t i = 0; i < r->nnodes; i++) {
        const struct mg_node *n = &r->nodes[i];
        char id[16], exp[32];
        snprintf(id, sizeof(id), "%u", n->id);
        if (n->lease_expires_ms > now_ms)
            snprintf(exp, sizeof(exp), "%.1f s", (double)(n->lease_expires_ms - now_ms) / 1000);
        else
            snprintf(exp, sizeof(exp), "-");
        cli_table_row(&t, id, vf_node_type_name(n->type), n->addr, n->alive ? "valid" : "LOST",
                      exp);
    }
    cli_table_print(&t, f);
    cli_table_free(&t);

    fprintf(f, "\nTARGETS\n");
    cli_table_init(&t, 6, "ID", "NODE", "CHAIN", "STATE", "USED", "CAPACITY");
    for (uint32_t i = 0; i < r->ntargets; i++) {
        const struct mg_target *x = &r->targets[i];
        char id[16], node[16], chain[16], used[32], cap[32];
        snprintf(id, sizeof(id), "%u", x->id);
        snprintf(node, sizeof(node), "%u", x->node_id);
        snprintf(chain, sizeof(chain), x->chain_id ? "%u" : "-", x->chain_id);
        fmt_bytes(x->used, used, sizeof(used));
        fmt_bytes(x->capacity, cap, sizeof(cap));
        cli_table_row(&t, id, node, chain, vf_target_state_name(x->state), used, cap);
    }
    cli_table_print(&t, f);
    cli_table_free(&t);

    fprintf(f, "\nCHAINS\n");
    cli_table_init(&t, 3, "ID", "VERSION", "TARGETS (head → tail)");
    for (uint32_t i = 0; i < r->nchains; i++) {
        const struct mg_chain *c = &r->chains[i];
        char id[16], ver[24], list[512] = "";
        snprintf(id, sizeof(id), "%u", c->id);
        snprintf(ver, sizeof(ver), "%" PRIu64, c->version);
        for (uint32_t j = 0; j < c->ntargets; j++) {
            const struct mg_target *tg = mgc_find_target(r, c->targets[j]);
            uint8_t st = tg ? tg->state : 0;
            size_t used = strlen(list);
            snprintf(list + used, sizeof(list) - used, "%s%u(%s)", j ? " → " : "", c->targets[j],
                     vf_target_state_name(st));
        }
        cli_table_row(&t, id, ver, list);
    }
    cli_table_print(&t, f);
    cli_table_free(&t);

    fprintf(f, "\nCHAIN TABLES\n");
    cli_table_init(&t, 4, "ID", "VERSION", "REPLICAS", "CHAINS");
    for (uint32_t i = 0; i < r->ntables; i++) {
        const struct mg_table *x = &r->tables[i];
        char id[16], ver[24], rep[16], list[1024] = "";
        snprintf(id, sizeof(id), "%u", x->id);
        snprintf(ver, sizeof(ver), "%" PRIu64, x->version);
        snprintf(rep, sizeof(rep), "%u", x->replicas);
        for (uint32_t j = 0; j < x->nchains; j++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof(list) - used, "%s%u", j ? "," : "", x->chains[j]);
        }
        cli_table_row(&t, id, ver, rep, list);
    }
    cli_table_print(&t, f);
    cli_table_free(&t);
}

static int common_opts(int argc, char **argv, const char *usage, const char **mgmtd,
                       const char **data, bool *json, int *first_arg)
{
    static const struct option lo[] = {
        {"mgmtd", required_argument, 0, 'm'},
        {"data", required_argument, 0, 'd'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    *mgmtd = NULL;
    *data = CLI_DEFAULT_DATA;
    *json = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "+h", lo, NULL)) != -1) {
        switch (c) {
        case 'm': *mgmtd = optarg; break;
        case 'd': *data = optarg; break;
        case 'j': *json = true; break;
        case 'h': fputs(usage, stdout); exit(0);
        default: fputs(usage, stderr); return 2;
        }
    }
    *first_arg = optind;
    return 0;
}

int cmd_status(int argc, char **argv)
{
    const char *mgmtd, *data;
    bool json;
    int first;
    if (common_opts(argc, argv, status_usage, &mgmtd, &data, &json, &first))
        return 2;
    char addr[256];
    if (cli_mgmtd_addr(mgmtd, data, addr, sizeof(addr)) != 0) {
        fprintf(stderr, "valorfs status: no --mgmtd given and no cluster state in %s\n", data);
        return 1;
    }
    struct rpc_client *rpc = cli_rpc();
    if (!rpc)
        return 1;
    struct mg_routing r;
    char err[256] = "";
    int st = cli_fetch_routing(rpc, addr, &r, err, sizeof(err));
    rpc_client_free(rpc);
    if (st != 0) {
        fprintf(stderr, "valorfs status: %s\n", err);
        return 1;
    }
    struct cluster_env env;
    struct status_ctx sc = {.mgmtd_addrs = addr,
                            .env = !mgmtd && cluster_env_read(data, &env) == 0 ? &env : NULL};
    if (json)
        status_json(&r, &sc, stdout);
    else
        status_text(&r, &sc, stdout);
    mg_routing_free(&r);
    return 0;
}

/* ---------------- table ---------------- */

static const char table_usage[] =
    "Usage: valorfs table create [--id=N] [--replicas=R] [--chains=N] [--mgmtd=ADDR|--data=DIR] [--json]\n"
    "       valorfs table list [--mgmtd=ADDR|--data=DIR] [--json]\n"
    "\n"
    "create builds a chain table from the targets that are not yet in a chain\n"
    "(state waiting): chains of R replicas (default 3), each on R distinct\n"
    "storage servers; --chains limits how many (default: as many as possible);\n"
    "--id picks the table id (default: the next free one).\n"
    "list prints the chain tables (the last section of `valorfs status`).\n";

int cmd_table(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(table_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1];
    argc--;
    argv++;
    static const struct option lo[] = {
        {"mgmtd", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
        {"json", no_argument, 0, 'j'},        {"id", required_argument, 0, 'i'},
        {"replicas", required_argument, 0, 'r'}, {"chains", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0},
    };
    const char *mgmtd = NULL, *data = CLI_DEFAULT_DATA;
    bool json = false;
    struct mg_create_table_req req = {.table_id = 0, .replicas = 3, .nchains = 0};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'm': mgmtd = optarg; break;
        case 'd': data = optarg; break;
        case 'j': json = true; break;
        case 'i': req.table_id = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'r': req.replicas = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'c': req.nchains = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'h': fputs(table_usage, stdout); return 0;
        default: fputs(table_usage, stderr); return 2;
        }
    }
    char addr[256];
    if (cli_mgmtd_addr(mgmtd, data, addr, sizeof(addr)) != 0) {
        fprintf(stderr, "valorfs table: no --mgmtd given and no cluster state in %s\n", data);
        return 1;
    }
    struct rpc_client *rpc = cli_rpc();
    if (!rpc)
        return 1;
    int rc = 0;
    if (!strcmp(verb, "list")) {
        struct mg_routing r;
        char err[256] = "";
        if (cli_fetch_routing(rpc, addr, &r, err, sizeof(err)) != 0) {
            fprintf(stderr, "valorfs table: %s\n", err);
            rc = 1;
        } else {
            if (json) {
                printf("[");
                for (uint32_t i = 0; i < r.ntables; i++) {
                    printf("%s{\"id\":%u,\"version\":%" PRIu64 ",\"replicas\":%u,\"chains\":%u}",
                           i ? "," : "", r.tables[i].id, r.tables[i].version,
                           r.tables[i].replicas, r.tables[i].nchains);
                }
                printf("]\n");
            } else {
                for (uint32_t i = 0; i < r.ntables; i++)
                    printf("table %u: version %" PRIu64 ", %u chains of %u replicas\n",
                           r.tables[i].id, r.tables[i].version, r.tables[i].nchains,
                           r.tables[i].replicas);
            }
            mg_routing_free(&r);
        }
    } else if (!strcmp(verb, "create")) {
        struct wbuf wb;
        wb_init(&wb, 0);
        mg_create_table_req_enc(&wb, &req);
        void *resp = NULL;
        size_t len = 0;
        int st = cli_call_mgmtd(rpc, addr, MG_CREATE_TABLE, wb.data, wb.len, 10000, &resp, &len);
        wb_free(&wb);
        struct mg_create_table_resp out = {0};
        if (st == 0 && mg_create_table_resp_dec(resp, len, &out) != 0)
            st = RPC_E_PROTO;
        free(resp);
        if (st != 0) {
            fprintf(stderr, "valorfs table create: %s%s\n", vf_strstatus(st),
                    st == ENOSPC || st == EINVAL
                        ? " (not enough waiting targets on distinct storage servers?)"
                        : "");
            rc = 1;
        } else if (json) {
            printf("{\"table\":%u,\"chains\":%u,\"routing_version\":%" PRIu64 "}\n", out.table_id,
                   out.nchains, out.routing_version);
        } else {
            printf("created chain table %u: %u chains of %u replicas (routing version %" PRIu64
                   ")\n", out.table_id, out.nchains, req.replicas, out.routing_version);
        }
    } else {
        fprintf(stderr, "valorfs table: unknown action '%s'\n%s", verb, table_usage);
        rc = 2;
    }
    rpc_client_free(rpc);
    return rc;
}
