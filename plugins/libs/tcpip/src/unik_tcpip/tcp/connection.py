"""One TCP connection as a state machine without I/O (RFC 9293 3.3.1's transmission control block).

A :class:`Connection` is *fed* segments (:meth:`Connection.segment_arrives`), the time
(:meth:`Connection.on_timer`) and the application's calls (:meth:`Connection.send`,
:meth:`Connection.shutdown`, :meth:`Connection.close`...), each with the current
time in nanoseconds.  It answers by appending built segments to :attr:`Connection.outbox`,
data for the application to :attr:`Connection.rcv`'s ready list, and :class:`Event` members
to :attr:`Connection.events`; :attr:`Connection.wake_at` asks for a timer call.  Nothing
here awaits or touches a device, so a test drives one connection transition by transition
(``tests/tcpip/test_tcp_core.py``), and :mod:`unik_tcpip.tcp.transport` puts an asyncio
transport on top.

Segment processing follows RFC 9293 3.10.7 ("SEGMENT ARRIVES") step by step; each rule
carries a comment naming its section.  Drops are counted in the stack's counters under
their reason (``"tcp.unacceptable"``, ``"tcp.paws_rejected"``...).
"""

from __future__ import annotations

import enum
import errno
from collections import Counter

from unik.devices import TxOffload
from unik.record import Record

from .. import cc, fastpath
from ..addr import ip_text
from ..iface import TokenBucket
from ..wire import icmp as wire_icmp
from ..wire.tcp import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment, sack_option
from . import predict
from .assembler import Assembler
from .buffers import ReceiveQueue, SendBuffer
from .config import TcpConfig, TcpStats
from .rack import Rack
from .rtt import RttEstimator
from .sack import Scoreboard
from .seq import MASK, seq_diff, seq_le, seq_lt
from .state import OPENING, RECEIVING, SYNCHRONIZED, State
from .timer import Timer, TimerSet

_MS = 10**6
_S = 10**9
_TS_LEN = 12  # NOP, NOP, Timestamps: the option bytes on every segment once negotiated
_TSO_MAX = 65535 - 20 - 60  # the largest TCP payload an IPv4 super-frame can carry
_WC_DEL_ACK = 200 * _MS  # RFC 8985 7.2: the worst-case delayed-ACK time a lone segment waits for
_PTO_MIN = 10 * _MS  # a floor under 2 SRTT on a fast link (Linux's TCP_TIMEOUT_MIN)

Key = tuple[bytes, int, bytes, int]


class Event(enum.Enum):
    """What a call did that the application (or the connection table) must hear about."""

    #: The handshake completed: the application's connection begins.
    ESTABLISHED = "established"
    #: The peer's FIN arrived after all its data: the application reads end-of-file.
    EOF = "eof"
    #: The application's connection is over (:attr:`Connection.error` says why, ``None``: cleanly).
    LOST = "lost"
    #: The connection reached CLOSED: forget it.
    CLOSED = "closed"

    __hash__ = object.__hash__


class Path(Record):
    """What the network layer below tells a connection: header room, MSS ceiling, offloads."""

    __slots__ = ("gso_tcp", "headroom", "ip_header_len", "max_mss", "tso")
    #: Bytes to leave in front of the TCP header (link and IP headers).
    headroom: int
    #: The MSS announced: the largest payload one MTU carries without options.
    max_mss: int
    ip_header_len: int
    #: virtio-net GSO type of TCP over this family.
    gso_tcp: int
    #: Hand segments of up to 64 KiB to the NIC (it offers TSO and the configuration allows it).
    tso: bool

    def __init__(self, headroom: int, max_mss: int, ip_header_len: int = 20, gso_tcp: int = 1,
                 tso: bool = False) -> None:
        self.headroom = headroom
        self.max_mss = max_mss
        self.ip_header_len = ip_header_len
        self.gso_tcp = gso_tcp
        self.tso = tso


class Connection:
    """A transmission control block and the rules of RFC 9293 3.10 that move it."""

    def __init__(self, config: TcpConfig, path: Path, local: tuple[bytes, int], remote: tuple[bytes, int], *,
                 counters: Counter[str], challenge: TokenBucket, ts_offset: int, rcv_wscale: int,
                 passive: bool = False) -> None:
        self.cfg = config
        self.path = path
        self.counters = counters
        self.challenge = challenge
        self.local, self.remote = local, remote
        self.key: Key = (local[0], local[1], remote[0], remote[1])
        self.passive = passive
        self.state = State.CLOSED
        self.stats = TcpStats()
        self.now = 0
        #: Segments built for the wire, with their offload, oldest first; the driver empties it.
        #: Whole frames while :attr:`link` is set, else segments behind :attr:`Path.headroom`.
        self.outbox: list[tuple[bytearray, TxOffload | None]] = []
        #: The peer's link header (14 bytes: its MAC, ours, the EtherType), which the driver sets
        #: while the network layer vouches for it: segments are then built as whole frames
        #: (:func:`unik_tcpip.fastpath.tcp_frame`), the IPv4 or IPv6 header with :attr:`link_ttl`
        #: and, for IPv4, the identification :attr:`ip_ident` (meaningless with DF, RFC 6864 4.1).
        #: ``None``: the network layer adds the headers (routing, resolution, loopback).
        self.link: bytes | None = None
        self.link_ttl = 64
        self.ip_ident = ts_offset & 0xFFFF
        #: What happened, in order; the driver empties it.
        self.events: list[Event] = []
        #: Why the connection ended (``None``: cleanly or not yet).
        self.error: BaseException | None = None
        #: A deadline the driver should call :meth:`on_timer` at (0: none new).
        self.wake_at = 0
        self._armed = 0
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
        self.rcv_wscale = rcv_wscale if config.window_scaling else 0
        self.ts_ok = False
        self.ts_recent = 0
        # RFC 7323 7.1: a random offset per connection for the timestamp clock.
        self.ts_offset = ts_offset
        self.last_ack_sent = 0
        self.sack_ok = False
        self.peer_offered: TcpOptions | None = None
        self.snd = SendBuffer()
        self.fin_queued = False  # the application closed its sending side
        self.fin_seq: int | None = None  # the sequence number of our FIN, once sent
        self.app_closed = False  # close() (not just shutdown) was called, or the application failed
        self.rcv = ReceiveQueue(config.rcv_buf)
        self.ooo = Assembler(config.rcv_buf)
        self.fin_received = False
        self.peer_fin_seq: int | None = None
        #: A duplicate segment to report first in the next SACK option (RFC 2883 D-SACK).
        self.dsack: tuple[int, int] | None = None
        self.reading_paused = False
        # Congestion control (RFC 5681, RFC 6582).
        self.cwnd = 0
        self.ssthresh = 1 << 30
        self.dupacks = 0
        self.recover = 0
        self.in_recovery = False
        self.limited_transmit = 0  # RFC 3042: extra allowance on the first two duplicate ACKs
        self.cc = cc.make(config.congestion_control)
        self.scoreboard = Scoreboard()
        self.rexmit_next = 0  # in recovery: where the next hole retransmission may start
        #: RFC 8985 6: when each outstanding segment was sent, and what was delivered (with SACK).
        self.rack = Rack()
        # RFC 8985 7: the tail loss probe in flight (TLPRxtOut, TLPHighRxt).
        self.tlp_end_seq: int | None = None
        self.tlp_retransmitted = False
        #: Bytes sent since the driver last called :meth:`resume_output`, which it does on the
        #: turn of its event loop after the budget ran out: a burst is bounded per turn.
        self.burst_used = 0
        #: The burst stopped with more to send (:meth:`resume_output` goes on).
        self.output_pending = False
        self.rtt = RttEstimator(config.initial_rto_ns, config.min_rto_ns, config.max_rto_ns)
        self.retries = 0
        self.timers = TimerSet()
        self.persist_backoff = 0
        self.keepalive = config.keepalive
        self.keepalive_idle_ns = config.keepalive_idle_ns
        self.keepalive_interval_ns = config.keepalive_interval_ns
        self.keepalive_probes = config.keepalive_probes
        self.keepalive_sent = 0
        self.last_rx_ns = 0
        self.unacked_segments = 0
        self.nodelay = not config.nagle
        self.soft_error: tuple[int, int] | None = None
        self.last_send_ns = 0

    def __repr__(self) -> str:
        return (f"<Connection {ip_text(self.local[0])}:{self.local[1]} -> "
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
        return self.rcv.window()

    def _window_field(self) -> int:
        """The window to advertise, scaled (RFC 7323 2.3), never shrinking (RFC 9293 3.8.6)."""
        # (Runs for every segment sent: plain comparisons rather than min/max and seq_* calls.)
        shift = self.rcv_wscale
        top = 0xFFFF << shift
        rcv_buf = self.cfg.rcv_buf
        rcv_nxt = self.rcv_nxt
        wnd = self.rcv.capacity - len(self.rcv.held)  # the free receive buffer
        if wnd < 0:
            wnd = 0
        elif wnd > top:
            wnd = top
        # What is advertised already: RCV.ADV - RCV.NXT, at least 0, at most the buffer.
        current = (self.rcv_adv - rcv_nxt) & MASK
        if current > 0x7FFFFFFF:
            current = 0
        elif current > rcv_buf:
            current = rcv_buf
        # RFC 9293 3.8.6.2.2: receiver SWS avoidance: open the window only in steps of
        # min(buffer / 2, MSS).
        if wnd > current and wnd - current < min(rcv_buf // 2, self.snd_mss):
            wnd = current
        # RFC 9293 3.8.6: the right edge does not move left.
        if wnd < current:
            wnd = current
        if wnd > top:
            wnd = top
        field_ = wnd >> shift
        if field_ > 0xFFFF:
            field_ = 0xFFFF
        edge = (rcv_nxt + (field_ << shift)) & MASK
        if ((self.rcv_adv - edge) & MASK) > 0x7FFFFFFF:
            self.rcv_adv = edge
        return field_

    def window_would_open(self) -> bool:
        """Whether a window update would open the window by a useful amount (RFC 9293 3.8.6.2.2)."""
        current = max(seq_diff(self.rcv_adv, self.rcv_nxt), 0)
        return self.rcv.window() - current >= min(self.cfg.rcv_buf // 2, self.snd_mss)

    # -- output ----------------------------------------------------------------------

    def _ts_value(self) -> int:
        return (self.now // _MS + self.ts_offset) & MASK

    def _send(self, flags: int, seq: int, data: bytes | bytearray | memoryview = b"",
              options: TcpOptions | None = None) -> None:
        """Build one segment with the current ACK and window into the outbox.

        ``options`` are a SYN's; other segments carry timestamps and SACK blocks as
        negotiated, built by :func:`unik_tcpip.fastpath.tcp_segment` in one call.
        """
        tsval = tsecr = -1
        raw_options = b""
        if options is None:
            if self.ts_ok and not flags & RST:
                # RFC 7323 3.2: once negotiated, every non-RST segment carries timestamps.
                tsval, tsecr = (self.now // _MS + self.ts_offset) & MASK, self.ts_recent
            if self.sack_ok and (self.ooo.segments or self.dsack is not None) and not flags & SYN:
                # RFC 2018 3: as many blocks as fit beside the data within the MSS; a
                # D-SACK first (RFC 2883 4).
                space = self.snd_mss - len(data) - (_TS_LEN if self.ts_ok else 0) - 4
                if space >= 8:
                    blocks = self.ooo.sack_blocks(3 if self.ts_ok else 4)
                    if self.dsack is not None:
                        blocks = (self.dsack, *blocks)
                    raw_options = sack_option(blocks[:min(space // 8, 3 if self.ts_ok else 4)])
                self.dsack = None
        else:
            if self.ts_ok and not flags & RST:
                options.timestamp = (self._ts_value(), self.ts_recent)
            raw_options = options.to_bytes()
        ack = self.rcv_nxt if flags & ACK else 0
        if flags & SYN:
            window = min(self.rcv.window(), 0xFFFF)  # RFC 7323 2.2: never scaled in a SYN
            self.rcv_adv = (self.rcv_nxt + window) & MASK
        else:
            window = self._window_field()
        if flags & ACK:
            self.last_ack_sent = ack
            self.timers.delayed_ack = 0
            self.unacked_segments = 0
        if self.sack_ok and (data or flags & FIN) and not flags & SYN and self.cfg.rack:
            # RFC 8985 6.1: when each segment left (RACK needs SACK, RFC 8985 3).
            end = (seq + len(data) + (1 if flags & FIN else 0)) & MASK
            if seq_lt(seq, self.snd_max):
                self.rack.resent(seq, end, self.now)
            else:
                self.rack.sent_segment(seq, end, self.now, self.snd_una)
        path = self.path
        self.stats.segments_out += 1
        if len(data) > self.snd_mss - (_TS_LEN if self.ts_ok else 0):  # eff_mss
            # A super-segment: the NIC cuts it into MSS-sized segments and completes every
            # checksum (TSO through the virtio-net header; the kernel's own GSO does the same).
            segment = self._build(seq, ack, flags, window, tsval, tsecr, raw_options, data, True)
            header_len = 20 + (12 if tsval >= 0 else 0) + (len(raw_options) + 3) // 4 * 4
            offload = TxOffload(path.headroom, 16, path.gso_tcp, self.eff_mss, path.headroom + header_len)
            self.outbox.append((segment, offload))
            return
        self.outbox.append((self._build(seq, ack, flags, window, tsval, tsecr, raw_options, data, False), None))

    def _build(self, seq: int, ack: int, flags: int, window: int, tsval: int, tsecr: int,
               options: bytes | bytearray, data: bytes | bytearray | memoryview, partial: bool) -> bytearray:
        """One segment: a whole frame when :attr:`link` is known, else behind the path's headroom."""
        local, remote, link = self.local, self.remote, self.link
        if link is None:
            return fastpath.tcp_segment(local[0], remote[0], local[1], remote[1], seq, ack, flags, window,
                                        tsval, tsecr, options, data, self.path.headroom, partial)
        ident = self.ip_ident
        self.ip_ident = (ident + 1) & 0xFFFF
        return fastpath.tcp_frame(link, local[0], remote[0], local[1], remote[1], seq, ack, flags, window,
                                  tsval, tsecr, options, data, ident, self.link_ttl, partial)

    def send_rst(self, seq: int, ack: int, flags: int = RST) -> None:
        """A reset: <SEQ=seq><ACK=ack><CTL=flags> without options or window."""
        self.counters["tcp.resets_sent"] += 1
        self.outbox.append((self._build(seq, ack, flags, 0, -1, -1, b"", b"", False), None))

    def _syn_options(self) -> TcpOptions:
        """Our SYN options: MSS, and window scale/timestamps/SACK if offered (RFC 7323 1.3)."""
        peer = self.peer_offered  # None on an active open: offer everything enabled
        opts = TcpOptions(mss=self.path.max_mss)
        if self.cfg.window_scaling and (peer is None or peer.wscale is not None):
            opts.wscale = self.rcv_wscale
        if self.cfg.sack and (peer is None or peer.sack_permitted):
            opts.sack_permitted = True
        if self.cfg.timestamps and (peer is None or peer.timestamp is not None):
            opts.timestamp = (self._ts_value(), peer.timestamp[0] if peer and peer.timestamp else 0)
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
        """Send what the windows, Nagle and the FIN allow (RFC 9293 3.8.6.2.1, RFC 5681).

        The common case (new data in ESTABLISHED or CLOSE-WAIT, nothing to retransmit, no
        SACK blocks or FIN to send) is :func:`unik_tcpip.tcp.predict.output`'s, in C; it
        hands back whatever else it meets, and the loop below goes on from there.
        """
        if predict.output(self):
            return
        if self.state not in SYNCHRONIZED:
            return
        snd = self.snd
        if not self.fin_queued and ((self.snd_nxt - snd.seq) & MASK) == len(snd.data):
            return  # everything buffered has been sent (the common case after an ACK)
        mss = self.snd_mss - (_TS_LEN if self.ts_ok else 0)  # eff_mss
        tso = self.path.tso
        # With TSO, one send covers as many whole segments as fit in 64 KiB.
        limit = max(_TSO_MAX // mss * mss, mss) if tso else mss
        # Bytes one turn of the driver's loop may send: max_burst segments, or with TSO
        # eight super-segments (the NIC's ACKs come coalesced).
        budget = max(self.cfg.max_burst * mss, 8 * limit if tso else limit)
        now = self.now
        if self.snd_una == self.snd_max and self.last_send_ns and now - self.last_send_ns > self.rtt.rto_ns:
            # RFC 5681 4.1: after an idle period longer than the RTO, restart from at most
            # the initial window rather than bursting a stale cwnd.
            self.cwnd = min(self.cwnd, min(4 * mss, max(2 * mss, 4380)))
        while True:
            buffered = len(snd.data)
            snd_nxt = self.snd_nxt
            off = seq_diff(snd_nxt, snd.seq)
            avail = buffered - off
            if self.fin_seq is not None and not seq_lt(snd_nxt, (self.fin_seq + 1) & MASK):
                return  # everything, FIN included, has been sent
            in_flight = seq_diff(snd_nxt, self.snd_una)
            wnd = self.cwnd + self.limited_transmit
            if self.snd_wnd < wnd:
                wnd = self.snd_wnd
            n = wnd - in_flight  # usable
            if avail < n:
                n = avail
            if limit < n:
                n = limit
            if n < 0:
                n = 0
            fin = self.fin_queued and off + n == buffered
            if n == 0 and not fin:
                if avail > 0 and self.snd_wnd == 0 and in_flight == 0:
                    self._start_persist()
                return
            if self.burst_used >= budget:
                # A bounded burst: the driver reads the ACKs waiting for it, then resumes.
                self.output_pending = True
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
            seq = snd_nxt
            retransmit = seq_lt(seq, self.snd_max)
            if n > 4096:
                data = memoryview(snd.data)[off:off + n]  # a super-segment: no copy before the C builder's
                self._send(flags, seq, data)
                data.release()
            else:
                self._send(flags, seq, snd.data[off:off + n])
            self.burst_used += n or 1
            self.last_send_ns = now
            if retransmit:
                self.stats.retransmits += 1
            else:
                self.stats.bytes_out += n
            if fin:
                self.fin_seq = snd.end
            self.snd_nxt = (seq + n + (1 if fin else 0)) & MASK
            if seq_lt(self.snd_max, self.snd_nxt):
                self.snd_max = self.snd_nxt
            if not retransmit and not self.ts_ok:
                self.rtt.time(seq, now)
            if not self.timers.rto:
                self._start_rto()
            if not self.timers.probe:
                self._arm_probe()
            self.timers.persist = 0
            if fin or (off + n == buffered and not self.fin_queued):
                return  # the FIN, or all that is buffered, has left

    def resume_output(self, now: int) -> None:
        """A later turn of the driver's loop: a new burst budget; go on with what waits."""
        self.now = now
        self.burst_used = 0
        if self.output_pending:
            self.output_pending = False
            self.output()

    def _retransmit_hole(self) -> bool:
        """In recovery, resend the next hole below the highest SACKed byte (RFC 6675 4, NextSeg rule 1)."""
        una = self.snd_una
        hole = self.scoreboard.next_hole(max(seq_diff(self.rexmit_next, una), 0), una, self.eff_mss)
        if hole is None:
            return False
        start, n = hole
        off = self.snd.offset((una + start) & MASK)
        if off < 0 or off + n > len(self.snd):
            return False
        data = memoryview(self.snd.data)[off:off + n]
        self._send(ACK, (una + start) & MASK, data)
        data.release()
        self.stats.retransmits += 1
        self.counters["tcp.sack_retransmits"] += 1
        self.rtt.discard()
        self.rexmit_next = (una + start + n) & MASK
        return True

    def _retransmit_first(self) -> None:
        """Resend the first unacknowledged segment (fast retransmit, partial ACKs)."""
        off = self.snd.offset(self.snd_una)
        n = min(self.eff_mss, len(self.snd) - off)
        self.rexmit_next = (self.snd_una + max(n, 0)) & MASK
        flags = ACK
        if n <= 0:
            if self.fin_seq is None:
                return
            n = 0
        if self.fin_seq is not None and off + n == len(self.snd):
            flags |= FIN
        data = memoryview(self.snd.data)[off:off + max(n, 0)]
        self._send(flags, self.snd_una, data)
        data.release()
        self.stats.retransmits += 1
        self.rtt.discard()  # Karn: never time a retransmitted segment

    # -- timers ----------------------------------------------------------------------

    def _schedule(self, deadline: int) -> None:
        if deadline and (not self._armed or deadline < self._armed):
            self._armed = deadline
            self.wake_at = deadline

    def _start_rto(self) -> None:
        self.timers.rto = self.now + self.rtt.rto_ns
        self._schedule(self.timers.rto)

    def _start_persist(self) -> None:
        if not self.timers.persist:
            delay = min(max(self.rtt.rto_ns, self.cfg.min_rto_ns) << self.persist_backoff, self.cfg.max_rto_ns)
            self.timers.persist = self.now + delay
            self._schedule(self.timers.persist)

    def on_timer(self, now: int) -> None:
        """The driver's call at (or after) :attr:`wake_at`: serve every timer due."""
        self.now = now
        if now >= self._armed:
            # The call for the earliest deadline asked: the next one is asked anew below.
            # An earlier call's left-over (the driver's timers cannot be cancelled) leaves
            # that request standing; re-asking on each of those made every left-over
            # ask for two more (3 timer entries per request under wrk -c100).
            self._armed = 0
        if self.state == State.CLOSED:
            return
        for timer in self.timers.expire(now):
            if timer is Timer.TIME_WAIT:
                self._destroy()
            elif timer is Timer.FIN_WAIT_2:
                if self.state != State.FIN_WAIT_2:
                    continue
                self.counters["tcp.fin_wait_2_timeout"] += 1
                self._destroy()
            elif timer is Timer.RTO:
                self._on_rto()
            elif timer is Timer.RACK:
                if self.state in SYNCHRONIZED and self.rack.sent:
                    self._rack_detect()
            elif timer is Timer.PROBE:
                self._on_probe()
            elif timer is Timer.PERSIST:
                self._on_persist()
            elif timer is Timer.DELAYED_ACK:
                self.send_ack()
            else:
                self._on_keepalive(now)
            if self.closed:
                return
        for deadline in self.timers.pending():
            self._schedule(deadline)

    def _on_keepalive(self, now: int) -> None:
        """RFC 9293 3.8.4: probe an idle connection; abort after ``keepalive_probes`` silent probes."""
        if not self.keepalive or self.state not in (State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_2):
            return
        idle = now - self.last_rx_ns
        if idle < self.keepalive_idle_ns:
            self.keepalive_sent = 0
            self.timers.keepalive = self.last_rx_ns + self.keepalive_idle_ns
            return
        if self.keepalive_sent >= self.keepalive_probes:
            self.counters["tcp.keepalive_timeouts"] += 1
            self._abort(TimeoutError("TCP keep-alive: the peer stopped answering"), send_rst=True)
            return
        # RFC 1122 4.2.3.6: a probe is a segment with SEG.SEQ = SND.NXT - 1 (and no data
        # here), which the peer answers with an ACK.
        self.keepalive_sent += 1
        self.counters["tcp.keepalive_probes"] += 1
        self._send(ACK, (self.snd_max - 1) & MASK)
        self.timers.keepalive = now + self.keepalive_interval_ns

    def set_keepalive(self, now: int, enable: bool = True, idle: float | None = None,
                      interval: float | None = None, probes: int | None = None) -> None:
        """Switch keep-alives on or off (times in seconds), like SO_KEEPALIVE and TCP_KEEPIDLE."""
        self.now = now
        self.keepalive = enable
        if idle is not None:
            self.keepalive_idle_ns = int(idle * _S)
        if interval is not None:
            self.keepalive_interval_ns = int(interval * _S)
        if probes is not None:
            self.keepalive_probes = probes
        self.timers.keepalive = 0
        if enable and self.state in SYNCHRONIZED:
            self.timers.keepalive = self.last_rx_ns + self.keepalive_idle_ns
            self._schedule(self.timers.keepalive)

    def _on_rto(self) -> None:
        """RFC 6298 5.4-5.7: retransmit the earliest segment, back off, collapse cwnd."""
        opening = self.state in OPENING
        if seq_le(self.snd_max, self.snd_una) and not opening:
            return  # nothing outstanding
        self.retries += 1
        if self.retries > (self.cfg.max_syn_retries if opening else self.cfg.max_retries):
            # RFC 9293 3.8.3: R2 exceeded: close the connection.
            self.counters["tcp.timeouts_aborted"] += 1
            why = "" if self.soft_error is None else \
                f" (last ICMP error, in ICMPv4's terms: type {self.soft_error[0]} code {self.soft_error[1]})"
            self._abort(TimeoutError(
                f"TCP connection to {ip_text(self.remote[0])}:{self.remote[1]} timed out{why}"),
                send_rst=self.state != State.SYN_SENT)
            return
        self.stats.timeouts += 1
        self.counters["tcp.rto"] += 1
        self.timers.probe = self.timers.rack = 0
        self.rack.timed_out()
        self.tlp_end_seq = None
        # RFC 6298 5.5: back off the timer; 5.6: restart it.
        self.rtt.back_off()
        if opening:
            self.stats.retransmits += 1
            self._send_syn()
            return
        # RFC 5681 3.1, equation 4 (or RFC 9438 4.6), then a loss window of one segment.
        flight = seq_diff(self.snd_max, self.snd_una)
        self.ssthresh = self.cc.on_loss(self.cwnd, flight, self.eff_mss, self.now)
        self.cwnd = self.eff_mss
        self.in_recovery = False
        self.dupacks = 0
        self.limited_transmit = 0
        # RFC 2018 8: after a timeout, SACK information must not steer retransmission.
        self.scoreboard.clear()
        # RFC 6582 3.2 step 1 after a timeout: recover = highest sequence transmitted.
        self.recover = self.snd_max
        # Go back: resend from SND.UNA (the FIN too, if it was not acknowledged).
        self.snd_nxt = self.snd_una
        self._start_rto()
        self.output()

    def _arm_probe(self) -> None:
        """RFC 8985 7.2: a probe timeout of 2 SRTT (more for a lone segment), unless the RTO is sooner.

        Only with SACK (which tells what the probe repaired), outside recovery, with no
        probe outstanding and no RTO backed off.
        """
        self.timers.probe = 0
        srtt = self.rtt.srtt_ns
        if not self.cfg.tlp or not self.sack_ok or self.in_recovery or self.tlp_end_seq is not None \
                or self.retries or srtt is None or self.snd_una == self.snd_max:
            return
        pto = 2 * srtt
        if seq_diff(self.snd_max, self.snd_una) <= self.eff_mss:
            pto += _WC_DEL_ACK  # the peer may hold its ACK of a lone segment (RFC 9293 3.8.6.3)
        at = self.now + max(pto, _PTO_MIN)
        if self.timers.rto and at >= self.timers.rto:
            return
        self.timers.probe = at
        self._schedule(at)

    def _on_probe(self) -> None:
        """RFC 8985 7.3: send one new segment if the windows allow, else resend the last one."""
        if self.state not in SYNCHRONIZED or self.snd_una == self.snd_max or self.in_recovery:
            return
        mss = self.eff_mss
        snd = self.snd
        off = snd.offset(self.snd_nxt)
        in_flight = seq_diff(self.snd_nxt, self.snd_una)
        n = min(len(snd) - off, mss, self.snd_wnd - in_flight)
        self.counters["tcp.tlp_probes"] += 1
        self.stats.tlp_probes += 1
        if n > 0 and self.snd_nxt == self.snd_max:
            data = memoryview(snd.data)[off:off + n]
            self._send(ACK | (PSH if off + n == len(snd) else 0), self.snd_nxt, data)
            data.release()
            self.stats.bytes_out += n
            self.snd_nxt = self.snd_max = (self.snd_nxt + n) & MASK
            self.tlp_retransmitted = False
        else:
            # The last segment sent: the FIN with it, if the FIN went out.
            fin = self.fin_seq is not None and self.snd_max == (self.fin_seq + 1) & MASK
            end = self.fin_seq if fin and self.fin_seq is not None else self.snd_max
            length = min(mss, max(seq_diff(end, self.snd_una), 0))
            start = (end - length) & MASK
            off = snd.offset(start)
            data = memoryview(snd.data)[off:off + length]
            self._send(ACK | (FIN if fin else 0), start, data)
            data.release()
            self.stats.retransmits += 1
            self.rtt.discard()
            self.tlp_retransmitted = True
        self.tlp_end_seq = self.snd_max
        self._start_rto()  # RFC 8985 7.3: after the probe, the RTO

    def _probe_answered(self, seg: TcpSegment, ack: int, advanced: bool) -> None:
        """RFC 8985 7.4: an ACK reached the probe's end; decide whether it repaired a loss.

        As Linux decides: a new-data probe proves nothing; a D-SACK for the probe, or a
        duplicate ACK at its end (original and probe both arrived), means only ACKs were
        lost; an ACK beyond the probe without either means the probe repaired a loss.  An
        ACK that just reached the end waits for the next one, which may carry the D-SACK.
        """
        end = self.tlp_end_seq
        assert end is not None
        blocks = seg.options.sack_blocks
        if not self.tlp_retransmitted:
            self.tlp_end_seq = None
        elif blocks and seq_le(blocks[0][1], ack):
            self.tlp_end_seq = None
            self.counters["tcp.tlp_spurious"] += 1
        elif seq_lt(end, ack):
            self.tlp_end_seq = None
            # The probe repaired a loss: respond as fast recovery would (RFC 8985 7.4.2).
            self.counters["tcp.tlp_recoveries"] += 1
            flight = seq_diff(self.snd_max, self.snd_una)
            self.ssthresh = self.cc.on_loss(self.cwnd, flight, self.eff_mss, self.now)
            self.cwnd = max(self.ssthresh, self.eff_mss)
        elif not advanced:
            self.tlp_end_seq = None

    # -- RACK (RFC 8985 6) ---------------------------------------------------------------

    def _rack_on_ack(self, seg: TcpSegment, ack: int) -> None:
        """RFC 8985 6.2: what the ACK delivered, D-SACKs, then the losses it reveals."""
        rack = self.rack
        ts = seg.options.timestamp
        echo = ts[1] if self.ts_ok and ts is not None and ts[1] else None
        rack.delivered(ack, self.scoreboard.ranges, self.now, self.rtt.min_rtt_ns, echo, self.ts_offset)
        blocks = seg.options.sack_blocks
        if blocks and (seq_le(blocks[0][1], ack) or any(
                seq_le(left, blocks[0][0]) and seq_le(blocks[0][1], right) for left, right in blocks[1:])):
            rack.dsack(self.snd_una, self.snd_max)  # RFC 2883 4: the first block reports a duplicate
        if self.state in SYNCHRONIZED:
            self._rack_detect()

    def _rack_detect(self) -> None:
        """RFC 8985 6.2 step 5: mark what is lost now, repair it, and set the reordering timer (6.3)."""
        rack = self.rack
        rack.acknowledged(self.snd_una)  # what plain cumulative ACKs covered since (lazily)
        reo_wnd = rack.reo_wnd(self.rtt.min_rtt_ns, self.rtt.srtt_ns or 0, self.in_recovery, self.scoreboard.held(),
                               self.eff_mss)
        lost, wait = rack.detect_loss(self.now, reo_wnd)
        self.timers.rack = self.now + wait if wait else 0
        if wait:
            self._schedule(self.timers.rack)
        if lost:
            self._rack_repair(lost)

    def _rack_repair(self, lost: list[list[int]]) -> None:
        """Lost segments: start fast recovery unless in it (RFC 8985 9.3), then resend them, oldest first.

        As many as the congestion window leaves room for beside what is still in the
        network (RFC 6675 "pipe", at least one segment); the rest are the holes recovery
        resends on the next ACKs (from :attr:`rexmit_next` on).
        """
        self.counters["tcp.rack_lost"] += len(lost)
        mss = self.eff_mss
        held = self.scoreboard.held()
        if not self.in_recovery and seq_lt(self.recover, self.snd_una):
            flight = seq_diff(self.snd_max, self.snd_una)
            self.ssthresh = self.cc.on_loss(self.cwnd, flight, mss, self.now)
            self.recover = self.snd_max
            self.in_recovery = True
            self.stats.fast_retransmits += 1
            self.counters["tcp.rack_recoveries"] += 1
            # What the peer holds left the network: the window counts only what is in it.
            self.cwnd = self.ssthresh + held
            self.limited_transmit = 0
        room = max(self.cwnd - (seq_diff(self.snd_max, self.snd_una) - held), mss)
        snd, fin_seq = self.snd, self.fin_seq
        for start, end, _sent, _flags in lost:
            if room <= 0:
                break
            fin = fin_seq is not None and end == (fin_seq + 1) & MASK
            off = snd.offset(start)
            n = seq_diff(end, start) - (1 if fin else 0)
            if off < 0 or off + n > len(snd):
                continue
            data = memoryview(snd.data)[off:off + n]
            self._send(ACK | (FIN if fin else 0), start, data)
            data.release()
            room -= max(n, 1)
            self.stats.retransmits += 1
            self.counters["tcp.rack_retransmits"] += 1
            self.rtt.discard()  # Karn: never time a retransmitted segment
            if seq_lt(self.rexmit_next, end):
                self.rexmit_next = end
        self._start_rto()

    def _probe_shows_loss(self) -> bool:
        """A SACK reaching the probe's end: what lies below SND.UNA's hole was sent an RTT earlier.

        RACK's rule (RFC 8985 6.2) for the one case TLP creates: the probe left last and was
        delivered, so every segment sent before it and still unacknowledged is lost.
        """
        end = self.tlp_end_seq
        return end is not None and bool(self.scoreboard) and self.scoreboard.ranges[-1][1] == end

    def _on_persist(self) -> None:
        """RFC 9293 3.8.6.1: probe a zero window; the reply carries the current window."""
        if self.snd_wnd or self.state not in SYNCHRONIZED:
            return
        self.counters["tcp.window_probes"] += 1
        # A segment with an old sequence number is unacceptable, which forces an ACK
        # (RFC 9293 3.10.7.4) without putting data beyond the window.
        self._send(ACK, (self.snd_una - 1) & MASK)
        self.persist_backoff = min(self.persist_backoff + 1, 10)
        self._start_persist()

    # -- RTT and congestion control ------------------------------------------------

    def _rtt_sample(self, rtt_ns: int) -> None:
        self.rtt.sample(rtt_ns)
        assert self.rtt.srtt_ns is not None
        self.stats.srtt = self.rtt.srtt_ns / 1e9

    def _ts_sample(self, echoed: int) -> None:
        """RFC 7323 4.1: an RTT sample from an echoed timestamp."""
        self._rtt_sample(((self._ts_value() - echoed) & MASK) * _MS)

    def _on_new_ack(self, acked: int, ack: int) -> None:
        """Congestion control on an ACK of new data (RFC 5681 3.1, RFC 6582 3.2)."""
        mss = self.eff_mss
        if self.in_recovery:
            if not seq_lt(ack, self.recover):
                # RFC 6582 3.2 step 3, full acknowledgment: deflate the window.
                flight = seq_diff(self.snd_max, ack)
                self.cwnd = min(self.ssthresh, max(flight, mss) + mss)
                self.in_recovery = False
                self.scoreboard.clear()
                self.rack.recovered()
            else:
                # RFC 6582 3.2 step 4, partial acknowledgment: retransmit the next hole,
                # deflate by the amount acknowledged, add back one MSS if that was >= MSS.
                # With SACK the hole at SND.UNA may already have been resent.
                if seq_le(self.rexmit_next, ack) or not self._retransmit_hole():
                    self._retransmit_first()
                self.cwnd = max(self.cwnd - acked + (mss if acked >= mss else 0), mss)
        else:
            # Slow start or congestion avoidance: the algorithm's growth (RFC 5681 3.1 / RFC 9438).
            self.cwnd = self.cc.on_ack(self.cwnd, self.ssthresh, acked, mss, self.now, self.rtt.srtt_ns)
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
        elif self.dupacks < 3 and self.scoreboard.held() <= 2 * mss and not self._probe_shows_loss():
            # RFC 3042 (Limited Transmit): each of the first two duplicate ACKs lets one
            # new segment out, so that small windows still produce three duplicates.
            # (RFC 6675 4 IsLost: more than (DupThresh - 1) * SMSS bytes SACKed above
            # SND.UNA shows a loss sooner, as stretch ACKs bring fewer duplicates.)
            self.limited_transmit = self.dupacks * mss
            self.output()
        elif self.dupacks <= 3 and seq_lt(self.recover, self.snd_una):
            # RFC 6582 3.2 step 2: only if the cumulative ACK covers more than "recover"
            # (avoids a second reduction for losses from one window of data).
            flight = seq_diff(self.snd_max, self.snd_una)
            # RFC 5681 equation 4 for NewReno, RFC 9438 4.6 for CUBIC.
            self.ssthresh = self.cc.on_loss(self.cwnd, flight, mss, self.now)
            self.recover = self.snd_max
            self.in_recovery = True
            self.stats.fast_retransmits += 1
            self.counters["tcp.fast_retransmits"] += 1
            self._retransmit_first()
            self.cwnd = self.ssthresh + 3 * mss  # RFC 5681 3.2 step 3
            self.limited_transmit = 0
            self._start_rto()

    # -- input -----------------------------------------------------------------------

    def icmp_error(self, type_: int, code: int, next_mtu: int, now: int) -> None:
        """React to a believed ICMP error about this connection (RFC 1122 4.2.3.9, RFC 1191)."""
        self.now = now
        if type_ == wire_icmp.DEST_UNREACHABLE and code == wire_icmp.FRAG_NEEDED:
            # RFC 1191 (path MTU discovery): shrink the MSS to the next hop's MTU and resend.
            mtu = next_mtu or 576  # RFC 1191 5: an old router sends 0; 576 is always allowed
            mss = max(mtu - self.path.ip_header_len - 20, 88)
            if mss < self.snd_mss:
                self.snd_mss = mss
                self.counters["tcp.pmtu_reduced"] += 1
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
        wnd = max(seq_diff(self.rcv_adv, self.rcv_nxt), 0)
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
        if self.challenge.take(self.now):
            self.stats.challenge_acks += 1
            self.counters["tcp.challenge_acks"] += 1
            self.send_ack()
        else:
            self.counters["tcp.challenge_acks_limited"] += 1

    def segment_arrives(self, seg: TcpSegment, now: int) -> bool:
        """RFC 9293 3.10.7.3 and 3.10.7.4 for a connection past LISTEN.

        ``True`` when the segment reopened a connection in TIME-WAIT: this one is CLOSED
        and the segment goes to LISTEN processing (3.10.7.2) next.
        """
        self.now = now
        self.stats.segments_in += 1
        self.last_rx_ns = now
        self.keepalive_sent = 0
        if self.state == State.SYN_SENT:
            self._syn_sent(seg)
            return False
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
            return False
        # First: check the sequence number; RFC 7323 5.3 runs PAWS before it.
        if self._paws_reject(seg):
            self.counters["tcp.paws_rejected"] += 1
            self.send_ack()
            return False
        if not self._acceptable(seq, seg_len):
            if self.state == State.TIME_WAIT and flags & SYN and not flags & ACK \
                    and seq_lt(self.rcv_nxt, seq):
                # RFC 9293 3.10.7.4 note / RFC 1122 4.2.2.13: a new SYN may reopen TIME-WAIT.
                self._destroy()
                return True
            self.counters["tcp.unacceptable"] += 1
            if not flags & RST:
                if payload and self.sack_ok and seq_lt(seq, self.rcv_nxt):
                    # A duplicate: report it (RFC 2883), which tells a probing sender that
                    # only ACKs were lost (RFC 8985 7.4).
                    end = (seq + len(payload)) & MASK
                    self.dsack = (seq, end if seq_lt(end, self.rcv_nxt) else self.rcv_nxt)
                self.send_ack()
            return False
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
                self.counters["tcp.resets_received"] += 1
                if self.state == State.SYN_RECEIVED and self.passive:
                    self._destroy()  # RFC 9293 3.10.7.4: a passive open returns to LISTEN
                elif self.state in (State.CLOSING, State.LAST_ACK, State.TIME_WAIT):
                    self._destroy()
                else:
                    self._abort(ConnectionResetError(errno.ECONNRESET, "connection reset by peer"),
                                send_rst=False)
            else:
                self._challenge_ack()
            return False

        # Fourth: the SYN bit (RFC 5961 4.2: any SYN here gets a challenge ACK).
        if flags & SYN:
            self._challenge_ack()
            return False

        # Fifth: the ACK field.
        if not flags & ACK:
            self.counters["tcp.no_ack"] += 1
            return False
        ack = seg.ack
        if self.state == State.SYN_RECEIVED:
            if seq_lt(self.snd_una, ack) and seq_le(ack, self.snd_nxt):
                self._become_established(seg)
            else:
                # RFC 9293 3.10.7.4: <SEQ=SEG.ACK><CTL=RST>.
                self.send_rst(ack, 0)
                return False
        # RFC 5961 5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
        if seq_lt(self.snd_max, ack) or seq_lt(ack, (self.snd_una - max(self.max_snd_wnd, 1)) & MASK):
            self._challenge_ack()
            return False
        self._process_ack(seg, ack)
        if self.state == State.CLOSED:
            return False
        if self.state == State.TIME_WAIT:
            # RFC 9293 3.10.7.4: only a retransmitted FIN arrives here; ACK it and restart 2 MSL.
            if flags & FIN:
                self.send_ack()
                self.timers.time_wait = now + 2 * self.cfg.msl_ns
                self._schedule(self.timers.time_wait)
            return False

        # RFC 7323 4.3: update TS.Recent for a segment covering Last.ACK.sent.
        ts = seg.options.timestamp
        if self.ts_ok and ts is not None and seq_le(seg.seq, self.last_ack_sent) \
                and not seq_lt(ts[0], self.ts_recent):
            self.ts_recent = ts[0]

        # Seventh: the segment text (sixth, URG, is not supported: RFC 6093 advises against it).
        if payload and self.state in RECEIVING:
            self._receive_data(seq, payload)
        elif payload:
            self.counters["tcp.data_after_fin"] += 1
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
        return False

    def _syn_sent(self, seg: TcpSegment) -> None:
        """RFC 9293 3.10.7.3."""
        flags, ack = seg.flags, seg.ack
        # First: the ACK bit.
        if flags & ACK and (seq_le(ack, self.iss) or seq_lt(self.snd_nxt, ack)):
            if not flags & RST:
                self.send_rst(ack, 0)
            self.counters["tcp.bad_syn_ack"] += 1
            return
        # Second: the RST bit (RFC 5961 3.2: acceptable only with an acceptable ACK).
        if flags & RST:
            if flags & ACK:
                self.counters["tcp.connection_refused"] += 1
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
        self._negotiate(seg.options)
        if flags & ACK:
            self.snd_una = ack
            self.snd_wnd = seg.window  # RFC 7323 2.2: the window of a SYN is never scaled
            self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
            self.snd_wl1, self.snd_wl2 = seg.seq, ack
            if seg.options.timestamp is not None and self.ts_ok:
                self.ts_recent = seg.options.timestamp[0]
                self._ts_sample(seg.options.timestamp[1])
            elif self.retries == 0 and self.rtt.acked(ack, self.now):
                self.stats.srtt = (self.rtt.srtt_ns or 0) / 1e9
            self.retries = 0
            self.timers.rto = 0
            self.state = State.ESTABLISHED
            self.counters["tcp.active_opens"] += 1
            self.send_ack()
            self._connection_made()
            if seg.payload:
                self._receive_data(self.rcv_nxt, seg.payload)
                self._ack_data()
        else:
            # RFC 9293 3.10.7.3: simultaneous open: SYN-RECEIVED, <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
            self.counters["tcp.simultaneous_opens"] += 1
            self.state = State.SYN_RECEIVED
            if seg.options.timestamp is not None and self.ts_ok:
                self.ts_recent = seg.options.timestamp[0]
            self._send(SYN | ACK, self.iss, options=self._syn_options())

    def _negotiate(self, peer: TcpOptions) -> None:
        """Settle MSS, window scaling (RFC 7323 2.2), timestamps (3.2) and SACK (RFC 2018 2)."""
        self.peer_offered = peer
        self.snd_mss = max(min(peer.mss if peer.mss else 536, self.path.max_mss), 64)
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
            self._ts_sample(seg.options.timestamp[1])
        self.retries = 0
        self.timers.rto = 0
        self.snd.seq = self.snd_una
        if self.passive:
            self.counters["tcp.passive_opens"] += 1
        self._connection_made()

    def _process_ack(self, seg: TcpSegment, ack: int) -> None:
        """RFC 9293 3.10.7.4, fifth, for the synchronized states."""
        if self.tlp_end_seq is not None and seq_le(self.tlp_end_seq, ack):
            self._probe_answered(seg, ack, seq_lt(self.snd_una, ack))
        if self.sack_ok and (seg.options.sack_blocks or self.scoreboard.ranges):
            if seq_lt(self.snd_una, ack):
                self.scoreboard.prune(ack)
            self.scoreboard.update(seg.options.sack_blocks, self.snd_una, self.snd_max)
        if seq_lt(self.snd_una, ack):
            acked = seq_diff(ack, self.snd_una)
            # Data acknowledged: drop it from the send buffer (the FIN takes no byte).
            self.snd.acknowledge(ack)
            self.snd_una = ack
            if seq_lt(self.snd_nxt, ack):
                self.snd_nxt = ack
            # RTT: RFC 7323 4.1 (timestamps) or Karn's timed segment (RFC 6298 3).
            ts = seg.options.timestamp
            if self.ts_ok and ts is not None and ts[1]:
                self._ts_sample(ts[1])
            elif self.rtt.acked(ack, self.now):
                self.stats.srtt = (self.rtt.srtt_ns or 0) / 1e9
            self.retries = 0
            self._on_new_ack(acked, ack)
            # RFC 6298 5.2/5.3: stop the timer when all is acknowledged, else restart it.
            if self.snd_una == self.snd_max:
                self.timers.rto = self.timers.probe = 0
            else:
                self._start_rto()
                self._arm_probe()
        elif ack == self.snd_una and not seg.payload and not seg.flags & (SYN | FIN) \
                and self.snd_una != self.snd_max and (
                    seg.window << self.snd_wscale == self.snd_wnd or seg.options.sack_blocks):
            # RFC 5681 2: the definition of a duplicate acknowledgment; condition (e), an
            # unchanged window, is waived when SACK blocks report data beyond the hole, as
            # RFC 6675 2 counts such ACKs (a receiver whose buffer autotunes moves its window).
            self._on_dup_ack()
        if self.rack.sent and (seg.options.sack_blocks or self.scoreboard.ranges or self.in_recovery):
            # (A plain cumulative ACK cannot show a loss: RACK catches up on it lazily.)
            self._rack_on_ack(seg, ack)
        # RFC 9293 3.10.7.4: update the send window when the segment is newer.
        if seq_lt(self.snd_wl1, seg.seq) or (self.snd_wl1 == seg.seq and seq_le(self.snd_wl2, ack)):
            old = self.snd_wnd
            self.snd_wnd = seg.window << self.snd_wscale
            self.snd_wl1, self.snd_wl2 = seg.seq, ack
            self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
            if self.snd_wnd and not old:
                self.timers.persist = 0
                self.persist_backoff = 0
        # The state transitions that our FIN's acknowledgment causes.
        if self.fin_seq is not None and seq_lt(self.fin_seq, self.snd_una):
            if self.state == State.FIN_WAIT_1:
                self.state = State.FIN_WAIT_2
                if self.app_closed:
                    self.timers.fin_wait_2 = self.now + self.cfg.fin_wait_2_ns
                    self._schedule(self.timers.fin_wait_2)
            elif self.state == State.CLOSING:
                self._enter_time_wait()
            elif self.state == State.LAST_ACK:
                self._destroy()

    def _receive_data(self, seq: int, payload: memoryview) -> None:
        """Queue in-order data for the application; keep out-of-order data (bounded by the window)."""
        if seq == self.rcv_nxt:
            self._deliver(payload)
            if self.ooo.segments:
                self._merge_ooo()
                self.unacked_segments = 2  # RFC 5681 4.2: ACK at once when a hole is filled
        else:
            self.stats.out_of_order += 1
            self.counters["tcp.out_of_order"] += 1
            if not self.ooo.add(seq, bytes(payload), self.rcv_nxt):
                self.counters["tcp.ooo_full"] += 1
            self.unacked_segments = 2  # RFC 5681 4.2: a duplicate ACK at once for out-of-order data

    def _merge_ooo(self) -> None:
        while (data := self.ooo.pop_ready(self.rcv_nxt)) is not None:
            self._deliver(data)
        if self.peer_fin_seq is not None and self.peer_fin_seq == self.rcv_nxt and not self.fin_received:
            self._fin_arrives()

    def _deliver(self, data: memoryview | bytes) -> None:
        n = len(data)
        self.rcv_nxt = (self.rcv_nxt + n) & MASK
        self.stats.bytes_in += n
        rcv = self.rcv
        if self.reading_paused or rcv.held:
            rcv.held += data
        elif not self.app_closed:
            rcv.ready.append(bytes(data))

    def _ack_data(self) -> None:
        """RFC 9293 3.8.6.3 / RFC 5681 4.2: ACK every second full segment, else delay."""
        self.unacked_segments += 1
        if self.unacked_segments >= 2:
            self.send_ack()
        elif not self.timers.delayed_ack:
            self.timers.delayed_ack = self.now + self.cfg.delayed_ack_ns
            self._schedule(self.timers.delayed_ack)

    def _fin_arrives(self) -> None:
        """RFC 9293 3.10.7.4, eighth: advance over the FIN, ACK it, tell the application."""
        self.fin_received = True
        self.rcv_nxt = (self.rcv_nxt + 1) & MASK
        self.send_ack()
        self.events.append(Event.EOF)  # before TIME-WAIT ends the application's connection
        if self.state in (State.SYN_RECEIVED, State.ESTABLISHED):
            self.state = State.CLOSE_WAIT
        elif self.state == State.FIN_WAIT_1:
            if self.fin_seq is not None and seq_lt(self.fin_seq, self.snd_una):
                self._enter_time_wait()
            else:
                self.state = State.CLOSING
        elif self.state == State.FIN_WAIT_2:
            self._enter_time_wait()

    def _enter_time_wait(self) -> None:
        self.state = State.TIME_WAIT
        self.timers.rto = self.timers.persist = self.timers.fin_wait_2 = 0
        self.timers.time_wait = self.now + 2 * self.cfg.msl_ns
        self._schedule(self.timers.time_wait)
        self.events.append(Event.LOST)

    # -- opening and closing -----------------------------------------------------------

    def open_active(self, iss: int, now: int) -> None:
        """Send the SYN of an active open (RFC 9293 3.10.1)."""
        self.now = now
        self._initial_send_sequence(iss)
        self.state = State.SYN_SENT
        self.rtt.time(iss, now)
        self._send_syn()

    def open_passive(self, seg: TcpSegment, iss: int, now: int) -> None:
        """Answer a SYN received in LISTEN (RFC 9293 3.10.7.2)."""
        self.now = now
        self.irs = seg.seq
        self.rcv_nxt = (seg.seq + 1) & MASK
        self._initial_send_sequence(iss)
        if seg.options.wscale is None:
            self.rcv_wscale = 0
        self._negotiate(seg.options)
        self.snd_wnd = seg.window  # RFC 7323 2.2: the window of a SYN is never scaled
        self.snd_wl1, self.snd_wl2 = seg.seq, 0
        if self.ts_ok and seg.options.timestamp is not None:
            self.ts_recent = seg.options.timestamp[0]
        self.state = State.SYN_RECEIVED
        self._send_syn()

    def _initial_send_sequence(self, iss: int) -> None:
        self.iss = iss
        self.snd_una = iss
        self.snd_max = iss
        self.recover = iss  # RFC 6582 3.2: "recover" starts at the ISS
        self.snd.seq = (iss + 1) & MASK

    def open_from_cookie(self, seg: TcpSegment, iss: int, irs: int, mss: int, now: int) -> None:
        """ESTABLISHED from a validated SYN-cookie ACK (RFC 4987 3.6), then process the segment."""
        self.now = now
        self.iss, self.irs = iss, irs
        self.rcv_nxt = (irs + 1) & MASK
        self.rcv_adv = (self.rcv_nxt + min(self.cfg.rcv_buf, 0xFFFF)) & MASK
        self.snd_una = self.snd_nxt = self.snd_max = self.snd.seq = (iss + 1) & MASK
        self.recover = iss
        self.snd_wscale = self.rcv_wscale = 0
        self.snd_mss = min(mss, self.path.max_mss)
        self.cwnd = min(4 * self.snd_mss, max(2 * self.snd_mss, 4380))
        self.snd_wnd = self.max_snd_wnd = seg.window
        self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
        self.state = State.ESTABLISHED
        self.passive = False  # never counted in the backlog
        self.counters["tcp.passive_opens"] += 1
        self._connection_made()
        self.segment_arrives(seg, now)

    def _connection_made(self) -> None:
        if self.keepalive:
            self.timers.keepalive = self.last_rx_ns + self.keepalive_idle_ns
            self._schedule(self.timers.keepalive)
        self.events.append(Event.ESTABLISHED)

    def _abort(self, exc: BaseException, send_rst: bool) -> None:
        """Close at once with an error (RFC 9293 3.10.5 ABORT)."""
        if send_rst and self.state not in (State.CLOSED, State.SYN_SENT, State.TIME_WAIT, State.LISTEN):
            self.send_rst(self.snd_max, 0)
        self.error = exc
        self._destroy()

    def _destroy(self) -> None:
        self.state = State.CLOSED
        self.timers.cancel_all()
        self.events.append(Event.LOST)
        self.events.append(Event.CLOSED)

    # -- the application's calls (RFC 9293 3.10) --------------------------------------

    def send(self, data: bytes | bytearray | memoryview, now: int) -> None:
        """Queue ``data`` for sending (RFC 9293 3.10.2 SEND); the caller checked the state."""
        self.now = now
        self.snd.data += data
        if self.state in SYNCHRONIZED:
            self.output()

    def shutdown(self, now: int) -> None:
        """Send a FIN after the buffered data (RFC 9293 3.10.4 CLOSE of the sending side)."""
        self.now = now
        if self.fin_queued:
            return
        self.fin_queued = True
        if self.state in (State.ESTABLISHED, State.SYN_RECEIVED):
            self.state = State.FIN_WAIT_1
        elif self.state == State.CLOSE_WAIT:
            self.state = State.LAST_ACK
        self.output()

    def close(self, now: int, established: bool = True) -> None:
        """CLOSE (RFC 9293 3.10.4): send the buffered data and a FIN; nothing more is read.

        ``established``: whether the application saw the connection open (a passive open
        it never saw is reset instead).
        """
        self.now = now
        if self.app_closed:
            return
        self.app_closed = True
        if self.state == State.SYN_SENT:
            self._destroy()
            return
        if self.state == State.SYN_RECEIVED and not established:
            self._abort(ConnectionAbortedError("closed"), send_rst=True)
            return
        if self.rcv.held:
            # RFC 9293 3.10.4 / RFC 2525 2.17: closing with unread data resets.
            self.counters["tcp.reset_unread_data"] += 1
            self._abort(ConnectionAbortedError("closed with unread data"), send_rst=True)
            return
        self.shutdown(now)
        if self.state == State.FIN_WAIT_2:
            self.timers.fin_wait_2 = now + self.cfg.fin_wait_2_ns
            self._schedule(self.timers.fin_wait_2)

    def abort(self, exc: BaseException, now: int) -> None:
        """ABORT (RFC 9293 3.10.5): reset the connection now; ``exc`` is what the application hears."""
        self.now = now
        self.app_closed = True
        if self.state != State.CLOSED:
            self._abort(exc, send_rst=True)

    def pause_reading(self) -> None:
        """Hold received data: the advertised window closes as it fills."""
        self.reading_paused = True

    def resume_reading(self, now: int) -> bytes:
        """Take the held data back (the window reopens); a window update goes out if useful."""
        self.now = now
        self.reading_paused = False
        opens_already = self.window_would_open()
        data = self.rcv.take_held()
        if self.state in SYNCHRONIZED and not opens_already and self.window_would_open():
            self.send_ack()  # a window update (RFC 9293 3.8.6.2.2)
        return data

    def set_nodelay(self, nodelay: bool, now: int) -> None:
        """Switch Nagle's algorithm off (``True``) or on."""
        self.now = now
        self.nodelay = nodelay
        self.output()
