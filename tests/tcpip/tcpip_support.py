"""A simulated Ethernet segment with virtual time, for deterministic stack tests.

``run(coro)`` runs a coroutine on an event loop whose clock is virtual: whenever
every task is waiting, time jumps to the next timer, so a 60-second TIME-WAIT takes
no real time and every run with the same seed behaves the same.  ``Wire`` is a hub
that copies each frame to every other port, with seeded loss, duplication, reordering
and delay.
"""

from __future__ import annotations

import asyncio
import os
import random as pyrandom
import resource
import selectors
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from netdev_support import QueuedNetwork
from unik.devices import TxOffload
from unik_tcpip.stack import TcpipStack, parse_ipv4
from unik_tcpip.tcp import TcpConfig

T = TypeVar("T")


class _VirtualSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Polls real file descriptors without blocking and advances the loop's virtual clock."""

    loop: VirtualTimeLoop

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if events:
            return events  # type: ignore[no-any-return]
        if timeout is None:
            raise RuntimeError("deadlock: every task waits and no timer is scheduled")
        self.loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` only moves when nothing else can run."""

    def __init__(self) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self.now = 0.0
        self.limit = 3600.0 * 24

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        if self.now > self.limit:
            raise RuntimeError(f"virtual time ran past {self.limit} s: a loop that never settles?")


def run(coro: Coroutine[Any, Any, T], limit: float = 3600.0) -> T:
    """Run ``coro`` to completion in virtual time (at most ``limit`` virtual seconds)."""
    loop = VirtualTimeLoop()
    loop.limit = limit
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.limit = float("inf")
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            loop.close()


class VirtualClock:
    """A :class:`unik.devices.MonotonicClock` on the loop's (virtual) time."""

    def now_ns(self) -> int:
        return int(asyncio.get_running_loop().time() * 1e9)

    async def disconnect(self) -> None:
        return None


class LoopSleep:
    """A :class:`unik.devices.Sleep` on asyncio timers."""

    async def sleep_ns(self, ns: int) -> None:
        await asyncio.sleep(max(ns, 0) / 1e9)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    async def disconnect(self) -> None:
        return None


class SeededRandom:
    """A deterministic :class:`unik.devices.Random` for tests (not cryptographic)."""

    def __init__(self, seed: int) -> None:
        self._rng = pyrandom.Random(seed)

    def generate(self, n: int) -> bytes:
        return self._rng.randbytes(n)

    async def disconnect(self) -> None:
        return None


@dataclass
class Impairment:
    """What the wire does to frames: probabilities and delays in seconds."""

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0005
    reorder_delay: float = 0.003


class SimNetwork(QueuedNetwork):
    """One port of a :class:`Wire`: a :class:`unik.devices.Network`."""

    def __init__(self, wire: Wire, mac: bytes, mtu: int, name: str) -> None:
        super().__init__(name, mac, mtu)
        self.wire = wire

    async def write(self, frame: bytes | bytearray | memoryview, offload: TxOffload | None = None) -> None:
        if offload is not None:
            raise AssertionError("the simulated wire offers no offloads")
        if len(frame) > self.mtu + 14:
            raise AssertionError(f"frame of {len(frame)} bytes exceeds MTU {self.mtu}")
        self.stats.tx_frames += 1
        self.stats.tx_bytes += len(frame)
        self.wire.transmit(self, bytes(frame))


@dataclass
class Wire:
    """A hub joining :class:`SimNetwork` ports, with seeded impairments."""

    seed: int = 0
    impairment: Impairment = field(default_factory=Impairment)
    ports: list[SimNetwork] = field(default_factory=list)
    #: Every frame sent, in order, as (sender name, frame).
    log: list[tuple[str, bytes]] = field(default_factory=list)
    keep_log: bool = True
    #: Called per frame; returns the frame to deliver (possibly changed) or None to drop it.
    tamper: Callable[[SimNetwork, bytes], bytes | None] | None = None
    dropped: int = 0

    def __post_init__(self) -> None:
        self.rng = pyrandom.Random(self.seed)
        self._last: dict[str, float] = {}

    def port(self, mac: bytes, mtu: int = 1500, name: str = "") -> SimNetwork:
        net = SimNetwork(self, mac, mtu, name or f"port{len(self.ports)}")
        self.ports.append(net)
        return net

    def transmit(self, sender: SimNetwork, frame: bytes) -> None:
        if self.keep_log:
            self.log.append((sender.name, frame))
        if self.tamper is not None:
            changed = self.tamper(sender, frame)
            if changed is None:
                self.dropped += 1
                return
            frame = changed
        imp = self.impairment
        copies = 1
        if imp.loss and self.rng.random() < imp.loss:
            self.dropped += 1
            return
        if imp.duplicate and self.rng.random() < imp.duplicate:
            copies = 2
        loop = asyncio.get_running_loop()
        for _ in range(copies):
            when = loop.time() + imp.delay
            if imp.reorder and self.rng.random() < imp.reorder:
                when += self.rng.random() * imp.reorder_delay
            else:
                # asyncio's timer heap is not FIFO for equal times: keep the wire's order.
                when = max(when, self._last.get(sender.name, 0.0) + 1e-9)
                self._last[sender.name] = when
            for port in self.ports:
                if port is not sender:
                    loop.call_at(when, port.deliver, frame)

    def inject(self, frame: bytes, to: SimNetwork | None = None) -> None:
        """Put a crafted frame on the wire (to one port, or to all)."""
        for port in self.ports:
            if to is None or port is to:
                port.deliver(frame)


def mac(n: int) -> bytes:
    return bytes([0x02, 0, 0, 0, 0, n])


async def make_stack(wire: Wire, n: int, ipv4: str, gateway: str | None = None,
                     tcp_config: TcpConfig | None = None, seed: int | None = None,
                     mtu: int = 1500) -> TcpipStack:
    """A started stack on a new port of ``wire`` with address ``ipv4`` (``a.b.c.d/p``)."""
    net = wire.port(mac(n), mtu, name=f"stack{n}")
    stack = TcpipStack(net, VirtualClock(), LoopSleep(), SeededRandom(seed if seed is not None else n),
                       parse_ipv4(ipv4, gateway), tcp_config)
    stack.start()
    return stack


async def pair(wire: Wire, tcp_a: TcpConfig | None = None, tcp_b: TcpConfig | None = None,
               mtu: int = 1500) -> tuple[TcpipStack, TcpipStack]:
    """Stacks 10.0.0.1 and 10.0.0.2 on ``wire``."""
    a = await make_stack(wire, 1, "10.0.0.1/24", tcp_config=tcp_a, mtu=mtu)
    b = await make_stack(wire, 2, "10.0.0.2/24", tcp_config=tcp_b, mtu=mtu)
    return a, b


async def settle(seconds: float = 1.0) -> None:
    """Let virtual time pass."""
    await asyncio.sleep(seconds)


def atheris_briefly(target: Path, tmp_path: Path, seconds: int, max_len: int) -> tuple[int, str]:
    """Run the atheris target ``target`` for ``seconds``: libFuzzer's exit status and stderr.

    libFuzzer checks the peak RSS (ru_maxrss), which a child inherits from the process that
    spawned it (Linux records the old memory's peak at exec): this pytest worker may already
    have peaked well above a target's 56 MB, so the bound is 1 GiB of growth above that peak.
    """
    corpus = tmp_path / "corpus"
    rss_limit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 + 1024
    proc = subprocess.run(
        [sys.executable, str(target), "--seed", str(corpus), str(corpus), f"-max_total_time={seconds}",
         f"-max_len={max_len}", "-timeout=10", f"-rss_limit_mb={rss_limit}", "-print_final_stats=1"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONHASHSEED": "0"}, cwd=tmp_path,
    )
    return proc.returncode, proc.stderr


def executed_units(stderr: str) -> int:
    """The number of inputs libFuzzer ran, from its final statistics (0 when it printed none)."""
    runs = [line for line in stderr.splitlines() if "stat::number_of_executed_units" in line]
    return int(runs[0].split(":")[-1]) if runs else 0
