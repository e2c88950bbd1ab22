"""Fortuna's accumulator: 32 entropy pools hashed with SHA-256 (*Cryptography Engineering*, 9.5).

A source adds events to the pools in turn (each source keeps its own round-robin
index), so an attacker who controls some sources cannot starve one pool.  An event is
``source_id || len(data) || data`` hashed into the pool.  Reseed number ``r`` (counting
from 1) uses pool ``i`` when ``2^i`` divides ``r``: pool 0 every time, pool 1 every
other time, pool 31 once in 2^31 reseeds.  Used pools are emptied.
"""

from __future__ import annotations

from typing import Any

from unik.record import Record

from .generator import sha256

NUM_POOLS = 32
#: Bytes of events pool 0 must have collected before a reseed (Fortuna's MinPoolSize).
MIN_POOL_SIZE = 64
#: Longest event: Fortuna's events are short; longer input is hashed first.
MAX_EVENT = 32
_FRESH: Any = object()  # Pool's default: a new SHA-256


class Pool(Record):
    """One pool: a running SHA-256 and how many bytes went into it.

    A :class:`unik.record.Record` (``repr`` and ``==`` as the dataclass it was), not a
    dataclass: those compile generated code as the library is imported.
    """

    __slots__ = ("hash", "length")
    hash: Any
    length: int

    def __init__(self, hash: Any = _FRESH, length: int = 0) -> None:
        self.hash = sha256() if hash is _FRESH else hash
        self.length = length


class Pools:
    """The 32 pools and the reseed schedule."""

    def __init__(self) -> None:
        self.pools = [Pool() for _ in range(NUM_POOLS)]
        self.reseeds = 0
        self._next: dict[int, int] = {}

    @property
    def ready(self) -> bool:
        """Whether pool 0 holds enough to reseed."""
        return self.pools[0].length >= MIN_POOL_SIZE

    def add(self, source_id: int, data: bytes, pool: int | None = None) -> int:
        """Add one event from ``source_id`` (0-255) to ``pool`` or the source's next pool.

        Events longer than 32 bytes are replaced by their SHA-256 first, as Fortuna
        asks.  Returns the pool used.
        """
        if not 0 <= source_id <= 255:
            raise ValueError("source_id must be 0-255")
        if len(data) > MAX_EVENT:
            data = sha256(data).digest()
        if pool is None:
            pool = self._next.get(source_id, 0)
            self._next[source_id] = (pool + 1) % NUM_POOLS
        p = self.pools[pool]
        p.hash.update(bytes((source_id, len(data))) + data)
        p.length += 2 + len(data)
        return pool

    def add_spread(self, source_id: int, data: bytes) -> None:
        """Add ``data`` as 32-byte events spread over the source's next pools."""
        for i in range(0, len(data), MAX_EVENT):
            self.add(source_id, data[i:i + MAX_EVENT])

    @staticmethod
    def pools_for(reseed: int) -> list[int]:
        """The pools reseed number ``reseed`` (from 1) uses: ``i`` while ``2^i`` divides it."""
        used = []
        for i in range(NUM_POOLS):
            if reseed % (1 << i):
                break
            used.append(i)
        return used

    def drain(self) -> bytes:
        """Count a reseed and return the seed: the digests of the pools it uses, emptied."""
        self.reseeds += 1
        seed = []
        for i in self.pools_for(self.reseeds):
            seed.append(self.pools[i].hash.digest())
            self.pools[i] = Pool()
        return b"".join(seed)
