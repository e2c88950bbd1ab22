"""A stub resolver (RFC 1034 5.3.1) on unik's own UDP and TCP.

It asks recursive servers (``--dns``, else DHCP's option 6, else IPv6 RDNSS) for A and
AAAA records over UDP with EDNS0 (RFC 6891), again over TCP when the answer is
truncated (RFC 7766), follows CNAME chains up to :data:`MAX_CNAME` links, and caches
positive and negative (RFC 2308) answers by their TTLs.  Every query has its own
source port and ID drawn from the ``Random`` device; a reply is taken only from the
server asked, with our ID and our question (RFC 5452 9.1) — anything else is counted
by reason in the stack's ``stats`` (``dns.wrong_id``, ``dns.question_mismatch``,
``dns.pointer_loop``...) and dropped while the resolver keeps waiting for the real one.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from unik.devices import Flow, Random, UDPEndpoint

from ..errors import Malformed
from . import wire
from .cache import NODATA, NXDOMAIN, POSITIVE, Cache

#: Links of a CNAME chain followed before giving up (glibc follows about as many).
MAX_CNAME = 8
#: Seconds the first query to a server waits; each further round doubles it.
TIMEOUT_S = 1.0
#: Rounds over the server list before a lookup fails.
ATTEMPTS = 2
#: RFC 1536 / resolv.conf: a name with fewer dots than this tries the search list first.
NDOTS = 1
DNS_PORT = 53

_RCODES = {wire.FORMERR: "formerr", wire.SERVFAIL: "servfail", wire.NOTIMP: "notimp", wire.REFUSED: "refused"}
_QTYPE: dict[int, int] = {socket.AF_INET: wire.A, socket.AF_INET6: wire.AAAA}


class ResolveError(socket.gaierror):
    """A lookup failed; a :class:`socket.gaierror`, as :func:`asyncio.loop.getaddrinfo` raises."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)


class NameNotFound(ResolveError):
    """The name does not exist (NXDOMAIN), under every search domain tried."""

    def __init__(self, message: str) -> None:
        super().__init__(socket.EAI_NONAME, message)


class NoAddress(ResolveError):
    """The name exists but has no address of the family asked for (NODATA)."""

    def __init__(self, message: str) -> None:
        super().__init__(getattr(socket, "EAI_NODATA", socket.EAI_NONAME), message)


class ResolverUnavailable(ResolveError):
    """No server answered usefully (timeouts, SERVFAIL, REFUSED), or none is configured."""

    def __init__(self, message: str) -> None:
        super().__init__(socket.EAI_AGAIN, message)


class Answer:
    """What a lookup of one name and type found: addresses and the canonical name."""

    __slots__ = ("addresses", "canonical")

    def __init__(self, addresses: tuple[str, ...], canonical: str) -> None:
        self.addresses, self.canonical = addresses, canonical


class ResolverConfig:
    """Static configuration: servers (``--dns``), search domains, static hosts (``--hosts``)."""

    __slots__ = ("attempts", "cache_entries", "hosts", "ndots", "search", "servers", "timeout")

    def __init__(self, servers: Sequence[str] = (), search: Sequence[str] = (),
                 hosts: dict[str, tuple[str, ...]] | None = None, *, timeout: float = TIMEOUT_S,
                 attempts: int = ATTEMPTS, ndots: int = NDOTS, cache_entries: int = 512) -> None:
        self.servers = tuple(servers)
        self.search = tuple(s.strip(".").lower() for s in search if s.strip("."))
        self.hosts = {k.rstrip(".").lower(): v for k, v in (hosts or {}).items()}
        self.timeout, self.attempts, self.ndots, self.cache_entries = timeout, attempts, ndots, cache_entries


def address_family(text: str) -> int | None:
    """``AF_INET`` or ``AF_INET6`` for an address literal, ``None`` for anything else (a name)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
        except (OSError, ValueError):
            continue
        return family
    return None


class _Outcome:
    """One exchange's meaning for a name and type."""

    __slots__ = ("addresses", "canonical", "follow", "kind", "ttl")

    def __init__(self, kind: str, addresses: tuple[str, ...], canonical: bytes, ttl: int,
                 follow: bytes | None = None) -> None:
        self.kind, self.addresses, self.canonical, self.ttl, self.follow = kind, addresses, canonical, ttl, follow


class Resolver:
    """The stack's stub resolver: :meth:`resolve`, :meth:`lookup` and :meth:`getaddrinfo`.

    ``servers`` is asked for the server list at each lookup (the stack's ``--dns``, else
    what DHCP or RDNSS gave); ``families`` for the address families the stack can reach
    now (AAAA is asked for only once the stack has IPv6).  ``tcp_connect`` opens a
    connection to an address (for truncated answers).
    """

    def __init__(self, config: ResolverConfig, udp_bind: Callable[[int], Awaitable[UDPEndpoint]],
                 tcp_connect: Callable[[str, int], Awaitable[Flow]], random: Random,
                 now_ns: Callable[[], int], stats: Counter[str],
                 servers: Callable[[], Sequence[str]], families: Callable[[], Sequence[int]],
                 search: Callable[[], Sequence[str]] = tuple) -> None:
        self.config = config
        self._udp_bind, self._tcp_connect = udp_bind, tcp_connect
        self._random, self._now_ns, self.stats = random, now_ns, stats
        self._servers, self.families, self._dynamic_search = servers, families, search
        self.cache = Cache(config.cache_entries)
        self._no_edns: set[str] = set()
        #: Answers by the name as asked (search list applied), until their cache entry expires:
        #: a cached lookup is then one dictionary look-up and a clock reading.
        self._answers: OrderedDict[tuple[str, int], tuple[int, Answer]] = OrderedDict()
        self._inflight: dict[tuple[bytes, int], asyncio.Future[_Outcome]] = {}

    # -- the application's API ----------------------------------------------------

    def servers(self) -> tuple[str, ...]:
        """The servers asked now, in order."""
        return tuple(self._servers())

    def search(self) -> tuple[str, ...]:
        """The search domains tried for short names: configured ones, then DHCP's."""
        seen = dict.fromkeys(self.config.search)
        seen.update(dict.fromkeys(s.strip(".").lower() for s in self._dynamic_search() if s.strip(".")))
        return tuple(seen)

    def flush(self) -> None:
        """Forget every cached answer (positive and negative)."""
        self.cache.clear()
        self._answers.clear()

    async def resolve(self, name: str, family: int = 0) -> list[str]:
        """The addresses of ``name`` (IPv6 first when the stack has it), or a :class:`ResolveError`.

        ``family`` 0 asks for every family the stack can reach, ``AF_INET`` or
        ``AF_INET6`` for one.  Address literals come back as they are.
        """
        families = self.families_for(family)
        if len(families) == 1:  # no task for a single family: the cached case stays cheap
            return list((await self.lookup(name, families[0])).addresses)
        results = await asyncio.gather(*(self.lookup(name, f) for f in families), return_exceptions=True)
        addresses: list[str] = []
        errors: list[BaseException] = []
        for result in results:
            if isinstance(result, BaseException):
                errors.append(result)
            else:
                addresses += [a for a in result.addresses if a not in addresses]
        if addresses:
            return interleave(addresses)
        for kind in (ResolverUnavailable, NameNotFound, NoAddress):
            for exc in errors:
                if isinstance(exc, kind):
                    raise exc
        for exc in errors:
            raise exc
        raise NoAddress(f"{name}: no address")  # pragma: no cover - families is never empty

    async def lookup(self, name: str, family: int = socket.AF_INET) -> Answer:
        """The addresses of one family for ``name``: static hosts, the cache, then the servers.

        Short names (fewer than ``ndots`` dots, no trailing dot) try the search domains
        first, others try the name as given first (as resolv.conf's ``ndots``).
        """
        remembered = self._answers.get((name, family))
        if remembered is not None:
            if remembered[0] > self._now_ns():
                self.stats["dns.cache_hits"] += 1
                return remembered[1]
            del self._answers[(name, family)]
        qtype = _QTYPE.get(family)
        if qtype is None:
            raise ValueError(f"family {family!r}: only AF_INET and AF_INET6 have addresses")
        literal = address_family(name)
        if literal is not None:
            if literal != family:
                raise NoAddress(f"{name} is an address of the other family")
            return Answer((name,), name)
        static = self._static(name, family)
        if static is not None:
            self.stats["dns.static_hits"] += 1
            return static
        candidates = self._candidates(name)
        missing: Exception | None = None
        for candidate in candidates:
            outcome = await self._lookup_wire(candidate, qtype)
            if outcome.kind == POSITIVE:
                answer = Answer(outcome.addresses, wire.name_text(outcome.canonical))
                entry = self.cache.peek(candidate, qtype)
                if entry is not None:
                    self._answers[(name, family)] = (entry.expires_ns, answer)
                    while len(self._answers) > self.cache.limit:
                        self._answers.popitem(last=False)
                return answer
            if outcome.kind == NXDOMAIN:
                missing = missing if isinstance(missing, NoAddress) else NameNotFound(
                    f"{name}: no such name (NXDOMAIN{self._tried(candidates)})")
            else:
                missing = NoAddress(f"{name}: the name has no {'IPv6' if qtype == wire.AAAA else 'IPv4'} address")
        assert missing is not None
        raise missing

    async def getaddrinfo(self, host: str | None, port: int | str | None, family: int = 0, type: int = 0,
                          proto: int = 0, flags: int = 0) -> list[tuple[int, int, int, str, tuple[Any, ...]]]:
        """:func:`asyncio.loop.getaddrinfo` on the stack's resolver: 5-tuples, IPv6 first.

        ``host`` ``None`` is the loopback address (``AI_PASSIVE``: the wildcard); ``type``
        0 gives a stream and a datagram entry per address, as the C library does.
        """
        if isinstance(port, str):
            if not port.isdigit():
                raise ResolveError(socket.EAI_SERVICE, f"service {port!r}: give a port number")
            port = int(port)
        port = port or 0
        if host is None:
            passive = flags & socket.AI_PASSIVE
            addresses = ["0.0.0.0" if passive else "127.0.0.1"]
            canonical = ""
        else:
            addresses = await self.resolve(host, family)
            canonical = host if flags & socket.AI_CANONNAME else ""
        types = [type] if type else [socket.SOCK_STREAM, socket.SOCK_DGRAM]
        out: list[tuple[int, int, int, str, tuple[Any, ...]]] = []
        for address in addresses:
            fam = address_family(address) or socket.AF_INET
            sockaddr: tuple[Any, ...] = (address, port) if fam == socket.AF_INET else (address, port, 0, 0)
            for kind in types:
                protocol = proto or (socket.IPPROTO_TCP if kind == socket.SOCK_STREAM else socket.IPPROTO_UDP)
                out.append((fam, kind, protocol, canonical, sockaddr))
                canonical = ""
        return out

    # -- lookups ------------------------------------------------------------------

    def families_for(self, family: int) -> list[int]:
        """The families a lookup of ``family`` (0: any) asks for, IPv6 first."""
        reachable = list(self.families())
        if family == 0:
            return sorted(reachable, key=lambda f: f != socket.AF_INET6) or [socket.AF_INET]
        if family not in _QTYPE:
            raise ResolveError(socket.EAI_FAMILY, f"family {family!r}: only AF_INET and AF_INET6")
        return [family]

    def _static(self, name: str, family: int) -> Answer | None:
        key = name.rstrip(".").lower()
        addresses = self.config.hosts.get(key)
        if addresses is None and (key == "localhost" or key.endswith(".localhost")):
            addresses = ("127.0.0.1", "::1")  # RFC 6761 6.3
        if addresses is None:
            return None
        mine = tuple(a for a in addresses if address_family(a) == family)
        if not mine:
            raise NoAddress(f"{name} (--hosts) has no {'IPv6' if family == socket.AF_INET6 else 'IPv4'} address")
        return Answer(mine, key)

    def _candidates(self, name: str) -> list[bytes]:
        try:
            if name.endswith("."):
                return [wire.encode_name(name)]
            candidates: list[bytes] = []
            suffixed = [f"{name}.{domain}" for domain in self.search()]
            ordered = [name, *suffixed] if name.count(".") >= self.config.ndots else [*suffixed, name]
            for text in ordered:
                try:
                    candidates.append(wire.encode_name(text))
                except wire.InvalidName:
                    if text == name:
                        raise
            return candidates
        except wire.InvalidName as exc:
            raise ResolveError(socket.EAI_NONAME, str(exc)) from None

    @staticmethod
    def _tried(candidates: list[bytes]) -> str:
        if len(candidates) < 2:
            return ""
        return "; tried " + ", ".join(wire.name_text(c) for c in candidates)

    async def _lookup_wire(self, name: bytes, qtype: int) -> _Outcome:
        """One name and type through the cache, then the servers, CNAME targets followed."""
        chain_ttl = wire.MAX_TTL
        current = name
        for _hop in range(MAX_CNAME + 1):
            entry = self.cache.get(current, qtype, self._now_ns())
            if entry is not None:
                self.stats["dns.cache_hits"] += 1
                return _Outcome(entry.kind, entry.addresses, entry.canonical, 0)
            outcome = await self._query_shared(current, qtype)
            chain_ttl = min(chain_ttl, outcome.ttl)
            if outcome.follow is None:
                if current != name:  # the whole chain is also the answer for the first name
                    self.cache.put(name, qtype, outcome.kind, outcome.addresses, outcome.canonical,
                                   chain_ttl, self._now_ns())
                return outcome
            current = outcome.follow
        self.stats["dns.cname_chain_too_long"] += 1
        raise ResolverUnavailable(f"{wire.name_text(name)}: a CNAME chain longer than {MAX_CNAME} links")

    async def _query_shared(self, name: bytes, qtype: int) -> _Outcome:
        """:meth:`_query` in a task of its own, shared by concurrent lookups of the same name and type.

        A caller that is cancelled (Happy Eyeballs dropping a lookup it no longer needs)
        leaves the query running for the others, and for the cache.
        """
        key = (name, qtype)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._query(name, qtype))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._inflight.pop(key, None))
            task.add_done_callback(_retrieve)
        else:
            self.stats["dns.shared_queries"] += 1
        return await asyncio.shield(task)

    async def _query(self, name: bytes, qtype: int) -> _Outcome:
        message = await self._exchange(wire.Question(name, qtype))
        outcome = interpret(name, qtype, message, self.stats)
        if outcome.follow is None:
            self.cache.put(name, qtype, outcome.kind, outcome.addresses, outcome.canonical, outcome.ttl,
                           self._now_ns())
        return outcome

    # -- exchanges ----------------------------------------------------------------

    async def _exchange(self, question: wire.Question) -> wire.Message:
        """Ask each server in turn, each round waiting twice as long; the first useful answer."""
        servers = self.servers()
        text = wire.name_text(question.name)
        if not servers:
            raise ResolverUnavailable(
                f"{text}: no DNS server is known: give one with --dns=ADDR[,ADDR], or a name with "
                f"--hosts NAME=ADDR (DHCP and IPv6 router advertisements supply servers when they offer any)")
        problems: list[str] = []
        for attempt in range(self.config.attempts):
            timeout = self.config.timeout * (2 ** attempt)
            for server in servers:
                try:
                    message = await self._ask(server, question, timeout)
                except asyncio.TimeoutError:
                    self.stats["dns.timeouts"] += 1
                    problems.append(f"{server} did not answer within {timeout:g} s")
                    continue
                except Malformed as exc:  # over TCP: one connection, one answer
                    self.stats[exc.reason] += 1
                    problems.append(f"{server} sent a malformed answer ({exc.reason})")
                    continue
                except OSError as exc:
                    self.stats["dns.server_unreachable"] += 1
                    problems.append(f"{server}: {exc.strerror or exc}")
                    continue
                if message.rcode in (wire.NOERROR, wire.NXDOMAIN):
                    return message
                reason = _RCODES.get(message.rcode, f"rcode_{message.rcode}")
                self.stats[f"dns.{reason}"] += 1
                problems.append(f"{server} answered {reason.upper()}")
        unique = list(dict.fromkeys(problems))
        raise ResolverUnavailable(f"{text}: no DNS server answered: {'; '.join(unique[:4])}")

    async def _ask(self, server: str, question: wire.Question, timeout: float) -> wire.Message:
        """One server: UDP (without EDNS if it refused it once), TCP when truncated."""
        edns = server not in self._no_edns
        message = await self._udp(server, question, timeout, edns)
        if message.rcode == wire.FORMERR and edns:
            # RFC 6891 7: a server that does not know EDNS answers FORMERR; ask it plainly.
            self._no_edns.add(server)
            self.stats["dns.edns_refused"] += 1
            message = await self._udp(server, question, timeout, False)
        if message.truncated:
            self.stats["dns.tcp_queries"] += 1
            message = await asyncio.wait_for(self._tcp(server, question), timeout)
        return message

    def _ident(self) -> int:
        return int.from_bytes(self._random.generate(2), "big")

    async def _bind(self) -> UDPEndpoint:
        """A UDP port drawn from the Random device (RFC 5452 9.2), not the next free one."""
        for _ in range(16):
            port = 49152 + int.from_bytes(self._random.generate(2), "big") % 16384
            try:
                return await self._udp_bind(port)
            except OSError:
                continue
        return await self._udp_bind(0)

    async def _udp(self, server: str, question: wire.Question, timeout: float, edns: bool) -> wire.Message:
        endpoint = await self._bind()
        ident = self._ident()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.stats["dns.queries"] += 1
        try:
            await endpoint.sendto(wire.build_query(ident, question.name, question.qtype, edns), (server, DNS_PORT))
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise asyncio.TimeoutError
                datagram = await asyncio.wait_for(endpoint.recvfrom(), remaining)
                # (address, port), and for IPv6 the flow information and scope after them
                if datagram.source[:2] != (server, DNS_PORT):
                    self.stats["dns.wrong_source"] += 1
                    continue
                try:
                    message = wire.parse_message(datagram.data)
                    wire.check_response(message, ident, question)
                except Malformed as exc:
                    self.stats[exc.reason] += 1
                    continue
                return message
        finally:
            endpoint.close()

    async def _tcp(self, server: str, question: wire.Question) -> wire.Message:
        reader, writer = await self._tcp_connect(server, DNS_PORT)
        try:
            ident = self._ident()
            query = wire.build_query(ident, question.name, question.qtype)
            writer.write(len(query).to_bytes(2, "big") + query)
            length = int.from_bytes(await reader.readexactly(2), "big")
            message = wire.parse_message(await reader.readexactly(length))
            wire.check_response(message, ident, question)
            return message
        except asyncio.IncompleteReadError:
            raise Malformed("dns.truncated", "the TCP connection ended inside a message") from None
        finally:
            writer.close()


def interpret(name: bytes, qtype: int, message: wire.Message, stats: Counter[str]) -> _Outcome:
    """What an answer to ``name``/``qtype`` says: addresses, NXDOMAIN, NODATA or a CNAME to follow.

    The CNAME chain inside the answer is followed link by link (at most
    :data:`MAX_CNAME`); a chain that leaves the answer without the records at its end
    asks to ``follow`` its last name.  Negative answers take the TTL of RFC 2308 5, the
    smaller of the SOA's TTL and its MINIMUM (no SOA: not cached).
    """
    current = name
    ttl = wire.MAX_TTL
    for _hop in range(MAX_CNAME + 1):
        records = [r for r in message.answers if r.name == current and r.rtype == qtype and r.rclass == wire.CLASS_IN]
        if records:
            addresses = tuple(dict.fromkeys(str(r.data) for r in records))
            return _Outcome(POSITIVE, addresses, current, min(ttl, *(r.ttl for r in records)))
        alias = next((r for r in message.answers if r.name == current and r.rtype == wire.CNAME), None)
        if alias is None:
            break
        assert isinstance(alias.data, bytes)
        ttl = min(ttl, alias.ttl)
        current = alias.data
    else:
        stats["dns.cname_chain_too_long"] += 1
        raise ResolverUnavailable(f"{wire.name_text(name)}: a CNAME chain longer than {MAX_CNAME} links")
    soa = next((r for r in message.authority if r.rtype == wire.SOA and isinstance(r.data, wire.Soa)), None)
    negative_ttl = min(soa.ttl, soa.data.minimum) if soa is not None and isinstance(soa.data, wire.Soa) else 0
    if message.rcode == wire.NXDOMAIN:
        stats["dns.nxdomain"] += 1
        return _Outcome(NXDOMAIN, (), current, min(ttl, negative_ttl))
    if current != name and soa is None:
        return _Outcome(NODATA, (), current, ttl, follow=current)
    stats["dns.nodata"] += 1
    return _Outcome(NODATA, (), current, min(ttl, negative_ttl))


def _retrieve(task: asyncio.Future[_Outcome]) -> None:
    """Mark a shared query's failure as seen (its callers may all have gone)."""
    if not task.cancelled():
        task.exception()


def interleave(addresses: Sequence[str]) -> list[str]:
    """RFC 8305 4: alternate the families, IPv6 first, each family in its own order."""
    v6 = [a for a in addresses if ":" in a]
    v4 = [a for a in addresses if ":" not in a]
    out: list[str] = []
    for i in range(max(len(v6), len(v4))):
        out += v6[i:i + 1] + v4[i:i + 1]
    return out
