/* keeper.h — the process that keeps a FUSE mount alive across daemons.
 *
 * The keeper owns the mount's /dev/fuse fd and never serves a request. It
 * starts the daemon (fork + exec of the daemon command line with
 * --keeper-fd=3 appended), holds a duplicate of every channel fd the
 * daemon opens and of its handoff region (fuse/handoff.h), restarts the
 * daemon when it dies, and runs graceful upgrades asked for on its control
 * socket. The protocol is in keeper_proto.h. It has no backend code and no
 * request handling, so it never needs upgrading itself.
 *
 * Exits 0 when the daemon reports a clean end (unmount, SIGTERM), or with
 * the first daemon's status when it fails before it ever served.
 */
#ifndef VALORFS_KEEPER_H
#define VALORFS_KEEPER_H

struct keeper_opts {
    int dev_fd;             /* the mount's /dev/fuse fd (inherited) */
    int ready_fd;           /* written (one 0 byte) once the first daemon serves; -1 */
    const char *mountpoint;
    const char *log_file;   /* stderr goes there once the first daemon serves */
    int detached;           /* no terminal: without log_file, log nowhere then */
    char *const *daemon_argv; /* NULL-terminated; argv[0] is the binary */
};

int keeper_run(const struct keeper_opts *o);

#endif
