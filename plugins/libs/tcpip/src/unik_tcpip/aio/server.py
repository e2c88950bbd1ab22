"""The :class:`asyncio.AbstractServer` of the unik event loop: a listening port of unik's stack."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..tcp import TcpConnection, TcpLayer, TcpServer
from ..tcp.stacksocket import StackSocket

if TYPE_CHECKING:
    from .loop import UnikEventLoop

#: How often :meth:`UnikServer.wait_closed` looks whether the server's connections are gone.
_POLL_S = 0.02


class UnikServer(asyncio.AbstractServer):
    """What the unik loop's ``create_server`` returns: :class:`asyncio.Server`'s interface on one port.

    Its one socket (:attr:`sockets`) is the :class:`StackSocket` given to ``create_server(sock=)``
    or one made for the port.  ``close()`` stops listening (accepted connections go on); ``wait_closed()`` returns
    once it is closed and every connection it accepted has ended; ``close_clients()``
    and ``abort_clients()`` end them (Python 3.13's additions).
    """

    def __init__(self, loop: UnikEventLoop, layer: TcpLayer, factory: Callable[[], asyncio.BaseProtocol],
                 port: int, address: str, backlog: int | None, sock: StackSocket | None = None) -> None:
        self._loop = loop
        self._layer = layer
        self._factory = factory
        self._port = port
        self._address = address
        self._backlog = backlog
        self._socket = sock if sock is not None else StackSocket()
        self._socket.listening_on(address, port)
        self._listening: TcpServer | None = None
        self._closed = False
        self._closed_waiter: asyncio.Future[None] = loop.create_future()
        self._forever: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<UnikServer {self._address}:{self._port} {'serving' if self.is_serving() else 'not serving'}>"

    @property
    def port(self) -> int:
        """The listening port."""
        return self._port

    @property
    def sockets(self) -> tuple[StackSocket, ...]:
        """Its :class:`StackSocket` while not closed (asyncio: the listening sockets)."""
        return () if self._closed else (self._socket,)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The loop the server runs on."""
        return self._loop

    def is_serving(self) -> bool:
        """Whether the port accepts connections."""
        return self._listening is not None and self._listening.is_serving()

    async def start_serving(self) -> None:
        """Start accepting connections (``create_server(start_serving=False)`` waits for this)."""
        await self._start()
        await asyncio.sleep(0)

    async def _start(self) -> None:
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        if self._listening is None:
            self._listening = await self._layer.create_server(self._factory, self._port, self._backlog, nodelay=True)

    async def serve_forever(self) -> None:
        """Accept connections until cancelled (then closed, as asyncio's) or closed."""
        if self._forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        await self._start()
        self._forever = self._loop.create_future()
        try:
            await self._forever
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._forever = None

    def close(self) -> None:
        """Stop listening; connections already accepted go on."""
        if self._closed:
            return
        self._closed = True
        self._socket.close()
        if self._listening is not None:
            self._listening.close()
        self._closed_waiter.set_result(None)
        if self._forever is not None and not self._forever.done():
            self._forever.cancel()

    def _connections(self) -> list[TcpConnection]:
        return [conn for conn in self._layer.connections.values()
                if conn.tcb.passive and conn.local[1] == self._port and not conn.lost and conn.protocol is not None]

    def close_clients(self) -> None:
        """Close every connection the server accepted (after their buffered data)."""
        for conn in self._connections():
            conn.close()

    def abort_clients(self) -> None:
        """Reset every connection the server accepted."""
        for conn in self._connections():
            conn.abort()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and its connections have ended."""
        await asyncio.shield(self._closed_waiter)
        while self._connections():
            await asyncio.sleep(_POLL_S)

    async def __aenter__(self) -> UnikServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()
