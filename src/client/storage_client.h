/* storage_client.h — file data I/O against the storage service.
 *
 * A file's bytes live in chunks (see meta_layout): chunk i holds
 * [i*chunk_size, (i+1)*chunk_size) and lives on chain chains[i % nchains].
 * sc_read()/sc_write() split a range at chunk boundaries and run one RPC per
 * chunk piece, all in parallel.
 *
 * Reads go to a SERVING replica of each chain, spread round-robin over the
 * replicas; a replica that fails a read is skipped for another one. Holes
 * and short chunks read as zeros up to file_size; nothing past file_size is
 * returned. Writes go to the chain head with a per-piece tag (client id <<
 * 32 | sequence) that stays the same across retries so the chain can
 * de-duplicate them.
 *
 * Retries. VF_E_STALE_CHAIN, VF_E_NEWER_CHAIN, VF_E_NOT_HEAD,
 * VF_E_NOT_SERVING, VF_E_NO_ROUTE and RPC_E_CONNECT/CLOSED/TIMEOUT/BUSY
 * refresh the routing and retry after a jittered backoff until the
 * operation's deadline (sc_opts.op_timeout_ms), then fail with EIO. Other
 * errors (ENOSPC, ...) fail the operation at once. When the routing shows
 * a chain with no SERVING replica at all (every one lost its lease), the
 * pieces on it fail with EIO after sc_opts.chain_down_ms instead.
 *
 * Threads. The async calls never block: they send RPCs and return; done()
 * runs exactly once, on the RPC client's loop thread or on the storage
 * client's retry thread (or before the call returns when it fails at once),
 * and must not block. The sync wrappers block the caller and must not be
 * called from an RPC completion callback.
 */
#ifndef VALORFS_CLIENT_STORAGE_CLIENT_H
#define VALORFS_CLIENT_STORAGE_CLIENT_H

#include <stdint.h>

#include "proto/meta_proto.h"
#include "proto/mgmtd_proto.h"

struct rpc_client;
struct mgc;
struct mgc_routing;
struct sc;

/* Where routing comes from. NULL in sc_opts = the mgc given to sc_new();
 * tests give a static routing here. */
struct sc_routing_src {
    struct mgc_routing *(*get)(void *arg);               /* a referenced snapshot or NULL */
    void (*put)(void *arg, struct mgc_routing *r);
    int (*refresh)(void *arg, uint64_t min_version, uint32_t timeout_ms); /* may block */
    void *arg;
};

struct sc_opts {
    uint32_t op_timeout_ms;    /* whole-operation deadline incl. retries; default 30000 */
    uint32_t rpc_timeout_ms;   /* one attempt; default 10000 (capped by the deadline) */
    uint32_t backoff_min_ms;   /* first retry delay; default 20 */
    uint32_t backoff_max_ms;   /* cap of the doubling delay; default 1000 */
    uint32_t chain_down_ms;    /* EIO once routing shows a chain with no serving
                                * replica this long; default 3000 */
    const struct sc_routing_src *routing; /* NULL = mgc */
};
void sc_opts_default(struct sc_opts *o);

/* rpc and mgc are shared, not owned; mgc may be NULL when opts->routing is
 * set. NULL on allocation failure. */
struct sc *sc_new(struct rpc_client *rpc, struct mgc *mgc, const struct sc_opts *opts);
/* Call when no operation is in flight any more. */
void sc_free(struct sc *sc);

/* result: bytes (>= 0) on success, -errno on failure. */
typedef void (*sc_done_fn)(void *arg, int64_t result);

/* Read up to len bytes at off into buf: result = min(len, file_size - off)
 * (0 at or past file_size). The inode (its ino and layout) is copied. */
void sc_read(struct sc *sc, const struct meta_inode *inode, uint64_t off, uint32_t len, void *buf,
             uint64_t file_size, sc_done_fn done, void *arg);
/* Write len bytes; result = len. buf must stay valid until done() runs. */
void sc_write(struct sc *sc, const struct meta_inode *inode, uint64_t off, const void *buf,
              uint32_t len, sc_done_fn done, void *arg);

/* Asynchronous whole-file operations over every chain of the layout, in
 * parallel. result 0 (query: the length) or -errno. */
void sc_truncate_file_async(struct sc *sc, const struct meta_inode *inode, uint64_t len,
                            sc_done_fn done, void *arg);
void sc_remove_file_async(struct sc *sc, const struct meta_inode *inode, sc_done_fn done,
                          void *arg);
void sc_query_length_async(struct sc *sc, const struct meta_inode *inode, sc_done_fn done,
                           void *arg);
/* STG_SYNC to every target holding one of the file's chains. */
void sc_sync_file_async(struct sc *sc, const struct meta_inode *inode, sc_done_fn done,
                        void *arg);

/* The chunks of a file that exist on storage (as the tails of its chains
 * know them), sorted by index: enough to answer SEEK_DATA/SEEK_HOLE.
 * chunks is valid only during done(); status 0 or -errno. */
struct sc_chunk_len {
    uint32_t index;
    uint32_t len;
};
typedef void (*sc_list_fn)(void *arg, int status, const struct sc_chunk_len *chunks, uint32_t n);
void sc_list_chunks_async(struct sc *sc, const struct meta_inode *inode, sc_list_fn done,
                          void *arg);

/* Blocking wrappers. Return bytes / 0, or -errno. */
int64_t sc_read_sync(struct sc *sc, const struct meta_inode *inode, uint64_t off, uint32_t len,
                     void *buf, uint64_t file_size);
int64_t sc_write_sync(struct sc *sc, const struct meta_inode *inode, uint64_t off,
                      const void *buf, uint32_t len);
/* Drop every byte at or past len on every chain (the chunk len falls in is cut). */
int sc_truncate_file(struct sc *sc, const struct meta_inode *inode, uint64_t len);
/* Remove every chunk of the file on every chain. */
int sc_remove_file(struct sc *sc, const struct meta_inode *inode);
/* The file length the chunks imply: max over chains of the end of the last chunk. */
int sc_query_length(struct sc *sc, const struct meta_inode *inode, uint64_t *len);
int sc_sync_file(struct sc *sc, const struct meta_inode *inode);

#endif
