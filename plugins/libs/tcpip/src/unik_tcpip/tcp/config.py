"""A connection's tunables (:class:`TcpConfig`) and counters (:class:`TcpStats`)."""

from __future__ import annotations

from unik.record import Record

_MS = 10**6
_S = 10**9


class TcpConfig(Record):
    """Tunables; the defaults follow the RFCs named beside each.

    A :class:`unik.record.Record` (``repr`` and ``==`` as a dataclass's), not a dataclass:
    those compile generated code per class, milliseconds each as a VM boots under emulation.
    """

    __slots__ = (
        "challenge_ack_rate",
        "congestion_control",
        "delayed_ack_ns",
        "fin_wait_2_ns",
        "initial_rto_ns",
        "keepalive",
        "keepalive_idle_ns",
        "keepalive_interval_ns",
        "keepalive_probes",
        "max_burst",
        "max_connections",
        "max_retries",
        "max_rto_ns",
        "max_syn_retries",
        "min_rto_ns",
        "msl_ns",
        "nagle",
        "rack",
        "rcv_buf",
        "sack",
        "snd_buf",
        "syn_backlog",
        "syn_cookies",
        "timestamps",
        "tlp",
        "tso",
        "window_scaling",
    )
    #: Receive buffer: the largest window advertised (scaled per RFC 7323 2).
    rcv_buf: int
    #: Send buffer: ``pause_writing`` above this many unacknowledged/unsent bytes.
    snd_buf: int
    #: RFC 6298 2.1: initial RTO of 1 s; 2.5: a maximum of at least 60 s.
    initial_rto_ns: int
    #: RFC 6298 2.4 wants the RTO rounded up to 1 s; like Linux the minimum is 200 ms (the
    #: ``tcp_min_rto`` key): a lost tail that no probe repairs costs 0.2 s, not 1 s.
    min_rto_ns: int
    max_rto_ns: int
    #: RFC 9293 3.8.3: give up after R2 (at least 100 s of retransmissions) — counted here.
    max_retries: int
    max_syn_retries: int
    #: RFC 9293 3.8.6.3: delay an ACK by less than 0.5 s (RFC 5681 4.2 wants at most 500 ms).
    delayed_ack_ns: int
    #: RFC 9293 3.3.2: TIME-WAIT lasts 2 MSL.
    msl_ns: int
    #: How long FIN-WAIT-2 waits for the peer's FIN once the application closed completely.
    fin_wait_2_ns: int
    #: RFC 9293 3.8.6.2.1: Nagle's algorithm on by default.
    nagle: bool
    #: Half-open connections per listener (SYN-RECEIVED), the SYN backlog.
    syn_backlog: int
    #: RFC 4987 3.6: answer SYNs beyond the backlog with SYN cookies instead of dropping them.
    syn_cookies: bool
    #: Connections of the whole stack.
    max_connections: int
    #: RFC 5961 7: challenge ACKs per second (and burst).
    challenge_ack_rate: float
    window_scaling: bool
    timestamps: bool
    sack: bool
    #: Hand segments of up to 64 KiB to the NIC when the network device offers TSO.
    tso: bool
    #: RFC 8985 7: a tail loss probe 2 SRTT after the last ACK while data is outstanding,
    #: so that a lost tail (or its lost ACKs) is repaired without waiting for the RTO.
    tlp: bool
    #: RFC 8985 6: RACK's time-based loss detection (with SACK), beside three duplicate ACKs.
    rack: bool
    #: Segments (MSS-sized; a TSO super-segment counts as many) one call may send before
    #: it lets the event loop run, so received ACKs are read between bursts.
    max_burst: int
    #: RFC 9293 3.8.4 / RFC 1122 4.2.3.6: keep-alives are off unless asked for; the idle
    #: time MUST default to no less than two hours.
    keepalive: bool
    #: ``"newreno"`` (RFC 5681, RFC 6582) or ``"cubic"`` (RFC 9438); see :mod:`unik_tcpip.cc`.
    congestion_control: str
    keepalive_idle_ns: int
    keepalive_interval_ns: int
    keepalive_probes: int

    def __init__(
        self,
        rcv_buf: int = 1 << 20,
        snd_buf: int = 1 << 20,
        initial_rto_ns: int = 1 * _S,
        min_rto_ns: int = 200 * _MS,
        max_rto_ns: int = 60 * _S,
        max_retries: int = 12,
        max_syn_retries: int = 6,
        delayed_ack_ns: int = 40 * _MS,
        msl_ns: int = 30 * _S,
        fin_wait_2_ns: int = 60 * _S,
        nagle: bool = True,
        syn_backlog: int = 128,
        syn_cookies: bool = True,
        max_connections: int = 10_000,
        challenge_ack_rate: float = 100.0,
        window_scaling: bool = True,
        timestamps: bool = True,
        sack: bool = True,
        tso: bool = True,
        tlp: bool = True,
        rack: bool = True,
        max_burst: int = 64,
        keepalive: bool = False,
        congestion_control: str = "newreno",
        keepalive_idle_ns: int = 2 * 3600 * _S,
        keepalive_interval_ns: int = 75 * _S,
        keepalive_probes: int = 9,
    ) -> None:
        self.rcv_buf = rcv_buf
        self.snd_buf = snd_buf
        self.initial_rto_ns = initial_rto_ns
        self.min_rto_ns = min_rto_ns
        self.max_rto_ns = max_rto_ns
        self.max_retries = max_retries
        self.max_syn_retries = max_syn_retries
        self.delayed_ack_ns = delayed_ack_ns
        self.msl_ns = msl_ns
        self.fin_wait_2_ns = fin_wait_2_ns
        self.nagle = nagle
        self.syn_backlog = syn_backlog
        self.syn_cookies = syn_cookies
        self.max_connections = max_connections
        self.challenge_ack_rate = challenge_ack_rate
        self.window_scaling = window_scaling
        self.timestamps = timestamps
        self.sack = sack
        self.tso = tso
        self.tlp = tlp
        self.rack = rack
        self.max_burst = max_burst
        self.keepalive = keepalive
        self.congestion_control = congestion_control
        self.keepalive_idle_ns = keepalive_idle_ns
        self.keepalive_interval_ns = keepalive_interval_ns
        self.keepalive_probes = keepalive_probes


class TcpStats(Record):
    """Per-connection counters, readable from the application (``get_extra_info("tcp_stats")``)."""

    __slots__ = ("bytes_in", "bytes_out", "challenge_acks", "dup_acks", "fast_retransmits", "out_of_order",
                 "retransmits", "segments_in", "segments_out", "srtt", "timeouts", "tlp_probes")
    segments_in: int
    segments_out: int
    bytes_in: int
    bytes_out: int
    retransmits: int
    fast_retransmits: int
    timeouts: int
    dup_acks: int
    out_of_order: int
    challenge_acks: int
    #: Smoothed round-trip time in seconds (``None`` before the first sample).
    srtt: float | None
    #: Tail loss probes sent (RFC 8985 7.3).
    tlp_probes: int

    def __init__(self, segments_in: int = 0, segments_out: int = 0, bytes_in: int = 0, bytes_out: int = 0,
                 retransmits: int = 0, fast_retransmits: int = 0, timeouts: int = 0, dup_acks: int = 0,
                 out_of_order: int = 0, challenge_acks: int = 0, srtt: float | None = None,
                 tlp_probes: int = 0) -> None:
        self.segments_in = segments_in
        self.segments_out = segments_out
        self.bytes_in = bytes_in
        self.bytes_out = bytes_out
        self.retransmits = retransmits
        self.fast_retransmits = fast_retransmits
        self.timeouts = timeouts
        self.dup_acks = dup_acks
        self.out_of_order = out_of_order
        self.challenge_acks = challenge_acks
        self.srtt = srtt
        self.tlp_probes = tlp_probes

