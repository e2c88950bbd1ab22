"""Conformance of ``FileSystem`` (and the ``File`` objects it opens)."""

from __future__ import annotations

import os
from typing import Any

from ..devices import FileSystem
from ..errors import DeviceClosed
from .base import DeviceConformance, raises


class FileSystemConformance(DeviceConformance):
    """Files and directories as :func:`open` and :mod:`pathlib` behave; errors are the built-in OSErrors.

    :meth:`connect` returns an empty, writable filesystem.  A missing path raises
    ``FileNotFoundError``, an existing one ``FileExistsError``, a file where a directory
    is needed ``NotADirectoryError`` and the reverse ``IsADirectoryError`` (subclasses
    are welcome: unik-lib-fat's errors are also :class:`~unik.errors.DeviceError`).
    """

    protocol = FileSystem

    def test_files_write_read_seek_truncate(self) -> None:
        """Files write read seek truncate."""

        async def body(fs: Any) -> None:
            data = os.urandom(100_000)
            f = await fs.open("/big.bin", "wb")
            assert await f.write(data) == len(data)
            await f.close()
            f = await fs.open("/big.bin", "rb")
            assert await f.read() == data
            assert await f.seek(1000) == 1000 and f.tell() == 1000
            assert await f.read(10) == data[1000:1010]
            await f.close()
            f = await fs.open("/big.bin", "r+b")
            await f.seek(10)
            await f.write(b"XYZ")
            assert await f.truncate(20) == 20
            await f.close()
            f = await fs.open("/big.bin", "rb")
            assert await f.read() == data[:10] + b"XYZ" + data[13:20]
            await f.close()
            f = await fs.open("/big.bin", "ab")
            await f.write(b"tail")
            await f.close()
            assert (await fs.stat("/big.bin")).size == 24
            await fs.flush()

        self.check(body)

    def test_directories(self) -> None:
        """Directories."""

        async def body(fs: Any) -> None:
            await fs.mkdir("/a/b/c", parents=True)
            await fs.mkdir("/a/b", exist_ok=True)
            f = await fs.open("/a/b/file.txt", "wb")
            await f.write(b"x")
            await f.close()
            assert sorted(await fs.listdir("/a/b")) == ["c", "file.txt"]
            stats = {s.name: s for s in await fs.scandir("/a/b")}
            assert stats["c"].is_dir and not stats["file.txt"].is_dir and stats["file.txt"].size == 1
            assert await fs.exists("/a/b/c") and not await fs.exists("/a/nope")
            st = await fs.stat("/a")
            assert st.is_dir and isinstance(st.mtime_ns, int)
            await fs.rename("/a/b/file.txt", "/a/moved.txt")
            await fs.rename("/a/b", "/d")
            assert sorted(await fs.listdir("/")) == ["a", "d"] and await fs.listdir("/d") == ["c"]
            await fs.rmdir("/d/c")
            await fs.remove("/a/moved.txt")
            assert await fs.listdir("/a") == []

        self.check(body)

    def test_mtime_can_be_set(self) -> None:
        """Mtime can be set."""

        async def body(fs: Any) -> None:
            f = await fs.open("/t", "wb")
            await f.close()
            when = 1_700_000_000 * 10**9
            await fs.set_mtime("/t", when)
            assert abs((await fs.stat("/t")).mtime_ns - when) <= 2 * 10**9  # to the filesystem's resolution

        self.check(body)

    def test_errors_are_the_builtin_oserrors(self) -> None:
        """Errors are the builtin OSErrors."""

        async def body(fs: Any) -> None:
            await fs.mkdir("/dir")
            f = await fs.open("/file", "wb")
            await f.close()
            await raises(FileNotFoundError, lambda: fs.open("/missing", "rb"), "open of a missing file")
            await raises(FileNotFoundError, lambda: fs.stat("/missing"), "stat of a missing path")
            await raises(FileExistsError, lambda: fs.mkdir("/dir"), "mkdir of an existing directory")
            await raises(FileExistsError, lambda: fs.open("/file", "xb"), "exclusive open of an existing file")
            await raises(IsADirectoryError, lambda: fs.open("/dir", "rb"), "open of a directory")
            await raises(IsADirectoryError, lambda: fs.remove("/dir"), "remove of a directory")
            await raises(NotADirectoryError, lambda: fs.listdir("/file"), "listdir of a file")
            await raises(NotADirectoryError, lambda: fs.rmdir("/file"), "rmdir of a file")
            await raises(FileNotFoundError, lambda: fs.mkdir("/no/such/parent"), "mkdir without its parent")
            g = await fs.open("/dir/x", "wb")
            await g.close()
            await raises(OSError, lambda: fs.rmdir("/dir"), "rmdir of a directory that is not empty")

        self.check(body)

    def test_disconnected_filesystem_raises_device_closed(self) -> None:
        """Disconnected filesystem raises device closed."""

        async def body(fs: Any) -> None:
            await fs.disconnect()
            await raises(DeviceClosed, lambda: fs.listdir("/"), "listdir of a disconnected filesystem")

        self.check(body)
