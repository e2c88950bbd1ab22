"""ICMPv6 messages (RFC 4443) and the neighbour discovery options they carry (RFC 4861 4.6, RFC 8106).

Parsing checks the checksum over the pseudo-header (RFC 4443 2.3) and the structure of
NDP options: an option of length zero invalidates its whole message (RFC 4861 4.6),
a known option of the wrong length too; unknown options are skipped (RFC 4861 4.6).
"""

from __future__ import annotations

import struct

from .. import checksum as cs
from ..errors import Malformed

HEADER_LEN = 4
# Types (RFC 4443 2.1, RFC 4861 4, RFC 3810 5).
DEST_UNREACHABLE = 1
PACKET_TOO_BIG = 2
TIME_EXCEEDED = 3
PARAMETER_PROBLEM = 4
ECHO_REQUEST = 128
ECHO_REPLY = 129
MLD_QUERY = 130
MLD_REPORT_V1 = 131
MLD_DONE = 132
ROUTER_SOLICIT = 133
ROUTER_ADVERT = 134
NEIGHBOUR_SOLICIT = 135
NEIGHBOUR_ADVERT = 136
REDIRECT = 137
MLD_REPORT_V2 = 143
ERRORS = frozenset((DEST_UNREACHABLE, PACKET_TOO_BIG, TIME_EXCEEDED, PARAMETER_PROBLEM))
NDP = frozenset((ROUTER_SOLICIT, ROUTER_ADVERT, NEIGHBOUR_SOLICIT, NEIGHBOUR_ADVERT, REDIRECT))
# Destination unreachable codes (RFC 4443 3.1).
NO_ROUTE = 0
ADMIN_PROHIBITED = 1
ADDRESS_UNREACHABLE = 3
PORT_UNREACHABLE = 4
# NDP option types.
OPT_SOURCE_LLA = 1
OPT_TARGET_LLA = 2
OPT_PREFIX = 3
OPT_REDIRECTED = 4
OPT_MTU = 5
OPT_RDNSS = 25
OPT_DNSSL = 31
#: Fixed lengths (in 8-octet units) of the options whose layout is fixed.
_OPT_UNITS = {OPT_SOURCE_LLA: 1, OPT_TARGET_LLA: 1, OPT_PREFIX: 4, OPT_MTU: 1}
_NA_FLAGS = {"router": 0x80, "solicited": 0x40, "override": 0x20}


class Icmpv6Message:
    """A view of an ICMPv6 message: type, code and the bytes after the checksum."""

    __slots__ = ("body", "buf", "code", "type")

    def __init__(self, buf: memoryview, type_: int, code: int) -> None:
        self.buf, self.type, self.code = buf, type_, code
        #: What follows the type, code and checksum.
        self.body = buf[HEADER_LEN:]


def parse(data: memoryview, src: bytes, dst: bytes, verify_checksum: bool = True) -> Icmpv6Message:
    """Parse a message carried from ``src`` to ``dst`` (its checksum covers the pseudo-header)."""
    if len(data) < HEADER_LEN + 4:
        raise Malformed("icmpv6.truncated", f"{len(data)} bytes")
    if verify_checksum and cs.checksum(data, cs.pseudo_header_sum(src, dst, 58, len(data))) != 0:
        raise Malformed("icmpv6.bad_checksum")
    return Icmpv6Message(data, data[0], data[1])


def build(src: bytes, dst: bytes, type_: int, code: int, body: bytes | bytearray | memoryview,
          headroom: int) -> bytearray:
    """A message with its checksum after ``headroom`` bytes (for the link and IPv6 headers)."""
    out = bytearray(headroom + HEADER_LEN + len(body))
    out[headroom] = type_
    out[headroom + 1] = code
    out[headroom + HEADER_LEN:] = body
    csum = cs.checksum(memoryview(out)[headroom:], cs.pseudo_header_sum(src, dst, 58, len(out) - headroom))
    out[headroom + 2] = csum >> 8
    out[headroom + 3] = csum & 0xFF
    return out


class PrefixInfo:
    """A Prefix Information option (RFC 4861 4.6.2)."""

    __slots__ = ("autonomous", "on_link", "preferred", "prefix", "prefix_len", "valid")

    def __init__(self, prefix: bytes, prefix_len: int, on_link: bool, autonomous: bool, valid: int,
                 preferred: int) -> None:
        self.prefix, self.prefix_len, self.on_link, self.autonomous = prefix, prefix_len, on_link, autonomous
        #: Lifetimes in seconds (0xFFFFFFFF: infinity).
        self.valid, self.preferred = valid, preferred


class NdpOptions:
    """The options of one NDP message that the stack uses; the rest are skipped."""

    __slots__ = ("dnssl", "mtu", "prefixes", "rdnss", "source_lla", "target_lla")

    def __init__(self) -> None:
        self.source_lla: bytes | None = None
        self.target_lla: bytes | None = None
        self.mtu: int | None = None
        self.prefixes: list[PrefixInfo] = []
        #: RFC 8106 5.1: ``(lifetime s, [16-byte addresses])`` per option.
        self.rdnss: list[tuple[int, list[bytes]]] = []
        #: RFC 8106 5.2: ``(lifetime s, [domain names])`` per option.
        self.dnssl: list[tuple[int, list[str]]] = []


def parse_options(data: memoryview) -> NdpOptions:
    """Parse NDP options (RFC 4861 4.6); structural errors are ``ndp.bad_option``."""
    out = NdpOptions()
    i, n = 0, len(data)
    while i < n:
        if i + 2 > n:
            raise Malformed("ndp.bad_option", "a truncated option")
        kind, units = data[i], data[i + 1]
        length = units * 8
        if units == 0 or i + length > n:
            raise Malformed("ndp.bad_option", f"option {kind} of {units} units")
        want = _OPT_UNITS.get(kind)
        if want is not None and units != want:
            raise Malformed("ndp.bad_option", f"option {kind} of {units} units, expected {want}")
        body = data[i + 2:i + length]
        if kind == OPT_SOURCE_LLA:
            out.source_lla = bytes(body[:6])
        elif kind == OPT_TARGET_LLA:
            out.target_lla = bytes(body[:6])
        elif kind == OPT_MTU:
            out.mtu = int.from_bytes(body[2:6], "big")
        elif kind == OPT_PREFIX:
            prefix_len, flags = body[0], body[1]
            valid, preferred = struct.unpack_from("!II", body, 2)
            out.prefixes.append(PrefixInfo(bytes(body[14:30]), prefix_len, bool(flags & 0x80), bool(flags & 0x40),
                                           valid, preferred))
        elif kind == OPT_RDNSS:
            if units < 3 or units % 2 == 0:  # RFC 8106 5.1: 3 + 2 per address
                raise Malformed("ndp.bad_rdnss", f"{units} units")
            lifetime = int.from_bytes(body[2:6], "big")
            out.rdnss.append((lifetime, [bytes(body[6 + k:22 + k]) for k in range(0, length - 8, 16)]))
        elif kind == OPT_DNSSL:
            if units < 2:
                raise Malformed("ndp.bad_dnssl", f"{units} units")
            out.dnssl.append((int.from_bytes(body[2:6], "big"), _domain_names(body[6:])))
        i += length
    return out


def _domain_names(data: memoryview) -> list[str]:
    """The names of a DNSSL option: uncompressed DNS names, then zero padding (RFC 8106 5.2)."""
    names: list[str] = []
    labels: list[str] = []
    i = 0
    while i < len(data):
        size = data[i]
        i += 1
        if size == 0:
            if labels:
                names.append(".".join(labels))
                labels = []
                continue
            break  # padding
        if size > 63 or i + size > len(data):
            raise Malformed("ndp.bad_dnssl", f"label of {size} bytes")
        label = bytes(data[i:i + size])
        if not all(33 <= c < 127 for c in label):
            raise Malformed("ndp.bad_dnssl", "a label outside printable ASCII")
        labels.append(label.decode("ascii").lower())
        i += size
        if sum(map(len, labels)) + len(labels) > 253:
            raise Malformed("ndp.bad_dnssl", "a name longer than 253 bytes")
    if labels:
        raise Malformed("ndp.bad_dnssl", "a name without its terminating zero")
    return names


def lla_option(kind: int, mac: bytes) -> bytes:
    """A source or target link-layer address option for Ethernet (RFC 4861 4.6.1)."""
    return bytes((kind, 1)) + mac


def na_flags(body: memoryview) -> tuple[bool, bool, bool]:
    """``(router, solicited, override)`` of a neighbour advertisement's body."""
    flags = body[0]
    return bool(flags & 0x80), bool(flags & 0x40), bool(flags & 0x20)


def na_body(target: bytes, *, router: bool = False, solicited: bool = False, override: bool = True,
            mac: bytes | None = None) -> bytes:
    """A neighbour advertisement (RFC 4861 4.4) after type, code and checksum."""
    flags = (0x80 if router else 0) | (0x40 if solicited else 0) | (0x20 if override else 0)
    out = bytes((flags, 0, 0, 0)) + target
    return out + lla_option(OPT_TARGET_LLA, mac) if mac is not None else out


def ns_body(target: bytes, mac: bytes | None) -> bytes:
    """A neighbour solicitation (RFC 4861 4.3); no source link-layer option from ``::``."""
    out = bytes(4) + target
    return out + lla_option(OPT_SOURCE_LLA, mac) if mac is not None else out


def mld_report(groups: list[bytes], record_type: int) -> bytes:
    """An MLDv2 report body (RFC 3810 5.2): one record of ``record_type`` per group, no sources."""
    out = bytearray(struct.pack("!HH", 0, len(groups)))
    for group in groups:
        out += struct.pack("!BBH", record_type, 0, 0) + group
    return bytes(out)
