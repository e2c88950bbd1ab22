/* System calls without a trap: libc's wrappers of the calls a served request makes,
 * replaced at link time (ld --wrap, hvt_direct.h's list) by calls straight into the
 * guest runtime.
 *
 * Under this machine's KVM every `syscall` instruction is a trap through the host
 * (35-50 us, see plugins/solo5/README.md), although the runtime that serves it lives
 * in the same address space, at the same privilege, as the caller.  examples/http made
 * 19 of them per request (the store's stat/open/read/close of the file, the TAP's
 * reads and writev, epoll_wait, getpid).  These wrappers call hvt_direct() (runtime.c)
 * instead, which serves the call as the trap would have; it answers HVT_DIRECT_TRAP
 * when the call must take the real path (a signal is pending: only a trap's exit can
 * run its handler; --trace; a call it does not serve directly), and the wrapper then
 * makes the real system call.  errno and the return value are libc's.
 *
 * Linked into unikernels built against glibc only (hvtfs.link); compiled with libc's
 * headers, unlike the freestanding runtime.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#include "hvt_direct.h"

long hvt_direct(long nr, long a, long b, long c, long d);

static long call(long nr, long a, long b, long c, long d)
{
    long r = hvt_direct(nr, a, b, c, d);
    if (r == HVT_DIRECT_TRAP)
        return syscall(nr, a, b, c, d);
    if (r < 0 && r > -4096) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

#define L(x) ((long)(x))
/* libc's other spelling of the same call (on x86_64, open and open64 are one function) */
#define ALIAS(name, of) __typeof__(of) name __attribute__((alias(#of)))

ssize_t __wrap_read(int fd, void *buf, size_t n);
ssize_t __wrap_read(int fd, void *buf, size_t n) { return call(SYS_read, fd, L(buf), L(n), 0); }
ssize_t __wrap_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n) { return call(SYS_write, fd, L(buf), L(n), 0); }
ssize_t __wrap_readv(int fd, const struct iovec *iov, int cnt);
ssize_t __wrap_readv(int fd, const struct iovec *iov, int cnt) { return call(SYS_readv, fd, L(iov), cnt, 0); }
ssize_t __wrap_writev(int fd, const struct iovec *iov, int cnt);
ssize_t __wrap_writev(int fd, const struct iovec *iov, int cnt) { return call(SYS_writev, fd, L(iov), cnt, 0); }
ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t at);
ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t at) { return call(SYS_pread64, fd, L(buf), L(n), at); }
int __wrap_close(int fd);
int __wrap_close(int fd) { return (int)call(SYS_close, fd, 0, 0, 0); }
off_t __wrap_lseek64(int fd, off_t off, int whence);
off_t __wrap_lseek64(int fd, off_t off, int whence) { return call(SYS_lseek, fd, off, whence, 0); }
int __wrap_dup(int fd);
int __wrap_dup(int fd) { return (int)call(SYS_dup, fd, 0, 0, 0); }
pid_t __wrap_getpid(void);
pid_t __wrap_getpid(void) { return (pid_t)call(SYS_getpid, 0, 0, 0, 0); }

int __wrap_fstat64(int fd, struct stat *st);
int __wrap_fstat64(int fd, struct stat *st) { return (int)call(SYS_newfstatat, fd, L(""), L(st), AT_EMPTY_PATH); }
int __wrap_stat64(const char *path, struct stat *st);
int __wrap_stat64(const char *path, struct stat *st) { return (int)call(SYS_newfstatat, AT_FDCWD, L(path), L(st), 0); }
int __wrap_lstat64(const char *path, struct stat *st);
int __wrap_lstat64(const char *path, struct stat *st)
{
    return (int)call(SYS_newfstatat, AT_FDCWD, L(path), L(st), AT_SYMLINK_NOFOLLOW);
}
int __wrap_fstatat64(int dirfd, const char *path, struct stat *st, int flags);
int __wrap_fstatat64(int dirfd, const char *path, struct stat *st, int flags)
{
    return (int)call(SYS_newfstatat, dirfd, L(path), L(st), flags);
}

/* open's and openat's mode, fcntl's and ioctl's argument: read only where the call has one */
int __wrap_open64(const char *path, int flags, ...);
int __wrap_open64(const char *path, int flags, ...)
{
    long mode = 0;
    if (flags & (O_CREAT | __O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, int);
        va_end(ap);
    }
    return (int)call(SYS_openat, AT_FDCWD, L(path), flags, mode);
}
int __wrap_openat64(int dirfd, const char *path, int flags, ...);
int __wrap_openat64(int dirfd, const char *path, int flags, ...)
{
    long mode = 0;
    if (flags & (O_CREAT | __O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, int);
        va_end(ap);
    }
    return (int)call(SYS_openat, dirfd, L(path), flags, mode);
}
int __wrap_fcntl64(int fd, int cmd, ...);
int __wrap_fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long); /* the ABI passes it in a register whether or not the command takes one */
    va_end(ap);
    return (int)call(SYS_fcntl, fd, cmd, arg, 0);
}
int __wrap_ioctl(int fd, unsigned long req, ...);
int __wrap_ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    long arg = va_arg(ap, long);
    va_end(ap);
    return (int)call(SYS_ioctl, fd, L(req), arg, 0);
}
int __wrap_isatty(int fd);
int __wrap_isatty(int fd)
{
    struct termios t;
    return call(SYS_ioctl, fd, TCGETS, L(&t), 0) == 0;
}

int __wrap_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout);
int __wrap_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    return (int)call(SYS_epoll_wait, epfd, L(ev), max, timeout);
}
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout) { return (int)call(SYS_poll, L(fds), L(n), timeout, 0); }

/* A signal action's query without a trap (CPython reads all 64 while it starts: 75 of
 * examples/hello's calls); setting one is glibc's own sigaction (its sa_restorer), as are
 * its SIGCANCEL and SIGSETXID (32, 33), which it refuses. */
int __real_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
int __wrap_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
int __wrap_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    struct { unsigned long handler, flags, restorer, mask; } k; /* the kernel's struct sigaction */
    if (act != NULL || sig == 32 || sig == 33)
        return __real_sigaction(sig, act, old);
    long r = hvt_direct(SYS_rt_sigaction, sig, 0, L(&k), 8);
    if (r == HVT_DIRECT_TRAP)
        return __real_sigaction(sig, act, old);
    if (r < 0) {
        errno = (int)-r;
        return -1;
    }
    if (old) {
        memset(old, 0, sizeof *old);
        old->sa_handler = (void (*)(int))k.handler;
        old->sa_flags = (int)k.flags;
        old->sa_restorer = (void (*)(void))k.restorer;
        memcpy(&old->sa_mask, &k.mask, sizeof k.mask);
    }
    return 0;
}

ALIAS(__wrap_pread, __wrap_pread64);
ALIAS(__wrap_lseek, __wrap_lseek64);
ALIAS(__wrap_fstat, __wrap_fstat64);
ALIAS(__wrap_stat, __wrap_stat64);
ALIAS(__wrap_lstat, __wrap_lstat64);
ALIAS(__wrap_fstatat, __wrap_fstatat64);
ALIAS(__wrap_open, __wrap_open64);
ALIAS(__wrap_openat, __wrap_openat64);
ALIAS(__wrap_fcntl, __wrap_fcntl64);
