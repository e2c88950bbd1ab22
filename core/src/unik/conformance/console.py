"""Conformance of ``Console``."""

from __future__ import annotations

from typing import Any

from ..devices import Console
from ..errors import DeviceClosed
from .base import DeviceConformance, raises


class ConsoleConformance(DeviceConformance):
    """Lines and raw bytes reach the console's output, in order; a closed console says so.

    Define :meth:`written` too: the bytes the console has output so far (capture its
    file descriptor, e.g. with pytest's ``capfd``).
    """

    protocol = Console

    def written(self) -> bytes:
        """Everything the console under test has output so far."""
        raise NotImplementedError(f"{type(self).__name__} must define `written()` returning the console's output")

    def test_lines_and_bytes_in_order(self) -> None:
        """Lines and bytes in order."""

        async def body(console: Any) -> None:
            console.log("unik conformance: héllo")
            await console.write(b"raw \x00\xff bytes\n")
            console.log("second line")
            out = self.written()
            first = out.find("unik conformance: héllo\n".encode())
            assert first >= 0, out
            assert out.find(b"raw \x00\xff bytes\n", first) > first
            assert out.rfind(b"second line\n") > out.find(b"raw \x00\xff bytes\n")

        self.check(body)

    def test_closed_console_raises_device_closed(self) -> None:
        """Closed console raises device closed."""

        async def body(console: Any) -> None:
            await console.disconnect()
            await raises(DeviceClosed, lambda: console.log("after"), "log() on a disconnected console")
            await raises(DeviceClosed, lambda: console.write(b"after"), "write() on a disconnected console")

        self.check(body)
