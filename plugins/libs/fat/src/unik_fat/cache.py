"""A write-back cache of metadata sectors (directories), bounded in size.

Sectors here are the filesystem's logical sectors (``BPB_BytsPerSec``), which may span
several device sectors.  Dirty sectors are remembered in the order they were first
dirtied and written back in that order by :meth:`SectorCache.write_back`, which the
filesystem calls at the right point of its write order (data, FAT, directories).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from unik.devices import Block


class SectorCache:
    """Logical sectors of ``block``, read on demand and written back on request."""

    def __init__(self, block: Block, sector_size: int, capacity: int = 4096) -> None:
        self.block = block
        self.sector_size = sector_size
        self.factor = sector_size // block.sector_size
        self.capacity = max(capacity, 16)
        self._sectors: dict[int, bytearray] = {}
        self._dirty: dict[int, None] = {}
        #: Called when too many sectors are dirty; must write everything back in order.
        self.on_pressure: Callable[[], Awaitable[None]] | None = None
        self.hits = self.misses = 0

    async def read_raw(self, sector: int, count: int) -> bytes:
        """``count`` logical sectors straight from the device (no caching)."""
        return await self.block.read(sector * self.factor, count * self.factor)

    async def write_raw(self, sector: int, data: bytes) -> None:
        """Logical sectors straight to the device (no caching)."""
        await self.block.write(sector * self.factor, data)

    async def get(self, sector: int) -> bytearray:
        """The cached sector (a mutable buffer: call :meth:`mark_dirty` after changing it)."""
        buf = self._sectors.get(sector)
        if buf is not None:
            self.hits += 1
            return buf
        self.misses += 1
        if len(self._sectors) >= self.capacity:
            self._evict()
        buf = bytearray(await self.read_raw(sector, 1))
        self._sectors[sector] = buf
        return buf

    def put(self, sector: int, data: bytes) -> None:
        """Cache ``data`` as the current (clean) content of ``sector``."""
        if len(self._sectors) >= self.capacity:
            self._evict()
        self._sectors[sector] = bytearray(data)
        self._dirty.pop(sector, None)

    async def mark_dirty(self, sector: int) -> None:
        """Remember that ``sector`` must be written back."""
        self._dirty[sector] = None
        if len(self._dirty) > self.capacity // 2 and self.on_pressure is not None:
            await self.on_pressure()

    def drop(self, sector: int) -> None:
        """Forget ``sector`` (its clusters were freed), dirty or not."""
        self._sectors.pop(sector, None)
        self._dirty.pop(sector, None)

    @property
    def dirty_count(self) -> int:
        """How many sectors wait to be written back."""
        return len(self._dirty)

    async def write_back(self) -> None:
        """Write dirty sectors in the order they were dirtied, merging adjacent ones."""
        order = list(self._dirty)
        self._dirty.clear()
        i = 0
        while i < len(order):
            j = i + 1
            while j < len(order) and order[j] == order[j - 1] + 1:
                j += 1
            start = order[i]
            data = b"".join(bytes(self._sectors[s]) for s in order[i:j])
            await self.write_raw(start, data)
            i = j

    def _evict(self) -> None:
        # Oldest clean sectors go first (dict order is insertion order).
        for s in list(self._sectors)[: max(1, len(self._sectors) // 8)]:
            if s not in self._dirty:
                del self._sectors[s]
        if len(self._sectors) >= self.capacity:
            # Everything is dirty: the pressure hook keeps that from growing without bound,
            # so allow a temporary overshoot rather than lose a dirty sector.
            pass
