/* keeper_proto.c — see keeper_proto.h. */
#include "keeper/keeper_proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"

static const char *const type_names[] = {
    "?", "HELLO", "OLDCHANS", "GO", "REGION", "CHAN", "PREPARED", "READY", "DRAIN",
    "DRAINED", "FAILED", "TAKEOVER", "REFUSED", "RESUME", "EXIT", "DROP_OLD", "UNMOUNTED",
    "CTL_UPGRADE", "CTL_STATUS", "CTL_REPLY",
};

const char *kp_type_name(uint32_t type)
{
    return type < ARRAY_SIZE(type_names) ? type_names[type] : "?";
}

void kp_control_path(int conn_id, char *buf, size_t len)
{
    snprintf(buf, len, "/run/valorfs/keeper-%d.sock", conn_id);
}

int kp_send(int sock, uint32_t type, uint32_t arg, uint64_t val, const char *text,
            const int *fds, int nfds)
{
    if (nfds < 0 || nfds > KP_MAX_FDS)
        return -EINVAL;
    struct kp_msg m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.arg = arg;
    m.val = val;
    if (text)
        snprintf(m.text, sizeof(m.text), "%s", text);
    struct iovec iov = { &m, sizeof(m) };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * KP_MAX_FDS)];
    } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds > 0) {
        memset(&u, 0, sizeof(u));
        msg.msg_control = u.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return n == (ssize_t)sizeof(m) ? 0 : -EIO;
}

int kp_check(const void *buf, size_t len)
{
    struct kp_msg m;
    if (len != sizeof(m))
        return -EPROTO;
    memcpy(&m, buf, sizeof(m));
    if (m.type == 0 || m.type >= KP_TYPE_MAX)
        return -EPROTO;
    if (memchr(m.text, '\0', sizeof(m.text)) == NULL)
        return -EPROTO;
    return 0;
}

int kp_recv(int sock, struct kp_msg *m, int *fds, int *nfds)
{
    int cap = *nfds;
    *nfds = 0;
    struct iovec iov = { m, sizeof(*m) };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * KP_MAX_FDS)];
    } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                          .msg_controllen = sizeof(u.buf) };
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    int got[KP_MAX_FDS];
    int ngot = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k && ngot < KP_MAX_FDS; i++)
            memcpy(&got[ngot++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    if (n == 0) {
        /* end of stream; an empty datagram carrying descriptors is malformed */
        for (int i = 0; i < ngot; i++)
            close(got[i]);
        return ngot ? -EPROTO : -ECONNRESET;
    }
    int bad = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || kp_check(m, (size_t)n) < 0;
    for (int i = 0; i < ngot; i++) {
        if (!bad && *nfds < cap)
            fds[(*nfds)++] = got[i];
        else
            close(got[i]);
    }
    if (bad) {
        *nfds = 0;
        return -EPROTO;
    }
    return 0;
}
