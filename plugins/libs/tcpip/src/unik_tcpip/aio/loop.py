""":class:`UnikEventLoop`: asyncio's selector loop whose network methods use unik's TCP/IP stack."""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
import weakref
from asyncio import sslproto
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..dns import happy
from ..stack import TcpipStack
from ..tcp import TcpConnection
from ..tcp.stacksocket import StackSocket
from .addresses import AddrInfo, getaddrinfo, getnameinfo, literal_family
from .datagram import UdpTransport
from .server import UnikServer

if TYPE_CHECKING:
    import ssl as ssl_module  # imported when TLS is asked for: hvt's CPython has no ssl module

ProtocolFactory = Callable[[], asyncio.BaseProtocol]
_WILDCARDS = (None, "", "0.0.0.0", "::")


@runtime_checkable
class ContextSource(Protocol):
    """What ``ssl=`` also takes: a TLS device of unik-lib-tls (its certificates, SNI, ALPN; its CAs)."""

    def ssl_context(self, server_side: bool) -> ssl_module.SSLContext:
        """The context of the server (``True``) or client side."""


def tls_context(ssl: Any, server_side: bool) -> ssl_module.SSLContext:
    """``ssl=`` as an :class:`ssl.SSLContext`: one given, a TLS device's, or (a client's ``True``) the default."""
    import ssl as ssl_module

    if isinstance(ssl, ssl_module.SSLContext):
        return ssl
    if isinstance(ssl, ContextSource):
        return ssl.ssl_context(server_side)
    if ssl is True and not server_side:
        return ssl_module.create_default_context()
    raise TypeError(f"ssl argument must be an SSLContext or a TLS device (unik-lib-tls), not {ssl!r}")


class NoStack(RuntimeError):
    """A network method of a :class:`UnikEventLoop` was called before a stack was attached."""


class UnikEventLoop(asyncio.SelectorEventLoop):
    """asyncio's selector event loop whose network methods use unik's TCP/IP stack.

    ``create_server``, ``create_connection``, ``create_datagram_endpoint``,
    ``getaddrinfo`` and ``getnameinfo`` go to the attached stack.  Timers, tasks,
    subprocesses, pipes and signals are asyncio's own, and so are the calls given a host
    socket (``sock=``, ``sock_*``).  Until :meth:`attach` gives it a stack, the network
    methods raise :class:`NoStack`.  ``sock_connect`` of an unconnected TCP socket (a
    :class:`StackSocket`, or a host socket that was neither bound nor connected: aiohttp's
    connector makes one) connects it through the stack too, and ``create_connection(sock=)``
    then runs the protocol on that connection.  Connections are made with Nagle's algorithm off, as
    asyncio sets ``TCP_NODELAY`` on its sockets (the stack's own default stays Nagle on,
    as RFC 9293 3.7.4 asks).
    """

    def __init__(self, selector: Any = None) -> None:
        super().__init__(selector)
        self._stack: TcpipStack | None = None
        #: Host sockets that ``sock_connect`` connected through the stack, and their connections.
        self._through_stack: weakref.WeakKeyDictionary[socket.socket, TcpConnection] = weakref.WeakKeyDictionary()

    # -- the stack --------------------------------------------------------------------

    def attach(self, stack: TcpipStack) -> None:
        """Send this loop's network methods to ``stack`` (the generated ``main.py`` does this)."""
        self._stack = stack

    @classmethod
    def attach_running(cls, stack: TcpipStack) -> None:
        """:meth:`attach` ``stack`` to the running loop, which must be a :class:`UnikEventLoop`."""
        loop = asyncio.get_running_loop()
        if not isinstance(loop, cls):
            raise RuntimeError(
                f"the running event loop is {type(loop).__name__}, not unik's: run the application with "
                f"unik_tcpip.aio.run(...) or asyncio.run(..., loop_factory=unik_tcpip.aio.UnikEventLoop)")
        loop.attach(stack)

    @property
    def stack(self) -> TcpipStack:
        """The attached stack (:class:`NoStack` when none is)."""
        if self._stack is None:
            raise NoStack("this unik event loop has no TCP/IP stack yet: its network methods work once "
                          "UnikEventLoop.attach(stack) was called (the generated main.py does it after connecting "
                          "the stack device)")
        return self._stack

    def stack_socket(self, family: int = socket.AF_INET) -> StackSocket:
        """An unconnected TCP socket of the stack: ``bind`` it, then ``create_server(sock=)`` it or ``sock_connect`` it.

        What ``socket.socket()`` is to asyncio's loop, for code that makes its sockets
        before it hands them over (hypercorn binds them before serving).
        """
        return StackSocket(family=family)

    # -- names --------------------------------------------------------------------------

    async def getaddrinfo(self, host: Any, port: Any, *, family: int = 0, type: int = 0,  # type: ignore[override]
                          proto: int = 0, flags: int = 0) -> list[AddrInfo]:
        """Address literals as the C library gives them; names through the stack's resolver."""
        return await getaddrinfo(self.stack, host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        """The numeric host and port of ``sockaddr``."""
        return getnameinfo(sockaddr, flags)

    async def _addresses(self, host: str, family: int, kind: int) -> list[str]:
        infos = await self.getaddrinfo(host, 0, family=family, type=kind)
        return list(dict.fromkeys(info[4][0] for info in infos))

    def _own_addresses(self) -> tuple[str, ...]:
        """The stack's addresses: IPv4's and every IPv6 one past duplicate address detection."""
        ipv6 = (address for address, _prefix, _origin, state in self.stack.ipv6.address_list() if state != "tentative")
        return (self.stack.ipv4.address, *ipv6)

    def _check_reachable(self, address: str) -> None:
        family = literal_family(address)
        if family not in self.stack.families():
            raise OSError(errno.EAFNOSUPPORT, f"{address}: this unik stack has no "
                                              f"{'IPv6' if family == socket.AF_INET6 else 'IPv4'} address")

    # -- TCP ----------------------------------------------------------------------------

    async def create_connection(  # type: ignore[override]
            self, protocol_factory: ProtocolFactory, host: str | None = None, port: int | str | None = None, *,
            ssl: ssl_module.SSLContext | bool | Any = None, family: int = 0, proto: int = 0, flags: int = 0,
            sock: socket.socket | StackSocket | None = None, local_addr: tuple[str, int] | None = None,
            server_hostname: str | None = None, ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None, happy_eyeballs_delay: float | None = None,
            interleave: int | None = None, all_errors: bool = False,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """Connect to ``host:port`` on unik's stack.

        ``sock=``: a socket ``sock_connect`` connected through the stack, else asyncio's own
        (a connected host socket).
        """
        connection = self._connected_through_stack(sock)
        if connection is not None:
            return await self._take_over(connection, protocol_factory, ssl, server_hostname, ssl_handshake_timeout,
                                         ssl_shutdown_timeout)
        if isinstance(sock, socket.socket):  # (a StackSocket was taken over or refused above)
            kwargs: dict[str, Any] = {"ssl_shutdown_timeout": ssl_shutdown_timeout} if sys.version_info >= (3, 11) \
                else {}
            return await super().create_connection(  # type: ignore[no-any-return]
                protocol_factory, ssl=ssl, sock=sock, server_hostname=server_hostname,
                ssl_handshake_timeout=ssl_handshake_timeout, **kwargs)
        if server_hostname is not None and not ssl:
            raise ValueError("server_hostname is only meaningful with ssl")
        if server_hostname is None and ssl:
            if not host:
                raise ValueError("You must set server_hostname when using ssl without a host")
            server_hostname = host
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if host is None or port is None:
            raise ValueError("host and port was not specified and no sock specified")
        number = _port(port)
        local_port = self._local_port(local_addr)
        stack = self.stack
        errors: list[OSError] = []
        addresses = await self._addresses(host, family, socket.SOCK_STREAM)

        async def given() -> list[str]:
            return addresses

        async def attempt(address: str) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
            try:
                self._check_reachable(address)
                return await stack.tcp.create_connection(happy.Pending, address, number, local_port=local_port,
                                                         nodelay=True)
            except OSError as exc:
                errors.append(exc)
                raise

        def abort(connection: tuple[asyncio.Transport, asyncio.BaseProtocol]) -> None:
            connection[0].abort()

        # RFC 8305 5 over the addresses (IPv6 first, the families alternating): a new attempt every
        # happy_eyeballs_delay (250 ms unless given) or as soon as one fails; the first connection wins,
        # and only it meets the application's protocol (happy.hand_over).
        delay = happy.CONNECTION_ATTEMPT_DELAY_S if happy_eyeballs_delay is None else happy_eyeballs_delay
        try:
            transport, pending = await happy.connect([(0, given())], attempt, abort, attempt_delay=delay)
        except OSError:
            if not errors:
                raise
        else:
            assert isinstance(pending, happy.Pending)
            if ssl:
                return await self._connect_tls(transport, pending, protocol_factory, ssl, server_hostname,
                                               ssl_handshake_timeout, ssl_shutdown_timeout)
            protocol = protocol_factory()
            happy.hand_over(transport, pending, protocol)
            return transport, protocol
        if len(errors) == 1 or (not all_errors and len({str(e) for e in errors}) == 1):
            raise errors[0]
        if all_errors and sys.version_info >= (3, 11):
            raise ExceptionGroup("create_connection failed", errors)  # noqa: F821 - a builtin from Python 3.11
        raise OSError(f"Multiple exceptions: {', '.join(str(e) for e in errors)}")

    # -- sockets connected through the stack ----------------------------------------------

    def _unconnected_host_socket(self, sock: Any) -> bool:
        if not isinstance(sock, socket.socket) or sock.type != socket.SOCK_STREAM \
                or sock.family not in (socket.AF_INET, socket.AF_INET6) or self._stack is None:
            return False
        try:
            sock.getpeername()
        except OSError:
            return True
        return False

    async def sock_connect(self, sock: Any, address: Any) -> None:
        """Connect ``sock`` through unik's stack when it is an unconnected TCP socket (else asyncio's own).

        The connection waits, reading paused, for ``create_connection(sock=sock)``.
        """
        stacked = isinstance(sock, StackSocket)
        if not stacked and not self._unconnected_host_socket(sock):
            return await super().sock_connect(sock, address)  # type: ignore[no-any-return]
        host, port = address[0], address[1]
        local = sock.getsockname()
        local_port = local[1] if local and (local[0] in _WILDCARDS or local[0] in self._own_addresses()) else 0
        self._check_reachable(host)
        conn, _ = await self.stack.tcp.create_connection(_Held, host, _port(port), local_port=local_port,
                                                         nodelay=True)
        assert isinstance(conn, TcpConnection)
        if stacked:
            sock.adopt(conn)
        else:
            self._through_stack[sock] = conn

    def _connected_through_stack(self, sock: Any) -> TcpConnection | None:
        if isinstance(sock, StackSocket):
            if sock.connection is None or sock.handed_over:
                raise OSError(errno.EINVAL, f"{sock!r} is not a connection made by this loop's sock_connect")
            sock.handed_over = True
            return sock.connection
        if sock is None or not isinstance(sock, socket.socket):
            return None
        conn = self._through_stack.pop(sock, None)
        if conn is not None:
            sock.close()  # a handle only: its connection is the stack's
        return conn

    async def _take_over(self, conn: TcpConnection, protocol_factory: ProtocolFactory,
                         ssl: ssl_module.SSLContext | bool | None, server_hostname: str | None,
                         handshake_timeout: float | None,
                         shutdown_timeout: float | None) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """Run ``protocol_factory()`` (over TLS with ``ssl``) on a connection ``sock_connect`` made."""
        if conn.lost:
            raise conn.error if isinstance(conn.error, OSError) else ConnectionResetError("the connection ended")
        app_protocol = protocol_factory()
        if not ssl:
            conn.set_protocol(app_protocol)
            app_protocol.connection_made(conn)
            conn.resume_reading()
            return conn, app_protocol
        if server_hostname is None:
            raise ValueError("You must set server_hostname when using ssl without a host")
        context = tls_context(ssl, server_side=False)
        waiter = self.create_future()
        tls = self._tls_protocol(app_protocol, context, waiter, False, server_hostname, handshake_timeout,
                                 shutdown_timeout)
        conn.set_protocol(tls)
        tls.connection_made(conn)
        conn.resume_reading()
        try:
            await waiter
        except BaseException:
            conn.abort()
            raise
        return tls._app_transport, app_protocol

    def _local_port(self, local_addr: tuple[str, int] | None) -> int:
        if local_addr is None:
            return 0
        address, port = local_addr[0], local_addr[1]
        if address not in _WILDCARDS and address not in self._own_addresses():
            raise OSError(errno.EADDRNOTAVAIL, f"cannot bind to {address}: it is not this stack's address "
                                               f"({', '.join(self._own_addresses())})")
        return _port(port)

    async def _connect_tls(self, transport: asyncio.Transport, pending: happy.Pending,
                           protocol_factory: ProtocolFactory, ssl: ssl_module.SSLContext | bool,
                           server_hostname: str | None, handshake_timeout: float | None,
                           shutdown_timeout: float | None) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """Asyncio's TLS protocol (``ssl.SSLObject`` over memory BIOs) on the connection Happy Eyeballs made."""
        context = tls_context(ssl, server_side=False)
        app_protocol = protocol_factory()
        waiter = self.create_future()
        tls = self._tls_protocol(app_protocol, context, waiter, False, server_hostname, handshake_timeout,
                                 shutdown_timeout)
        happy.hand_over(transport, pending, tls)
        try:
            await waiter
        except BaseException:
            transport.abort()
            raise
        return tls._app_transport, app_protocol

    def _tls_protocol(self, app_protocol: asyncio.BaseProtocol, context: ssl_module.SSLContext,
                      waiter: asyncio.Future[Any], server_side: bool, server_hostname: str | None,
                      handshake_timeout: float | None, shutdown_timeout: float | None) -> sslproto.SSLProtocol:
        kwargs: dict[str, Any] = {"ssl_shutdown_timeout": shutdown_timeout} if sys.version_info >= (3, 11) else {}
        return sslproto.SSLProtocol(self, app_protocol, context, waiter, server_side=server_side,
                                    server_hostname=server_hostname,
                                    ssl_handshake_timeout=handshake_timeout,  # type: ignore[arg-type]
                                    **kwargs)

    async def create_server(  # type: ignore[override]
            self, protocol_factory: ProtocolFactory, host: str | Sequence[str] | None = None,
            port: int | str | None = None, *, family: int = socket.AF_UNSPEC, flags: int = socket.AI_PASSIVE,
            sock: socket.socket | None = None, backlog: int = 100, ssl: ssl_module.SSLContext | Any = None,
            reuse_address: bool | None = None, reuse_port: bool | None = None,
            ssl_handshake_timeout: float | None = None, ssl_shutdown_timeout: float | None = None,
            start_serving: bool = True,
    ) -> asyncio.AbstractServer:
        """Listen on ``port`` of unik's stack (``sock=``: a :class:`StackSocket`'s bound address, else asyncio's own).

        ``host`` may be ``None``, ``""``, ``"0.0.0.0"`` or the stack's address (or a list
        of those): the stack has one address, and a port listens on it.  ``reuse_address``
        needs nothing (a port with connections in TIME-WAIT can always listen again);
        ``reuse_port`` shares no port between listeners: a second one is ``EADDRINUSE``.
        ``backlog`` bounds the half-open connections (SYN-RECEIVED), beyond which SYN
        cookies answer.  ``sock=`` a :class:`StackSocket` (:meth:`stack_socket`, bound or
        not) listens on its address, as a bound host socket would (hypercorn hands over
        the sockets it binds); it becomes the server's socket.  Any other ``sock`` is a
        host socket, served by asyncio's own code on the host's network.
        """
        if sock is not None and (host is not None or port is not None):
            raise ValueError("host/port and sock can not be specified at the same time")
        bound: StackSocket | None = None
        if isinstance(sock, StackSocket):
            if sock.connection is not None or sock.listening or sock.closed:
                raise OSError(errno.EINVAL, f"cannot listen on {sock!r}: only an unconnected socket can listen")
            bound, sock = sock, None
            host, port = bound.getsockname()[0], bound.getsockname()[1]
        if sock is not None:
            kwargs: dict[str, Any] = {"ssl_shutdown_timeout": ssl_shutdown_timeout} if sys.version_info >= (3, 11) \
                else {}
            return await super().create_server(
                protocol_factory, sock=sock, backlog=backlog, ssl=ssl, ssl_handshake_timeout=ssl_handshake_timeout,
                start_serving=start_serving, **kwargs)
        if ssl_handshake_timeout is not None and ssl is None:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and ssl is None:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        context = None if ssl is None else tls_context(ssl, server_side=True)
        stack = self.stack
        address = await self._listen_address(host, family)
        factory = protocol_factory
        if context is not None:
            factory = self._tls_server_factory(protocol_factory, context, ssl_handshake_timeout,
                                               ssl_shutdown_timeout)
        number = _port(port)
        if number == 0:
            number = stack.tcp._free_listen_port()
        elif number in stack.tcp.listeners:
            raise OSError(errno.EADDRINUSE, f"error while attempting to bind on address ({address!r}, {number}): "
                                            f"port {number} already listens on unik's stack"
                                            + (" (reuse_port shares no port here)" if reuse_port else ""))
        server = UnikServer(self, stack.tcp, factory, number, address, backlog or None, sock=bound)
        if start_serving:
            await server.start_serving()
        return server

    async def _listen_address(self, host: str | Sequence[str] | None, family: int) -> str:
        """The address a server listens on: the wildcard or one of the stack's own.

        A port listens on every address of the stack: naming one checks it is the stack's.
        """
        hosts: Iterable[str | None] = [host] if host is None or isinstance(host, str) else host
        own = ", ".join(self._own_addresses())
        chosen = "0.0.0.0"
        for name in dict.fromkeys(hosts):
            if name in _WILDCARDS:
                continue
            assert name is not None
            for address in await self._addresses(name, family, socket.SOCK_STREAM):
                if address not in self._own_addresses():
                    loopback = " (unik's stack has no loopback interface)" if address.startswith("127.") else ""
                    raise OSError(errno.EADDRNOTAVAIL, f"cannot listen on {name!r}: {address} is not this stack's "
                                                       f"address {own}{loopback}: listen on 0.0.0.0 or {own}")
                chosen = address
        return chosen

    def _tls_server_factory(self, protocol_factory: ProtocolFactory, context: ssl_module.SSLContext,
                            handshake_timeout: float | None, shutdown_timeout: float | None) -> ProtocolFactory:
        def factory() -> asyncio.BaseProtocol:
            waiter = self.create_future()
            waiter.add_done_callback(_consume)
            return self._tls_protocol(protocol_factory(), context, waiter, True, None, handshake_timeout,
                                      shutdown_timeout)
        return factory

    # -- UDP ----------------------------------------------------------------------------

    async def create_datagram_endpoint(  # type: ignore[override]
            self, protocol_factory: Callable[[], asyncio.DatagramProtocol],
            local_addr: tuple[str, int] | None = None, remote_addr: tuple[str, int] | None = None, *,
            family: int = 0, proto: int = 0, flags: int = 0, reuse_address: bool | None = None,
            reuse_port: bool | None = None, allow_broadcast: bool | None = None, sock: socket.socket | None = None,
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        """A UDP port of unik's stack (``sock=``: asyncio's own, on a host socket)."""
        if sock is not None:
            return await super().create_datagram_endpoint(protocol_factory, sock=sock)  # type: ignore[return-value]
        if reuse_address:
            raise ValueError("Passing `reuse_address=True` is no longer supported, as the usage of SO_REUSEPORT "
                             "in UDP poses a significant security concern.")
        if family == socket.AF_UNIX or (isinstance(local_addr, str) or isinstance(remote_addr, str)):
            raise OSError(errno.EAFNOSUPPORT, "unik's stack has no UNIX-domain datagram sockets")
        stack = self.stack
        peer: tuple[str, int] | None = None
        if remote_addr is not None:
            addresses = await self._addresses(remote_addr[0], family, socket.SOCK_DGRAM)
            self._check_reachable(addresses[0])
            peer = (addresses[0], _port(remote_addr[1]))
        local_port = 0
        if local_addr is not None:
            local_port = self._local_port(local_addr)
        endpoint = await stack.udp.bind(local_port)
        transport: UdpTransport | None = None
        try:
            protocol = protocol_factory()
            transport = UdpTransport(self, endpoint, protocol, (stack.ipv4.address, endpoint.port), peer)
            waiter = self.create_future()
            transport.start(waiter)
            await waiter
        except BaseException:
            if transport is not None:
                transport.close()
            else:
                endpoint.close()
            raise
        return transport, protocol


class _Held(asyncio.Protocol):
    """A connection ``sock_connect`` made, until ``create_connection(sock=...)`` takes it: reading paused."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]

    def eof_received(self) -> bool:
        return True  # the protocol it is handed to hears of it


def _port(port: int | str | None) -> int:
    if port is None:
        return 0
    number = int(port)
    if not 0 <= number < 65536:
        raise OverflowError(f"port must be 0-65535, not {port!r}")
    return number


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a server-side TLS handshake's outcome (asyncio's TLS protocol logs failures itself)."""
    if not future.cancelled():
        future.exception()
