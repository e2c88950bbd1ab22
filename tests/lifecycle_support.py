"""What the life-cycle tests of every target share: the kv example held open, the state dir, the disk checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from example_support import copy_example
from host_tools import missing

UNIK = str(Path(sys.executable).with_name("unik"))


def held_kv(dest: Path) -> Path:
    """examples/kv whose store is flushed only when disconnected (``sync = false``), with a blank 16 MiB disk.

    Its writes then reach the disk only through a graceful stop: a kill loses them,
    which is what makes a clean disk after ``unik stop`` a test of the stop.
    """
    root = copy_example("kv", dest)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text().replace('file = "disk.img"\n', "")
    text = text.replace("format_if_blank = true", "format_if_blank = true\nsync = false")
    assert "sync = false" in text
    pyproject.write_text(text)
    with open(root / "disk.img", "wb") as f:
        f.truncate(16 << 20)
    return root


def built_held_kv(dest: Path, target: str) -> Path:
    """:func:`held_kv` configured and built for ``target`` (with the state directory ``dest/state``)."""
    root = held_kv(dest)
    unik(root, "configure", "-t", target, state=root / "state")
    unik(root, "build", state=root / "state")
    return root


def blank_disk(app: Path, name: str) -> Path:
    """A blank 16 MiB disk image ``name`` in ``app``."""
    disk = app / name
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    return disk


def instances(app: Path, state: Path) -> dict[str, dict[str, object]]:
    """``unik ps --json``, by instance name."""
    return {i["name"]: i for i in json.loads(unik(app, "ps", "--json", state=state).stdout)}


def unik(cwd: Path, *args: str, state: Path, check: bool = True, timeout: float = 300,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``unik`` with ``XDG_STATE_HOME=state`` (and ``env`` added to the environment)."""
    proc = subprocess.run([UNIK, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, XDG_STATE_HOME=str(state), **(env or {})))
    if check and proc.returncode != 0:
        raise AssertionError(f"unik {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def wait_for_log(cwd: Path, name: str, text: str, state: Path, timeout: float) -> str:
    """``unik logs NAME`` once it contains ``text`` (an AssertionError with the log after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    log = ""
    while time.monotonic() < deadline:
        log = unik(cwd, "logs", name, state=state).stdout
        if text in log:
            return log
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in the log of {name} after {timeout} s:\n{log}")


def fat_tools_missing() -> str | None:
    """Why the disk checks cannot run (``None``: fsck.fat and mtools are there)."""
    return missing("fsck.fat", "mtype", "mdir")


def fsck_clean(disk: Path) -> str:
    """``fsck.fat -n`` output, asserting the filesystem is clean."""
    proc = subprocess.run(["fsck.fat", "-n", str(disk)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def mtype(disk: Path, path: str) -> str:
    """A file of the FAT image, read by mtools."""
    proc = subprocess.run(["mtype", "-i", str(disk), f"::{path}"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def on_disk(disk: Path, path: str) -> bool:
    """Whether mtools finds ``path`` in the FAT image."""
    proc = subprocess.run(["mtype", "-i", str(disk), f"::{path}"], capture_output=True, timeout=60,
                          env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    return proc.returncode == 0


def mdir(disk: Path, path: str) -> str:
    """``mdir -b`` of a FAT image directory (its entries' paths)."""
    proc = subprocess.run(["mdir", "-b", "-i", str(disk), f"::{path}"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
