"""A FAT filesystem around a VM snapshot: written back before it (BEFORE_SNAPSHOT), read anew after (RESUMED)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fat_support import formatted, mount, run
from unik import lifecycle
from unik_fat.image import MemoryBlock


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    lifecycle.reset()
    yield
    lifecycle.reset()


async def _write(fs: object, path: str, data: bytes) -> None:
    f = await fs.open(path, "wb")  # type: ignore[attr-defined]
    await f.write(data)
    await f.close()


async def _read(fs: object, path: str) -> bytes:
    f = await fs.open(path, "rb")  # type: ignore[attr-defined]
    data: bytes = await f.read()
    await f.close()
    return data


def test_dirty_sectors_reach_the_disk_before_the_snapshot() -> None:
    block = formatted(4 << 20)

    async def go() -> None:
        fs = await mount(block)
        await _write(fs, "/before.txt", b"unflushed")
        assert fs.vol.cache.dirty_count or fs.vol.fat_dirty  # still in memory
        await lifecycle.announce_and_wait(lifecycle.BEFORE_SNAPSHOT)
        assert not fs.vol.cache.dirty_count and not fs.vol.fat_dirty
        # What another reader of the disk sees now (the snapshot holds no more than the disk).
        other = await mount(MemoryBlock(block.sectors, block.sector_size, bytes(block.data)))
        assert await _read(other, "/before.txt") == b"unflushed"

    run(go())


def test_a_restored_filesystem_reads_the_disk_as_it_is_now() -> None:
    block = formatted(4 << 20)

    async def go() -> None:
        fs = await mount(block)
        await _write(fs, "/old.txt", b"from the snapshot")
        await fs.flush()
        assert await fs.listdir("/") == ["old.txt"]
        # While the snapshot waits, someone else changes the disk.
        host = await mount(block)
        lifecycle.unsubscribe(lifecycle.RESUMED, host._resumed)
        await host.remove("/old.txt")
        await _write(host, "/new.txt", b"written after the snapshot")
        await host.disconnect()
        await lifecycle.announce_and_wait(lifecycle.RESUMED)
        assert await fs.listdir("/") == ["new.txt"]
        assert await _read(fs, "/new.txt") == b"written after the snapshot"
        await fs.disconnect()
        # Disconnected filesystems are no longer renewed.
        await lifecycle.announce_and_wait(lifecycle.RESUMED)

    run(go())
