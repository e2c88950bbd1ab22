"""Clocks and sleeping inside a unik VM (the guest kernel's clocks, kvm-clock or TSC)."""

from __future__ import annotations

import asyncio
import time


class GuestMonotonicClock:
    """A :class:`unik.devices.MonotonicClock`: ``CLOCK_MONOTONIC`` of the guest kernel."""

    @classmethod
    async def connect(cls) -> GuestMonotonicClock:
        """Open the clock."""
        return cls()

    async def disconnect(self) -> None:
        """Nothing to release."""

    def now_ns(self) -> int:
        """Nanoseconds since boot."""
        return time.monotonic_ns()


class GuestWallClock:
    """A :class:`unik.devices.WallClock`: the guest's ``CLOCK_REALTIME``, set from the RTC at boot."""

    @classmethod
    async def connect(cls) -> GuestWallClock:
        """Open the clock."""
        return cls()

    async def disconnect(self) -> None:
        """Nothing to release."""

    def now_ns(self) -> int:
        """Nanoseconds since the epoch."""
        return time.time_ns()


class GuestSleep:
    """A :class:`unik.devices.Sleep` on asyncio's timers (the guest kernel's hrtimers)."""

    @classmethod
    async def connect(cls) -> GuestSleep:
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
