/* test_layout.c — chunk/stripe splitting edge cases. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/layout.h"

#include "common/test_check.h"

#define CS (64u << 10)

static struct meta_layout mk(uint32_t cs, uint32_t n)
{
    struct meta_layout l = { .chunk_size = cs, .table_id = 1, .nchains = n };
    for (uint32_t i = 0; i < n; i++)
        l.chains[i] = 100 + i;
    return l;
}

/* Every piece is inside one chunk, pieces tile the range in order, and the
 * chain is chains[index % n]. */
static void check_tiling(const struct meta_layout *l, uint64_t off, uint64_t len)
{
    uint32_t n = layout_npieces(l->chunk_size, off, len);
    struct layout_piece *p = calloc(n + 1, sizeof(*p));
    int got = layout_split(l, off, len, p);
    CHECK(got == (int)n);
    uint64_t pos = off;
    for (int i = 0; i < got; i++) {
        CHECK(p[i].len > 0);
        CHECK((uint64_t)p[i].chunk_off + p[i].len <= l->chunk_size);
        CHECK((uint64_t)p[i].index * l->chunk_size + p[i].chunk_off == pos);
        CHECK(p[i].buf_off == pos - off);
        CHECK(p[i].chain_id == l->chains[p[i].index % l->nchains]);
        if (i > 0)
            CHECK(p[i].chunk_off == 0 && p[i].index == p[i - 1].index + 1);
        pos += p[i].len;
    }
    CHECK(pos == off + len);
    free(p);
}

int main(void)
{
    struct meta_layout l4 = mk(CS, 4);
    struct layout_piece p[16];

    /* validity */
    CHECK(layout_valid(&l4));
    struct meta_layout bad = mk(CS + 1, 4);
    CHECK(!layout_valid(&bad));
    bad = mk(32u << 10, 4);
    CHECK(!layout_valid(&bad));
    bad = mk(128u << 20, 4);
    CHECK(!layout_valid(&bad));
    bad = mk(CS, 0);
    CHECK(!layout_valid(&bad));
    CHECK(layout_split(&bad, 0, 10, p) == -EINVAL);

    /* empty range */
    CHECK(layout_npieces(CS, 123, 0) == 0);
    CHECK(layout_split(&l4, 123, 0, p) == 0);

    /* exactly one chunk at a boundary */
    CHECK(layout_split(&l4, CS, CS, p) == 1);
    CHECK(p[0].index == 1 && p[0].chunk_off == 0 && p[0].len == CS && p[0].chain_id == 101);

    /* one byte before and after a boundary */
    CHECK(layout_split(&l4, CS - 1, 2, p) == 2);
    CHECK(p[0].index == 0 && p[0].chunk_off == CS - 1 && p[0].len == 1 && p[0].buf_off == 0);
    CHECK(p[1].index == 1 && p[1].chunk_off == 0 && p[1].len == 1 && p[1].buf_off == 1);

    /* ends exactly at a boundary: no empty trailing piece */
    CHECK(layout_npieces(CS, 10, CS - 10) == 1);
    CHECK(layout_split(&l4, 10, CS - 10, p) == 1 && p[0].len == CS - 10);

    /* spans several chunks and wraps around the chains, last chunk partial */
    int n = layout_split(&l4, CS / 2, 5 * CS + 7, p);
    CHECK(n == 6);
    CHECK(p[0].index == 0 && p[0].len == CS / 2 && p[0].chain_id == 100);
    CHECK(p[4].index == 4 && p[4].chain_id == 100); /* wrapped */
    CHECK(p[5].index == 5 && p[5].chain_id == 101 && p[5].len == CS / 2 + 7);

    /* one chain: every chunk on it */
    struct meta_layout l1 = mk(CS, 1);
    CHECK(layout_split(&l1, 0, 3 * CS, p) == 3);
    CHECK(p[0].chain_id == 100 && p[1].chain_id == 100 && p[2].chain_id == 100);

    /* large offsets: index near the u32 limit, and past it */
    uint64_t max = layout_max_size(&l4);
    CHECK(max == ((uint64_t)1 << 32) * CS);
    CHECK(layout_split(&l4, max - 3, 3, p) == 1 && p[0].index == UINT32_MAX &&
          p[0].chunk_off == CS - 3);
    CHECK(layout_split(&l4, max - 3, 4, p) == -EFBIG);
    CHECK(layout_split(&l4, max, 1, p) == -EFBIG);
    CHECK(layout_split(&l4, UINT64_MAX - 1, 1, p) == -EFBIG);

    /* random tilings over odd stripe counts and chunk sizes */
    srand(42);
    uint32_t sizes[] = { CS, 1u << 20, 4u << 20 };
    for (int i = 0; i < 2000; i++) {
        struct meta_layout l = mk(sizes[i % 3], 1 + (uint32_t)rand() % 7);
        uint64_t off = ((uint64_t)rand() << 8) ^ (uint64_t)rand();
        uint64_t len = (uint64_t)rand() % (9u * l.chunk_size) + 1;
        check_tiling(&l, off, len);
    }

    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("test_layout: ok\n");
    return 0;
}
