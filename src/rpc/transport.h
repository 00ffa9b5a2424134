/* transport.h — the byte-stream transport under the RPC layer.
 *
 * Contract. A transport hands out non-blocking file descriptors that the
 * event loop can poll (epoll); every operation returns -errno on failure and
 * never blocks. TCP is the only implementation today; an RDMA/UCX transport
 * would provide the same operations over its own completion channel fd.
 */
#ifndef VALORFS_RPC_TRANSPORT_H
#define VALORFS_RPC_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct rpc_transport {
    const char *name;
    /* Bind and listen on addr; returns the listening fd; *port gets the bound port. */
    int (*listen)(const struct sockaddr *addr, socklen_t len, int backlog, uint16_t *port);
    /* Accept one connection (non-blocking fd) or -EAGAIN; peer gets "host:port". */
    int (*accept)(int lfd, char *peer, size_t peer_len);
    /* Start a non-blocking connect; returns the fd (connect may still be in
     * progress: wait for writability, then call connect_finish). */
    int (*connect_start)(const struct sockaddr *addr, socklen_t len);
    /* 0 once connected, -EINPROGRESS while pending, or the connect error. */
    int (*connect_finish)(int fd);
    ssize_t (*readv)(int fd, const struct iovec *iov, int iovcnt);
    ssize_t (*writev)(int fd, const struct iovec *iov, int iovcnt);
    /* Make the peer and our own poller see EOF without releasing the fd
     * (safe from any thread while another thread may still poll it). */
    void (*shutdown)(int fd);
    void (*close)(int fd);
    void (*peer_name)(int fd, char *out, size_t len);
};

extern const struct rpc_transport rpc_transport_tcp;

/* "ip:port" of a socket address, for logs. */
void rpc_format_sockaddr(const struct sockaddr *sa, char *out, size_t len);

#endif
