/* test_meta.c — the meta core over a temporary LMDB store with fake chunk
 * operations: every method, its errors, permissions for non-root users,
 * rename corner cases, paging readdir, sessions and the orphan collector,
 * and concurrent conflicting operations.
 *
 * `test_meta --bench N` instead times N create/stat/unlink with both
 * kv_sync settings. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "kv/kv.h"
#include "meta/meta_core.h"

#include "common/test_check.h"
#define CHECK_RC(expr, want)                                                          \
    do {                                                                              \
        int rc_ = (expr);                                                             \
        if (rc_ != (want)) {                                                          \
            fprintf(stderr, "%s:%d: %s = %d (%s), want %d (%s)\n", __FILE__, __LINE__, \
                    #expr, rc_, strerror(-rc_), (want), strerror(-(want)));           \
            failures++;                                                               \
        }                                                                             \
    } while (0)

/* ---------------- fake chunk operations ---------------- */

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static int trunc_calls, remove_calls, remove_fail;
static uint64_t last_trunc_len, last_trunc_ino, last_removed_ino, fake_len;

static int fake_truncate(void *arg, const struct meta_inode *ino, uint64_t len)
{
    (void)arg;
    pthread_mutex_lock(&fake_lock);
    trunc_calls++;
    last_trunc_len = len;
    last_trunc_ino = ino->ino;
    pthread_mutex_unlock(&fake_lock);
    return 0;
}

static int fake_remove(void *arg, const struct meta_inode *ino)
{
    (void)arg;
    pthread_mutex_lock(&fake_lock);
    int rc = 0;
    if (remove_fail) {
        remove_fail--;
        rc = -EIO;
    } else {
        remove_calls++;
        last_removed_ino = ino->ino;
    }
    pthread_mutex_unlock(&fake_lock);
    return rc;
}

static int fake_query(void *arg, const struct meta_inode *ino, uint64_t *len)
{
    (void)arg;
    (void)ino;
    pthread_mutex_lock(&fake_lock);
    *len = fake_len;
    pthread_mutex_unlock(&fake_lock);
    return 0;
}

static int fake_alloc(void *arg, uint32_t chunk_size, uint32_t stripe, struct meta_layout *out)
{
    (void)arg;
    memset(out, 0, sizeof(*out));
    out->chunk_size = chunk_size;
    out->table_id = 1;
    out->nchains = stripe > 3 ? 3 : stripe; /* a table of 3 chains caps the stripe */
    for (uint32_t i = 0; i < out->nchains; i++)
        out->chains[i] = 100 + i;
    return 0;
}

static struct meta_chunk_ops fake_ops = { fake_truncate, fake_remove, fake_query, fake_alloc, NULL };

/* ---------------- helpers ---------------- */

static struct meta_core *mc;
static struct kv_db *db;
static const struct vf_user root_u = { 0, 0, 0, { 0 } };
static const struct vf_user alice = { 1000, 1000, 1, { 50 } };
static const struct vf_user bob = { 1001, 1001, 0, { 0 } };

static int exec(uint16_t m, struct meta_req *req, struct meta_resp *resp)
{
    struct wbuf out;
    wb_init(&out, 0);
    struct meta_resp r;
    int rc = meta_exec(mc, m, req, &r, &out);
    if (resp)
        *resp = r;
    if (resp)
        resp->data = NULL; /* out is freed below; callers use exec_data */
    wb_free(&out);
    return rc;
}

static void req_init(struct meta_req *r, const struct vf_user *u)
{
    memset(r, 0, sizeof(*r));
    r->user = *u;
}

static int lookup(const struct vf_user *u, uint64_t parent, const char *name, struct meta_inode *out)
{
    struct meta_req r;
    struct meta_resp resp;
    req_init(&r, u);
    r.parent = parent;
    snprintf(r.name, sizeof(r.name), "%s", name);
    int rc = exec(META_LOOKUP, &r, &resp);
    if (rc == 0 && out)
        *out = resp.inode;
    return rc;
}

static int getattr(uint64_t ino, struct meta_inode *out)
{
    struct meta_req r;
    struct meta_resp resp;
    req_init(&r, &root_u);
    r.ino = ino;
    int rc = exec(META_GETATTR, &r, &resp);
    if (rc == 0 && out)
        *out = resp.inode;
    return rc;
}

static int create(const struct vf_user *u, uint64_t parent, const char *name, uint32_t mode,
                  uint32_t flags, uint64_t *ino, uint64_t *sid)
{
    struct meta_req r;
    struct meta_resp resp;
    req_init(&r, u);
    r.parent = parent;
    snprintf(r.name, sizeof(r.name), "%s", name);
    r.mode = mode;
    r.flags = flags;
    int rc = exec(META_CREATE, &r, &resp);
    if (rc == 0) {
        if (ino)
            *ino = resp.inode.ino;
        if (sid)
            *sid = resp.session;
    }
    return rc;
}

static int mkdir_(const struct vf_user *u, uint64_t parent, const char *name, uint32_t mode,
                  uint64_t *ino)
{
    struct meta_req r;
    struct meta_resp resp;
    req_init(&r, u);
    r.parent = parent;
    snprintf(r.name, sizeof(r.name), "%s", name);
    r.mode = mode;
    int rc = exec(META_MKDIR, &r, &resp);
    if (rc == 0 && ino)
        *ino = resp.inode.ino;
    return rc;
}

static int name_op(uint16_t m, const struct vf_user *u, uint64_t parent, const char *name)
{
    struct meta_req r;
    req_init(&r, u);
    r.parent = parent;
    snprintf(r.name, sizeof(r.name), "%s", name);
    return exec(m, &r, NULL);
}
#define unlink_(u, p, n) name_op(META_UNLINK, u, p, n)
#define rmdir_(u, p, n) name_op(META_RMDIR, u, p, n)

static int rename_(const struct vf_user *u, uint64_t p, const char *n, uint64_t np,
                   const char *nn, uint32_t flags)
{
    struct meta_req r;
    req_init(&r, u);
    r.parent = p;
    r.newparent = np;
    snprintf(r.name, sizeof(r.name), "%s", n);
    snprintf(r.newname, sizeof(r.newname), "%s", nn);
    r.flags = flags;
    return exec(META_RENAME, &r, NULL);
}

static int close_(uint64_t ino, uint64_t sid, uint64_t hint, uint32_t flags, uint16_t m,
                  struct meta_inode *out)
{
    struct meta_req r;
    struct meta_resp resp;
    req_init(&r, &root_u);
    r.ino = ino;
    r.session = sid;
    r.length_hint = hint;
    r.flags = flags;
    int rc = exec(m, &r, &resp);
    if (rc == 0 && out)
        *out = resp.inode;
    return rc;
}

static int setattr(const struct vf_user *u, uint64_t ino, struct meta_req *r,
                   struct meta_inode *out)
{
    struct meta_resp resp;
    r->user = *u;
    r->ino = ino;
    int rc = exec(META_SETATTR, r, &resp);
    if (rc == 0 && out)
        *out = resp.inode;
    return rc;
}

/* ---------------- tests ---------------- */

static void test_root(void)
{
    struct meta_inode i;
    CHECK_RC(getattr(1, &i), 0);
    CHECK(S_ISDIR(i.mode) && (i.mode & 07777) == 0755 && i.uid == 0 && i.gid == 0);
    CHECK(i.parent == 1 && i.nlink >= 2);
    CHECK_RC(lookup(&root_u, 1, "..", &i), 0);
    CHECK(i.ino == 1);
    CHECK_RC(getattr(12345, NULL), -ENOENT);
}

static void test_create(void)
{
    uint64_t ino, ino2, sid, sid2;
    struct meta_inode i, root_before, root_after;
    CHECK_RC(getattr(1, &root_before), 0);
    struct timespec ts = { 0, 2000000 };
    nanosleep(&ts, NULL);
    CHECK_RC(create(&root_u, 1, "f1", 0644, O_CREAT | O_EXCL | O_RDWR, &ino, &sid), 0);
    CHECK(ino > 1 && sid != 0);
    CHECK_RC(getattr(1, &root_after), 0);
    CHECK(root_after.mtime_ns > root_before.mtime_ns && root_after.ctime_ns > root_before.ctime_ns);
    CHECK_RC(lookup(&root_u, 1, "f1", &i), 0);
    CHECK(i.ino == ino && S_ISREG(i.mode) && (i.mode & 0777) == 0644 && i.nlink == 1 && i.size == 0);
    CHECK(i.layout.chunk_size == META_DEFAULT_CHUNK && i.layout.nchains == 3 &&
          i.layout.chains[0] == 100 && i.layout.table_id == 1);
    CHECK_RC(create(&root_u, 1, "f1", 0644, O_CREAT | O_EXCL | O_RDWR, NULL, NULL), -EEXIST);
    /* existing without O_EXCL opens the same inode with a new session */
    CHECK_RC(create(&root_u, 1, "f1", 0644, O_CREAT | O_RDWR, &ino2, &sid2), 0);
    CHECK(ino2 == ino && sid2 != sid);
    /* grow it, then O_TRUNC through create truncates the chunks */
    CHECK_RC(close_(ino, sid, 4096, META_F_WROTE, META_CLOSE, &i), 0);
    CHECK(i.size == 4096);
    int before = trunc_calls;
    CHECK_RC(create(&root_u, 1, "f1", 0644, O_CREAT | O_TRUNC | O_WRONLY, NULL, &sid), 0);
    CHECK(trunc_calls == before + 1 && last_trunc_len == 0 && last_trunc_ino == ino);
    CHECK_RC(getattr(ino, &i), 0);
    CHECK(i.size == 0);
    CHECK_RC(close_(ino, sid, 0, 0, META_CLOSE, NULL), 0);
    CHECK_RC(close_(ino, sid2, 0, 0, META_CLOSE, NULL), 0);
    /* umask and layout hints */
    struct meta_req r;
    struct meta_resp resp;
    req_init(&r, &root_u);
    r.parent = 1;
    strcpy(r.name, "f2");
    r.mode = 0666;
    r.umask = 022;
    r.flags = O_CREAT | O_EXCL;
    r.chunk_size = 128 << 10;
    r.stripe = 2;
    CHECK_RC(exec(META_CREATE, &r, &resp), 0);
    CHECK((resp.inode.mode & 0777) == 0644 && resp.inode.layout.chunk_size == (128u << 10) &&
          resp.inode.layout.nchains == 2);
    CHECK_RC(close_(resp.inode.ino, resp.session, 0, 0, META_CLOSE, NULL), 0);
    /* create in a non-directory, lookup errors */
    CHECK_RC(create(&root_u, ino, "x", 0644, O_CREAT, NULL, NULL), -ENOTDIR);
    CHECK_RC(lookup(&root_u, ino, "x", NULL), -ENOTDIR);
    CHECK_RC(lookup(&root_u, 1, "nope", NULL), -ENOENT);
    CHECK_RC(create(&root_u, 1, "..", 0644, O_CREAT | O_EXCL, NULL, NULL), -EEXIST);
    CHECK_RC(unlink_(&root_u, 1, "f1"), 0);
    CHECK_RC(unlink_(&root_u, 1, "f2"), 0);
    CHECK_RC(unlink_(&root_u, 1, "f2"), -ENOENT);
    CHECK_RC(lookup(&root_u, 1, "f1", NULL), -ENOENT);
}

static void test_dirs_links(void)
{
    uint64_t d, sub, f;
    struct meta_inode i, root0, root1;
    CHECK_RC(getattr(1, &root0), 0);
    CHECK_RC(mkdir_(&root_u, 1, "d", 0755, &d), 0);
    CHECK_RC(getattr(d, &i), 0);
    CHECK(S_ISDIR(i.mode) && i.nlink == 2 && i.parent == 1);
    CHECK_RC(getattr(1, &root1), 0);
    CHECK(root1.nlink == root0.nlink + 1);
    CHECK_RC(mkdir_(&root_u, 1, "d", 0755, NULL), -EEXIST);
    CHECK_RC(mkdir_(&root_u, d, "sub", 0700, &sub), 0);
    CHECK_RC(lookup(&root_u, sub, "..", &i), 0);
    CHECK(i.ino == d && i.nlink == 3);
    CHECK_RC(rmdir_(&root_u, 1, "d"), -ENOTEMPTY);
    CHECK_RC(rmdir_(&root_u, d, "."), -EINVAL);
    CHECK_RC(rmdir_(&root_u, d, ".."), -ENOTEMPTY);
    CHECK_RC(unlink_(&root_u, d, "sub"), -EISDIR);
    CHECK_RC(create(&root_u, d, "file", 0644, O_CREAT | O_EXCL, &f, NULL), 0);
    CHECK_RC(rmdir_(&root_u, d, "file"), -ENOTDIR);
    /* hard links */
    struct meta_req r;
    struct meta_resp resp;
    req_init(&r, &root_u);
    r.ino = f;
    r.newparent = 1;
    strcpy(r.newname, "hard");
    CHECK_RC(exec(META_LINK, &r, &resp), 0);
    CHECK(resp.inode.ino == f && resp.inode.nlink == 2);
    CHECK_RC(exec(META_LINK, &r, NULL), -EEXIST);
    r.ino = sub;
    strcpy(r.newname, "dirlink");
    CHECK_RC(exec(META_LINK, &r, NULL), -EPERM);
    CHECK_RC(unlink_(&root_u, d, "file"), 0);
    CHECK_RC(getattr(f, &i), 0);
    CHECK(i.nlink == 1);
    CHECK_RC(lookup(&root_u, 1, "hard", &i), 0);
    CHECK(i.ino == f);
    CHECK_RC(unlink_(&root_u, 1, "hard"), 0);
    CHECK_RC(rmdir_(&root_u, d, "sub"), 0);
    CHECK_RC(getattr(sub, NULL), -ENOENT);
    CHECK_RC(getattr(d, &i), 0);
    CHECK(i.nlink == 2);
    CHECK_RC(rmdir_(&root_u, 1, "d"), 0);
    CHECK_RC(getattr(1, &root1), 0);
    CHECK(root1.nlink == root0.nlink);
    /* symlinks */
    req_init(&r, &root_u);
    r.parent = 1;
    strcpy(r.name, "sl");
    r.data = "some/target";
    r.data_len = 11;
    CHECK_RC(exec(META_SYMLINK, &r, &resp), 0);
    CHECK(S_ISLNK(resp.inode.mode) && resp.inode.size == 11);
    uint64_t sl = resp.inode.ino;
    struct wbuf out;
    wb_init(&out, 0);
    req_init(&r, &root_u);
    r.ino = sl;
    CHECK_RC(meta_exec(mc, META_READLINK, &r, &resp, &out), 0);
    CHECK(resp.data_len == 11 && !memcmp(resp.data, "some/target", 11));
    wb_free(&out);
    CHECK_RC(exec(META_OPEN, &r, NULL), -ELOOP);
    r.ino = 1;
    CHECK_RC(exec(META_READLINK, &r, NULL), -EINVAL);
    CHECK_RC(unlink_(&root_u, 1, "sl"), 0);
    CHECK_RC(getattr(sl, NULL), -ENOENT);
    /* mknod */
    req_init(&r, &root_u);
    r.parent = 1;
    strcpy(r.name, "fifo");
    r.mode = S_IFIFO | 0600;
    CHECK_RC(exec(META_MKNOD, &r, &resp), 0);
    CHECK(S_ISFIFO(resp.inode.mode));
    r.user = alice;
    strcpy(r.name, "chr");
    r.mode = S_IFCHR | 0600;
    CHECK_RC(exec(META_MKNOD, &r, NULL), -EPERM);
    r.user = root_u;
    r.rdev = 0x0501;
    CHECK_RC(exec(META_MKNOD, &r, &resp), 0);
    CHECK(S_ISCHR(resp.inode.mode) && resp.inode.rdev == 0x0501);
    CHECK_RC(unlink_(&root_u, 1, "fifo"), 0);
    CHECK_RC(unlink_(&root_u, 1, "chr"), 0);
}

static void test_setattr(void)
{
    uint64_t pub, f, sid;
    struct meta_inode i;
    struct meta_req r;
    CHECK_RC(mkdir_(&root_u, 1, "pub", 0777, &pub), 0);
    CHECK_RC(create(&alice, pub, "af", 04755, O_CREAT | O_EXCL | O_RDWR, &f, &sid), 0);
    CHECK_RC(getattr(f, &i), 0);
    CHECK(i.uid == 1000 && i.gid == 1000 && (i.mode & 07777) == 04755);
    /* chmod: owner yes, others no */
    req_init(&r, &bob);
    r.valid = FATTR_MODE;
    r.mode = 0777;
    CHECK_RC(setattr(&bob, f, &r, NULL), -EPERM);
    r.mode = 04750;
    CHECK_RC(setattr(&alice, f, &r, &i), 0);
    CHECK((i.mode & 07777) == 04750 && S_ISREG(i.mode));
    /* chown: only root; owner may chgrp to one of its groups */
    req_init(&r, &alice);
    r.valid = FATTR_UID;
    r.uid = 1001;
    CHECK_RC(setattr(&alice, f, &r, NULL), -EPERM);
    r.valid = FATTR_GID;
    r.gid = 77;
    CHECK_RC(setattr(&alice, f, &r, NULL), -EPERM);
    r.gid = 50; /* supplementary group */
    CHECK_RC(setattr(&alice, f, &r, &i), 0);
    CHECK(i.gid == 50 && !(i.mode & S_ISUID)); /* chown clears setuid */
    req_init(&r, &root_u);
    r.valid = FATTR_UID | FATTR_GID;
    r.uid = 1001;
    r.gid = 1001;
    CHECK_RC(setattr(&root_u, f, &r, &i), 0);
    CHECK(i.uid == 1001 && i.gid == 1001);
    /* size: smaller truncates the chunks first; larger does not */
    CHECK_RC(close_(f, sid, 10000, META_F_WROTE, META_SYNC, &i), 0);
    CHECK(i.size == 10000);
    int before = trunc_calls;
    req_init(&r, &root_u);
    r.valid = FATTR_SIZE;
    r.size = 100;
    CHECK_RC(setattr(&root_u, f, &r, &i), 0);
    CHECK(i.size == 100 && trunc_calls == before + 1 && last_trunc_len == 100 && last_trunc_ino == f);
    r.size = 1 << 20;
    CHECK_RC(setattr(&root_u, f, &r, &i), 0);
    CHECK(i.size == (1u << 20) && trunc_calls == before + 1);
    CHECK_RC(setattr(&root_u, pub, &r, NULL), -EISDIR);
    /* size by a user without write permission (0750, bob is owner now: use alice) */
    CHECK_RC(setattr(&alice, f, &r, NULL), -EACCES);
    /* times: explicit only by owner; NOW also with write permission */
    req_init(&r, &alice);
    r.valid = FATTR_MTIME;
    r.mtime_ns = 12345;
    CHECK_RC(setattr(&alice, f, &r, NULL), -EPERM);
    r.valid = FATTR_MTIME | FATTR_MTIME_NOW;
    CHECK_RC(setattr(&alice, f, &r, NULL), -EACCES);
    r.valid = FATTR_MTIME | FATTR_ATIME;
    r.atime_ns = 999;
    CHECK_RC(setattr(&bob, f, &r, &i), 0);
    CHECK(i.mtime_ns == 12345 && i.atime_ns == 999 && i.ctime_ns > 12345);
    /* a non-member chmod g+s loses the setgid bit */
    req_init(&r, &bob);
    r.valid = FATTR_GID;
    r.gid = 0;
    CHECK_RC(setattr(&root_u, f, &r, NULL), 0);
    r.valid = FATTR_MODE;
    r.mode = 02755;
    CHECK_RC(setattr(&bob, f, &r, &i), 0);
    CHECK((i.mode & 07777) == 0755);
    CHECK_RC(close_(f, sid, 0, 0, META_CLOSE, NULL), 0);
    /* an unprivileged O_TRUNC drops setuid/setgid (group exec set) */
    req_init(&r, &root_u);
    r.valid = FATTR_MODE;
    r.mode = 06775;
    CHECK_RC(setattr(&root_u, f, &r, NULL), 0);
    req_init(&r, &bob);
    r.ino = f;
    r.flags = O_WRONLY | O_TRUNC;
    struct meta_resp resp;
    CHECK_RC(exec(META_OPEN, &r, &resp), 0);
    CHECK((resp.inode.mode & 07777) == 0775 && resp.inode.size == 0);
    CHECK_RC(close_(f, resp.session, 0, 0, META_CLOSE, NULL), 0);
    CHECK_RC(unlink_(&root_u, pub, "af"), 0);
    CHECK_RC(rmdir_(&root_u, 1, "pub"), 0);
}

static void test_permissions(void)
{
    uint64_t priv, pub, f, sid, tmp;
    struct meta_req r;
    struct meta_inode i;
    /* alice cannot create in root-owned 0755 */
    CHECK_RC(create(&alice, 1, "x", 0644, O_CREAT | O_EXCL, NULL, NULL), -EACCES);
    CHECK_RC(mkdir_(&alice, 1, "x", 0755, NULL), -EACCES);
    CHECK_RC(mkdir_(&root_u, 1, "priv", 0700, &priv), 0);
    CHECK_RC(create(&root_u, priv, "secret", 0644, O_CREAT | O_EXCL, &f, &sid), 0);
    CHECK_RC(close_(f, sid, 0, 0, META_CLOSE, NULL), 0);
    CHECK_RC(lookup(&alice, priv, "secret", NULL), -EACCES);
    CHECK_RC(lookup(&root_u, priv, "secret", NULL), 0);
    /* read-only file: write open refused, read open fine */
    CHECK_RC(mkdir_(&root_u, 1, "pub2", 0755, &pub), 0);
    CHECK_RC(create(&root_u, pub, "ro", 0444, O_CREAT | O_EXCL, &f, &sid), 0);
    CHECK_RC(close_(f, sid, 0, 0, META_CLOSE, NULL), 0);
    req_init(&r, &alice);
    r.ino = f;
    r.flags = O_WRONLY;
    CHECK_RC(exec(META_OPEN, &r, NULL), -EACCES);
    r.flags = O_RDONLY | O_TRUNC;
    CHECK_RC(exec(META_OPEN, &r, NULL), -EACCES);
    r.flags = O_RDONLY;
    struct meta_resp resp;
    CHECK_RC(exec(META_OPEN, &r, &resp), 0);
    CHECK(resp.session != 0);
    CHECK_RC(close_(f, resp.session, 0, 0, META_CLOSE, NULL), 0);
    /* root writes anything */
    r.user = root_u;
    r.flags = O_RDWR;
    CHECK_RC(exec(META_OPEN, &r, &resp), 0);
    CHECK_RC(close_(f, resp.session, 0, 0, META_CLOSE, NULL), 0);
    r.ino = pub;
    CHECK_RC(exec(META_OPEN, &r, NULL), -EISDIR);
    /* access(): group via supplementary groups */
    req_init(&r, &root_u);
    r.valid = FATTR_GID | FATTR_MODE;
    r.gid = 50;
    r.mode = 0060;
    CHECK_RC(setattr(&root_u, f, &r, NULL), 0);
    req_init(&r, &alice);
    r.ino = f;
    r.mode = R_OK | W_OK;
    CHECK_RC(exec(META_ACCESS, &r, NULL), 0);
    r.mode = X_OK;
    CHECK_RC(exec(META_ACCESS, &r, NULL), -EACCES);
    r.user = root_u; /* root executes only when some x bit is set */
    CHECK_RC(exec(META_ACCESS, &r, NULL), -EACCES);
    r.user = bob;
    r.mode = R_OK;
    CHECK_RC(exec(META_ACCESS, &r, NULL), -EACCES);
    r.mode = F_OK;
    CHECK_RC(exec(META_ACCESS, &r, NULL), 0);
    /* unlink needs write on the parent */
    CHECK_RC(unlink_(&alice, pub, "ro"), -EACCES);
    CHECK_RC(unlink_(&root_u, pub, "ro"), 0);
    /* sticky directory */
    CHECK_RC(mkdir_(&root_u, 1, "tmp", 01777, &tmp), 0);
    CHECK_RC(getattr(tmp, &i), 0);
    CHECK((i.mode & 07777) == 01777);
    CHECK_RC(create(&alice, tmp, "a", 0666, O_CREAT | O_EXCL, &f, &sid), 0);
    CHECK_RC(close_(f, sid, 0, 0, META_CLOSE, NULL), 0);
    CHECK_RC(create(&bob, tmp, "b", 0666, O_CREAT | O_EXCL, &f, &sid), 0);
    CHECK_RC(close_(f, sid, 0, 0, META_CLOSE, NULL), 0);
    CHECK_RC(unlink_(&bob, tmp, "a"), -EPERM);
    CHECK_RC(rename_(&bob, tmp, "a", tmp, "c", 0), -EPERM);
    CHECK_RC(rename_(&bob, tmp, "b", tmp, "a", 0), -EPERM); /* would replace alice's */
    CHECK_RC(rename_(&alice, tmp, "a", tmp, "a2", 0), 0);
    CHECK_RC(unlink_(&bob, tmp, "b"), 0);
    CHECK_RC(unlink_(&root_u, tmp, "a2"), 0);
    CHECK_RC(rmdir_(&root_u, 1, "tmp"), 0);
    /* setgid directory: group inherited, subdirectories inherit the bit */
    uint64_t sg, sgsub;
    CHECK_RC(mkdir_(&root_u, 1, "sg", 0777, &sg), 0);
    req_init(&r, &root_u);
    r.valid = FATTR_MODE | FATTR_GID;
    r.mode = 02777;
    r.gid = 4242;
    CHECK_RC(setattr(&root_u, sg, &r, NULL), 0);
    CHECK_RC(create(&alice, sg, "f", 0644, O_CREAT | O_EXCL, &f, &sid), 0);
    CHECK_RC(getattr(f, &i), 0);
    CHECK(i.gid == 4242 && i.uid == 1000);
    CHECK_RC(close_(f, sid, 0, 0, META_CLOSE, NULL), 0);
    CHECK_RC(mkdir_(&alice, sg, "d", 0755, &sgsub), 0);
    CHECK_RC(getattr(sgsub, &i), 0);
    CHECK(i.gid == 4242 && (i.mode & S_ISGID));
    CHECK_RC(rmdir_(&alice, sg, "d"), 0);
    CHECK_RC(unlink_(&alice, sg, "f"), 0);
    CHECK_RC(rmdir_(&root_u, 1, "sg"), 0);
    CHECK_RC(unlink_(&root_u, priv, "secret"), 0);
    CHECK_RC(rmdir_(&root_u, 1, "priv"), 0);
    CHECK_RC(rmdir_(&root_u, 1, "pub2"), 0);
}

static void test_rename(void)
{
    uint64_t a, b, ab, f, g, sid;
    struct meta_inode i, ri0, ri1;
    CHECK(meta_gc_run_once(mc) >= 0); /* drain orphans of earlier tests */
    CHECK_RC(meta_gc_run_once(mc), 0);
    CHECK_RC(getattr(1, &ri0), 0);
    CHECK_RC(mkdir_(&root_u, 1, "ra", 0755, &a), 0);
    CHECK_RC(mkdir_(&root_u, 1, "rb", 0755, &b), 0);
    CHECK_RC(mkdir_(&root_u, a, "ab", 0755, &ab), 0);
    CHECK_RC(create(&root_u, a, "f", 0644, O_CREAT | O_EXCL, &f, &sid), 0);
    CHECK_RC(close_(f, sid, 0, 0, META_CLOSE, NULL), 0);
    CHECK_RC(create(&root_u, b, "g", 0644, O_CREAT | O_EXCL, &g, &sid), 0);
    CHECK_RC(close_(g, sid, 100, META_F_WROTE, META_CLOSE, NULL), 0); /* g has data */
    /* simple move across directories */
    CHECK_RC(rename_(&root_u, a, "f", b, "f2", 0), 0);
    CHECK_RC(lookup(&root_u, a, "f", NULL), -ENOENT);
    CHECK_RC(lookup(&root_u, b, "f2", &i), 0);
    CHECK(i.ino == f);
    CHECK_RC(rename_(&root_u, a, "missing", b, "x", 0), -ENOENT);
    /* NOREPLACE / overwrite a file (the old one becomes an orphan) */
    CHECK_RC(rename_(&root_u, b, "f2", b, "g", RENAME_NOREPLACE), -EEXIST);
    CHECK_RC(rename_(&root_u, b, "f2", b, "g", RENAME_NOREPLACE | RENAME_EXCHANGE), -EINVAL);
    CHECK_RC(rename_(&root_u, b, "f2", b, "g", 0), 0);
    CHECK_RC(getattr(g, &i), 0);
    CHECK(i.nlink == 0);
    int removed_before = remove_calls;
    CHECK_RC(meta_gc_run_once(mc), 1);
    CHECK(remove_calls == removed_before + 1 && last_removed_ino == g);
    CHECK_RC(getattr(g, NULL), -ENOENT);
    CHECK_RC(lookup(&root_u, b, "g", &i), 0);
    CHECK(i.ino == f);
    /* type mismatches and non-empty target */
    CHECK_RC(rename_(&root_u, 1, "ra", b, "g", 0), -ENOTDIR);
    CHECK_RC(rename_(&root_u, b, "g", 1, "ra", 0), -EISDIR);
    CHECK_RC(rename_(&root_u, 1, "rb", 1, "ra", 0), -ENOTEMPTY);
    /* a directory into its own subtree, or into itself */
    CHECK_RC(rename_(&root_u, 1, "ra", ab, "x", 0), -EINVAL);
    CHECK_RC(rename_(&root_u, 1, "ra", a, "x", 0), -EINVAL);
    CHECK_RC(rename_(&root_u, 1, ".", b, "x", 0), -EBUSY);
    /* exchange a directory and a file across parents */
    CHECK_RC(rename_(&root_u, a, "ab", b, "g", RENAME_EXCHANGE), 0);
    CHECK_RC(lookup(&root_u, a, "ab", &i), 0);
    CHECK(i.ino == f);
    CHECK_RC(lookup(&root_u, b, "g", &i), 0);
    CHECK(i.ino == ab && i.parent == b);
    CHECK_RC(getattr(a, &i), 0);
    CHECK(i.nlink == 2);
    CHECK_RC(getattr(b, &i), 0);
    CHECK(i.nlink == 3);
    CHECK_RC(rename_(&root_u, a, "ab", b, "nothere", RENAME_EXCHANGE), -ENOENT);
    /* exchange that would put a directory under itself */
    CHECK_RC(rename_(&root_u, 1, "rb", b, "g", RENAME_EXCHANGE), -EINVAL);
    /* overwrite an empty directory; parent nlink follows */
    uint64_t e;
    CHECK_RC(mkdir_(&root_u, a, "empty", 0755, &e), 0);
    CHECK_RC(rename_(&root_u, b, "g", a, "empty", 0), 0);
    CHECK_RC(getattr(e, NULL), -ENOENT);
    CHECK_RC(lookup(&root_u, a, "empty", &i), 0);
    CHECK(i.ino == ab && i.parent == a);
    CHECK_RC(getattr(a, &i), 0);
    CHECK(i.nlink == 3);
    CHECK_RC(getattr(b, &i), 0);
    CHECK(i.nlink == 2);
    /* same inode under two names: nothing happens */
    struct meta_req r;
    req_init(&r, &root_u);
    r.ino = f;
    r.newparent = a;
    strcpy(r.newname, "f-link");
    CHECK_RC(exec(META_LINK, &r, NULL), 0);
    CHECK_RC(rename_(&root_u, a, "ab", a, "f-link", 0), 0);
    CHECK_RC(lookup(&root_u, a, "ab", NULL), 0);
    CHECK_RC(lookup(&root_u, a, "f-link", NULL), 0);
    /* cleanup */
    CHECK_RC(unlink_(&root_u, a, "ab"), 0);
    CHECK_RC(unlink_(&root_u, a, "f-link"), 0);
    CHECK_RC(rmdir_(&root_u, a, "empty"), 0);
    CHECK_RC(rmdir_(&root_u, 1, "ra"), 0);
    CHECK_RC(rmdir_(&root_u, 1, "rb"), 0);
    CHECK_RC(getattr(1, &ri1), 0);
    CHECK(ri1.nlink == ri0.nlink);
    CHECK(meta_gc_run_once(mc) >= 1);
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_readdir(void)
{
    /* 10000 entries; fewer on a networked engine (VALORFS_TEST_META_READDIR_N). */
    const char *nenv = getenv("VALORFS_TEST_META_READDIR_N");
    const int N = nenv && atoi(nenv) > 0 ? atoi(nenv) : 10000;
    uint64_t d;
    CHECK_RC(mkdir_(&root_u, 1, "big", 0755, &d), 0);
    char **names = calloc(N, sizeof(*names));
    for (int n = 0; n < N; n++) {
        char nm[32];
        snprintf(nm, sizeof(nm), "e%05d-%x", (n * 7919) % N, n);
        names[n] = strdup(nm);
        struct meta_req r;
        req_init(&r, &root_u);
        r.parent = d;
        strcpy(r.name, nm);
        r.mode = (n % 10 == 0) ? (S_IFDIR | 0755) : (S_IFIFO | 0644);
        CHECK_RC(exec(n % 10 == 0 ? META_MKDIR : META_MKNOD, &r, NULL), 0);
    }
    qsort(names, N, sizeof(*names), name_cmp);
    int seen = 0, pages = 0;
    char after[VF_MAX_NAME + 1] = "";
    bool eof = false, order_ok = true, plus_ok = true;
    while (!eof && pages < 1000) {
        struct meta_req r;
        struct meta_resp resp;
        req_init(&r, &root_u);
        r.ino = d;
        r.max_entries = 333;
        r.flags = (pages % 2) ? META_F_PLUS : 0;
        strcpy(r.name, after);
        struct wbuf out;
        wb_init(&out, 0);
        int rc = meta_exec(mc, META_READDIR, &r, &resp, &out);
        CHECK_RC(rc, 0);
        if (rc)
            break;
        struct rbuf rb;
        rb_init(&rb, resp.data, resp.data_len);
        int in_page = 0;
        while (rb.left > 0) {
            struct meta_dirent de;
            if (meta_dirent_next(&rb, &de) < 0) {
                CHECK(!"bad dirent encoding");
                break;
            }
            if (seen >= N || strcmp(de.name, names[seen]) != 0)
                order_ok = false;
            if (r.flags & META_F_PLUS)
                plus_ok &= de.has_inode && de.inode.ino == de.ino &&
                           (de.type == DT_DIR) == S_ISDIR(de.inode.mode);
            else
                plus_ok &= !de.has_inode;
            snprintf(after, sizeof(after), "%s", de.name);
            seen++;
            in_page++;
        }
        CHECK(in_page <= 333);
        eof = resp.eof;
        CHECK(eof || in_page == 333);
        wb_free(&out);
        pages++;
    }
    CHECK(seen == N && order_ok && plus_ok && eof);
    CHECK(pages == (N + 332) / 333 || pages == (N + 332) / 333 + 1);
    /* the directory's nlink counts its 1000 subdirectories */
    struct meta_inode i;
    CHECK_RC(getattr(d, &i), 0);
    CHECK(i.nlink == 2 + (uint32_t)N / 10);
    /* without a read bit there is no listing */
    struct meta_req r;
    req_init(&r, &bob);
    r.ino = d;
    r.valid = FATTR_MODE;
    r.mode = 0711;
    CHECK_RC(setattr(&root_u, d, &r, NULL), 0);
    req_init(&r, &bob);
    r.ino = d;
    CHECK_RC(exec(META_READDIR, &r, NULL), -EACCES);
    CHECK_RC(lookup(&bob, d, names[5], NULL), 0);
    for (int n = 0; n < N; n++) {
        int rc = name_op(META_UNLINK, &root_u, d, names[n]);
        if (rc == -EISDIR)
            rc = rmdir_(&root_u, d, names[n]);
        CHECK_RC(rc, 0);
        free(names[n]);
    }
    free(names);
    CHECK_RC(rmdir_(&root_u, 1, "big"), 0);
}

static void test_xattr(void)
{
    uint64_t f, sid;
    CHECK_RC(create(&alice, 1, "x", 0644, O_CREAT, NULL, NULL), -EACCES);
    CHECK_RC(create(&root_u, 1, "xf", 0644, O_CREAT | O_EXCL, &f, &sid), 0);
    CHECK_RC(close_(f, sid, 0, 0, META_CLOSE, NULL), 0);
    struct meta_req r;
    struct meta_resp resp;
    req_init(&r, &root_u);
    r.ino = f;
    strcpy(r.name, "user.color");
    r.data = "blue";
    r.data_len = 4;
    r.flags = XATTR_REPLACE;
    CHECK_RC(exec(META_SETXATTR, &r, NULL), -ENODATA);
    r.flags = XATTR_CREATE;
    CHECK_RC(exec(META_SETXATTR, &r, NULL), 0);
    CHECK_RC(exec(META_SETXATTR, &r, NULL), -EEXIST);
    r.flags = XATTR_REPLACE;
    r.data = "green";
    r.data_len = 5;
    CHECK_RC(exec(META_SETXATTR, &r, NULL), 0);
    strcpy(r.name, "trusted.t");
    r.flags = 0;
    CHECK_RC(exec(META_SETXATTR, &r, NULL), 0);
    strcpy(r.name, "bogus.ns");
    CHECK_RC(exec(META_SETXATTR, &r, NULL), -EOPNOTSUPP);
    strcpy(r.name, "user.big");
    static char big[VF_MAX_XATTR_VALUE + 1];
    r.data = big;
    r.data_len = sizeof(big);
    CHECK_RC(exec(META_SETXATTR, &r, NULL), -E2BIG);
    r.data_len = VF_MAX_XATTR_VALUE;
    CHECK_RC(exec(META_SETXATTR, &r, NULL), 0);
    struct wbuf out;
    wb_init(&out, 0);
    strcpy(r.name, "user.color");
    CHECK_RC(meta_exec(mc, META_GETXATTR, &r, &resp, &out), 0);
    CHECK(resp.data_len == 5 && !memcmp(resp.data, "green", 5));
    strcpy(r.name, "user.none");
    CHECK_RC(meta_exec(mc, META_GETXATTR, &r, &resp, &out), -ENODATA);
    CHECK_RC(meta_exec(mc, META_LISTXATTR, &r, &resp, &out), 0);
    static const char want[] = "trusted.t\0user.big\0user.color";
    CHECK(resp.data_len == sizeof(want) && !memcmp(resp.data, want, sizeof(want)));
    r.user = alice; /* non-root: trusted.* hidden, user.* readable (0644) */
    CHECK_RC(meta_exec(mc, META_LISTXATTR, &r, &resp, &out), 0);
    CHECK(resp.data_len == sizeof(want) - 10 && !memcmp(resp.data, want + 10, sizeof(want) - 10));
    strcpy(r.name, "user.color");
    CHECK_RC(meta_exec(mc, META_GETXATTR, &r, &resp, &out), 0);
    r.data = "red";
    r.data_len = 3;
    CHECK_RC(exec(META_SETXATTR, &r, NULL), -EACCES);
    CHECK_RC(exec(META_REMOVEXATTR, &r, NULL), -EACCES);
    strcpy(r.name, "trusted.t");
    CHECK_RC(exec(META_GETXATTR, &r, NULL), -ENODATA);
    r.user = root_u;
    CHECK_RC(exec(META_REMOVEXATTR, &r, NULL), 0);
    CHECK_RC(exec(META_REMOVEXATTR, &r, NULL), -ENODATA);
    wb_free(&out);
    CHECK_RC(unlink_(&root_u, 1, "xf"), 0);
    CHECK(meta_gc_run_once(mc) == 1);
}

static void test_statfs(void)
{
    struct meta_req r;
    struct meta_resp a, b;
    req_init(&r, &root_u);
    CHECK_RC(exec(META_STATFS, &r, &a), 0);
    CHECK(a.used_inodes >= 1 && a.total_inodes > a.used_inodes);
    uint64_t d;
    CHECK_RC(mkdir_(&root_u, 1, "sf", 0755, &d), 0);
    CHECK_RC(exec(META_STATFS, &r, &b), 0);
    CHECK(b.used_inodes == a.used_inodes + 1);
    CHECK_RC(rmdir_(&root_u, 1, "sf"), 0);
    CHECK_RC(exec(META_STATFS, &r, &b), 0);
    CHECK(b.used_inodes == a.used_inodes);
}

static void test_sessions_gc(void)
{
    uint64_t f, sid, sid2;
    struct meta_inode i;
    /* close reconciles the length */
    CHECK_RC(create(&root_u, 1, "s", 0644, O_CREAT | O_EXCL | O_RDWR, &f, &sid), 0);
    CHECK_RC(close_(f, sid, 5000, META_F_WROTE, META_SYNC, &i), 0);
    CHECK(i.size == 5000);
    CHECK_RC(close_(f, sid, 10, META_F_WROTE, META_SYNC, &i), 0);
    CHECK(i.size == 5000);
    fake_len = 9000;
    CHECK_RC(close_(f, sid, 0, META_F_QUERY_LEN, META_SYNC, &i), 0);
    CHECK(i.size == 9000);
    /* unlinked while open: the inode stays until the last close */
    struct meta_req r;
    struct meta_resp resp;
    req_init(&r, &root_u);
    r.ino = f;
    r.flags = O_RDONLY;
    CHECK_RC(exec(META_OPEN, &r, &resp), 0);
    sid2 = resp.session;
    CHECK_RC(unlink_(&root_u, 1, "s"), 0);
    CHECK_RC(lookup(&root_u, 1, "s", NULL), -ENOENT);
    CHECK_RC(getattr(f, &i), 0);
    CHECK(i.nlink == 0 && i.size == 9000);
    int removed = remove_calls;
    CHECK_RC(meta_gc_run_once(mc), 0);
    CHECK(remove_calls == removed);
    CHECK_RC(close_(f, sid, 12000, META_F_WROTE, META_CLOSE, &i), 0);
    CHECK(i.size == 12000);
    CHECK_RC(meta_gc_run_once(mc), 0);
    CHECK(remove_calls == removed);
    CHECK_RC(getattr(f, NULL), 0);
    CHECK_RC(close_(f, sid2, 0, 0, META_CLOSE, NULL), 0);
    /* a storage failure leaves the orphan for the next round */
    remove_fail = 1;
    CHECK_RC(meta_gc_run_once(mc), 0);
    CHECK_RC(getattr(f, NULL), 0);
    CHECK_RC(meta_gc_run_once(mc), 1);
    CHECK(remove_calls == removed + 1 && last_removed_ino == f);
    CHECK_RC(getattr(f, NULL), -ENOENT);
    CHECK_RC(meta_gc_run_once(mc), 0);
    CHECK(remove_calls == removed + 1);
    /* the collector thread picks up an orphan after the last close */
    CHECK_RC(meta_gc_start(mc, 50), 0);
    CHECK_RC(create(&root_u, 1, "s2", 0644, O_CREAT | O_EXCL | O_RDWR, &f, &sid), 0);
    CHECK_RC(unlink_(&root_u, 1, "s2"), 0);
    CHECK_RC(close_(f, sid, 10, META_F_WROTE, META_CLOSE, NULL), 0);
    for (int n = 0; n < 200 && getattr(f, NULL) == 0; n++)
        usleep(10000);
    CHECK_RC(getattr(f, NULL), -ENOENT);
    /* an empty file has no chunks: purged without asking storage */
    uint64_t e;
    CHECK_RC(create(&root_u, 1, "empty", 0644, O_CREAT | O_EXCL | O_RDWR, &e, &sid), 0);
    CHECK_RC(close_(e, sid, 0, 0, META_CLOSE, NULL), 0);
    CHECK_RC(unlink_(&root_u, 1, "empty"), 0);
    for (int n = 0; n < 200 && getattr(e, NULL) == 0; n++)
        usleep(10000);
    CHECK_RC(getattr(e, NULL), -ENOENT);
    meta_gc_stop(mc);
    pthread_mutex_lock(&fake_lock);
    CHECK(remove_calls == removed + 2 && last_removed_ino == f);
    pthread_mutex_unlock(&fake_lock);
}

static void test_corrupt(void)
{
    struct kv_txn *t;
    uint8_t key[12] = { 'I', 'N', 'O', 'D', 0, 0, 0, 0, 0, 0, 0x77, 0x77 };
    CHECK_RC(kv_txn_begin(db, 0, &t), 0);
    CHECK_RC(kv_put(t, key, 12, "\x01garbage", 8), 0);
    CHECK_RC(kv_commit(t), 0);
    CHECK_RC(getattr(0x7777, NULL), -EIO);
    CHECK_RC(kv_txn_begin(db, 0, &t), 0);
    CHECK_RC(kv_put(t, key, 12, "\x09", 1), 0);
    CHECK_RC(kv_commit(t), 0);
    CHECK_RC(getattr(0x7777, NULL), -EIO);
    CHECK_RC(kv_txn_begin(db, 0, &t), 0);
    CHECK_RC(kv_del(t, key, 12), 0);
    CHECK_RC(kv_commit(t), 0);
    CHECK_RC(meta_exec(mc, 0x2ff, NULL, &(struct meta_resp){ 0 }, NULL), -ENOSYS);
}

/* ---------------- concurrency ---------------- */

static pthread_barrier_t barrier;
static atomic_int race_rc[2];

struct racer {
    int id;
    int rounds;
    uint64_t a, b;
};

static void *create_racer(void *arg)
{
    struct racer *r = arg;
    for (int n = 0; n < r->rounds; n++) {
        pthread_barrier_wait(&barrier);
        uint64_t sid = 0, ino = 0;
        int rc = create(&root_u, 1, "race", 0644, O_CREAT | O_EXCL | O_RDWR, &ino, &sid);
        if (rc == 0)
            close_(ino, sid, 0, 0, META_CLOSE, NULL);
        race_rc[r->id] = rc;
        pthread_barrier_wait(&barrier);
        pthread_barrier_wait(&barrier); /* main checks and cleans up */
    }
    return NULL;
}

static void test_concurrent_create(void)
{
    enum { ROUNDS = 200 };
    pthread_barrier_init(&barrier, NULL, 3);
    struct racer r[2] = { { 0, ROUNDS, 0, 0 }, { 1, ROUNDS, 0, 0 } };
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, create_racer, &r[i]);
    int bad = 0;
    for (int n = 0; n < ROUNDS; n++) {
        pthread_barrier_wait(&barrier);
        pthread_barrier_wait(&barrier);
        int a = race_rc[0], b = race_rc[1];
        if (!((a == 0 && b == -EEXIST) || (a == -EEXIST && b == 0))) {
            fprintf(stderr, "round %d: create results %d %d\n", n, a, b);
            bad++;
        }
        unlink_(&root_u, 1, "race");
        pthread_barrier_wait(&barrier);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    CHECK(bad == 0);
    meta_gc_run_once(mc);
}

static void *rename_racer(void *arg)
{
    struct racer *r = arg;
    for (int n = 0; n < r->rounds; n++) {
        pthread_barrier_wait(&barrier);
        /* thread 0: ca -> cb/x ; thread 1: cb -> ca/y */
        race_rc[r->id] = r->id == 0 ? rename_(&root_u, 1, "ca", r->b, "x", 0)
                                    : rename_(&root_u, 1, "cb", r->a, "y", 0);
        pthread_barrier_wait(&barrier);
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

static void test_concurrent_cycle(void)
{
    enum { ROUNDS = 100 };
    uint64_t a, b;
    CHECK_RC(mkdir_(&root_u, 1, "ca", 0755, &a), 0);
    CHECK_RC(mkdir_(&root_u, 1, "cb", 0755, &b), 0);
    pthread_barrier_init(&barrier, NULL, 3);
    struct racer r[2] = { { 0, ROUNDS, a, b }, { 1, ROUNDS, a, b } };
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, rename_racer, &r[i]);
    int both = 0, none = 0;
    for (int n = 0; n < ROUNDS; n++) {
        pthread_barrier_wait(&barrier);
        pthread_barrier_wait(&barrier);
        int x = race_rc[0], y = race_rc[1];
        if (x == 0 && y == 0)
            both++;
        if (x != 0 && y != 0)
            none++;
        /* the tree stays a tree: whichever moved, put it back */
        struct meta_inode ia, ib;
        CHECK_RC(getattr(a, &ia), 0);
        CHECK_RC(getattr(b, &ib), 0);
        CHECK(!(ia.parent == b && ib.parent == a));
        if (x == 0)
            CHECK_RC(rename_(&root_u, b, "x", 1, "ca", 0), 0);
        if (y == 0)
            CHECK_RC(rename_(&root_u, a, "y", 1, "cb", 0), 0);
        pthread_barrier_wait(&barrier);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    CHECK(both == 0);
    CHECK(none == 0); /* the loser fails with EINVAL, not a lost update */
    CHECK_RC(rmdir_(&root_u, 1, "ca"), 0);
    CHECK_RC(rmdir_(&root_u, 1, "cb"), 0);
}

/* ---------------- setup ---------------- */

static char dir_tmpl[] = "/tmp/test_meta.XXXXXX";

static int open_store(const char *dir, enum kv_sync sync)
{
    char uri[256], err[256];
    /* VALORFS_TEST_KV_URI runs the same tests on another engine (etcd). */
    const char *other = getenv("VALORFS_TEST_KV_URI");
    snprintf(uri, sizeof(uri), other ? "%s" : "lmdb:%s", other ? other : dir);
    struct kv_opts o = { .map_size = 1ull << 30, .sync = sync };
    db = kv_open(uri, &o, err, sizeof(err));
    if (!db) {
        fprintf(stderr, "kv_open: %s\n", err);
        return -1;
    }
    struct meta_core_opts mo = { .db = db, .chunk = fake_ops };
    mc = meta_core_new(&mo, err, sizeof(err));
    if (!mc) {
        fprintf(stderr, "meta_core_new: %s\n", err);
        return -1;
    }
    return 0;
}

static void close_store(void)
{
    meta_core_free(mc);
    kv_close(db);
    mc = NULL;
    db = NULL;
}

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

static double secs(struct timespec a, struct timespec b)
{
    return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

static int bench(int n)
{
    static const char *const names[] = { "commit", "none" };
    for (int s = 0; s < 2; s++) {
        char tmpl[] = "/tmp/bench_meta.XXXXXX";
        if (!mkdtemp(tmpl) || open_store(tmpl, s == 0 ? KV_SYNC_COMMIT : KV_SYNC_NONE) < 0)
            return 1;
        uint64_t d;
        mkdir_(&root_u, 1, "b", 0755, &d);
        struct timespec t0, t1, t2, t3;
        char nm[32];
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < n; i++) {
            uint64_t ino, sid;
            snprintf(nm, sizeof(nm), "f%d", i);
            struct meta_req r;
            req_init(&r, &root_u);
            r.parent = d;
            strcpy(r.name, nm);
            r.mode = S_IFREG | 0644;
            /* mknod: a create without the session, the namespace cost alone */
            if (exec(META_MKNOD, &r, NULL) != 0)
                return 1;
            (void)ino;
            (void)sid;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        for (int i = 0; i < n; i++) {
            snprintf(nm, sizeof(nm), "f%d", i);
            if (lookup(&root_u, d, nm, NULL) != 0)
                return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t2);
        for (int i = 0; i < n; i++) {
            snprintf(nm, sizeof(nm), "f%d", i);
            if (unlink_(&root_u, d, nm) != 0)
                return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t3);
        printf("kv_sync=%-6s create %8.0f ops/s  stat %8.0f ops/s  unlink %8.0f ops/s  (n=%d)\n",
               names[s], n / secs(t0, t1), n / secs(t1, t2), n / secs(t2, t3), n);
        close_store();
        rm_rf(tmpl);
    }
    return 0;
}

int main(int argc, char **argv)
{
    log_init(LOG_LVL_WARN);
    if (argc == 3 && !strcmp(argv[1], "--bench"))
        return bench(atoi(argv[2]));
    if (!mkdtemp(dir_tmpl) || open_store(dir_tmpl, KV_SYNC_NONE) < 0)
        return 1;
    test_root();
    test_create();
    test_dirs_links();
    test_setattr();
    test_permissions();
    test_rename();
    test_xattr();
    test_statfs();
    test_sessions_gc();
    test_readdir();
    test_corrupt();
    test_concurrent_create();
    test_concurrent_cycle();
    close_store();
    /* a second start over the same store keeps the root as it was */
    if (open_store(dir_tmpl, KV_SYNC_COMMIT) == 0) {
        struct meta_inode i;
        CHECK_RC(getattr(1, &i), 0);
        CHECK(S_ISDIR(i.mode) && i.nlink == 2);
        close_store();
    } else {
        failures++;
    }
    rm_rf(dir_tmpl);
    if (failures) {
        fprintf(stderr, "test_meta: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_meta: all passed\n");
    return 0;
}
