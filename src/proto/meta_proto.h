/* meta_proto.h — metadata service messages.
 *
 * One request struct and one response struct serve every method; each
 * method reads the fields listed next to it (others are zero on the wire
 * and ignored). Every request carries the caller's credentials (user), which
 * meta checks: uid/gid/mode, sticky bit, supplementary groups.
 *
 * Inode ids are 64-bit, spread over the key space; VF_ROOT_INO is the root
 * and equals the FUSE root node id, so a FUSE node id IS the inode id.
 */
#ifndef VALORFS_PROTO_META_PROTO_H
#define VALORFS_PROTO_META_PROTO_H

#include "proto/proto.h"

enum meta_method {
    META_LOOKUP = 0x0201,      /* parent, name                  -> inode */
    META_GETATTR = 0x0202,     /* ino                           -> inode */
    META_SETATTR = 0x0203,     /* ino, valid, mode/uid/gid/size/atime/mtime/ctime -> inode
                                * (size: meta truncates the chunks on storage) */
    META_CREATE = 0x0204,      /* parent, name, mode, umask, flags(O_EXCL|O_TRUNC|O_ACCMODE),
                                * layout hint -> inode, session (regular files, opened) */
    META_MKNOD = 0x0205,       /* parent, name, mode, umask, rdev -> inode */
    META_MKDIR = 0x0206,       /* parent, name, mode, umask     -> inode */
    META_SYMLINK = 0x0207,     /* parent, name, data=target     -> inode */
    META_LINK = 0x0208,        /* ino, newparent, newname       -> inode */
    META_UNLINK = 0x0209,      /* parent, name                  -> empty */
    META_RMDIR = 0x020a,       /* parent, name                  -> empty (ENOTEMPTY) */
    META_RENAME = 0x020b,      /* parent, name, newparent, newname, flags(RENAME_*) -> empty
                                * (EINVAL: directory into its own subtree) */
    META_READLINK = 0x020c,    /* ino                           -> data=target */
    META_READDIR = 0x020d,     /* ino, name=resume after this name ("" = start),
                                * max_entries, flags&META_F_PLUS -> data=meta_dirent list, eof */
    META_OPEN = 0x020e,        /* ino, flags (O_ACCMODE|O_TRUNC|...) -> inode, session */
    META_CLOSE = 0x020f,       /* ino, session, length_hint, flags&META_F_WROTE -> inode */
    META_SYNC = 0x0210,        /* ino, session, length_hint     -> inode (session stays) */
    META_SETXATTR = 0x0211,    /* ino, name, data=value, flags(XATTR_CREATE|REPLACE) -> empty */
    META_GETXATTR = 0x0212,    /* ino, name                     -> data=value (ENODATA) */
    META_LISTXATTR = 0x0213,   /* ino                           -> data=names, NUL after each */
    META_REMOVEXATTR = 0x0214, /* ino, name                     -> empty */
    META_STATFS = 0x0215,      /* -                             -> statfs */
    META_ACCESS = 0x0216,      /* ino, mask(R_OK|W_OK|X_OK) in mode -> empty or EACCES */
};

#define META_F_PLUS 1u         /* READDIR: include each entry's inode */
#define META_F_WROTE 2u        /* CLOSE/SYNC: the session wrote data */
#define META_F_QUERY_LEN 4u    /* CLOSE/SYNC: ask storage for the length */

/* A file's layout: chunk i of the file lives on chains[i % nchains], all
 * taken from chain table table_id when the file was created. */
struct meta_layout {
    uint32_t chunk_size;       /* bytes, power of two, 64 KiB .. 64 MiB */
    uint32_t table_id;
    uint32_t nchains;          /* stripe count; 0 for non-regular files */
    uint32_t chains[VF_MAX_STRIPE];
};

struct meta_inode {
    uint64_t ino;
    uint32_t mode;             /* S_IF* | permission bits */
    uint32_t uid, gid;
    uint32_t nlink;
    uint64_t size;
    uint64_t rdev;
    int64_t atime_ns, mtime_ns, ctime_ns; /* CLOCK_REALTIME */
    uint64_t parent;           /* directories: their parent (root: itself) */
    struct meta_layout layout; /* regular files */
};
void meta_inode_enc(struct wbuf *wb, const struct meta_inode *i);
void meta_inode_dec(struct rbuf *rb, struct meta_inode *i); /* sets rb->err */

struct meta_req {
    struct vf_user user;
    uint64_t ino, parent, newparent;
    char name[VF_MAX_NAME + 1];    /* also the xattr name for *XATTR */
    char newname[VF_MAX_NAME + 1];
    uint32_t mode, umask, flags;
    uint64_t rdev;
    uint32_t valid;                /* SETATTR: FATTR_* bits of <linux/fuse.h> */
    uint32_t uid, gid;
    uint64_t size;
    int64_t atime_ns, mtime_ns, ctime_ns;
    uint64_t session;
    uint64_t length_hint;          /* CLOSE/SYNC: end of the data this session wrote */
    uint32_t max_entries;          /* READDIR */
    uint32_t chunk_size, stripe;   /* CREATE layout hint (0 = defaults) */
    const void *data;              /* SYMLINK target, SETXATTR value */
    uint32_t data_len;
    /* Request id of a state-changing call, so that a retry (after a lost
     * answer, possibly to another meta server) is answered from meta's
     * de-duplication record instead of being applied again. req_client is
     * a random non-zero id of the calling client instance, req_seq its
     * call counter; a retry keeps both. req_client 0 = no id. Encoded as a
     * trailer after data only when set, so a request without an id keeps
     * the exact old encoding (and an old encoding still decodes). */
    uint64_t req_client, req_seq;
};
PROTO_CODEC(meta_req);
/* What meta_req_dec() cannot check without the method: 0 when the fields
 * the method reads are well formed (path components 1..VF_MAX_NAME bytes
 * without '/'; READDIR's resume name may be empty; xattr names non-empty;
 * a symlink target 1..VF_MAX_SYMLINK bytes without NUL), else -EBADMSG
 * (also for an unknown method). Servers call it right after decoding. */
int meta_req_check(uint16_t method, const struct meta_req *m);

struct meta_resp {
    uint8_t has_inode;
    struct meta_inode inode;
    uint64_t session;
    uint8_t eof;                   /* READDIR: no entries after these */
    const void *data;              /* READLINK, GETXATTR, LISTXATTR, READDIR */
    uint32_t data_len;
    /* STATFS */
    uint64_t total_bytes, free_bytes, total_inodes, used_inodes;
};
PROTO_CODEC(meta_resp);

/* READDIR's data: a sequence of entries. */
struct meta_dirent {
    char name[VF_MAX_NAME + 1];
    uint64_t ino;
    uint32_t type;                 /* DT_* */
    uint8_t has_inode;             /* META_F_PLUS */
    struct meta_inode inode;
};
void meta_dirent_enc(struct wbuf *wb, const struct meta_dirent *d);
/* Decode the next entry from rb; 0, or -EBADMSG. Call while rb->left > 0. */
int meta_dirent_next(struct rbuf *rb, struct meta_dirent *d);

#endif
