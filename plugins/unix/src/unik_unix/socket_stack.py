"""A :class:`unik.devices.Stack` on the host kernel's sockets (mirage's ``--net=socket``).

It needs no root and no TAP device: TCP is :func:`asyncio.start_server` and
:func:`asyncio.open_connection`, UDP is a datagram endpoint.  ``--ipv4`` chooses the
address to bind (all addresses by default).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
from collections.abc import Callable
from typing import Any

from unik.devices import Datagram, Flow, FlowHandler, IPv4Config
from unik.errors import BadKey, DeviceClosed, DeviceUnavailable, RunError

#: Buffer limit of stream readers, as asyncio's default.
STREAM_LIMIT = 2**16


_NOT_HERE = ("{} is not an address of this host: give --ipv4 one of its addresses (`ip -4 addr`), "
             "or leave --ipv4 unset to listen on all of them")


def check_bind_address(ipv4: str) -> None:
    """Refuse an ``--ipv4`` (``ADDR[/PREFIX]``) that is not an address of this host (:class:`RunError`)."""
    address = str(ipaddress.IPv4Interface(ipv4).ip)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise RunError(f"--ipv4 {ipv4}: {_NOT_HERE.format(address)}") from None
            raise


def listen_error(address: str, port: int, exc: OSError) -> str:
    """Why the host refused to listen on ``address:port``, and what to do about it."""
    where = f"cannot listen on {address}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where}: another program listens on port {port}: stop it, or choose another port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{where}: {_NOT_HERE.format(address)}"
    if exc.errno == errno.EACCES and port < 1024:
        return f"{where}: ports below 1024 need root or CAP_NET_BIND_SERVICE: choose a port from 1024 up"
    return f"{where}: {os.strerror(exc.errno) if exc.errno else exc}"


class SocketTCP:
    """TCP over host sockets."""

    def __init__(self, stack: SocketStack) -> None:
        self._stack = stack

    def _local(self) -> tuple[str, int] | None:
        return None if self._stack.bind_address == "0.0.0.0" else (self._stack.bind_address, 0)

    async def create_connection(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: str, port: int
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        """Open a connection running ``protocol_factory()`` (``loop.create_connection``)."""
        self._stack._check()
        loop = asyncio.get_running_loop()
        return await loop.create_connection(protocol_factory, host, port, local_addr=self._local())

    async def create_server(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], port: int
    ) -> asyncio.Server:
        """Listen on ``port`` of the bound address, running ``protocol_factory()`` per connection."""
        self._stack._check()
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                protocol_factory, host=self._stack.bind_address, port=port, reuse_address=True
            )
        except OSError as exc:
            raise DeviceUnavailable(listen_error(self._stack.bind_address, port, exc)) from exc
        self._stack._servers.append(server)
        return server

    async def connect(self, host: str, port: int) -> Flow:
        """Open a connection to ``host:port`` (as :func:`asyncio.open_connection`)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport, _ = await self.create_connection(lambda: protocol, host, port)
        return Flow(reader, asyncio.StreamWriter(transport, protocol, reader, loop))  # type: ignore[arg-type]

    async def start_server(self, handler: FlowHandler, port: int) -> asyncio.Server:
        """Call ``handler(reader, writer)`` per connection (as :func:`asyncio.start_server`)."""
        loop = asyncio.get_running_loop()

        def factory() -> asyncio.BaseProtocol:
            reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
            return asyncio.StreamReaderProtocol(reader, handler, loop=loop)  # type: ignore[arg-type]

        return await self.create_server(factory, port)


class _DatagramQueue(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Datagram] = asyncio.Queue(maxsize=1024)
        self.dropped = 0

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            self.queue.put_nowait(Datagram(data, (str(addr[0]), int(addr[1]))))
        except asyncio.QueueFull:
            self.dropped += 1


class SocketUDPEndpoint:
    """A bound UDP port over a host socket."""

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _DatagramQueue) -> None:
        self._transport = transport
        self._protocol = protocol

    @property
    def port(self) -> int:
        """The local port."""
        return int(self._transport.get_extra_info("sockname")[1])

    @property
    def dropped(self) -> int:
        """Datagrams dropped because the application did not read them in time."""
        return self._protocol.dropped

    async def recvfrom(self) -> Datagram:
        """The next datagram."""
        return await self._protocol.queue.get()

    async def sendto(self, data: bytes, destination: tuple[str, int]) -> None:
        """Send one datagram."""
        self._transport.sendto(data, destination)

    def close(self) -> None:
        """Release the port."""
        self._transport.close()


class SocketUDP:
    """UDP over host sockets."""

    def __init__(self, stack: SocketStack) -> None:
        self._stack = stack

    async def bind(self, port: int = 0) -> SocketUDPEndpoint:
        """Bind ``port`` (0: any)."""
        self._stack._check()
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            _DatagramQueue, local_addr=(self._stack.bind_address, port), family=socket.AF_INET
        )
        endpoint = SocketUDPEndpoint(transport, protocol)
        self._stack._endpoints.append(endpoint)
        return endpoint


class SocketStack:
    """A :class:`unik.devices.Stack` on host sockets."""

    def __init__(self, address: str, prefix: int) -> None:
        self.bind_address = address
        self.ipv4 = IPv4Config(address, prefix)
        self.tcp = SocketTCP(self)
        self.udp = SocketUDP(self)
        self._servers: list[asyncio.Server] = []
        self._endpoints: list[SocketUDPEndpoint] = []
        self._closed = False

    @classmethod
    async def connect(cls, ipv4: str | None = None) -> SocketStack:
        """A stack bound to ``ipv4`` (``ADDR[/PREFIX]``; all addresses when ``None``)."""
        if ipv4 is None:
            return cls("0.0.0.0", 0)
        try:
            iface = ipaddress.IPv4Interface(ipv4)
        except ValueError:
            raise BadKey(f"--ipv4: {ipv4!r} is not an IPv4 address/prefix") from None
        return cls(str(iface.ip), iface.network.prefixlen)

    def _check(self) -> None:
        if self._closed:
            raise DeviceClosed("socket stack is disconnected")

    async def resolve(self, name: str, family: int = 0) -> list[str]:
        """The addresses of ``name`` from the host's resolver (as unik-lib-tcpip's ``stack.resolve``)."""
        self._check()
        infos = await asyncio.get_running_loop().getaddrinfo(name, None, family=family, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    async def getaddrinfo(self, host: str | None, port: int | str | None, family: int = 0, type: int = 0,
                          proto: int = 0, flags: int = 0) -> list[tuple[int, int, int, str, tuple[Any, ...]]]:
        """The host's :meth:`asyncio.loop.getaddrinfo` (as unik-lib-tcpip's ``stack.getaddrinfo``)."""
        self._check()
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=family, type=type, proto=proto,
                                                             flags=flags)
        return [(int(f), int(t), p, c, tuple(a)) for f, t, p, c, a in infos]

    async def disconnect(self) -> None:
        """Close every server and UDP endpoint opened through this stack."""
        self._closed = True
        for endpoint in self._endpoints:
            endpoint.close()
        for server in self._servers:
            server.close()
            if hasattr(server, "close_clients"):  # Python 3.13+
                server.close_clients()
        for server in self._servers:
            # From 3.12 wait_closed also waits for open connections: bound it.
            try:
                await asyncio.wait_for(server.wait_closed(), 5.0)
            except asyncio.TimeoutError:
                pass
