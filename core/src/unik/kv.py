"""Key/value store implementations that ship with the core."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

from . import runtime
from .devices import EntryKind
from .errors import DeviceClosed, KeyNotFound, NotAValue


def _normalise(key: str) -> str:
    parts = [p for p in PurePosixPath("/" + key).parts[1:] if p not in ("", ".")]
    if ".." in parts:
        raise KeyNotFound(key)
    return "/".join(parts)


class BakedKVRO:
    """A :class:`unik.devices.KVRO` over files baked into the artifact.

    The files live under ``directory`` (relative to the artifact root); keys are their
    relative paths.  Contents are read on demand, so large stores cost no memory.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._closed = False

    @classmethod
    async def connect(cls, directory: str) -> BakedKVRO:
        """Open the store baked at ``directory``."""
        return cls(runtime.artifact_path(directory))

    async def disconnect(self) -> None:
        """Close the store."""
        self._closed = True

    def _path(self, key: str) -> Path:
        if self._closed:
            raise DeviceClosed("key/value store is disconnected")
        rel = _normalise(key)
        return self._root / rel if rel else self._root

    def _value(self, key: str) -> Path:
        path = self._path(key)
        if path.is_dir():
            raise NotAValue(key)
        if not path.is_file():
            raise KeyNotFound(key)
        return path

    async def exists(self, key: str) -> EntryKind | None:
        """What ``key`` names, or ``None``."""
        try:
            path = self._path(key)
        except KeyNotFound:
            return None
        if path.is_dir():
            return EntryKind.DICTIONARY
        return EntryKind.VALUE if path.is_file() else None

    async def get(self, key: str) -> bytes:
        """The value of ``key``."""
        return self._value(key).read_bytes()

    async def get_partial(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``."""
        with open(self._value(key), "rb") as f:
            f.seek(offset)
            return f.read(length)

    async def list(self, key: str = "") -> list[tuple[str, EntryKind]]:
        """Entries directly under ``key``."""
        path = self._path(key)
        if not path.exists() and path == self._root:
            return []  # a store baked from an empty directory
        if path.is_file():
            raise NotAValue(key)
        if not path.is_dir():
            raise KeyNotFound(key)
        return [
            (e.name, EntryKind.DICTIONARY if e.is_dir() else EntryKind.VALUE)
            for e in sorted(os.scandir(path), key=lambda e: e.name)
        ]

    async def size(self, key: str) -> int:
        """Length of the value."""
        return self._value(key).stat().st_size

    async def last_modified(self, key: str) -> int:
        """Modification time in nanoseconds."""
        return self._value(key).stat().st_mtime_ns

    async def digest(self, key: str) -> bytes:
        """SHA-256 of the value."""
        h = hashlib.sha256()
        with open(self._value(key), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 16), b""):
                h.update(chunk)
        return h.digest()
