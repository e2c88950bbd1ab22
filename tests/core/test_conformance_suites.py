"""The conformance suites catch a provider that breaks its protocol (and say what it broke)."""

from __future__ import annotations

from typing import Any

import pytest
from unik.errors import DeviceClosed, DeviceError, OutOfRange, ReadOnlyDevice, UnsupportedOperation
from unik.testing import BlockConformance, RandomConformance


class RamDisk:
    """A small in-memory Block; ``strict=False`` forgets to check ranges."""

    def __init__(self, strict: bool, read_only: bool = False) -> None:
        self.sector_size, self.sectors, self.read_only = 512, 16, read_only
        self.data = bytearray(self.sector_size * self.sectors)
        self.strict, self.closed = strict, False

    def _range(self, sector: int, count: int) -> None:
        if self.closed:
            raise DeviceClosed("ram disk")
        if self.strict and (sector < 0 or count < 0 or sector + count > self.sectors):
            raise OutOfRange(f"{sector}+{count}")

    async def read(self, sector: int, count: int) -> bytes:
        self._range(sector, count)
        return bytes(self.data[sector * 512:(sector + count) * 512])

    async def write(self, sector: int, data: Any) -> None:
        self._range(sector, len(data) // 512)
        if self.read_only:
            raise ReadOnlyDevice("ram disk")
        if len(data) % 512:
            raise DeviceError("partial sector")
        self.data[sector * 512:sector * 512 + len(data)] = data

    async def flush(self) -> None:
        self._range(0, 0)

    async def discard(self, sector: int, count: int) -> None:
        raise UnsupportedOperation("ram disk")

    async def disconnect(self) -> None:
        self.closed = True


class TestStrictRamDisk(BlockConformance):
    """A conforming third-party provider: the whole suite passes."""

    async def connect(self) -> Any:
        return RamDisk(strict=True)

    async def connect_read_only(self) -> Any:
        return RamDisk(strict=True, read_only=True)


def test_a_provider_that_skips_range_checks_fails_naming_the_check() -> None:
    class Sloppy(BlockConformance):
        async def connect(self) -> Any:
            return RamDisk(strict=False)

    Sloppy().test_written_sectors_read_back()  # what it does right still passes
    with pytest.raises(AssertionError, match="read past the end did not raise OutOfRange"):
        Sloppy().test_out_of_range_and_partial_sectors_are_refused()


def test_a_constant_generator_fails_the_random_suite() -> None:
    class Constant:
        def generate(self, n: int) -> bytes:
            return bytes(n)

        async def disconnect(self) -> None:
            return None

    class Broken(RandomConformance):
        async def connect(self) -> Any:
            return Constant()

    Broken().test_satisfies_the_protocol()
    with pytest.raises(AssertionError):
        Broken().test_generates_what_is_asked()


def test_a_suite_without_connect_says_what_to_define() -> None:
    with pytest.raises(NotImplementedError, match="must define `async def connect"):
        BlockConformance().test_geometry()
