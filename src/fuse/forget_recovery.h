/* forget_recovery.h — lookups whose FORGET died with a crashed daemon.
 *
 * The kernel sends each FORGET once and never resends it. One that a
 * daemon had read but not yet applied when it was killed is lost, and the
 * successor would hold those lookups forever (handoff.h counts everything
 * else exactly). After a crash, before it serves, the successor probes
 * every node it imported with FUSE_NOTIFY_INVAL_INODE: the kernel answers
 * ENOENT when it has no inode for the node id, i.e. holds none of its
 * lookups any more. Such a node is a suspect: its FORGET was either lost
 * or is still queued in the kernel. Queued FORGETs are read within moments
 * of serving (the kernel hands them out before other requests), so a
 * suspect whose FORGET has not come by the time fr_settle() runs (a
 * second after serving began, or before a drain for upgrade, whichever is
 * first) lost it: its imported count is dropped. Nodes named by a request
 * the dead daemon had counted but not answered are not probed (the kernel
 * gets their reply only now); a READDIRPLUS among those, whose entries are
 * not known, makes the whole recovery stand down (a leak, never an early
 * drop).
 *
 * Threads: fr_on_forget() from any channel thread; fr_settle() is
 * idempotent and thread-safe.
 */
#ifndef VALORFS_FUSE_FORGET_RECOVERY_H
#define VALORFS_FUSE_FORGET_RECOVERY_H

#include <stdint.h>

struct vfs_session;

/* After importing a crashed daemon's region, before serving. */
void fr_begin(struct vfs_session *s);
/* A FORGET for id arrived. */
void fr_on_forget(struct vfs_session *s, uint64_t id);
/* Drop the lookups of suspects whose FORGET never came. */
void fr_settle(struct vfs_session *s);
/* Stops the timer and frees (session teardown). */
void fr_end(struct vfs_session *s);

#endif
