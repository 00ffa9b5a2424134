/* chunk_engine.c — chunk data files + per-target LMDB metadata (see
 * chunk_engine.h). */
#include "storage/chunk_engine.h"

#include <errno.h>
#include <fcntl.h>
#include <isa-l/crc.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "proto/proto.h"

#define CE_LOCK_STRIPES 256
#define CE_KEY_LEN 12
#define CE_VAL_LEN 16

struct dirty_key {
    uint64_t ino;
    uint32_t index;
    bool used;
};

/* Chunk versions whose bytes were checked against their CRC since this
 * target was opened: a direct-mapped table of fingerprints of (ino, index,
 * version, crc), so any update makes its entry stale by itself. A partial
 * read of a chunk not in it reads and checks the whole chunk first. */
#define VERIFIED_SLOTS 65536u

struct ce_target {
    uint32_t id;
    bool verify_reads;
    uint64_t *verified;       /* VERIFIED_SLOTS fingerprints, 0 = empty */
    char *path;
    int lock_fd;
    int data_fd; /* the data/ directory, for openat */
    /* The target's file system refused O_DIRECT once (tmpfs): buffered
     * writes only from then on. */
    bool no_direct;
    MDB_env *env;
    MDB_dbi dbi;
    pthread_rwlock_t stripes[CE_LOCK_STRIPES];
    /* chunks written since the last sync: an open-addressing set */
    pthread_mutex_t dirty_mu;
    struct dirty_key *dirty;
    size_t dirty_cap, dirty_n;
    bool dir_dirty[256]; /* data/<xx>/ gained or lost entries */
};

/* ---------------- CRC32C ---------------- */

uint32_t crc32c_extend(uint32_t crc, const void *buf, size_t len)
{
    /* isa-l works on the raw register; the standard CRC inverts it at both
     * ends, so continuing means undoing the final inversion first. */
    return crc32_iscsi((unsigned char *)buf, (int)len, crc ^ 0xFFFFFFFFu) ^ 0xFFFFFFFFu;
}

uint32_t crc32c(const void *buf, size_t len) { return crc32c_extend(0, buf, len); }

/* ---------------- keys, records, paths ---------------- */

static void key_enc(uint8_t k[CE_KEY_LEN], uint64_t ino, uint32_t index)
{
    for (int i = 0; i < 8; i++)
        k[i] = (uint8_t)(ino >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        k[8 + i] = (uint8_t)(index >> (24 - 8 * i));
}

static void key_dec(const uint8_t *k, uint64_t *ino, uint32_t *index)
{
    uint64_t a = 0;
    uint32_t b = 0;
    for (int i = 0; i < 8; i++)
        a = a << 8 | k[i];
    for (int i = 0; i < 4; i++)
        b = b << 8 | k[8 + i];
    *ino = a;
    *index = b;
}

static void val_enc(uint8_t v[CE_VAL_LEN], const struct ce_meta *m)
{
    for (int i = 0; i < 8; i++)
        v[i] = (uint8_t)(m->version >> (8 * i));
    for (int i = 0; i < 4; i++) {
        v[8 + i] = (uint8_t)(m->len >> (8 * i));
        v[12 + i] = (uint8_t)(m->crc32c >> (8 * i));
    }
}

static int val_dec(const MDB_val *v, struct ce_meta *m)
{
    if (v->mv_size != CE_VAL_LEN)
        return -EIO;
    const uint8_t *p = v->mv_data;
    memset(m, 0, sizeof(*m));
    for (int i = 0; i < 8; i++)
        m->version |= (uint64_t)p[i] << (8 * i);
    for (int i = 0; i < 4; i++) {
        m->len |= (uint32_t)p[8 + i] << (8 * i);
        m->crc32c |= (uint32_t)p[12 + i] << (8 * i);
    }
    return 0;
}

static void chunk_relpath(char *out, size_t cap, uint64_t ino, uint32_t index)
{
    snprintf(out, cap, "%02x/%llx.%u", (unsigned)(ino % 256), (unsigned long long)ino, index);
}

static pthread_rwlock_t *stripe_of(struct ce_target *t, uint64_t ino, uint32_t index)
{
    uint64_t h = (ino ^ ((uint64_t)index * 0x9E3779B97F4A7C15ull)) * 0xff51afd7ed558ccdull;
    return &t->stripes[(h >> 32) % CE_LOCK_STRIPES];
}

static int mdb_err(int rc)
{
    /* LMDB returns errnos for system errors and its own codes otherwise */
    if (rc > 0)
        return -rc;
    if (rc == MDB_NOTFOUND)
        return -ENOENT;
    if (rc == MDB_MAP_FULL)
        return -ENOSPC;
    return -EIO;
}

/* ---------------- dirty set ---------------- */

static size_t dirty_slot(size_t cap, uint64_t ino, uint32_t index)
{
    uint64_t h = (ino * 0x9E3779B97F4A7C15ull) ^ index;
    h ^= h >> 29;
    return (size_t)(h * 0xbf58476d1ce4e5b9ull >> 17) & (cap - 1);
}

static void dirty_insert_nolock(struct dirty_key *tab, size_t cap, uint64_t ino, uint32_t index,
                                size_t *n)
{
    size_t i = dirty_slot(cap, ino, index);
    while (tab[i].used) {
        if (tab[i].ino == ino && tab[i].index == index)
            return;
        i = (i + 1) & (cap - 1);
    }
    tab[i] = (struct dirty_key){ ino, index, true };
    (*n)++;
}

static void dirty_add(struct ce_target *t, uint64_t ino, uint32_t index)
{
    pthread_mutex_lock(&t->dirty_mu);
    if ((t->dirty_n + 1) * 2 > t->dirty_cap) {
        size_t ncap = t->dirty_cap ? t->dirty_cap * 2 : 64;
        struct dirty_key *nt = calloc(ncap, sizeof(*nt));
        if (!nt) {
            /* cannot track it: fall back to syncing the file now */
            pthread_mutex_unlock(&t->dirty_mu);
            char rel[64];
            chunk_relpath(rel, sizeof(rel), ino, index);
            int fd = openat(t->data_fd, rel, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                fsync(fd);
                close(fd);
            }
            return;
        }
        size_t n = 0;
        for (size_t i = 0; i < t->dirty_cap; i++)
            if (t->dirty[i].used)
                dirty_insert_nolock(nt, ncap, t->dirty[i].ino, t->dirty[i].index, &n);
        free(t->dirty);
        t->dirty = nt;
        t->dirty_cap = ncap;
        t->dirty_n = n;
    }
    dirty_insert_nolock(t->dirty, t->dirty_cap, ino, index, &t->dirty_n);
    t->dir_dirty[ino % 256] = true;
    pthread_mutex_unlock(&t->dirty_mu);
}

/* ---------------- open / close ---------------- */

static int mkdir_p(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

struct ce_target *ce_open(const struct ce_opts *o, char *err, size_t errlen)
{
    char p[4096];
    int rc;
    struct ce_target *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "target %u: out of memory", o->target_id);
        return NULL;
    }
    t->id = o->target_id;
    t->verify_reads = o->verify_reads;
    t->verified = calloc(VERIFIED_SLOTS, sizeof(uint64_t));
    if (!t->verified) {
        snprintf(err, errlen, "target %u: out of memory", t->id);
        goto fail;
    }
    t->lock_fd = t->data_fd = -1;
    t->path = strdup(o->path);
    pthread_mutex_init(&t->dirty_mu, NULL);
    for (int i = 0; i < CE_LOCK_STRIPES; i++)
        pthread_rwlock_init(&t->stripes[i], NULL);

    if ((rc = mkdir_p(o->path)) < 0) {
        snprintf(err, errlen, "target %u: cannot create %s: %s", t->id, o->path, strerror(-rc));
        goto fail;
    }
    snprintf(p, sizeof(p), "%s/LOCK", o->path);
    t->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (t->lock_fd < 0) {
        snprintf(err, errlen, "target %u: cannot open %s: %s", t->id, p, strerror(errno));
        goto fail;
    }
    if (flock(t->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "target %u: %s is locked by another process: %s", t->id, o->path,
                 strerror(errno));
        goto fail;
    }
    for (int i = 0; i < 256; i++) {
        snprintf(p, sizeof(p), "%s/data/%02x", o->path, i);
        if ((rc = mkdir_p(p)) < 0) {
            snprintf(err, errlen, "target %u: cannot create %s: %s", t->id, p, strerror(-rc));
            goto fail;
        }
    }
    snprintf(p, sizeof(p), "%s/data", o->path);
    t->data_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    snprintf(p, sizeof(p), "%s/meta", o->path);
    if (t->data_fd < 0 || (rc = mkdir_p(p)) < 0) {
        snprintf(err, errlen, "target %u: cannot open %s/data or meta: %s", t->id, o->path,
                 strerror(errno));
        goto fail;
    }
    MDB_txn *txn = NULL;
    if ((rc = mdb_env_create(&t->env)) ||
        (rc = mdb_env_set_mapsize(t->env, o->map_size ? o->map_size : (size_t)1 << 30)) ||
        (rc = mdb_env_set_maxreaders(t->env, 1024)) ||
        (rc = mdb_env_open(t->env, p, MDB_NOSYNC | MDB_NOTLS, 0644)) ||
        (rc = mdb_txn_begin(t->env, NULL, 0, &txn)) || (rc = mdb_dbi_open(txn, NULL, 0, &t->dbi)) ||
        (rc = mdb_txn_commit(txn))) {
        snprintf(err, errlen, "target %u: cannot open LMDB in %s: %s", t->id, p, mdb_strerror(rc));
        goto fail;
    }
    return t;
fail:
    if (t->env)
        mdb_env_close(t->env);
    t->env = NULL;
    ce_close(t);
    return NULL;
}

void ce_close(struct ce_target *t)
{
    if (!t)
        return;
    if (t->env) {
        ce_sync(t);
        mdb_env_close(t->env);
    }
    if (t->data_fd >= 0)
        close(t->data_fd);
    if (t->lock_fd >= 0)
        close(t->lock_fd); /* drops the flock */
    for (int i = 0; i < CE_LOCK_STRIPES; i++)
        pthread_rwlock_destroy(&t->stripes[i]);
    pthread_mutex_destroy(&t->dirty_mu);
    free(t->dirty);
    free(t->verified);
    free(t->path);
    free(t);
}

uint32_t ce_target_id(const struct ce_target *t) { return t->id; }

/* ---------------- metadata ---------------- */

static int meta_get_txn(MDB_txn *txn, MDB_dbi dbi, uint64_t ino, uint32_t index,
                        struct ce_meta *m)
{
    uint8_t k[CE_KEY_LEN];
    key_enc(k, ino, index);
    MDB_val key = { CE_KEY_LEN, k }, val;
    int rc = mdb_get(txn, dbi, &key, &val);
    if (rc)
        return mdb_err(rc);
    return val_dec(&val, m);
}

int ce_get_meta(struct ce_target *t, uint64_t ino, uint32_t index, struct ce_meta *m)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return mdb_err(rc);
    rc = meta_get_txn(txn, t->dbi, ino, index, m);
    mdb_txn_abort(txn);
    return rc;
}

static int meta_put(struct ce_target *t, uint64_t ino, uint32_t index, const struct ce_meta *m)
{
    uint8_t k[CE_KEY_LEN], v[CE_VAL_LEN];
    key_enc(k, ino, index);
    val_enc(v, m);
    MDB_val key = { CE_KEY_LEN, k }, val = { CE_VAL_LEN, v };
    MDB_txn *txn;
    int rc = mdb_txn_begin(t->env, NULL, 0, &txn);
    if (rc)
        return mdb_err(rc);
    if ((rc = mdb_put(txn, t->dbi, &key, &val, 0))) {
        mdb_txn_abort(txn);
        return mdb_err(rc);
    }
    rc = mdb_txn_commit(txn);
    return rc ? mdb_err(rc) : 0;
}

static int meta_del(struct ce_target *t, uint64_t ino, uint32_t index)
{
    uint8_t k[CE_KEY_LEN];
    key_enc(k, ino, index);
    MDB_val key = { CE_KEY_LEN, k };
    MDB_txn *txn;
    int rc = mdb_txn_begin(t->env, NULL, 0, &txn);
    if (rc)
        return mdb_err(rc);
    if ((rc = mdb_del(txn, t->dbi, &key, NULL))) {
        mdb_txn_abort(txn);
        return mdb_err(rc);
    }
    rc = mdb_txn_commit(txn);
    return rc ? mdb_err(rc) : 0;
}

/* ---------------- data ---------------- */

static int open_chunk(struct ce_target *t, uint64_t ino, uint32_t index, int flags)
{
    char rel[64];
    chunk_relpath(rel, sizeof(rel), ino, index);
    int fd = openat(t->data_fd, rel, flags | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

static int pread_full(int fd, void *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0) { /* file shorter than its metadata: zeros past the end */
            memset((char *)buf + done, 0, len - done);
            return 0;
        }
        done += (size_t)r;
    }
    return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        done += (size_t)r;
    }
    return 0;
}

/* CRC of the file's bytes [0, len), read in pieces. */
/* ---------------- per-thread aligned scratch ----------------
 *
 * One reused, page-aligned buffer per thread for O_DIRECT writes and CRC
 * passes. Reusing it matters: a fresh 1 MiB allocation is 256 first-touch
 * page faults, which on a virtual machine cost more than the copy. */

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

struct scratch {
    void *buf;
    size_t cap;
};

static void scratch_destroy(void *p)
{
    struct scratch *s = p;
    free(s->buf);
    free(s);
}

static void scratch_key_init(void) { pthread_key_create(&scratch_key, scratch_destroy); }

static void *scratch_get(size_t n)
{
    pthread_once(&scratch_once, scratch_key_init);
    struct scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s || pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->cap < n) {
        void *b = NULL;
        size_t cap = MAX(n, (size_t)1 << 20);
        if (posix_memalign(&b, 4096, cap) != 0)
            return NULL;
        free(s->buf);
        s->buf = b;
        s->cap = cap;
    }
    return s->buf;
}

/* Write through O_DIRECT when the range is block-aligned: chunk data then
 * goes to the disk without filling the page cache (three replicas on one
 * host would otherwise triple the page-cache footprint of every write).
 * Returns 1 when done, 0 when the caller must write buffered, or -errno. */
static int write_direct(struct ce_target *t, uint64_t ino, uint32_t index, const void *data,
                        uint32_t n, uint32_t offset)
{
    if (__atomic_load_n(&t->no_direct, __ATOMIC_RELAXED) || n == 0 || offset % 4096 ||
        n % 4096)
        return 0;
    void *buf = scratch_get(n);
    if (!buf)
        return 0;
    char rel[64];
    chunk_relpath(rel, sizeof(rel), ino, index);
    int fd = openat(t->data_fd, rel, O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (errno == EINVAL) { /* no O_DIRECT here (tmpfs) */
            __atomic_store_n(&t->no_direct, true, __ATOMIC_RELAXED);
            return 0;
        }
        return -errno;
    }
    memcpy(buf, data, n);
    int rc = pwrite_full(fd, buf, n, offset);
    close(fd);
    if (rc == -EINVAL) {
        __atomic_store_n(&t->no_direct, true, __ATOMIC_RELAXED);
        return 0;
    }
    return rc < 0 ? rc : 1;
}

static int crc_of_file(int fd, uint32_t len, uint32_t *out)
{
    size_t bs = 1u << 20;
    uint8_t *buf = scratch_get(bs);
    if (!buf)
        return -ENOMEM;
    uint32_t crc = 0;
    int rc = 0;
    for (uint32_t off = 0; off < len;) {
        size_t n = MIN(bs, (size_t)(len - off));
        if ((rc = pread_full(fd, buf, n, off)) < 0)
            break;
        crc = crc32c_extend(crc, buf, n);
        off += (uint32_t)n;
    }
    *out = crc;
    return rc;
}

/* pread that, with nowait, gives up (-EAGAIN) instead of waiting for the
 * disk: the whole range must already be in the page cache. */
static int pread_maybe_nowait(int fd, void *buf, size_t len, off_t off, bool nowait)
{
    if (!nowait)
        return pread_full(fd, buf, len, off);
    size_t done = 0;
    while (done < len) {
        struct iovec iov = { (char *)buf + done, len - done };
        ssize_t r = preadv2(fd, &iov, 1, off + (off_t)done, RWF_NOWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno == EOPNOTSUPP ? -EAGAIN : -errno;
        }
        if (r == 0) { /* short file: zeros past the end, as pread_full */
            memset((char *)buf + done, 0, len - done);
            return 0;
        }
        done += (size_t)r;
    }
    return 0;
}

static uint64_t verified_key(uint64_t ino, uint32_t index, const struct ce_meta *m)
{
    uint64_t x = ino * 0x9E3779B97F4A7C15ull ^ ((uint64_t)index << 32 | m->crc32c);
    x ^= m->version * 0xff51afd7ed558ccdull;
    x ^= x >> 31;
    return x | 1;
}

/* The chunk's committed bytes [0, m->len) checked against its CRC, once per
 * version: 0, -VF_E_CHECKSUM, or a read error. */
static int verify_chunk(struct ce_target *t, int fd, uint64_t ino, uint32_t index,
                        const struct ce_meta *m, bool nowait, const void **whole)
{
    *whole = NULL;
    uint64_t key = verified_key(ino, index, m);
    uint64_t *slot = &t->verified[key % VERIFIED_SLOTS];
    if (__atomic_load_n(slot, __ATOMIC_RELAXED) == key)
        return 0;
    void *b = scratch_get(m->len);
    if (!b)
        return -ENOMEM;
    int rc = pread_maybe_nowait(fd, b, m->len, 0, nowait);
    if (rc < 0)
        return rc;
    if (crc32c(b, m->len) != m->crc32c) {
        LOG_ERROR("chunk", "checksum mismatch target=%u ino=%llx index=%u len=%u version=%llu",
                  t->id, (unsigned long long)ino, index, m->len,
                  (unsigned long long)m->version);
        return -VF_E_CHECKSUM;
    }
    __atomic_store_n(slot, key, __ATOMIC_RELAXED);
    *whole = b;
    return 0;
}

int ce_read(struct ce_target *t, uint64_t ino, uint32_t index, uint32_t offset, uint32_t len,
            void *buf, uint32_t *nread, struct ce_meta *m)
{
    return ce_read_ex(t, ino, index, offset, len, buf, nread, m, false);
}

int ce_read_ex(struct ce_target *t, uint64_t ino, uint32_t index, uint32_t offset, uint32_t len,
               void *buf, uint32_t *nread, struct ce_meta *m, bool nowait)
{
    *nread = 0;
    pthread_rwlock_t *lk = stripe_of(t, ino, index);
    pthread_rwlock_rdlock(lk);
    int rc = ce_get_meta(t, ino, index, m);
    if (rc == -ENOENT) {
        memset(m, 0, sizeof(*m));
        rc = 0;
        goto out;
    }
    if (rc < 0 || offset >= m->len)
        goto out;
    uint32_t n = MIN(len, m->len - offset);
    if (n == 0)
        goto out;
    int fd = open_chunk(t, ino, index, O_RDONLY);
    if (fd < 0) {
        rc = fd == -ENOENT ? -EIO : fd; /* metadata without data */
        goto out;
    }
    /* a small read is a random read: no read-ahead around it (each read
     * opens the file afresh, so the kernel cannot learn the pattern) */
    if (n <= 65536)
        posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
    const void *whole = NULL;
    if (t->verify_reads && (rc = verify_chunk(t, fd, ino, index, m, nowait, &whole)) < 0) {
        close(fd);
        goto out;
    }
    if (whole)
        memcpy(buf, (const uint8_t *)whole + offset, n);
    else
        rc = pread_maybe_nowait(fd, buf, n, offset, nowait);
    close(fd);
    if (rc < 0)
        goto out;
    *nread = n;
out:
    pthread_rwlock_unlock(lk);
    return rc;
}

/* data at offset into the open chunk file: O_DIRECT when it is
 * block-aligned and the file system takes it, buffered otherwise. */
static int write_bytes(struct ce_target *t, int fd, uint64_t ino, uint32_t index,
                       const void *data, uint32_t n, uint32_t offset)
{
    int rc = write_direct(t, ino, index, data, n, offset);
    if (rc == 0)
        rc = pwrite_full(fd, data, n, offset);
    return rc < 0 ? rc : 0;
}

/* The bytes are in place: record the new metadata (the truth). */
static int commit_meta(struct ce_target *t, uint64_t ino, uint32_t index,
                       const struct ce_meta *m, struct ce_meta *out)
{
    dirty_add(t, ino, index);
    int rc = meta_put(t, ino, index, m);
    if (rc == 0 && out)
        *out = *m;
    return rc;
}

int ce_write(struct ce_target *t, uint64_t ino, uint32_t index, uint32_t offset,
             const void *data, uint32_t n, uint64_t version, struct ce_meta *out)
{
    if ((uint64_t)offset + n > UINT32_MAX)
        return -EINVAL;
    pthread_rwlock_t *lk = stripe_of(t, ino, index);
    pthread_rwlock_wrlock(lk);
    struct ce_meta old = { 0 }, m;
    int rc = ce_get_meta(t, ino, index, &old);
    if (rc < 0 && rc != -ENOENT)
        goto out;
    int fd = open_chunk(t, ino, index, O_RDWR | O_CREAT);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    /* bytes past the committed length (a cut, or a crash before a metadata
     * update) must not leak into a gap this write opens */
    struct stat st;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > old.len && offset > old.len &&
        ftruncate(fd, old.len) < 0) {
        rc = -errno;
        close(fd);
        goto out;
    }
    if ((rc = write_bytes(t, fd, ino, index, data, n, offset)) < 0) {
        close(fd);
        goto out;
    }
    m.version = version;
    m.len = n ? MAX(old.len, offset + n) : old.len; /* like write(2): 0 bytes never extend */
    if (offset == old.len)
        m.crc32c = crc32c_extend(old.crc32c, data, n); /* append: extend the CRC */
    else
        rc = crc_of_file(fd, m.len, &m.crc32c);
    close(fd);
    if (rc == 0)
        rc = commit_meta(t, ino, index, &m, out);
out:
    pthread_rwlock_unlock(lk);
    return rc;
}

int ce_replace(struct ce_target *t, uint64_t ino, uint32_t index, const void *data, uint32_t n,
               uint64_t version, struct ce_meta *out)
{
    pthread_rwlock_t *lk = stripe_of(t, ino, index);
    pthread_rwlock_wrlock(lk);
    struct ce_meta m = { .version = version, .len = n, .crc32c = crc32c(data, n) };
    int rc;
    int fd = open_chunk(t, ino, index, O_RDWR | O_CREAT);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    rc = write_bytes(t, fd, ino, index, data, n, 0);
    if (rc == 0)
        rc = ftruncate(fd, n) < 0 ? -errno : 0;
    close(fd);
    if (rc == 0)
        rc = commit_meta(t, ino, index, &m, out);
out:
    pthread_rwlock_unlock(lk);
    return rc;
}

int ce_truncate(struct ce_target *t, uint64_t ino, uint32_t index, uint32_t new_len,
                uint64_t version, struct ce_meta *out)
{
    pthread_rwlock_t *lk = stripe_of(t, ino, index);
    pthread_rwlock_wrlock(lk);
    struct ce_meta m;
    int rc = ce_get_meta(t, ino, index, &m);
    if (rc < 0)
        goto out;
    if (new_len < m.len) {
        int fd = open_chunk(t, ino, index, O_RDWR | O_CREAT);
        if (fd < 0) {
            rc = fd;
            goto out;
        }
        if (ftruncate(fd, new_len) < 0)
            rc = -errno;
        else
            rc = crc_of_file(fd, new_len, &m.crc32c);
        close(fd);
        if (rc < 0)
            goto out;
        m.len = new_len;
        dirty_add(t, ino, index);
    }
    m.version = version;
    if ((rc = meta_put(t, ino, index, &m)) == 0 && out)
        *out = m;
out:
    pthread_rwlock_unlock(lk);
    return rc;
}

int ce_remove(struct ce_target *t, uint64_t ino, uint32_t index)
{
    pthread_rwlock_t *lk = stripe_of(t, ino, index);
    pthread_rwlock_wrlock(lk);
    /* metadata first: a crash in between leaves an orphan file, never a
     * record without data */
    int rc = meta_del(t, ino, index);
    if (rc == 0) {
        char rel[64];
        chunk_relpath(rel, sizeof(rel), ino, index);
        if (unlinkat(t->data_fd, rel, 0) < 0 && errno != ENOENT)
            rc = -errno;
        pthread_mutex_lock(&t->dirty_mu);
        t->dir_dirty[ino % 256] = true;
        pthread_mutex_unlock(&t->dirty_mu);
    }
    pthread_rwlock_unlock(lk);
    return rc;
}

int ce_list_ino(struct ce_target *t, uint64_t ino, struct ce_chunk **out, uint32_t *n)
{
    *out = NULL;
    *n = 0;
    struct ce_chunk *arr = NULL;
    uint32_t cnt = 0, cap = 0;
    uint32_t after = 0;
    bool first = true;
    for (;;) {
        struct ce_chunk batch[256];
        uint32_t got;
        bool eof;
        /* the first batch starts at (ino, 0) inclusive (see ce_list) */
        int rc = first ? ce_list(t, 0, 0, ino, 256, batch, &got, &eof)
                       : ce_list(t, ino, after, ino, 256, batch, &got, &eof);
        if (rc < 0) {
            free(arr);
            return rc;
        }
        first = false;
        if (cnt + got > cap) {
            cap = (cnt + got) * 2;
            struct ce_chunk *na = realloc(arr, cap * sizeof(*na));
            if (!na) {
                free(arr);
                return -ENOMEM;
            }
            arr = na;
        }
        if (got)
            memcpy(arr + cnt, batch, got * sizeof(*batch));
        cnt += got;
        if (eof || got == 0)
            break;
        after = batch[got - 1].index;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

int ce_remove_ino(struct ce_target *t, uint64_t ino, uint32_t *removed)
{
    struct ce_chunk *arr;
    uint32_t n;
    int rc = ce_list_ino(t, ino, &arr, &n);
    if (rc < 0)
        return rc;
    uint32_t done = 0;
    for (uint32_t i = 0; i < n; i++) {
        int r = ce_remove(t, ino, arr[i].index);
        if (r == 0)
            done++;
        else if (r != -ENOENT && rc == 0)
            rc = r;
    }
    free(arr);
    if (removed)
        *removed = done;
    return rc;
}

int ce_query_ino(struct ce_target *t, uint64_t ino, struct ce_query *q)
{
    memset(q, 0, sizeof(*q));
    struct ce_chunk *arr;
    uint32_t n;
    int rc = ce_list_ino(t, ino, &arr, &n);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < n; i++) {
        q->bytes += arr[i].meta.len;
        if (q->nchunks == 0 || arr[i].index >= q->last_index) {
            q->last_index = arr[i].index;
            q->last_len = arr[i].meta.len;
        }
        q->nchunks++;
    }
    free(arr);
    return 0;
}

int ce_list(struct ce_target *t, uint64_t after_ino, uint32_t after_index, uint64_t ino,
            uint32_t max, struct ce_chunk *out, uint32_t *n, bool *eof)
{
    *n = 0;
    *eof = false;
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return mdb_err(rc);
    if ((rc = mdb_cursor_open(txn, t->dbi, &cur))) {
        mdb_txn_abort(txn);
        return mdb_err(rc);
    }
    uint8_t k[CE_KEY_LEN];
    bool inclusive = false;
    if (ino && after_ino < ino) { /* jump straight to the file's first key */
        key_enc(k, ino, 0);
        inclusive = true;
    } else {
        key_enc(k, after_ino, after_index);
    }
    MDB_val key = { CE_KEY_LEN, k }, val;
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    /* strictly after: skip an exact match */
    if (rc == 0 && !inclusive && key.mv_size == CE_KEY_LEN &&
        memcmp(key.mv_data, k, CE_KEY_LEN) == 0)
        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    int err = 0;
    while (rc == 0) {
        if (key.mv_size != CE_KEY_LEN) {
            err = -EIO;
            break;
        }
        struct ce_chunk c;
        key_dec(key.mv_data, &c.ino, &c.index);
        if (ino && c.ino != ino) {
            if (c.ino > ino)
                break; /* past the file: eof below */
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
            continue;
        }
        if (*n == max)
            goto done; /* more follow */
        if ((err = val_dec(&val, &c.meta)) < 0)
            break;
        out[(*n)++] = c;
        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    if (!err && (rc == 0 || rc == MDB_NOTFOUND))
        *eof = true;
    else if (!err)
        err = mdb_err(rc);
done:
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return err;
}

int ce_sync(struct ce_target *t)
{
    pthread_mutex_lock(&t->dirty_mu);
    struct dirty_key *tab = t->dirty;
    size_t cap = t->dirty_cap;
    t->dirty = NULL;
    t->dirty_cap = t->dirty_n = 0;
    bool dirs[256];
    memcpy(dirs, t->dir_dirty, sizeof(dirs));
    memset(t->dir_dirty, 0, sizeof(t->dir_dirty));
    pthread_mutex_unlock(&t->dirty_mu);
    int rc = 0;
    for (size_t i = 0; i < cap; i++) {
        if (!tab[i].used)
            continue;
        int fd = open_chunk(t, tab[i].ino, tab[i].index, O_RDONLY);
        if (fd < 0)
            continue; /* removed since: nothing to make durable */
        if (fsync(fd) < 0 && rc == 0)
            rc = -errno;
        close(fd);
    }
    free(tab);
    /* new and removed files need their directory entries durable too */
    for (int d = 0; d < 256; d++) {
        if (!dirs[d])
            continue;
        char rel[8];
        snprintf(rel, sizeof(rel), "%02x", d);
        int fd = openat(t->data_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            if (fsync(fd) < 0 && rc == 0)
                rc = -errno;
            close(fd);
        }
    }
    int mrc = mdb_env_sync(t->env, 1);
    if (mrc && rc == 0)
        rc = mdb_err(mrc);
    return rc;
}

int ce_space_check(struct ce_target *t, uint64_t need)
{
    struct statvfs sv;
    if (need == 0 || fstatvfs(t->data_fd, &sv) < 0)
        return 0; /* cannot tell: let the write find out */
    uint64_t cap = (uint64_t)sv.f_blocks * sv.f_frsize;
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    uint64_t reserve = MIN(cap / 100, 64ull << 20);
    return avail >= need + reserve ? 0 : -ENOSPC;
}

int ce_statfs(struct ce_target *t, uint64_t *capacity, uint64_t *used)
{
    struct statvfs sv;
    if (fstatvfs(t->data_fd, &sv) < 0)
        return -errno;
    *capacity = (uint64_t)sv.f_blocks * sv.f_frsize;
    *used = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
    return 0;
}
