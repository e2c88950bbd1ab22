"""The policy without root: the compiled BPF program run by a small interpreter, and helpers."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
from unik.devices import EntryKind
from unik.errors import DeviceUnavailable, KeyNotFound, NotAValue
from unik_solo5 import kv
from unik_solo5.devices import key_args, parse
from unik_solo5.policy import (
    AUDIT_ARCH_X86_64,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_TRAP,
    FdSets,
    compile_first_stage,
    compile_policy,
    describe,
)
from unik_solo5.syscalls import X86_64
from unik_solo5.target import split_args

FDS = FdSets(tap=(3,), block=(4,), epoll=(5,), wakeup=(6, 7))


def run_bpf(program: bytes, nr: int, args: tuple[int, ...] = (), arch: int = AUDIT_ARCH_X86_64) -> int:
    """Classic BPF as the kernel runs a seccomp filter (the opcodes the compiler emits)."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    insns = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    for _ in range(len(insns)):  # forward jumps only: at most one pass
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x15:
            pc += jt if acc == k else jf
        elif code == 0x35:
            pc += jt if acc >= k else jf
        elif code == 0x45:
            pc += jt if acc & k else jf
        elif code == 0x05:
            pc += k
        elif code == 0x06:
            return int(k)
        else:
            raise AssertionError(f"unknown opcode {code:#x}")
    raise AssertionError("fell off the program")


PROGRAM = compile_policy(FDS)


@pytest.mark.parametrize(("call", "args", "verdict"), [
    ("write", (1,), SECCOMP_RET_ALLOW),
    ("write", (2,), SECCOMP_RET_ALLOW),
    ("write", (9,), SECCOMP_RET_TRAP),             # no report pipe: the tender reports
    ("write", (0,), SECCOMP_RET_TRAP),
    ("write", (3,), SECCOMP_RET_TRAP),            # the TAP is written with writev only
    ("write", (1 | 1 << 32,), SECCOMP_RET_ALLOW),  # int argument: the kernel reads 32 bits
    ("read", (3,), SECCOMP_RET_ALLOW),
    ("read", (4,), SECCOMP_RET_TRAP),
    ("pread64", (4,), SECCOMP_RET_ALLOW),
    ("pread64", (3,), SECCOMP_RET_TRAP),
    ("epoll_ctl", (5, 1, 3), SECCOMP_RET_ALLOW),
    ("epoll_ctl", (5, 1, 4), SECCOMP_RET_TRAP),
    ("mmap", (0, 4096, 3, 0x22, 2**64 - 1), SECCOMP_RET_ALLOW),
    ("mmap", (0, 4096, 7, 0x22, 2**64 - 1), SECCOMP_RET_TRAP),
    ("mmap", (0, 4096, 1, 0x02, 4), SECCOMP_RET_TRAP),  # file-backed
    ("mprotect", (0, 4096, 3), SECCOMP_RET_TRAP),   # only glibc's per-thread heaps grow with it
    ("mprotect", (0, 4096, 5), SECCOMP_RET_TRAP),
    ("rt_sigaction", (2,), SECCOMP_RET_TRAP),       # asyncio's handlers go in before the filter
    ("rt_sigaction", (31,), SECCOMP_RET_TRAP),
    ("futex", (0, 129), SECCOMP_RET_TRAP),          # no thread to wait for
    ("newfstatat", (7, 0, 0, 0x1000), SECCOMP_RET_TRAP),      # fstat of a descriptor (AT_EMPTY_PATH)
    ("newfstatat", (-100 & 0xFFFFFFFF, 0, 0, 0), SECCOMP_RET_ERRNO | 2),  # os.stat(path): ENOENT, the root is empty
    ("newfstatat", (-100 & 0xFFFFFFFF, 0, 0, 0x100), SECCOMP_RET_ERRNO | 2),  # lstat (AT_SYMLINK_NOFOLLOW)
    ("fcntl", (7, 3), SECCOMP_RET_TRAP),
    ("close", (3,), SECCOMP_RET_ALLOW),
    ("close", (6,), SECCOMP_RET_ALLOW),
    ("close", (1,), SECCOMP_RET_TRAP),
    ("close", (9,), SECCOMP_RET_TRAP),
    ("rt_sigprocmask", (0,), SECCOMP_RET_ALLOW),    # SIG_BLOCK
    ("rt_sigprocmask", (1,), SECCOMP_RET_TRAP),     # SIG_UNBLOCK
    ("rt_sigprocmask", (2,), SECCOMP_RET_TRAP),     # SIG_SETMASK
    ("pwritev", (4,), SECCOMP_RET_ALLOW),
    ("mremap", (0, 8192, 16384, 1), SECCOMP_RET_ALLOW),
    ("mremap", (0, 8192, 16384, 3, 0x7000), SECCOMP_RET_TRAP),  # MREMAP_FIXED
    ("madvise", (0, 4096, 4), SECCOMP_RET_ALLOW),
    ("madvise", (0, 4096, 10), SECCOMP_RET_TRAP),  # MADV_DONTFORK
    ("fdatasync", (3,), SECCOMP_RET_TRAP),
    ("openat", (-100 & 0xFFFFFFFF,), SECCOMP_RET_TRAP),
    ("socket", (2, 1, 0), SECCOMP_RET_TRAP),
    ("clone", (0x11,), SECCOMP_RET_TRAP),
    ("clone3", (), SECCOMP_RET_ERRNO | 38),        # ENOSYS: glibc falls back to clone, refused
    ("clock_nanosleep", (1, 0, 0, 0), SECCOMP_RET_ALLOW),  # time.sleep
    ("execve", (), SECCOMP_RET_TRAP),
    ("ptrace", (), SECCOMP_RET_TRAP),
    ("exit_group", (0,), SECCOMP_RET_ALLOW),
    ("getrandom", (0, 32, 0), SECCOMP_RET_TRAP),  # Fortuna reseeds from RDSEED/RDRAND/jitter after the filter
    ("ioctl", (3, 0x800454D2), SECCOMP_RET_TRAP),  # the tender configured the TAP
    ("lseek", (4, 0, 2), SECCOMP_RET_TRAP),        # the tender took the block file's size
])
def test_filter_verdicts(call: str, args: tuple[int, ...], verdict: int) -> None:
    assert run_bpf(PROGRAM, X86_64[call], args) == verdict


def test_other_abis_are_killed_and_unknown_numbers_trap() -> None:
    assert run_bpf(PROGRAM, X86_64["write"], (1,), arch=0x40000003) == SECCOMP_RET_KILL_PROCESS  # i386
    assert run_bpf(PROGRAM, 0x40000000 | X86_64["write"], (1,)) == SECCOMP_RET_KILL_PROCESS  # x32
    assert run_bpf(PROGRAM, 1023) == SECCOMP_RET_TRAP


def test_labels_name_the_constant_of_their_argument() -> None:
    # PROT_EXEC and MADV_DONTNEED are both 4: each condition names its own.
    text = describe()
    assert "prot lacks PROT_EXEC" in text and "advice == MADV_DONTNEED" in text
    assert "prot lacks MADV_DONTNEED" not in text


def test_parse_handed_devices() -> None:
    got = parse("service\tnet\t3\t1500\t02:00:00:00:00:01\ttap0\nstorage\tblock\t4\t1048576\t-\t/tmp/a\tb.img\n")
    assert got["service"].fd == 3 and got["service"].size == 1500 and got["service"].source == "tap0"
    assert got["service"].mac == "02:00:00:00:00:01"
    assert got["storage"].kind == "block" and got["storage"].source == "/tmp/a\tb.img" and got["storage"].mac == ""
    with pytest.raises(DeviceUnavailable, match="malformed"):
        parse("service\tnet\tthree\t1500\t-\ttap0\n")
    with pytest.raises(DeviceUnavailable, match="malformed"):
        parse("service\tnet\t3\t1500\ttap0\n")  # the old five-field form


def test_handed_devices_become_key_bindings() -> None:
    devices = parse("service\tnet\t3\t1400\t02:00:00:00:00:01\ttap0\nstorage\tblock\t4\t4096\t-\t/d.img\n")
    known = {"fd", "net", "mtu", "net_mac", "block", "size"}
    assert key_args(devices, known) == {
        "fd": ["service=3", "storage=4"], "net": ["service=tap0"], "mtu": ["service=1400"],
        "net_mac": ["service=02:00:00:00:00:01"], "block": ["storage=/d.img"], "size": ["storage=4096"],
    }
    assert key_args(devices, {"fd"}) == {"fd": ["service=3", "storage=4"]}


def test_split_solo5_options() -> None:
    given, show, rest = split_args(["--net:service=tap0", "--block:storage=d.img", "--port", "9",
                                    "--net-mac:service=02:00:00:00:00:09", "--show-policy", "--net:=x"])
    assert given == {"net": {"service": "tap0"}, "net_mac": {"service": "02:00:00:00:00:09"},
                     "block": {"storage": "d.img"}}
    assert (show, rest) == (True, ["--port", "9", "--net:=x"])


def test_memory_kv(tmp_path: Path) -> None:
    store = tmp_path / "assets" / "htdocs"
    (store / "css").mkdir(parents=True)
    (store / "index.html").write_bytes(b"<h1>hi</h1>")
    (store / "css" / "a.css").write_bytes(b"h1{}")
    assert kv.preload(tmp_path) == 15

    async def check() -> None:
        s = await kv.MemoryKVRO.connect("assets/htdocs")
        assert await s.get("/index.html") == b"<h1>hi</h1>"
        assert await s.get_partial("css/a.css", 1, 2) == b"1{"
        assert await s.exists("css") is EntryKind.DICTIONARY
        assert await s.exists("") is EntryKind.DICTIONARY
        assert await s.exists("nope") is None
        assert await s.list() == [("css", EntryKind.DICTIONARY), ("index.html", EntryKind.VALUE)]
        with pytest.raises(NotAValue):
            await s.get("css")
        with pytest.raises(KeyNotFound):
            await s.get("../x")
        assert await s.size("index.html") == 11

    asyncio.run(check())


def test_first_stage_refuses_only_its_calls() -> None:
    first = compile_first_stage()
    assert run_bpf(first, X86_64["openat"], (-100 & 0xFFFFFFFF, 0, 0o2000000)) == SECCOMP_RET_ALLOW  # O_CLOEXEC read
    assert run_bpf(first, X86_64["openat"], (-100 & 0xFFFFFFFF, 0, 0o1 | 0o100)) == SECCOMP_RET_TRAP  # create
    assert run_bpf(first, X86_64["openat"], (-100 & 0xFFFFFFFF, 0, 0o2)) == SECCOMP_RET_TRAP  # O_RDWR
    assert run_bpf(first, X86_64["open"], (0, 0o1000)) == SECCOMP_RET_TRAP  # O_TRUNC
    assert run_bpf(first, X86_64["socket"], (2, 1, 0)) == SECCOMP_RET_TRAP
    assert run_bpf(first, X86_64["clone3"]) == SECCOMP_RET_ERRNO | 38
    for call in ("read", "mmap", "unshare", "mount", "pivot_root", "seccomp", "socketpair", "newfstatat"):
        assert run_bpf(first, X86_64[call]) == SECCOMP_RET_ALLOW, call  # the imports and the seal go on
    assert run_bpf(first, X86_64["read"], arch=0x40000003) == SECCOMP_RET_KILL_PROCESS
