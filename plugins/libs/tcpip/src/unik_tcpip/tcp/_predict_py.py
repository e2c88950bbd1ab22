"""Header prediction for established connections in pure Python: the twin of ``_predict.c``.

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
