"""unik-hvt, the monitor: ELF checks before the VM exists, devices, hypercall checks, crashes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hvt_support import asm_guest, needs_kvm, run

HYPERCALL = "mov ${port}, %ebx\nmovl %eax, (%rbx)\n"
EXIT = "lea exitarg(%rip), %rax\n" + HYPERCALL.format(port=0xFE000038) + "hlt"
EXIT_DATA = "exitarg: .long {status}, 0"


def test_console_and_exit_status(tmp_path: Path) -> None:
    needs_kvm()
    guest = asm_guest(tmp_path, "hello", "lea msgarg(%rip), %rax\n" + HYPERCALL.format(port=0xFE000000) + EXIT,
                      'msg: .ascii "hi\\n"\nmsgarg: .quad msg, 3\n.long 1, 0\n' + EXIT_DATA.format(status=42))
    proc = run(guest)
    assert (proc.returncode, proc.stdout) == (42, "hi\n"), proc.stderr


def test_an_exception_is_reported(tmp_path: Path) -> None:
    needs_kvm()
    proc = run(asm_guest(tmp_path, "ud2", "ud2"))
    assert proc.returncode == 255
    assert "crashed: an exception" in proc.stderr and "rip=0x" in proc.stderr


def test_a_store_outside_memory_is_refused(tmp_path: Path) -> None:
    needs_kvm()
    proc = run(asm_guest(tmp_path, "mmio", "mov $0xfe001000, %ebx\nmovl %eax, (%rbx)\nhlt"))
    assert proc.returncode == 255
    assert "the guest accessed 0xfe001000, outside its 256 MiB of memory and the hypercall page" in proc.stderr


def test_port_io_is_not_the_interface(tmp_path: Path) -> None:
    needs_kvm()
    proc = run(asm_guest(tmp_path, "port", "mov $0x80, %dx\nout %al, %dx\nhlt"))
    assert proc.returncode == 255  # at CPL 3 port I/O faults


def test_a_pointer_outside_guest_memory_is_refused(tmp_path: Path) -> None:
    needs_kvm()
    guest = asm_guest(tmp_path, "badptr", "lea msgarg(%rip), %rax\n" + HYPERCALL.format(port=0xFE000000) + EXIT,
                      "msgarg: .quad 0xfffff000, 4096\n.long 1, 0\n" + EXIT_DATA.format(status=0))
    proc = run("--mem", "16", guest)
    assert proc.returncode == 255
    assert "hypercall console with an argument outside guest memory" in proc.stderr


def _note(devices: list[tuple[str, int]], *, version: int = 1, count: int | None = None) -> bytes:
    """The manifest note (hvt_abi.h) declaring ``devices`` ((name, 1 net / 2 block))."""
    desc = struct.pack("<II", version, len(devices) if count is None else count)
    desc += b"".join(struct.pack("<32sII", name.encode(), kind, 0) for name, kind in devices)
    return struct.pack("<III", 5, len(desc), 0x31544D46) + b"UNIK\0\0\0\0" + desc


def _elf(path: Path, segments: list[tuple[int, int, int]], entry: int, *, interp: bool = False,
         note: bytes | None = None) -> Path:
    """A minimal x86_64 ET_EXEC with PT_LOAD ``(vaddr, memsz, flags)`` segments (flags: 1 X, 2 W, 4 R)."""
    phdrs = [(3, 4, 0, 0x400000, 0x400000, 0, 0, 1)] if interp else []
    phdrs += [(1, flags, 0, vaddr, vaddr, 0, memsz, 0x1000) for vaddr, memsz, flags in segments]
    note_at = 64 + 56 * (len(phdrs) + (note is not None))
    if note is not None:
        phdrs.append((4, 4, note_at, 0, 0, len(note), len(note), 4))
    head = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, 2, 62, 1, entry, 64, 0, 0, 64, 56,
                       len(phdrs), 64, 0, 0)
    path.write_bytes(head + b"".join(struct.pack("<IIQQQQQQ", *p) for p in phdrs) + (note or b""))
    return path


@pytest.mark.parametrize(("segments", "entry", "message"), [
    ([(0x400000, 0x1000, 5), (0x401000, 0x1000, 7)], 0x400000, "segment 1 is both writable and executable"),
    ([(0x400000, 0x2000, 5), (0x401000, 0x1000, 6)], 0x400000, "segments 0 and 1 overlap"),
    ([(0x400000, 0x800, 5), (0x400800, 0x800, 6)], 0x400000, "segments 0 and 1 share a page, one writable and one"),
    ([(0x400000, 0x1000, 5)], 0x500000, "the entry point 0x500000 is not inside an executable segment"),
    ([(0x400000, 0x1000, 6)], 0x400000, "is not inside an executable segment"),
    ([(0x1000, 0x1000, 5)], 0x1000, "lies outside guest memory"),
    ([(0x400000, 1 << 40, 5)], 0x400000, "lies outside guest memory"),
])
def test_hostile_elfs_are_refused_before_the_vm(tmp_path: Path, segments: list[tuple[int, int, int]], entry: int,
                                                 message: str) -> None:
    proc = run(_elf(tmp_path / "bad.elf", segments, entry))
    assert proc.returncode == 125
    assert message in proc.stderr and "KVM" not in proc.stderr


def test_dynamic_and_foreign_files_are_refused(tmp_path: Path) -> None:
    proc = run(_elf(tmp_path / "dyn.elf", [(0x400000, 0x1000, 5)], 0x400000, interp=True))
    assert proc.returncode == 125 and "dynamically linked: the unikernel must be a static ELF" in proc.stderr
    (tmp_path / "text").write_text("#!/bin/sh\n")
    proc = run(tmp_path / "text")
    assert proc.returncode == 125 and "is not a 64-bit little-endian ELF file" in proc.stderr
    proc = run(tmp_path / "absent")
    assert proc.returncode == 125 and "cannot open the unikernel" in proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--mem", "1"], "--mem 1: give MiB between 8 and 3072"),
    (["--block:disk=/nonexistent/disk.img", "--net:service=tap0"],
     "block device disk: cannot open /nonexistent/disk.img"),
    (["--net:service=unik-notap9", "--block:disk=/dev/null"],
     "network device service: there is no network interface unik-notap9"),
    (["--net-mac:service=02:00:00:00:00:01"], "not a network device given with --net:service=TAP"),
    (["--bogus"], "usage: unik-hvt"),
])
def test_bad_options_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    devices = [] if args[0].startswith("--net-mac") else [("disk", 2), ("service", 1)]
    guest = _elf(tmp_path / "ok.elf", [(0x400000, 0x1000, 5)], 0x400000, note=_note(devices))
    proc = run(*args, guest)
    assert proc.returncode == 125
    assert message in proc.stderr


@pytest.mark.parametrize(("note", "args", "message"), [
    (None, ["--block:disk=/dev/null"], "block device disk is not in {elf}'s manifest (it declares: none)"),
    ([("disk", 2)], ["--block:disk=/dev/null", "--net:service=tap0"],
     "network device service is not in {elf}'s manifest (it declares: disk)"),
    ([("disk", 2)], ["--net:disk=tap0"], "device disk is a block device in {elf}'s manifest, given as a network"),
    ([("disk", 2), ("service", 1)], ["--block:disk=/dev/null"],
     "{elf}'s manifest declares network device service: give it with --net:service=TAP"),
])
def test_the_monitor_enforces_the_manifest(tmp_path: Path, note: list[tuple[str, int]] | None, args: list[str],
                                           message: str) -> None:
    """Devices beyond the ELF's manifest are refused before any is opened (solo5's manifest rule)."""
    guest = _elf(tmp_path / "ok.elf", [(0x400000, 0x1000, 5)], 0x400000,
                 note=None if note is None else _note(note))
    proc = run(*args, guest)
    assert proc.returncode == 125
    assert message.format(elf=guest) in proc.stderr, proc.stderr


@pytest.mark.parametrize(("note", "message"), [
    (_note([("disk", 2)], version=2), "its manifest is version 2, this monitor reads version 1"),
    (_note([("disk", 2)], count=3), "its manifest declares 3 devices in"),
    (_note([("disk", 2), ("disk", 1)]), "its manifest declares device disk twice"),
    (_note([("disk", 9)]), "manifest device disk has an unknown type 9"),
    (_note([("", 2)]), "manifest entry 0 has no name"),
    (_note([("disk", 2)])[:-8], "a malformed note"),
])
def test_a_malformed_manifest_is_refused(tmp_path: Path, note: bytes, message: str) -> None:
    proc = run(_elf(tmp_path / "bad.elf", [(0x400000, 0x1000, 5)], 0x400000, note=note))
    assert proc.returncode == 125
    assert message in proc.stderr, proc.stderr


def test_show_policy_names_the_manifest(tmp_path: Path) -> None:
    guest = _elf(tmp_path / "ok.elf", [(0x400000, 0x1000, 5)], 0x400000, note=_note([("service", 1), ("disk", 2)]))
    proc = run("--show-policy", guest)
    assert proc.returncode == 0
    assert "seccomp allowlist" in proc.stdout and "The guest's hypercalls: console, clock, poll" in proc.stdout
    assert proc.stdout.endswith(f"{guest}'s manifest: \n  network device service (--net:NAME=TAP)\n"
                                "  block device disk (--block:NAME=FILE)\n")
    assert run("--show-policy", _elf(tmp_path / "none.elf", [(0x400000, 0x1000, 5)], 0x400000)).stdout.endswith(
        "none.elf's manifest: no device\n")


def test_a_block_file_is_locked(tmp_path: Path) -> None:
    import fcntl

    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 4096)
    with disk.open("rb+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        proc = run(f"--block:disk={disk}", _elf(tmp_path / "ok.elf", [(0x400000, 0x1000, 5)], 0x400000,
                                                note=_note([("disk", 2)])))
    assert proc.returncode == 125 and "is in use by another process (locked)" in proc.stderr
