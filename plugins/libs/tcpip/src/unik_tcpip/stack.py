"""``TcpipStack``: the :class:`unik.devices.Stack` device of unik-lib-tcpip."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from unik import lifecycle
from unik.devices import IPv4Config, MonotonicClock, Network, Random, Sleep
from unik.errors import BadKey, DeviceClosed, DeviceUnavailable

from .addr import ip_bytes
from .iface import Interface, parse_quad, prefix_mask
from .ipv6.config import InvalidIPv6, ipv6_config
from .ipv6.layer import Ipv6Layer
from .tcp import TcpConfig, TcpLayer
from .timers import Timers
from .udp import UdpLayer

if TYPE_CHECKING:
    from .dhcp import DhcpClient
    from .dns.resolver import Resolver, ResolverConfig


#: Seconds the stack waits for a DHCP lease by default (``--dhcp-timeout``).
DHCP_TIMEOUT_S = 30.0
#: Seconds without a lease after which the stack says it is waiting for one.
DHCP_NOTICE_S = 2.0


def _preload() -> None:
    """What the stack imports on first use: DHCP, ipaddress, TcpFlags, the resolver, the IDNA codec."""
    import ipaddress  # noqa: F401

    from . import dhcp  # noqa: F401
    from .dns import happy, resolver  # noqa: F401
    from .dns.wire import encode_name

    encode_name("bücher.example")  # the idna codec, and what it loads, for non-ASCII names
    from .wire import _tcpflags  # noqa: F401


# A process that seals itself (unik's spt sandbox) cannot import anything afterwards.
lifecycle.subscribe(lifecycle.BEFORE_SEAL, _preload)


def _host_part_ok(address: int, prefix: int) -> bool:
    """Whether ``address`` is neither the network nor the broadcast address of its /``prefix``.

    /31 (RFC 3021) and /32 networks have no such addresses: every address is a host's.
    """
    host = ~prefix_mask(prefix) & 0xFFFFFFFF
    return prefix > 30 or address & host not in (0, host)


def _parse_ipv4_plain(ipv4: str, gateway: str | None) -> IPv4Config | None:
    """:func:`parse_ipv4` of ``ADDR/PREFIX`` and a gateway in its network, without ipaddress.

    ``None`` for anything else (other forms, errors), which ipaddress then decides.
    """
    if type(ipv4) is not str:
        return None
    address_text, _, prefix_text = ipv4.partition("/")
    address = parse_quad(address_text)
    # ipaddress takes a prefix length of ASCII digits, leading zeros included (longer ones: its call).
    if address is None or not (len(prefix_text) <= 3 and prefix_text.isascii() and prefix_text.isdigit()) \
            or int(prefix_text) > 32 or not _host_part_ok(address, int(prefix_text)):
        return None
    prefix = int(prefix_text)
    if not gateway:
        return IPv4Config(address_text, prefix, None)
    gw = parse_quad(gateway)
    mask = prefix_mask(prefix)
    if gw is None or gw & mask != address & mask or not _host_part_ok(gw, prefix):
        return None
    return IPv4Config(address_text, prefix, gateway)


class InvalidIPv4(ValueError):
    """A bad ``--ipv4`` or ``--ipv4-gateway``: ``key`` names which, the message says why."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(why)
        self.key = key


def ipv4_config(ipv4: str, gateway: str | None) -> IPv4Config:
    """``ADDR/PREFIX`` and a gateway as an :class:`IPv4Config`, or :class:`InvalidIPv4` saying why."""
    plain = _parse_ipv4_plain(ipv4, gateway)
    if plain is not None:
        return plain
    # Imported here: ipaddress costs ~15 ms as a VM boots, and the usual forms do without it.
    import ipaddress

    try:
        iface = ipaddress.IPv4Interface(ipv4)
    except ValueError:
        raise InvalidIPv4("ipv4", f"{ipv4!r} is not an IPv4 address/prefix such as 10.0.0.2/24") from None
    if "/" not in ipv4:
        raise InvalidIPv4("ipv4", f"{ipv4!r} needs a prefix length, e.g. {ipv4}/24")
    net = iface.network
    for what, special in (("network", net.network_address), ("broadcast", net.broadcast_address)):
        if net.prefixlen <= 30 and iface.ip == special:
            raise InvalidIPv4("ipv4", f"{iface.ip} is the {what} address of {net}, not a host's: use one of "
                              f"{net.network_address + 1}-{net.broadcast_address - 1}")
    gw: str | None = None
    if gateway:
        try:
            gw = str(ipaddress.IPv4Address(gateway))
        except ValueError:
            raise InvalidIPv4("ipv4_gateway", f"{gateway!r} is not an IPv4 address") from None
        if ipaddress.IPv4Address(gw) not in net:
            raise InvalidIPv4("ipv4_gateway", f"{gw} is not in {net}, the network of --ipv4 {ipv4}: "
                              f"a gateway must be reachable directly")
        if net.prefixlen <= 30 and ipaddress.IPv4Address(gw) in (net.network_address, net.broadcast_address):
            raise InvalidIPv4("ipv4_gateway", f"{gw} is the network or broadcast address of {net}, not a host's")
    return IPv4Config(str(iface.ip), net.prefixlen, gw)


def parse_ipv4(ipv4: str, gateway: str | None) -> IPv4Config:
    """``--ipv4=10.0.0.2/24 --ipv4-gateway=10.0.0.1`` as an :class:`IPv4Config`, or :class:`BadKey`."""
    try:
        return ipv4_config(ipv4, gateway)
    except InvalidIPv4 as exc:
        raise BadKey(f"--{exc.key.replace('_', '-')}: {exc}") from None


def resolver_keys(dns: str | None, dns_search: str | None, hosts: str | None) -> ResolverConfig:
    """``--dns``, ``--dns-search`` and ``--hosts`` as a resolver configuration, or :class:`BadKey`."""
    from .dns.config import parse_hosts, parse_search, parse_servers
    from .dns.resolver import ResolverConfig

    parsed: list[Any] = []
    for key, parse, value in (("dns", parse_servers, dns), ("dns-search", parse_search, dns_search),
                              ("hosts", parse_hosts, hosts)):
        try:
            parsed.append(parse(value))  # type: ignore[operator]
        except ValueError as exc:
            raise BadKey(f"--{key}: {exc}") from None
    return ResolverConfig(parsed[0], parsed[1], parsed[2])


def parse_ipv6(ipv6: str | None, gateway: str | None) -> tuple[tuple[bytes, int] | None, bytes | None]:
    """``--ipv6=2001:db8::2/64 --ipv6-gateway=fe80::1`` as ``((address, prefix), gateway)``, or :class:`BadKey`."""
    try:
        return ipv6_config(ipv6 or "", gateway)
    except InvalidIPv6 as exc:
        raise BadKey(f"--{exc.key.replace('_', '-')}: {exc}") from None


def with_min_rto(config: TcpConfig, seconds: float) -> TcpConfig:
    """A copy of ``config`` with the minimum RTO of ``--tcp-min-rto`` (1 ms up to the maximum RTO)."""
    problem = min_rto_problem(seconds, config.max_rto_ns)
    if problem:
        raise BadKey(f"--tcp-min-rto: {problem}")
    changed = TcpConfig(**{name: getattr(config, name) for name in config._fields})
    changed.min_rto_ns = int(seconds * 1e9)
    return changed


def min_rto_problem(seconds: float, max_rto_ns: int = TcpConfig().max_rto_ns) -> str | None:
    """What is wrong with a minimum RTO of ``seconds``, or ``None``."""
    if not 0.001 <= seconds <= max_rto_ns / 1e9:
        return (f"{seconds:g} s is outside 0.001..{max_rto_ns / 1e9:g} s (Linux's minimum is 0.2; "
                "RFC 6298 asks for 1)")
    return None


class TcpipStack:
    """TCP, UDP, ICMP, IPv4 and IPv6 (dual stack) over one Ethernet :class:`unik.devices.Network`.

    ``stats`` counts packets and drops by reason (``"ipv4.bad_checksum"``,
    ``"ipv6.frag_overlap"``, ``"tcp.syn_backlog_full"``...); per-connection counters are
    in each writer's ``get_extra_info("tcp_stats")``.  ``ipv6`` is the IPv6 layer: its
    addresses (``ipv6.address_list()``), and the DNS servers and search domains routers
    advertise (``ipv6.dns``, RFC 8106).
    """

    def __init__(self, network: Network, clock: MonotonicClock, sleep: Sleep, random: Random,
                 config: IPv4Config | None, tcp_config: TcpConfig | None = None,
                 resolver_config: ResolverConfig | None = None, *,
                 ipv6: tuple[bytes, int] | None = None, ipv6_gateway: bytes | None = None,
                 ipv6_options: dict[str, Any] | None = None) -> None:
        self.network = network
        self.stats: Counter[str] = Counter()
        self.timers = Timers(clock, sleep)
        ident = int.from_bytes(random.generate(2), "big")
        self.iface = Interface(network, self.timers, self.stats, ident_seed=ident)
        self.iface.configure(config)
        #: IPv6 on the same link (link-local always; ``--ipv6``, SLAAC).
        self.ipv6 = Ipv6Layer(self.iface, self.timers, self.stats, random, static=ipv6, gateway=ipv6_gateway,
                              **(ipv6_options or {}))
        self.udp = UdpLayer(self.iface, random, self.stats, ipv6=self.ipv6)
        self.tcp = TcpLayer(self.iface, self.timers, random, self.stats, tcp_config, ipv6=self.ipv6)
        # The one place the layers meet: the interface hands each transport its datagrams,
        # and IPv6 frames to the IPv6 layer, which hands it what it sends; TCP hands names
        # to the resolver (through Happy Eyeballs).
        self.iface.bind(self.tcp, self.udp, self.ipv6)
        self.ipv6.bind(self.tcp, self.udp)
        self.tcp.bind_names(self._connect_by_name)
        self._tasks: list[asyncio.Future[Any]] = []
        self._closed = False
        self._random = random
        self.dhcp: DhcpClient | None = None
        self._resolver_config = resolver_config
        self._resolver: Resolver | None = None
        self._dhcp_task: asyncio.Future[Any] | None = None
        self._dhcp_timeout = DHCP_TIMEOUT_S
        lifecycle.subscribe(lifecycle.RESUMED, self._resumed)

    def _resumed(self) -> Awaitable[None] | None:
        """:data:`unik.lifecycle.RESUMED` (a VM snapshot restored): a new instance on the link.

        The NIC's new MAC address replaces the snapshot's, ARP and NDP caches are dropped,
        IPv6 addresses are made again (they derive from the MAC), TCP's ISN and SYN-cookie
        secrets are drawn again (from the Random device, reseeded first), and a DHCP lease taken
        when the snapshot booted is given up for a new one on this instance's network
        (awaited, up to ``--dhcp-timeout``, before the application runs on).  A static
        address stays, announced by a gratuitous ARP from the new MAC.
        """
        if self._closed:
            return None
        self.iface.renew_link()
        self.ipv6.renew()
        self.tcp.renew_secrets()
        self.stats["stack.resumed"] += 1
        return self._renew_dhcp() if self.dhcp is not None else None

    async def _renew_dhcp(self) -> None:
        """Drop the lease and acquire one anew (INIT: this instance is a new client, RFC 2131 4.4.1)."""
        if self._dhcp_task is not None:
            self._dhcp_task.cancel()
            await asyncio.gather(self._dhcp_task, return_exceptions=True)
        self.iface.configure(None)
        self.dhcp = None
        try:
            await self.start_dhcp(self._dhcp_timeout, keep_trying=True)
        except asyncio.TimeoutError:
            print(f"{self.network.name}: no DHCP lease within {self._dhcp_timeout:g} s after the restore; "
                  f"still asking", file=sys.stderr, flush=True)

    @classmethod
    async def connect(cls, network: Network, clock: MonotonicClock, sleep: Sleep, random: Random,
                      ipv4: str | None = None, ipv4_gateway: str | None = None,
                      tcp_config: TcpConfig | None = None, dhcp_timeout: float = DHCP_TIMEOUT_S,
                      tcp_min_rto: float | None = None, dns: str | None = None, dns_search: str | None = None,
                      hosts: str | None = None, ipv6: str | None = None,
                      ipv6_gateway: str | None = None) -> TcpipStack:
        """Start the stack on ``network``: a static address (``--ipv4``), else DHCP.

        ``dns``, ``dns_search`` and ``hosts`` are the resolver's keys (``--dns=ADDR[,ADDR]``,
        ``--dns-search=DOMAIN[,DOMAIN]``, ``--hosts NAME=ADDR``, repeated ones comma-separated).
        IPv6 always has its link-local address and takes addresses, routers and DNS servers
        from router advertisements; ``--ipv6``/``--ipv6-gateway`` add a static address and
        default router.

        With DHCP, returns once a lease is bound; says on stderr that it waits when none
        came within :data:`DHCP_NOTICE_S`, and raises :class:`DeviceUnavailable` when none
        is within ``dhcp_timeout`` seconds (``--dhcp-timeout``).  ``tcp_min_rto`` (seconds, the
        ``--tcp-min-rto`` key) overrides the configuration's minimum RTO.
        """
        if tcp_min_rto is not None:
            tcp_config = with_min_rto(tcp_config or TcpConfig(), tcp_min_rto)
        config = parse_ipv4(ipv4, ipv4_gateway) if ipv4 else None
        if config is None and ipv4_gateway:
            raise BadKey("--ipv4-gateway needs --ipv4 (without --ipv4 the gateway comes from DHCP)")
        resolver_config = None
        if dns or dns_search or hosts:
            resolver_config = resolver_keys(dns, dns_search, hosts)
        static6, gateway6 = parse_ipv6(ipv6, ipv6_gateway)
        stack = cls(network, clock, sleep, random, config, tcp_config, resolver_config, ipv6=static6,
                    ipv6_gateway=gateway6)
        stack.start()
        if config is None:
            await stack.start_dhcp(dhcp_timeout)
        return stack

    async def start_dhcp(self, timeout: float = DHCP_TIMEOUT_S, notice_after: float = DHCP_NOTICE_S, *,
                         keep_trying: bool = False) -> DhcpClient:
        """Run the DHCP client (RFC 2131) and wait until it holds a lease.

        A lease that has not come within ``notice_after`` seconds is announced on stderr
        as awaited (a VM would otherwise sit silent); none within ``timeout`` seconds is a
        :class:`DeviceUnavailable` saying what to do (``keep_trying``: an
        ``asyncio.TimeoutError``, the client still running).
        """
        # Imported here: a stack with a static address never needs it (start-up cost in a VM).
        from .dhcp import DhcpClient

        self._dhcp_timeout = timeout
        self.dhcp = DhcpClient(self.iface, self.udp, self.timers, self._random)
        self._dhcp_task = asyncio.ensure_future(self.dhcp.run())
        self._tasks.append(self._dhcp_task)
        bound = asyncio.ensure_future(self.dhcp.bound.wait())
        name, mac = self.network.name, self.network.mac.hex(":")
        try:
            await asyncio.wait_for(asyncio.shield(bound), min(notice_after, timeout))
        except asyncio.TimeoutError:
            print(f"{name}: waiting for a DHCP lease on {mac} (up to {timeout:g} s, --dhcp-timeout; "
                  f"--ipv4=ADDR/PREFIX gives a static address) ...", file=sys.stderr, flush=True)
            try:
                await asyncio.wait_for(bound, max(0.0, timeout - notice_after))
            except asyncio.TimeoutError:
                if keep_trying:
                    raise
                await self.disconnect()
                raise DeviceUnavailable(
                    f"network {name!r}: no DHCP lease within {timeout:g} s: no DHCP server answered on its "
                    f"link. Give a static address (--ipv4=ADDR/PREFIX), start a DHCP server on the host side "
                    f"of {name}, or wait longer (--dhcp-timeout SECONDS)") from None
        return self.dhcp

    # -- names ----------------------------------------------------------------------

    @property
    def resolver(self) -> Resolver:
        """The stub resolver (made on first use: a stack that never looks a name up never imports it)."""
        if self._resolver is None:
            from .dns.resolver import Resolver, ResolverConfig

            self._resolver = Resolver(self._resolver_config or ResolverConfig(), self.udp.bind, self.tcp.connect,
                                      self._random, self.timers.now_ns, self.stats, servers=self.dns_servers,
                                      families=self.families, search=self._dhcp_search)
        return self._resolver

    def dns_servers(self) -> tuple[str, ...]:
        """The servers the resolver asks: ``--dns``, else the DHCP lease's (option 6) and RDNSS's (RFC 8106)."""
        configured = self._resolver_config.servers if self._resolver_config else ()
        if configured:
            return configured
        lease = self.dhcp.lease if self.dhcp is not None else None
        dhcp = lease.dns if lease is not None else ()
        return tuple(dict.fromkeys((*dhcp, *self.ipv6.dns.servers())))

    def _dhcp_search(self) -> tuple[str, ...]:
        """Search domains from the DHCP lease (options 119/15) and router advertisements (DNSSL)."""
        lease = self.dhcp.lease if self.dhcp is not None else None
        dhcp = lease.search if lease is not None else ()
        return tuple(dict.fromkeys((*dhcp, *self.ipv6.dns.search_domains())))

    def families(self) -> tuple[int, ...]:
        """The address families the stack can reach: IPv4 with an address, IPv6 with a global one."""
        out = []
        if self.iface.address != b"\x00\x00\x00\x00":
            out.append(socket.AF_INET)
        if any(a.state != "tentative" and a.origin != "link-local" for a in self.ipv6.addresses):
            out.append(socket.AF_INET6)
        return tuple(out) or (socket.AF_INET,)

    async def resolve(self, name: str, family: int = 0) -> list[str]:
        """The addresses of ``name`` (A; AAAA when the stack has a global IPv6 address), or a ``gaierror``."""
        self._check()
        return await self.resolver.resolve(name, family)

    async def getaddrinfo(self, host: str | None, port: int | str | None, family: int = 0, type: int = 0,
                          proto: int = 0, flags: int = 0) -> list[tuple[int, int, int, str, tuple[Any, ...]]]:
        """:meth:`asyncio.loop.getaddrinfo` answered by the stack's resolver."""
        self._check()
        return await self.resolver.getaddrinfo(host, port, family, type, proto, flags)

    async def _connect_by_name(self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: str,
                               port: int, nodelay: bool | None = None,
                               ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        """TCP to a name: Happy Eyeballs (RFC 8305) over the families the stack reaches.

        The attempts run :class:`.dns.happy.Pending` protocols; ``protocol_factory`` is
        called once, for the winner.
        """
        from .dns import happy

        self._check()
        resolver = self.resolver

        async def addresses(family: int) -> Sequence[str]:
            return (await resolver.lookup(host, family)).addresses

        async def attempt(address: str) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
            return await self.tcp.create_connection(happy.Pending, address, port, nodelay=nodelay)

        def close(connection: tuple[asyncio.BaseTransport, asyncio.BaseProtocol]) -> None:
            connection[0].abort()  # type: ignore[attr-defined]

        families = resolver.families_for(0)
        transport, pending = await happy.connect([(f, addresses(f)) for f in families], attempt, close)
        assert isinstance(pending, happy.Pending)
        protocol = protocol_factory()
        happy.hand_over(transport, pending, protocol)
        return transport, protocol

    @property
    def ipv4(self) -> IPv4Config:
        """The interface's IPv4 configuration."""
        return self.iface.config()

    def start(self) -> None:
        """Start the receive, transmit and timer tasks; announce the address."""
        self._tasks += [
            asyncio.ensure_future(self.iface.run_rx()),
            asyncio.ensure_future(self.iface.run_tx()),
            asyncio.ensure_future(self.timers.run()),
        ]
        self.ipv6.start()
        # RFC 5227 2.3 / RFC 826: a gratuitous ARP on start refreshes neighbours' caches.
        self.iface.gratuitous_arp()

    async def ping(self, host: str, *, seq: int = 0, data: bytes = b"unik", timeout: float = 1.0) -> float:
        """Send an ICMP (IPv4) or ICMPv6 echo request; return the round-trip time in seconds."""
        self._check()
        if ":" in host:
            return await self.ipv6.ping(ip_bytes(host), seq=seq, data=data, timeout=timeout)
        return await self.iface.ping(host, seq=seq, data=data, timeout=timeout)

    def _check(self) -> None:
        if self._closed:
            raise DeviceClosed("the TCP/IP stack is disconnected")

    async def disconnect(self) -> None:
        """Reset open connections, close UDP ports, stop the tasks."""
        if self._closed:
            return
        self._closed = True
        lifecycle.unsubscribe(lifecycle.RESUMED, self._resumed)
        self.tcp.close_all()
        for endpoint in list(self.udp.ports.values()):
            endpoint.close()
        # Let the resets reach the wire before the transmit task stops.
        await asyncio.sleep(0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
