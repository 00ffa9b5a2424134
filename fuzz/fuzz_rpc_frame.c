/* fuzz_rpc_frame.c — libFuzzer target: the RPC frame header decoder
 * (src/rpc/frame.c), the one reader of untrusted header bytes.
 *
 * The input is a stream prefix. It is decoded with two payload limits (the
 * default and a small one). Checked: fewer than RPC_HDR_SIZE bytes give
 * -EAGAIN; otherwise 0 or -EPROTO; an accepted header has the right magic,
 * version and kind, a payload within the limit, and re-encodes to exactly
 * the 32 bytes it came from; the status names are readable strings.
 */
#include <errno.h>

#include "fuzz_proto_common.h"
#include "rpc/rpc.h"

static void decode_with(const uint8_t *buf, size_t len, size_t max_payload)
{
    struct rpc_frame_hdr h;
    memset(&h, 0xa5, sizeof(h));
    int rc = rpc_frame_decode_hdr(buf, len, max_payload, &h);
    if (len < RPC_HDR_SIZE) {
        FUZZ_CHECK(rc == -EAGAIN);
        return;
    }
    FUZZ_CHECK(rc == 0 || rc == -EPROTO);
    if (rc)
        return;
    FUZZ_CHECK(h.magic == RPC_MAGIC && h.version == RPC_VERSION);
    FUZZ_CHECK(h.kind == RPC_KIND_REQUEST || h.kind == RPC_KIND_RESPONSE);
    FUZZ_CHECK(h.payload_len <= max_payload);
    uint8_t out[RPC_HDR_SIZE];
    rpc_frame_encode_hdr(&h, out);
    FUZZ_CHECK(memcmp(out, buf, RPC_HDR_SIZE) == 0);
    FUZZ_CHECK(strlen(rpc_strerror(h.status)) > 0);
    FUZZ_CHECK(strlen(vf_strstatus(h.status)) > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fuzz_dup(data, size);
    decode_with(buf, size, RPC_DEFAULT_MAX_PAYLOAD);
    decode_with(buf, size, 4096);
    free(buf);
    return 0;
}
