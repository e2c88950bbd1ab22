"""The interface: Ethernet dispatch, ARP, IPv4 input/output with routing, ICMP.

Everything here runs synchronously inside the receive loop; frames to send are
queued and written by one task (:meth:`Interface.run_tx`).  Every malformed or
unwanted packet is counted in :attr:`Interface.stats` under a reason and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from unik import lifecycle
from unik.devices import IPv4Config, Network, PollableNetwork, TxOffload
from unik.errors import DeviceClosed, DeviceError

from . import arp as arp_cache
from . import fastpath
from .errors import Malformed
from .ip import IpError
from .reassembly import Reassembler
from .timers import Timers
from .wire import arp as wire_arp
from .wire import icmp as wire_icmp
from .wire.ethernet import BROADCAST, EthernetFrame, EtherType
from .wire.ethernet import HEADER_LEN as ETH_LEN
from .wire.ipv4 import MIN_HEADER_LEN as IP_LEN
from .wire.ipv4 import Ipv4Packet, Protocol

log = logging.getLogger(__name__)

#: Frame arrival times, for whoever subscribes to the runtime's timings (unik-lib-entropy's pools).
_rx_timing = lifecycle.timings("tcpip.rx")

#: Bytes an L4 builder leaves in front of its header for Ethernet and IPv4.
HEADROOM = ETH_LEN + IP_LEN
ANY = b"\x00\x00\x00\x00"
LIMITED_BROADCAST = b"\xff\xff\xff\xff"
_TICK_NS = 10**9

# Addresses are parsed and formatted here rather than by ipaddress, which is imported only
# for what the fast paths leave to it: that module alone costs ~15 ms as a VM boots under
# emulation.  Each fast path accepts exactly a subset of what ipaddress accepts and gives the
# same result; everything else (other forms, and every error) is ipaddress's.


def parse_quad(text: object) -> int | None:
    """A dotted quad as :class:`ipaddress.IPv4Address` accepts it (``"10.0.0.1"``), as an integer.

    ``None`` for anything else: a caller then leaves ``text`` to ipaddress (which raises).
    """
    if type(text) is not str:
        return None
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        # ASCII digits, 1-3 of them, no leading zero, at most 255: ipaddress's own rules.
        if not (0 < len(part) <= 3 and part.isascii() and part.isdigit()) or (part[0] == "0" and len(part) > 1):
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = (value << 8) | octet
    return value


def prefix_mask(prefix: int) -> int:
    """The netmask of a prefix length 0-32, as an integer (``24`` -> ``0xFFFFFF00``)."""
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


def ip_bytes(text: str) -> bytes:
    """``"10.0.0.1"`` as four bytes."""
    value = parse_quad(text)
    if value is None:
        import ipaddress

        return ipaddress.IPv4Address(text).packed
    return value.to_bytes(4, "big")


def ip_text(raw: bytes) -> str:
    """Four bytes as ``"10.0.0.1"``."""
    if type(raw) is not bytes or len(raw) != 4:
        import ipaddress

        return str(ipaddress.IPv4Address(raw))
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"


class TokenBucket:
    """A rate limiter: ``rate`` events per second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.last_ns = 0

    def take(self, now_ns: int) -> bool:
        """Whether one more event is allowed now."""
        self.tokens = min(self.burst, self.tokens + (now_ns - self.last_ns) * self.rate / 1e9)
        self.last_ns = now_ns
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Interface:
    """One Ethernet interface with one IPv4 address (an :class:`unik_tcpip.ip.IpLayer`)."""

    #: What the transports build in front of their headers: Ethernet and IPv4.
    headroom = HEADROOM
    ip_header_len = IP_LEN
    #: virtio-net GSO type of TCP over this family (VIRTIO_NET_HDR_GSO_TCPV4).
    gso_tcp = 1

    def __init__(self, network: Network, timers: Timers, stats: Counter[str], *,
                 ident_seed: int = 0, tx_queue: int = 4096) -> None:
        self.network = network
        self.mac = bytes(network.mac)
        #: The Ethernet header's source address and EtherType (IPv4) of every IPv4 frame sent.
        self._eth_tail = self.mac + EtherType.IPV4.to_bytes(2, "big")
        self.mtu = network.mtu
        self.timers = timers
        self.stats = stats
        self.arp = arp_cache.ArpCache(stats)
        self.reassembler = Reassembler(stats)
        self.address = ANY
        self.prefix = 0
        self._mask = 0
        self._net = 0
        self.broadcast = LIMITED_BROADCAST
        self.gateway: bytes | None = None
        self.verify_rx_checksum = not network.offloads.rx_csum
        #: The transports above, set once by :meth:`bind` (``TcpipStack`` wires the layers).
        self.tcp: TcpTransport | None = None
        self.udp: Transport | None = None
        #: The IPv6 layer on this link, which gets every IPv6 frame (set by :meth:`bind`).
        self.ipv6: Ipv6Layer | None = None
        self._ident = ident_seed & 0xFFFF
        self._txq: deque[tuple[bytearray | bytes, TxOffload | None]] = deque()
        self._tx_limit = tx_queue
        self._tx_ready = asyncio.Event()
        #: The device's synchronous core, when it declares one (:class:`unik.devices.PollableNetwork`):
        #: the fast path.  Without it frames go through the awaited ``read``/``write``.
        self.polled: PollableNetwork | None = network if isinstance(network, PollableNetwork) else None
        self._send_now: Callable[[bytearray | bytes, TxOffload | None], object] | None = (
            None if self.polled is None else self.polled.send)
        if self.polled is None:
            stats["iface.slow_path"] = 1
            log.info("network %r is not a PollableNetwork (fileno, read_nowait, send): the stack awaits its "
                     "read/write, the slow path", network.name)
        self._flush_pending = False
        self._icmp_errors = TokenBucket(rate=100.0, burst=50)
        self._pings: dict[tuple[int, int], asyncio.Future[int]] = {}
        timers.after(_TICK_NS, self._tick)

    # -- configuration --------------------------------------------------------------

    def bind(self, tcp: TcpTransport, udp: Transport, ipv6: Ipv6Layer | None = None) -> None:
        """The transports that received datagrams (and ICMP errors quoting theirs) go to, and IPv6's layer."""
        self.tcp, self.udp = tcp, udp
        self.ipv6 = ipv6

    def renew_link(self) -> None:
        """A restored VM snapshot: take the NIC's MAC address again and forget every neighbour.

        Another instance of the same snapshot may run beside this one with the MAC and
        the ARP cache this memory remembers: the device's address now (its own) replaces
        the first, a new cache the second; a gratuitous ARP tells the link who holds the
        address from now on (RFC 5227 2.3).
        """
        self.mac = bytes(self.network.mac)
        self._eth_tail = self.mac + EtherType.IPV4.to_bytes(2, "big")
        generation = self.arp.generation
        self.arp = arp_cache.ArpCache(self.stats)
        self.arp.generation = generation + 1  # connections' link headers are read again
        self._pings.clear()
        self.stats["iface.renewed"] += 1
        self.gratuitous_arp()

    def configure(self, config: IPv4Config | None) -> None:
        """Set (or with ``None`` clear) the address, prefix and gateway."""
        self.arp.generation += 1  # routes change: link headers handed out are read again
        if config is None:
            self.address, self.prefix, self._mask, self._net = ANY, 0, 0, 0
            self.broadcast, self.gateway = LIMITED_BROADCAST, None
            return
        address, prefix = parse_quad(config.address), config.prefix
        if address is not None and type(prefix) is int and 0 <= prefix <= 32:
            mask = prefix_mask(prefix)
            net, broadcast = address & mask, (address & mask) | (~mask & 0xFFFFFFFF)
        else:  # other forms, and errors: ipaddress's
            import ipaddress

            network = ipaddress.IPv4Network(f"{config.address}/{config.prefix}", strict=False)
            mask, net, broadcast = int(network.netmask), int(network.network_address), int(
                network.broadcast_address)
        self.address = ip_bytes(config.address)
        self.prefix = config.prefix
        self._mask = mask
        self._net = net
        self.broadcast = broadcast.to_bytes(4, "big") if config.prefix < 31 else LIMITED_BROADCAST
        self.gateway = ip_bytes(config.gateway) if config.gateway else None

    def config(self) -> IPv4Config:
        """The current configuration."""
        return IPv4Config(ip_text(self.address), self.prefix, ip_text(self.gateway) if self.gateway else None)

    @property
    def max_mss(self) -> int:
        """The largest TCP payload one MTU carries without options (RFC 9293 3.7.1)."""
        return self.mtu - self.ip_header_len - 20

    def on_link(self, dst: bytes) -> bool:
        """Whether ``dst`` is in our subnet."""
        return self.address != ANY and (int.from_bytes(dst, "big") & self._mask) == self._net

    def route(self, dst: bytes) -> bytes | None:
        """The next hop for ``dst``: itself when on-link, else the gateway (``None``: no route)."""
        if (self.address != ANY and (int.from_bytes(dst, "big") & self._mask) == self._net) \
                or dst == LIMITED_BROADCAST or dst == self.broadcast:
            return dst  # on-link (the common case, tested first), or a broadcast
        return self.gateway

    def link_header(self, dst: bytes, now_ns: int) -> tuple[bytes, int, int] | None:
        """The Ethernet header of unicast datagrams to ``dst``, until when it holds, and the TTL.

        Known while the next hop's ARP entry is fresh (and :attr:`link_generation` stays);
        ``None`` for our own address, a broadcast, no route or an unresolved hop: those
        datagrams take :meth:`ip_output`, which resolves and loops back.
        """
        if dst == self.address or self.address == ANY:
            return None
        hop = self.route(dst)
        if hop is None or hop == self.broadcast or hop == LIMITED_BROADCAST:
            return None
        entry = self.arp.entries.get(hop)
        if entry is None or entry[1] <= now_ns:
            return None
        return entry[0] + self._eth_tail, entry[1], 64

    @property
    def link_generation(self) -> int:
        """Moves when a link header :meth:`link_header` gave may no longer hold."""
        return self.arp.generation

    def owns(self, address: bytes) -> bool:
        """Whether ``address`` is ours (connections are accepted to it)."""
        return address == self.address and address != ANY

    def source_for(self, dst: bytes) -> bytes | None:
        """Our address (``0.0.0.0`` before DHCP bound one: its own messages are sent from it)."""
        return self.address

    def port_unreachable(self, ip: IpDatagram) -> None:
        """ICMP port unreachable about ``ip`` (RFC 1122 4.1.3.1), within :meth:`send_unreachable`'s limits."""
        assert isinstance(ip, Ipv4Packet)
        self.send_unreachable(ip, wire_icmp.PORT_UNREACHABLE)

    def is_local(self, dst: bytes) -> bool:
        """Whether a datagram to ``dst`` is for this host."""
        return dst == self.address or dst in (LIMITED_BROADCAST, self.broadcast) or (
            self.address == ANY)

    # -- receive --------------------------------------------------------------------

    async def run_rx(self) -> None:
        """Read frames and process them until cancelled or the device is closed.

        A :class:`unik.devices.PollableNetwork` (the unix TAP, a VM's packet ring) is
        served by one event-loop reader callback that drains a batch and processes it in
        place: no task wake-up, future or reader re-registration per batch.  Others are
        awaited through the ``Network`` protocol's ``read``.
        """
        network = self.network
        if self.polled is not None:
            fd = self.polled.fileno()
            if fd < 0:
                log.warning("network %r is closed: the stack receives nothing", network.name)
                return
            await self._run_rx_reader(fd, self.polled.read_nowait)
            return
        while True:
            try:
                frames = await network.read(64)
            except DeviceClosed:
                log.warning("network %r closed: the stack stops receiving", network.name)
                return
            except DeviceError as exc:
                # A failed read loses what it would have read, not the stack.
                self.stats["rx.read_errors"] += 1
                log.warning("reading network %r failed: %s", network.name, exc)
                await asyncio.sleep(0.01)
                continue
            self.receive_batch(frames)

    async def _run_rx_reader(self, fd: int, read_nowait: Callable[[int], list[bytes]]) -> None:
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()
        receive_batch = self.receive_batch

        def readable() -> None:
            try:
                frames = read_nowait(64)
            except DeviceClosed:
                log.warning("network %r closed: the stack stops receiving", self.network.name)
                loop.remove_reader(fd)
                if not stopped.done():
                    stopped.set_result(None)
                return
            except DeviceError as exc:
                self.stats["rx.read_errors"] += 1
                log.warning("reading network %r failed: %s", self.network.name, exc)
                return
            if frames:
                receive_batch(frames)

        # The registration lasts as long as this task: disconnect the stack before its
        # network (the generated main.py disconnects in reverse connect order), or a
        # closed and reused descriptor number could reach this callback.
        loop.add_reader(fd, readable)
        try:
            await stopped
        finally:
            loop.remove_reader(fd)

    def receive_batch(self, frames: list[bytes]) -> None:
        """Process a batch of frames read together (and time its arrival for the entropy pools)."""
        _rx_timing.tick(len(frames[0]) if frames else 0)
        receive = self.receive
        for frame in frames:
            receive(frame)

    def receive(self, frame: bytes | bytearray | memoryview) -> None:
        """Process one frame; malformed input is counted and dropped, nothing raises."""
        self.stats["rx.frames"] += 1
        try:
            self._receive(frame)
        except Malformed as exc:
            self.stats[exc.reason] += 1
        except Exception:
            self.stats["rx.internal_error"] += 1
            log.exception("error processing a received frame")

    def _receive(self, frame: bytes | bytearray | memoryview) -> None:
        fields = fastpath.tcp4_parse(frame, self.verify_rx_checksum)
        if fields is not None:
            # The fast path: a plain TCP segment unicast to our MAC and address from a
            # plausible source; everything else takes the full parsers below, which
            # count each drop by its reason.
            src = fields.src
            if fields.dst_mac == self.mac and fields.dst == self.address and src != self.address \
                    and src[0] < 224 and self.tcp is not None:
                self.stats["ipv4.rx"] += 1
                self.tcp.frame_input(src, fields.dst, frame, fields)
                return
        elif self.ipv6 is not None and (fields := fastpath.tcp6_parse(frame, self.verify_rx_checksum)) is not None:
            # The same for TCP over IPv6 without extension headers: to one of our addresses
            # past DAD, from a unicast address not ours.
            src, entries = fields.src, self.ipv6.addresses.entries
            entry = entries.get(fields.dst)
            if fields.dst_mac == self.mac and entry is not None and entry.state != "tentative" \
                    and src[0] != 0xFF and src not in entries and self.tcp is not None:
                self.stats["ipv6.rx"] += 1
                self.tcp.frame_input(src, fields.dst, frame, fields)
                return
        eth = EthernetFrame.parse(frame)
        if eth.dst != self.mac and not eth.dst[0] & 1:
            self.stats["ethernet.not_for_us"] += 1
            return
        if eth.ethertype == EtherType.IPV4:
            self._ipv4_input(Ipv4Packet.parse(eth.payload, self.verify_rx_checksum), eth)
        elif eth.ethertype == EtherType.ARP:
            self._arp_input(wire_arp.ArpPacket.parse(eth.payload), eth)
        elif eth.ethertype == EtherType.IPV6 and self.ipv6 is not None:
            self.ipv6.input(eth)
        else:
            self.stats["ethernet.unknown_ethertype"] += 1

    def _arp_input(self, pkt: wire_arp.ArpPacket, eth: EthernetFrame) -> None:
        now = self.timers.now_ns()
        if pkt.sha == self.mac:
            self.stats["arp.own_mac"] += 1
            return
        if pkt.spa == self.address and self.address != ANY:
            # Someone else claims our address: keep it, but never cache the claim.
            self.stats["arp.address_conflict"] += 1
            return
        if eth.src != pkt.sha:
            self.stats["arp.sender_mismatch"] += 1
            return
        if pkt.spa == ANY or pkt.spa == LIMITED_BROADCAST or pkt.spa[0] >= 224:
            self.stats["arp.bad_sender"] += 1
            return
        # RFC 826 "Packet Reception": merge into an existing entry first.
        merged = self.arp.update_existing(pkt.spa, pkt.sha, now)
        flush: list[arp_cache.Queued] = []
        solicited = pkt.op == wire_arp.REPLY and pkt.spa in self.arp.pending
        if pkt.tpa == self.address and self.address != ANY:
            # RFC 826 adds the sender when we are the target; only for a request (we are
            # about to talk to it) or an answer we asked for, never an unsolicited reply.
            if not merged and (pkt.op == wire_arp.REQUEST or solicited):
                flush = self.arp.insert(pkt.spa, pkt.sha, now)
            elif not merged:
                self.stats["arp.unsolicited"] += 1
            if pkt.op == wire_arp.REQUEST:
                reply = wire_arp.ArpPacket(wire_arp.REPLY, self.mac, self.address, pkt.sha, pkt.spa)
                self._send_arp(reply, pkt.sha)
        elif solicited:
            flush = self.arp.insert(pkt.spa, pkt.sha, now)
        elif not merged:
            self.stats["arp.not_for_us"] += 1
        for waiting, offload in flush:
            waiting[0:6] = pkt.sha
            self._queue(waiting, offload)

    def _ipv4_input(self, ip: Ipv4Packet, eth: EthernetFrame) -> None:
        if ip.src == LIMITED_BROADCAST or ip.src[0] >= 224 or (ip.src == self.address and self.address != ANY):
            self.stats["ipv4.bad_source"] += 1
            return
        if not self.is_local(ip.dst):
            self.stats["ipv4.not_for_us"] += 1
            return
        if ip.is_fragment:
            whole = self.reassembler.add(ip, self.timers.now_ns())
            if whole is None:
                return
            ip = Ipv4Packet.parse(whole, verify_checksum=False)
        self.stats["ipv4.rx"] += 1
        self.deliver(ip, broadcast=eth.dst == BROADCAST or ip.dst in (LIMITED_BROADCAST, self.broadcast))

    def deliver(self, ip: Ipv4Packet, broadcast: bool = False) -> None:
        """Hand a whole datagram addressed to us to its protocol."""
        proto = ip.proto
        if proto == Protocol.TCP:
            if broadcast:
                self.stats["tcp.broadcast"] += 1
            elif self.tcp is not None:
                self.tcp.input(ip)
        elif proto == Protocol.UDP:
            if self.udp is not None:
                self.udp.input(ip)
        elif proto == Protocol.ICMP:
            self._icmp_input(ip, broadcast)
        else:
            self.stats["ipv4.unknown_protocol"] += 1
            if not broadcast:
                self.send_unreachable(ip, wire_icmp.PROTOCOL_UNREACHABLE)

    # -- ICMP -----------------------------------------------------------------------

    def _icmp_input(self, ip: Ipv4Packet, broadcast: bool) -> None:
        msg = wire_icmp.IcmpPacket.parse(ip.payload, self.verify_rx_checksum)
        if msg.type == wire_icmp.ECHO_REQUEST:
            if broadcast or self.address == ANY:
                # RFC 1122 3.2.2.6: an echo request to a broadcast address MAY be discarded.
                self.stats["icmp.echo_broadcast"] += 1
                return
            self.stats["icmp.echo_requests"] += 1
            # RFC 792: the reply carries the request's identifier, sequence and data.
            reply = wire_icmp.IcmpPacket.build(wire_icmp.ECHO_REPLY, 0, msg.rest, msg.data, headroom=HEADROOM)
            self.ip_output(ip.src, Protocol.ICMP, reply)
        elif msg.type == wire_icmp.ECHO_REPLY:
            waiter = self._pings.pop((msg.ident, msg.seq), None)
            if waiter is None or waiter.done():
                self.stats["icmp.unexpected_reply"] += 1
            else:
                waiter.set_result(self.timers.now_ns())
        elif msg.type in (wire_icmp.DEST_UNREACHABLE, wire_icmp.TIME_EXCEEDED):
            self.stats["icmp.errors_received"] += 1
            inner = msg.data
            # RFC 792: the error carries the offending IP header and 64 bits of its data.
            if len(inner) < IP_LEN + 8 or inner[0] >> 4 != 4 or len(inner) < (inner[0] & 15) * 4 + 8:
                raise Malformed("icmp.bad_error_payload")
            if bytes(inner[12:16]) != self.address:
                self.stats["icmp.error_not_ours"] += 1  # it quotes a datagram we did not send
                return
            transport = self.tcp if inner[9] == Protocol.TCP else self.udp if inner[9] == Protocol.UDP else None
            if transport is not None:
                header_len = (inner[0] & 15) * 4
                transport.transport_error(IpError(bytes(inner[12:16]), bytes(inner[16:20]), inner[header_len:],
                                                  msg.type, msg.code, (msg.rest[2] << 8) | msg.rest[3]))
        else:
            self.stats["icmp.ignored"] += 1

    def send_unreachable(self, ip: Ipv4Packet, code: int) -> None:
        """Send a destination unreachable about ``ip``, within RFC 1122 3.2.2's limits."""
        # RFC 1122 3.2.2: never about an ICMP error, a non-initial fragment, or a datagram
        # to or from a broadcast/multicast address; RFC 1812 4.3.2.8: rate-limited.
        if ip.proto == Protocol.ICMP and len(ip.payload) and ip.payload[0] not in (
                wire_icmp.ECHO_REQUEST, wire_icmp.ECHO_REPLY):
            return
        if ip.frag_offset or ip.dst in (LIMITED_BROADCAST, self.broadcast) or ip.dst[0] >= 224:
            return
        if not self._icmp_errors.take(self.timers.now_ns()):
            self.stats["icmp.rate_limited"] += 1
            return
        quoted = ip.buf[:ip.header_len + 8]
        msg = wire_icmp.IcmpPacket.build(wire_icmp.DEST_UNREACHABLE, code, bytes(4), quoted, headroom=HEADROOM)
        self.stats["icmp.unreachable_sent"] += 1
        self.ip_output(ip.src, Protocol.ICMP, msg)

    async def ping(self, dst: str, *, ident: int = 0x756E, seq: int = 0, data: bytes = b"unik",
                   timeout: float = 1.0) -> float:
        """Send one echo request; return the round-trip time in seconds.

        Raises :class:`TimeoutError` when no reply arrives within ``timeout``.
        """
        key = (ident & 0xFFFF, seq & 0xFFFF)
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pings[key] = waiter
        start = self.timers.now_ns()
        msg = wire_icmp.IcmpPacket.build(wire_icmp.ECHO_REQUEST, 0, struct.pack("!HH", *key), data,
                                         headroom=HEADROOM)
        if not self.ip_output(ip_bytes(dst), Protocol.ICMP, msg):
            self._pings.pop(key, None)
            raise OSError(101, f"no route to {dst}")
        try:
            end = await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no echo reply from {dst} within {timeout} s") from None
        finally:
            self._pings.pop(key, None)
        return (end - start) / 1e9

    # -- output ---------------------------------------------------------------------

    def ip_output(self, dst: bytes, proto: int, packet: bytearray, *, src: bytes | None = None,
                  df: bool = False, ttl: int = 64, offload: TxOffload | None = None) -> bool:
        """Send the L4 data that follows :data:`HEADROOM` bytes of ``packet`` to ``dst``.

        Fills in the IPv4 and Ethernet headers; fragments when the datagram exceeds the
        MTU and ``df`` is clear.  Returns ``False`` when there is no route.
        """
        hop = self.route(dst)
        if hop is None:
            self.stats["ipv4.no_route"] += 1
            return False
        src = self.address if src is None else src
        self._ident = (self._ident + 1) & 0xFFFF
        payload_len = len(packet) - HEADROOM
        self.stats["ipv4.tx"] += 1
        if dst == self.address and dst != ANY:
            Ipv4Packet.emit(packet, ETH_LEN, src=src, dst=dst, proto=proto, payload_len=payload_len,
                            ident=self._ident, ttl=ttl, df=df)
            # Loopback: deliver on the next turn of the loop, as a wire would.
            asyncio.get_running_loop().call_soon(self._loopback, bytes(packet[ETH_LEN:]))
            return True
        if IP_LEN + payload_len <= self.mtu or (offload is not None and offload.gso_type):
            # (A segmentation-offload super-frame is cut to the MTU by the NIC.)
            fastpath.ipv4_header(packet, ETH_LEN, src, dst, proto, payload_len, self._ident, ttl, df)
            self._link_output(hop, packet, offload)
            return True
        if df:
            self.stats["ipv4.too_big"] += 1
            return True
        # RFC 791 3.2 "Fragmentation": pieces of a multiple of 8 octets, MF on all but the last.
        step = (self.mtu - IP_LEN) // 8 * 8
        data = memoryview(packet)[HEADROOM:]
        for off in range(0, payload_len, step):
            chunk = data[off:off + step]
            frag = bytearray(HEADROOM + len(chunk))
            frag[HEADROOM:] = chunk
            Ipv4Packet.emit(frag, ETH_LEN, src=src, dst=dst, proto=proto, payload_len=len(chunk),
                            ident=self._ident, ttl=ttl, mf=off + step < payload_len, frag_offset=off)
            self.stats["ipv4.fragments_sent"] += 1
            self._link_output(hop, frag)
        return True

    def _loopback(self, datagram: bytes) -> None:
        try:
            self.deliver(Ipv4Packet.parse(datagram, verify_checksum=False))
        except Malformed as exc:
            self.stats[exc.reason] += 1
        except Exception:
            self.stats["rx.internal_error"] += 1
            log.exception("error processing a looped-back datagram")

    def _link_output(self, hop: bytes, frame: bytearray, offload: TxOffload | None = None) -> None:
        # The Ethernet header in one write: the next hop's address, ours, IPv4.
        if hop == self.broadcast or hop == LIMITED_BROADCAST:
            frame[0:14] = BROADCAST + self._eth_tail
            self._queue(frame, offload)
            return
        now = self.timers.now_ns()
        mac = self.arp.lookup(hop, now)
        if mac is None:
            frame[0:14] = BROADCAST + self._eth_tail  # the destination is written when the reply comes
            self.arp.enqueue(hop, (frame, offload), now, self._arp_request)
            return
        frame[0:14] = mac + self._eth_tail
        self._queue(frame, offload)

    def _arp_request(self, ip: bytes) -> None:
        self._send_arp(arp_cache.request_packet(self.mac, self.address, ip), BROADCAST)

    def _send_arp(self, pkt: wire_arp.ArpPacket, dst_mac: bytes) -> None:
        frame = bytearray(ETH_LEN + wire_arp.LEN)
        EthernetFrame.emit(frame, dst_mac, self.mac, EtherType.ARP)
        pkt.emit(frame, ETH_LEN)
        self._queue(frame)

    def gratuitous_arp(self) -> None:
        """Announce our address (an ARP request for it, RFC 5227 2.3 "announcement")."""
        if self.address != ANY:
            self.stats["arp.gratuitous_sent"] += 1
            self._send_arp(arp_cache.request_packet(self.mac, self.address, self.address), BROADCAST)

    def queue(self, frame: bytearray | bytes, offload: TxOffload | None = None) -> None:
        """Send a whole frame (the IPv6 layer's way out), at the end of this turn of the event loop."""
        self._queue(frame, offload)

    def _queue(self, frame: bytearray | bytes, offload: TxOffload | None = None) -> None:
        if len(self._txq) >= self._tx_limit:
            self.stats["tx.queue_full"] += 1
            return
        self._txq.append((frame, offload))
        if self._send_now is None:
            self._tx_ready.set()
        elif not self._flush_pending:
            # Frames queued during one turn of the event loop leave together at its end:
            # replies to a batch of received frames go out after the whole batch is
            # processed, which keeps the loop's batches (and its epoll waits) large.
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Hand every queued frame to the device's synchronous ``send``."""
        self._flush_pending = False
        queue, send_now, stats = self._txq, self._send_now, self.stats
        assert send_now is not None
        sent = 0
        while queue:
            frame, offload = queue.popleft()
            try:
                accepted = send_now(frame, offload)
            except DeviceClosed:
                stats["tx.closed"] += 1 + len(queue)
                queue.clear()
            except Exception:  # a failed write loses one frame, not the stack
                stats["tx.errors"] += 1
                if stats["tx.errors"] <= 10:
                    log.exception("network write failed")
            else:
                if accepted is False:
                    stats["tx.device_full"] += 1  # dropped by a full device queue (TCP resends)
                else:
                    sent += 1
        stats["tx.frames"] += sent

    async def run_tx(self) -> None:
        """Write queued frames until cancelled (devices without a synchronous ``send``)."""
        queue, network = self._txq, self.network
        if self._send_now is not None:
            return  # :meth:`_flush` sends
        while True:
            await self._tx_ready.wait()
            self._tx_ready.clear()
            while queue:
                frame, offload = queue.popleft()
                try:
                    await network.write(bytes(frame), offload)
                except DeviceClosed:
                    self.stats["tx.closed"] += 1 + len(queue)
                    queue.clear()
                except Exception:  # a failed write loses one frame, not the stack
                    self.stats["tx.errors"] += 1
                    if self.stats["tx.errors"] <= 10:
                        log.exception("network write failed")
                else:
                    self.stats["tx.frames"] += 1

    def _tick(self, now: int) -> None:
        self.arp.tick(now, self._arp_request)
        self.reassembler.expire(now)
        self.timers.after(_TICK_NS, self._tick)


if TYPE_CHECKING:
    from .ip import IpDatagram, IpLayer, TcpTransport, Transport
    from .ipv6.layer import Ipv6Layer

    def _is_an_ip_layer(iface: Interface) -> IpLayer:  # mypy checks the structural match
        return iface
