"""The asyncio transport contract servers rely on, checked on both event loops.

Written from the documentation of asyncio's transports and protocols ("Transports and
Protocols", "Event Loop: Servers", "Streams"): each check is a statement of it.  Every
check runs in three environments:

* ``asyncio``: asyncio's own loop on the kernel's sockets, the peer on 127.0.0.1;
* ``unik-kernel``: the unik loop, its stack on a TAP, the peer a kernel socket in a
  namespace the test creates (root);
* ``unik-unik``: the unik loop, its stack and a peer stack on a simulated wire (no root).

The peer is always a pair of asyncio streams on the same loop, so each check reads the
same way in every environment.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import os
import socket
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from tcpip_support import Wire, pair
from unik.testing import tap_unavailable
from unik_tcpip.aio import UnikEventLoop, run

TIMEOUT = 30.0
BIG = 1 << 20
StreamPair = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Env:
    """Where the loop under test runs and how its peer reaches it (and is reached)."""

    #: The address the loop under test listens on and is reached at.
    host: str

    async def peer_connect(self, port: int) -> StreamPair:
        """A peer connection to the loop under test's server on ``port``."""
        raise NotImplementedError

    async def peer_server(self, handler: Handler) -> tuple[str, int]:
        """A peer server running ``handler`` per connection; its address."""
        raise NotImplementedError

    async def peer_udp(self) -> PeerUdp:
        """A peer UDP endpoint."""
        raise NotImplementedError

    def peer_reset(self, writer: asyncio.StreamWriter) -> None:
        """Reset the peer's connection (a RST, not a FIN)."""
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.fileno() != -1:  # a kernel socket: SO_LINGER 0 sends a RST (unik's abort does)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()


class Datagrams(asyncio.DatagramProtocol):
    """Queues what arrives."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[Any, ...]]] = asyncio.Queue()
        self.errors: list[Exception] = []
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class PeerUdp:
    """The peer's UDP endpoint: ``send``, ``recv`` and its ``address``, whatever it runs on."""

    def __init__(self, address: tuple[str, int], send: Callable[[bytes, tuple[str, int]], Awaitable[None]],
                 recv: Callable[[], Awaitable[tuple[bytes, tuple[Any, ...]]]]) -> None:
        self.address, self.send, self.recv = address, send, recv


async def asyncio_udp(**kw: Any) -> PeerUdp:
    """A peer endpoint on asyncio's datagram transport (``local_addr`` or ``sock``)."""
    transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(Datagrams, **kw)

    async def send(data: bytes, addr: tuple[str, int]) -> None:
        transport.sendto(data, addr)
    return PeerUdp(transport.get_extra_info("sockname")[:2], send, proto.queue.get)


class AsyncioEnv(Env):
    """asyncio's own loop; the peer on the kernel's loopback."""

    host = "127.0.0.1"

    async def peer_connect(self, port: int) -> StreamPair:
        return await asyncio.open_connection(self.host, port)

    async def peer_server(self, handler: Handler) -> tuple[str, int]:
        server = await asyncio.start_server(handler, self.host, 0)
        return server.sockets[0].getsockname()[:2]  # type: ignore[no-any-return]

    async def peer_udp(self) -> PeerUdp:
        return await asyncio_udp(local_addr=(self.host, 0))


class UnikPeerEnv(Env):
    """The unik loop on stack A; the peer is stack B on the same simulated wire."""

    host = "10.0.0.1"

    def __init__(self, peer: Any) -> None:
        self.peer = peer

    async def peer_connect(self, port: int) -> StreamPair:
        return await self.peer.tcp.connect(self.host, port)  # type: ignore[no-any-return]

    async def peer_server(self, handler: Handler) -> tuple[str, int]:
        server = await self.peer.tcp.start_server(handler, 0)
        return "10.0.0.2", server.port

    async def peer_udp(self) -> PeerUdp:
        endpoint = await self.peer.udp.bind(0)

        async def recv() -> tuple[bytes, tuple[Any, ...]]:
            dgram = await endpoint.recvfrom()
            return dgram.data, dgram.source
        return PeerUdp(("10.0.0.2", endpoint.port), endpoint.sendto, recv)


_CLONE_NEWNET = 0x40000000


def in_netns(name: str, make: Callable[[], socket.socket]) -> concurrent.futures.Future[socket.socket]:
    """``make()`` in a new thread that joined network namespace ``name`` (sockets keep their namespace)."""
    future: concurrent.futures.Future[socket.socket] = concurrent.futures.Future()

    def thread() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            future.set_result(make())
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting test
            future.set_exception(exc)

    threading.Thread(target=thread, daemon=True).start()
    return future


class KernelPeerEnv(Env):
    """The unik loop on a TAP; the peer is a kernel socket in the namespace of its other side."""

    def __init__(self, ns: Any) -> None:
        self.ns = ns
        self.host = ns.unik

    async def peer_connect(self, port: int) -> StreamPair:
        def make() -> socket.socket:
            sock = socket.create_connection((self.host, port), timeout=10)
            sock.setblocking(False)
            return sock
        return await asyncio.open_connection(sock=await asyncio.wrap_future(in_netns(self.ns.name, make)))

    async def peer_server(self, handler: Handler) -> tuple[str, int]:
        def make() -> socket.socket:
            sock = socket.socket()
            sock.bind((self.ns.host, 0))
            sock.listen(16)
            sock.setblocking(False)
            return sock
        sock = await asyncio.wrap_future(in_netns(self.ns.name, make))
        await asyncio.start_server(handler, sock=sock)
        return sock.getsockname()[:2]  # type: ignore[no-any-return]

    async def peer_udp(self) -> PeerUdp:
        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((self.ns.host, 0))
            sock.setblocking(False)
            return sock
        return await asyncio_udp(sock=await asyncio.wrap_future(in_netns(self.ns.name, make)))


@contextlib.asynccontextmanager
async def unik_unik() -> AsyncIterator[Env]:
    a, b = await pair(Wire(keep_log=False))
    UnikEventLoop.attach_running(a)
    try:
        yield UnikPeerEnv(b)
    finally:
        await a.disconnect()
        await b.disconnect()


@pytest.fixture(params=["asyncio", "unik-unik", "unik-kernel"])
def env(request: pytest.FixtureRequest) -> Iterator[Callable[[Callable[[Env], Awaitable[None]]], None]]:
    """``env(check)`` runs ``async check(env)`` on the loop of this environment."""
    kind = request.param

    def bounded(check: Callable[[Env], Awaitable[None]], make: Callable[[], Any]) -> Any:
        async def main() -> None:
            async with make() as environment:
                await asyncio.wait_for(check(environment), TIMEOUT)
        return main()

    if kind == "asyncio":
        @contextlib.asynccontextmanager
        async def plain() -> AsyncIterator[Env]:
            yield AsyncioEnv()
        yield lambda check: asyncio.run(bounded(check, plain))
    elif kind == "unik-unik":
        yield lambda check: run(bounded(check, unik_unik))
    else:
        problem = tap_unavailable()
        if problem:
            pytest.skip(problem)
        from kernel_support import kernel_namespace, unik_stack

        with kernel_namespace("unik-conf", tap="ukc") as ns:

            @contextlib.asynccontextmanager
            async def kernel() -> AsyncIterator[Env]:
                async with unik_stack(ns) as stack:
                    UnikEventLoop.attach_running(stack)
                    yield KernelPeerEnv(ns)
            yield lambda check: run(bounded(check, kernel))


class Recorder(asyncio.Protocol):
    """Records every callback in order; optionally keeps the transport open at EOF."""

    def __init__(self, keep_open_at_eof: bool = False) -> None:
        self.events: list[str] = []
        self.data = bytearray()
        self.keep_open_at_eof = keep_open_at_eof
        loop = asyncio.get_running_loop()
        self.made: asyncio.Future[asyncio.Transport] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[Exception | None] = loop.create_future()
        self.lost_calls = 0
        self.changed = asyncio.Event()
        self.paused = self.resumed = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.events.append("made")
        self.made.set_result(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data
        self.changed.set()

    def eof_received(self) -> bool:
        self.events.append("eof")
        self.eof.set_result(None)
        return self.keep_open_at_eof

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")
        self.lost_calls += 1
        if not self.lost.done():
            self.lost.set_result(exc)

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed += 1

    async def received(self, n: int) -> bytes:
        """Wait until ``n`` bytes arrived in all."""
        while len(self.data) < n:
            self.changed.clear()
            await self.changed.wait()
        return bytes(self.data)


async def serve(env: Env, protocol: asyncio.BaseProtocol) -> tuple[asyncio.AbstractServer, int]:
    """A server of the loop under test handing every connection to ``protocol``."""
    server = await asyncio.get_running_loop().create_server(lambda: protocol, env.host, 0)
    return server, server.sockets[0].getsockname()[1]


async def connected(env: Env, protocol: Recorder) -> tuple[asyncio.Transport, StreamPair]:
    """The loop under test's transport and the peer's streams, connected by the loop's create_connection."""
    accepted: asyncio.Future[StreamPair] = asyncio.get_running_loop().create_future()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result((reader, writer))

    host, port = await env.peer_server(handler)
    transport, _ = await asyncio.get_running_loop().create_connection(lambda: protocol, host, port)
    return transport, await accepted


# -- BaseTransport and the protocol's callbacks ------------------------------------------------


def test_callbacks_come_in_order_and_connection_lost_once(env: Any) -> None:
    """connection_made, data_received..., eof_received, connection_lost(None): once each, in order."""

    async def check(env: Env) -> None:
        proto = Recorder()
        server, port = await serve(env, proto)
        reader, writer = await env.peer_connect(port)
        writer.write(b"hello")
        assert await proto.received(5) == b"hello"
        writer.write_eof()
        await proto.eof
        assert await asyncio.wait_for(proto.lost, 10) is None, "EOF not kept open: the transport closes itself"
        assert await reader.read() == b""
        await asyncio.sleep(0.05)
        assert proto.events == ["made", "data", "eof", "lost"] and proto.lost_calls == 1
        writer.close()
        server.close()

    env(check)


def test_get_extra_info(env: Any) -> None:
    """peername and sockname are (host, port) of each end; unknown names give the default."""

    async def check(env: Env) -> None:
        proto = Recorder()
        transport, (_reader, writer) = await connected(env, proto)
        peername, sockname = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
        assert peername[:2] == writer.get_extra_info("sockname")[:2]
        assert sockname[:2] == writer.get_extra_info("peername")[:2]
        assert transport.get_extra_info("no such thing", 42) == 42
        sock = transport.get_extra_info("socket")  # a socket, or on unik's loop a StackSocket in its clothes
        assert sock.getpeername()[:2] == peername[:2] and sock.getsockname()[:2] == sockname[:2]
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
        assert transport.get_protocol() is proto
        other = Recorder()
        transport.set_protocol(other)
        assert transport.get_protocol() is other
        writer.write(b"to the new protocol")
        assert await other.received(19) == b"to the new protocol" and not proto.data
        transport.close()
        writer.close()

    env(check)


def test_close_flushes_then_connection_lost_none(env: Any) -> None:
    """close(): is_closing() at once, buffered data still delivered, then connection_lost(None)."""

    async def check(env: Env) -> None:
        proto = Recorder()
        transport, (reader, writer) = await connected(env, proto)
        payload = os.urandom(BIG)
        transport.write(payload)
        assert not transport.is_closing()
        transport.close()
        assert transport.is_closing()
        transport.close()  # a second close does nothing
        assert await reader.read() == payload
        assert await asyncio.wait_for(proto.lost, 10) is None
        transport.write(b"ignored after close")  # asyncio's transports drop it without raising
        writer.close()

    env(check)


def test_abort_loses_buffered_data_and_connection_lost_none(env: Any) -> None:
    """abort(): closes at once, connection_lost(None); the peer's stream ends (EOF or reset)."""

    async def check(env: Env) -> None:
        proto = Recorder()
        transport, (reader, writer) = await connected(env, proto)
        transport.write(os.urandom(BIG))
        transport.abort()
        assert transport.is_closing()
        assert await asyncio.wait_for(proto.lost, 10) is None
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        writer.close()

    env(check)


def test_a_reset_from_the_peer_is_a_connection_error(env: Any) -> None:
    """The peer's reset: connection_lost with a ConnectionError (not None)."""

    async def check(env: Env) -> None:
        proto = Recorder()
        _transport, (_reader, writer) = await connected(env, proto)
        writer.write(b"x")
        await proto.received(1)
        env.peer_reset(writer)
        assert isinstance(await asyncio.wait_for(proto.lost, 10), ConnectionError)

    env(check)


# -- ReadTransport -------------------------------------------------------------------------


def test_pause_and_resume_reading(env: Any) -> None:
    """No data_received while paused (pause/resume are idempotent); everything, in order, after resume."""

    async def check(env: Env) -> None:
        proto = Recorder()
        transport, (_reader, writer) = await connected(env, proto)
        assert transport.is_reading()
        transport.pause_reading()
        transport.pause_reading()
        assert not transport.is_reading()
        payload = os.urandom(200_000)
        writer.write(payload)
        await asyncio.sleep(0.3)
        assert not proto.data, "data arrived while reading was paused"
        transport.resume_reading()
        transport.resume_reading()
        assert transport.is_reading()
        assert await proto.received(len(payload)) == payload
        transport.close()
        transport.pause_reading()  # on a closing transport: nothing
        writer.close()

    env(check)


def test_eof_received_returning_true_keeps_the_transport_open(env: Any) -> None:
    """eof_received() -> True: the transport stays open for writing until closed (half-close by the peer)."""

    async def check(env: Env) -> None:
        proto = Recorder(keep_open_at_eof=True)
        server, port = await serve(env, proto)
        reader, writer = await env.peer_connect(port)
        writer.write(b"question")
        writer.write_eof()
        await proto.eof
        transport = await proto.made
        assert not transport.is_closing()
        transport.write(b"answer after your EOF")
        transport.close()
        assert await reader.read() == b"answer after your EOF"
        assert await asyncio.wait_for(proto.lost, 10) is None
        writer.close()
        server.close()

    env(check)


# -- WriteTransport ------------------------------------------------------------------------


def test_write_accepts_bytes_like_objects_only(env: Any) -> None:
    """write() and writelines() take bytes, bytearray and memoryview; a str is a TypeError."""

    async def check(env: Env) -> None:
        proto = Recorder()
        transport, (reader, writer) = await connected(env, proto)
        transport.write(b"bytes,")
        transport.write(bytearray(b"bytearray,"))
        transport.write(memoryview(b"memoryview,"))
        transport.writelines([b"one,", bytearray(b"two,"), memoryview(b"three")])
        transport.write(b"")
        with pytest.raises(TypeError):
            transport.write("text")  # type: ignore[arg-type]
        expected = b"bytes,bytearray,memoryview,one,two,three"
        assert await reader.readexactly(len(expected)) == expected
        transport.close()
        writer.close()

    env(check)


def test_write_eof_half_closes(env: Any) -> None:
    """can_write_eof(); after write_eof() the peer reads EOF, data still comes in, write() is refused."""

    async def check(env: Env) -> None:
        proto = Recorder()
        transport, (reader, writer) = await connected(env, proto)
        assert transport.can_write_eof()
        transport.write(b"last words")
        transport.write_eof()
        assert await reader.read() == b"last words"
        writer.write(b"still listening?")
        assert await proto.received(16) == b"still listening?"
        with pytest.raises(RuntimeError):
            transport.write(b"more")
        writer.close()
        assert await asyncio.wait_for(proto.lost, 10) is None

    env(check)


def test_write_flow_control(env: Any) -> None:
    """Above the high-water mark pause_writing(); once drained below the low one resume_writing()."""

    async def check(env: Env) -> None:
        proto = Recorder()
        transport, (reader, writer) = await connected(env, proto)
        transport.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
        assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        chunk = os.urandom(64 * 1024)
        sent = 0
        while not proto.paused:
            transport.write(chunk)
            sent += len(chunk)
            assert sent < 1 << 30, "the peer reads nothing, yet writing never paused"
            await asyncio.sleep(0)
        assert proto.paused == 1 and transport.get_write_buffer_size() > 64 * 1024
        got = await reader.readexactly(sent)
        assert len(got) == sent
        for _ in range(200):
            if proto.resumed:
                break
            await asyncio.sleep(0.01)
        assert proto.resumed == 1 and transport.get_write_buffer_size() <= 16 * 1024
        transport.close()
        writer.close()

    env(check)


def test_write_buffer_limits_are_checked_and_defaulted(env: Any) -> None:
    """set_write_buffer_limits: high >= low >= 0 or ValueError; one mark given, the other follows it."""

    async def check(env: Env) -> None:
        proto = Recorder()
        transport, (_reader, writer) = await connected(env, proto)
        for high, low in ((100, 200), (None, -1), (-5, None)):
            with pytest.raises(ValueError):
                transport.set_write_buffer_limits(high=high, low=low)
        transport.set_write_buffer_limits(low=100_000)
        low, high = transport.get_write_buffer_limits()
        assert low == 100_000 and high >= low, "only the low mark: the high one is at least as high"
        transport.set_write_buffer_limits(high=1000)
        low, high = transport.get_write_buffer_limits()
        assert high == 1000 and 0 <= low <= 1000, "only the high mark: the low one is at most as high"
        transport.set_write_buffer_limits(high=0)
        assert transport.get_write_buffer_limits() == (0, 0), "a high mark of 0 forces the low one to 0"
        assert proto.paused == 0, "an empty buffer does not pause"
        transport.close()
        writer.close()

    env(check)


def test_lowering_the_high_water_mark_below_the_buffer_pauses_at_once(env: Any) -> None:
    """Limits set under what is buffered call pause_writing() right away; the buffer drained, resume_writing()."""

    async def check(env: Env) -> None:
        proto = Recorder()
        transport, (reader, writer) = await connected(env, proto)
        transport.set_write_buffer_limits(high=1 << 30)
        chunk = os.urandom(64 * 1024)
        sent = 0
        while transport.get_write_buffer_size() == 0:  # the kernel's socket buffers fill first
            transport.write(chunk)
            sent += len(chunk)
            assert sent < 1 << 28, "writes to a peer that reads nothing never filled the transport's buffer"
            await asyncio.sleep(0)
        assert proto.paused == 0
        transport.set_write_buffer_limits(high=1)
        assert proto.paused == 1 and proto.resumed == 0, "pause_writing() is called by set_write_buffer_limits"
        assert len(await reader.readexactly(sent)) == sent
        for _ in range(500):
            if proto.resumed:
                break
            await asyncio.sleep(0.01)
        assert proto.resumed == 1 and transport.get_write_buffer_size() == 0
        transport.close()
        writer.close()

    env(check)


# -- BufferedProtocol ----------------------------------------------------------------------


class Buffered(asyncio.BufferedProtocol):
    """Reads through a small buffer of its own."""

    def __init__(self) -> None:
        self.buffer = bytearray(100)
        self.data = bytearray()
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data += self.buffer[:nbytes]

    def eof_received(self) -> None:
        self.done.set_result(bytes(self.data))


def test_buffered_protocol_receives_through_its_buffer(env: Any) -> None:
    """A BufferedProtocol gets every byte through get_buffer()/buffer_updated(), then eof_received()."""

    async def check(env: Env) -> None:
        proto = Buffered()
        server, port = await serve(env, proto)
        _reader, writer = await env.peer_connect(port)
        payload = os.urandom(300_000)
        writer.write(payload)
        writer.write_eof()
        assert await proto.done == payload
        writer.close()
        server.close()

    env(check)


# -- Servers -------------------------------------------------------------------------------


def test_server_start_serving_close_and_wait_closed(env: Any) -> None:
    """start_serving=False waits for start_serving(); close() stops accepting; wait_closed() waits for it."""

    async def check(env: Env) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Recorder, env.host, 0, start_serving=False)
        assert server.get_loop() is loop and not server.is_serving()
        port = server.sockets[0].getsockname()[1]
        await server.start_serving()
        assert server.is_serving()
        _reader, writer = await env.peer_connect(port)
        writer.close()
        server.close()
        assert not server.is_serving()
        await asyncio.wait_for(server.wait_closed(), 10)
        with pytest.raises(OSError):
            await env.peer_connect(port)

    env(check)


def test_serve_forever_ends_by_cancellation_and_closes(env: Any) -> None:
    """serve_forever() runs until cancelled, and the server is closed then."""

    async def check(env: Env) -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), env.host, 0, start_serving=False)
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0.05)
        assert server.is_serving()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()

    env(check)


# -- Streams on top --------------------------------------------------------------------------


def test_streams_drain_under_a_slow_reader(env: Any) -> None:
    """StreamWriter.drain() waits while the peer reads slowly; everything arrives in order."""

    async def check(env: Env) -> None:
        async def slow_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(8192):
                await asyncio.sleep(0.001)
                writer.write(data)
                await writer.drain()
            writer.close()

        host, port = await env.peer_server(slow_echo)
        reader, writer = await asyncio.open_connection(host, port)
        payload = os.urandom(2 * BIG)

        async def send() -> None:
            for i in range(0, len(payload), 65536):
                writer.write(payload[i:i + 65536])
                await writer.drain()
            writer.write_eof()

        sending = asyncio.ensure_future(send())
        assert await reader.read() == payload
        await sending
        writer.close()
        await writer.wait_closed()

    env(check)


# -- DatagramTransport -----------------------------------------------------------------------


def test_datagram_endpoint_sends_receives_and_closes(env: Any) -> None:
    """sendto() reaches the peer, its reply is datagram_received(data, addr); close(): connection_lost(None)."""

    async def check(env: Env) -> None:
        peer = await env.peer_udp()
        transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
            Datagrams, local_addr=(env.host, 0))
        sockname = transport.get_extra_info("sockname")
        assert sockname[0] == env.host and sockname[1] > 0
        assert transport.get_extra_info("peername") is None
        # (asyncio's datagram transports have it; typeshed's DatagramTransport does not declare it)
        assert transport.get_write_buffer_size() == 0  # type: ignore[attr-defined]
        # (No empty datagram: asyncio sends those only from Python 3.13; unik's loop always does.)
        for payload in (b"ping", os.urandom(1400)):
            transport.sendto(payload, peer.address)
            data, source = await peer.recv()
            assert data == payload and source[:2] == sockname[:2]
            await peer.send(payload[::-1], source[:2])
            data, source = await proto.queue.get()
            assert data == payload[::-1] and source[:2] == peer.address
        assert not transport.is_closing()
        transport.close()
        assert transport.is_closing()
        assert await asyncio.wait_for(proto.lost, 10) is None

    env(check)


def test_connected_datagram_endpoint(env: Any) -> None:
    """With remote_addr: sendto(data) needs no address, another address is a ValueError; peername is the peer."""

    async def check(env: Env) -> None:
        peer = await env.peer_udp()
        transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
            Datagrams, remote_addr=peer.address)
        assert transport.get_extra_info("peername")[:2] == peer.address
        transport.sendto(b"to my peer")
        data, source = await peer.recv()
        assert data == b"to my peer"
        with pytest.raises(ValueError):
            transport.sendto(b"elsewhere", (peer.address[0], peer.address[1] + 1))
        await peer.send(b"back", source[:2])
        assert (await proto.queue.get())[0] == b"back"
        transport.abort()
        assert await asyncio.wait_for(proto.lost, 10) is None

    env(check)
