"""A read-only key/value store held in memory: the baked files, read before the filter.

The core's :class:`unik.kv.BakedKVRO` reads its files when asked, which the spt filter
forbids.  :func:`preload` (called by :mod:`unik_solo5.boot` before the filter) reads
every file under the artifact's ``assets/``; :class:`MemoryKVRO` serves them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from unik.devices import EntryKind
from unik.errors import DeviceClosed, KeyNotFound, NotAValue

#: ``{directory: {key: (value, mtime_ns)}}``, directory relative to the artifact root.
_STORES: dict[str, dict[str, tuple[bytes, int]]] = {}


def preload(root: Path, top: str = "assets") -> int:
    """Read every file under ``root/top/<device>/`` into memory; return the bytes read."""
    total = 0
    base = root / top
    if not base.is_dir():
        return 0
    for store in sorted(p for p in base.iterdir() if p.is_dir()):
        entries: dict[str, tuple[bytes, int]] = {}
        for path in sorted(store.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                entries[path.relative_to(store).as_posix()] = (data, path.stat().st_mtime_ns)
                total += len(data)
        _STORES[f"{top}/{store.name}"] = entries
    return total


def _normalise(key: str) -> str:
    parts = [p for p in PurePosixPath("/" + key).parts[1:] if p not in ("", ".")]
    if ".." in parts:
        raise KeyNotFound(key)
    return "/".join(parts)


class MemoryKVRO:
    """A :class:`unik.devices.KVRO` over files preloaded from the artifact."""

    def __init__(self, entries: dict[str, tuple[bytes, int]]) -> None:
        self._entries = entries
        self._dirs = {"/".join(k.split("/")[:i]) for k in entries for i in range(1, k.count("/") + 1)}
        self._closed = False

    @classmethod
    async def connect(cls, directory: str) -> MemoryKVRO:
        """The store baked at ``directory`` (empty when nothing was baked)."""
        return cls(_STORES.get(directory, {}))

    async def disconnect(self) -> None:
        """Close the store."""
        self._closed = True

    def _key(self, key: str) -> str:
        if self._closed:
            raise DeviceClosed("key/value store is disconnected")
        return _normalise(key)

    def _value(self, key: str) -> tuple[bytes, int]:
        k = self._key(key)
        if k in self._entries:
            return self._entries[k]
        if not k or k in self._dirs:
            raise NotAValue(key)
        raise KeyNotFound(key)

    async def exists(self, key: str) -> EntryKind | None:
        """What ``key`` names, or ``None``."""
        try:
            k = self._key(key)
        except KeyNotFound:
            return None
        if k in self._entries:
            return EntryKind.VALUE
        return EntryKind.DICTIONARY if not k or k in self._dirs else None

    async def get(self, key: str) -> bytes:
        """The value of ``key``."""
        return self._value(key)[0]

    async def get_partial(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``."""
        return self._value(key)[0][offset:offset + length]

    async def list(self, key: str = "") -> list[tuple[str, EntryKind]]:
        """Entries directly under ``key``."""
        k = self._key(key)
        if k in self._entries:
            raise NotAValue(key)
        if k and k not in self._dirs:
            raise KeyNotFound(key)
        prefix = k + "/" if k else ""
        out: dict[str, EntryKind] = {}
        for name in self._entries:
            if name.startswith(prefix):
                head, sep, _ = name[len(prefix):].partition("/")
                out[head] = EntryKind.DICTIONARY if sep else EntryKind.VALUE
        return sorted(out.items())

    async def size(self, key: str) -> int:
        """Length of the value."""
        return len(self._value(key)[0])

    async def last_modified(self, key: str) -> int:
        """Modification time in nanoseconds, as baked."""
        return self._value(key)[1]

    async def digest(self, key: str) -> bytes:
        """SHA-256 of the value."""
        return hashlib.sha256(self._value(key)[0]).digest()
