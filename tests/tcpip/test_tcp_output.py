"""The transmit side's common case in C (``predict.output``, ``fastpath.tcp_frame``) and its pure twins.

* ``tcp_frame`` builds the same whole frame in C and in Python, and the frame parses back
  through the fast and the full parsers with valid checksums;
* :func:`predict.output` (C and twin) leaves a connection exactly as ``Connection.output``'s
  own loop does, over random sequences of sends, ACKs, window changes, Nagle and bursts,
  with and without timestamps, TSO, a link header and IPv6 addresses;
* what it must leave to the loop (a FIN, a retransmission, SACK blocks) it leaves untouched;
* on a wire, an established connection learns its peer's link header, sends whole frames
  with it, and forgets it when the neighbour's entry changes.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastpath_support import c_and_pure
from hypothesis import given, settings
from hypothesis import strategies as st
from tcpip_support import Wire, pair, run, settle
from test_tcp_predict import state
from unik_tcpip import _fastpath_py
from unik_tcpip.iface import TokenBucket
from unik_tcpip.tcp import Connection, Path, State, TcpConfig, TcpConnection, predict
from unik_tcpip.tcp import _predict_py as predict_py
from unik_tcpip.wire.ethernet import EthernetFrame
from unik_tcpip.wire.ipv4 import Ipv4Packet
from unik_tcpip.wire.tcp import ACK, FIN, SYN, TcpOptions, TcpSegment

fastpath_c, needs_fastpath_c, BUILDERS = c_and_pure("unik_tcpip._fastpath", _fastpath_py)
predict_c, needs_c, _ = c_and_pure("unik_tcpip.tcp._predict", predict_py)
V4 = ((bytes([10, 0, 0, 1]), 8080), (bytes([10, 0, 0, 2]), 40000))
V6 = ((bytes.fromhex("20010db8000000000000000000000001"), 8080),
      (bytes.fromhex("20010db8000000000000000000000002"), 40000))
LINK = bytes.fromhex("020000000002" "020000000001" "0800")
ISS, IRS = 1000, 5000
MS = 10**6
T0 = 10**12


def loop_only(tcb: Connection) -> bool:
    """``Connection.output`` without its common case: the reference the twins are held to."""
    return False


@contextmanager
def output_by(impl: Callable[[Connection], bool]) -> Iterator[None]:
    """Run a block with ``predict.output`` bound to ``impl``."""
    saved = predict.output
    predict.output = impl
    try:
        yield
    finally:
        predict.output = saved


def make(ts: bool = True, tso: bool = False, v6: bool = False, link: bool = False, nagle: bool = True,
         max_burst: int = 64, sack: bool = True) -> Connection:
    """An established passive open with the options asked for."""
    local, remote = V6 if v6 else V4
    ip_len = 40 if v6 else 20
    cfg = TcpConfig(nagle=nagle, max_burst=max_burst)
    conn = Connection(cfg, Path(headroom=14 + ip_len, max_mss=1500 - ip_len - 20, ip_header_len=ip_len,
                                gso_tcp=4 if v6 else 1, tso=tso),
                      local, remote, counters=Counter(), challenge=TokenBucket(100.0, 100), ts_offset=7,
                      rcv_wscale=5, passive=True)
    opts = TcpOptions(mss=1460, wscale=7, sack_permitted=sack, timestamp=(100, 0) if ts else None)
    syn = TcpSegment.parse(TcpSegment.build(remote[0], local[0], remote[1], local[1], IRS, 0, SYN, 65535,
                                            opts.to_bytes()), remote[0], local[0])
    conn.open_passive(syn, ISS, T0)
    conn.segment_arrives(ack_segment(conn, ISS + 1, 512, T0), T0 + MS)
    conn.outbox.clear()
    conn.events.clear()
    if link:
        conn.link = LINK[:12] + (b"\x86\xdd" if v6 else b"\x08\x00")
        conn.link_ttl = 61
    assert conn.state is State.ESTABLISHED
    return conn


def ack_segment(conn: Connection, ack: int, window: int, now: int, flags: int = ACK, data: bytes = b"",
                sack: tuple[tuple[int, int], ...] = ()) -> TcpSegment:
    """A segment from the peer acknowledging ``ack`` with ``window`` (unscaled field)."""
    local, remote = conn.local, conn.remote
    opts = TcpOptions(timestamp=((now // MS) & 0xFFFFFFFF, (now // MS + 7) & 0xFFFFFFFF) if conn.ts_ok else None,
                      sack_blocks=sack)
    raw = TcpSegment.build(remote[0], local[0], remote[1], local[1], conn.rcv_nxt, ack & 0xFFFFFFFF, flags, window,
                           opts.to_bytes(), data)
    return TcpSegment.parse(raw, remote[0], local[0])


# -- the frame builder ---------------------------------------------------------------------

@needs_fastpath_c
@settings(max_examples=300, deadline=None)
@given(v6=st.booleans(), link=st.booleans(), tsval=st.integers(-1, 2**32 - 1), tsecr=st.integers(0, 2**32 - 1),
       seq=st.integers(0, 2**32 - 1), ack=st.integers(0, 2**32 - 1), flags=st.integers(0, 255),
       window=st.integers(0, 0xFFFF), options=st.binary(max_size=28), payload=st.binary(max_size=3000),
       ident=st.integers(0, 0xFFFF), ttl=st.integers(0, 255), partial=st.booleans())
def test_c_and_pure_build_the_same_frames(v6: bool, link: bool, tsval: int, tsecr: int, seq: int, ack: int,
                                          flags: int, window: int, options: bytes, payload: bytes, ident: int,
                                          ttl: int, partial: bool) -> None:
    (local, lport), (remote, rport) = V6 if v6 else V4
    args = (LINK if link else b"", local, remote, lport, rport, seq, ack, flags, window, tsval, tsecr, options,
            payload, ident, ttl, partial)
    built = fastpath_c.tcp_frame(*args)
    assert built == _fastpath_py.tcp_frame(*args)
    if not link:  # the IP layer's form: the segment behind zero headroom
        assert built == _fastpath_py.tcp_segment(*args[1:13], 14 + (40 if v6 else 20), partial)


@pytest.mark.parametrize("impl", BUILDERS)
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_built_frames_parse_back_with_valid_checksums(impl: Any, v6: bool) -> None:
    (local, lport), (remote, rport) = V6 if v6 else V4
    link = LINK[:12] + (b"\x86\xdd" if v6 else b"\x08\x00")
    raw = impl.tcp_frame(link, local, remote, lport, rport, 123456, 654321, ACK | 0x08, 4000, 77, 66, b"",
                         b"payload bytes", 0x1234, 63, False)
    parse = impl.tcp6_parse if v6 else impl.tcp4_parse
    fields = parse(raw, True)
    assert fields is not None
    assert (fields.src, fields.dst, fields.sport, fields.dport, fields.seq, fields.ack, fields.window,
            fields.tsval, fields.tsecr) == (local, remote, lport, rport, 123456, 654321, 4000, 77, 66)
    assert bytes(raw[fields.tcp_start + fields.header_len:fields.tcp_end]) == b"payload bytes"
    eth = EthernetFrame.parse(raw)
    assert eth.dst == link[:6] and eth.src == link[6:12]
    if not v6:
        ip = Ipv4Packet.parse(eth.payload, verify_checksum=True)
        assert (ip.ident, ip.ttl, ip.dont_fragment) == (0x1234, 63, True)
        TcpSegment.parse(ip.payload, ip.src, ip.dst, verify_checksum=True)
    else:
        assert raw[14] >> 4 == 6 and raw[21] == 63  # version, hop limit


@pytest.mark.parametrize("impl", BUILDERS)
def test_bad_frame_arguments_are_value_errors(impl: Any) -> None:
    (local, lport), (remote, rport) = V4
    with pytest.raises(ValueError, match="14 bytes"):
        impl.tcp_frame(b"short", local, remote, lport, rport, 0, 0, ACK, 0, -1, -1, b"", b"", 0, 64, False)
    with pytest.raises(ValueError, match="4 \\(IPv4\\) or 16"):
        impl.tcp_frame(LINK, local, V6[1][0], lport, rport, 0, 0, ACK, 0, -1, -1, b"", b"", 0, 64, False)
    with pytest.raises(ValueError, match="65535"):
        impl.tcp_frame(LINK, local, remote, lport, rport, 0, 0, ACK, 0, -1, -1, b"", bytes(65500), 0, 64, True)


# -- output's common case against the loop -------------------------------------------------

TWINS = [pytest.param(lambda: predict_c.output, id="c", marks=needs_c),
         pytest.param(lambda: predict_py.output, id="pure")]

STEP = st.one_of(
    st.tuples(st.just("send"), st.integers(1, 40000)),
    st.tuples(st.just("ack"), st.integers(0, 30000), st.integers(0, 2000)),
    st.tuples(st.just("resume"), st.just(0)),
    st.tuples(st.just("nodelay"), st.booleans()),
    st.tuples(st.just("idle"), st.integers(1, 3000)),
)


def apply(conn: Connection, step: tuple[Any, ...], now: int) -> None:
    """One step of a random sequence (the same on every copy of the connection)."""
    kind = step[0]
    if kind == "send":
        conn.send(bytes(i & 0xFF for i in range(step[1])), now)
    elif kind == "ack":
        outstanding = (conn.snd_max - conn.snd_una) & 0xFFFFFFFF
        conn.segment_arrives(ack_segment(conn, conn.snd_una + min(step[1], outstanding), step[2], now), now)
    elif kind == "resume":
        conn.resume_output(now)
    elif kind == "nodelay":
        conn.set_nodelay(step[1], now)


@pytest.mark.parametrize("twin", TWINS)
@settings(max_examples=120, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=25), ts=st.booleans(), tso=st.booleans(), v6=st.booleans(),
       link=st.booleans(), nagle=st.booleans(), max_burst=st.integers(2, 64))
def test_output_leaves_the_connection_as_the_loop_does(twin: Callable[[], Callable[[Connection], bool]],
                                                       steps: list[tuple[Any, ...]], ts: bool, tso: bool,
                                                       v6: bool, link: bool, nagle: bool, max_burst: int) -> None:
    fast = make(ts=ts, tso=tso, v6=v6, link=link, nagle=nagle, max_burst=max_burst)
    reference = copy.deepcopy(fast)
    now = T0 + 2 * MS
    for i, step in enumerate(steps):
        now += step[1] * MS if step[0] == "idle" else 50_000
        with output_by(twin()):
            apply(fast, step, now)
        with output_by(loop_only):
            apply(reference, step, now)
        assert state(fast) == state(reference), f"step {i}: {step}"


@pytest.mark.parametrize("twin", TWINS)
def test_a_response_is_one_whole_frame_with_the_link_header(twin: Callable[[], Callable[[Connection], bool]]) -> None:
    conn = make(link=True)
    with output_by(twin()):
        conn.send(b"HTTP/1.1 200 OK\r\n\r\nhello", T0 + 2 * MS)
    [(raw, offload)] = conn.outbox
    assert offload is None and bytes(raw[:14]) == conn.link
    fields = _fastpath_py.tcp4_parse(raw, True)
    assert fields is not None and fields.seq == ISS + 1 and fields.flags == ACK | 0x08
    assert raw[22] == 61 and conn.ip_ident == 8  # the TTL given; the identification moved on


@pytest.mark.parametrize("twin", TWINS)
def test_a_super_segment_carries_its_offload(twin: Callable[[], Callable[[Connection], bool]]) -> None:
    conn = make(tso=True, link=True)
    conn.cwnd = conn.snd_wnd = 1 << 20
    with output_by(twin()):
        conn.send(bytes(20000), T0 + 2 * MS)
    [(raw, offload)] = conn.outbox
    assert offload is not None and (offload.gso_type, offload.gso_size) == (1, conn.eff_mss)
    assert offload.hdr_len == 14 + 20 + 32 and len(raw) == 14 + 20 + 32 + 20000


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("case", ["fin", "retransmission", "sack_blocks", "syn_received", "persist"])
def test_what_the_loop_must_do_is_left_to_it_untouched(twin: Callable[[], Callable[[Connection], bool]],
                                                        case: str) -> None:
    conn = make()
    now = T0 + 2 * MS
    if case == "fin":
        conn.snd.data += b"queued"
        conn.fin_queued = True
    elif case == "retransmission":
        conn.send(bytes(3000), now)
        conn.snd_nxt = conn.snd_una  # an RTO went back
    elif case == "sack_blocks":
        conn.segment_arrives(ack_segment(conn, conn.snd_una, 512, now, data=b"x"), now)  # in order
        conn.rcv_nxt = (conn.rcv_nxt + 100) & 0xFFFFFFFF
        conn.ooo.add(conn.rcv_nxt + 50, b"ooo", conn.rcv_nxt)
        conn.snd.data += b"more"
    elif case == "syn_received":
        conn.state = State.SYN_RECEIVED
        conn.snd.data += b"early"
    else:
        conn.snd_wnd = 0
        conn.snd.data += b"blocked"
    conn.outbox.clear()
    before = state(conn)
    assert twin()(conn) is False
    assert state(conn) == before


def test_use_pure_rebinds_output() -> None:
    from unik_tcpip import checksum

    before = predict.implementation()
    try:
        checksum.use_pure(True)
        assert predict.output is predict_py.output
    finally:
        checksum.use_pure(before == "pure")


# -- on a wire -----------------------------------------------------------------------------

def test_an_established_connection_sends_whole_frames_and_relearns_a_changed_neighbour() -> None:
    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                writer.write(data)

        await b.tcp.start_server(echo, 7)
        reader, writer = await a.tcp.connect("10.0.0.2", 7)
        conn = writer.get_extra_info("tcp_connection")
        assert isinstance(conn, TcpConnection)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        tcb = conn.tcb
        assert tcb.link == b.iface.mac + a.iface.mac + b"\x08\x00"
        sent_before = a.stats["ipv4.tx"]
        wire.log.clear()
        writer.write(b"x" * 3000)
        assert await reader.readexactly(3000) == b"x" * 3000
        frames = [f for who, f in wire.log if who == "stack1" and f[23] == 6]
        assert frames and all(f[:14] == tcb.link for f in frames)
        assert all(Ipv4Packet.parse(f[14:], verify_checksum=True).dont_fragment for f in frames)
        assert a.stats["ipv4.tx"] - sent_before == len(frames)
        # The peer's address changes (a new NIC): the ARP entry moves, and so does the link.
        moved = bytes.fromhex("02aabbccddee")
        a.iface.arp.insert(bytes([10, 0, 0, 2]), moved, a.timers.now_ns())
        writer.write(b"y")  # built with the old header, then the change is seen
        await settle(0.01)
        assert tcb.link is not None and tcb.link[:6] == moved
        # A restored snapshot starts a new ARP cache: the link is dropped, and learnt again
        # once the neighbour is resolved anew (asked again a second later).
        a.iface.renew_link()
        writer.write(b"z")
        assert tcb.link is None
        assert await reader.readexactly(2) == b"yz"
        await settle(1.5)
        writer.write(b"!")
        assert await reader.readexactly(1) == b"!"
        assert tcb.link == b.iface.mac + a.iface.mac + b"\x08\x00"
        writer.close()
        await settle(1)
    run(main())


def test_a_connection_to_ourselves_keeps_the_ip_layers_path() -> None:
    async def main() -> None:
        a, _b = await pair(Wire())

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(2))

        await a.tcp.start_server(echo, 9)
        reader, writer = await a.tcp.connect("10.0.0.1", 9)
        writer.write(b"me")
        assert await reader.readexactly(2) == b"me"
        conn = writer.get_extra_info("tcp_connection")
        assert isinstance(conn, TcpConnection) and conn.tcb.link is None
    run(main())


def test_fin_flag_is_still_built_by_the_loop() -> None:
    conn = make(link=True)
    conn.send(b"last", T0 + 2 * MS)
    conn.outbox.clear()
    conn.shutdown(T0 + 3 * MS)
    [(raw, _)] = conn.outbox
    fields = _fastpath_py.tcp4_parse(raw, True)
    assert fields is not None and fields.flags & FIN and bytes(raw[:14]) == conn.link
