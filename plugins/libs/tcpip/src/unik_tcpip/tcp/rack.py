"""RACK (RFC 8985 6): loss detection from when segments were sent, not from how many ACKs came.

A segment is lost once a segment sent *after* it was delivered (cumulatively acknowledged
or SACKed) and a round trip plus a reordering window have passed since it was sent.
:class:`Rack` keeps the transmission time of every outstanding segment (6.1), the most
recently sent delivered segment's time, end and round trip (RACK.xmit_ts, RACK.end_seq,
RACK.rtt; 6.2 step 2), whether reordering was seen (step 3), the reordering window and its
D-SACK adaptation (step 4), and answers which segments are lost now and when to look again
(step 5, the reordering timer of 6.3).  It is fed sends and ACKs by
:class:`unik_tcpip.tcp.connection.Connection` with the time; nothing here sends or sleeps.

Records are ``[start, end, sent_ns, flags]`` lists in sequence order.  A plain cumulative
ACK (no SACK blocks, nothing SACKed, no recovery) cannot reveal a loss: the records it
covers are dropped lazily, when the next segment is recorded or an ACK with SACK
information is processed, so header prediction never visits this module.
"""

from __future__ import annotations

from collections import deque

from .seq import MASK, seq_le, seq_lt

#: Record flags: sent again (6.1 "retransmitted"), SACKed, deemed lost.
RETRANSMITTED, SACKED, LOST = 1, 2, 4
#: 6.2 step 4: a D-SACK widens the window for the next 16 recoveries.
_PERSIST = 16
_MS = 10**6


def _sent_after(t1: int, seq1: int, t2: int, seq2: int) -> bool:
    """RFC 8985 6.2: whether (t1, seq1) was sent after (t2, seq2); the later end breaks a tie."""
    return t1 > t2 or (t1 == t2 and seq_lt(seq2, seq1))


class Rack:
    """RACK's variables (RFC 8985 5.2) and the per-segment transmission records (6.1)."""

    __slots__ = ("dsack_round", "end_seq", "fack", "reo_wnd_mult", "reo_wnd_persist", "reordering_seen", "rtt_ns",
                 "sent", "xmit_ns")

    def __init__(self) -> None:
        #: Outstanding segments, ``[start, end, sent_ns, flags]``, in sequence order.
        self.sent: deque[list[int]] = deque()
        #: RACK.xmit_ts and RACK.end_seq: the most recently sent segment known delivered (0: none yet).
        self.xmit_ns = 0
        self.end_seq = 0
        #: RACK.rtt: that segment's round trip (RACK.min_RTT is the RTT estimator's smallest sample).
        self.rtt_ns = 0
        #: RACK.fack: the highest end delivered (``None``: none yet).
        self.fack: int | None = None
        self.reordering_seen = False
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = 0
        #: SND.MAX when the window last widened for a D-SACK: once per round trip (6.2 step 4).
        self.dsack_round: int | None = None

    def __len__(self) -> int:
        return len(self.sent)

    # -- sending (6.1) ----------------------------------------------------------------

    def sent_segment(self, start: int, end: int, now: int, una: int) -> None:
        """New data (or the FIN) ``[start, end)`` left at ``now``; records below ``una`` are delivered."""
        sent = self.sent
        if sent and not seq_lt(una, sent[0][1]):
            self.acknowledged(una)
        sent.append([start, end, now, 0])

    def resent(self, start: int, end: int, now: int) -> None:
        """A retransmission of ``[start, end)`` at ``now``: the records it covers were sent again."""
        self._split(start)
        self._split(end)
        for rec in self.sent:
            if seq_le(end, rec[0]):
                break
            if seq_le(start, rec[0]):
                rec[2] = now
                rec[3] = (rec[3] | RETRANSMITTED) & ~LOST

    def timed_out(self) -> None:
        """The retransmission timer fired: nothing counts as lost until it is sent again."""
        for rec in self.sent:
            rec[3] &= ~LOST

    def _split(self, seq: int) -> None:
        """Cut the record holding ``seq`` strictly inside it in two (a partial retransmission)."""
        for i, rec in enumerate(self.sent):
            if seq_le(seq, rec[0]):
                return
            if seq_lt(seq, rec[1]):
                self.sent.insert(i + 1, [seq, rec[1], rec[2], rec[3]])
                rec[1] = seq
                return

    # -- acknowledgments (6.2 steps 1-4) ----------------------------------------------------

    def acknowledged(self, una: int) -> None:
        """Forget the records below ``una`` (cumulative ACKs taken lazily): delivered, when unknown."""
        sent = self.sent
        while sent and not seq_lt(una, sent[0][1]):
            rec = sent.popleft()
            if not rec[3] & SACKED:  # a SACKed record was taken into account when it was SACKed
                self._advance(rec, 0)

    def _advance(self, rec: list[int], rtt: int) -> None:
        """6.2 steps 2-3 for one delivered record (``rtt`` 0: its delivery time is unknown)."""
        if _sent_after(rec[2], rec[1], self.xmit_ns, self.end_seq):
            self.xmit_ns, self.end_seq = rec[2], rec[1]
            if rtt:
                self.rtt_ns = rtt
        fack = self.fack
        if fack is None or seq_lt(fack, rec[1]):
            self.fack = rec[1]
        elif not rec[3] & RETRANSMITTED and seq_lt(rec[1], fack):
            self.reordering_seen = True  # step 3: delivered below what was delivered before it

    def delivered(self, ack: int, sacked: list[tuple[int, int]], now: int, min_rtt_ns: int = 0,
                  echo: int | None = None, ts_offset: int = 0) -> None:
        """An ACK up to ``ack`` with the scoreboard's SACKed ranges ``sacked`` arrived at ``now``.

        ``echo``: the ACK's TSecr, a value of the connection's timestamp clock (``now`` in ms
        plus ``ts_offset``, modulo 2**32; ``None``: no timestamps).  6.2 step 2 ignores a
        retransmitted segment the ACK may be answering for its original: the echo predates
        the retransmission, or the round trip would be shorter than ``min_rtt_ns``, the
        smallest seen (0: none yet).
        """
        newly: list[list[int]] = []
        sent = self.sent
        while sent and not seq_lt(ack, sent[0][1]):
            rec = sent.popleft()
            if not rec[3] & SACKED:
                newly.append(rec)
        if sacked:
            i, count = 0, len(sacked)
            for rec in sent:
                while i < count and seq_le(sacked[i][1], rec[0]):
                    i += 1
                if i == count:
                    break
                left, right = sacked[i]
                if not rec[3] & SACKED and seq_le(left, rec[0]) and seq_le(rec[1], right):
                    rec[3] |= SACKED
                    newly.append(rec)
        for rec in newly:
            rtt = now - rec[2]
            if rec[3] & RETRANSMITTED and ((echo is not None and seq_lt(echo, (rec[2] // _MS + ts_offset) & MASK))
                                           or rtt < min_rtt_ns):
                continue  # possibly the original's delivery: no timing from it
            self._advance(rec, max(rtt, 1))

    def dsack(self, una: int, snd_max: int) -> None:
        """A D-SACK arrived: reordering was mistaken for loss; widen the window (6.2 step 4)."""
        self.reordering_seen = True
        if self.dsack_round is None or seq_lt(self.dsack_round, una):
            self.reo_wnd_mult += 1
            self.dsack_round = snd_max
        self.reo_wnd_persist = _PERSIST

    def recovered(self) -> None:
        """A recovery ended: after 16 without a D-SACK the window is back to one step (6.2 step 4)."""
        if self.reo_wnd_persist:
            self.reo_wnd_persist -= 1
            if not self.reo_wnd_persist:
                self.reo_wnd_mult = 1

    def reo_wnd(self, min_rtt_ns: int, srtt_ns: int, in_recovery: bool, sacked_bytes: int, mss: int) -> int:
        """RACK.reo_wnd (6.2 step 4): a quarter of the smallest round trip per step, at most SRTT.

        None before reordering was seen once in recovery or past three segments SACKed (the
        duplicate threshold's evidence).
        """
        if not self.reordering_seen and (in_recovery or sacked_bytes >= 3 * mss):
            return 0
        return min(self.reo_wnd_mult * min_rtt_ns // 4, srtt_ns)

    # -- loss detection (6.2 step 5, 6.3) ---------------------------------------------------

    def detect_loss(self, now: int, reo_wnd: int) -> tuple[list[list[int]], int]:
        """The records lost now (marked), and in how many ns to look again (0: no need).

        A record sent before RACK.xmit_ts is lost once RACK.rtt + ``reo_wnd`` passed since
        it was sent; one that has not waited so long yet sets the reordering timer.
        """
        lost: list[list[int]] = []
        timeout = 0
        xmit_ns, end_seq, wait = self.xmit_ns, self.end_seq, self.rtt_ns + reo_wnd
        if not xmit_ns:
            return lost, 0
        for rec in self.sent:
            flags = rec[3]
            if flags & (SACKED | LOST):
                continue
            if _sent_after(xmit_ns, end_seq, rec[2], rec[1]):
                remaining = rec[2] + wait - now
                if remaining <= 0:
                    rec[3] = flags | LOST
                    lost.append(rec)
                elif remaining > timeout:
                    timeout = remaining
            elif not flags & RETRANSMITTED:
                # Sent in sequence order from here on, each after RACK's segment (a resent
                # one later still): none of the rest can be lost yet.
                break
        return lost, timeout


__all__ = ["LOST", "RETRANSMITTED", "SACKED", "Rack"]
