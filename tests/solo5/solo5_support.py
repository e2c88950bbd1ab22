"""Helpers of the spt tests: tiny applications, the unik command, skip reasons."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from example_support import write_app

UNIK = str(Path(sys.executable).parent / "unik")
TIMEOUT = 60


def missing() -> str | None:
    """Why the sandbox cannot run here, or None."""
    if os.geteuid() != 0:
        return "the spt tender needs root (namespaces, TAP devices)"
    if "Seccomp:" not in Path("/proc/self/status").read_text():
        return "the kernel has no seccomp (no Seccomp: line in /proc/self/status)"
    for ns in ("pid", "mnt", "net", "ipc", "uts"):
        if not Path(f"/proc/self/ns/{ns}").exists():
            return f"the kernel has no {ns} namespaces"
    unshare = shutil.which("unshare")
    if unshare:
        probe = subprocess.run([unshare, "-p", "-f", "-m", "-n", "-i", "-u", "true"], capture_output=True)
        if probe.returncode != 0:
            return f"cannot create namespaces here: {probe.stderr.decode().strip()}"
    return None


def need_sandbox() -> None:
    """Skip the test, naming what is missing, when the sandbox cannot run."""
    why = missing()
    if why:
        pytest.skip(why)


def make_app(root: Path, name: str, body: str, *, params: str = "console: Console",
             header: str = "", imports: str = "Console") -> Path:
    """An application ``name`` whose ``start(params)`` runs ``body``."""
    source = (
        f"from unik.devices import {imports}\n{textwrap.dedent(header)}\n\n"
        f"async def start({params}) -> object:\n{textwrap.indent(textwrap.dedent(body), '    ')}\n"
    )
    return write_app(root, name, source, package=name.replace("-", "_"))


def unik(app: Path, *args: str, timeout: float = TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the unik command in ``app``."""
    proc = subprocess.run([UNIK, *args], cwd=app, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"unik {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def build(app: Path) -> None:
    """Configure and build ``app`` for spt."""
    unik(app, "-q", "configure", "-t", "spt")
    unik(app, "-q", "build")


def sandboxed_pid(marker: str) -> int:
    """The pid of the Python process running the artifact whose path contains ``marker``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline[0].endswith(b"unik-spt"):  # the tender, not the application
            continue
        if any(marker.encode() in part and part.endswith(b"__spt__.py") for part in cmdline):
            return int(entry.name)
    raise AssertionError(f"no process runs {marker}")
