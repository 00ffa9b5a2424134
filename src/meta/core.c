/* core.c — meta_core lifetime, the root inode, and method dispatch. */
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "meta/meta_internal.h"

static int ensure_root(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    (void)mc;
    bool *created = ctx;
    struct meta_inode root;
    *created = false;
    int rc = inode_load(t, VF_ROOT_INO, &root);
    if (rc != -ENOENT)
        return rc;
    memset(&root, 0, sizeof(root));
    root.ino = VF_ROOT_INO;
    root.mode = S_IFDIR | 0755;
    root.nlink = 2;
    root.parent = VF_ROOT_INO;
    root.atime_ns = root.mtime_ns = root.ctime_ns = meta_now_ns();
    *created = true;
    return inode_store(t, &root);
}

bool meta_core_kv_remote(const struct meta_core *mc)
{
    return kv_is_remote(mc->db);
}

struct meta_core *meta_core_new(const struct meta_core_opts *o, char *err, size_t errlen)
{
    struct meta_core *mc = calloc(1, sizeof(*mc));
    if (!mc) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    mc->db = o->db;
    mc->chunk = o->chunk;
    mc->chunk_size = o->chunk_size ? o->chunk_size : META_DEFAULT_CHUNK;
    mc->stripe = o->stripe ? o->stripe : META_DEFAULT_STRIPE;
    mc->space = o->space;
    mc->space_arg = o->space_arg;
    mc->dedup_retention_s = o->dedup_retention_s ? o->dedup_retention_s : META_DEDUP_RETENTION_S;
    pthread_mutex_init(&mc->gc_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mc->gc_cond, &ca);
    pthread_condattr_destroy(&ca);
    bool created;
    int rc = meta_run_txn(mc, false, ensure_root, &created);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read or create the root inode: %s", strerror(-rc));
        meta_core_free(mc);
        return NULL;
    }
    if (created)
        LOG_INFO(META_LOG, "created the root directory");
    return mc;
}

void meta_core_free(struct meta_core *mc)
{
    if (!mc)
        return;
    meta_gc_stop(mc);
    pthread_cond_destroy(&mc->gc_cond);
    pthread_mutex_destroy(&mc->gc_lock);
    free(mc);
}

struct method_entry {
    uint16_t method;
    const char *name;
    meta_txn_fn fn;
    bool rdonly;
};

static const struct method_entry methods[] = {
    { META_LOOKUP, "lookup", op_lookup, true },
    { META_GETATTR, "getattr", op_getattr, true },
    { META_SETATTR, "setattr", op_setattr, false },
    { META_CREATE, "create", op_create, false },
    { META_MKNOD, "mknod", op_mknod, false },
    { META_MKDIR, "mkdir", op_mkdir, false },
    { META_SYMLINK, "symlink", op_symlink, false },
    { META_LINK, "link", op_link, false },
    { META_UNLINK, "unlink", op_unlink, false },
    { META_RMDIR, "rmdir", op_rmdir, false },
    { META_RENAME, "rename", op_rename, false },
    { META_READLINK, "readlink", op_readlink, true },
    { META_READDIR, "readdir", op_readdir, true },
    { META_OPEN, "open", op_open, false },
    { META_CLOSE, "close", op_close, false },
    { META_SYNC, "sync", op_sync, false },
    { META_SETXATTR, "setxattr", op_setxattr, false },
    { META_GETXATTR, "getxattr", op_getxattr, true },
    { META_LISTXATTR, "listxattr", op_listxattr, true },
    { META_REMOVEXATTR, "removexattr", op_removexattr, false },
    { META_STATFS, "statfs", op_statfs, true },
    { META_ACCESS, "access", op_access, true },
};

static const struct method_entry *find_method(uint16_t method)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (methods[i].method == method)
            return &methods[i];
    return NULL;
}

const char *meta_method_name(uint16_t method)
{
    const struct method_entry *m = find_method(method);
    return m ? m->name : "unknown";
}

/* Each attempt starts from a clean answer: a retried attempt must not
 * leak what a conflicting one computed. */
struct exec_ctx {
    struct meta_op op;
    meta_txn_fn fn;
    uint16_t method;
    bool dedup;       /* look up / leave a de-duplication record (dedup.c) */
};

static int exec_attempt(struct meta_core *mc, struct kv_txn *t, void *ctx)
{
    struct exec_ctx *e = ctx;
    memset(e->op.resp, 0, sizeof(*e->op.resp));
    e->op.out->len = 0;
    e->op.wake_gc = false;
    e->op.now = meta_now_ns();
    if (e->dedup) {
        dedup_prefetch(t, e->method, e->op.req);
        int rc = dedup_lookup(t, e->method, e->op.req, e->op.resp, e->op.out);
        if (rc != 0)
            return rc < 0 ? rc : 0; /* answered (or failed) without applying */
    }
    int rc = e->fn(mc, t, &e->op);
    if (rc == 0 && e->dedup)
        rc = dedup_store(t, e->method, e->op.req, e->op.now, e->op.resp);
    return rc;
}

int meta_exec(struct meta_core *mc, uint16_t method, const struct meta_req *req,
              struct meta_resp *resp, struct wbuf *out)
{
    const struct method_entry *m = find_method(method);
    if (!m)
        return -ENOSYS;
    struct exec_ctx e = { .op = { .req = req, .resp = resp, .out = out }, .fn = m->fn,
                          .method = method, .dedup = dedup_applies(method, m->rdonly, req) };
    int rc = meta_run_txn(mc, m->rdonly, exec_attempt, &e);
    if (rc < 0) {
        memset(resp, 0, sizeof(*resp));
        if (rc == -EIO)
            LOG_DEBUG(META_LOG, "%s failed with EIO", m->name);
        return rc;
    }
    if (e.op.wake_gc && mc->gc_running)
        meta_gc_kick(mc);
    return 0;
}
