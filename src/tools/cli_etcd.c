/* cli_etcd.c — the local etcd cluster behind `valorfs up --kv=etcd`.
 *
 * Starts 1 or 3 etcd members on 127.0.0.1 (ports and directories in cli.h),
 * waits until every member answers a read through etcdctl (so the cluster
 * has elected a leader), and stops them. Flags that matter to valorfs:
 *   --max-txn-ops=10000     a metadata commit compares every key it read
 *   --quota-backend-bytes   8 GiB instead of the 2 GiB default
 *   --auto-compaction-mode=revision, retention 100000: old revisions go
 *                           away, yet a snapshot read stays valid for long
 *                           enough under any realistic write rate
 * fsync stays on unless the user asked for --kv-sync=none.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "tools/cli.h"

int cli_etcd_client_port(int base_port, int member) { return base_port + 30 + member; }
int cli_etcd_peer_port(int base_port, int member) { return base_port + 40 + member; }

void cli_etcd_endpoints(int base_port, int members, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = 0;
    for (int n = 1; n <= members && used < cap; n++)
        used += (size_t)snprintf(out + used, cap - used, "%s127.0.0.1:%d", n > 1 ? "," : "",
                                 cli_etcd_client_port(base_port, n));
}

/* The first executable `name` on PATH (then /usr/bin, /usr/local/bin). */
static bool find_program(const char *name, char *out, size_t cap)
{
    const char *path = getenv("PATH");
    char list[4096];
    snprintf(list, sizeof(list), "%s:/usr/bin:/usr/local/bin", path ? path : "");
    char *save = NULL;
    for (char *d = strtok_r(list, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        int n = snprintf(out, cap, "%s/%s", d, name);
        if (n > 0 && (size_t)n < cap && access(out, X_OK) == 0)
            return true;
    }
    return false;
}

static void member_dir(const char *data, int n, char *out, size_t cap)
{
    snprintf(out, cap, "%s/etcd/member-%d", data, n);
}

static void member_name(int n, char *out, size_t cap) { snprintf(out, cap, "etcd-%d", n); }

/* Run argv, its stdout+stderr into out (truncated to cap). Exit status, or
 * -1 when it could not run. */
static int run_capture(char *const argv[], char *out, size_t cap)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0)
            dup2(in, 0);
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t used = 0;
    for (;;) {
        char buf[512];
        ssize_t r = read(pfd[0], buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t take = MIN((size_t)r, cap - 1 - used);
        memcpy(out + used, buf, take);
        used += take;
    }
    out[used] = 0;
    close(pfd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* One linearizable read on one member: it succeeds only when the member is
 * part of a cluster that has a leader. */
static bool member_healthy(const char *etcdctl, int port, char *why, size_t cap)
{
    char ep[64];
    snprintf(ep, sizeof(ep), "--endpoints=http://127.0.0.1:%d", port);
    char *argv[] = {(char *)etcdctl, ep, "--dial-timeout=1s", "--command-timeout=2s",
                    "endpoint", "health", NULL};
    char out[1024];
    int rc = run_capture(argv, out, sizeof(out));
    if (rc == 0)
        return true;
    out[strcspn(out, "\n")] = 0;
    snprintf(why, cap, "%.400s", out[0] ? out : "etcdctl failed");
    return false;
}

static int start_member(const struct cli_etcd *c, const char *etcd_bin, int n,
                        const char *initial_cluster, const char *token)
{
    char dir[PATH_MAX], log[PATH_MAX], name[32], parent[PATH_MAX];
    member_dir(c->data, n, dir, sizeof(dir));
    snprintf(parent, sizeof(parent), "%s/etcd", c->data);
    mkdir(parent, 0700);
    snprintf(log, sizeof(log), "%s/log/etcd-%d.log", c->data, n);
    member_name(n, name, sizeof(name));
    pid_t old = cli_pidfile_read(c->data, name);
    if (cli_pid_alive(old)) {
        fprintf(stderr, "valorfs up: etcd member %d is already running (pid %d)\n", n, old);
        return -1;
    }

    char a_name[48], a_dir[PATH_MAX + 16], a_lc[96], a_ac[96], a_lp[96], a_ap[96],
        a_ic[512], a_tok[128];
    int cp = cli_etcd_client_port(c->base_port, n), pp = cli_etcd_peer_port(c->base_port, n);
    snprintf(a_name, sizeof(a_name), "--name=valorfs-%d", n);
    snprintf(a_dir, sizeof(a_dir), "--data-dir=%s", dir);
    snprintf(a_lc, sizeof(a_lc), "--listen-client-urls=http://127.0.0.1:%d", cp);
    snprintf(a_ac, sizeof(a_ac), "--advertise-client-urls=http://127.0.0.1:%d", cp);
    snprintf(a_lp, sizeof(a_lp), "--listen-peer-urls=http://127.0.0.1:%d", pp);
    snprintf(a_ap, sizeof(a_ap), "--initial-advertise-peer-urls=http://127.0.0.1:%d", pp);
    snprintf(a_ic, sizeof(a_ic), "--initial-cluster=%s", initial_cluster);
    snprintf(a_tok, sizeof(a_tok), "--initial-cluster-token=%s", token);
    /* With an existing data dir etcd ignores the --initial-* flags and
     * rejoins the cluster recorded in its WAL: restarts keep the data. */
    char *argv[24] = {(char *)etcd_bin, a_name, a_dir, a_lc, a_ac, a_lp, a_ap, a_ic,
                      "--initial-cluster-state=new", a_tok,
                      "--max-txn-ops=10000",
                      "--quota-backend-bytes=8589934592",
                      "--auto-compaction-mode=revision",
                      "--auto-compaction-retention=100000",
                      "--logger=zap", "--log-outputs=stderr"};
    int argc = 16;
    if (c->no_fsync)
        argv[argc++] = "--unsafe-no-fsync";
    argv[argc] = NULL;
    pid_t pid = cli_spawn_daemon(argv, log);
    if (pid < 0) {
        fprintf(stderr, "valorfs up: cannot start etcd member %d: %s\n", n, strerror(errno));
        return -1;
    }
    cli_pidfile_write(c->data, name, pid);
    printf("valorfs up: etcd-%d   pid %-7d 127.0.0.1:%d (peer %d)  data %s\n", n, pid, cp, pp,
           dir);
    fflush(stdout);
    return 0;
}

int cli_etcd_start(const struct cli_etcd *c, uint32_t timeout_ms)
{
    char etcd_bin[PATH_MAX], etcdctl[PATH_MAX];
    if (!find_program("etcd", etcd_bin, sizeof(etcd_bin)) ||
        !find_program("etcdctl", etcdctl, sizeof(etcdctl))) {
        fprintf(stderr, "valorfs up: --kv=etcd needs etcd and etcdctl on PATH "
                        "(Debian: apt-get install etcd-server etcd-client)\n");
        return -1;
    }
    if (c->members < 1 || c->members > CLI_ETCD_MAX_MEMBERS) {
        fprintf(stderr, "valorfs up: --etcd-members must be 1 or 3\n");
        return -1;
    }
    /* Members can only be added or removed through etcd's reconfiguration
     * (etcdctl member add/remove), not by restarting with another count. */
    int existing = 0;
    for (int n = 1; n <= CLI_ETCD_MAX_MEMBERS; n++) {
        char dir[PATH_MAX];
        struct stat st;
        member_dir(c->data, n, dir, sizeof(dir));
        existing += stat(dir, &st) == 0;
    }
    if (existing && existing != c->members) {
        fprintf(stderr, "valorfs up: %s/etcd holds a %d-member etcd cluster; "
                        "restart it with --etcd-members=%d\n", c->data, existing, existing);
        return -1;
    }
    char initial[512] = "";
    size_t used = 0;
    for (int n = 1; n <= c->members; n++)
        used += (size_t)snprintf(initial + used, sizeof(initial) - used,
                                 "%svalorfs-%d=http://127.0.0.1:%d", n > 1 ? "," : "", n,
                                 cli_etcd_peer_port(c->base_port, n));
    /* A token unique to this data directory and port keeps two local
     * clusters from ever joining each other. */
    uint32_t h = 2166136261u;
    for (const char *p = c->data; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    char token[64];
    snprintf(token, sizeof(token), "valorfs-%d-%08x", c->base_port, h);

    for (int n = 1; n <= c->members; n++)
        if (start_member(c, etcd_bin, n, initial, token) != 0)
            return -1;

    uint64_t end = now_ns() / 1000000 + timeout_ms;
    bool healthy[CLI_ETCD_MAX_MEMBERS + 1] = {false};
    int nhealthy = 0;
    char why[512] = "";
    int last_bad = 1;
    while (nhealthy < c->members) {
        for (int n = 1; n <= c->members; n++) {
            if (healthy[n])
                continue;
            char name[32];
            member_name(n, name, sizeof(name));
            if (!cli_pid_alive(cli_pidfile_read(c->data, name))) {
                char log[PATH_MAX];
                snprintf(log, sizeof(log), "%s/log/etcd-%d.log", c->data, n);
                fprintf(stderr, "valorfs up: etcd member %d exited during start-up "
                                "(port in use? see %s)\n", n, log);
                cli_show_log_tail(log, 15);
                return -1;
            }
            if (member_healthy(etcdctl, cli_etcd_client_port(c->base_port, n), why,
                               sizeof(why))) {
                healthy[n] = true;
                nhealthy++;
            } else {
                last_bad = n;
            }
        }
        if (nhealthy == c->members)
            break;
        if (now_ns() / 1000000 > end) {
            char log[PATH_MAX];
            snprintf(log, sizeof(log), "%s/log/etcd-%d.log", c->data, last_bad);
            fprintf(stderr, "valorfs up: etcd did not become healthy in %u s "
                            "(%d of %d members answer; member %d: %s)\n", timeout_ms / 1000,
                    nhealthy, c->members, last_bad, why);
            cli_show_log_tail(log, 15);
            return -1;
        }
        usleep(200 * 1000);
    }
    return 0;
}

int cli_etcd_stop(const char *data, int grace_s, bool force)
{
    /* One member at a time: a leader hands leadership to a follower that is
     * still running (quick), where stopping all at once makes it wait for a
     * transfer to a member that is going away (seconds). */
    int rc = 0;
    for (int n = 1; n <= CLI_ETCD_MAX_MEMBERS; n++) {
        char name[32];
        member_name(n, name, sizeof(name));
        pid_t pid = cli_pidfile_read(data, name);
        if (pid <= 0)
            continue;
        if (!cli_stop_pid(name, pid, grace_s, force))
            rc = 1;
        else
            cli_pidfile_remove(data, name);
    }
    return rc;
}
