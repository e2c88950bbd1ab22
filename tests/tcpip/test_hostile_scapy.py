"""Hostile input crafted with scapy, sent over a real TAP from a namespace the test creates.

Truncated headers at every length, bad checksums on every layer, bogus header lengths and
options, overlapping fragments, a bounded SYN flood (some from spoofed neighbours, so the
ARP queue fills too), ARP spoof attempts, and RFC 5961 resets (out of window, in window
but not exact, exact) against a live connection.  unik's stack must count each drop by
its reason, never raise out of its receive loop, keep every table within its bound, and
still serve curl afterwards.  (test_kernel.py keeps a raw-socket variant without scapy.)
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from host_tools import needs
from kernel_support import KERNEL, Namespace, http_app, run, scapy_missing, serve_http, unik_stack
from unik_tcpip.stack import TcpipStack

pytestmark = [*KERNEL, pytest.mark.skipif(scapy_missing() is not None, reason=str(scapy_missing()))]

GARBAGE = r"""
import json, random, sys
from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, Raw, checksum, conf, get_if_hwaddr, sendp
conf.verb = 0
p = json.loads(sys.argv[1])
iface, umac, uip, hip = p["iface"], p["mac"], p["unik"], p["host"]
hmac = get_if_hwaddr(iface)
prefix = hip.rsplit(".", 1)[0]
rng = random.Random(11)
eth = Ether(dst=umac, src=hmac)
frames = []
# Truncated headers: every length of an Ethernet/IPv4/TCP SYN, the IPv4 length left as built.
syn = bytes(eth / IP(src=hip, dst=uip) / TCP(sport=40000, dport=8080, flags="S", options=[("MSS", 1460)]))
frames += [syn[:n] for n in range(0, len(syn))]
# ... and TCP/UDP/ICMP headers cut short inside a consistent IPv4 datagram.
for n in range(0, 20):
    frames.append(eth / IP(src=hip, dst=uip, proto=6) / Raw(bytes(TCP(sport=40001, dport=8080))[:n]))
for n in range(0, 8):
    frames.append(eth / IP(src=hip, dst=uip, proto=17) / Raw(bytes(UDP(sport=1, dport=53))[:n]))
    frames.append(eth / IP(src=hip, dst=uip, proto=1) / Raw(bytes(ICMP())[:n]))
frames.append(Ether(dst=umac, src=hmac, type=0x0806) / Raw(b"\x00\x01\x08\x00"))
# Bad checksums on every layer.
for i in range(20):
    frames.append(eth / IP(src=hip, dst=uip, chksum=0x1234 + i) / TCP(sport=40002, dport=8080, flags="S"))
    frames.append(eth / IP(src=hip, dst=uip) / TCP(sport=40003, dport=8080, flags="S", chksum=0x4321 + i))
    frames.append(eth / IP(src=hip, dst=uip) / UDP(sport=40004, dport=53, chksum=0x1111 + i) / b"x")
    frames.append(eth / IP(src=hip, dst=uip) / ICMP(chksum=0x2222 + i) / b"ping")
# Bogus header lengths and options.
frames.append(eth / IP(src=hip, dst=uip, ihl=4) / TCP(dport=8080))
frames.append(eth / IP(src=hip, dst=uip, ihl=15) / Raw(b"\x00" * 8))
frames.append(eth / IP(src=hip, dst=uip, len=10) / TCP(dport=8080))
frames.append(eth / IP(src=hip, dst=uip, len=4000) / TCP(dport=8080))
frames.append(eth / IP(src=hip, dst=uip, version=6) / TCP(dport=8080))
for opts in (b"\x44\x00\x05\x00", b"\x83\x09\x04\x00", b"\x01\x01\x01\x07"):
    # IPv4 options whose length fields are bogus, under a correct header checksum.
    head = bytearray(bytes(IP(src=hip, dst=uip, ihl=6, proto=6, len=44)))[:20] + opts
    head[10:12] = b"\0\0"
    head[10:12] = checksum(bytes(head)).to_bytes(2, "big")
    frames.append(Ether(dst=umac, src=hmac, type=0x0800) / Raw(bytes(head) + bytes(TCP(dport=8080))))
frames.append(eth / IP(src=hip, dst=uip) / TCP(sport=40005, dport=8080, dataofs=15, flags="S"))
frames.append(eth / IP(src=hip, dst=uip) / TCP(sport=40006, dport=8080, dataofs=3, flags="S"))
for raw_opts in (b"\x02\x00\x00\x00", b"\x02\x03\x05\x00", b"\x03\x04\x07\x00", b"\x08\x09" + bytes(10),
                 b"\x05\x03\x00\x00", b"\x01\x01\x01\x13"):
    # Option bytes as the start of the data, the data offset covering them.
    frames.append(eth / IP(src=hip, dst=uip) / TCP(sport=40007, dport=8080, flags="S", dataofs=5 + len(raw_opts) // 4)
                  / Raw(raw_opts))
frames.append(eth / IP(src=hip, dst=uip) / TCP(sport=0, dport=8080, flags="S"))
frames.append(eth / IP(src=hip, dst=uip) / TCP(sport=40008, dport=8080, flags="SF"))
frames.append(eth / IP(src=hip, dst=uip) / UDP(sport=40009, dport=53, len=4) / b"abcd")
frames.append(eth / IP(src=hip, dst=uip) / UDP(sport=40009, dport=53, len=400) / b"abcd")
frames.append(eth / IP(src="224.0.0.1", dst=uip) / TCP(dport=8080, flags="S"))
frames.append(eth / IP(src=uip, dst=uip) / TCP(dport=8080, flags="S"))
# Overlapping fragments: a second fragment rewrites bytes the first one delivered.
for ident in range(100, 140):
    data = bytes(rng.randrange(256) for _ in range(96))
    frames.append(eth / IP(src=hip, dst=uip, id=ident, proto=17, flags="MF", frag=0) / Raw(data[:64]))
    frames.append(eth / IP(src=hip, dst=uip, id=ident, proto=17, flags="MF", frag=4) / Raw(data[32:96]))
# Fragments that never complete (held under the reassembly limits, then expired).
for ident in range(200, 400):
    frames.append(eth / IP(src=hip, dst=uip, id=ident, proto=17, flags="MF", frag=rng.randrange(1, 100))
                  / Raw(b"\x00" * 512))
# ARP spoof attempts.
evil = "02:66:66:66:66:66"
frames.append(Ether(dst="ff:ff:ff:ff:ff:ff", src=evil) / ARP(op=2, hwsrc=evil, psrc=uip, pdst=uip))  # our address
frames.append(Ether(dst=umac, src=hmac) / ARP(op=2, hwsrc=evil, psrc=hip, pdst=uip))  # frame/ARP sender differ
frames.append(Ether(dst=umac, src=evil) / ARP(op=2, hwsrc=evil, psrc=f"{prefix}.77", pdst=uip))  # unsolicited
frames.append(Ether(dst=umac, src=evil) / ARP(op=2, hwsrc="01:00:5e:00:00:01", psrc=hip, pdst=uip))
frames.append(Ether(dst=umac, src=evil) / ARP(op=2, hwsrc=evil, psrc="0.0.0.0", pdst=uip))
frames.append(Ether(dst=umac, src=evil) / ARP(op=2, hwsrc=evil, psrc="239.1.1.1", pdst=uip))
frames.append(Ether(dst=umac, src=evil) / ARP(op=7, hwsrc=evil, psrc=hip, pdst=uip))
frames.append(Ether(dst=umac, src=evil) / ARP(ptype=0x86DD, hwsrc=evil, psrc=hip, pdst=uip))
# A bounded SYN flood: 2000 SYNs from the host (the kernel resets the SYN-ACKs) and 300
# from spoofed neighbours that never answer ARP (their SYN-ACKs wait in the ARP queue).
for port in range(20000, 22000):
    frames.append(eth / IP(src=hip, dst=uip) / TCP(sport=port, dport=8080, flags="S", seq=rng.randrange(2**32),
                                                   options=[("MSS", 1460)]))
for i in range(300):
    frames.append(eth / IP(src=f"{prefix}.{100 + i % 150}", dst=uip)
                  / TCP(sport=30000 + i, dport=8080, flags="S", seq=rng.randrange(2**32)))
sendp(frames, iface=iface)
print(len(frames))
"""

RESETS = r"""
import json, sys
from scapy.all import IP, TCP, Ether, conf, get_if_hwaddr, sendp
conf.verb = 0
p = json.loads(sys.argv[1])
eth = Ether(dst=p["mac"], src=get_if_hwaddr(p["iface"]))
ip = IP(src=p["host"], dst=p["unik"])
tcp = dict(sport=p["sport"], dport=8080, flags="R")
seq = p["seq"]
if p["kind"] == "out_of_window":
    sendp([eth / ip / TCP(seq=(seq + 2**30 + i) % 2**32, **tcp) for i in range(5)], iface=p["iface"])
elif p["kind"] == "in_window":
    sendp([eth / ip / TCP(seq=(seq + 1 + i) % 2**32, **tcp) for i in range(5)], iface=p["iface"])
else:
    sendp([eth / ip / TCP(seq=seq, **tcp)], iface=p["iface"])
"""

CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 8080), timeout=20)
s.sendall(b"GET / HTTP/1.1\r\nHost: unik\r\n\r\n")
got = b""
while not got.endswith(b"ok\n"):
    got += s.recv(4096)
print(s.getsockname()[1], flush=True)
try:
    print("closed" if s.recv(10) == b"" else "data", flush=True)
except ConnectionResetError:
    print("reset", flush=True)
"""


def _params(stack: TcpipStack, ns: Namespace, **more: Any) -> str:
    return json.dumps({"iface": ns.ifname, "mac": stack.iface.mac.hex(":"), "unik": ns.unik, "host": ns.host,
                       **more})


async def _curl(ns: Namespace) -> None:
    status, out, err = await ns.run("curl", "-sS", "--max-time", "20", f"http://{ns.unik}:8080/")
    assert status == 0 and out == b"ok\n", err.decode()


@needs("curl")
def test_scapy_garbage_is_counted_and_dropped_and_curl_still_works(netns: Namespace, tmp_path: Path) -> None:
    http_app()  # skips without examples/http

    async def main() -> None:
        async with unik_stack(netns) as stack:
            app = serve_http(stack, tmp_path, {"index.html": b"ok\n"})
            await asyncio.sleep(0.1)
            await _curl(netns)  # the host's ARP entry is now cached: spoofs must not replace it
            host_mac = stack.iface.arp.entries[bytes(map(int, netns.host.split(".")))][0]
            status, _out, err = await netns.run(sys.executable, "-c", GARBAGE, _params(stack, netns), timeout=120)
            assert status == 0, err.decode()[-2000:]
            await asyncio.sleep(1)
            stats = stack.stats
            assert stats["rx.internal_error"] == 0, dict(stats)
            # (A frame shorter than an Ethernet header never leaves the kernel's packet socket.)
            missing = [reason for reason in (
                "ipv4.truncated", "ipv4.bad_total_len", "ipv4.bad_header_len",
                "ipv4.bad_version", "ipv4.bad_option", "ipv4.bad_checksum", "ipv4.bad_source",
                "ipv4.frag_overlap", "tcp.truncated", "tcp.bad_header_len", "tcp.bad_checksum", "tcp.bad_option",
                "tcp.zero_port", "tcp.bad_flags", "udp.truncated", "udp.bad_length", "udp.bad_checksum",
                "icmp.truncated", "icmp.bad_checksum", "arp.truncated", "arp.address_conflict",
                "arp.sender_mismatch", "arp.multicast_sender", "arp.bad_sender", "arp.bad_op", "arp.unsupported",
            ) if not stats[reason]]
            assert not missing, (missing, dict(stats))
            assert stats["arp.unsolicited"] + stats["arp.not_for_us"] > 0, dict(stats)
            # Every table stayed within its bound.
            tcp, arp, reasm = stack.tcp, stack.iface.arp, stack.iface.reassembler
            assert len(tcp.connections) <= tcp.config.max_connections
            assert all(listener.half_open <= listener.backlog for listener in tcp.listeners.values())
            assert stats["tcp.syn_backlog_full"] > 0 and stats["tcp.syncookies_sent"] > 0, dict(stats)
            assert len(arp.entries) <= arp.size and len(arp.pending) <= arp.max_pending
            assert reasm.bytes <= reasm.max_bytes and len(reasm.datagrams) <= reasm.max_datagrams
            # No spoof replaced the host's MAC; the stack still serves.
            assert stack.iface.arp.entries[bytes(map(int, netns.host.split(".")))][0] == host_mac
            await _curl(netns)
            app.cancel()
    run(main(), timeout=180)


@needs("curl")
def test_scapy_resets_rfc5961(netns: Namespace, tmp_path: Path) -> None:
    """RFC 5961 3.2: a RST outside the window is dropped, one inside it but not at RCV.NXT
    draws a (rate-limited) challenge ACK, and only the exact one resets the connection."""
    http_app()  # skips without examples/http

    async def main() -> None:
        async with unik_stack(netns) as stack:
            app = serve_http(stack, tmp_path, {"index.html": b"ok\n"})
            await asyncio.sleep(0.1)
            async with netns.background(sys.executable, "-c", CLIENT, netns.unik,
                                        stdout=asyncio.subprocess.PIPE) as client:
                assert client.stdout is not None
                sport = int(await asyncio.wait_for(client.stdout.readline(), 20))
                conns = [c for c in stack.tcp.connections.values() if c.remote[1] == sport]
                assert len(conns) == 1
                conn = conns[0]

                async def send(kind: str) -> None:
                    status, _out, err = await netns.run(
                        sys.executable, "-c", RESETS,
                        _params(stack, netns, sport=sport, seq=conn.tcb.rcv_nxt, kind=kind))
                    assert status == 0, err.decode()[-2000:]
                    await asyncio.sleep(0.3)

                unacceptable = stack.stats["tcp.unacceptable"]
                await send("out_of_window")
                assert stack.stats["tcp.unacceptable"] >= unacceptable + 5
                assert not conn.closed and stack.stats["tcp.resets_received"] == 0
                await send("in_window")
                assert conn.stats.challenge_acks + stack.stats["tcp.challenge_acks_limited"] >= 5
                assert conn.stats.challenge_acks >= 1
                assert not conn.closed and stack.stats["tcp.resets_received"] == 0
                await send("exact")
                assert stack.stats["tcp.resets_received"] == 1
                assert conn.closed
                assert conn.key not in stack.tcp.connections
            await _curl(netns)
            app.cancel()
    run(main(), timeout=120)
