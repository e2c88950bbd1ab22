"""Key/value store implementations that ship with the core."""

from __future__ import annotations

import os

from . import runtime
from .devices import EntryKind
from .errors import DeviceClosed, KeyNotFound, NotAValue


def _normalise(key: str) -> str:
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise KeyNotFound(key)
    return "/".join(parts)


class BakedKVRO:
    """A :class:`unik.devices.KVRO` over files baked into the artifact.

    The files live under ``directory`` (relative to the artifact root); keys are their
    relative paths.  Contents are read on demand, so large stores cost no memory.  Paths
    are strings, as in :mod:`unik.runtime`.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = os.fspath(root)
        self._closed = False

    @classmethod
    async def connect(cls, directory: str) -> BakedKVRO:
        """Open the store baked at ``directory``."""
        return cls(runtime.artifact_path(directory))

    async def disconnect(self) -> None:
        """Close the store."""
        self._closed = True

    def _path(self, key: str) -> str:
        if self._closed:
            raise DeviceClosed("key/value store is disconnected")
        rel = _normalise(key)
        return os.path.join(self._root, rel) if rel else self._root

    def _value(self, key: str) -> str:
        path = self._path(key)
        if os.path.isdir(path):
            raise NotAValue(key)
        if not os.path.isfile(path):
            raise KeyNotFound(key)
        return path

    async def exists(self, key: str) -> EntryKind | None:
        """What ``key`` names, or ``None``."""
        try:
            path = self._path(key)
        except KeyNotFound:
            return None
        if os.path.isdir(path):
            return EntryKind.DICTIONARY
        return EntryKind.VALUE if os.path.isfile(path) else None

    async def get(self, key: str) -> bytes:
        """The value of ``key``."""
        with open(self._value(key), "rb") as f:
            return f.read()

    async def get_partial(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``."""
        with open(self._value(key), "rb") as f:
            f.seek(offset)
            return f.read(length)

    async def list(self, key: str = "") -> list[tuple[str, EntryKind]]:
        """Entries directly under ``key``."""
        path = self._path(key)
        if not os.path.exists(path) and path == self._root:
            return []  # a store baked from an empty directory
        if os.path.isfile(path):
            raise NotAValue(key)
        if not os.path.isdir(path):
            raise KeyNotFound(key)
        return [
            (e.name, EntryKind.DICTIONARY if e.is_dir() else EntryKind.VALUE)
            for e in sorted(os.scandir(path), key=lambda e: e.name)
        ]

    async def size(self, key: str) -> int:
        """Length of the value."""
        return os.stat(self._value(key)).st_size

    async def last_modified(self, key: str) -> int:
        """Modification time in nanoseconds."""
        return os.stat(self._value(key)).st_mtime_ns

    async def digest(self, key: str) -> bytes:
        """SHA-256 of the value."""
        import hashlib  # on first use: it loads six hash modules

        h = hashlib.sha256()
        with open(self._value(key), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 16), b""):
                h.update(chunk)
        return h.digest()
