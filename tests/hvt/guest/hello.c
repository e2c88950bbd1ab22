/* A static program against the unmodified glibc, for hvt's runtime: stdio, malloc (brk and
 * mmap), a file of the in-memory archive, clocks, floating point, an exit status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    printf("hello from static glibc: argc=%d argv[0]=%s\n", argc, argv[0]);
    char *big = malloc(64 << 20);
    if (big) {
        memset(big, 1, 64 << 20);
        printf("malloc 64 MiB: %s\n", big[(64 << 20) - 1] == 1 ? "ok" : "bad");
        free(big);
    }
    FILE *f = fopen("/etc/motd", "r");
    char line[64];
    if (f && fgets(line, sizeof line, f))
        fputs(line, stdout);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    printf("1.5 * argc = %.3f\n", 1.5 * argc);
    return argc > 1 ? atoi(argv[1]) : 0;
}
