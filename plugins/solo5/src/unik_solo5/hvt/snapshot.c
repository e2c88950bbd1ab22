/* unik-hvt's snapshots: saving a pre-initialised guest's memory and vCPU, and putting them back
 * (the file's layout: snapshot.h).  The monitor decides what is saved and what a restore takes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot.h"

/* ---- the checksum: four 64-bit lanes, one word of every 32 bytes each --------------------- */

struct sum {
    uint64_t lane[4];
};

#define K1 0x9e3779b185ebca87ULL
#define K2 0xc2b2ae3d27d4eb4fULL

static uint64_t rotl(uint64_t v, int n) { return (v << n) | (v >> (64 - n)); }

static void sum_init(struct sum *s)
{
    s->lane[0] = K1;
    s->lane[1] = K2;
    s->lane[2] = ~K1;
    s->lane[3] = ~K2;
}

/* n: a multiple of 32 (the metadata region and the pages are whole pages) */
static void sum_update(struct sum *s, const uint8_t *p, uint64_t n)
{
    uint64_t a = s->lane[0], b = s->lane[1], c = s->lane[2], d = s->lane[3];
    for (; n >= 32; n -= 32, p += 32) {
        uint64_t w[4];
        memcpy(w, p, 32);
        a = rotl(a + w[0] * K2, 31) * K1;
        b = rotl(b + w[1] * K2, 31) * K1;
        c = rotl(c + w[2] * K2, 31) * K1;
        d = rotl(d + w[3] * K2, 31) * K1;
    }
    s->lane[0] = a, s->lane[1] = b, s->lane[2] = c, s->lane[3] = d;
}

static uint64_t sum_final(const struct sum *s)
{
    uint64_t h = rotl(s->lane[0], 1) + rotl(s->lane[1], 7) + rotl(s->lane[2], 12) + rotl(s->lane[3], 18);
    h ^= h >> 33;
    h *= K2;
    h ^= h >> 29;
    h *= K1;
    return h ^ (h >> 32);
}

static int zero_page(const uint8_t *page)
{
    uint64_t any = 0, w[8];
    for (uint64_t i = 0; i < SNAP_PAGE; i += sizeof w) {
        memcpy(w, page + i, sizeof w);
        any |= w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7];
    }
    return any == 0;
}

static uint64_t metadata_size(uint64_t nruns)
{
    return (sizeof(struct snap_header) + nruns * sizeof(struct snap_run) + SNAP_PAGE - 1) & ~(SNAP_PAGE - 1);
}

static char reason[512];

static const char *why(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *why(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return reason;
}

/* pwrite (writing) or pread all len bytes of buf at offset at, resuming after a short transfer
 * and EINTR; -1 on an error or at the end of the file. */
static int transfer_all(int fd, uint8_t *buf, uint64_t len, uint64_t at, int writing)
{
    for (uint64_t done = 0; done < len;) {
        ssize_t n = writing ? pwrite(fd, buf + done, len - done, (off_t)(at + done))
                            : pread(fd, buf + done, len - done, (off_t)(at + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (uint64_t)n;
    }
    return 0;
}

static int write_all(int fd, const void *buf, uint64_t len, uint64_t at)
{
    return transfer_all(fd, (uint8_t *)(uintptr_t)buf, len, at, 1); /* only read from: pwrite */
}

static int read_all(int fd, void *buf, uint64_t len, uint64_t at)
{
    return transfer_all(fd, buf, len, at, 0);
}

/* ---- saving ------------------------------------------------------------------------------ */

/* The metadata of the largest snapshot (every other page saved), made before the monitor's
 * seccomp seal, which allows no mmap. */
static uint8_t *snapshot_scratch;
static uint64_t snapshot_scratch_size;

const char *snapshot_reserve(uint64_t mem_size)
{
    snapshot_scratch_size = metadata_size(mem_size / SNAP_PAGE / 2 + 1);
    snapshot_scratch = mmap(NULL, snapshot_scratch_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (snapshot_scratch == MAP_FAILED) {
        snapshot_scratch = NULL;
        return why("has no room for its metadata: %s", strerror(errno));
    }
    return NULL;
}

const char *snapshot_save(int fd, const uint8_t *mem, uint64_t mem_size, int (*keep)(uint64_t gpa),
                          const struct snap_binding *binding, const struct snap_vcpu *vcpu, uint64_t *bytes)
{
    if (!snapshot_scratch)
        return why("has no metadata buffer (snapshot_reserve was not called)");
    struct snap_header *h = (struct snap_header *)snapshot_scratch;
    struct snap_run *runs = (struct snap_run *)(snapshot_scratch + sizeof *h);
    uint64_t nruns = 0, npages = 0;
    for (uint64_t gpa = 0; gpa < mem_size; gpa += SNAP_PAGE) {
        if (!keep(gpa) || zero_page(mem + gpa))
            continue;
        if (nruns && runs[nruns - 1].gpa + runs[nruns - 1].pages * SNAP_PAGE == gpa) {
            runs[nruns - 1].pages++;
        } else {
            if (metadata_size(nruns + 1) > snapshot_scratch_size)
                return why("has more runs of pages than its metadata can hold");
            runs[nruns].gpa = gpa;
            runs[nruns++].pages = 1;
        }
        npages++;
    }
    uint64_t meta = metadata_size(nruns);
    memset(h, 0, sizeof *h);
    memcpy(h->magic, SNAP_MAGIC, sizeof h->magic);
    h->version = SNAP_VERSION;
    h->header_size = sizeof *h;
    h->binding = *binding;
    h->nruns = nruns;
    h->npages = npages;
    h->data_offset = meta;
    h->vcpu = *vcpu;
    memset(snapshot_scratch + sizeof *h + nruns * sizeof *runs, 0, meta - sizeof *h - nruns * sizeof *runs);
    struct sum s;
    sum_init(&s);
    sum_update(&s, snapshot_scratch, meta);
    uint64_t at = meta;
    for (uint64_t r = 0; r < nruns; r++) {
        uint64_t len = runs[r].pages * SNAP_PAGE;
        sum_update(&s, mem + runs[r].gpa, len);
        if (write_all(fd, mem + runs[r].gpa, len, at) < 0)
            return why("could not be written: %s", strerror(errno));
        at += len;
    }
    h->checksum = sum_final(&s);
    if (write_all(fd, snapshot_scratch, meta, 0) < 0)
        return why("could not be written: %s", strerror(errno));
    *bytes = at;
    return NULL;
}

/* ---- restoring ----------------------------------------------------------------------------- */

static const char *compare(const struct snap_binding *got, const struct snap_binding *want)
{
    if (got->elf_id_len != want->elf_id_len || memcmp(got->elf_id, want->elf_id, sizeof got->elf_id) != 0
        || got->elf_size != want->elf_size)
        return why("is of another build of the unikernel (its build ID or size differs)");
    if (got->monitor_id_len != want->monitor_id_len
        || memcmp(got->monitor_id, want->monitor_id, sizeof got->monitor_id) != 0)
        return why("was made by another build of unik-hvt");
    if (got->mem_size > want->mem_size)
        return why("was made with --mem %llu, this run has --mem %llu (a snapshot restores only into as much memory as "
                   "it was made with or more: unik configure --mem %lluM and unik build make one for it)",
                   (unsigned long long)(got->mem_size >> 20), (unsigned long long)(want->mem_size >> 20),
                   (unsigned long long)(want->mem_size >> 20));
    return NULL;
}

static const char *load(int fd, uint8_t *mem, uint64_t mem_size, const struct snap_binding *want, int lazily,
                        struct snap_vcpu *vcpu, uint64_t *made_mem)
{
    struct stat st;
    struct snap_header h;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return why("is not a regular file");
    if (read_all(fd, &h, sizeof h, 0) < 0 || memcmp(h.magic, SNAP_MAGIC, sizeof h.magic) != 0)
        return why("is not an hvt snapshot (or is cut short)");
    if (h.version != SNAP_VERSION || h.header_size != sizeof h)
        return why("is of snapshot format %u, this unik-hvt reads format %d", h.version, SNAP_VERSION);
    const char *differs = compare(&h.binding, want);
    if (differs)
        return differs;
    if (h.nruns > mem_size / SNAP_PAGE || h.npages > mem_size / SNAP_PAGE || h.data_offset != metadata_size(h.nruns)
        || (uint64_t)st.st_size != h.data_offset + h.npages * SNAP_PAGE)
        return why("is damaged (its size does not match its header)");
    uint8_t *meta = malloc(h.data_offset);
    if (!meta)
        return why("does not fit in memory");
    if (read_all(fd, meta, h.data_offset, 0) < 0) {
        free(meta);
        return why("cannot be read: %s", strerror(errno));
    }
    memset(meta + offsetof(struct snap_header, checksum), 0, sizeof h.checksum);
    struct sum s;
    sum_init(&s);
    sum_update(&s, meta, h.data_offset);
    const struct snap_run *runs = (const struct snap_run *)(meta + sizeof h);
    uint64_t pages = 0, end = 0;
    for (uint64_t r = 0; r < h.nruns; r++) {
        if ((runs[r].gpa & (SNAP_PAGE - 1)) || runs[r].gpa < end || !runs[r].pages
            || runs[r].pages > (mem_size - runs[r].gpa) / SNAP_PAGE || runs[r].gpa >= mem_size) {
            free(meta);
            return why("is damaged (its runs of pages overlap or lie outside memory)");
        }
        end = runs[r].gpa + runs[r].pages * SNAP_PAGE;
        pages += runs[r].pages;
    }
    if (pages != h.npages) {
        free(meta);
        return why("is damaged (its runs do not add up to its pages)");
    }
    uint64_t at = h.data_offset;
    for (uint64_t r = 0; r < h.nruns; r++) {
        uint64_t len = runs[r].pages * SNAP_PAGE;
        if (lazily) {
            if (mmap(mem + runs[r].gpa, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, (off_t)at)
                == MAP_FAILED) {
                free(meta);
                return why("cannot be mapped: %s", strerror(errno));
            }
        } else {
            /* in pieces, each summed while it is still in the cache */
            for (uint64_t done = 0; done < len;) {
                uint64_t piece = len - done < (1ULL << 20) ? len - done : 1ULL << 20;
                if (read_all(fd, mem + runs[r].gpa + done, piece, at + done) < 0) {
                    free(meta);
                    return why("cannot be read: %s", strerror(errno));
                }
                sum_update(&s, mem + runs[r].gpa + done, piece);
                done += piece;
            }
        }
        at += len;
    }
    free(meta);
    if (!lazily && sum_final(&s) != h.checksum)
        return why("is damaged (its checksum does not match its contents)");
    *vcpu = h.vcpu;
    *made_mem = h.binding.mem_size;
    return NULL;
}

const char *snapshot_load(const char *path, uint8_t *mem, uint64_t mem_size, const struct snap_binding *want,
                          int lazily, struct snap_vcpu *vcpu, uint64_t *made_mem)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? why("does not exist") : why("cannot be opened: %s", strerror(errno));
    const char *failed = load(fd, mem, mem_size, want, lazily, vcpu, made_mem);
    close(fd); /* mapped pages stay mapped */
    return failed;
}
