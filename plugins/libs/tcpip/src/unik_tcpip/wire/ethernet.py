"""Ethernet II frames (IEEE 802.3, DIX framing)."""

from __future__ import annotations

import enum

from ..errors import Malformed

BROADCAST = b"\xff" * 6
HEADER_LEN = 14


class EtherType(enum.IntEnum):
    """The EtherTypes the stack understands."""

    IPV4 = 0x0800
    ARP = 0x0806
    IPV6 = 0x86DD


class EthernetFrame:
    """A view of an Ethernet II frame: destination, source, EtherType, payload."""

    __slots__ = ("buf", "dst", "ethertype", "src")

    def __init__(self, buf: memoryview, dst: bytes, src: bytes, ethertype: int) -> None:
        self.buf, self.dst, self.src, self.ethertype = buf, dst, src, ethertype

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> EthernetFrame:
        """Parse a frame (without FCS)."""
        buf = memoryview(data)
        if len(buf) < HEADER_LEN:
            raise Malformed("ethernet.truncated", f"{len(buf)} bytes")
        ethertype = (buf[12] << 8) | buf[13]
        if ethertype < 0x0600:
            # An 802.3 length field (LLC/SNAP frames), not an EtherType.
            raise Malformed("ethernet.not_ethernet_ii", f"length field {ethertype}")
        return cls(buf, bytes(buf[0:6]), bytes(buf[6:12]), ethertype)

    @property
    def payload(self) -> memoryview:
        """The bytes after the header (padding included)."""
        return self.buf[HEADER_LEN:]

    @staticmethod
    def emit(buf: bytearray | memoryview, dst: bytes, src: bytes, ethertype: int, offset: int = 0) -> None:
        """Write a header at ``offset`` of ``buf``."""
        buf[offset:offset + 6] = dst
        buf[offset + 6:offset + 12] = src
        buf[offset + 12] = ethertype >> 8
        buf[offset + 13] = ethertype & 0xFF
