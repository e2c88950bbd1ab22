/* The clocks through the runtime's vDSO: monotonic never goes back, the wall clock's three
 * readings agree, a sleep is seen by both, and CPU time (not in the vDSO) still works. */
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static long long ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void)
{
    long long last = ns(CLOCK_MONOTONIC), back = 0;
    for (int i = 0; i < 100000; i++) {
        long long now = ns(CLOCK_MONOTONIC);
        back += now < last;
        last = now;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long wall = ns(CLOCK_REALTIME), t = time(NULL);
    long long before = ns(CLOCK_MONOTONIC);
    struct timespec nap = {0, 20000000};
    nanosleep(&nap, NULL);
    long long slept = ns(CLOCK_MONOTONIC) - before;
    printf("monotonic went back %lld times\n", back);
    printf("gettimeofday, CLOCK_REALTIME and time agree: %d\n",
           tv.tv_sec <= wall / 1000000000LL && wall / 1000000000LL - tv.tv_sec <= 1 && t - tv.tv_sec <= 1);
    printf("a 20 ms sleep took at least 20 ms: %d\n", slept >= 20000000);
    printf("CPU time: %d\n", ns(CLOCK_PROCESS_CPUTIME_ID) > 0);
    return 0;
}
