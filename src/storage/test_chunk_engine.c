/* test_chunk_engine.c — the chunk engine against its contract, on a temp dir. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/proto.h"
#include "storage/chunk_engine.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

/* Bitwise reference CRC32C, independent of isa-l. */
static uint32_t ref_crc32c(const void *buf, size_t n)
{
    const uint8_t *p = buf;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    }
    return c ^ 0xFFFFFFFFu;
}

static struct ce_target *open_target(const char *dir, bool verify)
{
    char err[256];
    struct ce_opts o = { .target_id = 7, .path = dir, .verify_reads = verify };
    struct ce_target *t = ce_open(&o, err, sizeof(err));
    if (!t)
        fprintf(stderr, "open: %s\n", err);
    CHECK(t);
    return t;
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

static void check_chunk(struct ce_target *t, uint64_t ino, uint32_t idx, const uint8_t *want,
                        uint32_t len)
{
    uint8_t *buf = malloc(len + 100);
    uint32_t nr;
    struct ce_meta m;
    CHECK(ce_read(t, ino, idx, 0, len + 100, buf, &nr, &m) == 0);
    CHECK(nr == len && m.len == len);
    CHECK(memcmp(buf, want, len) == 0);
    CHECK(m.crc32c == ref_crc32c(want, len));
    free(buf);
}

int main(void)
{
    CHECK(crc32c("123456789", 9) == 0xE3069283u);
    CHECK(ref_crc32c("123456789", 9) == 0xE3069283u);
    CHECK(crc32c_extend(crc32c("1234", 4), "56789", 5) == 0xE3069283u);

    char dir[] = "/tmp/test_chunk_engine.XXXXXX";
    CHECK(mkdtemp(dir));
    struct ce_target *t = open_target(dir, true);

    /* a second open of the same directory is refused (locked) */
    {
        char err[256];
        struct ce_opts o = { .target_id = 8, .path = dir };
        CHECK(ce_open(&o, err, sizeof(err)) == NULL);
        CHECK(strstr(err, "locked"));
    }

    enum { CS = 1 << 20 };
    static uint8_t want[CS], buf[CS];
    const uint64_t ino = 0xabcdef0123456789ull;

    /* absent chunk */
    uint32_t nr = 123;
    struct ce_meta m;
    CHECK(ce_read(t, ino, 0, 0, 100, buf, &nr, &m) == 0 && nr == 0 && m.version == 0 && m.len == 0);
    CHECK(ce_get_meta(t, ino, 0, &m) == -ENOENT);

    /* write + read back */
    fill(want, 300000, 1);
    CHECK(ce_write(t, ino, 0, 0, want, 300000, 1, &m) == 0);
    CHECK(m.version == 1 && m.len == 300000 && m.crc32c == ref_crc32c(want, 300000));
    check_chunk(t, ino, 0, want, 300000);

    /* append (incremental CRC path) */
    fill(want + 300000, 1000, 2);
    CHECK(ce_write(t, ino, 0, 300000, want + 300000, 1000, 2, &m) == 0);
    CHECK(m.version == 2 && m.len == 301000);
    check_chunk(t, ino, 0, want, 301000);

    /* overwrite in the middle */
    fill(want + 5000, 7000, 3);
    CHECK(ce_write(t, ino, 0, 5000, want + 5000, 7000, 3, &m) == 0);
    CHECK(m.version == 3 && m.len == 301000);
    check_chunk(t, ino, 0, want, 301000);

    /* an empty write bumps the version, never the length */
    CHECK(ce_write(t, ino, 0, 310000, "", 0, 4, &m) == 0 && m.len == 301000 && m.version == 4);
    CHECK(ce_write(t, ino, 0, 5000, want + 5000, 7000, 3, &m) == 0 && m.version == 3);

    /* partial read */
    CHECK(ce_read(t, ino, 0, 4000, 2000, buf, &nr, &m) == 0 && nr == 2000);
    CHECK(memcmp(buf, want + 4000, 2000) == 0);
    CHECK(ce_read(t, ino, 0, 300500, 2000, buf, &nr, &m) == 0 && nr == 500);

    /* write past the end leaves a zero gap */
    fill(want + 400000, 10, 4);
    memset(want + 301000, 0, 99000);
    CHECK(ce_write(t, ino, 0, 400000, want + 400000, 10, 4, &m) == 0 && m.len == 400010);
    check_chunk(t, ino, 0, want, 400010);

    /* truncate, then a gap write must read zeros where the cut bytes were */
    CHECK(ce_truncate(t, ino, 0, 1000, 5, &m) == 0 && m.len == 1000 && m.version == 5);
    check_chunk(t, ino, 0, want, 1000);
    CHECK(ce_truncate(t, ino, 0, 5000, 6, &m) == 0 && m.len == 1000); /* no growth */
    memset(want + 1000, 0, 2000);
    fill(want + 3000, 10, 5);
    CHECK(ce_write(t, ino, 0, 3000, want + 3000, 10, 7, &m) == 0 && m.len == 3010);
    check_chunk(t, ino, 0, want, 3010);
    CHECK(ce_truncate(t, ino, 9, 0, 1, &m) == -ENOENT);

    /* more chunks, query and list */
    for (uint32_t i = 1; i <= 4; i++)
        CHECK(ce_write(t, ino, i, 0, want, 100 * i, 1, NULL) == 0);
    CHECK(ce_write(t, ino + 1, 0, 0, want, 10, 1, NULL) == 0);
    CHECK(ce_write(t, ino - 1, 3, 0, want, 10, 1, NULL) == 0);
    struct ce_query q;
    CHECK(ce_query_ino(t, ino, &q) == 0);
    CHECK(q.nchunks == 5 && q.last_index == 4 && q.last_len == 400 &&
          q.bytes == 3010 + 100 + 200 + 300 + 400);
    struct ce_chunk ch[16];
    bool eof;
    uint32_t n;
    CHECK(ce_list(t, 0, 0, 0, 16, ch, &n, &eof) == 0 && n == 7 && eof);
    CHECK(ch[0].ino == ino - 1 && ch[1].ino == ino && ch[1].index == 0 && ch[6].ino == ino + 1);
    CHECK(ce_list(t, ino, 1, 0, 2, ch, &n, &eof) == 0 && n == 2 && !eof);
    CHECK(ch[0].index == 2 && ch[1].index == 3);
    CHECK(ce_list(t, ino, 3, 0, 2, ch, &n, &eof) == 0 && n == 2 && eof);
    CHECK(ch[0].index == 4 && ch[1].ino == ino + 1);
    CHECK(ce_list(t, 0, 0, ino, 16, ch, &n, &eof) == 0 && n == 5 && eof);
    CHECK(ch[4].meta.len == 400 && ch[4].meta.crc32c == ref_crc32c(want, 400));

    /* remove one, then all of an ino */
    CHECK(ce_remove(t, ino, 2) == 0);
    CHECK(ce_remove(t, ino, 2) == -ENOENT);
    CHECK(ce_query_ino(t, ino, &q) == 0 && q.nchunks == 4);
    uint32_t removed;
    CHECK(ce_remove_ino(t, ino + 1, &removed) == 0 && removed == 1);
    CHECK(ce_query_ino(t, ino + 1, &q) == 0 && q.nchunks == 0 && q.bytes == 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/data/%02x/%llx.0", dir, (unsigned)((ino + 1) % 256),
             (unsigned long long)(ino + 1));
    CHECK(access(path, F_OK) < 0);

    uint64_t cap, used;
    CHECK(ce_statfs(t, &cap, &used) == 0 && cap > 0 && used <= cap);
    CHECK(ce_sync(t) == 0);

    /* persistence across close/reopen */
    ce_close(t);
    t = open_target(dir, true);
    check_chunk(t, ino, 0, want, 3010);
    CHECK(ce_get_meta(t, ino, 0, &m) == 0 && m.version == 7);
    CHECK(ce_query_ino(t, ino, &q) == 0 && q.nchunks == 4 && q.last_index == 4);

    /* a corrupted data file is detected by any read of a version not yet
     * checked since the target opened — a partial one too (it checks the
     * whole chunk first) — and the bad bytes are never returned */
    snprintf(path, sizeof(path), "%s/data/%02x/%llx.0", dir, (unsigned)(ino % 256),
             (unsigned long long)ino);
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0);
    CHECK(pwrite(fd, "X", 1, 17) == 1);
    close(fd);
    ce_close(t);
    t = open_target(dir, true);
    CHECK(ce_read(t, ino, 0, 1000, 10, buf, &nr, &m) == -VF_E_CHECKSUM && nr == 0);
    CHECK(ce_read(t, ino, 0, 0, CS, buf, &nr, &m) == -VF_E_CHECKSUM && nr == 0);
    /* a good copy put back (a repair) is served again */
    struct ce_meta rm;
    CHECK(ce_replace(t, ino, 0, want, 3010, m.version, &rm) == 0);
    CHECK(rm.version == m.version && rm.len == 3010 && rm.crc32c == crc32c(want, 3010));
    check_chunk(t, ino, 0, want, 3010);
    CHECK(ce_read(t, ino, 0, 1000, 10, buf, &nr, &m) == 0 && nr == 10 &&
          memcmp(buf, want + 1000, 10) == 0);
    /* and a replace also shortens: exactly data[0, n) afterwards */
    CHECK(ce_replace(t, ino, 0, want, 100, m.version + 1, &rm) == 0 && rm.len == 100);
    check_chunk(t, ino, 0, want, 100);
    fd = open(path, O_WRONLY);
    CHECK(fd >= 0);
    CHECK(pwrite(fd, "X", 1, 17) == 1);
    close(fd);
    ce_close(t);
    /* without verification the bytes are returned as stored */
    t = open_target(dir, false);
    CHECK(ce_read(t, ino, 0, 0, CS, buf, &nr, &m) == 0 && nr == 100 && buf[17] == 'X');
    ce_close(t);

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    printf("test_chunk_engine: ok\n");
    return 0;
}
