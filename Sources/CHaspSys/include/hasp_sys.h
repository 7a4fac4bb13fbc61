#ifndef HASP_SYS_H
#define HASP_SYS_H
#include <stddef.h>
#include <sys/types.h>

/// Sends `len` bytes plus `nfds` descriptors in one message. Returns bytes sent or -1 (errno set).
ssize_t hasp_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);
/* The same with extra sendmsg flags (MSG_DONTWAIT: fail with EAGAIN rather than block). */
ssize_t hasp_send_fds_flags(int sock, const void *buf, size_t len, const int *fds, int nfds, int flags);
/// Receives up to `len` bytes and up to `maxfds` descriptors (CLOEXEC). `*nfds` gets the count.
ssize_t hasp_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds);
/// Sets the parent-death signal of the calling thread's process.
int hasp_set_pdeathsig(int sig);
/// Closes every descriptor >= lowfd.
void hasp_closefrom(int lowfd);


#include <spawn.h>
/// Adds "close every descriptor >= lowfd" to spawn file actions (glibc >= 2.34).
int hasp_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int lowfd);
/// The POSIX_SPAWN_SETSID flag value, hidden from Swift behind _GNU_SOURCE.
short hasp_spawn_setsid_flag(void);
/// Keeps freed heap memory instead of trimming and regrowing it for every connection.
void hasp_tune_malloc(void);
/// An anonymous in-memory file (memfd), close-on-exec; -1 on error.
int hasp_memfd(const char *name);
/// Sets or clears FD_CLOEXEC.
int hasp_set_cloexec(int fd, int on);
/// execv() wrapper: replaces the process image (returns only on error).
int hasp_execv(const char *path, char *const argv[]);
/// Installs a handler for each signal that writes its number to a pipe, unblocks them, and
/// returns the pipe's (blocking) read end; the same pipe serves every call.
int hasp_signals_install(const int *sigs, int count);
/// Blocks these signals in the calling thread (they stay pending, also across exec).
void hasp_signals_block(const int *sigs, int count);
/// crypt(3) of `key` with `setting` (a full hash works as the setting), thread-safe; writes
/// at most `outlen` bytes to `out` with a final NUL. Returns 0, or -1 when libcrypt refuses.
int hasp_crypt(const char *key, const char *setting, char *out, size_t outlen);

#endif
