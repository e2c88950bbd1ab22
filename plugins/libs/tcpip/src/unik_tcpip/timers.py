"""One task that runs the stack's timers on the ``Sleep`` and ``MonotonicClock`` devices.

Timers are lazy: :meth:`Timers.at` cannot be cancelled, so a callback checks on its
own whether it is still due (a TCP connection keeps its deadlines in fields and
re-arms for the earliest).  This keeps re-arming cheap on every segment.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable

from unik.devices import MonotonicClock, Sleep
from unik.posix import PosixMonotonicClock

log = logging.getLogger(__name__)

_IDLE_NS = 3600 * 10**9


class Timers:
    """A heap of ``(deadline_ns, callback)`` served by one task."""

    def __init__(self, clock: MonotonicClock, sleep: Sleep) -> None:
        self.clock = clock
        #: The clock's reading (its bound method: this is called several times per segment;
        #: for the host's monotonic clock, ``time.monotonic_ns`` itself).
        self.now_ns: Callable[[], int] = (
            time.monotonic_ns if type(clock) is PosixMonotonicClock else clock.now_ns)
        self._sleep = sleep
        self._heap: list[tuple[int, int, Callable[[int], None]]] = []
        self._counter = itertools.count()
        self._target = 0
        self._sleeper: asyncio.Task[None] | None = None
        self.errors = 0


    def at(self, deadline_ns: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(now_ns)`` once, at or after ``deadline_ns``."""
        heapq.heappush(self._heap, (deadline_ns, next(self._counter), callback))
        if deadline_ns < self._target and self._sleeper is not None and not self._sleeper.done():
            self._sleeper.cancel()

    def after(self, delay_ns: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(now_ns)`` once, ``delay_ns`` from now."""
        self.at(self.clock.now_ns() + delay_ns, callback)

    def run_due(self) -> None:
        """Run every callback whose deadline has passed."""
        now = self.clock.now_ns()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _deadline, _n, callback = heapq.heappop(heap)
            try:
                callback(now)
            except Exception:
                self.errors += 1
                log.exception("timer callback %r failed", callback)

    async def run(self) -> None:
        """Serve timers until cancelled."""
        while True:
            self.run_due()
            now = self.clock.now_ns()
            delay = self._heap[0][0] - now if self._heap else _IDLE_NS
            self._target = now + delay
            self._sleeper = asyncio.ensure_future(self._sleep.sleep_ns(max(delay, 0)))
            try:
                await asyncio.wait({self._sleeper})
            finally:
                self._target = 0
                if not self._sleeper.done():
                    self._sleeper.cancel()
