"""The resolver's logic against scripted servers (no wire): retries, EDNS fallback, CNAMEs,
the cache and its TTLs, negative caching, search domains, static names, getaddrinfo, and
Happy Eyeballs' timing."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from unik.devices import Datagram
from unik_tcpip.dns import happy, wire
from unik_tcpip.dns.cache import Cache
from unik_tcpip.dns.config import parse_hosts, parse_search, parse_servers
from unik_tcpip.dns.resolver import (
    MAX_CNAME,
    NameNotFound,
    NoAddress,
    Resolver,
    ResolverConfig,
    ResolverUnavailable,
    interleave,
)

Server = Callable[[str, wire.Message], "bytes | None"]


class Clock:
    def __init__(self) -> None:
        self.ns = 10**12

    def __call__(self) -> int:
        return self.ns


class Counting:
    def __init__(self) -> None:
        self.n = 0

    def generate(self, k: int) -> bytes:
        self.n += 1
        return (self.n * 7919 % 65536).to_bytes(2, "big")[:k].rjust(k, b"\0")

    async def disconnect(self) -> None:
        return None


class Endpoint:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.queue: asyncio.Queue[Datagram] = asyncio.Queue()

    async def sendto(self, data: bytes, destination: tuple[str, int]) -> None:
        reply = self.server(destination[0], wire.parse_message(data))
        if reply is not None:
            self.queue.put_nowait(Datagram(reply, destination))

    async def recvfrom(self) -> Datagram:
        return await self.queue.get()

    def close(self) -> None:
        pass


def reply(query: wire.Message, records: list[bytes], rcode: int = 0, ns: int = 0, tc: bool = False) -> bytes:
    q = query.questions[0]
    flags = 0x8180 | rcode | (wire.TC if tc else 0)
    head = struct.pack("!HHHHHH", query.id, flags, 1, len(records) - ns, ns, 0)
    return head + q.name + struct.pack("!HH", q.qtype, 1) + b"".join(records)


def rr(owner: str, rtype: int, data: bytes, ttl: int = 300) -> bytes:
    return wire.encode_name(owner) + struct.pack("!HHIH", rtype, 1, ttl, len(data)) + data


def a(owner: str, address: str, ttl: int = 300) -> bytes:
    return rr(owner, wire.A, socket.inet_aton(address), ttl)


def soa(zone: str, ttl: int, minimum: int) -> bytes:
    data = wire.encode_name("ns." + zone) + wire.encode_name("h." + zone) + struct.pack("!IIIII", 1, 2, 3, 4, minimum)
    return rr(zone, wire.SOA, data, ttl)


def make(server: Server, servers: tuple[str, ...] = ("10.0.0.1",), families: tuple[int, ...] = (socket.AF_INET,),
         **config: Any) -> tuple[Resolver, Clock, Counter[str]]:
    clock, stats = Clock(), Counter[str]()

    async def bind(port: int) -> Endpoint:
        return Endpoint(server)

    async def tcp(host: str, port: int) -> Any:
        raise OSError("no TCP here")

    cfg = ResolverConfig(servers, timeout=0.05, **config)
    resolver = Resolver(cfg, bind, tcp, Counting(), clock, stats, servers=lambda: cfg.servers,  # type: ignore[arg-type]
                        families=lambda: families)
    return resolver, clock, stats


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def name_of(query: wire.Message) -> str:
    return wire.name_text(query.questions[0].name)


def test_a_second_server_answers_after_a_timeout_and_a_servfail() -> None:
    def server(addr: str, q: wire.Message) -> bytes | None:
        if addr == "10.0.0.1":
            return None
        if addr == "10.0.0.2":
            return reply(q, [], rcode=wire.SERVFAIL)
        return reply(q, [a(name_of(q), "192.0.2.9")])
    resolver, _, stats = make(server, ("10.0.0.1", "10.0.0.2", "10.0.0.3"))
    assert run(resolver.resolve("x.example")) == ["192.0.2.9"]
    assert stats["dns.timeouts"] == 1 and stats["dns.servfail"] == 1


def test_nobody_answers_names_the_servers_and_the_fix() -> None:
    resolver, _, stats = make(lambda addr, q: reply(q, [], rcode=wire.REFUSED))
    with pytest.raises(ResolverUnavailable, match=r"10\.0\.0\.1 answered REFUSED"):
        run(resolver.resolve("x.example"))
    assert stats["dns.refused"] == 2  # two rounds
    resolver, _, _ = make(lambda addr, q: None, ())
    with pytest.raises(ResolverUnavailable, match="--dns=ADDR"):
        run(resolver.resolve("x.example"))


def test_formerr_to_edns_asks_again_without_it() -> None:
    seen: list[int | None] = []

    def server(addr: str, q: wire.Message) -> bytes:
        seen.append(q.edns_payload)
        if q.edns_payload is not None:
            return reply(q, [], rcode=wire.FORMERR)
        return reply(q, [a(name_of(q), "192.0.2.1")])
    resolver, _, stats = make(server)
    assert run(resolver.resolve("old.example")) == ["192.0.2.1"]
    assert seen == [wire.EDNS_PAYLOAD, None] and stats["dns.edns_refused"] == 1
    resolver.flush()
    run(resolver.resolve("old.example"))
    assert seen[-1] is None and len(seen) == 3  # remembered


def test_cname_chains_followed_bounded_and_incomplete_ones_asked_for() -> None:
    def server(addr: str, q: wire.Message) -> bytes:
        name = name_of(q)
        if name == "loop.example":  # a -> b -> a inside one answer
            return reply(q, [rr("loop.example", wire.CNAME, wire.encode_name("b.example")),
                             rr("b.example", wire.CNAME, wire.encode_name("loop.example"))])
        if name == "alias.example":  # the answer stops at the alias
            return reply(q, [rr("alias.example", wire.CNAME, wire.encode_name("real.example"), ttl=50)])
        if name == "real.example":
            return reply(q, [a("real.example", "192.0.2.5", ttl=100)])
        if name.startswith("hop"):
            n = int(name[3:].split(".")[0])
            return reply(q, [rr(name, wire.CNAME, wire.encode_name(f"hop{n + 1}.example"))])
        return reply(q, [], rcode=wire.NXDOMAIN)
    resolver, clock, stats = make(server)
    with pytest.raises(ResolverUnavailable, match="CNAME chain"):
        run(resolver.resolve("loop.example"))
    answer = run(resolver.lookup("alias.example"))
    assert answer.addresses == ("192.0.2.5",) and answer.canonical == "real.example"
    queries = stats["dns.queries"]
    run(resolver.resolve("alias.example"))
    assert stats["dns.queries"] == queries  # the chain is cached under the alias
    clock.ns += 51 * 10**9  # the alias's TTL (50 s) bounds the chain's
    run(resolver.resolve("alias.example"))
    assert stats["dns.queries"] == queries + 1  # only the alias: real.example is still cached
    with pytest.raises(ResolverUnavailable, match="CNAME chain"):
        run(resolver.resolve("hop0.example"))
    assert stats["dns.cname_chain_too_long"] == 2
    assert stats["dns.queries"] < queries + 2 + MAX_CNAME + 2


def test_ttls_and_negative_caching() -> None:
    def server(addr: str, q: wire.Message) -> bytes:
        name = name_of(q)
        if name == "gone.example":
            return reply(q, [soa("example", ttl=600, minimum=30)], rcode=wire.NXDOMAIN, ns=1)
        if name == "nosoa.example":
            return reply(q, [], rcode=wire.NXDOMAIN)
        if name == "v4.example" and q.questions[0].qtype == wire.AAAA:
            return reply(q, [soa("example", ttl=20, minimum=300)], ns=1)
        return reply(q, [a(name, "192.0.2.1", ttl=10)])
    resolver, clock, stats = make(server)
    for _ in range(3):
        with pytest.raises(NameNotFound):
            run(resolver.resolve("gone.example"))
    assert stats["dns.queries"] == 1
    clock.ns += 31 * 10**9  # min(SOA TTL, MINIMUM) = 30 s
    with pytest.raises(NameNotFound):
        run(resolver.resolve("gone.example"))
    assert stats["dns.queries"] == 2
    for _ in range(2):  # no SOA: not cached (RFC 2308 5)
        with pytest.raises(NameNotFound):
            run(resolver.resolve("nosoa.example"))
    assert stats["dns.queries"] == 4
    with pytest.raises(NoAddress):  # NODATA
        run(resolver.resolve("v4.example", socket.AF_INET6))
    with pytest.raises(NoAddress):
        run(resolver.resolve("v4.example", socket.AF_INET6))
    assert stats["dns.queries"] == 5
    run(resolver.resolve("v4.example"))
    run(resolver.resolve("v4.example"))
    assert stats["dns.queries"] == 6
    clock.ns += 11 * 10**9
    run(resolver.resolve("v4.example"))
    assert stats["dns.queries"] == 7


def test_cache_is_bounded_least_recently_used_first_out() -> None:
    cache = Cache(limit=3)
    for i in range(3):
        cache.put(bytes([i]), 1, "positive", ("x",), b"", 60, 0)
    assert cache.get(b"\x00", 1, 0) is not None
    cache.put(b"\x09", 1, "positive", ("y",), b"", 60, 0)
    assert len(cache) == 3 and cache.evictions == 1
    assert cache.get(b"\x01", 1, 0) is None and cache.get(b"\x00", 1, 0) is not None


def test_search_domains_follow_ndots() -> None:
    asked: list[str] = []

    def server(addr: str, q: wire.Message) -> bytes:
        name = name_of(q)
        asked.append(name)
        if name in ("db.corp.example", "a.b"):
            return reply(q, [a(name, "192.0.2.7")])
        return reply(q, [soa("example", 60, 60)], rcode=wire.NXDOMAIN, ns=1)
    resolver, _, _ = make(server, search=("lab.example", "corp.example"))
    assert run(resolver.resolve("db")) == ["192.0.2.7"]
    assert asked == ["db.lab.example", "db.corp.example"]
    asked.clear()
    assert run(resolver.resolve("a.b")) == ["192.0.2.7"]
    assert asked == ["a.b"]  # a dot: the name as given first
    asked.clear()
    with pytest.raises(NameNotFound, match="tried"):
        run(resolver.resolve("nothing"))
    assert asked == ["nothing.lab.example", "nothing.corp.example", "nothing"]
    asked.clear()
    with pytest.raises(NameNotFound):
        run(resolver.resolve("db."))  # absolute: no search
    assert asked == ["db"]


def test_static_hosts_localhost_and_literals_ask_nobody() -> None:
    resolver, _, stats = make(lambda addr, q: None, (), hosts=parse_hosts("api.example=10.1.1.1,api.example=fd00::1"))
    assert run(resolver.resolve("API.example.")) == ["10.1.1.1"]
    assert run(resolver.resolve("api.example", socket.AF_INET6)) == ["fd00::1"]
    assert run(resolver.resolve("localhost")) == ["127.0.0.1"]
    assert run(resolver.resolve("10.9.9.9")) == ["10.9.9.9"]
    assert stats["dns.queries"] == 0


def test_getaddrinfo_shapes() -> None:
    resolver, _, _ = make(lambda addr, q: None, (), hosts=parse_hosts("h.example=10.1.1.1"))
    infos = run(resolver.getaddrinfo("h.example", "443", type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME))
    assert infos == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "h.example", ("10.1.1.1", 443))]
    both = run(resolver.getaddrinfo("h.example", 53))
    assert [i[1] for i in both] == [socket.SOCK_STREAM, socket.SOCK_DGRAM]
    with pytest.raises(socket.gaierror):
        run(resolver.getaddrinfo("h.example", "https"))


def test_concurrent_lookups_share_one_query() -> None:
    resolver, _, stats = make(lambda addr, q: reply(q, [a(name_of(q), "192.0.2.3")]))

    async def many() -> list[list[str]]:
        return await asyncio.gather(*(resolver.resolve("same.example") for _ in range(5)))
    assert run(many()) == [["192.0.2.3"]] * 5
    assert stats["dns.queries"] == 1


def test_keys_parse_and_explain() -> None:
    assert parse_servers("10.0.0.1, 2001:DB8::53,10.0.0.1") == ("10.0.0.1", "2001:db8::53")
    with pytest.raises(ValueError, match="--dns=ADDR"):
        parse_servers("dns.example")
    assert parse_search("Corp.Example.,lab") == ("corp.example", "lab")
    with pytest.raises(ValueError, match="NAME=ADDR"):
        parse_hosts("justaname")
    with pytest.raises(ValueError, match="not an IPv4 or IPv6"):
        parse_hosts("a.example=300.1.1.1")


def test_interleave_starts_with_ipv6() -> None:
    assert interleave(["1.1.1.1", "2.2.2.2", "::1", "::2", "::3"]) == ["::1", "1.1.1.1", "::2", "2.2.2.2", "::3"]


# -- Happy Eyeballs (RFC 8305) ------------------------------------------------------


async def _after(delay: float, value: Any) -> Any:
    await asyncio.sleep(delay)
    if isinstance(value, BaseException):
        raise value
    return value


def test_happy_eyeballs_falls_over_to_the_working_family() -> None:
    attempts: list[str] = []

    async def attempt(address: str) -> str:
        attempts.append(address)
        if ":" in address:
            raise OSError(101, "unreachable")
        return address
    lookups = [(socket.AF_INET6, _after(0, ["2001:db8::1"])), (socket.AF_INET, _after(0, ["192.0.2.1"]))]
    assert run(happy.connect(lookups, attempt, lambda c: None)) == "192.0.2.1"
    assert attempts == ["2001:db8::1", "192.0.2.1"]


def test_happy_eyeballs_staggers_attempts_and_closes_losers() -> None:
    closed: list[str] = []
    started: dict[str, float] = {}

    async def attempt(address: str) -> str:
        started[address] = asyncio.get_running_loop().time()
        await asyncio.sleep({"192.0.2.1": 10, "192.0.2.2": 0.05}[address])  # the first hangs
        return address

    async def go() -> tuple[str, float]:
        t0 = asyncio.get_running_loop().time()
        won = await happy.connect([(socket.AF_INET, _after(0, ["192.0.2.1", "192.0.2.2"]))], attempt,
                                  closed.append, attempt_delay=0.1)
        return won, asyncio.get_running_loop().time() - t0
    won, took = run(go())
    assert won == "192.0.2.2" and 0.14 <= took < 2
    assert started["192.0.2.2"] - started["192.0.2.1"] >= 0.09


def test_happy_eyeballs_waits_briefly_for_aaaa_after_a() -> None:
    attempts: list[str] = []

    async def attempt(address: str) -> str:
        attempts.append(address)
        return address
    lookups = [(socket.AF_INET6, _after(0.02, ["2001:db8::1"])), (socket.AF_INET, _after(0, ["192.0.2.1"]))]
    assert run(happy.connect(lookups, attempt, lambda c: None, resolution_delay=0.2)) == "2001:db8::1"
    slow = [(socket.AF_INET6, _after(1, ["2001:db8::1"])), (socket.AF_INET, _after(0, ["192.0.2.1"]))]
    assert run(happy.connect(slow, attempt, lambda c: None, resolution_delay=0.05)) == "192.0.2.1"


def test_happy_eyeballs_reports_the_lookup_error_or_every_failure() -> None:
    async def refuse(address: str) -> str:
        raise ConnectionRefusedError(111, f"refused by {address}")
    with pytest.raises(NameNotFound):
        run(happy.connect([(socket.AF_INET, _after(0, NameNotFound("x: no such name")))], refuse, lambda c: None))
    with pytest.raises(OSError, match=r"refused by 192\.0\.2\.1.*refused by 192\.0\.2\.2"):
        run(happy.connect([(socket.AF_INET, _after(0, ["192.0.2.1", "192.0.2.2"]))], refuse, lambda c: None))


def test_a_cancelled_lookup_leaves_the_shared_query_to_the_others() -> None:
    resolver, _, stats = make(lambda addr, q: reply(q, [a(name_of(q), "192.0.2.4")]))
    real_bind = resolver._udp_bind

    async def slow_bind(port: int) -> Any:  # answers arrive 20 ms after the query (the timeout is 50 ms)
        endpoint = await real_bind(port)
        receive = endpoint.recvfrom

        async def later() -> Datagram:
            datagram = await receive()
            await asyncio.sleep(0.02)
            return datagram  # type: ignore[no-any-return]
        endpoint.recvfrom = later  # type: ignore[method-assign]
        return endpoint
    resolver._udp_bind = slow_bind

    async def main() -> list[str]:
        first = asyncio.ensure_future(resolver.resolve("shared.example"))
        second = asyncio.ensure_future(resolver.resolve("shared.example"))
        await asyncio.sleep(0.005)
        first.cancel()
        return await second
    assert run(main()) == ["192.0.2.4"]
    assert stats["dns.queries"] == 1 and stats["dns.shared_queries"] == 1
