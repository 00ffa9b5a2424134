/* fuzz_proto_storage.c — libFuzzer target: the storage message decoders.
 * Input: one selector byte (message type, modulo the count), then the
 * payload; see fuzz_proto_common.h for what is checked. */
#include "fuzz_proto_common.h"

#define WRITE_VIEWS(m, buf, len)                                               \
    do {                                                                       \
        fuzz_check_view((m)->data, (m)->len, buf, len);                        \
        FUZZ_CHECK((uint64_t)(m)->offset + (m)->len <= (m)->chunk_size);       \
        FUZZ_CHECK(!(m)->flags || ((m)->offset == 0 && (m)->version != 0));    \
        FUZZ_CHECK(!((m)->flags & STG_WF_PUSH) ||                             \
                   ((m)->flags & (STG_WF_FULL | STG_WF_ABSENT)));              \
    } while (0)
#define READ_VIEWS(m, buf, len)                                                \
    do {                                                                       \
        fuzz_check_view((m)->data, (m)->len, buf, len);                        \
        FUZZ_CHECK((m)->len <= (m)->chunk_len);                                \
    } while (0)

FUZZ_DEFINE_CODEC(stg_write_req, fuzz_nofree, WRITE_VIEWS)
FUZZ_DEFINE_CODEC(stg_write_resp, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(stg_read_req, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(stg_read_resp, fuzz_nofree, READ_VIEWS)
FUZZ_DEFINE_CODEC(stg_truncate_req, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(stg_remove_req, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(stg_query_req, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(stg_query_resp, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(stg_chunk_meta_req, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(stg_chunk_meta, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(stg_list_req, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(stg_list_resp, stg_list_resp_free, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(stg_sync_req, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(stg_statfs_resp, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(stg_repair_req, fuzz_nofree, FUZZ_NO_VIEWS)

/* Order is the selector; fuzz/make_proto_corpus.py uses the same. */
static const fuzz_codec_fn codecs[] = {
    fuzz_stg_write_req, fuzz_stg_write_resp, fuzz_stg_read_req, fuzz_stg_read_resp,
    fuzz_stg_truncate_req, fuzz_stg_remove_req, fuzz_stg_query_req, fuzz_stg_query_resp,
    fuzz_stg_chunk_meta_req, fuzz_stg_chunk_meta, fuzz_stg_list_req, fuzz_stg_list_resp,
    fuzz_stg_sync_req, fuzz_stg_statfs_resp, fuzz_stg_repair_req,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_dispatch(codecs, sizeof(codecs) / sizeof(codecs[0]), data, size);
    return 0;
}
