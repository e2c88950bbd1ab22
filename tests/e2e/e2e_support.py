"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

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
