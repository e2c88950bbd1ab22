"""The asyncio face of a connection: :class:`TcpConnection` is an :class:`asyncio.Transport`.

Any :class:`asyncio.Protocol` runs on it.  Every call into the state machine
(:class:`unik_tcpip.tcp.connection.Connection`) is followed by :meth:`TcpConnection._run`,
which does the I/O the machine asked for: hands its segments to the TCP layer, arms the
stack's timer at the deadline it named, and tells the protocol what happened (data,
end-of-file, the end of the connection).  Nothing here decides anything TCP does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..addr import family, ip_text, sockaddr
from . import predict
from .config import TcpStats
from .connection import Connection, Event, Key
from .stacksocket import StackSocket
from .state import State

if TYPE_CHECKING:
    from ..wire.tcp import TcpSegment
    from .layer import TcpLayer, TcpListener

log = logging.getLogger(__name__)


class TcpConnection(asyncio.Transport):
    """One TCP connection as a transport; its protocol state is :attr:`tcb`.

    Its protocol may be an :class:`asyncio.Protocol` or an :class:`asyncio.BufferedProtocol`
    (asyncio's TLS layer is one: ``loop.start_tls`` runs on it).  As on asyncio's own
    transports, ``connection_lost(None)`` follows :meth:`close` once the buffered data
    and the FIN are acknowledged, and :meth:`abort` at once.
    """

    #: ``loop.start_tls`` accepts this transport (asyncio checks the attribute).
    _start_tls_compatible = True

    def __init__(self, layer: TcpLayer, tcb: Connection, protocol_factory: Callable[[], asyncio.BaseProtocol] | None,
                 listener: TcpListener | None = None) -> None:
        super().__init__({
            "peername": sockaddr(*tcb.remote), "sockname": sockaddr(*tcb.local), "family": family(tcb.remote[0]),
        })
        self.layer = layer
        #: The transmission control block: the state machine this transport drives.
        self.tcb = tcb
        self._now = layer.timers.now_ns
        self._at = layer.timers.at
        self.listener = listener
        self._in_backlog = listener is not None
        self._protocol_factory = protocol_factory
        self.protocol: asyncio.BaseProtocol | None = None
        #: Hands received bytes to the protocol (``data_received`` or the buffered protocol's pair).
        self._feed: Callable[[bytes], None] | None = None
        self._aborted = False
        #: ``resume_reading`` was called; the held data goes to the protocol on the next turn.
        self._resume_pending = False
        self._socket: StackSocket | None = None
        #: ``connection_lost``'s argument, held back while the application has data or the end of
        #: file still to read (it paused reading): a socket's reader reads them after the close too.
        self._lost_pending: tuple[BaseException | None] | None = None
        self.established: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost = False
        self.eof_pending = False
        self.high_water = tcb.cfg.snd_buf
        self.low_water = tcb.cfg.snd_buf // 4
        self.writing_paused = False
        self._resuming = False
        #: The network layer of the peer's family, and what the connection's link header
        #: (:attr:`Connection.link`) rests on: valid until, the layer's generation, when to ask again.
        self._net = layer.nets[len(tcb.remote[0])]
        self._link_until = 0
        self._link_generation = 0
        self._link_retry = 0
        self._tx_counter = "ipv4.tx" if len(tcb.remote[0]) == 4 else "ipv6.tx"

    def __repr__(self) -> str:
        tcb = self.tcb
        return (f"<TcpConnection {ip_text(tcb.local[0])}:{tcb.local[1]} -> "
                f"{ip_text(tcb.remote[0])}:{tcb.remote[1]} {tcb.state.value}>")

    @property
    def state(self) -> State:
        """The connection's state (RFC 9293 3.3.2)."""
        return self.tcb.state

    @property
    def stats(self) -> TcpStats:
        """The connection's counters."""
        return self.tcb.stats

    @property
    def key(self) -> Key:
        """``(local address, local port, remote address, remote port)``."""
        return self.tcb.key

    @property
    def local(self) -> tuple[bytes, int]:
        """The local address and port."""
        return self.tcb.local

    @property
    def remote(self) -> tuple[bytes, int]:
        """The remote address and port."""
        return self.tcb.remote

    @property
    def error(self) -> BaseException | None:
        """Why the connection ended, if it failed."""
        return self.tcb.error

    @property
    def closed(self) -> bool:
        """Whether the connection reached CLOSED."""
        return self.tcb.state is State.CLOSED

    # -- driving the state machine ----------------------------------------------------

    def segment_arrives(self, seg: TcpSegment) -> bool:
        """Feed a segment (``True``: it reopened TIME-WAIT and goes to LISTEN next)."""
        reopen = self.tcb.segment_arrives(seg, self._now())
        self._run()
        return reopen

    def frame_arrives(self, frame: bytes | bytearray | memoryview, fields: Any) -> bool:
        """Header prediction (:mod:`.predict`): ``True`` when it processed the segment (else nothing changed)."""
        if predict.established(self.tcb, frame, fields, self._now()):
            self._run()
            return True
        return False

    def open_active(self, iss: int) -> None:
        """Send the SYN."""
        self.tcb.open_active(iss, self._now())
        self._run()

    def open_passive(self, seg: TcpSegment, iss: int) -> None:
        """Answer a SYN."""
        self.tcb.open_passive(seg, iss, self._now())
        self._run()

    def open_from_cookie(self, seg: TcpSegment, iss: int, irs: int, mss: int) -> None:
        """Become ESTABLISHED from a SYN-cookie ACK."""
        self._in_backlog = False
        self.listener = None
        self.tcb.open_from_cookie(seg, iss, irs, mss, self._now())
        self._run()

    def icmp_error(self, type_: int, code: int, next_mtu: int) -> None:
        """A believed ICMP error about this connection."""
        self.tcb.icmp_error(type_, code, next_mtu, self._now())
        self._run()

    def _resume_output(self) -> None:
        self._resuming = False
        self.tcb.resume_output(self._now())
        self._run()

    def _on_timer(self, now: int) -> None:
        self.tcb.on_timer(now)
        self._run()

    def _run(self) -> None:
        """Do what the last call asked: send, arm the timer, tell the protocol."""
        tcb = self.tcb
        if tcb.outbox:
            out, tcb.outbox = tcb.outbox, []
            if tcb.link is not None:
                # Whole frames (the link header is the one checked below): straight to the
                # interface's queue, counted as the IP layer would.
                queue, stats = self.layer.iface.queue, self.layer.stats
                for frame, offload in out:
                    queue(frame, offload)
                stats["tcp.tx"] += len(out)
                stats[self._tx_counter] += len(out)
            else:
                output, dst, src = self.layer.output, tcb.remote[0], tcb.local[0]
                for segment, offload in out:
                    output(dst, segment, offload, src)
        now = tcb.now
        if tcb.link is None:
            if now >= self._link_retry and tcb.state is State.ESTABLISHED:
                self._learn_link(now)
        elif now >= self._link_until or self._net.link_generation != self._link_generation:
            tcb.link = None  # the neighbour's entry aged or changed: ask the network layer again
            self._learn_link(now)
        if tcb.wake_at:
            self._at(tcb.wake_at, self._on_timer)
            tcb.wake_at = 0
        if tcb.output_pending and not self._resuming:
            # A spent burst budget comes back (and what waits goes out) on the next turn of
            # the event loop, after the reader has taken the ACKs waiting: at most one
            # budget per turn, and no callback per turn while it lasts.
            self._resuming = True
            asyncio.get_running_loop().call_soon(self._resume_output)
        if tcb.events:
            events, tcb.events = tcb.events, []
            if Event.ESTABLISHED in events:
                self._connection_made()
            if tcb.rcv.ready:
                self._deliver()
            for event in events:
                if event is Event.EOF:
                    if tcb.rcv.held or tcb.reading_paused:
                        self.eof_pending = True
                    else:
                        self._eof_to_protocol()
                elif event is Event.LOST:
                    self._connection_lost(tcb.error)
                elif event is Event.CLOSED:
                    self._leave_backlog()
                    self.layer.remove(self)
        elif tcb.rcv.ready:
            self._deliver()
        if self.writing_paused and len(tcb.snd) <= self.low_water:
            self._resume_writing()
        if tcb.app_closed and not self.lost and tcb.state is State.FIN_WAIT_2:
            # Closed, and everything it sent (its FIN too) acknowledged: the application's
            # connection is over even while the peer keeps its side open.
            self._connection_lost(None)
        if tcb.events or tcb.outbox:
            self._run()  # a protocol callback's reaction (an abort) left more to do

    def _learn_link(self, now: int) -> None:
        """Give the connection its peer's link header, if the network layer vouches for one now.

        Frames built between two calls into the state machine use the header checked after
        the previous one.  ``None`` (loopback, an unresolved or expired neighbour, a learnt
        smaller path MTU) is asked again a second later; meanwhile segments take the IP layer.
        """
        net = self._net
        generation = net.link_generation
        got = net.link_header(self.tcb.remote[0], now)
        if got is None:
            self._link_retry = now + 10**9
            return
        self.tcb.link, self._link_until, self.tcb.link_ttl = got
        self._link_generation = generation

    def _deliver(self) -> None:
        tcb = self.tcb
        chunks = tcb.rcv.take()
        feed = self._feed
        if feed is None or tcb.app_closed:
            return
        for i, data in enumerate(chunks):
            if tcb.reading_paused:
                # The protocol paused while it was handed the previous chunk: hold the rest.
                tcb.rcv.held += b"".join(chunks[i:])
                return
            try:
                feed(data)
            except Exception as exc:  # noqa: BLE001 - the application's bug ends its connection only
                self._protocol_failed(exc)
                return

    def _leave_backlog(self) -> None:
        if self._in_backlog and self.listener is not None:
            self.listener.half_open -= 1
        self._in_backlog = False

    def _connection_made(self) -> None:
        self._leave_backlog()
        if not self.established.done():
            self.established.set_result(None)
        if self.protocol is None and self._protocol_factory is not None:
            try:
                self.protocol = self._protocol_factory()
            except Exception:
                log.exception("protocol factory failed")
                self.tcb.abort(ConnectionAbortedError("protocol factory failed"), self._now())
                return
        if self.protocol is not None:
            self._feed = _feeder(self.protocol)
            try:
                self.protocol.connection_made(self)
            except Exception as exc:  # noqa: BLE001
                self._protocol_failed(exc)

    def _protocol_failed(self, exc: BaseException) -> None:
        """A protocol callback raised: stop calling it and reset the connection soon after.

        Like asyncio's transports, the connection is aborted and ``connection_lost``
        receives the exception; the abort waits for the current segment to be processed.
        """
        log.error("protocol callback of %r failed", self, exc_info=exc)
        self.layer.stats["tcp.protocol_errors"] += 1
        self.tcb.app_closed = True
        asyncio.get_running_loop().call_soon(self._abort_after_failure, exc)

    def _abort_after_failure(self, exc: BaseException) -> None:
        if self.tcb.state != State.CLOSED:
            self.tcb.abort(exc, self._now())
            self._run()

    def _eof_to_protocol(self) -> None:
        self.eof_pending = False
        protocol = self.protocol
        if self.tcb.app_closed or (self.lost and self._lost_pending is None) or not isinstance(
                protocol, (asyncio.Protocol, asyncio.BufferedProtocol)):
            return
        try:
            keep_open = protocol.eof_received()
        except Exception as exc:  # noqa: BLE001
            self._protocol_failed(exc)
            return
        if not keep_open and not self.tcb.fin_queued:
            self.close()

    def _connection_lost(self, exc: BaseException | None) -> None:
        if self.lost:
            return
        self.lost = True
        if self._aborted:
            exc = None  # asyncio: connection_lost(None) after the application's abort()
        if not self.established.done():
            if self.listener is not None:
                self.established.cancel()  # nobody waits on a passive open
            else:
                self.established.set_exception(exc or ConnectionAbortedError("connection closed"))
            return
        if self.protocol is not None:
            if (self.tcb.rcv.held or self.eof_pending) and not self.tcb.app_closed:
                self._lost_pending = (exc,)  # told once the held data and the EOF are read
            else:
                asyncio.get_running_loop().call_soon(_notify_lost, self.protocol, exc)

    def _lost_after_reading(self) -> None:
        """Tell the protocol its connection is gone, once nothing it must read is held back."""
        tcb = self.tcb
        if self._lost_pending is not None and self.protocol is not None and (
                tcb.app_closed or (not tcb.reading_paused and not tcb.rcv.held and not self.eof_pending)):
            (exc,), self._lost_pending = self._lost_pending, None
            asyncio.get_running_loop().call_soon(_notify_lost, self.protocol, exc)

    # -- the asyncio.Transport interface ------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:  # type: ignore[override]
        """Queue ``data`` for sending (RFC 9293 3.10.2 SEND)."""
        tcb = self.tcb
        if tcb.fin_queued:
            if self.lost or tcb.app_closed:
                return  # asyncio transports ignore writes after close
            raise RuntimeError("cannot write after write_eof()")
        if self.lost or not data:
            return
        tcb.send(data, self._now())
        self._run()
        if not self.writing_paused and len(tcb.snd) > self.high_water:
            self._pause_writing()

    def _pause_writing(self) -> None:
        """``pause_writing()``: more than the high-water mark is buffered."""
        if self.protocol is not None:
            self.writing_paused = True
            try:
                self.protocol.pause_writing()
            except Exception:
                log.exception("pause_writing failed")

    def writelines(self, list_of_data: Any) -> None:
        """Write each buffer of an iterable."""
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        """Send a FIN after the buffered data (RFC 9293 3.10.4 CLOSE of the sending side)."""
        if self.tcb.fin_queued or self.lost:
            return
        self.tcb.shutdown(self._now())
        self._run()

    def can_write_eof(self) -> bool:
        """TCP can half-close."""
        return True

    def close(self) -> None:
        """Close after sending the buffered data; ``connection_lost`` follows."""
        if self.tcb.app_closed:
            return
        self.tcb.close(self._now(), established=self.established.done())
        self._run()
        self._lost_after_reading()

    def is_closing(self) -> bool:
        """Whether :meth:`close` or :meth:`abort` was called, or the connection is gone."""
        return self.tcb.app_closed or self.lost

    def abort(self) -> None:
        """Reset the connection now (RFC 9293 3.10.5 ABORT); ``connection_lost(None)`` follows."""
        self._aborted = True
        self.tcb.abort(ConnectionAbortedError("aborted"), self._now())
        self._run()
        if self._lost_pending is not None:
            self._lost_pending = (None,)  # asyncio: connection_lost(None) after the application's abort()
        self._lost_after_reading()

    def _force_close(self, exc: BaseException | None) -> None:
        """Reset now and hand ``exc`` to ``connection_lost``.

        asyncio's transports have this private method; its TLS protocol calls it on a fatal error.
        """
        if exc is None:
            self.abort()
            return
        self.tcb.abort(exc, self._now())
        self._run()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``peername``, ``sockname``, ``family``, ``socket``, ``tcp_stats`` (a :class:`TcpStats`), ``tcp_connection``.

        ``peername``/``sockname`` are 4-tuples for IPv6, as its sockets give; ``family`` is
        ``socket.AF_INET`` or ``socket.AF_INET6``; ``socket`` is a :class:`StackSocket` (no
        host descriptor: the addresses, ``TCP_NODELAY`` and ``SO_KEEPALIVE``).
        """
        if name == "socket":
            if self._socket is None:
                self._socket = StackSocket(connection=self, family=family(self.tcb.remote[0]))
            return self._socket
        if name == "tcp_stats":
            return self.tcb.stats
        if name == "tcp_connection":
            return self
        return super().get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Replace the protocol (``loop.start_tls`` puts its TLS protocol here)."""
        self.protocol = protocol
        self._feed = _feeder(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol."""
        assert self.protocol is not None
        return self.protocol

    def pause_reading(self) -> None:
        """Stop delivering data; the advertised window closes as the buffer fills."""
        self._resume_pending = False
        self.tcb.pause_reading()

    def resume_reading(self) -> None:
        """Deliver held data (on the next turn of the event loop) and reopen the window.

        Like asyncio's transports, nothing reaches the protocol from within this call:
        ``StreamReader`` resumes reading just before it waits for data, and data handed
        over synchronously would arrive before its waiter exists.
        """
        if self.tcb.reading_paused and not self._resume_pending:
            self._resume_pending = True
            asyncio.get_running_loop().call_soon(self._resume_reading_now)

    def _resume_reading_now(self) -> None:
        tcb = self.tcb
        if not self._resume_pending or not tcb.reading_paused:
            return
        self._resume_pending = False
        data = tcb.resume_reading(self._now())
        if data and self._feed is not None and not tcb.app_closed:
            try:
                self._feed(data)
            except Exception as exc:  # noqa: BLE001
                self._protocol_failed(exc)
        if self.eof_pending and not tcb.reading_paused and not tcb.rcv.held:
            self._eof_to_protocol()
        self._lost_after_reading()
        self._run()

    def is_reading(self) -> bool:
        """Whether data is delivered as it arrives."""
        return not self.tcb.reading_paused or self._resume_pending

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Flow control thresholds for ``pause_writing``/``resume_writing``, as asyncio's transports take them.

        ``high`` defaults to the send buffer's size (at least ``low``), ``low`` to a quarter
        of ``high``; ``high >= low >= 0`` or :class:`ValueError`.  Limits under what is
        already buffered pause the protocol at once.
        """
        if high is None:
            high = self.tcb.cfg.snd_buf if low is None else max(self.tcb.cfg.snd_buf, low)
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self.high_water, self.low_water = high, low
        if not self.writing_paused and len(self.tcb.snd) > high:
            self._pause_writing()

    def get_write_buffer_size(self) -> int:
        """Bytes written but not yet acknowledged."""
        return len(self.tcb.snd)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """``(low, high)``."""
        return (self.low_water, self.high_water)

    def set_nodelay(self, nodelay: bool = True) -> None:
        """Switch Nagle's algorithm off (``True``) or on."""
        self.tcb.set_nodelay(nodelay, self._now())
        self._run()

    def set_keepalive(self, enable: bool = True, idle: float | None = None, interval: float | None = None,
                      probes: int | None = None) -> None:
        """Switch keep-alives on or off (times in seconds), like SO_KEEPALIVE and TCP_KEEPIDLE."""
        self.tcb.set_keepalive(self._now(), enable, idle, interval, probes)
        self._run()

    def _resume_writing(self) -> None:
        self.writing_paused = False
        if self.protocol is not None:
            try:
                self.protocol.resume_writing()
            except Exception:
                log.exception("resume_writing failed")


def _feeder(protocol: asyncio.BaseProtocol) -> Callable[[bytes], None] | None:
    """How received bytes reach ``protocol``: ``data_received``, or ``get_buffer``/``buffer_updated``."""
    if isinstance(protocol, asyncio.BufferedProtocol):
        return _buffered_feeder(protocol)
    if isinstance(protocol, asyncio.Protocol):
        return protocol.data_received
    return None


def _buffered_feeder(protocol: asyncio.BufferedProtocol) -> Callable[[bytes], None]:
    def feed(data: bytes) -> None:
        view, offset, size = memoryview(data), 0, len(data)
        while offset < size:
            buffer = memoryview(protocol.get_buffer(size - offset))
            n = min(len(buffer), size - offset)
            if not n:
                raise RuntimeError(f"{protocol!r}.get_buffer() returned an empty buffer")
            buffer[:n] = view[offset:offset + n]
            offset += n
            protocol.buffer_updated(n)
    return feed


def _notify_lost(protocol: asyncio.BaseProtocol, exc: BaseException | None) -> None:
    protocol.connection_lost(exc)  # type: ignore[arg-type]
