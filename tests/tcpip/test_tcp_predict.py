"""Header prediction (``unik_tcpip.tcp.predict``): C and pure twin, against ``segment_arrives``.

Each test drives connections through the same segments and compares every field of
their state and every byte they sent:

* what :func:`established` does to a segment it takes is exactly what
  :meth:`Connection.segment_arrives` does to it (on a copy of the connection);
* the C module and the pure twin take the same segments and leave the same state;
* the cases it must leave to ``segment_arrives`` are left there, unchanged.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from fastpath_support import c_and_pure
from hypothesis import given, settings
from hypothesis import strategies as st
from unik_tcpip import _fastpath_py
from unik_tcpip.iface import TokenBucket
from unik_tcpip.tcp import Connection, Path, State, TcpConfig, predict
from unik_tcpip.tcp import _predict_py as predict_py
from unik_tcpip.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment

predict_c, needs_c, TWINS = c_and_pure("unik_tcpip.tcp._predict", predict_py)
LOCAL = (bytes([10, 0, 0, 1]), 8080)
REMOTE = (bytes([10, 0, 0, 2]), 40000)
ISS, IRS = 1000, 5000
MS = 10**6
T0 = 10**12
HEADROOM = 34


def make(ts: bool = True, cc: str = "newreno") -> Connection:
    """A passive open completed: timestamps (or not), SACK and window scaling negotiated."""
    conn = Connection(TcpConfig(congestion_control=cc), Path(headroom=HEADROOM, max_mss=1460), LOCAL, REMOTE,
                      counters=Counter(), challenge=TokenBucket(100.0, 100), ts_offset=7, rcv_wscale=5,
                      passive=True)
    opts = TcpOptions(mss=1460, wscale=7, sack_permitted=True, timestamp=(100, 0) if ts else None)
    syn = TcpSegment.parse(TcpSegment.build(REMOTE[0], LOCAL[0], REMOTE[1], LOCAL[1], IRS, 0, SYN, 65535,
                                            opts.to_bytes()), REMOTE[0], LOCAL[0])
    conn.open_passive(syn, ISS, T0)
    conn.segment_arrives(parsed(frame(IRS + 1, ISS + 1, ACK, 512, 101 if ts else -1, (T0 // MS + 7) if ts else 0)),
                         T0 + MS)
    conn.outbox.clear()
    conn.events.clear()
    assert conn.state is State.ESTABLISHED
    return conn


def frame(seq: int, ack: int, flags: int, window: int, tsval: int, tsecr: int, data: bytes = b"") -> bytearray:
    """An Ethernet/IPv4 frame from the peer."""
    raw = _fastpath_py.tcp_segment(REMOTE[0], LOCAL[0], REMOTE[1], LOCAL[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                                   flags, window, tsval, tsecr, b"", data, HEADROOM, False)
    _fastpath_py.ipv4_header(raw, 14, REMOTE[0], LOCAL[0], 6, len(raw) - HEADROOM, 1, 64, True)
    raw[0:14] = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
    return raw


def fields(raw: bytearray) -> Any:
    got = _fastpath_py.tcp4_parse(raw, True)
    assert got is not None
    return got


def parsed(raw: bytearray) -> TcpSegment:
    f = fields(raw)
    return TcpSegment.from_fast(raw, f)


def state(conn: Connection) -> dict[str, Any]:
    """Every field of the connection, its parts' fields and the bytes it sent, comparable with ``==``."""
    def value(v: Any) -> Any:
        if isinstance(v, BaseException):
            return repr(v)
        if isinstance(v, (bytearray, memoryview)):
            return bytes(v)
        if isinstance(v, list):
            return [value(x) for x in v]
        if isinstance(v, tuple):
            return tuple(value(x) for x in v)
        if hasattr(v, "__dict__") and type(v).__module__.startswith("unik_tcpip"):
            return (type(v).__name__, {k: value(x) for k, x in vars(v).items()})
        slots = [s for cls in type(v).__mro__ for s in getattr(cls, "__slots__", ())]
        if slots and type(v).__module__.startswith(("unik_tcpip", "unik.")):
            return (type(v).__name__, {s: value(getattr(v, s)) for s in slots})
        return v
    out = {k: value(v) for k, v in vars(conn).items() if k not in ("cfg", "path", "challenge")}
    out["outbox"] = [(bytes(seg), repr(off)) for seg, off in conn.outbox]
    return out


def request_response(conn: Connection, impl: Any, rounds: int = 20) -> int:
    """Requests in order, each answered; how many the prediction took."""
    taken = 0
    now = T0 + 2 * MS
    seq, tsval = conn.rcv_nxt, conn.ts_recent + 1
    for i in range(rounds):
        raw = frame(seq, conn.snd_max, ACK | PSH, 512, tsval if conn.ts_ok else -1,
                    (now // MS + 7) & 0xFFFFFFFF if conn.ts_ok else 0, b"GET / HTTP/1.1\r\n\r\n")
        twin = copy.deepcopy(conn)
        if impl.established(conn, raw, fields(raw), now):
            taken += 1
            twin.segment_arrives(parsed(raw), now)
            assert state(conn) == state(twin), f"round {i}"
        else:
            conn.segment_arrives(parsed(raw), now)
        seq += 18
        tsval += 1
        conn.rcv.take()
        conn.send(b"HTTP/1.1 200 OK\r\n\r\n" + bytes(i), now + 10_000)
        conn.outbox.clear()
        now += 3 * MS
    return taken


@pytest.mark.parametrize("impl", TWINS)
@pytest.mark.parametrize("ts", [True, False], ids=["timestamps", "no-timestamps"])
def test_requests_in_order_are_predicted_as_segment_arrives_would(impl: Any, ts: bool) -> None:
    conn = make(ts)
    assert request_response(conn, impl) == 20
    assert conn.stats.segments_in == 21 and conn.stats.srtt is not None


def acks_predicted(impl: Any, conn: Connection, now: int, segments: int, more: Callable[[], bool]) -> tuple[int, int]:
    """While ``more()``: ACK ``segments`` full segments 1 ms later, each predicted by ``impl`` and
    leaving the state ``segment_arrives`` leaves on a copy; then resume output.  (ACKs, the time.)"""
    taken = 0
    while more():
        now += MS
        ack = min(conn.snd_una + segments * 1448, conn.snd_max)
        raw = frame(conn.rcv_nxt, ack, ACK, 1000, conn.ts_recent + 1, (now // MS + 6) & 0xFFFFFFFF)
        twin = copy.deepcopy(conn)
        assert impl.established(conn, raw, fields(raw), now)
        twin.segment_arrives(parsed(raw), now)
        assert state(conn) == state(twin)
        taken += 1
        conn.outbox.clear()
        conn.resume_output(now)
        conn.outbox.clear()
    return taken, now


@pytest.mark.parametrize("impl", TWINS)
def test_bulk_acks_grow_cubic_and_rearm_the_timers_as_segment_arrives(impl: Any) -> None:
    conn = make(cc="cubic")
    now = T0 + 2 * MS
    conn.send(bytes(range(256)) * 400, now)
    conn.outbox.clear()
    taken, now = acks_predicted(impl, conn, now, 1, lambda: conn.snd_una != conn.snd_max)
    assert taken > 20 and conn.timers.rto == 0 and conn.cwnd > 4 * 1448


@pytest.mark.parametrize("impl", TWINS)
@pytest.mark.parametrize("how", ["shutdown", "close"])
def test_acks_after_the_application_closed_are_predicted_until_the_fin_leaves(impl: Any, how: str) -> None:
    """FIN-WAIT-1 with the FIN queued behind data in flight: ACKs as in ESTABLISHED."""
    conn = make()
    now = T0 + 2 * MS
    conn.send(bytes(200_000), now)
    conn.shutdown(now) if how == "shutdown" else conn.close(now)
    conn.outbox.clear()
    assert conn.state is State.FIN_WAIT_1 and conn.fin_seq is None
    taken, now = acks_predicted(impl, conn, now, 2, lambda: conn.fin_seq is None)
    raw = frame(conn.rcv_nxt, conn.snd_una + 1448, ACK, 1000, conn.ts_recent + 1, 0)
    assert taken > 10 and not impl.established(conn, raw, fields(raw), now)  # the FIN left: not predicted


@pytest.mark.parametrize("impl", TWINS)
def test_acks_in_close_wait_are_predicted(impl: Any) -> None:
    conn = make()
    conn.segment_arrives(parsed(frame(conn.rcv_nxt, conn.snd_una, ACK | FIN, 512, conn.ts_recent + 1, 0)), T0 + MS)
    now = T0 + 2 * MS
    conn.send(bytes(5000), now)
    conn.outbox.clear()
    assert conn.state is State.CLOSE_WAIT
    raw = frame(conn.rcv_nxt, conn.snd_una + 1448, ACK, 512, conn.ts_recent + 1, 0)
    twin = copy.deepcopy(conn)
    assert impl.established(conn, raw, fields(raw), now)
    twin.segment_arrives(parsed(raw), now)
    assert state(conn) == state(twin)


def _unpredicted(conn: Connection) -> list[tuple[str, bytearray]]:
    """Segments the prediction must leave to segment_arrives, each with why."""
    seq, una, ts = conn.rcv_nxt, conn.snd_una, conn.ts_recent
    tsecr = 0
    return [
        ("out of order", frame(seq + 10, una, ACK, 512, ts, tsecr, b"x")),
        ("old data", frame(seq - 1, una, ACK, 512, ts, tsecr, b"xy")),
        ("FIN", frame(seq, una, ACK | FIN, 512, ts, tsecr)),
        ("SYN", frame(seq, una, SYN, 512, ts, tsecr)),
        ("RST", frame(seq, una, RST | ACK, 512, ts, tsecr)),
        ("no ACK", frame(seq, una, PSH, 512, ts, tsecr, b"x")),
        ("ACK beyond SND.MAX", frame(seq, conn.snd_max + 5, ACK, 512, ts, tsecr, b"x")),
        ("ACK below SND.UNA", frame(seq, una - 5, ACK, 512, ts, tsecr, b"x")),
        ("duplicate ACK", frame(seq, una, ACK, 512, ts, tsecr)),
        ("PAWS", frame(seq, una, ACK, 512, ts - 1, tsecr, b"x")),
        ("no timestamp", frame(seq, una, ACK, 512, -1, 0, b"x")),
        ("zero window", frame(seq, una, ACK, 0, ts, tsecr, b"x")),
    ]


@pytest.mark.parametrize("impl", TWINS)
def test_everything_else_is_left_to_segment_arrives_untouched(impl: Any) -> None:
    conn = make()
    conn.send(b"x" * 3000, T0 + 2 * MS)  # data in flight: an ACK of SND.UNA is a duplicate
    conn.outbox.clear()
    for why, raw in _unpredicted(conn):
        before = state(conn)
        assert not impl.established(conn, raw, fields(raw), T0 + 3 * MS), why
        assert state(conn) == before, why


@pytest.mark.parametrize("impl", TWINS)
@pytest.mark.parametrize("condition", ["recovery", "ooo", "paused", "closed", "sack", "probe", "close_wait"])
def test_connection_conditions_are_left_to_segment_arrives(impl: Any, condition: str) -> None:
    conn = make()
    raw = frame(conn.rcv_nxt, conn.snd_una, ACK, 512, conn.ts_recent, 0, b"data")
    if condition == "recovery":
        conn.in_recovery = True
    elif condition == "ooo":
        conn.ooo.add(conn.rcv_nxt + 100, b"later", conn.rcv_nxt)
    elif condition == "paused":
        conn.pause_reading()
    elif condition == "closed":
        conn.app_closed = True
    elif condition == "sack":
        conn.scoreboard.ranges = [(1, 2)]
    elif condition == "probe":
        conn.tlp_end_seq = conn.snd_max
    else:
        conn.state = State.CLOSE_WAIT
    before = state(conn)
    assert not impl.established(conn, raw, fields(raw), T0 + 3 * MS)
    assert state(conn) == before


SEGMENT = st.tuples(
    st.sampled_from([0] * 6 + [1, -1, 1000, -70000]),  # seq offset from RCV.NXT
    st.sampled_from([0, 1, 2, 3, -1]),  # ACK: SND.UNA + this many segments' worth (-1: below)
    st.sampled_from([ACK] * 4 + [ACK | PSH] * 2 + [ACK | FIN, RST, ACK | SYN]),
    st.sampled_from([0, 1, 100, 1000]),  # payload bytes
    st.sampled_from([512, 512, 65535, 0, 1]),  # window field
    st.sampled_from([1, 1, 1, 0, -1, -(2**31)]),  # tsval step from TS.Recent
    st.sampled_from([0, 1, 1448, 5000]),  # bytes the application sends after the segment
    st.sampled_from([""] * 12 + ["shutdown", "close"]),  # the application's call after that
)


@needs_c
@settings(max_examples=150, deadline=None)
@given(st.lists(SEGMENT, min_size=1, max_size=25), st.booleans())
def test_c_and_pure_twin_agree_on_segment_sequences(steps: list[tuple[Any, ...]], ts: bool) -> None:
    """Both twins take (or leave) the same segments and leave the same state, step by step,

    and what they take ends as ``segment_arrives`` would have left it.
    """
    a, b = make(ts), make(ts)
    now = T0 + 2 * MS
    for seq_off, acked, flags, n, window, ts_step, send, call in steps:
        now += MS
        tsval = (a.ts_recent + ts_step) & 0xFFFFFFFF if ts else -1
        ack = a.snd_una + (acked * 1448 if acked >= 0 else -10)
        ack = min(ack, a.snd_max) if acked >= 0 else ack
        raw = frame(a.rcv_nxt + seq_off, ack, flags, window, tsval, (now // MS) & 0xFFFFFFFF if ts else 0,
                    bytes(n))
        got = []
        for conn, impl in ((a, predict_c), (b, predict_py)):
            twin = copy.deepcopy(conn)
            taken = impl.established(conn, raw, fields(raw), now)
            if taken:
                twin.segment_arrives(parsed(raw), now)
                assert state(conn) == state(twin)
            else:
                conn.segment_arrives(parsed(raw), now)
            got.append(taken)
            if conn.state in (State.ESTABLISHED, State.CLOSE_WAIT) and send:
                conn.send(bytes(send), now)
            if call == "shutdown":
                conn.shutdown(now)
            elif call == "close":
                conn.close(now)
            conn.rcv.take()
            conn.resume_output(now)
        assert got[0] == got[1]
        assert state(a) == state(b)
        if a.state is State.CLOSED:
            break


def test_use_pure_selects_the_twin() -> None:
    from unik_tcpip import checksum

    before = predict.implementation()
    try:
        checksum.use_pure(True)
        assert predict.implementation() == "pure" and predict.established is predict_py.established
    finally:
        checksum.use_pure(before == "pure")
    assert predict.implementation() == before
