"""System calls without a trap: libc's wrappers call the runtime directly (hvt/direct.c, ``ld --wrap``)."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

from hvt_support import GUEST_DIR, MONITOR, needs_kvm, run
from unik_solo5.hvtfs import FsFile, link, pack


def direct_guest(tmp: Path) -> Path:
    """guest/direct.c linked against glibc, the runtime and an archive holding /etc/motd (17 bytes)."""
    obj = tmp / "direct.o"
    subprocess.run(["gcc", "-O2", "-c", str(GUEST_DIR / "direct.c"), "-o", str(obj)], check=True)
    link([obj], pack({"/etc/motd": FsFile(b"from the archive\n")}), tmp / "direct")
    return tmp / "direct"


def test_calls_are_served_without_a_trap_as_linux_answers_them(tmp_path: Path) -> None:
    needs_kvm()
    proc = run("--profile", direct_guest(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["1000 opens, stats, seeks, reads and closes: ok",
                                        "open of a missing file: -1 No such file or directory",
                                        "read of a closed descriptor: -1 Bad file descriptor",
                                        "isatty(1): 0, getpid: 1", "sigaction's queries: ok ok ok ok"]
    found = re.search(r"(\d+) system calls in .* (\d+) of them direct", proc.stderr)
    assert found, proc.stderr
    # 6,000 calls of the loop, all direct; glibc's start-up and stdio still trap (brk, exit_group...)
    assert int(found.group(2)) >= 6000 and int(found.group(1)) - int(found.group(2)) < 100, proc.stderr


def test_trace_still_sees_every_call(tmp_path: Path) -> None:
    needs_kvm()
    proc = run("--trace", direct_guest(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert len(re.findall(r" newfstatat\(", proc.stderr)) >= 2000, proc.stderr[-2000:]


def test_a_stop_signal_reaches_a_guest_that_makes_only_direct_calls(tmp_path: Path) -> None:
    needs_kvm()
    guest = direct_guest(tmp_path)
    proc = subprocess.Popen([str(MONITOR), str(guest), "loop"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(6)]
        assert lines[-1] == "looping\n", lines
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert out == "SIGTERM delivered during direct calls\n" and proc.returncode == 0, err


def test_a_signal_action_query_makes_no_trap_and_setting_one_does(tmp_path: Path) -> None:
    needs_kvm()
    proc = run("--profile", direct_guest(tmp_path))
    assert proc.returncode == 0, proc.stderr
    # two set (SIGTERM's handler, then SIG_DFL) and trap; three queries (SIGTERM, SIGUSR1, 65) do not; glibc
    # answers 32 itself
    assert re.search(r"\n  rt_sigaction 5 \(3 direct\)\n", proc.stderr), proc.stderr
