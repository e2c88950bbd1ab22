"""TCP (RFC 9293) with RFC 6298 timers, NewReno, RFC 7323 options, SACK on receive.

A connection is an :class:`asyncio.Transport`: any :class:`asyncio.Protocol` runs on
it, and :meth:`TcpLayer.connect` / :meth:`TcpLayer.start_server` wrap it in
:class:`asyncio.StreamReader` / :class:`asyncio.StreamWriter` exactly as
:func:`asyncio.open_connection` and :func:`asyncio.start_server` do.

Segment processing follows RFC 9293 3.10.7 ("SEGMENT ARRIVES") step by step; each
rule carries a comment naming its section.  Everything runs synchronously in the
interface's receive loop or in a timer callback; nothing here awaits.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

from unik.devices import Flow, FlowHandler, Random, TxOffload
from unik.record import Record

from . import cc, fastpath
from .iface import Interface, TokenBucket, ip_bytes, ip_text
from .timers import Timers
from .wire import icmp as wire_icmp
from .wire.icmp import IcmpPacket
from .wire.ipv4 import Ipv4Packet, Protocol
from .wire.tcp import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment, sack_option

try:  # hashlib itself loads six hash modules as it is imported; only BLAKE2s is used here
    from _blake2 import blake2s
except ImportError:  # pragma: no cover - an interpreter without the built-in module
    from hashlib import blake2s

log = logging.getLogger(__name__)

MASK = 0xFFFFFFFF
EPHEMERAL = range(49152, 65536)
_MS = 10**6
_S = 10**9
_TS_LEN = 12  # NOP, NOP, Timestamps: the option bytes on every segment once negotiated
_TSO_MAX = 65535 - 20 - 60  # the largest TCP payload an IPv4 super-frame can carry
GSO_TCPV4 = 1  # virtio-net header gso_type over IPv4 (the interface says which: ``gso_tcp``)


def seq_lt(a: int, b: int) -> bool:
    """``a < b`` in sequence space (RFC 9293 3.4: arithmetic modulo 2**32)."""
    return ((a - b) & MASK) > 0x7FFFFFFF


def seq_le(a: int, b: int) -> bool:
    """``a <= b`` in sequence space."""
    return a == b or seq_lt(a, b)


def seq_diff(a: int, b: int) -> int:
    """``a - b`` in sequence space, as a signed integer."""
    d = (a - b) & MASK
    return d - (1 << 32) if d > 0x7FFFFFFF else d


class State(enum.Enum):
    """The connection states of RFC 9293 3.3.2."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    # Members are singletons compared by identity: hash them by identity too (C-level),
    # not by name as Enum does in Python; ``state in SYNCHRONIZED`` runs on every segment.
    __hash__ = object.__hash__


#: States in which the connection is synchronized (RFC 9293 3.5).
SYNCHRONIZED = frozenset({
    State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT, State.CLOSING,
    State.LAST_ACK, State.TIME_WAIT,
})
#: States in which received data is accepted (RFC 9293 3.10.7.4, seventh step).
_RECEIVING = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2})


class TcpConfig(Record):
    """Tunables; the defaults follow the RFCs named beside each.

    A :class:`unik.record.Record` (``repr`` and ``==`` as a dataclass's), not a dataclass:
    those compile generated code per class, milliseconds each as a VM boots under emulation.
    """

    __slots__ = (
        "challenge_ack_rate", "congestion_control", "delayed_ack_ns", "fin_wait_2_ns", "initial_rto_ns",
        "keepalive", "keepalive_idle_ns", "keepalive_interval_ns", "keepalive_probes", "max_connections",
        "max_retries", "max_rto_ns", "max_syn_retries", "min_rto_ns", "msl_ns", "nagle", "rcv_buf", "sack",
        "snd_buf", "syn_backlog", "syn_cookies", "timestamps", "tso", "window_scaling",
    )
    #: Receive buffer: the largest window advertised (scaled per RFC 7323 2).
    rcv_buf: int
    #: Send buffer: ``pause_writing`` above this many unacknowledged/unsent bytes.
    snd_buf: int
    #: RFC 6298 2.1: initial RTO of 1 s; 2.4: minimum 1 s; 2.5: a maximum of at least 60 s.
    initial_rto_ns: int
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
        min_rto_ns: int = 1 * _S,
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
        self.keepalive = keepalive
        self.congestion_control = congestion_control
        self.keepalive_idle_ns = keepalive_idle_ns
        self.keepalive_interval_ns = keepalive_interval_ns
        self.keepalive_probes = keepalive_probes


class TcpStats(Record):
    """Per-connection counters, readable from the application (``get_extra_info("tcp_stats")``)."""

    __slots__ = ("bytes_in", "bytes_out", "challenge_acks", "dup_acks", "fast_retransmits", "out_of_order",
                 "retransmits", "segments_in", "segments_out", "srtt", "timeouts")
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

    def __init__(self, segments_in: int = 0, segments_out: int = 0, bytes_in: int = 0, bytes_out: int = 0,
                 retransmits: int = 0, fast_retransmits: int = 0, timeouts: int = 0, dup_acks: int = 0,
                 out_of_order: int = 0, challenge_acks: int = 0, srtt: float | None = None) -> None:
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


_Key = tuple[bytes, int, bytes, int]


class TcpConnection(asyncio.Transport):
    """One TCP connection: a transmission control block (RFC 9293 3.3.1) and a transport."""

    def __init__(self, layer: TcpLayer, local: tuple[bytes, int], remote: tuple[bytes, int],
                 protocol_factory: Callable[[], asyncio.BaseProtocol] | None,
                 listener: TcpListener | None = None) -> None:
        super().__init__({
            "peername": (ip_text(remote[0]), remote[1]), "sockname": (ip_text(local[0]), local[1]),
            "socket": None,
        })
        self.layer = layer
        self.cfg = layer.config
        self.timers = layer.timers
        self.local, self.remote = local, remote
        self.key: _Key = (local[0], local[1], remote[0], remote[1])
        self.state = State.CLOSED
        self.stats = TcpStats()
        self.listener = listener
        self._protocol_factory = protocol_factory
        self.protocol: asyncio.BaseProtocol | None = None
        self.established: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.error: BaseException | None = None
        # Send sequence variables (RFC 9293 3.3.1).
        self.iss = 0
        self.snd_una = 0
        self.snd_nxt = 0
        self.snd_max = 0  # the highest sequence number sent (snd_nxt moves back on RTO)
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_snd_wnd = 0
        # Receive sequence variables.
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0  # the right edge of the window last advertised
        # Options negotiated in the handshake.
        self.snd_mss = 536  # RFC 9293 3.7.1: the default send MSS without the option
        self.snd_wscale = 0
        self.rcv_wscale = 0
        self.ts_ok = False
        self.ts_recent = 0
        # RFC 7323 7.1: a random offset per connection for the timestamp clock.
        self.ts_offset = int.from_bytes(layer.random.generate(4), "big")
        self.last_ack_sent = 0
        self.sack_ok = False
        self.peer_offered: TcpOptions | None = None
        # Send buffer: bytes from sequence number ``buf_seq`` on, acknowledged or not.
        self.sndbuf = bytearray()
        self.buf_seq = 0
        self.fin_queued = False  # the application closed its sending side
        self.fin_seq: int | None = None  # the sequence number of our FIN, once sent
        self.app_closed = False  # close() (not just write_eof) was called
        # Receive side: in-order data held while reading is paused, and out-of-order data.
        self.rcvq = bytearray()
        self.ooo: list[tuple[int, bytes]] = []
        self.ooo_bytes = 0
        self.fin_received = False
        self.peer_fin_seq: int | None = None
        self.reading_paused = False
        self.eof_pending = False
        self.recent_sack: tuple[int, int] | None = None
        # Congestion control (RFC 5681, RFC 6582).
        self.cwnd = 0
        self.ssthresh = 1 << 30
        self.dupacks = 0
        self.recover = 0
        self.in_recovery = False
        self.limited_transmit = 0  # RFC 3042: extra allowance on the first two duplicate ACKs
        self.cc = cc.make(self.cfg.congestion_control)
        # The SACK scoreboard (RFC 6675 2): ranges above SND.UNA the peer reported holding.
        self.sacked: list[tuple[int, int]] = []
        self.rexmit_next = 0  # in recovery: where the next hole retransmission may start
        # RTT estimation (RFC 6298).
        self.srtt_ns: int | None = None
        self.rttvar_ns = 0
        self.rto_ns = self.cfg.initial_rto_ns
        self.backoff = 0
        self.retries = 0
        self.timed_seq: int | None = None  # Karn's algorithm without timestamps
        self.timed_at = 0
        # Timers: deadlines in ns, 0 when off.
        self.rto_at = 0
        self.delack_at = 0
        self.persist_at = 0
        self.persist_backoff = 0
        self.timewait_at = 0
        self.finwait2_at = 0
        self.keepalive_at = 0
        self.keepalive = self.cfg.keepalive
        self.keepalive_idle_ns = self.cfg.keepalive_idle_ns
        self.keepalive_interval_ns = self.cfg.keepalive_interval_ns
        self.keepalive_probes = self.cfg.keepalive_probes
        self.keepalive_sent = 0
        self.last_rx_ns = 0
        self._armed = 0
        self.unacked_segments = 0
        # asyncio transport state.
        self.nodelay = not self.cfg.nagle
        self.high_water = self.cfg.snd_buf
        self.low_water = self.cfg.snd_buf // 4
        self.writing_paused = False
        self.lost = False
        self.soft_error: tuple[int, int] | None = None
        self.last_send_ns = 0

    def __repr__(self) -> str:
        return (f"<TcpConnection {ip_text(self.local[0])}:{self.local[1]} -> "
                f"{ip_text(self.remote[0])}:{self.remote[1]} {self.state.value}>")

    @property
    def closed(self) -> bool:
        """Whether the connection reached CLOSED."""
        return self.state is State.CLOSED

    # -- sizes -----------------------------------------------------------------------

    @property
    def eff_mss(self) -> int:
        """Data bytes per segment: the send MSS less the option bytes (RFC 6691)."""
        return self.snd_mss - (_TS_LEN if self.ts_ok else 0)

    def rcv_window(self) -> int:
        """The free receive buffer, in bytes."""
        return max(0, self.cfg.rcv_buf - len(self.rcvq))

    def _window_field(self) -> int:
        """The window to advertise, scaled (RFC 7323 2.3), never shrinking (RFC 9293 3.8.6)."""
        wnd = min(self.rcv_window(), 0xFFFF << self.rcv_wscale)
        # RFC 9293 3.8.6.2.2: receiver SWS avoidance: open the window only in steps of
        # min(buffer / 2, MSS).
        current = min(max(seq_diff(self.rcv_adv, self.rcv_nxt), 0), self.cfg.rcv_buf)
        if wnd > current and wnd - current < min(self.cfg.rcv_buf // 2, self.snd_mss):
            wnd = max(current, 0)
        # RFC 9293 3.8.6: the right edge does not move left.
        wnd = min(max(wnd, current), 0xFFFF << self.rcv_wscale)
        field_ = min(wnd >> self.rcv_wscale, 0xFFFF)
        edge = (self.rcv_nxt + (field_ << self.rcv_wscale)) & MASK
        if seq_lt(self.rcv_adv, edge):
            self.rcv_adv = edge
        return field_

    # -- output ----------------------------------------------------------------------

    def _ts_value(self, now: int) -> int:
        return (now // _MS + self.ts_offset) & MASK

    def _send(self, flags: int, seq: int, data: bytes | bytearray | memoryview = b"",
              options: TcpOptions | None = None) -> None:
        """Build and route one segment with the current ACK and window.

        ``options`` are a SYN's; other segments carry timestamps and SACK blocks as
        negotiated, built by :func:`unik_tcpip.fastpath.tcp_segment` in one call.
        """
        tsval = tsecr = -1
        raw_options = b""
        if options is None:
            if self.ts_ok and not flags & RST:
                # RFC 7323 3.2: once negotiated, every non-RST segment carries timestamps.
                tsval, tsecr = (self.timers.now_ns() // _MS + self.ts_offset) & MASK, self.ts_recent
            if self.sack_ok and self.ooo and not flags & SYN:
                # RFC 2018 3: as many blocks as fit beside the data within the MSS.
                space = self.snd_mss - len(data) - (_TS_LEN if self.ts_ok else 0) - 4
                if space >= 8:
                    raw_options = sack_option(self._sack_blocks()[:space // 8])
        else:
            if self.ts_ok and not flags & RST:
                options.timestamp = (self._ts_value(self.timers.now_ns()), self.ts_recent)
            raw_options = options.to_bytes()
        ack = self.rcv_nxt if flags & ACK else 0
        if flags & SYN:
            window = min(self.rcv_window(), 0xFFFF)  # RFC 7323 2.2: never scaled in a SYN
            self.rcv_adv = (self.rcv_nxt + window) & MASK
        else:
            window = self._window_field()
        if flags & ACK:
            self.last_ack_sent = ack
            self.delack_at = 0
            self.unacked_segments = 0
        local, remote = self.local, self.remote
        headroom = self.layer.iface.headroom
        self.stats.segments_out += 1
        if len(data) > self.eff_mss:
            # A super-segment: the NIC cuts it into MSS-sized segments and completes every
            # checksum (TSO through the virtio-net header; the kernel's own GSO does the same).
            segment = fastpath.tcp_segment(local[0], remote[0], local[1], remote[1], seq, ack, flags, window,
                                           tsval, tsecr, raw_options, data, headroom, True)
            header_len = 20 + (12 if tsval >= 0 else 0) + (len(raw_options) + 3) // 4 * 4
            offload = TxOffload(headroom, 16, self.layer.iface.gso_tcp, self.eff_mss, headroom + header_len)
            self.layer.output(remote[0], segment, offload)
            return
        segment = fastpath.tcp_segment(local[0], remote[0], local[1], remote[1], seq, ack, flags, window,
                                       tsval, tsecr, raw_options, data, headroom, False)
        self.layer.output(remote[0], segment)

    def _sack_blocks(self) -> tuple[tuple[int, int], ...]:
        """RFC 2018 4: the block with the latest segment first, then the others, at most 3."""
        blocks: list[tuple[int, int]] = []
        for start, data in self.ooo:
            end = (start + len(data)) & MASK
            if blocks and blocks[-1][1] == start:
                blocks[-1] = (blocks[-1][0], end)
            else:
                blocks.append((start, end))
        first = [b for b in blocks if self.recent_sack and seq_le(b[0], self.recent_sack[0])
                 and seq_le(self.recent_sack[1], b[1])]
        rest = [b for b in reversed(blocks) if b not in first]
        return tuple((first + rest)[:3 if self.ts_ok else 4])

    def _syn_options(self) -> TcpOptions:
        """Our SYN options: MSS, and window scale/timestamps/SACK if offered (RFC 7323 1.3)."""
        peer = self.peer_offered  # None on an active open: offer everything enabled
        opts = TcpOptions(mss=self.layer.iface.max_mss)
        if self.cfg.window_scaling and (peer is None or peer.wscale is not None):
            opts.wscale = self.rcv_wscale
        if self.cfg.sack and (peer is None or peer.sack_permitted):
            opts.sack_permitted = True
        if self.cfg.timestamps and (peer is None or peer.timestamp is not None):
            opts.timestamp = (self._ts_value(self.timers.now_ns()), peer.timestamp[0] if peer and
                              peer.timestamp else 0)
        return opts

    def _send_syn(self) -> None:
        flags = SYN | (ACK if self.state == State.SYN_RECEIVED else 0)
        self._send(flags, self.iss, options=self._syn_options())
        self.snd_nxt = (self.iss + 1) & MASK
        if seq_lt(self.snd_max, self.snd_nxt):
            self.snd_max = self.snd_nxt
        self._start_rto()

    def send_ack(self) -> None:
        """An ACK now: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.

        SND.NXT is the RFC's: the highest sequence number sent (``snd_max``), not the
        point that a retransmission timeout rewound ``snd_nxt`` to; an ACK with an older
        sequence number would be unacceptable to the peer (RFC 9293 3.10.7.4).
        """
        self._send(ACK, self.snd_max)

    def output(self) -> None:
        """Send what the windows, Nagle and the FIN allow (RFC 9293 3.8.6.2.1, RFC 5681)."""
        if self.state not in SYNCHRONIZED:
            return
        if not self.fin_queued and ((self.snd_nxt - self.buf_seq) & MASK) == len(self.sndbuf):
            return  # everything buffered has been sent (the common case after an ACK)
        mss = self.eff_mss
        # With TSO, one send covers as many whole segments as fit in 64 KiB.
        limit = max(_TSO_MAX // mss * mss, mss) if self.layer.tso else mss
        if self.snd_una == self.snd_max and self.last_send_ns \
                and self.timers.now_ns() - self.last_send_ns > self.rto_ns:
            # RFC 5681 4.1: after an idle period longer than the RTO, restart from at most
            # the initial window rather than bursting a stale cwnd.
            self.cwnd = min(self.cwnd, min(4 * mss, max(2 * mss, 4380)))
        while True:
            off = seq_diff(self.snd_nxt, self.buf_seq)
            avail = len(self.sndbuf) - off
            if self.fin_seq is not None and not seq_lt(self.snd_nxt, (self.fin_seq + 1) & MASK):
                return  # everything, FIN included, has been sent
            in_flight = seq_diff(self.snd_nxt, self.snd_una)
            wnd = min(self.snd_wnd, self.cwnd + self.limited_transmit)
            usable = wnd - in_flight
            n = max(0, min(avail, usable, limit))
            fin = self.fin_queued and off + n == len(self.sndbuf)
            if n == 0 and not fin:
                if avail > 0 and self.snd_wnd == 0 and in_flight == 0:
                    self._start_persist()
                return
            if n < mss and not fin:
                if n == avail:
                    if in_flight > 0 and not self.nodelay:
                        # RFC 9293 3.7.4 / RFC 896 (Nagle): hold a small segment while
                        # data is unacknowledged.
                        return
                elif n < self.max_snd_wnd // 2 and in_flight > 0:
                    # RFC 9293 3.8.6.2.1 (sender SWS avoidance): a window-limited partial
                    # segment waits unless it is half the largest window ever offered.
                    return
            flags = ACK
            if n and n == avail:
                flags |= PSH
            if fin:
                flags |= FIN
            data = memoryview(self.sndbuf)[off:off + n]
            seq = self.snd_nxt
            retransmit = seq_lt(seq, self.snd_max)
            self._send(flags, seq, data)
            self.last_send_ns = self.timers.now_ns()
            if retransmit:
                self.stats.retransmits += 1
            else:
                self.stats.bytes_out += n
            data.release()
            if fin:
                self.fin_seq = (self.buf_seq + len(self.sndbuf)) & MASK
            self.snd_nxt = (seq + n + (1 if fin else 0)) & MASK
            if seq_lt(self.snd_max, self.snd_nxt):
                self.snd_max = self.snd_nxt
            if not retransmit and self.timed_seq is None and not self.ts_ok:
                self.timed_seq, self.timed_at = seq, self.timers.now_ns()
            if not self.rto_at:
                self._start_rto()
            self.persist_at = 0
            if fin or (off + n == len(self.sndbuf) and not self.fin_queued):
                return  # the FIN, or all that is buffered, has left

    def _update_scoreboard(self, blocks: tuple[tuple[int, int], ...]) -> None:
        """Merge SACK blocks into the scoreboard, as offsets above SND.UNA (RFC 6675 2, 5)."""
        una = self.snd_una
        limit = seq_diff(self.snd_max, una)
        ranges = [(seq_diff(s, una), seq_diff(e, una)) for s, e in self.sacked]
        for left, right in blocks:
            lo, hi = seq_diff(left, una), seq_diff(right, una)
            if 0 < lo < hi <= limit:  # ignore D-SACKs (RFC 2883) and bogus blocks
                ranges.append((lo, hi))
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted((max(lo, 0), hi) for lo, hi in ranges if hi > 0):
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self.sacked = [((una + lo) & MASK, (una + hi) & MASK) for lo, hi in merged[:64]]

    def _sack_says_lost(self) -> bool:
        """RFC 6675 4 IsLost(SND.UNA): more than (DupThresh - 1) * SMSS bytes SACKed above it.

        Stretch ACKs (a receiver acknowledging offloaded super-segments) may bring fewer
        than three duplicate ACKs for a loss; the SACKed bytes still show it.
        """
        if not self.sacked:
            return False
        held = sum(seq_diff(e, s) for s, e in self.sacked)
        return held > 2 * self.eff_mss

    def _prune_scoreboard(self, ack: int) -> None:
        self.sacked = [(s if seq_lt(ack, s) else ack, e) for s, e in self.sacked if seq_lt(ack, e)]

    def _retransmit_hole(self) -> bool:
        """In recovery, resend the next hole below the highest SACKed byte (RFC 6675 4, NextSeg rule 1)."""
        if not self.sacked:
            return False
        una = self.snd_una
        start = max(seq_diff(self.rexmit_next, una), 0)
        for left, right in self.sacked:
            lo, hi = seq_diff(left, una), seq_diff(right, una)
            if start < lo:
                n = min(self.eff_mss, lo - start)
                off = seq_diff((una + start) & MASK, self.buf_seq)
                if off < 0 or off + n > len(self.sndbuf):
                    return False
                data = memoryview(self.sndbuf)[off:off + n]
                self._send(ACK, (una + start) & MASK, data)
                data.release()
                self.stats.retransmits += 1
                self.layer.stats["tcp.sack_retransmits"] += 1
                self.timed_seq = None
                self.rexmit_next = (una + start + n) & MASK
                return True
            start = max(start, hi)
        return False

    def _retransmit_first(self) -> None:
        """Resend the first unacknowledged segment (fast retransmit, partial ACKs)."""
        off = seq_diff(self.snd_una, self.buf_seq)
        n = min(self.eff_mss, len(self.sndbuf) - off)
        self.rexmit_next = (self.snd_una + max(n, 0)) & MASK
        flags = ACK
        if n <= 0:
            if self.fin_seq is None:
                return
            n = 0
        fin = self.fin_seq is not None and off + n == len(self.sndbuf)
        if fin:
            flags |= FIN
        data = memoryview(self.sndbuf)[off:off + max(n, 0)]
        self._send(flags, self.snd_una, data)
        data.release()
        self.stats.retransmits += 1
        self.timed_seq = None  # Karn: never time a retransmitted segment

    # -- timers ----------------------------------------------------------------------

    def _schedule(self, deadline: int) -> None:
        if deadline and (not self._armed or deadline < self._armed):
            self._armed = deadline
            self.timers.at(deadline, self._on_timer)

    def _start_rto(self) -> None:
        self.rto_at = self.timers.now_ns() + self.rto_ns
        self._schedule(self.rto_at)

    def _start_persist(self) -> None:
        if not self.persist_at:
            delay = min(max(self.rto_ns, self.cfg.min_rto_ns) << self.persist_backoff, self.cfg.max_rto_ns)
            self.persist_at = self.timers.now_ns() + delay
            self._schedule(self.persist_at)

    def _on_timer(self, now: int) -> None:
        self._armed = 0
        if self.state == State.CLOSED:
            return
        if self.timewait_at and self.timewait_at <= now:
            self.timewait_at = 0
            self._destroy()
            return
        if self.finwait2_at and self.finwait2_at <= now:
            self.finwait2_at = 0
            if self.state == State.FIN_WAIT_2:
                self.layer.stats["tcp.fin_wait_2_timeout"] += 1
                self._destroy()
                return
        if self.rto_at and self.rto_at <= now:
            self.rto_at = 0
            self._on_rto()
            if self.closed:
                return
        if self.persist_at and self.persist_at <= now:
            self.persist_at = 0
            self._on_persist()
        if self.delack_at and self.delack_at <= now:
            self.delack_at = 0
            if not self.closed:
                self.send_ack()
        if self.keepalive_at and self.keepalive_at <= now:
            self.keepalive_at = 0
            self._on_keepalive(now)
            if self.closed:
                return
        for deadline in (self.rto_at, self.persist_at, self.delack_at, self.timewait_at, self.finwait2_at,
                         self.keepalive_at):
            self._schedule(deadline)

    def _on_keepalive(self, now: int) -> None:
        """RFC 9293 3.8.4: probe an idle connection; abort after ``keepalive_probes`` silent probes."""
        if not self.keepalive or self.state not in (State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_2):
            return
        idle = now - self.last_rx_ns
        if idle < self.keepalive_idle_ns:
            self.keepalive_sent = 0
            self.keepalive_at = self.last_rx_ns + self.keepalive_idle_ns
            return
        if self.keepalive_sent >= self.keepalive_probes:
            self.layer.stats["tcp.keepalive_timeouts"] += 1
            self._abort(TimeoutError("TCP keep-alive: the peer stopped answering"), send_rst=True)
            return
        # RFC 1122 4.2.3.6: a probe is a segment with SEG.SEQ = SND.NXT - 1 (and no data
        # here), which the peer answers with an ACK.
        self.keepalive_sent += 1
        self.layer.stats["tcp.keepalive_probes"] += 1
        self._send(ACK, (self.snd_max - 1) & MASK)
        self.keepalive_at = now + self.keepalive_interval_ns

    def set_keepalive(self, enable: bool = True, idle: float | None = None, interval: float | None = None,
                      probes: int | None = None) -> None:
        """Switch keep-alives on or off (times in seconds), like SO_KEEPALIVE and TCP_KEEPIDLE."""
        self.keepalive = enable
        if idle is not None:
            self.keepalive_idle_ns = int(idle * _S)
        if interval is not None:
            self.keepalive_interval_ns = int(interval * _S)
        if probes is not None:
            self.keepalive_probes = probes
        self.keepalive_at = 0
        if enable and self.state in SYNCHRONIZED:
            self.keepalive_at = self.last_rx_ns + self.keepalive_idle_ns
            self._schedule(self.keepalive_at)

    def _on_rto(self) -> None:
        """RFC 6298 5.4-5.7: retransmit the earliest segment, back off, collapse cwnd."""
        if seq_le(self.snd_max, self.snd_una) and self.state not in (State.SYN_SENT, State.SYN_RECEIVED):
            return  # nothing outstanding
        self.retries += 1
        limit = self.cfg.max_syn_retries if self.state in (State.SYN_SENT, State.SYN_RECEIVED) \
            else self.cfg.max_retries
        if self.retries > limit:
            # RFC 9293 3.8.3: R2 exceeded: close the connection.
            self.layer.stats["tcp.timeouts_aborted"] += 1
            why = "" if self.soft_error is None else \
                f" (last ICMP error: type {self.soft_error[0]} code {self.soft_error[1]})"
            self._abort(TimeoutError(
                f"TCP connection to {ip_text(self.remote[0])}:{self.remote[1]} timed out{why}"),
                send_rst=self.state != State.SYN_SENT)
            return
        self.stats.timeouts += 1
        self.layer.stats["tcp.rto"] += 1
        # RFC 6298 5.5: back off the timer; 5.6: restart it.
        self.rto_ns = min(self.rto_ns * 2, self.cfg.max_rto_ns)
        self.timed_seq = None
        if self.state in (State.SYN_SENT, State.SYN_RECEIVED):
            self.stats.retransmits += 1
            self._send_syn()
            return
        # RFC 5681 3.1, equation 4 (or RFC 9438 4.6), then a loss window of one segment.
        flight = seq_diff(self.snd_max, self.snd_una)
        self.ssthresh = self.cc.on_loss(self.cwnd, flight, self.eff_mss, self.timers.now_ns())
        self.cwnd = self.eff_mss
        self.in_recovery = False
        self.dupacks = 0
        self.limited_transmit = 0
        # RFC 2018 8: after a timeout, SACK information must not steer retransmission.
        self.sacked = []
        # RFC 6582 3.2 step 1 after a timeout: recover = highest sequence transmitted.
        self.recover = self.snd_max
        # Go back: resend from SND.UNA (the FIN too, if it was not acknowledged).
        self.snd_nxt = self.snd_una
        self._start_rto()
        self.output()

    def _on_persist(self) -> None:
        """RFC 9293 3.8.6.1: probe a zero window; the reply carries the current window."""
        if self.snd_wnd or self.state not in SYNCHRONIZED:
            return
        self.layer.stats["tcp.window_probes"] += 1
        # A segment with an old sequence number is unacceptable, which forces an ACK
        # (RFC 9293 3.10.7.4) without putting data beyond the window.
        self._send(ACK, (self.snd_una - 1) & MASK)
        self.persist_backoff = min(self.persist_backoff + 1, 10)
        self._start_persist()

    # -- RTT and congestion control ------------------------------------------------

    def _rtt_sample(self, rtt_ns: int) -> None:
        """RFC 6298 2.2 and 2.3."""
        rtt_ns = max(rtt_ns, 1)
        if self.srtt_ns is None:
            self.srtt_ns = rtt_ns
            self.rttvar_ns = rtt_ns // 2
        else:
            self.rttvar_ns = (3 * self.rttvar_ns + abs(self.srtt_ns - rtt_ns)) // 4
            self.srtt_ns = (7 * self.srtt_ns + rtt_ns) // 8
        # RFC 6298 2.4/2.5: clamp; the clock granularity G is 1 ms here.
        rto = self.srtt_ns + max(_MS, 4 * self.rttvar_ns)
        self.rto_ns = min(max(rto, self.cfg.min_rto_ns), self.cfg.max_rto_ns)
        self.stats.srtt = self.srtt_ns / 1e9

    def _on_new_ack(self, acked: int, ack: int) -> None:
        """Congestion control on an ACK of new data (RFC 5681 3.1, RFC 6582 3.2)."""
        mss = self.eff_mss
        if self.in_recovery:
            if not seq_lt(ack, self.recover):
                # RFC 6582 3.2 step 3, full acknowledgment: deflate the window.
                flight = seq_diff(self.snd_max, ack)
                self.cwnd = min(self.ssthresh, max(flight, mss) + mss)
                self.in_recovery = False
                self.sacked = []
            else:
                # RFC 6582 3.2 step 4, partial acknowledgment: retransmit the next hole,
                # deflate by the amount acknowledged, add back one MSS if that was >= MSS.
                # With SACK the hole at SND.UNA may already have been resent.
                if seq_le(self.rexmit_next, ack) or not self._retransmit_hole():
                    self._retransmit_first()
                self.cwnd = max(self.cwnd - acked + (mss if acked >= mss else 0), mss)
        else:
            # Slow start or congestion avoidance: the algorithm's growth (RFC 5681 3.1 / RFC 9438).
            self.cwnd = self.cc.on_ack(self.cwnd, self.ssthresh, acked, mss, self.timers.now_ns(), self.srtt_ns)
        self.dupacks = 0
        self.limited_transmit = 0

    def _on_dup_ack(self) -> None:
        """RFC 5681 3.2 fast retransmit with RFC 6582 NewReno recovery."""
        self.dupacks += 1
        self.stats.dup_acks += 1
        mss = self.eff_mss
        if self.in_recovery:
            # A duplicate ACK means a segment left the network: with SACK, spend it on the
            # next hole (RFC 6675 5 step (C)); otherwise inflate (RFC 5681 3.2 step 4).
            if not (self.sack_ok and self._retransmit_hole()):
                self.cwnd += mss
                self.output()
        elif self.dupacks < 3 and not self._sack_says_lost():
            # RFC 3042 (Limited Transmit): each of the first two duplicate ACKs lets one
            # new segment out, so that small windows still produce three duplicates.
            self.limited_transmit = self.dupacks * mss
            self.output()
        elif self.dupacks <= 3 and seq_lt(self.recover, self.snd_una):
            # RFC 6582 3.2 step 2: only if the cumulative ACK covers more than "recover"
            # (avoids a second reduction for losses from one window of data).
            flight = seq_diff(self.snd_max, self.snd_una)
            # RFC 5681 equation 4 for NewReno, RFC 9438 4.6 for CUBIC.
            self.ssthresh = self.cc.on_loss(self.cwnd, flight, mss, self.timers.now_ns())
            self.recover = self.snd_max
            self.in_recovery = True
            self.stats.fast_retransmits += 1
            self.layer.stats["tcp.fast_retransmits"] += 1
            self._retransmit_first()
            self.cwnd = self.ssthresh + 3 * mss  # RFC 5681 3.2 step 3
            self.limited_transmit = 0
            self._start_rto()

    # -- input -----------------------------------------------------------------------

    def icmp_error(self, type_: int, code: int, next_mtu: int) -> None:
        """React to a believed ICMP error about this connection."""
        if type_ == wire_icmp.DEST_UNREACHABLE and code == wire_icmp.FRAG_NEEDED:
            # RFC 1191 (path MTU discovery): shrink the MSS to the next hop's MTU and resend.
            mtu = next_mtu or 576  # RFC 1191 5: an old router sends 0; 576 is always allowed
            mss = max(mtu - self.layer.iface.ip_header_len - 20, 88)
            if mss < self.snd_mss:
                self.snd_mss = mss
                self.layer.stats["tcp.pmtu_reduced"] += 1
                self.snd_nxt = self.snd_una  # resend what was too big
                self.output()
            return
        if type_ == wire_icmp.DEST_UNREACHABLE and code in (wire_icmp.PROTOCOL_UNREACHABLE,
                                                           wire_icmp.PORT_UNREACHABLE) \
                and self.state == State.SYN_SENT:
            # RFC 1122 4.2.3.9: protocol and port unreachable are hard errors; RFC 5461
            # keeps them fatal only while connecting.
            self._abort(ConnectionRefusedError(errno.ECONNREFUSED, f"connection to {ip_text(self.remote[0])}:"
                                               f"{self.remote[1]} refused (ICMP unreachable, code {code})"),
                        send_rst=False)
            return
        # Everything else is a soft error (RFC 1122 4.2.3.9): remembered, reported if the
        # connection later times out.
        self.soft_error = (type_, code)

    def _paws_reject(self, seg: TcpSegment) -> bool:
        """RFC 7323 5.3 (PAWS): a timestamp older than TS.Recent marks an old duplicate."""
        ts = seg.options.timestamp
        if not self.ts_ok or ts is None or seg.flags & RST:
            return False
        if not seg.payload and seg.seq == self.rcv_nxt and not seg.flags & (SYN | FIN):
            # A pure ACK carries no data PAWS could protect; reordered ACKs (with an older
            # timestamp than a later segment) still carry the dup-ACK and SACK signals.
            return False
        return seq_lt(ts[0], self.ts_recent)

    def _acceptable(self, seq: int, seg_len: int) -> bool:
        """RFC 9293 3.10.7.4, first: the four cases of the acceptability test."""
        wnd = seq_diff(self.rcv_adv, self.rcv_nxt)
        wnd = max(wnd, 0)
        if seg_len == 0:
            if wnd == 0:
                return seq == self.rcv_nxt
            return seq_le(self.rcv_nxt, seq) and seq_lt(seq, (self.rcv_nxt + wnd) & MASK)
        if wnd == 0:
            return False
        end = (seq + seg_len - 1) & MASK
        right = (self.rcv_nxt + wnd) & MASK
        return (seq_le(self.rcv_nxt, seq) and seq_lt(seq, right)) or (
            seq_le(self.rcv_nxt, end) and seq_lt(end, right))

    def _challenge_ack(self) -> None:
        """RFC 5961 3.2/4.2/5.2: answer a suspicious segment with an ACK, rate-limited (7)."""
        if self.layer.challenge_bucket.take(self.timers.now_ns()):
            self.stats.challenge_acks += 1
            self.layer.stats["tcp.challenge_acks"] += 1
            self.send_ack()
        else:
            self.layer.stats["tcp.challenge_acks_limited"] += 1

    def segment_arrives(self, seg: TcpSegment) -> None:
        """RFC 9293 3.10.7.3 and 3.10.7.4 for a connection past LISTEN."""
        self.stats.segments_in += 1
        self.last_rx_ns = self.timers.now_ns()
        self.keepalive_sent = 0
        if self.state == State.SYN_SENT:
            self._syn_sent(seg)
            return
        flags = seg.flags
        seq = seg.seq
        payload = seg.payload
        seg_len = seg.seg_len

        if self.state == State.SYN_RECEIVED and flags & SYN and seq == self.irs:
            if flags & ACK and seq_lt(self.snd_una, seg.ack) and seq_le(seg.ack, self.snd_nxt):
                # Simultaneous open (RFC 9293 3.5 figure 8): the peer's SYN-ACK completes it.
                self._become_established(seg)
                self.send_ack()
                self.output()
            elif not flags & ACK:
                # Our SYN-ACK was lost and the peer repeats its SYN: repeat the SYN-ACK.
                self.stats.retransmits += 1
                self._send(SYN | ACK, self.iss, options=self._syn_options())
            return
        # First: check the sequence number; RFC 7323 5.3 runs PAWS before it.
        if self._paws_reject(seg):
            self.layer.stats["tcp.paws_rejected"] += 1
            self.send_ack()
            return
        if not self._acceptable(seq, seg_len):
            if self.state == State.TIME_WAIT and flags & SYN and not flags & ACK \
                    and seq_lt(self.rcv_nxt, seq):
                # RFC 9293 3.10.7.4 note / RFC 1122 4.2.2.13: a new SYN may reopen TIME-WAIT.
                self._destroy()
                self.layer.segment_arrives_listen(self.key, seg)
                return
            self.layer.stats["tcp.unacceptable"] += 1
            if not flags & RST:
                self.send_ack()
            return
        # Trim to the window: drop what precedes RCV.NXT (already received) ...
        if seq_lt(seq, self.rcv_nxt):
            skip = seq_diff(self.rcv_nxt, seq)
            if flags & SYN:
                flags &= ~SYN
                skip -= 1
            payload = payload[skip:]
            seq = self.rcv_nxt
        # ... and what lies beyond the window (a FIN beyond it is dropped too).
        room = max(seq_diff(self.rcv_adv, seq), 0)
        if len(payload) > room:
            payload = payload[:room]
            flags &= ~FIN

        # Second: the RST bit (RFC 5961 3.2: only an exact match resets).
        if flags & RST:
            if seq == self.rcv_nxt:
                self.layer.stats["tcp.resets_received"] += 1
                if self.state == State.SYN_RECEIVED and self.listener is not None:
                    self._destroy()  # RFC 9293 3.10.7.4: a passive open returns to LISTEN
                elif self.state in (State.CLOSING, State.LAST_ACK, State.TIME_WAIT):
                    self._destroy()
                else:
                    self._abort(ConnectionResetError(errno.ECONNRESET, "connection reset by peer"),
                                send_rst=False)
            else:
                self._challenge_ack()
            return

        # Fourth: the SYN bit (RFC 5961 4.2: any SYN here gets a challenge ACK).
        if flags & SYN:
            self._challenge_ack()
            return

        # Fifth: the ACK field.
        if not flags & ACK:
            self.layer.stats["tcp.no_ack"] += 1
            return
        ack = seg.ack
        if self.state == State.SYN_RECEIVED:
            if seq_lt(self.snd_una, ack) and seq_le(ack, self.snd_nxt):
                self._become_established(seg)
            else:
                # RFC 9293 3.10.7.4: <SEQ=SEG.ACK><CTL=RST>.
                self.layer.send_rst(self.key, ack, 0, RST)
                return
        # RFC 5961 5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
        if seq_lt(self.snd_max, ack) or seq_lt(ack, (self.snd_una - max(self.max_snd_wnd, 1)) & MASK):
            self._challenge_ack()
            return
        self._process_ack(seg, ack)
        if self.state == State.CLOSED:
            return
        if self.state == State.TIME_WAIT:
            # RFC 9293 3.10.7.4: only a retransmitted FIN arrives here; ACK it and restart 2 MSL.
            if flags & FIN:
                self.send_ack()
                self.timewait_at = self.timers.now_ns() + 2 * self.cfg.msl_ns
                self._schedule(self.timewait_at)
            return

        # RFC 7323 4.3: update TS.Recent for a segment covering Last.ACK.sent.
        ts = seg.options.timestamp
        if self.ts_ok and ts is not None and seq_le(seg.seq, self.last_ack_sent) \
                and not seq_lt(ts[0], self.ts_recent):
            self.ts_recent = ts[0]

        # Seventh: the segment text (sixth, URG, is not supported: RFC 6093 advises against it).
        if payload and self.state in _RECEIVING:
            self._receive_data(seq, payload, bool(flags & FIN))
        elif payload:
            self.layer.stats["tcp.data_after_fin"] += 1
        # Eighth: the FIN bit.
        if flags & FIN:
            fin_seq = (seq + len(payload)) & MASK
            if self.peer_fin_seq is None:
                self.peer_fin_seq = fin_seq
            if fin_seq == self.rcv_nxt and not self.fin_received:
                self._fin_arrives()
            else:
                self.send_ack()  # a retransmitted FIN, or one beyond a hole
        elif payload:
            self._ack_data()
        if self.state in SYNCHRONIZED:
            self.output()

    def _syn_sent(self, seg: TcpSegment) -> None:
        """RFC 9293 3.10.7.3."""
        flags, ack = seg.flags, seg.ack
        # First: the ACK bit.
        if flags & ACK and (seq_le(ack, self.iss) or seq_lt(self.snd_nxt, ack)):
            if not flags & RST:
                self.layer.send_rst(self.key, ack, 0, RST)
            self.layer.stats["tcp.bad_syn_ack"] += 1
            return
        # Second: the RST bit (RFC 5961 3.2: acceptable only with an acceptable ACK).
        if flags & RST:
            if flags & ACK:
                self.layer.stats["tcp.connection_refused"] += 1
                self._abort(ConnectionRefusedError(
                    errno.ECONNREFUSED, f"connection to {ip_text(self.remote[0])}:{self.remote[1]} refused"),
                    send_rst=False)
            return
        # Fourth: the SYN bit.
        if not flags & SYN:
            return
        self.irs = seg.seq
        self.rcv_nxt = (seg.seq + 1) & MASK
        self.rcv_adv = self.rcv_nxt
        self._negotiate(seg.options, active=True)
        if flags & ACK:
            self.snd_una = ack
            self.snd_wnd = seg.window  # RFC 7323 2.2: the window of a SYN is never scaled
            self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
            self.snd_wl1, self.snd_wl2 = seg.seq, ack
            if seg.options.timestamp is not None and self.ts_ok:
                self.ts_recent = seg.options.timestamp[0]
                self._rtt_sample((self._ts_value(self.timers.now_ns()) - seg.options.timestamp[1]) % (1 << 32)
                                 * _MS)
            elif self.timed_at and self.retries == 0:
                self._rtt_sample(self.timers.now_ns() - self.timed_at)
            self.retries = 0
            self.rto_at = 0
            self.state = State.ESTABLISHED
            self.layer.stats["tcp.active_opens"] += 1
            self.send_ack()
            self._connection_made()
            if seg.payload:
                self._receive_data(self.rcv_nxt, seg.payload, bool(flags & FIN))
                self._ack_data()
        else:
            # RFC 9293 3.10.7.3: simultaneous open: SYN-RECEIVED, <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
            self.layer.stats["tcp.simultaneous_opens"] += 1
            self.state = State.SYN_RECEIVED
            if seg.options.timestamp is not None and self.ts_ok:
                self.ts_recent = seg.options.timestamp[0]
            self._send(SYN | ACK, self.iss, options=self._syn_options())

    def _negotiate(self, peer: TcpOptions, active: bool) -> None:
        """Settle MSS, window scaling (RFC 7323 2.2), timestamps (3.2) and SACK (RFC 2018 2)."""
        self.peer_offered = peer
        own_mss = self.layer.iface.max_mss
        self.snd_mss = max(min(peer.mss if peer.mss else 536, own_mss), 64)
        if self.cfg.window_scaling and peer.wscale is not None:
            # RFC 7323 2.3: a shift above 14 is treated as 14.
            self.snd_wscale = min(peer.wscale, 14)
        else:
            self.snd_wscale = 0
            self.rcv_wscale = 0
        self.ts_ok = self.cfg.timestamps and peer.timestamp is not None
        self.sack_ok = self.cfg.sack and peer.sack_permitted
        # RFC 5681 3.1: the initial window.
        mss = self.eff_mss
        self.cwnd = min(4 * mss, max(2 * mss, 4380))

    def _become_established(self, seg: TcpSegment) -> None:
        """The ACK of our SYN-ACK arrived (RFC 9293 3.10.7.4, fifth, SYN-RECEIVED)."""
        self.state = State.ESTABLISHED
        self.snd_una = seg.ack
        self.snd_wnd = seg.window << self.snd_wscale
        self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
        self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
        if self.ts_ok and seg.options.timestamp is not None:
            self._rtt_sample((self._ts_value(self.timers.now_ns()) - seg.options.timestamp[1]) % (1 << 32) * _MS)
        self.retries = 0
        self.rto_at = 0
        self.buf_seq = self.snd_una
        if self.listener is not None:
            self.listener.half_open -= 1
            self.layer.stats["tcp.passive_opens"] += 1
        self._connection_made()

    def _process_ack(self, seg: TcpSegment, ack: int) -> None:
        """RFC 9293 3.10.7.4, fifth, for the synchronized states."""
        if self.sack_ok and (seg.options.sack_blocks or self.sacked):
            if seq_lt(self.snd_una, ack):
                self._prune_scoreboard(ack)
            self._update_scoreboard(seg.options.sack_blocks)
        if seq_lt(self.snd_una, ack):
            acked = seq_diff(ack, self.snd_una)
            # Data acknowledged: drop it from the send buffer (the FIN takes no byte).
            drop = min(max(seq_diff(ack, self.buf_seq), 0), len(self.sndbuf))
            if drop:
                del self.sndbuf[:drop]
                self.buf_seq = (self.buf_seq + drop) & MASK
            self.snd_una = ack
            if seq_lt(self.snd_nxt, ack):
                self.snd_nxt = ack
            # RTT: RFC 7323 4.1 (timestamps) or Karn's timed segment (RFC 6298 3).
            ts = seg.options.timestamp
            if self.ts_ok and ts is not None and ts[1]:
                self._rtt_sample(((self._ts_value(self.timers.now_ns()) - ts[1]) & MASK) * _MS)
            elif self.timed_seq is not None and seq_lt(self.timed_seq, ack):
                self._rtt_sample(self.timers.now_ns() - self.timed_at)
                self.timed_seq = None
            self.retries = 0
            self.backoff = 0
            self._on_new_ack(acked, ack)
            # RFC 6298 5.2/5.3: stop the timer when all is acknowledged, else restart it.
            if self.snd_una == self.snd_max:
                self.rto_at = 0
            else:
                self._start_rto()
            self._maybe_resume_writing()
        elif ack == self.snd_una and not seg.payload and not seg.flags & (SYN | FIN) \
                and self.snd_una != self.snd_max and (
                    seg.window << self.snd_wscale == self.snd_wnd or seg.options.sack_blocks):
            # RFC 5681 2: the definition of a duplicate acknowledgment; condition (e), an
            # unchanged window, is waived when SACK blocks report data beyond the hole, as
            # RFC 6675 2 counts such ACKs (a receiver whose buffer autotunes moves its window).
            self._on_dup_ack()
        # RFC 9293 3.10.7.4: update the send window when the segment is newer.
        if seq_lt(self.snd_wl1, seg.seq) or (self.snd_wl1 == seg.seq and seq_le(self.snd_wl2, ack)):
            old = self.snd_wnd
            self.snd_wnd = seg.window << self.snd_wscale
            self.snd_wl1, self.snd_wl2 = seg.seq, ack
            self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
            if self.snd_wnd and not old:
                self.persist_at = 0
                self.persist_backoff = 0
        # The state transitions that our FIN's acknowledgment causes.
        fin_acked = self.fin_seq is not None and seq_lt(self.fin_seq, self.snd_una)
        if fin_acked:
            if self.state == State.FIN_WAIT_1:
                self.state = State.FIN_WAIT_2
                if self.app_closed:
                    self.finwait2_at = self.timers.now_ns() + self.cfg.fin_wait_2_ns
                    self._schedule(self.finwait2_at)
            elif self.state == State.CLOSING:
                self._enter_time_wait()
            elif self.state == State.LAST_ACK:
                self._destroy()

    def _receive_data(self, seq: int, payload: memoryview, fin: bool) -> None:
        """Queue in-order data for the application; keep out-of-order data (bounded by the window)."""
        if seq == self.rcv_nxt:
            self._deliver(payload)
            if self.ooo:
                self._merge_ooo()
                self.unacked_segments = 2  # RFC 5681 4.2: ACK at once when a hole is filled
        else:
            self.stats.out_of_order += 1
            self.layer.stats["tcp.out_of_order"] += 1
            self._store_ooo(seq, bytes(payload))
            self.unacked_segments = 2  # RFC 5681 4.2: a duplicate ACK at once for out-of-order data

    def _store_ooo(self, seq: int, data: bytes) -> None:
        end = (seq + len(data)) & MASK
        self.recent_sack = (seq, end)
        if self.ooo_bytes + len(data) > self.cfg.rcv_buf:
            self.layer.stats["tcp.ooo_full"] += 1  # overlapping junk cannot grow memory
            return
        for start, have in self.ooo:
            if seq_le(start, seq) and seq_le(end, (start + len(have)) & MASK):
                return  # a duplicate of what we hold
        self.ooo.append((seq, data))
        self.ooo.sort(key=lambda item: seq_diff(item[0], self.rcv_nxt))
        self.ooo_bytes += len(data)

    def _merge_ooo(self) -> None:
        while self.ooo:
            start, data = self.ooo[0]
            if seq_lt(self.rcv_nxt, start):
                break
            self.ooo.pop(0)
            self.ooo_bytes -= len(data)
            skip = seq_diff(self.rcv_nxt, start)
            if skip < len(data):
                self._deliver(memoryview(data)[skip:])
        if self.peer_fin_seq is not None and self.peer_fin_seq == self.rcv_nxt and not self.fin_received:
            self._fin_arrives()

    def _deliver(self, data: memoryview | bytes) -> None:
        n = len(data)
        self.rcv_nxt = (self.rcv_nxt + n) & MASK
        self.stats.bytes_in += n
        if self.reading_paused or self.rcvq:
            self.rcvq += data
        elif self.protocol is not None and isinstance(self.protocol, asyncio.Protocol) and not self.app_closed:
            try:
                self.protocol.data_received(bytes(data))
            except Exception as exc:  # noqa: BLE001 - the application's bug ends its connection only
                self._protocol_failed(exc)

    def _protocol_failed(self, exc: BaseException) -> None:
        """A protocol callback raised: stop calling it and reset the connection soon after.

        Like asyncio's transports, the connection is aborted and ``connection_lost``
        receives the exception; the abort waits for the current segment to be processed.
        """
        log.error("protocol callback of %r failed", self, exc_info=exc)
        self.layer.stats["tcp.protocol_errors"] += 1
        self.app_closed = True
        asyncio.get_running_loop().call_soon(self._abort_after_failure, exc)

    def _abort_after_failure(self, exc: BaseException) -> None:
        if self.state != State.CLOSED:
            self._abort(exc, send_rst=True)

    def _ack_data(self) -> None:
        """RFC 9293 3.8.6.3 / RFC 5681 4.2: ACK every second full segment, else delay."""
        self.unacked_segments += 1
        if self.unacked_segments >= 2:
            self.send_ack()
        elif not self.delack_at:
            self.delack_at = self.timers.now_ns() + self.cfg.delayed_ack_ns
            self._schedule(self.delack_at)

    def _fin_arrives(self) -> None:
        """RFC 9293 3.10.7.4, eighth: advance over the FIN, ACK it, tell the application."""
        self.fin_received = True
        self.rcv_nxt = (self.rcv_nxt + 1) & MASK
        self.send_ack()
        if self.state in (State.SYN_RECEIVED, State.ESTABLISHED):
            self.state = State.CLOSE_WAIT
        elif self.state == State.FIN_WAIT_1:
            if self.fin_seq is not None and seq_lt(self.fin_seq, self.snd_una):
                self._enter_time_wait()
            else:
                self.state = State.CLOSING
        elif self.state == State.FIN_WAIT_2:
            self._enter_time_wait()
        if self.rcvq or self.reading_paused:
            self.eof_pending = True
        else:
            self._eof_to_protocol()

    def _eof_to_protocol(self) -> None:
        self.eof_pending = False
        if self.app_closed or self.lost or not isinstance(self.protocol, asyncio.Protocol):
            return
        try:
            keep_open = self.protocol.eof_received()
        except Exception as exc:  # noqa: BLE001
            self._protocol_failed(exc)
            return
        if not keep_open and not self.fin_queued:
            self.close()

    def _enter_time_wait(self) -> None:
        self.state = State.TIME_WAIT
        self.rto_at = self.persist_at = self.finwait2_at = 0
        self.timewait_at = self.timers.now_ns() + 2 * self.cfg.msl_ns
        self._schedule(self.timewait_at)
        self._connection_lost(None)

    # -- lifecycle -------------------------------------------------------------------

    def open_active(self, iss: int) -> None:
        """Send the SYN of an active open (RFC 9293 3.10.1)."""
        self.iss = iss
        self.snd_una = iss
        self.snd_max = iss
        self.recover = iss  # RFC 6582 3.2: "recover" starts at the ISS
        self.buf_seq = (iss + 1) & MASK
        self.rcv_wscale = self.layer.rcv_wscale if self.cfg.window_scaling else 0
        self.state = State.SYN_SENT
        self.timed_at = self.timers.now_ns()
        self._send_syn()

    def open_passive(self, seg: TcpSegment, iss: int) -> None:
        """Answer a SYN received in LISTEN (RFC 9293 3.10.7.2)."""
        self.irs = seg.seq
        self.rcv_nxt = (seg.seq + 1) & MASK
        self.iss = iss
        self.snd_una = iss
        self.snd_max = iss
        self.recover = iss  # RFC 6582 3.2: "recover" starts at the ISS
        self.buf_seq = (iss + 1) & MASK
        self.rcv_wscale = self.layer.rcv_wscale if self.cfg.window_scaling and seg.options.wscale is not None else 0
        self._negotiate(seg.options, active=False)
        self.snd_wnd = seg.window  # RFC 7323 2.2: the window of a SYN is never scaled
        self.snd_wl1, self.snd_wl2 = seg.seq, 0
        if self.ts_ok and seg.options.timestamp is not None:
            self.ts_recent = seg.options.timestamp[0]
        self.state = State.SYN_RECEIVED
        self._send_syn()

    def open_from_cookie(self, seg: TcpSegment, iss: int, irs: int, mss: int) -> None:
        """ESTABLISHED from a validated SYN-cookie ACK (RFC 4987 3.6), then process the segment."""
        self.iss, self.irs = iss, irs
        self.rcv_nxt = (irs + 1) & MASK
        self.rcv_adv = (self.rcv_nxt + min(self.cfg.rcv_buf, 0xFFFF)) & MASK
        self.snd_una = self.snd_nxt = self.snd_max = self.buf_seq = (iss + 1) & MASK
        self.recover = iss
        self.snd_wscale = self.rcv_wscale = 0
        self.snd_mss = min(mss, self.layer.iface.max_mss)
        self.cwnd = min(4 * self.snd_mss, max(2 * self.snd_mss, 4380))
        self.snd_wnd = self.max_snd_wnd = seg.window
        self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
        self.state = State.ESTABLISHED
        self.listener = None  # never counted in the backlog
        self.layer.stats["tcp.passive_opens"] += 1
        self._connection_made()
        if self.state == State.ESTABLISHED:
            self.segment_arrives(seg)

    def _connection_made(self) -> None:
        if not self.established.done():
            self.established.set_result(None)
        if self.keepalive:
            self.keepalive_at = self.last_rx_ns + self.keepalive_idle_ns
            self._schedule(self.keepalive_at)
        if self.protocol is None and self._protocol_factory is not None:
            try:
                self.protocol = self._protocol_factory()
            except Exception:
                log.exception("protocol factory failed")
                self._abort(ConnectionAbortedError("protocol factory failed"), send_rst=True)
                return
        if self.protocol is not None:
            try:
                self.protocol.connection_made(self)
            except Exception as exc:  # noqa: BLE001
                self._protocol_failed(exc)

    def _connection_lost(self, exc: BaseException | None) -> None:
        if self.lost:
            return
        self.lost = True
        if not self.established.done():
            if self.listener is not None:
                self.established.cancel()  # nobody waits on a passive open
            else:
                self.established.set_exception(exc or ConnectionAbortedError("connection closed"))
            return
        if self.protocol is not None:
            asyncio.get_running_loop().call_soon(_notify_lost, self.protocol, exc)

    def _abort(self, exc: BaseException, send_rst: bool) -> None:
        """Close at once with an error (RFC 9293 3.10.5 ABORT)."""
        if send_rst and self.state not in (State.CLOSED, State.SYN_SENT, State.TIME_WAIT, State.LISTEN):
            self.layer.send_rst(self.key, self.snd_max, 0, RST)
        self.error = exc
        self._destroy(exc)

    def _destroy(self, exc: BaseException | None = None) -> None:
        if self.state == State.SYN_RECEIVED and self.listener is not None:
            self.listener.half_open -= 1
        self.state = State.CLOSED
        self.rto_at = self.persist_at = self.delack_at = self.timewait_at = self.finwait2_at = 0
        self.keepalive_at = 0
        self.layer.remove(self)
        self._connection_lost(exc)

    # -- the asyncio.Transport interface ------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:  # type: ignore[override]
        """Queue ``data`` for sending (RFC 9293 3.10.2 SEND)."""
        if self.fin_queued:
            if self.lost or self.app_closed:
                return  # asyncio transports ignore writes after close
            raise RuntimeError("cannot write after write_eof()")
        if self.lost:
            return
        if not data:
            return
        self.sndbuf += data
        if self.state in SYNCHRONIZED:
            self.output()
        self._maybe_pause_writing()

    def writelines(self, list_of_data: Any) -> None:
        """Write each buffer of an iterable."""
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        """Send a FIN after the buffered data (RFC 9293 3.10.4 CLOSE of the sending side)."""
        if self.fin_queued or self.lost:
            return
        self.fin_queued = True
        if self.state in (State.ESTABLISHED, State.SYN_RECEIVED):
            self.state = State.FIN_WAIT_1
        elif self.state == State.CLOSE_WAIT:
            self.state = State.LAST_ACK
        self.output()

    def can_write_eof(self) -> bool:
        """TCP can half-close."""
        return True

    def close(self) -> None:
        """Close after sending the buffered data; ``connection_lost`` follows."""
        if self.app_closed:
            return
        self.app_closed = True
        if self.state == State.SYN_SENT:
            self._destroy()
            return
        if self.state == State.SYN_RECEIVED and not self.established.done():
            self._abort(ConnectionAbortedError("closed"), send_rst=True)
            return
        if self.rcvq:
            # RFC 9293 3.10.4 / RFC 2525 2.17: closing with unread data resets.
            self.layer.stats["tcp.reset_unread_data"] += 1
            self._abort(ConnectionAbortedError("closed with unread data"), send_rst=True)
            return
        self.write_eof()
        if self.state == State.FIN_WAIT_2:
            self.finwait2_at = self.timers.now_ns() + self.cfg.fin_wait_2_ns
            self._schedule(self.finwait2_at)

    def is_closing(self) -> bool:
        """Whether :meth:`close` or :meth:`abort` was called, or the connection is gone."""
        return self.app_closed or self.lost

    def abort(self) -> None:
        """Reset the connection now (RFC 9293 3.10.5 ABORT)."""
        self.app_closed = True
        if self.state != State.CLOSED:
            self._abort(ConnectionAbortedError("aborted"), send_rst=True)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``peername``, ``sockname`` and ``tcp_stats`` (a :class:`TcpStats`)."""
        if name == "tcp_stats":
            return self.stats
        if name == "tcp_connection":
            return self
        return super().get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Replace the protocol."""
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol."""
        assert self.protocol is not None
        return self.protocol

    def pause_reading(self) -> None:
        """Stop delivering data; the advertised window closes as the buffer fills."""
        self.reading_paused = True

    def resume_reading(self) -> None:
        """Deliver held data and reopen the window."""
        if not self.reading_paused:
            return
        self.reading_paused = False
        before = self._window_would_open()
        if self.rcvq and isinstance(self.protocol, asyncio.Protocol) and not self.app_closed:
            data, self.rcvq = bytes(self.rcvq), bytearray()
            try:
                self.protocol.data_received(data)
            except Exception as exc:  # noqa: BLE001
                self._protocol_failed(exc)
        if self.eof_pending and not self.reading_paused and not self.rcvq:
            self._eof_to_protocol()
        if self.state in SYNCHRONIZED and not before and self._window_would_open():
            self.send_ack()  # a window update (RFC 9293 3.8.6.2.2)

    def _window_would_open(self) -> bool:
        current = max(seq_diff(self.rcv_adv, self.rcv_nxt), 0)
        return self.rcv_window() - current >= min(self.cfg.rcv_buf // 2, self.snd_mss)

    def is_reading(self) -> bool:
        """Whether data is delivered as it arrives."""
        return not self.reading_paused

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Flow control thresholds for ``pause_writing``/``resume_writing``."""
        self.high_water = self.cfg.snd_buf if high is None else high
        self.low_water = self.high_water // 4 if low is None else low

    def get_write_buffer_size(self) -> int:
        """Bytes written but not yet acknowledged."""
        return len(self.sndbuf)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """``(low, high)``."""
        return (self.low_water, self.high_water)

    def set_nodelay(self, nodelay: bool = True) -> None:
        """Switch Nagle's algorithm off (``True``) or on."""
        self.nodelay = nodelay
        self.output()

    def _maybe_pause_writing(self) -> None:
        if not self.writing_paused and len(self.sndbuf) > self.high_water and self.protocol is not None:
            self.writing_paused = True
            try:
                self.protocol.pause_writing()
            except Exception:
                log.exception("pause_writing failed")

    def _maybe_resume_writing(self) -> None:
        if self.writing_paused and len(self.sndbuf) <= self.low_water and self.protocol is not None:
            self.writing_paused = False
            try:
                self.protocol.resume_writing()
            except Exception:
                log.exception("resume_writing failed")


def _notify_lost(protocol: asyncio.BaseProtocol, exc: BaseException | None) -> None:
    protocol.connection_lost(exc)  # type: ignore[arg-type]


class TcpListener:
    """A port in LISTEN with its protocol factory and SYN backlog."""

    def __init__(self, port: int, factory: Callable[[], asyncio.BaseProtocol], backlog: int) -> None:
        self.port = port
        self.factory = factory
        self.backlog = backlog
        self.half_open = 0


class TcpServer:
    """What :meth:`TcpLayer.start_server` returns; a subset of :class:`asyncio.Server`."""

    def __init__(self, layer: TcpLayer, listener: TcpListener) -> None:
        self._layer = layer
        self.listener = listener
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def port(self) -> int:
        """The listening port."""
        return self.listener.port

    def is_serving(self) -> bool:
        """Whether the port is still listening."""
        return not self._closed.done()

    def close(self) -> None:
        """Stop listening; established connections go on."""
        if self._layer.listeners.get(self.port) is self.listener:
            del self._layer.listeners[self.port]
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` was called."""
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        """Wait until the server is closed (or the caller cancelled)."""
        await asyncio.shield(self._closed)

    async def __aenter__(self) -> TcpServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


class TcpLayer:
    """TCP for one interface: demultiplexing, listeners, ISNs (:class:`unik.devices.TCP`)."""

    def __init__(self, iface: Interface, timers: Timers, random: Random, stats: Counter[str],
                 config: TcpConfig | None = None) -> None:
        self.iface = iface
        self.timers = timers
        self.random = random
        self.stats = stats
        self.config = config or TcpConfig()
        #: Segmentation offload in use: the device offers it and the configuration allows it.
        self.tso = self.config.tso and iface.network.offloads.tso
        cc.make(self.config.congestion_control)  # an unknown name fails here, not per connection
        self.connections: dict[_Key, TcpConnection] = {}
        self.listeners: dict[int, TcpListener] = {}
        # RFC 6528: a secret key for the ISN hash, from the Random device (and one for cookies).
        self._secret = random.generate(16)
        self._cookie_secret = random.generate(16)
        self.challenge_bucket = TokenBucket(self.config.challenge_ack_rate, int(self.config.challenge_ack_rate))
        # RFC 7323 2.3: the smallest shift that lets the window cover the buffer.
        shift = 0
        while (0xFFFF << shift) < self.config.rcv_buf and shift < 14:
            shift += 1
        self.rcv_wscale = shift
        iface.tcp_input = self.input
        iface.tcp_fast_input = self.fast_input
        iface.icmp_error[Protocol.TCP] = self.icmp_error

    # -- the application's API ----------------------------------------------------

    def isn(self, key: _Key) -> int:
        """RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey)."""
        m = self.timers.now_ns() // 4000  # a 4-microsecond timer
        digest = blake2s(
            key[0] + key[1].to_bytes(2, "big") + key[2] + key[3].to_bytes(2, "big"), key=self._secret,
            digest_size=4,
        ).digest()
        return (m + int.from_bytes(digest, "big")) & MASK

    def _free_port(self, remote: tuple[bytes, int]) -> int:
        start = int.from_bytes(self.random.generate(2), "big") % len(EPHEMERAL)
        for i in range(len(EPHEMERAL)):
            port = EPHEMERAL[(start + i) % len(EPHEMERAL)]
            if port not in self.listeners and (self.iface.address, port, *remote) not in self.connections:
                return port
        raise OSError(errno.EADDRNOTAVAIL, "no free TCP port")

    async def create_connection(self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: str,
                                port: int, *, local_port: int = 0) -> tuple[TcpConnection, asyncio.BaseProtocol]:
        """Open a connection running ``protocol_factory()`` (like ``loop.create_connection``).

        ``local_port`` 0 picks a free ephemeral port.
        """
        try:
            dst = ip_bytes(host)
        except ValueError:
            raise OSError(errno.EINVAL, f"{host!r} is not an IPv4 address (unik's stack has no resolver)") \
                from None
        if not 0 < port < 65536:
            raise OSError(errno.EINVAL, f"bad port {port}")
        if self.iface.route(dst) is None:
            raise OSError(errno.ENETUNREACH, f"no route to {host}")
        if len(self.connections) >= self.config.max_connections:
            raise OSError(errno.EMFILE, "too many TCP connections")
        if local_port == 0:
            local_port = self._free_port((dst, port))
        elif (self.iface.address, local_port, dst, port) in self.connections:
            raise OSError(errno.EADDRINUSE, f"a connection from port {local_port} to {host}:{port} exists")
        conn = TcpConnection(self, (self.iface.address, local_port), (dst, port), protocol_factory)
        self.connections[conn.key] = conn
        conn.open_active(self.isn(conn.key))
        try:
            await asyncio.shield(conn.established)
        except asyncio.CancelledError:
            conn.abort()
            raise
        assert conn.protocol is not None
        return conn, conn.protocol

    async def connect(self, host: str, port: int, *, limit: int = 2**16) -> Flow:
        """Open a connection and return its reader and writer (like ``asyncio.open_connection``)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport, _ = await self.create_connection(lambda: protocol, host, port)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        return Flow(reader, writer)

    async def create_server(self, protocol_factory: Callable[[], asyncio.BaseProtocol], port: int,
                            backlog: int | None = None) -> TcpServer:
        """Listen on ``port``, running ``protocol_factory()`` per connection."""
        if not 0 < port < 65536:
            raise OSError(errno.EINVAL, f"bad port {port}")
        if port in self.listeners:
            raise OSError(errno.EADDRINUSE, f"TCP port {port} is already listening")
        listener = TcpListener(port, protocol_factory, backlog or self.config.syn_backlog)
        self.listeners[port] = listener
        return TcpServer(self, listener)

    async def start_server(self, handler: FlowHandler, port: int, *, limit: int = 2**16,
                           backlog: int | None = None) -> TcpServer:
        """Call ``handler(reader, writer)`` for each connection (like ``asyncio.start_server``)."""
        loop = asyncio.get_running_loop()

        def factory() -> asyncio.BaseProtocol:
            reader = asyncio.StreamReader(limit=limit, loop=loop)
            return asyncio.StreamReaderProtocol(reader, handler, loop=loop)  # type: ignore[arg-type]

        return await self.create_server(factory, port, backlog)

    async def listen(self, port: int, backlog: int | None = None,
                     limit: int = 2**16) -> asyncio.Queue[Flow]:
        """Listen on ``port``; accepted flows arrive on the returned queue."""
        queue: asyncio.Queue[Flow] = asyncio.Queue()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await queue.put(Flow(reader, writer))

        await self.start_server(accept, port, limit=limit, backlog=backlog)  # type: ignore[arg-type]
        return queue

    # -- input ---------------------------------------------------------------------

    def icmp_error(self, msg: IcmpPacket, quoted: memoryview) -> None:
        """An ICMP error about one of our segments (RFC 1122 4.2.3.9, RFC 5927, RFC 1191)."""
        header_len = (quoted[0] & 15) * 4
        sport, dport, seq = struct.unpack_from("!HHI", quoted, header_len)
        key = (bytes(quoted[12:16]), sport, bytes(quoted[16:20]), dport)
        conn = self.connections.get(key)
        if conn is None:
            self.stats["tcp.icmp_no_connection"] += 1
            return
        # RFC 5927 4.1: believe only errors quoting a sequence number in flight.
        if not (seq_le(conn.snd_una, seq) and seq_lt(seq, conn.snd_max)) and not (
                conn.state == State.SYN_SENT and seq == conn.iss):
            self.stats["tcp.icmp_out_of_window"] += 1
            return
        self.stats["tcp.icmp_errors"] += 1
        conn.icmp_error(msg.type, msg.code, (msg.rest[2] << 8) | msg.rest[3])

    def input(self, ip: Ipv4Packet) -> None:
        """A datagram carrying TCP: parse the segment and demultiplex it."""
        seg = TcpSegment.parse(ip.payload, ip.src, ip.dst, self.iface.verify_rx_checksum)
        self.segment_input(ip.src, ip.dst, seg)

    def fast_input(self, frame: bytes | bytearray | memoryview, fields: tuple[Any, ...]) -> None:
        """A segment that :func:`unik_tcpip.fastpath.tcp4_parse` parsed, straight from its frame.

        :meth:`segment_input`, inlined: this runs for nearly every segment.
        """
        seg = TcpSegment.from_fast(frame, fields)
        self.stats["tcp.rx"] += 1
        key = (fields[2], seg.dst_port, fields[1], seg.src_port)
        conn = self.connections.get(key)
        if conn is not None:
            conn.segment_arrives(seg)
        else:
            self.segment_arrives_listen(key, seg)

    def segment_input(self, src: bytes, dst: bytes, seg: TcpSegment) -> None:
        """Demultiplex a parsed segment from ``src`` to ``dst`` (RFC 9293 3.10.7).

        Nothing here depends on the address family: an IPv6 interface hands its
        segments in the same way, with 16-byte addresses.
        """
        self.stats["tcp.rx"] += 1
        key = (dst, seg.dst_port, src, seg.src_port)
        conn = self.connections.get(key)
        if conn is not None:
            conn.segment_arrives(seg)
        else:
            self.segment_arrives_listen(key, seg)

    def segment_arrives_listen(self, key: _Key, seg: TcpSegment) -> None:
        """RFC 9293 3.10.7.1 (CLOSED) and 3.10.7.2 (LISTEN)."""
        flags = seg.flags
        listener = self.listeners.get(key[1])
        if listener is None or key[0] != self.iface.address:
            # 3.10.7.1: no connection: answer everything but a RST with a RST.
            self.stats["tcp.no_connection"] += 1
            if not flags & RST:
                if flags & ACK:
                    self.send_rst(key, seg.ack, 0, RST)
                else:
                    self.send_rst(key, 0, (seg.seq + seg.seg_len) & MASK, RST | ACK)
            return
        # 3.10.7.2: first check for a RST (ignore), then an ACK (reset), then a SYN.
        if flags & RST:
            return
        if flags & ACK:
            if not flags & SYN and self.config.syn_cookies and self._cookie_ack(key, seg, listener):
                return
            self.send_rst(key, seg.ack, 0, RST)
            return
        if not flags & SYN:
            self.stats["tcp.listen_no_syn"] += 1
            return
        if len(self.connections) >= self.config.max_connections:
            self.stats["tcp.too_many_connections"] += 1
            return
        if listener.half_open >= listener.backlog:
            self.stats["tcp.syn_backlog_full"] += 1
            if self.config.syn_cookies:
                self._cookie_syn_ack(key, seg)
            return
        conn = TcpConnection(self, (key[0], key[1]), (key[2], key[3]), listener.factory, listener)
        self.connections[key] = conn
        listener.half_open += 1
        conn.open_passive(seg, self.isn(key))

    # -- SYN cookies (RFC 4987 3.6) -------------------------------------------------

    #: MSS values a cookie can name in 3 bits (RFC 4987 3.6 encodes an MSS index).
    COOKIE_MSS = (536, 1220, 1440, 1460, 4036, 8960, 8960, 8960)

    def _cookie(self, key: _Key, irs: int, slot: int, mss_index: int) -> int:
        """ISS = 5 bits of a 64-second clock, 3 bits of MSS index, 24 bits of keyed hash."""
        digest = blake2s(
            key[0] + key[1].to_bytes(2, "big") + key[2] + key[3].to_bytes(2, "big")
            + irs.to_bytes(4, "big") + bytes((slot & 31, mss_index)),
            key=self._cookie_secret, digest_size=3).digest()
        return ((slot & 31) << 27) | (mss_index << 24) | int.from_bytes(digest, "big")

    def _cookie_slot(self) -> int:
        return self.timers.now_ns() // (64 * _S)

    def _cookie_syn_ack(self, key: _Key, seg: TcpSegment) -> None:
        """Answer a SYN statelessly when the backlog is full; the ISS encodes what we need."""
        peer_mss = seg.options.mss or 536
        own = min(peer_mss, self.iface.max_mss)
        index = max((i for i, m in enumerate(self.COOKIE_MSS) if m <= own), default=0)
        iss = self._cookie(key, seg.seq, self._cookie_slot(), index)
        self.stats["tcp.syncookies_sent"] += 1
        # No window scale, timestamps or SACK: nothing remembers them (RFC 4987 3.6).
        segment = TcpSegment.build(key[0], key[2], key[1], key[3], iss, (seg.seq + 1) & MASK, SYN | ACK,
                                   min(self.config.rcv_buf, 0xFFFF), TcpOptions(mss=self.iface.max_mss).to_bytes(),
                                   headroom=self.iface.headroom)
        self.output(key[2], segment)

    def _cookie_ack(self, key: _Key, seg: TcpSegment, listener: TcpListener) -> bool:
        """Complete a handshake whose SYN-ACK was a cookie; ``False`` if the ACK carries none."""
        iss = (seg.ack - 1) & MASK
        irs = (seg.seq - 1) & MASK
        slot, index = iss >> 27, (iss >> 24) & 7
        now = self._cookie_slot()
        # Valid for the current and the previous 64-second slot.
        if not any((s & 31) == slot and self._cookie(key, irs, s, index) == iss for s in (now, now - 1)):
            self.stats["tcp.syncookies_failed"] += 1
            return False
        if len(self.connections) >= self.config.max_connections:
            self.stats["tcp.too_many_connections"] += 1
            return True
        self.stats["tcp.syncookies_ok"] += 1
        conn = TcpConnection(self, (key[0], key[1]), (key[2], key[3]), listener.factory, listener)
        self.connections[key] = conn
        conn.open_from_cookie(seg, iss, irs, self.COOKIE_MSS[index])
        return True

    # -- output --------------------------------------------------------------------

    def output(self, dst: bytes, segment: bytearray, offload: TxOffload | None = None) -> None:
        """Route a built segment (headroom included); DF is set (RFC 1191 path MTU discovery)."""
        self.stats["tcp.tx"] += 1
        self.iface.ip_output(dst, Protocol.TCP, segment, df=True, offload=offload)

    def send_rst(self, key: _Key, seq: int, ack: int, flags: int) -> None:
        """A reset for ``key`` (local address/port, remote address/port)."""
        self.stats["tcp.resets_sent"] += 1
        segment = TcpSegment.build(key[0], key[2], key[1], key[3], seq, ack, flags, 0,
                                   headroom=self.iface.headroom)
        self.output(key[2], segment)

    def remove(self, conn: TcpConnection) -> None:
        """Forget a closed connection."""
        if self.connections.get(conn.key) is conn:
            del self.connections[conn.key]

    def close_all(self) -> None:
        """Reset every connection (the stack is disconnecting)."""
        for conn in list(self.connections.values()):
            conn._abort(ConnectionAbortedError("the TCP/IP stack was disconnected"), send_rst=True)
        self.listeners.clear()

