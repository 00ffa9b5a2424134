/* transport_tcp.c — the TCP implementation of transport.h.
 *
 * Sockets are non-blocking and close-on-exec; TCP_NODELAY because RPC frames
 * are latency-bound request/response traffic; keepalive so dead peers are
 * detected; SO_REUSEADDR on listeners so a
 * restarted service can bind while old connections sit in TIME_WAIT.
 */
#include "rpc/transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void rpc_format_sockaddr(const struct sockaddr *sa, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(out, len, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(out, len, "[%s]:%u", host, port);
    } else {
        snprintf(out, len, "unknown");
    }
}

/* Connected sockets: no Nagle delay, and keepalive probes so a peer that
 * vanished without a FIN/RST (power loss, partition) is noticed in ~25 s
 * instead of never, failing the calls in flight on it. */
static void set_stream_opts(int fd)
{
    int one = 1, idle = 10, intvl = 5, cnt = 3;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static int tcp_listen(const struct sockaddr *addr, socklen_t len, int backlog, uint16_t *port)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, addr, len) < 0 || listen(fd, backlog) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && port) {
        if (ss.ss_family == AF_INET)
            *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
}

static int tcp_accept(int lfd, char *peer, size_t peer_len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    set_stream_opts(fd);
    if (peer)
        rpc_format_sockaddr((struct sockaddr *)&ss, peer, peer_len);
    return fd;
}

static int tcp_connect_start(const struct sockaddr *addr, socklen_t len)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    set_stream_opts(fd);
    if (connect(fd, addr, len) < 0 && errno != EINPROGRESS) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static int tcp_connect_finish(int fd)
{
    int err = 0;
    socklen_t el = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        return -errno;
    if (err)
        return -err;
    /* SO_ERROR is 0 both when connected and while still pending. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
        return errno == ENOTCONN ? -EINPROGRESS : -errno;
    return 0;
}

static ssize_t tcp_readv(int fd, const struct iovec *iov, int iovcnt)
{
    ssize_t n = iovcnt == 1 ? read(fd, iov[0].iov_base, iov[0].iov_len) : readv(fd, iov, iovcnt);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

static ssize_t tcp_writev(int fd, const struct iovec *iov, int iovcnt)
{
    /* sendmsg with MSG_NOSIGNAL: a peer that went away must not SIGPIPE us. */
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = (struct iovec *)iov;
    mh.msg_iovlen = (size_t)iovcnt;
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

static void tcp_shutdown(int fd) { (void)shutdown(fd, SHUT_RDWR); }
static void tcp_close(int fd) { close(fd); }

static void tcp_peer_name(int fd, char *out, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        rpc_format_sockaddr((struct sockaddr *)&ss, out, len);
    else
        snprintf(out, len, "unknown");
}

const struct rpc_transport rpc_transport_tcp = {
    .name = "tcp",
    .listen = tcp_listen,
    .accept = tcp_accept,
    .connect_start = tcp_connect_start,
    .connect_finish = tcp_connect_finish,
    .readv = tcp_readv,
    .writev = tcp_writev,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
    .peer_name = tcp_peer_name,
};
