"""Congestion control: how the window grows, and how far it falls on a loss.

The loss *recovery* mechanics (fast retransmit, NewReno partial ACKs, window inflation,
the retransmission timeout) live in :mod:`unik_tcpip.tcp.connection`; an algorithm here decides
the growth in congestion avoidance and the multiplicative decrease.  Both work in
bytes.  Selected with ``TcpConfig(congestion_control="newreno" | "cubic")``.
"""

from __future__ import annotations

from typing import Protocol


class CongestionControl(Protocol):
    """What :class:`unik_tcpip.tcp.Connection` asks of an algorithm."""

    name: str

    def on_ack(self, cwnd: int, ssthresh: int, acked: int, mss: int, now_ns: int, srtt_ns: int | None) -> int:
        """The new window after ``acked`` bytes were acknowledged outside recovery."""

    def on_loss(self, cwnd: int, flight: int, mss: int, now_ns: int) -> int:
        """The new ssthresh for a loss detected by duplicate ACKs or a timeout."""


class NewReno:
    """RFC 5681 3.1 growth, with RFC 6582's recovery in the connection."""

    name = "newreno"

    def on_ack(self, cwnd: int, ssthresh: int, acked: int, mss: int, now_ns: int, srtt_ns: int | None) -> int:
        """Slow start or congestion avoidance, counting bytes.

        Slow start is RFC 5681 equation 2 with RFC 3465 byte counting (L = 2 SMSS);
        congestion avoidance adds one SMSS per window of bytes acknowledged (RFC 3465 2.1).
        """
        if cwnd < ssthresh:
            return cwnd + min(acked, 2 * mss)
        return cwnd + max(1, mss * acked // cwnd)

    def on_loss(self, cwnd: int, flight: int, mss: int, now_ns: int) -> int:
        """RFC 5681 equation 4: ssthresh = max(FlightSize / 2, 2 * SMSS)."""
        return max(flight // 2, 2 * mss)


class Cubic:
    """CUBIC (RFC 9438): a cubic function of the time since the last loss."""

    name = "cubic"
    #: RFC 9438 4.1/5: C = 0.4 and beta_cubic = 0.7.
    C = 0.4
    BETA = 0.7
    #: RFC 9438 4.3: alpha_cubic for the Reno-friendly estimate.
    ALPHA = 3 * (1 - BETA) / (1 + BETA)

    def __init__(self) -> None:
        self.w_max = 0.0  # segments
        self.w_last_max = 0.0
        self.k = 0.0
        self.epoch_ns: int | None = None
        self.w_est = 0.0
        self.cwnd_at_epoch = 0.0

    def on_ack(self, cwnd: int, ssthresh: int, acked: int, mss: int, now_ns: int, srtt_ns: int | None) -> int:
        """RFC 9438 4.2-4.5 in congestion avoidance; slow start below ssthresh (L = 2 SMSS)."""
        if cwnd < ssthresh:
            return cwnd + min(acked, 2 * mss)
        segments = cwnd / mss
        if self.epoch_ns is None:
            # RFC 9438 4.2: a new congestion-avoidance epoch starts now.
            self.epoch_ns = now_ns
            if self.w_max < segments:
                self.w_max = segments
                self.k = 0.0
            else:
                self.k = ((self.w_max - segments) / self.C) ** (1 / 3)
            self.w_est = segments
        t = (now_ns - self.epoch_ns) / 1e9
        rtt = (srtt_ns or 100_000_000) / 1e9
        # RFC 9438 4.3: the Reno-friendly estimate grows by alpha per window acknowledged.
        self.w_est += self.ALPHA * (acked / mss) / segments
        # RFC 9438 4.2, equation 1, evaluated one RTT ahead (4.4).
        target = self.C * (t + rtt - self.k) ** 3 + self.w_max
        if target < self.w_est:
            new = self.w_est  # RFC 9438 4.3: the Reno-friendly region
        else:
            # RFC 9438 4.4/4.5: grow by (target - cwnd) / cwnd per acknowledged segment,
            # the target bounded to 1.5 * cwnd.
            target = min(max(target, segments), 1.5 * segments)
            new = segments + (target - segments) / segments * (acked / mss)
        return max(int(new * mss), cwnd)

    def on_loss(self, cwnd: int, flight: int, mss: int, now_ns: int) -> int:
        """RFC 9438 4.6 (multiplicative decrease) and 4.7 (fast convergence)."""
        segments = cwnd / mss
        if segments < self.w_last_max:
            self.w_last_max = segments
            self.w_max = segments * (1 + self.BETA) / 2
        else:
            self.w_last_max = segments
            self.w_max = segments
        self.epoch_ns = None
        return max(int(cwnd * self.BETA), 2 * mss)


def make(name: str) -> CongestionControl:
    """The algorithm called ``name``."""
    if name == "newreno":
        return NewReno()
    if name == "cubic":
        return Cubic()
    raise ValueError(f"unknown congestion control {name!r}: use 'newreno' or 'cubic'")
