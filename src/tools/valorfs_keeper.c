/* valorfs-keeper — holds a FUSE mount across daemon upgrades and crashes
 * (see src/keeper/keeper.h). Started by valorfs-fuse after it mounted;
 * not meant to be run by hand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "keeper/keeper.h"

static const char usage_text[] =
    "Usage: valorfs-keeper --dev-fd=N --mountpoint=DIR [--ready-fd=N] [--log-level=L]\n"
    "                      [--log-file=F] [--detached]\n"
    "                      -- DAEMON [ARGS...]\n"
    "\n"
    "Keeps the FUSE mount at DIR, whose /dev/fuse descriptor is N, alive across\n"
    "daemons: runs DAEMON ARGS --keeper-fd=3, restarts it when it dies, and serves\n"
    "`valorfs upgrade DIR` on /run/valorfs/keeper-<connection>.sock.\n"
    "valorfs-fuse starts it; there is no reason to run it by hand.\n"
    "\n"
    "  --ready-fd=N    write one zero byte to N once the daemon serves, then close it\n"
    "  --log-file=F    log to F once the daemon serves (before: stderr)\n"
    "  --detached      without --log-file, log nowhere once the daemon serves\n"
    "  --log-level=L   error | warn | info | debug (default info)\n";

int main(int argc, char **argv)
{
    struct keeper_opts o = { .dev_fd = -1, .ready_fd = -1 };
    int level = LOG_LVL_INFO;
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strncmp(a, "--dev-fd=", 9))
            o.dev_fd = atoi(a + 9);
        else if (!strncmp(a, "--ready-fd=", 11))
            o.ready_fd = atoi(a + 11);
        else if (!strncmp(a, "--log-file=", 11))
            o.log_file = a + 11;
        else if (!strcmp(a, "--detached"))
            o.detached = 1;
        else if (!strncmp(a, "--mountpoint=", 13))
            o.mountpoint = a + 13;
        else if (!strncmp(a, "--log-level=", 12) && (level = log_level_parse(a + 12)) >= 0)
            continue;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else {
            fprintf(stderr, "valorfs-keeper: unknown argument '%s'\n%s", a, usage_text);
            return 2;
        }
    }
    if (o.dev_fd < 0 || o.mountpoint == NULL || i >= argc || level < 0) {
        fputs(usage_text, stderr);
        return 2;
    }
    o.daemon_argv = argv + i;
    log_init((enum log_level)level);
    return keeper_run(&o);
}
