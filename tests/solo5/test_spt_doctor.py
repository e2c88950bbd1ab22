"""``unik doctor -t spt``: seccomp and namespaces probed for real, in a child process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from unik.cli import main
from unik_solo5 import doctor


def unprivileged(what: str) -> subprocess.CompletedProcess[str]:
    """The probe as user nobody (through setpriv, with the system's Python: the venv's may be private)."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or shutil.which("setpriv") is None or python is None:
        pytest.skip("needs root and setpriv (util-linux) to run the probe as another user")
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-I", "-S", "-c",
                           doctor.PROBE, what], capture_output=True, text=True, timeout=30)


def test_namespaces_without_root_are_refused_and_said_so() -> None:
    proc = unprivileged("namespaces")
    assert proc.returncode == 1
    assert proc.stdout.strip() == "unshare(PID, mount, network, IPC, UTS): Operation not permitted"


def test_a_seccomp_filter_installs_without_root() -> None:
    proc = unprivileged("seccomp")
    assert (proc.returncode, proc.stdout.strip()) == (0, "ok"), proc.stderr


def test_a_kernel_without_seccomp_is_named(tmp_path: Path) -> None:
    checks = {c.name.split(" (")[0]: c for c in doctor.doctor_checks(tmp_path)}
    seccomp = checks["seccomp filters"]
    assert not seccomp.ok and seccomp.required
    assert seccomp.detail == f"{tmp_path}/proc/sys/kernel/seccomp/actions_avail is missing: the kernel has no seccomp"
    (tmp_path / "proc/sys/kernel/seccomp").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/seccomp/actions_avail").write_text("kill_thread errno allow\n")
    seccomp = {c.name.split(" (")[0]: c for c in doctor.doctor_checks(tmp_path)}["seccomp filters"]
    assert seccomp.detail == "the kernel lacks the actions kill_process, trap"
    (tmp_path / "proc/sys/kernel/yama").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/yama/ptrace_scope").write_text("3\n")
    ptrace = {c.name.split(" (")[0]: c for c in doctor.doctor_checks(tmp_path)}["the tender may trace its child"]
    assert not ptrace.ok and ptrace.detail == "kernel.yama.ptrace_scope = 3"


def test_the_real_host(capfd: pytest.CaptureFixture[str]) -> None:
    status = main(["doctor", "-t", "spt"])
    out = capfd.readouterr().out
    assert out.startswith("spt:\n")
    assert "] seccomp filters (the allowlist): " in out and "the tender unik-spt" in out
    if os.geteuid() == 0 and sys.platform == "linux":
        assert status == 0, out
        assert "[ok] PID, mount, network, IPC and UTS namespaces (the tender and the sandbox make them): " \
               "created in a probe" in out
        assert "--mem as a memory cgroup (resident memory; RLIMIT_AS is set in any case): cgroup v" in out
