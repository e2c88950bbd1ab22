"""Crash consistency: cut the writes anywhere; fsck.fat -a repairs; flushed files are intact."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from fat_support import CrashBlock, assert_fsck_clean, every_crash_cut, formatted, fsck, needs_dosfstools
from unik_fat.fs import FatFileSystem
from unik_fat.image import MemoryBlock, run

pytestmark = needs_dosfstools

#: Cut points per seed (raise FAT_CRASH_CUTS / FAT_CRASH_SEEDS for a longer run: `make fuzz-fat`).
CUTS = int(os.environ.get("FAT_CRASH_CUTS", "6"))


Checkpoints = list[tuple[int, dict[str, bytes]]]
Mods = list[tuple[int, str]]


async def _workload(block: CrashBlock, seed: int) -> tuple[Checkpoints, Mods]:
    """Random operations.

    Returns ``(writes done when each flush completed, the files then)`` and ``(writes
    done when a file was changed, its path)``.
    """
    rng = random.Random(seed)
    fs = await FatFileSystem.mount(block, cache_sectors=32)
    files: dict[str, bytes] = {}
    durable: dict[str, bytes] = {}
    checkpoints: Checkpoints = []
    mods: Mods = []
    dirs = ["/"]
    for step in range(60):
        op = rng.random()
        if op < 0.35 or not files:
            d = rng.choice(dirs)
            name = f"{d.rstrip('/')}/File {step} {'x' * rng.randrange(0, 30)}.bin"
            data = rng.randbytes(rng.randrange(0, 9000))
            f = await fs.open(name, "wb")
            await f.write(data)
            await f.close()
            files[name] = data
        elif op < 0.5:
            name = rng.choice(sorted(files))
            extra = rng.randbytes(rng.randrange(1, 5000))
            f = await fs.open(name, "ab")
            await f.write(extra)
            await f.close()
            files[name] += extra
            durable.pop(name, None)
            mods.append((block.count, name))
        elif op < 0.6:
            name = rng.choice(sorted(files))
            await fs.remove(name)
            del files[name]
            durable.pop(name, None)
            mods.append((block.count, name))
        elif op < 0.68:
            name = rng.choice(sorted(files))
            new = f"{rng.choice(dirs).rstrip('/')}/renamed {step}.dat"
            await fs.rename(name, new)
            files[new] = files.pop(name)
            durable.pop(name, None)
            mods.append((block.count, name))
        elif op < 0.75:
            name = rng.choice(sorted(files))
            size = rng.randrange(0, len(files[name]) + 1)
            f = await fs.open(name, "r+b")
            await f.truncate(size)
            await f.close()
            files[name] = files[name][:size]
            durable.pop(name, None)
            mods.append((block.count, name))
        elif op < 0.82:
            d = f"{rng.choice(dirs).rstrip('/')}/dir {step}"
            await fs.mkdir(d)
            dirs.append(d)
        else:
            await fs.flush()
            durable = dict(files)
            checkpoints.append((block.count, dict(durable)))
    await fs.flush()
    checkpoints.append((block.count, dict(files)))
    return checkpoints, mods


@pytest.mark.parametrize("seed", range(int(os.environ.get("FAT_CRASH_SEEDS", "9"))))
def test_crash_at_random_write(tmp_path: Path, seed: int) -> None:
    base = formatted(4 << 20, fat_type=12) if seed % 3 == 0 else formatted(
        34 << 20, fat_type=32, sectors_per_cluster=1) if seed % 3 == 1 else formatted(16 << 20, fat_type=16)
    total = run(_workload(CrashBlock(base, None), seed))[0][-1][0]
    rng = random.Random(1000 + seed)
    for cut in sorted(rng.sample(range(1, total), min(CUTS, total - 1))):
        block = CrashBlock(base, cut, seed=cut)
        checkpoints, mods = run(_workload(block, seed))
        # The files of the last flush completed before the cut must be intact, unless
        # they were changed between that flush and the cut.
        expect: dict[str, bytes] = {}
        for done, files in checkpoints:
            if done <= cut:
                changed = {path for when, path in mods if done <= when <= cut}  # the torn write may land
                expect = {p: d for p, d in files.items() if p not in changed}
        img = tmp_path / f"crash-{cut}.img"
        img.write_bytes(bytes(block.persisted))
        r = fsck(img, "-a", "-w")
        assert r.returncode in (0, 1), r.stdout + r.stderr
        assert_fsck_clean(img)
        after = MemoryBlock(base.sectors, base.sector_size, img.read_bytes())

        async def check(after: MemoryBlock, expect: dict[str, bytes], cut: int) -> None:
            fs = await FatFileSystem.mount(after)
            for path, data in expect.items():
                f = await fs.open(path, "rb")
                got = await f.read()
                await f.close()
                assert got == data, (cut, path, len(got), len(data))

        run(check(after, expect, cut))


@pytest.mark.parametrize("fat", [12, 32])
def test_rename_never_loses_a_flushed_file(tmp_path: Path, fat: int) -> None:
    opts = {"fat_type": 32, "sectors_per_cluster": 1} if fat == 32 else {"fat_type": 12}
    base = formatted({12: 4 << 20, 32: 34 << 20}[fat], **opts)
    data = bytes(range(256)) * 40

    async def setup() -> None:
        fs = await FatFileSystem.mount(base)
        await fs.mkdir("/dest")
        for i in range(20):  # fill the first directory sectors so the names land apart
            f = await fs.open(f"/filler {i} with a long name.txt", "wb")
            await f.close()
        f = await fs.open("/The Original Name.bin", "wb")
        await f.write(data)
        await f.close()
        await fs.disconnect()

    async def move(block: CrashBlock) -> None:
        fs = await FatFileSystem.mount(block)
        # dirty the old entry's sector first, so a naive write-back would free it first
        await fs.set_mtime("/The Original Name.bin", 1_600_000_000 * 10**9)
        await fs.rename("/The Original Name.bin", "/dest/The New Name.bin")
        await fs.flush()

    async def check(after: MemoryBlock, cut: int) -> None:
        fs = await FatFileSystem.mount(after)
        found = [p for p in ("/The Original Name.bin", "/dest/The New Name.bin") if await fs.exists(p)]
        assert found, f"the file is gone after a cut at write {cut}"
        f = await fs.open(found[0], "rb")
        assert await f.read() == data
        await f.close()

    run(setup())
    every_crash_cut(base, move, check, tmp_path, "rename")
