/* meta_core.h — the valorfs namespace over a transactional KV store.
 *
 * Contract. struct meta_core is a stateless layer over a struct kv_db: every
 * operation is one serializable KV transaction, retried on conflict
 * (-EAGAIN, with kv_retry_backoff) up to META_MAX_ATTEMPTS times, after
 * which it fails with EIO. So of two conflicting concurrent operations
 * exactly one wins (two creates of one name: one succeeds, the other gets
 * EEXIST). Any number of meta servers may share one store.
 *
 * meta_exec() runs one method of meta_proto.h with the fields that method
 * reads from struct meta_req, with POSIX semantics and the kernel's
 * permission rules for req->user (uid 0 bypasses them as the kernel does).
 * It returns 0 or a negative errno. On success resp is filled; resp->data
 * (READLINK, GETXATTR, LISTXATTR, READDIR) points into `out`, which the
 * caller owns (wb_init before, wb_free after).
 *
 * Storage side effects go through struct meta_chunk_ops: truncation to a
 * smaller size calls truncate() before the new size commits; the last link
 * of a regular file leaves an orphan record (ORPH) that the collector
 * (meta_gc_*) turns into one remove() once no session holds the file.
 *
 * Exactly once. A state-changing method (every method but the read-only
 * ones: lookup, getattr, readlink, readdir, getxattr, listxattr, statfs,
 * access) whose request carries an id (meta_req.req_client != 0) commits,
 * in the same transaction as its effect, a record of its answer keyed by
 * the id. The same id again — a client retrying after a lost answer, on
 * this or another meta server sharing the store — is answered from the
 * record and applies nothing, even when the original still runs (the two
 * transactions conflict; the loser re-runs and finds the record). Only
 * successes are recorded: a failed operation committed nothing, so its
 * retry simply runs again. Records older than the retention are removed by
 * meta_dedup_sweep() (the collector thread calls it every round); a retry
 * later than that runs again. Cost: two small keys per state change
 * (about 150 bytes), live for the retention: rate x retention records.
 *
 * On-disk records are untrusted bytes: a corrupt record makes the
 * operation fail with EIO and a log line, never a crash.
 *
 * Threads: every function may be called from any number of threads at once.
 */
#ifndef VALORFS_META_META_CORE_H
#define VALORFS_META_META_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wire.h"
#include "proto/meta_proto.h"

struct kv_db;
struct meta_core;

#define META_MAX_ATTEMPTS 64          /* KV conflicts before an op gives up (EIO) */
#define META_DEFAULT_CHUNK (1u << 20)
#define META_DEFAULT_STRIPE 4u
#define META_READDIR_DEFAULT 1024     /* entries when max_entries is 0 */
#define META_READDIR_BYTES (1u << 20) /* byte budget of one READDIR answer */
#define META_XATTR_LIST_MAX 65536     /* LISTXATTR answer limit (E2BIG past it) */
#define META_MAX_LINKS 65000u         /* EMLINK past it */
#define META_DEDUP_RETENTION_S 600    /* de-duplication records live 10 minutes */
#define META_DEDUP_SWEEP_BATCHES 64   /* batches of 256 expired records per collector round */

/* Storage side effects; every function returns 0 or -errno and may block. */
struct meta_chunk_ops {
    /* drop file bytes at or past new_len on every chain of the layout */
    int (*truncate)(void *arg, const struct meta_inode *ino, uint64_t new_len);
    /* remove every chunk of the file */
    int (*remove)(void *arg, const struct meta_inode *ino);
    /* the length the stored chunks imply */
    int (*query_len)(void *arg, const struct meta_inode *ino, uint64_t *len);
    /* choose the chains of a new file (stripe already capped to >= 1) */
    int (*alloc_layout)(void *arg, uint32_t chunk_size, uint32_t stripe, struct meta_layout *out);
    void *arg;
};

struct meta_core_opts {
    struct kv_db *db;                 /* not owned */
    struct meta_chunk_ops chunk;
    uint32_t chunk_size;              /* default layout; 0 = META_DEFAULT_CHUNK */
    uint32_t stripe;                  /* 0 = META_DEFAULT_STRIPE */
    /* STATFS space; NULL reports 0 bytes */
    int (*space)(void *arg, uint64_t *total_bytes, uint64_t *free_bytes);
    void *space_arg;
    /* how long a request's de-duplication record is kept; must exceed the
     * longest a client retries one call. 0 = META_DEDUP_RETENTION_S */
    uint32_t dedup_retention_s;
};

/* Creates the root (inode 1, 0755 root:root) when the store has none.
 * NULL on failure with a one-line reason in err. */
struct meta_core *meta_core_new(const struct meta_core_opts *o, char *err, size_t errlen);
/* True when the store's reads are network round trips (kv_is_remote). */
bool meta_core_kv_remote(const struct meta_core *mc);
/* Stops the collector if it runs. */
void meta_core_free(struct meta_core *mc);

/* Run one method (enum meta_method). 0 or -errno (-ENOSYS: unknown method). */
int meta_exec(struct meta_core *mc, uint16_t method, const struct meta_req *req,
              struct meta_resp *resp, struct wbuf *out);

/* Orphan collector. run_once removes every orphan without a session and
 * returns how many it removed (or -errno when the store fails). */
int meta_gc_run_once(struct meta_core *mc);
/* Start a thread running meta_gc_run_once every interval_ms (and sooner
 * after the last session of an orphan closes). 0 or -errno. */
int meta_gc_start(struct meta_core *mc, uint32_t interval_ms);
void meta_gc_stop(struct meta_core *mc);

/* Remove the de-duplication records committed before now_ns - retention,
 * at most max_batches transactions of 256. Returns how many it removed or
 * -errno. */
int meta_dedup_sweep(struct meta_core *mc, int64_t now_ns, unsigned max_batches);

const char *meta_method_name(uint16_t method);

#endif
