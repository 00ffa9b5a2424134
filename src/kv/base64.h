/* base64.h — standard base64 (RFC 4648, with padding), as etcd's JSON
 * gateway encodes keys and values.
 *
 * Both directions write into a caller-sized buffer and never past it;
 * decoding rejects anything that is not canonical base64.
 */
#ifndef VALORFS_KV_BASE64_H
#define VALORFS_KV_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters needed to encode n bytes (no NUL). */
static inline size_t b64_encoded_len(size_t n) { return (n + 2) / 3 * 4; }
/* Upper bound of the bytes decoded from n characters. */
static inline size_t b64_decoded_max(size_t n) { return n / 4 * 3; }

/* Encode n bytes into out (b64_encoded_len(n) chars, no NUL); returns that length. */
size_t b64_encode(const void *in, size_t n, char *out);
/* Decode n characters into out (room for outcap bytes). Returns the decoded
 * length, or -1 if the input is not valid padded base64 or does not fit. */
long b64_decode(const char *in, size_t n, uint8_t *out, size_t outcap);

#endif
