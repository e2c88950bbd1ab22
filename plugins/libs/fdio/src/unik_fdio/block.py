"""A file (or a host block device) as a unik :class:`unik.devices.Block`.

Sectors map to byte offsets ``sector * sector_size``; every request is one
positioned read or write done entirely in C (:mod:`unik_fdio._block`, or its twin
:mod:`unik_fdio._block_pure` with ``UNIK_PURE=1``).  Requests up to
:data:`INLINE_LIMIT` bytes run on the event loop's thread — a page-cache hit takes
microseconds, less than a hop to a worker thread — and larger ones, as well as
``flush``, run in the default executor with the GIL released.

The file is locked with ``flock(2)`` (shared when read-only, exclusive otherwise), so
two unik processes cannot write one disk image at once.

A descriptor opened by someone else (``fd=``: a parent process, unik's spt tender) is
adopted instead: nothing is opened, and with ``size=`` (the opener already checked and
locked the file) not even a system call is made.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import stat
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TypeVar

from unik import accel
from unik.errors import (
    DeviceClosed,
    DeviceError,
    DeviceUnavailable,
    OutOfRange,
    ReadOnlyDevice,
    UnsupportedOperation,
)

__all__ = ["FileBlock", "INLINE_LIMIT", "backend"]

#: The I/O functions in use: the C module, or the pure twin (``UNIK_PURE=1`` or no C).
backend: ModuleType


def _use_backend(module: ModuleType) -> None:
    global backend
    backend = module


accel.twin("unik_fdio._block", "unik_fdio._block_pure", _use_backend)

#: Requests larger than this many bytes run in a worker thread.
INLINE_LIMIT = 128 * 1024

_T = TypeVar("_T")
_Bytes = bytes | bytearray | memoryview
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.ENOTTY}


class FileBlock:
    """A :class:`unik.devices.Block` over a file, with ``pread``/``pwrite``."""

    KIND = "block"
    #: Requests up to this many bytes run on the event loop's thread; larger ones, and
    #: ``flush``, in a worker thread.
    inline_limit: int = INLINE_LIMIT

    def __init__(
        self, name: str, path: str, fd: int, sectors: int, sector_size: int, read_only: bool,
        io: ModuleType | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.sector_size = sector_size
        self.sectors = sectors
        self.read_only = read_only
        self._fd = fd
        self._io = io or backend
        self._pending: set[asyncio.Future[Any]] = set()

    @classmethod
    async def connect(
        cls, name: str, path: str | None = None, file: str | None = None,
        read_only: bool = False, sector_size: int = 512, fd: int | None = None,
        size: int | None = None, inline_limit: int | None = None,
    ) -> FileBlock:
        """Open the backing file: ``path`` (from ``--block NAME=FILE``) wins over ``file``.

        ``fd`` adopts a descriptor already open on it instead (``path`` then only names
        it in messages); ``size``, its size in bytes, says the opener checked and locked
        it, so that adopting makes no system call.  ``inline_limit`` overrides the class's
        (``sys.maxsize``: every request on the loop's thread, no worker threads).
        """
        return cls.open_sync(name, path=path, file=file, read_only=read_only, sector_size=sector_size,
                             fd=fd, size=size, inline_limit=inline_limit)

    @classmethod
    def open_sync(
        cls, name: str, path: str | None = None, file: str | None = None,
        read_only: bool = False, sector_size: int = 512, io: ModuleType | None = None,
        fd: int | None = None, size: int | None = None, inline_limit: int | None = None,
    ) -> FileBlock:
        """:meth:`connect` without an event loop (for tools and tests); ``io`` picks a backend."""
        if sector_size <= 0 or sector_size & (sector_size - 1):
            raise DeviceUnavailable(
                f"block device {name!r}: sector_size {sector_size} is not a power of two"
            )
        if fd is not None:
            device = cls._adopt(name, path or file or f"descriptor {fd}", fd, sector_size, read_only, size, io)
        else:
            device = cls._open(name, path or file, sector_size, read_only, io)
        if inline_limit is not None:
            device.inline_limit = inline_limit
        return device

    @classmethod
    def _adopt(
        cls, name: str, path: str, fd: int, sector_size: int, read_only: bool, size: int | None,
        io: ModuleType | None,
    ) -> FileBlock:
        """Wrap the open descriptor ``fd``; check and lock it unless ``size`` is given."""
        if fd < 0:
            raise DeviceUnavailable(f"block device {name!r}: {fd} is not a file descriptor")
        if size is None:
            try:
                sectors = cls._check_file(name, path, fd, sector_size, read_only)
            except OSError as exc:
                raise DeviceUnavailable(
                    f"block device {name!r}: descriptor {fd} ({path}) is unusable: {exc.strerror}"
                ) from exc
        elif size <= 0 or size % sector_size:
            raise DeviceUnavailable(
                f"block device {name!r}: {path} is {size} bytes, not a non-zero multiple of the "
                f"{sector_size}-byte sector size"
            )
        else:
            sectors = size // sector_size
        return cls(name, path, fd, sectors, sector_size, read_only, io)

    @classmethod
    def _open(
        cls, name: str, chosen: str | None, sector_size: int, read_only: bool, io: ModuleType | None,
    ) -> FileBlock:
        """Open, check and lock the file ``chosen``."""
        if not chosen:
            raise DeviceUnavailable(
                f"block device {name!r} has no backing file: pass --block {name}=FILE "
                f"(or set `file` in [tool.unik.devices.{name}])"
            )
        chosen = os.path.expanduser(chosen)
        flags = (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CLOEXEC
        try:
            fd = os.open(chosen, flags)
        except OSError as exc:
            mode = "read-only" if read_only else "read-write"
            raise DeviceUnavailable(
                f"block device {name!r}: cannot open {chosen} {mode}: {exc.strerror}"
            ) from exc
        try:
            sectors = cls._check_file(name, chosen, fd, sector_size, read_only)
        except BaseException:
            os.close(fd)
            raise
        return cls(name, chosen, fd, sectors, sector_size, read_only, io)

    @staticmethod
    def _check_file(name: str, path: str, fd: int, sector_size: int, read_only: bool) -> int:
        """Lock the file and return its size in sectors, or raise DeviceUnavailable."""
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise DeviceUnavailable(f"block device {name!r}: {path} is not a regular file or block device")
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if read_only else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno != errno.EWOULDBLOCK:
                raise DeviceUnavailable(f"block device {name!r}: cannot lock {path}: {exc.strerror}") from exc
            raise DeviceUnavailable(
                f"block device {name!r}: {path} is in use by another process (it is locked with flock)"
            ) from exc
        size = os.lseek(fd, 0, os.SEEK_END)  # also right for block devices, where st_size is 0
        if size == 0:
            raise DeviceUnavailable(
                f"block device {name!r}: {path} is empty; give it a size, e.g. truncate -s 64M {path}"
            )
        if size % sector_size:
            raise DeviceUnavailable(
                f"block device {name!r}: {path} is {size} bytes, not a multiple of the "
                f"{sector_size}-byte sector size; resize it (truncate -s "
                f"{size + sector_size - size % sector_size} {path}) or choose another sector_size"
            )
        return size // sector_size

    # -- the Block protocol ---------------------------------------------------------------

    async def read(self, sector: int, count: int) -> bytes:
        """Read ``count`` sectors starting at ``sector``."""
        self._check_open()
        self._check_range(sector, count)
        n = count * self.sector_size
        if n == 0:
            return b""
        try:
            return await self._run(n, self._io.pread_exact, self._fd, n, sector * self.sector_size)
        except (OSError, EOFError) as exc:
            raise self._io_error("read", sector, count, exc) from exc

    async def write(self, sector: int, data: _Bytes) -> None:
        """Write whole sectors from ``data`` starting at ``sector``."""
        n = memoryview(data).nbytes
        if self._write_sectors(sector, n):
            try:
                await self._run(n, self._io.pwrite_all, self._fd, data, sector * self.sector_size)
            except OSError as exc:
                raise self._io_error("write", sector, n // self.sector_size, exc) from exc

    async def writev(self, sector: int, buffers: Sequence[_Bytes]) -> None:
        """Write several buffers back to back from ``sector`` in one ``pwritev`` request.

        The buffers together must cover whole sectors; each may have any length.
        """
        n = sum(memoryview(b).nbytes for b in buffers)
        if self._write_sectors(sector, n):
            try:
                await self._run(n, self._io.pwritev_all, self._fd, list(buffers), sector * self.sector_size)
            except OSError as exc:
                raise self._io_error("write", sector, n // self.sector_size, exc) from exc

    def _write_sectors(self, sector: int, n: int) -> bool:
        """Check a write of ``n`` bytes from ``sector`` (writable, whole sectors, in range); whether there is any."""
        self._check_writable()
        if n % self.sector_size:
            raise DeviceError(
                f"block device {self.name!r}: write of {n} bytes is not a multiple of "
                f"the {self.sector_size}-byte sector size"
            )
        self._check_range(sector, n // self.sector_size)
        return n > 0

    async def flush(self) -> None:
        """Make completed writes durable (``fdatasync``)."""
        self._check_open()
        try:
            await self._run(INLINE_LIMIT + 1, os.fdatasync, self._fd)
        except OSError as exc:
            raise DeviceError(
                f"block device {self.name!r}: fdatasync of {self.path} failed: {exc.strerror}"
            ) from exc

    async def discard(self, sector: int, count: int) -> None:
        """Deallocate sectors (they then read as zeros); ``UnsupportedOperation`` if the fs cannot."""
        self._check_writable()
        self._check_range(sector, count)
        if count == 0:
            return
        try:
            self._io.punch_hole(self._fd, sector * self.sector_size, count * self.sector_size)
        except OSError as exc:
            if exc.errno in _UNSUPPORTED:
                raise UnsupportedOperation(
                    f"block device {self.name!r}: the filesystem holding {self.path} cannot punch holes "
                    f"({exc.strerror})"
                ) from exc
            raise self._io_error("discard", sector, count, exc) from exc

    async def disconnect(self) -> None:
        """Wait for requests in worker threads, then close the file; later use raises DeviceClosed."""
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        os.close(fd)

    def fileno(self) -> int:
        """Return the file descriptor (``-1`` once disconnected)."""
        return self._fd

    def __repr__(self) -> str:
        mode = "ro" if self.read_only else "rw"
        return f"<FileBlock {self.name} {self.path} {self.sectors}x{self.sector_size} {mode}>"

    # -- helpers --------------------------------------------------------------------------

    async def _run(self, nbytes: int, func: Callable[..., _T], *args: object) -> _T:
        """``func(*args)`` inline when small, else in the default executor (tracked)."""
        if nbytes <= self.inline_limit:
            return func(*args)
        future = asyncio.get_running_loop().run_in_executor(None, func, *args)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return await future

    def _check_open(self) -> None:
        if self._fd < 0:
            raise DeviceClosed(f"block device {self.name!r} is disconnected")

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise ReadOnlyDevice(f"block device {self.name!r} ({self.path}) is read-only")

    def _check_range(self, sector: int, count: int) -> None:
        if sector < 0 or count < 0 or sector + count > self.sectors:
            raise OutOfRange(
                f"block device {self.name!r}: sectors {sector}..{sector + count - 1} are outside "
                f"0..{self.sectors - 1}"
            )

    def _io_error(self, what: str, sector: int, count: int, exc: OSError | EOFError) -> DeviceError:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return DeviceError(
            f"block device {self.name!r}: {what} of sectors {sector}..{sector + count - 1} "
            f"in {self.path} failed: {why}"
        )
