"""Conformance of ``MonotonicClock``, ``WallClock`` and ``Sleep``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..devices import MonotonicClock, Sleep, WallClock
from .base import DeviceConformance


class MonotonicClockConformance(DeviceConformance):
    """A clock that never goes backwards and measures elapsed time in nanoseconds."""

    protocol = MonotonicClock

    def test_never_goes_backwards_and_advances(self) -> None:
        """Never goes backwards and advances."""

        async def body(clock: Any) -> None:
            readings = [clock.now_ns() for _ in range(1000)]
            assert all(isinstance(r, int) for r in readings)
            assert readings == sorted(readings)
            start, host = clock.now_ns(), time.monotonic_ns()
            await asyncio.sleep(0.02)
            elapsed, host_elapsed = clock.now_ns() - start, time.monotonic_ns() - host
            assert 0.5 * host_elapsed <= elapsed <= 2 * host_elapsed + 10_000_000, (elapsed, host_elapsed)

        self.check(body)


class WallClockConformance(DeviceConformance):
    """Calendar time in nanoseconds since the Unix epoch."""

    protocol = WallClock
    #: How far the device may be from the host's clock (a guest's clock may lag a little).
    tolerance_s = 5.0

    def test_is_the_time_since_the_epoch(self) -> None:
        """Is the time since the epoch."""

        async def body(clock: Any) -> None:
            now = clock.now_ns()
            assert isinstance(now, int)
            assert abs(now - time.time_ns()) <= self.tolerance_s * 1e9

        self.check(body)


class SleepConformance(DeviceConformance):
    """Sleeps at least as long as asked, without blocking the event loop."""

    protocol = Sleep

    def test_sleeps_at_least_as_long_as_asked(self) -> None:
        """Sleeps at least as long as asked."""

        async def body(sleep: Any) -> None:
            for nanoseconds in (True, False):
                start = time.monotonic()
                await (sleep.sleep_ns(20_000_000) if nanoseconds else sleep.sleep(0.02))
                assert time.monotonic() - start >= 0.019
            await sleep.sleep(0)
            await sleep.sleep_ns(0)

        self.check(body)

    def test_does_not_block_the_loop(self) -> None:
        """Does not block the loop."""

        async def body(sleep: Any) -> None:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.005)
                    ticks += 1

            task = asyncio.ensure_future(ticker())
            await sleep.sleep(0.1)
            task.cancel()
            assert ticks >= 3, "other tasks ran while the device slept"

        self.check(body)
