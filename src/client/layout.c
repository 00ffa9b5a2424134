/* layout.c — see layout.h. */
#include "client/layout.h"

#include <errno.h>

bool layout_valid(const struct meta_layout *l)
{
    uint32_t cs = l->chunk_size;
    return cs >= LAYOUT_MIN_CHUNK && cs <= LAYOUT_MAX_CHUNK && (cs & (cs - 1)) == 0 &&
           l->nchains >= 1 && l->nchains <= VF_MAX_STRIPE;
}

uint64_t layout_max_size(const struct meta_layout *l)
{
    return ((uint64_t)UINT32_MAX + 1) * l->chunk_size;
}

uint32_t layout_npieces(uint32_t chunk_size, uint64_t off, uint64_t len)
{
    if (len == 0 || chunk_size == 0)
        return 0;
    uint64_t first = off / chunk_size;
    uint64_t last = (off + len - 1) / chunk_size;
    uint64_t n = last - first + 1;
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

uint32_t layout_chain_of(const struct meta_layout *l, uint32_t index)
{
    return l->chains[index % l->nchains];
}

int layout_split(const struct meta_layout *l, uint64_t off, uint64_t len,
                 struct layout_piece *out)
{
    if (!layout_valid(l))
        return -EINVAL;
    if (len == 0)
        return 0;
    uint64_t max = layout_max_size(l);
    if (off >= max || len > max - off)
        return -EFBIG;
    uint64_t cs = l->chunk_size;
    uint64_t pos = off, end = off + len;
    int n = 0;
    while (pos < end) {
        uint64_t index = pos / cs;
        uint64_t in_chunk = pos - index * cs;
        uint64_t take = cs - in_chunk;
        if (take > end - pos)
            take = end - pos;
        out[n] = (struct layout_piece){
            .index = (uint32_t)index,
            .chain_id = layout_chain_of(l, (uint32_t)index),
            .chunk_off = (uint32_t)in_chunk,
            .len = (uint32_t)take,
            .buf_off = pos - off,
        };
        n++;
        pos += take;
    }
    return n;
}
