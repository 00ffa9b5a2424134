/* dedup_record.c — the value of a de-duplication record (DDUP key, see
 * dedup.c): the answer meta gave to one identified request.
 *
 * Record (version 1): u8 version, u16 method, i64 commit time (ns,
 * CLOCK_REALTIME), then the answer as a length-prefixed meta_resp encoding.
 * Only successful answers are recorded (a failed operation commits
 * nothing), so there is no status field.
 */
#include "common/log.h"
#include "meta/meta_internal.h"

#define DEDUP_RECORD_V1 1
/* The largest answer a state-changing method gives: an inode and a session,
 * well under this; a bigger length is a damaged record. */
#define DEDUP_MAX_ANSWER 4096u

void meta_dedup_record_enc(struct wbuf *wb, const struct meta_dedup_rec *r)
{
    struct wbuf ans;
    wb_init(&ans, DEDUP_MAX_ANSWER);
    meta_resp_enc(&ans, &r->resp);
    if (ans.err) {
        wb->err = true;
        wb_free(&ans);
        return;
    }
    wb_u8(wb, DEDUP_RECORD_V1);
    wb_u16(wb, r->method);
    wb_i64(wb, r->commit_ns);
    wb_str(wb, ans.data, ans.len);
    wb_free(&ans);
}

int meta_dedup_record_dec(const void *buf, size_t len, struct meta_dedup_rec *out)
{
    struct rbuf rb;
    rb_init(&rb, buf, len);
    memset(out, 0, sizeof(*out));
    if (rb_u8(&rb) != DEDUP_RECORD_V1)
        return -EIO;
    out->method = rb_u16(&rb);
    out->commit_ns = rb_i64(&rb);
    uint32_t n = 0;
    const uint8_t *ans = rb_str(&rb, DEDUP_MAX_ANSWER, &n);
    if (!rb_done(&rb))
        return -EIO;
    if (meta_resp_dec(ans, n, &out->resp) < 0) {
        memset(out, 0, sizeof(*out));
        return -EIO;
    }
    return 0;
}
