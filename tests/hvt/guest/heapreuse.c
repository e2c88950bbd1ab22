/* Heap memory the guest freed dirty comes back zeroed, as Linux's does: the runtime zeroes
 * only pages it handed out before (runtime.c's mmap_lwm), never the fresh ones. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int all_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return 0;
    return 1;
}

int main(void)
{
    size_t len = 4 << 20;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("fresh mmap: %s\n", m != MAP_FAILED && all_zero(m, len) ? "zero" : "dirty");
    memset(m, 0xa5, len);
    munmap(m, len);
    m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap after munmap of dirty memory: %s\n", m != MAP_FAILED && all_zero(m, len) ? "zero" : "dirty");
    munmap(m, len);

    unsigned char *top = sbrk(0);
    sbrk(1 << 20);
    memset(top, 0x5a, 1 << 20);
    sbrk(-(1 << 20));
    sbrk(1 << 20);
    printf("the break given back dirty and grown again: %s\n", all_zero(top, 1 << 20) ? "zero" : "dirty");

    /* all of the heap mapped, dirtied and unmapped: the break then grows over what mmap had */
    static unsigned char *chunks[4096];
    int n = 0;
    while (n < 4096 && (chunks[n] = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                         -1, 0)) != MAP_FAILED)
        memset(chunks[n++], 0xc3, 1 << 20);
    for (int i = 0; i < n; i++)
        munmap(chunks[i], 1 << 20);
    top = sbrk(0);
    int grown = n > 4 && sbrk(2 << 20) != (void *)-1;
    printf("the break grown over memory mmap had dirtied: %s\n", grown && all_zero(top, 2 << 20) ? "zero" : "dirty");
    return 0;
}
