"""Names on the dual stack, against the kernel in a namespace the test creates, over a TAP.

dnsmasq advertises a prefix (SLAAC) with itself as the DNS server (RDNSS, RFC 8106),
reached over IPv6, and answers ``web.test`` with an A and an AAAA record.  With no
``--dns`` and no DHCP, unik's resolver asks the advertised server over IPv6, gets both
families (IPv6 first), and connects by name with Happy Eyeballs: to the kernel's IPv6
address when it answers; to its IPv4 one 250 ms later when the name's IPv6 address is a
black hole.  Needs root, /dev/net/tun and dnsmasq.
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
from kernel_support import Namespace6, kernel_namespace6, run, unik_stack6, wait_for

ECHO6 = """
import socket
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 7007)); s.listen()
while True:
    c, peer = s.accept(); c.sendall(peer[0].encode() + b"\\n"); c.close()
"""


@pytest.fixture
def ns6() -> Iterator[Namespace6]:
    with kernel_namespace6("unik-dns6", tap="ukd") as ns:
        yield ns


@needs("dnsmasq", "ss")
def test_rdnss_server_over_ipv6_and_happy_eyeballs_across_families(ns6: Namespace6, tmp_path: Path) -> None:
    async def main() -> None:
        async with unik_stack6(ns6, static=False) as stack, ns6.background(
                "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--user=root", "--no-resolv", "--no-hosts",
                f"--interface={ns6.ifname}", "--bind-interfaces", f"--pid-file={tmp_path}/pid",
                "--enable-ra", f"--dhcp-range={ns6.prefix6}::,ra-only,64,10m",
                f"--dhcp-option=option6:dns-server,[{ns6.host6}]", f"--ra-param={ns6.ifname},4",
                "--local=/test/", "--auth-zone=test", f"--auth-server=ns.test,{ns6.ifname}",
                f"--host-record=web.test,{ns6.host},{ns6.host6}",
                f"--host-record=dark.test,{ns6.host},{ns6.prefix6}::99",
                "--log-queries", f"--log-facility={tmp_path}/log"), ns6.background(sys.executable, "-c", ECHO6):
            await wait_for(lambda: socket.AF_INET6 in stack.families(), "no global IPv6 address", timeout=20)
            await wait_for(lambda: ns6.host6 in stack.dns_servers(), "no RDNSS server", timeout=20)
            assert stack.dns_servers() == (ns6.host6,)  # no --dns, no DHCP: the advertised server alone
            for _ in range(100):  # dnsmasq answers once it has bound the TAP's addresses
                try:
                    addresses = await stack.resolve("web.test")
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            assert addresses == [ns6.host6, ns6.host]  # AAAA and A, IPv6 first
            log = (tmp_path / "log").read_text()
            assert f"[AAAA] web.test from {ns6.prefix6}:" in log  # asked over IPv6, from the SLAAC address
            try:
                reader, writer = await asyncio.wait_for(stack.tcp.connect("web.test", 7007), 5)
            except asyncio.TimeoutError:
                print("STATS", dict(stack.stats), [(c.key, c.tcb.state) for c in stack.tcp.connections.values()])
                _, out, _ = await ns6.run("ss", "-tan")
                print(out.decode())
                raise
            assert writer.get_extra_info("peername")[0] == ns6.host6
            assert (await reader.readline()).strip().decode().startswith(ns6.prefix6)  # the kernel saw IPv6
            writer.close()
            # the IPv6 address is a black hole: IPv4 wins after the Connection Attempt Delay
            started = time.monotonic()
            reader, writer = await stack.tcp.connect("dark.test", 7007)
            assert writer.get_extra_info("peername")[0] == ns6.host
            assert (await reader.readline()).strip().decode().endswith(ns6.unik)  # ::ffff:10.x.y.2
            assert 0.2 < time.monotonic() - started < 10
            writer.close()
    run(main())
