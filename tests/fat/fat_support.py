"""Helpers for the FAT tests: blocks, a crashing block, image runners, dosfstools/mtools."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from host_tools import needs
from unik.devices import Buffer
from unik_fat.fs import FatFileSystem
from unik_fat.image import MemoryBlock
from unik_fat.image import run as run_now
from unik_fat.mkfs import mkfs

if TYPE_CHECKING:
    from hypothesis import settings

T = TypeVar("T")

HAVE_DOSFSTOOLS = shutil.which("fsck.fat") is not None and shutil.which("mkfs.fat") is not None
HAVE_MTOOLS = shutil.which("mdir") is not None and shutil.which("mcopy") is not None
needs_dosfstools = needs("mkfs.fat", "fsck.fat")
needs_mtools = needs("mdir", "mcopy")

MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0", "TZ": "UTC"}


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a fresh event loop."""
    return asyncio.run(coro)


class FileBlock:
    """A file-backed Block for tests (pread/pwrite, no dependency on the unix target)."""

    def __init__(self, path: Path, sector_size: int = 512, read_only: bool = False) -> None:
        self.path = path
        self.sector_size = sector_size
        self.read_only = read_only
        self.fd = os.open(path, os.O_RDONLY if read_only else os.O_RDWR)
        self.sectors = os.fstat(self.fd).st_size // sector_size

    async def read(self, sector: int, count: int) -> bytes:
        assert sector >= 0 and sector + count <= self.sectors, (sector, count, self.sectors)
        return os.pread(self.fd, count * self.sector_size, sector * self.sector_size)

    async def write(self, sector: int, data: Buffer) -> None:
        assert not self.read_only
        assert len(data) % self.sector_size == 0
        assert sector >= 0 and sector + len(data) // self.sector_size <= self.sectors
        os.pwrite(self.fd, data, sector * self.sector_size)

    async def flush(self) -> None:
        pass

    async def discard(self, sector: int, count: int) -> None:
        pass

    async def disconnect(self) -> None:
        os.close(self.fd)


class CrashBlock(MemoryBlock):
    """A memory block that stops persisting after ``cut`` writes.

    Reads see every write (the running filesystem does not notice), while
    :attr:`persisted` keeps what a disk would hold after losing power at the cut; the
    write at the cut is torn: only a random prefix of its sectors lands.
    """

    def __init__(self, base: MemoryBlock, cut: int | None, seed: int = 0) -> None:
        super().__init__(base.sectors, base.sector_size, bytes(base.data))
        self.persisted = bytearray(base.data)
        self.cut = cut
        self.count = 0
        self.rng = random.Random(seed)

    async def write(self, sector: int, data: Buffer) -> None:
        await super().write(sector, data)
        data = memoryview(data).cast("B")
        n = len(data) // self.sector_size
        if self.cut is None or self.count < self.cut:
            keep = n
        elif self.count == self.cut:
            keep = self.rng.randrange(0, n + 1)
        else:
            keep = 0
        off = sector * self.sector_size
        self.persisted[off:off + keep * self.sector_size] = data[:keep * self.sector_size]
        self.count += 1


def every_crash_cut(base: MemoryBlock, operation: Callable[[CrashBlock], Coroutine[Any, Any, None]],
                    check: Callable[[MemoryBlock, int], Coroutine[Any, Any, None]], images: Path, label: str) -> None:
    """Crash ``operation`` on a copy of ``base`` at every one of its writes in turn.

    After each cut, fsck.fat -a repairs the image and finds it clean after, then ``check``
    reads the repaired image (and the cut, for its messages).
    """
    total = CrashBlock(base, None)
    run(operation(total))
    for cut in range(total.count + 1):
        block = CrashBlock(base, cut, seed=cut)
        run(operation(block))
        img = images / f"{label}-{cut}.img"
        img.write_bytes(bytes(block.persisted))
        fsck(img, "-a", "-w")
        assert_fsck_clean(img)
        run(check(MemoryBlock(base.sectors, base.sector_size, img.read_bytes()), cut))


def formatted(size: int, sector_size: int = 512, **options: Any) -> MemoryBlock:
    """A fresh MemoryBlock of ``size`` bytes formatted by unik's mkfs."""
    block = MemoryBlock(size // sector_size, sector_size)
    run_now(mkfs(block, **options))
    return block


async def mount(block: Any) -> FatFileSystem:
    """Mount with a small cache, so eviction and pressure paths run too."""
    return await FatFileSystem.mount(block, cache_sectors=64)


def mkfs_fat(path: Path, size: int, *args: str) -> None:
    """Create ``path`` of ``size`` bytes and format it with mkfs.fat."""
    with open(path, "wb") as f:
        f.truncate(size)
    subprocess.run(["mkfs.fat", *args, str(path)], check=True, capture_output=True)


def fsck(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``fsck.fat ARGS PATH``."""
    return subprocess.run(["fsck.fat", *args, str(path)], capture_output=True, text=True)


def assert_fsck_clean(path: Path) -> None:
    """``fsck.fat -n`` exits 0 and says nothing but its banner and summary."""
    r = fsck(path, "-n")
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    extra = [ln for ln in lines if not ln.startswith("fsck.fat ") and not ln.startswith(f"{path}: ")]
    assert r.returncode == 0 and not extra, r.stdout + r.stderr


def mdir_names(path: Path, directory: str = "/", sector_size: int = 512) -> list[str]:
    """Long names (or short ones) that ``mdir`` lists in ``directory``."""
    r = subprocess.run(["mdir", "-a", "-i", str(path), f"::{directory}"], capture_output=True, text=True,
                       env=MTOOLS_ENV, check=True)
    names = []
    for line in r.stdout.splitlines():
        if not line or line.startswith((" ", "Directory for")) or ("files" in line and "bytes" in line):
            continue
        if line.startswith((".  ", ".. ")):
            continue
        # "BASE     EXT   SIZE DATE TIME  long name": the long name, if any, after the time.
        parts = line.split()
        if len(line) > 42 and line[42:].strip():
            names.append(line[42:].strip())
        else:
            base = line[:8].strip()
            ext = line[9:12].strip()
            names.append(f"{base}.{ext}" if ext else base)
        del parts
    return names


def mcopy_out(path: Path, inner: str, dest: Path) -> bytes:
    """Read a file out of the image with mcopy."""
    subprocess.run(["mcopy", "-n", "-o", "-i", str(path), f"::{inner}", str(dest)], check=True,
                   capture_output=True, env=MTOOLS_ENV)
    return dest.read_bytes()


def mcopy_in(path: Path, src: Path, inner: str) -> None:
    """Copy a host file into the image with mcopy."""
    subprocess.run(["mcopy", "-o", "-i", str(path), str(src), f"::{inner}"], check=True,
                   capture_output=True, env=MTOOLS_ENV)


def fat_settings() -> settings:
    """Hypothesis settings: short in CI, long with FAT_HYPOTHESIS_PROFILE=fat-fuzz."""
    from hypothesis import HealthCheck, settings

    settings.register_profile("fat-ci", max_examples=25, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("fat-fuzz", max_examples=1500, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    return settings.get_profile(os.environ.get("FAT_HYPOTHESIS_PROFILE", "fat-ci"))
