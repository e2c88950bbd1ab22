"""A fuzz target over unik-lib-tcpip's IPv6 parsers (header, extension headers, fragments,
ICMPv6, NDP options) and the stack's IPv6 input path.

Each input is cut into up to eight frames.  A frame's first byte chooses how the rest is
used: a raw Ethernet frame; an IPv6 datagram whose fixed header and payload length are
made right around a fuzzed extension-header chain and payload; an ICMPv6 message (NDP
included, hop limit 255) or a TCP or UDP segment with a right checksum; a fragment with a
fuzzed fragment header.  For every frame:

* each parser either parses or raises :class:`unik_tcpip.errors.Malformed`;
* the C ``tcp6_parse`` and its pure twin agree;
* a fresh dual stack on a fake device takes the frames: nothing raises out of its receive
  path (``rx.internal_error`` stays 0), and every IPv6 table stays within its bound.

Run with atheris: ``python tests/tcpip/fuzz_ipv6.py [CORPUS_DIR] -max_total_time=600``
(``--seed DIR`` writes seeds first); ``make fuzz`` runs it, ``test_ipv6_fuzz.py`` briefly
and with hypothesis.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator
from typing import Any

from fuzz_support import (
    MAC,
    PEER_MAC,
    CountingRandom,
    FakeNetwork,
    FixedClock,
    NoSleep,
    fuzz_main,
    l4_checksummed,
    run_frames,
    seed_item,
    serve_and_feed,
    split_frames,
)
from fuzz_support import TCP_HEADER as _TCP

ADDR = bytes.fromhex("20010db8000000000000000000000002")
PEER = bytes.fromhex("20010db8000000000000000000000001")
PEER_LL = bytes.fromhex("fe800000000000000000000000000001")
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")


def _instrumented() -> Any:
    from unik_tcpip import _fastpath_py, checksum, fastpath  # noqa: F401
    from unik_tcpip.ipv6 import frag, icmpv6, layer, ndp, slaac, wire  # noqa: F401
    from unik_tcpip.stack import TcpipStack  # noqa: F401
    return sys.modules["unik_tcpip"]


def _ipv6(next_header: int, payload: bytes, src: bytes = PEER, dst: bytes = ADDR, hop_limit: int = 64) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, hop_limit, src, dst) + payload


def frame_from(kind: int, body: bytes) -> bytes:
    """A frame built around fuzzed ``body`` as ``kind`` asks (see the module docstring)."""
    eth = MAC + PEER_MAC + b"\x86\xdd"
    kind %= 8
    if kind == 0:
        return body
    if kind == 1:
        # A fuzzed next header and extension-header chain with a right payload length.
        return eth + _ipv6(body[0] if body else 59, body[1:])
    if kind in (2, 3):
        # ICMPv6 with a right checksum; kind 3 from the link-local peer to all nodes, as NDP is.
        src, dst = (PEER_LL, ALL_NODES) if kind == 3 else (PEER, ADDR)
        msg = bytearray(body[:8].ljust(8, b"\0")) + body[8:]
        if kind == 3:
            msg[0] = 133 + msg[0] % 5
        return eth + _ipv6(58, l4_checksummed(58, msg, 2, src, dst), src, dst, 255)
    if kind == 4:
        seg = bytearray(body[:60].ljust(20, b"\0")) + body[60:]
        seg[2:4] = (80).to_bytes(2, "big")
        return eth + _ipv6(6, l4_checksummed(6, seg, 16, PEER, ADDR))
    if kind == 5:
        dgram = bytearray(body[:8].ljust(8, b"\0")) + body[8:]
        dgram[4:6] = len(dgram).to_bytes(2, "big")
        return eth + _ipv6(17, l4_checksummed(17, dgram, 6, PEER, ADDR))
    if kind == 6:
        # A fragment: a fuzzed fragment header (next header, offset, M, small identification).
        head = bytearray(body[:8].ljust(8, b"\0"))
        head[4:7] = b"\0\0\0"
        return eth + _ipv6(44, bytes(head) + body[8:])
    # Router advertisement options after a fixed RA header.
    ra = bytearray(struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)) + body
    return eth + _ipv6(58, l4_checksummed(58, ra, 2, PEER_LL, ALL_NODES), PEER_LL, ALL_NODES, 255)


def split(data: bytes) -> Iterator[bytes]:
    """Up to eight frames: [kind][length][body]..."""
    return split_frames(data, frame_from)


def check_parsers(frame: bytes) -> None:
    """Every IPv6 parser parses or raises Malformed; C and pure tcp6_parse agree."""
    from unik_tcpip import _fastpath_py, fastpath
    from unik_tcpip.errors import Malformed
    from unik_tcpip.ipv6 import icmpv6, wire

    pure = _fastpath_py.tcp6_parse(frame, True)
    assert fastpath.tcp6_parse(frame, True) == pure
    assert fastpath.tcp6_parse(frame, False) == _fastpath_py.tcp6_parse(frame, False)
    view = memoryview(frame)[14:]
    for parse in (lambda: icmpv6.parse_options(view), lambda: icmpv6.parse(view, PEER, ADDR)):
        try:
            parse()
        except Malformed:
            pass
    try:
        pkt = wire.parse(view)
        chain = wire.walk(pkt)
    except Malformed:
        return
    if chain.frag is None and chain.next_header == wire.ICMPV6:
        try:
            msg = icmpv6.parse(pkt.buf[chain.offset:], pkt.src, pkt.dst)
            icmpv6.parse_options(msg.body[min(len(msg.body), 12):])
        except Malformed:
            pass


async def _feed(frames: list[bytes]) -> None:
    from unik.devices import IPv4Config
    from unik_tcpip.ipv6 import ndp
    from unik_tcpip.stack import TcpipStack

    stack = TcpipStack(FakeNetwork(), FixedClock(), NoSleep(), CountingRandom(),  # type: ignore[arg-type]
                       IPv4Config("10.0.0.2", 24, "10.0.0.1"), ipv6=(ADDR, 64),
                       ipv6_options={"dad_transmits": 0, "solicit_delay_ns": 0})
    stack.ipv6.start()
    neighbours = stack.ipv6.neighbours
    neighbours.entries[PEER] = ndp.Neighbour(ndp.REACHABLE, PEER_MAC, stack.timers.now_ns() + 10**12)
    await serve_and_feed(stack, frames)
    ipv6 = stack.ipv6
    assert len(neighbours.entries) <= neighbours.size and neighbours.incomplete <= neighbours.max_incomplete
    reasm = ipv6.reassembler
    assert reasm.bytes <= reasm.max_bytes and len(reasm.datagrams) <= reasm.max_datagrams
    assert len(ipv6.addresses.entries) <= ipv6.addresses.limit
    assert len(ipv6.slaac.prefixes) <= ipv6.slaac.max_prefixes and len(ipv6.slaac.routers) <= ipv6.slaac.max_routers
    assert len(ipv6.pmtu) <= 256 and all(m >= 1280 for m, _t in ipv6.pmtu.values())
    stack.tcp.close_all()


def one_input(data: bytes) -> None:
    """The fuzz target: raises only on a bug."""
    run_frames(list(split(data)), check_parsers, _feed)


def seeds() -> dict[str, bytes]:
    """Valid inputs to start from: one per frame kind."""
    item = seed_item
    syn = _TCP.pack(40000, 80, 1000, 0, 5 << 4, 0x02, 65535, 0, 0)
    ack = _TCP.pack(40000, 80, 1001, 0, 8 << 4, 0x18, 502, 0, 0) + bytes((1, 1, 8, 10)) + bytes(8) + b"GET /"
    udp = struct.pack("!HHHH", 5000, 53, 0, 0) + b"query"
    echo = struct.pack("!BBHHH", 128, 0, 0, 1, 1) + b"ping"
    ns = struct.pack("!BBHI", 135, 0, 0, 0) + ADDR + bytes((1, 1)) + PEER_MAC
    dest_opts = bytes((17, 0, 1, 4, 0, 0, 0, 0)) + udp
    frag = struct.pack("!BBHI", 17, 0, 1, 0) + udp
    prefix = bytes((3, 4, 64, 0xC0)) + struct.pack("!III", 3600, 1800, 0) + bytes.fromhex("20010db8000100000000")
    prefix += bytes(6)
    rdnss = bytes((25, 3, 0, 0)) + struct.pack("!I", 600) + PEER
    dnssl = bytes((31, 2, 0, 0)) + struct.pack("!I", 600) + b"\x04test\x00\x00"
    raw = MAC + PEER_MAC + b"\x86\xdd" + _ipv6(6, l4_checksummed(6, bytearray(syn), 16, PEER, ADDR))
    return {
        "raw-syn": item(0, raw), "dest-options": item(1, bytes((60,)) + dest_opts), "echo": item(2, echo),
        "ns": item(3, ns), "syn": item(4, syn), "handshake": item(4, syn) + item(4, ack), "udp": item(5, udp),
        "fragment": item(6, frag), "ra": item(7, prefix + rdnss + dnssl),
    }


if __name__ == "__main__":
    fuzz_main(sys.argv, one_input, seeds, _instrumented)
