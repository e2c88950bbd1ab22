"""A console on standard output (unix, spt and hvt: the monitor's console hypercall serves it)."""

from __future__ import annotations

import os
import sys

from unik.errors import DeviceClosed


class StdoutConsole:
    """A :class:`unik.devices.Console` writing to standard output."""

    def __init__(self) -> None:
        self._closed = False

    @classmethod
    async def connect(cls) -> StdoutConsole:
        """Open the console."""
        return cls()

    async def disconnect(self) -> None:
        """Flush and close the console (standard output stays open)."""
        sys.stdout.flush()
        self._closed = True

    def log(self, message: str) -> None:
        """Write one line and flush it."""
        if self._closed:
            raise DeviceClosed("console is disconnected")
        sys.stdout.write(message + "\n")
        sys.stdout.flush()

    async def write(self, data: bytes) -> None:
        """Write raw bytes."""
        if self._closed:
            raise DeviceClosed("console is disconnected")
        sys.stdout.flush()
        view = memoryview(data)
        while view:
            view = view[os.write(sys.stdout.fileno(), view):]
