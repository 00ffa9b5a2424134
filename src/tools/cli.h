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
#include <sys/types.h>

#include "proto/mgmtd_proto.h"

struct rpc_client;

int cmd_up(int argc, char **argv);
int cmd_down(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_table(int argc, char **argv);
int cmd_layout(int argc, char **argv);
int cmd_upgrade(int argc, char **argv);
int cmd_mount_info(int argc, char **argv);
int cmd_verify_chains(int argc, char **argv);

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
    /* issue 5: shared metadata store (absent in older files: 0/empty) */
    char kv_meta[1024];    /* the URI meta servers open */
    char kv_mgmtd[1024];   /* the URI mgmtd opens */
    int nmetas, nmgmtds;   /* 0 = 1 */
    int etcd_members;      /* local etcd members started by up (0 = none) */
};
int cluster_env_read(const char *data, struct cluster_env *e);
int cluster_env_write(const char *data, const struct cluster_env *e);

/* Resolve the mgmtd address: --mgmtd wins, else DATA/cluster.env. */
int cli_mgmtd_addr(const char *opt_mgmtd, const char *data, char *out, size_t cap);

/* Fetch the routing snapshot from the first mgmtd in addrs that is primary
 * (following VF_E_NOT_PRIMARY). 0 or a status; *r must be mg_routing_free'd. */
int cli_fetch_routing(struct rpc_client *rpc, const char *addrs, struct mg_routing *r,
                      char *err, size_t errlen);

/* ---- process helpers (cli_up.c), shared with cli_etcd.c ----
 * Daemons run detached (own session, stdout+stderr appended to their log)
 * with their pid in DATA/run/NAME.pid. */
pid_t cli_spawn_daemon(char *const argv[], const char *log);
bool cli_pid_alive(pid_t pid);
pid_t cli_pidfile_read(const char *data, const char *name); /* -1 if none */
void cli_pidfile_write(const char *data, const char *name, pid_t pid);
void cli_pidfile_remove(const char *data, const char *name);
/* SIGTERM, wait up to grace_s; with force SIGKILL after that. true = gone. */
bool cli_stop_pid(const char *name, pid_t pid, int grace_s, bool force);
void cli_show_log_tail(const char *log, int lines);

/* ---- a local etcd cluster for `valorfs up --kv=etcd` (cli_etcd.c) ----
 * Member N (1..members) keeps its data in DATA/etcd/member-N, logs to
 * DATA/log/etcd-N.log, has its pid in DATA/run/etcd-N.pid, serves clients
 * on 127.0.0.1:P+30+N and peers on 127.0.0.1:P+40+N (P = base port). A data
 * directory that already holds a member is restarted with its data. */
#define CLI_ETCD_MAX_MEMBERS 3
struct cli_etcd {
    const char *data;    /* absolute DATA directory */
    int members;         /* 1 or 3 */
    int base_port;
    bool no_fsync;       /* --unsafe-no-fsync (valorfs up --kv-sync=none) */
};
int cli_etcd_client_port(int base_port, int member);
int cli_etcd_peer_port(int base_port, int member);
/* "127.0.0.1:A,127.0.0.1:B,..." — every member's client endpoint. */
void cli_etcd_endpoints(int base_port, int members, char *out, size_t cap);
/* Start every member, then wait up to timeout_ms until each one answers a
 * read (the cluster has a leader). 0, or -1 after printing one error line
 * and the failing member's log tail on stderr; members already started
 * keep running for the caller's cli_etcd_stop(). */
int cli_etcd_start(const struct cli_etcd *c, uint32_t timeout_ms);
/* Stop every member started from DATA: SIGTERM to all (each shuts down
 * gracefully), wait up to grace_s; force kills stragglers. 0 or 1. */
int cli_etcd_stop(const char *data, int grace_s, bool force);

/* Call `method` on the primary mgmtd among addrs (comma-separated): each
 * address in turn, following a VF_E_NOT_PRIMARY redirect. Like
 * rpc_call_sync: the status, *resp malloc'd on success. */
int cli_call_mgmtd(struct rpc_client *rpc, const char *addrs, uint16_t method, const void *req,
                   size_t req_len, uint32_t timeout_ms, void **resp, size_t *resp_len);

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
