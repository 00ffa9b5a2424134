/* storage_proto.h — storage service messages: chunk I/O along CRAQ chains.
 *
 * A chunk is (ino, index); chunk `index` of a file holds bytes
 * [index*chunk_size, (index+1)*chunk_size). Each request names the target it
 * is addressed to and the chain (id + version) the sender routes by; a
 * target refuses a request whose chain version is older than its own
 * (VF_E_STALE_CHAIN) and refreshes its routing when it is newer
 * (VF_E_NEWER_CHAIN, the sender retries).
 *
 * CRAQ write: the client sends STG_WRITE (version 0) to the chain's head.
 * The head serialises writes per chunk, assigns version = last + 1, keeps
 * the update pending (dirty) and forwards it (same message, version set,
 * target_id of the successor) down the chain; the tail applies and commits,
 * and the acknowledgement flows back, each replica committing the version
 * on the way. Reads go to any serving replica: a replica whose chunk is
 * dirty returns the last committed version (or asks the tail).
 * STG_TRUNCATE and STG_REMOVE travel the chain the same way.
 *
 * Resync. A target that returns to its chain is SYNCING: it is the chain's
 * last member, takes every write, serves no reads. Its predecessor (the
 * last SERVING target) forwards whole chunks to it (STG_WF_FULL: the data
 * is the chunk's entire content at that version, replacing what is there),
 * because a SYNCING target may have missed earlier updates that a partial
 * write would build on. The predecessor also walks its chunks beside the
 * syncing target's (STG_LIST) and pushes, under the chunk's turn, every
 * chunk that differs in version or CRC32C (FULL) or that it does not have
 * (STG_WF_ABSENT: remove it); then it tells mgmtd, which makes the target
 * SERVING. A replica that finds a chunk failing its CRC asks a serving peer
 * to push it the same way (STG_REPAIR).
 */
#ifndef VALORFS_PROTO_STORAGE_PROTO_H
#define VALORFS_PROTO_STORAGE_PROTO_H

#include "proto/proto.h"

enum storage_method {
    STG_WRITE = 0x0301,        /* stg_write_req -> stg_write_resp */
    STG_READ = 0x0302,         /* stg_read_req -> stg_read_resp */
    STG_TRUNCATE = 0x0303,     /* stg_truncate_req -> stg_write_resp (chain write) */
    STG_REMOVE = 0x0304,       /* stg_remove_req -> empty (chain write) */
    STG_QUERY = 0x0305,        /* stg_query_req -> stg_query_resp (one target) */
    STG_CHUNK_META = 0x0306,   /* stg_chunk_meta_req -> stg_chunk_meta (one target) */
    STG_LIST = 0x0307,         /* stg_list_req -> stg_list_resp (one target) */
    STG_SYNC = 0x0308,         /* stg_sync_req -> empty: fsync a target (0 = all) */
    STG_STATFS = 0x0309,       /* empty -> stg_statfs_resp */
    STG_REPAIR = 0x030A,       /* stg_repair_req -> empty: push a chunk to a damaged replica */
};

/* stg_write_req.flags */
enum {
    STG_WF_FULL = 1,           /* data is the whole chunk at `version`: replace */
    STG_WF_ABSENT = 2,         /* the chunk does not exist at `version`: remove it */
    STG_WF_PUSH = 4,           /* with FULL or ABSENT: a resync/repair push for this
                                * replica only; not forwarded, no chunk turn taken
                                * here (the sender holds the chunk's turn) */
};

struct stg_chunk_id {
    uint64_t ino;
    uint32_t index;
};

struct stg_route {
    uint32_t target_id;        /* the receiving target */
    uint32_t chain_id;
    uint64_t chain_version;
};

struct stg_write_req {
    struct stg_route route;
    struct stg_chunk_id chunk;
    uint32_t chunk_size;
    uint32_t offset;           /* within the chunk; offset + len <= chunk_size */
    uint64_t version;          /* 0 from a client; set by the head */
    uint64_t tag;              /* client id << 32 | sequence: de-duplicates retries */
    uint8_t flags;             /* STG_WF_* (0 from clients) */
    const void *data;          /* encoded last: forwarding patches its length */
    uint32_t len;
};
PROTO_CODEC(stg_write_req);

struct stg_write_resp {
    uint64_t version;          /* committed version */
    uint32_t chunk_len;        /* chunk length after the update */
};
PROTO_CODEC(stg_write_resp);

struct stg_read_req {
    struct stg_route route;
    struct stg_chunk_id chunk;
    uint32_t offset, len;
};
PROTO_CODEC(stg_read_req);

struct stg_read_resp {
    uint64_t version;          /* committed version served; 0 = chunk absent */
    uint32_t chunk_len;
    const void *data;          /* min(len, chunk_len - offset) bytes (maybe 0) */
    uint32_t len;
};
PROTO_CODEC(stg_read_resp);

struct stg_truncate_req {
    struct stg_route route;
    uint64_t ino;
    uint32_t chunk_size;
    uint64_t length;           /* new file length: drop this chain's chunks past it,
                                * cut the one it falls in */
    uint64_t version;          /* as stg_write_req */
    uint64_t tag;
};
PROTO_CODEC(stg_truncate_req);

struct stg_remove_req {
    struct stg_route route;
    uint64_t ino;              /* every chunk of ino on this chain */
    uint64_t version;
    uint64_t tag;
};
PROTO_CODEC(stg_remove_req);

struct stg_query_req {
    struct stg_route route;
    uint64_t ino;
};
PROTO_CODEC(stg_query_req);

struct stg_query_resp {
    uint32_t nchunks;
    uint32_t last_index;       /* highest chunk index present (if nchunks) */
    uint32_t last_len;         /* its committed length */
    uint64_t bytes;            /* sum of chunk lengths */
};
PROTO_CODEC(stg_query_resp);

struct stg_chunk_meta_req {
    uint32_t target_id;
    struct stg_chunk_id chunk;
};
PROTO_CODEC(stg_chunk_meta_req);

struct stg_chunk_meta {
    struct stg_chunk_id chunk;
    uint8_t exists;
    uint8_t dirty;             /* a pending version is not committed yet */
    uint64_t version;          /* committed */
    uint32_t len;
    uint32_t crc32c;           /* of the committed bytes [0, len) */
};
PROTO_CODEC(stg_chunk_meta);

struct stg_list_req {
    uint32_t target_id;
    struct stg_chunk_id after; /* list chunks strictly after this ({0,0} = start) */
    uint32_t max;              /* at most this many (<= 4096) */
    uint64_t ino;              /* 0 = every file, else only this one */
};
PROTO_CODEC(stg_list_req);

struct stg_list_resp {
    uint32_t n;
    uint8_t eof;
    struct stg_chunk_meta *chunks; /* allocated by _dec */
};
PROTO_CODEC(stg_list_resp);
void stg_list_resp_free(struct stg_list_resp *r);

struct stg_sync_req {
    uint32_t target_id;        /* 0 = every target of the node */
};
PROTO_CODEC(stg_sync_req);

struct stg_repair_req {
    struct stg_route route;    /* the receiving (healthy, SERVING) replica */
    struct stg_chunk_id chunk;
    uint32_t dest_target;      /* the replica whose copy failed its CRC */
};
PROTO_CODEC(stg_repair_req);

struct stg_statfs_resp {
    uint32_t ntargets;
    struct { uint32_t id; uint64_t capacity, used; } targets[64];
};
PROTO_CODEC(stg_statfs_resp);

#endif
