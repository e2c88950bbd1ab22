"""tcp6_parse (C and its pure twin): built frames parse back, the twins agree on mutations, and the
fast path declines whatever the full IPv6 parsers would reject or treat differently."""

from __future__ import annotations

import random

import pytest
from fastpath_support import assert_same_segment, c_and_pure, tcp_frame
from hypothesis import given, settings
from hypothesis import strategies as st
from unik_tcpip import _fastpath_py
from unik_tcpip.errors import Malformed
from unik_tcpip.ipv6 import wire
from unik_tcpip.wire import EthernetFrame, TcpSegment

_fastpath_c, needs_c, TWINS = c_and_pure("unik_tcpip._fastpath", _fastpath_py)
SRC = bytes.fromhex("20010db8000000000000000000000001")
DST = bytes.fromhex("20010db8000000000000000000000002")


def _frame(impl: object, rng: random.Random, tsval: int = -1, options: bytes = b"", payload: bytes = b"",
           flags: int = 0x18) -> bytearray:
    return tcp_frame(impl, rng, SRC, DST, tsval, options, payload, flags)


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
        assert_same_segment(fast, seg)
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
