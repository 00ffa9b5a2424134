/* test_keeper_proto.c — kp_send/kp_recv over a SOCK_SEQPACKET socketpair:
 * messages with 0, 1 and KP_MAX_FDS descriptors arrive intact and the
 * descriptors name the same files; malformed datagrams (wrong size,
 * unknown type, unterminated text, too many descriptors for the caller)
 * are refused with -EPROTO or trimmed, and no descriptor they carried
 * stays open; EOF is -ECONNRESET; kp_control_path is as documented. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keeper/keeper_proto.h"

#include "common/test_check.h"

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        perror("/proc/self/fd");
        exit(1);
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n - 1; /* opendir's own */
}

static void pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("socketpair");
        exit(1);
    }
}

static ino_t ino_of(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* n distinct files (memfds, each its own inode) */
static void make_files(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "kp-test-%d", i);
        fds[i] = memfd_create(name, MFD_CLOEXEC);
        if (fds[i] < 0) {
            perror("memfd_create");
            exit(1);
        }
    }
}

static void close_all(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

static void test_roundtrip(int nfds)
{
    int sv[2];
    pair(sv);
    int sent[KP_MAX_FDS];
    make_files(sent, nfds);
    int before = count_fds();
    CHECK(kp_send(sv[0], KP_CHAN, 5, 0x1122334455667788ull, "hello text", sent, nfds) == 0);
    struct kp_msg m;
    int got[KP_MAX_FDS];
    int n = KP_MAX_FDS;
    CHECK(kp_recv(sv[1], &m, got, &n) == 0);
    CHECK(m.type == KP_CHAN && m.arg == 5 && m.val == 0x1122334455667788ull);
    CHECK(strcmp(m.text, "hello text") == 0);
    CHECK(n == nfds);
    for (int i = 0; i < n && i < nfds; i++) {
        CHECK(got[i] != sent[i]);
        CHECK(ino_of(got[i]) == ino_of(sent[i]) && ino_of(got[i]) != 0);
        CHECK(fcntl(got[i], F_GETFD) & FD_CLOEXEC);
    }
    CHECK(count_fds() == before + n);
    close_all(got, n);
    CHECK(count_fds() == before);
    close_all(sent, nfds);
    close(sv[0]);
    close(sv[1]);
}

/* The receiver takes fewer descriptors than came: the rest are closed. */
static void test_fewer_slots(void)
{
    int sv[2];
    pair(sv);
    int sent[4];
    make_files(sent, 4);
    int before = count_fds();
    CHECK(kp_send(sv[0], KP_OLDCHANS, 0, 0, NULL, sent, 4) == 0);
    struct kp_msg m;
    int got[KP_MAX_FDS];
    int n = 2;
    CHECK(kp_recv(sv[1], &m, got, &n) == 0);
    CHECK(n == 2 && m.type == KP_OLDCHANS && m.text[0] == '\0');
    CHECK(ino_of(got[0]) == ino_of(sent[0]) && ino_of(got[1]) == ino_of(sent[1]));
    CHECK(count_fds() == before + 2);
    close_all(got, n);
    close_all(sent, 4);
    close(sv[0]);
    close(sv[1]);
}

static void test_limits(void)
{
    int sv[2];
    pair(sv);
    int fds[KP_MAX_FDS + 1] = { 0 };
    CHECK(kp_send(sv[0], KP_GO, 0, 0, NULL, fds, KP_MAX_FDS + 1) == -EINVAL);
    CHECK(kp_send(sv[0], KP_GO, 0, 0, NULL, fds, -1) == -EINVAL);
    /* text longer than the field is cut, still NUL-terminated */
    char big[KP_TEXT_MAX + 100];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK(kp_send(sv[0], KP_FAILED, 0, 0, big, NULL, 0) == 0);
    struct kp_msg m;
    int n = 0;
    CHECK(kp_recv(sv[1], &m, NULL, &n) == 0);
    CHECK(m.type == KP_FAILED && strlen(m.text) == KP_TEXT_MAX - 1);
    close(sv[0]);
    close(sv[1]);
}

/* Sends len raw bytes with nfds copies of fd attached. */
static void send_raw(int sock, const void *p, size_t len, int fd, int nfds)
{
    struct iovec iov = { (void *)p, len };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * 8)];
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds > 0) {
        int fds[8];
        for (int i = 0; i < nfds; i++)
            fds[i] = fd;
        msg.msg_control = u.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    if (sendmsg(sock, &msg, MSG_NOSIGNAL) != (ssize_t)len) {
        perror("sendmsg");
        exit(1);
    }
}

/* A malformed datagram with 3 descriptors: -EPROTO, none kept open. */
static void expect_refused(const char *what, const void *p, size_t len)
{
    int sv[2];
    pair(sv);
    int file;
    make_files(&file, 1);
    int before = count_fds();
    send_raw(sv[0], p, len, file, 3);
    struct kp_msg m;
    int got[KP_MAX_FDS];
    int n = KP_MAX_FDS;
    int rc = kp_recv(sv[1], &m, got, &n);
    if (rc != -EPROTO || n != 0 || count_fds() != before)
        fprintf(stderr, "refusing %s: rc %d (want %d), %d fds returned, fds %d -> %d\n", what,
                rc, -EPROTO, n, before, count_fds());
    CHECK(rc == -EPROTO);
    CHECK(n == 0);
    CHECK(count_fds() == before);
    CHECK(kp_check(p, len) == -EPROTO);
    close(file);
    close(sv[0]);
    close(sv[1]);
}

static void test_malformed(void)
{
    struct kp_msg good;
    memset(&good, 0, sizeof(good));
    good.type = KP_READY;
    snprintf(good.text, sizeof(good.text), "serving");
    CHECK(kp_check(&good, sizeof(good)) == 0);

    expect_refused("a short datagram", &good, sizeof(good) - 1);
    expect_refused("a header only", &good, 8);
    uint8_t longer[sizeof(good) + 16];
    memset(longer, 0, sizeof(longer));
    memcpy(longer, &good, sizeof(good));
    expect_refused("a datagram longer than a message", longer, sizeof(longer));

    struct kp_msg bad = good;
    bad.type = 0;
    expect_refused("type 0", &bad, sizeof(bad));
    bad.type = KP_TYPE_MAX;
    expect_refused("type KP_TYPE_MAX", &bad, sizeof(bad));
    bad.type = 0xffffffffu;
    expect_refused("type 0xffffffff", &bad, sizeof(bad));

    bad = good;
    memset(bad.text, 'z', sizeof(bad.text));
    expect_refused("unterminated text", &bad, sizeof(bad));
    bad.text[sizeof(bad.text) - 1] = '\0'; /* NUL in the last byte is fine */
    CHECK(kp_check(&bad, sizeof(bad)) == 0);
}

static void test_eof(void)
{
    int sv[2];
    pair(sv);
    close(sv[0]);
    struct kp_msg m;
    int got[KP_MAX_FDS];
    int n = KP_MAX_FDS;
    CHECK(kp_recv(sv[1], &m, got, &n) == -ECONNRESET);
    CHECK(n == 0);
    close(sv[1]);
}

/* An empty datagram reads like EOF on SEQPACKET; the descriptors it
 * carried must still not stay open in the receiver. */
static void test_empty_datagram_fds(void)
{
    int sv[2];
    pair(sv);
    int file;
    make_files(&file, 1);
    int before = count_fds();
    send_raw(sv[0], "", 0, file, 2);
    struct kp_msg m;
    int got[KP_MAX_FDS];
    int n = KP_MAX_FDS;
    int rc = kp_recv(sv[1], &m, got, &n);
    CHECK(rc == -ECONNRESET || rc == -EPROTO);
    CHECK(n == 0);
    if (count_fds() != before)
        fprintf(stderr, "empty datagram with 2 fds: rc %d, fds %d -> %d (leaked)\n", rc,
                before, count_fds());
    CHECK(count_fds() == before);
    close(file);
    close(sv[0]);
    close(sv[1]);
}

static void test_names(void)
{
    char buf[128];
    kp_control_path(3, buf, sizeof(buf));
    CHECK(strcmp(buf, "/run/valorfs/keeper-3.sock") == 0);
    kp_control_path(0, buf, sizeof(buf));
    CHECK(strcmp(buf, "/run/valorfs/keeper-0.sock") == 0);
    kp_control_path(123456, buf, sizeof(buf));
    CHECK(strcmp(buf, "/run/valorfs/keeper-123456.sock") == 0);
    char tiny[8];
    memset(tiny, 'q', sizeof(tiny));
    kp_control_path(3, tiny, sizeof(tiny)); /* truncated, terminated */
    CHECK(memchr(tiny, '\0', sizeof(tiny)) != NULL && strncmp(tiny, "/run/va", 7) == 0);

    CHECK(strcmp(kp_type_name(KP_HELLO), "HELLO") == 0);
    CHECK(strcmp(kp_type_name(KP_UNMOUNTED), "UNMOUNTED") == 0);
    CHECK(strcmp(kp_type_name(KP_CTL_REPLY), "CTL_REPLY") == 0);
    CHECK(strcmp(kp_type_name(0), "?") == 0);
    CHECK(strcmp(kp_type_name(KP_TYPE_MAX), "?") == 0);
    for (uint32_t t = 1; t < KP_TYPE_MAX; t++)
        CHECK(strcmp(kp_type_name(t), "?") != 0);
}

int main(int argc, char **argv)
{
    /* run apart (its own meson test) so its result is reported on its own */
    if (argc == 2 && strcmp(argv[1], "empty-datagram") == 0) {
        test_empty_datagram_fds();
        if (failures) {
            fprintf(stderr, "test_keeper_proto empty-datagram: %d failures\n", failures);
            return 1;
        }
        printf("test_keeper_proto empty-datagram: ok\n");
        return 0;
    }
    test_roundtrip(0);
    test_roundtrip(1);
    test_roundtrip(KP_MAX_FDS);
    test_fewer_slots();
    test_limits();
    test_malformed();
    test_eof();
    test_names();
    if (failures) {
        fprintf(stderr, "test_keeper_proto: %d failures\n", failures);
        return 1;
    }
    printf("test_keeper_proto: ok\n");
    return 0;
}
