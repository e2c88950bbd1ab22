"""unik's resolver against real servers in a namespace the test creates, over a TAP.

dnsmasq answers A, AAAA, CNAME, NXDOMAIN (with its SOA, so the answer is cached
negatively) and a 120-address RRset that does not fit in 1232 octets (the UDP answer
is truncated and unik asks again over TCP).  A hostile server written here answers
each query first with a forgery (wrong ID, another question, a compression-pointer
loop, a name over 255 octets, a forward pointer) and then correctly: each forgery is
counted by reason and dropped, and the real answer is taken.  Needs root, /dev/net/tun
and dnsmasq.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_tools import needs
from kernel_support import Namespace, kernel_namespace, run, serve_http, unik_stack
from unik_tcpip.dns.resolver import NameNotFound, NoAddress

BIG = 120


@pytest.fixture
def netns() -> Iterator[Namespace]:
    with kernel_namespace("unik-dns", tap="ukd") as ns:
        yield ns


def dnsmasq_args(ns: Namespace, tmp_path: Path) -> list[str]:
    records = [f"--host-record=web.test,{ns.host},fd00::80", f"--host-record=v4only.test,{ns.host}",
               "--cname=alias.test,web.test", "--cname=chain.test,alias.test"]
    records += [f"--host-record=big.test,10.200.{i // 200}.{i % 200 + 1}" for i in range(BIG)]
    return ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--user=root", "--no-resolv", "--no-hosts",
            f"--interface={ns.ifname}", "--bind-interfaces", f"--listen-address={ns.host}",
            f"--pid-file={tmp_path}/pid", "--local=/test/", "--log-queries",
            # authoritative for test.: negative answers then carry the zone's SOA (RFC 2308 3)
            "--auth-zone=test", f"--auth-server=ns.test,{ns.ifname}",
            f"--log-facility={tmp_path}/log", *records]


async def wait_port(ns: Namespace, port: int, proto: str = "udp") -> None:
    flag = "-lun" if proto == "udp" else "-ltn"
    for _ in range(100):
        _, out, _ = await ns.run("ss", flag)
        if f"{ns.host}:{port}" in out.decode():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens on {ns.host}:{port}/{proto}")


@needs("dnsmasq", "ss")
def test_resolver_against_dnsmasq(netns: Namespace, tmp_path: Path) -> None:
    async def main() -> None:
        async with unik_stack(netns, dns=netns.host) as stack, netns.background(*dnsmasq_args(netns, tmp_path)):
            await wait_port(netns, 53)
            await wait_port(netns, 53, "tcp")
            assert await stack.resolve("web.test") == [netns.host]
            # AAAA asked explicitly (the stack itself reaches IPv4 only until IPv6 lands)
            assert await stack.resolve("web.test", socket.AF_INET6) == ["fd00::80"]
            with pytest.raises(NoAddress):
                await stack.resolve("v4only.test", socket.AF_INET6)
            # CNAME chains: the answer carries them, the canonical name is the end
            answer = await stack.resolver.lookup("chain.test", socket.AF_INET)
            assert answer.addresses == (netns.host,) and answer.canonical == "web.test"
            # NXDOMAIN, then the same again from the negative cache (RFC 2308)
            queries = stack.stats["dns.queries"]
            with pytest.raises(NameNotFound):
                await stack.resolve("nowhere.test.")
            assert stack.stats["dns.queries"] == queries + 1
            with pytest.raises(NameNotFound):
                await stack.resolve("nowhere.test.")
            assert stack.stats["dns.queries"] == queries + 1, "the NXDOMAIN was not cached"
            # a cached positive answer asks nobody
            await stack.resolve("web.test")
            assert stack.stats["dns.queries"] == queries + 1
            # search domains: "web" is tried as web.test first (--dns-search / DHCP's domain)
            stack.resolver.config.search = ("test",)
            assert await stack.resolve("web") == [netns.host]
            # a truncated answer is asked again over TCP
            big = await stack.resolve("big.test")
            assert len(big) == BIG and stack.stats["dns.tcp_queries"] == 1
            # names where addresses go: TCP connect by name (Happy Eyeballs) to a kernel-side server
            async with netns.background(sys.executable, "-c", ECHO.format(host=netns.host)):
                await wait_port(netns, 7007, "tcp")
                reader, writer = await stack.tcp.connect("alias.test", 7007)
                writer.write(b"hello by name\n")
                assert await reader.readline() == b"hello by name\n"
                assert writer.get_extra_info("peername")[0] == netns.host
                writer.close()
            log = (tmp_path / "log").read_text()
            assert "[A] web.test" in log and "[AAAA] web.test" in log
    run(main())


ECHO = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{host}", 7007)); s.listen()
c, _ = s.accept(); c.sendall(c.recv(100))
"""

#: A server that sends a forgery before each real answer; forgeries by the query's first label.
HOSTILE = r'''
import socket, struct, sys
HOST = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((HOST, 53))
def qname_end(q):
    i = 12
    while q[i]:
        i += 1 + q[i]
    return i + 1
while True:
    q, peer = s.recvfrom(2048)
    ident = q[:2]
    end = qname_end(q)
    question = q[12:end + 4]
    label = q[13:13 + q[12]].decode()
    flags = struct.pack("!H", 0x8180)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([10, 9, 8, 7])
    good = ident + flags + struct.pack("!HHHH", 1, 1, 0, 0) + question + answer
    bad = None
    if label == "wrongid":
        bad = bytes([ident[0] ^ 0xFF, ident[1]]) + good[2:]
    elif label == "mismatch":
        other = b"\x05other\x04test\x00" + question[-4:]
        bad = ident + flags + struct.pack("!HHHH", 1, 1, 0, 0) + other + b"\xc0\x0c" + answer[2:]
    elif label == "loop":
        # the answer's owner is a pointer to itself
        at = 12 + len(question)
        bad = ident + flags + struct.pack("!HHHH", 1, 1, 0, 0) + question + struct.pack("!H", 0xC000 | at) + answer[2:]
    elif label == "toolong":
        long_name = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"
        bad = ident + flags + struct.pack("!HHHH", 1, 1, 0, 0) + question + long_name + answer[2:]
    elif label == "forward":
        at = 12 + len(question) + 40
        bad = ident + flags + struct.pack("!HHHH", 1, 1, 0, 0) + question + struct.pack("!H", 0xC000 | at) + answer[2:]
    elif label == "source":
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind((HOST, 5353))
        other.sendto(good, peer)
        other.close()
    if bad is not None:
        s.sendto(bad, peer)
    s.sendto(good, peer)
'''


@needs("ss", "curl")
def test_forged_answers_are_counted_and_dropped(netns: Namespace, tmp_path: Path) -> None:
    """Each forgery counted by its reason and dropped, the real answer taken, curl served throughout."""
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE)
    (tmp_path / "www").mkdir()
    forgeries = {"wrongid": "dns.wrong_id", "mismatch": "dns.question_mismatch", "loop": "dns.pointer_loop",
                 "toolong": "dns.name_too_long", "forward": "dns.pointer_forward", "source": "dns.wrong_source"}

    async def main() -> None:
        async with unik_stack(netns, dns=netns.host) as stack, netns.background(
                sys.executable, str(script), netns.host):
            await wait_port(netns, 53)
            app = serve_http(stack, tmp_path / "www", {"index.html": b"up\n"})
            started = time.monotonic()
            for label, reason in forgeries.items():
                assert await stack.resolve(f"{label}.test") == ["10.9.8.7"], label
                assert stack.stats[reason] == 1, (label, dict(stack.stats))
                status, out, err = await netns.run("curl", "-sS", "--max-time", "10", f"http://{netns.unik}:8080/")
                assert status == 0 and out == b"up\n", err.decode()
            app.cancel()
            assert stack.stats["dns.queries"] == len(forgeries)  # one query each: no retry was needed
            assert stack.stats["dns.timeouts"] == 0
            assert time.monotonic() - started < 10
            assert await stack.ping(netns.host, timeout=5) > 0  # the stack goes on
    run(main())


@needs("dnsmasq")
def test_servers_and_search_domain_from_dhcp(netns: Namespace, tmp_path: Path) -> None:
    """dnsmasq's lease names itself as the DNS server (option 6) and test. as the domain (option 15)."""
    from unik.posix import GetrandomRandom, PosixMonotonicClock, PosixSleep
    from unik_fdio.tap import TapNetwork
    from unik_tcpip.stack import TcpipStack

    async def main() -> None:
        network = await TapNetwork.connect("service", netns.ifname, create=True)
        try:
            netns.adopt()
            async with netns.background(
                    *dnsmasq_args(netns, tmp_path), f"--dhcp-leasefile={tmp_path}/leases",
                    f"--dhcp-range={netns.prefix}.50,{netns.prefix}.60,2m", "--domain=test"):
                stack = await TcpipStack.connect(network, PosixMonotonicClock(), PosixSleep(), GetrandomRandom(),
                                                 dhcp_timeout=30)
                try:
                    assert stack.dns_servers() == (netns.host,)
                    assert stack.resolver.search() == ("test",)
                    assert await stack.resolve("web") == [netns.host]
                    infos = await stack.getaddrinfo("alias", 443, type=socket.SOCK_STREAM)
                    assert infos == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                                      (netns.host, 443))]
                finally:
                    await stack.disconnect()
        finally:
            await network.disconnect()
    run(main())
