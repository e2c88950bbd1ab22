"""``unik doctor -t spt``: what sealing an application in the spt sandbox needs from this host.

Required: an x86_64 host (the allowlist is written for its system calls), the tender and
the sandbox extension this distribution builds, seccomp filters with the actions the
policy uses (``kill_process``, ``trap``, ``errno``), tracing of its own child by the tender
(Yama's ``ptrace_scope`` below 3), and the right to create PID, mount, network,
IPC and UTS namespaces: the tender and the sandbox make them without a user namespace,
so that needs root (CAP_SYS_ADMIN).  The last two are probed for real, in a child process
that does what the sandbox does with an allow-everything filter.  Optional: the TUN
device, for ``--net DEVICE=TAP``.
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
from pathlib import Path

from unik.doctor import tun_device
from unik.target import Check

from .target import TENDER

#: The seccomp actions the policy returns (policy.py): refused calls are trapped, bad arches
#: killed, clone3 answered ENOSYS.
ACTIONS = ("kill_process", "trap", "errno")

#: Run by ``python -I -S -c`` in a child: ``namespaces`` or ``seccomp``, as the sandbox does them.
PROBE = r"""
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
def fail(step):
    print(f"{step}: {os.strerror(ctypes.get_errno())}")
    sys.exit(1)
if sys.argv[1] == "namespaces":
    # CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if libc.unshare(ctypes.c_int(0x20000000 | 0x00020000 | 0x40000000 | 0x08000000 | 0x04000000)) != 0:
        fail("unshare(PID, mount, network, IPC, UTS)")
else:
    ulong = ctypes.c_ulong
    if libc.prctl(38, ulong(1), ulong(0), ulong(0), ulong(0)) != 0:  # PR_SET_NO_NEW_PRIVS
        fail("PR_SET_NO_NEW_PRIVS")
    insn = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0x7FFF0000))  # BPF_RET SECCOMP_RET_ALLOW
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    prog = Prog(1, ctypes.addressof(insn))
    if libc.prctl(22, ulong(2), ctypes.byref(prog), ulong(0), ulong(0)) != 0:  # PR_SET_SECCOMP, FILTER
        fail("installing a seccomp filter")
print("ok")
"""


def probe(what: str) -> str | None:
    """Run the ``namespaces`` or ``seccomp`` probe in a child; why it failed, or ``None``."""
    try:
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, what], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the probe did not run: {exc}"
    if proc.returncode == 0 and proc.stdout.strip() == "ok":
        return None
    lines = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    return lines[-1] if lines else f"the probe exited with status {proc.returncode}"


def _seccomp(root: Path) -> Check:
    name = "seccomp filters (the allowlist)"
    fix = "a kernel with CONFIG_SECCOMP_FILTER; in a container, allow seccomp (docker run --security-opt ...)"
    actions_file = root / "proc/sys/kernel/seccomp/actions_avail"
    try:
        actions = actions_file.read_text().split()
    except OSError:
        return Check(name, False, f"{actions_file} is missing: the kernel has no seccomp", fix=fix)
    lacking = [a for a in ACTIONS if a not in actions]
    if lacking:
        return Check(name, False, f"the kernel lacks the actions {', '.join(lacking)}", fix=fix)
    why = probe("seccomp")
    return Check(name, why is None, why or f"a filter installs; actions {', '.join(ACTIONS)} available", fix=fix)


def _namespaces() -> Check:
    name = "PID, mount, network, IPC and UTS namespaces (the tender and the sandbox make them)"
    why = probe("namespaces")
    if why is None:
        return Check(name, True, "created in a probe")
    hint = " (not root: they are made without a user namespace, so CAP_SYS_ADMIN is needed)" \
        if os.geteuid() != 0 else ""
    return Check(name, False, f"{why}{hint}",
                 fix="run as root (sudo unik run); in a container, --cap-add SYS_ADMIN or --privileged")


def _built(module: str, what: str) -> Check:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return Check(what, False, str(exc), fix="reinstall unik-target-solo5 (its wheel, or with gcc and python3-dev)")
    return Check(what, True, "built")


def _ptrace(root: Path) -> Check:
    """The tender reads a refused call's number as its child's tracer: Yama's scope 3 forbids that."""
    name = "the tender may trace its child (to read a refused call's number from the kernel)"
    try:
        scope = (root / "proc/sys/kernel/yama/ptrace_scope").read_text().strip()
    except OSError:
        return Check(name, True, "no Yama: a parent may trace its child")
    return Check(name, scope != "3", f"kernel.yama.ptrace_scope = {scope}",
                 fix="ptrace_scope 3 cannot be lowered until reboot: boot without it (sysctl kernel.yama.ptrace_scope)")


def _memory(root: Path) -> Check:
    """Whether ``--mem`` can bound resident memory with a cgroup here (a probe made and removed)."""
    from . import memory

    name = "--mem as a memory cgroup (resident memory; RLIMIT_AS is set in any case)"
    cgroup, how = memory.make(64, f"doctor-{os.getpid()}", root=root)
    if cgroup is not None:
        cgroup.remove()
    return Check(name, cgroup is not None, how, required=False,
                 fix="run unik as root on a host with cgroup v1's memory controller, or in a cgroup v2 subtree "
                     "delegated to it with the memory controller (systemd: Delegate=yes)")


def doctor_checks(root: Path = Path("/")) -> list[Check]:
    """The spt target's host checks (``root``: where /proc, /dev and /sys are, for tests)."""
    machine = platform.machine()
    return [
        Check("x86_64 host (the allowlist names x86_64 system calls)", machine == "x86_64", machine,
              fix="run spt on an x86_64 host; elsewhere use the unix target"),
        Check("the tender unik-spt", os.access(TENDER, os.X_OK), str(TENDER) if TENDER.exists() else "missing",
              fix="reinstall unik-target-solo5 (its wheel, or with gcc installed)"),
        _built("unik_solo5._sandbox", "the sandbox extension unik_solo5._sandbox"),
        _seccomp(root),
        _ptrace(root),
        _namespaces(),
        _memory(root),
        tun_device("--net DEVICE=TAP: the tender opens an existing TAP", root),
    ]
