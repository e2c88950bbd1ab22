"""Block devices for tooling and tests, and the synchronous API on an image file.

:class:`ImageBlock` is a :class:`unik.devices.Block` over a host file (``pread`` /
``pwrite``); :class:`MemoryBlock` keeps the sectors in memory.  :class:`FatImage` wraps
:class:`~unik_fat.fs.FatFileSystem` with plain (blocking) methods for scripts and the
``unik fat`` commands.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, BinaryIO, TypeVar

from unik.devices import Buffer, FileStat
from unik.errors import DeviceClosed, OutOfRange, ReadOnlyDevice

from .fs import FatFileSystem
from .names import DEFAULT_CODEPAGE

T = TypeVar("T")

#: Bytes read or written per step when copying between the host and an image.
COPY_CHUNK = 1 << 20


class MemoryBlock:
    """A :class:`unik.devices.Block` held in a ``bytearray``."""

    KIND = "block"

    def __init__(self, sectors: int, sector_size: int = 512, data: bytes | None = None,
                 read_only: bool = False) -> None:
        self.sector_size = sector_size
        self.sectors = sectors
        self.read_only = read_only
        self.data = bytearray(data) if data is not None else bytearray(sectors * sector_size)
        if len(self.data) != sectors * sector_size:
            raise ValueError("data length does not match sectors * sector_size")
        self.writes = 0

    def _range(self, sector: int, count: int) -> tuple[int, int]:
        if sector < 0 or count < 0 or sector + count > self.sectors:
            raise OutOfRange(f"sectors {sector}..{sector + count} beyond {self.sectors}")
        return sector * self.sector_size, (sector + count) * self.sector_size

    async def read(self, sector: int, count: int) -> bytes:
        """Read ``count`` sectors."""
        a, b = self._range(sector, count)
        return bytes(self.data[a:b])

    async def write(self, sector: int, data: Buffer) -> None:
        """Write whole sectors."""
        if self.read_only:
            raise ReadOnlyDevice("read-only block device")
        if len(data) % self.sector_size:
            raise ValueError("partial sector write")
        a, b = self._range(sector, len(data) // self.sector_size)
        self.data[a:b] = data
        self.writes += 1

    async def flush(self) -> None:
        """Nothing to do in memory."""

    async def discard(self, sector: int, count: int) -> None:
        """Zero the sectors."""
        a, b = self._range(sector, count)
        self.data[a:b] = bytes(b - a)

    async def disconnect(self) -> None:
        """Nothing to release."""


class ImageBlock:
    """A :class:`unik.devices.Block` over an image file with ``os.pread`` / ``os.pwrite``."""

    KIND = "block"

    def __init__(self, path: str | os.PathLike[str], *, sector_size: int = 512, read_only: bool = False,
                 fsync: bool = True) -> None:
        self.path = os.fspath(path)
        self.read_only = read_only
        self.fsync = fsync
        self.sector_size = sector_size
        try:
            self._fd: int | None = os.open(self.path, os.O_RDONLY if read_only else os.O_RDWR)
        except OSError as exc:
            from unik.errors import DeviceUnavailable

            raise DeviceUnavailable(f"cannot open image {self.path!r}: {exc.strerror}") from exc
        self.sectors = os.fstat(self._fd).st_size // sector_size

    @classmethod
    async def connect(cls, path: str, sector_size: int = 512, read_only: bool = False) -> ImageBlock:
        """Open the image file."""
        return cls(path, sector_size=sector_size, read_only=read_only)

    def _fd_or_raise(self) -> int:
        if self._fd is None:
            raise DeviceClosed(f"image {self.path!r} is closed")
        return self._fd

    async def read(self, sector: int, count: int) -> bytes:
        """Read ``count`` sectors."""
        fd = self._fd_or_raise()
        if sector < 0 or count < 0 or sector + count > self.sectors:
            raise OutOfRange(f"sectors {sector}..{sector + count} beyond {self.sectors}")
        data = os.pread(fd, count * self.sector_size, sector * self.sector_size)
        if len(data) != count * self.sector_size:
            raise OutOfRange(f"short read at sector {sector}")
        return data

    async def write(self, sector: int, data: Buffer) -> None:
        """Write whole sectors."""
        fd = self._fd_or_raise()
        if self.read_only:
            raise ReadOnlyDevice(f"image {self.path!r} is read-only")
        n = len(data) // self.sector_size
        if len(data) % self.sector_size:
            raise ValueError("partial sector write")
        if sector < 0 or sector + n > self.sectors:
            raise OutOfRange(f"sectors {sector}..{sector + n} beyond {self.sectors}")
        off = sector * self.sector_size
        view = memoryview(data)
        while view:
            done = os.pwrite(fd, view, off)
            view, off = view[done:], off + done

    async def flush(self) -> None:
        """``fdatasync`` the file (unless opened with ``fsync=False``)."""
        fd = self._fd_or_raise()
        if self.fsync and not self.read_only:
            os.fdatasync(fd)

    async def discard(self, sector: int, count: int) -> None:
        """Unsupported on plain files here."""
        from unik.errors import UnsupportedOperation

        raise UnsupportedOperation("discard")

    async def disconnect(self) -> None:
        """Close the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits (the devices here complete at once) to the end."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("the coroutine waited on something: use the asyncio API instead")


class FatImage:
    """The synchronous API: a FAT filesystem in an image file.

    ::

        with FatImage("disk.img") as fs:
            fs.write_bytes("/docs/README.TXT", b"hello")
            print(fs.listdir("/docs"))
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False, sector_size: int = 512,
                 codepage: str = DEFAULT_CODEPAGE, clock: Callable[[], int] | None = None) -> None:
        self.block = ImageBlock(path, sector_size=sector_size, read_only=read_only)
        try:
            self.fs = run(FatFileSystem.mount(self.block, clock=clock, codepage=codepage))
        except BaseException:
            run(self.block.disconnect())
            raise

    @classmethod
    def format(cls, path: str | os.PathLike[str], size: int, *, sector_size: int = 512,
               clock: Callable[[], int] | None = None, **options: Any) -> FatImage:
        """Create (or overwrite) an image file of ``size`` bytes, format it and open it.

        ``clock`` (nanoseconds since the epoch) stamps what is written afterwards: a fixed
        one makes the same files give the same image.  ``options`` go to :func:`~unik_fat.mkfs.mkfs`.
        """
        with open(path, "wb") as f:
            f.truncate(size)
        block = ImageBlock(path, sector_size=sector_size)
        try:
            from .mkfs import mkfs

            run(mkfs(block, **options))
        finally:
            run(block.disconnect())
        return cls(path, sector_size=sector_size, clock=clock)

    def __enter__(self) -> FatImage:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Flush and close."""
        try:
            if not self.block.read_only:
                run(self.fs.disconnect())
        finally:
            run(self.block.disconnect())

    def read_bytes(self, path: str) -> bytes:
        """The whole content of a file."""
        async def go() -> bytes:
            f = await self.fs.open(path, "rb")
            try:
                return await f.read()
            finally:
                await f.close()
        return run(go())

    def write_bytes(self, path: str, data: bytes) -> None:
        """Create or replace a file (the old content survives any failure: see ``replace``)."""
        run(self.fs.replace(path, (data,), len(data)))

    def copy_in(self, source: BinaryIO, path: str, size: int) -> int:
        """Create or replace ``path`` with ``size`` bytes read from ``source`` in 1 MiB chunks.

        The size is checked against the file limit and the free space before anything
        is read; a failure leaves the old file as it was.
        """
        def chunks() -> Iterator[bytes]:
            while chunk := source.read(COPY_CHUNK):
                yield chunk
        return run(self.fs.replace(path, chunks(), size))

    def copy_out(self, path: str, dest: BinaryIO) -> int:
        """Write the file at ``path`` to ``dest`` in 1 MiB chunks; the bytes copied."""
        async def go() -> int:
            f = await self.fs.open(path, "rb")
            total = 0
            try:
                while chunk := await f.read(COPY_CHUNK):
                    dest.write(chunk)
                    total += len(chunk)
            finally:
                await f.close()
            return total
        return run(go())

    def invalid_entries(self, path: str = "/") -> list[str]:
        """What is wrong with the entries of a directory whose names are invalid on disk."""
        return run(self.fs.invalid_entries(path))

    def listdir(self, path: str = "/") -> list[str]:
        """Names in a directory."""
        return run(self.fs.listdir(path))

    def scandir(self, path: str = "/") -> list[FileStat]:
        """Stats of a directory's entries."""
        return run(self.fs.scandir(path))

    def stat(self, path: str) -> FileStat:
        """Stat of a path."""
        return run(self.fs.stat(path))

    def exists(self, path: str) -> bool:
        """Whether a path exists."""
        return run(self.fs.exists(path))

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        """Create a directory."""
        run(self.fs.mkdir(path, parents=parents, exist_ok=exist_ok))

    def remove(self, path: str) -> None:
        """Delete a file."""
        run(self.fs.remove(path))

    def rmdir(self, path: str) -> None:
        """Delete an empty directory."""
        run(self.fs.rmdir(path))

    def rename(self, source: str, dest: str) -> None:
        """Move a file or directory."""
        run(self.fs.rename(source, dest))

    def walk(self, path: str = "/") -> Iterator[tuple[str, list[str], list[str]]]:
        """Like :func:`os.walk`."""
        return iter(run(self.fs.walk(path)))

    def check(self) -> list[str]:
        """Problems found by :meth:`FatFileSystem.check`."""
        return run(self.fs.check())

    def flush(self) -> None:
        """Write everything back."""
        run(self.fs.flush())
