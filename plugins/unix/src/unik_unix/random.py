"""Randomness on Unix: the host kernel's getrandom(2)."""

from __future__ import annotations

import os

from unik.errors import DeviceClosed


class GetrandomRandom:
    """A :class:`unik.devices.Random` backed by the host kernel's CSPRNG."""

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
    """A :class:`unik.devices.EntropySource` backed by getrandom(2)."""

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
