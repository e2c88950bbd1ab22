/* The hvt ABI: what unik's KVM monitor (monitor.c) and the guest runtime (runtime.c)
 * agree on.  Guest-physical addresses equal guest-virtual ones (identity mapping).
 *
 * The guest runs in 64-bit mode at CPL 3, the whole of it (runtime and application):
 * KVM backends that run only user mode natively (kvm_pvm, which emulates a CPL 0 guest
 * instruction by instruction) run it at full speed, and it needs no privileged
 * instruction.  The monitor sets EFER.SCE, STAR and LSTAR (= the ELF's entry point +
 * HVT_SYSCALL_OFFSET), so `syscall` lands in the runtime, which returns with popfq and
 * an indirect jump; FS is set with wrfsbase.
 *
 * A hypercall is one 32-bit store to HVT_MMIO_BASE + 8 * number (a page outside guest
 * RAM: KVM hands the store to the monitor) whose value is the guest-physical address of
 * the call's argument structure (below 4 GiB).  The monitor checks every address and
 * length against the guest's memory before touching it.
 */
#ifndef UNIK_HVT_ABI_H
#define UNIK_HVT_ABI_H

#include <stdint.h>

#define HVT_MMIO_BASE 0xfe000000ULL
#define HVT_SYSCALL_OFFSET 16
enum hvt_call {
    HVT_CONSOLE = 0, /* struct hvt_console: write to the host's stdout (fd 1) or stderr (fd 2) */
    HVT_CLOCK = 1,   /* struct hvt_clock: CLOCK_MONOTONIC and CLOCK_REALTIME, nanoseconds */
    HVT_POLL = 2,    /* struct hvt_poll: wait until a network device is readable or the deadline */
    HVT_NET_WRITE = 3,  /* struct hvt_io: send one frame */
    HVT_NET_READ = 4,   /* struct hvt_io: receive one frame (ret -EAGAIN when none) */
    HVT_BLOCK_WRITE = 5, /* struct hvt_io: write at offset; len 0: make the writes durable (fdatasync) */
    HVT_BLOCK_READ = 6,  /* struct hvt_io: read at offset */
    HVT_EXIT = 7,        /* struct hvt_exit: leave with a status */
    HVT_NET_WRITE_MANY = 8, /* struct hvt_net_batch: send count frames in one exit */
    HVT_NET_READ_MANY = 9,  /* struct hvt_net_batch: receive up to count frames in one exit (done: how many) */
    HVT_TURN = 10,          /* struct hvt_turn: the end of an event loop's turn, in one exit (below) */
    HVT_SNAPSHOT = 11,     /* struct hvt_snapshot: the pre-initialisation point (below) */
    HVT_NCALLS = 12,
};

struct hvt_console { uint64_t buf, len; uint32_t fd, pad; };
struct hvt_clock { uint64_t monotonic_ns, wall_ns; };
struct hvt_poll { uint64_t deadline_ns; uint64_t ready; /* out: bit i = network device i readable */ };
struct hvt_io { uint32_t device, pad; uint64_t offset, buf, len; int64_t ret; };
struct hvt_exit { int32_t status, pad; };
/* A batch of frames for one network device: an array of count (at most HVT_BATCH_MAX)
 * struct hvt_frame at frames; the monitor sets each frame's ret (bytes or -errno) and
 * done (frames sent, or received before the TAP ran dry or the batch filled). */
struct hvt_frame { uint64_t buf, len; int64_t ret; };
struct hvt_net_batch { uint32_t device, count; uint64_t frames; uint32_t done, pad; };
#define HVT_BATCH_MAX 64

/* HVT_TURN: what the end of an event loop's turn needs, in one exit instead of three or
 * four (flush, poll, clock, read): for each of the first ndevices devices, send the
 * frames of tx[i] (count 0: none); then receive into rx[i] (count 0: none; done: how
 * many came) what each TAP holds; if none came, wait until a TAP is readable (and
 * receive then) or until deadline_ns (monotonic; 0: do not wait) or a stop signal for
 * the guest, watching the devices of watch only.  ready bit i: device i may hold more frames (its batch filled up, or it
 * had none and is readable).  clock: the host's clocks as the call returns.  tx and rx
 * are guest addresses of ndevices struct hvt_net_batch each; their device fields are
 * ignored (entry i is device i). */
struct hvt_turn {
    uint64_t deadline_ns, ready;
    uint64_t monotonic_ns, wall_ns; /* out: the clocks */
    uint64_t tx, rx;
    uint32_t ndevices;
    uint32_t watch; /* bit i: wait for device i (the guest's receive ring for it is empty) */
};

/* Pre-initialisation (unik-hvt --save-snapshot FILE): a boot with HVT_FLAG_PREINIT runs the
 * guest to its snapshot point, where the runtime makes the HVT_SNAPSHOT hypercall; the
 * monitor saves the guest (memory and vCPU) to FILE and exits 0.  unik-hvt --snapshot FILE
 * restores such a guest in a new VM with HVT_FLAG_RESTORED and this run's boot information
 * (arguments, seed, devices, flags), and the hypercall returns there: the runtime renews
 * what the snapshot's memory holds (its generator's key, its clocks) before the program goes
 * on.  monotonic_ns is the guest's monotonic clock at the save (its clock never goes back). */
struct hvt_snapshot { uint64_t monotonic_ns; };
/* hvt's own system call (not Linux's): the program's snapshot point (pymain.c).  rdi 0: 1
 * when this boot pre-initialises, else 0; rdi 1: save here (a pre-initialising boot), and
 * return 1 in each guest restored from the save, 0 at once in any other boot. */
#define HVT_SYS_SNAPSHOT 0x4856

/* Fixed low-memory layout, written by the monitor before the guest starts. */
#define HVT_GDT 0x1000
#define HVT_PML4 0x2000
#define HVT_PDPT 0x3000
#define HVT_PD 0x4000          /* one 4 KiB page directory per GiB, up to HVT_MAX_GIB */
#define HVT_MAX_GIB 3          /* the fourth GiB's directory maps HVT_MMIO_BASE */
#define HVT_BOOT_INFO 0x8000
#define HVT_ARGS 0x9000        /* argv strings, NUL-separated */
#define HVT_ARGS_END 0x10000
#define HVT_PT 0x10000         /* page tables of 4 KiB pages, up to HVT_LOAD_MIN */
#define HVT_LOAD_MIN 0x100000  /* no ELF segment below 1 MiB */
#define HVT_STACK_SIZE (8ULL << 20) /* the stack: the top of memory; an unmapped guard page below it */

/* The page tables the monitor builds (supervisor-only, so the CPL 3 guest can neither read
 * nor change them): page 0 unmapped (a null pointer faults); the GDT and the tables
 * supervisor-only; the boot information and arguments read-write; the ELF's segments
 * with their own rights (text read-only and executable, read-only data read-only,
 * data and .bss read-write; pages between them unmapped); the rest of memory (heap,
 * stack) read-write; the page below the stack unmapped.  Nothing writable is
 * executable (EFER.NXE and the NX bit). */

#define HVT_MAGIC 0x31747668696e75ULL /* "univht1" */
#define HVT_MAX_DEVICES 16
#define HVT_NET 1
#define HVT_BLOCK 2
#define HVT_FLAG_TRACE 1 /* the runtime logs every system call to stderr */
#define HVT_FLAG_PROFILE 2 /* at exit, where the time went: the monitor's and the runtime's counts on stderr */
#define HVT_FLAG_PREINIT 4 /* this boot pre-initialises: the snapshot point saves the guest (--save-snapshot) */
#define HVT_FLAG_RESTORED 8 /* this guest was restored from a snapshot (--snapshot) */
#define HVT_FLAG_IMPORTS 16 /* CPython's import times on stderr (-X importtime): UNIK_HVT_IMPORT_TIME=1 in the guest */

struct hvt_device {
    char name[32];
    uint32_t type, mtu;
    uint64_t size;      /* block: bytes */
    uint8_t mac[6], pad[2];
};

/* The manifest: which devices the unikernel may use, a note in its ELF (in a PT_NOTE
 * segment: name "UNIK", type HVT_NOTE_MANIFEST, this descriptor).  The monitor refuses
 * a device given on its command line that the manifest does not declare, and one the
 * manifest declares that is not given.  An ELF without the note declares no device. */
#define HVT_NOTE_NAME "UNIK"
#define HVT_NOTE_MANIFEST 0x31544d46 /* "FMT1" */
struct hvt_manifest_entry { char name[32]; uint32_t type, pad; };
struct hvt_manifest { uint32_t version, count; struct hvt_manifest_entry entries[]; };
#define HVT_MANIFEST_VERSION 1

struct hvt_boot_info {
    uint64_t magic, mem_size, kernel_end;
    uint64_t argc, args_len, flags;
    uint64_t tsc_hz;    /* 0 when the monitor could not tell */
    uint8_t seed[32];   /* from the host's getrandom: the guest's getrandom key */
    uint32_t ndevices, pad;
    struct hvt_device devices[HVT_MAX_DEVICES];
    /* Signals for the guest (bit n - 1: signal n, as in Linux's sigset_t), set by the monitor when it receives SIGTERM
     * or SIGINT (unik stop, Ctrl-C) and taken by the runtime at its next system call. */
    volatile uint64_t signals;
    /* The clock the runtime's vDSO reads (AT_SYSINFO_EHDR: glibc's clock_gettime,
     * gettimeofday and time without a system call, each a trap under kvm_pvm): the
     * runtime re-anchors it at every clock hypercall.  ns = monotonic_ns (or wall_ns) +
     * ((rdtsc - tsc) * mult >> 32); mult 0: the TSC rate is unknown, use the system call. */
    struct hvt_vclock { uint64_t tsc, monotonic_ns, wall_ns, mult; } vclock;
};

#endif
