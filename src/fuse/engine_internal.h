/* engine_internal.h — structures shared by the engine's own files
 * (session, dispatch, reply, transports). Not for backends: they see vfs.h.
 *
 * Request lifecycle (after the kernel's fs/fuse/dev.c): a channel owns a
 * fixed array of request slots. A slot is taken when a request is read
 * (or fetched from the ring), decoded, dispatched to the backend, and given
 * back when the single reply has been sent. A slot never moves between
 * channels, so channels share no lock.
 */
#ifndef VALORFS_FUSE_ENGINE_INTERNAL_H
#define VALORFS_FUSE_ENGINE_INTERNAL_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "fuse/adaptive_wait.h"
#include "fuse/decode.h"
#include "fuse/handoff.h"
#include "fuse/session.h"
#include "fuse/vfs.h"

#define VFS_MAX_WRITE (1u << 20)          /* 1 MiB: max_pages 256 */
#define VFS_MAX_PAGES 256
#define VFS_DEV_BUF_SIZE (VFS_MAX_WRITE + 8192) /* frame: header + op + names + data */
#define VFS_PREFAULT_BUDGET (64u * VFS_DEV_BUF_SIZE) /* request buffers faulted in up front */
#define VFS_MAX_CHANNELS 64

/* user_data tags in a channel's ring (pointers are 8-byte aligned). */
#define TAG_MASK 7ull
#define TAG_FUSE 1ull  /* a FUSE-over-io_uring entry: a request arrived */
#define TAG_AIO 2ull   /* backend file I/O finished */
#define TAG_WAKE 3ull  /* eventfd: a foreign thread posted work / fuse fd readable */
#define TAG_POLL 4ull  /* /dev/fuse became readable */

/* CHAN_TEST is a test hook, never used by a running session: the fuzz
 * harness (fuzz/fuzz_dispatch.c) builds a fake session/channel/request in
 * this mode, and vfs_send() then records the reply in the request
 * (test_nreplies, test_error, test_len) instead of writing to a fd or ring.
 * Keep it last so the other modes keep their values. */
enum chan_mode { CHAN_CLASSIC, CHAN_XFUSE, CHAN_URING, CHAN_TEST };

struct vfs_chan;

struct vfs_req {
    struct vfs_chan *chan;
    struct fuse_msg m;
    struct vfs_ctx ctx;
    _Atomic int busy;        /* slot holds a request not yet answered */
    _Atomic uint64_t unique; /* for INTERRUPT lookup by other channels */
    _Atomic int interrupted;

    /* dev transports: the frame; uring: the payload buffer */
    void *buf;
    size_t buf_cap;
    /* dev transports: the clone the request was read from; the kernel
     * keeps it on that fd's processing list, so the reply goes there */
    int reply_fd;
    /* dev transports: reply payload area, allocated on first use */
    void *reply_buf;
    /* uring: the entry's header area */
    struct fuse_uring_req_header *hdr;

    /* handoff (handoff.h): the kernel fh slot this request names (READ,
     * RELEASE…) or reserved for the handle it opens (OPEN, CREATE, OPENDIR) */
    uint64_t kfh;
    struct ho_rec *rec;   /* this slot's request record, NULL if none */
    uint8_t resend;       /* kernel resent it after a crash */
    uint8_t tolerant;     /* resent and possibly applied already: see takeover.c */
    uint32_t count_skip;  /* entries of its reply the previous daemon counted
                           * (UINT32_MAX: all of them) */

    vfs_aio_cb aio_cb;
    void *aio_arg;
    struct vfs_req *mbox_next; /* uring: answered by a foreign thread */

    /* CHAN_TEST only: what vfs_send() was asked to send */
    int test_nreplies;
    int test_error;
    size_t test_len;
};

struct vfs_chan {
    struct vfs_session *s;
    int idx;
    enum chan_mode mode;
    int fd;    /* /dev/fuse fd (cloned) this channel reads or registers on */
    int fd_block; /* xfuse: a second, blocking clone for the sleeping read */
    int aio_inflight; /* backend I/O queued on this channel's ring */
    int qid;   /* uring queue id (= CPU) */
    pthread_t thread;
    int thread_started;

    struct io_uring ring; /* aio (all modes) and FUSE commands (uring) */
    int ring_ok;
    unsigned sq_pending;

    struct vfs_req *slots;
    int nslots;
    int free_hint;

    int efd; /* eventfd: wakes the channel for foreign replies */
    int efd_armed;
    int poll_armed;
    uint64_t efd_val;
    pthread_mutex_t mbox_lock;
    struct vfs_req *mbox;

    struct adaptive_wait aw;
    uint64_t spin_start; /* when the current busy-wait began; 0 = not spinning */
    int spinning;        /* uring: -1 once the queue is torn down */

    /* stats (owned by the channel thread) */
    uint64_t nreq;
};

struct vfs_session {
    const struct vfs_ops *ops;
    void *fs;
    struct vfs_session_opts o;
    char *mountpoint;
    int devfd;
    int mounted_with_fusermount;

    /* negotiated */
    uint32_t proto_minor;
    uint64_t kernel_flags;
    uint64_t flags;
    enum vfs_transport active;

    struct vfs_chan *chans[VFS_MAX_CHANNELS];
    int nchans;
    _Atomic int spinners;
    _Atomic uint64_t kernel_hb; /* ThreadSanitizer builds only, see kernel_hb_*() */
    /* xfuse channel selection: the leader watches /dev/fuse (spins or
     * polls); followers sleep until load recruits them (see chan_dev.c) */
    _Atomic int xfuse_leader;
    _Atomic uint64_t idle_followers; /* bit i: xfuse channel i sleeps as follower */
    _Atomic int stopping;
    _Atomic int exited; /* connection gone */
    int stop_pipe[2];
    pthread_t dev_reader; /* uring mode: /dev/fuse reader beside the rings */
    int dev_reader_started;

    /* handoff: the shared state region, and the keeper link (takeover.c) */
    struct ho_region *ho;
    int ho_full_warned;
    struct fr_state *fr;  /* forget_recovery.h, after a crash; NULL otherwise */
    size_t prefault_left; /* request-buffer bytes still to fault in (keeper mode) */
    int keeper_fd;        /* -1 without a keeper */
    int keeper_mode;      /* enum kp_mode of this daemon */
    uint64_t generation;
    int old_region_fd;    /* restart: the dead daemon's region */
    int old_chans[256];   /* restart: its channel fds (dups held by the keeper) */
    int nold_chans;
    struct ho_imported imported; /* records of requests the predecessor took */
    _Atomic int paused;   /* draining for an upgrade: channels park */
    _Atomic int handed_over; /* a successor serves: leave without unmounting */
    pthread_mutex_t park_lock;
    pthread_cond_t park_cond;
    int parked;
};

/* The kernel orders FUSE traffic: a request it sends after receiving a
 * reply (FORGET after the last operation on a node, RELEASE after the last
 * WRITE on a handle) happens after that reply. ThreadSanitizer cannot see
 * through the kernel, so sanitizer builds model this edge with a release on
 * every reply and an acquire on every request; other builds compile it out
 * (it would be a cache line shared by all channels). */
#if defined(__SANITIZE_THREAD__)
#define VFS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VFS_TSAN 1
#endif
#endif
static inline void kernel_hb_release(struct vfs_session *s)
{
#ifdef VFS_TSAN
    atomic_fetch_add_explicit(&s->kernel_hb, 1, memory_order_release);
#else
    (void)s;
#endif
}
static inline void kernel_hb_acquire(struct vfs_session *s)
{
#ifdef VFS_TSAN
    (void)atomic_load_explicit(&s->kernel_hb, memory_order_acquire);
#else
    (void)s;
#endif
}

/* takeover.c: channels call chan_pause_point() before taking new
 * requests; it parks the thread while the session is paused. */
void chan_park(struct vfs_chan *c);
static inline void chan_pause_point(struct vfs_chan *c)
{
    if (__builtin_expect(atomic_load_explicit(&c->s->paused, memory_order_relaxed), 0))
        chan_park(c);
}
/* Before dispatch: request record, resend detection. After an answer has
 * been built: node counting and handle bookkeeping (see handoff.h). */
void ho_before_dispatch(struct vfs_req *r);
/* Returns 1 when the reply was taken over (a tolerant resend re-dispatched). */
int ho_on_reply(struct vfs_req *r, int error, const void *payload, size_t len);
/* Lookup references handed to the kernel by an entry / a READDIRPLUS
 * buffer; an open reply's backend fh becomes the kernel fh returned. */
void ho_count_entry(struct vfs_req *r, uint64_t nodeid);
void ho_count_direntplus(struct vfs_req *r, const void *buf, size_t len);
uint64_t ho_open_reply(struct vfs_req *r, uint64_t backend_fh, int is_dir, uint64_t ino);
/* The backend fh of kfh for request r, or -1 after answering EBADF. */
int ho_backend_fh(struct vfs_req *r, uint64_t kfh, uint64_t *bfh);

/* dispatch.c */
void vfs_dispatch(struct vfs_req *r);
void vfs_handle_interrupt(struct vfs_session *s, uint64_t unique);

/* reply.c: transport-independent send */
void vfs_send(struct vfs_req *r, int error, const void *payload, size_t len);

/* transports */
int chan_dev_start(struct vfs_chan *c);
void chan_dev_send(struct vfs_req *r, const struct fuse_out_header *oh, const void *payload,
                   size_t len);
int chan_uring_setup(struct vfs_session *s);
void chan_uring_send(struct vfs_req *r, const struct fuse_out_header *oh, const void *payload,
                     size_t len);
void *chan_dev_reader_main(void *arg);

/* common channel helpers (chan_common.c) */
int chan_ring_init(struct vfs_chan *c, unsigned entries, unsigned flags);
void chan_reap(struct vfs_chan *c, struct io_uring_cqe *cqe);
int chan_process_mbox(struct vfs_chan *c);
void chan_arm_wake(struct vfs_chan *c);
void chan_flush_sq(struct vfs_chan *c);
void chan_free(struct vfs_chan *c);
/* Adaptive busy-wait of an idle channel: returns 1 while it should keep
 * spinning (starting a spin if the budget and a free core allow), 0 when
 * it should sleep (a spin that ran out counts as a miss). */
int chan_spin_should_continue(struct vfs_chan *c);
/* Work arrived (hit = 1) or the channel stops: end the current spin. */
void chan_spin_end(struct vfs_chan *c, int hit);
extern _Thread_local struct vfs_chan *vfs_current_chan;

#endif
