/* chunk_engine.h — one storage target on local disk: chunk data files plus a
 * per-target LMDB of chunk metadata. No networking, no replication.
 *
 * Layout of a target directory:
 *   LOCK                         flock()ed while the target is open
 *   data/<ino%256 hex2>/<ino hex>.<index>   the chunk's bytes [0, len)
 *   meta/                        LMDB env: ino(be64)+index(be32) ->
 *                                {u64 version, u32 len, u32 crc32c} (LE)
 * The LMDB record is the truth: a chunk exists iff it has a record, and its
 * committed bytes are the file's [0, len). CRC32C is the standard
 * (Castagnoli, reflected, init/xorout 0xFFFFFFFF) one: "123456789" ->
 * 0xE3069283.
 *
 * Durability: data is written with pwrite and LMDB runs with MDB_NOSYNC;
 * nothing is durable until ce_sync() (STG_SYNC, graceful stop), which
 * fsyncs every data file written since the previous sync and then the LMDB
 * env.
 *
 * Threads: every call is thread-safe. Updates of one chunk are serialised
 * by the caller (CRAQ); the engine still keeps readers from seeing a torn
 * update with striped reader/writer locks, so a read returns either the
 * bytes before an update or after it, matching the metadata it reports.
 *
 * Errors: 0 or a negative errno; -VF_E_CHECKSUM (as a negative) when a
 * verified read finds bytes that do not match the stored CRC.
 */
#ifndef VALORFS_STORAGE_CHUNK_ENGINE_H
#define VALORFS_STORAGE_CHUNK_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ce_target;

struct ce_opts {
    uint32_t target_id;
    const char *path;      /* created (with data/ and meta/) when missing */
    bool verify_reads;     /* check a chunk's CRC before serving bytes of it: the
                            * first read of each version reads it whole */
    size_t map_size;       /* LMDB map size; 0 = 1 GiB */
};

struct ce_meta {
    uint64_t version;      /* committed version */
    uint32_t len;          /* committed length */
    uint32_t crc32c;       /* of bytes [0, len) */
};

struct ce_chunk {
    uint64_t ino;
    uint32_t index;
    struct ce_meta meta;
};

struct ce_query {
    uint32_t nchunks;
    uint32_t last_index;   /* highest index present (when nchunks) */
    uint32_t last_len;
    uint64_t bytes;        /* sum of lengths */
};

/* Standard CRC32C of buf; crc32c_extend continues a finished CRC over more
 * bytes (crc32c_extend(0, b, n) == crc32c(b, n)). */
uint32_t crc32c(const void *buf, size_t len);
uint32_t crc32c_extend(uint32_t crc, const void *buf, size_t len);

/* Open (creating when needed) and lock a target. NULL with a one-line
 * reason in err when the directory cannot be created, locked or opened. */
struct ce_target *ce_open(const struct ce_opts *o, char *err, size_t errlen);
/* Sync and close. */
void ce_close(struct ce_target *t);
uint32_t ce_target_id(const struct ce_target *t);

/* Metadata of one chunk: 0, or -ENOENT when absent. */
int ce_get_meta(struct ce_target *t, uint64_t ino, uint32_t index, struct ce_meta *m);

/* Read committed bytes [offset, offset+len) clipped to the chunk length into
 * buf; *nread gets the count, *m the metadata served. An absent chunk reads
 * as version 0, len 0, nothing returned (0 is returned). */
int ce_read(struct ce_target *t, uint64_t ino, uint32_t index, uint32_t offset, uint32_t len,
            void *buf, uint32_t *nread, struct ce_meta *m);
/* ce_read with nowait: -EAGAIN instead of waiting for the disk (the bytes
 * are not all in the page cache); the caller retries on a thread that may
 * block. */
int ce_read_ex(struct ce_target *t, uint64_t ino, uint32_t index, uint32_t offset, uint32_t len,
               void *buf, uint32_t *nread, struct ce_meta *m, bool nowait);

/* Apply (offset, data) as committed version `version`: the chunk grows to
 * max(len, offset+n) when n > 0 (a gap reads as zeros). *out gets the new
 * metadata. */
int ce_write(struct ce_target *t, uint64_t ino, uint32_t index, uint32_t offset,
             const void *data, uint32_t n, uint64_t version, struct ce_meta *out);

/* Make the chunk exactly data[0, n) as version `version`, whatever it held
 * before (creating it when absent): a resync or repair push. */
int ce_replace(struct ce_target *t, uint64_t ino, uint32_t index, const void *data, uint32_t n,
               uint64_t version, struct ce_meta *out);

/* Cut a chunk to new_len (no-op when it is not longer), as version
 * `version`. -ENOENT when absent. */
int ce_truncate(struct ce_target *t, uint64_t ino, uint32_t index, uint32_t new_len,
                uint64_t version, struct ce_meta *out);

/* Remove one chunk (-ENOENT when absent) / every chunk of ino (count in
 * *removed, may be NULL). */
int ce_remove(struct ce_target *t, uint64_t ino, uint32_t index);
int ce_remove_ino(struct ce_target *t, uint64_t ino, uint32_t *removed);

/* Chunks of one ino summed up. */
int ce_query_ino(struct ce_target *t, uint64_t ino, struct ce_query *q);

/* Up to max chunks strictly after (after_ino, after_index) in (ino, index)
 * order — only those of `ino` when ino != 0. *eof is set when nothing
 * follows the last one returned. */
int ce_list(struct ce_target *t, uint64_t after_ino, uint32_t after_index, uint64_t ino,
            uint32_t max, struct ce_chunk *out, uint32_t *n, bool *eof);

/* Every chunk of ino, in index order, into a malloc'd array (*out, *n). */
int ce_list_ino(struct ce_target *t, uint64_t ino, struct ce_chunk **out, uint32_t *n);

/* fsync the data files written since the last sync, then the LMDB env. */
int ce_sync(struct ce_target *t);

/* 0 when the file system holding the target has room for need more bytes
 * besides a reserve (1% of it, at most 64 MiB, so metadata and in-flight
 * updates still fit); -ENOSPC otherwise. */
int ce_space_check(struct ce_target *t, uint64_t need);

/* Size and used bytes of the file system holding the target (statvfs). */
int ce_statfs(struct ce_target *t, uint64_t *capacity, uint64_t *used);

#endif
