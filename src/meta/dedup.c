/* dedup.c — exactly-once state changes across retries and meta servers.
 *
 * A state-changing request with an id (meta_req.req_client/req_seq) leaves,
 * in the same KV transaction as its effect, a record of its answer:
 *   DDUP client seq             -> dedup record (dedup_record.c)
 *   DDTM commit_ns client seq   -> empty: the time index the sweep walks
 * Before applying such a request meta reads DDUP in the same transaction.
 * Found: the stored answer is returned and nothing is applied. Absent: the
 * read is conflict-tracked, so when the original and a retry run at once
 * (on two meta servers) exactly one commits; the other conflicts, runs
 * again and finds the record.
 *
 * Records expire after the retention (meta_core_opts.dedup_retention_s):
 * meta_dedup_sweep() deletes, in batches of DEDUP_SWEEP_BATCH per
 * transaction, the DDTM range older than now - retention and the DDUP
 * records it names. The work is proportional to what expires, never to
 * what is stored.
 */
#include <stdlib.h>

#include "common/log.h"
#include "meta/meta_internal.h"

#define DEDUP_KEY_LEN 20      /* DDUP client seq */
#define DEDUP_TIME_KEY_LEN 28 /* DDTM time client seq */
#define DEDUP_SWEEP_BATCH 256

static size_t dedup_key(uint8_t *k, uint64_t client, uint64_t seq)
{
    return meta_key2(k, "DDUP", client, seq);
}

static size_t dedup_time_key(uint8_t *k, int64_t commit_ns, uint64_t client, uint64_t seq)
{
    memcpy(k, "DDTM", 4);
    put_be64(k + 4, commit_ns > 0 ? (uint64_t)commit_ns : 0);
    put_be64(k + 12, client);
    put_be64(k + 20, seq);
    return DEDUP_TIME_KEY_LEN;
}

bool dedup_applies(uint16_t method, bool rdonly, const struct meta_req *req)
{
    (void)method;
    return !rdonly && req->req_client != 0;
}

void dedup_prefetch(struct kv_txn *t, uint16_t method, const struct meta_req *req)
{
    uint8_t k[DEDUP_KEY_LEN];
    struct kv_key extra = { k, dedup_key(k, req->req_client, req->req_seq) };
    switch (method) {
    case META_CREATE: case META_MKNOD: case META_MKDIR: case META_SYMLINK:
    case META_UNLINK: case META_RMDIR:
        dirent_prefetch_with(t, &extra, 1, 0, req->parent, req->name, 0, NULL);
        break;
    case META_RENAME:
        dirent_prefetch_with(t, &extra, 1, 0, req->parent, req->name, req->newparent,
                             req->newname);
        break;
    case META_LINK:
        dirent_prefetch_with(t, &extra, 1, req->ino, req->newparent, req->newname, 0, NULL);
        break;
    default:
        dirent_prefetch_with(t, &extra, 1, req->ino, 0, NULL, 0, NULL);
        break;
    }
}

int dedup_lookup(struct kv_txn *t, uint16_t method, const struct meta_req *req,
                 struct meta_resp *resp, struct wbuf *out)
{
    uint8_t k[DEDUP_KEY_LEN];
    struct kv_val v;
    int rc = kv_get(t, k, dedup_key(k, req->req_client, req->req_seq), &v);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    struct meta_dedup_rec rec;
    if (meta_dedup_record_dec(v.data, v.len, &rec) < 0) {
        LOG_ERROR(META_LOG, "corrupt de-duplication record client=%016llx seq=%llu len=%zu",
                  (unsigned long long)req->req_client, (unsigned long long)req->req_seq, v.len);
        return -EIO;
    }
    if (rec.method != method) {
        /* a client bug (an id reused for another call): applying it could
         * be wrong, answering the other call's result is wrong */
        LOG_ERROR(META_LOG, "request id reused client=%016llx seq=%llu method=%s recorded=%s",
                  (unsigned long long)req->req_client, (unsigned long long)req->req_seq,
                  meta_method_name(method), meta_method_name(rec.method));
        return -EIO;
    }
    *resp = rec.resp;
    resp->data = NULL;
    if (rec.resp.data_len) {
        /* the record's bytes live only as long as the transaction */
        out->len = 0;
        wb_bytes(out, rec.resp.data, rec.resp.data_len);
        if (out->err)
            return -ENOMEM;
        resp->data = out->data;
    }
    LOG_DEBUG(META_LOG, "answered a retry from its record client=%016llx seq=%llu method=%s",
              (unsigned long long)req->req_client, (unsigned long long)req->req_seq,
              meta_method_name(method));
    return 1;
}

int dedup_store(struct kv_txn *t, uint16_t method, const struct meta_req *req, int64_t now,
                const struct meta_resp *resp)
{
    struct meta_dedup_rec rec = { .method = method, .commit_ns = now, .resp = *resp };
    struct wbuf wb;
    wb_init(&wb, 0);
    meta_dedup_record_enc(&wb, &rec);
    if (wb.err) {
        wb_free(&wb);
        LOG_ERROR(META_LOG, "%s: cannot encode the de-duplication record",
                  meta_method_name(method));
        return -EIO;
    }
    uint8_t k[DEDUP_KEY_LEN], tk[DEDUP_TIME_KEY_LEN];
    int rc = kv_put(t, k, dedup_key(k, req->req_client, req->req_seq), wb.data, wb.len);
    wb_free(&wb);
    if (rc == 0)
        rc = kv_put(t, tk, dedup_time_key(tk, now, req->req_client, req->req_seq), "", 0);
    return rc;
}

/* ---- expiry ---- */

struct sweep_batch {
    uint8_t keys[DEDUP_SWEEP_BATCH][DEDUP_TIME_KEY_LEN];
    size_t n;
    int64_t cutoff_ns;
    int removed;
};

static int collect_expired(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val;
    (void)vlen;
    struct sweep_batch *b = arg;
    if (klen != DEDUP_TIME_KEY_LEN || b->n >= DEDUP_SWEEP_BATCH)
        return b->n >= DEDUP_SWEEP_BATCH ? 1 : 0; /* a foreign key: skip it */
    memcpy(b->keys[b->n++], key, klen);
    return 0;
}

static int sweep_txn(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    struct sweep_batch *b = ctx;
    b->n = 0;
    b->removed = 0;
    uint8_t end[12];
    memcpy(end, "DDTM", 4);
    put_be64(end + 4, (uint64_t)b->cutoff_ns);
    int rc = kv_scan(t, "DDTM", 4, end, sizeof(end), DEDUP_SWEEP_BATCH, collect_expired, b);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < b->n; i++) {
        const uint8_t *tk = b->keys[i];
        uint8_t k[DEDUP_KEY_LEN];
        size_t kl = dedup_key(k, get_be64(tk + 12), get_be64(tk + 20));
        if ((rc = kv_del(t, k, kl)) < 0 && rc != -ENOENT)
            return rc;
        if ((rc = kv_del(t, tk, DEDUP_TIME_KEY_LEN)) < 0 && rc != -ENOENT)
            return rc;
        b->removed++;
    }
    return 0;
}

int meta_dedup_sweep(struct meta_core *mc, int64_t now_ns, unsigned max_batches)
{
    int64_t cutoff = now_ns - (int64_t)mc->dedup_retention_s * 1000000000ll;
    if (cutoff <= 0)
        return 0;
    struct sweep_batch *b = malloc(sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->cutoff_ns = cutoff;
    int total = 0, rc = 0;
    for (unsigned i = 0; i < max_batches; i++) {
        rc = meta_run_txn(mc, false, sweep_txn, b);
        if (rc < 0)
            break;
        total += b->removed;
        if (b->n < DEDUP_SWEEP_BATCH)
            break;
    }
    free(b);
    if (total)
        LOG_DEBUG(META_LOG, "expired %d de-duplication records", total);
    return rc < 0 ? rc : total;
}
