"""What the fuzz targets (fuzz_frames.py, fuzz_ipv6.py, fuzz_dns.py) share.

The stand-in devices a fresh stack runs on (no I/O, fixed time, deterministic randomness),
feeding frames to it and checking what must hold after any input, the seed format, and
the command line each target runs under atheris (``--seed DIR`` then libFuzzer's
arguments).  Each target is also a script, so this module is imported by bare name from
the targets' directory.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import Any

MAC = b"\x02\x00\x00\x00\x00\x02"
PEER_MAC = b"\x02\x00\x00\x00\x00\x01"
#: A TCP header without options (ports, seq, ack, offset, flags, window, checksum, urgent).
TCP_HEADER = struct.Struct("!HHIIBBHHH")


def atheris_missing() -> str | None:
    """Why atheris cannot run here, or ``None``."""
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "needs atheris (pip install atheris: wheels for CPython <= 3.11 on x86_64)"
    return None


class FakeNetwork:
    """A :class:`unik.devices.Network` that never receives and keeps what is sent."""

    name = "fuzz"
    mac = MAC
    mtu = 1500

    def __init__(self) -> None:
        from unik.devices import NetworkStats, Offloads
        self.offloads = Offloads()
        self.stats = NetworkStats()
        self.sent = 0

    async def read(self, limit: int = 64) -> list[bytes]:
        await asyncio.Event().wait()
        return []

    async def write(self, frame: Any, offload: Any = None) -> None:
        self.sent += 1

    async def disconnect(self) -> None:
        return None


class FixedClock:
    """A clock the feeder moves by hand."""

    def __init__(self) -> None:
        self.now = 10**12

    def now_ns(self) -> int:
        return self.now

    async def disconnect(self) -> None:
        return None


class NoSleep:
    """Sleeps that only yield to the loop."""

    async def sleep_ns(self, ns: int) -> None:
        await asyncio.sleep(0)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    async def disconnect(self) -> None:
        return None


class CountingRandom:
    """Deterministic bytes (so ISNs and cookies repeat from run to run)."""

    def __init__(self) -> None:
        self.n = 0

    def generate(self, n: int) -> bytes:
        self.n += 1
        return bytes((self.n + i) & 0xFF for i in range(n))

    async def disconnect(self) -> None:
        return None


class Echo(asyncio.Protocol):
    """The TCP listener the fuzzed frames reach: echoes what it receives."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


def l4_checksummed(proto: int, body: bytearray, csum_at: int, src: bytes, dst: bytes) -> bytes:
    """``body`` (a TCP, UDP or ICMPv6 message) with its checksum over the pseudo-header made right."""
    from unik_tcpip import checksum
    body[csum_at:csum_at + 2] = b"\0\0"
    value = checksum.checksum(bytes(body), checksum.pseudo_header_sum(src, dst, proto, len(body)))
    body[csum_at:csum_at + 2] = value.to_bytes(2, "big")
    return bytes(body)


async def serve_and_feed(stack: Any, frames: Iterable[bytes]) -> None:
    """Open TCP port 80 (echo) and UDP port 53 on ``stack``, feed it ``frames`` 100 ms apart.

    Then nothing may have raised out of its receive path or its timers.
    """
    await stack.tcp.create_server(Echo, 80)
    await stack.udp.bind(53)
    for frame in frames:
        stack.iface.receive(frame)
        stack.timers.clock.now += 10**8
        stack.timers.run_due()
    await asyncio.sleep(0)  # let the connections' callbacks run
    stats = stack.stats
    assert stats["rx.internal_error"] == 0, dict(stats)
    assert stack.timers.errors == 0


_LOOP: asyncio.AbstractEventLoop | None = None


def run_frames(frames: list[bytes], check: Callable[[bytes], None],
               feed: Callable[[list[bytes]], Coroutine[Any, Any, None]]) -> None:
    """``check`` each frame alone, then ``feed`` them all to a fresh stack on one reused event loop."""
    global _LOOP
    for frame in frames:
        check(frame)
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    _LOOP.run_until_complete(feed(frames))


def split_frames(data: bytes, frame_from: Callable[[int, bytes], bytes]) -> Iterator[bytes]:
    """A frame target's input cut into up to eight frames, ``[kind][length in 8-byte words][body]``
    each, and made into frames by ``frame_from(kind, body)``."""
    i = 0
    for _ in range(8):
        if i + 2 > len(data):
            return
        kind, length = data[i], data[i + 1] * 8
        body = data[i + 2:i + 2 + length]
        i += 2 + length
        yield frame_from(kind, body)


def seed_item(kind: int, body: bytes) -> bytes:
    """One frame of a frame target's input: ``kind``, the length in 8-byte words, ``body`` padded."""
    body = body.ljust((len(body) + 7) // 8 * 8, b"\0")
    return bytes((kind, len(body) // 8)) + body


def write_seeds(directory: Path, seeds: dict[str, bytes], prefix: str = "") -> None:
    """The seed corpus into ``directory``, a file per seed."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (directory / f"{prefix}{name}").write_bytes(data)


def fuzz_main(argv: list[str], one_input: Callable[[bytes], None], seeds: Callable[[], dict[str, bytes]],
              instrumented: Callable[[], object], seed_prefix: str = "") -> None:
    """A target's command line: ``[--seed DIR] [libFuzzer arguments]``, under atheris."""
    if len(argv) > 2 and argv[1] == "--seed":
        write_seeds(Path(argv[2]), seeds(), seed_prefix)
        argv = [argv[0], *argv[3:]]
    import atheris

    with atheris.instrument_imports(include=["unik_tcpip"]):
        instrumented()
    atheris.Setup(argv, one_input)
    atheris.Fuzz()

