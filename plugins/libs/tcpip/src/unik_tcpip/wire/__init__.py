"""Wire formats: stateless, zero-copy views that parse and emit packets.

Each ``parse`` checks what it reads and raises :class:`unik_tcpip.errors.Malformed`
on bad input; payloads are :class:`memoryview` slices of the received frame, never
copies.  Each ``emit`` writes a header into a caller-provided buffer.
"""

from .arp import ArpPacket
from .ethernet import BROADCAST, EthernetFrame, EtherType
from .icmp import IcmpPacket
from .ipv4 import Ipv4Packet, Protocol
from .tcp import TcpFlags, TcpOptions, TcpSegment
from .udp import UdpDatagram

__all__ = [
    "BROADCAST", "ArpPacket", "EtherType", "EthernetFrame", "IcmpPacket", "Ipv4Packet", "Protocol",
    "TcpFlags", "TcpOptions", "TcpSegment", "UdpDatagram",
]
