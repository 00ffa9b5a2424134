/* mount.c — see mount.h. */
#include "fuse/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"

static int recv_fd(int sock)
{
    char byte;
    struct iovec iov = { &byte, 1 };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                          .msg_controllen = sizeof(u.buf) };
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -EIO;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (c == NULL || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
        return -EIO;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

static int mount_with_fusermount(const char *mountpoint, const char *fsname,
                                 const char *subtype, const char *opts)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return -errno;
    char all[1024];
    snprintf(all, sizeof(all), "fsname=%s,subtype=%s%s%s", fsname, subtype,
             opts && *opts ? "," : "", opts ? opts : "");
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return -errno;
    }
    if (pid == 0) {
        char env[32];
        close(sv[0]);
        snprintf(env, sizeof(env), "%d", sv[1]);
        setenv("_FUSE_COMMFD", env, 1);
        execlp("fusermount3", "fusermount3", "-o", all, "--", mountpoint, (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    int fd = recv_fd(sv[0]);
    close(sv[0]);
    int status;
    waitpid(pid, &status, 0);
    if (fd < 0)
        return -EPERM;
    return fd;
}

int fuse_mount_dir(const char *mountpoint, const char *fsname, const char *subtype,
                   const char *opts, int *used_fusermount)
{
    struct stat st;
    *used_fusermount = 0;
    if (stat(mountpoint, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if (geteuid() != 0) {
        *used_fusermount = 1;
        return mount_with_fusermount(mountpoint, fsname, subtype, opts);
    }
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char data[1024], type[64];
    snprintf(data, sizeof(data), "fd=%d,rootmode=%o,user_id=%u,group_id=%u%s%s", fd,
             st.st_mode & S_IFMT, getuid(), getgid(), opts && *opts ? "," : "",
             opts ? opts : "");
    snprintf(type, sizeof(type), "fuse.%s", subtype);
    if (mount(fsname, mountpoint, type, MS_NOSUID | MS_NODEV, data) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int fuse_unmount_dir(const char *mountpoint, int used_fusermount)
{
    if (used_fusermount) {
        pid_t pid = fork();
        if (pid == 0) {
            execlp("fusermount3", "fusermount3", "-u", "-z", "--", mountpoint, (char *)NULL);
            _exit(127);
        }
        int status = 0;
        if (pid > 0)
            waitpid(pid, &status, 0);
        return (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) ? 0 : -EIO;
    }
    if (umount2(mountpoint, MNT_DETACH) < 0)
        return -errno;
    return 0;
}

int fuse_mount_conn_id(const char *mountpoint)
{
    char real[4096];
    if (realpath(mountpoint, real) == NULL)
        snprintf(real, sizeof(real), "%s", mountpoint);
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return -1;
    char line[8192];
    int id = -1;
    while (fgets(line, sizeof(line), f)) {
        unsigned maj, min;
        char mnt[4096];
        /* id parent major:minor root mountpoint ... - fstype */
        if (sscanf(line, "%*d %*d %u:%u %*s %4095s", &maj, &min, mnt) != 3)
            continue;
        if (strcmp(mnt, real) == 0 && strstr(line, " - fuse") != NULL)
            id = (int)min; /* the last match is the top of the stack */
    }
    fclose(f);
    return id;
}

int fuse_set_read_ahead(int conn_id, unsigned kb)
{
    char path[64], val[16];
    snprintf(path, sizeof(path), "/sys/class/bdi/0:%d/read_ahead_kb", conn_id);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int n = snprintf(val, sizeof(val), "%u", kb);
    int rc = write(fd, val, (size_t)n) == n ? 0 : -errno;
    close(fd);
    return rc;
}

void fuse_abort_conn(int conn_id)
{
    if (conn_id < 0)
        return;
    char path[128];
    snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%d/abort", conn_id);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 && geteuid() == 0) {
        mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL);
        fd = open(path, O_WRONLY | O_CLOEXEC);
    }
    if (fd < 0)
        return;
    ssize_t w = write(fd, "1", 1);
    (void)w;
    close(fd);
}
