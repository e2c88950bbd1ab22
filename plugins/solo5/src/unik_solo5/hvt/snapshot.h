/* unik-hvt's snapshots of a pre-initialised guest (snapshot.c; hvt_abi.h says when one is made).
 *
 * The file: one page-aligned metadata region (struct snap_header, then nruns struct
 * snap_run, then zeros), then the saved pages, 4 KiB each, run after run.  Only the pages
 * the monitor keeps are saved (not the unikernel's read-only segments, which every boot
 * loads from the ELF, nor the page tables and GDT, which every boot builds), and of those
 * only the ones that are not all zeros: guest memory not in the file is zero.  A checksum
 * over the metadata (its own field zero) and the pages finds a file that was changed or cut.
 */
#ifndef UNIK_HVT_SNAPSHOT_H
#define UNIK_HVT_SNAPSHOT_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC "UNIKSNP1"
#define SNAP_VERSION 1
#define SNAP_PAGE 4096ULL

/* What a snapshot is of; a restore requires every field equal. */
struct snap_binding {
    uint8_t elf_id[32];     /* the unikernel's GNU build ID (ld's digest of its contents) */
    uint32_t elf_id_len, monitor_id_len;
    uint8_t monitor_id[32]; /* the monitor's own build ID: its hypercalls, its vCPU set-up */
    uint64_t elf_size;      /* the unikernel's size in bytes */
    uint64_t mem_size;      /* --mem, in bytes (a restore may have more: the guest's heap grows into it) */
};

/* The vCPU at the save: the registers, the segment and system registers (the restore takes only
 * what a CPL 3 guest can change: FS and GS bases) and the FPU/SSE state. */
struct snap_vcpu {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_fpu fpu;
};

struct snap_header {
    char magic[8];
    uint32_t version, header_size;
    struct snap_binding binding;
    uint64_t nruns, npages; /* runs of consecutive saved pages; pages in all */
    uint64_t data_offset;   /* where the pages start (the metadata region's size) */
    uint64_t checksum;      /* snap_checksum of the metadata region (this field 0) and the pages */
    struct snap_vcpu vcpu;
};

struct snap_run {
    uint64_t gpa, pages;
};

/* Make the buffer snapshot_save needs (before the monitor's seal, which forbids mmap); NULL or what failed. */
const char *snapshot_reserve(uint64_t mem_size);

/* Write the snapshot of mem (mem_size bytes) to fd: the non-zero pages among those keep(gpa)
 * accepts.  NULL, and *bytes the file's size; or what failed. */
const char *snapshot_save(int fd, const uint8_t *mem, uint64_t mem_size, int (*keep)(uint64_t gpa),
                          const struct snap_binding *binding, const struct snap_vcpu *vcpu, uint64_t *bytes);

/* Put the snapshot at path into mem (zero where the snapshot has no page), its vCPU into
 * *vcpu and the memory it was made with into *made_mem, if it is a snapshot of want (made with
 * want's --mem or less).  lazily: map the file's pages (MAP_PRIVATE; they load as
 * the guest touches them, and the checksum of the pages is not verified) instead of reading
 * them in.  NULL when done; else why not, in words that follow "the snapshot PATH" (mem may
 * then hold some of its pages: the caller clears it). */
const char *snapshot_load(const char *path, uint8_t *mem, uint64_t mem_size, const struct snap_binding *want,
                          int lazily, struct snap_vcpu *vcpu, uint64_t *made_mem);

#endif
