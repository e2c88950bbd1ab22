"""UDP datagrams (RFC 768)."""

from __future__ import annotations

import struct

from .. import checksum as cs
from ..errors import Malformed

HEADER_LEN = 8
_HDR = struct.Struct("!HHHH")


class UdpDatagram:
    """A view of a UDP datagram."""

    __slots__ = ("buf", "checksum", "dst_port", "length", "src_port")

    def __init__(self, buf: memoryview, src_port: int, dst_port: int, length: int, checksum: int = 0) -> None:
        self.buf, self.src_port, self.dst_port, self.length = buf, src_port, dst_port, length
        #: The checksum field as received (0: the IPv4 sender computed none).
        self.checksum = checksum

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, src: bytes, dst: bytes,
              verify_checksum: bool = True) -> UdpDatagram:
        """Parse a datagram carried from ``src`` to ``dst`` (for the pseudo-header)."""
        buf = memoryview(data)
        if len(buf) < HEADER_LEN:
            raise Malformed("udp.truncated", f"{len(buf)} bytes")
        src_port, dst_port, length, csum = _HDR.unpack_from(buf)
        if length < HEADER_LEN or length > len(buf):
            raise Malformed("udp.bad_length", f"{length} (have {len(buf)})")
        buf = buf[:length]
        # RFC 768: a zero checksum means the sender computed none.
        if verify_checksum and csum != 0 and cs.checksum(buf, cs.pseudo_header_sum(src, dst, 17, length)):
            raise Malformed("udp.bad_checksum")
        if dst_port == 0:
            raise Malformed("udp.zero_port")
        return cls(buf, src_port, dst_port, length, csum)

    @property
    def payload(self) -> memoryview:
        """The data."""
        return self.buf[HEADER_LEN:self.length]

    @staticmethod
    def build(src: bytes, dst: bytes, src_port: int, dst_port: int,
              payload: bytes | bytearray | memoryview, headroom: int = 0) -> bytearray:
        """A datagram with its checksum, after ``headroom`` zero bytes (for lower headers)."""
        length = HEADER_LEN + len(payload)
        out = bytearray(headroom + length)
        _HDR.pack_into(out, headroom, src_port, dst_port, length, 0)
        out[headroom + HEADER_LEN:] = payload
        csum = cs.checksum(memoryview(out)[headroom:], cs.pseudo_header_sum(src, dst, 17, length))
        # RFC 768: a computed zero is sent as all ones.
        csum = csum or 0xFFFF
        out[headroom + 6] = csum >> 8
        out[headroom + 7] = csum & 0xFF
        return out
