/* session.h — one FUSE mount served by the valorfs engine.
 *
 * Lifecycle: vfs_session_new() → vfs_session_mount() → vfs_session_run()
 * (blocks: negotiates INIT, starts the channels, serves until the file
 * system is unmounted or vfs_session_stop() is called) →
 * vfs_session_quiesce() → backend and vfs_session_free() (see below).
 */
#ifndef VALORFS_FUSE_SESSION_H
#define VALORFS_FUSE_SESSION_H

#include <stdint.h>

#include "fuse/vfs.h"

enum vfs_transport {
    VFS_TRANSPORT_CLASSIC, /* one blocking reader per cloned /dev/fuse fd */
    VFS_TRANSPORT_XFUSE,   /* adaptive busy-wait, many requests in flight per channel */
    VFS_TRANSPORT_URING,   /* FUSE-over-io_uring, one queue per CPU */
};

struct vfs_session_opts {
    enum vfs_transport transport;
    /* Knob a in [0,1]: share of channels run as classic, the rest xfuse.
     * Applies to the classic/xfuse transports; < 0 means "from transport". */
    double classic_share;
    int threads;          /* channels; 0 = one per online CPU */
    int queue_depth;      /* requests in flight per xfuse/uring channel; 0 = default */
    int max_spin_us;      /* upper bound of the adaptive spin; 0 disables spinning */
    int pin_threads;      /* pin uring queue threads to their CPU (default on) */
    int writeback_cache;  /* negotiate FUSE_WRITEBACK_CACHE */
    /* Kernel read-ahead for the mount in KiB (0 = the kernel's default,
     * 128 KiB). FUSE caps read-ahead at INIT to the bdi's value, so it is
     * raised through /sys/class/bdi right after INIT. */
    unsigned read_ahead_kb;
    int allow_other;      /* mount option allow_other */
    int default_permissions; /* kernel checks mode bits (default on) */
    /* Capacity of the handoff tables (handoff.h); 0 = defaults (1 Mi
     * nodes, 64 Ki handles). Beyond them nodes do not survive upgrades. */
    unsigned handoff_nodes, handoff_handles;
    const char *fsname;   /* shown in /proc/mounts */
    const char *subtype;  /* "valorfs" → type fuse.valorfs */
};

void vfs_session_opts_default(struct vfs_session_opts *o);
const char *vfs_transport_name(enum vfs_transport t);
int vfs_transport_parse(const char *s, enum vfs_transport *t);

struct vfs_session *vfs_session_new(const struct vfs_ops *ops, void *fs,
                                    const struct vfs_session_opts *o);
/* Mounts a FUSE file system with the options of o at mountpoint; returns
 * its /dev/fuse fd or -errno (for a keeper that serves nothing itself). */
int vfs_mount(const struct vfs_session_opts *o, const char *mountpoint, int *used_fusermount);
/* Opens /dev/fuse and mounts (mount(2) as root, fusermount3 otherwise).
 * Returns 0 or -errno. */
int vfs_session_mount(struct vfs_session *s, const char *mountpoint);
/* Instead of mounting: serve the mount a keeper holds (keeper/keeper.h).
 * keeper_fd is this daemon's end of the keeper socket. Reads the keeper's
 * HELLO (the /dev/fuse fd, the mountpoint, what a predecessor left);
 * vfs_session_run() then takes over: a first daemon negotiates INIT; after
 * a crash it imports the dead daemon's state and has the kernel resend the
 * requests that daemon had read; in an upgrade it waits for the running
 * daemon to drain and imports its sealed snapshot (a bad one is refused
 * and the running daemon goes on). Returns 0 or -errno. */
int vfs_session_attach_keeper(struct vfs_session *s, int keeper_fd);
const char *vfs_session_mountpoint(const struct vfs_session *s);
/* Serves until unmounted or stopped. Returns 0 on a clean end. */
int vfs_session_run(struct vfs_session *s);
/* Async-signal-safe: asks run() to unmount and return. */
void vfs_session_stop(struct vfs_session *s);
/* After run(): the engine stops its own background calls into the backend
 * (the lost-FORGET timer). A backend whose calls complete on its own
 * threads (cluster) is then freed before the session, since calls it fails
 * on its way out answer requests that live in the session's channels; one
 * whose I/O completes on the channels' rings (passthrough) after it. */
void vfs_session_quiesce(struct vfs_session *s);
void vfs_session_free(struct vfs_session *s);

/* Negotiated state, for logs and tests. */
uint32_t vfs_session_proto_minor(const struct vfs_session *s);
uint64_t vfs_session_flags(const struct vfs_session *s);
enum vfs_transport vfs_session_active_transport(const struct vfs_session *s);

#endif
