/* meta_internal.h — what the meta core's files share (not a contract).
 *
 * KV keys (ids big-endian so one inode's keys sort together):
 *   INOD ino          -> inode record (inode.c)
 *   DENT parent name  -> dirent record: child ino + DT_* type (dirent.c)
 *   LINK ino          -> symlink target bytes
 *   XATR ino name     -> xattr value bytes
 *   SESS ino session  -> session record (session.c)
 *   ORPH ino          -> orphan marker: nlink 0, chunks to remove (gc.c)
 *   ICNT shard        -> u64 inode count of one shard (statfs)
 *   DDUP client seq   -> the answer to an identified request (dedup.c)
 *   DDTM time client seq -> empty; DDUP records by commit time (dedup.c)
 */
#ifndef VALORFS_META_META_INTERNAL_H
#define VALORFS_META_META_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "kv/kv.h"
#include "meta/meta_core.h"

#define META_LOG "meta"
#define META_ICNT_SHARDS 64

struct meta_core {
    struct kv_db *db;
    struct meta_chunk_ops chunk;
    uint32_t chunk_size, stripe;
    int (*space)(void *arg, uint64_t *total_bytes, uint64_t *free_bytes);
    void *space_arg;
    /* collector */
    pthread_t gc_thread;
    bool gc_running;
    pthread_mutex_t gc_lock;
    pthread_cond_t gc_cond;
    bool gc_stop, gc_kick;
    uint32_t gc_interval_ms;
    uint32_t dedup_retention_s;
};

/* ---- keys ---- */
#define META_KEY_MAX (4 + 8 + VF_MAX_XATTR_NAME + 1)

static inline void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* tag(4) + id(8) [+ suffix]; returns the key length */
static inline size_t meta_key(uint8_t *k, const char tag[4], uint64_t id, const void *suffix,
                              size_t slen)
{
    memcpy(k, tag, 4);
    put_be64(k + 4, id);
    if (slen)
        memcpy(k + 12, suffix, slen);
    return 12 + slen;
}

static inline size_t meta_key2(uint8_t *k, const char tag[4], uint64_t id, uint64_t id2)
{
    uint8_t b[8];
    put_be64(b, id2);
    return meta_key(k, tag, id, b, 8);
}

/* ---- transactions (txn.c) ---- */
/* fn runs inside a fresh transaction per attempt; it returns 0 (commit),
 * -EAGAIN (retry) or another -errno (abort, returned). */
typedef int (*meta_txn_fn)(struct meta_core *mc, struct kv_txn *t, void *ctx);
int meta_run_txn(struct meta_core *mc, bool rdonly, meta_txn_fn fn, void *ctx);

int64_t meta_now_ns(void);

/* ---- inodes (inode.c) ---- */
void meta_inode_record_enc(struct wbuf *wb, const struct meta_inode *i);
int meta_inode_record_dec(const void *buf, size_t len, uint64_t ino, struct meta_inode *out);
/* 0, -ENOENT, -EIO (corrupt), -errno */
int inode_load(struct kv_txn *t, uint64_t ino, struct meta_inode *out);
int inode_store(struct kv_txn *t, const struct meta_inode *i);
/* A fresh random id, absent in the transaction's snapshot. */
int inode_new_id(struct kv_txn *t, uint64_t *out);
/* Delete the inode and every key it owns (LINK, XATR, SESS, ORPH); adjusts
 * the inode count. */
int inode_purge(struct kv_txn *t, uint64_t ino);
int inode_count_add(struct kv_txn *t, uint64_t ino, int64_t delta);
int inode_count_total(struct kv_txn *t, uint64_t *out);
/* Delete every key starting with prefix. */
int kv_del_prefix(struct kv_txn *t, const uint8_t *prefix, size_t plen);
/* Is any key starting with prefix present? 1 yes, 0 no, -errno */
int kv_prefix_any(struct kv_txn *t, const uint8_t *prefix, size_t plen);

/* ---- dirents (dirent.c) ---- */
struct meta_dent {
    uint64_t ino;
    uint32_t type; /* DT_* */
};
int dirent_get(struct kv_txn *t, uint64_t parent, const char *name, struct meta_dent *out);
/* About to read directory parent's inode and its entry name (and, for a
 * rename, a second pair; parent2 0 = none): one KV round trip instead of
 * several on a networked engine. Only a hint: errors surface on the reads. */
void dirent_prefetch(struct kv_txn *t, uint64_t parent, const char *name, uint64_t parent2,
                     const char *name2);
/* The same, plus the given keys and (ino != 0) inode ino; parent 0 = no
 * directory pair. */
void dirent_prefetch_with(struct kv_txn *t, const struct kv_key *extra, size_t nextra,
                          uint64_t ino, uint64_t parent, const char *name, uint64_t parent2,
                          const char *name2);
int dirent_put(struct kv_txn *t, uint64_t parent, const char *name, uint64_t ino, uint32_t type);
int dirent_del(struct kv_txn *t, uint64_t parent, const char *name);
/* 1 empty, 0 not, -errno */
int dir_is_empty(struct kv_txn *t, uint64_t dir);
int meta_readdir_txn(struct meta_core *mc, struct kv_txn *t, const struct meta_req *req,
                     struct meta_resp *resp, struct wbuf *out);

/* ---- permissions (perm.c) ---- */
#define MAY_X 1
#define MAY_W 2
#define MAY_R 4
bool user_in_group(const struct vf_user *u, uint32_t gid);
/* 0 or -EACCES: mask of MAY_* against the inode's mode bits */
int perm_check(const struct vf_user *u, const struct meta_inode *i, int mask);
/* sticky directory: may u remove/replace victim from dir? 0 or -EPERM */
int perm_sticky(const struct vf_user *u, const struct meta_inode *dir,
                const struct meta_inode *victim);
static inline bool user_owns(const struct vf_user *u, const struct meta_inode *i)
{
    return u->uid == 0 || u->uid == i->uid;
}

/* ---- helpers shared by the ops ---- */
/* "" "." ".." or containing '/' are not names an entry may be created under */
int name_check(const char *name);
static inline uint32_t mode_dtype(uint32_t mode) { return (mode & S_IFMT) >> 12; }
/* Load a directory the caller needs `mask` on: -ENOTDIR, -EACCES, -ENOENT. */
int load_dir(struct kv_txn *t, const struct vf_user *u, uint64_t ino, int mask,
             struct meta_inode *out);
/* Mark an entry change in dir: mtime = ctime = now. */
void dir_touch(struct meta_inode *dir, int64_t now);
/* Drop one link of child (already removed from its directory). Regular
 * files at nlink 0 become orphans; other kinds are purged at once. */
int inode_drop_link(struct kv_txn *t, struct meta_inode *child, int64_t now);

/* ---- ops (namespace_ops.c, attr.c, rename.c, xattr.c, session.c) ---- */
struct meta_op {
    const struct meta_req *req;
    struct meta_resp *resp;
    struct wbuf *out;
    int64_t now;
    /* results the op computes once outside the retried part */
    bool layout_done;
    int layout_rc;
    struct meta_layout layout;
    bool queried;
    int query_rc;
    uint64_t queried_len;
    bool truncated;            /* storage already cut to truncated_to */
    uint64_t truncated_to;
    bool wake_gc;
};

int op_lookup(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_getattr(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_setattr(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_create(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_mknod(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_mkdir(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_symlink(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_link(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_unlink(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_rmdir(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_rename(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_readlink(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_readdir(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_open(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_close(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_sync(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_setxattr(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_getxattr(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_listxattr(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_removexattr(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_statfs(struct meta_core *mc, struct kv_txn *t, void *ctx);
int op_access(struct meta_core *mc, struct kv_txn *t, void *ctx);

/* Storage truncation done once per op (idempotent across retries). */
int op_truncate_chunks(struct meta_core *mc, struct meta_op *op, const struct meta_inode *i,
                       uint64_t new_len);
/* New session on i; returns its id in *sid. */
int session_add(struct kv_txn *t, uint64_t ino, uint32_t flags, int64_t now, uint64_t *sid);
/* 1 when the inode has at least one session */
int session_any(struct kv_txn *t, uint64_t ino);

void meta_gc_kick(struct meta_core *mc);

/* ---- request de-duplication (dedup.c, dedup_record.c) ---- */
struct meta_dedup_rec {
    uint16_t method;
    int64_t commit_ns;
    struct meta_resp resp;     /* data points into the decoded bytes */
};
void meta_dedup_record_enc(struct wbuf *wb, const struct meta_dedup_rec *r);
/* 0, or -EIO for a damaged record (bounds-checked: any bytes are safe). */
int meta_dedup_record_dec(const void *buf, size_t len, struct meta_dedup_rec *out);
/* Does this request get a de-duplication record? (state-changing, with an id) */
bool dedup_applies(uint16_t method, bool rdonly, const struct meta_req *req);
/* Fetch the record's key with the keys the method reads first (a hint). */
void dedup_prefetch(struct kv_txn *t, uint16_t method, const struct meta_req *req);
/* 1: answered from the record (resp filled, its data copied into out);
 * 0: no record; -EIO: damaged record or an id reused for another method. */
int dedup_lookup(struct kv_txn *t, uint16_t method, const struct meta_req *req,
                 struct meta_resp *resp, struct wbuf *out);
/* Record resp as the answer to req, in transaction t. */
int dedup_store(struct kv_txn *t, uint16_t method, const struct meta_req *req, int64_t now,
                const struct meta_resp *resp);

#endif
