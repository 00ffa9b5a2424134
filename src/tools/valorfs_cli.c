/* valorfs — the admin command: start/stop a local cluster, show its state,
 * manage chain tables, show where a file's chunks live. */
#include <stdio.h>
#include <string.h>

#include "tools/cli.h"

static const char usage[] =
    "Usage: valorfs COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  up        start a cluster on this machine (mgmtd, meta, storage) and mount it\n"
    "  down      unmount and stop the cluster that `up` started\n"
    "  status    nodes, targets, chains and chain tables with states and versions\n"
    "  table     create or list chain tables\n"
    "  layout    a file's layout and which targets hold each chunk\n"
    "  upgrade   replace the FUSE daemon of a mount without unmounting it\n"
    "  mount-info  keeper, daemon and lookup accounting of a mount\n"
    "\n"
    "Every command takes --help. Machine-readable output: --json.\n"
    "Commands that talk to a cluster take --mgmtd=HOST:PORT[,HOST:PORT...] or\n"
    "--data=DIR (the --data of `valorfs up`, default " CLI_DEFAULT_DATA ").\n";

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"up", cmd_up},       {"down", cmd_down},     {"status", cmd_status},
        {"table", cmd_table}, {"layout", cmd_layout}, {"upgrade", cmd_upgrade},
        {"mount-info", cmd_mount_info}, {"verify-chains", cmd_verify_chains},
    };
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
        puts("valorfs 0.1.0");
        return 0;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "valorfs: unknown command '%s'\n\n%s", argv[1], usage);
    return 2;
}
