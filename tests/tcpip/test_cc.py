"""Congestion control algorithms in isolation."""

from __future__ import annotations

import itertools

import pytest
from tcpip_support import Wire, make_stack, run
from unik_tcpip.cc import Cubic, NewReno, make
from unik_tcpip.tcp import TcpConfig

MSS = 1000
MS = 10**6


def test_newreno_slow_start_and_avoidance() -> None:
    cc = NewReno()
    # Slow start: byte counting, at most L = 2 SMSS per ACK (RFC 3465 2.2).
    assert cc.on_ack(10 * MSS, 20 * MSS, 3 * MSS, MSS, 0, None) == 12 * MSS
    assert cc.on_ack(10 * MSS, 20 * MSS, MSS // 2, MSS, 0, None) == 10 * MSS + MSS // 2
    # Congestion avoidance: one SMSS per window acknowledged, however the ACKs come (RFC 3465 2.1).
    assert cc.on_ack(20 * MSS, 20 * MSS, MSS, MSS, 0, None) == 20 * MSS + MSS // 20
    assert cc.on_ack(20 * MSS, 20 * MSS, 10 * MSS, MSS, 0, None) == 20 * MSS + MSS // 2
    assert cc.on_loss(40 * MSS, 30 * MSS, MSS, 0) == 15 * MSS
    assert cc.on_loss(3 * MSS, 2 * MSS, MSS, 0) == 2 * MSS


def grow(cc: Cubic, cwnd: int, seconds: float, rtt_ns: int = 10 * MS) -> list[int]:
    """cwnd after each RTT of ACKs, a window's worth per RTT."""
    out = []
    now = 0
    while now < seconds * 1e9:
        for _ in range(max(cwnd // MSS, 1)):
            cwnd = cc.on_ack(cwnd, 0, MSS, MSS, now, rtt_ns)
        now += rtt_ns
        out.append(cwnd)
    return out


def test_cubic_decrease_and_growth_shape() -> None:
    cc = Cubic()
    ssthresh = cc.on_loss(100 * MSS, 100 * MSS, MSS, 0)
    assert ssthresh == 70 * MSS  # RFC 9438 4.6: beta_cubic = 0.7
    # A long RTT (200 ms), where the cubic function rather than the Reno-friendly
    # estimate (RFC 9438 4.3) drives the window.
    rtt = 0.2
    curve = grow(cc, ssthresh, seconds=9, rtt_ns=int(rtt * 1e9))
    k = ((100 - 70) / Cubic.C) ** (1 / 3)  # about 4.2 s back to W_max
    at = int(k / rtt)
    assert curve[at - 5] < 100 * MSS and abs(curve[at] - 100 * MSS) < 5 * MSS and curve[-1] > 110 * MSS
    # Concave, then convex: the growth per RTT slows approaching W_max, then speeds up.
    early = curve[5] - curve[0]
    plateau = curve[at + 2] - curve[at - 3]
    late = curve[-1] - curve[-6]
    assert early > plateau < late
    assert all(b >= a for a, b in itertools.pairwise(curve))


def test_cubic_fast_convergence() -> None:
    cc = Cubic()
    cc.on_loss(100 * MSS, 100 * MSS, MSS, 0)
    assert cc.w_max == 100
    cc.on_loss(80 * MSS, 80 * MSS, MSS, 0)  # a loss below the last maximum: release bandwidth
    assert cc.w_max == pytest.approx(80 * (1 + Cubic.BETA) / 2)


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown congestion control"):
        make("vegas")
    with pytest.raises(ValueError, match="bbr"):
        run(make_stack(Wire(), 1, "10.0.0.1/24", tcp_config=TcpConfig(congestion_control="bbr")))
