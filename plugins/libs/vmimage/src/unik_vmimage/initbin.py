"""The static init program (``init/init.c``): built into the wheel, or compiled on demand.

A wheel carries ``unik_vmimage/init/unik-init``, compiled by ``setup.py``.  A source
checkout installed in editable mode may lack it: then it is compiled once with the
host's C compiler into ``~/.cache/unik/init/<source digest>/``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from unik.cache import cache_dir
from unik.errors import BuildError

HERE = Path(__file__).parent / "init"
SOURCE = HERE / "init.c"
BINARY = HERE / "unik-init"
CFLAGS = ["-static", "-Os", "-Wall", "-Wextra", "-Werror", "-s"]


def compile_init(out: Path, source: Path = SOURCE) -> Path:
    """Compile ``source`` into the static executable ``out``."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise BuildError("no C compiler to build unik-init (install gcc, or a unik-lib-vmimage wheel)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    proc = subprocess.run([cc, *CFLAGS, "-o", str(tmp), str(source)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"compiling {source} failed (static glibc or musl is needed):\n{proc.stderr}")
    tmp.replace(out)
    return out


def init_binary() -> Path:
    """The init executable for images: the packaged one if current, else a cached build."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    stamp = HERE / "unik-init.source"
    if BINARY.is_file() and (not stamp.is_file() or stamp.read_text().strip() == digest):
        return BINARY
    cached = cache_dir() / "init" / digest / "unik-init"
    if not cached.is_file():
        compile_init(cached)
    return cached
