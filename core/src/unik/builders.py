"""The installed distributions that build an artifact, and a cheap way to tell that one changed.

An artifact is made by more than the files it carries (:func:`unik.bundle.runtime_inputs`):
the target's emitter and runner, the VM toolkit's image builder, the C sources an hvt
image compiles and the headers they include, the core's code generator.  :func:`find`
lists the distributions of a plan and what they require (the target's with them), each
with its version and, for an editable install, its source directory.  A staleness check
compares :func:`stamp` (the versions, the stat of every file of an editable source tree —
a few hundred ``stat`` calls — or of an installed wheel's ``RECORD``) and, when that
changed, :func:`digest` (the versions and the content of those files, or the ``RECORD``
that holds a wheel's files' digests: a file touched but unchanged rebuilds nothing).

The ``*.dist-info`` directories on ``sys.path`` are read directly (name, version,
``Requires-Dist``, PEP 610's ``direct_url.json``): importlib.metadata and packaging are
not imported on the way to running a fresh build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .cache import stat_stamp
from .version import DISTRIBUTION

#: Distributions whose own requirements are not followed: the core's are its composer's
#: (pluggy, packaging), which shape no artifact and run in none.
NOT_FOLLOWED = {DISTRIBUTION}

#: What a walk of an editable source tree leaves out: caches and build products of tools.
_SKIP_DIRS = {"__pycache__", "build", "dist", "_build", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_REQUIREMENT = re.compile(r"^Requires-Dist:\s*([A-Za-z0-9][A-Za-z0-9._-]*)(.*)$", re.MULTILINE)
_EXTRA = re.compile(r";.*\bextra\s*==")


def normalise(name: str) -> str:
    """A distribution name in PEP 503 normal form."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True, order=True)
class Installed:
    """One installed distribution as far as building goes."""

    name: str
    version: str
    #: The project directory of an editable install (PEP 660), else ``None``.
    source: str | None = None
    #: Its ``*.dist-info`` directory, whose ``RECORD`` lists a wheel's files with their digests.
    info: str = ""


def _dist_infos() -> dict[str, Path]:
    """Each distribution's ``*.dist-info`` directory on ``sys.path`` (the first one, as imports see it)."""
    found: dict[str, Path] = {}
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as it:
                names = sorted(e.name for e in it if e.name.endswith(".dist-info"))
        except OSError:  # a zip file, or nothing
            continue
        for name in names:
            found.setdefault(normalise(name[: -len(".dist-info")].partition("-")[0]), Path(entry or ".", name))
    return found


def _header(metadata: str, field: str) -> str:
    match = re.search(rf"^{field}:\s*(.*)$", metadata, re.MULTILINE)
    return match.group(1).strip() if match else ""


def _editable_source(info: Path) -> str | None:
    """The directory PEP 610's ``direct_url.json`` names for an editable install."""
    try:
        data = json.loads((info / "direct_url.json").read_text())
    except (OSError, ValueError):
        return None
    if not (isinstance(data, dict) and isinstance(data.get("dir_info"), dict) and data["dir_info"].get("editable")):
        return None
    url = str(data.get("url", ""))
    if not url.startswith("file://"):
        return None
    path = url[len("file://"):]
    if "%" in path:  # quoted characters: rare, and urllib.parse is not otherwise imported by a run
        from urllib.parse import unquote

        path = unquote(path)
    return path


def find(names: Iterable[str]) -> list[Installed]:
    """``names`` and the distributions they require (without extras), as installed here, sorted.

    A name that is not installed is left out: the run-time files' listing says so
    (:func:`unik.bundle.distribution_closure`) when it matters.
    """
    infos = _dist_infos()
    seen: dict[str, Installed] = {}
    todo = [normalise(n) for n in names if n]
    while todo:
        name = todo.pop()
        if name in seen or name not in infos:
            continue
        info = infos[name]
        try:
            metadata = (info / "METADATA").read_text(errors="replace")
        except OSError:
            continue
        # The headers end at the first blank line; the description after it may quote anything.
        headers = metadata.split("\n\n", 1)[0]
        seen[name] = Installed(name, _header(headers, "Version"), _editable_source(info), str(info))
        if name not in NOT_FOLLOWED:
            todo += [normalise(m.group(1)) for m in _REQUIREMENT.finditer(headers) if not _EXTRA.search(m.group(2))]
    return sorted(seen.values())


def _source_files(source: str) -> Iterator[Path]:
    """Every file of an editable install's code: ``src/`` when the project has one, sorted."""
    root = Path(source, "src")
    if not root.is_dir():
        root = Path(source)
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")
                         and not d.endswith(".egg-info"))
        for f in sorted(files):
            if not f.endswith((".pyc", ".pyo")):
                yield Path(top, f)


def stamp(installed: Iterable[Installed]) -> list[list[object]]:
    """``[name==version]`` of each, then :func:`unik.cache.stat_stamp` of its files.

    An editable one's source files; an installed wheel's ``RECORD`` (rewritten when the
    wheel is installed again, even at the same version).
    """
    out: list[list[object]] = []
    for dist in installed:
        out.append([f"{dist.name}=={dist.version}"])
        if dist.source is not None:
            out += stat_stamp(_source_files(dist.source))
        elif dist.info:
            out += stat_stamp([Path(dist.info, "RECORD")])
    return out


def stamps_by_name(installed: Iterable[Installed]) -> dict[str, str]:
    """Each distribution's :func:`stamp`, condensed to a short digest, by name: what changed, for messages."""
    return {dist.name: hashlib.sha256(json.dumps(stamp([dist])).encode()).hexdigest()[:16] for dist in installed}


def digest(installed: Iterable[Installed]) -> str:
    """A SHA-256 of each one's name and version and of its files' content.

    An editable one's source files, read; an installed wheel's ``RECORD``, which holds
    the digest of each of its files (PEP 376, PEP 627).
    """
    h = hashlib.sha256()
    for dist in installed:
        h.update(f"{dist.name}=={dist.version}\0".encode())
        if dist.source is not None:
            files = [(path.relative_to(dist.source).as_posix(), path) for path in _source_files(dist.source)]
        else:
            files = [("RECORD", Path(dist.info, "RECORD"))] if dist.info else []
        for rel, path in files:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()
