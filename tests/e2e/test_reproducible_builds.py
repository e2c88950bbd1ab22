"""The same sources give the same artifact wherever the project is (issue 14: OCI digests depend on it).

examples/http is copied into two directories of different names and depths and built for
unix, virtio and xen in each, with the same ``SOURCE_DATE_EPOCH``: every file of each
target's artifact directory has the same digest in both, no artifact names either
directory, and the archives' entries carry ``SOURCE_DATE_EPOCH`` as their time.
(C extensions compiled in two directories are compared in tests/core/test_reproducible_elf.py.)
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from e2e_support import UNIK
from example_support import copy_example, missing_vm_tools

EPOCH = 1_700_000_000  # 2023-11-14 22:13:20 UTC
TARGETS = ["unix", "virtio", "xen"]


def _build(root: Path, target: str) -> Path:
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
    # gzip: the initramfs's own header carries a time too (zstd's does not)
    extra = ["--initramfs-compression", "gzip"] if target != "unix" else []
    for args in (["configure", "-t", target, *extra], ["build"]):
        proc = subprocess.run([UNIK, *args], cwd=root, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"unik {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return root / "dist" / f"http-{target}"


def _digests(artifact: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(artifact.iterdir()) if p.is_file()}


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("target", TARGETS)
def test_http_builds_the_same_from_two_directories(target: str, tmp_path: Path) -> None:
    if target != "unix" and (why := missing_vm_tools()):
        pytest.skip(f"{target} images need QEMU and apt: {why}")
    one = _build(copy_example("http", tmp_path / "first"), target)
    two = _build(copy_example("http", tmp_path / "somewhere" / "else" / "second"), target)
    first, second = _digests(one), _digests(two)
    assert first == second, {name: (first.get(name), second.get(name)) for name in first.keys() | second.keys()
                             if first.get(name) != second.get(name)}
    for path in one.iterdir():
        data = path.read_bytes()
        if path.suffix == ".gz" or path.name.startswith("initramfs"):
            assert data[4:8] == EPOCH.to_bytes(4, "little"), "the gzip header's time"
            data = gzip.decompress(data)
            # newc headers: "070701" then 13 hex fields, the sixth the entry's mtime
            assert data[:6] == b"070701" and int(data[6 + 5 * 8:6 + 6 * 8], 16) == EPOCH
        for directory in (tmp_path / "first", tmp_path / "somewhere"):
            assert str(directory).encode() not in data, f"{path.name} names {directory}"
    if target == "unix":
        with zipfile.ZipFile(one / "http.pyz") as zf:
            assert {i.date_time for i in zf.infolist()} == {time.gmtime(EPOCH)[:6]}
            assert any(n.endswith(".so") for n in zf.namelist())
