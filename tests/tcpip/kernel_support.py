"""unik's stack against the Linux kernel over a real TAP: what the kernel suites share.

A test's namespace holds the TAP's kernel side (``.1/24``, and ``::1/64`` of a random
documentation prefix for IPv6); unik's stack owns the other side (``.2``, ``::2``).
The fixtures ``netns`` and ``netns6`` (``conftest.py``) make them; ``unik_stack`` and
``unik_stack6`` put unik's stack on the TAP; the rest are the peers' scripts and the
exchanges several suites run the same way over either family.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import random
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from unik.devices import UDPEndpoint
from unik.kv import BakedKVRO
from unik.testing import network_namespace, tap_unavailable
from unik_tcpip.addr import ip_bytes
from unik_tcpip.stack import TcpipStack
from unik_tcpip.tcp import TcpStats

TIMEOUT = 30.0
REPO = Path(__file__).resolve().parents[2]


def kernel_unavailable() -> str | None:
    """Why the kernel suites cannot run here (no root, TAP or unik-lib-fdio), or ``None``."""
    problem = tap_unavailable()
    if problem:
        return problem
    try:
        import unik_fdio.tap  # noqa: F401
    except ImportError:
        return "needs unik-lib-fdio (unik_fdio.tap.TapNetwork)"
    return None


#: The marks of a module that needs root and a TAP (``pytestmark = KERNEL``).
KERNEL = [pytest.mark.root, pytest.mark.skipif(kernel_unavailable() is not None, reason=str(kernel_unavailable()))]


def scapy_missing() -> str | None:
    """Why scapy's hostile suites cannot run, or ``None``."""
    try:
        import scapy  # noqa: F401
    except ImportError:
        return "needs scapy (pip install scapy; it is in requirements-dev.txt)"
    return None


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command on the host (iproute2, tc), its output captured; bounded to 15 s."""
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=15)


@dataclass
class Namespace:
    """The kernel's side: a namespace, its /24 and the TAP's name."""

    name: str
    prefix: str
    ifname: str

    @property
    def host(self) -> str:
        return f"{self.prefix}.1"

    @property
    def unik(self) -> str:
        return f"{self.prefix}.2"

    def adopt(self) -> None:
        """Move the TAP into the namespace with the host's address and bring it up."""
        sh("ip", "link", "set", self.ifname, "netns", self.name)
        sh("ip", "-n", self.name, "addr", "add", f"{self.host}/24", "dev", self.ifname)
        sh("ip", "-n", self.name, "link", "set", self.ifname, "up")
        sh("ip", "-n", self.name, "link", "set", "lo", "up")

    async def run(self, *args: str, timeout: float = TIMEOUT, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        """Run a command in the namespace; (status, stdout, stderr); killed after ``timeout``."""
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.name, *args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        return proc.returncode or 0, out, err

    @contextlib.asynccontextmanager
    async def background(self, *args: str, cwd: str | None = None,
                         stdout: int = asyncio.subprocess.DEVNULL) -> AsyncIterator[asyncio.subprocess.Process]:
        """A long-running command in the namespace, killed on exit (``stdout=PIPE`` to read it)."""
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.name, *args, cwd=cwd,
            stdout=stdout, stderr=asyncio.subprocess.PIPE,
        )
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


class Namespace6(Namespace):
    """The kernel's side, with an IPv6 prefix too."""

    prefix6: str = ""

    @property
    def host6(self) -> str:
        return f"{self.prefix6}::1"

    @property
    def unik6(self) -> str:
        return f"{self.prefix6}::2"

    def adopt(self) -> None:
        # No DAD on the kernel's side: its addresses are usable at once.
        sh("ip", "netns", "exec", self.name, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
           "net.ipv6.conf.default.accept_dad=0")
        super().adopt()
        sh("ip", "-n", self.name, "addr", "add", f"{self.host6}/64", "dev", self.ifname, "nodad")


def _random_prefix() -> str:
    return f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"


@contextlib.contextmanager
def kernel_namespace(label: str, tap: str = "ukn") -> Iterator[Namespace]:
    """A fresh namespace ``label-<random>`` with a random /24; the TAP is named ``tap<random>``."""
    with network_namespace(label) as name:
        yield Namespace(name, _random_prefix(), f"{tap}{secrets.token_hex(5)}")


@contextlib.contextmanager
def kernel_namespace6(label: str, tap: str = "ukn") -> Iterator[Namespace6]:
    """As :func:`kernel_namespace`, with IPv6 on and a random ``2001:db8:N::/64`` too."""
    with network_namespace(label, ipv6=True) as name:
        ns = Namespace6(name, _random_prefix(), f"{tap}{secrets.token_hex(5)}")
        ns.prefix6 = f"2001:db8:{random.randint(1, 0xFFFF):x}"
        yield ns


class LossyNetwork:
    """Wraps a Network: drops and reorders frames both ways (for kernels without sch_netem)."""

    def __init__(self, inner: Any, loss: float, reorder: float, seed: int = 1) -> None:
        self.inner = inner
        self.name, self.mac, self.mtu = inner.name, inner.mac, inner.mtu
        self.offloads, self.stats = inner.offloads, inner.stats
        self.loss, self.reorder = loss, reorder
        self.rng = random.Random(seed)
        self.held: tuple[bytes, Any] | None = None
        self.dropped = self.reordered = 0
        self.flushing: set[asyncio.Future[None]] = set()

    async def read(self, limit: int = 64) -> list[bytes]:
        while True:
            frames = [f for f in await self.inner.read(limit) if self.rng.random() >= self.loss]
            if len(frames) > 1 and self.rng.random() < self.reorder:
                frames[0], frames[1] = frames[1], frames[0]
                self.reordered += 1
            if frames:
                return frames

    async def write(self, frame: bytes, offload: Any = None) -> None:
        if self.rng.random() < self.loss:
            self.dropped += 1
            return
        if self.held is None and self.rng.random() < self.reorder:
            self.held = (frame, offload)  # sent after the next frame, or 2 ms later at the latest
            self.reordered += 1
            asyncio.get_running_loop().call_later(0.002, self._flush)
            return
        await self.inner.write(frame, offload)
        if self.held is not None:
            held, self.held = self.held, None
            await self.inner.write(*held)

    def _flush(self) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            task = asyncio.ensure_future(self.inner.write(*held))
            self.flushing.add(task)
            task.add_done_callback(self.flushing.discard)

    async def disconnect(self) -> None:
        await self.inner.disconnect()


@contextlib.asynccontextmanager
async def unik_stack(ns: Namespace, lossy: tuple[float, float] | None = None, offload: bool = False,
                     mtu: int | None = None, **kw: Any) -> AsyncIterator[TcpipStack]:
    """unik's stack on a new TAP (with virtio-net offloads if asked) whose kernel side sits in ``ns``."""
    from unik.posix import GetrandomRandom, PosixMonotonicClock, PosixSleep
    from unik_fdio.tap import TapNetwork

    network: Any = await TapNetwork.connect("service", ns.ifname, offload=offload, create=True)
    if mtu is not None:  # a TAP it creates has the kernel's default MTU: lower both sides
        sh("ip", "link", "set", ns.ifname, "mtu", str(mtu))
        network.mtu = mtu
    if offload:
        assert network.offloads.tso, "the TAP did not grant TSO"
    if lossy is not None:
        network = LossyNetwork(network, *lossy)
    try:
        ns.adopt()
        stack = await TcpipStack.connect(network, PosixMonotonicClock(), PosixSleep(), GetrandomRandom(),
                                         ipv4=f"{ns.unik}/24", ipv4_gateway=ns.host, **kw)
        # The TAP declares the fast path (a PollableNetwork); the lossy wrapper does not.
        assert (stack.iface.polled is None) == (lossy is not None) == ("iface.slow_path" in stack.stats)
        try:
            yield stack
        finally:
            await stack.disconnect()
    finally:
        await network.disconnect()


async def wait_for(predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Poll ``predicate()`` every 50 ms until it is true (bounded)."""
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} within {timeout} s")


@contextlib.asynccontextmanager
async def unik_stack6(ns: Namespace6, *, static: bool = True, lossy: tuple[float, float] | None = None,
                      offload: bool = False) -> AsyncIterator[TcpipStack]:
    """unik's dual stack on a new TAP whose kernel side is in ``ns``; returns once its addresses passed DAD."""
    async with unik_stack(ns, lossy=lossy, offload=offload, ipv6=f"{ns.unik6}/64" if static else None) as stack:
        await wait_for(lambda: stack.ipv6.addresses.link_local() is not None, "no link-local address")
        if static:
            await wait_for(lambda: stack.ipv6.owns(ip_bytes(ns.unik6)), f"{ns.unik6} never passed DAD")
        yield stack


@contextlib.asynccontextmanager
async def stack_on(ns: Namespace, offload: bool = False) -> AsyncIterator[tuple[TcpipStack, str]]:
    """unik's stack in ``ns``, dual (:func:`unik_stack6`) when ``ns`` is a :class:`Namespace6`.

    Yields the stack and the kernel's address of that family.
    """
    if isinstance(ns, Namespace6):
        async with unik_stack6(ns, offload=offload) as stack:
            yield stack, ns.host6
    else:
        async with unik_stack(ns, offload=offload) as stack:
            yield stack, ns.host


def link_local(stack: TcpipStack) -> str:
    """The stack's link-local IPv6 address, as text."""
    address = stack.ipv6.addresses.link_local()
    assert address is not None
    return str(__import__("ipaddress").IPv6Address(address))


def run(coro: Any, timeout: float = 90) -> Any:
    """Run ``coro`` on a fresh asyncio loop, bounded to ``timeout`` seconds."""
    async def main() -> Any:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(main())


# --- examples/http as the server under test ------------------------------------------------


def htdocs(directory: Path, files: dict[str, bytes]) -> BakedKVRO:
    """examples/http's store: ``files`` written under ``directory``, read through core's KVRO."""
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return BakedKVRO(directory)


class Console:
    """A console that keeps nothing."""

    def log(self, message: str) -> None:
        pass


def http_app() -> ModuleType:
    """examples/http's package (the test is skipped without it)."""
    src = REPO / "examples" / "http" / "src"
    if not (src / "http_app" / "__init__.py").exists():
        pytest.skip("needs examples/http")
    sys.path.insert(0, str(src))
    try:
        return importlib.import_module("http_app")
    finally:
        sys.path.remove(str(src))


def serve_http(stack: Any, directory: Path, files: dict[str, bytes], port: int = 8080) -> asyncio.Future[Any]:
    """examples/http serving ``files`` (written under ``directory``) on ``stack``, as a task to cancel."""
    start: Callable[..., Coroutine[Any, Any, None]] = http_app().start
    return asyncio.ensure_future(start(stack, htdocs(directory, files), Console(), port=port))


# --- exchanges with the kernel's sockets, over either family -------------------------------


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


async def connect_retry(stack: TcpipStack, host: str, port: int, attempts: int = 100,
                        delay: float = 0.05, what: str = "") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``stack.tcp.connect`` retried while the kernel-side server starts (``attempts`` times ``delay``)."""
    for _attempt in range(attempts):
        try:
            reader, writer = await stack.tcp.connect(host, port)
            assert isinstance(reader, asyncio.StreamReader) and isinstance(writer, asyncio.StreamWriter)
            return reader, writer
        except ConnectionRefusedError:
            await asyncio.sleep(delay)
    raise AssertionError(what or f"nothing listens on {_bracketed(host)}:{port}")


async def fetch_from_http_server(stack: TcpipStack, ns: Namespace, host: str, directory: Path, body: bytes) -> None:
    """unik's client downloads ``body`` whole from Python's http.server in ``ns`` on ``host``."""
    (directory / "blob").write_bytes(body)
    async with ns.background(sys.executable, "-m", "http.server", "8000", "--bind", host, cwd=str(directory)):
        # the server needs a moment to listen
        reader, writer = await connect_retry(stack, host, 8000, 50, 0.1, "http.server never listened")
        assert writer.get_extra_info("peername")[:2] == (host, 8000)
        writer.write(f"GET /blob HTTP/1.1\r\nHost: {_bracketed(host)}\r\nConnection: close\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head
        got = await reader.read()
        writer.close()
        await writer.wait_closed()
        assert len(got) == len(body) and hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


async def udp_echoed(client: UDPEndpoint, data: bytes, destination: tuple[str, int], wait: float, what: str) -> Any:
    """Send ``data`` until its echo comes back (50 tries, ``wait`` seconds each); the datagram."""
    for _attempt in range(50):
        await client.sendto(data, destination)
        try:
            return await asyncio.wait_for(client.recvfrom(), wait)
        except asyncio.TimeoutError:
            continue
    raise AssertionError(what)


async def udp_echo_with_socat(stack: TcpipStack, ns: Namespace, unik: str, host: str) -> None:
    """unik echoes what socat in ``ns`` sends, then socat echoes what unik sends (IPv4 or IPv6)."""
    family = "UDP6" if ":" in host else "UDP4"
    server = await stack.udp.bind(7777)

    async def echo() -> None:
        while True:
            data, source = await server.recvfrom()
            await server.sendto(data, source)
    task = asyncio.ensure_future(echo())
    status, out, err = await ns.run("socat", "-T", "3", "-", f"{family}:{_bracketed(unik)}:7777",
                                    stdin=b"hello unik\n")
    assert status == 0, err.decode()
    assert out == b"hello unik\n"
    task.cancel()
    # socat echoes in the namespace; unik sends and receives.
    async with ns.background("socat", "-T", "10", f"{family}-LISTEN:7778,bind={_bracketed(host)}", "PIPE"):
        client = await stack.udp.bind()
        got = await udp_echoed(client, b"ping from unik", (host, 7778), 0.2, "no UDP echo from socat")
        assert got.data == b"ping from unik" and got.source[:2] == (host, 7778)


#: The kernel's end of a bulk transfer (bench/tcpip.py's too), on IPv6 when ``host`` is an IPv6 address:
#: ``sink`` reads ``size`` bytes into one buffer, answers ``E`` at their end, then ``<bytes> <sha256>``;
#: ``source`` sends ``size`` bytes of :data:`SOURCE_BLOCK`.  It prints ``ready`` once it listens.
SINK = r"""
import hashlib, socket, sys
host, port, mode, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
srv = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
srv.settimeout(60)
print("ready", flush=True)
conn, _ = srv.accept()
conn.settimeout(60)
if mode == "sink":
    # Into one buffer as it comes (no hashing, no allocation per read); the end of the
    # data is answered at once, and the digest after, outside the sender's timed path.
    buf = memoryview(bytearray(size + 1))
    n = 0
    while got := conn.recv_into(buf[n:]):
        n += got
    conn.sendall(b"E")
    conn.sendall(f"{n} {hashlib.sha256(buf[:n]).hexdigest()}".encode())
else:
    block = bytes(range(256)) * 4096
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        conn.sendall(piece)
        sent += len(piece)
conn.shutdown(socket.SHUT_WR)
conn.recv(1)
conn.close()
"""
SOURCE_BLOCK = bytes(range(256)) * 4096


async def bulk_both_ways(stack: TcpipStack, ns: Namespace, host: str, size: int) -> TcpStats:
    """``size`` bytes from unik to the kernel's :data:`SINK`, then as many back, each checksummed.

    Returns the upload's TCP statistics (its retransmissions, say).
    """
    block = SOURCE_BLOCK
    # unik sends, the kernel checksums.
    async with ns.background(sys.executable, "-c", SINK, host, "9000", "sink", str(size)):
        reader, writer = await connect_retry(stack, host, 9000)
        want = hashlib.sha256()
        for sent in range(0, size, len(block)):
            piece = block[: min(len(block), size - sent)]
            want.update(piece)
            writer.write(piece)
            await writer.drain()
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 120)
        assert answer.decode() == f"E{size} {want.hexdigest()}"
        up: TcpStats = writer.get_extra_info("tcp_stats")
        writer.close()
    # The kernel sends, unik checksums.
    async with ns.background(sys.executable, "-c", SINK, host, "9001", "source", str(size)):
        reader, writer = await connect_retry(stack, host, 9001)
        got, n = hashlib.sha256(), 0
        while chunk := await asyncio.wait_for(reader.read(1 << 20), 60):
            got.update(chunk)
            n += len(chunk)
        writer.close()
        assert n == size and got.hexdigest() == want.hexdigest()
    return up
