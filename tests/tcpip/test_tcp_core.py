"""The sans-I/O TCP state machine, one transition per test: no event loop, no wire.

Each test feeds one :class:`unik_tcpip.tcp.Connection` a segment, a user call or the
time, and checks the segments it put in its outbox, its state and its events — RFC 9293
3.3.2's state diagram and 3.10's event processing, as smoltcp's socket tests do.
"""

from __future__ import annotations

from collections import Counter

import pytest
from unik_tcpip.iface import TokenBucket
from unik_tcpip.tcp import Connection, Event, Path, State, TcpConfig
from unik_tcpip.tcp.assembler import Assembler
from unik_tcpip.tcp.rtt import RttEstimator
from unik_tcpip.tcp.sack import Scoreboard
from unik_tcpip.tcp.timer import Timer, TimerSet
from unik_tcpip.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment, sack_option

LOCAL = (bytes([10, 0, 0, 1]), 49152)
REMOTE = (bytes([10, 0, 0, 2]), 80)
ISS, IRS = 1000, 5000
MS = 10**6
T0 = 10**12  # the time every test starts at, in ns


def make(cfg: TcpConfig | None = None, passive: bool = False) -> Connection:
    return Connection(cfg or TcpConfig(), Path(headroom=0, max_mss=1460), LOCAL, REMOTE, counters=Counter(),
                      challenge=TokenBucket(100.0, 100), ts_offset=0, rcv_wscale=5, passive=passive)


def seg(seq: int, ack: int = 0, flags: int = ACK, data: bytes = b"", window: int = 1000,
        options: TcpOptions | None = None) -> TcpSegment:
    """A segment from the peer."""
    raw = TcpSegment.build(REMOTE[0], LOCAL[0], REMOTE[1], LOCAL[1], seq, ack, flags, window,
                           options.to_bytes() if options else b"", data)
    return TcpSegment.parse(raw, REMOTE[0], LOCAL[0])


def sent(conn: Connection) -> list[TcpSegment]:
    """The segments the connection built since the last call, parsed; the outbox empties."""
    out = [TcpSegment.parse(segment, LOCAL[0], REMOTE[0]) for segment, _offload in conn.outbox]
    conn.outbox.clear()
    return out


def events(conn: Connection) -> list[Event]:
    got, conn.events = conn.events, []
    return got


def established(cfg: TcpConfig | None = None) -> Connection:
    """An active open completed without options: SND.NXT = ISS + 1, RCV.NXT = IRS + 1."""
    conn = make(cfg)
    conn.open_active(ISS, T0)
    conn.segment_arrives(seg(IRS, ISS + 1, SYN | ACK, window=65535, options=TcpOptions(mss=1000)), T0 + MS)
    sent(conn), events(conn)
    assert conn.state is State.ESTABLISHED
    return conn


# -- opening (RFC 9293 3.10.1, 3.10.7.2, 3.10.7.3) ------------------------------------


def test_closed_open_active_sends_syn() -> None:
    conn = make()
    conn.open_active(ISS, T0)
    [syn] = sent(conn)
    assert conn.state is State.SYN_SENT and syn.flags == SYN and syn.seq == ISS
    assert syn.options.mss == 1460 and syn.options.wscale == 5 and syn.options.sack_permitted
    assert syn.options.timestamp is not None
    assert conn.wake_at == T0 + 10**9  # RFC 6298 2.1: the initial RTO


def test_syn_sent_synack() -> None:
    conn = make()
    conn.open_active(ISS, T0)
    sent(conn)
    opts = TcpOptions(mss=1200, wscale=2, sack_permitted=True, timestamp=(77, T0 // MS))
    conn.segment_arrives(seg(IRS, ISS + 1, SYN | ACK, window=4000, options=opts), T0 + 3 * MS)
    [ack] = sent(conn)
    assert conn.state is State.ESTABLISHED and events(conn) == [Event.ESTABLISHED]
    assert ack.flags == ACK and ack.seq == ISS + 1 and ack.ack == IRS + 1
    assert (conn.snd_mss, conn.snd_wscale, conn.sack_ok, conn.ts_ok, conn.ts_recent) == (1200, 2, True, True, 77)
    assert conn.snd_wnd == 4000  # RFC 7323 2.2: a SYN's window is never scaled
    assert conn.stats.srtt == pytest.approx(0.003)


def test_syn_sent_rst_is_connection_refused() -> None:
    conn = make()
    conn.open_active(ISS, T0)
    sent(conn)
    conn.segment_arrives(seg(0, ISS + 1, RST | ACK), T0)
    assert conn.state is State.CLOSED and isinstance(conn.error, ConnectionRefusedError)
    assert events(conn) == [Event.LOST, Event.CLOSED] and not sent(conn)


def test_syn_sent_bad_ack_is_reset() -> None:
    conn = make()
    conn.open_active(ISS, T0)
    sent(conn)
    conn.segment_arrives(seg(IRS, ISS + 50, SYN | ACK), T0)
    [rst] = sent(conn)
    assert rst.flags == RST and rst.seq == ISS + 50 and conn.state is State.SYN_SENT
    assert conn.counters["tcp.bad_syn_ack"] == 1


def test_syn_sent_syn_simultaneous_open() -> None:
    conn = make()
    conn.open_active(ISS, T0)
    sent(conn)
    conn.segment_arrives(seg(IRS, 0, SYN), T0)
    [synack] = sent(conn)
    assert conn.state is State.SYN_RECEIVED and synack.flags == SYN | ACK and synack.ack == IRS + 1


def test_listen_syn_passive_open() -> None:
    conn = make(passive=True)
    conn.open_passive(seg(IRS, 0, SYN, options=TcpOptions(mss=536)), ISS, T0)
    [synack] = sent(conn)
    assert conn.state is State.SYN_RECEIVED
    assert synack.flags == SYN | ACK and synack.seq == ISS and synack.ack == IRS + 1
    assert synack.options.wscale is None and synack.options.timestamp is None  # only what was offered
    assert conn.snd_mss == 536


def test_syn_received_ack() -> None:
    conn = make(passive=True)
    conn.open_passive(seg(IRS, 0, SYN), ISS, T0)
    sent(conn)
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK, data=b"hi"), T0)
    assert conn.state is State.ESTABLISHED and events(conn) == [Event.ESTABLISHED]
    assert conn.rcv.take() == [b"hi"] and conn.counters["tcp.passive_opens"] == 1


def test_syn_received_rst_returns_to_listen() -> None:
    conn = make(passive=True)
    conn.open_passive(seg(IRS, 0, SYN), ISS, T0)
    sent(conn)
    conn.segment_arrives(seg(IRS + 1, 0, RST), T0)
    assert conn.state is State.CLOSED and conn.error is None  # the listener carries on
    assert events(conn) == [Event.LOST, Event.CLOSED]


def test_syn_received_lost_synack_is_repeated() -> None:
    conn = make(passive=True)
    conn.open_passive(seg(IRS, 0, SYN), ISS, T0)
    sent(conn)
    conn.segment_arrives(seg(IRS, 0, SYN), T0)
    [synack] = sent(conn)
    assert synack.flags == SYN | ACK and conn.state is State.SYN_RECEIVED


# -- data (RFC 9293 3.10.7.4, 3.8.6.3) ------------------------------------------------


def test_established_data_is_acked_every_second_segment() -> None:
    conn = established()
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK | PSH, b"a" * 100), T0 + 2 * MS)
    assert not sent(conn) and conn.timers.delayed_ack == T0 + 2 * MS + 40 * MS
    conn.segment_arrives(seg(IRS + 101, ISS + 1, ACK | PSH, b"b" * 100), T0 + 3 * MS)
    [ack] = sent(conn)
    assert ack.ack == IRS + 201 and conn.timers.delayed_ack == 0
    assert conn.rcv.take() == [b"a" * 100, b"b" * 100]


def test_established_delayed_ack_timer() -> None:
    conn = established()
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK, b"x"), T0)
    assert conn.wake_at == T0 + 40 * MS
    conn.on_timer(T0 + 40 * MS)
    [ack] = sent(conn)
    assert ack.ack == IRS + 2


def test_a_left_over_timer_call_asks_for_no_new_one() -> None:
    """The driver's timers cannot be cancelled: a call for a deadline since replaced is a no-op."""
    conn = established()
    conn.wake_at = 0
    conn.send(b"r" * 100, T0)  # an RTO deadline: asked for
    rto = conn.timers.rto
    assert conn.wake_at == rto
    conn.wake_at = 0  # (the driver took the request)
    # The peer's request acknowledges it and waits for a delayed ACK: an earlier deadline, asked for.
    conn.segment_arrives(seg(IRS + 1, ISS + 101, ACK | PSH, b"q"), T0 + MS)
    assert conn.timers.rto == 0 and conn.wake_at == T0 + 41 * MS
    conn.wake_at = 0
    conn.send(b"s" * 100, T0 + 2 * MS)  # the answer carries the ACK; its RTO is later than the one asked for
    sent(conn)
    assert conn.wake_at == 0
    conn.on_timer(T0 + 41 * MS)  # the delayed ACK's call: nothing due; the RTO is asked for anew
    assert not sent(conn) and conn.wake_at == conn.timers.rto
    conn.wake_at = 0
    conn.on_timer(rto)  # the first RTO's left-over call, before the current RTO: nothing to ask
    assert not sent(conn) and conn.wake_at == 0 and conn.timers.rto > rto


def test_established_send_and_ack() -> None:
    conn = established()
    conn.send(b"y" * 2500, T0)
    segments = sent(conn)
    # The peer's MSS of 1000; Nagle holds the last 500 bytes while data is in flight.
    assert [len(s.payload) for s in segments] == [1000, 1000] and conn.timers.rto
    conn.segment_arrives(seg(IRS + 1, ISS + 2001, ACK, window=65535), T0 + 5 * MS)
    [last] = sent(conn)
    assert len(last.payload) == 500 and last.flags == ACK | PSH
    conn.segment_arrives(seg(IRS + 1, ISS + 2501, ACK, window=65535), T0 + 6 * MS)
    assert conn.snd_una == ISS + 2501 and len(conn.snd) == 0 and conn.timers.rto == 0
    # Karn's timed segments, without timestamps: the SYN's 1 ms, then 5 ms and 1 ms (RFC 6298 2.3).
    assert conn.stats.srtt == pytest.approx(((7 * 1 + 5) / 8 * 7 + 1) / 8 / 1000)


def test_established_out_of_order_sack_then_fill() -> None:
    cfg = TcpConfig()
    conn = make(cfg)
    conn.open_active(ISS, T0)
    conn.segment_arrives(seg(IRS, ISS + 1, SYN | ACK, options=TcpOptions(mss=1000, sack_permitted=True)), T0)
    sent(conn)
    conn.segment_arrives(seg(IRS + 101, ISS + 1, ACK, b"b" * 100), T0)
    [dup] = sent(conn)  # RFC 5681 4.2: a duplicate ACK at once, with a SACK block (RFC 2018)
    assert dup.ack == IRS + 1 and dup.options.sack_blocks == ((IRS + 101, IRS + 201),)
    assert conn.rcv.take() == []
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK, b"a" * 100), T0)
    [ack] = sent(conn)
    assert ack.ack == IRS + 201 and not ack.options.sack_blocks
    assert b"".join(conn.rcv.take()) == b"a" * 100 + b"b" * 100


def test_established_zero_window_is_probed() -> None:
    conn = established()
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK, window=0), T0)
    conn.send(b"z" * 10, T0)
    assert not sent(conn) and conn.timers.persist == T0 + conn.rtt.rto_ns
    conn.on_timer(T0 + conn.rtt.rto_ns)
    [probe] = sent(conn)
    assert probe.seq == ISS and not probe.payload  # an old sequence number forces an ACK
    assert conn.counters["tcp.window_probes"] == 1


def test_established_rto_retransmits_and_backs_off() -> None:
    conn = established()
    conn.send(b"r" * 100, T0)
    sent(conn)
    rto = conn.rtt.rto_ns
    conn.on_timer(T0 + rto)
    [again] = sent(conn)
    assert again.seq == ISS + 1 and len(again.payload) == 100
    assert conn.rtt.rto_ns == 2 * rto and conn.stats.timeouts == 1 and conn.cwnd == conn.eff_mss


def test_established_three_dup_acks_fast_retransmit() -> None:
    conn = established()
    conn.cwnd = 10_000
    conn.send(b"d" * 5000, T0)
    sent(conn)
    for _ in range(3):
        conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK, window=65535), T0)
    resent = [s for s in sent(conn) if s.seq == ISS + 1]
    assert resent and conn.in_recovery and conn.stats.fast_retransmits == 1


def sack_established() -> Connection:
    """An active open with SACK and an RTT sample of 2 ms: SND.NXT = ISS + 1, RCV.NXT = IRS + 1."""
    conn = make()
    conn.open_active(ISS, T0)
    conn.segment_arrives(seg(IRS, ISS + 1, SYN | ACK, window=65535,
                             options=TcpOptions(mss=1000, sack_permitted=True)), T0 + 2 * MS)
    sent(conn), events(conn)
    return conn


def test_tail_loss_probe_when_the_tail_acks_are_lost() -> None:
    conn = sack_established()
    conn.send(b"t" * 3000, T0 + 3 * MS)
    assert len(sent(conn)) == 3
    # RFC 8985 7.2: 2 SRTT (floored at 10 ms) after the last transmission, before the RTO.
    probe_at = conn.timers.probe
    assert probe_at == T0 + 13 * MS and probe_at < conn.timers.rto
    conn.on_timer(probe_at)
    [probe] = sent(conn)  # no new data: the last segment again (RFC 8985 7.3)
    assert (probe.seq, len(probe.payload)) == (ISS + 2001, 1000) and conn.stats.tlp_probes == 1
    # The peer had it all: its ACK covers everything and reports the duplicate (D-SACK).
    conn.segment_arrives(seg(IRS + 1, ISS + 3001, ACK, window=65535,
                             options=TcpOptions(sack_blocks=((ISS + 2001, ISS + 3001),))), probe_at + 2 * MS)
    assert conn.counters["tcp.tlp_spurious"] == 1 and conn.stats.timeouts == 0 and conn.snd_una == ISS + 3001
    assert conn.timers.rto == conn.timers.probe == 0


def test_tail_loss_probe_answer_without_dsack_waits_for_the_next_ack() -> None:
    conn = sack_established()
    conn.send(b"t" * 3000, T0 + 3 * MS)
    sent(conn)
    conn.on_timer(conn.timers.probe)
    sent(conn)
    end = conn.tlp_end_seq
    conn.segment_arrives(seg(IRS + 1, ISS + 3001, ACK, window=65535), T0 + 20 * MS)
    assert conn.tlp_end_seq == end  # just reached the end: a D-SACK may still come
    conn.segment_arrives(seg(IRS + 1, ISS + 3001, ACK, window=65535), T0 + 21 * MS)
    # A duplicate ACK at the end: the original and the probe both arrived; nothing was lost.
    assert conn.tlp_end_seq is None and conn.counters["tcp.tlp_recoveries"] == 0


def test_tail_loss_probe_reveals_a_loss_at_once() -> None:
    conn = sack_established()
    conn.send(b"t" * 3000, T0 + 3 * MS)
    sent(conn)
    conn.on_timer(conn.timers.probe)
    sent(conn)
    # The first segment was lost: the probe's SACK reaches the end; RACK's rule sees the hole.
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK, window=65535,
                             options=TcpOptions(sack_blocks=((ISS + 1001, ISS + 3001),))), T0 + 20 * MS)
    [resent] = sent(conn)
    assert (resent.seq, len(resent.payload)) == (ISS + 1, 1000) and conn.stats.fast_retransmits == 1
    assert conn.stats.timeouts == 0


def test_tail_loss_probe_sends_new_data_when_it_can() -> None:
    conn = sack_established()
    conn.cwnd = 2000  # two segments in flight; the rest waits for the congestion window
    conn.send(b"n" * 2500, T0 + 3 * MS)
    assert len(sent(conn)) == 2
    conn.on_timer(conn.timers.probe)
    [probe] = sent(conn)  # RFC 8985 7.3: new data the receive window allows
    assert probe.seq == ISS + 2001 and len(probe.payload) == 500 and conn.snd_max == ISS + 2501


def test_duplicate_data_is_reported_as_a_dsack() -> None:
    conn = sack_established()
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK, b"a" * 100), T0)
    sent(conn)
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK, b"a" * 100), T0)  # again
    [ack] = sent(conn)
    assert ack.ack == IRS + 101 and ack.options.sack_blocks == ((IRS + 1, IRS + 101),)  # RFC 2883


def test_bursts_are_bounded() -> None:
    conn = established(TcpConfig(max_burst=8))
    conn.cwnd = conn.snd_wnd = 1 << 20
    conn.send(b"b" * 100_000, T0)
    assert len(sent(conn)) == 8 and conn.output_pending  # the driver reads ACKs, then resumes
    conn.resume_output(T0)
    assert len(sent(conn)) == 8


# -- synchronization checks (RFC 5961, RFC 7323 5.3) ------------------------------------


def test_established_rst_in_window_gets_challenge_ack() -> None:
    conn = established()
    conn.segment_arrives(seg(IRS + 50, 0, RST), T0)
    [challenge] = sent(conn)
    assert challenge.flags == ACK and conn.state is State.ESTABLISHED and conn.stats.challenge_acks == 1


def test_established_exact_rst_resets() -> None:
    conn = established()
    conn.segment_arrives(seg(IRS + 1, 0, RST), T0)
    assert conn.state is State.CLOSED and isinstance(conn.error, ConnectionResetError)


def test_established_syn_gets_challenge_ack() -> None:
    conn = established()
    conn.segment_arrives(seg(IRS + 1, 0, SYN), T0)
    assert sent(conn)[0].flags == ACK and conn.state is State.ESTABLISHED


def test_established_unacceptable_segment_is_dropped_with_an_ack() -> None:
    conn = established()
    conn.segment_arrives(seg(IRS + 10_000_000, ISS + 1, ACK, b"junk"), T0)
    [ack] = sent(conn)
    assert ack.ack == IRS + 1 and conn.counters["tcp.unacceptable"] == 1 and not conn.rcv.take()


# -- closing (RFC 9293 3.10.4, 3.10.7.4 eighth) -----------------------------------------


def test_established_fin() -> None:
    conn = established()
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK | FIN), T0)
    [ack] = sent(conn)
    assert conn.state is State.CLOSE_WAIT and ack.ack == IRS + 2 and events(conn) == [Event.EOF]


def test_close_wait_close() -> None:
    conn = established()
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK | FIN), T0)
    sent(conn)
    conn.close(T0)
    [fin] = sent(conn)
    assert conn.state is State.LAST_ACK and fin.flags & FIN and fin.seq == ISS + 1


def test_last_ack_ack() -> None:
    conn = established()
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK | FIN), T0)
    conn.close(T0)
    sent(conn), events(conn)
    conn.segment_arrives(seg(IRS + 2, ISS + 2, ACK), T0)
    assert conn.state is State.CLOSED and conn.error is None and events(conn) == [Event.LOST, Event.CLOSED]


def test_established_close() -> None:
    conn = established()
    conn.close(T0)
    [fin] = sent(conn)
    assert conn.state is State.FIN_WAIT_1 and fin.flags == ACK | FIN


def test_fin_wait_1_ack() -> None:
    conn = established()
    conn.close(T0)
    sent(conn)
    conn.segment_arrives(seg(IRS + 1, ISS + 2, ACK), T0)
    assert conn.state is State.FIN_WAIT_2
    assert conn.timers.fin_wait_2 == T0 + TcpConfig().fin_wait_2_ns  # closed completely: bounded


def test_fin_wait_1_fin_is_closing() -> None:
    conn = established()
    conn.close(T0)
    sent(conn)
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK | FIN), T0)  # FIN crossing ours
    [ack] = sent(conn)
    assert conn.state is State.CLOSING and ack.ack == IRS + 2


def test_closing_ack() -> None:
    conn = established()
    conn.close(T0)
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK | FIN), T0)
    sent(conn), events(conn)
    conn.segment_arrives(seg(IRS + 2, ISS + 2, ACK), T0)
    assert conn.state is State.TIME_WAIT and events(conn) == [Event.LOST]


def test_fin_wait_1_fin_ack_is_time_wait() -> None:
    conn = established()
    conn.close(T0)
    sent(conn)
    conn.segment_arrives(seg(IRS + 1, ISS + 2, ACK | FIN), T0)
    assert conn.state is State.TIME_WAIT


def test_fin_wait_2_fin() -> None:
    conn = established()
    conn.close(T0)
    conn.segment_arrives(seg(IRS + 1, ISS + 2, ACK), T0)
    sent(conn), events(conn)
    conn.segment_arrives(seg(IRS + 1, ISS + 2, ACK | FIN), T0)
    [ack] = sent(conn)
    assert conn.state is State.TIME_WAIT and ack.ack == IRS + 2
    assert events(conn) == [Event.EOF, Event.LOST] and conn.timers.time_wait == T0 + 2 * TcpConfig().msl_ns


def test_fin_wait_2_timeout() -> None:
    conn = established()
    conn.close(T0)
    conn.segment_arrives(seg(IRS + 1, ISS + 2, ACK), T0)
    conn.on_timer(T0 + TcpConfig().fin_wait_2_ns)
    assert conn.state is State.CLOSED and conn.counters["tcp.fin_wait_2_timeout"] == 1


def test_time_wait_timeout() -> None:
    conn = established()
    conn.close(T0)
    conn.segment_arrives(seg(IRS + 1, ISS + 2, ACK | FIN), T0)
    conn.on_timer(T0 + 2 * TcpConfig().msl_ns - 1)
    assert conn.state is State.TIME_WAIT
    conn.on_timer(T0 + 2 * TcpConfig().msl_ns)
    assert conn.state is State.CLOSED  # type: ignore[comparison-overlap]


def test_time_wait_retransmitted_fin_is_acked_again() -> None:
    conn = established()
    conn.close(T0)
    conn.segment_arrives(seg(IRS + 1, ISS + 2, ACK | FIN), T0)
    sent(conn)
    conn.segment_arrives(seg(IRS + 1, ISS + 2, ACK | FIN), T0 + 5 * MS)
    [ack] = sent(conn)  # below RCV.NXT: unacceptable, answered with an ACK (RFC 9293 3.10.7.4)
    assert ack.ack == IRS + 2 and conn.state is State.TIME_WAIT


def test_time_wait_new_syn_reopens() -> None:
    conn = established()
    conn.close(T0)
    conn.segment_arrives(seg(IRS + 1, ISS + 2, ACK | FIN), T0)
    assert conn.segment_arrives(seg(IRS + 100_000, 0, SYN), T0) is True  # on to LISTEN
    assert conn.state is State.CLOSED


def test_abort_sends_rst() -> None:
    conn = established()
    conn.abort(ConnectionAbortedError("aborted"), T0)
    [rst] = sent(conn)
    assert rst.flags == RST and rst.seq == ISS + 1 and conn.state is State.CLOSED


def test_close_with_unread_data_resets() -> None:
    conn = established()
    conn.pause_reading()
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK, b"unread"), T0)
    conn.close(T0)
    assert sent(conn)[-1].flags == RST and conn.counters["tcp.reset_unread_data"] == 1


def test_paused_reading_holds_data_and_shrinks_the_window() -> None:
    conn = established(TcpConfig(rcv_buf=4000))
    conn.pause_reading()
    conn.segment_arrives(seg(IRS + 1, ISS + 1, ACK, b"p" * 1000), T0)
    conn.segment_arrives(seg(IRS + 1001, ISS + 1, ACK, b"q" * 1000), T0)
    [ack] = sent(conn)
    assert ack.window << conn.rcv_wscale <= 2000 and not conn.rcv.take()
    assert conn.resume_reading(T0) == b"p" * 1000 + b"q" * 1000
    [update] = sent(conn)  # the window reopened by more than an MSS: a window update
    assert update.window << conn.rcv_wscale == 4000


# -- the pieces -------------------------------------------------------------------------


def test_rtt_estimator_rfc6298() -> None:
    rtt = RttEstimator(10**9, 200 * MS, 60 * 10**9)
    rtt.sample(100 * MS)
    assert (rtt.srtt_ns, rtt.rttvar_ns) == (100 * MS, 50 * MS) and rtt.rto_ns == 300 * MS  # 2.2
    rtt.sample(20 * MS)
    assert rtt.srtt_ns == 90 * MS and rtt.rttvar_ns == (3 * 50 * MS + 80 * MS) // 4  # 2.3
    rtt.sample(1)
    rtt.back_off()
    assert rtt.rto_ns == 2 * max(rtt.srtt_ns + 4 * rtt.rttvar_ns, 200 * MS) or rtt.rto_ns == 60 * 10**9
    rtt.time(500, 0)
    rtt.discard()  # Karn: a retransmission makes the sample ambiguous
    assert not rtt.acked(600, 10 * MS)


def test_assembler_holds_and_releases_in_order() -> None:
    asm = Assembler(capacity=1000)
    assert asm.add(110, b"c" * 10, 100) and asm.add(130, b"e" * 10, 100)
    assert asm.sack_blocks(4) == ((130, 140), (110, 120))  # the latest first (RFC 2018 4)
    assert asm.add(110, b"c" * 5, 100) and asm.held == 20  # a duplicate of what is held
    assert asm.pop_ready(100) is None
    assert bytes(asm.pop_ready(110) or b"") == b"c" * 10
    assert not asm.add(200, b"x" * 2000, 120)  # beyond the capacity


def test_scoreboard_merges_and_finds_holes() -> None:
    board = Scoreboard()
    board.update(((1100, 1200), (1300, 1400), (1150, 1250), (900, 1000)), una=1000, snd_max=2000)
    assert board.ranges == [(1100, 1250), (1300, 1400)] and board.held() == 250
    assert board.next_hole(0, 1000, 50) == (0, 50) and board.next_hole(120, 1000, 500) == (250, 50)
    board.prune(1260)
    assert board.ranges == [(1300, 1400)]


def test_timer_set_expires_in_service_order() -> None:
    timers = TimerSet()
    timers.rto, timers.delayed_ack, timers.keepalive = 50, 40, 100
    assert timers.expire(60) == [Timer.RTO, Timer.DELAYED_ACK] and timers.pending() == [100]
    assert timers.get(Timer.KEEPALIVE) == 100


def test_sack_option_round_trip() -> None:
    raw = sack_option(((1, 2),))
    assert TcpOptions.parse(memoryview(raw)).sack_blocks == ((1, 2),)
