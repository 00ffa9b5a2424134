/* takeover.h — the engine's side of the keeper protocol (takeover.c),
 * used by session.c. Not for backends. */
#ifndef VALORFS_FUSE_TAKEOVER_H
#define VALORFS_FUSE_TAKEOVER_H

#include <stddef.h>

struct vfs_session;

void takeover_install_signal(void);
/* A fresh handoff region for this daemon. */
int takeover_before_init(struct vfs_session *s);
/* Record the negotiated INIT in the region. */
void takeover_after_init(struct vfs_session *s);
/* After a crash: import the dead daemon's region and restore the backend. */
int takeover_restart(struct vfs_session *s);
/* After a crash, before reading: have the kernel resend what the dead
 * daemon had taken, then let the keeper drop its channels. */
void takeover_resend(struct vfs_session *s);
/* Graceful upgrade: wait for the predecessor's sealed snapshot, import it
 * and restore; refuses (and tells the keeper) a bad one. */
int takeover_upgrade(struct vfs_session *s);
/* Serving: hand the keeper the region and channel fds, say READY. */
void takeover_announce(struct vfs_session *s, int nchans);
/* A keeper message while serving; 1 = handed over, end the session. */
int takeover_on_keeper(struct vfs_session *s);
/* Park every request-reading channel once its requests are answered
 * (0), or give up after timeout_ms and resume (-ETIMEDOUT, why set). */
int takeover_pause(struct vfs_session *s, unsigned timeout_ms, char *why, size_t whylen);
void takeover_resume(struct vfs_session *s);
/* Wake parked channels so they see `stopping`. */
void takeover_release_parked(struct vfs_session *s);
/* Clean end: tell the keeper (unless a successor took over). */
void takeover_goodbye(struct vfs_session *s);

#endif
