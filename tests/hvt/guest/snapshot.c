/* A static glibc program with a snapshot point (hvt_abi.h's HVT_SYS_SNAPSHOT, op 1): it draws
 * random bytes and reads the monotonic clock before the point, and after it prints whether it
 * was restored, both draws, whether the monotonic clock went on and the wall clock, and exits 7.
 * Built with -DWRITE_TEXT or -DOVERFLOW it breaks W^X or its stack guard after the point. */
#include <stdio.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void hex(const unsigned char *b, int n, char *out)
{
    for (int i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

#ifdef OVERFLOW
static int depth(int n)
{
    volatile char pad[1024];
    pad[0] = (char)n;
    return depth(n + 1) + pad[0];
}
#endif

int main(void)
{
    unsigned char before[16], after[16];
    char hb[33], ha[33];
    struct timespec t0, t1, wall;
    if (getrandom(before, sizeof before, 0) != sizeof before)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long restored = syscall(0x4856, 1);
#ifdef WRITE_TEXT
    *(volatile char *)main = 0;
#endif
#ifdef OVERFLOW
    depth(0);
#endif
    if (getrandom(after, sizeof after, 0) != sizeof after)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_REALTIME, &wall);
    hex(before, 16, hb);
    hex(after, 16, ha);
    int forward = t1.tv_sec > t0.tv_sec || (t1.tv_sec == t0.tv_sec && t1.tv_nsec >= t0.tv_nsec);
    printf("restored=%ld before=%s after=%s monotonic_forward=%d wall=%lld\n", restored, hb, ha, forward,
           (long long)wall.tv_sec);
    return 7;
}
