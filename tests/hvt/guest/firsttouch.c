/* The heap's first mmap'd memory (the top of the heap, where CPython's first obmalloc
 * arenas go): 2 MiB of it touched page by page. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

int main(void)
{
    size_t len = 2 << 20;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 1;
    for (size_t i = 0; i < len; i += 4096)
        m[i] = 1;
    printf("touched %zu pages\n", len / 4096);
    return 0;
}
