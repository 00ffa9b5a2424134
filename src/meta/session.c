/* session.c — open-file sessions and length reconciliation.
 *
 * Every OPEN/CREATE of a regular file records SESS+ino+session (u8 version,
 * u32 open flags, i64 opened-at ns). A file whose last link goes while a
 * session holds it keeps its inode and chunks until the last CLOSE; then
 * the collector removes it. CLOSE and SYNC fold what the client wrote into
 * the size: size = max(size, length_hint) with META_F_WROTE, and with
 * META_F_QUERY_LEN also max(size, what storage holds). */
#include <sys/random.h>

#include "common/log.h"
#include "meta/meta_internal.h"

#define SESSION_RECORD_V1 1

int session_add(struct kv_txn *t, uint64_t ino, uint32_t flags, int64_t now, uint64_t *sid)
{
    uint64_t id = 0;
    while (id == 0)
        if (getrandom(&id, sizeof(id), 0) != sizeof(id))
            return -EIO;
    uint8_t k[20];
    struct wbuf wb;
    wb_init(&wb, 64);
    wb_u8(&wb, SESSION_RECORD_V1);
    wb_u32(&wb, flags);
    wb_i64(&wb, now);
    int rc = wb.err ? -ENOMEM : kv_put(t, k, meta_key2(k, "SESS", ino, id), wb.data, wb.len);
    wb_free(&wb);
    if (rc == 0)
        *sid = id;
    return rc;
}

int session_any(struct kv_txn *t, uint64_t ino)
{
    uint8_t k[12];
    return kv_prefix_any(t, k, meta_key(k, "SESS", ino, NULL, 0));
}

/* Storage's idea of the length, asked once per operation. */
static int query_once(struct meta_core *mc, struct meta_op *op, const struct meta_inode *i)
{
    if (!op->queried) {
        op->queried = true;
        op->query_rc = mc->chunk.query_len ? mc->chunk.query_len(mc->chunk.arg, i, &op->queried_len)
                                           : -ENOSYS;
        if (op->query_rc < 0)
            LOG_WARN(META_LOG, "length query failed ino=%016llx err=%s",
                     (unsigned long long)i->ino, strerror(-op->query_rc));
    }
    return op->query_rc;
}

static int reconcile(struct meta_core *mc, struct kv_txn *t, struct meta_op *op, bool end)
{
    const struct meta_req *req = op->req;
    struct meta_inode i;
    int rc = inode_load(t, req->ino, &i);
    if (rc < 0)
        return rc;
    bool changed = false;
    if (S_ISREG(i.mode)) {
        uint64_t size = i.size;
        if (req->flags & META_F_WROTE) {
            if (req->length_hint > size)
                size = req->length_hint;
            i.mtime_ns = i.ctime_ns = op->now;
            changed = true;
        }
        if (req->flags & META_F_QUERY_LEN) {
            rc = query_once(mc, op, &i);
            if (rc < 0)
                return rc == -EAGAIN ? -EIO : rc;
            if (op->queried_len > size)
                size = op->queried_len;
        }
        if (size != i.size) {
            i.size = size;
            changed = true;
        }
    }
    if (changed && (rc = inode_store(t, &i)) < 0)
        return rc;
    if (end && req->session) {
        uint8_t k[20];
        rc = kv_del(t, k, meta_key2(k, "SESS", i.ino, req->session));
        if (rc < 0 && rc != -ENOENT)
            return rc;
        if (i.nlink == 0) {
            rc = session_any(t, i.ino);
            if (rc < 0)
                return rc;
            op->wake_gc = rc == 0;
        }
    }
    op->resp->has_inode = 1;
    op->resp->inode = i;
    op->resp->session = req->session;
    return 0;
}

int op_close(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    return reconcile(mc, t, ctx, true);
}

int op_sync(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    return reconcile(mc, t, ctx, false);
}
