/* fuzz_decode_ring.c — libFuzzer target: one FUSE-over-io_uring entry into
 * fuse_decode_ring().
 *
 * The input is split into the 128-byte in_out (header) area, the 128-byte
 * op area and the rest as payload (short inputs are zero-padded, as the
 * kernel-shared areas always have their full size). The payload is an
 * exact-size heap copy so that reading past payload_len is an ASan report.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 21))
        return 0;
    struct fuzz_ring_in ri;
    fuzz_ring_split(data, size, &ri);
    struct fuse_in_header h;
    memcpy(&h, ri.in_out, sizeof(h));

    struct fuse_msg m;
    int rc = fuse_decode_ring(ri.in_out, ri.op_in, ri.payload, ri.payload_len, &m);
    FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOSYS);
    fuzz_check_header(&m, &h);
    if (rc == 0) {
        FUZZ_CHECK(h.opcode != FUSE_INIT); /* INIT never travels over a ring */
        struct fuzz_range op, body;
        fuzz_ring_ranges(&ri, &op, &body);
        fuzz_check_msg(&m, &op, &body);
    }
    if (rc == -ENOSYS)
        FUZZ_CHECK(fuse_op_struct_size(h.opcode) < 0);

    /* Not exercised: payload == NULL with payload_len == 0, which decode.h
     * allows. fuse_decode_ring() then computes NULL + 0 (decode.c, the
     * parse_body() call), undefined in C and reported by UBSan
     * (pointer-overflow). No engine caller passes NULL (chan_uring.c hands
     * over the entry's buffer); add the NULL case here once decode.c stops
     * doing arithmetic on a NULL payload. */
    fuzz_ring_free(&ri);
    return 0;
}
