"""Randomness inside a unik VM.

The init seeds the guest kernel's pool from virtio-rng (the host's randomness) at every boot,
and the kernel mixes in RDRAND where the CPU has it, so ``getrandom`` never blocks.
:class:`VirtioEntropy` reads the host's randomness directly from virtio-rng, XORed with
the CPU's RDRAND where present (:mod:`unik_vmguest._rdrand`): mixing two independent
sources this way is never weaker than the better of them.
"""

from __future__ import annotations

import asyncio
import os
from types import ModuleType

from unik import accel
from unik.errors import DeviceClosed, DeviceError

HWRNG = "/dev/hwrng"
#: /dev/hwrng cannot be polled: a read that finds no data yet (EAGAIN) is retried after
#: these many seconds, doubling up to the cap (virtio-rng answers within a millisecond).
RETRY_FIRST_S, RETRY_MAX_S = 0.0005, 0.05
rdrand: ModuleType


def _use_rdrand(module: ModuleType) -> None:
    global rdrand
    rdrand = module


accel.twin("unik_vmguest._rdrand", "unik_vmguest._rdrand_pure", _use_rdrand)


class VirtioEntropy:
    """A :class:`unik.devices.EntropySource`: virtio-rng (``/dev/hwrng``) and RDRAND, else getrandom."""

    def __init__(self, fd: int | None, use_rdrand: bool | None = None) -> None:
        self._fd = fd
        self._closed = False
        self._rdrand = rdrand.available() if use_rdrand is None else use_rdrand
        names = (["virtio-rng"] if fd is not None else []) + (["rdrand"] if self._rdrand else [])
        self.name = "+".join(names) or "getrandom"
        self.quality = 8.0

    @classmethod
    async def connect(cls, path: str = HWRNG) -> VirtioEntropy:
        """Open virtio-rng; without it, fall back to the seeded kernel CSPRNG."""
        try:
            fd: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            fd = None
        except OSError as exc:
            raise DeviceError(f"cannot open {path}: {exc}") from exc
        return cls(fd)

    async def disconnect(self) -> None:
        """Close the device."""
        if self._fd is not None and not self._closed:
            os.close(self._fd)
        self._closed = True

    async def read(self, n: int) -> bytes:
        """``n`` bytes from the source."""
        if self._closed:
            raise DeviceClosed("entropy source is disconnected")
        if n <= 0:
            return b""
        if self._fd is None:
            raw = os.getrandom(n) if not self._rdrand else b""
        else:
            raw = await self._read_hwrng(self._fd, n)
        if self._rdrand:
            mixed = rdrand.read(n)
            raw = bytes(a ^ b for a, b in zip(raw, mixed, strict=True)) if raw else mixed
        return bytes(raw)

    async def _read_hwrng(self, fd: int, n: int) -> bytes:
        # Non-blocking reads, retried while the host fills the request: no thread (whose
        # pool would cost ~20 ms of a boot under emulation), and the loop never stalls.
        out = bytearray()
        delay = RETRY_FIRST_S
        while len(out) < n:
            try:
                chunk = os.read(fd, min(n - len(out), 64))
            except BlockingIOError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if not chunk:
                raise DeviceError(f"{HWRNG} returned no data")
            out += chunk
            delay = RETRY_FIRST_S
        return bytes(out)
