"""Hostile images: corruption gives typed errors, never a hang, a crash or unbounded memory."""

from __future__ import annotations

import random

import pytest
from fat_support import fat_settings, formatted
from hypothesis import given
from hypothesis import strategies as st
from unik_fat import formats as F
from unik_fat.errors import BadBootSector, BadChain, BadDirectory, CorruptFilesystem, FatError
from unik_fat.fs import FatFileSystem
from unik_fat.image import MemoryBlock, run

pytestmark = pytest.mark.usefixtures("accel")


def _populated(fat: int) -> MemoryBlock:
    opts = {"fat_type": 32, "sectors_per_cluster": 1} if fat == 32 else {"fat_type": fat}
    block = formatted({12: 1 << 20, 16: 20 << 20, 32: 34 << 20}[fat], **opts)

    async def go() -> None:
        fs = await FatFileSystem.mount(block)
        await fs.mkdir("/dir/sub", parents=True)
        for i in range(20):
            f = await fs.open(f"/dir/File with a long name {i}.txt", "wb")
            await f.write(bytes([i]) * (i * 700))
            await f.close()
        f = await fs.open("/dir/sub/x", "wb")
        await f.write(b"x" * 5000)
        await f.close()
        await fs.disconnect()

    run(go())
    return block


_BASE = {fat: bytes(_populated(fat).data) for fat in (12, 16, 32)}


async def _exercise(block: MemoryBlock) -> None:
    """Everything a reader and a writer would do; only FatError may come out."""
    fs = await FatFileSystem.mount(block, cache_sectors=16)
    try:
        for top, _dirs, files in await fs.walk("/"):
            for name in files:
                f = await fs.open(f"{top.rstrip('/')}/{name}", "rb")
                await f.read()
                await f.close()
    except FatError:
        pass
    try:
        await fs.check()
        f = await fs.open("/dir/new file.bin", "wb")
        await f.write(b"n" * 10000)
        await f.close()
        await fs.mkdir("/dir/newdir")
        await fs.remove("/dir/File with a long name 3.txt")
        await fs.flush()
    except FatError:
        pass


def _region(bs: F.BootSector, which: str) -> tuple[int, int]:
    ss = bs.bytes_per_sector
    if which == "boot":
        return 0, 90
    if which == "fat":
        return bs.first_fat_sector * ss, (bs.first_fat_sector + bs.fat_size) * ss
    start = (bs.root_dir_sector if bs.fat_type != 32 else bs.cluster_sector(bs.root_cluster)) * ss
    return start, start + 16 * ss


@fat_settings()
@given(fat=st.sampled_from([12, 16, 32]), which=st.sampled_from(["boot", "fat", "dir"]),
       seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 40))
def test_random_corruption_gives_typed_errors(fat: int, which: str, seed: int, flips: int) -> None:
    data = bytearray(_BASE[fat])
    bs = F.BootSector.parse(bytes(data[:512]))
    lo, hi = _region(bs, which)
    rng = random.Random(seed)
    for _ in range(flips):
        data[rng.randrange(lo, hi)] = rng.randrange(256)
    block = MemoryBlock(len(data) // 512, 512, bytes(data))
    try:
        run(_exercise(block))
    except FatError:
        pass


def _set_fat(block: MemoryBlock, n: int, value: int) -> None:
    bs = F.BootSector.parse(bytes(block.data[:512]))
    fat = bytearray(block.data[bs.first_fat_sector * 512:(bs.first_fat_sector + bs.fat_size) * 512])
    F.set_entry(fat, bs.fat_type, n, value)
    for k in range(bs.num_fats):
        start = (bs.first_fat_sector + k * bs.fat_size) * 512
        block.data[start:start + len(fat)] = fat


def _first_cluster(block: MemoryBlock, path: str) -> int:
    fs = run(FatFileSystem.mount(block))
    return int(run(fs.stat(path)).attributes["cluster"])


@pytest.mark.parametrize("fat", [12, 16, 32])
def test_chain_cycle_is_bad_chain(fat: int) -> None:
    block = MemoryBlock(len(_BASE[fat]) // 512, 512, _BASE[fat])
    first = _first_cluster(block, "/dir/File with a long name 19.txt")
    _set_fat(block, first + 1, first)  # the second cluster points back at the first
    fs = run(FatFileSystem.mount(block))
    with pytest.raises(BadChain, match="loops"):
        run(_read(fs, "/dir/File with a long name 19.txt"))


async def _read(fs: FatFileSystem, path: str) -> bytes:
    f = await fs.open(path, "rb")
    return await f.read()


@pytest.mark.parametrize("fat", [12, 16, 32])
def test_cluster_out_of_range_is_bad_chain(fat: int) -> None:
    block = MemoryBlock(len(_BASE[fat]) // 512, 512, _BASE[fat])
    first = _first_cluster(block, "/dir/sub/x")
    bs = F.BootSector.parse(bytes(block.data[:512]))
    _set_fat(block, first, min(bs.max_cluster + 5, F.BAD[fat] - 1))
    fs = run(FatFileSystem.mount(block))
    with pytest.raises(BadChain, match="leaves the volume"):
        run(_read(fs, "/dir/sub/x"))


def test_directory_loop_is_reported() -> None:
    block = MemoryBlock(len(_BASE[16]) // 512, 512, _BASE[16])
    fs = run(FatFileSystem.mount(block))
    sub = run(fs._lookup("/dir/sub"))
    parent = run(fs._lookup("/dir"))
    # make /dir/sub's entry point at /dir's cluster: the tree now loops
    sub.entry.cluster = parent.entry.cluster
    run(fs._store(sub))
    run(fs.flush())
    fs = run(FatFileSystem.mount(block))
    with pytest.raises(BadDirectory):
        run(fs.walk("/"))
    problems = run(fs.check())
    assert problems


@pytest.mark.parametrize(("offset", "value", "match"), [
    (11, b"\x00\x03", "BytsPerSec"),
    (13, b"\x03", "SecPerClus"),
    (14, b"\x00\x00", "RsvdSecCnt"),
    (16, b"\x00", "NumFATs"),
    (510, b"\x00\x00", "0x55AA"),
    (0, b"\x00\x00\x00", "jump"),
    (22, b"\x00\x00", "RootEntCnt"),  # FATSz16 = 0 reads as a FAT32 BPB
])
def test_bad_bpb_fields(offset: int, value: bytes, match: str) -> None:
    data = bytearray(_BASE[16])
    data[offset:offset + len(value)] = value
    with pytest.raises(BadBootSector, match=match):
        run(FatFileSystem.mount(MemoryBlock(len(data) // 512, 512, bytes(data))))


def test_volume_larger_than_device() -> None:
    data = _BASE[16][: len(_BASE[16]) // 2]
    with pytest.raises(CorruptFilesystem, match="device has"):
        run(FatFileSystem.mount(MemoryBlock(len(data) // 512, 512, data)))


def test_file_larger_than_its_chain() -> None:
    block = MemoryBlock(len(_BASE[12]) // 512, 512, _BASE[12])
    fs = run(FatFileSystem.mount(block))
    node = run(fs._lookup("/dir/sub/x"))
    node.entry.size = 10**6
    run(fs._store(node))
    run(fs.flush())
    fs = run(FatFileSystem.mount(block))
    with pytest.raises(BadChain, match="holds"):
        run(_read(fs, "/dir/sub/x"))


def test_blank_device_is_not_a_filesystem() -> None:
    with pytest.raises(BadBootSector, match=r"blank.*format_if_blank"):
        run(FatFileSystem.mount(MemoryBlock(2048, 512)))
