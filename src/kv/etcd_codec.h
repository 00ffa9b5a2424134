/* etcd_codec.h — the etcd v3 JSON-gateway messages valorfs uses: request
 * bodies built with json-c, responses decoded from untrusted bytes.
 *
 * The gateway speaks the gRPC messages as JSON: bytes fields are base64,
 * int64 fields are decimal strings, fields at their default value are
 * omitted (a failed txn has no "succeeded"). Decoders accept exactly that
 * shape, check every length, and return -EPROTO for anything else; they
 * never trust a size or a count from the body.
 */
#ifndef VALORFS_KV_ETCD_CODEC_H
#define VALORFS_KV_ETCD_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- requests (malloc'd JSON text, *len set; NULL on ENOMEM) ---- */

/* POST /v3/kv/range: [key, end) (end NULL: key alone), at revision (0: the
 * newest), at most limit pairs (0: no limit). */
char *etcd_req_range(const void *key, size_t klen, const void *end, size_t elen,
                     int64_t revision, int64_t limit, size_t *len);

enum etcd_cmp_kind {
    ETCD_CMP_MOD_EQ, /* key's mod_revision == rev (0: the key is absent) */
    ETCD_CMP_MOD_LT, /* every key in [key, end) has mod_revision < rev */
};
struct etcd_cmp {
    enum etcd_cmp_kind kind;
    const void *key;
    size_t klen;
    const void *end; /* MOD_LT only */
    size_t elen;
    int64_t rev;
};
struct etcd_op {
    bool del;
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
};
/* POST /v3/kv/txn: if all compares hold, apply ops (no failure branch). */
char *etcd_req_txn(const struct etcd_cmp *cmps, size_t ncmps, const struct etcd_op *ops,
                   size_t nops, size_t *len);

/* POST /v3/kv/txn with no compares whose success branch reads each key at
 * revision (0: the newest): several point reads in one round trip, at one
 * revision (etcd serves a read-only txn without a raft proposal). */
struct etcd_key {
    const void *key;
    size_t klen;
};
char *etcd_req_multi_range(const struct etcd_key *keys, size_t n, int64_t revision,
                           size_t *len);

/* ---- responses ---- */

struct etcd_kv {
    const uint8_t *key;
    size_t klen;
    const uint8_t *val; /* never NULL, even when vlen == 0 */
    size_t vlen;
    int64_t mod_revision;
};

struct etcd_range_result {
    int64_t revision; /* the store revision the range was served at */
    struct etcd_kv *kvs;
    size_t n;
    bool more; /* limit cut the answer short */
    void *mem; /* backs kvs and their bytes */
};

/* 0, -EPROTO (malformed) or -ENOMEM. On success free with etcd_range_result_free. */
int etcd_decode_range(const char *body, size_t len, struct etcd_range_result *out);
void etcd_range_result_free(struct etcd_range_result *r);

/* The answer to etcd_req_multi_range with n keys: out[0..n) each as from
 * etcd_decode_range (revision = the txn's). 0, -EPROTO or -ENOMEM; on
 * success free each with etcd_range_result_free. */
int etcd_decode_multi_range(const char *body, size_t len, struct etcd_range_result *out,
                            size_t n);

/* A txn response: 0 with *succeeded and *revision set, or -EPROTO. */
int etcd_decode_txn(const char *body, size_t len, bool *succeeded, int64_t *revision);

/* An error body {"error":..., "code":N, "message":...}: 0 and the gRPC code
 * and message (NUL-terminated, truncated to msglen), or -EPROTO if the body
 * is not one. */
int etcd_decode_error(const char *body, size_t len, int *code, char *msg, size_t msglen);

#endif
