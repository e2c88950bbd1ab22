"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

UNIK = str(Path(sys.executable).with_name("unik"))

Unik = Callable[..., subprocess.CompletedProcess[str]]
