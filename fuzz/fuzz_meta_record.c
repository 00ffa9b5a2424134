/* fuzz_meta_record.c — libFuzzer target: meta's on-disk record decoders,
 * the inode record (an INOD value) and the de-duplication record (a DDUP
 * value: the stored answer to a request id), both fed every input. The
 * bytes in the KV store are untrusted: a damaged or foreign store must
 * give EIO, never a crash. What decodes re-encodes to exactly the bytes it
 * came from. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"
#include "meta/meta_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy, so ASan sees any read past the record */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    struct meta_inode ino;
    if (meta_inode_record_dec(buf, size, 42, &ino) == 0) {
        if (ino.ino != 42 || ino.layout.nchains > VF_MAX_STRIPE)
            abort();
        struct wbuf wb;
        wb_init(&wb, 0);
        meta_inode_record_enc(&wb, &ino);
        if (wb.err || wb.len != size || memcmp(wb.data, buf, size) != 0) {
            fprintf(stderr, "inode record does not re-encode to its bytes\n");
            abort();
        }
        wb_free(&wb);
    }
    struct meta_dedup_rec rec;
    if (meta_dedup_record_dec(buf, size, &rec) == 0) {
        if (rec.resp.has_inode > 1 || rec.resp.inode.layout.nchains > VF_MAX_STRIPE ||
            (rec.resp.data_len && !rec.resp.data))
            abort();
        struct wbuf wb;
        wb_init(&wb, 0);
        meta_dedup_record_enc(&wb, &rec);
        if (wb.err || wb.len != size || memcmp(wb.data, buf, size) != 0) {
            fprintf(stderr, "de-duplication record does not re-encode to its bytes\n");
            abort();
        }
        wb_free(&wb);
    }
    free(buf);
    return 0;
}
