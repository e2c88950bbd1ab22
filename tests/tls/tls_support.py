"""Helpers of the TLS tests: certificates, servers on the socket stack, external tools, a memory link."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netdev_support import QueuedNetwork
from unik.devices import FlowReader, FlowWriter, TxOffload
from unik_tls.certs import selfsigned, write_pair
from unik_tls.config import CertPair
from unik_tls.device import OpenSSLTLS
from unik_unix.socket_stack import SocketStack

REPO = Path(__file__).resolve().parents[2]
UNIK = str(Path(sys.executable).with_name("unik"))
TIMEOUT = 20.0


@dataclass(frozen=True)
class PairFiles:
    cert: Path
    key: Path

    def pair(self) -> CertPair:
        return CertPair.from_files(self.cert, self.key)


@dataclass(frozen=True)
class Certs:
    main: PairFiles      # localhost, 127.0.0.1
    alt: PairFiles       # b.test
    wildcard: PairFiles  # *.w.test
    expired: PairFiles   # localhost, expired a year ago
    rsa: PairFiles       # localhost, 127.0.0.1 with an RSA key


def make_certs(directory: Path) -> Certs:
    def make(name: str, names: list[str], **kw: Any) -> PairFiles:
        cert, key = selfsigned(names, **kw)
        files = PairFiles(directory / name / "cert.pem", directory / name / "key.pem")
        write_pair(cert, key, files.cert, files.key)
        return files

    long_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=400)
    return Certs(
        main=make("main", ["localhost", "127.0.0.1"]),
        alt=make("alt", ["b.test"]),
        wildcard=make("wildcard", ["*.w.test"]),
        expired=make("expired", ["localhost", "127.0.0.1"], days=30, now=long_ago),
        rsa=make("rsa", ["localhost", "127.0.0.1"], key_type="rsa"),
    )


def run(coro: Awaitable[Any], timeout: float = 60.0) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(main())


async def echo(reader: FlowReader, writer: FlowWriter) -> None:
    """Echo every line until EOF, then close (sending close_notify)."""
    try:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


Handler = Callable[[FlowReader, FlowWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def tls_server(tls: OpenSSLTLS, handler: Handler = echo) -> AsyncIterator[int]:
    """``tls.start_server(handler)`` on a free port of 127.0.0.1 (the device's socket stack)."""
    server: Any = await tls.start_server(handler, 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


@contextlib.asynccontextmanager
async def socket_tls(**kw: Any) -> AsyncIterator[OpenSSLTLS]:
    """A TLS device on a socket stack bound to 127.0.0.1."""
    stack = await SocketStack.connect("127.0.0.1/8")
    tls = OpenSSLTLS.create(stack, **kw)
    try:
        yield tls
    finally:
        await tls.disconnect()
        await stack.disconnect()


async def tool(*args: str, stdin: bytes = b"", timeout: float = TIMEOUT) -> tuple[int, str]:
    """Run an external command; (status, stdout + stderr as text); killed after ``timeout``."""
    proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        raise AssertionError(f"{args[0]} did not finish within {timeout} s:\n{out.decode(errors='replace')}") \
            from None
    return proc.returncode or 0, out.decode(errors="replace")


@contextlib.asynccontextmanager
async def background(*args: str, ready: bytes | None = None,
                     timeout: float = TIMEOUT) -> AsyncIterator[asyncio.subprocess.Process]:
    """A long-running command (a TLS server), waited for until it prints ``ready``; killed on exit."""
    proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        if ready is not None:
            assert proc.stdout is not None
            seen = b""
            while ready not in seen:
                line = await asyncio.wait_for(proc.stdout.readline(), timeout)
                if not line:
                    raise AssertionError(f"{args[0]} exited before it was ready:\n{seen.decode(errors='replace')}")
                seen += line
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def wait_port(port: int, timeout: float = TIMEOUT) -> None:
    """Wait until something listens on 127.0.0.1:``port``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if loop.time() > deadline:
                raise AssertionError(f"nothing listens on port {port}") from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


# --- a memory link between two of unik's own TCP/IP stacks ---------------------------------


class MemoryNetwork(QueuedNetwork):
    """One end of a lossless in-memory Ethernet link: a :class:`unik.devices.Network`."""

    def __init__(self, name: str, mac: bytes) -> None:
        super().__init__(name, mac)
        self.peer: MemoryNetwork | None = None
        #: Called on every frame this end sends; returns the frame to deliver.
        self.tamper: Callable[[bytes], bytes] | None = None

    async def write(self, frame: Any, offload: TxOffload | None = None) -> None:
        assert offload is None and self.peer is not None
        data = bytes(frame)
        if self.tamper is not None:
            data = self.tamper(data)
        asyncio.get_running_loop().call_soon(self.peer.deliver, data)


def memory_link() -> tuple[MemoryNetwork, MemoryNetwork]:
    a, b = MemoryNetwork("a", bytes([2, 0, 0, 0, 0, 1])), MemoryNetwork("b", bytes([2, 0, 0, 0, 0, 2]))
    a.peer, b.peer = b, a
    return a, b


# --- a flow that is not asyncio's streams: the generic path --------------------------------


class PipeReader:
    """The reading end of an in-memory byte pipe (a :class:`unik.devices.FlowReader`, nothing more)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.event = asyncio.Event()

    def feed(self, data: bytes) -> None:
        self.buffer += data
        self.event.set()

    def feed_eof(self) -> None:
        self.eof = True
        self.event.set()

    async def read(self, n: int = -1) -> bytes:
        while not self.buffer and not self.eof:
            self.event.clear()
            await self.event.wait()
        n = len(self.buffer) if n < 0 else n
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    async def readexactly(self, n: int) -> bytes:
        raise NotImplementedError

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        raise NotImplementedError

    async def readline(self) -> bytes:
        raise NotImplementedError

    def at_eof(self) -> bool:
        return self.eof and not self.buffer


class PipeWriter:
    """The writing end: what it writes lands in the peer's :class:`PipeReader`."""

    def __init__(self, peer: PipeReader) -> None:
        self.peer = peer
        self.closed = False
        self.written = 0

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.written += len(data)
            self.peer.feed(bytes(data))

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def write_eof(self) -> None:
        self.peer.feed_eof()

    def can_write_eof(self) -> bool:
        return True

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.peer.feed_eof()

    def is_closing(self) -> bool:
        return self.closed

    async def wait_closed(self) -> None:
        return None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("pipe", 0) if name == "peername" else default


def pipe_pair() -> tuple[Any, Any]:
    """Two connected flows over in-memory pipes: (flow_a, flow_b)."""
    from unik.devices import Flow

    a_in, b_in = PipeReader(), PipeReader()
    return Flow(a_in, PipeWriter(b_in)), Flow(b_in, PipeWriter(a_in))
