"""What the transports (TCP, UDP) need from the network layer below them.

:class:`IpLayer` is the seam where IPv6 joins: today :class:`unik_tcpip.iface.Interface`
(Ethernet + ARP + IPv4 + ICMPv4) is the only implementation.  A ``StackV4V6`` adds an
IPv6 interface (ICMPv6, NDP, SLAAC) implementing the same attributes and methods, with
16-byte addresses; the transports keep no IPv4 constants of their own:

* segments are demultiplexed by :meth:`unik_tcpip.tcp.TcpLayer.segment_input` from
  ``(src, dst, segment)`` whatever the address length (:class:`TcpTransport`);
* checksums use :func:`unik_tcpip.checksum.pseudo_header_sum`, and
  :func:`unik_tcpip.fastpath.tcp_segment`, which take 4- or 16-byte addresses
  (RFC 9293 3.1 / RFC 8200 8.1);
* header room, the MSS ceiling and the virtio-net GSO type come from the layer
  (``headroom``, ``max_mss``, ``gso_tcp``), as does routing (``ip_output``).

What remains IPv4-only in the transports is the textual address API (``ip_bytes`` /
``ip_text``) and the ICMPv4 error path, each a small per-family function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from unik.devices import TxOffload

if TYPE_CHECKING:
    from .wire.icmp import IcmpPacket
    from .wire.ipv4 import Ipv4Packet
    from .wire.tcp import TcpSegment


class Transport(Protocol):
    """What the network layer hands received datagrams to (UDP; TCP is a :class:`TcpTransport`)."""

    def input(self, ip: Ipv4Packet) -> None:
        """A whole datagram addressed to us, carrying this transport."""

    def icmp_error(self, msg: IcmpPacket, quoted: memoryview) -> None:
        """An ICMP error quoting (``quoted``: IP header and 8 bytes) a datagram of ours."""


class TcpTransport(Transport, Protocol):
    """TCP as the network layer sees it: also fed segments its fast path parsed."""

    def segment_input(self, src: bytes, dst: bytes, seg: TcpSegment) -> None:
        """A parsed segment from ``src`` to ``dst`` (4- or 16-byte addresses)."""


class IpLayer(Protocol):
    """The network layer of one address family, as the transports see it."""

    #: Our address (4 bytes for IPv4, 16 for IPv6).
    address: bytes
    mtu: int
    #: Bytes a transport leaves in front of its header (link and IP headers).
    headroom: int
    #: The IP header length the transports' segments are sent with.
    ip_header_len: int
    #: virtio-net ``gso_type`` for TCP segmentation offload (1: TCPv4, 4: TCPv6).
    gso_tcp: int
    #: Whether received checksums must be verified (the NIC did not).
    verify_rx_checksum: bool

    @property
    def max_mss(self) -> int:
        """The largest TCP segment payload one MTU carries (the MSS we announce)."""

    def route(self, dst: bytes) -> bytes | None:
        """The next hop for ``dst``, or ``None``: no route."""

    def ip_output(self, dst: bytes, proto: int, packet: bytearray, *, src: bytes | None = None,
                  df: bool = False, ttl: int = 64, offload: TxOffload | None = None) -> bool:
        """Send the transport data after ``headroom`` bytes of ``packet`` to ``dst``."""
