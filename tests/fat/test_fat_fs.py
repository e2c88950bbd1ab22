"""The filesystem API on in-memory devices, with the C accelerator and the pure twin."""

from __future__ import annotations

import pytest
from fat_support import formatted, mount, run
from unik.devices import File, FileSystem
from unik_fat import formats as F
from unik_fat.errors import (
    DirectoryNotEmpty,
    FileExists,
    FileNotFound,
    InvalidName,
    IsADirectory,
    NoSpace,
    NotADirectory,
    ReadOnlyFilesystem,
)
from unik_fat.fs import FatFileSystem
from unik_fat.image import MemoryBlock

pytestmark = pytest.mark.usefixtures("accel")

SIZES = {12: 2 << 20, 16: 32 << 20, 32: 40 << 20}


def fresh(fat: int, sector_size: int = 512) -> MemoryBlock:
    opts = {"fat_type": 32, "sectors_per_cluster": 1} if fat == 32 else {}
    return formatted(SIZES[fat], sector_size, **opts)


async def write(fs: FatFileSystem, path: str, data: bytes, mode: str = "wb") -> None:
    f = await fs.open(path, mode)
    await f.write(data)
    await f.close()


async def read(fs: FatFileSystem, path: str) -> bytes:
    f = await fs.open(path, "rb")
    try:
        return await f.read()
    finally:
        await f.close()


@pytest.mark.parametrize("fat", [12, 16, 32])
def test_files_survive_remount(fat: int) -> None:
    block = fresh(fat)

    async def go() -> None:
        fs = await mount(block)
        assert isinstance(fs, FileSystem)
        assert fs.vol.type == fat
        await fs.mkdir("/docs")
        big = bytes(range(256)) * 3000
        await write(fs, "/docs/big.bin", big)
        await write(fs, "/A Long Name With Spaces.text", b"long")
        await write(fs, "/UPPER.TXT", b"u")
        await fs.disconnect()
        fs = await mount(block)
        assert await read(fs, "/docs/big.bin") == big
        assert await read(fs, "/a long name with spaces.TEXT") == b"long"
        assert sorted(await fs.listdir("/")) == ["A Long Name With Spaces.text", "UPPER.TXT", "docs"]
        st = await fs.stat("/docs/big.bin")
        assert (st.size, st.is_dir, st.attributes["archive"]) == (len(big), False, True)
        assert st.mtime_ns > 0
        assert (await fs.stat("/docs")).is_dir
        assert await fs.check() == []

    run(go())


def test_seek_append_truncate_and_holes() -> None:
    block = fresh(16)

    async def go() -> None:
        fs = await mount(block)
        f = await fs.open("/f", "w+b")
        assert isinstance(f, File)
        assert await f.write(b"hello world") == 11
        assert await f.seek(6) == 6
        assert await f.read(5) == b"world"
        await f.seek(0)
        await f.write(b"J")
        await f.seek(5000)  # past the end: the hole reads as zeros
        await f.write(b"!")
        assert f.tell() == 5001
        await f.seek(0)
        data = await f.read()
        assert data == b"Jello world" + bytes(5000 - 11) + b"!"
        assert await f.truncate(3) == 3
        await f.seek(0, 2)
        assert f.tell() == 3
        await f.truncate(10)
        await f.seek(0)
        assert await f.read() == b"Jel" + bytes(7)
        await f.close()
        a = await fs.open("/f", "ab")
        await a.seek(0)
        await a.write(b"tail")  # append mode writes at the end whatever the position
        await a.close()
        assert await read(fs, "/f") == b"Jel" + bytes(7) + b"tail"
        await fs.flush()
        assert await fs.check() == []

    run(go())


def test_many_clusters_and_partial_sectors() -> None:
    block = fresh(32)

    async def go() -> None:
        fs = await mount(block)
        f = await fs.open("/data", "w+b")
        expect = bytearray()
        for i in range(200):
            chunk = bytes([i % 251]) * (i * 37 % 1500 + 1)
            await f.write(chunk)
            expect += chunk
        await f.seek(1234)
        await f.write(b"X" * 3000)
        expect[1234:4234] = b"X" * 3000
        await f.seek(0)
        assert await f.read() == bytes(expect)
        await f.seek(777)
        assert await f.read(5000) == bytes(expect[777:5777])
        await f.close()
        await fs.disconnect()
        fs = await mount(block)
        assert await read(fs, "/data") == bytes(expect)

    run(go())


def test_directories_and_errors() -> None:
    block = fresh(16)

    async def go() -> None:
        fs = await mount(block)
        await fs.mkdir("/a")
        await fs.mkdir("/a/b/c", parents=True)
        await fs.mkdir("/a/b", exist_ok=True)
        with pytest.raises(FileExists):
            await fs.mkdir("/a")
        with pytest.raises(FileNotFound):
            await fs.stat("/nope")
        with pytest.raises(FileNotFound):
            await fs.open("/nope/x", "wb")
        await write(fs, "/a/file", b"x")
        with pytest.raises(NotADirectory):
            await fs.listdir("/a/file")
        with pytest.raises(NotADirectory):
            await fs.open("/a/file/x", "rb")
        with pytest.raises(IsADirectory):
            await fs.open("/a", "rb")
        with pytest.raises(IsADirectory):
            await fs.remove("/a")
        with pytest.raises(NotADirectory):
            await fs.rmdir("/a/file")
        with pytest.raises(DirectoryNotEmpty):
            await fs.rmdir("/a")
        with pytest.raises(FileExists):
            await fs.open("/a/file", "xb")
        with pytest.raises(InvalidName):
            await fs.open("/bad:name", "wb")
        with pytest.raises(InvalidName):
            await fs.mkdir("/trailing.")
        with pytest.raises(ValueError):
            await fs.open("/a/file", "rt")
        await fs.rmdir("/a/b/c")
        await fs.remove("/a/file")
        assert await fs.listdir("/a") == ["b"]
        with pytest.raises(InvalidName):
            await fs.rename("/a", "/a/b/inside")
        await fs.flush()
        assert await fs.check() == []

    run(go())


def test_rename_moves_files_and_directories() -> None:
    block = fresh(32)

    async def go() -> None:
        fs = await mount(block)
        await fs.mkdir("/src/sub", parents=True)
        await write(fs, "/src/sub/file.txt", b"content")
        await write(fs, "/other", b"old")
        await fs.mkdir("/dst")
        await fs.rename("/src/sub", "/dst/moved dir")
        assert await fs.listdir("/src") == []
        assert await read(fs, "/dst/moved dir/file.txt") == b"content"
        await fs.rename("/dst/moved dir/file.txt", "/other")  # replaces, like os.replace
        assert await read(fs, "/other") == b"content"
        await fs.rename("/other", "/OTHER")  # a change of case only
        assert await fs.listdir("/") == ["src", "dst", "OTHER"]
        await fs.disconnect()
        fs = await mount(block)
        sub = await fs.scandir("/dst/moved dir")
        assert sub == []
        # ".." of the moved directory points at its new parent
        node = await fs._lookup("/dst/moved dir")
        d = await fs._dir(node)
        sector, off = fs._slot_pos(d, 1)
        dotdot = F.DirEntry.parse(await fs.vol.cache.get(sector), off)
        assert dotdot.name == b"..         " and dotdot.cluster == (await fs._lookup("/dst")).entry.cluster
        assert await fs.check() == []

    run(go())


def test_long_names_aliases_and_case() -> None:
    block = fresh(16)

    async def go() -> None:
        fs = await mount(block)
        for i in range(12):
            await write(fs, f"/Long File Name {i}.txt", b"x")
        await write(fs, "/lower.txt", b"l")
        await write(fs, "/MiXed.TXT", b"m")
        await write(fs, "/ünïcödé ñame.dat", b"u")
        shorts = {s.name: s.attributes["short_name"] for s in await fs.scandir("/")}
        assert shorts["Long File Name 0.txt"] == "LONGFI~1.TXT"
        assert shorts["Long File Name 9.txt"] == "LONGF~10.TXT"
        assert len(set(shorts.values())) == len(shorts)
        assert shorts["lower.txt"] == "LOWER.TXT"
        assert shorts["MiXed.TXT"] == "MIXED.TXT"
        assert shorts["ünïcödé ñame.dat"].endswith("~1.DAT")
        assert await read(fs, "/LOWER.TXT") == b"l"
        assert await read(fs, "/ÜNÏCÖDÉ ÑAME.DAT") == b"u"
        await fs.disconnect()
        fs = await mount(block)
        names = await fs.listdir("/")
        assert "lower.txt" in names and "MiXed.TXT" in names and "ünïcödé ñame.dat" in names

    run(go())


def test_fixed_root_fills_and_disk_fills() -> None:
    block = fresh(12)

    async def go() -> None:
        fs = await mount(block)
        with pytest.raises(NoSpace):
            for i in range(1000):
                await write(fs, f"/F{i}", b"")
        fs2 = await mount(fresh(12))
        await fs2.mkdir("/d")
        f = await fs2.open("/d/big", "wb")
        with pytest.raises(NoSpace):
            await f.write(bytes(3 << 20))
        await f.close()
        await fs2.flush()
        assert await fs2.check() == []

    run(go())


def test_attributes_times_and_read_only() -> None:
    block = fresh(16)

    async def go() -> None:
        fs = await mount(block)
        await write(fs, "/f", b"x")
        await fs.set_attributes("/f", hidden=True, read_only=True)
        st = await fs.stat("/f")
        assert st.attributes["hidden"] and st.attributes["read_only"]
        with pytest.raises(PermissionError):
            await fs.open("/f", "ab")
        await fs.set_attributes("/f", read_only=False)
        when = 1_700_000_000 * 10**9
        await fs.set_mtime("/f", when)
        assert (await fs.stat("/f")).mtime_ns == when  # an even second
        st = await fs.stat("/f")
        assert st.ctime_ns is not None and st.atime_ns is not None
        assert st.ctime_ns > when and st.atime_ns <= st.ctime_ns + 86_400 * 10**9
        assert (await fs.stat("/")).ctime_ns is None  # the root has no directory entry
        await fs.disconnect()
        ro = MemoryBlock(block.sectors, block.sector_size, bytes(block.data), read_only=True)
        fs = await mount(ro)
        assert (await fs.stat("/f")).attributes["hidden"]
        with pytest.raises(ReadOnlyFilesystem):
            await fs.open("/g", "wb")

    run(go())


def test_4096_byte_sectors() -> None:
    block = fresh(16, sector_size=4096)

    async def go() -> None:
        fs = await mount(block)
        assert fs.vol.bps == 4096
        await fs.mkdir("/x")
        await write(fs, "/x/y", b"z" * 10000)
        await fs.disconnect()
        fs = await mount(block)
        assert await read(fs, "/x/y") == b"z" * 10000

    run(go())


def test_logical_sectors_larger_than_device_sectors() -> None:
    block = MemoryBlock((16 << 20) // 512, 512)

    async def go() -> None:
        from unik_fat.mkfs import mkfs

        await mkfs(block, sector_size=2048)
        fs = await mount(block)
        assert fs.vol.bps == 2048 and fs.vol.factor == 4
        await write(fs, "/a", b"q" * 5000)
        await fs.disconnect()
        fs = await mount(block)
        assert await read(fs, "/a") == b"q" * 5000

    run(go())


def test_removed_while_open_keeps_working_then_frees() -> None:
    block = fresh(16)

    async def go() -> None:
        fs = await mount(block)
        await write(fs, "/f", b"a" * 5000)
        f = await fs.open("/f", "r+b")
        await fs.remove("/f")
        assert not await fs.exists("/f")
        await f.write(b"b" * 9000)  # writes to the detached, now empty file
        await f.seek(0)
        assert await f.read() == b"b" * 9000
        await f.close()
        await fs.flush()
        assert await fs.check() == []
        assert fs.statvfs()["free_clusters"] == fs.vol.bs.cluster_count - 0

    run(go())
