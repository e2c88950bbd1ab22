"""Clocks and sleeping on Unix."""

from __future__ import annotations

import asyncio
import time


class HostMonotonicClock:
    """A :class:`unik.devices.MonotonicClock` over ``CLOCK_MONOTONIC``."""

    @classmethod
    async def connect(cls) -> HostMonotonicClock:
        """Open the clock."""
        return cls()

    async def disconnect(self) -> None:
        """Nothing to release."""

    def now_ns(self) -> int:
        """Nanoseconds since an arbitrary origin."""
        return time.monotonic_ns()


class HostWallClock:
    """A :class:`unik.devices.WallClock` over ``CLOCK_REALTIME``."""

    @classmethod
    async def connect(cls) -> HostWallClock:
        """Open the clock."""
        return cls()

    async def disconnect(self) -> None:
        """Nothing to release."""

    def now_ns(self) -> int:
        """Nanoseconds since the epoch."""
        return time.time_ns()


class HostSleep:
    """A :class:`unik.devices.Sleep` on asyncio's timers."""

    @classmethod
    async def connect(cls) -> HostSleep:
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
