"""hvt's guest runtime: Linux system calls from a guest program, served without Linux."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from hvt_support import GUEST_DIR, needs_kvm, run, runtime_guest
from unik_solo5.hvtfs import FsFile, link, pack


@pytest.fixture(scope="module")
def shimtest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    files = {"/app/hello.txt": FsFile(b"hello, world!\n", 1_700_000_000_000_000_000),
             "/app/sub/b.txt": FsFile(b"b\n"), "/app/sub-1.0.dist-info/METADATA": FsFile(b""),
             "/app/sub.py": FsFile(b"")}
    return runtime_guest(tmp_path_factory.mktemp("shim"), GUEST_DIR / "shimtest.c", files)


def test_system_calls(shimtest: Path) -> None:
    needs_kvm()
    proc = run(shimtest)
    assert "FAIL" not in proc.stdout, proc.stdout + proc.stderr
    assert proc.stdout.startswith("writev works\nok writev\n")
    assert proc.stdout.count("ok ") == 34, proc.stdout
    assert proc.returncode == 0, proc.stderr


def test_unsupported_calls_are_named_once(shimtest: Path) -> None:
    needs_kvm()
    err = run(shimtest).stderr
    assert "system call fork (57) is not supported by the hvt runtime: ENOSYS" in err
    assert err.count("socket (41)") == 1


@pytest.mark.parametrize("status", [0, 3, 255])
def test_exit_status_passes_through(shimtest: Path, status: int) -> None:
    needs_kvm()
    proc = run(shimtest, str(status))
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == ""


def test_trace_logs_every_call(shimtest: Path) -> None:
    needs_kvm()
    proc = run("--trace", shimtest, "5")
    assert proc.returncode == 5
    assert re.search(r"unik-hvt: \d+\.\d{3} exit_group\(5, ", proc.stderr), proc.stderr


def test_a_fault_is_reported_with_its_address(tmp_path: Path) -> None:
    needs_kvm()
    src = tmp_path / "crash.c"
    src.write_text('void _start(void) { __asm__ volatile("ud2"); }\n')
    proc = run(runtime_guest(tmp_path, src))
    assert proc.returncode == 255
    assert "crashed: an exception" in proc.stderr and "rip=0x" in proc.stderr


def test_too_little_memory_is_refused_by_the_runtime(shimtest: Path) -> None:
    needs_kvm()
    proc = run("--mem", "16", shimtest)  # the ELF ends past 8 MiB (2 MiB-aligned segments)
    assert proc.returncode == 255
    assert "leave no heap" in proc.stderr and "raise --mem" in proc.stderr


def test_a_static_glibc_program(tmp_path: Path) -> None:
    """An unmodified static glibc program: its start-up (TLS, ifuncs, stdio) and exit run on the runtime."""
    needs_kvm()
    obj = tmp_path / "hello.o"
    subprocess.run(["gcc", "-O2", "-c", str(GUEST_DIR / "hello.c"), "-o", str(obj)], check=True)
    link([obj], pack({"/etc/motd": FsFile(b"from the archive\n")}), tmp_path / "hello")
    proc = run(tmp_path / "hello", "7")
    assert proc.stdout.splitlines()[0] == f"hello from static glibc: argc=2 argv[0]={tmp_path / 'hello'}"
    assert "from the archive" in proc.stdout and "1.5 * argc = 3.000" in proc.stdout
    assert "malloc 64 MiB: ok" in proc.stdout
    assert proc.returncode == 7, proc.stderr


def test_profile_says_where_the_time_went(shimtest: Path) -> None:
    needs_kvm()
    proc = run("--profile", shimtest, "4")
    assert proc.returncode == 4
    assert re.search(r"unik-hvt profile: \d+ system calls in \d+ ms since the runtime started", proc.stderr)
    assert re.search(r"\n  exit_group 1\n", proc.stderr), proc.stderr
    assert re.search(r"unik-hvt profile: [\d.]+ ms from the monitor's start to the guest's exit: [\d.]+ ms loading "
                     r"the ELF and creating the VM, [\d.]+ ms in the guest", proc.stderr)
    assert re.search(r"\n  console \d+ \([\d.]+ ms\)\n", proc.stderr), proc.stderr


def test_the_clocks_need_no_system_call(tmp_path: Path) -> None:
    """glibc finds the runtime's vDSO (AT_SYSINFO_EHDR): 100,000 clock reads, no clock_gettime trap."""
    needs_kvm()
    obj = tmp_path / "clocks.o"
    subprocess.run(["gcc", "-O2", "-c", str(GUEST_DIR / "clocks.c"), "-o", str(obj)], check=True)
    link([obj], None, tmp_path / "clocks")
    proc = run("--profile", tmp_path / "clocks")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["monotonic went back 0 times", "gettimeofday, CLOCK_REALTIME and time agree: 1",
                                        "a 20 ms sleep took at least 20 ms: 1", "CPU time: 1"]
    calls = dict(re.findall(r"\n  (\w+) (\d+)(?=\n)", proc.stderr))
    assert int(calls.get("clock_gettime", 0)) <= 2, proc.stderr  # the CPU-time clock, not in the vDSO
