/* fuzz_keeper_msg.c — libFuzzer target: the keeper protocol's message
 * checks (src/keeper/keeper_proto.h), which guard every datagram the
 * keeper, its daemons and the control socket's clients exchange.
 *
 * Each input is one datagram:
 *  - kp_check() on an exact-size copy (ASan sees any read past it) must
 *    agree with the contract: 0 exactly when the length is sizeof(struct
 *    kp_msg), the type is known and the text has a NUL;
 *  - the same bytes are sent over a SOCK_SEQPACKET socketpair with 0, 1 or
 *    2 descriptors attached (chosen by the input's length), and kp_recv()
 *    must return what kp_check() said (-EPROTO for anything malformed,
 *    including datagrams longer than a message), deliver exactly the
 *    descriptors sent when it accepts, and close them all when it refuses:
 *    the process's descriptor count is the same after every input.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keeper/keeper_proto.h"

#include "fuzz_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sv[2] = { -1, -1 };
static int devnull = -1;

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    FUZZ_CHECK(d != NULL);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static int expected_check(const uint8_t *p, size_t n)
{
    struct kp_msg m;
    if (n != sizeof(m))
        return -EPROTO;
    memcpy(&m, p, sizeof(m));
    if (m.type == 0 || m.type >= KP_TYPE_MAX)
        return -EPROTO;
    for (size_t i = 0; i < sizeof(m.text); i++)
        if (m.text[i] == '\0')
            return 0;
    return -EPROTO;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* room for the largest datagram libFuzzer will send (-max_len) */
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    int buf = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    FUZZ_CHECK(devnull >= 0);
    return 0;
}

static void send_raw(const uint8_t *p, size_t n, int nfds)
{
    int fds[2] = { devnull, devnull };
    struct iovec iov = { (void *)p, n };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(fds))];
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds > 0) {
        msg.msg_control = u.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t w = sendmsg(sv[0], &msg, MSG_NOSIGNAL);
    if (w < 0)
        fprintf(stderr, "sendmsg of %zu bytes: %s\n", n, strerror(errno));
    FUZZ_CHECK(w == (ssize_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data, size);
    int want = expected_check(buf, size);
    int got = kp_check(buf, size);
    FUZZ_CHECK(got == want);
    if (got == 0) {
        struct kp_msg m;
        memcpy(&m, buf, sizeof(m));
        FUZZ_CHECK(strcmp(kp_type_name(m.type), "?") != 0);
    }

    int before = count_fds();
    int nsent = (int)(size % 3);
    send_raw(buf, size, nsent);
    struct kp_msg m;
    int fds[KP_MAX_FDS];
    int nfds = KP_MAX_FDS;
    int rc = kp_recv(sv[1], &m, fds, &nfds);
    if (size == 0) {
        /* an empty datagram reads like EOF on SEQPACKET */
        FUZZ_CHECK(rc == -ECONNRESET || rc == -EPROTO);
    } else {
        FUZZ_CHECK(rc == want);
    }
    if (rc == 0) {
        FUZZ_CHECK(nfds == nsent);
        FUZZ_CHECK(memcmp(&m, buf, sizeof(m)) == 0);
        for (int i = 0; i < nfds; i++) {
            FUZZ_CHECK(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
            close(fds[i]);
        }
    } else {
        FUZZ_CHECK(nfds == 0);
    }
    int after = count_fds();
    if (after != before)
        fprintf(stderr, "descriptor leak: %d before, %d after kp_recv (rc %d, %d sent)\n",
                before, after, rc, nsent);
    FUZZ_CHECK(after == before);
    free(buf);
    return 0;
}
