/* handoff.h — the state one FUSE daemon leaves to the next.
 *
 * The kernel holds references the daemon gave it: the INIT negotiation,
 * node ids with lookup counts, open file and directory handles, and
 * requests it has read but not yet seen answered. All of it lives in one
 * shared-memory region (a memfd that the keeper also holds), updated while
 * the daemon runs, so that after a graceful upgrade *or* a crash the next
 * daemon finds it:
 *
 *  - nodes: id -> lookup count + a backend key (passthrough: its file
 *    handle; cluster: nothing, the node id is the inode id);
 *  - handles: the fh values the kernel holds are slot numbers in the
 *    region; a slot names its node, kind, open flags, and a small backend
 *    blob (cluster: the meta session and the end written so far);
 *  - request records, one per request slot: which request (unique) the
 *    slot last took, whether the backend was called for it, and how many
 *    of its reply's entries were already counted — so a request the kernel
 *    resends after a crash (FUSE_UNIQUE_RESEND) is neither applied nor
 *    counted twice.
 *
 * Counting is exact across kill -9 at any instruction. A reply may carry
 * many entries (READDIRPLUS), and a kill can land between two of them or
 * between a node's increment and the record saying so. So each increment
 * goes through ho_node_ref_rec(), which, under the node's stripe lock,
 * first notes in the record which entry is pending, which node, and the
 * node's count before; then increments; then advances the record's
 * progress. An importer that finds an entry pending compares the node's
 * count with the one noted: one more means the increment happened.
 *
 * A successor never works in the old region: it decodes it with
 * ho_import() (bounds-checked; every version this binary knows; a sealed
 * region's CRC32C must match) into a fresh region of its own. A graceful
 * drain seals the region (ho_seal); a crashed daemon's region is unsealed
 * and imported on structure checks alone.
 *
 * Versions: 1 had no handle blobs; 2 adds them; 3 (current) adds the
 * counting progress to request records (2's records read as progress 0). Threads: node and
 * handle operations are thread-safe; records belong to their request slot.
 */
#ifndef VALORFS_FUSE_HANDOFF_H
#define VALORFS_FUSE_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

#define HO_VERSION 3
#define HO_NODE_KEY_MAX 48   /* bytes of backend key per node */
#define HO_FH_BLOB_MAX 32    /* bytes of backend blob per handle */
#define HO_REC_PER_CHAN 256  /* request records per channel (max queue depth) */
#define HO_MAX_CHANS 64

enum ho_fh_kind { HO_FH_FILE = 0, HO_FH_DIR = 1 };

/* Record phases (see the contract above). */
enum ho_phase { HO_REC_NONE = 0, HO_REC_DISPATCHED = 1, HO_REC_COUNTED = 2 };

struct ho_limits {
    uint32_t nodes;   /* capacity of the node table */
    uint32_t handles; /* capacity of the handle table */
};

/* INIT as negotiated once per connection: a successor must not expect
 * another INIT. */
struct ho_init {
    uint32_t proto_minor;
    uint32_t transport; /* enum vfs_transport that was active */
    uint64_t flags;     /* negotiated FUSE flags */
};

struct ho_region;

/* A new, empty region in a fresh memfd. NULL with errno on failure. */
struct ho_region *ho_create(const struct ho_limits *lim);
void ho_free(struct ho_region *h);
int ho_fd(const struct ho_region *h); /* the memfd (for the keeper) */
size_t ho_size(const struct ho_region *h);

void ho_set_init(struct ho_region *h, const struct ho_init *init);
void ho_get_init(const struct ho_region *h, struct ho_init *init);
/* Writer bookkeeping: the pid now serving, and how many daemons have. */
void ho_set_owner(struct ho_region *h, uint32_t pid, uint64_t generation);
uint64_t ho_generation(const struct ho_region *h);

/* ---- nodes ---- */
/* Adds one lookup to id. On the first reference, key (keylen <=
 * HO_NODE_KEY_MAX, may be 0) is stored. Returns the new count, or 0 when
 * the table is full. */
uint64_t ho_node_ref(struct ho_region *h, uint64_t id, const void *key, size_t keylen);
/* The same with n lookups at once (restoring a count). */
uint64_t ho_node_ref_n(struct ho_region *h, uint64_t id, uint64_t n, const void *key,
                       size_t keylen);
/* 1 if id is present (then the caller need not build a key). */
int ho_node_known(struct ho_region *h, uint64_t id);
/* Drops n lookups; removes the node at zero. Returns what is left. */
uint64_t ho_node_forget(struct ho_region *h, uint64_t id, uint64_t n);
uint64_t ho_node_lookups(struct ho_region *h, uint64_t id); /* 0 if absent */
void ho_node_set_key(struct ho_region *h, uint64_t id, const void *key, size_t keylen);
uint64_t ho_node_count(struct ho_region *h);                 /* nodes present */
typedef void (*ho_node_fn)(void *arg, uint64_t id, uint64_t nlookup, const void *key,
                           size_t keylen);
void ho_node_foreach(struct ho_region *h, ho_node_fn fn, void *arg);

/* ---- handles ---- */
/* Reserves a slot for an open in progress; returns the kernel fh (>= 1)
 * or 0 when the table is full. */
uint64_t ho_fh_reserve(struct ho_region *h);
/* The open succeeded: the slot becomes live with these values. */
void ho_fh_commit(struct ho_region *h, uint64_t kfh, enum ho_fh_kind kind, uint64_t ino,
                  uint32_t flags, uint64_t backend_fh);
void ho_fh_release(struct ho_region *h, uint64_t kfh); /* reserved or live -> free */
/* The backend fh of a live slot: 0 and *bfh set, or -EBADF. */
int ho_fh_lookup(struct ho_region *h, uint64_t kfh, uint64_t *bfh);
/* The blob of a reserved or live slot (HO_FH_BLOB_MAX bytes, stable until
 * release) or NULL. */
void *ho_fh_blob(struct ho_region *h, uint64_t kfh);
uint64_t ho_fh_count(struct ho_region *h); /* live slots */
typedef void (*ho_fh_fn)(void *arg, uint64_t kfh, enum ho_fh_kind kind, uint64_t ino,
                         uint32_t flags, void *blob);
void ho_fh_foreach(struct ho_region *h, ho_fh_fn fn, void *arg);
/* Replace the backend fh of a live slot (after restoring it). */
void ho_fh_set_backend(struct ho_region *h, uint64_t kfh, uint64_t backend_fh);
/* Import support: make slot kfh live with these values (0, or -ENOSPC when
 * kfh is beyond the capacity, -EEXIST when taken); then rebuild the free
 * list once all slots are placed. */
int ho_fh_adopt(struct ho_region *h, uint64_t kfh, enum ho_fh_kind kind, uint64_t ino,
                uint32_t flags, const void *blob);
void ho_fh_rebuild_free(struct ho_region *h);

/* ---- request records ---- */
#define HO_NO_PENDING UINT32_MAX
struct ho_rec {
    uint64_t unique;         /* without FUSE_UNIQUE_RESEND */
    uint32_t opcode;
    uint32_t phase;          /* enum ho_phase */
    uint64_t pending_node;   /* the node of the entry being counted */
    uint32_t progress;       /* entries of the reply counted for sure */
    uint32_t pending_idx;    /* == progress: that entry may be counted; else HO_NO_PENDING */
    uint64_t pending_before; /* pending_node's count before that entry */
};
/* The record of request slot (chan, slot); NULL when out of range. */
struct ho_rec *ho_rec(struct ho_region *h, unsigned chan, unsigned slot);
/* Starts a record: no entry counted yet (call before its phase is set). */
void ho_rec_reset(struct ho_rec *r);
/* ho_node_ref() for the next entry of rec's reply, journaled as described
 * above (rec NULL: a plain ho_node_ref). */
uint64_t ho_node_ref_rec(struct ho_region *h, struct ho_rec *rec, uint64_t id, const void *key,
                         size_t keylen);

/* ---- sealing and import ---- */
/* Stores the CRC32C of everything in use and marks the region sealed;
 * any later change unseals it. */
void ho_seal(struct ho_region *h);
void ho_unseal(struct ho_region *h);

/* What ho_import() found besides nodes and handles. */
struct ho_imported {
    uint32_t version;
    int sealed;
    uint32_t owner_pid;
    uint64_t generation;
    struct ho_init init;
    uint64_t nodes, handles;
    /* records of requests the backend had been called for, for resends;
     * progress = entries counted for sure, the pending one resolved */
    struct ho_rec *recs;
    size_t nrecs;
};
/* Decodes an old region image (len bytes) into `into`, which must be
 * fresh: nodes, handles (same kernel fh numbers) and init. Returns 0, or
 * -EINVAL/-EPROTO/-ENOSPC with *why set to a one-line reason. Never reads
 * outside [bytes, bytes+len). Free out->recs with free(). */
int ho_import(struct ho_region *into, const void *bytes, size_t len, struct ho_imported *out,
              const char **why);
/* The record for a resent unique in `imp`, or NULL. */
const struct ho_rec *ho_imported_find(const struct ho_imported *imp, uint64_t unique);

/* Maps the region held in fd read-only (for import or status): *len gets
 * its size. munmap() when done. NULL with errno on failure. */
const void *ho_map_fd(int fd, size_t *len);

/* Test support: writes an image in an older format (version 1 or 2) with
 * the given nodes and records (unique, opcode, phase, pending_node as the
 * old nodeid); returns its size, or 0 if cap is too small. */
size_t ho_test_write_old(void *buf, size_t cap, uint32_t version, const struct ho_init *init,
                         const uint64_t *node_ids, const uint64_t *nlookups, size_t nnodes,
                         const struct ho_rec *recs, size_t nrecs);

#endif
