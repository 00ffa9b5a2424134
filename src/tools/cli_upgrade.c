/* cli_upgrade.c — `valorfs upgrade` and `valorfs mount-info`: talk to the
 * keeper of a mount (src/keeper/keeper.h) over its control socket. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuse/mount.h"
#include "keeper/keeper_proto.h"
#include "tools/cli.h"

static const char upgrade_usage[] =
    "Usage: valorfs upgrade MOUNTPOINT [--binary=PATH] [--json]\n"
    "\n"
    "Replace the FUSE daemon serving MOUNTPOINT without unmounting it. The\n"
    "mount's keeper starts PATH (default: the binary the daemon was started\n"
    "from, i.e. the file now at that path), which prepares its backend; the\n"
    "running daemon then stops reading requests, finishes those in flight and\n"
    "hands over its state (node ids, lookup counts, open handles) as a sealed,\n"
    "versioned snapshot; the new daemon imports it and serves. Applications see\n"
    "a short pause, never an error. If the new daemon fails or refuses the\n"
    "snapshot, the running daemon resumes and the command fails.\n"
    "\n"
    "  --binary=PATH    the valorfs-fuse binary to run\n"
    "  --timeout=S      give up waiting for the keeper after S seconds (default 90)\n"
    "  --json           machine-readable result\n"
    "  --test-corrupt-snapshot\n"
    "                   (tests only) corrupt the snapshot on its way to the new\n"
    "                   daemon, which must refuse it\n"
    "\n"
    "Exit status: 0 upgraded, 1 failed (the old daemon still serves), 2 usage.\n";

static const char info_usage[] =
    "Usage: valorfs mount-info MOUNTPOINT [--json]\n"
    "\n"
    "Show the keeper and the daemon of a valorfs mount: pids, daemon generation,\n"
    "restarts after crashes, upgrades, transport, and the lookup accounting (nodes\n"
    "the kernel holds references to, open handles).\n";

/* Sends one request to the keeper of mountpoint and waits for its reply. */
static int ask_keeper(const char *cmd, const char *mountpoint, uint32_t type, uint32_t arg,
                      const char *text, int timeout_s, struct kp_msg *reply)
{
    int conn = fuse_mount_conn_id(mountpoint);
    if (conn < 0) {
        fprintf(stderr, "valorfs %s: %s is not a FUSE mount\n", cmd, mountpoint);
        return -1;
    }
    char path[108];
    kp_control_path(conn, path, sizeof(path));
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        fprintf(stderr, "valorfs %s: no keeper for %s (%s: %s); was it mounted with --no-keeper?\n",
                cmd, mountpoint, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct timeval tv = { timeout_s, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int rc = kp_send(fd, type, arg, 0, text, NULL, 0);
    int nfds = 0;
    if (rc == 0)
        rc = kp_recv(fd, reply, NULL, &nfds);
    close(fd);
    if (rc < 0) {
        fprintf(stderr, "valorfs %s: keeper of %s did not answer: %s\n", cmd, mountpoint,
                rc == -EAGAIN ? "timed out" : strerror(-rc));
        return -1;
    }
    return 0;
}

int cmd_upgrade(int argc, char **argv)
{
    static const struct option opts[] = {
        { "binary", required_argument, NULL, 'b' },
        { "timeout", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'j' },
        { "test-corrupt-snapshot", no_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *binary = NULL;
    int json = 0, timeout = 90;
    uint32_t flags = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'b': binary = optarg; break;
        case 't': timeout = atoi(optarg); break;
        case 'j': json = 1; break;
        case 'c': flags |= KP_UPGRADE_TEST_CORRUPT; break;
        case 'h': fputs(upgrade_usage, stdout); return 0;
        default: fputs(upgrade_usage, stderr); return 2;
        }
    }
    if (optind != argc - 1 || timeout <= 0) {
        fputs(upgrade_usage, stderr);
        return 2;
    }
    char abs[4096] = "";
    if (binary && realpath(binary, abs) == NULL) {
        fprintf(stderr, "valorfs upgrade: %s: %s\n", binary, strerror(errno));
        return 1;
    }
    struct kp_msg reply;
    if (ask_keeper("upgrade", argv[optind], KP_CTL_UPGRADE, flags, abs, timeout, &reply) < 0)
        return 1;
    int ok = reply.arg == 0;
    if (json) {
        printf("{\"mountpoint\": ");
        json_str(stdout, argv[optind]);
        printf(", \"ok\": %s, \"message\": ", ok ? "true" : "false");
        json_str(stdout, reply.text);
        printf("}\n");
    } else if (ok) {
        printf("%s: %s\n", argv[optind], reply.text);
    } else {
        fprintf(stderr, "valorfs upgrade: %s: %s\n", argv[optind], reply.text);
    }
    return ok ? 0 : 1;
}

int cmd_mount_info(int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int json = 0, opt;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'j': json = 1; break;
        case 'h': fputs(info_usage, stdout); return 0;
        default: fputs(info_usage, stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fputs(info_usage, stderr);
        return 2;
    }
    struct kp_msg reply;
    if (ask_keeper("mount-info", argv[optind], KP_CTL_STATUS, 0, NULL, 10, &reply) < 0)
        return 1;
    /* the reply is KEY=VALUE words */
    if (json) {
        printf("{\"mountpoint\": ");
        json_str(stdout, argv[optind]);
        char *save = NULL;
        for (char *w = strtok_r(reply.text, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
            char *eq = strchr(w, '=');
            if (eq == NULL)
                continue;
            *eq = '\0';
            printf(", ");
            json_str(stdout, w);
            char *end;
            strtoull(eq + 1, &end, 10);
            if (*end == '\0' && end != eq + 1)
                printf(": %s", eq + 1);
            else {
                printf(": ");
                json_str(stdout, eq + 1);
            }
        }
        printf("}\n");
    } else {
        printf("mountpoint  %s\n", argv[optind]);
        char *save = NULL;
        for (char *w = strtok_r(reply.text, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
            char *eq = strchr(w, '=');
            if (eq) {
                *eq = '\0';
                printf("%-11s %s\n", w, eq + 1);
            }
        }
    }
    return 0;
}
