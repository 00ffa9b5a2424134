/* etcd_codec.c — etcd v3 JSON-gateway bodies (json-c + base64). */
#include "kv/etcd_codec.h"
#include "kv/base64.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON_DEPTH 16

/* ---- requests ---- */

static int add_bytes(json_object *o, const char *name, const void *p, size_t n)
{
    size_t elen = b64_encoded_len(n);
    char *tmp = malloc(elen + 1);
    if (!tmp)
        return -ENOMEM;
    b64_encode(p, n, tmp);
    json_object *s = json_object_new_string_len(tmp, (int)elen);
    free(tmp);
    if (!s || json_object_object_add(o, name, s)) {
        json_object_put(s);
        return -ENOMEM;
    }
    return 0;
}

static int add_int64(json_object *o, const char *name, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    json_object *s = json_object_new_string(buf);
    if (!s || json_object_object_add(o, name, s)) {
        json_object_put(s);
        return -ENOMEM;
    }
    return 0;
}

static int add_str(json_object *o, const char *name, const char *v)
{
    json_object *s = json_object_new_string(v);
    if (!s || json_object_object_add(o, name, s)) {
        json_object_put(s);
        return -ENOMEM;
    }
    return 0;
}

static char *finish(json_object *root, size_t *len)
{
    size_t n = 0;
    const char *s = json_object_to_json_string_length(root, JSON_C_TO_STRING_PLAIN, &n);
    char *out = s ? malloc(n + 1) : NULL;
    if (out) {
        memcpy(out, s, n);
        out[n] = 0;
        *len = n;
    }
    json_object_put(root);
    return out;
}

char *etcd_req_range(const void *key, size_t klen, const void *end, size_t elen,
                     int64_t revision, int64_t limit, size_t *len)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    if (add_bytes(o, "key", key, klen) || (end && add_bytes(o, "range_end", end, elen)) ||
        (revision > 0 && add_int64(o, "revision", revision)) ||
        (limit > 0 && add_int64(o, "limit", limit))) {
        json_object_put(o);
        return NULL;
    }
    return finish(o, len);
}

/* {name: inner}, taking inner; NULL (inner released) on ENOMEM. */
static json_object *wrap(const char *name, json_object *inner)
{
    json_object *o = inner ? json_object_new_object() : NULL;
    if (!o || json_object_object_add(o, name, inner)) {
        json_object_put(o);
        json_object_put(inner);
        return NULL;
    }
    return o;
}

/* The items of a request array: element i of items, built on demand. */
typedef json_object *(*item_fn)(const void *items, size_t i, const void *arg);

static json_object *cmp_item(const void *items, size_t i, const void *arg)
{
    (void)arg;
    const struct etcd_cmp *c = (const struct etcd_cmp *)items + i;
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    bool lt = c->kind == ETCD_CMP_MOD_LT;
    if (add_bytes(o, "key", c->key, c->klen) ||
        (lt && c->end && add_bytes(o, "range_end", c->end, c->elen)) ||
        add_str(o, "target", "MOD") || add_str(o, "result", lt ? "LESS" : "EQUAL") ||
        add_int64(o, "mod_revision", c->rev)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static json_object *op_item(const void *items, size_t i, const void *arg)
{
    (void)arg;
    const struct etcd_op *op = (const struct etcd_op *)items + i;
    json_object *inner = json_object_new_object();
    if (inner && (add_bytes(inner, "key", op->key, op->klen) ||
                  (!op->del && add_bytes(inner, "value", op->val, op->vlen)))) {
        json_object_put(inner);
        return NULL;
    }
    return wrap(op->del ? "request_delete_range" : "request_put", inner);
}

static json_object *range_item(const void *items, size_t i, const void *arg)
{
    const struct etcd_key *k = (const struct etcd_key *)items + i;
    int64_t revision = *(const int64_t *)arg;
    json_object *inner = json_object_new_object();
    if (inner && (add_bytes(inner, "key", k->key, k->klen) ||
                  (revision > 0 && add_int64(inner, "revision", revision)))) {
        json_object_put(inner);
        return NULL;
    }
    return wrap("request_range", inner);
}

/* root[name] = [make(items, 0), ..., make(items, n - 1)]; nothing when n == 0. */
static int add_array(json_object *root, const char *name, size_t n, item_fn make,
                     const void *items, const void *arg)
{
    if (n == 0)
        return 0;
    json_object *a = json_object_new_array_ext((int)n);
    if (!a)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_object *o = make(items, i, arg);
        if (!o || json_object_array_add(a, o)) {
            json_object_put(o);
            json_object_put(a);
            return -ENOMEM;
        }
    }
    if (json_object_object_add(root, name, a)) {
        json_object_put(a);
        return -ENOMEM;
    }
    return 0;
}

char *etcd_req_txn(const struct etcd_cmp *cmps, size_t ncmps, const struct etcd_op *ops,
                   size_t nops, size_t *len)
{
    json_object *root = json_object_new_object();
    if (!root || add_array(root, "compare", ncmps, cmp_item, cmps, NULL) ||
        add_array(root, "success", nops, op_item, ops, NULL)) {
        json_object_put(root);
        return NULL;
    }
    return finish(root, len);
}

char *etcd_req_multi_range(const struct etcd_key *keys, size_t n, int64_t revision,
                           size_t *len)
{
    json_object *root = json_object_new_object();
    if (!root || add_array(root, "success", n, range_item, keys, &revision)) {
        json_object_put(root);
        return NULL;
    }
    return finish(root, len);
}

/* ---- responses ---- */

static bool only_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\n' && p[i] != '\r' && p[i] != '\t')
            return false;
    return true;
}

static json_object *parse(const char *body, size_t len)
{
    if (len == 0 || len > INT32_MAX)
        return NULL;
    json_tokener *tok = json_tokener_new_ex(MAX_JSON_DEPTH);
    if (!tok)
        return NULL;
    json_object *o = json_tokener_parse_ex(tok, body, (int)len);
    /* Trailing bytes (other than white space) or an incomplete object are malformed. */
    if (o && (json_tokener_get_error(tok) != json_tokener_success ||
              !only_space(body + json_tokener_get_parse_end(tok),
                          len - json_tokener_get_parse_end(tok)) ||
              !json_object_is_type(o, json_type_object))) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* An int64 field: a decimal string (the gateway's form) or a JSON integer.
 * Absent = 0 (proto3 omits defaults). */
static int get_int64(json_object *o, const char *name, int64_t *out)
{
    json_object *v;
    *out = 0;
    if (!json_object_object_get_ex(o, name, &v))
        return 0;
    if (json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v);
        return 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return -EPROTO;
    const char *s = json_object_get_string(v);
    int n = json_object_get_string_len(v);
    if (n <= 0 || n > 20)
        return -EPROTO;
    char buf[24];
    memcpy(buf, s, (size_t)n);
    buf[n] = 0;
    char *end;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    if (errno || *end || end == buf)
        return -EPROTO;
    *out = x;
    return 0;
}

static int get_bool(json_object *o, const char *name, bool *out)
{
    json_object *v;
    *out = false;
    if (!json_object_object_get_ex(o, name, &v))
        return 0;
    if (!json_object_is_type(v, json_type_boolean))
        return -EPROTO;
    *out = json_object_get_boolean(v);
    return 0;
}

/* A base64 bytes field as a (pointer, length) into the JSON's own string. */
static int get_b64(json_object *o, const char *name, const char **s, size_t *n)
{
    json_object *v;
    *s = "";
    *n = 0;
    if (!json_object_object_get_ex(o, name, &v))
        return 0;
    if (!json_object_is_type(v, json_type_string))
        return -EPROTO;
    int len = json_object_get_string_len(v);
    if (len < 0 || len % 4)
        return -EPROTO;
    *s = json_object_get_string(v);
    *n = (size_t)len;
    return 0;
}

static int header_revision(json_object *root, int64_t *rev)
{
    json_object *h;
    if (!json_object_object_get_ex(root, "header", &h) || !json_object_is_type(h, json_type_object))
        return -EPROTO;
    if (get_int64(h, "revision", rev) || *rev <= 0)
        return -EPROTO;
    return 0;
}

/* One RangeResponse object (its kvs and more) into out; revision is given. */
static int decode_range_obj(json_object *obj, int64_t revision, struct etcd_range_result *out)
{
    memset(out, 0, sizeof(*out));
    out->revision = revision;
    int rc = -EPROTO;
    json_object *kvs = NULL;
    if (get_bool(obj, "more", &out->more))
        goto out;
    size_t n = 0;
    if (json_object_object_get_ex(obj, "kvs", &kvs)) {
        if (!json_object_is_type(kvs, json_type_array))
            goto out;
        n = json_object_array_length(kvs);
    }
    /* First pass: validate and size; every pair's bytes go in one block. */
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *kv = json_object_array_get_idx(kvs, i);
        const char *k, *v;
        size_t kl, vl;
        if (!kv || !json_object_is_type(kv, json_type_object) || get_b64(kv, "key", &k, &kl) ||
            get_b64(kv, "value", &v, &vl) || kl == 0)
            goto out;
        bytes += b64_decoded_max(kl) + b64_decoded_max(vl) + 1;
    }
    rc = -ENOMEM;
    out->mem = malloc(n * sizeof(struct etcd_kv) + bytes + 1);
    if (!out->mem)
        goto out;
    out->kvs = out->mem;
    uint8_t *p = (uint8_t *)out->mem + n * sizeof(struct etcd_kv);
    uint8_t *limit = p + bytes + 1;
    rc = -EPROTO;
    for (size_t i = 0; i < n; i++) {
        json_object *kv = json_object_array_get_idx(kvs, i);
        const char *k, *v;
        size_t kl, vl;
        struct etcd_kv *e = &out->kvs[i];
        if (get_b64(kv, "key", &k, &kl) || get_b64(kv, "value", &v, &vl) ||
            get_int64(kv, "mod_revision", &e->mod_revision) || e->mod_revision <= 0)
            goto out;
        long d = b64_decode(k, kl, p, (size_t)(limit - p));
        if (d <= 0)
            goto out;
        e->key = p;
        e->klen = (size_t)d;
        p += d;
        d = b64_decode(v, vl, p, (size_t)(limit - p));
        if (d < 0)
            goto out;
        e->val = p;
        e->vlen = (size_t)d;
        p += d;
        out->n = i + 1;
    }
    rc = 0;
out:
    if (rc)
        etcd_range_result_free(out);
    return rc;
}

int etcd_decode_range(const char *body, size_t len, struct etcd_range_result *out)
{
    memset(out, 0, sizeof(*out));
    json_object *root = parse(body, len);
    if (!root)
        return -EPROTO;
    int64_t rev;
    int rc = header_revision(root, &rev) ? -EPROTO : decode_range_obj(root, rev, out);
    json_object_put(root);
    return rc;
}

int etcd_decode_multi_range(const char *body, size_t len, struct etcd_range_result *out,
                            size_t n)
{
    memset(out, 0, n * sizeof(*out));
    json_object *root = parse(body, len), *resps = NULL;
    if (!root)
        return -EPROTO;
    int64_t rev;
    bool ok = false;
    int rc = -EPROTO;
    if (header_revision(root, &rev) || get_bool(root, "succeeded", &ok) || !ok ||
        !json_object_object_get_ex(root, "responses", &resps) ||
        !json_object_is_type(resps, json_type_array) || json_object_array_length(resps) != n)
        goto out;
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(resps, i), *rr = NULL;
        if (!r || !json_object_is_type(r, json_type_object) ||
            !json_object_object_get_ex(r, "response_range", &rr) ||
            !json_object_is_type(rr, json_type_object)) {
            rc = -EPROTO;
            goto out;
        }
        if ((rc = decode_range_obj(rr, rev, &out[i])) != 0)
            goto out;
    }
    rc = 0;
out:
    json_object_put(root);
    if (rc)
        for (size_t i = 0; i < n; i++)
            etcd_range_result_free(&out[i]);
    return rc;
}

void etcd_range_result_free(struct etcd_range_result *r)
{
    free(r->mem);
    memset(r, 0, sizeof(*r));
}

int etcd_decode_txn(const char *body, size_t len, bool *succeeded, int64_t *revision)
{
    json_object *root = parse(body, len);
    if (!root)
        return -EPROTO;
    int rc = header_revision(root, revision) || get_bool(root, "succeeded", succeeded)
                 ? -EPROTO : 0;
    json_object_put(root);
    return rc;
}

int etcd_decode_error(const char *body, size_t len, int *code, char *msg, size_t msglen)
{
    json_object *root = parse(body, len), *m = NULL;
    if (!root)
        return -EPROTO;
    int64_t c = 0;
    int rc = -EPROTO;
    if (!json_object_object_get_ex(root, "code", NULL) || get_int64(root, "code", &c) || c < 0 ||
        c > 64)
        goto out;
    if (!json_object_object_get_ex(root, "message", &m) &&
        !json_object_object_get_ex(root, "error", &m))
        m = NULL;
    if (m && !json_object_is_type(m, json_type_string))
        goto out;
    *code = (int)c;
    if (msglen)
        snprintf(msg, msglen, "%s", m ? json_object_get_string(m) : "");
    rc = 0;
out:
    json_object_put(root);
    return rc;
}
