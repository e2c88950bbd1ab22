"""The IPv6 network layer of one Ethernet interface: input, output, ICMPv6, NDP, DAD, MLD, SLAAC, PMTU.

It shares the link with the IPv4 :class:`unik_tcpip.iface.Interface`, which owns the
device, hands it every frame of EtherType 0x86DD (:meth:`Ipv6Layer.input`) and sends
what it builds (:meth:`unik_tcpip.iface.Interface.queue`).  Like the IPv4 side it never
raises on input: each drop is counted by reason (``ipv6.*``, ``icmpv6.*``, ``ndp.*``,
``ra.*``), and problems the sender should hear about get a rate-limited ICMPv6 error.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import Counter, OrderedDict
from typing import TYPE_CHECKING

from unik.devices import Random, TxOffload

from ..addr import ip_text as wire_text
from ..errors import Malformed
from ..iface import TokenBucket
from ..ip import IpError
from ..timers import Timers
from ..wire.ethernet import HEADER_LEN as ETH_LEN
from . import icmpv6, wire
from .addresses import DEPRECATED, FOREVER, PREFERRED, TENTATIVE, Address, AddressTable
from .frag import Reassembler6, fragments
from .ndp import REACHABLE, NeighbourCache
from .slaac import RaDns, Slaac

if TYPE_CHECKING:
    from ..iface import Interface
    from ..ip import TcpTransport, Transport
    from ..wire.ethernet import EthernetFrame

log = logging.getLogger(__name__)

HEADROOM = ETH_LEN + wire.HEADER_LEN
_HDR = struct.Struct("!IHBB16s16s")
MIN_MTU = 1280
_S = 10**9
_MS = 10**6
_TICK_NS = 200 * _MS
_ETHERTYPE = b"\x86\xdd"
# RFC 4861 10: host constants.
MAX_RTR_SOLICITATIONS = 3
RTR_SOLICITATION_INTERVAL_NS = 4 * _S
#: RFC 8201 4: a path MTU learnt from Packet Too Big is tried higher again after 10 minutes.
PMTU_AGE_NS = 600 * _S
#: RFC 3810 9.1: the robustness variable (unsolicited reports are sent this many times).
MLD_ROBUSTNESS = 2
# MLDv2 record types (RFC 3810 5.2.12).
MODE_IS_EXCLUDE = 2
CHANGE_TO_EXCLUDE = 4
CHANGE_TO_INCLUDE = 3
# A hop-by-hop header carrying Router Alert for MLD (RFC 3810 5, RFC 2711), then PadN.
_HBH_ROUTER_ALERT = bytes((wire.ICMPV6, 0, 5, 2, 0, 0, 1, 0))


class Ipv6Datagram:
    """A received datagram handed to TCP or UDP (:class:`unik_tcpip.ip.IpDatagram`)."""

    __slots__ = ("dst", "packet", "payload", "src")

    def __init__(self, packet: wire.Ipv6Packet, offset: int) -> None:
        self.packet = packet
        self.src, self.dst = packet.src, packet.dst
        self.payload = packet.buf[offset:]


class Ipv6Layer:
    """IPv6 on one link, beside IPv4 (an :class:`unik_tcpip.ip.IpLayer`)."""

    headroom = HEADROOM
    ip_header_len = wire.HEADER_LEN
    #: virtio-net GSO type of TCP over IPv6 (VIRTIO_NET_HDR_GSO_TCPV6).
    gso_tcp = 4

    def __init__(self, link: Interface, timers: Timers, stats: Counter[str], random: Random, *,
                 static: tuple[bytes, int] | None = None, gateway: bytes | None = None, dad_transmits: int = 1,
                 retrans_ns: int = _S, solicit_delay_ns: int = _S) -> None:
        self.link = link
        self.mac = link.mac
        #: The Ethernet header's source address and EtherType, written after each next hop's address.
        self._src_type = self.mac + _ETHERTYPE
        #: The link MTU for IPv6 (a router advertisement's MTU option may lower it).
        self.mtu = link.mtu
        self.timers = timers
        self.stats = stats
        self.random = random
        self.verify_rx_checksum = link.verify_rx_checksum
        self.hop_limit = 64
        self.dad_transmits = dad_transmits
        self.retrans_ns = retrans_ns
        self.solicit_delay_ns = solicit_delay_ns
        self.addresses = AddressTable()
        self.neighbours = NeighbourCache(stats, retrans_ns=retrans_ns)
        self.reassembler = Reassembler6(stats)
        self.slaac = Slaac(stats, self.addresses, wire.interface_id(self.mac), self._start_dad)
        #: RDNSS and DNSSL learnt from router advertisements, for the resolver (RFC 8106).
        self.dns = RaDns(timers.now_ns)
        #: Path MTUs learnt from Packet Too Big (RFC 8201): destination -> (MTU, learnt at), bounded.
        self.pmtu: OrderedDict[bytes, tuple[int, int]] = OrderedDict()
        #: Multicast groups joined (solicited-node groups of our addresses) and their users.
        self.groups: dict[bytes, int] = {}
        self._mld_pending: list[tuple[int, list[bytes], int]] = []
        self.tcp: TcpTransport | None = None
        self.udp: Transport | None = None
        # RFC 4443 2.4 f: errors are rate-limited.
        self._errors = TokenBucket(rate=100.0, burst=50)
        self._pings: dict[tuple[int, int], asyncio.Future[int]] = {}
        self._rs_left = 0
        self._rs_at = 0
        self._ident = int.from_bytes(random.generate(4), "big")
        self._static = static
        if gateway is not None:
            self.slaac.static_gateway = gateway
        #: Next hops by destination, valid while ``slaac.generation`` is unchanged (:meth:`route`).
        self._routes: dict[bytes, bytes] = {}
        self._routes_generation = -1
        self._started = False

    # -- wiring and configuration -------------------------------------------------------

    def bind(self, tcp: TcpTransport, udp: Transport) -> None:
        """The transports received datagrams (and ICMPv6 errors about theirs) go to."""
        self.tcp, self.udp = tcp, udp

    def start(self, *, tick: bool = True) -> None:
        """Configure the link-local (and static) address, start DAD, solicit routers (RFC 4862 5.3, RFC 4861 6.3.7).

        ``tick``: start the layer's timer (``False`` when :meth:`renew` starts it again).
        """
        if self._started:
            return
        self._started = True
        now = self.timers.now_ns()
        self._start_dad(Address(wire.link_local(self.mac), 64, "link-local", FOREVER, FOREVER), first=True)
        if self._static is not None:
            address, prefix_len = self._static
            self._start_dad(Address(address, prefix_len, "static", FOREVER, FOREVER), first=True)
            self.slaac.prefixes[(_mask(address, prefix_len), prefix_len)] = FOREVER
            self.slaac.generation += 1
        self._rs_left = MAX_RTR_SOLICITATIONS
        self._rs_at = now + self._delay()
        if tick:
            self.timers.after(_TICK_NS, self._tick)

    def renew(self) -> None:
        """A restored VM snapshot: the link's MAC now, and nothing learnt before it.

        Addresses made from the old MAC (link-local, SLAAC), neighbours, routers, prefixes,
        DNS servers, path MTUs and groups are dropped; the link-local and static addresses
        go through DAD again and routers are solicited, as on a new link (RFC 4862 5.3).
        """
        self.mac = self.link.mac
        self._src_type = self.mac + _ETHERTYPE
        gateway = self.slaac.static_gateway
        generations = self.neighbours.generation, self.slaac.generation
        self.addresses = AddressTable()
        self.neighbours = NeighbourCache(self.stats, retrans_ns=self.retrans_ns)
        self.slaac = Slaac(self.stats, self.addresses, wire.interface_id(self.mac), self._start_dad)
        self.slaac.static_gateway = gateway
        # Both only move on: connections' link headers (link_generation) are read again.
        self.neighbours.generation, self.slaac.generation = generations[0] + 1, generations[1] + 1
        self.dns = RaDns(self.timers.now_ns)
        self.pmtu.clear()
        self.groups.clear()
        self._mld_pending.clear()
        self._pings.clear()
        self._routes.clear()
        self._routes_generation = -1
        if self._started:
            self._started = False
            self.start(tick=False)

    def _delay(self) -> int:
        """A random delay up to :attr:`solicit_delay_ns` (RFC 4861 6.3.7, RFC 4862 5.4.2)."""
        if self.solicit_delay_ns <= 0:
            return 0
        return int.from_bytes(self.random.generate(4), "big") % self.solicit_delay_ns

    def address_list(self) -> list[tuple[str, int, str, str]]:
        """``(address, prefix length, origin, state)`` of every address of ours."""
        return [(wire_text(a.address), a.prefix_len, a.origin, a.state) for a in self.addresses]

    @property
    def max_mss(self) -> int:
        """The largest TCP payload one MTU carries without options."""
        return self.mtu - wire.HEADER_LEN - 20

    def owns(self, address: bytes) -> bool:
        """Whether ``address`` is ours and past DAD."""
        return self.addresses.owns(address)

    def source_for(self, dst: bytes) -> bytes | None:
        """Our address to send to ``dst`` from (RFC 6724 on one interface)."""
        return self.addresses.source_for(dst)

    def link_header(self, dst: bytes, now_ns: int) -> tuple[bytes, int, int] | None:
        """The Ethernet header of unicast datagrams to ``dst``, until when it holds, and the hop limit.

        Known while the next hop is REACHABLE (RFC 4861 7.3.2) and no smaller path MTU was
        learnt for ``dst``; ``None`` otherwise (multicast, our own address, no route):
        those datagrams take :meth:`ip_output`, which resolves, fragments and loops back.
        """
        if dst[0] == 0xFF or dst in self.addresses.entries or (self.pmtu and dst in self.pmtu):
            return None
        hop = self.route(dst)
        entry = None if hop is None else self.neighbours.entries.get(hop)
        if entry is None or entry.state != REACHABLE or entry.mac is None or now_ns >= entry.deadline_ns:
            return None
        return entry.mac + self._src_type, entry.deadline_ns, self.hop_limit

    @property
    def link_generation(self) -> int:
        """Moves when a link header :meth:`link_header` gave may no longer hold."""
        return self.neighbours.generation + self.slaac.generation

    def route(self, dst: bytes) -> bytes | None:
        """The next hop: ``dst`` on-link (link-local, multicast, an on-link prefix), else the default router.

        Answers are remembered per destination until the routers or prefixes change.
        """
        slaac = self.slaac
        if self._routes_generation != slaac.generation:
            self._routes.clear()
            self._routes_generation = slaac.generation
        hop = self._routes.get(dst)
        if hop is not None:
            return hop
        hop = dst if dst[0] == 0xFF or slaac.on_link(dst) else slaac.default_router()
        if hop is not None and len(self._routes) < 1024:
            self._routes[dst] = hop
        return hop

    # -- DAD and MLD ----------------------------------------------------------------------

    def _start_dad(self, entry: Address, first: bool = False) -> None:
        """Begin duplicate address detection (RFC 4862 5.4) for a new address."""
        if entry.address not in self.addresses.entries and not self.addresses.add(entry):
            self.stats["ipv6.addresses_full"] += 1
            return
        self._join(wire.solicited_node(entry.address))
        if self.dad_transmits <= 0:
            entry.state = PREFERRED if entry.preferred_until > self.timers.now_ns() else DEPRECATED
            return
        entry.state = TENTATIVE
        entry.dad_left = self.dad_transmits
        entry.dad_at = self.timers.now_ns() + (self._delay() if first else 0)

    def _dad_step(self, entry: Address, now: int) -> None:
        if entry.dad_left > 0:
            entry.dad_left -= 1
            entry.dad_at = now + self.retrans_ns
            self.stats["ipv6.dad_solicits_sent"] += 1
            self._send_ns(entry.address, wire.UNSPECIFIED, wire.solicited_node(entry.address), None)
            return
        entry.state = PREFERRED if now < entry.preferred_until else DEPRECATED
        self.stats["ipv6.dad_ok"] += 1
        if entry.origin == "link-local" and self._rs_left and self._rs_at > now + self.retrans_ns:
            self._rs_at = now  # routers can now answer a solicitation carrying our link-local address

    def _dad_failed(self, entry: Address) -> None:
        """Another node uses a tentative address of ours (RFC 4862 5.4.5)."""
        self.stats["ipv6.dad_duplicate"] += 1
        self.addresses.remove(entry.address)
        self._leave(wire.solicited_node(entry.address))
        log.error("IPv6 address %s is in use by another node on the link: not configured%s",
                  wire_text(entry.address), " (IPv6 on this link stays off)" if entry.origin == "link-local" else "")

    def _join(self, group: bytes) -> None:
        self.groups[group] = self.groups.get(group, 0) + 1
        if self.groups[group] == 1:
            self._mld_pending.append((self.timers.now_ns(), [group], CHANGE_TO_EXCLUDE))
            self._mld_pending.append((self.timers.now_ns() + _S, [group], CHANGE_TO_EXCLUDE))

    def _leave(self, group: bytes) -> None:
        users = self.groups.get(group, 0) - 1
        if users > 0:
            self.groups[group] = users
        elif group in self.groups:
            del self.groups[group]
            self._mld_pending.append((self.timers.now_ns(), [group], CHANGE_TO_INCLUDE))

    def _send_mld_report(self, groups: list[bytes], record_type: int) -> None:
        """An MLDv2 report (RFC 3810 5.2) to ff02::16 with Router Alert, hop limit 1."""
        src = self.addresses.link_local() or wire.UNSPECIFIED
        dst = wire.ALL_MLDV2_ROUTERS
        body = icmpv6.mld_report(groups, record_type)
        msg = icmpv6.build(src, dst, icmpv6.MLD_REPORT_V2, 0, body, HEADROOM + len(_HBH_ROUTER_ALERT))
        msg[HEADROOM:HEADROOM + len(_HBH_ROUTER_ALERT)] = _HBH_ROUTER_ALERT
        wire.emit(msg, ETH_LEN, src, dst, wire.HOP_BY_HOP, len(msg) - HEADROOM, hop_limit=1)
        self.stats["mld.reports_sent"] += 1
        self._emit_link(msg, wire.multicast_mac(dst))

    # -- receive --------------------------------------------------------------------------

    def input(self, eth: EthernetFrame) -> None:
        """One frame of EtherType IPv6 (its drops raise :class:`Malformed`, counted by the interface)."""
        pkt = wire.parse(eth.payload)
        src, dst = pkt.src, pkt.dst
        if wire.is_multicast(src) or src == wire.LOOPBACK:
            raise Malformed("ipv6.bad_source")
        if self.addresses.owns(src):
            # Our address used by someone else (or a loop).  A tentative one is not ours yet:
            # another node's advertisement defending it is how DAD learns so (RFC 4862 5.4.4).
            raise Malformed("ipv6.own_source")
        if wire.is_multicast(dst):
            if dst != wire.ALL_NODES and dst not in self.groups:
                self.stats["ipv6.multicast_not_joined"] += 1
                return
        elif dst not in self.addresses.entries:
            self.stats["ipv6.not_for_us"] += 1
            return
        try:
            chain = wire.walk(pkt)
            if chain.frag is not None:
                whole = self.reassembler.add(pkt, chain, self.timers.now_ns())
                if whole is None:
                    return
                pkt = wire.parse(whole)
                chain = wire.walk(pkt, fragment_allowed=False)
        except wire.ParameterProblem as exc:
            self.stats[exc.reason] += 1
            if not wire.is_multicast(dst) or exc.multicast_ok:
                self._send_error(pkt, icmpv6.PARAMETER_PROBLEM, exc.code, exc.pointer)
            return
        entry = self.addresses.entries.get(dst)
        if entry is not None and entry.state == TENTATIVE and chain.next_header != wire.ICMPV6:
            self.stats["ipv6.to_tentative"] += 1  # RFC 4862 5.4: only DAD's own messages
            return
        self.stats["ipv6.rx"] += 1
        self.deliver(pkt, chain)

    def deliver(self, pkt: wire.Ipv6Packet, chain: wire.Chain) -> None:
        """Hand a whole datagram to its upper layer."""
        nh = chain.next_header
        if nh == wire.TCP:
            if wire.is_multicast(pkt.dst) or pkt.src == wire.UNSPECIFIED:
                self.stats["tcp.multicast"] += 1
            elif self.tcp is not None:
                self.tcp.input(Ipv6Datagram(pkt, chain.offset))
        elif nh == wire.UDP:
            if pkt.src == wire.UNSPECIFIED:
                self.stats["udp.unspecified_source"] += 1
            elif self.udp is not None:
                self.udp.input(Ipv6Datagram(pkt, chain.offset))
        else:
            self._icmp_input(pkt, chain)

    def _icmp_input(self, pkt: wire.Ipv6Packet, chain: wire.Chain) -> None:
        msg = icmpv6.parse(pkt.buf[chain.offset:], pkt.src, pkt.dst, self.verify_rx_checksum)
        kind = msg.type
        if kind in icmpv6.NDP:
            self._ndp_input(pkt, msg)
        elif kind == icmpv6.ECHO_REQUEST:
            self._echo_request(pkt, msg)
        elif kind == icmpv6.ECHO_REPLY:
            ident, seq = struct.unpack_from("!HH", msg.body)
            waiter = self._pings.pop((ident, seq), None)
            if waiter is None or waiter.done():
                self.stats["icmpv6.unexpected_reply"] += 1
            else:
                waiter.set_result(self.timers.now_ns())
        elif kind in icmpv6.ERRORS:
            self._error_input(pkt, msg)
        elif kind == icmpv6.MLD_QUERY:
            self._mld_query(pkt, msg, chain)
        elif kind in (icmpv6.MLD_REPORT_V1, icmpv6.MLD_REPORT_V2, icmpv6.MLD_DONE):
            self.stats["mld.others_reports"] += 1
        else:
            self.stats["icmpv6.ignored"] += 1

    def _echo_request(self, pkt: wire.Ipv6Packet, msg: icmpv6.Icmpv6Message) -> None:
        if pkt.src == wire.UNSPECIFIED:
            self.stats["icmpv6.echo_unspecified_source"] += 1
            return
        # RFC 4443 4.2: the reply's source is the request's unicast destination, else one of ours.
        src = pkt.dst if not wire.is_multicast(pkt.dst) else self.source_for(pkt.src)
        if src is None:
            return
        self.stats["icmpv6.echo_requests"] += 1
        reply = icmpv6.build(src, pkt.src, icmpv6.ECHO_REPLY, 0, msg.body, HEADROOM)
        self.ip_output(pkt.src, wire.ICMPV6, reply, src=src)

    def _error_input(self, pkt: wire.Ipv6Packet, msg: icmpv6.Icmpv6Message) -> None:
        """An ICMPv6 error (RFC 4443 2.4 e, 3): find the datagram it quotes and tell its transport."""
        self.stats["icmpv6.errors_received"] += 1
        quoted = msg.body[4:]
        if len(quoted) < wire.HEADER_LEN + 8 or quoted[0] >> 4 != 6:
            raise Malformed("icmpv6.bad_error_payload")
        local, remote = bytes(quoted[8:24]), bytes(quoted[24:40])
        if local not in self.addresses.entries:
            self.stats["icmpv6.error_not_ours"] += 1
            return
        nh, at = quoted[6], wire.HEADER_LEN
        for _ in range(wire.MAX_HEADERS):  # past the extension headers we might have sent
            if nh not in (wire.HOP_BY_HOP, wire.DEST_OPTIONS, wire.ROUTING, wire.FRAGMENT) or at + 8 > len(quoted):
                break
            nh, at = quoted[at], at + (8 if nh == wire.FRAGMENT else (quoted[at + 1] + 1) * 8)
        header = quoted[at:]
        rest = struct.unpack_from("!I", msg.body)[0]
        if msg.type == icmpv6.PACKET_TOO_BIG:
            if rest < MIN_MTU:
                self.stats["icmpv6.ptb_too_small"] += 1  # RFC 8201 4: below the IPv6 minimum, ignored
                return
            self._learn_pmtu(remote, rest)
        # RFC 7915 5.2: the error in ICMPv4's terms, which the transports understand.
        type4, code4 = _as_icmpv4(msg.type, msg.code)
        transport = self.tcp if nh == wire.TCP else self.udp if nh == wire.UDP else None
        if transport is not None and len(header) >= 8:
            transport.transport_error(IpError(local, remote, header, type4, code4,
                                              rest if msg.type == icmpv6.PACKET_TOO_BIG else 0))

    def _learn_pmtu(self, dst: bytes, mtu: int) -> None:
        """Remember a smaller path MTU to ``dst`` (RFC 8201 4), in a bounded cache."""
        mtu = min(mtu, self.mtu)
        old = self.pmtu.get(dst)
        if old is not None and old[0] <= mtu:
            return
        self.pmtu[dst] = (mtu, self.timers.now_ns())
        self.neighbours.generation += 1  # link headers handed out for dst no longer hold
        self.pmtu.move_to_end(dst)
        if len(self.pmtu) > 256:
            self.pmtu.popitem(last=False)
        self.stats["icmpv6.pmtu_reduced"] += 1

    def path_mtu(self, dst: bytes) -> int:
        """The MTU towards ``dst``: learnt from Packet Too Big, else the link's."""
        learnt = self.pmtu.get(dst)
        return learnt[0] if learnt is not None else self.mtu

    def _mld_query(self, pkt: wire.Ipv6Packet, msg: icmpv6.Icmpv6Message, chain: wire.Chain) -> None:
        """Answer a multicast listener query (RFC 3810 6.2) with the groups we listen to."""
        if not wire.is_link_local(pkt.src) or pkt.hop_limit != 1:
            self.stats["mld.bad_query"] += 1  # RFC 3810 5.1.14
            return
        if len(msg.body) < 20:
            raise Malformed("mld.truncated")
        group = bytes(msg.body[4:20])
        groups = [g for g in self.groups if group in (wire.UNSPECIFIED, g)]
        if groups:
            max_delay_ns = max(int.from_bytes(msg.body[0:2], "big"), 1) * _MS
            at = self.timers.now_ns() + int.from_bytes(self.random.generate(4), "big") % max_delay_ns
            if len(self._mld_pending) < 16:
                self._mld_pending.append((at, groups, MODE_IS_EXCLUDE))
            self.stats["mld.queries"] += 1

    # -- neighbour discovery --------------------------------------------------------------

    def _ndp_input(self, pkt: wire.Ipv6Packet, msg: icmpv6.Icmpv6Message) -> None:
        # RFC 4861 6.1, 7.1: hop limit 255 proves the sender is on the link; code 0.
        if pkt.hop_limit != 255:
            raise Malformed("ndp.bad_hop_limit")
        if msg.code != 0:
            raise Malformed("ndp.bad_code")
        kind, body, now = msg.type, msg.body, self.timers.now_ns()
        if kind == icmpv6.NEIGHBOUR_SOLICIT:
            if len(body) < 20:
                raise Malformed("ndp.truncated")
            self._ns_input(pkt, bytes(body[4:20]), icmpv6.parse_options(body[20:]), now)
        elif kind == icmpv6.NEIGHBOUR_ADVERT:
            if len(body) < 20:
                raise Malformed("ndp.truncated")
            self._na_input(pkt, body, icmpv6.parse_options(body[20:]), now)
        elif kind == icmpv6.ROUTER_ADVERT:
            if len(body) < 12:
                raise Malformed("ndp.truncated")
            self._ra_input(pkt, body, icmpv6.parse_options(body[12:]), now)
        elif kind == icmpv6.REDIRECT:
            self.stats["ndp.redirect_ignored"] += 1  # a host may ignore redirects (RFC 4861 8.3 is a SHOULD)
        else:
            self.stats["ndp.router_solicit_ignored"] += 1  # hosts do not answer them

    def _ns_input(self, pkt: wire.Ipv6Packet, target: bytes, opts: icmpv6.NdpOptions, now: int) -> None:
        """A neighbour solicitation (RFC 4861 7.1.1, 7.2.3; RFC 4862 5.4.3)."""
        if wire.is_multicast(target):
            raise Malformed("ndp.bad_target")
        dad = pkt.src == wire.UNSPECIFIED
        if dad and (pkt.dst != wire.solicited_node(target) or opts.source_lla is not None):
            raise Malformed("ndp.bad_dad_solicit")
        entry = self.addresses.get(target)
        if entry is None:
            self.stats["ndp.solicit_not_for_us"] += 1
            return
        if entry.state == TENTATIVE:
            if dad:
                self._dad_failed(entry)  # another node is trying the same address
            return  # 5.4.3: a tentative address is not defended
        self.stats["ndp.solicits_received"] += 1
        if dad:
            # Someone tries an address we hold: defend it (RFC 4862 5.4.3 via 7.2.4).
            self._send_na(target, wire.ALL_NODES, wire.multicast_mac(wire.ALL_NODES), solicited=False)
            return
        dst_mac = opts.source_lla
        if dst_mac is not None:
            for frame, offload in self.neighbours.learn(pkt.src, dst_mac, now, create=True):
                frame[0:6] = dst_mac
                self.link.queue(frame, offload)
        elif wire.is_multicast(pkt.dst):
            raise Malformed("ndp.solicit_without_lla")  # 7.1.1: a multicast NS carries it
        self._send_na(target, pkt.src, dst_mac, solicited=True)

    def _na_input(self, pkt: wire.Ipv6Packet, body: memoryview, opts: icmpv6.NdpOptions, now: int) -> None:
        """A neighbour advertisement (RFC 4861 7.1.2, 7.2.5)."""
        target = bytes(body[4:20])
        router, solicited, override = icmpv6.na_flags(body)
        if wire.is_multicast(target) or (solicited and wire.is_multicast(pkt.dst)):
            raise Malformed("ndp.bad_advert")
        entry = self.addresses.get(target)
        if entry is not None:
            if entry.state == TENTATIVE:
                self._dad_failed(entry)
            else:
                self.stats["ndp.address_conflict"] += 1  # someone claims ours: keep it, learn nothing
            return
        self.stats["ndp.adverts_received"] += 1
        flushed = self.neighbours.advertised(target, opts.target_lla, now, solicited=solicited, override=override,
                                             router=router)
        if not router and target in self.slaac.routers:
            del self.slaac.routers[target]  # 7.2.5: it stopped being a router
            self.slaac.generation += 1
        mac = self.neighbours.entries[target].mac if target in self.neighbours.entries else None
        for frame, offload in flushed:
            if mac is not None:
                frame[0:6] = mac
                self.link.queue(frame, offload)

    def _ra_input(self, pkt: wire.Ipv6Packet, body: memoryview, opts: icmpv6.NdpOptions, now: int) -> None:
        """A router advertisement (RFC 4861 6.1.2, 6.3.4; RFC 4862 5.5.3; RFC 8106)."""
        if not wire.is_link_local(pkt.src) or wire.is_multicast(pkt.src):
            raise Malformed("ndp.ra_bad_source")
        hop_limit, lifetime = body[0], (body[2] << 8) | body[3]
        reachable_ms, retrans_ms = struct.unpack_from("!II", body, 4)
        self.stats["ndp.router_adverts"] += 1
        self._rs_left = 0  # 6.3.7: an advertisement ends soliciting
        if hop_limit:
            if hop_limit != self.hop_limit:
                self.neighbours.generation += 1  # link headers carry the hop limit
            self.hop_limit = hop_limit
        if 0 < reachable_ms <= 3_600_000:  # RFC 4861 6.2.1 MAX_REACHABLE_TIME
            self.neighbours.reachable_ns = reachable_ms * _MS
        if 0 < retrans_ms <= 60_000:
            self.neighbours.retrans_ns = max(retrans_ms, 100) * _MS
        if opts.mtu is not None:
            if MIN_MTU <= opts.mtu <= self.link.mtu:
                self.mtu = opts.mtu
            else:
                self.stats["ra.bad_mtu"] += 1
        if opts.source_lla is not None:
            for frame, offload in self.neighbours.learn(pkt.src, opts.source_lla, now, create=True):
                frame[0:6] = opts.source_lla
                self.link.queue(frame, offload)
        self.slaac.router_advertised(pkt.src, lifetime, opts, now)
        self.dns.update(opts, now, self.stats)

    def _send_ns(self, target: bytes, src: bytes, dst: bytes, dst_mac: bytes | None) -> None:
        body = icmpv6.ns_body(target, None if src == wire.UNSPECIFIED else self.mac)
        self._send_icmp(src, dst, icmpv6.NEIGHBOUR_SOLICIT, body, 255, dst_mac or wire.multicast_mac(dst))

    def _solicit(self, ip: bytes, unicast_mac: bytes | None) -> None:
        """NUD's solicitation for neighbour ``ip``: multicast to resolve, unicast to probe (RFC 4861 7.2.2)."""
        src = self.source_for(ip) or self.addresses.link_local()
        if src is None:
            return
        if unicast_mac is not None:
            self._send_ns(ip, src, ip, unicast_mac)
        else:
            self._send_ns(ip, src, wire.solicited_node(ip), None)

    def _send_na(self, target: bytes, dst: bytes, dst_mac: bytes | None, *, solicited: bool) -> None:
        body = icmpv6.na_body(target, solicited=solicited, override=True, mac=self.mac)
        if dst_mac is None:  # a unicast solicitation without its sender's address: resolve it
            msg = icmpv6.build(target, dst, icmpv6.NEIGHBOUR_ADVERT, 0, body, HEADROOM)
            self.ip_output(dst, wire.ICMPV6, msg, src=target, ttl=255)
            return
        self._send_icmp(target, dst, icmpv6.NEIGHBOUR_ADVERT, body, 255, dst_mac)

    def _send_rs(self) -> None:
        src = self.addresses.link_local() or wire.UNSPECIFIED
        # RFC 4861 4.1: the source link-layer option, except from the unspecified address.
        body = bytes(4) + (icmpv6.lla_option(icmpv6.OPT_SOURCE_LLA, self.mac) if src != wire.UNSPECIFIED else b"")
        self.stats["ndp.router_solicits_sent"] += 1
        self._send_icmp(src, wire.ALL_ROUTERS, icmpv6.ROUTER_SOLICIT, body, 255, wire.multicast_mac(wire.ALL_ROUTERS))

    def _send_icmp(self, src: bytes, dst: bytes, type_: int, body: bytes, hop_limit: int, dst_mac: bytes) -> None:
        msg = icmpv6.build(src, dst, type_, 0, body, HEADROOM)
        wire.emit(msg, ETH_LEN, src, dst, wire.ICMPV6, len(msg) - HEADROOM, hop_limit=hop_limit)
        self._emit_link(msg, dst_mac)

    # -- ICMPv6 errors and echo -----------------------------------------------------------

    def port_unreachable(self, ip: object) -> None:
        """Destination unreachable, port (RFC 4443 3.1 code 4), about a UDP datagram to an unbound port."""
        assert isinstance(ip, Ipv6Datagram)
        if not wire.is_multicast(ip.dst):
            self._send_error(ip.packet, icmpv6.DEST_UNREACHABLE, icmpv6.PORT_UNREACHABLE, 0)

    def _send_error(self, pkt: wire.Ipv6Packet, type_: int, code: int, param: int) -> None:
        """An ICMPv6 error about ``pkt`` within RFC 4443 2.4's limits (never about an error, rate-limited)."""
        if pkt.src == wire.UNSPECIFIED or wire.is_multicast(pkt.src):
            return
        if pkt.next_header == wire.ICMPV6 and len(pkt.buf) > wire.HEADER_LEN and \
                pkt.buf[wire.HEADER_LEN] < 128:
            return  # 2.4 e.1: not about an error message
        if not self._errors.take(self.timers.now_ns()):
            self.stats["icmpv6.rate_limited"] += 1
            return
        src = pkt.dst if pkt.dst in self.addresses.entries else self.source_for(pkt.src)
        if src is None:
            return
        # 2.4 c: as much of the invoking packet as fits in the minimum MTU.
        quoted = pkt.buf[:MIN_MTU - wire.HEADER_LEN - 8]
        msg = icmpv6.build(src, pkt.src, type_, code, param.to_bytes(4, "big") + bytes(quoted), HEADROOM)
        self.stats["icmpv6.errors_sent"] += 1
        self.ip_output(pkt.src, wire.ICMPV6, msg, src=src)

    async def ping(self, dst: bytes, *, ident: int = 0x756E, seq: int = 0, data: bytes = b"unik",
                   timeout: float = 1.0) -> float:
        """Send one echo request (RFC 4443 4.1); the round-trip time in seconds, or :class:`TimeoutError`."""
        key = (ident & 0xFFFF, seq & 0xFFFF)
        src = self.source_for(dst)
        if src is None:
            raise OSError(99, f"no IPv6 address of ours can reach {wire_text(dst)} (yet: DAD or no router)")
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pings[key] = waiter
        start = self.timers.now_ns()
        msg = icmpv6.build(src, dst, icmpv6.ECHO_REQUEST, 0, struct.pack("!HH", *key) + data, HEADROOM)
        if not self.ip_output(dst, wire.ICMPV6, msg, src=src):
            self._pings.pop(key, None)
            raise OSError(101, f"no route to {wire_text(dst)}")
        try:
            end = await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no echo reply from {wire_text(dst)} within {timeout} s") from None
        finally:
            self._pings.pop(key, None)
        return (end - start) / 1e9

    # -- output ---------------------------------------------------------------------------

    def ip_output(self, dst: bytes, proto: int, packet: bytearray, *, src: bytes | None = None,
                  df: bool = False, ttl: int | None = None, offload: TxOffload | None = None) -> bool:
        """Send the transport data after :data:`HEADROOM` bytes of ``packet`` to ``dst``.

        Fills in the IPv6 and Ethernet headers; fragments (RFC 8200 4.5) a datagram larger
        than the path MTU unless it is a segmentation-offload super-frame.  ``df`` is
        accepted for the transports' sake: IPv6 routers never fragment.  ``False``: no
        route or no source address.
        """
        hop = self.route(dst)
        if hop is None:
            self.stats["ipv6.no_route"] += 1
            return False
        if src is None:
            src = self.source_for(dst)
            if src is None:
                self.stats["ipv6.no_source"] += 1
                return False
        payload_len = len(packet) - HEADROOM
        hop_limit = self.hop_limit if ttl is None else ttl
        self.stats["ipv6.tx"] += 1
        learnt = self.pmtu.get(dst) if self.pmtu else None
        if (wire.HEADER_LEN + payload_len <= (self.mtu if learnt is None else learnt[0]) or (
                offload is not None and offload.gso_type)) and dst not in self.addresses.entries:
            # The common case: one frame to a neighbour, the header written in one call.
            _HDR.pack_into(packet, ETH_LEN, 0x60000000, payload_len, proto, hop_limit, src, dst)
            self._link_output(hop, dst, packet, offload)
            return True
        if dst in self.addresses.entries:
            wire.emit(packet, ETH_LEN, src, dst, proto, payload_len, hop_limit)
            asyncio.get_running_loop().call_soon(self._loopback, bytes(packet[ETH_LEN:]))
            return True
        if offload is not None:  # a checksum left to the NIC cannot be split across fragments
            _complete_checksum(packet, offload)
        wire.emit(packet, ETH_LEN, src, dst, proto, payload_len, hop_limit)
        self._ident = (self._ident + 1) & 0xFFFFFFFF
        for frag in fragments(memoryview(packet)[ETH_LEN:], self.path_mtu(dst), self._ident):
            frame = bytearray(ETH_LEN) + frag
            self.stats["ipv6.fragments_sent"] += 1
            self._link_output(hop, dst, frame, None)
        return True

    def _loopback(self, datagram: bytes) -> None:
        try:
            pkt = wire.parse(datagram)
            self.deliver(pkt, wire.walk(pkt))
        except Malformed as exc:
            self.stats[exc.reason] += 1
        except Exception:
            self.stats["rx.internal_error"] += 1
            log.exception("error processing a looped-back IPv6 datagram")

    def _link_output(self, hop: bytes, dst: bytes, frame: bytearray, offload: TxOffload | None) -> None:
        if dst[0] == 0xFF:
            self._emit_link(frame, wire.multicast_mac(dst), offload)
            return
        now = self.timers.now_ns()
        entry = self.neighbours.entries.get(hop)
        if entry is not None and entry.state is REACHABLE and now < entry.deadline_ns:
            mac: bytes | None = entry.mac  # the common case, without a call
        else:
            mac = self.neighbours.resolve(hop, now)
        if mac is None:
            frame[6:14] = self._src_type
            self.neighbours.enqueue(hop, (frame, offload), now, self._solicit)
            return
        frame[0:14] = mac + self._src_type  # the Ethernet header in one write
        self.link.queue(frame, offload)

    def _emit_link(self, frame: bytearray, dst_mac: bytes, offload: TxOffload | None = None) -> None:
        frame[0:14] = dst_mac + self._src_type
        self.link.queue(frame, offload)

    # -- timers ---------------------------------------------------------------------------

    def _tick(self, now: int) -> None:
        try:
            self._timers(now)
        finally:
            self.timers.after(_TICK_NS, self._tick)

    def _timers(self, now: int) -> None:
        for entry in self.addresses:
            if entry.state == TENTATIVE and now >= entry.dad_at:
                self._dad_step(entry, now)
        for entry in self.addresses.expire(now):
            self.stats["ipv6.address_expired"] += 1
            self._leave(wire.solicited_node(entry.address))
        if self._rs_left and now >= self._rs_at:
            self._rs_left -= 1
            self._rs_at = now + RTR_SOLICITATION_INTERVAL_NS
            self._send_rs()
        if self._mld_pending:
            due = [p for p in self._mld_pending if p[0] <= now]
            self._mld_pending = [p for p in self._mld_pending if p[0] > now]
            for _at, groups, record_type in due:
                self._send_mld_report(groups, record_type)
        self.neighbours.tick(now, self._solicit)
        self.slaac.expire(now)
        self.dns.expire(now)
        self.reassembler.expire(now, self._reassembly_timed_out)
        for dst in [d for d, (_m, t) in self.pmtu.items() if now - t >= PMTU_AGE_NS]:
            del self.pmtu[dst]

    def _reassembly_timed_out(self, first: bytes) -> None:
        """RFC 8200 4.5: Time Exceeded, code 1, when the first fragment came but not all the rest."""
        try:
            pkt = wire.parse(first + bytes(8))  # the quoted headers; the length is not checked again
        except Malformed:
            return
        self._send_error(pkt, icmpv6.TIME_EXCEEDED, 1, 0)


def _as_icmpv4(type_: int, code: int) -> tuple[int, int]:
    """ICMPv6 error type and code as ICMPv4's (RFC 7915 5.2)."""
    if type_ == icmpv6.DEST_UNREACHABLE:
        return 3, {icmpv6.PORT_UNREACHABLE: 3, icmpv6.ADMIN_PROHIBITED: 10}.get(code, 1)
    if type_ == icmpv6.PACKET_TOO_BIG:
        return 3, 4
    if type_ == icmpv6.TIME_EXCEEDED:
        return 11, code
    return (3, 2) if code == 1 else (12, 0)  # parameter problem: unrecognised next header is "protocol"


def _complete_checksum(packet: bytearray, offload: TxOffload) -> None:
    """Finish a partial checksum (what the NIC would have done) before fragmenting."""
    from .. import checksum

    start, at = offload.csum_start, offload.csum_start + offload.csum_offset
    partial = (packet[at] << 8) | packet[at + 1]
    packet[at:at + 2] = b"\x00\x00"
    csum = checksum.checksum(memoryview(packet)[start:], partial)
    packet[at:at + 2] = csum.to_bytes(2, "big")


def _mask(address: bytes, prefix_len: int) -> bytes:
    value = int.from_bytes(address, "big")
    return (value & (((1 << 128) - 1) ^ ((1 << (128 - prefix_len)) - 1))).to_bytes(16, "big")


if TYPE_CHECKING:
    from ..ip import IpLayer

    def _is_an_ip_layer(layer: Ipv6Layer) -> IpLayer:  # mypy checks the structural match
        return layer
