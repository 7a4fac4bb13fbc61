#define _GNU_SOURCE
#include "hasp_sys.h"
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <spawn.h>
#include <malloc.h>
#include <sys/mman.h>
#include <signal.h>
#include <pthread.h>
#include <fcntl.h>

#define HASP_MAX_FDS 253

ssize_t hasp_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds) {
    return hasp_send_fds_flags(sock, buf, len, fds, nfds, 0);
}

ssize_t hasp_send_fds_flags(int sock, const void *buf, size_t len, const int *fds, int nfds, int flags) {
    if (nfds < 0 || nfds > HASP_MAX_FDS) { errno = EINVAL; return -1; }
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    char control[CMSG_SPACE(sizeof(int) * HASP_MAX_FDS)];
    if (nfds > 0) {
        memset(control, 0, sizeof(control));
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    }
    ssize_t n;
    do { n = sendmsg(sock, &msg, MSG_NOSIGNAL | flags); } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t hasp_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds) {
    *nfds = 0;
    if (maxfds < 0 || maxfds > HASP_MAX_FDS) { errno = EINVAL; return -1; }
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    char control[CMSG_SPACE(sizeof(int) * HASP_MAX_FDS)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n;
    do { n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n < 0) return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            int *received = (int *)CMSG_DATA(c);
            for (int i = 0; i < count; i++) {
                if (*nfds < maxfds) fds[(*nfds)++] = received[i];
                else close(received[i]);   /* never leak a descriptor we cannot report */
            }
        }
    }
    return n;
}

int hasp_set_pdeathsig(int sig) { return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0); }

void hasp_closefrom(int lowfd) { closefrom(lowfd); }

int hasp_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int lowfd) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowfd);
}

short hasp_spawn_setsid_flag(void) { return POSIX_SPAWN_SETSID; }

void hasp_tune_malloc(void) {
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 4 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
}

int hasp_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int hasp_set_cloexec(int fd, int on) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -1;
    flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
    return fcntl(fd, F_SETFD, flags);
}

int hasp_execv(const char *path, char *const argv[]) { return execv(path, argv); }

static int hasp_signal_pipe[2] = { -1, -1 };

static void hasp_signal_handler(int sig) {
    int saved = errno;
    unsigned char byte = (unsigned char)sig;
    ssize_t ignored = write(hasp_signal_pipe[1], &byte, 1);
    (void)ignored;
    errno = saved;
}

int hasp_signals_install(const int *sigs, int count) {
    if (hasp_signal_pipe[0] < 0) {
        if (pipe2(hasp_signal_pipe, O_CLOEXEC) != 0) return -1;
        /* A full pipe must never block a handler: drop the byte instead. */
        fcntl(hasp_signal_pipe[1], F_SETFL, O_NONBLOCK);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = hasp_signal_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) {
        sigaction(sigs[i], &sa, NULL);
        sigaddset(&set, sigs[i]);
    }
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return hasp_signal_pipe[0];
}

void hasp_signals_block(const int *sigs, int count) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, sigs[i]);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

int hasp_crypt(const char *key, const char *setting, char *out, size_t outlen) {
    struct crypt_data *data = calloc(1, sizeof(struct crypt_data));
    if (data == NULL) return -1;
    const char *hash = crypt_r(key, setting, data);
    int result = -1;
    if (hash != NULL && hash[0] != '*' && strlen(hash) < outlen) {
        strcpy(out, hash);
        result = 0;
    }
    free(data);
    return result;
}
