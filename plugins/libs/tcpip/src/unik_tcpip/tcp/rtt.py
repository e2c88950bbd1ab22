"""Round-trip time estimation and the retransmission timeout (RFC 6298).

Samples come from timestamps (RFC 7323 4.1) or, without them, from one timed segment
at a time (RFC 6298 3, Karn's algorithm: never a retransmitted one).
"""

from __future__ import annotations

from .seq import seq_lt

_MS = 10**6


class RttEstimator:
    """SRTT, RTTVAR and the RTO, in nanoseconds, with the bounds of the configuration."""

    __slots__ = ("max_rto_ns", "min_rto_ns", "min_rtt_ns", "rto_ns", "rttvar_ns", "srtt_ns", "timed_at", "timed_seq")

    def __init__(self, initial_rto_ns: int, min_rto_ns: int, max_rto_ns: int) -> None:
        self.srtt_ns: int | None = None
        self.rttvar_ns = 0
        #: The smallest sample (0: none yet): RACK's min_RTT (RFC 8985 5.2).
        self.min_rtt_ns = 0
        #: RFC 6298 2.1: the RTO before any sample.
        self.rto_ns = initial_rto_ns
        self.min_rto_ns = min_rto_ns
        self.max_rto_ns = max_rto_ns
        #: The segment being timed without timestamps (``None``: none) and when it left.
        self.timed_seq: int | None = None
        self.timed_at = 0

    def sample(self, rtt_ns: int) -> None:
        """Fold in one measurement (RFC 6298 2.2, 2.3) and recompute the RTO (2.4, 2.5)."""
        rtt_ns = max(rtt_ns, 1)
        if not self.min_rtt_ns or rtt_ns < self.min_rtt_ns:
            self.min_rtt_ns = rtt_ns
        if self.srtt_ns is None:
            self.srtt_ns = rtt_ns
            self.rttvar_ns = rtt_ns // 2
        else:
            self.rttvar_ns = (3 * self.rttvar_ns + abs(self.srtt_ns - rtt_ns)) // 4
            self.srtt_ns = (7 * self.srtt_ns + rtt_ns) // 8
        # The clock granularity G is 1 ms here.
        rto = self.srtt_ns + max(_MS, 4 * self.rttvar_ns)
        self.rto_ns = min(max(rto, self.min_rto_ns), self.max_rto_ns)

    def back_off(self) -> None:
        """RFC 6298 5.5: double the RTO (up to the maximum) after a timeout."""
        self.rto_ns = min(self.rto_ns * 2, self.max_rto_ns)
        self.timed_seq = None

    def time(self, seq: int, now: int) -> None:
        """Start timing the segment at ``seq`` unless one is being timed already."""
        if self.timed_seq is None:
            self.timed_seq, self.timed_at = seq, now

    def discard(self) -> None:
        """Karn's algorithm: a retransmission makes the timed segment's sample ambiguous."""
        self.timed_seq = None

    def acked(self, ack: int, now: int) -> bool:
        """A cumulative ACK: take the timed segment's sample if ``ack`` covers it (``True``)."""
        if self.timed_seq is not None and seq_lt(self.timed_seq, ack):
            self.sample(now - self.timed_at)
            self.timed_seq = None
            return True
        return False
