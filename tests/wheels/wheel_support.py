"""Helpers for the wheel tests: a wheelhouse of this checkout, built once and cached.

The wheelhouse (the wheels of the core, unik-lib-fdio and the unix plugin, plus their
third-party dependencies and setuptools, made by ``tools/wheelhouse.py``, as ``make
wheels`` does) lives in ``build/test-wheelhouse/<digest>/``, where the digest covers the sources it is
built from and the Python version.  A file lock makes concurrent pytest-xdist workers
build it once; a changed source tree gets a new directory, and directories unused for
an hour are removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DISTS = ("core", "plugins/libs/fdio", "plugins/unix")
TOOL = REPO / "tools" / "wheelhouse.py"
CACHE = REPO / "build" / "test-wheelhouse"
_SKIP_DIRS = {"build", "dist", "_build", "__pycache__", ".pytest_cache", ".mypy_cache"}
_SKIP_SUFFIXES = {".so", ".pyc"}
STALE_SECONDS = 3600


@dataclass(frozen=True)
class Wheelhouse:
    """A directory of wheels, and which of them are ours."""

    path: Path
    core: Path
    fdio: Path
    unix: Path


def _source_digest() -> str:
    """Return a digest of every file the wheelhouse is built from, and of this Python's version."""
    h = hashlib.sha256(sys.version.encode())
    for path in [TOOL, *(REPO / d for d in DISTS)]:
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*")
            if p.is_file() and p.suffix not in _SKIP_SUFFIXES
            and not any(part in _SKIP_DIRS or part.endswith(".egg-info") for part in p.relative_to(path).parts)
        )
        for f in files:
            h.update(str(f.relative_to(REPO)).encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def _ours(path: Path) -> Wheelhouse:
    (core,) = path.glob("unik_core-*.whl")
    (fdio,) = path.glob("unik_lib_fdio-*.whl")
    (unix,) = path.glob("unik_target_unix-*.whl")
    return Wheelhouse(path, core, fdio, unix)


def cached_wheelhouse() -> Wheelhouse:
    """Return the cached wheelhouse of this checkout, building it on first use."""
    CACHE.mkdir(parents=True, exist_ok=True)
    final = CACHE / _source_digest()
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; the others wait, then reuse its result
        if not (final / ".complete").exists():
            tmp = CACHE / f"{final.name}.tmp{os.getpid()}"
            proc = subprocess.run([sys.executable, str(TOOL), "--out", str(tmp), *DISTS],
                                  cwd=REPO, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                pytest.fail(f"tools/wheelhouse.py failed:\n{proc.stdout}\n{proc.stderr}")
            (tmp / ".complete").touch()
            tmp.rename(final)
        final.touch()
        for old in CACHE.iterdir():  # stale builds; not the ones a concurrent run may still use
            if old.is_dir() and old != final and time.time() - old.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
    return _ours(final)


def offline_pip_env(wheelhouse: Path, **extra: str) -> dict[str, str]:
    """Return an environment in which pip sees ``wheelhouse`` and nothing else: no index, no config."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") and k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse),
               PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def run(cmd: list[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; fail the test with its output unless it exits 0."""
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc
