"""Frame parsing and building fast paths in pure Python: the twin of ``_fastpath.c``.

Same functions, same results (the tests compare the two on random and hostile input):

* :func:`tcp4_parse`: the fields of a plain TCP/IPv4 frame in one call, or ``None``
  for anything the full parsers of :mod:`unik_tcpip.wire` must see (they name the
  reason for a drop); :func:`tcp6_parse` the same for TCP/IPv6 without extension headers;
* :func:`tcp_segment`: a TCP segment with its checksum after some headroom;
* :func:`ipv4_header`: a 20-byte IPv4 header with its checksum;
* :func:`tcp_frame`: a whole frame of a TCP segment: link, IPv4 or IPv6, TCP headers.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ._checksum_py import BytesLike, checksum, sum16

_ETH_IP_TCP = struct.Struct("!6s6sHBBHHHBBH4s4sHHIIBBHHH")
_TCP = struct.Struct("!HHIIBBHHH")
_NOP_TS = struct.Struct("!BBBBII")
_IP = struct.Struct("!BBHHHBBH4s4s")
_PSEUDO = struct.Struct("!4s4sHH")
_MIN = 14 + 20 + 20



class Tcp4Fields(NamedTuple):
    """The fields of a plain TCP frame that :func:`tcp4_parse` or :func:`tcp6_parse` found (C: a struct sequence).

    ``src`` and ``dst`` are 4 bytes from the IPv4 parser, 16 from the IPv6 one.
    """

    dst_mac: bytes
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    urgent: int
    #: Where the TCP header starts and the segment ends in the frame.
    tcp_start: int
    tcp_end: int
    header_len: int
    #: -1 without the NOP, NOP, Timestamps option (RFC 7323 appendix A).
    tsval: int
    tsecr: int


def tcp4_parse(frame: BytesLike, verify_checksum: bool) -> Tcp4Fields | None:
    """The fields of an Ethernet/IPv4/TCP frame on the fast path, else ``None``."""
    n = len(frame)
    if n < _MIN:
        return None
    (dst_mac, _src_mac, ethertype, vihl, _tos, total, _ident, flags_frag, _ttl, proto, _isum, src, dst,
     sport, dport, seq, ack, off, flags, window, _tsum, urgent) = _ETH_IP_TCP.unpack_from(frame)
    # Version 4 without options, a total length inside the frame, no reserved flag, MF or
    # fragment offset (DF may be set), protocol TCP.
    if ethertype != 0x0800 or vihl != 0x45 or total < 40 or total > n - 14 or flags_frag & 0xBFFF or proto != 6:
        return None
    view = memoryview(frame)
    if verify_checksum and checksum(view[14:34]) != 0:
        return None
    tcp_len = total - 20
    hlen = (off >> 4) * 4
    if hlen < 20 or hlen > tcp_len or sport == 0 or dport == 0 or (flags & 0x02 and flags & 0x05):
        return None
    tsval = tsecr = -1
    if hlen == 32:
        nop1, nop2, kind, length, ts1, ts2 = _NOP_TS.unpack_from(frame, 54)
        if nop1 != 1 or nop2 != 1 or kind != 8 or length != 10:
            return None
        tsval, tsecr = ts1, ts2
    elif hlen != 20:
        return None
    if verify_checksum and checksum(view[34:34 + tcp_len], sum16(_PSEUDO.pack(src, dst, 6, tcp_len))) != 0:
        return None
    return Tcp4Fields(dst_mac, src, dst, sport, dport, seq, ack, flags, window, urgent, 34, 14 + total, hlen, tsval,
                      tsecr)


_ETH_IP6 = struct.Struct("!6s6sHIHBB16s16s")
_MIN6 = 14 + 40 + 20


def tcp6_parse(frame: BytesLike, verify_checksum: bool) -> Tcp4Fields | None:
    """The fields of an Ethernet/IPv6/TCP frame without extension headers on the fast path, else ``None``."""
    n = len(frame)
    if n < _MIN6:
        return None
    dst_mac, _src_mac, ethertype, word, tcp_len, next_header, _hops, src, dst = _ETH_IP6.unpack_from(frame)
    if ethertype != 0x86DD or word >> 28 != 6 or next_header != 6 or tcp_len < 20 or tcp_len > n - 54:
        return None
    sport, dport, seq, ack, off, flags, window, _tsum, urgent = _TCP.unpack_from(frame, 54)
    hlen = (off >> 4) * 4
    if hlen < 20 or hlen > tcp_len or sport == 0 or dport == 0 or (flags & 0x02 and flags & 0x05):
        return None
    tsval = tsecr = -1
    if hlen == 32:
        nop1, nop2, kind, length, ts1, ts2 = _NOP_TS.unpack_from(frame, 74)
        if nop1 != 1 or nop2 != 1 or kind != 8 or length != 10:
            return None
        tsval, tsecr = ts1, ts2
    elif hlen != 20:
        return None
    if verify_checksum and checksum(memoryview(frame)[54:54 + tcp_len],
                                    sum16(src + dst + (tcp_len + (6 << 32)).to_bytes(8, "big"))) != 0:
        return None
    return Tcp4Fields(dst_mac, src, dst, sport, dport, seq, ack, flags, window, urgent, 54, 54 + tcp_len, hlen, tsval,
                      tsecr)


def tcp_segment(src: BytesLike, dst: BytesLike, sport: int, dport: int, seq: int, ack: int, flags: int,
                window: int, tsval: int, tsecr: int, options: BytesLike, payload: BytesLike, headroom: int,
                partial: bool) -> bytearray:
    """A TCP segment after ``headroom`` zero bytes (see the module docstring of ``_fastpath.c``)."""
    if len(src) not in (4, 16) or len(dst) != len(src):
        raise ValueError("tcp_segment: addresses are 4 (IPv4) or 16 (IPv6) bytes")
    if headroom < 0 or not 0 <= sport <= 0xFFFF or not 0 <= dport <= 0xFFFF or not 0 <= window <= 0xFFFF \
            or not 0 <= flags <= 0xFF:
        raise ValueError("tcp_segment: a field is out of range")
    opt_len = (12 if tsval >= 0 else 0) + (len(options) + 3) // 4 * 4
    if opt_len > 40:
        raise ValueError("TCP options longer than 40 bytes")
    hlen = 20 + opt_len
    length = hlen + len(payload)
    out = bytearray(headroom + length)
    _TCP.pack_into(out, headroom, sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (hlen // 4) << 4, flags,
                   window, 0, 0)
    at = headroom + 20
    if tsval >= 0:
        _NOP_TS.pack_into(out, at, 1, 1, 8, 10, tsval & 0xFFFFFFFF, tsecr & 0xFFFFFFFF)
        at += 12
    if options:
        out[at:at + len(options)] = options
    if payload:
        out[headroom + hlen:] = payload
    # The pseudo-header (RFC 9293 3.1; RFC 8200 8.1 with 16-byte addresses) sums to
    # src + dst + protocol + length either way.
    pseudo = sum16(bytes(src) + bytes(dst) + (length + (6 << 32)).to_bytes(8, "big"))
    csum = pseudo if partial else checksum(memoryview(out)[headroom:], pseudo)
    out[headroom + 16] = csum >> 8
    out[headroom + 17] = csum & 0xFF
    return out


def ipv4_header(buf: bytearray | memoryview, offset: int, src: BytesLike, dst: BytesLike, proto: int,
                payload_len: int, ident: int, ttl: int, df: bool) -> None:
    """Write a 20-byte IPv4 header (RFC 791 3.1) with its checksum at ``offset``."""
    if len(src) != 4 or len(dst) != 4:
        raise ValueError("ipv4_header: addresses are 4 bytes")
    if offset < 0 or offset + 20 > len(buf) or payload_len < 0 or payload_len + 20 > 0xFFFF \
            or not 0 <= proto <= 0xFF or not 0 <= ttl <= 0xFF:
        raise ValueError("ipv4_header: a field is out of range")
    _IP.pack_into(buf, offset, 0x45, 0, 20 + payload_len, ident & 0xFFFF, 0x4000 if df else 0, ttl, proto, 0,
                  bytes(src), bytes(dst))
    csum = checksum(memoryview(buf)[offset:offset + 20])
    buf[offset + 10] = csum >> 8
    buf[offset + 11] = csum & 0xFF


_IP6 = struct.Struct("!IHBB16s16s")


def tcp_frame(link: BytesLike, src: BytesLike, dst: BytesLike, sport: int, dport: int, seq: int, ack: int,
              flags: int, window: int, tsval: int, tsecr: int, options: BytesLike, payload: BytesLike, ident: int,
              ttl: int, partial: bool) -> bytearray:
    """A whole frame: ``link`` (14 bytes), the IPv4 (DF) or IPv6 header, and :func:`tcp_segment`'s segment.

    An empty ``link`` leaves the link and IP headers as zeros, for the IP layer to fill.
    """
    if len(src) not in (4, 16) or len(dst) != len(src):
        raise ValueError("tcp_frame: addresses are 4 (IPv4) or 16 (IPv6) bytes")
    if len(link) not in (0, 14):
        raise ValueError("tcp_frame: the link header is 14 bytes (or empty)")
    if not 0 <= ttl <= 0xFF:
        raise ValueError("tcp_frame: a field is out of range")
    ip_len = 20 if len(src) == 4 else 40
    if link and (20 if ip_len == 20 else 0) + 20 + 40 + len(payload) > 0xFFFF:
        raise ValueError("tcp_frame: the IP length field holds at most 65535 bytes")
    out = tcp_segment(src, dst, sport, dport, seq, ack, flags, window, tsval, tsecr, options, payload,
                      14 + ip_len, partial)
    if link:
        out[0:14] = link
        length = len(out) - 14 - ip_len
        if ip_len == 20:
            ipv4_header(out, 14, src, dst, 6, length, ident, ttl, True)
        else:
            _IP6.pack_into(out, 14, 0x60000000, length, 6, ttl, bytes(src), bytes(dst))
    return out
