"""Replacing a file is atomic with respect to failure; copies stream and check sizes first.

The failing inputs: overwriting a file with content that does not fit (disk full, or
over 4 GiB - 1) failed with a clear error and left the old file at 0 bytes; a failed
copy of a new file left an empty entry; `unik fat cp` read the whole source into memory
(12.6 GB for a 4 GiB - 1 file) and read a 4 GiB source whole before refusing it.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fat_support import CrashBlock, every_crash_cut, formatted, mkfs_fat, needs_dosfstools, run
from unik.cli import main as unik_main
from unik_fat.errors import FatError, NoSpace
from unik_fat.fs import FatFileSystem
from unik_fat.image import FatImage, MemoryBlock

OLD = bytes(range(256)) * 20  # 5120 bytes


async def _with_old(block: MemoryBlock) -> FatFileSystem:
    fs = await FatFileSystem.mount(block, cache_sectors=32)
    await fs.replace("/keep.bin", [OLD])
    await fs.flush()
    return fs


async def _read(fs: FatFileSystem, path: str) -> bytes:
    f = await fs.open(path, "rb")
    try:
        return await f.read()
    finally:
        await f.close()


def test_an_overwrite_that_does_not_fit_leaves_the_old_file() -> None:
    async def go() -> None:
        block = formatted(1 << 20, fat_type=12)
        fs = await _with_old(block)
        free = fs.statvfs()["free_clusters"]
        too_big = (free + 1) * fs.vol.cluster_size
        with pytest.raises(NoSpace, match=r"clusters, .* are free"):
            await fs.replace("/keep.bin", [b"n" * too_big], too_big)  # refused before reading
        with pytest.raises(NoSpace):
            await fs.replace("/keep.bin", iter([b"n" * 4096] * (too_big // 4096 + 1)))  # no size: found while writing
        with pytest.raises(NoSpace):
            await fs.replace("/new.bin", iter([b"n" * 4096] * (too_big // 4096 + 1)))
        assert await _read(fs, "/keep.bin") == OLD
        assert not await fs.exists("/new.bin")  # a failed new file leaves no entry
        assert fs.statvfs()["free_clusters"] == free  # what was allocated is free again
        await fs.disconnect()
        fs = await FatFileSystem.mount(block)
        assert await _read(fs, "/keep.bin") == OLD and await fs.check() == []
    run(go())


def test_the_4_gib_limit_and_a_failing_source_leave_the_old_file() -> None:
    reads = 0

    def never() -> Iterator[bytes]:
        nonlocal reads
        reads += 1
        yield b"x"

    def fails() -> Iterator[bytes]:
        yield b"a" * 10000
        raise OSError(5, "Input/output error")

    async def go() -> None:
        block = formatted(4 << 20, fat_type=12)
        fs = await _with_old(block)
        free = fs.statvfs()["free_clusters"]
        with pytest.raises(NoSpace, match="at most 4 GiB - 1"):
            await fs.replace("/keep.bin", never(), 1 << 32)
        assert reads == 0  # the size was known: nothing was read
        with pytest.raises(OSError, match="Input/output"):
            await fs.replace("/keep.bin", fails())
        with pytest.raises(FatError, match="the source gave 5 bytes where 9 were announced"):
            await fs.replace("/keep.bin", [b"short"], 9)
        assert await _read(fs, "/keep.bin") == OLD
        assert fs.statvfs()["free_clusters"] == free
        # A success switches at once; the old chain is freed after the flush.
        assert await fs.replace("/keep.bin", [b"new ", b"content"]) == 11
        assert await _read(fs, "/keep.bin") == b"new content"
        await fs.flush()
        old_clusters = -(-len(OLD) // fs.vol.cluster_size)
        assert fs.statvfs()["free_clusters"] == free + old_clusters - 1 and await fs.check() == []
    run(go())


@needs_dosfstools
@pytest.mark.parametrize("fat", [12, 32])
def test_a_crash_anywhere_in_a_replace_leaves_the_old_file_or_the_new(tmp_path: Path, fat: int) -> None:
    """Crash-cut the writes of a replace and its flush: fsck.fat -a repairs; one whole version remains."""
    opts = {"fat_type": 32, "sectors_per_cluster": 1} if fat == 32 else {"fat_type": 12}
    base = formatted({12: 4 << 20, 32: 34 << 20}[fat], **opts)
    new = bytes(reversed(range(256))) * 33
    run(_with_old(base))

    async def replace(block: CrashBlock) -> None:
        fs = await FatFileSystem.mount(block)
        await fs.replace("/keep.bin", [new[:3000], new[3000:]])
        await fs.flush()

    async def check(after: MemoryBlock, cut: int) -> None:
        fs = await FatFileSystem.mount(after)
        assert await _read(fs, "/keep.bin") in (OLD, new), f"neither version after a cut at write {cut}"

    every_crash_cut(base, replace, check, tmp_path, "replace")


class CountingReader(io.RawIOBase):
    """A source that counts what is read from it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        self.read_bytes += len(b)
        b[:] = bytes(len(b))
        return len(b)


@needs_dosfstools
def test_copies_check_the_size_before_reading_and_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img_path = tmp_path / "small.img"
    mkfs_fat(img_path, 8 << 20)
    with FatImage(img_path) as img:
        img.write_bytes("/keep.bin", OLD)
        source = CountingReader()
        with pytest.raises(NoSpace, match="4 GiB - 1"):
            img.copy_in(source, "/big.bin", 1 << 32)  # type: ignore[arg-type]
        with pytest.raises(NoSpace, match="are free"):
            img.copy_in(source, "/keep.bin", 64 << 20)  # type: ignore[arg-type]
        assert source.read_bytes == 0
    # The command: a 4 GiB (sparse) source is refused at once, with the reason, the old file intact.
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(1 << 32)
    assert unik_main(["fat", "cp", str(img_path), str(big), "::/keep.bin"]) != 0
    assert "4 GiB - 1" in capsys.readouterr().err
    with FatImage(img_path, read_only=True) as img:
        assert img.read_bytes("/keep.bin") == OLD and img.check() == []


@needs_dosfstools
def test_copying_a_big_file_in_and_out_keeps_memory_flat(tmp_path: Path) -> None:
    """200 MiB each way through `unik fat cp`: the process stays far below the file's size."""
    img_path = tmp_path / "big.img"
    mkfs_fat(img_path, 256 << 20, "-F", "32")
    src = tmp_path / "src.bin"
    with open(src, "wb") as f:
        for i in range(200):
            f.write(bytes([i]) * (1 << 20))
    out = tmp_path / "out.bin"
    # VmHWM: this process's own peak (ru_maxrss would keep the forking pytest worker's across exec).
    script = (
        "import sys\n"
        "from unik.cli import main\n"
        "cut = sys.argv.index('--')\n"
        "rc = main(sys.argv[1:cut]) or main(sys.argv[cut + 1:])\n"
        "status = open('/proc/self/status').read()\n"
        "print(int(status.split('VmHWM:')[1].split()[0]) // 1024)\n"
        "sys.exit(rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", script, "fat", "cp", str(img_path), str(src), "::/src.bin", "--",
                        "fat", "cp", str(img_path), "::/src.bin", str(out)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    peak_mib = int(r.stdout.split()[-1])
    assert peak_mib < 150, f"peak RSS {peak_mib} MiB copying 200 MiB in and out"
    assert out.stat().st_size == src.stat().st_size
    with open(src, "rb") as a, open(out, "rb") as b:
        while chunk := a.read(1 << 20):
            assert chunk == b.read(1 << 20)
