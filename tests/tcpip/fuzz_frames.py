"""A fuzz target over unik-lib-tcpip's frame parsers and the stack's input path.

Each input is cut into up to eight frames.  A frame's first byte chooses how the rest
is used: as a raw Ethernet frame, or as the tail of a TCP, UDP, ICMP or ARP packet whose
lower headers (addresses, lengths, checksums) are made right, so that the fuzzer gets
past the checksums into the protocol state machines (a listener on port 80, a UDP port
and ICMP echo are open).  For every frame:

* each wire parser either parses or raises :class:`unik_tcpip.errors.Malformed`;
* the C fast path and its pure twin agree (``tcp4_parse``);
* a fresh stack on a fake device takes the frames: nothing raises out of its receive
  path (``rx.internal_error`` stays 0) and every table stays within its bound.

Run with atheris (coverage-guided, libFuzzer)::

    python tests/tcpip/fuzz_frames.py [CORPUS_DIR] -max_total_time=600

``--seed DIR`` writes a seed corpus of valid frames first.  Without atheris (it has no
wheel for every Python/architecture), :mod:`tests/tcpip/test_fuzz.py` drives
:func:`one_input` with hypothesis instead.  ``make fuzz`` runs atheris for longer.
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

ADDR = bytes((10, 0, 0, 2))
PEER = bytes((10, 0, 0, 1))


def _instrumented() -> Any:
    """Import the modules under test (inside atheris' instrumentation when it runs)."""
    from unik_tcpip import _fastpath_py, checksum, fastpath, wire  # noqa: F401
    from unik_tcpip.errors import Malformed  # noqa: F401
    from unik_tcpip.stack import TcpipStack  # noqa: F401
    return sys.modules["unik_tcpip"]


def _csum(data: bytes, initial: int = 0) -> int:
    from unik_tcpip import checksum
    return checksum.checksum(data, initial)


def _ipv4(proto: int, payload: bytes, flags_frag: int = 0, ident: int = 1) -> bytes:
    head = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags_frag, 64, proto, 0,
                                 PEER, ADDR))
    head[10:12] = _csum(bytes(head)).to_bytes(2, "big")
    return bytes(head) + payload


def _l4(proto: int, segment: bytearray, csum_at: int) -> bytes:
    return l4_checksummed(proto, segment, csum_at, PEER, ADDR)


def frame_from(kind: int, body: bytes) -> bytes:
    """A frame built around fuzzed ``body`` as ``kind`` asks (see the module docstring)."""
    eth = MAC + PEER_MAC
    kind %= 8
    if kind == 0:
        return body  # raw: the whole frame is fuzzed
    if kind in (1, 2):
        # TCP: fuzzed header fields and options, a right checksum; kind 2 aims at port 80.
        seg = bytearray(body[:60].ljust(20, b"\0")) + body[60:]
        if kind == 2:
            seg[2:4] = (80).to_bytes(2, "big")
        return eth + b"\x08\x00" + _ipv4(6, _l4(6, seg, 16))
    if kind == 3:
        dgram = bytearray(body[:8].ljust(8, b"\0")) + body[8:]
        dgram[4:6] = len(dgram).to_bytes(2, "big")
        return eth + b"\x08\x00" + _ipv4(17, _l4(17, dgram, 6))
    if kind == 4:
        msg = bytearray(body[:8].ljust(8, b"\0")) + body[8:]
        msg[2:4] = b"\0\0"
        msg[2:4] = _csum(bytes(msg)).to_bytes(2, "big")
        return eth + b"\x08\x00" + _ipv4(1, bytes(msg))
    if kind == 5:
        # ARP with the fixed hardware/protocol types, fuzzed operation and addresses.
        return eth + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04" + body[:22].ljust(22, b"\0")
    if kind == 6:
        # A fragment: fuzzed flags/offset and payload.
        flags_frag = int.from_bytes(body[:2].ljust(2, b"\0"), "big") & 0x3FFF
        return eth + b"\x08\x00" + _ipv4(body[2] if len(body) > 2 else 17, body[3:], flags_frag,
                                         ident=body[3] if len(body) > 3 else 0)
    # IPv4 with a fuzzed header, checksum made right.
    head = bytearray(body[:60].ljust(20, b"\0"))
    ihl = (head[0] & 15) * 4
    if 20 <= ihl <= len(head):
        head[10:12] = b"\0\0"
        head[10:12] = _csum(bytes(head[:ihl])).to_bytes(2, "big")
    return eth + b"\x08\x00" + bytes(head) + body[60:]


def split(data: bytes) -> Iterator[bytes]:
    """Up to eight frames: [kind][length][body]..."""
    return split_frames(data, frame_from)


def check_parsers(frame: bytes) -> None:
    """Every parser parses or raises Malformed; C and pure fast paths agree."""
    from unik_tcpip import _fastpath_py, fastpath
    from unik_tcpip.errors import Malformed
    from unik_tcpip.wire import ArpPacket, EthernetFrame, IcmpPacket, Ipv4Packet, TcpSegment, UdpDatagram

    pure = _fastpath_py.tcp4_parse(frame, True)
    assert fastpath.tcp4_parse(frame, True) == pure
    assert fastpath.tcp4_parse(frame, False) == _fastpath_py.tcp4_parse(frame, False)
    try:
        eth = EthernetFrame.parse(frame)
    except Malformed:
        assert pure is None
        return
    payload = eth.payload
    for parse in (lambda: ArpPacket.parse(payload), lambda: IcmpPacket.parse(payload[20:]),
                  lambda: TcpSegment.parse(payload[20:], PEER, ADDR),
                  lambda: UdpDatagram.parse(payload[20:], PEER, ADDR)):
        try:
            parse()
        except Malformed:
            pass
    try:
        ip = Ipv4Packet.parse(payload)
    except Malformed:
        assert pure is None
        return
    for parse in (lambda: TcpSegment.parse(ip.payload, ip.src, ip.dst),
                  lambda: UdpDatagram.parse(ip.payload, ip.src, ip.dst),
                  lambda: IcmpPacket.parse(ip.payload)):
        try:
            parse()
        except Malformed:
            pass


async def _feed(frames: list[bytes]) -> None:
    from unik.devices import IPv4Config
    from unik_tcpip.stack import TcpipStack

    stack = TcpipStack(FakeNetwork(), FixedClock(), NoSleep(), CountingRandom(),  # type: ignore[arg-type]
                       IPv4Config("10.0.0.2", 24, "10.0.0.1"))
    stack.iface.arp.insert(PEER, PEER_MAC, stack.timers.now_ns())
    await serve_and_feed(stack, frames)
    tcp, arp, reasm = stack.tcp, stack.iface.arp, stack.iface.reassembler
    assert len(tcp.connections) <= tcp.config.max_connections
    assert all(listener.half_open <= listener.backlog for listener in tcp.listeners.values())
    assert len(arp.entries) <= arp.size and len(arp.pending) <= arp.max_pending
    assert reasm.bytes <= reasm.max_bytes and len(reasm.datagrams) <= reasm.max_datagrams
    stack.tcp.close_all()


def one_input(data: bytes) -> None:
    """The fuzz target: raises (an AssertionError or anything else) only on a bug."""
    run_frames(list(split(data)), check_parsers, _feed)


def seeds() -> dict[str, bytes]:
    """Valid inputs to start from: one per frame kind, and a TCP handshake."""
    item = seed_item
    syn = _TCP.pack(40000, 80, 1000, 0, 5 << 4, 0x02, 65535, 0, 0)
    syn_opts = _TCP.pack(40001, 80, 1000, 0, 10 << 4, 0x02, 65535, 0, 0) + bytes(
        (2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7))
    ack = _TCP.pack(40000, 80, 1001, 0, 8 << 4, 0x18, 502, 0, 0) + bytes((1, 1, 8, 10)) + bytes(8) + b"GET /"
    udp = struct.pack("!HHHH", 5000, 53, 0, 0) + b"query"
    echo = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping"
    arp = struct.pack("!H6s4s6s4s", 1, PEER_MAC, PEER, bytes(6), ADDR)
    frag = struct.pack("!HBB", 0x2000, 17, 7) + bytes(40)
    raw = MAC + PEER_MAC + b"\x08\x00" + _ipv4(6, _l4(6, bytearray(syn), 16))
    return {
        "raw-syn": item(0, raw), "syn": item(2, syn), "syn-options": item(2, syn_opts),
        "handshake": item(2, syn) + item(2, ack), "udp": item(3, udp), "icmp-echo": item(4, echo),
        "arp": item(5, arp), "fragment": item(6, frag) + item(6, frag), "ipv4": item(7, raw[14:]),
    }


if __name__ == "__main__":
    fuzz_main(sys.argv, one_input, seeds, _instrumented)
