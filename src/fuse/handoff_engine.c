/* handoff_engine.c — per-request bookkeeping that lets a successor daemon
 * take over (handoff.h): request records, lookup counting, handle slots,
 * and the tolerant replay of requests the kernel resends after a crash.
 *
 * Resends. After a crash the kernel gives back every request the dead
 * daemon had read but not answered, with FUSE_UNIQUE_RESEND set. Its
 * record in the old region says whether the backend had been called:
 *  - no record: never dispatched; serve it normally;
 *  - DISPATCHED/COUNTED: it may have been applied. Idempotent operations
 *    are simply redone. For the others the reply that only a second
 *    application would give is turned into the first one's: EEXIST from
 *    mkdir/mknod/symlink/link becomes the entry of what is there, ENOENT
 *    from unlink/rmdir/rename and ENODATA from removexattr become success,
 *    create is redone without O_EXCL (so it opens the file it made);
 *  - the entries of its reply the old daemon counted (all of them when
 *    COUNTED; the record's progress, resolved exactly by ho_import, when it
 *    died while counting) are not counted again. This assumes the resent
 *    request answers the same entries, which holds unless the directory
 *    changed between the crash and the resend.
 */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "fuse/engine_internal.h"

#define DIRENT_ALIGN(x) (((x) + sizeof(uint64_t) - 1) & ~(sizeof(uint64_t) - 1))

void ho_before_dispatch(struct vfs_req *r)
{
    struct vfs_session *s = r->chan->s;
    const struct fuse_msg *m = &r->m;
    r->resend = m->resent != 0; /* decode keeps the unique without the bit */
    r->tolerant = 0;
    r->count_skip = 0;
    r->rec = NULL;
    if (s->ho == NULL || m->unique == 0)
        return;
    uint64_t unique = m->unique;
    if (r->resend) {
        const struct ho_rec *old = ho_imported_find(&s->imported, unique);
        if (old && old->opcode == m->opcode && old->phase != HO_REC_NONE) {
            r->tolerant = 1;
            r->count_skip = old->phase == HO_REC_COUNTED ? UINT32_MAX : old->progress;
        }
        LOG_DEBUG("fuse", "resent unique=%llu opcode=%u %s", (unsigned long long)unique,
                  m->opcode, r->tolerant ? "(may have been applied)" : "(never dispatched)");
    }
    if (r->chan->mode == CHAN_TEST)
        return;
    r->rec = ho_rec(s->ho, (unsigned)r->chan->idx, (unsigned)(r - r->chan->slots));
    if (r->rec) {
        /* a record says COUNTED only when every entry is: a resend that
         * skips some starts from their number, so a second crash finds it */
        __atomic_store_n(&r->rec->phase, HO_REC_NONE, __ATOMIC_RELEASE);
        ho_rec_reset(r->rec);
        r->rec->unique = unique;
        r->rec->opcode = m->opcode;
        r->rec->progress = r->count_skip == UINT32_MAX ? 0 : r->count_skip;
        /* ordered before the backend can apply anything */
        __atomic_store_n(&r->rec->phase,
                         r->count_skip == UINT32_MAX ? HO_REC_COUNTED : HO_REC_DISPATCHED,
                         __ATOMIC_RELEASE);
    }
}

int ho_backend_fh(struct vfs_req *r, uint64_t kfh, uint64_t *bfh)
{
    struct vfs_session *s = r->chan->s;
    if (s->ho == NULL) {
        *bfh = kfh;
        return 0;
    }
    if (r->kfh == 0)
        r->kfh = kfh;
    if (ho_fh_lookup(s->ho, kfh, bfh) == 0)
        return 0;
    uint32_t op = r->m.opcode;
    if (r->resend && (op == FUSE_RELEASE || op == FUSE_RELEASEDIR || op == FUSE_FLUSH)) {
        /* released by the dead daemon just before it died */
        r->kfh = 0;
        vfs_send(r, 0, NULL, 0);
        return -1;
    }
    r->kfh = 0;
    vfs_send(r, EBADF, NULL, 0);
    return -1;
}

void *vfs_req_fh_blob(struct vfs_req *r)
{
    struct vfs_session *s = r->chan->s;
    return s->ho && r->kfh ? ho_fh_blob(s->ho, r->kfh) : NULL;
}

/* One lookup reference handed to the kernel for nodeid: entry number idx
 * of the reply (entries the previous daemon counted are skipped). */
static void count_node(struct vfs_req *r, uint32_t idx, uint64_t nodeid)
{
    struct vfs_session *s = r->chan->s;
    if (nodeid == 0 || idx < r->count_skip)
        return;
    uint8_t key[HO_NODE_KEY_MAX];
    size_t keylen = 0;
    if (s->ops->node_key && !ho_node_known(s->ho, nodeid))
        keylen = s->ops->node_key(s->fs, nodeid, key, sizeof(key));
    if (ho_node_ref_rec(s->ho, r->rec, nodeid, key, keylen) == 0 && !s->ho_full_warned) {
        s->ho_full_warned = 1;
        LOG_WARN("fuse", "handoff node table full: nodes beyond it will not survive an "
                         "upgrade (raise --handoff-nodes)");
    }
}

static void mark_counted(struct vfs_req *r)
{
    if (r->rec)
        __atomic_store_n(&r->rec->phase, HO_REC_COUNTED, __ATOMIC_RELEASE);
}

void ho_count_entry(struct vfs_req *r, uint64_t nodeid)
{
    if (r->chan->s->ho == NULL || nodeid == 0)
        return;
    count_node(r, 0, nodeid);
    mark_counted(r);
}

void ho_count_direntplus(struct vfs_req *r, const void *buf, size_t len)
{
    if (r->chan->s->ho == NULL)
        return;
    const uint8_t *p = buf;
    size_t off = 0;
    uint32_t idx = 0;
    const size_t fixed = offsetof(struct fuse_direntplus, dirent.name);
    while (off + fixed <= len) {
        struct fuse_direntplus d;
        memcpy(&d, p + off, fixed);
        const char *name = (const char *)p + off + fixed;
        if (d.dirent.namelen > len - off - fixed)
            break;
        int dot = (d.dirent.namelen == 1 && name[0] == '.') ||
                  (d.dirent.namelen == 2 && name[0] == '.' && name[1] == '.');
        /* the kernel takes a reference for every entry but . and .. */
        if (!dot && d.entry_out.nodeid != 0)
            count_node(r, idx++, d.entry_out.nodeid);
        off += DIRENT_ALIGN(fixed + d.dirent.namelen);
    }
    mark_counted(r);
}

uint64_t ho_open_reply(struct vfs_req *r, uint64_t backend_fh, int is_dir, uint64_t ino)
{
    struct vfs_session *s = r->chan->s;
    if (s->ho == NULL || r->kfh == 0)
        return backend_fh;
    uint32_t flags = 0;
    if (r->m.opcode == FUSE_CREATE)
        flags = ((const struct fuse_create_in *)r->m.op)->flags;
    else if (r->m.opcode == FUSE_OPEN || r->m.opcode == FUSE_OPENDIR)
        flags = ((const struct fuse_open_in *)r->m.op)->flags;
    ho_fh_commit(s->ho, r->kfh, is_dir ? HO_FH_DIR : HO_FH_FILE, ino, flags, backend_fh);
    uint64_t kfh = r->kfh;
    r->kfh = 0; /* committed: an error path must not free it now */
    return kfh;
}

/* A resent request that may have been applied got the error only a second
 * application gives: answer what the first one would have. Returns 1 when
 * the reply was taken care of. */
static int tolerant_fix(struct vfs_req *r, int error)
{
    struct vfs_session *s = r->chan->s;
    const struct fuse_msg *m = &r->m;
    r->tolerant = 0;
    switch (m->opcode) {
    case FUSE_MKDIR:
    case FUSE_MKNOD:
    case FUSE_SYMLINK:
    case FUSE_LINK:
        if (error != EEXIST || s->ops->lookup == NULL)
            return 0;
        LOG_INFO("fuse", "resent opcode %u unique=%llu: already applied, answering its entry",
                 m->opcode, (unsigned long long)m->unique);
        s->ops->lookup(r, m->nodeid, m->name);
        return 1;
    case FUSE_UNLINK:
    case FUSE_RMDIR:
    case FUSE_RENAME:
    case FUSE_RENAME2:
        if (error != ENOENT)
            return 0;
        break;
    case FUSE_SETXATTR:
        if (error != EEXIST)
            return 0;
        break;
    case FUSE_REMOVEXATTR:
        if (error != ENODATA)
            return 0;
        break;
    default:
        return 0;
    }
    LOG_INFO("fuse", "resent opcode %u unique=%llu: already applied, answering success",
             m->opcode, (unsigned long long)m->unique);
    vfs_send(r, 0, NULL, 0);
    return 1;
}

int ho_on_reply(struct vfs_req *r, int error, const void *payload, size_t len)
{
    (void)payload;
    (void)len;
    struct vfs_session *s = r->chan->s;
    if (s->ho == NULL)
        return 0;
    if (error && r->tolerant && tolerant_fix(r, error))
        return 1;
    uint32_t op = r->m.opcode;
    if (r->kfh) {
        if (op == FUSE_RELEASE || op == FUSE_RELEASEDIR ||
            ((op == FUSE_OPEN || op == FUSE_CREATE || op == FUSE_OPENDIR) && error)) {
            ho_fh_release(s->ho, r->kfh);
        }
        r->kfh = 0;
    }
    return 0;
}

int vfs_restore_getfd(const struct vfs_restore *rc, int old_fd)
{
    if (rc == NULL || rc->old_pidfd < 0 || old_fd < 0)
        return -EBADF;
    long fd = syscall(SYS_pidfd_getfd, rc->old_pidfd, old_fd, 0);
    return fd < 0 ? -errno : (int)fd;
}
