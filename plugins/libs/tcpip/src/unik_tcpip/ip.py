"""What the transports (TCP, UDP) need from the network layers below them.

There is one :class:`IpLayer` per address family: :class:`unik_tcpip.iface.Interface`
(Ethernet, ARP, IPv4, ICMPv4) and :class:`unik_tcpip.ipv6.Ipv6Layer` (IPv6, ICMPv6,
NDP, SLAAC) on the same link.  The transports pick the layer by the length of an
address (4 or 16 bytes) and keep no constants of either family:

* segments are demultiplexed by :meth:`unik_tcpip.tcp.TcpLayer.segment_input` from
  ``(src, dst, segment)`` whatever the address length (:class:`TcpTransport`); a
  frame parser's record goes to :meth:`unik_tcpip.tcp.TcpLayer.frame_input`, whose header
  prediction reads only its TCP fields;
* checksums use :func:`unik_tcpip.checksum.pseudo_header_sum`, and
  :func:`unik_tcpip.fastpath.tcp_segment`, which take 4- or 16-byte addresses
  (RFC 9293 3.1 / RFC 8200 8.1);
* header room, the MSS ceiling and the virtio-net GSO type come from the layer
  (``headroom``, ``max_mss``, ``gso_tcp``), as do routing, source address selection
  and output;
* ICMP errors reach them as an :class:`IpError` in ICMPv4's terms: the IPv6 layer
  maps ICMPv6's (RFC 7915 5.2), so TCP's reactions (RFC 1122 4.2.3.9, RFC 5927, path
  MTU discovery) are written once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from unik.devices import TxOffload

if TYPE_CHECKING:
    from .wire.tcp import TcpSegment


class IpDatagram(Protocol):
    """A received datagram as a transport sees it (:class:`unik_tcpip.wire.ipv4.Ipv4Packet`, IPv6's)."""

    #: Source and destination address (4 or 16 bytes).
    src: bytes
    dst: bytes

    @property
    def payload(self) -> memoryview:
        """The transport's bytes (after every IPv6 extension header)."""


class IpError:
    """An ICMP error about a datagram we sent, in ICMPv4's terms (RFC 792; ICMPv6 mapped per RFC 7915 5.2).

    ``header`` holds at least the first 8 bytes of the quoted transport header
    (ports, and TCP's sequence number); ``mtu`` is the next hop's MTU of a
    "fragmentation needed" / "packet too big" (0: not given).
    """

    __slots__ = ("code", "header", "local", "mtu", "remote", "type")

    def __init__(self, local: bytes, remote: bytes, header: memoryview, type_: int, code: int, mtu: int = 0) -> None:
        self.local, self.remote, self.header = local, remote, header
        self.type, self.code, self.mtu = type_, code, mtu


class Transport(Protocol):
    """What a network layer hands received datagrams to (UDP; TCP is a :class:`TcpTransport`)."""

    def input(self, ip: IpDatagram) -> None:
        """A whole datagram addressed to us, carrying this transport."""

    def transport_error(self, error: IpError) -> None:
        """An ICMP error quoting a datagram of ours."""


class TcpTransport(Transport, Protocol):
    """TCP as the network layer sees it: also fed segments its fast path parsed."""

    def segment_input(self, src: bytes, dst: bytes, seg: TcpSegment) -> None:
        """A parsed segment from ``src`` to ``dst`` (4- or 16-byte addresses)."""

    def frame_input(self, src: bytes, dst: bytes, frame: bytes | bytearray | memoryview, fields: Any) -> None:
        """A segment the frame parser found in ``frame`` (``fields``: a :class:`Tcp4Fields`-like record)."""


class IpLayer(Protocol):
    """The network layer of one address family, as the transports see it."""

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

    def owns(self, address: bytes) -> bool:
        """Whether ``address`` is one of ours that connections may use (not tentative, not multicast)."""

    def source_for(self, dst: bytes) -> bytes | None:
        """The address to send from to ``dst`` (RFC 6724's rules for IPv6), or ``None``: none fits."""

    def route(self, dst: bytes) -> bytes | None:
        """The next hop for ``dst``, or ``None``: no route."""

    def link_header(self, dst: bytes, now_ns: int) -> tuple[bytes, int, int] | None:
        """``(link header, valid until, TTL)`` of unicast datagrams to a resolved ``dst``, else ``None``.

        A connection builds whole frames with it (:attr:`unik_tcpip.tcp.Connection.link`)
        until that time or until :attr:`link_generation` moves.
        """

    @property
    def link_generation(self) -> int:
        """Moves when a link header handed out may no longer hold (the neighbour, route or MTU changed)."""

    def ip_output(self, dst: bytes, proto: int, packet: bytearray, *, src: bytes | None = None,
                  df: bool = False, ttl: int = 64, offload: TxOffload | None = None) -> bool:
        """Send the transport data after ``headroom`` bytes of ``packet`` to ``dst``."""

    def port_unreachable(self, ip: IpDatagram) -> None:
        """Tell the sender of ``ip`` that no port takes it (ICMP, rate-limited)."""


