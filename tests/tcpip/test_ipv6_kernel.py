"""unik's stack over IPv6 against the Linux kernel over a real TAP, in a namespace the test creates.

The TAP's kernel side sits in a fresh namespace with IPv6 on (``2001:db8:N::1/64``,
no DAD); unik's stack owns the other side with ``--ipv6=2001:db8:N::2/64`` and its
link-local address, or with addresses from dnsmasq's router advertisements (SLAAC).
Needs root, /dev/net/tun and iproute2; each tool skips its own test when missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import kernel_support as kernel
import pytest
from host_tools import needs
from unik_tcpip import checksum
from unik_tcpip.addr import ip_bytes

pytestmark = kernel.KERNEL


@needs("ping")
def test_ping6_both_ways_global_and_link_local(netns6: kernel.Namespace6) -> None:
    async def main() -> None:
        async with kernel.unik_stack6(netns6) as stack:
            for target in (netns6.unik6, f"{kernel.link_local(stack)}%{netns6.ifname}"):
                status, out, err = await netns6.run("ping", "-6", "-c", "3", "-i", "0.2", "-W", "5", target)
                assert status == 0, (out + err).decode()
                assert b"3 received" in out
            rtts = [await stack.ping(netns6.host6, seq=i, timeout=5) for i in range(3)]
            assert all(r > 0 for r in rtts)
            assert stack.stats["icmpv6.echo_requests"] == 6
            # The kernel resolved us by NDP, and we learnt it from its solicitation.
            assert stack.stats["ndp.solicits_received"] >= 1
            assert stack.ipv6.neighbours.entries[ip_bytes(netns6.host6)].mac is not None
    kernel.run(main())


@needs("curl")
@pytest.mark.parametrize(("pure", "offload"), [(False, False), (True, False), (False, True)],
                         ids=["c-checksum", "pure-checksum", "offloads"])
def test_curl6_to_examples_http_on_both_families(netns6: kernel.Namespace6, tmp_path: Path, pure: bool,
                                                 offload: bool) -> None:
    kernel.http_app()  # skips without examples/http
    body = os.urandom(3 << 20)
    files = {"index.html": b"<h1>unik</h1>\n", "big.bin": body}

    async def main() -> None:
        async with kernel.unik_stack6(netns6, offload=offload) as stack:
            app = kernel.serve_http(stack, tmp_path, files)
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
                f"http://[{kernel.link_local(stack)}%25{netns6.ifname}]:8080/")
            assert status == 0 and out == files["index.html"], err.decode()
            assert stack.stats["tcp.passive_opens"] == 4
            app.cancel()
    checksum.use_pure(pure)
    try:
        kernel.run(main())
    finally:
        checksum.use_pure(False)


# The http.server download and socat's UDP echo over IPv6 are test_kernel.py's, run on both families.


@needs("socat")
def test_udp6_fragmented_datagram_echo(netns6: kernel.Namespace6) -> None:
    """A datagram bigger than the MTU leaves in fragments the kernel reassembles (RFC 8200 4.5)."""
    async def main() -> None:
        async with kernel.unik_stack6(netns6) as stack, netns6.background(
                "socat", "-T", "10", f"UDP6-LISTEN:7779,bind=[{netns6.host6}]", "PIPE"):
            client = await stack.udp.bind()
            big = os.urandom(6000)
            got = await kernel.udp_echoed(client, big, (netns6.host6, 7779), 0.3, "no echo of a fragmented datagram")
            assert got.data == big
            assert stack.stats["ipv6.fragments_sent"] >= 5 and stack.stats["ipv6.reassembled"] >= 1
    kernel.run(main())


@pytest.mark.slow
@pytest.mark.parametrize("offload", [False, True], ids=["plain", "offloads"])
def test_50mb_over_ipv6_both_ways_with_loss_and_reordering(netns6: kernel.Namespace6, offload: bool) -> None:
    """50 MiB each way over IPv6, checksummed, through a lossy, reordering wrapper of unik's TAP.

    (This machine's kernel has no sch_netem, see tests/tcpip/test_kernel.py; the wrapper
    drops 0.5 % and swaps 5 % of the frames both ways.)
    """
    size = 50 << 20

    async def main() -> None:
        async with kernel.unik_stack6(netns6, lossy=(0.005, 0.05), offload=offload) as stack:
            up = await kernel.bulk_both_ways(stack, netns6, netns6.host6, size)
            assert up.retransmits > 0
            assert stack.stats["tcp.out_of_order"] > 0
    kernel.run(main(), timeout=240)


@needs("dnsmasq")
@needs("curl")
def test_slaac_and_rdnss_from_dnsmasq_router_advertisements(netns6: kernel.Namespace6, tmp_path: Path) -> None:
    """dnsmasq advertises a prefix (SLAAC), itself as router, a DNS server and a search domain (RFC 8106)."""
    kernel.http_app()  # skips without examples/http

    async def main() -> None:
        async with kernel.unik_stack6(netns6, static=False) as stack, netns6.background(
                "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root",
                f"--interface={netns6.ifname}", "--bind-interfaces", f"--pid-file={tmp_path}/pid",
                "--enable-ra", f"--dhcp-range={netns6.prefix6}::,ra-only,64,10m",
                f"--dhcp-option=option6:dns-server,[{netns6.prefix6}::53]",
                "--dhcp-option=option6:domain-search,example.test",
                f"--ra-param={netns6.ifname},4"):
            slaac = [a for a in stack.ipv6.addresses if a.origin == "slaac"]
            await kernel.wait_for(
                lambda: any(a.state == "preferred" for a in stack.ipv6.addresses if a.origin == "slaac"),
                "no SLAAC address", timeout=20)
            slaac = [a for a in stack.ipv6.addresses if a.origin == "slaac"]
            address = str(__import__("ipaddress").IPv6Address(slaac[0].address))
            assert address.startswith(netns6.prefix6 + ":")
            await kernel.wait_for(lambda: stack.ipv6.dns.servers() and stack.ipv6.dns.search_domains(),
                                  "no RDNSS/DNSSL")
            assert stack.ipv6.dns.servers() == [f"{netns6.prefix6}::53"]
            assert stack.ipv6.dns.search_domains() == ["example.test"]
            assert stack.ipv6.slaac.default_router() is not None
            app = kernel.serve_http(stack, tmp_path, {"index.html": b"slaac\n"})
            await asyncio.sleep(0.1)
            status, out, err = await netns6.run("curl", "-6", "-sS", "--max-time", "20", f"http://[{address}]:8080/")
            assert status == 0 and out == b"slaac\n", err.decode()
            app.cancel()
    kernel.run(main())
