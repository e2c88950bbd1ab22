/* hvt's vDSO: clock_gettime, gettimeofday and time for glibc without a system call.
 *
 * A shared object (linux-vdso.so.1, version LINUX_2.6, as Linux's) embedded in the
 * runtime's text and handed to glibc with AT_SYSINFO_EHDR; glibc's static start-up looks
 * its functions up and calls them instead of the system calls.  Under kvm_pvm every
 * system call is a trap of tens of microseconds, and CPython 3.11 reads the monotonic
 * clock at every lock acquire (1,780 times while examples/hello starts).  The clock is
 * the runtime's (struct hvt_vclock in the boot information, which the guest may read):
 * the TSC, anchored by the clock hypercall.  Clocks it does not keep (CPU time) and an
 * unknown TSC rate fall back to the system call.  Position-independent, no relocations,
 * no data of its own. */
#include <stddef.h>
#include <stdint.h>

#include "hvt_abi.h"

struct timespec_ { int64_t sec, nsec; };
struct timeval_ { int64_t sec, usec; };

#define VCLOCK ((const volatile struct hvt_vclock *)(HVT_BOOT_INFO + offsetof(struct hvt_boot_info, vclock)))

static long syscall2(long nr, long a, long b)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
    return ret;
}

/* The clock's nanoseconds; 0 when the runtime does not keep it here. */
static uint64_t now(long clock)
{
    const volatile struct hvt_vclock *v = VCLOCK;
    uint64_t mult = v->mult;
    if (!mult)
        return 0;
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    uint64_t tsc = ((uint64_t)hi << 32) | lo, anchor = v->tsc;
    uint64_t delta = tsc > anchor ? (uint64_t)(((unsigned __int128)(tsc - anchor) * mult) >> 32) : 0;
    switch (clock) {
    case 0: case 5: case 8: /* REALTIME, REALTIME_COARSE, REALTIME_ALARM */
        return v->wall_ns + delta;
    case 1: case 4: case 6: case 7: case 9: /* MONOTONIC, _RAW, _COARSE, BOOTTIME, BOOTTIME_ALARM */
        return v->monotonic_ns + delta;
    default:
        return 0;
    }
}

int __vdso_clock_gettime(long clock, struct timespec_ *ts);
int __vdso_clock_gettime(long clock, struct timespec_ *ts)
{
    uint64_t ns = now(clock);
    if (!ns)
        return (int)syscall2(228, clock, (long)ts);
    ts->sec = (int64_t)(ns / 1000000000ULL);
    ts->nsec = (int64_t)(ns % 1000000000ULL);
    return 0;
}

int __vdso_gettimeofday(struct timeval_ *tv, void *tz);
int __vdso_gettimeofday(struct timeval_ *tv, void *tz)
{
    uint64_t ns = now(0);
    if (!ns || tz)
        return (int)syscall2(96, (long)tv, (long)tz);
    if (tv) {
        tv->sec = (int64_t)(ns / 1000000000ULL);
        tv->usec = (int64_t)(ns % 1000000000ULL / 1000);
    }
    return 0;
}

long __vdso_time(long *t);
long __vdso_time(long *t)
{
    uint64_t ns = now(0);
    if (!ns)
        return syscall2(201, (long)t, 0);
    long sec = (long)(ns / 1000000000ULL);
    if (t)
        *t = sec;
    return sec;
}
