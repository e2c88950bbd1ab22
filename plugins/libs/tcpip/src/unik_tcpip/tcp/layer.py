"""The TCP layer: demultiplexing, listeners, ISNs, SYN cookies, and the application's API.

:meth:`TcpLayer.segment_input` takes every segment the network layer received for
TCP; it finds the connection (:class:`unik_tcpip.tcp.transport.TcpConnection`) by its
four-tuple or runs RFC 9293 3.10.7.1 (CLOSED) and 3.10.7.2 (LISTEN) itself.
:meth:`TcpLayer.connect` / :meth:`TcpLayer.start_server` wrap connections in
:class:`asyncio.StreamReader` / :class:`asyncio.StreamWriter` exactly as
:func:`asyncio.open_connection` and :func:`asyncio.start_server` do.
"""

from __future__ import annotations

import asyncio
import errno
import struct
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from unik import lifecycle
from unik.devices import Flow, FlowHandler, Random, TxOffload

from .. import cc
from ..addr import AF_INET, AF_INET6, ip_bytes
from ..iface import Interface, TokenBucket
from ..timers import Timers
from ..wire.ipv4 import Protocol
from ..wire.tcp import ACK, RST, SYN, TcpOptions, TcpSegment
from .config import TcpConfig
from .connection import Connection, Key, Path
from .seq import MASK, seq_le, seq_lt
from .state import State
from .transport import TcpConnection

if TYPE_CHECKING:
    from ..ip import IpDatagram, IpError, IpLayer

try:  # hashlib itself loads six hash modules as it is imported; only BLAKE2s is used here
    from _blake2 import blake2s
except ImportError:  # pragma: no cover - an interpreter without the built-in module
    from hashlib import blake2s

EPHEMERAL = range(49152, 65536)
_S = 10**9
#: IP's protocol number of TCP, as a plain int (an enum member's lookup costs ~80 ns per segment).
_TCP = int(Protocol.TCP)
#: Address lengths a listener of each family accepts (0: both, as a dual-stack socket).
_LENGTHS = {0: frozenset((4, 16)), AF_INET: frozenset((4,)), AF_INET6: frozenset((16,))}


class TcpListener:
    """A port in LISTEN with its protocol factory, SYN backlog and Nagle choice for its connections."""

    def __init__(self, port: int, factory: Callable[[], asyncio.BaseProtocol], backlog: int,
                 family: int = 0, nodelay: bool | None = None) -> None:
        self.port = port
        self.factory = factory
        self.backlog = backlog
        self.half_open = 0
        #: ``0`` (both families), :data:`socket.AF_INET` or :data:`socket.AF_INET6`.
        self.family = family
        #: The address lengths it accepts connections to.
        self.lengths = _LENGTHS[family]
        #: ``True``: Nagle off on accepted connections; ``None``: the configuration's default.
        self.nodelay = nodelay


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


#: A handler written for asyncio's streams, which :meth:`TcpLayer.start_server` passes: it
#: takes those as well as a :data:`unik.devices.FlowHandler` (the protocols' subset of them).
StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

#: How a connection to a name is made (the stack's resolver and Happy Eyeballs).
#: ``(protocol_factory, host, port, nodelay)``.
ByName = Callable[[Callable[[], asyncio.BaseProtocol], str, int, "bool | None"],
                  Awaitable[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]]]


class TcpLayer:
    """TCP for one interface and both families: demultiplexing, listeners, ISNs (:class:`unik.devices.TCP`).

    ``iface`` is the IPv4 layer (it owns the device), ``ipv6`` the IPv6 one on the same
    link; connections and listeners pick theirs by the length of an address.
    """

    def __init__(self, iface: Interface, timers: Timers, random: Random, stats: Counter[str],
                 config: TcpConfig | None = None, ipv6: IpLayer | None = None) -> None:
        self.iface = iface
        #: The network layer of each family, by address length (4, 16).
        self.nets: dict[int, IpLayer] = {4: iface} if ipv6 is None else {4: iface, 16: ipv6}
        self.timers = timers
        self.random = random
        self.stats = stats
        self.config = config or TcpConfig()
        #: Segmentation offload in use: the device offers it and the configuration allows it.
        self.tso = self.config.tso and iface.network.offloads.tso
        cc.make(self.config.congestion_control)  # an unknown name fails here, not per connection
        self.connections: dict[Key, TcpConnection] = {}
        self.listeners: dict[int, TcpListener] = {}
        self._by_name: ByName | None = None
        self._random = random
        self.renew_secrets()
        self.challenge_bucket = TokenBucket(self.config.challenge_ack_rate, int(self.config.challenge_ack_rate))
        # RFC 7323 2.3: the smallest shift that lets the window cover the buffer.
        shift = 0
        while (0xFFFF << shift) < self.config.rcv_buf and shift < 14:
            shift += 1
        self.rcv_wscale = shift

    def renew_secrets(self) -> None:
        """RFC 6528: a secret key for the ISN hash, from the Random device (and one for SYN cookies).

        Made again when a VM snapshot is restored: instances of one snapshot must not
        share the secret, or one's ISNs would predict another's.
        """
        self._secret = self._random.generate(16)
        self._cookie_secret = self._random.generate(16)

    # -- the application's API ----------------------------------------------------

    def bind_names(self, by_name: ByName) -> None:
        """Connect to names (not address literals) through ``by_name`` (the stack's resolver)."""
        self._by_name = by_name

    def isn(self, key: Key) -> int:
        """RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey)."""
        m = self.timers.now_ns() // 4000  # a 4-microsecond timer
        digest = blake2s(
            key[0] + key[1].to_bytes(2, "big") + key[2] + key[3].to_bytes(2, "big"), key=self._secret,
            digest_size=4,
        ).digest()
        return (m + int.from_bytes(digest, "big")) & MASK

    def _free_port(self, local: bytes, remote: tuple[bytes, int]) -> int:
        start = int.from_bytes(self.random.generate(2), "big") % len(EPHEMERAL)
        for i in range(len(EPHEMERAL)):
            port = EPHEMERAL[(start + i) % len(EPHEMERAL)]
            if port not in self.listeners and (local, port, *remote) not in self.connections:
                return port
        raise OSError(errno.EADDRNOTAVAIL, "no free TCP port")

    async def create_connection(self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: str,
                                port: int, *, local_port: int = 0,
                                nodelay: bool | None = None) -> tuple[TcpConnection, asyncio.BaseProtocol]:
        """Open a connection running ``protocol_factory()`` (like ``loop.create_connection``).

        ``host`` is an IPv4 or IPv6 address, or a name the stack resolves (connecting by
        Happy Eyeballs); ``local_port`` 0 picks a free ephemeral port; ``nodelay``
        ``True`` switches Nagle's algorithm off from the first byte (``None``: the configuration's default).
        """
        try:
            dst = ip_bytes(host)
        except ValueError:
            if self._by_name is None or local_port:
                raise OSError(errno.EINVAL, f"{host!r} is not an IPv4 or IPv6 address") from None
            return await self._by_name(protocol_factory, host, port, nodelay)  # type: ignore[return-value]
        if not 0 < port < 65536:
            raise OSError(errno.EINVAL, f"bad port {port}")
        net = self.nets.get(len(dst))
        if net is None:
            raise OSError(errno.EAFNOSUPPORT, f"no IPv6 on this stack for {host}")
        if net.route(dst) is None:
            raise OSError(errno.ENETUNREACH, f"no route to {host}")
        src = net.source_for(dst)
        if src is None:
            raise OSError(errno.EADDRNOTAVAIL, f"no address of ours can reach {host}")
        if len(self.connections) >= self.config.max_connections:
            raise OSError(errno.EMFILE, "too many TCP connections")
        if local_port == 0:
            local_port = self._free_port(src, (dst, port))
        elif (src, local_port, dst, port) in self.connections:
            raise OSError(errno.EADDRINUSE, f"a connection from port {local_port} to {host}:{port} exists")
        conn = self._new_connection((src, local_port), (dst, port), protocol_factory, None, nodelay)
        conn.open_active(self.isn(conn.key))
        try:
            await asyncio.shield(conn.established)
        except asyncio.CancelledError:
            conn.abort()
            raise
        assert conn.protocol is not None
        return conn, conn.protocol

    def _free_listen_port(self) -> int:
        start = int.from_bytes(self.random.generate(2), "big") % len(EPHEMERAL)
        for i in range(len(EPHEMERAL)):
            port = EPHEMERAL[(start + i) % len(EPHEMERAL)]
            if port not in self.listeners and not any(key[1] == port for key in self.connections):
                return port
        raise OSError(errno.EADDRINUSE, "no free TCP port to listen on")

    async def connect(self, host: str, port: int, *, limit: int = 2**16) -> Flow:
        """Open a connection and return its reader and writer (like ``asyncio.open_connection``)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport, _ = await self.create_connection(lambda: protocol, host, port)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        return Flow(reader, writer)

    async def create_server(self, protocol_factory: Callable[[], asyncio.BaseProtocol], port: int,
                            backlog: int | None = None, *, family: int = 0,
                            nodelay: bool | None = None) -> TcpServer:
        """Listen on ``port`` (0: a free ephemeral port), running ``protocol_factory()`` per connection.

        ``family`` 0 listens on both IPv4 and IPv6 (a dual-stack socket), ``socket.AF_INET``
        or ``socket.AF_INET6`` on one; a transport's ``peername`` says the peer's family.
        ``nodelay`` as for :meth:`create_connection`, for every accepted connection.
        The first listener of the process announces the runtime's :data:`unik.lifecycle.READY`
        (the application serves: a VM booted for a snapshot is saved then).
        """
        if port == 0:
            port = self._free_listen_port()
        if not 0 < port < 65536:
            raise OSError(errno.EINVAL, f"bad port {port}")
        if family not in _LENGTHS:
            raise OSError(errno.EAFNOSUPPORT, f"family {family}: listen on 0 (both), AF_INET or AF_INET6")
        if port in self.listeners:
            raise OSError(errno.EADDRINUSE, f"TCP port {port} is already listening")
        listener = TcpListener(port, protocol_factory, backlog or self.config.syn_backlog, family, nodelay)
        self.listeners[port] = listener
        lifecycle.announce(lifecycle.READY)
        return TcpServer(self, listener)

    async def start_server(self, handler: FlowHandler | StreamHandler, port: int, *, limit: int = 2**16,
                           backlog: int | None = None, family: int = 0) -> TcpServer:
        """Call ``handler(reader, writer)`` for each connection (like ``asyncio.start_server``).

        Both families unless ``family`` is ``socket.AF_INET`` or ``socket.AF_INET6``;
        ``writer.get_extra_info("peername")`` is ``(host, port)`` for an IPv4 peer and
        ``(host, port, flowinfo, scope_id)`` for an IPv6 one, as asyncio's sockets give.
        """
        loop = asyncio.get_running_loop()

        def factory() -> asyncio.BaseProtocol:
            reader = asyncio.StreamReader(limit=limit, loop=loop)
            return asyncio.StreamReaderProtocol(reader, handler, loop=loop)

        return await self.create_server(factory, port, backlog, family=family)

    async def listen(self, port: int, backlog: int | None = None,
                     limit: int = 2**16) -> asyncio.Queue[Flow]:
        """Listen on ``port``; accepted flows arrive on the returned queue."""
        queue: asyncio.Queue[Flow] = asyncio.Queue()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await queue.put(Flow(reader, writer))

        await self.start_server(accept, port, limit=limit, backlog=backlog)
        return queue

    # -- input ---------------------------------------------------------------------

    def transport_error(self, error: IpError) -> None:
        """An ICMP error about one of our segments (RFC 1122 4.2.3.9, RFC 5927, RFC 1191, RFC 8201)."""
        if len(error.header) < 8:
            self.stats["tcp.icmp_truncated"] += 1
            return
        sport, dport, seq = struct.unpack_from("!HHI", error.header)
        key = (error.local, sport, error.remote, dport)
        conn = self.connections.get(key)
        if conn is None:
            self.stats["tcp.icmp_no_connection"] += 1
            return
        # RFC 5927 4.1: believe only errors quoting a sequence number in flight.
        tcb = conn.tcb
        if not (seq_le(tcb.snd_una, seq) and seq_lt(seq, tcb.snd_max)) and not (
                tcb.state == State.SYN_SENT and seq == tcb.iss):
            self.stats["tcp.icmp_out_of_window"] += 1
            return
        self.stats["tcp.icmp_errors"] += 1
        conn.icmp_error(error.type, error.code, error.mtu)

    def input(self, ip: IpDatagram) -> None:
        """A datagram carrying TCP, from the full parsers: parse the segment and demultiplex it."""
        verify = self.nets[len(ip.src)].verify_rx_checksum
        self.segment_input(ip.src, ip.dst, TcpSegment.parse(ip.payload, ip.src, ip.dst, verify))

    def frame_input(self, src: bytes, dst: bytes, frame: bytes | bytearray | memoryview, fields: Any) -> None:
        """A segment the frame parser found (:func:`unik_tcpip.fastpath.tcp4_parse`'s record).

        An established connection's predicted segment (in order, data and/or a new ACK:
        :mod:`unik_tcpip.tcp.predict`) is processed straight from the record; any other
        is parsed and goes to :meth:`segment_input` like every segment.  Counted as
        ``tcp.predicted`` (the rest under ``tcp.rx`` alone), on every NIC alike.
        """
        conn = self.connections.get((dst, fields.dport, src, fields.sport))
        if conn is not None and conn.frame_arrives(frame, fields):
            stats = self.stats
            stats["tcp.rx"] += 1
            stats["tcp.predicted"] += 1
            return
        self.segment_input(src, dst, TcpSegment.from_fast(frame, fields))

    def segment_input(self, src: bytes, dst: bytes, seg: TcpSegment) -> None:
        """Demultiplex a parsed segment from ``src`` to ``dst`` (RFC 9293 3.10.7).

        Nothing here depends on the address family: an IPv6 interface hands its
        segments in the same way, with 16-byte addresses.
        """
        self.stats["tcp.rx"] += 1
        key = (dst, seg.dst_port, src, seg.src_port)
        conn = self.connections.get(key)
        if conn is None or conn.segment_arrives(seg):
            self.segment_arrives_listen(key, seg)

    def segment_arrives_listen(self, key: Key, seg: TcpSegment) -> None:
        """RFC 9293 3.10.7.1 (CLOSED) and 3.10.7.2 (LISTEN)."""
        flags = seg.flags
        listener = self.listeners.get(key[1])
        if listener is None or len(key[0]) not in listener.lengths or not self.nets[len(key[0])].owns(key[0]):
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
        conn = self._new_connection((key[0], key[1]), (key[2], key[3]), listener.factory, listener)
        listener.half_open += 1
        conn.open_passive(seg, self.isn(key))

    # -- SYN cookies (RFC 4987 3.6) -------------------------------------------------

    #: MSS values a cookie can name in 3 bits (RFC 4987 3.6 encodes an MSS index).
    COOKIE_MSS = (536, 1220, 1440, 1460, 4036, 8960, 8960, 8960)

    def _cookie(self, key: Key, irs: int, slot: int, mss_index: int) -> int:
        """ISS = 5 bits of a 64-second clock, 3 bits of MSS index, 24 bits of keyed hash."""
        digest = blake2s(
            key[0] + key[1].to_bytes(2, "big") + key[2] + key[3].to_bytes(2, "big")
            + irs.to_bytes(4, "big") + bytes((slot & 31, mss_index)),
            key=self._cookie_secret, digest_size=3).digest()
        return ((slot & 31) << 27) | (mss_index << 24) | int.from_bytes(digest, "big")

    def _cookie_slot(self) -> int:
        return self.timers.now_ns() // (64 * _S)

    def _cookie_syn_ack(self, key: Key, seg: TcpSegment) -> None:
        """Answer a SYN statelessly when the backlog is full; the ISS encodes what we need."""
        net = self.nets[len(key[0])]
        peer_mss = seg.options.mss or 536
        own = min(peer_mss, net.max_mss)
        index = max((i for i, m in enumerate(self.COOKIE_MSS) if m <= own), default=0)
        iss = self._cookie(key, seg.seq, self._cookie_slot(), index)
        self.stats["tcp.syncookies_sent"] += 1
        # No window scale, timestamps or SACK: nothing remembers them (RFC 4987 3.6).
        segment = TcpSegment.build(key[0], key[2], key[1], key[3], iss, (seg.seq + 1) & MASK, SYN | ACK,
                                   min(self.config.rcv_buf, 0xFFFF), TcpOptions(mss=net.max_mss).to_bytes(),
                                   headroom=net.headroom)
        self.output(key[2], segment, None, key[0])

    def _cookie_ack(self, key: Key, seg: TcpSegment, listener: TcpListener) -> bool:
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
        conn = self._new_connection((key[0], key[1]), (key[2], key[3]), listener.factory, listener)
        conn.open_from_cookie(seg, iss, irs, self.COOKIE_MSS[index])
        return True

    # -- output --------------------------------------------------------------------

    def output(self, dst: bytes, segment: bytearray, offload: TxOffload | None = None,
               src: bytes | None = None) -> None:
        """Route a built segment (headroom included) from ``src`` (whose address its checksum covers).

        DF is set (RFC 1191 path MTU discovery; IPv6 routers never fragment).
        """
        self.stats["tcp.tx"] += 1
        self.nets[len(dst)].ip_output(dst, _TCP, segment, src=src, df=True, offload=offload)

    def send_rst(self, key: Key, seq: int, ack: int, flags: int) -> None:
        """A reset for ``key`` (local address/port, remote address/port)."""
        self.stats["tcp.resets_sent"] += 1
        segment = TcpSegment.build(key[0], key[2], key[1], key[3], seq, ack, flags, 0,
                                   headroom=self.nets[len(key[0])].headroom)
        self.output(key[2], segment, None, key[0])

    def _new_connection(self, local: tuple[bytes, int], remote: tuple[bytes, int],
                        factory: Callable[[], asyncio.BaseProtocol] | None,
                        listener: TcpListener | None, nodelay: bool | None = None) -> TcpConnection:
        """A connection in CLOSED, entered in the table; its caller opens it."""
        net = self.nets[len(local[0])]
        path = Path(net.headroom, net.max_mss, net.ip_header_len, net.gso_tcp, self.tso)
        tcb = Connection(self.config, path, local, remote, counters=self.stats, challenge=self.challenge_bucket,
                         ts_offset=int.from_bytes(self.random.generate(4), "big"), rcv_wscale=self.rcv_wscale,
                         passive=listener is not None)
        if listener is not None:
            nodelay = listener.nodelay
        if nodelay is not None:
            tcb.nodelay = nodelay
        conn = TcpConnection(self, tcb, factory, listener)
        self.connections[tcb.key] = conn
        return conn

    def remove(self, conn: TcpConnection) -> None:
        """Forget a closed connection."""
        if self.connections.get(conn.key) is conn:
            del self.connections[conn.key]

    def close_all(self) -> None:
        """Reset every connection (the stack is disconnecting)."""
        for conn in list(self.connections.values()):
            conn.tcb.abort(ConnectionAbortedError("the TCP/IP stack was disconnected"), self.timers.now_ns())
            conn._run()
        self.listeners.clear()

