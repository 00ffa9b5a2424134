/* test_mgmtd_client.c — mgmtd_client without a server: snapshot lookups and
 * the first-contact failure (the full agent is tested against real mgmtd
 * servers in src/mgmtd/test_mgmtd.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/mgmtd_client.h"
#include "common/log.h"
#include "rpc/rpc.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_lookups(void)
{
    struct mg_node nodes[3] = {
        { .id = 1, .type = NODE_META, .alive = 1, .addr = "10.0.0.1:9100" },
        { .id = 2, .type = NODE_STORAGE, .alive = 1, .addr = "10.0.0.2:9200" },
        { .id = 3, .type = NODE_STORAGE, .alive = 0, .addr = "10.0.0.3:9200" },
    };
    struct mg_target targets[3] = {
        { .id = 20, .node_id = 2, .chain_id = 7, .state = TS_SERVING },
        { .id = 30, .node_id = 3, .chain_id = 7, .state = TS_OFFLINE },
        { .id = 40, .node_id = 9, .state = TS_WAITING }, /* node unknown */
    };
    struct mg_chain chains[1] = { { .id = 7, .version = 2, .ntargets = 2, .targets = { 20, 30 } } };
    uint32_t tchains[1] = { 7 };
    struct mg_table tables[1] = { { .id = 1, .version = 1, .replicas = 2, .nchains = 1,
                                    .chains = tchains } };
    struct mg_routing r = { .version = 5, .nnodes = 3, .ntargets = 3, .nchains = 1,
                            .ntables = 1, .nodes = nodes, .targets = targets,
                            .chains = chains, .tables = tables };
    CHECK(mgc_find_chain(&r, 7) == &chains[0]);
    CHECK(mgc_find_chain(&r, 8) == NULL);
    CHECK(mgc_find_target(&r, 30) == &targets[1]);
    CHECK(mgc_find_node(&r, 3) == &nodes[2]);
    CHECK(mgc_find_node(&r, 4) == NULL);
    CHECK(mgc_find_table(&r, 1) == &tables[0]);
    CHECK(mgc_find_table(&r, 2) == NULL);
    CHECK(!strcmp(mgc_target_addr(&r, 20), "10.0.0.2:9200"));
    CHECK(mgc_target_addr(&r, 40) == NULL);
    CHECK(mgc_target_addr(&r, 99) == NULL);
    const struct mg_node *out[4];
    CHECK(mgc_alive_nodes(&r, NODE_STORAGE, out, 4) == 1 && out[0] == &nodes[1]);
    CHECK(mgc_alive_nodes(&r, NODE_META, out, 4) == 1 && out[0] == &nodes[0]);
    CHECK(mgc_alive_nodes(&r, NODE_META, out, 0) == 0);
}

static void test_unreachable(void)
{
    char err[300] = "";
    struct mgc_opts o = { .mgmtd_addrs = "127.0.0.1:1, 127.0.0.1:2", .type = NODE_CLIENT,
                          .connect_timeout_ms = 400 };
    uint64_t t0 = mono_ms();
    CHECK(mgc_start(&o, err, sizeof(err)) == NULL);
    uint64_t took = mono_ms() - t0;
    fprintf(stderr, "first-contact error: %s (%llu ms)\n", err, (unsigned long long)took);
    CHECK(took >= 300 && took < 2000);
    CHECK(strstr(err, "unreachable") && strstr(err, "127.0.0.1:") && !strchr(err, '\n'));

    struct mgc_opts none = { .mgmtd_addrs = " , ", .type = NODE_CLIENT };
    CHECK(mgc_start(&none, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "no mgmtd address"));
}

int main(void)
{
    log_init(LOG_LVL_WARN);
    test_lookups();
    test_unreachable();
    fprintf(stderr, "ok\n");
    return 0;
}
