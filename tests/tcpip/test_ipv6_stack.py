"""IPv6 between unik stacks on a simulated Ethernet, in virtual time: DAD, dual listeners, PMTU, NUD,
SLAAC's rules, transfers under impairment."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest
from tcpip_support import Impairment, LoopSleep, SeededRandom, VirtualClock, Wire, mac, run, settle
from unik_tcpip.addr import ip_bytes
from unik_tcpip.checksum import checksum, pseudo_header_sum
from unik_tcpip.ipv6 import icmpv6, wire
from unik_tcpip.stack import TcpipStack, parse_ipv4, parse_ipv6

A6, B6 = "2001:db8::1", "2001:db8::2"


async def stack6(w: Wire, n: int, ipv6: str | None, mtu: int = 1500) -> TcpipStack:
    """A started dual stack on ``w`` with 10.0.0.n/24 and ``ipv6`` (ADDR/PREFIX or None)."""
    static, gateway = parse_ipv6(ipv6, None)
    stack = TcpipStack(w.port(mac(n), mtu, name=f"stack{n}"), VirtualClock(), LoopSleep(), SeededRandom(n),
                       parse_ipv4(f"10.0.0.{n}/24", None), ipv6=static, ipv6_gateway=gateway)
    stack.start()
    return stack


async def pair6(w: Wire, mtu: int = 1500) -> tuple[TcpipStack, TcpipStack]:
    a = await stack6(w, 1, f"{A6}/64", mtu)
    b = await stack6(w, 2, f"{B6}/64", mtu)
    await settle(3)  # DAD
    assert a.ipv6.owns(ip_bytes(A6)) and b.ipv6.owns(ip_bytes(B6))
    return a, b


def test_a_duplicate_address_is_detected_and_not_used() -> None:
    async def main() -> None:
        w = Wire()
        a = await stack6(w, 1, f"{A6}/64")
        await settle(3)
        b = await stack6(w, 2, f"{A6}/64")  # the same address: a's defends it
        await settle(3)
        assert a.ipv6.owns(ip_bytes(A6)) and not b.ipv6.owns(ip_bytes(A6))
        assert b.stats["ipv6.dad_duplicate"] == 1 and ip_bytes(A6) not in b.ipv6.addresses.entries
        assert b.ipv6.addresses.link_local() is not None  # its link-local address is its own
    run(main())


def test_a_dual_listener_sees_each_peers_family_and_a_single_family_one_refuses_the_other() -> None:
    async def main() -> None:
        a, b = await pair6(Wire())
        peers: list[tuple[tuple[Any, ...], int]] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peers.append((writer.get_extra_info("peername"), writer.get_extra_info("family")))
            writer.write(await reader.readexactly(5))
            writer.close()

        await b.tcp.start_server(handler, 80)
        for host in ("10.0.0.2", B6):
            reader, writer = await a.tcp.connect(host, 80)
            writer.write(b"hello")
            assert await reader.read() == b"hello"
            writer.close()
        assert [family for _peer, family in peers] == [socket.AF_INET, socket.AF_INET6]
        assert peers[1][0][:2] == (A6, peers[1][0][1]) and len(peers[1][0]) == 4
        await b.tcp.start_server(handler, 81, family=socket.AF_INET)
        with pytest.raises(ConnectionRefusedError):
            await a.tcp.connect(B6, 81)
        reader, writer = await a.tcp.connect("10.0.0.2", 81)
        writer.write(b"four!")
        assert await reader.read() == b"four!"
    run(main())


@pytest.mark.parametrize(("loss", "dup", "reorder"), [(0.03, 0.03, 0.2), (0, 0, 0)], ids=["impaired", "clean"])
def test_transfer_over_ipv6_arrives_once_in_order(loss: float, dup: float, reorder: float) -> None:
    async def main() -> None:
        w = Wire(seed=3, impairment=Impairment(loss=loss, duplicate=dup, reorder=reorder))
        a, b = await pair6(w)
        body = bytes(range(256)) * 2000
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            done.set_result(await reader.read())
            writer.close()

        await b.tcp.start_server(handler, 5001)
        _reader, writer = await a.tcp.connect(B6, 5001)
        writer.write(body)
        writer.write_eof()
        assert await done == body
        assert b.stats["ipv6.rx"] > 300 and b.stats["ipv4.rx"] == 0
    run(main())


def test_packet_too_big_lowers_the_path_mtu_and_the_connections_mss() -> None:
    async def main() -> None:
        a, b = await pair6(Wire())

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()

        await b.tcp.start_server(handler, 5002)
        _reader, writer = await a.tcp.connect(B6, 5002)
        conn = writer.get_extra_info("tcp_connection")
        assert conn.tcb.snd_mss == 1500 - 40 - 20
        # A router on the way says 1400 (RFC 4443 3.2), quoting a segment in flight.
        writer.write(b"x" * 3000)
        quoted = bytearray(48)
        quoted[0] = 0x60
        quoted[6] = wire.TCP
        quoted[8:24], quoted[24:40] = ip_bytes(A6), ip_bytes(B6)
        quoted[40:48] = struct.pack("!HHI", conn.local[1], 5002, conn.tcb.snd_una)
        ptb = _icmp_frame(b, a, icmpv6.PACKET_TOO_BIG, struct.pack("!I", 1400) + bytes(quoted), src=B6)
        a.iface.receive(ptb)
        assert a.ipv6.path_mtu(ip_bytes(B6)) == 1400 and a.stats["icmpv6.pmtu_reduced"] == 1
        assert conn.tcb.snd_mss == 1400 - 40 - 20 and a.stats["tcp.pmtu_reduced"] == 1
        # Below the IPv6 minimum: ignored (RFC 8201 4).
        a.iface.receive(_icmp_frame(b, a, icmpv6.PACKET_TOO_BIG, struct.pack("!I", 600) + bytes(quoted), src=B6))
        assert a.stats["icmpv6.ptb_too_small"] == 1 and a.ipv6.path_mtu(ip_bytes(B6)) == 1400
    run(main())


def _icmp_frame(sender: TcpipStack, to: TcpipStack, type_: int, body: bytes, *, src: str, dst: str = A6,
                hop_limit: int = 64) -> bytes:
    s, d = ip_bytes(src), ip_bytes(dst)
    msg = bytearray((type_, 0, 0, 0)) + body
    msg[2:4] = checksum(bytes(msg), pseudo_header_sum(s, d, 58, len(msg))).to_bytes(2, "big")
    head = struct.pack("!IHBB16s16s", 6 << 28, len(msg), 58, hop_limit, s, d)
    return to.iface.mac + sender.iface.mac + b"\x86\xdd" + head + bytes(msg)


def test_a_neighbour_that_stops_answering_is_probed_then_forgotten() -> None:
    async def main() -> None:
        w = Wire()
        a, _b = await pair6(w)
        await a.ping(B6)
        entry = a.ipv6.neighbours.entries[ip_bytes(B6)]
        assert entry.state == "reachable"
        w.tamper = lambda port, frame: None if port.name == "stack2" else frame  # b goes silent
        await settle(40)  # past the reachable time: STALE
        with pytest.raises(TimeoutError):
            await a.ping(B6, timeout=1)  # STALE -> DELAY
        await settle(10)  # DELAY (5 s) -> PROBE: three unicast solicitations, one a second
        assert ip_bytes(B6) not in a.ipv6.neighbours.entries and a.stats["ndp.unreachable"] == 1
    run(main())


def test_router_advertisements_configure_slaac_routes_and_dns_within_their_rules() -> None:
    async def main() -> None:
        w = Wire()
        a = await stack6(w, 1, None)
        router = await stack6(w, 9, None)
        await settle(3)
        router_ll = router.ipv6.addresses.link_local()
        assert router_ll is not None
        prefix = ip_bytes("2001:db8:5::")
        options = (bytes((3, 4, 64, 0xC0)) + struct.pack("!III", 7200, 3600, 0) + prefix
                   + bytes((25, 3, 0, 0)) + struct.pack("!I", 600) + ip_bytes("2001:db8:5::53")
                   + bytes((31, 2, 0, 0)) + struct.pack("!I", 600) + b"\x04test\x00\x00\x00")
        body = bytes((64, 0)) + struct.pack("!HII", 1800, 0, 0) + options
        dst = "ff02::1"
        frame = _icmp_frame(router, a, icmpv6.ROUTER_ADVERT, body, src=str(_text(router_ll)), dst=dst, hop_limit=255)
        frame = b"\x33\x33\x00\x00\x00\x01" + frame[6:]
        changes: list[list[str]] = []
        a.ipv6.dns.subscribe(lambda: changes.append(a.ipv6.dns.servers()))
        a.iface.receive(frame)
        await settle(3)  # DAD of the SLAAC address
        slaac = [e for e in a.ipv6.addresses if e.origin == "slaac"]
        assert len(slaac) == 1 and slaac[0].state == "preferred" and slaac[0].address[:8] == prefix[:8]
        assert a.ipv6.slaac.default_router() == router_ll
        assert a.ipv6.dns.servers() == ["2001:db8:5::53"] and a.ipv6.dns.search_domains() == ["test"]
        assert changes == [["2001:db8:5::53"]]
        assert socket.AF_INET6 in a.families() and "2001:db8:5::53" in a.dns_servers()
        assert a.ipv6.source_for(ip_bytes("2001:db8:99::1")) == slaac[0].address
        assert a.ipv6.source_for(router_ll) == a.ipv6.addresses.link_local()
    run(main())


def _text(raw: bytes) -> str:
    from unik_tcpip.addr import ip_text
    return ip_text(raw)


def test_a_large_udp_datagram_is_fragmented_and_reassembled() -> None:
    async def main() -> None:
        a, b = await pair6(Wire(seed=2, impairment=Impairment(reorder=0.5)), mtu=1280)
        server = await b.udp.bind(9999)
        client = await a.udp.bind()
        data = bytes(range(256)) * 30
        await client.sendto(data, (B6, 9999))
        got = await asyncio.wait_for(server.recvfrom(), 5)
        assert got.data == data and got.source[:2] == (A6, client.port)
        assert a.stats["ipv6.fragments_sent"] == 7 and b.stats["ipv6.reassembled"] == 1
    run(main())
