"""The console of a unik VM: the serial port (``/dev/console`` is the init's fds 0-2)."""

from __future__ import annotations

import os
import sys

from unik.errors import DeviceClosed


class SerialConsole:
    """A :class:`unik.devices.Console` on the VM's serial port."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._closed = False

    @classmethod
    async def connect(cls) -> SerialConsole:
        """Open the console (standard output, which the init connects to the serial port)."""
        return cls(sys.stdout.fileno())

    async def disconnect(self) -> None:
        """Flush; the console itself stays open for tracebacks and the init."""
        sys.stdout.flush()
        self._closed = True

    def _write(self, data: bytes) -> None:
        if self._closed:
            raise DeviceClosed("console is disconnected")
        sys.stdout.flush()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def log(self, message: str) -> None:
        """Write one line."""
        self._write(message.encode("utf-8", "replace") + b"\n")

    async def write(self, data: bytes) -> None:
        """Write raw bytes."""
        self._write(bytes(data))
