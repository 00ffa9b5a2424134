/* layout.h — chunk and stripe arithmetic of a file layout.
 *
 * Chunk i of a file holds bytes [i*chunk_size, (i+1)*chunk_size) and lives
 * on chain chains[i % nchains]. layout_split() cuts a byte range into one
 * piece per chunk it touches. Pure functions, no I/O.
 */
#ifndef VALORFS_CLIENT_LAYOUT_H
#define VALORFS_CLIENT_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/meta_proto.h"

#define LAYOUT_MIN_CHUNK (64u << 10)
#define LAYOUT_MAX_CHUNK (64u << 20)

struct layout_piece {
    uint32_t index;     /* chunk index */
    uint32_t chain_id;
    uint32_t chunk_off; /* offset within the chunk */
    uint32_t len;       /* bytes in this chunk, > 0 */
    uint64_t buf_off;   /* offset within the caller's range */
};

/* chunk_size a power of two in [64 KiB, 64 MiB], 1..VF_MAX_STRIPE chains. */
bool layout_valid(const struct meta_layout *l);
/* How many pieces [off, off+len) spans (0 for len 0). */
uint32_t layout_npieces(uint32_t chunk_size, uint64_t off, uint64_t len);
/* Fill out[] (room for layout_npieces()) and return the count, or -EFBIG
 * when the range reaches past the last addressable chunk (index > u32),
 * -EINVAL for an invalid layout. */
int layout_split(const struct meta_layout *l, uint64_t off, uint64_t len,
                 struct layout_piece *out);
uint32_t layout_chain_of(const struct meta_layout *l, uint32_t index);
/* Highest byte offset a layout can address. */
uint64_t layout_max_size(const struct meta_layout *l);

#endif
