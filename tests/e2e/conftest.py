from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from e2e_support import UNIK, Unik


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
