r"""Key/value stores over FAT: keys are ``/``-separated paths under a root directory.

FAT names are case-insensitive, so keys differing only in case name the same value;
key components must be valid FAT long names (no ``"*:<>?\\|``).
"""

from __future__ import annotations

import hashlib

from unik.devices import Block, EntryKind
from unik.errors import KeyNotFound, NotAValue

from .errors import FatError, FileNotFound, IsADirectory, NotADirectory
from .fs import FatFile, FatFileSystem
from .names import DEFAULT_CODEPAGE


class FatKVRO:
    """A :class:`unik.devices.KVRO` over a FAT image (never written)."""

    def __init__(self, fs: FatFileSystem, root: str = "/", own_fs: bool = True) -> None:
        self.fs = fs
        self._root = "/" + "/".join(FatFileSystem._split(root))
        self._own = own_fs

    @classmethod
    async def connect(cls, block: Block, root: str = "/", cache_sectors: int = 4096,
                      codepage: str = DEFAULT_CODEPAGE) -> FatKVRO:
        """Mount the FAT filesystem on ``block`` and serve the files under ``root``."""
        return cls(await FatFileSystem.mount(block, cache_sectors=cache_sectors, codepage=codepage), root)

    async def disconnect(self) -> None:
        """Release the filesystem (and flush it, for the writable store)."""
        if self._own:
            await self.fs.disconnect()

    def _path(self, key: str) -> str:
        parts = [p for p in key.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise KeyNotFound(key)
        return self._root.rstrip("/") + "/" + "/".join(parts)

    async def exists(self, key: str) -> EntryKind | None:
        """What ``key`` names, or ``None``."""
        try:
            st = await self.fs.stat(self._path(key))
        except (KeyNotFound, FileNotFound, NotADirectory):
            return None
        return EntryKind.DICTIONARY if st.is_dir else EntryKind.VALUE

    async def _open(self, key: str) -> FatFile:
        try:
            return await self.fs.open(self._path(key), "rb")
        except (FileNotFound, NotADirectory):
            raise KeyNotFound(key) from None
        except IsADirectory:
            raise NotAValue(key) from None

    async def get(self, key: str) -> bytes:
        """The value of ``key``."""
        return await self.get_partial(key, 0, -1)

    async def get_partial(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes of the value from ``offset`` (``-1``: to the end)."""
        f = await self._open(key)
        try:
            await f.seek(offset)
            return await f.read(length)
        finally:
            await f.close()

    async def list(self, key: str = "") -> list[tuple[str, EntryKind]]:
        """Entries directly under the dictionary ``key``, sorted by name."""
        try:
            stats = await self.fs.scandir(self._path(key))
        except FileNotFound:
            raise KeyNotFound(key) from None
        except NotADirectory:
            raise NotAValue(key) from None
        return sorted((s.name, EntryKind.DICTIONARY if s.is_dir else EntryKind.VALUE) for s in stats)

    async def _stat_value(self, key: str) -> tuple[int, int]:
        try:
            st = await self.fs.stat(self._path(key))
        except (FileNotFound, NotADirectory):
            raise KeyNotFound(key) from None
        if st.is_dir:
            raise NotAValue(key)
        return st.size, st.mtime_ns

    async def size(self, key: str) -> int:
        """Length of the value."""
        return (await self._stat_value(key))[0]

    async def last_modified(self, key: str) -> int:
        """Modification time, ns since the epoch (FAT keeps 2-second steps)."""
        return (await self._stat_value(key))[1]

    async def digest(self, key: str) -> bytes:
        """SHA-256 of the value."""
        f = await self._open(key)
        h = hashlib.sha256()
        try:
            while chunk := await f.read(1 << 20):
                h.update(chunk)
        finally:
            await f.close()
        return h.digest()


class FatKVRW(FatKVRO):
    """A :class:`unik.devices.KVRW` over FAT; every change is flushed before it returns."""

    @classmethod
    async def connect(cls, block: Block, root: str = "/", cache_sectors: int = 4096,  # type: ignore[override]
                      format_if_blank: bool = False, sync: bool = True,
                      codepage: str = DEFAULT_CODEPAGE) -> FatKVRW:
        """Mount (formatting a blank device with ``format_if_blank``); create ``root``."""
        fs = await FatFileSystem.connect(block, cache_sectors=cache_sectors, format_if_blank=format_if_blank,
                                         codepage=codepage)
        kv = cls(fs, root)
        kv.sync = sync
        if kv._root != "/":
            await fs.mkdir(kv._root, parents=True, exist_ok=True)
        return kv

    sync: bool = True

    async def _done(self) -> None:
        if self.sync:
            await self.fs.flush()

    async def set(self, key: str, value: bytes) -> None:
        """Create or replace the value; parent dictionaries are created."""
        path = self._path(key)
        if path.rstrip("/") == self._root.rstrip("/"):
            raise NotAValue(key)
        parent = path.rsplit("/", 1)[0]
        if parent:
            try:
                await self.fs.mkdir(parent, parents=True, exist_ok=True)
            except FatError as exc:
                if isinstance(exc, (NotADirectory,)):
                    raise NotAValue(key) from exc
                raise
        try:
            await self.fs.replace(path, (value,), len(value))  # the old value survives any failure
        except IsADirectory:
            raise NotAValue(key) from None
        await self._done()

    async def set_partial(self, key: str, offset: int, data: bytes) -> None:
        """Overwrite part of a value (created if missing), growing it if needed."""
        path = self._path(key)
        if await self.exists(key) is None:
            await self.set(key, b"")
        try:
            f = await self.fs.open(path, "r+b")
        except IsADirectory:
            raise NotAValue(key) from None
        try:
            await f.seek(offset)
            await f.write(data)
        finally:
            await f.close()
        await self._done()

    async def remove(self, key: str) -> None:
        """Remove a value or a whole dictionary."""
        path = self._path(key)
        kind = await self.exists(key)
        if kind is None:
            raise KeyNotFound(key)
        if kind is EntryKind.VALUE:
            await self.fs.remove(path)
        else:
            await self._rmtree(path)
        await self._done()

    async def _rmtree(self, path: str) -> None:
        for top, _dirs, files in reversed(await self.fs.walk(path)):
            for name in files:
                await self.fs.remove(f"{top.rstrip('/')}/{name}")
            if top.rstrip("/") != self._root.rstrip("/"):
                await self.fs.rmdir(top)

    async def rename(self, source: str, dest: str) -> None:
        """Move a value or dictionary (replacing a value at ``dest``)."""
        src = self._path(source)
        if await self.exists(source) is None:
            raise KeyNotFound(source)
        dst = self._path(dest)
        parent = dst.rsplit("/", 1)[0]
        if parent:
            await self.fs.mkdir(parent, parents=True, exist_ok=True)
        await self.fs.rename(src, dst)
        await self._done()
