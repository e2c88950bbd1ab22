"""The guest kernel is pinned in the project's unik.lock: recorded by the first build, used exactly after."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from unik.cache import cache_dir
from unik.lockfile import LockFile
from vm_support import UNIK


def _build(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([UNIK, "build", *args], cwd=root, capture_output=True, text=True, timeout=600)


@pytest.fixture
def locked_copy(hello_app: Path, tmp_path: Path) -> Path:
    """A copy of the built examples/hello with its unik.lock (a build of the copy runs no compose)."""
    root = tmp_path / "hello"
    shutil.copytree(hello_app, root, symlinks=True, ignore=shutil.ignore_patterns("dist"))
    return root


def test_the_first_build_pins_the_kernel_it_used(hello_app: Path) -> None:
    pin = LockFile(hello_app).get("kernel", "debian")
    assert pin is not None and set(pin) == {"package", "version", "sha256"}
    assert re.fullmatch(r"[0-9a-f]{64}", pin["sha256"])
    cached = json.loads((cache_dir() / "kernels" / "debian" / f"{pin['package']}_{pin['version']}"
                         / "kernel.json").read_text())
    assert cached["sha256"] == pin["sha256"]
    manifest = json.loads(next((hello_app / "dist").glob("*-virtio/artifact.json")).read_text())["manifest"]
    assert manifest["kernel"]["version"] == cached["release"]
    assert (hello_app / "unik.lock").read_text().startswith("# unik.lock:")


def test_a_pinned_kernel_that_is_gone_is_an_error_naming_the_update(locked_copy: Path) -> None:
    lock = LockFile(locked_copy)
    pin = lock.get("kernel", "debian")
    assert pin is not None
    lock.set("kernel", "debian", dict(pin, version="0.0.0-1"))
    failed = _build(locked_copy)
    assert failed.returncode == 1
    assert (f"unik.lock pins the guest kernel {pin['package']} 0.0.0-1, which cannot be fetched any more"
            in failed.stderr)
    assert "run `unik build --update-kernel`" in failed.stderr and "Traceback" not in failed.stderr
    assert not list((cache_dir() / "kernels" / "debian").glob("*_0.0.0-1*"))  # nothing half-fetched stays

    updated = _build(locked_copy, "--update-kernel")
    assert updated.returncode == 0, updated.stderr
    assert "updated the guest kernel in" in updated.stderr
    assert lock.get("kernel", "debian") == pin


def test_a_kernel_whose_digest_changed_is_refused(locked_copy: Path) -> None:
    lock = LockFile(locked_copy)
    pin = lock.get("kernel", "debian")
    assert pin is not None
    lock.set("kernel", "debian", dict(pin, sha256="0" * 64))
    failed = _build(locked_copy)
    assert failed.returncode == 1
    assert f"is not the package unik.lock pins (sha256 {'0' * 64}" in failed.stderr
    assert lock.get("kernel", "debian") == dict(pin, sha256="0" * 64)  # the lock is left as it was
