"""Wire formats: round trips and malformed input raising typed errors."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from unik_tcpip.errors import Malformed
from unik_tcpip.wire import (
    ArpPacket,
    EthernetFrame,
    IcmpPacket,
    Ipv4Packet,
    TcpOptions,
    TcpSegment,
    UdpDatagram,
    arp,
    icmp,
    tcp,
)

SRC, DST = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
MAC1, MAC2 = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def ipv4(payload: bytes, proto: int = 17, **kw: Any) -> bytearray:
    buf = bytearray(60 + len(payload))
    hl = Ipv4Packet.emit(buf, 0, src=SRC, dst=DST, proto=proto, payload_len=len(payload), ident=7, **kw)
    buf[hl:hl + len(payload)] = payload
    return buf[:hl + len(payload)]


def test_ethernet_round_trip() -> None:
    frame = bytearray(14) + b"payload"
    EthernetFrame.emit(frame, MAC2, MAC1, 0x0800)
    eth = EthernetFrame.parse(frame)
    assert (eth.dst, eth.src, eth.ethertype, bytes(eth.payload)) == (MAC2, MAC1, 0x0800, b"payload")


@pytest.mark.parametrize(("frame", "reason"), [
    (b"\x00" * 13, "ethernet.truncated"),
    (MAC2 + MAC1 + b"\x00\x40" + b"x" * 46, "ethernet.not_ethernet_ii"),
])
def test_ethernet_malformed(frame: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as info:
        EthernetFrame.parse(frame)
    assert info.value.reason == reason


def test_arp_round_trip_and_checks() -> None:
    pkt = ArpPacket(arp.REQUEST, MAC1, SRC, bytes(6), DST)
    parsed = ArpPacket.parse(pkt.to_bytes() + b"\x00" * 18)  # Ethernet padding is ignored
    assert (parsed.op, parsed.sha, parsed.spa, parsed.tha, parsed.tpa) == (1, MAC1, SRC, bytes(6), DST)
    raw = bytearray(pkt.to_bytes())
    for index, value, reason in [(1, 6, "arp.unsupported"), (7, 9, "arp.bad_op"), (8, 1, "arp.multicast_sender")]:
        bad = bytearray(raw)
        bad[index] = value
        with pytest.raises(Malformed) as info:
            ArpPacket.parse(bad)
        assert info.value.reason == reason
    with pytest.raises(Malformed, match=r"arp\.truncated"):
        ArpPacket.parse(raw[:27])


def test_ipv4_round_trip_with_options() -> None:
    options = bytes([0x94, 4, 0, 0])  # Router Alert (RFC 2113)
    buf = ipv4(b"hello", options=options, df=True, ttl=3)
    ip = Ipv4Packet.parse(buf + b"\x00" * 10)
    assert (ip.header_len, ip.ttl, ip.proto, ip.ident, ip.src, ip.dst) == (24, 3, 17, 7, SRC, DST)
    assert ip.dont_fragment and not ip.more_fragments and not ip.is_fragment
    assert bytes(ip.options) == options and bytes(ip.payload) == b"hello"


def test_ipv4_fragment_fields() -> None:
    ip = Ipv4Packet.parse(ipv4(b"x" * 16, mf=True, frag_offset=1480))
    assert ip.more_fragments and ip.frag_offset == 1480 and ip.is_fragment


def _corrupt(buf: bytearray, index: int, value: int, fix_checksum: bool = True) -> bytearray:
    buf = bytearray(buf)
    buf[index] = value
    if fix_checksum:
        hl = (buf[0] & 15) * 4
        buf[10:12] = b"\x00\x00"
        from unik_tcpip.checksum import checksum
        buf[10:12] = checksum(buf[:max(hl, 20)]).to_bytes(2, "big")
    return buf


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda b: b[:19], "ipv4.truncated"),
    (lambda b: _corrupt(b, 0, 0x65), "ipv4.bad_version"),
    (lambda b: _corrupt(b, 0, 0x44), "ipv4.bad_header_len"),
    (lambda b: _corrupt(b, 0, 0x4F), "ipv4.bad_total_len"),
    (lambda b: _corrupt(b, 3, 200), "ipv4.bad_total_len"),
    (lambda b: _corrupt(b, 6, 0x80), "ipv4.reserved_flag"),
    (lambda b: _corrupt(b, 8, 1, fix_checksum=False), "ipv4.bad_checksum"),
    (lambda b: _corrupt(b, 21, 9), "ipv4.bad_option"),
    (lambda b: _corrupt(b, 21, 1), "ipv4.bad_option"),
])
def test_ipv4_malformed(mutate: object, reason: str) -> None:
    buf = ipv4(b"hello", options=bytes([0x94, 4, 0, 0]))
    with pytest.raises(Malformed) as info:
        Ipv4Packet.parse(mutate(buf))  # type: ignore[operator]
    assert info.value.reason == reason


def test_icmp_round_trip_and_checksum() -> None:
    msg = IcmpPacket.build(icmp.ECHO_REQUEST, 0, struct.pack("!HH", 1, 2), b"ping", headroom=3)
    parsed = IcmpPacket.parse(msg[3:])
    assert (parsed.type, parsed.ident, parsed.seq, bytes(parsed.data)) == (8, 1, 2, b"ping")
    msg[5] ^= 1
    with pytest.raises(Malformed, match=r"icmp\.bad_checksum"):
        IcmpPacket.parse(msg[3:])
    with pytest.raises(Malformed, match=r"icmp\.truncated"):
        IcmpPacket.parse(b"\x08\x00\x00")


def test_udp_round_trip_and_checks() -> None:
    dgram = UdpDatagram.build(SRC, DST, 1234, 53, b"query")
    parsed = UdpDatagram.parse(dgram + b"pad", SRC, DST)
    assert (parsed.src_port, parsed.dst_port, bytes(parsed.payload)) == (1234, 53, b"query")
    with pytest.raises(Malformed, match=r"udp\.bad_checksum"):
        UdpDatagram.parse(dgram, SRC, bytes([10, 0, 0, 3]))
    no_sum = bytearray(dgram)
    no_sum[6:8] = b"\x00\x00"  # RFC 768: zero means no checksum
    assert bytes(UdpDatagram.parse(no_sum, SRC, bytes([10, 0, 0, 3])).payload) == b"query"
    bad_len = bytearray(dgram)
    bad_len[4:6] = (100).to_bytes(2, "big")
    with pytest.raises(Malformed, match=r"udp\.bad_length"):
        UdpDatagram.parse(bad_len, SRC, DST)
    with pytest.raises(Malformed, match=r"udp\.truncated"):
        UdpDatagram.parse(dgram[:7], SRC, DST)


def test_tcp_round_trip_with_all_options() -> None:
    syn_opts = TcpOptions(mss=1460, wscale=7, sack_permitted=True, timestamp=(123, 0))
    seg = TcpSegment.build(SRC, DST, 40000, 80, 0xFFFFFFF0, 0, tcp.SYN, 65535, syn_opts.to_bytes(),
                           b"", headroom=34)
    parsed = TcpSegment.parse(seg[34:], SRC, DST)
    assert (parsed.src_port, parsed.dst_port, parsed.seq, parsed.flags) == (40000, 80, 0xFFFFFFF0, tcp.SYN)
    o = parsed.options
    assert (o.mss, o.wscale, o.sack_permitted, o.timestamp) == (1460, 7, True, (123, 0))
    assert parsed.seg_len == 1
    data_opts = TcpOptions(timestamp=(5, 6), sack_blocks=((100, 200), (300, 400)))
    seg = TcpSegment.build(SRC, DST, 1, 2, 10, 20, tcp.ACK | tcp.FIN, 100, data_opts.to_bytes(), b"abc")
    parsed = TcpSegment.parse(seg, SRC, DST)
    assert parsed.options.sack_blocks == ((100, 200), (300, 400))
    assert parsed.options.timestamp == (5, 6)
    assert bytes(parsed.payload) == b"abc" and parsed.seg_len == 4


def _tcp_with_options(options: bytes) -> bytes:
    return bytes(TcpSegment.build(SRC, DST, 1, 2, 0, 0, tcp.ACK, 100, options))


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x00" * 19, "tcp.truncated"),
    (_tcp_with_options(bytes([2, 3, 5, 0])), "tcp.bad_option"),             # MSS with length 3
    (_tcp_with_options(bytes([3, 4, 7, 0])), "tcp.bad_option"),             # WS with length 4
    (_tcp_with_options(bytes([8, 10, 0, 0])), "tcp.bad_option"),            # TS running off the end
    (_tcp_with_options(bytes([5, 6, 0, 0, 0, 0, 0, 0])), "tcp.bad_option"),  # SACK, not 2+8n
    (_tcp_with_options(bytes([99, 1, 0, 0])), "tcp.bad_option"),            # length below 2
    (_tcp_with_options(bytes([1, 1, 1, 30])), "tcp.bad_option"),            # no length byte
])
def test_tcp_malformed(data: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as info:
        TcpSegment.parse(data, SRC, DST)
    assert info.value.reason == reason


def test_tcp_header_checks() -> None:
    seg = bytearray(TcpSegment.build(SRC, DST, 1, 2, 0, 0, tcp.ACK, 100, b"", b"data"))
    with pytest.raises(Malformed, match=r"tcp\.bad_checksum"):
        TcpSegment.parse(seg, SRC, bytes([1, 2, 3, 4]))
    bogus = bytearray(seg)
    bogus[12] = 0xF0  # 60-byte header in a 24-byte segment
    with pytest.raises(Malformed, match=r"tcp\.bad_header_len"):
        TcpSegment.parse(bogus, SRC, DST, verify_checksum=False)
    synfin = TcpSegment.build(SRC, DST, 1, 2, 0, 0, tcp.SYN | tcp.FIN, 100)
    with pytest.raises(Malformed, match=r"tcp\.bad_flags"):
        TcpSegment.parse(synfin, SRC, DST)
    zero = TcpSegment.build(SRC, DST, 0, 2, 0, 0, tcp.ACK, 100)
    with pytest.raises(Malformed, match=r"tcp\.zero_port"):
        TcpSegment.parse(zero, SRC, DST)
    unknown = _tcp_with_options(bytes([30, 4, 1, 2]))  # unknown kinds are skipped
    assert TcpSegment.parse(unknown, SRC, DST).options.mss is None


@given(st.binary(max_size=120))
def test_parsers_raise_only_malformed(data: bytes) -> None:
    parsers: list[Callable[[], object]] = [
        lambda: EthernetFrame.parse(data), lambda: ArpPacket.parse(data),
        lambda: Ipv4Packet.parse(data), lambda: Ipv4Packet.parse(data, verify_checksum=False),
        lambda: IcmpPacket.parse(data, verify_checksum=False),
        lambda: UdpDatagram.parse(data, SRC, DST, verify_checksum=False),
        lambda: TcpSegment.parse(data, SRC, DST, verify_checksum=False),
    ]
    outcomes = []
    for parse in parsers:
        try:
            parse()
            outcomes.append(True)
        except Malformed as exc:
            assert exc.reason.count(".") == 1
            outcomes.append(False)
    assert len(outcomes) == len(parsers)


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_timestamp_fast_paths_match_the_general_code(tsval: int, tsecr: int) -> None:
    fast = TcpOptions(timestamp=(tsval, tsecr)).to_bytes()
    general = TcpOptions(timestamp=(tsval, tsecr), sack_permitted=True).to_bytes()  # SACK-permitted, TS
    assert fast == bytes([1, 1]) + general[2:]
    assert TcpOptions.parse(memoryview(fast)).timestamp == (tsval, tsecr)
    slow = TcpOptions.parse(memoryview(fast + bytes(4)))  # 16 bytes: the general parser
    assert slow.timestamp == (tsval, tsecr) and not slow.sack_permitted
