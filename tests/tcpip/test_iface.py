"""The interface layer: ARP, IPv4, fragments, ICMP, UDP, over the simulated wire."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tcpip_support import Impairment, Wire, make_stack, pair, run, settle
from unik.devices import TxOffload
from unik_tcpip.iface import HEADROOM, ip_bytes
from unik_tcpip.wire import ArpPacket, EthernetFrame, IcmpPacket, Ipv4Packet, UdpDatagram, arp, icmp
from unik_tcpip.wire.ethernet import BROADCAST


def test_ping_both_ways_resolves_arp() -> None:
    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        rtt = await a.ping("10.0.0.2")
        assert rtt > 0
        assert await b.ping("10.0.0.1", seq=1) > 0
        assert a.iface.arp.lookup(ip_bytes("10.0.0.2"), a.timers.now_ns()) == b.iface.mac
        assert b.stats["icmp.echo_requests"] == 1 and a.stats["icmp.echo_requests"] == 1
        assert a.stats["arp.requests_sent"] == 1  # b learned a from a's request, asked nobody
        assert b.stats["arp.requests_sent"] == 0
    run(main())


def test_gratuitous_arp_on_start() -> None:
    async def main() -> None:
        wire = Wire()
        await make_stack(wire, 1, "10.0.0.1/24")
        await settle(0.01)
        frames = [EthernetFrame.parse(f) for _, f in wire.log]
        garp = [ArpPacket.parse(e.payload) for e in frames if e.ethertype == 0x0806]
        assert len(garp) == 1 and garp[0].spa == garp[0].tpa == ip_bytes("10.0.0.1")
        assert frames[0].dst == BROADCAST
    run(main())


def test_ping_unreachable_host_times_out_and_arp_is_rate_limited() -> None:
    async def main() -> None:
        wire = Wire()
        a = await make_stack(wire, 1, "10.0.0.1/24")
        for seq in range(5):
            with pytest.raises(TimeoutError):
                await a.ping("10.0.0.9", seq=seq, timeout=0.1)
        # Five pings within half a second: one request, the rest wait for the 1 s retry.
        assert a.stats["arp.requests_sent"] == 1
        await settle(5)
        assert a.stats["arp.requests_sent"] == 3  # max_requests, then give up
        assert a.stats["arp.unresolved"] == 5
        assert not a.iface.arp.pending
    run(main())


def _arp_frame(op: int, sha: bytes, spa: str, tha: bytes, tpa: str, dst: bytes = BROADCAST) -> bytes:
    frame = bytearray(42)
    EthernetFrame.emit(frame, dst, sha, 0x0806)
    ArpPacket(op, sha, ip_bytes(spa), tha, ip_bytes(tpa)).emit(frame, 14)
    return bytes(frame)


def test_arp_spoofing_is_not_cached() -> None:
    async def main() -> None:
        wire = Wire()
        a = await make_stack(wire, 1, "10.0.0.1/24")
        attacker = bytes.fromhex("02badbadbad0")
        now = a.timers.now_ns
        # An unsolicited reply about someone else: ignored.
        a.iface.receive(_arp_frame(arp.REPLY, attacker, "10.0.0.7", a.iface.mac, "10.0.0.1", a.iface.mac))
        assert a.iface.arp.lookup(ip_bytes("10.0.0.7"), now()) is None
        assert a.stats["arp.unsolicited"] == 1
        # A claim on our own address: counted, never cached.
        a.iface.receive(_arp_frame(arp.REPLY, attacker, "10.0.0.1", a.iface.mac, "10.0.0.1"))
        assert a.stats["arp.address_conflict"] == 1
        # A sender hardware address that differs from the Ethernet source.
        frame = bytearray(_arp_frame(arp.REQUEST, attacker, "10.0.0.8", bytes(6), "10.0.0.1"))
        frame[6:12] = bytes.fromhex("020000000099")
        a.iface.receive(bytes(frame))
        assert a.stats["arp.sender_mismatch"] == 1
        assert a.iface.arp.lookup(ip_bytes("10.0.0.8"), now()) is None
        # A genuine request for us is answered and its sender cached.
        a.iface.receive(_arp_frame(arp.REQUEST, attacker, "10.0.0.8", bytes(6), "10.0.0.1"))
        assert a.iface.arp.lookup(ip_bytes("10.0.0.8"), now()) == attacker
        await settle(0.01)
        replies = [ArpPacket.parse(EthernetFrame.parse(f).payload) for n, f in wire.log
                   if n == "stack1" and EthernetFrame.parse(f).ethertype == 0x0806]
        assert [r.op for r in replies] == [arp.REQUEST, arp.REPLY]  # the gratuitous ARP, the answer
    run(main())


def test_arp_cache_is_bounded_and_ages() -> None:
    async def main() -> None:
        wire = Wire()
        a = await make_stack(wire, 1, "10.0.0.1/16")
        for i in range(1000):
            sha = bytes([2, 0, 0, 0, i >> 8, i & 255])
            a.iface.receive(_arp_frame(arp.REQUEST, sha, f"10.0.{i >> 8}.{(i & 255) or 1}", bytes(6), "10.0.0.1"))
        assert len(a.iface.arp.entries) == a.iface.arp.size
        assert a.stats["arp.evicted"] > 0
        await settle(61)
        assert not a.iface.arp.entries
    run(main())


def test_udp_echo_and_port_unreachable() -> None:
    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        server = await b.udp.bind(7)
        client = await a.udp.bind()
        assert 49152 <= client.port < 65536
        await client.sendto(b"hello", ("10.0.0.2", 7))
        data, source = await server.recvfrom()
        assert (data, source) == (b"hello", ("10.0.0.1", client.port))
        await server.sendto(data.upper(), source)
        assert (await client.recvfrom()).data == b"HELLO"
        await client.sendto(b"nobody", ("10.0.0.2", 9))
        await settle(0.1)
        assert b.stats["udp.no_port"] == 1 and b.stats["icmp.unreachable_sent"] == 1
        assert a.stats["icmp.errors_received"] == 1
        with pytest.raises(OSError):
            await b.udp.bind(7)
        server.close()
        with pytest.raises(OSError):
            await client.sendto(b"x", ("192.168.1.1", 7))  # no gateway: no route
        assert a.stats["ipv4.no_route"] == 1
    run(main())


@pytest.mark.parametrize("impairment", [Impairment(), Impairment(reorder=0.5, duplicate=0.3)],
                         ids=["clean", "reordered-duplicated"])
def test_udp_fragmentation_and_reassembly(impairment: Impairment) -> None:
    async def main() -> None:
        wire = Wire(seed=3, impairment=impairment)
        a, b = await pair(wire)
        server = await b.udp.bind(9000)
        client = await a.udp.bind()
        payloads = [bytes([i]) * size for i, size in enumerate((1473, 4000, 9000, 65507))]
        for p in payloads:
            await client.sendto(p, ("10.0.0.2", 9000))
        got = [(await server.recvfrom()).data for _ in payloads]
        assert sorted(got) == sorted(payloads)
        assert a.stats["ipv4.fragments_sent"] > 40
        assert b.stats["ipv4.reassembled"] == 4
        await settle(31)  # late duplicates start datagrams that time out
        assert not b.iface.reassembler.datagrams and b.iface.reassembler.bytes == 0
    run(main())


def _fragment(src: str, dst: str, ident: int, offset: int, data: bytes, mf: bool, proto: int = 17) -> bytes:
    frame = bytearray(34 + len(data))
    EthernetFrame.emit(frame, bytes.fromhex("020000000001"), bytes.fromhex("020000000009"), 0x0800)
    Ipv4Packet.emit(frame, 14, src=ip_bytes(src), dst=ip_bytes(dst), proto=proto, payload_len=len(data),
                    ident=ident, mf=mf, frag_offset=offset)
    frame[34:] = data
    return bytes(frame)


def test_fragment_attacks_are_bounded() -> None:
    async def main() -> None:
        wire = Wire()
        a = await make_stack(wire, 1, "10.0.0.1/24")
        recv = a.iface.receive
        # Overlapping fragments (teardrop-like) discard the datagram.
        recv(_fragment("10.0.0.9", "10.0.0.1", 1, 0, b"A" * 64, True))
        recv(_fragment("10.0.0.9", "10.0.0.1", 1, 32, b"B" * 64, True))
        assert a.stats["ipv4.frag_overlap"] == 1 and not a.iface.reassembler.datagrams
        # An exact duplicate is harmless.
        recv(_fragment("10.0.0.9", "10.0.0.1", 2, 0, b"A" * 64, True))
        recv(_fragment("10.0.0.9", "10.0.0.1", 2, 0, b"A" * 64, True))
        assert a.stats["ipv4.frag_duplicate"] == 1
        # A fragment with MF whose length is no multiple of 8 is malformed.
        recv(_fragment("10.0.0.9", "10.0.0.1", 3, 0, b"A" * 13, True))
        assert a.stats["ipv4.frag_bad_length"] == 1
        # Thousands of incomplete datagrams: the table and memory stay bounded.
        for ident in range(10, 2010):
            recv(_fragment("10.0.0.9", "10.0.0.1", ident, 8, b"C" * 1024, True))
        r = a.iface.reassembler
        assert len(r.datagrams) <= r.max_datagrams and r.bytes <= r.max_bytes
        assert a.stats["ipv4.frag_evicted"] > 0
        # Time limit: what remains expires.
        await settle(31)
        assert not r.datagrams and r.bytes == 0 and a.stats["ipv4.frag_timeout"] > 0
        # Too many fragments of one datagram.
        for i in range(100):
            recv(_fragment("10.0.0.9", "10.0.0.1", 5000, 8 * i, b"D" * 8, True))
        assert a.stats["ipv4.frag_too_many"] == 1
    run(main())


def test_unknown_protocol_gets_protocol_unreachable() -> None:
    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        await a.ping("10.0.0.2")  # resolve ARP
        packet = bytearray(HEADROOM + 8)
        assert a.iface.ip_output(ip_bytes("10.0.0.2"), 253, packet)
        await settle(0.1)
        assert b.stats["ipv4.unknown_protocol"] == 1
        errors = []
        for name, frame in wire.log:
            eth = EthernetFrame.parse(frame)
            if name == "stack2" and eth.ethertype == 0x0800:
                ip = Ipv4Packet.parse(eth.payload)
                if ip.proto == 1:
                    msg = IcmpPacket.parse(ip.payload)
                    if msg.type == icmp.DEST_UNREACHABLE:
                        errors.append(msg.code)
        assert errors == [icmp.PROTOCOL_UNREACHABLE]
    run(main())


def test_routing_uses_gateway_off_link() -> None:
    async def main() -> None:
        wire = Wire()
        a = await make_stack(wire, 1, "10.0.0.1/24", gateway="10.0.0.254")
        gw = await make_stack(wire, 2, "10.0.0.254/24")
        assert a.iface.route(ip_bytes("8.8.8.8")) == ip_bytes("10.0.0.254")
        assert a.iface.route(ip_bytes("10.0.0.7")) == ip_bytes("10.0.0.7")
        endpoint = await a.udp.bind()
        await endpoint.sendto(b"x", ("192.0.2.1", 53))
        await settle(0.1)
        # The datagram went to the gateway's MAC (which, not being a router, drops it).
        sent = [EthernetFrame.parse(f) for n, f in wire.log if n == "stack1"]
        udp_frames = [e for e in sent if e.ethertype == 0x0800 and Ipv4Packet.parse(e.payload).proto == 17]
        assert [e.dst for e in udp_frames] == [gw.iface.mac]
        assert gw.stats["ipv4.not_for_us"] == 1
    run(main())


def test_broadcast_ping_is_ignored() -> None:
    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        msg = IcmpPacket.build(icmp.ECHO_REQUEST, 0, struct.pack("!HH", 1, 1), b"x", headroom=HEADROOM)
        a.iface.ip_output(ip_bytes("10.0.0.255"), 1, msg)
        await settle(0.1)
        assert b.stats["icmp.echo_broadcast"] == 1 and b.stats["icmp.echo_requests"] == 0
    run(main())


def _valid_udp_frame() -> bytes:
    dgram = UdpDatagram.build(ip_bytes("10.0.0.9"), ip_bytes("10.0.0.1"), 1000, 7, b"payload", headroom=34)
    Ipv4Packet.emit(dgram, 14, src=ip_bytes("10.0.0.9"), dst=ip_bytes("10.0.0.1"), proto=17,
                    payload_len=len(dgram) - 34, ident=1)
    EthernetFrame.emit(dgram, bytes.fromhex("020000000001"), bytes.fromhex("020000000009"), 0x0800)
    return bytes(dgram)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=100),
    st.tuples(st.integers(0, 60), st.integers(0, 255)).map(
        lambda t: _valid_udp_frame()[:t[0]] + bytes([t[1]]) + _valid_udp_frame()[t[0] + 1:]),
    st.integers(0, 60).map(lambda n: _valid_udp_frame()[:n]),
))
def test_hostile_frames_are_counted_and_dropped(frame: bytes) -> None:
    async def main() -> None:
        wire = Wire(keep_log=False)
        a, b = await pair(wire)
        a.iface.receive(frame)
        a.iface.receive(frame)
        assert a.stats["rx.internal_error"] == 0
        # The stack still serves afterwards.
        assert await b.ping("10.0.0.1") > 0
    run(main())


def test_loopback_to_own_address() -> None:
    async def main() -> None:
        wire = Wire()
        a = await make_stack(wire, 1, "10.0.0.1/24")
        server = await a.udp.bind(5000)
        client = await a.udp.bind()
        await client.sendto(b"self", ("10.0.0.1", 5000))
        assert (await asyncio.wait_for(server.recvfrom(), 1)).data == b"self"
        assert await a.ping("10.0.0.1") >= 0
    run(main())


def test_stack_satisfies_the_device_protocols() -> None:
    from unik.devices import TCP, UDP, FlowReader, FlowWriter, Stack, UDPEndpoint

    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        assert isinstance(a, Stack) and isinstance(a.tcp, TCP) and isinstance(a.udp, UDP)
        assert a.ipv4.address == "10.0.0.1" and a.ipv4.prefix == 24 and a.ipv4.gateway is None
        endpoint = await a.udp.bind()
        assert isinstance(endpoint, UDPEndpoint)

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        await b.tcp.start_server(handler, 80)
        reader, writer = await a.tcp.connect("10.0.0.2", 80)
        assert isinstance(reader, FlowReader) and isinstance(writer, FlowWriter)
        await a.disconnect()
        from unik.errors import DeviceClosed
        with pytest.raises(DeviceClosed):
            await a.ping("10.0.0.2")
        with pytest.raises(DeviceClosed):
            await endpoint.recvfrom()
    run(main())


def test_device_errors_do_not_kill_the_stack() -> None:
    from unik.errors import DeviceClosed, DeviceError

    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        net = a.network
        real_read, real_write = net.read, net.write
        failures = iter([DeviceError("transient"), DeviceError("again")])

        async def flaky_read(limit: int = 64) -> list[bytes]:
            for exc in failures:
                raise exc
            return await real_read(limit)

        net.read = flaky_read  # type: ignore[method-assign]
        await settle(0.1)
        assert await b.ping("10.0.0.1") > 0 and a.stats["rx.read_errors"] == 2

        async def closed_write(frame: bytes | bytearray | memoryview, offload: TxOffload | None = None) -> None:
            raise DeviceClosed("gone")

        net.write = closed_write  # type: ignore[method-assign]
        with pytest.raises(TimeoutError):
            await a.ping("10.0.0.2", seq=5, timeout=0.5)
        assert a.stats["tx.closed"] >= 1
        net.write = real_write  # type: ignore[method-assign]
        assert await a.ping("10.0.0.2", seq=6) > 0
    run(main())


def test_a_network_without_the_fast_path_is_visibly_slow(caplog: pytest.LogCaptureFixture) -> None:
    """The simulated wire's ports only ``read``/``write``: the stack says it awaits them."""
    async def main() -> None:
        with caplog.at_level("INFO", logger="unik_tcpip.iface"):
            stack = await make_stack(Wire(), 1, "10.0.0.1/24")
        assert stack.iface.polled is None and stack.stats["iface.slow_path"] == 1
        assert "is not a PollableNetwork" in caplog.text
    run(main())


def test_the_vm_packet_ring_declares_the_fast_path() -> None:
    from unik.devices import PollableNetwork
    from unik_fdio.packet import PacketNetwork

    class Ring:
        def __init__(self) -> None:
            self.sent: list[bytes] = []

        def fileno(self) -> int:
            return 7

        def send(self, frame: bytes) -> bool:
            self.sent.append(bytes(frame))
            return True

    ring = Ring()
    network = PacketNetwork("service", "eth0", ring, bytes(6), 1500)
    assert isinstance(network, PollableNetwork)
    assert network.fileno() == 7 and network.send(bytearray(60)) and ring.sent == [bytes(60)]
    assert network.stats.tx_frames == 1
