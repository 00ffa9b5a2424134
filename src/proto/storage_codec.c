/* storage_codec.c — codecs of the storage service messages
 * (storage_proto.h). */
#include <stdlib.h>
#include <string.h>

#include "proto/codec_internal.h"
#include "proto/storage_proto.h"

#define STG_LIST_MAX 4096u
#define STG_STATFS_MAX 64u /* the array in stg_statfs_resp */
#define CHUNK_META_BYTES (8 + 4 + 1 + 1 + 8 + 4 + 4)

static void route_enc(struct wbuf *wb, const struct stg_route *r)
{
    wb_u32(wb, r->target_id);
    wb_u32(wb, r->chain_id);
    wb_u64(wb, r->chain_version);
}

static void route_dec(struct rbuf *rb, struct stg_route *r)
{
    r->target_id = rb_u32(rb);
    r->chain_id = rb_u32(rb);
    r->chain_version = rb_u64(rb);
}

static void chunk_id_enc(struct wbuf *wb, const struct stg_chunk_id *c)
{
    wb_u64(wb, c->ino);
    wb_u32(wb, c->index);
}

static void chunk_id_dec(struct rbuf *rb, struct stg_chunk_id *c)
{
    c->ino = rb_u64(rb);
    c->index = rb_u32(rb);
}

/* ---------------- write / read ---------------- */

void stg_write_req_enc(struct wbuf *wb, const struct stg_write_req *m)
{
    if (m->len && !m->data) {
        wb_fail(wb);
        return;
    }
    route_enc(wb, &m->route);
    chunk_id_enc(wb, &m->chunk);
    wb_u32(wb, m->chunk_size);
    wb_u32(wb, m->offset);
    wb_u64(wb, m->version);
    wb_u64(wb, m->tag);
    wb_u8(wb, m->flags);
    wb_str(wb, m->data, m->len);
}

int stg_write_req_dec(const void *buf, size_t len, struct stg_write_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    route_dec(&rb, &m->route);
    chunk_id_dec(&rb, &m->chunk);
    m->chunk_size = rb_u32(&rb);
    m->offset = rb_u32(&rb);
    rb_require(&rb, proto_chunk_size_ok(m->chunk_size) && m->offset <= m->chunk_size);
    m->version = rb_u64(&rb);
    m->tag = rb_u64(&rb);
    m->flags = rb_u8(&rb);
    rb_require(&rb, (m->flags & ~(STG_WF_FULL | STG_WF_ABSENT | STG_WF_PUSH)) == 0 &&
                        (!m->flags || (m->offset == 0 && m->version != 0)) &&
                        (!(m->flags & STG_WF_PUSH) || (m->flags & (STG_WF_FULL | STG_WF_ABSENT))));
    uint32_t n = 0;
    const uint8_t *d = rb.err ? NULL : rb_str(&rb, m->chunk_size - m->offset, &n);
    int rc = proto_finish(&rb);
    if (rc == 0 && n) {
        m->data = d;
        m->len = n;
    }
    return rc;
}

void stg_write_resp_enc(struct wbuf *wb, const struct stg_write_resp *m)
{
    wb_u64(wb, m->version);
    wb_u32(wb, m->chunk_len);
}

int stg_write_resp_dec(const void *buf, size_t len, struct stg_write_resp *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->version = rb_u64(&rb);
    m->chunk_len = rb_u32(&rb);
    rb_require(&rb, m->chunk_len <= PROTO_CHUNK_MAX);
    return proto_finish(&rb);
}

void stg_read_req_enc(struct wbuf *wb, const struct stg_read_req *m)
{
    route_enc(wb, &m->route);
    chunk_id_enc(wb, &m->chunk);
    wb_u32(wb, m->offset);
    wb_u32(wb, m->len);
}

int stg_read_req_dec(const void *buf, size_t len, struct stg_read_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    route_dec(&rb, &m->route);
    chunk_id_dec(&rb, &m->chunk);
    m->offset = rb_u32(&rb);
    m->len = rb_u32(&rb);
    /* the request does not carry chunk_size: bound by the largest one */
    rb_require(&rb, (uint64_t)m->offset + m->len <= PROTO_CHUNK_MAX);
    return proto_finish(&rb);
}

void stg_read_resp_enc(struct wbuf *wb, const struct stg_read_resp *m)
{
    if (m->len && !m->data) {
        wb_fail(wb);
        return;
    }
    wb_u64(wb, m->version);
    wb_u32(wb, m->chunk_len);
    wb_str(wb, m->data, m->len);
}

int stg_read_resp_dec(const void *buf, size_t len, struct stg_read_resp *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->version = rb_u64(&rb);
    m->chunk_len = rb_u32(&rb);
    rb_require(&rb, m->chunk_len <= PROTO_CHUNK_MAX);
    uint32_t n = 0;
    /* never more bytes than the chunk holds */
    const uint8_t *d = rb.err ? NULL : rb_str(&rb, m->chunk_len, &n);
    int rc = proto_finish(&rb);
    if (rc == 0 && n) {
        m->data = d;
        m->len = n;
    }
    return rc;
}

/* ---------------- chain writes without data ---------------- */

void stg_truncate_req_enc(struct wbuf *wb, const struct stg_truncate_req *m)
{
    route_enc(wb, &m->route);
    wb_u64(wb, m->ino);
    wb_u32(wb, m->chunk_size);
    wb_u64(wb, m->length);
    wb_u64(wb, m->version);
    wb_u64(wb, m->tag);
}

int stg_truncate_req_dec(const void *buf, size_t len, struct stg_truncate_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    route_dec(&rb, &m->route);
    m->ino = rb_u64(&rb);
    m->chunk_size = rb_u32(&rb);
    rb_require(&rb, proto_chunk_size_ok(m->chunk_size));
    m->length = rb_u64(&rb);
    m->version = rb_u64(&rb);
    m->tag = rb_u64(&rb);
    return proto_finish(&rb);
}

void stg_remove_req_enc(struct wbuf *wb, const struct stg_remove_req *m)
{
    route_enc(wb, &m->route);
    wb_u64(wb, m->ino);
    wb_u64(wb, m->version);
    wb_u64(wb, m->tag);
}

int stg_remove_req_dec(const void *buf, size_t len, struct stg_remove_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    route_dec(&rb, &m->route);
    m->ino = rb_u64(&rb);
    m->version = rb_u64(&rb);
    m->tag = rb_u64(&rb);
    return proto_finish(&rb);
}

/* ---------------- per-target queries ---------------- */

void stg_query_req_enc(struct wbuf *wb, const struct stg_query_req *m)
{
    route_enc(wb, &m->route);
    wb_u64(wb, m->ino);
}

int stg_query_req_dec(const void *buf, size_t len, struct stg_query_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    route_dec(&rb, &m->route);
    m->ino = rb_u64(&rb);
    return proto_finish(&rb);
}

void stg_query_resp_enc(struct wbuf *wb, const struct stg_query_resp *m)
{
    wb_u32(wb, m->nchunks);
    wb_u32(wb, m->last_index);
    wb_u32(wb, m->last_len);
    wb_u64(wb, m->bytes);
}

int stg_query_resp_dec(const void *buf, size_t len, struct stg_query_resp *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->nchunks = rb_u32(&rb);
    m->last_index = rb_u32(&rb);
    m->last_len = rb_u32(&rb);
    rb_require(&rb, m->last_len <= PROTO_CHUNK_MAX);
    m->bytes = rb_u64(&rb);
    return proto_finish(&rb);
}

void stg_chunk_meta_req_enc(struct wbuf *wb, const struct stg_chunk_meta_req *m)
{
    wb_u32(wb, m->target_id);
    chunk_id_enc(wb, &m->chunk);
}

int stg_chunk_meta_req_dec(const void *buf, size_t len, struct stg_chunk_meta_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->target_id = rb_u32(&rb);
    chunk_id_dec(&rb, &m->chunk);
    return proto_finish(&rb);
}

static void chunk_meta_enc(struct wbuf *wb, const struct stg_chunk_meta *m)
{
    chunk_id_enc(wb, &m->chunk);
    wb_u8(wb, m->exists);
    wb_u8(wb, m->dirty);
    wb_u64(wb, m->version);
    wb_u32(wb, m->len);
    wb_u32(wb, m->crc32c);
}

static void chunk_meta_dec(struct rbuf *rb, struct stg_chunk_meta *m)
{
    chunk_id_dec(rb, &m->chunk);
    m->exists = rb_bool(rb);
    m->dirty = rb_bool(rb);
    m->version = rb_u64(rb);
    m->len = rb_u32(rb);
    rb_require(rb, m->len <= PROTO_CHUNK_MAX);
    m->crc32c = rb_u32(rb);
}

void stg_chunk_meta_enc(struct wbuf *wb, const struct stg_chunk_meta *m)
{
    chunk_meta_enc(wb, m);
}

int stg_chunk_meta_dec(const void *buf, size_t len, struct stg_chunk_meta *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    chunk_meta_dec(&rb, m);
    return proto_finish(&rb);
}

void stg_list_req_enc(struct wbuf *wb, const struct stg_list_req *m)
{
    wb_u32(wb, m->target_id);
    chunk_id_enc(wb, &m->after);
    wb_u32(wb, m->max);
    wb_u64(wb, m->ino);
}

int stg_list_req_dec(const void *buf, size_t len, struct stg_list_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->target_id = rb_u32(&rb);
    chunk_id_dec(&rb, &m->after);
    m->max = rb_u32(&rb);
    rb_require(&rb, m->max <= STG_LIST_MAX);
    m->ino = rb_u64(&rb);
    return proto_finish(&rb);
}

void stg_list_resp_enc(struct wbuf *wb, const struct stg_list_resp *m)
{
    if (m->n > STG_LIST_MAX || (m->n && !m->chunks)) {
        wb_fail(wb);
        return;
    }
    wb_u32(wb, m->n);
    wb_u8(wb, m->eof);
    for (uint32_t i = 0; i < m->n; i++)
        chunk_meta_enc(wb, &m->chunks[i]);
}

int stg_list_resp_dec(const void *buf, size_t len, struct stg_list_resp *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    uint32_t n = rb_u32(&rb);
    m->eof = rb_bool(&rb);
    /* the count is checked against the bytes left after eof */
    rb_require(&rb, n <= STG_LIST_MAX && (uint64_t)n * CHUNK_META_BYTES <= rb.left);
    if (!rb.err && n) {
        m->chunks = calloc(n, sizeof(*m->chunks));
        if (!m->chunks)
            return -EBADMSG;
        m->n = n;
        for (uint32_t i = 0; i < n; i++)
            chunk_meta_dec(&rb, &m->chunks[i]);
    }
    int rc = proto_finish(&rb);
    if (rc)
        stg_list_resp_free(m);
    return rc;
}

void stg_list_resp_free(struct stg_list_resp *r)
{
    if (!r)
        return;
    free(r->chunks);
    r->chunks = NULL;
    r->n = 0;
}

void stg_sync_req_enc(struct wbuf *wb, const struct stg_sync_req *m)
{
    wb_u32(wb, m->target_id);
}

int stg_sync_req_dec(const void *buf, size_t len, struct stg_sync_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->target_id = rb_u32(&rb);
    return proto_finish(&rb);
}

void stg_repair_req_enc(struct wbuf *wb, const struct stg_repair_req *m)
{
    route_enc(wb, &m->route);
    chunk_id_enc(wb, &m->chunk);
    wb_u32(wb, m->dest_target);
}

int stg_repair_req_dec(const void *buf, size_t len, struct stg_repair_req *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    route_dec(&rb, &m->route);
    chunk_id_dec(&rb, &m->chunk);
    m->dest_target = rb_u32(&rb);
    return proto_finish(&rb);
}

void stg_statfs_resp_enc(struct wbuf *wb, const struct stg_statfs_resp *m)
{
    if (m->ntargets > STG_STATFS_MAX) {
        wb_fail(wb);
        return;
    }
    wb_u32(wb, m->ntargets);
    for (uint32_t i = 0; i < m->ntargets; i++) {
        wb_u32(wb, m->targets[i].id);
        wb_u64(wb, m->targets[i].capacity);
        wb_u64(wb, m->targets[i].used);
    }
}

int stg_statfs_resp_dec(const void *buf, size_t len, struct stg_statfs_resp *m)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(m, 0, sizeof(*m));
    m->ntargets = rb_count(&rb, STG_STATFS_MAX, 4 + 8 + 8);
    if (rb.err)
        m->ntargets = 0;
    for (uint32_t i = 0; i < m->ntargets; i++) {
        m->targets[i].id = rb_u32(&rb);
        m->targets[i].capacity = rb_u64(&rb);
        m->targets[i].used = rb_u64(&rb);
    }
    return proto_finish(&rb);
}
