"""Conformance of ``Random`` and ``EntropySource``."""

from __future__ import annotations

from typing import Any

from ..devices import EntropySource, Random
from .base import DeviceConformance


def _looks_random(data: bytes) -> bool:
    """Not constant, and no byte value more than a few times its share (a gross check, not a test of quality)."""
    counts = [data.count(bytes([b])) for b in range(256)]
    return len(set(data)) > 1 and max(counts) <= max(8, 4 * len(data) // 256)


class RandomConformance(DeviceConformance):
    """Exactly the bytes asked for, different every time."""

    protocol = Random

    def test_generates_what_is_asked(self) -> None:
        """Generates what is asked."""

        async def body(rng: Any) -> None:
            for n in (0, 1, 16, 32, 1000, 1 << 20):
                out = rng.generate(n)
                assert isinstance(out, bytes) and len(out) == n
            a, b = rng.generate(32), rng.generate(32)
            assert a != b
            assert _looks_random(rng.generate(4096))

        self.check(body)


class EntropySourceConformance(DeviceConformance):
    """A named source with a quality estimate that returns exactly the bytes asked for."""

    protocol = EntropySource

    def test_reads_exactly_n_bytes(self) -> None:
        """Reads exactly n bytes."""

        async def body(source: Any) -> None:
            assert isinstance(source.name, str) and source.name
            assert 0.0 <= float(source.quality) <= 8.0
            for n in (1, 16, 64):
                out = await source.read(n)
                assert isinstance(out, bytes) and len(out) == n
            assert await source.read(32) != await source.read(32)

        self.check(body)
