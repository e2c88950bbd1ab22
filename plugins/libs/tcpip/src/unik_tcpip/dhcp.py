"""A DHCPv4 client (RFC 2131, options per RFC 2132).

States as in RFC 2131 figure 5: INIT -> SELECTING -> REQUESTING -> BOUND, then
RENEWING at T1 (unicast to the server), REBINDING at T2 (broadcast), and back to INIT
when the lease expires or a DHCPNAK arrives.  The client runs as one task of the
stack and reconfigures the interface on every change.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import struct
from collections import Counter
from collections.abc import Callable

from unik.devices import IPv4Config, Random
from unik.record import Record

from .errors import Malformed
from .iface import ANY, LIMITED_BROADCAST, Interface, ip_text
from .timers import Timers
from .udp import UdpEndpoint, UdpLayer

log = logging.getLogger(__name__)

CLIENT_PORT = 68
SERVER_PORT = 67
MAGIC = b"\x63\x82\x53\x63"  # RFC 2131 3: the options field starts with this cookie
_FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
FIXED_LEN = _FIXED.size  # 236

# RFC 2132 9.6: DHCP message types.
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
# RFC 2132 option codes.
OPT_PAD, OPT_SUBNET, OPT_ROUTER, OPT_DNS, OPT_HOSTNAME = 0, 1, 3, 6, 12
OPT_REQUESTED_IP, OPT_LEASE, OPT_MSG_TYPE, OPT_SERVER_ID, OPT_PARAMS = 50, 51, 53, 54, 55
OPT_T1, OPT_T2, OPT_CLIENT_ID, OPT_END = 58, 59, 61, 255
OPT_DOMAIN_NAME, OPT_DOMAIN_SEARCH = 15, 119  # RFC 2132 3.17, RFC 3397


class DhcpMessage(Record):
    """A BOOTP/DHCP message (RFC 2131 2, figure 1) with its options by code."""

    # A unik.record.Record, not a dataclass (whose generated code compiles as the module loads).
    __slots__ = ("chaddr", "ciaddr", "flags", "giaddr", "op", "options", "secs", "siaddr", "xid", "yiaddr")
    op: int
    xid: int
    chaddr: bytes
    ciaddr: bytes
    yiaddr: bytes
    siaddr: bytes
    giaddr: bytes
    secs: int
    flags: int
    options: dict[int, bytes] | None

    def __init__(self, op: int, xid: int, chaddr: bytes, ciaddr: bytes = ANY, yiaddr: bytes = ANY,
                 siaddr: bytes = ANY, giaddr: bytes = ANY, secs: int = 0, flags: int = 0,
                 options: dict[int, bytes] | None = None) -> None:
        self.op, self.xid, self.chaddr = op, xid, chaddr
        self.ciaddr, self.yiaddr, self.siaddr, self.giaddr = ciaddr, yiaddr, siaddr, giaddr
        self.secs, self.flags, self.options = secs, flags, options

    @property
    def msg_type(self) -> int | None:
        """Option 53, the DHCP message type."""
        value = (self.options or {}).get(OPT_MSG_TYPE)
        return value[0] if value and len(value) == 1 else None

    def addr_option(self, code: int) -> bytes | None:
        """An option holding one (or, for lists, the first) IPv4 address."""
        value = (self.options or {}).get(code)
        return value[:4] if value is not None and len(value) >= 4 and len(value) % 4 == 0 else None

    def int_option(self, code: int) -> int | None:
        """A 32-bit unsigned option (lease time, T1, T2)."""
        value = (self.options or {}).get(code)
        return int.from_bytes(value, "big") if value is not None and len(value) == 4 else None

    def to_bytes(self) -> bytes:
        """The message with its options, ``End`` and padding to the BOOTP minimum of 300 bytes."""
        out = bytearray(_FIXED.pack(self.op, 1, 6, 0, self.xid, self.secs, self.flags, self.ciaddr,
                                    self.yiaddr, self.siaddr, self.giaddr, self.chaddr.ljust(16, b"\0"),
                                    b"", b""))
        out += MAGIC
        for code, value in (self.options or {}).items():
            out += bytes((code, len(value))) + value
        out.append(OPT_END)
        if len(out) < 300:
            out += bytes(300 - len(out))
        return bytes(out)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> DhcpMessage:
        """Parse a message; bad lengths or options raise :class:`Malformed`."""
        if len(data) < FIXED_LEN + 4:
            raise Malformed("dhcp.truncated", f"{len(data)} bytes")
        op, htype, hlen, _hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, _s, _f = \
            _FIXED.unpack_from(data)
        if htype != 1 or hlen != 6:
            raise Malformed("dhcp.unsupported_hardware", f"htype {htype} hlen {hlen}")
        if bytes(data[FIXED_LEN:FIXED_LEN + 4]) != MAGIC:
            raise Malformed("dhcp.bad_cookie")
        options: dict[int, bytes] = {}
        i, n = FIXED_LEN + 4, len(data)
        while i < n:
            code = data[i]
            if code == OPT_END:
                break
            if code == OPT_PAD:
                i += 1
                continue
            if i + 1 >= n or i + 2 + data[i + 1] > n:
                raise Malformed("dhcp.bad_option", f"option {code} runs past the end")
            length = data[i + 1]
            # RFC 3396: an option that appears twice is concatenated.
            options[code] = options.get(code, b"") + bytes(data[i + 2:i + 2 + length])
            i += 2 + length
        return cls(op, xid, bytes(chaddr[:6]), ciaddr, yiaddr, siaddr, giaddr, secs, flags, options)


class DhcpState(enum.Enum):
    """RFC 2131 figure 5."""

    INIT = "INIT"
    SELECTING = "SELECTING"
    REQUESTING = "REQUESTING"
    BOUND = "BOUND"
    RENEWING = "RENEWING"
    REBINDING = "REBINDING"


class Lease(Record):
    """What a DHCPACK granted."""

    __slots__ = ("acquired_ns", "config", "dns", "lease_s", "search", "server", "t1_s", "t2_s")
    config: IPv4Config
    server: bytes
    lease_s: int
    t1_s: int
    t2_s: int
    dns: tuple[str, ...]
    acquired_ns: int
    #: Search domains: option 119 (RFC 3397), else option 15's domain name.
    search: tuple[str, ...]

    def __init__(self, config: IPv4Config, server: bytes, lease_s: int, t1_s: int, t2_s: int,
                 dns: tuple[str, ...], acquired_ns: int, search: tuple[str, ...] = ()) -> None:
        self.config, self.server, self.lease_s, self.t1_s, self.t2_s = config, server, lease_s, t1_s, t2_s
        self.dns, self.acquired_ns, self.search = dns, acquired_ns, search


def search_domains(options: dict[int, bytes], stats: Counter[str]) -> tuple[str, ...]:
    """The search list of option 119 (RFC 3397), else option 15's domain name.

    Option 119 holds DNS names compressed within the option (RFC 3397 2); a malformed
    one is counted (``dhcp.bad_search``) and ignored.
    """
    from .dns.wire import name_text, read_name

    raw = options.get(OPT_DOMAIN_SEARCH)
    if raw:
        names: list[str] = []
        offset = 0
        try:
            while offset < len(raw) and len(names) < 16:
                name, offset = read_name(raw, offset)
                names.append(name_text(name))
        except Malformed:
            stats["dhcp.bad_search"] += 1
            return ()
        return tuple(n for n in names if n)
    domain = options.get(OPT_DOMAIN_NAME, b"").rstrip(b"\0").decode("ascii", "replace").strip(". ")
    return (domain.lower(),) if domain and " " not in domain else ()


class DhcpClient:
    """Acquires and keeps a lease for one interface."""

    def __init__(self, iface: Interface, udp: UdpLayer, timers: Timers, random: Random,
                 on_change: Callable[[Lease | None], None] | None = None, hostname: str = "unik") -> None:
        self.iface = iface
        self.udp = udp
        self.timers = timers
        self.random = random
        self.on_change = on_change
        self.hostname = hostname
        self.state = DhcpState.INIT
        self.lease: Lease | None = None
        self.bound = asyncio.Event()
        self.renewals = 0
        self._endpoint: UdpEndpoint | None = None
        self._xid = 0

    def _new_xid(self) -> int:
        self._xid = int.from_bytes(self.random.generate(4), "big")
        return self._xid

    def _message(self, msg_type: int, *, ciaddr: bytes = ANY, broadcast: bool = True,
                 extra: dict[int, bytes] | None = None) -> bytes:
        options = {
            OPT_MSG_TYPE: bytes((msg_type,)),
            OPT_CLIENT_ID: b"\x01" + self.iface.mac,  # RFC 2132 9.14: type 1, Ethernet
            OPT_HOSTNAME: self.hostname.encode(),
            OPT_PARAMS: bytes((OPT_SUBNET, OPT_ROUTER, OPT_DNS, OPT_DOMAIN_NAME, OPT_DOMAIN_SEARCH, OPT_LEASE,
                               OPT_T1, OPT_T2)),
        }
        options.update(extra or {})
        # RFC 2131 4.1: set BROADCAST when we cannot receive unicast before configuration.
        flags = 0x8000 if broadcast else 0
        return DhcpMessage(1, self._xid, self.iface.mac, ciaddr=ciaddr, flags=flags, options=options).to_bytes()

    async def _send(self, payload: bytes, dst: bytes = LIMITED_BROADCAST) -> None:
        assert self._endpoint is not None
        await self._endpoint.sendto(payload, (ip_text(dst), SERVER_PORT))

    async def _receive(self, timeout: float, accept: Callable[[DhcpMessage], bool]) -> DhcpMessage | None:
        """The first reply to our xid that ``accept`` takes, within ``timeout`` seconds."""
        assert self._endpoint is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                data, _source = await asyncio.wait_for(self._endpoint.recvfrom(), left)
            except asyncio.TimeoutError:
                return None
            try:
                msg = DhcpMessage.parse(data)
            except Malformed as exc:
                self.iface.stats[exc.reason] += 1
                continue
            if msg.op != 2 or msg.xid != self._xid or msg.chaddr != self.iface.mac:
                self.iface.stats["dhcp.not_ours"] += 1
                continue
            if accept(msg):
                return msg
        return None

    def _backoff(self, attempt: int) -> float:
        """RFC 2131 4.1: 4, 8, 16, 32, 64 seconds, randomised by +/- 1 second."""
        jitter = int.from_bytes(self.random.generate(2), "big") / 65535 * 2 - 1
        return float(min(4 << attempt, 64)) + jitter

    async def run(self) -> None:
        """Acquire a lease, then keep it, forever (cancel to stop)."""
        self._endpoint = await self.udp.bind(CLIENT_PORT)
        try:
            lease: Lease | None = None
            while True:
                if lease is None:
                    lease = await self._acquire()
                lease = await self._keep(lease)
        finally:
            self._endpoint.close()

    async def _acquire(self) -> Lease:
        """INIT -> SELECTING -> REQUESTING -> BOUND."""
        attempt = 0
        while True:
            self.state = DhcpState.INIT
            self._new_xid()
            await self._send(self._message(DISCOVER))
            self.iface.stats["dhcp.discover_sent"] += 1
            self.state = DhcpState.SELECTING
            offer = await self._receive(self._backoff(attempt),
                                        lambda m: m.msg_type == OFFER and m.yiaddr != ANY
                                        and m.addr_option(OPT_SERVER_ID) is not None)
            attempt = min(attempt + 1, 4)
            if offer is None:
                continue
            server = offer.addr_option(OPT_SERVER_ID)
            assert server is not None
            self.state = DhcpState.REQUESTING
            # RFC 2131 4.3.2 / table 5: REQUEST in SELECTING carries the server identifier
            # and the requested address; ciaddr stays zero.
            request = self._message(REQUEST, extra={OPT_REQUESTED_IP: offer.yiaddr, OPT_SERVER_ID: server})
            for retry in range(3):
                await self._send(request)
                reply = await self._receive(self._backoff(retry), lambda m: m.msg_type in (ACK, NAK))
                if reply is None:
                    continue
                if reply.msg_type == NAK:
                    self.iface.stats["dhcp.nak"] += 1
                    break
                return self._bind(reply, server)
            # No ACK (or a NAK): start again from INIT (RFC 2131 4.4.1).

    def _bind(self, ack: DhcpMessage, server: bytes) -> Lease:
        """Configure the interface from a DHCPACK (BOUND)."""
        mask = ack.addr_option(OPT_SUBNET)
        if mask is not None:
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{ip_text(mask)}").prefixlen
        else:
            # RFC 2132 3.3 makes the mask optional: fall back to the classful prefix.
            prefix = 8 if ack.yiaddr[0] < 128 else 16 if ack.yiaddr[0] < 192 else 24
        router = ack.addr_option(OPT_ROUTER)
        lease_s = ack.int_option(OPT_LEASE) or 3600
        if lease_s == 0xFFFFFFFF:
            lease_s = 1 << 31  # RFC 2131 3.3: infinite
        # RFC 2131 4.4.5: T1 defaults to 0.5 and T2 to 0.875 of the lease.
        t1 = ack.int_option(OPT_T1) or lease_s // 2
        t2 = ack.int_option(OPT_T2) or lease_s * 7 // 8
        t2 = min(max(t2, t1), lease_s)
        dns_raw = (ack.options or {}).get(OPT_DNS, b"")
        dns = tuple(ip_text(dns_raw[i:i + 4]) for i in range(0, len(dns_raw) - len(dns_raw) % 4, 4))
        config = IPv4Config(ip_text(ack.yiaddr), prefix, ip_text(router) if router else None)
        lease = Lease(config, ack.addr_option(OPT_SERVER_ID) or server, lease_s, t1, t2, dns,
                      self.timers.now_ns(), search_domains(ack.options or {}, self.iface.stats))
        changed = self.lease is None or self.lease.config != config
        self.lease = lease
        self.state = DhcpState.BOUND
        self.iface.stats["dhcp.ack"] += 1
        if changed:
            self.iface.configure(config)
            self.iface.gratuitous_arp()
            log.info("DHCP: bound to %s/%d (gateway %s) for %d s", config.address, config.prefix,
                     config.gateway, lease_s)
            if self.on_change is not None:
                self.on_change(lease)
        self.bound.set()
        return lease

    async def _keep(self, lease: Lease) -> Lease | None:
        """BOUND -> RENEWING at T1 -> REBINDING at T2 -> INIT at expiry (RFC 2131 4.4.5).

        Returns the renewed lease, or ``None`` once the address was given up.
        """
        start = lease.acquired_ns / 1e9
        now = self.timers.now_ns() / 1e9
        await asyncio.sleep(max(start + lease.t1_s - now, 0))
        self.state = DhcpState.RENEWING
        self._new_xid()
        address = self.iface.address
        while True:
            now = self.timers.now_ns() / 1e9
            if now >= start + lease.lease_s:
                break
            renewing = now < start + lease.t2_s
            self.state = DhcpState.RENEWING if renewing else DhcpState.REBINDING
            # RFC 2131 table 5: RENEWING/REBINDING requests carry ciaddr, no server id
            # or requested address; RENEWING is unicast to the server.
            await self._send(self._message(REQUEST, ciaddr=address, broadcast=False),
                             lease.server if renewing else LIMITED_BROADCAST)
            edge = start + (lease.t2_s if renewing else lease.lease_s)
            # RFC 2131 4.4.5: wait half the time left to T2 (or expiry), at least 60 s —
            # but never past that edge.
            wait = min(max((edge - now) / 2, 60.0), edge - now)
            reply = await self._receive(max(wait, 0.001), lambda m: m.msg_type in (ACK, NAK))
            if reply is None:
                continue
            if reply.msg_type == NAK:
                self.iface.stats["dhcp.nak"] += 1
                break
            self.renewals += 1
            return self._bind(reply, lease.server)
        # The lease expired (or was refused): drop the address and start over.
        self.iface.stats["dhcp.lease_lost"] += 1
        self.lease = None
        self.bound.clear()
        self.iface.configure(None)
        if self.on_change is not None:
            self.on_change(None)
        return None
