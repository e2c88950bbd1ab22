"""Hostile IPv6 input crafted with scapy, sent over a real TAP from a namespace the test creates.

Malformed headers, extension-header chains (routing type 0, unknown options by their
high bits, chains too long, hop-by-hop out of place), tiny, overlapping, never-completed
and incomplete fragments (RFC 5722, RFC 7112), NDP spoofing and a solicitation flood,
router advertisements with bogus prefixes and lifetimes: each is counted by its reason
and dropped, every table stays within its bound, and curl -6 is served afterwards.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from host_tools import needs
from kernel_support import KERNEL, Namespace6, http_app, link_local, run, scapy_missing, serve_http, unik_stack6
from unik_tcpip.stack import TcpipStack

pytestmark = [*KERNEL, pytest.mark.skipif(scapy_missing() is not None, reason=str(scapy_missing()))]

GARBAGE6 = r"""
import json, random, sys
from scapy.all import Ether, Raw, conf, get_if_hwaddr, sendp
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import (
    HBHOptUnknown, ICMPv6DestUnreach, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_Redirect,
    ICMPv6NDOptDNSSL, ICMPv6NDOptMTU, ICMPv6NDOptPrefixInfo, ICMPv6NDOptRDNSS, ICMPv6NDOptSrcLLAddr,
    ICMPv6NDOptDstLLAddr, ICMPv6PacketTooBig, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting)
conf.verb = 0
p = json.loads(sys.argv[1])
iface, umac, u6, ull, h6, hll = p["iface"], p["mac"], p["unik6"], p["unik_ll"], p["host6"], p["host_ll"]
hmac = get_if_hwaddr(iface)
rng = random.Random(6)
eth = Ether(dst=umac, src=hmac)
frames = []
def ip(**kw):
    kw.setdefault("src", h6)
    kw.setdefault("dst", u6)
    return eth / IPv6(**kw)
syn = bytes(ip() / TCP(sport=40000, dport=8080, flags="S"))
frames += [syn[:n] for n in range(14, len(syn))]                      # truncated, bad payload length
frames.append(Ether(dst=umac, src=hmac, type=0x86DD) / Raw(bytes(IPv6(src=h6, dst=u6, version=5) / UDP(dport=9))))
frames.append(ip(plen=0, nh=0) / Raw(bytes(IPv6ExtHdrHopByHop(nh=17) / UDP(dport=9))))  # jumbogram
# Extension headers.
frames.append(ip() / IPv6ExtHdrRouting(type=0, segleft=1, addresses=[h6]) / UDP(dport=9))
frames.append(ip() / IPv6ExtHdrRouting(type=4, segleft=1) / UDP(dport=9))
for otype in (0x1E, 0x5E, 0x9E, 0xDE):                                   # skip, discard, report, report
    frames.append(ip() / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=otype, optdata=b"xx")]) / UDP(dport=9))
frames.append(ip() / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / UDP(dport=9))
chain = IPv6ExtHdrHopByHop()
for _ in range(9):
    chain = chain / IPv6ExtHdrRouting(segleft=0)
frames.append(ip() / chain / UDP(dport=9))
frames.append(ip() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / UDP(dport=9))
frames.append(ip(nh=99) / Raw(b"x" * 16))
frames.append(ip(nh=59) / Raw(b"x" * 16))
frames.append(ip() / IPv6ExtHdrDestOpt(nh=17, len=9) / Raw(b"\x00" * 8))  # overruns the datagram
# Fragments: tiny and overlapping (RFC 5722), then more of the dropped datagram.
frames.append(ip() / IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=7) / Raw(bytes(UDP(dport=9)) + b"a" * 8))
frames.append(ip() / IPv6ExtHdrFragment(nh=17, offset=1, m=1, id=7) / Raw(b"b" * 16))
frames.append(ip() / IPv6ExtHdrFragment(nh=17, offset=4, m=0, id=7) / Raw(b"c" * 5))
frames.append(ip() / IPv6ExtHdrFragment(nh=6, offset=0, m=1, id=8) / Raw(b"t" * 8))   # RFC 7112: no TCP header
frames.append(ip() / IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=9) / Raw(b"u" * 13))  # not a multiple of 8
frames.append(ip() / IPv6ExtHdrFragment(nh=17, offset=8191, m=1, id=10) / Raw(b"v" * 16))  # past 65535
for i in range(200):                                                     # never completed: bounded
    frames.append(ip() / IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=1000 + i) / Raw(bytes(UDP(dport=9)) + b"w" * 8))
# Addresses.
frames.append(ip(src="ff02::1") / UDP(dport=9))
frames.append(ip(src=u6) / UDP(dport=9))
frames.append(ip(dst="2001:db8:ffff::9") / UDP(dport=9))
frames.append(Ether(dst="33:33:00:00:00:fb", src=hmac) / IPv6(src=h6, dst="ff02::fb") / UDP(dport=5353))
# Upper layers.
udp = bytearray(bytes(UDP(sport=1, dport=9) / Raw(b"zero")))
udp[6:8] = b"\x00\x00"
frames.append(ip(nh=17) / Raw(bytes(udp)))
frames.append(ip() / Raw(b""))                                           # ICMPv6? no: nh 59 default
icmp = bytearray(bytes(ip() / ICMPv6EchoRequest(data=b"x"))[54:])
icmp[2] ^= 0xFF
frames.append(ip(nh=58) / Raw(bytes(icmp)))
frames.append(ip(nh=58) / Raw(b"\x80\x00"))
# Packet Too Big below the IPv6 minimum, quoting one of ours.
frames.append(ip() / ICMPv6PacketTooBig(mtu=600) / IPv6(src=u6, dst=h6) / TCP(sport=8080, dport=40000))
# NDP spoofing.
ns = lambda tgt, **kw: ICMPv6ND_NS(tgt=tgt, **kw)
na = lambda tgt, **kw: ICMPv6ND_NA(tgt=tgt, **kw) / ICMPv6NDOptDstLLAddr(lladdr="02:66:66:66:66:66")
pi = ICMPv6NDOptPrefixInfo
frames.append(ip(hlim=64) / ns(u6) / ICMPv6NDOptSrcLLAddr(lladdr=hmac))               # off-link
frames.append(ip(hlim=255) / ICMPv6ND_NS(tgt=u6, code=1) / ICMPv6NDOptSrcLLAddr(lladdr=hmac))
frames.append(ip(hlim=255) / ns("ff02::1") / ICMPv6NDOptSrcLLAddr(lladdr=hmac))
frames.append(ip(hlim=255, src="::", dst="ff02::1:ff00:2") / ns(u6) / ICMPv6NDOptSrcLLAddr(lladdr=hmac))
frames.append(ip(hlim=255) / ns(u6) / Raw(b"\x01\x00" + b"\x00" * 6))                 # option of length 0
frames.append(ip(hlim=255, dst="ff02::1") / na(u6, R=0, S=0, O=1))          # claims our address
frames.append(ip(hlim=255) / na("2001:db8:ffff::77", S=1, O=1))             # an unknown neighbour
frames.append(ip(hlim=255) / na(h6, R=0, S=0, O=0))                         # no override: kept
frames.append(ip(hlim=255, dst="ff02::1") / na(h6, S=1, O=1))               # solicited to multicast
frames.append(ip(src=hll, dst=ull, hlim=255) / ICMPv6ND_Redirect(tgt=hll, dst="2001:db8:ffff::1"))
# A neighbour solicitation flood from spoofed sources: the cache stays bounded.
for i in range(2000):
    src = "2001:db8:%x::%x" % (rng.randrange(1, 0xFFFF), rng.randrange(1, 0xFFFF))
    mac = "02:%02x:%02x:%02x:%02x:%02x" % tuple(rng.randrange(256) for _ in range(5))
    frames.append(Ether(dst=umac, src=mac) / IPv6(src=src, dst=u6, hlim=255) / ns(u6)
                  / ICMPv6NDOptSrcLLAddr(lladdr=mac))
# Router advertisements: off-link source, bogus prefixes, lifetimes and options.
ra = lambda **kw: ip(src=hll, dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=0, **kw)
frames.append(ip(dst="ff02::1", hlim=255) / ICMPv6ND_RA() / pi(prefix="2001:db8:bad::", prefixlen=64))
frames.append(ra() / ICMPv6NDOptPrefixInfo(prefix="fe80::", prefixlen=64))
frames.append(ra() / ICMPv6NDOptPrefixInfo(prefix="ff00::", prefixlen=64))
frames.append(ra() / ICMPv6NDOptPrefixInfo(prefix="2001:db8:30::", prefixlen=48))
frames.append(ra() / pi(prefix="2001:db8:31::", prefixlen=64, validlifetime=10, preferredlifetime=100))
frames.append(ra() / ICMPv6NDOptMTU(mtu=500))
frames.append(ra() / ICMPv6NDOptRDNSS(dns=["ff02::1"], lifetime=100))
frames.append(ra() / Raw(bytes((25, 2)) + bytes(14)))                   # an RDNSS of even length
frames.append(ra() / ICMPv6NDOptDNSSL(searchlist=["ok.test"], lifetime=100))
for i in range(40):                                                      # more prefixes than the table holds
    frames.append(ra() / ICMPv6NDOptPrefixInfo(prefix="2001:db8:%x::" % (0x100 + i), prefixlen=64))
# The two-hour rule (RFC 4862 5.5.3 e): a short valid lifetime for an address we formed is cut
# to two hours, and once two hours are all that is left, ignored.
for _ in range(2):
    frames.append(ra() / ICMPv6NDOptPrefixInfo(prefix="2001:db8:100::", prefixlen=64, validlifetime=5,
                                               preferredlifetime=5))
sendp(frames, iface=iface)
"""

REASONS = (
    "ipv6.truncated", "ipv6.bad_payload_len", "ipv6.bad_version", "ipv6.jumbogram", "ipv6.routing_type0",
    "ipv6.routing_unsupported", "ipv6.unknown_option_discard", "ipv6.unknown_option_report",
    "ipv6.hop_by_hop_not_first", "ipv6.header_chain_too_long", "ipv6.repeated_extension",
    "ipv6.unknown_next_header", "ipv6.no_next_header", "ipv6.truncated_extension", "ipv6.frag_overlap",
    "ipv6.frag_of_dropped_datagram", "ipv6.frag_incomplete_chain", "ipv6.frag_bad_length", "ipv6.frag_too_long",
    "ipv6.frag_evicted", "ipv6.bad_source", "ipv6.own_source", "ipv6.not_for_us", "ipv6.multicast_not_joined",
    "udp.ipv6_zero_checksum", "icmpv6.bad_checksum", "icmpv6.truncated", "icmpv6.ptb_too_small",
    "ndp.bad_hop_limit", "ndp.bad_code", "ndp.bad_target", "ndp.bad_dad_solicit", "ndp.bad_option",
    "ndp.address_conflict", "ndp.unsolicited_na", "ndp.na_no_override", "ndp.bad_advert", "ndp.redirect_ignored",
    "ndp.evicted", "ndp.ra_bad_source", "ra.prefix_bogus", "ra.prefix_bad_length", "ra.prefix_bad_lifetimes",
    "ra.bad_mtu", "ra.rdnss_bogus", "ndp.bad_rdnss", "ra.addresses_full", "ra.lifetime_clamped", "ra.lifetime_ignored",
)


async def _curl6(ns: Namespace6) -> None:
    status, out, err = await ns.run("curl", "-6", "-sS", "--max-time", "20", f"http://[{ns.unik6}]:8080/")
    assert status == 0 and out == b"ok\n", err.decode()


def _host_link_local(ns: Namespace6) -> str:
    out = subprocess.run(["ip", "-n", ns.name, "-6", "-o", "addr", "show", "dev", ns.ifname, "scope", "link"],
                         capture_output=True, text=True, check=True).stdout
    return out.split("inet6 ")[1].split("/")[0]


@needs("curl")
def test_scapy_ipv6_garbage_is_counted_and_dropped_and_curl6_still_works(netns6: Namespace6, tmp_path: Path) -> None:
    http_app()  # skips without examples/http

    async def main() -> None:
        async with unik_stack6(netns6) as stack:
            app = serve_http(stack, tmp_path, {"index.html": b"ok\n"})
            await asyncio.sleep(0.1)
            await _curl6(netns6)
            params = json.dumps({"iface": netns6.ifname, "mac": stack.iface.mac.hex(":"), "unik6": netns6.unik6,
                                 "unik_ll": link_local(stack), "host6": netns6.host6,
                                 "host_ll": _host_link_local(netns6)})
            status, _out, err = await netns6.run(sys.executable, "-c", GARBAGE6, params, timeout=180)
            assert status == 0, err.decode()[-2000:]
            await asyncio.sleep(1.5)
            stats = stack.stats
            assert stats["rx.internal_error"] == 0, dict(stats)
            missing = [reason for reason in REASONS if not stats[reason]]
            assert not missing, (missing, {k: v for k, v in stats.items() if k.split(".")[0] in (
                "ipv6", "icmpv6", "ndp", "ra", "udp")})
            # Problems the sender should hear of got (rate-limited) ICMPv6 errors.
            assert stats["icmpv6.errors_sent"] + stats["icmpv6.rate_limited"] >= 5
            _bounded(stack)
            # The bogus advertisements taught nothing harmful: no route via the spoofer, MTU kept.
            assert stack.ipv6.mtu == stack.iface.mtu
            assert stack.ipv6.dns.servers() == [] and stack.ipv6.dns.search_domains() == ["ok.test"]
            await _curl6(netns6)
            app.cancel()
    run(main(), timeout=300)


def _bounded(stack: TcpipStack) -> None:
    ipv6 = stack.ipv6
    assert len(ipv6.neighbours.entries) <= ipv6.neighbours.size
    assert ipv6.neighbours.incomplete <= ipv6.neighbours.max_incomplete
    reasm = ipv6.reassembler
    assert reasm.bytes <= reasm.max_bytes and len(reasm.datagrams) <= reasm.max_datagrams
    assert len(reasm.dead) <= reasm.max_datagrams
    assert len(ipv6.addresses.entries) <= ipv6.addresses.limit
    assert len(ipv6.slaac.prefixes) <= ipv6.slaac.max_prefixes and len(ipv6.slaac.routers) <= ipv6.slaac.max_routers
