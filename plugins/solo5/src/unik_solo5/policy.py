"""The spt seccomp allowlist: one table, printed by ``--show-policy`` and compiled to BPF.

Every rule admits one system call, maybe only for some arguments (or answers it with an
error: ``clone3``'s ``ENOSYS``, a path's ``newfstatat``'s ``ENOENT``); a call that no rule
admits gets ``SECCOMP_RET_TRAP``: the kernel sends SIGSYS with the call's number, which the tender (the process's
tracer) reads, kills the application and reports (see ``tender.c``).  Descriptor arguments are checked against the
sets known when the filter goes on (:class:`FdSets`): the TAP and block descriptors the
tender opened, the console, and the event loop's epoll and self-pipe descriptors,
created before the filter.  Arguments are compared on their low 32 bits — what the
kernel itself reads of ``int`` arguments; flags that are ``unsigned long`` have no
meaning in their high bits (the kernel refuses unknown ones).

solo5-spt admits 7 calls with every device configured.  CPython at steady state needs
more: memory management (obmalloc arenas, glibc malloc), asyncio's event loop (epoll,
its self-pipe, ``getpid``) and signal delivery (SIGINT/SIGTERM from ``unik run``).

What is needed only on the way in is done before the filter, so it is not here:
opening and configuring the devices (the tender), seeding Fortuna (getrandom,
``/dev/hwrng``, as unik-lib-entropy's device connects; on ``BEFORE_SEAL`` it keeps only
RDSEED, RDRAND, CPU jitter and event timing, which make no system call), asyncio's
signal handlers (``rt_sigaction``, and ``newfstatat``/``fcntl`` of
``signal.set_wakeup_fd``: the filter goes on in the first step of the application's
task, after the runtime installed them).  On the way out the process calls ``_exit``
once its devices are disconnected, so neither restoring signal dispositions nor the
interpreter's finalization (``futex``, ``close`` of the loop's descriptors) needs a rule.
No thread can ever run (``clone`` is refused, and entering the namespaces fails in a
process with other threads), so glibc's per-thread heaps, which ``mprotect`` grows,
and CPython's contended locks (``futex``) are never used either.

What the process inherits (environment, working directory, descriptors, resource
limits) is the tender's choice too: :data:`INHERITED`, printed by ``--show-policy``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .syscalls import X86_64, X86_64_NAMES

# <linux/audit.h>, <linux/seccomp.h>, <linux/filter.h>
AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
ENOSYS = 38
ENOENT = 2
X32_SYSCALL_BIT = 0x40000000
_LD_ABS_W = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_JA = 0x05
_RET = 0x06
# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];
_OFF_NR, _OFF_ARCH, _OFF_ARGS = 0, 4, 16
# <asm-generic/mman-common.h>, <signal.h>, <fcntl.h>
PROT_EXEC = 0x4
MAP_ANONYMOUS = 0x20
SIGSYS = 31
AT_EMPTY_PATH = 0x1000
F_GETFL = 3
FUTEX_PRIVATE_FLAG = 128
SIG_BLOCK = 0
MADV_DONTNEED = 4
MREMAP_MAYMOVE = 1


@dataclass(frozen=True)
class FdSets:
    """The descriptors a filter may name, by role."""

    tap: tuple[int, ...] = ()
    block: tuple[int, ...] = ()
    console: tuple[int, ...] = (1, 2)
    epoll: tuple[int, ...] = ()
    wakeup: tuple[int, ...] = ()

    def get(self, role: str) -> tuple[int, ...]:
        """The descriptors of ``role`` (a field name)."""
        value: tuple[int, ...] = getattr(self, role)
        return value

    def all(self) -> tuple[int, ...]:
        """Every descriptor, sorted (what stays open under the filter, besides stdin)."""
        fds = {*self.tap, *self.block, *self.console, *self.epoll, *self.wakeup}
        return tuple(sorted(fds))


@dataclass(frozen=True)
class Cond:
    """A test of one argument: ``fd_in`` roles, ``eq``/``ne`` a value, ``set``/``clear`` mask bits."""

    arg: int
    label: str
    op: str
    value: int = 0
    roles: tuple[str, ...] = ()
    #: The constant's name: values of different arguments collide (PROT_EXEC == MADV_DONTNEED == 4).
    name: str = ""

    def text(self) -> str:
        """The condition as the README's table writes it."""
        if self.op == "fd_in":
            return f"{self.label} in {{{', '.join(self.roles)}}}"
        value = self.name or str(self.value)
        word = {"set": "has", "clear": "lacks", "eq": "==", "ne": "!="}[self.op]
        return f"{self.label} {word} {value}"


def fd_in(*roles: str, arg: int = 0, label: str = "fd") -> Cond:
    """Argument ``arg`` is one of the descriptors of ``roles``."""
    return Cond(arg, label, "fd_in", roles=roles)


@dataclass(frozen=True)
class Rule:
    """One admitted system call, under all of ``conds``, and why."""

    syscall: str
    why: str
    conds: tuple[Cond, ...] = field(default=())
    #: Answer with this errno instead of admitting the call (0: admit it).
    errno: int = 0
    #: Only when the plan has a device of this kind ("": always).
    when: str = ""

    def args_text(self) -> str:
        """The conditions as one table cell (``any`` when there are none; the errno answered; the device kind)."""
        text = "; ".join(c.text() for c in self.conds) or "any"
        if self.when:
            text += f" (with a {self.when} device)"
        return f"{text}: fails with {_ERRNO_NAMES[self.errno]}" if self.errno else text


_ERRNO_NAMES = {ENOSYS: "ENOSYS", ENOENT: "ENOENT"}


POLICY: tuple[Rule, ...] = (
    # -- the devices -------------------------------------------------------------------
    Rule("read", "receive frames from the TAP (read_frames drains a batch)", (fd_in("tap"),)),
    Rule("writev", "send a frame to the TAP: virtio-net header and frame in one call", (fd_in("tap"),)),
    Rule("pread64", "read sectors of a block device", (fd_in("block"),)),
    Rule("pwrite64", "write sectors of a block device", (fd_in("block"),)),
    Rule("pwritev", "write several buffers to a block device at once (Block.writev)", (fd_in("block"),)),
    Rule("fdatasync", "Block.flush makes writes durable", (fd_in("block"),)),
    Rule("write", "the console (stdout, stderr: tracebacks), the loop's wake-up descriptor "
         "(signal handler)", (fd_in("console", "wakeup"),)),
    # -- waiting on its own descriptors --------------------------------------------------
    Rule("epoll_wait", "asyncio's selector waits for its descriptors and timers", (fd_in("epoll"),)),
    Rule("epoll_ctl", "asyncio (un)registers a device or its self-pipe with its epoll",
         (fd_in("epoll"), fd_in("tap", "wakeup", arg=2, label="target"))),
    Rule("recvfrom", "asyncio drains its self-pipe (a socketpair made before the filter)", (fd_in("wakeup"),)),
    Rule("sendto", "asyncio wakes its loop from a signal or call_soon_threadsafe", (fd_in("wakeup"),)),
    Rule("close", "a device closes its descriptor on disconnect", (fd_in("tap", "block", "epoll", "wakeup"),)),
    # -- the clock --------------------------------------------------------
    Rule("clock_gettime", "the clocks, when the vDSO falls back to the system call"),
    Rule("clock_nanosleep", "time.sleep blocks the process: harmless, it only waits (the loop's "
         "timers use epoll_wait)"),
    # -- CPython at steady state: memory ----------------------------------------------------
    Rule("mmap", "obmalloc arenas and large malloc blocks: anonymous memory, never executable",
         (Cond(3, "flags", "set", MAP_ANONYMOUS, name="MAP_ANONYMOUS"),
          Cond(2, "prot", "clear", PROT_EXEC, name="PROT_EXEC"))),
    Rule("munmap", "free what mmap gave"),
    Rule("mremap", "glibc realloc of a large block grows or moves its mapping (never onto a chosen address)",
         (Cond(3, "flags", "eq", MREMAP_MAYMOVE, name="MREMAP_MAYMOVE"),)),
    Rule("brk", "glibc malloc's main heap"),
    Rule("madvise", "glibc free gives the pages of a trimmed heap back to the kernel",
         (Cond(2, "advice", "eq", MADV_DONTNEED, name="MADV_DONTNEED"),)),
    # -- CPython at steady state: signals and exit -------------------------------------------
    Rule("rt_sigreturn", "return from a signal handler (SIGINT/SIGTERM from unik run)"),
    Rule("rt_sigprocmask", "the runtime blocks SIGINT/SIGTERM on its way out after the first one; only "
         "blocking (SIGSYS cannot be blocked against seccomp: the kernel forces it)",
         (Cond(0, "how", "eq", SIG_BLOCK, name="SIG_BLOCK"),)),
    Rule("exit_group", "the application's exit status"),
    Rule("getpid", "asyncio checks that the running loop belongs to this process (os.getpid) at every "
         "get_running_loop; no effect"),
    # -- only with some devices -------------------------------------------------------------
    Rule("getrandom", "OpenSSL's DRBG seeds from the kernel at its first use and reseeds hourly; reading "
         "the kernel's CSPRNG reveals nothing of the host and changes nothing", when="tls"),
    # -- answered, not admitted ------------------------------------------------------------
    Rule("clone3", "its arguments are in memory, which a filter cannot read: glibc then falls back "
         "to clone, which is refused and named", errno=ENOSYS),
    Rule("newfstatat", "a path's status (os.stat, os.path.exists: inspect.getsourcefile, which FastAPI calls at "
         "an endpoint's first request): the root is empty from the seal, so no path is there; a descriptor's "
         "status (fstat) stays refused", (Cond(3, "flags", "clear", AT_EMPTY_PATH, name="AT_EMPTY_PATH"),),
         errno=ENOENT),
)


@dataclass(frozen=True)
class Inherited:
    """One thing the application's process gets from the tender rather than from its caller."""

    what: str
    value: str
    why: str


#: What the tender gives the process before Python starts (``tender.c``), and what stays open under the filter.
INHERITED: tuple[Inherited, ...] = (
    Inherited("environment", "UNIK_SPT_DEVICES, UNIK_PROG, UNIK_SPT_MEM_MIB, UNIK_SPT_FILES",
              "the devices, the program's name, the memory limit, the run's host files (--tls-cert...); "
              "nothing of the caller's environment"),
    Inherited("root", "read-only: app/, the standard library, the libraries they load",
              "from before the imports (unik_solo5.root): with /etc/ld.so.cache, OpenSSL's configuration "
              "(a tls device) and the run's host files; nothing else of the host's. Empty from the seal"),
    Inherited("working directory", "/", "of that root"),
    Inherited("stdin", "/dev/null", "an application reads its devices, not a terminal"),
    Inherited("descriptors", "stdin, stdout, stderr, the devices'",
              "all others are closed before Python starts; under the filter also the loop's epoll and self-pipe"),
    Inherited("memory cgroup", "--mem MiB (default 256M)",
              "resident memory: cgroup v2 memory.max where delegated, else cgroup v1 memory.limit_in_bytes "
              "(and memsw); the kernel stops the application there and unik run reports its oom_kill count"),
    Inherited("RLIMIT_AS", "--mem MiB, twice that behind a memory cgroup",
              "address space, CPython's included: a larger allocation fails with MemoryError"),
    Inherited("RLIMIT_NOFILE", "256", "Python opens its modules one at a time before the filter"),
    Inherited("RLIMIT_CORE", "0", "no core files (the process is also made non-dumpable)"),
)


# <fcntl.h>: an open for writing, creating or truncating.
OPEN_WRITE = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000  # O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND
CLONE_THREAD = 0x10000

#: The first stage, on before the application's modules are imported (a denylist: the
#: imports need the filesystem; the filter above follows once the devices are connected).
FIRST_STAGE: tuple[Rule, ...] = (
    Rule("socket", "no network (the process is in a network namespace of its own, too)"),
    Rule("fork", "no process creation"),
    Rule("vfork", "no process creation"),
    Rule("clone", "no process creation, no thread (entering the namespaces later needs one thread)"),
    Rule("clone3", "arguments in memory: glibc falls back to clone", errno=ENOSYS),
    Rule("execve", "no other program"),
    Rule("execveat", "no other program"),
    Rule("ptrace", "no tracing"),
    Rule("process_vm_readv", "no other process's memory"),
    Rule("process_vm_writev", "no other process's memory"),
    Rule("kill", "no signals to others"),
    Rule("tkill", "no signals to others"),
    Rule("open", "no writes to the host's files (reading modules is allowed)",
         (Cond(1, "flags", "set", OPEN_WRITE, name="O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND"),)),
    Rule("openat", "no writes to the host's files (reading modules is allowed)",
         (Cond(2, "flags", "set", OPEN_WRITE, name="O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND"),)),
    Rule("openat2", "its flags are in memory, which a filter cannot read"),
    Rule("creat", "no writes to the host's files"),
    *(Rule(call, "no changes to the host's files") for call in (
        "truncate", "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir",
        "link", "linkat", "symlink", "symlinkat", "chmod", "fchmodat", "chown", "fchownat", "lchown",
        "mknod", "mknodat", "utimensat", "setxattr", "lsetxattr", "removexattr", "lremovexattr")),
)


def admitted() -> list[str]:
    """The distinct system calls the policy always admits, in table order.

    Not those answered with an errno, nor those admitted only with some devices.
    """
    return list(dict.fromkeys(r.syscall for r in POLICY if not r.errno and not r.when))


def describe(policy: Sequence[Rule] = POLICY) -> str:
    """The allowlist and what the process inherits, as ``--show-policy`` prints them: one line per rule."""
    width = max(len(r.syscall) for r in policy)
    awidth = max(len(r.args_text()) for r in policy)
    lines = [f"spt seccomp allowlist (x86_64): {len(admitted())} system calls, more with some devices; "
             "any other kills the application"]
    lines += [f"  {r.syscall:{width}}  {r.args_text():{awidth}}  {r.why}" for r in policy]
    iwidth = max(len(i.what) for i in INHERITED)
    vwidth = max(len(i.value) for i in INHERITED)
    lines += ["", "what the process inherits from the tender:"]
    lines += [f"  {i.what:{iwidth}}  {i.value:{vwidth}}  {i.why}" for i in INHERITED]
    fwidth = max(len(r.syscall) for r in FIRST_STAGE)
    fawidth = max(len(r.args_text()) for r in FIRST_STAGE)
    lines += ["", "first stage, before the application's modules are imported: refused (any other call goes on):"]
    lines += [f"  {r.syscall:{fwidth}}  {r.args_text():{fawidth}}  {r.why}" for r in FIRST_STAGE]
    return "\n".join(lines) + "\n"


def compile_first_stage(policy: Iterable[Rule] = FIRST_STAGE) -> bytes:
    """The first stage's seccomp-BPF program: each rule *refuses* its call when its conditions hold.

    A refused call traps (or fails with the rule's errno); every other call is allowed.
    Other ABIs are killed.
    """
    asm = _x86_64_only()
    for rule in policy:
        nxt = asm.label()
        asm.op(_LD_ABS_W, _OFF_NR)
        asm.op(_JEQ, X86_64[rule.syscall], 0, nxt)
        for cond in rule.conds:
            _cond(asm, cond, FdSets(), nxt)
        asm.op(_RET, SECCOMP_RET_ERRNO | rule.errno if rule.errno else SECCOMP_RET_TRAP)
        asm.at(nxt)
    asm.op(_RET, SECCOMP_RET_ALLOW)
    return asm.program()


def markdown() -> str:
    """The README's three tables (allowlist, inheritance, first stage), from the same source as :func:`describe`."""
    rows = ["| system call | arguments | why |", "|---|---|---|"]
    rows += [f"| `{r.syscall}` | {r.args_text()} | {r.why} |" for r in POLICY]
    rows += ["", "| inherited | value | why |", "|---|---|---|"]
    rows += [f"| {i.what} | {i.value} | {i.why} |" for i in INHERITED]
    rows += ["", "| refused in the first stage | arguments | why |", "|---|---|---|"]
    rows += [f"| `{r.syscall}` | {r.args_text()} | {r.why} |" for r in FIRST_STAGE]
    return "\n".join(rows) + "\n"


# -- the BPF program ---------------------------------------------------------------------


class _Asm:
    """A tiny BPF assembler: forward jumps to labels, resolved by :meth:`program`."""

    def __init__(self) -> None:
        self.code: list[tuple[int, str | int, str | int, int]] = []
        self.labels: dict[str, int] = {}
        self._n = 0

    def label(self) -> str:
        self._n += 1
        return f"L{self._n}"

    def at(self, label: str) -> None:
        self.labels[label] = len(self.code)

    def op(self, code: int, k: int, jt: str | int = 0, jf: str | int = 0) -> None:
        self.code.append((code, jt, jf, k & 0xFFFFFFFF))

    def program(self) -> bytes:
        out = bytearray()
        for i, (code, jt, jf, k) in enumerate(self.code):
            if code == _JA:
                k, jt, jf = self._offset(i, jt, 1 << 32), 0, 0
            out += struct.pack("<HBBI", code, self._offset(i, jt, 256), self._offset(i, jf, 256), k)
        return bytes(out)

    def _offset(self, i: int, target: str | int, limit: int) -> int:
        if isinstance(target, int):
            return target
        off = self.labels[target] - (i + 1)
        if not 0 <= off < limit:
            raise ValueError(f"BPF jump of {off} instructions does not fit")
        return off


def _x86_64_only() -> _Asm:
    """A program's start: any ABI but x86-64 (x32's calls included) is killed; the call's number is loaded."""
    asm = _Asm()
    asm.op(_LD_ABS_W, _OFF_ARCH)
    asm.op(_JEQ, AUDIT_ARCH_X86_64, 1, 0)
    asm.op(_RET, SECCOMP_RET_KILL_PROCESS)
    asm.op(_LD_ABS_W, _OFF_NR)
    asm.op(_JGE, X32_SYSCALL_BIT, 0, 1)
    asm.op(_RET, SECCOMP_RET_KILL_PROCESS)
    return asm


def _cond(asm: _Asm, cond: Cond, fds: FdSets, fail: str) -> None:
    asm.op(_LD_ABS_W, _OFF_ARGS + 8 * cond.arg)  # low 32 bits (little-endian)
    if cond.op == "fd_in":
        ok = asm.label()
        for fd in sorted({fd for role in cond.roles for fd in fds.get(role)}):
            asm.op(_JEQ, fd, ok, 0)
        asm.op(_JA, 0, fail)
        asm.at(ok)
    elif cond.op == "eq":
        asm.op(_JEQ, cond.value, 0, fail)
    elif cond.op == "ne":
        asm.op(_JEQ, cond.value, fail, 0)
    elif cond.op == "set":
        asm.op(_JSET, cond.value, 0, fail)
    elif cond.op == "clear":
        asm.op(_JSET, cond.value, fail, 0)
    else:  # pragma: no cover - the table above uses only these
        raise ValueError(cond.op)


def compile_policy(fds: FdSets, policy: Iterable[Rule] = POLICY, kinds: Iterable[str] = ()) -> bytes:
    """The seccomp-BPF program (``struct sock_filter[]``) of ``policy`` for the descriptors ``fds``.

    Rules for a device kind (``when``) are in only if the plan has one (``kinds``).
    Another architecture or the x32 ABI is killed outright; an unlisted call, or a listed
    one whose arguments match none of its rules, traps; a rule with an ``errno`` fails the call with it.
    """
    by_call: dict[str, list[Rule]] = {}
    present = set(kinds)
    for rule in policy:
        if rule.when and rule.when not in present:
            continue
        by_call.setdefault(rule.syscall, []).append(rule)
    asm = _x86_64_only()
    for name, rules in by_call.items():
        nxt = asm.label()
        asm.op(_LD_ABS_W, _OFF_NR)
        asm.op(_JEQ, X86_64[name], 0, nxt)
        for rule in rules:
            fail = asm.label()
            for cond in rule.conds:
                _cond(asm, cond, fds, fail)
            asm.op(_RET, SECCOMP_RET_ERRNO | rule.errno if rule.errno else SECCOMP_RET_ALLOW)
            asm.at(fail)
        asm.op(_RET, SECCOMP_RET_TRAP)
        asm.at(nxt)
    asm.op(_RET, SECCOMP_RET_TRAP)
    return asm.program()


def syscall_name(nr: int) -> str:
    """The x86_64 name of system call ``nr`` (``#nr`` for a number with none)."""
    return X86_64_NAMES.get(nr, f"#{nr}")


if __name__ == "__main__":  # python -m unik_solo5.policy: the README's tables
    print(markdown(), end="")
