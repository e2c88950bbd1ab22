/* unik-hvt: unik's minimal KVM monitor (after solo5's hvt).
 *
 *   unik-hvt [--mem MIB] [--net:NAME=TAP] [--net-mac:NAME=MAC] [--block:NAME=FILE]
 *            [--trace] [--profile] [--profile-imports] [--snapshot FILE] [--] UNIKERNEL.elf [ARG...]
 *   unik-hvt [--mem MIB] --save-snapshot FILE [--] UNIKERNEL.elf [ARG...]
 *   unik-hvt --show-policy [UNIKERNEL.elf]
 *
 * Loads a static x86_64 ELF into a VM of --mem MiB (default 256), refusing hostile
 * ELFs before the VM exists; opens exactly the devices given, which must be those the
 * ELF's manifest note declares (hvt_abi.h); puts the vCPU straight
 * into 64-bit mode at CPL 3 (identity-mapped 2 MiB pages, flat GDT, SSE enabled,
 * CPUID without AVX/XSAVE/CX16, LSTAR at the runtime's system call entry); serves the
 * hypercalls of hvt_abi.h (stores to a page outside RAM) until the guest exits.
 * --save-snapshot boots the guest to pre-initialise it: at its snapshot point (hvt_abi.h) its
 * memory and vCPU are saved to FILE (snapshot.c) and the monitor exits 0.  --snapshot FILE
 * starts the guest from such a file instead of booting it, when the file is a snapshot of this
 * ELF made by this monitor with this --mem or less (the guest's heap takes the rest); else one
 * line on stderr says why and it boots cold.
 * Exit status: the guest's; 125 when the monitor
 * refuses to start (a sentence on stderr says why); 255 when the guest crashed (the
 * registers are printed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <elf.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <link.h>

#include "hvt_abi.h"
#include "snapshot.h"

#define REFUSE 125
#define CRASHED 255

static const char *prog = "unik-hvt";

static void die(int status, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void die(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(status);
}

/* ---- guest memory ---------------------------------------------------------------- */

static uint8_t *mem;
static uint64_t mem_size;

/* A pointer to [gpa, gpa+len) in guest memory, or NULL if any of it lies outside. */
static void *guest(uint64_t gpa, uint64_t len)
{
    if (gpa > mem_size || len > mem_size - gpa)
        return NULL;
    return mem + gpa;
}

/* ---- the ELF ------------------------------------------------------------------- */

static struct {
    const char *path;
    int fd;
    uint64_t entry, end, size;
    int nph;
    Elf64_Phdr ph[64];
    uint8_t build_id[32]; /* its GNU build ID (ld's digest of its contents): what a snapshot is bound to */
    uint32_t build_id_len;
} elf;

/* What the unikernel may use: its manifest note (hvt_abi.h); none without one. */
static struct hvt_manifest_entry manifest[HVT_MAX_DEVICES];
static uint32_t nmanifest;

static const char *type_name(uint32_t type)
{
    return type == HVT_NET ? "network" : type == HVT_BLOCK ? "block" : "unknown";
}

/* The manifest note among the notes of PT_NOTE segment p (every field checked). */
static void read_manifest(const Elf64_Phdr *p, uint64_t file_size)
{
    const char *path = elf.path;
    if (p->p_filesz > 65536 || p->p_offset > file_size || p->p_filesz > file_size - p->p_offset)
        die(REFUSE, "%s: a note segment lies outside the file or is too large", path);
    uint8_t buf[65536];
    if (pread(elf.fd, buf, p->p_filesz, (off_t)p->p_offset) != (ssize_t)p->p_filesz)
        die(REFUSE, "%s: cannot read its notes", path);
    for (uint64_t at = 0; at + sizeof(Elf64_Nhdr) <= p->p_filesz;) {
        Elf64_Nhdr nh;
        memcpy(&nh, buf + at, sizeof nh);
        uint64_t name_at = at + sizeof nh, desc_at = name_at + ((nh.n_namesz + 3ULL) & ~3ULL);
        uint64_t next = desc_at + ((nh.n_descsz + 3ULL) & ~3ULL);
        if (next > p->p_filesz)
            die(REFUSE, "%s: a malformed note (its sizes run past its segment)", path);
        if (nh.n_namesz == 4 && memcmp(buf + name_at, "GNU", 4) == 0 && nh.n_type == NT_GNU_BUILD_ID
            && nh.n_descsz <= sizeof elf.build_id) {
            memcpy(elf.build_id, buf + desc_at, nh.n_descsz);
            elf.build_id_len = nh.n_descsz;
        }
        if (nh.n_namesz == sizeof HVT_NOTE_NAME && memcmp(buf + name_at, HVT_NOTE_NAME, sizeof HVT_NOTE_NAME) == 0
            && nh.n_type == HVT_NOTE_MANIFEST) {
            struct hvt_manifest m;
            if (nh.n_descsz < sizeof m)
                die(REFUSE, "%s: its manifest note is truncated", path);
            memcpy(&m, buf + desc_at, sizeof m);
            if (m.version != HVT_MANIFEST_VERSION)
                die(REFUSE, "%s: its manifest is version %u, this monitor reads version %u (rebuild the unikernel "
                    "with this unik)", path, m.version, HVT_MANIFEST_VERSION);
            if (m.count > HVT_MAX_DEVICES || nh.n_descsz != sizeof m + m.count * sizeof manifest[0])
                die(REFUSE, "%s: its manifest declares %u devices in %u bytes (at most %d devices)", path, m.count,
                    nh.n_descsz, HVT_MAX_DEVICES);
            if (nmanifest)
                die(REFUSE, "%s: it has two manifest notes", path);
            memcpy(manifest, buf + desc_at + sizeof m, m.count * sizeof manifest[0]);
            for (uint32_t i = 0; i < m.count; i++) {
                struct hvt_manifest_entry *e = &manifest[i];
                if (!memchr(e->name, 0, sizeof e->name) || !e->name[0])
                    die(REFUSE, "%s: manifest entry %u has no name (or one without its NUL)", path, i);
                if (e->type != HVT_NET && e->type != HVT_BLOCK)
                    die(REFUSE, "%s: manifest device %s has an unknown type %u", path, e->name, e->type);
                for (uint32_t j = 0; j < i; j++)
                    if (strcmp(manifest[j].name, e->name) == 0)
                        die(REFUSE, "%s: its manifest declares device %s twice", path, e->name);
            }
            nmanifest = m.count;
        }
        at = next;
    }
}

/* Check the ELF at path before anything else exists: a static x86_64 executable whose
 * loadable segments fit guest memory (mem_size; 0: not known yet), do not overlap and
 * are not writable and executable at once, with the entry point in an executable one.
 * Reads its manifest. */
static void check_elf(const char *path)
{
    elf.path = path;
    int fd = elf.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die(REFUSE, "cannot open the unikernel %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        die(REFUSE, "the unikernel %s is not a regular file", path);
    elf.size = (uint64_t)st.st_size;
    Elf64_Ehdr eh;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0
        || eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
        die(REFUSE, "%s is not a 64-bit little-endian ELF file", path);
    if (eh.e_machine != EM_X86_64)
        die(REFUSE, "%s is not an x86_64 ELF (e_machine %u)", path, eh.e_machine);
    if (eh.e_type != ET_EXEC)
        die(REFUSE, "%s is not a static executable (ELF type %u; link it with -static -no-pie)", path, eh.e_type);
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 64)
        die(REFUSE, "%s has a malformed program header table", path);
    Elf64_Phdr *ph = elf.ph;
    elf.nph = eh.e_phnum;
    size_t phlen = (size_t)eh.e_phnum * sizeof(Elf64_Phdr);
    if (pread(fd, ph, phlen, (off_t)eh.e_phoff) != (ssize_t)phlen)
        die(REFUSE, "%s: the program headers lie outside the file", path);
    uint64_t end = 0, limit = mem_size ? mem_size : (uint64_t)HVT_MAX_GIB << 30;
    int entry_ok = 0;
    for (int i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_type == PT_INTERP || ph[i].p_type == PT_DYNAMIC)
            die(REFUSE, "%s is dynamically linked: the unikernel must be a static ELF", path);
        if (ph[i].p_type == PT_NOTE)
            read_manifest(&ph[i], (uint64_t)st.st_size);
        if (ph[i].p_type != PT_LOAD || ph[i].p_memsz == 0)
            continue;
        const Elf64_Phdr *p = &ph[i];
        if ((p->p_flags & PF_W) && (p->p_flags & PF_X))
            die(REFUSE, "%s: segment %d is both writable and executable (refused)", path, i);
        if (p->p_filesz > p->p_memsz || p->p_offset > (uint64_t)st.st_size
            || p->p_filesz > (uint64_t)st.st_size - p->p_offset)
            die(REFUSE, "%s: segment %d's contents lie outside the file", path, i);
        if (p->p_vaddr < HVT_LOAD_MIN || p->p_vaddr > limit || p->p_memsz > limit - p->p_vaddr)
            die(REFUSE, "%s: segment %d [%#lx, %#lx) lies outside guest memory [%#x, %#lx): "
                "raise --mem or link the unikernel elsewhere", path, i, (unsigned long)p->p_vaddr,
                (unsigned long)(p->p_vaddr + p->p_memsz), HVT_LOAD_MIN, (unsigned long)limit);
        for (int j = 0; j < i; j++) {
            const Elf64_Phdr *q = &ph[j];
            if (q->p_type == PT_LOAD && q->p_memsz && p->p_vaddr < q->p_vaddr + q->p_memsz
                && q->p_vaddr < p->p_vaddr + p->p_memsz)
                die(REFUSE, "%s: segments %d and %d overlap (refused)", path, j, i);
            /* page tables give rights per 4 KiB page: a page may not hold writing and executing segments */
            if (q->p_type == PT_LOAD && q->p_memsz && ((p->p_flags | q->p_flags) & PF_W)
                && ((p->p_flags | q->p_flags) & PF_X) && (p->p_vaddr & ~0xfffULL) < q->p_vaddr + q->p_memsz
                && (q->p_vaddr & ~0xfffULL) < p->p_vaddr + p->p_memsz)
                die(REFUSE, "%s: segments %d and %d share a page, one writable and one executable (refused: link "
                    "with -z separate-code)", path, j, i);
        }
        if ((p->p_flags & PF_X) && eh.e_entry >= p->p_vaddr && eh.e_entry < p->p_vaddr + p->p_memsz)
            entry_ok = 1;
        if (p->p_vaddr + p->p_memsz > end)
            end = p->p_vaddr + p->p_memsz;
    }
    if (!entry_ok)
        die(REFUSE, "%s: the entry point %#lx is not inside an executable segment (refused)", path,
            (unsigned long)eh.e_entry);
    elf.entry = eh.e_entry;
    elf.end = (end + 0xfff) & ~0xfffULL;
}

/* Copy the checked ELF's segments into guest memory (the rest of each, .bss, is zero); with
 * read_only, only those the guest cannot write (a restored snapshot holds the others). */
static void load_segments(int read_only)
{
    for (int i = 0; i < elf.nph; i++) {
        const Elf64_Phdr *p = &elf.ph[i];
        if (p->p_type != PT_LOAD || p->p_filesz == 0 || (read_only && (p->p_flags & PF_W)))
            continue;
        if (pread(elf.fd, mem + p->p_vaddr, p->p_filesz, (off_t)p->p_offset) != (ssize_t)p->p_filesz)
            die(REFUSE, "%s: cannot read segment %d: %s", elf.path, i, strerror(errno));
    }
    close(elf.fd);
}

/* ---- devices ------------------------------------------------------------------- */

struct device {
    struct hvt_device d;
    int fd;
};
static struct device devices[HVT_MAX_DEVICES];
static uint32_t ndevices;

static struct device *add_device(const char *name, uint32_t type)
{
    if (strlen(name) >= sizeof devices[0].d.name)
        die(REFUSE, "device name %s is too long (at most 31 characters)", name);
    for (uint32_t i = 0; i < ndevices; i++)
        if (strcmp(devices[i].d.name, name) == 0)
            die(REFUSE, "device %s is given twice", name);
    if (ndevices == HVT_MAX_DEVICES)
        die(REFUSE, "too many devices (at most %d)", HVT_MAX_DEVICES);
    struct device *dev = &devices[ndevices++];
    snprintf(dev->d.name, sizeof dev->d.name, "%s", name);
    dev->d.type = type;
    return dev;
}

static void open_tap(struct device *dev, const char *tap)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (strlen(tap) >= IFNAMSIZ)
        die(REFUSE, "network device %s: TAP name %s is too long", dev->d.name, tap);
    /* TUNSETIFF would create a missing TAP (as root): attach only to one that exists. */
    if (if_nametoindex(tap) == 0)
        die(REFUSE, "network device %s: there is no network interface %s (create the TAP first: "
            "ip tuntap add %s mode tap)", dev->d.name, tap, tap);
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        die(REFUSE, "network device %s: cannot open /dev/net/tun: %s", dev->d.name, strerror(errno));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR; /* frames carry virtio-net's 12-byte header */
    strcpy(ifr.ifr_name, tap);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0)
        die(REFUSE, "network device %s: cannot attach to TAP %s: %s (create it first: ip tuntap add %s mode tap)",
            dev->d.name, tap, strerror(errno), tap);
    int hdr = 12;
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 || ioctl(fd, TUNSETOFFLOAD, 0) < 0)
        die(REFUSE, "network device %s: TAP %s: cannot set its virtio-net header: %s", dev->d.name, tap,
            strerror(errno));
    dev->fd = fd;
    dev->d.mtu = 1500;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s >= 0) {
        if (ioctl(s, SIOCGIFMTU, &ifr) == 0)
            dev->d.mtu = (uint32_t)ifr.ifr_mtu;
        close(s);
    }
}

static void open_block(struct device *dev, const char *file)
{
    int fd = open(file, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        die(REFUSE, "block device %s: cannot open %s: %s", dev->d.name, file, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        die(REFUSE, "block device %s: %s is not a regular file", dev->d.name, file);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
        die(REFUSE, "block device %s: %s is in use by another process (locked)", dev->d.name, file);
    dev->fd = fd;
    dev->d.size = (uint64_t)st.st_size;
}

static void set_mac(const char *name, const char *text)
{
    for (uint32_t i = 0; i < ndevices; i++) {
        if (devices[i].d.type != HVT_NET || strcmp(devices[i].d.name, name) != 0)
            continue;
        unsigned m[6];
        if (sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
            die(REFUSE, "--net-mac:%s=%s: not a MAC address (e.g. 02:00:00:00:00:01)", name, text);
        for (int k = 0; k < 6; k++)
            devices[i].d.mac[k] = (uint8_t)m[k];
        return;
    }
    die(REFUSE, "--net-mac:%s: %s is not a network device given with --net:%s=TAP", name, name, name);
}

/* ---- the vCPU ------------------------------------------------------------------ */

static int kvm, vm, vcpu, kvm_is_pvm;
static struct kvm_run *run;

#define PTE_P 1ULL
#define PTE_W 2ULL
#define PTE_U 4ULL
#define PTE_PS 0x80ULL
#define PTE_NX (1ULL << 63)
#define PTE_HEAP (PTE_P | PTE_W | PTE_U | PTE_NX)

/* The memory the guest's layout was made for: --mem, or a restored snapshot's, whose stack stays
 * at the top of that (the runtime gives the memory above it to its heap). */
static uint64_t layout_size;
static uint64_t guard_page(void) { return (layout_size ? layout_size : mem_size) - HVT_STACK_SIZE - 0x1000; }

/* The page-table entry's rights for the 4 KiB page at addr (0: unmapped). */
static uint64_t page_rights(uint64_t addr)
{
    if (addr < HVT_GDT)
        return 0; /* a null pointer faults */
    if (addr < HVT_BOOT_INFO || (addr >= HVT_ARGS_END && addr < HVT_LOAD_MIN))
        return PTE_P | PTE_W | PTE_NX; /* the GDT and page tables: supervisor-only */
    if (addr < HVT_ARGS_END)
        return PTE_HEAP; /* the boot information and the arguments */
    if (addr < elf.end) {
        uint64_t rights = 0;
        for (int i = 0; i < elf.nph; i++) {
            const Elf64_Phdr *p = &elf.ph[i];
            if (p->p_type != PT_LOAD || !p->p_memsz || addr + 0x1000 <= p->p_vaddr || addr >= p->p_vaddr + p->p_memsz)
                continue;
            rights |= PTE_P | PTE_U | (p->p_flags & PF_W ? PTE_W : 0) | (p->p_flags & PF_X ? 0 : PTE_NX);
        }
        return rights; /* a page shared by two segments has both's rights (never W and X: check_elf) */
    }
    if (addr == guard_page())
        return 0;
    return PTE_HEAP;
}

static void setup_page_tables(void)
{
    uint64_t *pml4 = (uint64_t *)(mem + HVT_PML4), *pdpt = (uint64_t *)(mem + HVT_PDPT);
    uint64_t next_pt = HVT_PT;
    pml4[0] = HVT_PDPT | PTE_P | PTE_W | PTE_U; /* the leaves decide */
    uint64_t gib = (mem_size + (1ULL << 30) - 1) >> 30;
    for (uint64_t g = 0; g < gib; g++) {
        uint64_t *pd = (uint64_t *)(mem + HVT_PD + g * 0x1000);
        pdpt[g] = (HVT_PD + g * 0x1000) | PTE_P | PTE_W | PTE_U;
        for (uint64_t i = 0; i < 512; i++) {
            uint64_t addr = (g << 30) | (i << 21);
            if (addr >= mem_size)
                break;
            uint64_t guard = guard_page();
            if (addr >= elf.end && !(guard >= addr && guard < addr + (2ULL << 20))) {
                pd[i] = addr | PTE_HEAP | PTE_PS; /* heap or stack: one 2 MiB page */
                continue;
            }
            /* a 2 MiB page where every mapped 4 KiB page of the unikernel has the same rights
             * (its segments are 2 MiB-aligned: hvtfs.link); the pages between segments get
             * those rights too, which keeps W^X: they hold zeros nothing can write */
            uint64_t common = 0;
            int uniform = addr >= HVT_LOAD_MIN && addr + (2ULL << 20) <= mem_size;
            for (uint64_t k = 0; uniform && k < 512; k++) {
                uint64_t page = addr + (k << 12), rights = page_rights(page);
                if (!rights)
                    uniform = page < elf.end; /* a gap between segments, not the guard page or beyond */
                else if (common && rights != common)
                    uniform = 0;
                else
                    common = rights;
            }
            if (uniform && common) {
                pd[i] = addr | common | PTE_PS;
                continue;
            }
            if (next_pt >= HVT_LOAD_MIN)
                die(REFUSE, "%s is too large to map with 4 KiB pages below 1 MiB (at most %d MiB)", elf.path,
                    (HVT_LOAD_MIN - HVT_PT) / 8);
            uint64_t *pt = (uint64_t *)(mem + next_pt);
            for (uint64_t k = 0; k < 512; k++) {
                uint64_t page = addr + (k << 12), rights = page < mem_size ? page_rights(page) : 0;
                pt[k] = rights ? page | rights : 0;
            }
            pd[i] = next_pt | PTE_P | PTE_W | PTE_U;
            next_pt += 0x1000;
        }
    }
    /* the hypercall page: mapped, but outside every memory slot */
    uint64_t *pd3 = (uint64_t *)(mem + HVT_PD + 3 * 0x1000);
    pdpt[3] = (HVT_PD + 3 * 0x1000) | PTE_P | PTE_W | PTE_U;
    pd3[(HVT_MMIO_BASE >> 21) & 511] = HVT_MMIO_BASE | PTE_HEAP | PTE_PS;
}

static void set_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, uint8_t l, uint8_t db)
{
    memset(s, 0, sizeof *s);
    s->selector = sel;
    s->type = type;
    s->present = 1;
    s->s = 1;
    s->l = l;
    s->db = db;
    s->g = 1;
    s->limit = 0xffffffff;
}

static void setup_vcpu(uint64_t entry)
{
    uint64_t *gdt = (uint64_t *)(mem + HVT_GDT);
    gdt[0] = 0;
    gdt[1] = 0x00af9b000000ffffULL; /* 0x08: 64-bit code, DPL 0 (STAR's; unused) */
    gdt[2] = 0x00cf93000000ffffULL; /* 0x10: data, DPL 0 */
    gdt[3] = 0x00cff3000000ffffULL; /* 0x18: data, DPL 3: the guest's SS, DS, ES */
    gdt[4] = 0x00affb000000ffffULL; /* 0x20: 64-bit code, DPL 3: the guest's CS */
    gdt[5] = 0x00008b0000000067ULL; /* 0x28: a busy 64-bit TSS at 0 (required by VMX, never used) */
    gdt[6] = 0;
    setup_page_tables();

    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
        die(REFUSE, "KVM_GET_SREGS: %s", strerror(errno));
    set_segment(&sregs.cs, 0x23, 0xb, 1, 0);
    set_segment(&sregs.ds, 0x1b, 0x3, 0, 1);
    sregs.cs.dpl = sregs.ds.dpl = 3;
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    memset(&sregs.tr, 0, sizeof sregs.tr);
    sregs.tr.selector = 0x28;
    sregs.tr.type = 0xb;
    sregs.tr.present = 1;
    sregs.tr.limit = 0x67;
    sregs.gdt.base = HVT_GDT;
    sregs.gdt.limit = 7 * 8 - 1;
    sregs.idt.base = 0;
    sregs.idt.limit = 0; /* a guest exception is a triple fault, reported with the registers */
    sregs.cr3 = HVT_PML4;
    sregs.cr4 = (1u << 5) | (1u << 9) | (1u << 10) | (1u << 16); /* PAE, OSFXSR, OSXMMEXCPT, FSGSBASE */
    sregs.cr0 = 0x80000001u | 0x2 | 0x10 | 0x20 | 0x10000; /* PG, PE, MP, ET, NE, WP */
    sregs.efer = 0xd01; /* SCE, LME, LMA, NXE */
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
        die(REFUSE, "KVM_SET_SREGS (64-bit long mode): %s", strerror(errno));

    /* The FPU/SSE state as after FNINIT with MXCSR's default: without it SSE instructions
     * fail under this machine's nested KVM. */
    struct kvm_fpu fpu;
    memset(&fpu, 0, sizeof fpu);
    fpu.fcw = 0x37f;
    fpu.mxcsr = 0x1f80;
    if (ioctl(vcpu, KVM_SET_FPU, &fpu) < 0)
        die(REFUSE, "KVM_SET_FPU: %s", strerror(errno));

    struct kvm_regs regs;
    memset(&regs, 0, sizeof regs);
    regs.rip = entry;
    regs.rflags = 0x2;
    regs.rsp = mem_size; /* the top of the stack; the runtime switches to its own at once */

    struct {
        struct kvm_msrs head;
        struct kvm_msr_entry e[3];
    } msrs;
    memset(&msrs, 0, sizeof msrs);
    msrs.head.nmsrs = 3;
    msrs.e[0].index = 0xC0000081; /* STAR */
    msrs.e[0].data = (0x08ULL << 32) | (0x10ULL << 48);
    msrs.e[1].index = 0xC0000082; /* LSTAR: the runtime's system call entry */
    msrs.e[1].data = entry + HVT_SYSCALL_OFFSET;
    msrs.e[2].index = 0xC0000084; /* SFMASK: TF, DF, AC */
    msrs.e[2].data = 0x40500;
    if (ioctl(vcpu, KVM_SET_MSRS, &msrs) != 3)
        die(REFUSE, "KVM_SET_MSRS (STAR, LSTAR, SFMASK): %s", strerror(errno));
    regs.rdi = HVT_BOOT_INFO;
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
        die(REFUSE, "KVM_SET_REGS: %s", strerror(errno));
}

/* CPUID as KVM supports it, without what this machine's nested KVM cannot run (AVX,
 * XSAVE, CMPXCHG16B; x87 cannot be hidden, the guest must avoid it) so that libc's
 * ifuncs take their SSE2 paths. */
static void setup_cpuid(void)
{
    int n = 128;
    struct kvm_cpuid2 *c = NULL;
    for (;;) {
        c = realloc(c, sizeof *c + (size_t)n * sizeof c->entries[0]);
        if (!c)
            die(REFUSE, "out of memory");
        c->nent = (uint32_t)n;
        if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, c) == 0)
            break;
        if (errno != E2BIG)
            die(REFUSE, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
        n *= 2;
    }
    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        switch (e->function) {
        case 1:
            /* clear FMA(12) CX16(13) XSAVE(26) OSXSAVE(27) AVX(28) F16C(29) */
            e->ecx &= ~((1u << 12) | (1u << 13) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 29));
            break;
        case 7:
            if (e->index == 0)
                e->ebx &= (1u << 9) | (1u << 18); /* keep only ERMS and RDSEED */
            else
                e->ebx = 0;
            e->ecx = 0;
            e->edx = 0;
            e->eax = e->index == 0 ? 0 : e->eax & 0; /* no sub-leaves beyond 0 */
            break;
        case 0xd: /* XSAVE state enumeration: none */
            e->eax = e->ebx = e->ecx = e->edx = 0;
            break;
        case 0x80000001:
            e->ecx &= ~((1u << 11) | (1u << 16)); /* XOP, FMA4 */
            break;
        default:
            break;
        }
    }
    if (ioctl(vcpu, KVM_SET_CPUID2, c) < 0)
        die(REFUSE, "KVM_SET_CPUID2: %s", strerror(errno));
    free(c);
}

static void dump_state(const char *what)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    fprintf(stderr, "%s: the guest %s\n", prog, what);
    if (ioctl(vcpu, KVM_GET_REGS, &r) == 0 && ioctl(vcpu, KVM_GET_SREGS, &s) == 0) {
        fprintf(stderr, "  rip=%#llx rsp=%#llx rax=%#llx rbx=%#llx rcx=%#llx rflags=%#llx\n", r.rip, r.rsp, r.rax,
                r.rbx, r.rcx, r.rflags);
        fprintf(stderr, "  cr0=%#llx cr2=%#llx cr3=%#llx cr4=%#llx efer=%#llx\n", s.cr0, s.cr2, s.cr3, s.cr4, s.efer);
        uint8_t *code = guest(r.rip, 16);
        if (code) {
            fprintf(stderr, "  code at rip:");
            for (int i = 0; i < 16; i++)
                fprintf(stderr, " %02x", code[i]);
            fputc('\n', stderr);
        }
    }
}

/* Name what a page fault at cr2 means in hvt's memory layout (after dump_state). */
static void explain_fault(void)
{
    struct kvm_regs r;
    struct kvm_sregs sr;
    if (ioctl(vcpu, KVM_GET_REGS, &r) < 0 || ioctl(vcpu, KVM_GET_SREGS, &sr) < 0 || !sr.cr2)
        return;
    uint64_t cr2 = sr.cr2, page = cr2 & ~0xfffULL, rights = cr2 < mem_size ? page_rights(page) : 0;
    if (page == guard_page())
        fprintf(stderr, "%s: the guest's stack overflowed: cr2 %#llx is in the guard page %#llx below its %llu MiB "
                "stack (deep recursion, or a large array on the stack)\n", prog, (unsigned long long)cr2,
                (unsigned long long)page, HVT_STACK_SIZE >> 20);
    else if (cr2 < 0x1000)
        fprintf(stderr, "%s: the guest dereferenced a null pointer (cr2 %#llx)\n", prog, (unsigned long long)cr2);
    else if (cr2 == r.rip && (rights & PTE_NX))
        fprintf(stderr, "%s: the guest jumped to %#llx, which is not executable (data, heap or stack: W^X)\n", prog,
                (unsigned long long)cr2);
    else if ((rights & PTE_U) && !(rights & PTE_W))
        fprintf(stderr, "%s: the guest wrote to %#llx, in its read-only %s (W^X)\n", prog, (unsigned long long)cr2,
                rights & PTE_NX ? "data" : "text");
    else if (!(rights & PTE_U))
        fprintf(stderr, "%s: the guest touched %#llx, which is not mapped for it (%s)\n", prog,
                (unsigned long long)cr2, cr2 >= mem_size ? "beyond its memory" : rights ? "the monitor's page tables"
                                                                              : "between the unikernel's segments");
}

/* ---- snapshots ----------------------------------------------------------------- */

/* --save-snapshot: the file (opened before the seal), and whether the guest was saved. */
static int save_fd = -1;
static const char *save_path;
static int saved;

/* The monitor's own GNU build ID (its vCPU set-up and hypercalls are what a snapshot relies on). */
static int own_build_id(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct snap_binding *b = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type != PT_NOTE)
            continue;
        const uint8_t *at = (const uint8_t *)(info->dlpi_addr + p->p_vaddr), *end = at + p->p_memsz;
        while (at + sizeof(Elf64_Nhdr) <= end) {
            Elf64_Nhdr nh;
            memcpy(&nh, at, sizeof nh);
            const uint8_t *name = at + sizeof nh, *desc = name + ((nh.n_namesz + 3) & ~3u);
            if (desc + nh.n_descsz > end)
                break;
            if (nh.n_namesz == 4 && memcmp(name, "GNU", 4) == 0 && nh.n_type == NT_GNU_BUILD_ID
                && nh.n_descsz <= sizeof b->monitor_id) {
                memcpy(b->monitor_id, desc, nh.n_descsz);
                b->monitor_id_len = nh.n_descsz;
            }
            at = desc + ((nh.n_descsz + 3) & ~3u);
        }
    }
    return 1; /* the first object is the monitor's executable: stop there */
}

/* What a snapshot of this run's guest is bound to: the ELF, this monitor, --mem. */
static void snapshot_binding(struct snap_binding *b)
{
    memset(b, 0, sizeof *b);
    memcpy(b->elf_id, elf.build_id, sizeof b->elf_id);
    b->elf_id_len = elf.build_id_len;
    b->elf_size = elf.size;
    b->mem_size = mem_size;
    dl_iterate_phdr(own_build_id, b);
}

/* Whether the page at gpa goes into a snapshot: not page 0, the GDT and the page tables (every
 * boot builds them), nor the ELF's read-only segments (every boot loads them). */
static int snapshot_keeps(uint64_t gpa)
{
    if (gpa < HVT_BOOT_INFO || (gpa >= HVT_ARGS_END && gpa < HVT_LOAD_MIN))
        return 0;
    uint64_t rights = gpa < elf.end ? page_rights(gpa) : PTE_W;
    return !rights || (rights & PTE_W);
}

/* The HVT_SNAPSHOT hypercall of a pre-initialising boot: save the guest; the exit status. */
static int save_snapshot(void)
{
    struct snap_vcpu v;
    struct snap_binding b;
    if (ioctl(vcpu, KVM_GET_REGS, &v.regs) < 0 || ioctl(vcpu, KVM_GET_SREGS, &v.sregs) < 0
        || ioctl(vcpu, KVM_GET_FPU, &v.fpu) < 0) {
        fprintf(stderr, "%s: cannot read the vCPU to save it: %s\n", prog, strerror(errno));
        return REFUSE;
    }
    snapshot_binding(&b);
    uint64_t bytes;
    const char *failed = snapshot_save(save_fd, mem, mem_size, snapshot_keeps, &b, &v, &bytes);
    if (failed) {
        fprintf(stderr, "%s: the snapshot %s %s\n", prog, save_path, failed);
        return REFUSE;
    }
    saved = 1;
    return 0;
}

/* A restored guest's vCPU: the monitor's own set-up (setup_vcpu: segments, page tables, control
 * registers, EFER, the system call MSRs), and of the snapshot's only what the CPL 3 guest could
 * change itself: its registers (rflags' arithmetic flags and DF), FS and GS bases, FPU/SSE. */
static void restore_vcpu(const struct snap_vcpu *v)
{
    struct kvm_regs regs = v->regs;
    regs.rflags = (regs.rflags & 0xcd5) | 0x2; /* CF PF AF ZF SF DF OF; IF, TF, IOPL, AC as a cold boot's */
    struct kvm_sregs sregs;
    struct kvm_fpu fpu = v->fpu;
    fpu.mxcsr &= 0xffff;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
        die(REFUSE, "KVM_GET_SREGS: %s", strerror(errno));
    sregs.fs.base = v->sregs.fs.base;
    sregs.gs.base = v->sregs.gs.base;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_FPU, &fpu) < 0
        || ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
        die(REFUSE, "cannot restore the snapshot's vCPU: %s (unik run --no-snapshot boots cold)", strerror(errno));
}

/* ---- stopping ------------------------------------------------------------------ */

/* SIGTERM and SIGINT (unik stop, Ctrl-C) reach the guest as signals: the handler sets
 * the signal's bit in the boot information, which the runtime takes at its next system
 * call and delivers to the application's handler (CPython's: SHUTDOWN_REQUESTED, the
 * devices disconnect in reverse order) or default action.  Both are blocked in the
 * monitor except inside KVM_RUN (KVM_SET_SIGNAL_MASK) and the poll hypercall's ppoll,
 * so a signal interrupts the guest or its wait, never a hypercall half done.  A guest
 * that does not stop is killed by whoever asked (unik stop, after its timeout). */
static volatile uint64_t *guest_signals;
static sigset_t run_mask; /* the monitor's mask without SIGTERM and SIGINT */

static void on_stop_signal(int sig)
{
    if (guest_signals)
        __atomic_fetch_or(guest_signals, 1ULL << (sig - 1), __ATOMIC_SEQ_CST);
}

static void forward_stop_signals(volatile uint64_t *signals)
{
    guest_signals = signals;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal; /* no SA_RESTART: ppoll returns EINTR */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0
        || sigprocmask(SIG_BLOCK, &stop, &run_mask) < 0)
        die(REFUSE, "cannot set up the stop signals: %s", strerror(errno));
    sigdelset(&run_mask, SIGTERM);
    sigdelset(&run_mask, SIGINT);
    struct {
        struct kvm_signal_mask head;
        uint8_t set[8];
    } kmask;
    kmask.head.len = 8; /* the kernel's sigset_t */
    memcpy(kmask.set, &run_mask, 8);
    if (ioctl(vcpu, KVM_SET_SIGNAL_MASK, &kmask) < 0)
        die(REFUSE, "KVM_SET_SIGNAL_MASK: %s", strerror(errno));
}

/* ---- hypercalls ---------------------------------------------------------------- */

static uint64_t now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int bad(const char *call)
{
    dump_state("");
    fprintf(stderr, "%s: hypercall %s with an argument outside guest memory\n", prog, call);
    return CRASHED;
}

static struct device *io_device(struct hvt_io *io, uint32_t type)
{
    if (io->device >= ndevices || devices[io->device].d.type != type)
        return NULL;
    return &devices[io->device];
}

static uint64_t profile_wait_ns; /* --profile: time the poll and turn hypercalls spent waiting */

/* Send (writing) or receive the frames of batch b on network device `device`; -1 when an
 * address lies outside guest memory.  A receive stops when the TAP runs dry (done: how
 * many came); a device that is not a network device answers -ENODEV. */
static int net_batch(struct hvt_net_batch *b, uint32_t device, int writing)
{
    b->done = 0;
    if (!b->count)
        return 0;
    if (b->count > HVT_BATCH_MAX)
        return -1;
    struct hvt_frame *fr = guest(b->frames, (uint64_t)b->count * sizeof *fr);
    if (!fr)
        return -1;
    struct hvt_io io = {device, 0, 0, 0, 0, 0};
    struct device *dev = io_device(&io, HVT_NET);
    for (uint32_t i = 0; i < b->count; i++) {
        void *buf = guest(fr[i].buf, fr[i].len);
        if (!buf || !fr[i].len)
            return -1;
        if (!dev) {
            fr[i].ret = -ENODEV;
            break;
        }
        ssize_t n = writing ? write(dev->fd, buf, fr[i].len) : read(dev->fd, buf, fr[i].len);
        fr[i].ret = n < 0 ? -(int64_t)errno : n;
        if (n < 0 && !writing)
            break; /* dry (EAGAIN) or failed: done says how many came */
        b->done++;
    }
    return 0;
}

/* Wait (ppoll, the stop signals let through) until one of the TAPs of watch is readable or until
 * deadline (monotonic ns; 0: just look) or a stop signal for the guest; the readable
 * devices' bits. */
static uint64_t wait_readable(uint64_t deadline, uint64_t watch)
{
    struct pollfd fds[HVT_MAX_DEVICES];
    uint32_t which[HVT_MAX_DEVICES], n = 0;
    for (uint32_t i = 0; i < ndevices; i++)
        if (devices[i].d.type == HVT_NET && ((watch >> i) & 1)) {
            fds[n].fd = devices[i].fd;
            fds[n].events = POLLIN;
            which[n++] = i;
        }
    for (;;) {
        if (*guest_signals) /* a stop for the guest: it takes it when the call returns */
            return 0;
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        uint64_t wait = deadline > now ? deadline - now : 0;
        struct timespec ts = {(time_t)(wait / 1000000000ULL), (long)(wait % 1000000000ULL)};
        int r = ppoll(fds, n, &ts, &run_mask);
        if (wait)
            profile_wait_ns += now_ns(CLOCK_MONOTONIC) - now;
        if (r < 0 && errno == EINTR)
            continue;
        uint64_t ready = 0;
        for (uint32_t k = 0; r > 0 && k < n; k++)
            if (fds[k].revents & POLLIN)
                ready |= 1ULL << which[k];
        return ready;
    }
}

/* HVT_TURN (hvt_abi.h): send, receive, and wait only when nothing came; -1 for an address
 * outside guest memory. */
static int turn(struct hvt_turn *t)
{
    uint32_t nd = t->ndevices < ndevices ? t->ndevices : ndevices;
    struct hvt_net_batch *tx = guest(t->tx, (uint64_t)nd * sizeof *tx);
    struct hvt_net_batch *rx = guest(t->rx, (uint64_t)nd * sizeof *rx);
    if (!tx || !rx)
        return -1;
    for (uint32_t i = 0; i < nd; i++)
        if (tx[i].count && net_batch(&tx[i], i, 1) < 0)
            return -1;
    int came = 0;
    for (uint32_t i = 0; i < nd; i++) {
        if (devices[i].d.type != HVT_NET)
            continue;
        if (net_batch(&rx[i], i, 0) < 0)
            return -1;
        came |= rx[i].done > 0;
    }
    uint64_t readable = wait_readable(came ? 0 : t->deadline_ns, t->watch);
    t->ready = 0;
    for (uint32_t i = 0; i < ndevices; i++) {
        if (!((readable >> i) & 1))
            continue;
        if (i < nd && rx[i].count && !rx[i].done && net_batch(&rx[i], i, 0) < 0)
            return -1; /* frames came while waiting */
        if (i >= nd || !rx[i].count || rx[i].done == rx[i].count)
            t->ready |= 1ULL << i; /* more may wait than the batch held */
    }
    return 0;
}

/* Serve one hypercall; returns -1 to continue or the exit status. */
static int hypercall(unsigned nr, uint32_t arg)
{
    switch (nr) {
    case HVT_CONSOLE: {
        struct hvt_console *c = guest(arg, sizeof *c);
        if (!c)
            return bad("console");
        char *buf = guest(c->buf, c->len);
        if (!buf)
            return bad("console");
        int fd = c->fd == 2 ? 2 : 1;
        for (uint64_t done = 0; done < c->len;) {
            ssize_t n = write(fd, buf + done, c->len - done);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                break; /* the host's console is gone: the guest keeps running */
            }
            done += (uint64_t)n;
        }
        return -1;
    }
    case HVT_CLOCK: {
        struct hvt_clock *c = guest(arg, sizeof *c);
        if (!c)
            return bad("clock");
        c->monotonic_ns = now_ns(CLOCK_MONOTONIC);
        c->wall_ns = now_ns(CLOCK_REALTIME);
        return -1;
    }
    case HVT_POLL: {
        struct hvt_poll *p = guest(arg, sizeof *p);
        if (!p)
            return bad("poll");
        p->ready = wait_readable(p->deadline_ns, ~0ULL);
        return -1;
    }
    case HVT_NET_WRITE:
    case HVT_NET_READ:
    case HVT_BLOCK_WRITE:
    case HVT_BLOCK_READ: {
        struct hvt_io *io = guest(arg, sizeof *io);
        if (!io)
            return bad("io");
        int is_net = nr == HVT_NET_WRITE || nr == HVT_NET_READ;
        struct device *dev = io_device(io, is_net ? HVT_NET : HVT_BLOCK);
        void *buf = io->len ? guest(io->buf, io->len) : mem;
        if (!buf)
            return bad("io");
        if (!dev) {
            io->ret = -ENODEV;
            return -1;
        }
        ssize_t n;
        if (nr == HVT_NET_WRITE)
            n = write(dev->fd, buf, io->len);
        else if (nr == HVT_NET_READ)
            n = read(dev->fd, buf, io->len);
        else if (nr == HVT_BLOCK_WRITE && io->len == 0) /* a flush */
            n = fdatasync(dev->fd);
        else if (io->offset > dev->d.size || io->len > dev->d.size - io->offset)
            n = -1, errno = EINVAL;
        else if (nr == HVT_BLOCK_WRITE)
            n = pwrite(dev->fd, buf, io->len, (off_t)io->offset);
        else
            n = pread(dev->fd, buf, io->len, (off_t)io->offset);
        io->ret = n < 0 ? -(int64_t)errno : n;
        return -1;
    }
    case HVT_NET_WRITE_MANY:
    case HVT_NET_READ_MANY: {
        struct hvt_net_batch *b = guest(arg, sizeof *b);
        if (!b)
            return bad("net batch");
        return net_batch(b, b->device, nr == HVT_NET_WRITE_MANY) < 0 ? bad("net batch") : -1;
    }
    case HVT_TURN: {
        struct hvt_turn *t = guest(arg, sizeof *t);
        if (!t)
            return bad("turn");
        int status = turn(t);
        t->monotonic_ns = now_ns(CLOCK_MONOTONIC);
        t->wall_ns = now_ns(CLOCK_REALTIME);
        return status < 0 ? bad("turn") : -1;
    }
    case HVT_SNAPSHOT: {
        if (!guest(arg, sizeof(struct hvt_snapshot)))
            return bad("snapshot");
        return save_fd < 0 ? -1 : save_snapshot(); /* not pre-initialising: the guest goes on */
    }
    case HVT_EXIT: {
        struct hvt_exit *e = guest(arg, sizeof *e);
        if (!e)
            return bad("exit");
        return e->status & 0xff;
    }
    default:
        dump_state("made an unknown hypercall");
        return CRASHED;
    }
}

/* --profile: the monitor's side of where a run's time goes */
static const char *const call_names[HVT_NCALLS] = {"console", "clock", "poll", "net write", "net read",
                                                   "block write", "block read", "exit", "net write many",
                                                   "net read many", "turn", "snapshot"};
static uint64_t profile_calls[HVT_NCALLS], profile_ns[HVT_NCALLS], profile_start, profile_entered, profile_restore_ns;

/* KVM's own counts for the vCPU (KVM_GET_STATS_FD, opened before the seal; -1: none): its exits
 * and page faults say what the guest's time went to that the guest cannot see. */
static int profile_stats_fd = -1;

static void profile_kvm_stats(void)
{
    static uint8_t buf[1 << 16];
    struct kvm_stats_header h;
    if (profile_stats_fd < 0 || pread(profile_stats_fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
        return;
    uint64_t dsize = sizeof(struct kvm_stats_desc) + h.name_size;
    if (h.num_desc * dsize > sizeof buf
        || pread(profile_stats_fd, buf, h.num_desc * dsize, h.desc_offset) != (ssize_t)(h.num_desc * dsize))
        return;
    fprintf(stderr, "  KVM's counts for the vCPU:");
    for (uint32_t i = 0; i < h.num_desc; i++) {
        const struct kvm_stats_desc *d = (const struct kvm_stats_desc *)(buf + i * dsize);
        uint64_t v;
        if ((d->flags & KVM_STATS_TYPE_MASK) != KVM_STATS_TYPE_CUMULATIVE || d->size != 1
            || pread(profile_stats_fd, &v, sizeof v, h.data_offset + d->offset) != (ssize_t)sizeof v || !v)
            continue;
        fprintf(stderr, " %s %llu", d->name, (unsigned long long)v);
    }
    fputc('\n', stderr);
}

static void profile_report(void)
{
    uint64_t end = now_ns(CLOCK_MONOTONIC), served = 0;
    for (unsigned i = 0; i < HVT_NCALLS; i++)
        served += profile_ns[i];
    fprintf(stderr, "unik-hvt profile: %.1f ms from the monitor's start to the guest's exit: %.1f ms loading the ELF "
            "and creating the VM, %.1f ms in the guest, %.1f ms of that serving hypercalls (%.1f ms of it waiting "
            "for the TAPs or a deadline):\n", (end - profile_start) / 1e6, (profile_entered - profile_start) / 1e6,
            (end - profile_entered) / 1e6, served / 1e6, profile_wait_ns / 1e6);
    if (profile_restore_ns)
        fprintf(stderr, "  (restored from its snapshot: %.1f ms of the start-up putting the snapshot into memory)\n",
                profile_restore_ns / 1e6);
    for (unsigned i = 0; i < HVT_NCALLS; i++)
        if (profile_calls[i])
            fprintf(stderr, "  %s %lu (%.1f ms)\n", call_names[i], (unsigned long)profile_calls[i],
                    profile_ns[i] / 1e6);
    profile_kvm_stats();
}

static int run_vcpu(void)
{
    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR) {
                /* a stop signal made KVM_RUN return, but stays pending (blocked again): take it */
                struct timespec zero = {0, 0};
                ppoll(NULL, 0, &zero, &run_mask);
                continue;
            }
            if (errno == EAGAIN)
                continue;
            die(CRASHED, "KVM_RUN: %s", strerror(errno));
        }
        switch (run->exit_reason) {
        case KVM_EXIT_MMIO: {
            uint64_t a = run->mmio.phys_addr;
            if (run->mmio.is_write && run->mmio.len == 4 && a >= HVT_MMIO_BASE
                && a < HVT_MMIO_BASE + 8 * HVT_NCALLS && (a & 7) == 0) {
                uint32_t arg;
                memcpy(&arg, run->mmio.data, 4);
                unsigned nr = (unsigned)((a - HVT_MMIO_BASE) / 8);
                uint64_t start = now_ns(CLOCK_MONOTONIC);
                int status = hypercall(nr, arg);
                profile_calls[nr]++;
                profile_ns[nr] += now_ns(CLOCK_MONOTONIC) - start;
                if (status >= 0)
                    return status;
                continue;
            }
            dump_state("");
            fprintf(stderr, "%s: the guest accessed %#llx, outside its %lu MiB of memory and the hypercall page\n",
                    prog, (unsigned long long)a, (unsigned long)(mem_size >> 20));
            return CRASHED;
        }
        case KVM_EXIT_IO:
            dump_state("made port I/O (hvt's hypercalls are stores to its hypercall page)");
            return CRASHED;
        case KVM_EXIT_HLT:
            dump_state("halted (hlt) without the exit hypercall");
            return CRASHED;
        case KVM_EXIT_SHUTDOWN:
            dump_state("crashed: an exception (a page fault at cr2 when cr2 is set, an invalid instruction, a "
                       "general protection fault) ends the guest (KVM_EXIT_SHUTDOWN)");
            explain_fault();
            return CRASHED;
        case KVM_EXIT_INTERNAL_ERROR:
            dump_state("stopped on a KVM internal error");
            fprintf(stderr, "  suberror %u%s\n", run->internal.suberror,
                    run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                        ? ": KVM tried to emulate the instruction at rip and could not (its emulator has no x87, "
                          "AVX, XSAVE, CMPXCHG16B and little SSE)"
                        : "");
            if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION && kvm_is_pvm)
                fprintf(stderr, "  this host's KVM is kvm_pvm: a guest that has not entered PVM mode is emulated "
                                "instruction by instruction, and hvt guests do not speak PVM's ABI yet\n");
            return CRASHED;
        case KVM_EXIT_FAIL_ENTRY:
            fprintf(stderr, "%s: KVM could not enter the guest (hardware reason %#llx)\n", prog,
                    (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
            return CRASHED;
        default:
            dump_state("stopped");
            fprintf(stderr, "%s: unexpected KVM exit reason %u\n", prog, run->exit_reason);
            return CRASHED;
        }
    }
}

/* ---- the seal ------------------------------------------------------------------ */

/* What the monitor may do once the VM and its devices exist (seccomp-BPF, x86_64): run
 * the vCPU and read its registers (ioctl), the console and the TAPs (write, read), the
 * block files (pread64, pwrite64, fdatasync), wait (ppoll), read the clocks
 * (clock_gettime), and leave (exit_group).  Anything else traps: the SIGSYS handler names
 * the call and the monitor exits 125. */
static const int allowed[] = {
    SYS_ioctl, SYS_write, SYS_read, SYS_pread64, SYS_pwrite64, SYS_fdatasync, SYS_ppoll, SYS_clock_gettime,
    SYS_exit_group, SYS_rt_sigreturn,
};
static const char *const allowed_names[] = {
    "ioctl", "write", "read", "pread64", "pwrite64", "fdatasync", "ppoll", "clock_gettime", "exit_group",
    "rt_sigreturn",
};

static void refused(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    (void)ctx;
    char msg[128];
    int n = snprintf(msg, sizeof msg, "unik-hvt: the monitor made system call %d, outside its seccomp policy "
                     "(unik-hvt --show-policy)\n", info->si_syscall);
    if (n > 0 && write(2, msg, (size_t)n) < 0)
        n = 0;
    syscall(SYS_exit_group, REFUSE);
}

static void seal(void)
{
    struct sock_filter prog[64];
    unsigned n = 0;
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (unsigned i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)allowed[i], 0, 1);
        prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    }
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
    struct sock_fprog fprog = {(unsigned short)n, prog};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = refused;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGSYS, &sa, NULL) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0
        || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) < 0)
        die(REFUSE, "cannot install the monitor's seccomp filter: %s", strerror(errno));
}

/* What the guest may call and what the monitor may; with a unikernel, also its manifest. */
static void show_policy(const char *unikernel)
{
    printf("unik-hvt's seccomp allowlist once the VM and its devices exist (x86_64; anything else: SIGSYS, exit 125):\n");
    for (unsigned i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        printf("  %s\n", allowed_names[i]);
    printf("The guest's hypercalls: console, clock, poll, net read/write (a frame or a batch), the end of an event "
           "loop's turn (send, receive, wait, the clocks: one exit), block read/write/flush, exit, snapshot (saves "
           "the guest only in a boot started with --save-snapshot) (hvt_abi.h); its system calls are served inside "
           "the guest by the runtime.\n");
    if (!unikernel)
        return;
    check_elf(unikernel);
    printf("%s's manifest: %s\n", unikernel, nmanifest ? "" : "no device");
    for (uint32_t i = 0; i < nmanifest; i++)
        printf("  %s device %s (%s)\n", type_name(manifest[i].type), manifest[i].name,
               manifest[i].type == HVT_NET ? "--net:NAME=TAP" : "--block:NAME=FILE");
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: %s --show-policy [UNIKERNEL]\n       %s [--mem MIB] [--net:NAME=TAP] [--net-mac:NAME=MAC] [--block:NAME=FILE] [--trace] [--profile] "
                    "[--profile-imports] [--snapshot FILE [--snapshot-mmap]] [--] UNIKERNEL [ARG...]\n       %s [--mem MIB] --save-snapshot FILE [--] "
                    "UNIKERNEL [ARG...]\n", prog, prog, prog);
    exit(REFUSE);
}

static int binding(const char *arg, const char *prefix, char *name, size_t size, const char **value)
{
    size_t n = strlen(prefix);
    if (strncmp(arg, prefix, n) != 0)
        return 0;
    const char *eq = strchr(arg + n, '=');
    if (!eq || eq == arg + n || !eq[1] || (size_t)(eq - arg - n) >= size)
        die(REFUSE, "%s: expected %sNAME=VALUE", arg, prefix);
    memcpy(name, arg + n, (size_t)(eq - arg - n));
    name[eq - arg - n] = 0;
    *value = eq + 1;
    return 1;
}

/* The devices the command line gives, checked against the manifest before any is opened. */
static struct {
    char name[64];
    const char *value;
    uint32_t type;
} given[HVT_MAX_DEVICES];
static uint32_t ngiven;

static void give(const char *name, const char *value, uint32_t type)
{
    if (ngiven == HVT_MAX_DEVICES)
        die(REFUSE, "too many devices (at most %d)", HVT_MAX_DEVICES);
    snprintf(given[ngiven].name, sizeof given[ngiven].name, "%s", name);
    given[ngiven].value = value;
    given[ngiven++].type = type;
}

/* Refuse a device the manifest does not declare (or declares as the other type) and a
 * declared device that is not given; then open each. */
static void open_devices(void)
{
    for (uint32_t i = 0; i < ngiven; i++) {
        uint32_t k = 0;
        while (k < nmanifest && strcmp(manifest[k].name, given[i].name) != 0)
            k++;
        if (k == nmanifest) {
            char names[HVT_MAX_DEVICES * 34] = "";
            for (uint32_t j = 0; j < nmanifest; j++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", j ? ", " : "",
                         manifest[j].name);
            die(REFUSE, "%s device %s is not in %s's manifest (it declares: %s): the unikernel may use only "
                "the devices it was built with", type_name(given[i].type), given[i].name, elf.path,
                nmanifest ? names : "none");
        }
        if (manifest[k].type != given[i].type)
            die(REFUSE, "device %s is a %s device in %s's manifest, given as a %s device (use --%s:%s=...)",
                given[i].name, type_name(manifest[k].type), elf.path, type_name(given[i].type),
                manifest[k].type == HVT_NET ? "net" : "block", given[i].name);
    }
    for (uint32_t k = 0; k < nmanifest; k++) {
        uint32_t i = 0;
        while (i < ngiven && strcmp(manifest[k].name, given[i].name) != 0)
            i++;
        if (i == ngiven)
            die(REFUSE, "%s's manifest declares %s device %s: give it with --%s:%s=%s", elf.path,
                type_name(manifest[k].type), manifest[k].name, manifest[k].type == HVT_NET ? "net" : "block",
                manifest[k].name, manifest[k].type == HVT_NET ? "TAP" : "FILE");
    }
    for (uint32_t i = 0; i < ngiven; i++) {
        struct device *dev = add_device(given[i].name, given[i].type);
        if (given[i].type == HVT_NET)
            open_tap(dev, given[i].value);
        else
            open_block(dev, given[i].value);
    }
}

int main(int argc, char **argv)
{
    profile_start = now_ns(CLOCK_MONOTONIC);
    uint64_t mib = 256;
    uint64_t flags = 0;
    const char *restore_path = NULL;
    int lazily = 0;
    const char *macs[HVT_MAX_DEVICES][2];
    int nmacs = 0, i = 1;
    char name[64];
    const char *value;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (strcmp(a, "--mem") == 0 && i + 1 < argc) {
            char *end;
            mib = strtoull(argv[++i], &end, 10);
            if (*end || mib < 8 || mib > HVT_MAX_GIB * 1024)
                die(REFUSE, "--mem %s: give MiB between 8 and %d", argv[i], HVT_MAX_GIB * 1024);
        } else if (strcmp(a, "--show-policy") == 0) {
            show_policy(i + 1 < argc ? argv[i + 1] : NULL);
            return 0;
        } else if (strcmp(a, "--trace") == 0) {
            flags |= HVT_FLAG_TRACE;
        } else if (strcmp(a, "--profile") == 0) {
            flags |= HVT_FLAG_PROFILE;
        } else if (strcmp(a, "--save-snapshot") == 0 && i + 1 < argc) {
            save_path = argv[++i];
        } else if (strcmp(a, "--snapshot") == 0 && i + 1 < argc) {
            restore_path = argv[++i];
        } else if (strcmp(a, "--snapshot-mmap") == 0) {
            lazily = 1;
        } else if (strcmp(a, "--profile-imports") == 0) {
            flags |= HVT_FLAG_IMPORTS;
        } else if (binding(a, "--net:", name, sizeof name, &value)) {
            give(name, value, HVT_NET);
        } else if (binding(a, "--block:", name, sizeof name, &value)) {
            give(name, value, HVT_BLOCK);
        } else if (binding(a, "--net-mac:", name, sizeof name, &value)) {
            if (nmacs == HVT_MAX_DEVICES)
                usage();
            macs[nmacs][0] = strdup(name);
            macs[nmacs++][1] = value;
        } else if (a[0] == '-') {
            usage();
        } else {
            break;
        }
    }
    if (i >= argc)
        usage();
    mem_size = mib << 20;
    check_elf(argv[i]);
    if (save_path) {
        /* the snapshot point comes before the program opens a device: a pre-initialising boot has none */
        if (restore_path || ngiven || nmacs || (flags & (HVT_FLAG_TRACE | HVT_FLAG_PROFILE)))
            die(REFUSE, "--save-snapshot boots the unikernel only to its snapshot point: give it no device, "
                "--snapshot, --trace or --profile");
        if (!elf.build_id_len)
            die(REFUSE, "%s has no GNU build ID note to bind a snapshot to (link it with -Wl,--build-id)", elf.path);
        save_fd = open(save_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        const char *failed = save_fd < 0 ? strerror(errno) : snapshot_reserve(mem_size);
        if (failed)
            die(REFUSE, "cannot write the snapshot %s: %s", save_path, failed);
        flags |= HVT_FLAG_PREINIT;
    } else {
        open_devices();
    }
    for (int k = 0; k < nmacs; k++)
        set_mac(macs[k][0], macs[k][1]);
    for (uint32_t k = 0; k < ndevices; k++) {
        uint8_t *m = devices[k].d.mac;
        if (devices[k].d.type == HVT_NET && !(m[0] | m[1] | m[2] | m[3] | m[4] | m[5])) {
            if (getrandom(m, 6, 0) != 6)
                die(REFUSE, "getrandom: %s", strerror(errno));
            m[0] = (uint8_t)((m[0] & 0xfe) | 0x02); /* unicast, locally administered */
        }
    }

    /* Guest memory in transparent huge pages where the host has them: under a shadow-paging
     * KVM (kvm_pvm) each first touch of a 4 KiB page costs the guest an exit (about 40 us
     * here), of a 2 MiB page one exit for all of it; the guest's own tables use 2 MiB pages
     * wherever the rights allow (bench/hvt.py: hello's boot). */
    mem = mmap(NULL, mem_size + (2 << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        die(REFUSE, "cannot reserve %lu MiB of guest memory: %s", (unsigned long)mib, strerror(errno));
    mem = (uint8_t *)(((uintptr_t)mem + (2 << 20) - 1) & ~(uintptr_t)((2 << 20) - 1)); /* 2 MiB-aligned */
    madvise(mem, mem_size, MADV_HUGEPAGE); /* no THP on this host: 4 KiB pages, slower to touch */
    struct snap_vcpu restored;
    int restoring = 0;
    if (restore_path) {
        uint64_t start = now_ns(CLOCK_MONOTONIC);
        struct snap_binding want;
        snapshot_binding(&want);
        const char *failed = snapshot_load(restore_path, mem, mem_size, &want, lazily, &restored, &layout_size);
        if (failed) {
            fprintf(stderr, "%s: the snapshot %s %s: booting cold\n", prog, restore_path, failed);
            /* what was put into memory goes: a fresh mapping, as a cold boot's */
            if (mmap(mem, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1,
                     0) == MAP_FAILED)
                die(REFUSE, "cannot reserve %lu MiB of guest memory: %s", (unsigned long)mib, strerror(errno));
            madvise(mem, mem_size, MADV_HUGEPAGE);
        } else {
            restoring = 1;
        }
        profile_restore_ns = now_ns(CLOCK_MONOTONIC) - start;
    }
    load_segments(restoring);
    uint64_t kernel_end = elf.end, entry = elf.entry;

    struct hvt_boot_info *bi = (struct hvt_boot_info *)(mem + HVT_BOOT_INFO);
    bi->magic = HVT_MAGIC;
    bi->mem_size = mem_size;
    bi->kernel_end = kernel_end;
    bi->flags = flags | (restoring ? HVT_FLAG_RESTORED : 0);
    bi->argc = 0; /* a restored guest's boot information is the saved one's: this run's replaces it */
    bi->signals = 0;
    memset(bi->devices, 0, sizeof bi->devices);
    char *args = (char *)mem + HVT_ARGS;
    size_t used = 0;
    for (int k = i; k < argc; k++) {
        size_t n = strlen(argv[k]) + 1;
        if (used + n > HVT_ARGS_END - HVT_ARGS)
            die(REFUSE, "the guest's arguments are too long (at most %d bytes)", HVT_ARGS_END - HVT_ARGS);
        memcpy(args + used, argv[k], n);
        used += n;
        bi->argc++;
    }
    bi->args_len = used;
    if (getrandom(bi->seed, sizeof bi->seed, 0) != (ssize_t)sizeof bi->seed)
        die(REFUSE, "getrandom: %s", strerror(errno));
    bi->ndevices = ndevices;
    for (uint32_t k = 0; k < ndevices; k++)
        bi->devices[k] = devices[k].d;

    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        die(REFUSE, "cannot open /dev/kvm: %s (hvt needs KVM: load kvm_intel or kvm_amd, and run as a user "
            "who may open /dev/kvm)", strerror(errno));
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
        die(REFUSE, "/dev/kvm speaks an unknown KVM API version");
    vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        die(REFUSE, "KVM_CREATE_VM: %s", strerror(errno));
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = mem_size, .userspace_addr = (uint64_t)(uintptr_t)mem};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        die(REFUSE, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
    vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        die(REFUSE, "KVM_CREATE_VCPU: %s", strerror(errno));
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof *run)
        die(REFUSE, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
    run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        die(REFUSE, "mmap of the vCPU's run area: %s", strerror(errno));
    int khz = ioctl(vcpu, KVM_GET_TSC_KHZ, 0);
    bi->tsc_hz = khz > 0 ? (uint64_t)khz * 1000 : 0;
    setup_cpuid();
    setup_vcpu(entry);
    if (restoring)
        restore_vcpu(&restored);
    forward_stop_signals(&bi->signals);
    kvm_is_pvm = access("/sys/module/kvm_pvm", F_OK) == 0;
    if (flags & HVT_FLAG_PROFILE)
        profile_stats_fd = ioctl(vcpu, KVM_GET_STATS_FD, 0);
    seal();
    profile_entered = now_ns(CLOCK_MONOTONIC);
    int status = run_vcpu();
    if (flags & HVT_FLAG_PROFILE)
        profile_report();
    if (save_path && !saved && status != REFUSE) {
        fprintf(stderr, "%s: the guest exited (status %d) before its snapshot point: nothing was saved to %s\n", prog,
                status, save_path);
        return REFUSE;
    }
    return status;
}
