"""What stands where asyncio code expects a socket object on unik's stack: :class:`StackSocket`.

There is no host descriptor behind a connection of unik's stack, yet libraries ask for
one: ``transport.get_extra_info("socket")`` (anyio reads its addresses there, aiohttp
sets ``TCP_NODELAY`` and ``SO_KEEPALIVE`` through it) and ``Server.sockets`` (uvicorn
prints its address).  A :class:`StackSocket` answers what a socket of unik's stack
can: its family and type, ``getsockname``/``getpeername``, ``TCP_NODELAY`` and
``SO_KEEPALIVE`` (which act on the connection); ``fileno()`` is -1; anything else is an
:class:`OSError` saying so.

An unconnected one (:func:`stack_socket`, a ``socket_factory`` for aiohttp's
``TCPConnector``) is connected by the unik event loop's ``sock_connect`` through the stack
and then handed to ``create_connection(sock=...)``; or bound and handed to
``create_server(sock=...)``, which listens on its address (:mod:`unik_tcpip.aio`).
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .transport import TcpConnection

_NOT_HERE = "a socket of unik's stack has no host descriptor"


class StackSocket:
    """A TCP endpoint of unik's stack in a socket's clothes (see the module's docstring)."""

    type = socket.SOCK_STREAM
    proto = socket.IPPROTO_TCP

    def __init__(self, address: tuple[Any, ...] | None = None, *, family: int = socket.AF_INET,
                 connection: TcpConnection | None = None, listening: bool = False) -> None:
        self.family = family
        self._address = address
        self.connection = connection
        self.listening = listening
        self._nodelay = True
        self._keepalive = False
        self.closed = False
        #: The connection went to a transport's protocol (``create_connection(sock=...)``).
        self.handed_over = connection is not None

    def __repr__(self) -> str:
        if self.connection is not None:
            what = f"connected {self.getsockname()} -> {self.getpeername()}"
        elif self.listening:
            what = f"listening on {self.getsockname()}"
        else:
            what = "not connected"
        return f"<unik StackSocket {what}>"

    # -- addresses ----------------------------------------------------------------------

    def getsockname(self) -> tuple[Any, ...]:
        """The local address and port."""
        if self.connection is not None:
            return self.connection.get_extra_info("sockname")  # type: ignore[no-any-return]
        return self._address or (("::", 0, 0, 0) if self.family == socket.AF_INET6 else ("0.0.0.0", 0))

    def getpeername(self) -> tuple[Any, ...]:
        """The peer's address and port (``ENOTCONN`` when not connected)."""
        if self.connection is None:
            raise OSError(errno.ENOTCONN, "the socket is not connected")
        return self.connection.get_extra_info("peername")  # type: ignore[no-any-return]

    def bind(self, address: tuple[Any, ...]) -> None:
        """Remember the local address: the one ``create_server(sock=)`` listens on, or ``sock_connect`` connects from.

        The address is checked when it is used (an address not the stack's is ``EADDRNOTAVAIL``,
        a port that already listens ``EADDRINUSE``).
        """
        if self.connection is not None or self.listening:
            raise OSError(errno.EINVAL, "the socket is already connected or listening")
        self._address = address

    def listening_on(self, address: str, port: int) -> None:
        """Become the socket of a server listening on ``address``:``port`` (the loop's ``create_server``)."""
        if self.family == socket.AF_INET6:
            self._address = ("::" if address == "0.0.0.0" else address, port, 0, 0)
        else:
            self._address = (address, port)
        self.listening = True

    # -- what a connected socket of the stack can change ---------------------------------

    def setsockopt(self, level: int, option: int, value: Any, *rest: Any) -> None:
        """``TCP_NODELAY`` and ``SO_KEEPALIVE`` act on the connection; ``SO_REUSEADDR`` needs nothing."""
        if (level, option) == (socket.IPPROTO_TCP, socket.TCP_NODELAY):
            self._nodelay = bool(value)
            if self.connection is not None:
                self.connection.set_nodelay(self._nodelay)
        elif (level, option) == (socket.SOL_SOCKET, socket.SO_KEEPALIVE):
            self._keepalive = bool(value)
            if self.connection is not None:
                self.connection.set_keepalive(self._keepalive)
        elif (level, option) in ((socket.SOL_SOCKET, socket.SO_REUSEADDR), (socket.SOL_SOCKET, socket.SO_REUSEPORT)):
            pass  # a port of unik's stack can always listen again; none is shared
        else:
            raise OSError(errno.ENOPROTOOPT, f"setsockopt({level}, {option}): {_NOT_HERE}; it takes TCP_NODELAY, "
                                             f"SO_KEEPALIVE and SO_REUSEADDR")

    def getsockopt(self, level: int, option: int, *rest: Any) -> int:
        """``TCP_NODELAY``, ``SO_KEEPALIVE``, ``SO_TYPE`` and ``SO_ERROR`` (always 0: errors are raised)."""
        if (level, option) == (socket.IPPROTO_TCP, socket.TCP_NODELAY):
            return int(self._nodelay if self.connection is None else self.connection.tcb.nodelay)
        if (level, option) == (socket.SOL_SOCKET, socket.SO_KEEPALIVE):
            return int(self._keepalive if self.connection is None else self.connection.tcb.keepalive)
        if (level, option) == (socket.SOL_SOCKET, socket.SO_TYPE):
            return int(socket.SOCK_STREAM)
        if (level, option) == (socket.SOL_SOCKET, socket.SO_ERROR):
            return 0
        raise OSError(errno.ENOPROTOOPT, f"getsockopt({level}, {option}): {_NOT_HERE}")

    def adopt(self, connection: TcpConnection) -> None:
        """Become the socket of ``connection`` (the loop's ``sock_connect``), with the options set so far."""
        self.connection = connection
        connection.set_nodelay(self._nodelay)
        if self._keepalive:
            connection.set_keepalive(True)

    # -- descriptor-free answers ----------------------------------------------------------

    def fileno(self) -> int:
        """-1: no host descriptor."""
        return -1

    def setblocking(self, flag: bool) -> None:
        """Accepted: the stack's sockets never block (their calls are the loop's coroutines)."""

    def gettimeout(self) -> float:
        """0.0: non-blocking."""
        return 0.0

    def close(self) -> None:
        """Close the socket; a connection made for it and not yet handed to a transport is reset."""
        if self.closed:
            return
        self.closed = True
        if self.connection is not None and not self.handed_over:
            self.connection.abort()

    def detach(self) -> int:
        """-1 (there is no descriptor to detach)."""
        return -1

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def refused(*args: Any, **kwargs: Any) -> Any:
            raise OSError(errno.EOPNOTSUPP, f"{name}() on {self!r}: {_NOT_HERE}; use the transport "
                                            f"(loop.create_connection / create_server) instead")
        return refused


def stack_socket(addr_info: tuple[Any, ...] | None = None) -> StackSocket:
    """An unconnected :class:`StackSocket` (aiohttp: ``TCPConnector(socket_factory=stack_socket)``)."""
    family = addr_info[0] if addr_info else socket.AF_INET
    return StackSocket(family=family)
