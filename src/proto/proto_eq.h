/* proto_eq.h — field-by-field equality of decoded messages, for the unit
 * tests (test_proto.c) and the fuzz targets (fuzz/fuzz_proto_*.c) that
 * check decode(encode(x)) == x. Test support only; services do not use it.
 *
 * Arrays compare only their first count items; pointer+length views
 * compare their bytes; names compare as strings.
 */
#ifndef VALORFS_PROTO_PROTO_EQ_H
#define VALORFS_PROTO_PROTO_EQ_H

#include <stdbool.h>
#include <string.h>

#include "proto/meta_proto.h"
#include "proto/mgmtd_proto.h"
#include "proto/storage_proto.h"

#define EQ_F(f) (a->f == b->f)
#define EQ_S(f) (strcmp(a->f, b->f) == 0)
#define EQ_A(f, n) (memcmp(a->f, b->f, sizeof(a->f[0]) * (size_t)(n)) == 0)
#define EQ_BYTES(p, n) (EQ_F(n) && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0))

static inline bool vf_user_eq(const struct vf_user *a, const struct vf_user *b)
{
    return EQ_F(uid) && EQ_F(gid) && EQ_F(ngroups) && EQ_A(groups, a->ngroups);
}

/* ---- mgmtd ---- */

static inline bool mg_node_eq(const struct mg_node *a, const struct mg_node *b)
{
    return EQ_F(id) && EQ_F(type) && EQ_F(alive) && EQ_S(addr) && EQ_F(lease_expires_ms);
}

static inline bool mg_target_eq(const struct mg_target *a, const struct mg_target *b)
{
    return EQ_F(id) && EQ_F(node_id) && EQ_F(chain_id) && EQ_F(state) && EQ_F(capacity) &&
           EQ_F(used);
}

static inline bool mg_chain_eq(const struct mg_chain *a, const struct mg_chain *b)
{
    return EQ_F(id) && EQ_F(version) && EQ_F(ntargets) && EQ_A(targets, a->ntargets);
}

static inline bool mg_table_eq(const struct mg_table *a, const struct mg_table *b)
{
    return EQ_F(id) && EQ_F(version) && EQ_F(replicas) && EQ_F(nchains) &&
           (a->nchains == 0 || EQ_A(chains, a->nchains));
}

static inline bool mg_routing_eq(const struct mg_routing *a, const struct mg_routing *b)
{
    if (!(EQ_F(version) && EQ_F(primary_id) && EQ_F(nnodes) && EQ_F(ntargets) &&
          EQ_F(nchains) && EQ_F(ntables)))
        return false;
    for (uint32_t i = 0; i < a->nnodes; i++)
        if (!mg_node_eq(&a->nodes[i], &b->nodes[i]))
            return false;
    for (uint32_t i = 0; i < a->ntargets; i++)
        if (!mg_target_eq(&a->targets[i], &b->targets[i]))
            return false;
    for (uint32_t i = 0; i < a->nchains; i++)
        if (!mg_chain_eq(&a->chains[i], &b->chains[i]))
            return false;
    for (uint32_t i = 0; i < a->ntables; i++)
        if (!mg_table_eq(&a->tables[i], &b->tables[i]))
            return false;
    return true;
}

static inline bool mg_target_report_eq(const struct mg_target_report *a,
                                       const struct mg_target_report *b)
{
    return EQ_F(id) && EQ_F(state) && EQ_F(capacity) && EQ_F(used);
}

static inline bool mg_register_req_eq(const struct mg_register_req *a,
                                      const struct mg_register_req *b)
{
    if (!(EQ_F(type) && EQ_F(node_id) && EQ_S(addr) && EQ_F(ntargets)))
        return false;
    for (uint32_t i = 0; i < a->ntargets; i++)
        if (!mg_target_report_eq(&a->targets[i], &b->targets[i]))
            return false;
    return true;
}

static inline bool mg_register_resp_eq(const struct mg_register_resp *a,
                                       const struct mg_register_resp *b)
{
    return EQ_F(node_id) && EQ_F(lease_ms) && EQ_F(routing_version);
}

static inline bool mg_heartbeat_req_eq(const struct mg_heartbeat_req *a,
                                       const struct mg_heartbeat_req *b)
{
    if (!(EQ_F(node_id) && EQ_F(routing_version) && EQ_F(ntargets)))
        return false;
    for (uint32_t i = 0; i < a->ntargets; i++)
        if (!mg_target_report_eq(&a->targets[i], &b->targets[i]))
            return false;
    return true;
}

static inline bool mg_heartbeat_resp_eq(const struct mg_heartbeat_resp *a,
                                        const struct mg_heartbeat_resp *b)
{
    return EQ_F(lease_ms) && EQ_F(routing_version);
}

static inline bool mg_get_routing_req_eq(const struct mg_get_routing_req *a,
                                         const struct mg_get_routing_req *b)
{
    return EQ_F(have_version);
}

static inline bool mg_create_table_req_eq(const struct mg_create_table_req *a,
                                          const struct mg_create_table_req *b)
{
    return EQ_F(table_id) && EQ_F(replicas) && EQ_F(nchains);
}

static inline bool mg_create_table_resp_eq(const struct mg_create_table_resp *a,
                                           const struct mg_create_table_resp *b)
{
    return EQ_F(table_id) && EQ_F(nchains) && EQ_F(routing_version);
}

static inline bool mg_set_target_req_eq(const struct mg_set_target_req *a,
                                        const struct mg_set_target_req *b)
{
    return EQ_F(target_id) && EQ_F(state);
}

static inline bool mg_primary_eq(const struct mg_primary *a, const struct mg_primary *b)
{
    return EQ_F(node_id) && EQ_S(addr) && EQ_F(lease_expires_ms);
}

/* ---- meta ---- */

static inline bool meta_inode_eq(const struct meta_inode *a, const struct meta_inode *b)
{
    return EQ_F(ino) && EQ_F(mode) && EQ_F(uid) && EQ_F(gid) && EQ_F(nlink) && EQ_F(size) &&
           EQ_F(rdev) && EQ_F(atime_ns) && EQ_F(mtime_ns) && EQ_F(ctime_ns) && EQ_F(parent) &&
           EQ_F(layout.chunk_size) && EQ_F(layout.table_id) && EQ_F(layout.nchains) &&
           EQ_A(layout.chains, a->layout.nchains);
}

static inline bool meta_req_eq(const struct meta_req *a, const struct meta_req *b)
{
    return vf_user_eq(&a->user, &b->user) && EQ_F(ino) && EQ_F(parent) && EQ_F(newparent) &&
           EQ_S(name) && EQ_S(newname) && EQ_F(mode) && EQ_F(umask) && EQ_F(flags) &&
           EQ_F(rdev) && EQ_F(valid) && EQ_F(uid) && EQ_F(gid) && EQ_F(size) &&
           EQ_F(atime_ns) && EQ_F(mtime_ns) && EQ_F(ctime_ns) && EQ_F(session) &&
           EQ_F(length_hint) && EQ_F(max_entries) && EQ_F(chunk_size) && EQ_F(stripe) &&
           EQ_BYTES(data, data_len) && EQ_F(req_client) && EQ_F(req_seq);
}

static inline bool meta_resp_eq(const struct meta_resp *a, const struct meta_resp *b)
{
    return EQ_F(has_inode) && (!a->has_inode || meta_inode_eq(&a->inode, &b->inode)) &&
           EQ_F(session) && EQ_F(eof) && EQ_BYTES(data, data_len) && EQ_F(total_bytes) &&
           EQ_F(free_bytes) && EQ_F(total_inodes) && EQ_F(used_inodes);
}

static inline bool meta_dirent_eq(const struct meta_dirent *a, const struct meta_dirent *b)
{
    return EQ_S(name) && EQ_F(ino) && EQ_F(type) && EQ_F(has_inode) &&
           (!a->has_inode || meta_inode_eq(&a->inode, &b->inode));
}

/* ---- storage ---- */

static inline bool stg_route_eq(const struct stg_route *a, const struct stg_route *b)
{
    return EQ_F(target_id) && EQ_F(chain_id) && EQ_F(chain_version);
}

static inline bool stg_chunk_id_eq(const struct stg_chunk_id *a, const struct stg_chunk_id *b)
{
    return EQ_F(ino) && EQ_F(index);
}

static inline bool stg_write_req_eq(const struct stg_write_req *a, const struct stg_write_req *b)
{
    return stg_route_eq(&a->route, &b->route) && stg_chunk_id_eq(&a->chunk, &b->chunk) &&
           EQ_F(chunk_size) && EQ_F(offset) && EQ_F(version) && EQ_F(tag) && EQ_F(flags) &&
           EQ_BYTES(data, len);
}

static inline bool stg_write_resp_eq(const struct stg_write_resp *a,
                                     const struct stg_write_resp *b)
{
    return EQ_F(version) && EQ_F(chunk_len);
}

static inline bool stg_read_req_eq(const struct stg_read_req *a, const struct stg_read_req *b)
{
    return stg_route_eq(&a->route, &b->route) && stg_chunk_id_eq(&a->chunk, &b->chunk) &&
           EQ_F(offset) && EQ_F(len);
}

static inline bool stg_read_resp_eq(const struct stg_read_resp *a, const struct stg_read_resp *b)
{
    return EQ_F(version) && EQ_F(chunk_len) && EQ_BYTES(data, len);
}

static inline bool stg_truncate_req_eq(const struct stg_truncate_req *a,
                                       const struct stg_truncate_req *b)
{
    return stg_route_eq(&a->route, &b->route) && EQ_F(ino) && EQ_F(chunk_size) &&
           EQ_F(length) && EQ_F(version) && EQ_F(tag);
}

static inline bool stg_remove_req_eq(const struct stg_remove_req *a,
                                     const struct stg_remove_req *b)
{
    return stg_route_eq(&a->route, &b->route) && EQ_F(ino) && EQ_F(version) && EQ_F(tag);
}

static inline bool stg_query_req_eq(const struct stg_query_req *a, const struct stg_query_req *b)
{
    return stg_route_eq(&a->route, &b->route) && EQ_F(ino);
}

static inline bool stg_query_resp_eq(const struct stg_query_resp *a,
                                     const struct stg_query_resp *b)
{
    return EQ_F(nchunks) && EQ_F(last_index) && EQ_F(last_len) && EQ_F(bytes);
}

static inline bool stg_chunk_meta_req_eq(const struct stg_chunk_meta_req *a,
                                         const struct stg_chunk_meta_req *b)
{
    return EQ_F(target_id) && stg_chunk_id_eq(&a->chunk, &b->chunk);
}

static inline bool stg_chunk_meta_eq(const struct stg_chunk_meta *a,
                                     const struct stg_chunk_meta *b)
{
    return stg_chunk_id_eq(&a->chunk, &b->chunk) && EQ_F(exists) && EQ_F(dirty) &&
           EQ_F(version) && EQ_F(len) && EQ_F(crc32c);
}

static inline bool stg_list_req_eq(const struct stg_list_req *a, const struct stg_list_req *b)
{
    return EQ_F(target_id) && stg_chunk_id_eq(&a->after, &b->after) && EQ_F(max) && EQ_F(ino);
}

static inline bool stg_list_resp_eq(const struct stg_list_resp *a, const struct stg_list_resp *b)
{
    if (!(EQ_F(n) && EQ_F(eof)))
        return false;
    for (uint32_t i = 0; i < a->n; i++)
        if (!stg_chunk_meta_eq(&a->chunks[i], &b->chunks[i]))
            return false;
    return true;
}

static inline bool stg_repair_req_eq(const struct stg_repair_req *a,
                                     const struct stg_repair_req *b)
{
    return stg_route_eq(&a->route, &b->route) && stg_chunk_id_eq(&a->chunk, &b->chunk) &&
           EQ_F(dest_target);
}

static inline bool mg_sync_done_req_eq(const struct mg_sync_done_req *a,
                                       const struct mg_sync_done_req *b)
{
    return EQ_F(target_id) && EQ_F(chain_id) && EQ_F(chain_version);
}

static inline bool mg_report_down_req_eq(const struct mg_report_down_req *a,
                                         const struct mg_report_down_req *b)
{
    return EQ_F(node_id) && EQ_F(reporter_id);
}

static inline bool stg_sync_req_eq(const struct stg_sync_req *a, const struct stg_sync_req *b)
{
    return EQ_F(target_id);
}

static inline bool stg_statfs_resp_eq(const struct stg_statfs_resp *a,
                                      const struct stg_statfs_resp *b)
{
    if (!EQ_F(ntargets))
        return false;
    for (uint32_t i = 0; i < a->ntargets; i++)
        if (!(EQ_F(targets[i].id) && EQ_F(targets[i].capacity) && EQ_F(targets[i].used)))
            return false;
    return true;
}

#undef EQ_F
#undef EQ_S
#undef EQ_A
#undef EQ_BYTES

#endif
