/* A freestanding guest for hvt's runtime: raw Linux system calls through the runtime's
 * `syscall` entry, each checked; prints "ok NAME" per check and exits with the number
 * of failures (or with argv[1] when given, for the exit-status test).  Built without
 * libc or SSE (-ffreestanding -mgeneral-regs-only) so that it runs even where KVM
 * emulates the guest instruction by instruction. */
#include <stdint.h>

typedef long i64;

static i64 sys(i64 nr, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f)
{
    i64 ret;
    register i64 r10 __asm__("r10") = d;
    register i64 r8 __asm__("r8") = e;
    register i64 r9 __asm__("r9") = f;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#define S0(n) sys(n, 0, 0, 0, 0, 0, 0)
#define S1(n, a) sys(n, (i64)(a), 0, 0, 0, 0, 0)
#define S2(n, a, b) sys(n, (i64)(a), (i64)(b), 0, 0, 0, 0)
#define S3(n, a, b, c) sys(n, (i64)(a), (i64)(b), (i64)(c), 0, 0, 0)
#define S4(n, a, b, c, d) sys(n, (i64)(a), (i64)(b), (i64)(c), (i64)(d), 0, 0)

static i64 len(const char *s) { i64 n = 0; while (s[n]) n++; return n; }
static void out(const char *s) { S3(1, 1, s, len(s)); }
static int eq(const char *a, const char *b, i64 n) { for (i64 i = 0; i < n; i++) if (a[i] != b[i]) return 0; return 1; }

static int failures;
static void check(int ok, const char *name)
{
    out(ok ? "ok " : "FAIL ");
    out(name);
    out("\n");
    failures += !ok;
}

static i64 atoi_(const char *s) { i64 v = 0; while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0'); return v; }

int main(int argc, char **argv);
int main(int argc, char **argv)
{
    if (argc > 1)
        return (int)atoi_(argv[1]);
    /* console: write and writev */
    struct { const char *base; i64 len; } iov[2] = {{"writev ", 7}, {"works\n", 6}};
    check(S3(20, 1, iov, 2) == 13, "writev");
    /* clocks */
    i64 ts[2] = {0, 0}, ts2[2] = {0, 0};
    check(S2(228, 1, ts) == 0 && (ts[0] || ts[1]), "clock_gettime monotonic");
    check(S2(228, 0, ts2) == 0 && ts2[0] > 1600000000, "clock_gettime realtime");
    /* a 20 ms sleep through the poll hypercall */
    i64 req[2] = {0, 20000000}, before[2], after[2];
    S2(228, 1, before);
    S2(35, req, 0);
    S2(228, 1, after);
    i64 slept = (after[0] - before[0]) * 1000000000 + (after[1] - before[1]);
    check(slept >= 20000000, "nanosleep");
    /* randomness */
    uint64_t r1[4] = {0}, r2[4] = {0};
    check(S3(318, r1, 32, 0) == 32 && S3(318, r2, 32, 0) == 32 && (r1[0] != r2[0] || r1[1] != r2[1]), "getrandom");
    /* the in-memory filesystem */
    i64 fd = S4(257, -100, "/app/hello.txt", 0, 0);
    char buf[256];
    check(fd >= 3, "openat");
    check(S3(0, fd, buf, sizeof buf) == 14 && eq(buf, "hello, world!\n", 14), "read");
    check(S3(0, fd, buf, sizeof buf) == 0, "read at end of file");
    check(S3(8, fd, 7, 0) == 7 && S3(0, fd, buf, 5) == 5 && eq(buf, "world", 5), "lseek");
    uint64_t st[18];
    check(S2(5, fd, st) == 0 && st[6] == 14 && (st[3] & 0170000) == 0100000, "fstat");
    check(S1(3, fd) == 0 && S1(3, fd) == -9, "close, then EBADF");
    check(S4(257, -100, "/app/missing", 0, 0) == -2, "openat ENOENT");
    check(S4(257, -100, "/app/hello.txt", 1, 0) == -30, "openat for writing: EROFS");
    check(S4(262, -100, "/app/../app/./sub", st, 0) == 0 && (st[3] & 0170000) == 0040000, "newfstatat a directory");
    check(S2(80, "/app", 0) == 0 && S4(257, -100, "sub/b.txt", 0, 0) >= 3, "chdir, relative openat");
    i64 dfd = S4(257, -100, "/app", 0200000, 0);
    char names[512];
    i64 n = S3(217, dfd, names, sizeof names), found = 0;
    for (i64 off = 0; off < n;) {
        char *name = names + off + 19;
        found += (len(name) == 9 && eq(name, "hello.txt", 9)) + (len(name) == 3 && eq(name, "sub", 3));
        off += *(uint16_t *)(names + off + 16);
    }
    check(n > 0 && found == 2 && S3(217, dfd, names, sizeof names) == 0, "getdents64");
    dfd = S4(257, -100, "/app/sub", 0200000, 0); /* its siblings sub-1.0.dist-info, sub.py sort before sub/b.txt */
    n = S3(217, dfd, names, sizeof names);
    check(n > 0 && len(names + 19) == 5 && eq(names + 19, "b.txt", 5) && *(uint16_t *)(names + 16) == n,
          "getdents64 past siblings that sort before the directory's entries");
    /* memory */
    i64 brk0 = S1(12, 0);
    check(brk0 > 0 && S1(12, brk0 + 65536) == brk0 + 65536, "brk");
    *(volatile char *)(brk0 + 65535) = 1;
    i64 m = sys(9, 0, 1 << 20, 3, 0x22, -1, 0);
    check(m > 0 && !(m & 4095) && ((volatile char *)m)[12345] == 0, "mmap anonymous (zeroed)");
    ((volatile char *)m)[12345] = 7;
    check(S2(11, m, 1 << 20) == 0, "munmap");
    i64 m2 = sys(9, 0, 1 << 20, 3, 0x22, -1, 0);
    check(m2 == m && ((volatile char *)m2)[12345] == 0, "mmap reuses freed pages, zeroed");
    /* a socketpair and epoll: asyncio's self-pipe */
    int sv[2];
    check(S4(53, 1, 1 | 04000, 0, sv) == 0, "socketpair");
    i64 ep = S1(291, 0);
    struct __attribute__((packed)) { uint32_t events; uint64_t data; } ev = {1, 42}, got[4];
    check(ep >= 3 && S4(233, ep, 1, sv[0], &ev) == 0, "epoll_create1, epoll_ctl");
    check(S4(232, ep, got, 4, 0) == 0, "epoll_wait: nothing ready");
    check(sys(44, sv[1], (i64)"x", 1, 0, 0, 0) == 1, "sendto");
    check(S4(232, ep, got, 4, 1000) == 1 && got[0].data == 42 && (got[0].events & 1), "epoll_wait: readable");
    check(sys(45, sv[0], (i64)buf, sizeof buf, 0, 0, 0) == 1 && buf[0] == 'x', "recvfrom");
    check(sys(45, sv[0], (i64)buf, sizeof buf, 0, 0, 0) == -11, "recvfrom: EAGAIN");
    S2(228, 1, before);
    check(S4(232, ep, got, 4, 30) == 0, "epoll_wait: timeout");
    S2(228, 1, after);
    check((after[0] - before[0]) * 1000000000 + (after[1] - before[1]) >= 30000000, "epoll_wait slept");
    /* what the runtime does not do */
    check(S0(57) == -38, "fork: ENOSYS");
    check(S3(41, 2, 1, 0) == -38, "socket: ENOSYS");
    char uts[390];
    check(S1(63, uts) == 0 && eq(uts + 65 * 4, "x86_64", 6), "uname");
    check(S2(158, 0x1002, 0x123000) == 0, "arch_prctl ARCH_SET_FS");
    return failures;
}

__asm__(".globl _start\n_start:\n mov (%rsp), %rdi\n lea 8(%rsp), %rsi\n call main\n mov %eax, %edi\n"
        " mov $231, %eax\n syscall\n hlt\n");
