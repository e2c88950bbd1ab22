"""Every block, key/value and filesystem provider of this repository passes its suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conformance_support import fat_image, write_tree
from unik.kv import BakedKVRO
from unik.testing import BlockConformance, FileSystemConformance, KVROConformance, KVRWConformance
from unik_fat.fs import FatFileSystem
from unik_fat.kv import FatKVRO, FatKVRW
from unik_fat.mkfs import mkfs
from unik_fdio.block import FileBlock
from unik_solo5 import kv as spt_kv
from unik_vmguest.block import VirtioBlock
from unik_vmguest.xen import XenBlock

SECTORS = 64


class InDirectory:
    """Each test gets its own directory (pytest's ``tmp_path``) as ``self.tmp``."""

    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.tmp = tmp_path


# --- block ------------------------------------------------------------------------------


class TestFileBlock(InDirectory, BlockConformance):
    """unik-lib-fdio's disk over a file (unix, spt; hvt adopts the monitor's descriptor the same way)."""

    async def connect(self) -> Any:
        image = self.tmp / "disk.img"
        image.write_bytes(bytes(SECTORS * 512))
        return await FileBlock.connect("disk", path=str(image))

    async def connect_read_only(self) -> Any:
        image = self.tmp / "ro.img"
        image.write_bytes(bytes(SECTORS * 512))
        return await FileBlock.connect("ro", path=str(image), read_only=True)


class TestFileBlockAdopted(InDirectory, BlockConformance):
    """A descriptor handed over (spt's tender, hvt's monitor), every request inline as hvt has it."""

    async def connect(self) -> Any:
        image = self.tmp / "disk.img"
        image.write_bytes(bytes(SECTORS * 4096))
        fd = os.open(image, os.O_RDWR | os.O_CLOEXEC)
        return await FileBlock.connect("disk", path=str(image), fd=fd, sector_size=4096,
                                       size=os.fstat(fd).st_size, inline_limit=sys.maxsize)

    async def connect_read_only(self) -> Any:
        image = self.tmp / "ro.img"
        image.write_bytes(bytes(SECTORS * 4096))
        fd = os.open(image, os.O_RDONLY | os.O_CLOEXEC)
        return await FileBlock.connect("ro", path=str(image), fd=fd, sector_size=4096, read_only=True,
                                       size=os.fstat(fd).st_size, inline_limit=sys.maxsize)


@pytest.fixture
def loop_disk(tmp_path: Path) -> Iterator[str]:
    """A loop device over a new file (the kernel block device a VM guest opens), detached afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root (losetup) for a kernel block device")
    if shutil.which("losetup") is None:
        pytest.skip("needs losetup (util-linux)")
    image = tmp_path / "loop.img"
    image.write_bytes(bytes(SECTORS * 512))
    made = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"cannot attach a loop device: {made.stderr.strip()}")
    device = made.stdout.strip()
    try:
        yield os.path.basename(device)
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True)


class KernelDisk(BlockConformance):
    """The VM guests' disks (virtio-blk, xen-blkfront) read /dev/<disk> and sysfs: here a loop device."""

    kind: type[VirtioBlock] = VirtioBlock

    @pytest.fixture(autouse=True)
    def _disk(self, loop_disk: str) -> None:
        self.dev = loop_disk

    async def connect(self) -> Any:
        return self.kind.open_disk("disk", self.dev, False, None)

    async def connect_read_only(self) -> Any:
        return self.kind.open_disk("disk", self.dev, True, None)


class TestVirtioBlock(KernelDisk):
    kind = VirtioBlock


class TestXenBlock(KernelDisk):
    kind = XenBlock


# --- key/value stores ----------------------------------------------------------------------


class TestBakedKVRO(InDirectory, KVROConformance):
    """The core's store of files baked into the artifact."""

    async def connect(self) -> Any:
        return await BakedKVRO.connect(str(write_tree(self.tmp / "assets" / "kv", self.files)))


class TestMemoryKVRO(InDirectory, KVROConformance):
    """spt's store: the same baked files, read into memory before the sandbox seals the process."""

    async def connect(self) -> Any:
        write_tree(self.tmp / "assets" / "kv", self.files)
        spt_kv.preload(self.tmp)
        return await spt_kv.MemoryKVRO.connect("assets/kv")


class FatStore(InDirectory):
    """A store over a FAT image holding the suite's files."""

    async def block(self, files: Any) -> Any:
        image = self.tmp / "kv.img"
        await fat_image(image, files)
        return await FileBlock.connect("kv", path=str(image))


class TestFatKVRO(FatStore, KVROConformance):
    async def connect(self) -> Any:
        return await FatKVRO.connect(await self.block(self.files))


class TestFatKVRW(FatStore, KVRWConformance):
    async def connect(self) -> Any:
        return await FatKVRW.connect(await self.block(self.files))


# --- filesystem ----------------------------------------------------------------------------


class TestFatFileSystem(InDirectory, FileSystemConformance):
    async def connect(self) -> Any:
        image = self.tmp / "fs.img"
        image.write_bytes(b"")
        with image.open("r+b") as f:
            f.truncate(8 << 20)
        block = await FileBlock.connect("fs", path=str(image))
        await mkfs(block)
        return await FatFileSystem.connect(block)
