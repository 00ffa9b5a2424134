/* perm.c — the kernel's permission rules (generic_permission) on meta
 * inodes, the sticky bit, and shared checks of the namespace ops. */
#include "meta/meta_internal.h"

bool user_in_group(const struct vf_user *u, uint32_t gid)
{
    if (u->gid == gid)
        return true;
    uint32_t n = u->ngroups > VF_MAX_GROUPS ? VF_MAX_GROUPS : u->ngroups;
    for (uint32_t i = 0; i < n; i++)
        if (u->groups[i] == gid)
            return true;
    return false;
}

int perm_check(const struct vf_user *u, const struct meta_inode *i, int mask)
{
    mask &= MAY_R | MAY_W | MAY_X;
    if (u->uid == 0) {
        /* root reads and writes anything; it executes a non-directory only
         * when some x bit is set */
        if ((mask & MAY_X) && !S_ISDIR(i->mode) && !(i->mode & 0111))
            return -EACCES;
        return 0;
    }
    uint32_t bits;
    if (u->uid == i->uid)
        bits = (i->mode >> 6) & 7;
    else if (user_in_group(u, i->gid))
        bits = (i->mode >> 3) & 7;
    else
        bits = i->mode & 7;
    return ((uint32_t)mask & ~bits) ? -EACCES : 0;
}

int perm_sticky(const struct vf_user *u, const struct meta_inode *dir,
                const struct meta_inode *victim)
{
    if (!(dir->mode & S_ISVTX) || u->uid == 0 || u->uid == dir->uid || u->uid == victim->uid)
        return 0;
    return -EPERM;
}

int name_check(const char *name)
{
    if (name[0] == '\0')
        return -ENOENT;
    if (strlen(name) > VF_MAX_NAME)
        return -ENAMETOOLONG;
    if (strchr(name, '/'))
        return -EINVAL;
    return 0;
}

int load_dir(struct kv_txn *t, const struct vf_user *u, uint64_t ino, int mask,
             struct meta_inode *out)
{
    int rc = inode_load(t, ino, out);
    if (rc < 0)
        return rc;
    if (!S_ISDIR(out->mode))
        return -ENOTDIR;
    if (out->nlink == 0)
        return -ENOENT; /* removed while someone still held it */
    return perm_check(u, out, mask);
}

void dir_touch(struct meta_inode *dir, int64_t now)
{
    dir->mtime_ns = now;
    dir->ctime_ns = now;
}

int inode_drop_link(struct kv_txn *t, struct meta_inode *child, int64_t now)
{
    if (child->nlink > 0)
        child->nlink--;
    child->ctime_ns = now;
    if (child->nlink > 0)
        return inode_store(t, child);
    if (S_ISREG(child->mode)) {
        /* the chunks go later, once no session holds the file (gc.c) */
        uint8_t k[12];
        uint8_t v = 1;
        int rc = kv_put(t, k, meta_key(k, "ORPH", child->ino, NULL, 0), &v, 1);
        return rc < 0 ? rc : inode_store(t, child);
    }
    return inode_purge(t, child->ino);
}
