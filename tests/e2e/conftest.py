from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIK = str(Path(sys.executable).with_name("unik"))

Unik = Callable[..., subprocess.CompletedProcess[str]]


def copy_example(name: str, dest: Path) -> Path:
    """A private copy of ``examples/<name>`` (without build outputs)."""
    target = dest / name
    shutil.copytree(
        REPO / "examples" / name, target,
        ignore=shutil.ignore_patterns("_build", "dist", "*.egg-info", "__pycache__"),
    )
    return target


@pytest.fixture
def unik() -> Unik:
    """Run the real `unik` command: ``unik(*args, cwd=..., check=True, timeout=..., env={...})``."""

    def run(
        *args: str, cwd: Path, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([UNIK, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, **(env or {})))
        if check and proc.returncode != 0:
            raise AssertionError(f"unik {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run
