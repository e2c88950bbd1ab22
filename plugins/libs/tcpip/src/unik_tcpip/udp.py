"""UDP sockets (RFC 768): bound ports with bounded receive queues."""

from __future__ import annotations

import asyncio
import errno
from collections import Counter, deque
from typing import TYPE_CHECKING

from unik.devices import Datagram
from unik.errors import DeviceClosed

from .addr import ip_bytes, ip_text, sockaddr
from .errors import Malformed
from .wire.ipv4 import Protocol
from .wire.udp import UdpDatagram

if TYPE_CHECKING:
    from unik.devices import Random

    from .ip import IpDatagram, IpError, IpLayer

EPHEMERAL = range(49152, 65536)
MAX_PAYLOAD = 65535 - 20 - 8


class UdpEndpoint:
    """A bound UDP port (:class:`unik.devices.UDPEndpoint`)."""

    def __init__(self, layer: UdpLayer, port: int, queue_limit: int) -> None:
        self._layer = layer
        self.port = port
        self._queue: deque[Datagram] = deque()
        self._limit = queue_limit
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.dropped = 0

    def _deliver(self, dgram: Datagram) -> None:
        if len(self._queue) >= self._limit:
            self.dropped += 1
            self._layer.stats["udp.queue_full"] += 1
            return
        self._queue.append(dgram)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def recvfrom(self) -> Datagram:
        """The next datagram (waits for one)."""
        while not self._queue:
            if self.closed:
                raise DeviceClosed(f"UDP port {self.port} is closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    async def sendto(self, data: bytes, destination: tuple[str, int]) -> None:
        """Send one datagram to ``(address, port)`` (an IPv6 address: ``(address, port[, flow, scope])``)."""
        self.send(data, destination)

    def send(self, data: bytes, destination: tuple[str, int]) -> None:
        """Send one datagram now, as :meth:`sendto` (:class:`OSError` when it cannot leave)."""
        if self.closed:
            raise DeviceClosed(f"UDP port {self.port} is closed")
        self._layer.send(self.port, data, destination)

    def close(self) -> None:
        """Release the port; a pending :meth:`recvfrom` raises ``DeviceClosed``."""
        if not self.closed:
            self.closed = True
            self._layer.ports.pop(self.port, None)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)


class UdpLayer:
    """UDP for one interface, both families (:class:`unik.devices.UDP`).

    A bound port takes datagrams of both; a received one's source is ``(address, port)``
    for IPv4 and ``(address, port, flowinfo, scope_id)`` for IPv6, as sockets say it.
    """

    def __init__(self, iface: IpLayer, random: Random, stats: Counter[str], queue_limit: int = 1024,
                 ipv6: IpLayer | None = None) -> None:
        self.iface = iface
        #: The network layer of each family, by address length.
        self.nets: dict[int, IpLayer] = {4: iface} if ipv6 is None else {4: iface, 16: ipv6}
        self.random = random
        self.stats = stats
        self.queue_limit = queue_limit
        self.ports: dict[int, UdpEndpoint] = {}

    async def bind(self, port: int = 0) -> UdpEndpoint:
        """Bind ``port`` (0: a free ephemeral port)."""
        if port == 0:
            port = self._free_port()
        if not 0 < port < 65536:
            raise ValueError(f"bad UDP port {port}")
        if port in self.ports:
            raise OSError(errno.EADDRINUSE, f"UDP port {port} is in use")
        endpoint = self.ports[port] = UdpEndpoint(self, port, self.queue_limit)
        return endpoint

    def _free_port(self) -> int:
        start = int.from_bytes(self.random.generate(2), "big") % len(EPHEMERAL)
        for i in range(len(EPHEMERAL)):
            port = EPHEMERAL[(start + i) % len(EPHEMERAL)]
            if port not in self.ports:
                return port
        raise OSError(errno.EADDRINUSE, "no free UDP port")

    def net(self, address: bytes) -> IpLayer:
        """The network layer of ``address``'s family (``OSError`` when the stack has none)."""
        net = self.nets.get(len(address))
        if net is None:
            raise OSError(errno.EAFNOSUPPORT, f"no IPv6 on this stack for {ip_text(address)}")
        return net

    def send(self, src_port: int, data: bytes, destination: tuple[str, int] | tuple[str, int, int, int]) -> None:
        """Build and route one datagram (to an IPv4 or IPv6 address)."""
        if len(data) > MAX_PAYLOAD:
            raise OSError(errno.EMSGSIZE, f"UDP payload of {len(data)} bytes is too long")
        host, port = destination[0], destination[1]
        dst = ip_bytes(host)
        net = self.net(dst)
        src = net.source_for(dst)
        if src is None:
            raise OSError(errno.EADDRNOTAVAIL, f"no address of ours can reach {host}")
        dgram = UdpDatagram.build(src, dst, src_port, port, data, headroom=net.headroom)
        if not net.ip_output(dst, Protocol.UDP, dgram, src=src):
            raise OSError(errno.ENETUNREACH, f"no route to {host}")
        self.stats["udp.tx"] += 1

    def transport_error(self, error: IpError) -> None:
        """An ICMP error quoting one of our datagrams: counted (UDP keeps no state to fail)."""
        self.stats["udp.icmp_errors"] += 1

    def input(self, ip: IpDatagram) -> None:
        """Deliver a received datagram to its port (port unreachable when none is bound)."""
        dgram = UdpDatagram.parse(ip.payload, ip.src, ip.dst, self.net(ip.src).verify_rx_checksum)
        if len(ip.src) == 16 and dgram.checksum == 0:
            # RFC 8200 8.1: IPv6 has no header checksum, so UDP's is mandatory.
            raise Malformed("udp.ipv6_zero_checksum")
        endpoint = self.ports.get(dgram.dst_port)
        if endpoint is None:
            self.stats["udp.no_port"] += 1
            # RFC 1122 4.1.3.1 (RFC 4443 3.1 for IPv6): SHOULD send ICMP port unreachable.
            self.net(ip.src).port_unreachable(ip)
            return
        self.stats["udp.rx"] += 1
        endpoint._deliver(Datagram(bytes(dgram.payload), sockaddr(ip.src, dgram.src_port)))  # type: ignore[arg-type]
