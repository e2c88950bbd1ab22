"""The frame fast paths (C ``_fastpath`` and its pure twin), and the entropy event feed."""

from __future__ import annotations

import random
import struct

import pytest
from fastpath_support import assert_same_segment, c_and_pure, tcp_frame
from hypothesis import given, settings
from hypothesis import strategies as st
from tcpip_support import Wire, pair, run
from unik import accel
from unik_tcpip import _fastpath_py, checksum, fastpath
from unik_tcpip.errors import Malformed
from unik_tcpip.wire import EthernetFrame, Ipv4Packet, TcpSegment

_fastpath_c, needs_c, TWINS = c_and_pure("unik_tcpip._fastpath", _fastpath_py)
SRC, DST = bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2))


def _frame(impl: object, rng: random.Random, tsval: int = -1, options: bytes = b"", payload: bytes = b"",
           flags: int = 0x18) -> bytearray:
    return tcp_frame(impl, rng, SRC, DST, tsval, options, payload, flags)


@pytest.mark.parametrize("impl", TWINS)
def test_built_frames_parse_back_with_the_full_parsers(impl: object) -> None:
    rng = random.Random(3)
    for i in range(300):
        tsval = rng.choice([-1, rng.randrange(2**32)])
        options = rng.choice([b"", b"\x01\x01\x04\x02", b"\x02\x04\x05\xb4\x01\x03\x03\x07"])
        payload = rng.randbytes(rng.randrange(0, 1500 - 40 - 12 - len(options)))
        frame = _frame(impl, rng, tsval, options, payload)
        ip = Ipv4Packet.parse(EthernetFrame.parse(frame).payload)  # verifies the header checksum
        seg = TcpSegment.parse(ip.payload, ip.src, ip.dst)  # verifies the TCP checksum
        assert bytes(seg.payload) == payload and ip.dont_fragment
        assert seg.options.timestamp == (None if tsval < 0 else (tsval, seg.options.timestamp[1]))  # type: ignore[index]
        fields = impl.tcp4_parse(bytes(frame), True)  # type: ignore[attr-defined]
        if options:
            assert fields is None, i  # only NOP, NOP, Timestamps takes the fast path
            continue
        assert fields is not None
        fast = TcpSegment.from_fast(frame, fields)
        assert (fields.src, fields.dst) == (ip.src, ip.dst) and fields.dst_mac == frame[0:6]
        assert_same_segment(fast, seg)
        assert bytes(fast.payload) == payload and fast.options.timestamp == seg.options.timestamp


@needs_c
def test_c_and_pure_records_name_the_same_fields() -> None:
    frame = bytes(_frame(_fastpath_py, random.Random(1), tsval=7, payload=b"named"))
    c, pure = _fastpath_c.tcp4_parse(frame, True), _fastpath_py.tcp4_parse(frame, True)  # type: ignore[union-attr]
    assert c is not None and pure is not None and c == pure
    for name in _fastpath_py.Tcp4Fields._fields:
        assert getattr(c, name) == getattr(pure, name), name
    assert (pure.tsval, pure.tcp_end - pure.tcp_start - pure.header_len) == (7, 5)


@needs_c
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120), st.lists(st.tuples(st.integers(0, 119), st.integers(0, 255)), max_size=4),
       st.booleans())
def test_c_and_pure_parse_agree_on_mutated_frames(tail: bytes, flips: list[tuple[int, int]], verify: bool) -> None:
    frame = bytearray(_frame(_fastpath_py, random.Random(len(tail)), tsval=7, payload=tail))
    for at, value in flips:
        if at < len(frame):
            frame[at] = value
    assert _fastpath_c.tcp4_parse(bytes(frame), verify) == _fastpath_py.tcp4_parse(bytes(frame), verify)  # type: ignore[union-attr]


@pytest.mark.parametrize("impl", TWINS)
def test_fast_path_declines_what_the_full_parsers_reject(impl: object) -> None:
    """Whatever the full parsers drop (by reason), the fast path leaves to them."""
    rng = random.Random(9)
    good = _frame(impl, rng, tsval=1, payload=b"data")
    for at in range(len(good)):
        for value in (0, 0xFF, good[at] ^ 0x10):
            frame = bytearray(good)
            frame[at] = value
            try:
                ip = Ipv4Packet.parse(EthernetFrame.parse(frame).payload)
                ok = ip.proto == 6 and not ip.is_fragment and ip.header_len == 20
                if ok:
                    TcpSegment.parse(ip.payload, ip.src, ip.dst)
            except Malformed:
                ok = False
            if not ok or frame[12:14] != b"\x08\x00":
                assert impl.tcp4_parse(bytes(frame), True) is None, (at, value)  # type: ignore[attr-defined]


@pytest.mark.parametrize("impl", TWINS)
def test_segments_over_ipv6_addresses(impl: object) -> None:
    """The builder takes 16-byte addresses: the pseudo-header of RFC 8200 8.1."""
    src, dst = bytes(range(16)), bytes(range(16, 32))
    seg = impl.tcp_segment(src, dst, 1, 2, 3, 4, 0x10, 5, 6, 7, b"", b"x" * 33, 0, False)  # type: ignore[attr-defined]
    assert checksum.checksum(seg, checksum.pseudo_header_sum(src, dst, 6, len(seg))) == 0
    assert checksum.pseudo_header_sum(src, dst, 6, 70000) == checksum.sum16(
        src + dst + struct.pack("!II", 70000, 6))
    with pytest.raises(ValueError):
        impl.tcp_segment(src, SRC, 1, 2, 3, 4, 0x10, 5, -1, 0, b"", b"", 0, False)  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        impl.tcp_segment(SRC, DST, 1, 2, 3, 4, 0x10, 5, 1, 0, bytes(32), b"", 0, False)  # type: ignore[attr-defined]


def test_use_pure_switches_both_modules() -> None:
    try:
        checksum.use_pure(True)
        assert fastpath.implementation() == checksum.implementation() == "pure"
        assert fastpath.tcp4_parse is _fastpath_py.tcp4_parse
    finally:
        checksum.use_pure(False)
    assert fastpath.implementation() == ("c" if _fastpath_c is not None and not accel.pure() else "pure")


def test_frame_arrivals_feed_the_entropy_pools() -> None:
    """With unik-lib-entropy installed, every received batch ticks the "tcpip.rx" event source."""
    events = pytest.importorskip("unik_entropy.events", reason="needs unik-lib-entropy (plugins/libs/entropy)")
    from unik_entropy.fortuna import Fortuna

    rng = Fortuna(sources=[])
    rng.seed(b"tcpip test")
    source = events.source("tcpip.rx")
    before = source.events
    events.attach(rng)
    try:
        async def main() -> None:
            wire = Wire()
            a, _b = await pair(wire)
            for seq in range(40):
                await a.ping("10.0.0.2", seq=seq)
        run(main())
    finally:
        events.detach(rng)
    assert source.events > before
    assert sum(pool.length for pool in rng.pools.pools) > 0
