/* unik's hvt guest runtime: what stands in for Linux under a static program.
 *
 * Linked into the unikernel ELF with the application (a static program against an
 * unmodified glibc).  The monitor enters hvt_boot (boot.S) in 64-bit mode at CPL 3,
 * with LSTAR at the system call entry; rt_main sets up the heap and the read-only
 * in-memory filesystem, builds a Linux process stack (argv, auxv) and jumps to libc's
 * _start.  It uses no privileged instruction (see hvt_abi.h); a guest exception ends
 * the VM and the monitor reports it.  From then on every `syscall` lands in rt_syscall, which
 * implements the subset below over the hypercalls of hvt_abi.h and answers everything
 * else with ENOSYS, naming the call once on stderr.  One thread, no processes: clone,
 * fork and execve are among the refused calls.
 *
 * Built with -ffreestanding -fno-builtin -fno-tree-loop-distribute-patterns
 * -fno-stack-protector: it runs before libc has resolved its ifuncs (memcpy) or set up
 * TLS, so it calls nothing of libc's.
 */
#include <stddef.h>
#include <stdint.h>

#include "hvt_abi.h"
#include "hvt_direct.h"
#include "sysnames.h"

/* ---- Linux constants (x86_64 uapi) ------------------------------------------------ */

enum {
    EPERM = 1, ENOENT = 2, EINTR = 4, EIO = 5, EBADF = 9, EAGAIN = 11, ENOMEM = 12, EACCES = 13,
    EFAULT = 14, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, EMFILE = 24, ENOTTY = 25,
    ESPIPE = 29, EROFS = 30, EPIPE = 32, ERANGE = 34, ENAMETOOLONG = 36, ENOSYS = 38, ENOTEMPTY = 39,
    ENODEV = 19, ETIMEDOUT = 110, ENOTSOCK = 88,
};
#define O_ACCMODE 3
#define O_CREAT 0100
#define O_EXCL 0200
#define O_TRUNC 01000
#define O_NONBLOCK 04000
#define O_DIRECTORY 0200000
#define O_CLOEXEC 02000000
#define AT_FDCWD (-100)
#define AT_EMPTY_PATH 0x1000
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFREG 0100000
#define S_IFCHR 0020000
#define S_IFIFO 0010000
#define S_IFSOCK 0140000
#define EPOLLIN 0x001
#define EPOLLOUT 0x004
#define EPOLLERR 0x008
#define EPOLLHUP 0x010
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define PAGE 4096ULL

typedef int64_t i64;
typedef uint64_t u64;
typedef uint32_t u32;
typedef uint8_t u8;

struct kstat {
    u64 dev, ino, nlink;
    u32 mode, uid, gid, pad0;
    u64 rdev;
    i64 size, blksize, blocks;
    u64 atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns;
    i64 reserved[3];
};
struct kdirent { u64 ino; i64 off; uint16_t reclen; u8 type; char name[]; };
struct iovec_ { u64 base, len; };
struct timespec_ { i64 sec, nsec; };
struct epoll_event_ { u32 events; u64 data; } __attribute__((packed));
struct pollfd_ { int fd; short events, revents; };

/* ---- basics ------------------------------------------------------------------- */

static struct hvt_boot_info *bi;
u64 rt_user_rsp;
u8 rt_kstack[65536] __attribute__((aligned(16)));
extern u8 rt_kstack_top[] __asm__("rt_kstack_top");
__asm__(".globl rt_kstack_top\n.set rt_kstack_top, rt_kstack + 65536");

static void hypercall(unsigned nr, void *arg)
{
    __asm__ volatile("movl %0, (%1)" : : "r"((u32)(uintptr_t)arg), "r"(HVT_MMIO_BASE + 8 * nr) : "memory");
}

typedef u64 __attribute__((may_alias)) u64_alias;

static void copy(void *dst, const void *src, u64 n)
{
    u8 *d = dst;
    const u8 *s = src;
    if ((((uintptr_t)d | (uintptr_t)s) & 7) == 0) /* files and frames: word by word */
        for (; n >= 8; n -= 8, d += 8, s += 8)
            *(u64_alias *)d = *(const u64_alias *)s;
    while (n--)
        *d++ = *s++;
}

static void zero(void *dst, u64 n)
{
    u8 *d = dst;
    while (n && ((uintptr_t)d & 7))
        *d++ = 0, n--;
    for (; n >= 8; n -= 8, d += 8)
        *(volatile u64 *)d = 0;
    while (n--)
        *d++ = 0;
}

static u64 slen(const char *s)
{
    u64 n = 0;
    while (s[n])
        n++;
    return n;
}

static int scmp(const char *a, u64 alen, const char *b, u64 blen)
{
    for (u64 i = 0; i < alen && i < blen; i++)
        if (a[i] != b[i])
            return (u8)a[i] - (u8)b[i];
    return alen < blen ? -1 : alen > blen;
}

static void console(int fd, const void *buf, u64 len)
{
    struct hvt_console c = {(u64)(uintptr_t)buf, len, (u32)fd, 0};
    hypercall(HVT_CONSOLE, &c);
}

/* A minimal printf to stderr: %s %d %u %x %c (longs). */
static void log_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static void log_(const char *fmt, ...)
{
    char out[512];
    u64 n = 0;
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p && n < sizeof out - 24; p++) {
        if (*p != '%') {
            out[n++] = *p;
            continue;
        }
        p++;
        if (*p == 'l')
            p++;
        if (*p == 's') {
            const char *s = va_arg(ap, const char *);
            for (; s && *s && n < sizeof out - 24; s++)
                out[n++] = *s;
        } else if (*p == 'c') {
            out[n++] = (char)va_arg(ap, int);
        } else if (*p == 'd' || *p == 'u' || *p == 'x') {
            u64 v = va_arg(ap, u64);
            unsigned base = *p == 'x' ? 16 : 10;
            if (*p == 'd' && (i64)v < 0)
                out[n++] = '-', v = (u64)(-(i64)v);
            char digits[24];
            int k = 0;
            do
                digits[k++] = "0123456789abcdef"[v % base];
            while ((v /= base) != 0);
            while (k)
                out[n++] = digits[--k];
        }
    }
    va_end(ap);
    console(2, out, n);
}

static void __attribute__((noreturn)) halt(int status)
{
    struct hvt_exit e = {status, 0};
    for (;;)
        hypercall(HVT_EXIT, &e);
}

static const char *sysname(u64 nr)
{
    return nr < HVT_NSYSCALLS && hvt_sysnames[nr] ? hvt_sysnames[nr] : "?";
}

/* ---- clocks ------------------------------------------------------------------- */

static u64 boot_ns; /* the monotonic clock when the runtime started: CPU time counts from here */
static u64 run_ns;  /* ... or resumed from a snapshot: --profile and --trace count from here */

/* Clocks: the clock hypercall anchors them, the TSC interpolates (a hypercall is a VM
 * exit, and CPython reads the clock thousands of times while it starts).  Re-anchored
 * after every wait, so the guest's monotonic clock never drifts far from the host's,
 * whose deadlines the poll hypercall takes. */
static u64 anchor_mono, anchor_wall, anchor_tsc, tsc_mult; /* ns = (tsc delta * tsc_mult) >> 32 */
/* The guest's monotonic clock is the host's plus this: 0, unless a restored snapshot's clock
 * was ahead of the host's (a snapshot made before the host's last boot): it never goes back. */
static u64 mono_offset;

static u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

/* Anchor the clocks at the host's monotonic and wall ns, read just now. */
static void anchor_at(u64 mono, u64 wall)
{
    anchor_tsc = rdtsc();
    anchor_mono = mono + mono_offset;
    anchor_wall = wall;
    bi->vclock.tsc = anchor_tsc; /* the vDSO's clock (vdso.c) */
    bi->vclock.monotonic_ns = anchor_mono;
    bi->vclock.wall_ns = anchor_wall;
    bi->vclock.mult = tsc_mult;
}

static void anchor(void)
{
    struct hvt_clock c;
    hypercall(HVT_CLOCK, &c);
    anchor_at(c.monotonic_ns, c.wall_ns);
}

static void clocks(u64 *mono, u64 *wall)
{
    u64 delta = 0;
    if (tsc_mult) {
        u64 now = rdtsc();
        delta = now > anchor_tsc ? (u64)(((unsigned __int128)(now - anchor_tsc) * tsc_mult) >> 32) : 0;
    } else {
        anchor();
    }
    if (mono)
        *mono = anchor_mono + delta;
    if (wall)
        *wall = anchor_wall + delta;
}

static u64 monotonic(void)
{
    u64 m;
    clocks(&m, NULL);
    return m;
}

/* ---- memory ------------------------------------------------------------------- */

#define STACK_SIZE HVT_STACK_SIZE
#define MAX_PAGES ((u64)HVT_MAX_GIB << 18)
static u64 bitmap[MAX_PAGES / 64]; /* pages of [heap_lo, heap_hi) in use (brk or mmap) */
static u64 heap_lo, heap_hi, brk_cur, brk_hwm;
/* The heap's pages are zero until first handed out (the monitor's memory is fresh and
 * anonymous): the break only ever used [heap_lo, brk_hwm), mmap only [mmap_lwm, heap_hi).
 * Zeroing memory the guest never had would touch pages it may never use (a first touch
 * is an exit under a shadow-paging KVM: hello's 1 MiB obmalloc arena cost 4 ms). */
static u64 mmap_lwm;
/* The memory's size when the runtime started (the stack is at its top).  A snapshot restored
 * into more memory (grow) keeps its stack there: the heap then also takes the pages above it,
 * and [reserved_lo, reserved_hi), the stack, its guard page and the gap below them, stay
 * marked in use, never unmapped, mapped over or handed out. */
static u64 layout_mem, reserved_lo, reserved_hi;

/* Zero what of [at, at + len) the heap handed out before (see mmap_lwm). */
static void zero_reused(u64 at, u64 len)
{
    u64 end = at + len;
    if (at < brk_hwm)
        zero((void *)at, (end < brk_hwm ? end : brk_hwm) - at);
    u64 from = at > brk_hwm ? at : brk_hwm;
    if (from < mmap_lwm)
        from = mmap_lwm;
    if (from < end)
        zero((void *)from, end - from);
}

static int used(u64 page) { return (bitmap[page >> 6] >> (page & 63)) & 1; }
static void mark(u64 first, u64 n, int on)
{
    for (u64 p = first; p < first + n; p++) {
        if (on)
            bitmap[p >> 6] |= 1ULL << (p & 63);
        else
            bitmap[p >> 6] &= ~(1ULL << (p & 63));
    }
}

/* Mark [first, first + n) free, except the reserved pages. */
static void unmark(u64 first, u64 n)
{
    u64 lo = (reserved_lo - heap_lo) / PAGE, hi = (reserved_hi - heap_lo) / PAGE;
    if (reserved_hi > reserved_lo && first < hi && first + n > lo) {
        if (first < lo)
            mark(first, lo - first, 0);
        if (first + n > hi)
            mark(hi, first + n - hi, 0);
        return;
    }
    mark(first, n, 0);
}

/* A restored guest given more memory (top) than its snapshot's: the pages above the stack join the heap. */
static void grow(u64 top)
{
    top &= ~(PAGE - 1);
    if (top <= layout_mem || reserved_hi)
        return;
    reserved_lo = heap_hi;
    reserved_hi = layout_mem;
    mark((reserved_lo - heap_lo) / PAGE, (reserved_hi - reserved_lo) / PAGE, 1);
    heap_hi = top;
}

static i64 sys_brk(u64 want)
{
    if (want < heap_lo || want > heap_hi)
        return (i64)brk_cur;
    u64 first = (brk_cur - heap_lo + PAGE - 1) / PAGE, last = (want - heap_lo + PAGE - 1) / PAGE;
    if (last > first) {
        for (u64 p = first; p < last; p++)
            if (used(p))
                return (i64)brk_cur; /* an mmap is in the way */
        mark(first, last - first, 1);
    } else {
        unmark(last, first - last);
    }
    if (want > brk_cur) /* memory given back earlier (to the break or to mmap) may be dirty */
        zero_reused(brk_cur, want - brk_cur);
    brk_cur = want;
    if (want > brk_hwm)
        brk_hwm = want;
    return (i64)want;
}

/* Highest free run of n pages above the break; returns the address or 0. */
static u64 find_pages(u64 n)
{
    u64 total = (heap_hi - heap_lo) / PAGE, run = 0;
    for (u64 p = total; p-- > 0;) {
        if ((p & 63) == 63 && bitmap[p >> 6] == ~0ULL) {
            run = 0;
            p -= 63;
            continue;
        }
        if (used(p)) {
            run = 0;
            continue;
        }
        if (++run == n)
            return heap_lo + p * PAGE;
    }
    return 0;
}

static const u8 *fs_data(u32 entry, u64 *size);

static i64 sys_mmap(u64 addr, u64 len, u64 prot, u64 flags, i64 fd, u64 off);
static i64 sys_munmap(u64 addr, u64 len)
{
    if (addr & (PAGE - 1))
        return -EINVAL;
    u64 end = addr + ((len + PAGE - 1) & ~(PAGE - 1));
    if (addr < heap_lo)
        addr = heap_lo;
    if (end > heap_hi)
        end = heap_hi;
    if (end > addr && addr >= (brk_cur + PAGE - 1) / PAGE * PAGE)
        unmark((addr - heap_lo) / PAGE, (end - addr) / PAGE);
    return 0;
}

/* ---- the in-memory filesystem --------------------------------------------------- */

/* The archive (unik_solo5/hvtfs.py): "UNIKFS01", u32 count, u32 0, then count entries
 * sorted by path; entry 0 is "/". */
struct fs_entry { u32 path, path_len, mode, parent; u64 data, size, mtime_ns; };
extern const u8 unik_fs_image[] __attribute__((weak));
static const struct fs_entry *fs;
static u32 fs_count;
static const u8 *fs_base;

static void fs_init(void)
{
    static const char magic[8] = "UNIKFS01";
    static const struct fs_entry root = {0, 1, S_IFDIR | 0555, 0, 0, 0, 0};
    if (&unik_fs_image[0] != NULL && scmp((const char *)unik_fs_image, 8, magic, 8) == 0) {
        fs_base = unik_fs_image;
        fs_count = *(const u32 *)(fs_base + 8);
        fs = (const struct fs_entry *)(fs_base + 16);
    } else { /* no archive: an empty root */
        fs_base = (const u8 *)"/";
        fs = &root;
        fs_count = 1;
    }
}

static const char *fs_path(u32 e) { return (const char *)fs_base + fs[e].path; }
static const u8 *fs_data(u32 e, u64 *size) { *size = fs[e].size; return fs_base + fs[e].data; }

static int fs_lookup(const char *path, u64 len)
{
    u32 lo = 0, hi = fs_count;
    while (lo < hi) {
        u32 mid = (lo + hi) / 2;
        int c = scmp(fs_path(mid), fs[mid].path_len, path, len);
        if (c == 0)
            return (int)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ---- descriptors ---------------------------------------------------------------- */

enum kind { K_FREE, K_CONSOLE, K_FILE, K_DIR, K_PIPE, K_EPOLL, K_NET, K_BLOCK, K_MEM };
#define CHAN_SIZE 8192
struct chan { u8 buf[CHAN_SIZE]; u32 head, len; int readers, writers; };
struct epoll { int n, live; struct { int fd; u32 events; u64 data; } r[64]; };
struct file {
    int kind, refs;
    u32 flags;      /* O_NONBLOCK */
    u32 entry;      /* K_FILE, K_DIR; K_NET: the device's index; K_MEM: the memory file's */
    u64 pos;
    int console_fd; /* K_CONSOLE: 0, 1 or 2 */
    int socket;     /* K_PIPE made by socketpair */
    struct chan *rx, *tx;
    struct epoll *ep;
};
#define MAX_FDS 256
static struct file files[MAX_FDS];
static struct file *fds[MAX_FDS];
static u8 cloexec[MAX_FDS];
static struct chan chans[16];
static struct epoll epolls[8];
static char cwd[256] = "/";

/* Memory files (memfd_create), writable, in pages of the heap; /proc/self/fd/N opens one
 * again (a new position), as Linux does: unik-lib-tls hands OpenSSL, which loads keys from
 * paths only, its certificate and key that way. */
#define MAX_MEMFILES 16
struct memfile { u8 *data; u64 size, cap; int refs; };
static struct memfile memfiles[MAX_MEMFILES];

static struct file *new_file(int kind)
{
    for (int i = 0; i < MAX_FDS; i++)
        if (files[i].kind == K_FREE) {
            zero(&files[i], sizeof files[i]);
            files[i].kind = kind;
            return &files[i];
        }
    return NULL;
}

static int install(struct file *f, int min)
{
    for (int fd = min; fd < MAX_FDS; fd++)
        if (!fds[fd]) {
            fds[fd] = f;
            f->refs++;
            cloexec[fd] = 0;
            return fd;
        }
    return -EMFILE;
}

static struct file *get(i64 fd)
{
    return fd >= 0 && fd < MAX_FDS ? fds[fd] : NULL;
}

static void release(struct file *f)
{
    if (--f->refs > 0)
        return;
    if (f->kind == K_PIPE) {
        if (f->rx)
            f->rx->readers--;
        if (f->tx)
            f->tx->writers--;
    } else if (f->kind == K_EPOLL) {
        f->ep->live = 0;
    } else if (f->kind == K_MEM && --memfiles[f->entry].refs == 0) {
        struct memfile *m = &memfiles[f->entry];
        if (m->cap)
            sys_munmap((u64)(uintptr_t)m->data, m->cap);
        zero(m, sizeof *m);
    }
    f->kind = K_FREE;
}

static i64 sys_close(i64 fd)
{
    struct file *f = get(fd);
    if (!f)
        return -EBADF;
    fds[fd] = NULL;
    for (int e = 0; e < 8; e++) /* closing a descriptor removes it from every epoll set */
        if (epolls[e].live)
            for (int i = 0; i < epolls[e].n; i++)
                if (epolls[e].r[i].fd == fd)
                    epolls[e].r[i] = epolls[e].r[--epolls[e].n];
    release(f);
    return 0;
}

/* Normalise dir + "/" + path into out; returns its length or -errno. */
static i64 resolve(i64 dirfd, const char *path, char *out)
{
    char tmp[1024];
    u64 n = 0, plen = slen(path);
    if (plen == 0)
        return -ENOENT;
    if (path[0] != '/') {
        const char *base = cwd;
        u64 blen = slen(cwd);
        if (dirfd != AT_FDCWD) {
            struct file *f = get(dirfd);
            if (!f)
                return -EBADF;
            if (f->kind != K_DIR)
                return -ENOTDIR;
            base = fs_path(f->entry);
            blen = fs[f->entry].path_len;
        }
        if (blen + 1 + plen >= sizeof tmp)
            return -ENAMETOOLONG;
        copy(tmp, base, blen);
        n = blen;
        tmp[n++] = '/';
    } else if (plen >= sizeof tmp) {
        return -ENAMETOOLONG;
    }
    copy(tmp + n, path, plen);
    n += plen;
    u64 o = 0;
    for (u64 i = 0; i < n;) {
        while (i < n && tmp[i] == '/')
            i++;
        u64 start = i;
        while (i < n && tmp[i] != '/')
            i++;
        u64 clen = i - start;
        if (clen == 0 || (clen == 1 && tmp[start] == '.'))
            continue;
        if (clen == 2 && tmp[start] == '.' && tmp[start + 1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
            continue;
        }
        if (o + 1 + clen >= 1024)
            return -ENAMETOOLONG;
        out[o++] = '/';
        copy(out + o, tmp + start, clen);
        o += clen;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = 0;
    return (i64)o;
}

static i64 lookup(i64 dirfd, const char *path)
{
    char full[1024];
    i64 n = resolve(dirfd, path, full);
    if (n < 0)
        return n;
    int e = fs_lookup(full, (u64)n);
    return e < 0 ? -ENOENT : e;
}

static void fill_stat(struct kstat *st, int kind, u32 entry)
{
    zero(st, sizeof *st);
    st->dev = 1;
    st->nlink = 1;
    st->blksize = 4096;
    if (kind == K_FILE || kind == K_DIR) {
        st->ino = entry + 1;
        st->mode = fs[entry].mode;
        st->size = (i64)fs[entry].size;
        st->blocks = (st->size + 511) / 512;
        st->mtime = st->atime = st->ctime = fs[entry].mtime_ns / 1000000000ULL;
        st->mtime_ns = st->atime_ns = st->ctime_ns = fs[entry].mtime_ns % 1000000000ULL;
    } else if (kind == K_MEM) {
        st->ino = 3000000 + entry;
        st->mode = S_IFREG | 0600;
        st->size = (i64)memfiles[entry].size;
        st->blocks = (st->size + 511) / 512;
    } else if (kind == K_BLOCK) {
        st->ino = 2000000 + entry;
        st->mode = S_IFREG | 0600;
        st->size = (i64)bi->devices[entry].size;
        st->blocks = (st->size + 511) / 512;
    } else {
        st->ino = 1000000 + entry;
        st->mode = kind == K_CONSOLE || kind == K_NET ? S_IFCHR | 0620 : kind == K_PIPE ? S_IFIFO | 0600 : 0600;
    }
}


/* A new descriptor for entry `entry` of kind `kind`, with openat's O_NONBLOCK and O_CLOEXEC. */
static i64 open_file(int kind, u32 entry, u64 flags)
{
    struct file *f = new_file(kind);
    if (!f)
        return -EMFILE;
    f->entry = entry;
    f->flags = (u32)(flags & O_NONBLOCK);
    i64 fd = install(f, 0);
    if (fd < 0)
        f->kind = K_FREE;
    else
        cloexec[fd] = (flags & O_CLOEXEC) != 0;
    return fd;
}

static i64 netq_open(u32 i);

/* /dev/hvt/net/NAME, /dev/hvt/block/NAME: the devices the monitor opened. */
static i64 open_device(const char *path, u64 flags)
{
    u32 type;
    u64 n;
    if (scmp(path, 13, "/dev/hvt/net/", 13) == 0)
        type = HVT_NET, n = 13;
    else if (scmp(path, 15, "/dev/hvt/block/", 15) == 0)
        type = HVT_BLOCK, n = 15;
    else
        return -ENOENT;
    for (u32 i = 0; i < bi->ndevices; i++) {
        const char *name = bi->devices[i].name;
        if (bi->devices[i].type == type && scmp(path + n, slen(path + n), name, slen(name)) == 0) {
            i64 err = type == HVT_NET ? netq_open(i) : 0;
            if (err < 0)
                return err;
            return open_file(type == HVT_NET ? K_NET : K_BLOCK, i, flags);
        }
    }
    return -ENOENT;
}

#define PROC_FD "/proc/self/fd"
/* The descriptor /proc/self/fd/N names (NULL: none), or -1 for /proc/self/fd itself. */
static struct file *proc_fd(const char *path, int *is_dir)
{
    u64 n = slen(PROC_FD), len = slen(path);
    *is_dir = 0;
    if (len < n || scmp(path, n, PROC_FD, n) != 0 || (len > n && path[n] != '/'))
        return NULL;
    if (len <= n + 1) {
        *is_dir = 1;
        return NULL;
    }
    i64 fd = 0;
    for (u64 i = n + 1; i < len; i++) {
        if (path[i] < '0' || path[i] > '9' || fd >= MAX_FDS)
            return NULL;
        fd = fd * 10 + (path[i] - '0');
    }
    return get(fd);
}

static i64 sys_memfd_create(u64 flags)
{
    for (u32 i = 0; i < MAX_MEMFILES; i++)
        if (!memfiles[i].refs) {
            memfiles[i].refs = 1;
            i64 fd = open_file(K_MEM, i, (flags & 1) ? O_CLOEXEC : 0); /* MFD_CLOEXEC */
            if (fd < 0)
                memfiles[i].refs = 0;
            return fd;
        }
    return -EMFILE;
}

static i64 sys_openat(i64 dirfd, const char *path, u64 flags)
{
    if (path[0] == '/' && path[1] == 'd' && scmp(path, 9, "/dev/hvt/", 9) == 0)
        return open_device(path, flags);
    if (path[0] == '/' && path[1] == 'p') {
        int is_dir;
        struct file *f = proc_fd(path, &is_dir);
        if (f && f->kind == K_MEM) { /* a new description of the same memory file */
            memfiles[f->entry].refs++;
            i64 fd = open_file(K_MEM, f->entry, flags);
            if (fd < 0)
                memfiles[f->entry].refs--;
            return fd;
        }
        if (f && f->kind == K_FILE)
            return open_file(K_FILE, f->entry, flags);
        if (f || is_dir)
            return (flags & O_DIRECTORY) && !is_dir ? -ENOTDIR : -EACCES;
    }
    i64 e = lookup(dirfd, path);
    if (e < 0)
        return (flags & O_CREAT) ? -EROFS : e;
    if ((flags & O_ACCMODE) != 0 || (flags & O_TRUNC))
        return -EROFS;
    if ((flags & O_CREAT) && (flags & O_EXCL))
        return -EEXIST;
    int dir = (fs[e].mode & S_IFMT) == S_IFDIR;
    if ((flags & O_DIRECTORY) && !dir)
        return -ENOTDIR;
    return open_file(dir ? K_DIR : K_FILE, (u32)e, flags);
}

static i64 sys_getdents64(i64 fd, u8 *buf, u64 size)
{
    struct file *f = get(fd);
    if (!f)
        return -EBADF;
    if (f->kind != K_DIR)
        return -ENOTDIR;
    u32 dir = f->entry;
    const char *dpath = fs_path(dir);
    u32 dlen = fs[dir].path_len == 1 ? 0 : fs[dir].path_len; /* "/" is the prefix "" + "/" */
    u64 out = 0;
    u32 i = f->pos ? (u32)f->pos : dir + 1;
    for (; i < fs_count; i++) {
        const char *p = fs_path(i);
        if (fs[i].path_len <= dlen || scmp(p, dlen, dpath, dlen) != 0 || (u8)p[dlen] > '/')
            break; /* sorted: past this directory's subtree */
        if (p[dlen] != '/')
            continue; /* a sibling sorting before the subtree: "pkg-1.0.dist-info" or "pkg.py" beside "pkg/" */
        if (fs[i].parent != dir)
            continue;
        u32 nlen = fs[i].path_len - dlen - 1;
        u64 reclen = (19 + nlen + 1 + 7) & ~7ULL;
        if (out + reclen > size) {
            if (out == 0)
                return -EINVAL;
            break;
        }
        struct kdirent *d = (struct kdirent *)(buf + out);
        d->ino = i + 1;
        d->off = i + 1;
        d->reclen = (uint16_t)reclen;
        d->type = (fs[i].mode & S_IFMT) == S_IFDIR ? 4 : 8;
        copy(d->name, p + dlen + 1, nlen);
        d->name[nlen] = 0;
        out += reclen;
    }
    f->pos = i;
    return (i64)out;
}

/* ---- network batches ------------------------------------------------------------ */

/* Each hypercall is a VM exit (about 100 us under kvm_pvm), so frames travel in batches:
 * a read that finds the device's receive ring empty fetches up to NET_RING frames in one
 * exit, and the reads after it take them from the ring; a write queues its frame, and the
 * queue goes out in one exit when it is full and before the guest waits or polls
 * (epoll_wait, poll, sleep: the event loop's turn ends there) or exits.  A frame larger
 * than a slot (an MTU beyond NET_SLOT_MAX) travels alone. */
#define NET_RING 32
#define NET_SLOT_MAX 16384
struct netq {
    u8 *rx_buf, *tx_buf;
    u32 slot, rx_head, rx_count, tx_count;
    int opened; /* the guest opened it: the turn waits for its frames */
    struct hvt_frame rx[NET_RING], tx[NET_RING];
};
static struct netq netqs[HVT_MAX_DEVICES];
static u64 net_ready = ~0ULL; /* bit i: device i may have a frame (cleared when it runs dry, set by the poll hypercall) */

/* The rings of network device i, made when it is first opened; -ENOMEM without memory. */
static i64 netq_open(u32 i)
{
    struct netq *q = &netqs[i];
    q->opened = 1;
    if (q->rx_buf)
        return 0;
    u64 slot = (bi->devices[i].mtu + 14 + 4 + 12 + 63) & ~63ULL;
    q->slot = (u32)(slot < 2048 ? 2048 : slot > NET_SLOT_MAX ? 0 : slot); /* 0: no batches */
    if (!q->slot)
        return 0;
    i64 at = sys_mmap(0, 2ULL * NET_RING * q->slot, 3, MAP_ANONYMOUS, -1, 0);
    if (at < 0)
        return at;
    q->rx_buf = (u8 *)(uintptr_t)at;
    q->tx_buf = q->rx_buf + (u64)NET_RING * q->slot;
    return 0;
}

/* The receive ring's slots, for a batch of NET_RING frames. */
static void rx_slots(struct netq *q)
{
    for (u32 k = 0; k < NET_RING; k++)
        q->rx[k] = (struct hvt_frame){(u64)(uintptr_t)(q->rx_buf + (u64)k * q->slot), q->slot, 0};
}

static void net_flush(u32 i)
{
    struct netq *q = &netqs[i];
    if (!q->tx_count)
        return;
    struct hvt_net_batch b = {i, q->tx_count, (u64)(uintptr_t)q->tx, 0, 0};
    hypercall(HVT_NET_WRITE_MANY, &b);
    q->tx_count = 0;
}

static void net_flush_all(void)
{
    for (u32 i = 0; i < bi->ndevices; i++)
        net_flush(i);
}

static i64 net_read(u32 i, u8 *buf, u64 len)
{
    struct netq *q = &netqs[i];
    if (!q->slot) {
        struct hvt_io io = {i, 0, 0, (u64)(uintptr_t)buf, len, 0};
        hypercall(HVT_NET_READ, &io);
        if (io.ret == -EAGAIN)
            net_ready &= ~(1ULL << i);
        return io.ret;
    }
    if (!q->rx_count) {
        if (!((net_ready >> i) & 1))
            return -EAGAIN; /* the TAP ran dry at the last exit: the next turn (wait_until) looks again */
        rx_slots(q);
        struct hvt_net_batch b = {i, NET_RING, (u64)(uintptr_t)q->rx, 0, 0};
        hypercall(HVT_NET_READ_MANY, &b);
        if (b.done < NET_RING)
            net_ready &= ~(1ULL << i); /* the TAP ran dry: the ring says the rest */
        if (!b.done)
            return q->rx[0].ret < 0 ? q->rx[0].ret : -EAGAIN;
        q->rx_head = 0;
        q->rx_count = b.done;
    }
    struct hvt_frame *fr = &q->rx[q->rx_head++];
    q->rx_count--;
    u64 n = (u64)fr->ret < len ? (u64)fr->ret : len; /* a short buffer truncates, as TAP's read does */
    copy(buf, (const u8 *)(uintptr_t)fr->buf, n);
    return (i64)n;
}

static i64 net_write(u32 i, const u8 *buf, u64 len)
{
    struct netq *q = &netqs[i];
    if (!q->slot || len > q->slot || len == 0) {
        struct hvt_io io = {i, 0, 0, (u64)(uintptr_t)buf, len, 0};
        hypercall(HVT_NET_WRITE, &io);
        return io.ret;
    }
    if (q->tx_count == NET_RING)
        net_flush(i);
    u8 *slot = q->tx_buf + (u64)q->tx_count * q->slot;
    copy(slot, buf, len);
    q->tx[q->tx_count++] = (struct hvt_frame){(u64)(uintptr_t)slot, len, 0};
    return (i64)len;
}

/* ---- reading and writing ------------------------------------------------------ */

static i64 block_io(struct file *f, u8 *buf, u64 len, u64 off, int writing);

static u32 chan_space(struct chan *c) { return CHAN_SIZE - c->len; }

static i64 do_read(struct file *f, u8 *buf, u64 len, i64 at)
{
    switch (f->kind) {
    case K_CONSOLE:
        return 0; /* no input: end of file */
    case K_FILE: {
        u64 size, pos = at >= 0 ? (u64)at : f->pos;
        const u8 *data = fs_data(f->entry, &size);
        u64 n = pos >= size ? 0 : (size - pos < len ? size - pos : len);
        copy(buf, data + pos, n);
        if (at < 0)
            f->pos += n;
        return (i64)n;
    }
    case K_MEM: {
        struct memfile *m = &memfiles[f->entry];
        u64 pos = at >= 0 ? (u64)at : f->pos;
        u64 n = pos >= m->size ? 0 : (m->size - pos < len ? m->size - pos : len);
        copy(buf, m->data + pos, n);
        if (at < 0)
            f->pos += n;
        return (i64)n;
    }
    case K_DIR:
        return -EISDIR;
    case K_BLOCK: {
        i64 n = block_io(f, buf, len, at >= 0 ? (u64)at : f->pos, 0);
        if (n > 0 && at < 0)
            f->pos += (u64)n;
        return n;
    }
    case K_NET:
        return net_read(f->entry, buf, len);
    case K_PIPE: {
        struct chan *c = f->rx;
        if (!c)
            return -EBADF;
        if (c->len == 0)
            return c->writers ? -EAGAIN : 0; /* one thread: a blocking read could never be woken */
        u64 n = len < c->len ? len : c->len;
        for (u64 i = 0; i < n; i++)
            buf[i] = c->buf[(c->head + i) % CHAN_SIZE];
        c->head = (u32)((c->head + n) % CHAN_SIZE);
        c->len -= (u32)n;
        return (i64)n;
    }
    default:
        return -EINVAL;
    }
}

/* Room for `size` bytes in memory file m (zeroed beyond its old size): 0 or -ENOMEM. */
static i64 mem_reserve(struct memfile *m, u64 size)
{
    if (size > m->cap) {
        u64 cap = (size > 2 * m->cap ? size : 2 * m->cap) + PAGE - 1;
        cap &= ~(PAGE - 1);
        i64 at = sys_mmap(0, cap, 3, MAP_ANONYMOUS, -1, 0);
        if (at < 0)
            return at;
        copy((void *)at, m->data, m->size);
        if (m->cap)
            sys_munmap((u64)(uintptr_t)m->data, m->cap);
        m->data = (u8 *)at;
        m->cap = cap;
    }
    if (size > m->size)
        zero(m->data + m->size, size - m->size);
    return 0;
}

static i64 do_write(struct file *f, const u8 *buf, u64 len)
{
    switch (f->kind) {
    case K_MEM: {
        struct memfile *m = &memfiles[f->entry];
        i64 err = mem_reserve(m, f->pos + len);
        if (err < 0)
            return err;
        copy(m->data + f->pos, buf, len);
        f->pos += len;
        if (f->pos > m->size)
            m->size = f->pos;
        return (i64)len;
    }
    case K_CONSOLE:
        console(f->console_fd == 2 ? 2 : 1, buf, len);
        return (i64)len;
    case K_NET:
        return net_write(f->entry, buf, len);
    case K_BLOCK: {
        i64 n = block_io(f, (u8 *)buf, len, f->pos, 1);
        if (n > 0)
            f->pos += (u64)n;
        return n;
    }
    case K_PIPE: {
        struct chan *c = f->tx;
        if (!c)
            return -EBADF;
        if (!c->readers)
            return -EPIPE;
        u64 n = len < chan_space(c) ? len : chan_space(c);
        if (n == 0)
            return -EAGAIN;
        for (u64 i = 0; i < n; i++)
            c->buf[(c->head + c->len + i) % CHAN_SIZE] = buf[i];
        c->len += (u32)n;
        return (i64)n;
    }
    case K_FILE:
    case K_DIR:
        return -EBADF; /* opened read-only: the filesystem is read-only */
    default:
        return -EINVAL;
    }
}

/* Block I/O at an offset, clamped to the device's size (a read at the end returns 0). */
static i64 block_io(struct file *f, u8 *buf, u64 len, u64 off, int writing)
{
    u64 size = bi->devices[f->entry].size;
    if (off >= size)
        return writing && len ? -28 /* ENOSPC */ : 0;
    if (len > size - off)
        len = size - off;
    struct hvt_io io = {f->entry, 0, off, (u64)(uintptr_t)buf, len, 0};
    hypercall(writing ? HVT_BLOCK_WRITE : HVT_BLOCK_READ, &io);
    return io.ret;
}

/* Each iovec in turn until one is short or fails, as readv/writev (at == 0: from the file's
 * position) and preadv/pwritev (*at: a block device's offset) do; an error after some bytes
 * returns those bytes. */
static i64 vec_io(struct file *f, const struct iovec_ *iov, i64 cnt, const u64 *at, int writing)
{
    i64 total = 0;
    for (i64 i = 0; i < cnt; i++) {
        u8 *buf = (u8 *)iov[i].base;
        i64 n = at ? block_io(f, buf, iov[i].len, *at + (u64)total, writing)
              : writing ? do_write(f, buf, iov[i].len) : do_read(f, buf, iov[i].len, -1);
        if (n < 0)
            return total ? total : n;
        total += n;
        if ((u64)n < iov[i].len)
            break;
    }
    return total;
}

static i64 block_vec(i64 fd, const struct iovec_ *iov, i64 cnt, u64 off, int writing)
{
    struct file *f = get(fd);
    if (!f)
        return -EBADF;
    if (f->kind != K_BLOCK)
        return -ESPIPE;
    return vec_io(f, iov, cnt, &off, writing);
}

static u8 frame_buf[65536 + 64];

static i64 sys_rw_vec(i64 fd, const struct iovec_ *iov, i64 cnt, int writing)
{
    struct file *f = get(fd);
    if (!f)
        return -EBADF;
    if (f->kind == K_NET) { /* one frame: gathered, then one hypercall */
        u64 n = 0;
        for (i64 i = 0; i < cnt; i++) {
            if (n + iov[i].len > sizeof frame_buf)
                return -EINVAL;
            if (writing)
                copy(frame_buf + n, (const u8 *)iov[i].base, iov[i].len);
            n += iov[i].len;
        }
        if (writing)
            return do_write(f, frame_buf, n);
        i64 got = do_read(f, frame_buf, n, -1);
        for (i64 i = 0, off = 0; got > 0 && i < cnt && off < got; i++) {
            u64 part = (u64)(got - off) < iov[i].len ? (u64)(got - off) : iov[i].len;
            copy((u8 *)iov[i].base, frame_buf + off, part);
            off += (i64)part;
        }
        return got;
    }
    return vec_io(f, iov, cnt, NULL, writing);
}

/* ---- signals ------------------------------------------------------------------ */

/* The saved state of the system call entry (boot.S): the registers it pushed, the
 * caller's SSE registers 264 bytes below them, the caller's stack in rt_user_rsp. */
struct rt_regs { u64 rax, rdi, rsi, rdx, r10, r8, r9, r11, rcx; };
#define XMM_SAVE 256
#define XMM_OFFSET 264

/* Signals, as Linux delivers them to a single-threaded process, at system call exits
 * only: the monitor sets bi->signals (SIGTERM, SIGINT), kill/tgkill on the process
 * itself set them too.  A handler runs on the caller's stack below its red zone, with
 * the signal blocked, and returns through its sa_restorer (glibc's: rt_sigreturn),
 * which restores the interrupted call's registers, its result and the mask.  A blocking
 * call that a deliverable signal interrupts returns EINTR.  The default actions:
 * terminate with status 128 + signal, or nothing for SIGCHLD, SIGURG and SIGWINCH. */
struct k_sigaction { u64 handler, flags, restorer, mask; };
#define SIG_DFL 0
#define SIG_IGN 1
#define SA_NODEFER 0x40000000ULL
#define SA_RESETHAND 0x80000000ULL
#define SA_RESTORER 0x04000000ULL
#define SIGBIT(sig) (1ULL << ((sig) - 1)) /* Linux's sigset_t: signal n is bit n - 1 */
#define UNBLOCKABLE (SIGBIT(9) | SIGBIT(19)) /* SIGKILL, SIGSTOP */
#define DEFAULT_IGNORED (SIGBIT(17) | SIGBIT(23) | SIGBIT(28)) /* SIGCHLD, SIGURG, SIGWINCH */
static struct k_sigaction actions[65];
static u64 sig_pending, sig_blocked;

struct sigframe {
    u64 restorer;       /* the handler's return address */
    struct { int signo, errno_, code, pad; u8 rest[112]; } info;
    u64 uc[8];          /* a ucontext-sized stand-in: not Linux's layout (handlers here do not read it) */
    u64 rip, rsp, rflags, rax, rdi, rsi, rdx, r10, r8, r9, mask;
    u8 xmm[XMM_SAVE];
};

static int ignored(int sig)
{
    return actions[sig].handler == SIG_IGN
        || (actions[sig].handler == SIG_DFL && (DEFAULT_IGNORED & SIGBIT(sig)));
}

/* Whether a signal that is neither blocked nor ignored is pending (taking the monitor's). */
static int signal_pending(void)
{
    if (bi->signals)
        sig_pending |= __atomic_exchange_n(&bi->signals, 0, __ATOMIC_SEQ_CST);
    if (!sig_pending)
        return 0;
    for (int sig = 1; sig <= 64; sig++)
        if ((sig_pending & ~sig_blocked & SIGBIT(sig)) && ignored(sig))
            sig_pending &= ~SIGBIT(sig);
    return (sig_pending & ~sig_blocked) != 0;
}

/* At a system call's exit: run the first deliverable signal's handler before the caller
 * sees ret (saved in the frame), or take its default action. */
static i64 deliver(struct rt_regs *r, i64 ret)
{
    if (!signal_pending())
        return ret;
    int sig = __builtin_ctzll(sig_pending & ~sig_blocked) + 1;
    sig_pending &= ~SIGBIT(sig);
    struct k_sigaction *act = &actions[sig];
    if (act->handler == SIG_DFL)
        halt(128 + sig); /* terminated by the signal */
    if (!(act->flags & SA_RESTORER)) {
        log_("unik-hvt: signal %d's handler has no sa_restorer to return through: terminated\n", sig);
        halt(128 + sig);
    }
    u64 sp = ((rt_user_rsp - 128 - sizeof(struct sigframe)) & ~15ULL) - 8; /* below the red zone; rsp+8 aligned */
    struct sigframe *f = (struct sigframe *)sp;
    zero(f, sizeof *f);
    f->restorer = act->restorer;
    f->info.signo = sig;
    f->rip = r->rcx, f->rflags = r->r11, f->rsp = rt_user_rsp, f->rax = (u64)ret;
    f->rdi = r->rdi, f->rsi = r->rsi, f->rdx = r->rdx, f->r10 = r->r10, f->r8 = r->r8, f->r9 = r->r9;
    f->mask = sig_blocked;
    copy(f->xmm, (u8 *)r - XMM_OFFSET, XMM_SAVE);
    sig_blocked |= act->mask | (act->flags & SA_NODEFER ? 0 : SIGBIT(sig));
    sig_blocked &= ~UNBLOCKABLE;
    u64 handler = act->handler;
    if (act->flags & SA_RESETHAND)
        act->handler = SIG_DFL;
    r->rcx = handler;
    r->r11 &= ~0x400ULL; /* DF clear, as the ABI wants on entry */
    r->rdi = (u64)sig, r->rsi = (u64)(uintptr_t)&f->info, r->rdx = (u64)(uintptr_t)f->uc;
    rt_user_rsp = sp;
    return sig;
}

/* rt_sigreturn: the handler returned into its restorer, which called this with the
 * frame right above the stack pointer. */
static i64 sys_sigreturn(struct rt_regs *r)
{
    struct sigframe *f = (struct sigframe *)(uintptr_t)(rt_user_rsp - 8);
    r->rcx = f->rip, r->r11 = f->rflags, rt_user_rsp = f->rsp;
    r->rdi = f->rdi, r->rsi = f->rsi, r->rdx = f->rdx, r->r10 = f->r10, r->r8 = f->r8, r->r9 = f->r9;
    sig_blocked = f->mask & ~UNBLOCKABLE;
    copy((u8 *)r - XMM_OFFSET, f->xmm, XMM_SAVE);
    return (i64)f->rax;
}

static i64 sys_sigaction(u64 sig, const struct k_sigaction *act, struct k_sigaction *old, u64 size)
{
    if (sig < 1 || sig > 64 || size != 8)
        return -EINVAL;
    if (act && (UNBLOCKABLE & SIGBIT(sig)))
        return -EINVAL;
    if (old)
        *old = actions[sig];
    if (act)
        actions[sig] = *act;
    return 0;
}

static i64 sys_sigprocmask(u64 how, const u64 *set, u64 *old, u64 size)
{
    if (size != 8)
        return -EINVAL;
    if (old)
        *old = sig_blocked;
    if (!set)
        return 0;
    if (how == 0)
        sig_blocked |= *set;
    else if (how == 1)
        sig_blocked &= ~*set;
    else if (how == 2)
        sig_blocked = *set;
    else
        return -EINVAL;
    sig_blocked &= ~UNBLOCKABLE;
    return 0;
}

/* kill, tkill, tgkill: only this process (pid 1) exists */
static i64 sys_kill(i64 pid, u64 sig)
{
    if (pid != 1 && pid != 0 && pid != -1)
        return -3; /* ESRCH */
    if (sig > 64)
        return -EINVAL;
    if (sig)
        sig_pending |= SIGBIT(sig);
    return 0;
}

/* ---- readiness, poll and epoll ------------------------------------------------ */

static u32 readiness(int fd)
{
    struct file *f = get(fd);
    if (!f)
        return EPOLLERR;
    switch (f->kind) {
    case K_CONSOLE:
        return f->console_fd == 0 ? 0 : EPOLLOUT;
    case K_NET:
        return EPOLLOUT | (netqs[f->entry].rx_count || ((net_ready >> f->entry) & 1) ? EPOLLIN : 0);
    case K_PIPE: {
        u32 r = 0;
        if (f->rx && (f->rx->len || !f->rx->writers))
            r |= EPOLLIN | (f->rx->writers ? 0 : EPOLLHUP);
        if (f->tx && (chan_space(f->tx) || !f->tx->readers))
            r |= f->tx->readers ? EPOLLOUT : EPOLLERR;
        return r;
    }
    default:
        return EPOLLIN | EPOLLOUT;
    }
}

/* The end of an event loop's turn, in one exit (HVT_TURN): the queued frames go out, the
 * empty receive rings take what the TAPs hold, and only when nothing came does the monitor
 * wait, until the deadline (monotonic ns; 0: not at all) or a network device is readable;
 * the clocks are re-anchored from the same exit. */
static struct hvt_net_batch turn_tx[HVT_MAX_DEVICES], turn_rx[HVT_MAX_DEVICES];
#ifndef HVT_COALESCE_NS
#define HVT_COALESCE_NS 100000
#endif
static u64 last_turn;
static u64 turn_stats[4]; /* --profile: turns, of them without waiting (deadline 0), frames in, frames out */

static void wait_until(u64 deadline)
{
    u32 nd = bi->ndevices, watch = 0;
    for (u32 i = 0; i < nd; i++) {
        struct netq *q = &netqs[i];
        turn_tx[i] = (struct hvt_net_batch){i, q->tx_count, (u64)(uintptr_t)q->tx, 0, 0};
        int take = q->slot && !q->rx_count;
        if (take)
            rx_slots(q);
        turn_rx[i] = (struct hvt_net_batch){i, take ? NET_RING : 0, (u64)(uintptr_t)q->rx, 0, 0};
        if (q->opened && !q->rx_count)
            watch |= 1U << i;
    }
    /* the monitor's deadline is on the host's clock (the guest's is mono_offset ahead of it) */
    u64 host_deadline = deadline == ~0ULL ? deadline : deadline > mono_offset ? deadline - mono_offset : 0;
    struct hvt_turn t = {host_deadline, 0, 0, 0, (u64)(uintptr_t)turn_tx, (u64)(uintptr_t)turn_rx, nd, watch};
    hypercall(HVT_TURN, &t);
    turn_stats[0]++;
    turn_stats[1] += deadline == 0;
    u64 mask = 0;
    for (u32 i = 0; i < nd; i++) {
        struct netq *q = &netqs[i];
        q->tx_count = 0;
        if (turn_rx[i].count) {
            q->rx_head = 0;
            q->rx_count = turn_rx[i].done;
            turn_stats[2] += turn_rx[i].done;
        }
        turn_stats[3] += turn_tx[i].count;
        mask |= 1ULL << i;
    }
    net_ready = (net_ready & ~mask) | t.ready;
    anchor_at(t.monotonic_ns, t.wall_ns);
    last_turn = anchor_mono; /* the guest's clock (a snapshot's is ahead of the host's) */
}

/* Coalescing, as a NIC moderates its interrupts: a loop that is busy (it polls without
 * waiting, because callbacks are ready) exits at most once per HVT_COALESCE_NS to send
 * what it queued and look at the TAPs; a loop that waits exits at once.  Each exit costs
 * about 40 us of CPU under kvm_pvm, and asyncio polls after every few callbacks. */

static int turn_due(void)
{
    return monotonic() - last_turn >= HVT_COALESCE_NS;
}

/* Whether frames wait in a send queue. */
static int net_queued(void)
{
    for (u32 i = 0; i < bi->ndevices; i++)
        if (netqs[i].tx_count)
            return 1;
    return 0;
}

static u64 deadline_ms(i64 timeout_ms)
{
    return timeout_ms < 0 ? ~0ULL : monotonic() + (u64)timeout_ms * 1000000ULL;
}

/* One wait of epoll_wait's and poll's loop: the deadline is set on the first round; 0 once
 * it has passed (nothing was ready), -EINTR for a pending signal, 1 to look again. */
static i64 poll_wait(int round, u64 *deadline, i64 timeout_ms)
{
    if (round == 0)
        *deadline = deadline_ms(timeout_ms);
    else if (monotonic() >= *deadline)
        return 0;
    if (signal_pending())
        return -EINTR;
    wait_until(*deadline);
    return 1;
}

static i64 sys_epoll_wait(i64 epfd, struct epoll_event_ *ev, i64 max, i64 timeout_ms)
{
    struct file *f = get(epfd);
    if (!f || f->kind != K_EPOLL)
        return -EBADF;
    if (max <= 0)
        return -EINVAL;
    u64 deadline = 0;
    for (int round = 0;; round++) {
        struct epoll *ep = f->ep;
        i64 n = 0;
        for (int i = 0; i < ep->n && n < max; i++) {
            u32 r = readiness(ep->r[i].fd) & (ep->r[i].events | EPOLLERR | EPOLLHUP);
            if (r) {
                ev[n].events = r;
                ev[n].data = ep->r[i].data;
                n++;
            }
        }
        if (n || (timeout_ms == 0 && round > 0)) {
            if (net_queued() && turn_due())
                wait_until(0); /* the end of the loop's turn: its frames go out together */
            return n;
        }
        if (timeout_ms == 0) {
            if (!bi->ndevices || !turn_due())
                return 0; /* busy: the next turn that is due looks */
            wait_until(0); /* a poll that returns at once: which devices have frames */
            continue;
        }
        i64 waited = poll_wait(round, &deadline, timeout_ms);
        if (waited <= 0)
            return waited;
    }
}

static i64 sys_epoll_ctl(i64 epfd, i64 op, i64 fd, const struct epoll_event_ *ev)
{
    struct file *f = get(epfd);
    if (!f || f->kind != K_EPOLL)
        return -EBADF;
    if (!get(fd))
        return -EBADF;
    struct epoll *ep = f->ep;
    int i = 0;
    while (i < ep->n && ep->r[i].fd != fd)
        i++;
    if (op == 1) { /* EPOLL_CTL_ADD */
        if (i < ep->n)
            return -EEXIST;
        if (ep->n == 64)
            return -ENOMEM;
        ep->n++;
    } else if (i == ep->n) {
        return -ENOENT;
    }
    if (op == 2) { /* EPOLL_CTL_DEL */
        ep->r[i] = ep->r[--ep->n];
        return 0;
    }
    if (op != 1 && op != 3)
        return -EINVAL;
    ep->r[i].fd = (int)fd;
    ep->r[i].events = ev->events;
    ep->r[i].data = ev->data;
    return 0;
}

static i64 sys_epoll_create(void)
{
    for (int e = 0; e < 8; e++)
        if (!epolls[e].live) {
            struct file *f = new_file(K_EPOLL);
            if (!f)
                return -EMFILE;
            zero(&epolls[e], sizeof epolls[e]);
            epolls[e].live = 1;
            f->ep = &epolls[e];
            i64 fd = install(f, 0);
            if (fd < 0) {
                epolls[e].live = 0;
                f->kind = K_FREE;
            }
            return fd;
        }
    return -EMFILE;
}

static i64 sys_poll(struct pollfd_ *p, u64 n, i64 timeout_ms)
{
    net_flush_all();
    u64 deadline = 0;
    for (int round = 0;; round++) {
        i64 ready = 0;
        for (u64 i = 0; i < n; i++) {
            p[i].revents = 0;
            if (p[i].fd < 0)
                continue;
            u32 r = readiness(p[i].fd);
            p[i].revents = (short)(r & ((u32)(uint16_t)p[i].events | EPOLLERR | EPOLLHUP));
            if (!get(p[i].fd))
                p[i].revents = 0x20; /* POLLNVAL */
            if (p[i].revents)
                ready++;
        }
        if (ready || timeout_ms == 0)
            return ready;
        i64 waited = poll_wait(round, &deadline, timeout_ms);
        if (waited <= 0)
            return waited;
    }
}

static i64 sys_pipe(int *sv, u64 flags, int socket)
{
    struct chan *a = NULL, *b = NULL;
    for (int i = 0; i < 16; i++)
        if (!chans[i].readers && !chans[i].writers) {
            if (!a)
                a = &chans[i];
            else if (!b && socket) {
                b = &chans[i];
                break;
            } else
                break;
        }
    if (!a || (socket && !b))
        return -EMFILE;
    struct file *r = new_file(K_PIPE);
    if (!r)
        return -EMFILE;
    struct file *w = new_file(K_PIPE);
    if (!w) {
        r->kind = K_FREE;
        return -EMFILE;
    }
    zero(a, sizeof *a);
    r->rx = a;
    w->tx = a;
    a->readers = a->writers = 1;
    if (socket) {
        zero(b, sizeof *b);
        w->rx = b;
        r->tx = b;
        b->readers = b->writers = 1;
    }
    r->socket = w->socket = socket;
    r->flags = w->flags = (u32)(flags & O_NONBLOCK);
    i64 fr = install(r, 0), fw = fr < 0 ? fr : install(w, 0);
    if (fw < 0) {
        if (fr >= 0)
            sys_close(fr);
        return -EMFILE;
    }
    cloexec[fr] = cloexec[fw] = (flags & O_CLOEXEC) != 0;
    sv[0] = (int)fr;
    sv[1] = (int)fw;
    return 0;
}

/* ---- randomness: ChaCha20 keyed by the monitor's seed, mixed with RDRAND ---------- */

static u32 rng_key[8];
static u64 rng_counter;
static int has_rdrand;

static u32 rotl(u32 v, int n) { return (v << n) | (v >> (32 - n)); }
#define QR(a, b, c, d) (a += b, d = rotl(d ^ a, 16), c += d, b = rotl(b ^ c, 12), a += b, d = rotl(d ^ a, 8), \
                        c += d, b = rotl(b ^ c, 7))

static void chacha_block(u32 out[16])
{
    u32 x[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};
    for (int i = 0; i < 8; i++)
        x[4 + i] = rng_key[i];
    x[12] = (u32)rng_counter;
    x[13] = (u32)(rng_counter >> 32);
    x[14] = x[15] = 0;
    rng_counter++;
    u32 s[16];
    for (int i = 0; i < 16; i++)
        s[i] = x[i];
    for (int i = 0; i < 10; i++) {
        QR(s[0], s[4], s[8], s[12]); QR(s[1], s[5], s[9], s[13]);
        QR(s[2], s[6], s[10], s[14]); QR(s[3], s[7], s[11], s[15]);
        QR(s[0], s[5], s[10], s[15]); QR(s[1], s[6], s[11], s[12]);
        QR(s[2], s[7], s[8], s[13]); QR(s[3], s[4], s[9], s[14]);
    }
    for (int i = 0; i < 16; i++)
        out[i] = s[i] + x[i];
}

static u64 rdrand(void)
{
    u64 v = 0;
    unsigned char ok = 0;
    for (int tries = 0; has_rdrand && !ok && tries < 10; tries++)
        __asm__ volatile("rdrand %0; setc %1" : "=r"(v), "=qm"(ok));
    return ok ? v : 0;
}

static i64 sys_getrandom(u8 *buf, u64 len)
{
    for (u64 done = 0; done < len;) {
        u32 block[16];
        chacha_block(block);
        for (int i = 0; i < 16; i += 2) {
            u64 r = rdrand();
            block[i] ^= (u32)r;
            block[i + 1] ^= (u32)(r >> 32);
        }
        /* the first 32 bytes of each block rekey the generator (forward secrecy) */
        for (int i = 0; i < 8; i++)
            rng_key[i] = block[i];
        u64 n = len - done < 32 ? len - done : 32;
        copy(buf + done, (u8 *)&block[8], n);
        done += n;
    }
    return (i64)len;
}

/* ---- the system call table ---------------------------------------------------- */

static u8 reported[HVT_NSYSCALLS / 8 + 1];

static i64 unsupported(u64 nr)
{
    if (nr >= HVT_NSYSCALLS || !(reported[nr / 8] & (1 << (nr % 8)))) {
        if (nr < HVT_NSYSCALLS)
            reported[nr / 8] |= (u8)(1 << (nr % 8));
        log_("unik-hvt: system call %s (%lu) is not supported by the hvt runtime: ENOSYS\n", sysname(nr), nr);
    }
    return -ENOSYS;
}

static i64 sys_clock(u64 clock, struct timespec_ *ts)
{
    u64 mono, wall, v;
    clocks(&mono, &wall);
    switch (clock) {
    case 0: case 5: case 8: /* REALTIME, REALTIME_COARSE, REALTIME_ALARM */
        v = wall;
        break;
    case 1: case 4: case 6: case 7: case 9: /* MONOTONIC, _RAW, _COARSE, BOOTTIME, BOOTTIME_ALARM */
        v = mono;
        break;
    case 2: case 3: /* the process's and thread's CPU time: time since boot (one vCPU, never idle-accounted) */
        v = mono - boot_ns;
        break;
    default:
        return -EINVAL;
    }
    ts->sec = (i64)(v / 1000000000ULL);
    ts->nsec = (i64)(v % 1000000000ULL);
    return 0;
}

static i64 sys_stat_path(i64 dirfd, const char *path, struct kstat *st, u64 flags)
{
    if (path[0] == 0 && (flags & AT_EMPTY_PATH)) {
        struct file *f = get(dirfd);
        if (!f)
            return -EBADF;
        fill_stat(st, f->kind, f->entry);
        return 0;
    }
    if (path[0] == '/' && path[1] == 'p') {
        int is_dir;
        struct file *f = proc_fd(path, &is_dir);
        if (f) {
            fill_stat(st, f->kind, f->entry);
            return 0;
        }
        if (is_dir) {
            fill_stat(st, K_DIR, 0); /* as the root, but readable by its owner only */
            st->mode = S_IFDIR | 0500;
            st->ino = 4000000;
            return 0;
        }
    }
    i64 e = lookup(dirfd, path);
    if (e < 0)
        return e;
    fill_stat(st, (fs[e].mode & S_IFMT) == S_IFDIR ? K_DIR : K_FILE, (u32)e);
    return 0;
}

static i64 sys_fcntl(i64 fd, i64 cmd, u64 arg)
{
    struct file *f = get(fd);
    if (!f)
        return -EBADF;
    switch (cmd) {
    case 0: case 1030: { /* F_DUPFD, F_DUPFD_CLOEXEC */
        i64 nfd = install(f, (int)arg);
        if (nfd >= 0)
            cloexec[nfd] = cmd == 1030;
        return nfd;
    }
    case 1: return cloexec[fd];         /* F_GETFD */
    case 2: cloexec[fd] = arg & 1; return 0; /* F_SETFD */
    case 3: return f->flags | (f->kind >= K_PIPE && f->kind != K_EPOLL ? 2 : f->kind == K_CONSOLE ? 2 : 0); /* F_GETFL */
    case 4: f->flags = (u32)(arg & O_NONBLOCK); return 0; /* F_SETFL */
    default: return -EINVAL;
    }
}

static i64 sys_ioctl(i64 fd, u64 req, u64 arg)
{
    struct file *f = get(fd);
    if (!f)
        return -EBADF;
    if (req == 0x5421) { /* FIONBIO */
        f->flags = *(int *)arg ? O_NONBLOCK : 0;
        return 0;
    }
    if (f->kind == K_NET && req == 0x8921) { /* SIOCGIFMTU: struct ifreq's int after the 16-byte name */
        *(int *)(arg + 16) = (int)bi->devices[f->entry].mtu;
        return 0;
    }
    if (f->kind == K_NET && req == 0x8927) { /* SIOCGIFHWADDR: sa_family 1 (ARPHRD_ETHER), then the MAC */
        *(uint16_t *)(arg + 16) = 1;
        copy((u8 *)(arg + 18), bi->devices[f->entry].mac, 6);
        return 0;
    }
    if (req == 0x5451 || req == 0x5450) /* FIOCLEX, FIONCLEX */
        return cloexec[fd] = req == 0x5451, 0;
    return -ENOTTY; /* no terminals */
}

static i64 sys_uname(char *u)
{
    static const char *fields[6] = {"Linux", "unik", "6.1.0-unik-hvt", "#1 unik hvt", "x86_64", "(none)"};
    zero(u, 65 * 6);
    for (int i = 0; i < 6; i++)
        copy(u + 65 * i, fields[i], slen(fields[i]));
    return 0;
}

static i64 sys_sleep(const struct timespec_ *req, int absolute, u64 clock)
{
    u64 ns = (u64)req->sec * 1000000000ULL + (u64)req->nsec, mono, wall;
    clocks(&mono, &wall);
    u64 deadline = !absolute ? mono + ns : clock == 0 ? mono + (ns > wall ? ns - wall : 0) : ns;
    while (monotonic() < deadline) {
        if (signal_pending())
            return -EINTR;
        wait_until(deadline);
    }
    return 0;
}

static i64 sys_mmap(u64 addr, u64 len, u64 prot, u64 flags, i64 fd, u64 off)
{
    (void)prot;
    if (len == 0 || (off & (PAGE - 1)))
        return -EINVAL;
    u64 n = (len + PAGE - 1) / PAGE;
    const u8 *src = NULL;
    u64 src_len = 0;
    if (!(flags & MAP_ANONYMOUS)) { /* a private copy of a file of the archive */
        struct file *f = get(fd);
        if (!f)
            return -EBADF;
        if (f->kind != K_FILE && f->kind != K_MEM)
            return -ENODEV;
        u64 size;
        const u8 *data = f->kind == K_MEM ? memfiles[f->entry].data : fs_data(f->entry, &size);
        if (f->kind == K_MEM)
            size = memfiles[f->entry].size;
        if (off < size) {
            src = data + off;
            src_len = size - off < len ? size - off : len;
        }
    }
    u64 at;
    if (flags & MAP_FIXED) { /* only over memory this process already mapped */
        if ((addr & (PAGE - 1)) || addr < (brk_cur + PAGE - 1) / PAGE * PAGE || addr + n * PAGE > heap_hi
            || (addr < reserved_hi && addr + n * PAGE > reserved_lo)) /* never over the stack */
            return -EINVAL;
        for (u64 p = (addr - heap_lo) / PAGE; p < (addr - heap_lo) / PAGE + n; p++)
            if (!used(p))
                return -EINVAL;
        at = addr;
    } else {
        at = find_pages(n);
        if (!at)
            return -ENOMEM;
        mark((at - heap_lo) / PAGE, n, 1);
    }
    zero_reused(at, n * PAGE);
    if (at < mmap_lwm)
        mmap_lwm = at;
    if (src)
        copy((void *)at, src, src_len);
    return (i64)at;
}

static i64 sys_snapshot(u64 op);

static i64 dispatch(struct rt_regs *r)
{
    u64 a = r->rdi, b = r->rsi, c = r->rdx, d = r->r10, e = r->r8;
    switch (r->rax) {
    case 0: { struct file *f = get((i64)a); return f ? do_read(f, (u8 *)b, c, -1) : -EBADF; }
    case 1: { struct file *f = get((i64)a); return f ? do_write(f, (const u8 *)b, c) : -EBADF; }
    case 2: return sys_openat(AT_FDCWD, (const char *)a, b);                    /* open */
    case 3: return sys_close((i64)a);
    case 4: case 6: return sys_stat_path(AT_FDCWD, (const char *)a, (struct kstat *)b, 0); /* stat, lstat */
    case 5: return sys_stat_path((i64)a, "", (struct kstat *)b, AT_EMPTY_PATH); /* fstat */
    case 7: return sys_poll((struct pollfd_ *)a, b, (i64)(int)c);
    case 8: { /* lseek */
        struct file *f = get((i64)a);
        if (!f)
            return -EBADF;
        if (f->kind == K_DIR && b == 0 && c == 0)
            return (i64)(f->pos = 0);
        if (f->kind != K_FILE && f->kind != K_BLOCK && f->kind != K_MEM)
            return -ESPIPE;
        i64 end = f->kind == K_BLOCK ? (i64)bi->devices[f->entry].size
                  : f->kind == K_MEM ? (i64)memfiles[f->entry].size : (i64)fs[f->entry].size;
        i64 base = c == 0 ? 0 : c == 1 ? (i64)f->pos : c == 2 ? end : -1;
        if (base < 0 || base + (i64)b < 0)
            return -EINVAL;
        return (i64)(f->pos = (u64)(base + (i64)b));
    }
    case 9: return sys_mmap(a, b, c, d, (i64)e, r->r9);
    case 10: return 0; /* mprotect: accepted; the rights are the monitor's page tables (W^X), not the guest's */
    case 11: return sys_munmap(a, b);
    case 12: return sys_brk(a);
    case 13: return sys_sigaction(a, (const struct k_sigaction *)b, (struct k_sigaction *)c, d);
    case 14: return sys_sigprocmask(a, (const u64 *)b, (u64 *)c, d);
    case 15: return sys_sigreturn(r);
    case 127: /* rt_sigpending */
        signal_pending();
        if (b != 8)
            return -EINVAL;
        *(u64 *)a = sig_pending & sig_blocked;
        return 0;
    case 62: return sys_kill((i64)(int)a, b);
    case 200: return sys_kill((i64)(int)a, b);        /* tkill: the thread is the process */
    case 234: return sys_kill((i64)(int)b, c);        /* tgkill */
    case 16: return sys_ioctl((i64)a, b, c);
    case 17: { struct file *f = get((i64)a); return !f ? -EBADF : f->kind == K_BLOCK ? block_io(f, (u8 *)b, c, d, 0)
                                                     : f->kind != K_FILE && f->kind != K_MEM ? -ESPIPE
                                                     : do_read(f, (u8 *)b, c, (i64)d); }
    case 18: { struct file *f = get((i64)a); return !f ? -EBADF : f->kind == K_BLOCK ? block_io(f, (u8 *)b, c, d, 1)
                                                     : f->kind == K_FILE ? -EBADF : -ESPIPE; } /* pwrite64 */
    case 295: case 327: return block_vec((i64)a, (const struct iovec_ *)b, (i64)c, d, 0); /* preadv(2) */
    case 296: case 328: return block_vec((i64)a, (const struct iovec_ *)b, (i64)c, d, 1); /* pwritev(2) */
    case 74: case 75: { /* fsync, fdatasync: the monitor's fdatasync on the file */
        struct file *f = get((i64)a);
        if (!f)
            return -EBADF;
        if (f->kind != K_BLOCK)
            return 0;
        struct hvt_io io = {f->entry, 0, 0, 0, 0, 0};
        hypercall(HVT_BLOCK_WRITE, &io);
        return io.ret;
    }
    case 19: return sys_rw_vec((i64)a, (const struct iovec_ *)b, (i64)c, 0); /* readv */
    case 20: return sys_rw_vec((i64)a, (const struct iovec_ *)b, (i64)c, 1); /* writev */
    case 21: { i64 ent = lookup(AT_FDCWD, (const char *)a); return ent < 0 ? ent : (b & 2) ? -EROFS : 0; }
    case 269: case 439: { i64 ent = lookup((i64)a, (const char *)b); return ent < 0 ? ent : (c & 2) ? -EROFS : 0; }
    case 22: return sys_pipe((int *)a, 0, 0);
    case 293: return sys_pipe((int *)a, b, 0);
    case 53: return sys_pipe((int *)d, b, 1); /* socketpair: (domain, type|flags, proto, sv) */
    case 24: return 0; /* sched_yield */
    case 25: return -ENOMEM; /* mremap: glibc's realloc then copies */
    case 28: return 0; /* madvise */
    case 32: { struct file *f = get((i64)a); return f ? install(f, 0) : -EBADF; } /* dup */
    case 33: case 292: { /* dup2, dup3 */
        struct file *f = get((i64)a);
        if (!f || b >= MAX_FDS)
            return -EBADF;
        if (a == b)
            return r->rax == 33 ? (i64)b : -EINVAL;
        if (fds[b])
            sys_close((i64)b);
        fds[b] = f;
        f->refs++;
        cloexec[b] = r->rax == 292 && (c & O_CLOEXEC);
        return (i64)b;
    }
    case 35: return sys_sleep((const struct timespec_ *)a, 0, 1); /* nanosleep */
    case 39: case 186: return 1;  /* getpid, gettid */
    case 110: return 0;           /* getppid */
    case 102: case 104: case 107: case 108: return 0; /* getuid, getgid, geteuid, getegid */
    case 44: /* sendto */ { struct file *f = get((i64)a); return !f ? -EBADF : f->kind != K_PIPE ? -ENOTSOCK
                                                                : do_write(f, (const u8 *)b, c); }
    case 45: /* recvfrom */ { struct file *f = get((i64)a); return !f ? -EBADF : f->kind != K_PIPE ? -ENOTSOCK
                                                                  : do_read(f, (u8 *)b, c, -1); }
    case 48: return 0; /* shutdown: the peer sees end of file at close */
    case 51: case 52: { /* getsockname, getpeername: the socketpair's end, AF_UNIX and unnamed */
        struct file *f = get((i64)a);
        if (!f)
            return -EBADF;
        if (f->kind != K_PIPE || !f->socket)
            return -ENOTSOCK;
        if (b && c && *(u32 *)c >= 2)
            *(uint16_t *)b = 1;
        if (c)
            *(u32 *)c = 2;
        return 0;
    }
    case 99: { /* sysinfo */
        u64 *si = (u64 *)a, mono;
        zero(si, 112);
        clocks(&mono, NULL);
        si[0] = (mono - boot_ns) / 1000000000ULL;
        si[4] = bi->mem_size;                      /* totalram */
        si[5] = heap_hi > brk_cur ? heap_hi - brk_cur - (reserved_hi - reserved_lo) : 0; /* freeram, roughly */
        *(uint16_t *)&si[10] = 1;                  /* procs */
        *(u32 *)&si[13] = 1;                       /* mem_unit */
        return 0;
    }
    case 60: case 231: net_flush_all(); halt((int)a); /* exit, exit_group: queued frames go out first */
    case 63: return sys_uname((char *)a);
    case 72: return sys_fcntl((i64)a, (i64)b, c);
    case 79: { /* getcwd */
        u64 n = slen(cwd) + 1;
        if (b < n)
            return -ERANGE;
        copy((void *)a, cwd, n);
        return (i64)n;
    }
    case 80: { /* chdir */
        char full[1024];
        i64 n = resolve(AT_FDCWD, (const char *)a, full);
        if (n < 0)
            return n;
        int ent = fs_lookup(full, (u64)n);
        if (ent < 0)
            return -ENOENT;
        if ((fs[ent].mode & S_IFMT) != S_IFDIR)
            return -ENOTDIR;
        if ((u64)n >= sizeof cwd)
            return -ENAMETOOLONG;
        copy(cwd, full, (u64)n + 1);
        return 0;
    }
    case 89: { i64 ent = lookup(AT_FDCWD, (const char *)a); return ent < 0 ? ent : -EINVAL; } /* readlink */
    case 267: { i64 ent = lookup((i64)a, (const char *)b); return ent < 0 ? ent : -EINVAL; }  /* readlinkat */
    case 95: return 022; /* umask */
    case 96: { /* gettimeofday */
        struct timespec_ ts;
        sys_clock(0, &ts);
        if (a) {
            ((i64 *)a)[0] = ts.sec;
            ((i64 *)a)[1] = ts.nsec / 1000;
        }
        return 0;
    }
    case 97: case 302: { /* getrlimit, prlimit64 */
        u64 res = r->rax == 97 ? a : b, *old = (u64 *)(r->rax == 97 ? b : d);
        if (old) {
            old[0] = old[1] = res == 3 ? STACK_SIZE : res == 7 ? MAX_FDS : ~0ULL; /* STACK, NOFILE */
        }
        return 0;
    }
    case 131: /* sigaltstack */
        if (b)
            zero((void *)b, 24), ((int *)b)[2] = 2; /* SS_DISABLE */
        return 0;
    case 158: /* arch_prctl */
        if (a == 0x1002) { __asm__ volatile("wrfsbase %0" : : "r"(b)); return 0; } /* ARCH_SET_FS */
        if (a == 0x1003) { __asm__ volatile("rdfsbase %0" : "=r"(*(u64 *)b)); return 0; } /* ARCH_GET_FS */
        return -EINVAL;
    case 201: { struct timespec_ ts; sys_clock(0, &ts); if (a) *(i64 *)a = ts.sec; return ts.sec; } /* time */
    case 202: { /* futex: one thread, so a wait whose value matches could never be woken */
        u64 op = b & 127;
        if (op == 1 || op == 10)
            return 0; /* WAKE */
        if (op == 0 || op == 9)
            return *(volatile u32 *)a != (u32)c ? -EAGAIN : d ? -ETIMEDOUT : -EAGAIN;
        return -ENOSYS;
    }
    case 204: /* sched_getaffinity: one CPU */
        if (b < 8)
            return -EINVAL;
        zero((void *)c, b);
        *(u8 *)c = 1;
        return 8;
    case 217: return sys_getdents64((i64)a, (u8 *)b, c);
    case 218: return 1; /* set_tid_address */
    case 228: return sys_clock(a, (struct timespec_ *)b);
    case 229: if (b) { ((i64 *)b)[0] = 0; ((i64 *)b)[1] = 1; } return 0; /* clock_getres */
    case 230: return sys_sleep((const struct timespec_ *)c, (b & 1) != 0, a); /* clock_nanosleep */
    case 213: case 291: return sys_epoll_create();
    case 232: case 281: return sys_epoll_wait((i64)a, (struct epoll_event_ *)b, (i64)(int)c, (i64)(int)d);
    case 233: return sys_epoll_ctl((i64)a, (i64)b, (i64)(int)c, (const struct epoll_event_ *)d);
    case 257: return sys_openat((i64)(int)a, (const char *)b, c);
    case 262: return sys_stat_path((i64)(int)a, (const char *)b, (struct kstat *)c, d);
    case 319: return sys_memfd_create(b);
    case 77: { /* ftruncate: memory files only (the archive is read-only) */
        struct file *f = get((i64)a);
        if (!f)
            return -EBADF;
        if (f->kind != K_MEM)
            return -EINVAL;
        i64 err = mem_reserve(&memfiles[f->entry], b);
        if (err == 0)
            memfiles[f->entry].size = b;
        return err;
    }
    case 271: { /* ppoll: timeout is a timespec */
        const struct timespec_ *ts = (const struct timespec_ *)c;
        i64 ms = ts ? ts->sec * 1000 + (ts->nsec + 999999) / 1000000 : -1;
        return sys_poll((struct pollfd_ *)a, b, ms);
    }
    case 318: return sys_getrandom((u8 *)a, b);
    case HVT_SYS_SNAPSHOT: return sys_snapshot(a);
    /* glibc's start-up registers these when the kernel has them and does without: quiet ENOSYS */
    case 273: case 334: return -ENOSYS; /* set_robust_list, rseq */
    default:
        return unsupported(r->rax);
    }
}

/* --profile: system calls by number, and the time spent serving them (TSC ticks) */
static u32 profile_calls[HVT_NSYSCALLS], profile_direct_calls[HVT_NSYSCALLS];
static u64 profile_ticks, profile_total, profile_direct;

static void profile_report(void)
{
    u64 ns = tsc_mult ? (u64)(((unsigned __int128)profile_ticks * tsc_mult) >> 32) : 0;
    if (turn_stats[0])
        log_("unik-hvt profile: %lu turns of the event loop (one exit each), %lu of them only looking (no "
             "deadline); %lu frames came in and %lu went out with them\n", turn_stats[0], turn_stats[1],
             turn_stats[2], turn_stats[3]);
    log_("unik-hvt profile: %lu system calls in %lu ms since the runtime %s, %lu.%lu%lu ms of it inside "
         "the runtime, %lu of them direct (no trap; each other call also costs its trap: bench/hvt.py measures "
         "it); the most made:\n", profile_total, (monotonic() - run_ns) / 1000000,
         bi->flags & HVT_FLAG_RESTORED ? "resumed from its snapshot" : "started", ns / 1000000, ns / 100000 % 10,
         ns / 10000 % 10, profile_direct);
    for (int shown = 0; shown < 10; shown++) {
        u64 best = 0;
        for (u64 nr = 1; nr < HVT_NSYSCALLS; nr++)
            if (profile_calls[nr] > profile_calls[best])
                best = nr;
        if (!profile_calls[best])
            break;
        if (profile_direct_calls[best])
            log_("  %s %u (%u direct)\n", sysname(best), profile_calls[best], profile_direct_calls[best]);
        else
            log_("  %s %u\n", sysname(best), profile_calls[best]);
        profile_calls[best] = 0;
    }
}

/* The direct entry (direct.c): libc's wrappers of the calls a served request makes call
 * here instead of trapping.  Only calls that neither deliver signals nor change the
 * caller's registers (no exit, sigreturn, kill; of sigaction only a query) are served; with a signal
 * pending, under --trace, or interrupted (EINTR), the wrapper makes the real system call,
 * whose exit runs the handler.  No signal can arrive in the middle: the runtime takes
 * them only at a trap's exit. */
i64 hvt_direct(u64 nr, u64 a, u64 b, u64 c, u64 d);
i64 hvt_direct(u64 nr, u64 a, u64 b, u64 c, u64 d)
{
    switch (nr) {
    case 0: case 1: case 3: case 7: case 8: case 16: case 17: case 19: case 20: case 32: case 39: case 72:
    case 232: case 257: case 262:
        break;
    case 13: /* rt_sigaction: a query only (CPython reads all 64 actions while it starts) */
        if (b)
            return HVT_DIRECT_TRAP;
        break;
    default:
        return HVT_DIRECT_TRAP;
    }
    if ((bi->flags & HVT_FLAG_TRACE) || signal_pending())
        return HVT_DIRECT_TRAP;
    struct rt_regs r = {nr, a, b, c, d, 0, 0, 0, 0};
    i64 ret;
    if (bi->flags & HVT_FLAG_PROFILE) {
        profile_total++;
        profile_direct++;
        profile_calls[nr]++;
        profile_direct_calls[nr]++;
        u64 start = rdtsc();
        ret = dispatch(&r);
        profile_ticks += rdtsc() - start;
    } else {
        ret = dispatch(&r);
    }
    return ret == -EINTR ? HVT_DIRECT_TRAP : ret;
}

i64 rt_syscall(struct rt_regs *r);
i64 rt_syscall(struct rt_regs *r)
{
    if (!(bi->flags & (HVT_FLAG_TRACE | HVT_FLAG_PROFILE)))
        return deliver(r, dispatch(r));
    if (bi->flags & HVT_FLAG_PROFILE) {
        profile_total++;
        if (r->rax < HVT_NSYSCALLS)
            profile_calls[r->rax]++;
        if (r->rax == 60 || r->rax == 231)
            profile_report();
        u64 start = rdtsc();
        i64 ret = dispatch(r);
        profile_ticks += rdtsc() - start;
        if (!(bi->flags & HVT_FLAG_TRACE))
            return deliver(r, ret);
    }
    u64 us = (monotonic() - run_ns) / 1000; /* since the runtime started (or resumed): where a boot's time goes */
    log_("unik-hvt: %lu.%lu%lu%lu %s(%lx, %lx, %lx, %lx)", us / 1000, us / 100 % 10, us / 10 % 10, us % 10,
         sysname(r->rax), r->rdi, r->rsi, r->rdx, r->r10);
    i64 ret = dispatch(r);
    log_(" = %ld\n", ret);
    return deliver(r, ret);
}

/* ---- boot and resume ------------------------------------------------------------ */

/* What this vCPU and this run's monitor say: RDRAND, the TSC's rate; CPUID.1's edx (AT_HWCAP). */
static u32 cpu_setup(void)
{
    u32 eax = 1, ebx, ecx, edx;
    __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx));
    has_rdrand = (ecx >> 30) & 1;
    tsc_mult = bi->tsc_hz >= 1000000 ? (1000000000ULL << 32) / bi->tsc_hz : 0;
    return edx;
}

/* The generator's key from this run's seed (the monitor's getrandom), which only the generator keeps. */
static void rng_rekey(void)
{
    for (int i = 0; i < 8; i++)
        rng_key[i] = ((const u32 *)bi->seed)[i];
    rng_counter = 0;
    zero(bi->seed, sizeof bi->seed);
}

/* A guest restored from its snapshot, where the snapshot hypercall returns: renew what the
 * saved memory holds, which every restore of it would otherwise share.  The generator takes
 * this run's seed (nothing it gave or would have given before the save is given again); the
 * clocks take this host's time, the monotonic one never going back (saved_mono: the guest's
 * clock at the save); CPU time goes on from the save; the network devices may have frames.
 * What the program itself holds (CPython's generators) is its to renew (hvt_preinit.py). */
static void resume(u64 saved_mono)
{
    if (!(bi->flags & HVT_FLAG_RESTORED)) {
        log_("unik-hvt: the snapshot hypercall returned in a guest the monitor did not restore "
             "(a monitor without snapshots?)\n");
        halt(255);
    }
    cpu_setup();
    grow(bi->mem_size);
    rng_rekey();
    mono_offset = 0;
    anchor();
    if (anchor_mono <= saved_mono) {
        mono_offset = saved_mono - anchor_mono + 1;
        anchor();
    }
    boot_ns += anchor_mono - saved_mono;
    run_ns = anchor_mono;
    net_ready = ~0ULL;
    profile_total = profile_ticks = profile_direct = 0;
    zero(profile_calls, sizeof profile_calls);
}

/* hvt's own system call HVT_SYS_SNAPSHOT (hvt_abi.h): op 0 asks whether this boot pre-initialises;
 * op 1 is the program's snapshot point: a pre-initialising boot is saved here (and its monitor
 * exits), and each restored guest goes on from here (1); in any other boot it returns 0 at once. */
static i64 sys_snapshot(u64 op)
{
    if (op == 0)
        return (bi->flags & HVT_FLAG_PREINIT) != 0;
    if (op != 1)
        return -EINVAL;
    if (!(bi->flags & HVT_FLAG_PREINIT))
        return 0;
    net_flush_all();
    struct hvt_snapshot s = {monotonic()};
    hypercall(HVT_SNAPSHOT, &s);
    resume(s.monotonic_ns);
    return 1;
}

void __attribute__((noreturn)) rt_enter(u64 stack, u64 entry);
extern const u8 __ehdr_start[];
extern const u8 hvt_vdso[]; /* vdso_image.S: AT_SYSINFO_EHDR */
extern void _start(void);

static u64 *push_bytes(u64 *sp, const void *data, u64 len)
{
    u8 *p = (u8 *)(((uintptr_t)sp - len) & ~7ULL);
    copy(p, data, len);
    return (u64 *)p;
}

void __attribute__((noreturn)) rt_main(struct hvt_boot_info *info);
void __attribute__((noreturn)) rt_main(struct hvt_boot_info *info)
{
    bi = info;
    if (bi->magic != HVT_MAGIC) {
        log_("unik-hvt: the boot information is not the monitor's (bad magic)\n");
        halt(255);
    }
    u32 edx = cpu_setup();
    anchor();
    clocks(&boot_ns, NULL);
    run_ns = boot_ns;
    rng_rekey();

    heap_lo = (bi->kernel_end + PAGE - 1) & ~(PAGE - 1);
    /* The heap ends at the 2 MiB boundary below the stack's guard page: the monitor maps the
     * 2 MiB region holding that page with 4 KiB pages, and mmap hands out the top of the heap
     * first (CPython's first obmalloc arenas), where each first touch of a 4 KiB page is then a
     * fault of its own under shadow paging: 434 of examples/hello's cold boot (KVM's pf_fixed),
     * about 20 us each.  Below it every region is one 2 MiB page. */
    heap_hi = (bi->mem_size - STACK_SIZE - PAGE) & ~((2ULL << 20) - 1);
    if (bi->mem_size < heap_lo + STACK_SIZE + (2ULL << 20) + (4ULL << 20)) {
        log_("unik-hvt: %lu MiB of memory leave no heap after the %lu MiB image and the 8 MiB stack: "
             "raise --mem\n", bi->mem_size >> 20, heap_lo >> 20);
        halt(255);
    }
    brk_cur = brk_hwm = heap_lo;
    mmap_lwm = heap_hi;
    layout_mem = bi->mem_size;
    fs_init();
    for (int fd = 0; fd < 3; fd++) {
        struct file *f = new_file(K_CONSOLE);
        f->console_fd = fd;
        install(f, fd);
    }

    /* The Linux process stack libc's _start expects: argc, argv, envp, auxv. */
    u64 *sp = (u64 *)bi->mem_size;
    const char *args = (const char *)(uintptr_t)HVT_ARGS;
    sp = push_bytes(sp, args, bi->args_len);
    const char *sargs = (const char *)sp;
    u8 random[16];
    sys_getrandom(random, 16);
    sp = push_bytes(sp, random, 16);
    u64 at_random = (u64)(uintptr_t)sp;
    sp = push_bytes(sp, "x86_64", 7);
    u64 at_platform = (u64)(uintptr_t)sp;
    const u8 *eh = __ehdr_start;
    u64 phoff = *(const u64 *)(eh + 32);
    u64 phnum = *(const uint16_t *)(eh + 56);
    u64 auxv[][2] = {
        {3, (u64)(uintptr_t)eh + phoff}, {4, 56}, {5, phnum}, {6, PAGE}, {9, (u64)(uintptr_t)_start},
        {11, 0}, {12, 0}, {13, 0}, {14, 0}, {16, edx}, {17, 100}, {15, at_platform}, {23, 0},
        {25, at_random}, {26, 0}, {51, 2048}, {33, (u64)(uintptr_t)hvt_vdso}, {0, 0}};
    /* No environment, but with --profile-imports one variable: CPython's main (pymain.c)
     * then prints its import times (-X importtime). */
    sp = push_bytes(sp, "UNIK_HVT_IMPORT_TIME=1", 23);
    u64 import_time_env = (u64)(uintptr_t)sp;
    int envc = (bi->flags & HVT_FLAG_IMPORTS) != 0;
    u64 nwords = 1 + bi->argc + 1 + envc + 1 + 2 * (sizeof auxv / sizeof auxv[0]);
    sp -= nwords;
    sp = (u64 *)((uintptr_t)sp & ~15ULL);
    u64 *w = sp;
    *w++ = bi->argc;
    for (u64 i = 0, off = 0; i < bi->argc; i++) {
        *w++ = (u64)(uintptr_t)(sargs + off);
        off += slen(sargs + off) + 1;
    }
    *w++ = 0; /* end of argv */
    if (envc)
        *w++ = import_time_env;
    *w++ = 0; /* end of the environment */
    for (u64 i = 0; i < sizeof auxv / sizeof auxv[0]; i++) {
        *w++ = auxv[i][0];
        *w++ = auxv[i][1];
    }
    rt_enter((u64)(uintptr_t)sp, (u64)(uintptr_t)_start);
}
