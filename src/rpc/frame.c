/* frame.c — the RPC frame header codec, address parsing and status names.
 *
 * Depends only on libc and common/wire.h so a fuzz target can compile this
 * file alone. rpc_frame_decode_hdr() is the single decoder of untrusted
 * header bytes: it reads through struct rbuf, so it can never run past the
 * bytes it was given.
 */
#include "rpc/rpc.h"

#include "common/wire.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int rpc_frame_decode_hdr(const void *buf, size_t len, size_t max_payload,
                         struct rpc_frame_hdr *out)
{
    if (!buf || len < RPC_HDR_SIZE)
        return -EAGAIN;
    struct rbuf rb;
    rb_init(&rb, buf, RPC_HDR_SIZE);
    struct rpc_frame_hdr h;
    h.magic = rb_u32(&rb);
    h.version = rb_u8(&rb);
    h.kind = rb_u8(&rb);
    h.method = rb_u16(&rb);
    h.id = rb_u64(&rb);
    h.status = rb_i32(&rb);
    h.timeout_ms = rb_u32(&rb);
    h.payload_len = rb_u32(&rb);
    h.reserved = rb_u32(&rb);
    if (!rb_done(&rb))
        return -EPROTO;
    if (h.magic != RPC_MAGIC || h.version != RPC_VERSION)
        return -EPROTO;
    if (h.kind != RPC_KIND_REQUEST && h.kind != RPC_KIND_RESPONSE)
        return -EPROTO;
    if ((size_t)h.payload_len > max_payload)
        return -EPROTO;
    if (out)
        *out = h;
    return 0;
}

/* Fixed-size encoding without a heap buffer: the header is written on every
 * call and reply, so it must not allocate. */
static void put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void rpc_frame_encode_hdr(const struct rpc_frame_hdr *h, uint8_t out[RPC_HDR_SIZE])
{
    put_le(out + 0, h->magic, 4);
    out[4] = h->version;
    out[5] = h->kind;
    put_le(out + 6, h->method, 2);
    put_le(out + 8, h->id, 8);
    put_le(out + 16, (uint32_t)h->status, 4);
    put_le(out + 20, h->timeout_ms, 4);
    put_le(out + 24, h->payload_len, 4);
    put_le(out + 28, h->reserved, 4);
}

int rpc_parse_addr(const char *addr, struct sockaddr_storage *ss, unsigned *sslen)
{
    if (!addr || !ss || !sslen)
        return -EINVAL;
    char host[256];
    const char *port;
    size_t hlen;
    if (addr[0] == '[') { /* [v6]:port */
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        hlen = (size_t)(close - addr - 1);
        if (hlen == 0 || hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, addr + 1, hlen);
        port = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon)
            return -EINVAL;
        hlen = (size_t)(colon - addr);
        if (hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, addr, hlen);
        port = colon + 1;
    }
    host[hlen] = '\0';
    /* A port is 1..5 decimal digits and at most 65535. */
    size_t plen = strlen(port);
    if (plen == 0 || plen > 5 || strspn(port, "0123456789") != plen)
        return -EINVAL;
    unsigned long pnum = strtoul(port, NULL, 10);
    if (pnum > 65535)
        return -EINVAL;

    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (hlen == 0 ? AI_PASSIVE : 0);
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(hlen ? host : NULL, port, &hints, &res);
    if (rc != 0 || !res)
        return -EHOSTUNREACH;
    /* Prefer IPv4 when a name has both: loopback services bind 0.0.0.0. */
    struct addrinfo *pick = res;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    if (pick->ai_addrlen > sizeof(*ss)) {
        freeaddrinfo(res);
        return -EINVAL;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    *sslen = (unsigned)pick->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

const char *rpc_strerror(int status)
{
    switch (status) {
    case 0: return "ok";
    case RPC_E_TIMEOUT: return "rpc: timed out";
    case RPC_E_CONNECT: return "rpc: could not connect";
    case RPC_E_CLOSED: return "rpc: connection lost";
    case RPC_E_PROTO: return "rpc: protocol error";
    case RPC_E_NOMETHOD: return "rpc: no such method";
    case RPC_E_TOOBIG: return "rpc: payload too big";
    case RPC_E_BUSY: return "rpc: busy";
    case RPC_E_SHUTDOWN: return "rpc: shutting down";
    case RPC_E_BADREQ: return "rpc: bad request";
    default:
        break;
    }
    if (status > 0)
        return strerror(status);
    return "rpc: unknown error";
}
