/* cluster_fs.c — backend lifecycle, the ops table and the helpers every
 * operation shares (credentials, attributes, generic completions). */
#include "cluster_fs/cfs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/mgmtd_client.h"
#include "common/log.h"
#include "rpc/rpc.h"

void cfs_opts_default(struct cfs_opts *o)
{
    *o = (struct cfs_opts){ .entry_timeout = 1.0, .attr_timeout = 1.0,
                            .meta_timeout_ms = 30000, .io_timeout_ms = 30000,
                            .connect_timeout_ms = 10000, .readdir_batch = 1024 };
}

void *cfs_new(const struct cfs_opts *o, char *err, size_t errlen)
{
    struct cfs *fs = calloc(1, sizeof(*fs));
    if (fs == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&fs->dircache_mu, NULL);
    fs->o = *o;
    if (fs->o.readdir_batch == 0)
        fs->o.readdir_batch = 1024;
    pthread_mutex_init(&fs->writers_mu, NULL);
    struct rpc_client_opts ro = { .connect_timeout_ms = 2000, .name = "cfs-rpc" };
    fs->rpc = rpc_client_new(&ro);
    if (fs->rpc == NULL) {
        snprintf(err, errlen, "cannot start the RPC client");
        goto fail;
    }
    struct mgc_opts mo = { .mgmtd_addrs = o->mgmtd_addrs, .rpc = fs->rpc, .type = NODE_CLIENT,
                           .connect_timeout_ms = o->connect_timeout_ms };
    fs->mgc = mgc_start(&mo, err, errlen);
    if (fs->mgc == NULL)
        goto fail;
    struct mc_opts mco;
    mc_opts_default(&mco);
    mco.op_timeout_ms = o->meta_timeout_ms;
    mco.addrs = o->meta_addrs; /* copied by mc_new */
    fs->mc = mc_new(fs->rpc, fs->mgc, &mco);
    struct sc_opts sco;
    sc_opts_default(&sco);
    sco.op_timeout_ms = o->io_timeout_ms;
    fs->sc = sc_new(fs->rpc, fs->mgc, &sco);
    if (fs->mc == NULL || fs->sc == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return fs;
fail:
    cfs_free(fs);
    return NULL;
}

void cfs_free(void *p)
{
    struct cfs *fs = p;
    if (fs == NULL)
        return;
    /* the RPC client first: it fails calls still in flight, whose
     * completions may still use mc/sc */
    if (fs->rpc)
        rpc_client_free(fs->rpc);
    mc_free(fs->mc);
    sc_free(fs->sc);
    if (fs->mgc)
        mgc_stop(fs->mgc);
    pthread_mutex_destroy(&fs->writers_mu);
    pthread_mutex_destroy(&fs->dircache_mu);
    free(fs);
}

/* ---- credentials ---- */

static void read_groups(uint32_t pid, struct vf_user *u)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%u/status", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *g = strstr(buf, "\nGroups:");
    if (g == NULL)
        return;
    g += 8;
    while (u->ngroups < VF_MAX_GROUPS) {
        char *end;
        unsigned long v = strtoul(g, &end, 10);
        if (end == g)
            break;
        u->groups[u->ngroups++] = (uint32_t)v;
        g = end;
        while (*g == ' ' || *g == '\t')
            g++;
        if (*g == '\n' || *g == '\0')
            break;
    }
}

void cfs_user(struct vfs_req *r, struct vf_user *u)
{
    const struct vfs_ctx *c = vfs_req_ctx(r);
    memset(u, 0, sizeof(*u));
    u->uid = c->uid;
    u->gid = c->gid;
    /* root passes every permission check in meta: its groups do not
     * matter, and /proc is not read on the hot path */
    if (c->pid && c->uid != 0)
        read_groups(c->pid, u);
}

void cfs_req_init(struct vfs_req *r, struct meta_req *m)
{
    memset(m, 0, sizeof(*m));
    cfs_user(r, &m->user);
}

bool cfs_name_ok(const char *name)
{
    size_t n = strnlen(name, VF_MAX_NAME + 1);
    return n > 0 && n <= VF_MAX_NAME && strchr(name, '/') == NULL;
}

/* ---- attributes ---- */

static void split_ns(int64_t ns, uint64_t *sec, uint32_t *nsec)
{
    int64_t s = ns / 1000000000;
    int64_t r = ns % 1000000000;
    if (r < 0) {
        r += 1000000000;
        s--;
    }
    *sec = (uint64_t)s;
    *nsec = (uint32_t)r;
}

void cfs_fill_attr(struct cfs *fs, const struct meta_inode *in, struct fuse_attr *a)
{
    memset(a, 0, sizeof(*a));
    a->ino = in->ino;
    a->size = in->size;
    if (S_ISREG(in->mode)) {
        uint64_t local = cfs_local_end(fs, in->ino, in->size);
        if (local > a->size)
            a->size = local;
    }
    a->blocks = (a->size + 511) / 512;
    split_ns(in->atime_ns, &a->atime, &a->atimensec);
    split_ns(in->mtime_ns, &a->mtime, &a->mtimensec);
    split_ns(in->ctime_ns, &a->ctime, &a->ctimensec);
    a->mode = in->mode;
    a->nlink = in->nlink;
    a->uid = in->uid;
    a->gid = in->gid;
    a->rdev = (uint32_t)in->rdev;
    a->blksize = 4096;
}

static void set_timeout(double t, uint64_t *sec, uint32_t *nsec)
{
    *sec = (uint64_t)t;
    *nsec = (uint32_t)((t - (double)*sec) * 1e9);
}

void cfs_fill_entry(struct cfs *fs, const struct meta_inode *in, struct fuse_entry_out *e)
{
    memset(e, 0, sizeof(*e));
    e->nodeid = in->ino;
    cfs_fill_attr(fs, in, &e->attr);
    set_timeout(fs->o.entry_timeout, &e->entry_valid, &e->entry_valid_nsec);
    set_timeout(fs->o.attr_timeout, &e->attr_valid, &e->attr_valid_nsec);
}

/* ---- generic completions ---- */

void cfs_cb_entry(void *arg, int status, const struct meta_resp *resp)
{
    struct vfs_req *r = arg;
    if (status) {
        vfs_reply_err(r, status);
        return;
    }
    if (!resp->has_inode) {
        vfs_reply_err(r, EIO);
        return;
    }
    struct fuse_entry_out e;
    cfs_fill_entry(req_fs(r), &resp->inode, &e);
    vfs_reply_entry(r, &e);
}

void cfs_cb_attr(void *arg, int status, const struct meta_resp *resp)
{
    struct vfs_req *r = arg;
    if (status) {
        vfs_reply_err(r, status);
        return;
    }
    if (!resp->has_inode) {
        vfs_reply_err(r, EIO);
        return;
    }
    struct cfs *fs = req_fs(r);
    struct fuse_attr_out a;
    memset(&a, 0, sizeof(a));
    cfs_fill_attr(fs, &resp->inode, &a.attr);
    set_timeout(fs->o.attr_timeout, &a.attr_valid, &a.attr_valid_nsec);
    vfs_reply_attr(r, &a);
}

void cfs_cb_empty(void *arg, int status, const struct meta_resp *resp)
{
    (void)resp;
    vfs_reply_err(arg, status);
}

static int cfs_init(void *fs, struct vfs_session *s)
{
    (void)fs;
    (void)s;
    return 0;
}

static void cfs_destroy(void *fs) { (void)fs; }

int cfs_restore_handle(void *fs, uint64_t ino, int is_dir, int flags, void *blob,
                       const struct vfs_restore *rc, uint64_t *fh)
{
    (void)rc; /* node ids are inode ids and sessions live in meta: nothing to copy */
    return is_dir ? cfs_restore_dir(fs, ino, blob, fh) : cfs_restore_file(fs, ino, flags, blob, fh);
}

static void cfs_syncfs(struct vfs_req *r)
{
    /* data reaches storage before write() returns and meta commits each
     * change: nothing is buffered here */
    vfs_reply_err(r, 0);
}

const struct vfs_ops cfs_ops = {
    .init = cfs_init,
    .destroy = cfs_destroy,
    .lookup = cfs_lookup,
    .forget = cfs_forget,
    .restore_handle = cfs_restore_handle,
    .getattr = cfs_getattr,
    .setattr = cfs_setattr,
    .readlink = cfs_readlink,
    .mknod = cfs_mknod,
    .mkdir = cfs_mkdir,
    .unlink = cfs_unlink,
    .rmdir = cfs_rmdir,
    .symlink = cfs_symlink,
    .rename = cfs_rename,
    .link = cfs_link,
    .statfs = cfs_statfs,
    .access = cfs_access,
    .create = cfs_create,
    .open = cfs_open,
    .read = cfs_read,
    .write = cfs_write,
    .flush = cfs_flush,
    .release = cfs_release,
    .fsync = cfs_fsync,
    .fallocate = cfs_fallocate,
    .lseek = cfs_lseek,
    .opendir = cfs_opendir,
    .readdir = cfs_readdir,
    .releasedir = cfs_releasedir,
    .fsyncdir = cfs_fsyncdir,
    .setxattr = cfs_setxattr,
    .getxattr = cfs_getxattr,
    .listxattr = cfs_listxattr,
    .removexattr = cfs_removexattr,
    .syncfs = cfs_syncfs,
};
