"""An :class:`asyncio.DatagramTransport` on a UDP port of unik's stack."""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import Any

from unik.errors import DeviceClosed

from ..udp import UdpEndpoint

log = logging.getLogger(__name__)


class UdpTransport(asyncio.DatagramTransport):
    """A bound UDP port as asyncio's datagram transport (``create_datagram_endpoint``).

    Received datagrams reach ``protocol.datagram_received``; a send the stack refuses
    (no route, too long) reaches ``protocol.error_received``, as asyncio's do.  With a
    ``remote_addr`` only that peer is written to and heard from.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, endpoint: UdpEndpoint, protocol: asyncio.DatagramProtocol,
                 sockname: tuple[str, int], peer: tuple[str, int] | None) -> None:
        super().__init__({"sockname": sockname, "peername": peer, "socket": None})
        self._loop = loop
        self._endpoint = endpoint
        self._protocol = protocol
        self._peer = peer
        self._closing = False
        self._receiver: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<UdpTransport port {self._endpoint.port}{' closing' if self._closing else ''}>"

    def start(self, waiter: asyncio.Future[None]) -> None:
        """Call ``connection_made`` and start receiving (the loop's ``create_datagram_endpoint``)."""
        self._protocol.connection_made(self)
        self._receiver = self._loop.create_task(self._receive())
        waiter.set_result(None)

    async def _receive(self) -> None:
        endpoint = self._endpoint
        while not self._closing:
            try:
                dgram = await endpoint.recvfrom()
            except DeviceClosed:
                return
            if self._peer is not None and dgram.source != self._peer:
                continue  # a connected datagram socket hears only its peer
            try:
                self._protocol.datagram_received(dgram.data, dgram.source)
            except Exception:
                log.exception("datagram_received of %r failed", self._protocol)

    def sendto(self, data: bytes | bytearray | memoryview, addr: tuple[str, int] | None = None) -> None:  # type: ignore[override]
        """Send one datagram to ``addr`` (or the connected peer)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._peer is not None:
            if addr not in (None, self._peer):
                raise ValueError(f"Invalid address: must be None or {self._peer}")
            addr = self._peer
        if addr is None:
            raise ValueError("sendto() needs an address on an unconnected endpoint")
        if self._closing:
            return
        try:
            self._endpoint.send(bytes(data), addr)
        except OSError as exc:
            self._protocol.error_received(exc)
        except ValueError as exc:
            self._protocol.error_received(OSError(errno.EINVAL, str(exc)))

    def get_write_buffer_size(self) -> int:
        """0: a datagram leaves at once or is refused."""
        return 0

    def is_closing(self) -> bool:
        """Whether :meth:`close` or :meth:`abort` was called."""
        return self._closing

    def close(self) -> None:
        """Release the port; ``connection_lost(None)`` follows on the next turn of the loop."""
        if self._closing:
            return
        self._closing = True
        self._endpoint.close()
        if self._receiver is not None:
            self._receiver.cancel()
        self._loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        """As :meth:`close`: a datagram port buffers nothing."""
        self.close()

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol."""
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Replace the protocol."""
        assert isinstance(protocol, asyncio.DatagramProtocol)
        self._protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``sockname``, ``peername`` (``None`` unless connected); ``socket`` is ``None`` (no host socket)."""
        return super().get_extra_info(name, default)
