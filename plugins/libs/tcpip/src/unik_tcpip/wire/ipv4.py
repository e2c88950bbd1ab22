"""IPv4 datagrams (RFC 791) with options."""

from __future__ import annotations

import enum
import struct

from .. import checksum as cs
from ..errors import Malformed

MIN_HEADER_LEN = 20
FLAG_DF = 0x4000
FLAG_MF = 0x2000
_HDR = struct.Struct("!BBHHHBBH4s4s")

# RFC 791 3.1 "Options": single-octet options; every other option is type-length-value.
OPT_END = 0
OPT_NOP = 1


class Protocol(enum.IntEnum):
    """IP protocol numbers the stack handles."""

    ICMP = 1
    TCP = 6
    UDP = 17


class Ipv4Packet:
    """A view of an IPv4 datagram."""

    __slots__ = (
        "buf", "dst", "flags_frag", "header_len", "ident", "proto", "src", "tos", "total_len", "ttl",
    )

    def __init__(self, buf: memoryview, header_len: int, tos: int, total_len: int, ident: int,
                 flags_frag: int, ttl: int, proto: int, src: bytes, dst: bytes) -> None:
        self.buf, self.header_len, self.tos, self.total_len = buf, header_len, tos, total_len
        self.ident, self.flags_frag, self.ttl, self.proto = ident, flags_frag, ttl, proto
        self.src, self.dst = src, dst

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, verify_checksum: bool = True) -> Ipv4Packet:
        """Parse a datagram; Ethernet padding beyond the total length is ignored."""
        buf = memoryview(data)
        if len(buf) < MIN_HEADER_LEN:
            raise Malformed("ipv4.truncated", f"{len(buf)} bytes")
        vihl, tos, total_len, ident, flags_frag, ttl, proto, _sum, src, dst = _HDR.unpack_from(buf)
        if vihl >> 4 != 4:
            raise Malformed("ipv4.bad_version", str(vihl >> 4))
        header_len = (vihl & 0xF) * 4
        if header_len < MIN_HEADER_LEN:
            raise Malformed("ipv4.bad_header_len", str(header_len))
        if total_len < header_len or total_len > len(buf):
            raise Malformed("ipv4.bad_total_len", f"{total_len} (header {header_len}, have {len(buf)})")
        if flags_frag & 0x8000:
            # RFC 791 3.1: the first flag bit is reserved and must be zero.
            raise Malformed("ipv4.reserved_flag")
        if verify_checksum and cs.checksum(buf[:header_len]) != 0:
            raise Malformed("ipv4.bad_checksum")
        if header_len > MIN_HEADER_LEN:
            _check_options(buf[MIN_HEADER_LEN:header_len])
        return cls(buf[:total_len], header_len, tos, total_len, ident, flags_frag, ttl, proto, src, dst)

    @property
    def dont_fragment(self) -> bool:
        """The DF flag."""
        return bool(self.flags_frag & FLAG_DF)

    @property
    def more_fragments(self) -> bool:
        """The MF flag."""
        return bool(self.flags_frag & FLAG_MF)

    @property
    def frag_offset(self) -> int:
        """The fragment offset in bytes."""
        return (self.flags_frag & 0x1FFF) * 8

    @property
    def is_fragment(self) -> bool:
        """Whether this datagram is a fragment (MF set or a non-zero offset)."""
        return bool(self.flags_frag & 0x3FFF)

    @property
    def options(self) -> memoryview:
        """The raw options (empty without options)."""
        return self.buf[MIN_HEADER_LEN:self.header_len]

    @property
    def payload(self) -> memoryview:
        """The data after the header, up to the total length."""
        return self.buf[self.header_len:self.total_len]

    @staticmethod
    def emit(buf: bytearray | memoryview, offset: int, *, src: bytes, dst: bytes, proto: int,
             payload_len: int, ident: int, ttl: int = 64, tos: int = 0, df: bool = False,
             mf: bool = False, frag_offset: int = 0, options: bytes = b"") -> int:
        """Write a header at ``offset`` with its checksum; return the header length.

        ``options`` are padded with End-of-Options to a multiple of four bytes.
        """
        if len(options) % 4:
            options = options + bytes(4 - len(options) % 4)
        header_len = MIN_HEADER_LEN + len(options)
        if header_len > 60:
            raise ValueError("IPv4 options longer than 40 bytes")
        flags_frag = (FLAG_DF if df else 0) | (FLAG_MF if mf else 0) | (frag_offset // 8)
        _HDR.pack_into(buf, offset, 0x40 | header_len // 4, tos, header_len + payload_len, ident & 0xFFFF,
                       flags_frag, ttl, proto, 0, src, dst)
        if options:
            buf[offset + MIN_HEADER_LEN:offset + header_len] = options
        csum = cs.checksum(memoryview(buf)[offset:offset + header_len])
        buf[offset + 10] = csum >> 8
        buf[offset + 11] = csum & 0xFF
        return header_len


def _check_options(opts: memoryview) -> None:
    """Check the type-length-value structure of the options (RFC 791 3.1)."""
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == OPT_END:
            return
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= len(opts):
            raise Malformed("ipv4.bad_option", f"option {kind} without length")
        length = opts[i + 1]
        if length < 2 or i + length > len(opts):
            raise Malformed("ipv4.bad_option", f"option {kind} length {length}")
        i += length
