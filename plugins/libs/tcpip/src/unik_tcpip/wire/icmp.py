"""ICMP for IPv4 (RFC 792)."""

from __future__ import annotations

import struct

from .. import checksum as cs
from ..errors import Malformed

HEADER_LEN = 8
ECHO_REPLY = 0
DEST_UNREACHABLE = 3
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
# Destination unreachable codes (RFC 792).
NET_UNREACHABLE = 0
HOST_UNREACHABLE = 1
PROTOCOL_UNREACHABLE = 2
PORT_UNREACHABLE = 3
FRAG_NEEDED = 4
_HDR = struct.Struct("!BBH4s")


class IcmpPacket:
    """A view of an ICMP message: type, code, the 4 "rest of header" bytes, data."""

    __slots__ = ("buf", "code", "rest", "type")

    def __init__(self, buf: memoryview, type_: int, code: int, rest: bytes) -> None:
        self.buf, self.type, self.code, self.rest = buf, type_, code, rest

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, verify_checksum: bool = True) -> IcmpPacket:
        """Parse a message and verify its checksum (RFC 792: over the whole message)."""
        buf = memoryview(data)
        if len(buf) < HEADER_LEN:
            raise Malformed("icmp.truncated", f"{len(buf)} bytes")
        if verify_checksum and cs.checksum(buf) != 0:
            raise Malformed("icmp.bad_checksum")
        type_, code, _sum, rest = _HDR.unpack_from(buf)
        return cls(buf, type_, code, rest)

    @property
    def ident(self) -> int:
        """Echo identifier."""
        return (self.rest[0] << 8) | self.rest[1]

    @property
    def seq(self) -> int:
        """Echo sequence number."""
        return (self.rest[2] << 8) | self.rest[3]

    @property
    def data(self) -> memoryview:
        """The bytes after the 8-byte header."""
        return self.buf[HEADER_LEN:]

    @staticmethod
    def build(type_: int, code: int, rest: bytes, data: bytes | bytearray | memoryview,
              headroom: int = 0) -> bytearray:
        """A message with its checksum, after ``headroom`` zero bytes (for lower headers)."""
        out = bytearray(headroom + HEADER_LEN + len(data))
        _HDR.pack_into(out, headroom, type_, code, 0, rest)
        out[headroom + HEADER_LEN:] = data
        csum = cs.checksum(memoryview(out)[headroom:])
        out[headroom + 2] = csum >> 8
        out[headroom + 3] = csum & 0xFF
        return out
