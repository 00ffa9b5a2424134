/* cli.h — shared pieces of the `valorfs` admin command.
 *
 * Each subcommand is one function `int cmd_NAME(int argc, char **argv)`
 * returning the process exit status (0 ok, 1 failure, 2 usage error). Output
 * is a human table by default and JSON with --json; errors are one line on
 * stderr starting with "valorfs NAME: ".
 */
#ifndef VALORFS_TOOLS_CLI_H
#define VALORFS_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "proto/mgmtd_proto.h"

struct rpc_client;

int cmd_up(int argc, char **argv);
int cmd_down(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_table(int argc, char **argv);
int cmd_layout(int argc, char **argv);
int cmd_upgrade(int argc, char **argv);
int cmd_mount_info(int argc, char **argv);

#define CLI_DEFAULT_DATA "/var/lib/valorfs/cluster"
#define CLI_DEFAULT_MOUNT "/mnt/valorfs"
#define CLI_DEFAULT_BASE_PORT 9600

/* The local cluster's state file DATA/cluster.env: KEY=VALUE lines written
 * by `valorfs up` and read by down/status. */
struct cluster_env {
    char mgmtd[128];
    char mount[4096];
    char bindir[4096];
    int nstorage;
    int loop;              /* storage dirs are loop-device mounts */
};
int cluster_env_read(const char *data, struct cluster_env *e);
int cluster_env_write(const char *data, const struct cluster_env *e);

/* Resolve the mgmtd address: --mgmtd wins, else DATA/cluster.env. */
int cli_mgmtd_addr(const char *opt_mgmtd, const char *data, char *out, size_t cap);

/* Fetch the routing snapshot from the first mgmtd in addrs that is primary
 * (following VF_E_NOT_PRIMARY). 0 or a status; *r must be mg_routing_free'd. */
int cli_fetch_routing(struct rpc_client *rpc, const char *addrs, struct mg_routing *r,
                      char *err, size_t errlen);

/* ---- output ---- */
void json_str(FILE *f, const char *s); /* a JSON string literal, escaped */

/* A simple text table: cli_table_row() collects rows of up to 12 cells;
 * cli_table_print() aligns columns. */
struct cli_table {
    int ncols, nrows, cap;
    char *(*cells)[12];
};
void cli_table_init(struct cli_table *t, int ncols, ...); /* header cells */
void cli_table_row(struct cli_table *t, ...);             /* ncols printf'd strings */
void cli_table_print(struct cli_table *t, FILE *f);
void cli_table_free(struct cli_table *t);

#endif
