"""An in-memory :class:`unik.devices.Network` for suites that join unik's stacks without a kernel.

:class:`QueuedNetwork` is the receiving half every such device shares: frames handed to
:meth:`~QueuedNetwork.deliver` wait in a queue that ``read`` empties in batches.  A suite's
device adds how its frames leave (``write``): tests/tcpip's ``SimNetwork`` through a hub
with seeded impairments, tests/tls's ``MemoryNetwork`` straight to its peer.
"""

from __future__ import annotations

import asyncio
from collections import deque

from unik.devices import NetworkStats, Offloads


class QueuedNetwork:
    """The receive side of an in-memory Network: a queue of delivered frames, read in batches."""

    def __init__(self, name: str, mac: bytes, mtu: int = 1500) -> None:
        self.name = name
        self.mac = mac
        self.mtu = mtu
        self.offloads = Offloads()
        self.stats = NetworkStats()
        self._rx: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def deliver(self, frame: bytes) -> None:
        """A frame arrives: count it, queue it, wake the reader."""
        self.stats.rx_frames += 1
        self.stats.rx_bytes += len(frame)
        self._rx.append(frame)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self, limit: int = 64) -> list[bytes]:
        """Up to ``limit`` queued frames, waiting for the first."""
        while not self._rx:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        out: list[bytes] = []
        while self._rx and len(out) < limit:
            out.append(self._rx.popleft())
        return out

    async def disconnect(self) -> None:
        return None
