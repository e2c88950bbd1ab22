"""Wire formats: stateless, zero-copy views that parse and emit packets.

Each ``parse`` checks what it reads and raises :class:`unik_tcpip.errors.Malformed`
on bad input; payloads are :class:`memoryview` slices of the received frame, never
copies.  Each ``emit`` writes a header into a caller-provided buffer.
"""

from typing import TYPE_CHECKING

from .arp import ArpPacket
from .ethernet import BROADCAST, EthernetFrame, EtherType
from .icmp import IcmpPacket
from .ipv4 import Ipv4Packet, Protocol
from .tcp import TcpOptions, TcpSegment
from .udp import UdpDatagram

if TYPE_CHECKING:
    from ._tcpflags import TcpFlags

__all__ = [
    "BROADCAST", "ArpPacket", "EtherType", "EthernetFrame", "IcmpPacket", "Ipv4Packet", "Protocol",
    "TcpFlags", "TcpOptions", "TcpSegment", "UdpDatagram",
]


def __getattr__(name: str) -> object:
    """:class:`TcpFlags`, defined on first use (see :mod:`unik_tcpip.wire.tcp`)."""
    if name == "TcpFlags":
        from ._tcpflags import TcpFlags

        return TcpFlags
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
