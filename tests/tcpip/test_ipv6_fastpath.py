"""tcp6_parse (C and its pure twin): built frames parse back, the twins agree on mutations, and the
fast path declines whatever the full IPv6 parsers would reject or treat differently."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unik_tcpip import _fastpath_py
from unik_tcpip.errors import Malformed
from unik_tcpip.ipv6 import wire
from unik_tcpip.wire import EthernetFrame, TcpSegment

try:
    import unik_tcpip._fastpath as _fastpath_c
except ImportError:  # pragma: no cover - a build without the C extension
    _fastpath_c = None

needs_c = pytest.mark.skipif(_fastpath_c is None, reason="needs the C extension unik_tcpip._fastpath "
                                                          "(pip install -e plugins/libs/tcpip builds it)")
TWINS = [pytest.param(_fastpath_c, id="c", marks=needs_c), pytest.param(_fastpath_py, id="pure")]
SRC = bytes.fromhex("20010db8000000000000000000000001")
DST = bytes.fromhex("20010db8000000000000000000000002")
MACS = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"


def _frame(impl: object, rng: random.Random, tsval: int = -1, options: bytes = b"", payload: bytes = b"",
           flags: int = 0x18) -> bytearray:
    seg: bytearray = impl.tcp_segment(SRC, DST, rng.randrange(1, 65536), rng.randrange(1, 65536), rng.randrange(2**32),  # type: ignore[attr-defined]
                           rng.randrange(2**32), flags, rng.randrange(65536), tsval, rng.randrange(2**32), options,
                           payload, 54, False)
    wire.emit(seg, 14, SRC, DST, wire.TCP, len(seg) - 54)
    seg[0:14] = MACS + b"\x86\xdd"
    return seg


@pytest.mark.parametrize("impl", TWINS)
def test_built_ipv6_frames_parse_back_with_the_full_parsers(impl: object) -> None:
    rng = random.Random(6)
    for i in range(300):
        tsval = rng.choice([-1, rng.randrange(2**32)])
        options = rng.choice([b"", b"\x01\x01\x04\x02"])
        payload = rng.randbytes(rng.randrange(0, 1500 - 60 - 12 - len(options)))
        frame = _frame(impl, rng, tsval, options, payload)
        pkt = wire.parse(EthernetFrame.parse(frame).payload)
        chain = wire.walk(pkt)
        seg = TcpSegment.parse(pkt.buf[chain.offset:], pkt.src, pkt.dst)  # verifies the IPv6 pseudo-header sum
        assert bytes(seg.payload) == payload
        fields = impl.tcp6_parse(bytes(frame), True)  # type: ignore[attr-defined]
        if options:
            assert fields is None, i
            continue
        assert fields is not None and impl.tcp4_parse(bytes(frame), True) is None  # type: ignore[attr-defined]
        fast = TcpSegment.from_fast(frame, fields)
        assert (fields.src, fields.dst, fields.tcp_start) == (SRC, DST, 54)
        for name in ("src_port", "dst_port", "seq", "ack", "flags", "window", "urgent", "header_len"):
            assert getattr(fast, name) == getattr(seg, name), name
        assert bytes(fast.payload) == payload and fast.options.timestamp == seg.options.timestamp


@needs_c
@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
       st.integers(0, 80), st.booleans())
def test_c_and_pure_agree_on_mutated_ipv6_frames(seed: int, flips: list[tuple[int, int]], cut: int,
                                                 verify: bool) -> None:
    rng = random.Random(seed)
    frame = _frame(_fastpath_py, rng, rng.choice([-1, 5]), payload=rng.randbytes(rng.randrange(0, 100)))
    for at, value in flips:
        if at < len(frame):
            frame[at] = value
    data = bytes(frame[:len(frame) - cut] if cut < len(frame) else frame[:1])
    assert _fastpath_c is not None
    assert _fastpath_c.tcp6_parse(data, verify) == _fastpath_py.tcp6_parse(data, verify)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3))
def test_the_fast_path_declines_what_the_full_parsers_reject(seed: int, flips: list[tuple[int, int]]) -> None:
    rng = random.Random(seed)
    frame = _frame(_fastpath_py, rng, rng.choice([-1, 5]), payload=rng.randbytes(rng.randrange(0, 100)))
    for at, value in flips:
        if at < len(frame):
            frame[at] = value
    fields = _fastpath_py.tcp6_parse(bytes(frame), True)
    if fields is None:
        return
    pkt = wire.parse(EthernetFrame.parse(frame).payload)  # raises if the fast path took something bad
    chain = wire.walk(pkt)
    assert chain.next_header == wire.TCP and chain.offset == 40
    seg = TcpSegment.parse(pkt.buf[chain.offset:], pkt.src, pkt.dst)
    assert (seg.src_port, seg.dst_port, seg.seq) == (fields.sport, fields.dport, fields.seq)


def test_a_datagram_with_extension_headers_takes_the_full_parsers() -> None:
    rng = random.Random(1)
    frame = _frame(_fastpath_py, rng)
    frame[20] = wire.DEST_OPTIONS  # next header no longer TCP
    for impl in (_fastpath_py, _fastpath_c):
        if impl is not None:
            assert impl.tcp6_parse(bytes(frame), False) is None
    with pytest.raises(Malformed):
        wire.walk(wire.parse(EthernetFrame.parse(frame).payload))
