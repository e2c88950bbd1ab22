"""Devices every target gets from the kernel CPython runs on.

A unik application always runs on some Linux kernel: the host's (the unix target), a
guest's (the VM targets) or the host's behind a sandbox (spt, hvt's shim).  Its standard
output, clocks, asyncio's timers and ``getrandom(2)`` serve the same on all of them, so
the implementations live here and each target's providers point at them
(:func:`unik.provider.posix_providers`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from .errors import DeviceClosed


class StdoutConsole:
    """A :class:`unik.devices.Console` on standard output.

    Standard output is the terminal or pipe of a unix process, the descriptor the spt
    tender keeps, hvt's console hypercall, and in a VM the serial port or Xen's ``hvc0``
    (the init's descriptors 0-2).  Writes go to the descriptor after ``sys.stdout`` is
    flushed, so ``print`` and the console keep their order.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._closed = False

    @classmethod
    async def connect(cls) -> StdoutConsole:
        """Open the console on standard output's descriptor."""
        return cls(sys.stdout.fileno())

    async def disconnect(self) -> None:
        """Flush; standard output itself stays open for tracebacks and the exit status."""
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


class PosixMonotonicClock:
    """A :class:`unik.devices.MonotonicClock` over ``CLOCK_MONOTONIC``."""

    @classmethod
    async def connect(cls) -> PosixMonotonicClock:
        """Open the clock."""
        return cls()

    async def disconnect(self) -> None:
        """Nothing to release."""

    def now_ns(self) -> int:
        """Nanoseconds since an arbitrary origin (the kernel's boot)."""
        return time.monotonic_ns()


class PosixWallClock:
    """A :class:`unik.devices.WallClock` over ``CLOCK_REALTIME``."""

    @classmethod
    async def connect(cls) -> PosixWallClock:
        """Open the clock."""
        return cls()

    async def disconnect(self) -> None:
        """Nothing to release."""

    def now_ns(self) -> int:
        """Nanoseconds since the epoch."""
        return time.time_ns()


class PosixSleep:
    """A :class:`unik.devices.Sleep` on asyncio's timers."""

    @classmethod
    async def connect(cls) -> PosixSleep:
        """Open the device."""
        return cls()

    async def disconnect(self) -> None:
        """Nothing to release."""

    async def sleep_ns(self, ns: int) -> None:
        """Sleep ``ns`` nanoseconds."""
        await asyncio.sleep(max(ns, 0) / 1e9)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` seconds."""
        await asyncio.sleep(max(seconds, 0.0))


class GetrandomRandom:
    """A :class:`unik.devices.Random` backed by the kernel's CSPRNG (``getrandom(2)``)."""

    def __init__(self) -> None:
        self._closed = False

    @classmethod
    async def connect(cls) -> GetrandomRandom:
        """Open the generator."""
        return cls()

    async def disconnect(self) -> None:
        """Close the generator."""
        self._closed = True

    def generate(self, n: int) -> bytes:
        """``n`` random bytes (getrandom blocks only until the kernel is seeded)."""
        if self._closed:
            raise DeviceClosed("random device is disconnected")
        return os.getrandom(n) if n else b""


class GetrandomEntropy:
    """A :class:`unik.devices.EntropySource` backed by ``getrandom(2)``."""

    name = "getrandom"
    quality = 8.0

    def __init__(self) -> None:
        self._closed = False

    @classmethod
    async def connect(cls) -> GetrandomEntropy:
        """Open the source."""
        return cls()

    async def disconnect(self) -> None:
        """Close the source."""
        self._closed = True

    async def read(self, n: int) -> bytes:
        """``n`` bytes from the kernel."""
        if self._closed:
            raise DeviceClosed("entropy source is disconnected")
        out = bytearray()
        while len(out) < n:
            out += os.getrandom(min(n - len(out), 256))
        return bytes(out)
