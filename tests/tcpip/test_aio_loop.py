"""The unik event loop (unik_tcpip.aio): asyncio's network methods on unik's stack.

Most tests join two stacks on a simulated wire in real time: the loop's stack (A,
10.0.0.1) and a peer stack (B, 10.0.0.2) used through its own API.  The tests of
test_aio_kernel.py put the loop's stack on a TAP whose kernel side is in a
namespace the test makes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tcpip_support import LoopSleep, SeededRandom, VirtualClock, Wire, mac, make_stack, pair
from unik_tcpip.aio import NoStack, UnikEventLoop, run
from unik_tcpip.stack import TcpipStack, parse_ipv4, resolver_keys

TIMEOUT = 30.0


@contextlib.asynccontextmanager
async def two_stacks() -> AsyncIterator[tuple[TcpipStack, TcpipStack]]:
    """A (attached to the running unik loop, knowing B as ``peer.test``) and B on a simulated wire, in real time."""
    wire = Wire(keep_log=False)
    a = TcpipStack(wire.port(mac(1), name="stack1"), VirtualClock(), LoopSleep(), SeededRandom(1),
                   parse_ipv4("10.0.0.1/24", None), resolver_config=resolver_keys(None, None, "peer.test=10.0.0.2"))
    a.start()
    b = await make_stack(wire, 2, "10.0.0.2/24")
    UnikEventLoop.attach_running(a)
    try:
        yield a, b
    finally:
        await a.disconnect()
        await b.disconnect()


def run_unik(coro: Any) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, TIMEOUT)
    return run(bounded())


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):  # a test may end with the connection open
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


def unsent(writer: asyncio.StreamWriter) -> int:
    """Bytes written on a unik connection but not yet sent."""
    from unik_tcpip.tcp import seq_diff

    tcb = writer.transport.get_extra_info("tcp_connection").tcb
    return len(tcb.snd) - seq_diff(tcb.snd_nxt, tcb.snd_una)


# -- names ---------------------------------------------------------------------------


def test_getaddrinfo_answers_literals_and_asks_the_stack_s_resolver_for_names() -> None:
    async def main() -> None:
        async with two_stacks():
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo("10.0.0.2", 80)
            assert infos == [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.2", 80)),
                             (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("10.0.0.2", 80))]
            assert await loop.getaddrinfo("10.0.0.2", "443", type=socket.SOCK_STREAM) == [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.2", 443))]
            assert (await loop.getaddrinfo(None, 0, flags=socket.AI_PASSIVE))[0][4] == ("0.0.0.0", 0)
            assert (await loop.getaddrinfo("::1", 5, family=socket.AF_INET6))[0][4] == ("::1", 5, 0, 0)
            assert (await loop.getaddrinfo("peer.test", 80, type=socket.SOCK_STREAM))[0][4] == ("10.0.0.2", 80)
            with pytest.raises(socket.gaierror, match="no DNS server is known"):
                await loop.getaddrinfo("example.com", 80)
            with pytest.raises(socket.gaierror, match="service 'http'"):
                await loop.getaddrinfo("10.0.0.2", "http")
            with pytest.raises(socket.gaierror, match="no DNS server"):
                await asyncio.open_connection("example.com", 80)
            assert await loop.getnameinfo(("10.0.0.2", 80)) == ("10.0.0.2", "80")
            with pytest.raises(socket.gaierror, match="reverse"):
                await loop.getnameinfo(("10.0.0.2", 80), socket.NI_NAMEREQD)
    run_unik(main())


def test_network_methods_say_when_no_stack_is_attached() -> None:
    async def main() -> None:
        with pytest.raises(NoStack, match=r"UnikEventLoop\.attach"):
            await asyncio.open_connection("10.0.0.2", 80)
        with pytest.raises(NoStack):
            await asyncio.start_server(echo, None, 80)
    run_unik(main())


def test_attach_running_refuses_asyncio_s_own_loop() -> None:
    async def main() -> None:
        a, b = await pair(Wire(keep_log=False))
        try:
            with pytest.raises(RuntimeError, match="not unik's"):
                UnikEventLoop.attach_running(a)
        finally:
            await a.disconnect()
            await b.disconnect()
    asyncio.run(main())


# -- TCP -----------------------------------------------------------------------------


def test_start_server_serves_the_peer_with_nagle_off() -> None:
    async def main() -> None:
        async with two_stacks() as (a, b):
            server = await asyncio.start_server(echo, None, 7000)
            assert server.is_serving()
            [sock] = server.sockets
            assert sock.getsockname() == ("0.0.0.0", 7000) and sock.fileno() == -1
            assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
            reader, writer = await b.tcp.connect("10.0.0.1", 7000)
            for size in (1, 100, 200_000):
                payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
                writer.write(payload)
                assert await reader.readexactly(len(payload)) == payload
            [accepted] = [c for c in a.tcp.connections.values() if c.local[1] == 7000]
            assert accepted.tcb.nodelay, "asyncio sets TCP_NODELAY on accepted sockets; so does unik's loop"
            assert isinstance(writer, asyncio.StreamWriter)
            assert not writer.transport.get_extra_info("tcp_connection").tcb.nodelay, "the stack's default is Nagle"
            writer.close()
            assert await reader.read() == b""
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)
            assert not server.is_serving() and server.sockets == ()
            with pytest.raises(ConnectionRefusedError):
                await b.tcp.connect("10.0.0.1", 7000)
    run_unik(main())


def test_open_connection_reaches_the_peer_with_nagle_off() -> None:
    async def main() -> None:
        async with two_stacks() as (_a, b):
            accepted: list[tuple[Any, Any]] = []

            async def keep(reader: Any, writer: Any) -> None:
                accepted.append((reader, writer))
                await echo(reader, writer)

            await b.tcp.start_server(keep, 7001)
            reader, writer = await asyncio.open_connection("10.0.0.2", 7001)
            assert writer.get_extra_info("peername") == ("10.0.0.2", 7001)
            assert writer.get_extra_info("sockname")[0] == "10.0.0.1"
            sock = writer.get_extra_info("socket")
            assert sock.fileno() == -1 and sock.getpeername() == ("10.0.0.2", 7001)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            assert writer.transport.get_extra_info("tcp_connection").tcb.keepalive
            with pytest.raises(OSError, match="no host descriptor"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            with pytest.raises(OSError, match="no host descriptor"):
                sock.recv(10)
            assert writer.transport.get_extra_info("tcp_connection").tcb.nodelay
            # Two small writes in a row both leave at once; Nagle would hold the second until the
            # first is acknowledged (as the peer's own connection, on the stack's default, does).
            writer.write(b"a")
            writer.write(b"b")
            assert unsent(writer) == 0
            assert await reader.readexactly(2) == b"ab"
            [(_peer_reader, peer_writer)] = accepted
            peer_writer.write(b"c")
            peer_writer.write(b"d")
            assert unsent(peer_writer) > 0, "the stack's default (Nagle) holds small segments while data is in flight"
            assert await reader.readexactly(2) == b"cd"
            writer.close()
            await writer.wait_closed()
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection("10.0.0.2", 7002)
            _r, w2 = await asyncio.open_connection("10.0.0.2", 7001, local_addr=("0.0.0.0", 40001))
            assert w2.get_extra_info("sockname") == ("10.0.0.1", 40001)
            w2.close()
            with pytest.raises(OSError, match="not this stack's address"):
                await asyncio.open_connection("10.0.0.2", 7001, local_addr=("10.9.9.9", 0))
            with pytest.raises(OSError, match="no IPv6 address"):
                await asyncio.open_connection("::1", 7001)
            # A name the stack's resolver knows (--hosts here).
            r3, w3 = await asyncio.open_connection("peer.test", 7001)
            assert w3.get_extra_info("peername") == ("10.0.0.2", 7001)
            w3.write(b"by name")
            assert await r3.readexactly(7) == b"by name"
            w3.close()
    run_unik(main())


def test_create_server_addresses_ports_and_start_serving() -> None:
    async def main() -> None:
        async with two_stacks() as (_a, b):
            loop = asyncio.get_running_loop()
            own = await asyncio.start_server(echo, "10.0.0.1", 0)
            port = own.sockets[0].getsockname()[1]
            assert own.sockets[0].getsockname() == ("10.0.0.1", port) and 49152 <= port < 65536
            with pytest.raises(OSError, match="already listens") as info:
                await asyncio.start_server(echo, None, port, reuse_port=True)
            assert info.value.errno == 98  # EADDRINUSE
            with pytest.raises(OSError, match="no loopback interface"):
                await asyncio.start_server(echo, "127.0.0.1", 7003)
            with pytest.raises(OSError, match="not this stack's address"):
                await asyncio.start_server(echo, "10.0.0.7", 7003)
            with pytest.raises(OSError, match=r"10\.0\.0\.2 is not this stack.s address"):
                await asyncio.start_server(echo, "peer.test", 7003)
            both = await asyncio.start_server(echo, ["0.0.0.0", "10.0.0.1"], 7004, reuse_address=True)
            assert both.sockets[0].getsockname() == ("10.0.0.1", 7004)
            lazy = await loop.create_server(asyncio.Protocol, None, 7005, start_serving=False)
            assert not lazy.is_serving()
            with pytest.raises(ConnectionRefusedError):
                await b.tcp.connect("10.0.0.1", 7005)
            await lazy.start_serving()
            _r, w = await b.tcp.connect("10.0.0.1", 7005)
            w.close()
            for server in (own, both, lazy):
                server.close()
    run_unik(main())


def test_create_server_listens_on_a_bound_stack_socket() -> None:
    """What hypercorn does: bind sockets first, then serve them with start_server(sock=...)."""
    from unik.serve import StackLoop

    async def main() -> None:
        async with two_stacks() as (_a, b):
            loop = asyncio.get_running_loop()
            assert isinstance(loop, StackLoop)
            sock = loop.stack_socket()
            sock.bind(("10.0.0.1", 7020))
            server = await asyncio.start_server(echo, sock=sock, backlog=10)
            assert server.sockets == (sock,) and sock.listening and sock.getsockname() == ("10.0.0.1", 7020)
            reader, writer = await b.tcp.connect("10.0.0.1", 7020)
            writer.write(b"bound first")
            assert await reader.readexactly(11) == b"bound first"
            writer.close()
            with pytest.raises(OSError, match="only an unconnected socket can listen"):
                await loop.create_server(asyncio.Protocol, sock=sock)
            with pytest.raises(ValueError, match="host/port and sock"):
                await loop.create_server(asyncio.Protocol, None, 7021, sock=loop.stack_socket())
            any_port = loop.stack_socket(socket.AF_INET6)  # unbound: the wildcard and a free port
            wildcard = await loop.create_server(asyncio.Protocol, sock=any_port)
            assert any_port.getsockname()[0] == "::" and 49152 <= any_port.getsockname()[1] < 65536
            taken, elsewhere = loop.stack_socket(), loop.stack_socket()
            taken.bind(("0.0.0.0", 7020))
            with pytest.raises(OSError, match="already listens") as info:
                await loop.create_server(asyncio.Protocol, sock=taken)
            assert info.value.errno == 98  # EADDRINUSE, as a host socket's listen
            elsewhere.bind(("10.0.0.9", 7022))
            with pytest.raises(OSError, match="not this stack's address") as info:
                await loop.create_server(asyncio.Protocol, sock=elsewhere)
            assert info.value.errno == 99  # EADDRNOTAVAIL, as a host socket's bind
            for each in (server, wildcard):
                each.close()
                await each.wait_closed()
            assert sock.closed and server.sockets == ()  # type: ignore[comparison-overlap]
    run_unik(main())
    plain = asyncio.new_event_loop()
    try:
        assert not isinstance(plain, StackLoop), "asyncio's own loop binds host sockets"
    finally:
        plain.close()


def test_serve_forever_is_cancelled_and_wait_closed_waits_for_connections() -> None:
    async def main() -> None:
        async with two_stacks() as (_a, b):
            server = await asyncio.start_server(echo, None, 7006, start_serving=False)
            forever = asyncio.ensure_future(server.serve_forever())
            await asyncio.sleep(0.01)
            assert server.is_serving()
            reader, writer = await b.tcp.connect("10.0.0.1", 7006)
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            forever.cancel()
            closing = asyncio.ensure_future(server.wait_closed())
            await asyncio.sleep(0.1)
            assert not server.is_serving() and not closing.done(), "an accepted connection is still open"
            writer.close()
            await asyncio.wait_for(closing, 5)
            with pytest.raises(asyncio.CancelledError):
                await forever
    run_unik(main())


def test_close_clients_and_abort_clients() -> None:
    async def main() -> None:
        async with two_stacks() as (_a, b):
            server: Any = await asyncio.start_server(echo, None, 7007)
            flows = [await b.tcp.connect("10.0.0.1", 7007) for _ in range(3)]
            await asyncio.sleep(0.05)
            server.close()
            server.close_clients()
            for reader, _writer in flows:
                assert await asyncio.wait_for(reader.read(), 5) == b""
            server2: Any = await asyncio.start_server(echo, None, 7008)
            reader, _writer = await b.tcp.connect("10.0.0.1", 7008)
            await asyncio.sleep(0.05)
            server2.abort_clients()
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), 5)
            server2.close()
            await asyncio.wait_for(server2.wait_closed(), 5)
    run_unik(main())


# -- UDP -----------------------------------------------------------------------------


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.errors: list[Exception] = []
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


def test_datagram_endpoint_sends_and_receives() -> None:
    async def main() -> None:
        async with two_stacks() as (a, b):
            loop = asyncio.get_running_loop()
            peer = await b.udp.bind(5300)
            transport, proto = await loop.create_datagram_endpoint(Collect, local_addr=("0.0.0.0", 5301))
            assert transport.get_extra_info("sockname") == ("10.0.0.1", 5301)
            assert transport.get_extra_info("peername") is None
            transport.sendto(b"hello", ("10.0.0.2", 5300))
            dgram = await peer.recvfrom()
            assert dgram.data == b"hello" and dgram.source == ("10.0.0.1", 5301)
            await peer.sendto(b"back", ("10.0.0.1", 5301))
            assert await proto.got.get() == (b"back", ("10.0.0.2", 5300))
            transport.sendto(b"x" * 70000, ("10.0.0.2", 5300))
            error = proto.errors[0] if proto.errors else None
            assert isinstance(error, OSError) and error.errno == 90  # EMSGSIZE, to error_received
            with pytest.raises(ValueError, match="needs an address"):
                transport.sendto(b"x")
            transport.close()
            assert transport.is_closing() and await proto.lost is None
            assert 5301 not in a.udp.ports
            # Connected: only the peer is heard; sendto needs no address.
            connected, cproto = await loop.create_datagram_endpoint(Collect, remote_addr=("10.0.0.2", 5300))
            assert connected.get_extra_info("peername") == ("10.0.0.2", 5300)
            connected.sendto(b"to peer")
            dgram = await peer.recvfrom()
            other = await b.udp.bind(5302)
            await other.sendto(b"stranger", dgram.source)
            await peer.sendto(b"peer", dgram.source)
            assert await cproto.got.get() == (b"peer", ("10.0.0.2", 5300))
            with pytest.raises(ValueError, match="Invalid address"):
                connected.sendto(b"x", ("10.0.0.2", 1))
            connected.close()
    run_unik(main())


# -- TLS over asyncio's SSLProtocol ------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    from unik_tls.certs import selfsigned, write_pair

    directory = tmp_path_factory.mktemp("tls")
    cert, key = selfsigned(["unik.test", "10.0.0.1"])
    write_pair(cert, key, directory / "cert.pem", directory / "key.pem")
    yield directory / "cert.pem", directory / "key.pem"


def test_tls_server_and_client_through_ssl_contexts(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        async with two_stacks() as (_a, _b):
            server = await asyncio.start_server(echo, None, 7443, ssl=server_ctx)
            # Client and server are both on the loop's stack: a connection to its own address is
            # looped back inside the stack (the kernel tests below use a kernel peer).
            reader, writer = await asyncio.open_connection("10.0.0.1", 7443, ssl=client_ctx,
                                                           server_hostname="unik.test")
            assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
            assert writer.get_extra_info("peercert")["subjectAltName"]
            big = b"0123456789abcdef" * 40_000
            writer.write(big)
            assert await reader.readexactly(len(big)) == big
            writer.close()
            await writer.wait_closed()
            with pytest.raises(ssl.SSLCertVerificationError):
                await asyncio.open_connection("10.0.0.1", 7443, ssl=client_ctx, server_hostname="other.test")
            server.close()
    run_unik(main())



def test_the_stack_provider_names_the_loop_for_the_generated_main() -> None:
    import importlib

    from unik_tcpip.plugin import TcpipStackProvider

    module, cls = TcpipStackProvider.event_loop.split(":")
    assert getattr(importlib.import_module(module), cls) is UnikEventLoop


def test_sock_connect_connects_unconnected_sockets_through_the_stack() -> None:
    """What aiohttp does (aiohappyeyeballs): sock_connect a fresh socket, then create_connection(sock=)."""
    from unik_tcpip.aio import StackSocket, stack_socket

    async def main() -> None:
        async with two_stacks() as (_a, b):
            await b.tcp.start_server(echo, 7010)
            loop = asyncio.get_running_loop()
            assert isinstance(loop, UnikEventLoop)
            for sock in (socket.socket(socket.AF_INET, socket.SOCK_STREAM), stack_socket()):
                sock.setblocking(False)
                await loop.sock_connect(sock, ("10.0.0.2", 7010))
                transport, proto = await loop.create_connection(Recorder, sock=sock)
                assert isinstance(proto, Recorder)
                assert transport.get_extra_info("peername") == ("10.0.0.2", 7010)
                assert transport.get_extra_info("tcp_connection").tcb.nodelay
                transport.write(b"through the stack")
                await asyncio.wait_for(proto.done.wait(), 5)
                assert bytes(proto.data) == b"through the stack"
                transport.close()
                if isinstance(sock, socket.socket):
                    assert sock.fileno() == -1, "the host socket was only a handle, and is closed"
                else:
                    assert isinstance(sock, StackSocket) and sock.handed_over
            # A connection made and never handed over is reset when its socket closes.
            spare = stack_socket()
            await loop.sock_connect(spare, ("10.0.0.2", 7010))
            conn = spare.connection
            spare.close()
            assert conn is not None and conn.lost
    run_unik(main())


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.done = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.data += data
        if len(self.data) >= 17:
            self.done.set()


def test_tls_through_a_unik_lib_tls_device(tls_files: tuple[Path, Path]) -> None:
    """ssl= takes unik-lib-tls's device: its certificate serves, its CAs verify, and ALPN is negotiated."""
    from unik_tls.config import CertPair
    from unik_tls.device import OpenSSLTLS

    cert, key = tls_files
    server_tls = OpenSSLTLS.create(pairs=[CertPair.from_files(cert, key)], alpn=["h2", "http/1.1"])
    client_tls = OpenSSLTLS.create(cafile=str(cert), alpn=["http/1.1"])

    async def main() -> None:
        async with two_stacks():
            server = await asyncio.start_server(echo, None, 7444, ssl=server_tls)
            reader, writer = await asyncio.open_connection("10.0.0.1", 7444, ssl=client_tls,
                                                           server_hostname="unik.test")
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
            writer.write(b"via the TLS device")
            assert await reader.readexactly(18) == b"via the TLS device"
            writer.close()
            server.close()
            with pytest.raises(TypeError, match="SSLContext or a TLS device"):
                await asyncio.start_server(echo, None, 7445, ssl="yes")
            with pytest.raises(Exception, match="no certificate configured"):
                await asyncio.start_server(echo, None, 7446, ssl=client_tls)
    run_unik(main())
