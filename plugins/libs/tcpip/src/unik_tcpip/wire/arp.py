"""ARP for IPv4 over Ethernet (RFC 826)."""

from __future__ import annotations

import struct

from ..errors import Malformed

LEN = 28
REQUEST = 1
REPLY = 2
_HDR = struct.Struct("!HHBBH6s4s6s4s")


class ArpPacket:
    """An Ethernet/IPv4 ARP packet."""

    __slots__ = ("op", "sha", "spa", "tha", "tpa")

    def __init__(self, op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> None:
        self.op, self.sha, self.spa, self.tha, self.tpa = op, sha, spa, tha, tpa

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview) -> ArpPacket:
        """Parse and check the hardware and protocol types (RFC 826 "Packet Reception")."""
        if len(buf) < LEN:
            raise Malformed("arp.truncated", f"{len(buf)} bytes")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _HDR.unpack_from(buf)
        if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
            raise Malformed("arp.unsupported", f"htype {htype} ptype {ptype:#x} hlen {hlen} plen {plen}")
        if op not in (REQUEST, REPLY):
            raise Malformed("arp.bad_op", str(op))
        if sha[0] & 1:
            raise Malformed("arp.multicast_sender", sha.hex(":"))
        return cls(op, sha, spa, tha, tpa)

    def emit(self, buf: bytearray | memoryview, offset: int = 0) -> None:
        """Write the packet at ``offset``."""
        _HDR.pack_into(buf, offset, 1, 0x0800, 6, 4, self.op, self.sha, self.spa, self.tha, self.tpa)

    def to_bytes(self) -> bytes:
        """The packet as bytes."""
        out = bytearray(LEN)
        self.emit(out)
        return bytes(out)
