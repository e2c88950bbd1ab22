"""IPv6 on the wire: the header (RFC 8200 3), its extension header chain (RFC 8200 4) and addresses.

:func:`parse` checks the fixed header; :func:`walk` follows the chain of extension
headers to the upper-layer header, processing options by the two high bits of their type
(RFC 8200 4.2), refusing a routing header with segments left (type 0 by its own counter,
RFC 5095), bounding the chain's length and count, and finding a fragment header.  A
problem the sender should hear about is a :class:`ParameterProblem`, which carries the
ICMPv6 code and pointer (RFC 4443 3.4); every other drop is a plain
:class:`unik_tcpip.errors.Malformed` named by its counter.
"""

from __future__ import annotations

import struct

from ..errors import Malformed

HEADER_LEN = 40
_HDR = struct.Struct("!IHBB16s16s")

# Next header values (IANA "Assigned Internet Protocol Numbers").
HOP_BY_HOP = 0
TCP = 6
UDP = 17
ROUTING = 43
FRAGMENT = 44
ICMPV6 = 58
NO_NEXT = 59
DEST_OPTIONS = 60
UPPER = frozenset((TCP, UDP, ICMPV6))

#: More extension headers than this in one datagram is an attack, not a configuration (RFC 9098).
MAX_HEADERS = 8
#: Bytes of extension headers accepted before the upper-layer header (RFC 7112 / RFC 8883 bounds).
MAX_CHAIN = 1024

UNSPECIFIED = bytes(16)
LOOPBACK = bytes(15) + b"\x01"
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
ALL_MLDV2_ROUTERS = bytes.fromhex("ff020000000000000000000000000016")
_SOLICITED_PREFIX = bytes.fromhex("ff0200000000000000000001ff")


class ParameterProblem(Malformed):
    """A datagram to drop and report with ICMPv6 Parameter Problem (RFC 4443 3.4).

    ``code`` 0 erroneous header field, 1 unrecognized next header, 2 unrecognized option,
    3 first fragment without the whole header chain (RFC 7112); ``pointer`` is the byte
    offset of the problem in the datagram; ``multicast_ok``: report it even to a
    multicast destination (an option whose type says so, RFC 8200 4.2).
    """

    def __init__(self, reason: str, code: int, pointer: int, multicast_ok: bool = False) -> None:
        super().__init__(reason, f"code {code} at byte {pointer}")
        self.code, self.pointer, self.multicast_ok = code, pointer, multicast_ok


class Ipv6Packet:
    """A view of an IPv6 datagram (padding after the payload length cut off)."""

    __slots__ = ("buf", "dst", "flow", "hop_limit", "next_header", "src", "traffic_class")

    def __init__(self, buf: memoryview, traffic_class: int, flow: int, next_header: int, hop_limit: int,
                 src: bytes, dst: bytes) -> None:
        self.buf, self.traffic_class, self.flow = buf, traffic_class, flow
        self.next_header, self.hop_limit, self.src, self.dst = next_header, hop_limit, src, dst


def parse(data: bytes | bytearray | memoryview) -> Ipv6Packet:
    """Check and view the fixed header (RFC 8200 3)."""
    buf = memoryview(data)
    if len(buf) < HEADER_LEN:
        raise Malformed("ipv6.truncated", f"{len(buf)} bytes")
    word, payload_len, next_header, hop_limit, src, dst = _HDR.unpack_from(buf)
    if word >> 28 != 6:
        raise Malformed("ipv6.bad_version", str(word >> 28))
    if payload_len == 0 and next_header == HOP_BY_HOP:
        raise Malformed("ipv6.jumbogram")  # RFC 2675: links here carry no jumbograms
    if HEADER_LEN + payload_len > len(buf):
        raise Malformed("ipv6.bad_payload_len", f"{payload_len} (have {len(buf) - HEADER_LEN})")
    return Ipv6Packet(buf[:HEADER_LEN + payload_len], (word >> 20) & 0xFF, word & 0xFFFFF, next_header,
                      hop_limit, src, dst)


def emit(buf: bytearray | memoryview, offset: int, src: bytes, dst: bytes, next_header: int, payload_len: int,
         hop_limit: int = 64, traffic_class: int = 0) -> None:
    """Write a 40-byte header at ``offset``."""
    _HDR.pack_into(buf, offset, (6 << 28) | (traffic_class << 20), payload_len, next_header, hop_limit, src, dst)


class Chain:
    """Where :func:`walk` found the upper layer, and the fragment header if there was one."""

    __slots__ = ("frag", "next_header", "nh_at", "offset", "router_alert")

    def __init__(self, next_header: int, offset: int, nh_at: int, frag: tuple[int, int, bool, int] | None,
                 router_alert: bool) -> None:
        #: The upper-layer protocol and where its header starts.
        self.next_header, self.offset = next_header, offset
        #: The byte holding the next-header value that led here (rewritten by reassembly).
        self.nh_at = nh_at
        #: ``(frag header offset, fragment offset in bytes, more fragments, identification)``.
        self.frag = frag
        #: A hop-by-hop Router Alert option was present (MLD, RFC 2711).
        self.router_alert = router_alert


def walk(pkt: Ipv6Packet, *, fragment_allowed: bool = True) -> Chain:
    """Follow the extension headers to the upper layer or to a fragment header (RFC 8200 4).

    Stops at a fragment header that is not atomic (RFC 6946: offset 0 without M is
    processed as if unfragmented), returning it for reassembly.
    """
    buf = pkt.buf
    end = len(buf)
    nh, nh_at, at = pkt.next_header, 6, HEADER_LEN
    seen_dest = 0
    count = 0
    router_alert = False
    while True:
        if nh in UPPER:
            return Chain(nh, at, nh_at, None, router_alert)
        if nh == NO_NEXT:
            raise Malformed("ipv6.no_next_header")
        count += 1
        if count > MAX_HEADERS or at - HEADER_LEN > MAX_CHAIN:
            raise Malformed("ipv6.header_chain_too_long", f"{count} headers, {at - HEADER_LEN} bytes")
        if nh not in (HOP_BY_HOP, DEST_OPTIONS, ROUTING, FRAGMENT):
            # RFC 8200 4: an unrecognized next header (ESP, AH and Mobility are not supported).
            raise ParameterProblem("ipv6.unknown_next_header", 1, nh_at)
        if at + 8 > end:
            raise Malformed("ipv6.truncated_extension", f"{nh} at {at}")
        if nh == FRAGMENT:
            if not fragment_allowed:
                raise Malformed("ipv6.frag_nested")
            offset_flags = (buf[at + 2] << 8) | buf[at + 3]
            ident = int.from_bytes(buf[at + 4:at + 8], "big")
            if offset_flags & 0xFFF9 == 0:
                # RFC 6946: an atomic fragment is reassembled on its own, at once.
                nh, nh_at, at = buf[at], at, at + 8
                continue
            return Chain(buf[at], at + 8, nh_at, (at, offset_flags & 0xFFF8, bool(offset_flags & 1), ident),
                         router_alert)
        length = (buf[at + 1] + 1) * 8
        if at + length > end:
            raise Malformed("ipv6.truncated_extension", f"{nh} of {length} bytes at {at}")
        if nh == HOP_BY_HOP:
            if at != HEADER_LEN:
                # RFC 8200 4.1: hop-by-hop options only right after the IPv6 header.
                raise ParameterProblem("ipv6.hop_by_hop_not_first", 1, nh_at)
            router_alert = _options(pkt, at, length)
        elif nh == DEST_OPTIONS:
            seen_dest += 1
            if seen_dest > 2:  # RFC 8200 4.1: at most twice (before routing, and last)
                raise Malformed("ipv6.repeated_extension", "destination options")
            _options(pkt, at, length)
        else:  # ROUTING
            routing_type, segments_left = buf[at + 2], buf[at + 3]
            if segments_left:
                # RFC 8200 4.4: a host (no routing type is implemented) refuses it; RFC 5095
                # deprecates type 0 and names it apart.
                raise ParameterProblem("ipv6.routing_type0" if routing_type == 0 else "ipv6.routing_unsupported",
                                       0, at + 2)
        nh, nh_at, at = buf[at], at, at + length


def _options(pkt: Ipv6Packet, at: int, length: int) -> bool:
    """Process hop-by-hop or destination options (RFC 8200 4.2); whether a Router Alert is among them."""
    buf = pkt.buf
    i, end = at + 2, at + length
    alert = False
    while i < end:
        kind = buf[i]
        if kind == 0:  # Pad1
            i += 1
            continue
        if i + 2 > end or i + 2 + buf[i + 1] > end:
            raise Malformed("ipv6.bad_option", f"option {kind} overruns its header")
        if kind == 5 and at == HEADER_LEN:  # Router Alert (RFC 2711), hop-by-hop only
            alert = True
        elif kind != 1:  # not PadN: unknown here, acted on by its two high bits
            action = kind >> 6
            if action == 1:
                raise Malformed("ipv6.unknown_option_discard", str(kind))
            if action == 2:
                raise ParameterProblem("ipv6.unknown_option_report", 2, i, multicast_ok=True)
            if action == 3:
                raise ParameterProblem("ipv6.unknown_option_report", 2, i)
        i += 2 + buf[i + 1]
    return alert


# -- addresses ---------------------------------------------------------------------


def is_multicast(address: bytes) -> bool:
    """ff00::/8 (RFC 4291 2.7)."""
    return address[0] == 0xFF


def is_link_local(address: bytes) -> bool:
    """fe80::/10 unicast, or a link-local scoped multicast group (ff02::/16)."""
    return (address[0] == 0xFE and address[1] & 0xC0 == 0x80) or (address[0] == 0xFF and address[1] & 0xF == 2)


def solicited_node(address: bytes) -> bytes:
    """The solicited-node multicast group of ``address`` (RFC 4291 2.7.1): ff02::1:ffXX:XXXX."""
    return _SOLICITED_PREFIX + bytes(address[13:16])


def multicast_mac(group: bytes) -> bytes:
    """The Ethernet address of an IPv6 multicast group (RFC 2464 7): 33:33 and its last 32 bits."""
    return b"\x33\x33" + bytes(group[12:16])


def interface_id(mac: bytes) -> bytes:
    """The modified EUI-64 interface identifier of a MAC address (RFC 4291 appendix A)."""
    return bytes((mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]))


def link_local(mac: bytes) -> bytes:
    """fe80::/64 with the interface identifier of ``mac`` (RFC 4862 5.3)."""
    return b"\xfe\x80" + bytes(6) + interface_id(mac)


def prefix_match(a: bytes, b: bytes, prefix: int) -> bool:
    """Whether ``a`` and ``b`` share their first ``prefix`` bits."""
    whole, bits = divmod(prefix, 8)
    if a[:whole] != b[:whole]:
        return False
    return not bits or (a[whole] ^ b[whole]) >> (8 - bits) == 0


def common_prefix_len(a: bytes, b: bytes) -> int:
    """The number of leading bits ``a`` and ``b`` share (RFC 6724 2.2 CommonPrefixLen)."""
    n = 0
    for x, y in zip(a, b, strict=True):
        if x == y:
            n += 8
            continue
        return n + 8 - (x ^ y).bit_length()
    return n
