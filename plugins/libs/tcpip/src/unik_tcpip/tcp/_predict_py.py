"""Header prediction for established connections in pure Python: the twin of ``_predict.c``.

Two functions, each the common case of an established connection taken in one pass:
:func:`established` on receive, :func:`output` on transmit.

:func:`established` handles the common case of a connection in ESTABLISHED (or in
FIN-WAIT-1 or CLOSE-WAIT before our FIN left: the ACKs of a transfer the application
already closed, or sent after the peer's FIN) — the next segment in order, carrying
data and/or acknowledging new data, with the timestamps negotiated — in one pass, with
exactly the result that :meth:`unik_tcpip.tcp.connection.Connection.segment_arrives`
gives it (the tests run both on the same segments and compare every field).  Anything
else (``False``, nothing changed) goes to ``segment_arrives``: a SYN, FIN or RST, data
out of order or beyond the window, a duplicate ACK, a PAWS suspect, recovery, SACK
state, a zero window, a paused reader, data after the peer's FIN or for a closed
application, anything once our FIN left.  This is Van Jacobson's header prediction (as
in BSD's ``tcp_input`` and Linux's ``tcp_rcv_established``) for unik's state machine.

``fields`` is any record with the attributes of
:class:`unik_tcpip._fastpath_py.Tcp4Fields` that TCP reads (``seq``, ``ack``, ``flags``,
``window``, ``tcp_start``, ``tcp_end``, ``header_len``, ``tsval``, ``tsecr``): nothing
here depends on the address family.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .state import State

if TYPE_CHECKING:
    from .connection import Connection

_MASK = 0xFFFFFFFF
_HALF = 0x7FFFFFFF
_MS = 10**6
_ESTABLISHED = State.ESTABLISHED
_CLOSE_WAIT = State.CLOSE_WAIT
#: Where the prediction applies before our FIN is sent: data both ways, the sending side
#: closed by the application (FIN queued behind the data), or the peer's side closed (ACKs only).
_SENDING = (State.ESTABLISHED, State.FIN_WAIT_1, State.CLOSE_WAIT)
#: FIN, SYN, RST, ACK and URG: of these only ACK may be set (PSH, ECE and CWR are ignored).
_CONTROL = 0x37
_ACK = 0x10
_PSH = 0x08
_TSO_MAX = 65535 - 20 - 60  # the largest TCP payload an IPv4 super-frame can carry


def established(tcb: Connection, frame: Any, fields: Any, now: int) -> bool:
    """Process ``fields`` (a segment in ``frame``) if it is the predicted case; else ``False``."""
    state = tcb.state
    if (state is not _ESTABLISHED and state not in _SENDING) or fields.flags & _CONTROL != _ACK \
            or tcb.fin_seq is not None:
        return False
    seq, ack, tsval = fields.seq, fields.ack, fields.tsval
    ts_ok = tcb.ts_ok
    if seq != tcb.rcv_nxt or (tsval >= 0) is not ts_ok:
        return False
    una, snd_max = tcb.snd_una, tcb.snd_max
    ahead = (ack - una) & _MASK
    if ahead > ((snd_max - una) & _MASK) or tcb.snd.seq != una:
        return False  # an ACK outside [SND.UNA, SND.MAX]
    start = fields.tcp_start + fields.header_len
    n = fields.tcp_end - start
    if n:
        room = (tcb.rcv_adv - seq) & _MASK
        if n > (0 if room > _HALF else room) or (ts_ok and ((tsval - tcb.ts_recent) & _MASK) > _HALF) \
                or state is _CLOSE_WAIT or tcb.app_closed:
            return False  # beyond the window, PAWS (RFC 7323 5.3), or data nobody reads
    elif not ahead and una != snd_max:
        return False  # a duplicate ACK (RFC 5681 2)
    window = fields.window << tcb.snd_wscale
    if not window or not tcb.snd_wnd or tcb.snd_nxt != snd_max or tcb.in_recovery or tcb.dupacks \
            or tcb.tlp_end_seq is not None or tcb.dsack is not None or tcb.scoreboard.ranges \
            or tcb.ooo.segments or tcb.reading_paused or tcb.rcv.held:
        return False
    # Predicted: RFC 9293 3.10.7.4's steps, as segment_arrives takes them for this segment.
    tcb.now = now
    tcb.stats.segments_in += 1
    tcb.last_rx_ns = now
    tcb.keepalive_sent = 0
    if ahead:
        # Fifth, the ACK field: new data acknowledged.
        snd = tcb.snd
        del snd.data[:ahead]
        snd.seq = ack
        tcb.snd_una = ack
        tsecr = fields.tsecr
        rtt = tcb.rtt
        if ts_ok and tsecr:
            # RFC 7323 4.1: the sample from the echoed timestamp.
            tcb._rtt_sample(((((now // _MS + tcb.ts_offset) & _MASK) - tsecr) & _MASK) * _MS)
        elif rtt.acked(ack, now):
            tcb.stats.srtt = (rtt.srtt_ns or 0) / 1e9
        tcb.retries = 0
        tcb.cwnd = tcb.cc.on_ack(tcb.cwnd, tcb.ssthresh, ahead, tcb.eff_mss, now, rtt.srtt_ns)
        tcb.limited_transmit = 0
        if ack == snd_max:
            tcb.timers.rto = tcb.timers.probe = 0
        else:
            tcb._start_rto()
            tcb._arm_probe()
    # The send window, when the segment is newer (RFC 9293 3.10.7.4).
    wl1, wl2 = tcb.snd_wl1, tcb.snd_wl2
    if ((wl1 - seq) & _MASK) > _HALF or (wl1 == seq and (wl2 == ack or ((wl2 - ack) & _MASK) > _HALF)):
        tcb.snd_wnd = window
        tcb.snd_wl1, tcb.snd_wl2 = seq, ack
        if window > tcb.max_snd_wnd:
            tcb.max_snd_wnd = window
    # RFC 7323 4.3: TS.Recent from a segment covering Last.ACK.sent.
    if ts_ok:
        last = tcb.last_ack_sent
        if (seq == last or ((seq - last) & _MASK) > _HALF) and ((tsval - tcb.ts_recent) & _MASK) <= _HALF:
            tcb.ts_recent = tsval
    if n:
        # Seventh, the segment text: in order, for a reading application.
        tcb.rcv_nxt = (seq + n) & _MASK
        tcb.stats.bytes_in += n
        tcb.rcv.ready.append(bytes(frame[start:start + n]))
        tcb._ack_data()
    snd = tcb.snd
    if tcb.fin_queued or ((tcb.snd_nxt - snd.seq) & _MASK) != len(snd.data):
        tcb.output()
    return True


def output(tcb: Connection) -> bool:
    """:meth:`Connection.output`'s common case; ``True`` when it is done (sent, or nothing to send).

    The case: ESTABLISHED or CLOSE-WAIT, no FIN queued, nothing to retransmit (SND.NXT is
    SND.MAX), no SACK blocks to report, and the segments' headers are the link's (a whole
    frame) or the path's usual headroom.  It sends new data as the windows, the burst
    budget, Nagle (RFC 896) and sender SWS avoidance (RFC 9293 3.8.6.2.1) allow, exactly
    as ``output`` would.  ``False`` hands the rest to ``output``'s own loop, which goes on
    from the state left here: another state, a FIN, a retransmission, SACK blocks, or a
    zero window to probe (the persist timer).
    """
    state = tcb.state
    if (state is not _ESTABLISHED and state is not _CLOSE_WAIT) or tcb.fin_queued:
        return False
    snd = tcb.snd
    data = snd.data
    buffered = len(data)
    snd_nxt = tcb.snd_nxt
    off = (snd_nxt - snd.seq) & _MASK
    if off == buffered:
        return True  # everything buffered has been sent (the common case after an ACK)
    if off > buffered or snd_nxt != tcb.snd_max or (tcb.sack_ok and (tcb.ooo.segments or tcb.dsack is not None)):
        return False
    path = tcb.path
    if tcb.link is None and path.headroom != 14 + path.ip_header_len:
        return False
    ts_ok = tcb.ts_ok
    mss = tcb.snd_mss - (12 if ts_ok else 0)  # eff_mss
    tso = path.tso
    limit = max(_TSO_MAX // mss * mss, mss) if tso else mss
    budget = max(tcb.cfg.max_burst * mss, 8 * limit if tso else limit)
    now = tcb.now
    una = tcb.snd_una
    if una == snd_nxt and tcb.last_send_ns and now - tcb.last_send_ns > tcb.rtt.rto_ns:
        # RFC 5681 4.1: restart from at most the initial window after an idle RTO.
        initial = min(4 * mss, max(2 * mss, 4380))
        if tcb.cwnd > initial:
            tcb.cwnd = initial
    timers = tcb.timers
    while True:
        avail = buffered - off
        in_flight = (snd_nxt - una) & _MASK
        wnd = tcb.cwnd + tcb.limited_transmit
        snd_wnd = tcb.snd_wnd
        if snd_wnd < wnd:
            wnd = snd_wnd
        n = wnd - in_flight
        if avail < n:
            n = avail
        if limit < n:
            n = limit
        if n <= 0:
            # Nothing the windows allow; a zero window with nothing in flight is probed (output).
            return not (snd_wnd == 0 and in_flight == 0)
        if tcb.burst_used >= budget:
            tcb.output_pending = True  # a bounded burst: the driver resumes on its next turn
            return True
        if n < mss:
            if n == avail:
                if in_flight > 0 and not tcb.nodelay:
                    return True  # Nagle: hold a small segment while data is unacknowledged
            elif n < tcb.max_snd_wnd // 2 and in_flight > 0:
                return True  # sender SWS avoidance
        seq = snd_nxt
        if n > 4096:
            view = memoryview(data)[off:off + n]
            tcb._send(_ACK | _PSH if n == avail else _ACK, seq, view)
            view.release()
        else:
            tcb._send(_ACK | _PSH if n == avail else _ACK, seq, data[off:off + n])
        tcb.burst_used += n
        tcb.last_send_ns = now
        tcb.stats.bytes_out += n
        snd_nxt = (seq + n) & _MASK
        tcb.snd_nxt = tcb.snd_max = snd_nxt
        if not ts_ok:
            tcb.rtt.time(seq, now)
        if not timers.rto:
            tcb._start_rto()
        if not timers.probe:
            tcb._arm_probe()
        timers.persist = 0
        off += n
        if off == buffered:
            return True
