"""unik's stack over IPv6 against the Linux kernel over a real TAP, in a namespace the test creates.

The TAP's kernel side sits in a fresh namespace with IPv6 on (``2001:db8:N::1/64``,
no DAD); unik's stack owns the other side with ``--ipv6=2001:db8:N::2/64`` and its
link-local address, or with addresses from dnsmasq's router advertisements (SLAAC).
Needs root, /dev/net/tun and iproute2; each tool skips its own test when missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from host_tools import needs
from test_kernel import REPO, LossyNetwork, Namespace, _Console, _unavailable, htdocs, run, sh
from unik.testing import network_namespace
from unik_tcpip import checksum
from unik_tcpip.addr import ip_bytes
from unik_tcpip.stack import TcpipStack

pytestmark = [pytest.mark.root, pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))]


class Namespace6(Namespace):
    """The kernel's side, with an IPv6 prefix too."""

    prefix6: str = ""

    @property
    def host6(self) -> str:
        return f"{self.prefix6}::1"

    @property
    def unik6(self) -> str:
        return f"{self.prefix6}::2"

    def adopt(self) -> None:
        # No DAD on the kernel's side: its addresses are usable at once.
        sh("ip", "netns", "exec", self.name, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
           "net.ipv6.conf.default.accept_dad=0")
        super().adopt()
        sh("ip", "-n", self.name, "addr", "add", f"{self.host6}/64", "dev", self.ifname, "nodad")


@pytest.fixture
def netns6() -> Iterator[Namespace6]:
    with network_namespace("unik-ip6", ipv6=True) as name:
        ns = Namespace6(name, f"10.{random.randint(100, 250)}.{random.randint(0, 255)}", f"ukn{secrets.token_hex(5)}")
        ns.prefix6 = f"2001:db8:{random.randint(1, 0xFFFF):x}"
        yield ns


async def wait_for(predicate: Any, what: str, timeout: float = 10.0) -> None:
    """Poll ``predicate()`` every 50 ms until it is true (bounded)."""
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} within {timeout} s")


@contextlib.asynccontextmanager
async def unik_stack6(ns: Namespace6, *, static: bool = True, lossy: tuple[float, float] | None = None,
                      offload: bool = False) -> AsyncIterator[TcpipStack]:
    """unik's dual stack on a new TAP whose kernel side is in ``ns``; returns once its addresses passed DAD."""
    from unik.posix import GetrandomRandom, PosixMonotonicClock, PosixSleep
    from unik_fdio.tap import TapNetwork

    network: Any = await TapNetwork.connect("service", ns.ifname, offload=offload, create=True)
    if lossy is not None:
        network = LossyNetwork(network, *lossy)
    try:
        ns.adopt()
        stack = await TcpipStack.connect(network, PosixMonotonicClock(), PosixSleep(), GetrandomRandom(),
                                         ipv4=f"{ns.unik}/24", ipv4_gateway=ns.host,
                                         ipv6=f"{ns.unik6}/64" if static else None)
        try:
            await wait_for(lambda: stack.ipv6.addresses.link_local() is not None, "no link-local address")
            if static:
                await wait_for(lambda: stack.ipv6.owns(ip_bytes(ns.unik6)), f"{ns.unik6} never passed DAD")
            yield stack
        finally:
            await stack.disconnect()
    finally:
        await network.disconnect()


def link_local(stack: TcpipStack) -> str:
    address = stack.ipv6.addresses.link_local()
    assert address is not None
    return str(__import__("ipaddress").IPv6Address(address))


@needs("ping")
def test_ping6_both_ways_global_and_link_local(netns6: Namespace6) -> None:
    async def main() -> None:
        async with unik_stack6(netns6) as stack:
            for target in (netns6.unik6, f"{link_local(stack)}%{netns6.ifname}"):
                status, out, err = await netns6.run("ping", "-6", "-c", "3", "-i", "0.2", "-W", "5", target)
                assert status == 0, (out + err).decode()
                assert b"3 received" in out
            rtts = [await stack.ping(netns6.host6, seq=i, timeout=5) for i in range(3)]
            assert all(r > 0 for r in rtts)
            assert stack.stats["icmpv6.echo_requests"] == 6
            # The kernel resolved us by NDP, and we learnt it from its solicitation.
            assert stack.stats["ndp.solicits_received"] >= 1
            assert stack.ipv6.neighbours.entries[ip_bytes(netns6.host6)].mac is not None
    run(main())


def _http_app() -> Any:
    src = REPO / "examples" / "http" / "src"
    if not (src / "http_app" / "__init__.py").exists():
        pytest.skip("needs examples/http")
    sys.path.insert(0, str(src))
    try:
        import http_app
    finally:
        sys.path.remove(str(src))
    return http_app


@needs("curl")
@pytest.mark.parametrize(("pure", "offload"), [(False, False), (True, False), (False, True)],
                         ids=["c-checksum", "pure-checksum", "offloads"])
def test_curl6_to_examples_http_on_both_families(netns6: Namespace6, tmp_path: Path, pure: bool,
                                                 offload: bool) -> None:
    http_app = _http_app()
    body = os.urandom(3 << 20)
    files = {"index.html": b"<h1>unik</h1>\n", "big.bin": body}

    async def main() -> None:
        async with unik_stack6(netns6, offload=offload) as stack:
            app = asyncio.ensure_future(http_app.start(stack, htdocs(tmp_path, files), _Console(), port=8080))
            await asyncio.sleep(0.1)
            url6 = f"http://[{netns6.unik6}]:8080"
            status, out, err = await netns6.run("curl", "-6", "-sS", "--max-time", "20", f"{url6}/")
            assert status == 0, err.decode()
            assert out == files["index.html"]
            status, out, err = await netns6.run("curl", "-6", "-sS", "--max-time", "60", f"{url6}/big.bin",
                                                f"{url6}/big.bin")  # two requests on one connection
            assert status == 0, err.decode()
            assert hashlib.sha256(out).digest() == hashlib.sha256(body * 2).digest()
            # The same server answers IPv4, and over the link-local address.
            status, out, err = await netns6.run("curl", "-4", "-sS", "--max-time", "20", f"http://{netns6.unik}:8080/")
            assert status == 0 and out == files["index.html"], err.decode()
            status, out, err = await netns6.run(
                "curl", "-6", "-sS", "--max-time", "20", "--interface", netns6.ifname,
                f"http://[{link_local(stack)}%25{netns6.ifname}]:8080/")
            assert status == 0 and out == files["index.html"], err.decode()
            assert stack.stats["tcp.passive_opens"] == 4
            app.cancel()
    checksum.use_pure(pure)
    try:
        run(main())
    finally:
        checksum.use_pure(False)


@pytest.mark.parametrize("offload", [False, True], ids=["plain", "offloads"])
def test_unik_client_fetches_over_ipv6_from_python_http_server(netns6: Namespace6, tmp_path: Path,
                                                               offload: bool) -> None:
    body = os.urandom(5 << 20)
    (tmp_path / "blob").write_bytes(body)

    async def main() -> None:
        async with unik_stack6(netns6, offload=offload) as stack, netns6.background(
                sys.executable, "-m", "http.server", "8000", "--bind", netns6.host6, cwd=str(tmp_path)):
            for _attempt in range(50):
                try:
                    reader, writer = await stack.tcp.connect(netns6.host6, 8000)
                    break
                except ConnectionRefusedError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("http.server never listened")
            assert writer.get_extra_info("peername")[:2] == (netns6.host6, 8000)
            writer.write(f"GET /blob HTTP/1.1\r\nHost: [{netns6.host6}]\r\nConnection: close\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head
            got = await reader.read()
            writer.close()
            assert len(got) == len(body) and hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
    run(main())


@needs("socat")
def test_udp6_echo_with_socat(netns6: Namespace6) -> None:
    async def main() -> None:
        async with unik_stack6(netns6) as stack:
            server = await stack.udp.bind(7777)

            async def echo() -> None:
                while True:
                    data, source = await server.recvfrom()
                    await server.sendto(data, source)
            task = asyncio.ensure_future(echo())
            status, out, err = await netns6.run("socat", "-T", "3", "-", f"UDP6:[{netns6.unik6}]:7777",
                                                stdin=b"hello unik\n")
            assert status == 0, err.decode()
            assert out == b"hello unik\n"
            task.cancel()
            async with netns6.background("socat", "-T", "10", f"UDP6-LISTEN:7778,bind=[{netns6.host6}]", "PIPE"):
                client = await stack.udp.bind()
                for _attempt in range(50):
                    await client.sendto(b"ping from unik", (netns6.host6, 7778))
                    try:
                        got = await asyncio.wait_for(client.recvfrom(), 0.2)
                        break
                    except asyncio.TimeoutError:
                        continue
                else:
                    raise AssertionError("no UDP echo from socat")
                assert got.data == b"ping from unik" and got.source[:2] == (netns6.host6, 7778)
            # A datagram bigger than the MTU leaves in fragments the kernel reassembles (RFC 8200 4.5).
            async with netns6.background("socat", "-T", "10", f"UDP6-LISTEN:7779,bind=[{netns6.host6}]", "PIPE"):
                client = await stack.udp.bind()
                big = os.urandom(6000)
                for _attempt in range(50):
                    await client.sendto(big, (netns6.host6, 7779))
                    try:
                        got = await asyncio.wait_for(client.recvfrom(), 0.3)
                        break
                    except asyncio.TimeoutError:
                        continue
                else:
                    raise AssertionError("no echo of a fragmented datagram")
                assert got.data == big
                assert stack.stats["ipv6.fragments_sent"] >= 5 and stack.stats["ipv6.reassembled"] >= 1
    run(main())


SINK6 = r"""
import hashlib, socket, sys
host, port, mode, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
srv = socket.create_server((host, port), family=socket.AF_INET6)
srv.settimeout(60)
conn, _ = srv.accept()
conn.settimeout(60)
if mode == "sink":
    h, n = hashlib.sha256(), 0
    while chunk := conn.recv(1 << 20):
        h.update(chunk)
        n += len(chunk)
    conn.sendall(f"{n} {h.hexdigest()}".encode())
else:
    block = hashlib.sha256(b"unik").digest() * 32768  # 1 MiB
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        conn.sendall(piece)
        sent += len(piece)
conn.shutdown(socket.SHUT_WR)
conn.recv(1)
conn.close()
"""


@pytest.mark.slow
@pytest.mark.parametrize("offload", [False, True], ids=["plain", "offloads"])
def test_50mb_over_ipv6_both_ways_with_loss_and_reordering(netns6: Namespace6, offload: bool) -> None:
    """50 MiB each way over IPv6, checksummed, through a lossy, reordering wrapper of unik's TAP.

    (This machine's kernel has no sch_netem, see tests/tcpip/test_kernel.py; the wrapper
    drops 0.5 % and swaps 5 % of the frames both ways.)
    """
    size = 50 << 20
    block = hashlib.sha256(b"unik").digest() * 32768

    async def connect(stack: TcpipStack, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        for _attempt in range(100):
            try:
                return await stack.tcp.connect(netns6.host6, port)  # type: ignore[return-value]
            except ConnectionRefusedError:
                await asyncio.sleep(0.05)
        raise AssertionError(f"nothing listens on [{netns6.host6}]:{port}")

    async def main() -> None:
        async with unik_stack6(netns6, lossy=(0.005, 0.05), offload=offload) as stack:
            async with netns6.background(sys.executable, "-c", SINK6, netns6.host6, "9000", "sink", "0"):
                reader, writer = await connect(stack, 9000)
                want = hashlib.sha256()
                for sent in range(0, size, len(block)):
                    piece = block[: min(len(block), size - sent)]
                    want.update(piece)
                    writer.write(piece)
                    await writer.drain()
                writer.write_eof()
                answer = await asyncio.wait_for(reader.read(), 120)
                assert answer.decode() == f"{size} {want.hexdigest()}"
                up = writer.get_extra_info("tcp_stats")
                writer.close()
            async with netns6.background(sys.executable, "-c", SINK6, netns6.host6, "9001", "source", str(size)):
                reader, writer = await connect(stack, 9001)
                got, n = hashlib.sha256(), 0
                while chunk := await asyncio.wait_for(reader.read(1 << 20), 60):
                    got.update(chunk)
                    n += len(chunk)
                writer.close()
                assert n == size and got.hexdigest() == want.hexdigest()
            assert up.retransmits > 0
            assert stack.stats["tcp.out_of_order"] > 0
    run(main(), timeout=240)


@needs("dnsmasq")
@needs("curl")
def test_slaac_and_rdnss_from_dnsmasq_router_advertisements(netns6: Namespace6, tmp_path: Path) -> None:
    """dnsmasq advertises a prefix (SLAAC), itself as router, a DNS server and a search domain (RFC 8106)."""
    http_app = _http_app()

    async def main() -> None:
        async with unik_stack6(netns6, static=False) as stack, netns6.background(
                "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root",
                f"--interface={netns6.ifname}", "--bind-interfaces", f"--pid-file={tmp_path}/pid",
                "--enable-ra", f"--dhcp-range={netns6.prefix6}::,ra-only,64,10m",
                f"--dhcp-option=option6:dns-server,[{netns6.prefix6}::53]",
                "--dhcp-option=option6:domain-search,example.test",
                f"--ra-param={netns6.ifname},4"):
            slaac = [a for a in stack.ipv6.addresses if a.origin == "slaac"]
            await wait_for(lambda: any(a.state == "preferred" for a in stack.ipv6.addresses if a.origin == "slaac"),
                           "no SLAAC address", timeout=20)
            slaac = [a for a in stack.ipv6.addresses if a.origin == "slaac"]
            address = str(__import__("ipaddress").IPv6Address(slaac[0].address))
            assert address.startswith(netns6.prefix6 + ":")
            await wait_for(lambda: stack.ipv6.dns.servers() and stack.ipv6.dns.search_domains(), "no RDNSS/DNSSL")
            assert stack.ipv6.dns.servers() == [f"{netns6.prefix6}::53"]
            assert stack.ipv6.dns.search_domains() == ["example.test"]
            assert stack.ipv6.slaac.default_router() is not None
            app = asyncio.ensure_future(http_app.start(stack, htdocs(tmp_path, {"index.html": b"slaac\n"}),
                                                       _Console(), port=8080))
            await asyncio.sleep(0.1)
            status, out, err = await netns6.run("curl", "-6", "-sS", "--max-time", "20", f"http://[{address}]:8080/")
            assert status == 0 and out == b"slaac\n", err.decode()
            app.cancel()
    run(main())
