/* keeper_proto.h — messages between the keeper, its daemons and the CLI.
 *
 * The keeper (keeper.h) owns a FUSE mount's /dev/fuse fd and outlives the
 * daemons that serve it. It talks to each daemon over a SOCK_SEQPACKET
 * socketpair (the daemon's end is fd KP_DAEMON_FD after exec) and to
 * `valorfs upgrade|mount-info` over a Unix socket at kp_control_path().
 * Every message is one fixed-size struct kp_msg datagram, optionally
 * carrying file descriptors (SCM_RIGHTS). Receivers check the size, the
 * type and the NUL-terminated text before using a message.
 *
 * Daemon start (every generation):
 *   keeper -> daemon  HELLO{arg=mode, val=generation} fds=[/dev/fuse]
 *                     (RESTART: + the dead daemon's region, then OLDCHANS
 *                     batches with its channel fds), then GO
 *   daemon -> keeper  REGION fds=[its new region], CHAN fds=[clone] for
 *                     every channel, READY{text} once serving
 * Crash restart: the new daemon imports the old region, writes
 *   FUSE_NOTIFY_RESEND, then sends DROP_OLD (the keeper closes the dead
 *   daemon's channels only now, so the kernel never ends their requests).
 * Graceful upgrade (CLI "upgrade PATH"):
 *   keeper -> new     HELLO{UPGRADE}, GO;   new -> keeper PREPARED
 *   keeper -> old     DRAIN;                old -> keeper DRAINED fds=[sealed region]
 *                                           (or FAILED{text}: keeps serving)
 *   keeper -> new     TAKEOVER fds=[sealed region]{val=old pid}
 *   new -> keeper     READY, or REFUSED{text} (keeper -> old RESUME)
 *   keeper -> old     EXIT (it leaves without unmounting)
 * Clean end: daemon -> keeper UNMOUNTED before it exits; the keeper exits.
 */
#ifndef VALORFS_KEEPER_PROTO_H
#define VALORFS_KEEPER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define KP_DAEMON_FD 3    /* the daemon's end of the socketpair after exec */
#define KP_MAX_FDS 32     /* fds per message */
#define KP_TEXT_MAX 480

enum kp_type {
    KP_HELLO = 1, KP_OLDCHANS, KP_GO, KP_REGION, KP_CHAN, KP_PREPARED, KP_READY,
    KP_DRAIN, KP_DRAINED, KP_FAILED, KP_TAKEOVER, KP_REFUSED, KP_RESUME, KP_EXIT,
    KP_DROP_OLD, KP_UNMOUNTED,
    /* control socket */
    KP_CTL_UPGRADE, KP_CTL_STATUS, KP_CTL_REPLY,
    KP_TYPE_MAX
};

enum kp_mode { KP_MODE_FIRST = 1, KP_MODE_RESTART = 2, KP_MODE_UPGRADE = 3 };

/* KP_CTL_UPGRADE arg bits */
#define KP_UPGRADE_TEST_CORRUPT 1u /* test only: flip a byte of the snapshot */

struct kp_msg {
    uint32_t type; /* enum kp_type */
    uint32_t arg;
    uint64_t val;
    char text[KP_TEXT_MAX]; /* NUL-terminated */
};

/* Sends one message with nfds descriptors. 0 or -errno. */
int kp_send(int sock, uint32_t type, uint32_t arg, uint64_t val, const char *text,
            const int *fds, int nfds);
/* Receives one message; descriptors land in fds (up to *nfds, which is
 * updated; extra ones are closed). Returns 0, -ECONNRESET at EOF, -EPROTO
 * for a malformed message (its fds closed), or -errno. */
int kp_recv(int sock, struct kp_msg *m, int *fds, int *nfds);
/* Checks a received datagram of len bytes (bounds, type, text). 0 or
 * -EPROTO. Exposed for the fuzzer. */
int kp_check(const void *buf, size_t len);

/* Where the keeper of FUSE connection conn_id listens. */
void kp_control_path(int conn_id, char *buf, size_t len);
const char *kp_type_name(uint32_t type);

#endif
