/* fuzz_proto_mgmtd.c — libFuzzer target: the mgmtd message decoders.
 * Input: one selector byte (message type, modulo the count), then the
 * payload; see fuzz_proto_common.h for what is checked. */
#include "fuzz_proto_common.h"

FUZZ_DEFINE_CODEC(mg_routing, mg_routing_free, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(mg_register_req, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(mg_register_resp, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(mg_heartbeat_req, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(mg_heartbeat_resp, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(mg_get_routing_req, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(mg_create_table_req, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(mg_create_table_resp, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(mg_set_target_req, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(mg_primary, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(mg_sync_done_req, fuzz_nofree, FUZZ_NO_VIEWS)
FUZZ_DEFINE_CODEC(mg_report_down_req, fuzz_nofree, FUZZ_NO_VIEWS)

/* Order is the selector; fuzz/make_proto_corpus.py uses the same. */
static const fuzz_codec_fn codecs[] = {
    fuzz_mg_routing, fuzz_mg_register_req, fuzz_mg_register_resp, fuzz_mg_heartbeat_req,
    fuzz_mg_heartbeat_resp, fuzz_mg_get_routing_req, fuzz_mg_create_table_req,
    fuzz_mg_create_table_resp, fuzz_mg_set_target_req, fuzz_mg_primary, fuzz_mg_sync_done_req,
    fuzz_mg_report_down_req,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_dispatch(codecs, sizeof(codecs) / sizeof(codecs[0]), data, size);
    return 0;
}
