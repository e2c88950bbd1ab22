"""What router advertisements teach a host: routers, on-link prefixes, addresses (SLAAC) and DNS.

RFC 4861 6.3.4 (default routers and the prefix list), RFC 4862 5.5.3 (stateless address
autoconfiguration, with its two-hour rule against advertisements that would cut an
address's valid lifetime short) and RFC 8106 (RDNSS and DNSSL options).  Every list is
bounded; a bogus prefix or lifetime is counted under ``ra.*`` and ignored.

The resolver reads :class:`RaDns`: ``stack.ipv6.dns.servers()`` and ``search_domains()``
(unexpired, in the order learnt), ``entries()`` with their remaining lifetimes, and
``subscribe(callback)`` to hear of changes.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable

from . import wire
from .addresses import FOREVER, Address, AddressTable
from .icmpv6 import NdpOptions, PrefixInfo

log = logging.getLogger(__name__)
_S = 10**9
_TWO_HOURS = 2 * 3600 * _S
_INFINITY = 0xFFFFFFFF


def deadline(now_ns: int, seconds: int) -> int:
    """When a lifetime of ``seconds`` from now ends (0xFFFFFFFF: never)."""
    return FOREVER if seconds == _INFINITY else now_ns + seconds * _S


class RaDns:
    """DNS servers (RDNSS) and search domains (DNSSL) from router advertisements (RFC 8106), for the resolver."""

    def __init__(self, clock: Callable[[], int], *, max_servers: int = 8, max_domains: int = 8) -> None:
        self._clock = clock
        self.max_servers, self.max_domains = max_servers, max_domains
        #: address (16 bytes) -> expiry (ns), in the order learnt.
        self._servers: OrderedDict[bytes, int] = OrderedDict()
        self._domains: OrderedDict[str, int] = OrderedDict()
        self._subscribers: list[Callable[[], None]] = []

    def servers(self) -> list[str]:
        """The unexpired recursive DNS servers, as text (``"2001:db8::53"``)."""
        from ..addr import ip_text

        now = self._clock()
        return [ip_text(a) for a, until in self._servers.items() if until > now]

    def search_domains(self) -> list[str]:
        """The unexpired search domains, lower case, without a trailing dot."""
        now = self._clock()
        return [d for d, until in self._domains.items() if until > now]

    def entries(self) -> list[tuple[str, str, float]]:
        """``(kind, value, seconds left)`` of every entry: kind ``"rdnss"`` or ``"dnssl"``; ``inf`` for forever."""
        from ..addr import ip_text

        now = self._clock()

        def left(until: int) -> float:
            return float("inf") if until >= FOREVER else (until - now) / _S

        return [("rdnss", ip_text(a), left(u)) for a, u in self._servers.items() if u > now] + [
            ("dnssl", d, left(u)) for d, u in self._domains.items() if u > now]

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever a server or domain is added, removed or expires."""
        self._subscribers.append(callback)

    def update(self, opts: NdpOptions, now_ns: int, stats: Counter[str]) -> None:
        """Apply the RDNSS and DNSSL options of one advertisement (RFC 8106 5.3.1)."""
        changed = False
        for lifetime, addresses in opts.rdnss:
            for address in addresses:
                if wire.is_multicast(address) or address in (wire.UNSPECIFIED, wire.LOOPBACK):
                    stats["ra.rdnss_bogus"] += 1
                    continue
                changed |= _store(self._servers, address, lifetime, now_ns, self.max_servers, stats, "ra.rdnss_full")
        for lifetime, names in opts.dnssl:
            for name in names:
                changed |= _store(self._domains, name, lifetime, now_ns, self.max_domains, stats, "ra.dnssl_full")
        if changed:
            self._notify()

    def expire(self, now_ns: int) -> None:
        """Forget what expired."""
        changed = False
        for table in (self._servers, self._domains):
            for key in [k for k, until in table.items() if until <= now_ns]:
                del table[key]  # type: ignore[arg-type]
                changed = True
        if changed:
            self._notify()

    def _notify(self) -> None:
        for callback in list(self._subscribers):
            try:
                callback()
            except Exception:
                log.exception("an RDNSS/DNSSL subscriber failed")


def _store(table: OrderedDict[bytes, int] | OrderedDict[str, int], key: bytes | str, lifetime: int, now_ns: int,
           limit: int, stats: Counter[str], full: str) -> bool:
    if lifetime == 0:
        return table.pop(key, None) is not None  # type: ignore[arg-type]
    if key not in table and len(table) >= limit:
        stats[full] += 1
        return False
    is_new = key not in table
    table[key] = deadline(now_ns, lifetime)  # type: ignore[index]
    return is_new


class Slaac:
    """Routers, on-link prefixes and autoconfigured addresses of one interface."""

    def __init__(self, stats: Counter[str], addresses: AddressTable, interface_id: bytes,
                 new_address: Callable[[Address], None], *, max_routers: int = 8, max_prefixes: int = 16) -> None:
        self.stats = stats
        self.addresses = addresses
        self.interface_id = interface_id
        self._new_address = new_address
        self.max_routers, self.max_prefixes = max_routers, max_prefixes
        #: Default routers (link-local address -> expiry), in the order learnt (RFC 4861 6.3.6 picks the first).
        self.routers: OrderedDict[bytes, int] = OrderedDict()
        #: On-link prefixes ``(prefix, length)`` -> expiry.
        self.prefixes: dict[tuple[bytes, int], int] = {}
        self.static_gateway: bytes | None = None
        #: Bumped whenever routers or prefixes change (routes computed before are stale).
        self.generation = 0

    def default_router(self) -> bytes | None:
        """The router for off-link destinations: the static gateway, else the first unexpired one."""
        return self.static_gateway or next(iter(self.routers), None)

    def on_link(self, dst: bytes) -> bool:
        """Whether ``dst`` is in an on-link prefix (RFC 4861 5.2); link-local always is."""
        if wire.is_link_local(dst):
            return True
        return any(wire.prefix_match(dst, prefix, length) for prefix, length in self.prefixes)

    def router_advertised(self, src: bytes, lifetime_s: int, opts: NdpOptions, now_ns: int) -> None:
        """Apply one advertisement from ``src`` (already validated, RFC 4861 6.1.2)."""
        self.generation += 1
        if lifetime_s == 0:
            if self.routers.pop(src, None) is not None:
                self.stats["ra.router_withdrawn"] += 1
        elif src in self.routers or len(self.routers) < self.max_routers:
            self.routers[src] = now_ns + lifetime_s * _S
        else:
            self.stats["ra.routers_full"] += 1
        for info in opts.prefixes:
            self._prefix(info, now_ns)

    def _prefix(self, info: PrefixInfo, now_ns: int) -> None:
        prefix = _masked(info.prefix, info.prefix_len) if info.prefix_len <= 128 else info.prefix
        if info.prefix_len > 128 or wire.is_multicast(prefix) or prefix[:2] == b"\xfe\x80" or (
                prefix == wire.UNSPECIFIED and info.prefix_len == 0):
            # RFC 4861 6.3.4 / RFC 4862 5.5.3 b): the link-local prefix (and nonsense) is ignored.
            self.stats["ra.prefix_bogus"] += 1
            return
        if info.preferred > info.valid:
            self.stats["ra.prefix_bad_lifetimes"] += 1  # RFC 4862 5.5.3 c)
            return
        if info.on_link:
            key = (prefix, info.prefix_len)
            if info.valid == 0:
                self.prefixes.pop(key, None)
            elif key in self.prefixes or len(self.prefixes) < self.max_prefixes:
                self.prefixes[key] = deadline(now_ns, info.valid)
            else:
                self.stats["ra.prefixes_full"] += 1
        if info.autonomous:
            self._autoconfigure(prefix, info, now_ns)

    def _autoconfigure(self, prefix: bytes, info: PrefixInfo, now_ns: int) -> None:
        """RFC 4862 5.5.3 d) and e)."""
        if info.prefix_len != 64:
            # 5.5.3 d): prefix and interface identifier (64 bits on Ethernet) must make 128 bits.
            self.stats["ra.prefix_bad_length"] += 1
            return
        address = prefix[:8] + self.interface_id
        entry = self.addresses.get(address)
        if entry is None:
            if info.valid == 0:
                return
            entry = Address(address, 64, "slaac", deadline(now_ns, info.valid), deadline(now_ns, info.preferred))
            if not self.addresses.add(entry):
                self.stats["ra.addresses_full"] += 1
                return
            self.stats["ipv6.slaac_addresses"] += 1
            self._new_address(entry)
            return
        if entry.origin != "slaac":
            return
        entry.preferred_until = deadline(now_ns, info.preferred)
        if entry.state == "deprecated" and entry.preferred_until > now_ns:
            entry.state = "preferred"
        # 5.5.3 e): the two-hour rule, so a forged advertisement cannot end an address at once.
        received = deadline(now_ns, info.valid)
        remaining = entry.valid_until - now_ns
        if received - now_ns > _TWO_HOURS or received > entry.valid_until:
            entry.valid_until = received
        elif remaining <= _TWO_HOURS:
            self.stats["ra.lifetime_ignored"] += 1
        else:
            entry.valid_until = now_ns + _TWO_HOURS
            self.stats["ra.lifetime_clamped"] += 1

    def expire(self, now_ns: int) -> None:
        """Forget routers and prefixes whose lifetime ended."""
        for router in [r for r, until in self.routers.items() if until <= now_ns]:
            del self.routers[router]
            self.stats["ra.router_expired"] += 1
            self.generation += 1
        for key in [k for k, until in self.prefixes.items() if until <= now_ns]:
            del self.prefixes[key]
            self.generation += 1


def _masked(prefix: bytes, length: int) -> bytes:
    """``prefix`` with the bits after ``length`` cleared."""
    value = int.from_bytes(prefix, "big")
    mask = ((1 << 128) - 1) ^ ((1 << (128 - length)) - 1)
    return (value & mask).to_bytes(16, "big")
