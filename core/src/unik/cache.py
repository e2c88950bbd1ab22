"""unik's cache directory, and what its caches are written and checked with.

A cache entry is written whole (through a temporary file and a rename, so runs in
parallel never see half of one) and keyed on a *stamp*: the stat of what it was made
from, which a later run compares before trusting it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/unik`` (``~/.cache/unik``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "unik"


def write_atomic(path: Path, text: str) -> None:
    """Write ``path`` (and its directory) through a per-process temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def metadata_stamp() -> list[list[Any]]:
    """What installing, removing or upgrading a distribution changes, cheaply read.

    ``sys.path`` itself, and ``[path, mtime_ns, size, inode]`` of every ``*.dist-info``
    and ``*.egg-info`` entry of its directories and of their ``entry_points.txt``
    (``[path]`` when missing).  Caches of what importlib.metadata says compare it.
    """
    stamp: list[list[Any]] = []
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as it:
                names = sorted(e.name for e in it if e.name.endswith((".dist-info", ".egg-info")))
        except OSError:  # a zip file, or nothing
            names = []
        stamp.append([entry])
        for name in names:
            stamp += stat_stamp([os.path.join(entry, name), os.path.join(entry, name, "entry_points.txt")])
    return stamp


def stat_stamp(paths: Iterable[str | Path]) -> list[list[Any]]:
    """``[path, mtime_ns, size, inode]`` of each path (``[path]`` when it is missing)."""
    out: list[list[Any]] = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append([str(path), st.st_mtime_ns, st.st_size, st.st_ino])
        except OSError:
            out.append([str(path)])
    return out


def settled(stamp: list[list[Any]], margin_ns: int = 2_000_000_000) -> bool:
    """Whether nothing in ``stamp`` changed within ``margin_ns``: a later change shows.

    A file rewritten within its timestamp's tick (milliseconds) could keep its mtime
    and size; a cache keyed on a stamp with such young entries is not written.
    """
    limit = time.time_ns() - margin_ns
    return all(item[1] < limit for item in stamp if len(item) > 1)
