"""Conformance of ``Block``."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from ..devices import Block
from ..errors import DeviceClosed, DeviceError, OutOfRange, ReadOnlyDevice, UnsupportedOperation
from .base import DeviceConformance, raises


class BlockConformance(DeviceConformance):
    """Whole sectors written are read back, anywhere on the disk; misuse gets a typed error.

    :meth:`connect` returns a writable disk of at least 8 sectors whose contents the
    suite may overwrite; :meth:`connect_read_only`, a read-only one (``None``: the
    provider has no read-only mode, and that check is skipped saying so).
    """

    protocol = Block

    async def connect_read_only(self) -> Any:
        """A read-only disk of the same provider, or ``None``."""
        return None

    def test_geometry(self) -> None:
        """Geometry."""

        async def body(disk: Any) -> None:
            assert disk.sector_size >= 512 and disk.sector_size & (disk.sector_size - 1) == 0
            assert disk.sectors >= 8 and disk.read_only is False

        self.check(body)

    def test_written_sectors_read_back(self) -> None:
        """Written sectors read back."""

        async def body(disk: Any) -> None:
            size, last = disk.sector_size, disk.sectors - 1
            data = os.urandom(3 * size)
            await disk.write(1, data)
            assert await disk.read(1, 3) == data
            assert await disk.read(2, 1) == data[size:2 * size]
            await disk.write(last, bytearray(b"\xa5" * size))  # any buffer
            await disk.write(0, memoryview(bytes(size)))
            await disk.flush()
            assert await disk.read(last, 1) == b"\xa5" * size
            assert await disk.read(0, 0) == b""

        self.check(body)

    def test_out_of_range_and_partial_sectors_are_refused(self) -> None:
        """Out of range and partial sectors are refused."""

        async def body(disk: Any) -> None:
            size, n = disk.sector_size, disk.sectors
            await raises(OutOfRange, lambda: disk.read(n, 1), "read past the end")
            await raises(OutOfRange, lambda: disk.read(n - 1, 2), "read across the end")
            await raises(OutOfRange, lambda: disk.read(-1, 1), "read at a negative sector")
            await raises(OutOfRange, lambda: disk.write(n, bytes(size)), "write past the end")
            await raises(DeviceError, lambda: disk.write(0, bytes(size + 1)), "write of a partial sector")

        self.check(body)

    def test_discard_zeroes_or_is_unsupported(self) -> None:
        """Discard zeroes or is unsupported."""

        async def body(disk: Any) -> None:
            await disk.write(2, b"\x01" * disk.sector_size)
            try:
                await disk.discard(2, 1)
            except UnsupportedOperation:
                return
            assert await disk.read(2, 1) == bytes(disk.sector_size)

        self.check(body)

    def test_read_only_disk_refuses_writes(self) -> None:
        """Read only disk refuses writes."""

        async def run() -> None:
            disk = await self.connect_read_only()
            if disk is None:
                pytest.skip(f"{type(self).__name__}: the provider has no read-only mode (connect_read_only)")
            try:
                assert disk.read_only is True
                await disk.read(0, 1)
                sector = bytes(disk.sector_size)
                await raises(ReadOnlyDevice, lambda: disk.write(0, sector), "write to a read-only disk")
            finally:
                await disk.disconnect()

        asyncio.run(run())

    def test_disconnected_disk_raises_device_closed(self) -> None:
        """Disconnected disk raises device closed."""

        async def body(disk: Any) -> None:
            await disk.disconnect()
            await raises(DeviceClosed, lambda: disk.read(0, 1), "read from a disconnected disk")
            await raises(DeviceClosed, lambda: disk.write(0, bytes(disk.sector_size)), "write to a disconnected disk")

        self.check(body)
