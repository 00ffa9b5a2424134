/* fuzz_decode_dev.c — libFuzzer target: one /dev/fuse frame into
 * fuse_decode_dev().
 *
 * Each input is decoded twice from an exact-size, 8-byte aligned heap copy:
 *  1. as is, so the header's len field is whatever the fuzzer chose (this
 *     exercises "len must equal the bytes received");
 *  2. with len patched to the real size, so every input also reaches the
 *     per-opcode body parser.
 * On success every view (op struct, names, data) is read byte by byte and
 * checked to lie inside the frame body, before the extension headers.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static void decode_one(const uint8_t *data, size_t size, int fix_len)
{
    char *buf = fuzz_dup(data, size);
    if (fix_len) {
        uint32_t len = (uint32_t)size;
        memcpy(buf, &len, sizeof(len));
    }
    struct fuse_msg m;
    int rc = fuse_decode_dev(buf, size, &m);
    FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOSYS);
    if (size >= sizeof(struct fuse_in_header)) {
        struct fuse_in_header h;
        memcpy(&h, buf, sizeof(h));
        fuzz_check_header(&m, &h);
        if (rc == 0) {
            FUZZ_CHECK(h.len == size);
            struct fuzz_range op, body;
            fuzz_dev_ranges(buf, size, &op, &body);
            fuzz_check_msg(&m, &op, &body);
        }
        if (rc == -ENOSYS)
            FUZZ_CHECK(fuse_op_struct_size(h.opcode) < 0);
    } else {
        FUZZ_CHECK(rc == -EINVAL && m.unique == 0);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 21))
        return 0; /* larger than any frame the engine reads */
    decode_one(data, size, 0);
    if (size >= sizeof(uint32_t))
        decode_one(data, size, 1);

    /* a misaligned frame is refused before anything is read */
    if (size > 0) {
        char *buf = fuzz_dup(data, size);
        struct fuse_msg m;
        FUZZ_CHECK(fuse_decode_dev(buf + 1, size - 1, &m) == -EINVAL);
        free(buf);
    }
    return 0;
}
