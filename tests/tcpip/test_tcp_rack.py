"""RACK (RFC 8985 6): time-based loss detection, one transition at a time, without an event loop.

First :class:`Rack` alone (records, delivery, reordering, the window and its D-SACK
adaptation, the reordering timeout), then one :class:`Connection` driven by hand: a
flight too short for three duplicate ACKs is repaired after the reordering window, a lost
retransmission is found and sent again without an RTO, and a late segment within the
window is not resent but teaches RACK that the path reorders.
"""

from __future__ import annotations

from collections import Counter

from unik_tcpip.iface import TokenBucket
from unik_tcpip.tcp import Connection, Path, State, TcpConfig
from unik_tcpip.tcp.rack import LOST, RETRANSMITTED, SACKED, Rack
from unik_tcpip.tcp.timer import Timer
from unik_tcpip.wire.tcp import ACK, SYN, TcpOptions, TcpSegment

MS = 10**6
T0 = 10**12
LOCAL = (bytes([10, 0, 0, 1]), 8080)
REMOTE = (bytes([10, 0, 0, 2]), 40000)
ISS, IRS = 1000, 5000
RTT = 10 * MS


# -- Rack alone -----------------------------------------------------------------------------

def five_sent(rack: Rack) -> None:
    """Segments [0, 100), [100, 200) ... [400, 500), sent 1 ms apart from t = 0."""
    for i in range(5):
        rack.sent_segment(i * 100, i * 100 + 100, i * MS, 0)


def test_segments_sent_before_a_delivered_one_are_lost_once_rtt_and_window_passed() -> None:
    rack = Rack()
    five_sent(rack)
    rack.delivered(0, [(400, 500)], 10 * MS, min_rtt_ns=6 * MS)
    assert (rack.xmit_ns, rack.end_seq, rack.rtt_ns, rack.fack) == (4 * MS, 500, 6 * MS, 500)
    reo_wnd = rack.reo_wnd(6 * MS, 6 * MS, in_recovery=False, sacked_bytes=100, mss=100)
    assert reo_wnd == 6 * MS // 4  # no reordering seen, fewer than three segments SACKed
    lost, wait = rack.detect_loss(10 * MS, reo_wnd)
    # Sent at 0, 1, 2 ms: 6 ms + 1.5 ms have passed; the one sent at 3 ms waits 0.5 ms more.
    assert [rec[0] for rec in lost] == [0, 100, 200] and wait == MS // 2
    assert all(rec[3] & LOST for rec in lost)
    lost, wait = rack.detect_loss(10 * MS + MS // 2, reo_wnd)
    assert [rec[0] for rec in lost] == [300] and wait == 0
    assert rack.detect_loss(20 * MS, reo_wnd) == ([], 0)  # each loss is reported once


def test_nothing_is_lost_before_anything_was_delivered() -> None:
    rack = Rack()
    five_sent(rack)
    assert rack.detect_loss(10**10, 0) == ([], 0)


def test_a_delivery_below_an_earlier_one_is_reordering() -> None:
    rack = Rack()
    five_sent(rack)
    rack.delivered(0, [(300, 400)], 10 * MS, min_rtt_ns=7 * MS)
    assert not rack.reordering_seen and rack.fack == 400
    rack.delivered(300, [(300, 400)], 11 * MS, min_rtt_ns=7 * MS)  # 0-300 arrive late
    assert rack.reordering_seen
    assert rack.reo_wnd(8 * MS, 20 * MS, in_recovery=True, sacked_bytes=1000, mss=100) == 2 * MS
    assert rack.reo_wnd(8 * MS, MS, in_recovery=True, sacked_bytes=0, mss=100) == MS  # at most SRTT


def test_the_window_is_zero_in_recovery_or_past_three_segments_sacked_until_reordering_is_seen() -> None:
    rack = Rack()
    assert rack.reo_wnd(8 * MS, 20 * MS, in_recovery=True, sacked_bytes=0, mss=100) == 0
    assert rack.reo_wnd(8 * MS, 20 * MS, in_recovery=False, sacked_bytes=300, mss=100) == 0
    assert rack.reo_wnd(8 * MS, 20 * MS, in_recovery=False, sacked_bytes=200, mss=100) == 2 * MS


def test_dsacks_widen_the_window_once_per_round_for_sixteen_recoveries() -> None:
    rack = Rack()
    rack.dsack(una=0, snd_max=1000)
    rack.dsack(una=500, snd_max=1500)  # the same round trip: no second step
    assert rack.reo_wnd_mult == 2 and rack.reordering_seen and rack.reo_wnd_persist == 16
    rack.dsack(una=1200, snd_max=2000)  # past the round's end
    assert rack.reo_wnd_mult == 3
    assert rack.reo_wnd(8 * MS, 20 * MS, in_recovery=True, sacked_bytes=0, mss=100) == 6 * MS
    for _ in range(15):
        rack.recovered()
    assert rack.reo_wnd_mult == 3
    rack.recovered()
    assert rack.reo_wnd_mult == 1


def test_a_retransmission_splits_its_records_and_restarts_their_clock() -> None:
    rack = Rack()
    five_sent(rack)
    rack.delivered(0, [(400, 500)], 10 * MS, min_rtt_ns=6 * MS)
    rack.detect_loss(10 * MS, 0)
    rack.resent(150, 250, 11 * MS)
    assert [(r[0], r[1], r[2], r[3] & (RETRANSMITTED | LOST)) for r in list(rack.sent)[:5]] == [
        (0, 100, 0, LOST), (100, 150, MS, LOST), (150, 200, 11 * MS, RETRANSMITTED),
        (200, 250, 11 * MS, RETRANSMITTED), (250, 300, 2 * MS, LOST)]


def test_a_retransmission_answered_for_its_original_teaches_nothing() -> None:
    rack = Rack()
    five_sent(rack)
    rack.resent(0, 100, 8 * MS)
    # The ACK echoes a timestamp from before the retransmission: the original arrived.
    rack.delivered(0, [(0, 100)], 9 * MS, min_rtt_ns=5 * MS, echo=(2 * MS) // MS, ts_offset=0)
    assert rack.xmit_ns == 0 and rack.sent[0][3] & SACKED
    # An RTT shorter than the smallest seen says the same.
    rack.resent(100, 200, 8 * MS)
    rack.delivered(0, [(0, 200)], 9 * MS, min_rtt_ns=5 * MS)
    assert rack.xmit_ns == 0


def test_records_a_cumulative_ack_covered_are_dropped_when_the_next_is_sent() -> None:
    rack = Rack()
    five_sent(rack)
    rack.sent_segment(500, 600, 5 * MS, 300)
    assert [r[0] for r in rack.sent] == [300, 400, 500]
    assert (rack.xmit_ns, rack.end_seq, rack.rtt_ns) == (2 * MS, 300, 0)  # delivered, time unknown


# -- one connection ------------------------------------------------------------------------

def make(mss: int = 1000) -> Connection:
    """ESTABLISHED with timestamps and SACK, an RTT of 10 ms measured in the handshake."""
    conn = Connection(TcpConfig(nagle=False), Path(headroom=34, max_mss=mss + 12), LOCAL, REMOTE,
                      counters=Counter(), challenge=TokenBucket(100.0, 100), ts_offset=0, rcv_wscale=0,
                      passive=True)
    opts = TcpOptions(mss=mss + 12, sack_permitted=True, timestamp=(100, 0))
    syn = TcpSegment.parse(TcpSegment.build(REMOTE[0], LOCAL[0], REMOTE[1], LOCAL[1], IRS, 0, SYN, 65535,
                                            opts.to_bytes()), REMOTE[0], LOCAL[0])
    conn.open_passive(syn, ISS, T0)
    conn.segment_arrives(ack(conn, ISS + 1, T0 + RTT, echo_at=T0), T0 + RTT)
    conn.outbox.clear()
    assert conn.state is State.ESTABLISHED and conn.eff_mss == mss and conn.rtt.min_rtt_ns == RTT
    conn.cwnd = 20 * mss
    return conn


def ack(conn: Connection, ack_no: int, now: int, echo_at: int, sack: tuple[tuple[int, int], ...] = ()) -> TcpSegment:
    """The peer's ACK of ``ack_no`` (with SACK blocks), echoing the timestamp we sent at ``echo_at``."""
    opts = TcpOptions(timestamp=(now // MS, echo_at // MS), sack_blocks=sack)
    raw = TcpSegment.build(REMOTE[0], LOCAL[0], REMOTE[1], LOCAL[1], conn.rcv_nxt, ack_no & 0xFFFFFFFF, ACK, 65535,
                           opts.to_bytes())
    return TcpSegment.parse(raw, REMOTE[0], LOCAL[0])


def sent(conn: Connection) -> list[int]:
    """The sequence numbers of the data segments built since the last call; the outbox empties."""
    out = []
    for raw, _offload in conn.outbox:
        seg = TcpSegment.parse(raw[34:], LOCAL[0], REMOTE[0])
        if seg.payload:
            out.append(seg.seq)
    conn.outbox.clear()
    return out


def test_a_short_flight_missing_its_first_segment_is_repaired_after_the_window() -> None:
    # Two segments: the peer can send one duplicate ACK, never three.
    conn = make()
    una = conn.snd_una
    conn.send(bytes(2000), T0 + 20 * MS)
    assert sent(conn) == [una, una + 1000]
    # The second arrives: one duplicate ACK SACKing it, a round trip later.
    now = T0 + 30 * MS
    conn.segment_arrives(ack(conn, una, now, T0 + 20 * MS, ((una + 1000, una + 2000),)), now)
    assert conn.dupacks == 1 and not conn.in_recovery and sent(conn) == []
    # RACK: the first was sent no later than the delivered one; it is lost once RACK.rtt plus
    # a quarter of the minimum RTT have passed since it was sent.
    assert conn.timers.rack == now + RTT // 4
    conn.on_timer(conn.timers.rack)
    assert sent(conn) == [una]
    assert conn.in_recovery and conn.counters["tcp.rack_lost"] == 1 and conn.counters["tcp.rack_recoveries"] == 1
    assert conn.stats.timeouts == 0 and conn.timers.rack == 0
    # The repair's ACK covers everything: recovery ends.
    conn.segment_arrives(ack(conn, una + 2000, now + 20 * MS, now + 2 * MS), now + 20 * MS)
    assert not conn.in_recovery and conn.snd_una == una + 2000
    conn.send(b"next", now + 21 * MS)  # what the cumulative ACK covered is forgotten lazily
    assert [rec[:2] for rec in conn.rack.sent] == [[una + 2000, una + 2004]]


def test_a_lost_retransmission_is_found_and_sent_again_without_a_timeout() -> None:
    conn = make()
    una = conn.snd_una
    conn.send(bytes(2000), T0 + 20 * MS)
    sent(conn)
    now = T0 + 30 * MS
    conn.segment_arrives(ack(conn, una, now, T0 + 20 * MS, ((una + 1000, una + 2000),)), now)
    conn.on_timer(conn.timers.rack)
    repaired_at = conn.now
    assert sent(conn) == [una]
    # New data leaves after the repair; its SACK arrives, the repair's does not.
    conn.send(bytes(1000), repaired_at + MS)
    assert sent(conn) == [una + 2000]
    now = repaired_at + MS + RTT
    conn.segment_arrives(ack(conn, una, now, repaired_at + MS, ((una + 1000, una + 3000),)), now)
    # Sent before a delivered segment and a round trip old (in recovery the window is zero):
    # the retransmission is lost too, and goes again at once.
    assert sent(conn) == [una]
    assert conn.counters["tcp.rack_retransmits"] == 2 and conn.stats.timeouts == 0
    assert conn.counters["tcp.rack_recoveries"] == 1  # one recovery, one window reduction


def test_a_late_segment_within_the_window_is_not_resent_and_reordering_is_learnt() -> None:
    conn = make()
    una = conn.snd_una
    conn.send(bytes(2000), T0 + 20 * MS)
    sent(conn)
    now = T0 + 30 * MS
    conn.segment_arrives(ack(conn, una, now, T0 + 20 * MS, ((una + 1000, una + 2000),)), now)
    deadline = conn.timers.rack
    assert deadline
    # The first segment was only late: it arrives before the window ran out.
    conn.segment_arrives(ack(conn, una + 2000, deadline - MS, T0 + 20 * MS), deadline - MS)
    conn.on_timer(deadline)
    assert sent(conn) == [] and conn.stats.retransmits == 0 and not conn.in_recovery
    assert conn.rack.reordering_seen  # delivered below what was delivered before it
    assert Timer.RACK not in conn.timers.expire(deadline + RTT)


def test_a_timeout_forgets_what_rack_deemed_lost() -> None:
    conn = make()
    una = conn.snd_una
    conn.send(bytes(2000), T0 + 20 * MS)
    sent(conn)
    now = T0 + 30 * MS
    conn.segment_arrives(ack(conn, una, now, T0 + 20 * MS, ((una + 1000, una + 2000),)), now)
    conn.on_timer(conn.timers.rack)
    sent(conn)
    conn.on_timer(conn.timers.rto)
    assert conn.stats.timeouts == 1 and conn.timers.rack == 0
    assert not any(rec[3] & LOST for rec in conn.rack.sent)
