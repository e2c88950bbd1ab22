"""TCP over the simulated wire: handshakes, transfers, closes, hostile segments."""

from __future__ import annotations

import asyncio
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tcpip_support import Impairment, Wire, make_stack, pair, run, settle
from unik.devices import FlowWriter
from unik_tcpip.stack import TcpipStack
from unik_tcpip.tcp import State, TcpConfig, TcpConnection


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


def conn_of(writer: FlowWriter) -> TcpConnection:
    conn = writer.get_extra_info("tcp_connection")
    assert isinstance(conn, TcpConnection)
    return conn


def test_connect_echo_close() -> None:
    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        server = await b.tcp.start_server(echo, 7)
        reader, writer = await a.tcp.connect("10.0.0.2", 7)
        assert writer.get_extra_info("peername") == ("10.0.0.2", 7)
        writer.write(b"hello, unik\n")
        assert await reader.readline() == b"hello, unik\n"
        conn = conn_of(writer)
        assert conn.state == State.ESTABLISHED
        assert conn.tcb.ts_ok and conn.tcb.sack_ok and conn.tcb.snd_wscale == conn.tcb.rcv_wscale == a.tcp.rcv_wscale
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        assert conn.state == State.TIME_WAIT  # type: ignore[comparison-overlap]  # the active closer waits 2 MSL
        await settle(61)
        assert not a.tcp.connections and not b.tcp.connections
        assert conn.stats.srtt is not None and conn.stats.retransmits == 0
        server.close()
        await server.wait_closed()
    run(main())


def test_connection_refused_and_no_route() -> None:
    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        with pytest.raises(ConnectionRefusedError):
            await a.tcp.connect("10.0.0.2", 81)
        assert b.stats["tcp.no_connection"] == 1 and b.stats["tcp.resets_sent"] == 1
        with pytest.raises(OSError, match="no route"):
            await a.tcp.connect("192.0.2.1", 80)
        with pytest.raises(OSError, match="no DNS server is known"):  # a name, and nobody to ask
            await a.tcp.connect("example.com", 80)
    run(main())


def test_connect_timeout_is_bounded() -> None:
    async def main() -> None:
        wire = Wire()
        a, _b = await pair(wire)
        wire.tamper = lambda _port, _frame: None  # a dead wire
        start = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await a.tcp.connect("10.0.0.2", 80)
        # RFC 6298 5.5 back-off in virtual time: 1 + 2 + 4 + 8 + 16 + 32 + 60 (the 60 s cap).
        assert asyncio.get_running_loop().time() - start == pytest.approx(123, abs=0.1)
        assert not a.tcp.connections
    run(main())


async def _transfer(wire: Wire, up: bytes, down: bytes, cfg: TcpConfig | None = None,
                    chunk: int = 10000, mtu: int = 1500) -> tuple[TcpConnection, TcpConnection]:
    """Send ``up`` client->server and ``down`` server->client at once; both half-close."""
    a, b = await pair(wire, cfg, cfg, mtu=mtu)
    done: asyncio.Future[tuple[bytes, TcpConnection]] = asyncio.get_running_loop().create_future()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def send() -> None:
            for i in range(0, len(down), chunk):
                writer.write(down[i:i + chunk])
                await writer.drain()
            writer.write_eof()
        sender = asyncio.ensure_future(send())
        got = await reader.read()
        await sender
        done.set_result((got, conn_of(writer)))
        writer.close()
        await writer.wait_closed()

    await b.tcp.start_server(handler, 5001)
    reader, writer = await a.tcp.connect("10.0.0.2", 5001)

    async def send_up() -> None:
        for i in range(0, len(up), chunk):
            writer.write(up[i:i + chunk])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.ensure_future(send_up())
    got_down = await reader.read()
    await sender
    got_up, server_conn = await done
    writer.close()
    await writer.wait_closed()
    assert got_up == up, "client->server bytes differ"
    assert got_down == down, "server->client bytes differ"
    client_conn = conn_of(writer)
    await settle(130)  # TIME-WAIT (2 MSL) and any FIN retransmissions end
    assert client_conn.state == State.CLOSED and server_conn.state == State.CLOSED
    assert not a.tcp.connections and not b.tcp.connections
    return client_conn, server_conn


def _payload(n: int, seed: int) -> bytes:
    import random
    return random.Random(seed).randbytes(n)


def test_bulk_transfer_clean_wire() -> None:
    async def main() -> None:
        client, server = await _transfer(Wire(), _payload(2_000_000, 1), _payload(300_000, 2))
        assert client.stats.retransmits == 0 and server.stats.retransmits == 0
        assert client.stats.bytes_out == 2_000_000 and server.stats.bytes_in == 2_000_000
    run(main())


@pytest.mark.parametrize("pure", [False, True], ids=["c-checksum", "pure-checksum"])
def test_transfer_both_checksum_implementations(pure: bool) -> None:
    from unik_tcpip import checksum

    async def main() -> None:
        await _transfer(Wire(seed=5, impairment=Impairment(loss=0.02)), _payload(200_000, 3), _payload(50_000, 4))
    checksum.use_pure(pure)
    try:
        run(main())
    finally:
        checksum.use_pure(False)


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
@pytest.mark.parametrize(("loss", "dup", "reorder"), [(0.05, 0, 0), (0, 0.1, 0), (0, 0, 0.3), (0.03, 0.03, 0.2)],
                         ids=["loss", "duplication", "reordering", "all"])
def test_transfer_impaired(loss: float, dup: float, reorder: float, cc: str) -> None:
    async def main() -> None:
        wire = Wire(seed=11, impairment=Impairment(loss=loss, duplicate=dup, reorder=reorder))
        client, server = await _transfer(wire, _payload(500_000, 5), _payload(100_000, 6),
                                         TcpConfig(congestion_control=cc))
        assert client.tcb.cc.name == cc
        if loss:
            assert client.stats.retransmits > 0
        if reorder:
            assert server.stats.out_of_order > 0
    run(main())


class Recorder(asyncio.Protocol):
    """An asyncio.Protocol that records what happens to it."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False
        self.lost: list[BaseException | None] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool:
        self.eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


def test_simultaneous_open_and_close() -> None:
    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        await a.ping("10.0.0.2")  # resolve ARP so that the SYNs cross on the wire
        pa, pb = Recorder(), Recorder()
        (ta, _), (tb, _) = await asyncio.gather(
            a.tcp.create_connection(lambda: pa, "10.0.0.2", 6000, local_port=5000),
            b.tcp.create_connection(lambda: pb, "10.0.0.1", 5000, local_port=6000),
        )
        assert a.stats["tcp.simultaneous_opens"] == 1 and b.stats["tcp.simultaneous_opens"] == 1
        assert ta.state == tb.state == State.ESTABLISHED
        ta.write(b"from a")
        tb.write(b"from b")
        await settle(0.1)
        assert (bytes(pa.data), bytes(pb.data)) == (b"from b", b"from a")
        # Simultaneous close: FIN-WAIT-1 -> CLOSING -> TIME-WAIT on both sides (RFC 9293 figure 13).
        ta.close()
        tb.close()
        await settle(0.1)
        assert ta.state == tb.state == State.TIME_WAIT  # type: ignore[comparison-overlap]
        # As with asyncio transports, a closed transport reports no eof_received.
        assert pa.lost == [None] and pb.lost == [None] and not pa.eof and not pb.eof
        await settle(61)
        assert ta.state == tb.state == State.CLOSED
    run(main())


def test_half_close_keeps_the_other_direction() -> None:
    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        states: list[State] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            request = await reader.read()  # until the client's FIN
            await asyncio.sleep(5)
            states.append(conn_of(writer).state)
            writer.write(request[::-1] * 10000)
            writer.close()

        await b.tcp.start_server(handler, 80)
        reader, writer = await a.tcp.connect("10.0.0.2", 80)
        writer.write(b"0123456789")
        writer.write_eof()
        with pytest.raises(RuntimeError):
            writer.write(b"more")
        await asyncio.sleep(1)
        assert conn_of(writer).state == State.FIN_WAIT_2
        assert await reader.read() == b"9876543210" * 10000
        assert states == [State.CLOSE_WAIT]
        assert conn_of(writer).state == State.TIME_WAIT
    run(main())


def test_protocol_factory_runs_unchanged() -> None:
    class Upper(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data.upper())

        def eof_received(self) -> None:
            self.transport.close()

    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        server = await b.tcp.create_server(Upper, 9)
        reader, writer = await a.tcp.connect("10.0.0.2", 9)
        writer.write(b"shout")
        writer.write_eof()
        assert await reader.read() == b"SHOUT"
        server.close()
        with pytest.raises(ConnectionRefusedError):
            await a.tcp.connect("10.0.0.2", 9)
    run(main())


def _inject_tcp(wire: Wire, to: TcpipStack, src: str, sport: int, dport: int, seq: int, ack: int,
                flags: int, payload: bytes = b"", options: bytes = b"", window: int = 65535) -> None:
    from unik_tcpip.iface import ip_bytes
    from unik_tcpip.wire import EthernetFrame, Ipv4Packet, TcpSegment

    dst = to.iface.address
    seg = TcpSegment.build(ip_bytes(src), dst, sport, dport, seq, ack, flags, window, options, payload,
                           headroom=34)
    Ipv4Packet.emit(seg, 14, src=ip_bytes(src), dst=dst, proto=6, payload_len=len(seg) - 34, ident=0)
    EthernetFrame.emit(seg, to.iface.mac, bytes.fromhex("020000000009"), 0x0800)
    wire.inject(bytes(seg), to=to.network)  # type: ignore[arg-type]


def test_rfc5961_resets_and_syns() -> None:
    from unik_tcpip.wire.tcp import ACK, RST, SYN

    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        await b.tcp.start_server(echo, 7)
        reader, writer = await a.tcp.connect("10.0.0.2", 7)
        conn = conn_of(writer)
        rport, lport = conn.remote[1], conn.local[1]
        # Out of window: dropped silently.
        _inject_tcp(wire, a, "10.0.0.2", rport, lport, (conn.tcb.rcv_nxt + 10_000_000) & 0xFFFFFFFF, 0, RST)
        # In window but not exact: a challenge ACK, the connection survives (RFC 5961 3.2).
        _inject_tcp(wire, a, "10.0.0.2", rport, lport, conn.tcb.rcv_nxt + 100, 0, RST)
        # A SYN on an established connection: a challenge ACK (RFC 5961 4.2).
        _inject_tcp(wire, a, "10.0.0.2", rport, lport, conn.tcb.rcv_nxt + 5, 0, SYN)
        # An ACK for data never sent: a challenge ACK (RFC 5961 5.2).
        _inject_tcp(wire, a, "10.0.0.2", rport, lport, conn.tcb.rcv_nxt, conn.tcb.snd_nxt + 5000, ACK)
        await settle(0.1)
        assert conn.stats.challenge_acks == 3 and a.stats["tcp.unacceptable"] == 1
        writer.write(b"still alive")
        assert await reader.readexactly(11) == b"still alive"
        # The exact sequence number resets.
        _inject_tcp(wire, a, "10.0.0.2", rport, lport, conn.tcb.rcv_nxt, 0, RST)
        with pytest.raises(ConnectionResetError):
            await reader.read()
        assert conn.state == State.CLOSED and not a.tcp.connections
    run(main())


@pytest.mark.parametrize("cookies", [False, True], ids=["drop", "syn-cookies"])
def test_syn_flood_is_bounded(cookies: bool) -> None:
    from unik_tcpip.wire.tcp import ACK, SYN

    async def main() -> None:
        wire = Wire(keep_log=False)
        a, b = await pair(wire, tcp_b=TcpConfig(syn_backlog=64, syn_cookies=cookies))
        await b.tcp.start_server(echo, 80)
        for port in range(1000, 1500):
            _inject_tcp(wire, b, "10.0.0.9", port, 80, port * 7919, 0, SYN)
        await settle(0.1)
        assert len(b.tcp.connections) == 64 and b.stats["tcp.syn_backlog_full"] == 436
        assert len(b.iface.arp.pending) <= b.iface.arp.max_pending
        if cookies:
            # RFC 4987 3.6: the full backlog answers with cookies, keeping no state...
            assert b.stats["tcp.syncookies_sent"] == 436 and len(b.tcp.connections) == 64
            # ... and a real client completes its handshake through one.
            reader, writer = await a.tcp.connect("10.0.0.2", 80)
            writer.write(b"via cookie")
            assert await reader.readexactly(10) == b"via cookie"
            assert b.stats["tcp.syncookies_ok"] == 1
            peer = b.tcp.connections[(b.iface.address, 80, a.iface.address, conn_of(writer).local[1])]
            assert peer.tcb.snd_mss == 1460 and not peer.tcb.ts_ok and peer.tcb.snd_wscale == 0
            writer.close()
            # An ACK with a forged cookie is refused with a RST.
            _inject_tcp(wire, b, "10.0.0.9", 4242, 80, 1001, 123456, ACK)
            await settle(0.1)
            assert b.stats["tcp.syncookies_failed"] == 1 and b.stats["tcp.syncookies_ok"] == 1
        else:
            with pytest.raises(TimeoutError):  # the backlog is full: our SYNs are dropped too
                await asyncio.wait_for(a.tcp.connect("10.0.0.2", 80), 2)
        await settle(200)  # SYN-RECEIVED gives up after its retries
        assert not b.tcp.connections and b.tcp.listeners[80].half_open == 0
        reader, writer = await a.tcp.connect("10.0.0.2", 80)
        writer.write(b"served")
        assert await reader.readexactly(6) == b"served"
    run(main())


def test_zero_window_probing() -> None:
    async def main() -> None:
        wire = Wire()
        cfg = TcpConfig(rcv_buf=32768)
        a, b = await pair(wire, cfg, cfg)
        got = bytearray()

        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(30)  # let the window close
            while chunk := await reader.read(65536):
                got.extend(chunk)
            writer.close()

        await b.tcp.start_server(slow, 80)
        reader, writer = await a.tcp.connect("10.0.0.2", 80)
        data = _payload(400_000, 9)
        writer.write(data)
        await asyncio.sleep(20)
        conn = conn_of(writer)
        assert conn.tcb.snd_wnd == 0 and a.stats["tcp.window_probes"] > 0
        await writer.drain()
        writer.write_eof()
        assert await reader.read() == b""
        assert bytes(got) == data
    run(main())


def test_nagle_coalesces_small_writes_and_nodelay_does_not() -> None:
    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        sink: list[bytes] = []

        async def drain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sink.append(await reader.read())
            writer.close()

        await b.tcp.start_server(drain, 80)
        for nodelay in (False, True):
            _reader, writer = await a.tcp.connect("10.0.0.2", 80)
            conn = conn_of(writer)
            conn.set_nodelay(nodelay)
            before = conn.stats.segments_out
            for i in range(100):
                writer.write(bytes([i]))
            await asyncio.sleep(1)
            sent = conn.stats.segments_out - before
            if nodelay:
                assert sent == 100
            else:
                assert sent <= 3  # one byte, then the rest once it is acknowledged
            writer.close()
            await asyncio.sleep(1)
        assert sink == [bytes(range(100))] * 2
    run(main())


def test_delayed_ack_acknowledges_every_second_segment() -> None:
    async def main() -> None:
        client, server = await _transfer(Wire(), _payload(1_000_000, 3), b"")
        assert server.stats.segments_out < 0.6 * client.stats.segments_out
    run(main())


@pytest.mark.parametrize("disabled", ["timestamps", "window_scaling", "sack"])
def test_option_negotiation_falls_back(disabled: str) -> None:
    async def main() -> None:
        cfg_b = TcpConfig(**{disabled: False})  # type: ignore[arg-type]
        wire = Wire()
        a, b = await pair(wire, None, cfg_b)
        await b.tcp.start_server(echo, 7)
        reader, writer = await a.tcp.connect("10.0.0.2", 7)
        conn = conn_of(writer)
        peer = next(iter(b.tcp.connections.values()))
        for c in (conn, peer):
            if disabled == "timestamps":
                assert not c.tcb.ts_ok
            elif disabled == "window_scaling":
                assert c.tcb.snd_wscale == c.tcb.rcv_wscale == 0
            else:
                assert not c.tcb.sack_ok
        data = _payload(300_000, 4)
        writer.write(data)
        assert await reader.readexactly(len(data)) == data
    run(main())


def test_paws_drops_old_duplicates() -> None:
    from unik_tcpip.wire import TcpOptions
    from unik_tcpip.wire.tcp import ACK

    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        await b.tcp.start_server(echo, 7)
        reader, writer = await a.tcp.connect("10.0.0.2", 7)
        writer.write(b"x")
        await reader.readexactly(1)
        conn = conn_of(writer)
        old = TcpOptions(timestamp=((conn.tcb.ts_recent - 1000) & 0xFFFFFFFF, 0)).to_bytes()
        _inject_tcp(wire, a, "10.0.0.2", conn.remote[1], conn.local[1], conn.tcb.rcv_nxt, conn.tcb.snd_una, ACK,
                    b"stale", old)
        await settle(0.1)
        assert a.stats["tcp.paws_rejected"] == 1
        writer.write(b"y")
        assert await reader.readexactly(1) == b"y"
    run(main())


def test_sack_blocks_describe_out_of_order_data() -> None:
    from unik_tcpip.wire import EthernetFrame, Ipv4Packet, TcpSegment

    async def main() -> None:
        wire = Wire(seed=2, impairment=Impairment(loss=0.05))
        await _transfer(wire, _payload(300_000, 1), b"")
        blocks: list[tuple[int, int]] = []
        for name, frame in wire.log:
            eth = EthernetFrame.parse(frame)
            if name == "stack2" and eth.ethertype == 0x0800:
                ip = Ipv4Packet.parse(eth.payload)
                if ip.proto == 6:
                    seg = TcpSegment.parse(ip.payload, ip.src, ip.dst)
                    blocks.extend(seg.options.sack_blocks)
        assert blocks and all(0 < (right - left) % 2**32 < 1 << 20 for left, right in blocks)
    run(main())


@settings(max_examples=int(os.environ.get("TCPIP_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    up=st.integers(0, 300_000), down=st.integers(0, 300_000), seed=st.integers(0, 2**16),
    loss=st.sampled_from([0.0, 0.01, 0.05, 0.1]), dup=st.sampled_from([0.0, 0.05, 0.2]),
    reorder=st.sampled_from([0.0, 0.1, 0.4]), chunk=st.sampled_from([1, 100, 1460, 8192, 65536]),
    nagle=st.booleans(), mtu=st.sampled_from([576, 1500, 9000]), cc=st.sampled_from(["newreno", "cubic"]),
)
def test_hypothesis_transfers_arrive_once_in_order(up: int, down: int, seed: int, loss: float, dup: float,
                                                   reorder: float, chunk: int, nagle: bool, mtu: int,
                                                   cc: str) -> None:
    async def main() -> None:
        wire = Wire(seed=seed, impairment=Impairment(loss=loss, duplicate=dup, reorder=reorder),
                    keep_log=False)
        cfg = TcpConfig(nagle=nagle, congestion_control=cc)
        await _transfer(wire, _payload(up, seed), _payload(down, seed + 1), cfg, chunk=max(chunk, up // 200),
                        mtu=mtu)
    run(main(), limit=20_000)



def test_keepalive_probes_then_aborts_a_dead_peer() -> None:
    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        await b.tcp.start_server(echo, 7)
        reader, writer = await a.tcp.connect("10.0.0.2", 7)
        conn = conn_of(writer)
        conn.set_keepalive(True, idle=60, interval=10, probes=3)
        await settle(200)  # idle, but the peer answers every probe
        assert a.stats["tcp.keepalive_probes"] >= 2 and conn.state == State.ESTABLISHED
        wire.tamper = lambda _port, _frame: None  # the peer vanishes
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(), 400)
        assert a.stats["tcp.keepalive_timeouts"] == 1 and conn.state == State.CLOSED  # type: ignore[comparison-overlap]
    run(main())


def _icmp_error_frame(about: bytes, type_: int, code: int, rest: bytes, src: str = "10.0.0.254") -> bytes:
    """An ICMP error from ``src`` quoting the IP datagram in Ethernet frame ``about``."""
    from unik_tcpip.iface import ip_bytes
    from unik_tcpip.wire import EthernetFrame, IcmpPacket, Ipv4Packet

    eth = EthernetFrame.parse(about)
    ip = Ipv4Packet.parse(eth.payload)
    quoted = bytes(ip.buf[:ip.header_len + 8])
    msg = IcmpPacket.build(type_, code, rest, quoted, headroom=34)
    Ipv4Packet.emit(msg, 14, src=ip_bytes(src), dst=ip.src, proto=1, payload_len=len(msg) - 34, ident=9)
    EthernetFrame.emit(msg, eth.src, bytes.fromhex("0200000000fe"), 0x0800)
    return bytes(msg)


def test_path_mtu_discovery_from_frag_needed() -> None:
    from unik_tcpip.wire import icmp

    async def main() -> None:
        wire = Wire()
        big_seen = []

        def router(port: object, frame: bytes) -> bytes | None:
            # A hop with a 1000-byte MTU: drop larger DF datagrams and say so (RFC 1191).
            if getattr(port, "name", "") == "stack1" and len(frame) - 14 > 1000:
                big_seen.append(len(frame))
                wire.inject(_icmp_error_frame(frame, icmp.DEST_UNREACHABLE, icmp.FRAG_NEEDED,
                                              bytes([0, 0, 1000 >> 8, 1000 & 255])), to=port)  # type: ignore[arg-type]
                return None
            return frame

        a, b = await pair(wire)
        await b.tcp.start_server(echo, 7)
        reader, writer = await a.tcp.connect("10.0.0.2", 7)
        wire.tamper = router
        data = _payload(200_000, 3)
        writer.write(data)
        assert await reader.readexactly(len(data)) == data
        conn = conn_of(writer)
        assert conn.tcb.snd_mss == 960 and a.stats["tcp.pmtu_reduced"] == 1 and big_seen
    run(main())


def test_icmp_port_unreachable_refuses_a_connect_and_out_of_window_errors_are_ignored() -> None:
    from unik_tcpip.wire import icmp

    async def main() -> None:
        wire = Wire()
        syns = []

        def firewall(port: object, frame: bytes) -> bytes | None:
            if getattr(port, "name", "") == "stack1" and len(frame) > 34 and frame[23] == 6:
                syns.append(frame)
                wire.inject(_icmp_error_frame(frame, icmp.DEST_UNREACHABLE, icmp.PORT_UNREACHABLE, bytes(4)),
                            to=port)  # type: ignore[arg-type]
                return None
            return frame

        a, b = await pair(wire)
        await a.ping("10.0.0.2")
        wire.tamper = firewall
        with pytest.raises(ConnectionRefusedError, match="ICMP"):
            await a.tcp.connect("10.0.0.2", 99)
        assert a.stats["tcp.icmp_errors"] == 1 and len(syns) == 1
        wire.tamper = None
        # An error quoting a sequence number that is not in flight is not believed (RFC 5927 4.1).
        await b.tcp.start_server(echo, 7)
        reader, writer = await a.tcp.connect("10.0.0.2", 7)
        conn = conn_of(writer)
        forged = bytearray(syns[0])
        forged[34:36] = conn.local[1].to_bytes(2, "big")
        forged[36:38] = (7).to_bytes(2, "big")
        forged[38:42] = ((conn.tcb.snd_una + 5_000_000) & 0xFFFFFFFF).to_bytes(4, "big")
        a.iface.receive(_icmp_error_frame(bytes(forged), icmp.DEST_UNREACHABLE, icmp.FRAG_NEEDED,
                                          bytes([0, 0, 2, 0])))
        assert a.stats["tcp.icmp_out_of_window"] == 1 and conn.tcb.snd_mss == 1460
        writer.write(b"fine")
        assert await reader.readexactly(4) == b"fine"
    run(main())


def test_idle_restart_and_listen_queue() -> None:
    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        flows = await b.tcp.listen(80)
        reader, writer = await a.tcp.connect("10.0.0.2", 80)
        peer_reader, peer_writer = await flows.get()
        writer.write(_payload(300_000, 1))
        assert len(await peer_reader.readexactly(300_000)) == 300_000
        conn = conn_of(writer)
        grown = conn.tcb.cwnd
        await asyncio.sleep(10)  # idle for longer than the RTO
        writer.write(b"x")
        assert conn.tcb.cwnd < grown and conn.tcb.cwnd <= 4 * conn.tcb.eff_mss  # RFC 5681 4.1
        assert await peer_reader.readexactly(1) == b"x"
        peer_writer.close()
        assert await reader.read() == b""
    run(main())


def test_sack_scoreboard_steers_retransmissions() -> None:
    async def main() -> None:
        wire = Wire(seed=4, impairment=Impairment(loss=0.03, reorder=0.1), keep_log=False)
        client, _server = await _transfer(wire, _payload(2_000_000, 1), b"")
        # Holes beyond the first were resent during recovery (RFC 6675), not after a timeout.
        assert client.layer.stats["tcp.sack_retransmits"] > 0
        assert client.stats.fast_retransmits > client.stats.timeouts
        assert not client.tcb.scoreboard  # the scoreboard empties as everything is acknowledged
    run(main())


def test_isn_rfc6528() -> None:
    async def main() -> None:
        wire = Wire()
        a, _b = await pair(wire)
        tcp = a.tcp
        k1 = (a.iface.address, 40000, bytes([10, 0, 0, 2]), 80)
        k2 = (a.iface.address, 40001, bytes([10, 0, 0, 2]), 80)
        i1, i2 = tcp.isn(k1), tcp.isn(k2)
        assert i1 != i2  # F() differs per 4-tuple
        await asyncio.sleep(0.004)
        # M, a 4-microsecond timer: 4 ms later the ISN of the same 4-tuple moved by 1000.
        assert (tcp.isn(k1) - i1) % 2**32 == 1000
        # The secret comes from the Random device: another seed, other ISNs.
        other = (await make_stack(wire, 3, "10.0.0.3/24", seed=99)).tcp
        assert other.isn(k1) != tcp.isn(k1)
    run(main())


def test_a_failing_protocol_loses_its_connection_only() -> None:
    lost: list[BaseException | None] = []

    class Broken(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            raise RuntimeError("application bug")

        def connection_lost(self, exc: Exception | None) -> None:
            lost.append(exc)

    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)
        await b.tcp.create_server(Broken, 9)
        await b.tcp.start_server(echo, 7)
        reader, writer = await a.tcp.connect("10.0.0.2", 9)
        writer.write(b"boom")
        with pytest.raises(ConnectionResetError):
            await reader.read()
        assert b.stats["tcp.protocol_errors"] == 1 and b.stats["rx.internal_error"] == 0
        assert len(lost) == 1 and isinstance(lost[0], RuntimeError)
        reader, writer = await a.tcp.connect("10.0.0.2", 7)  # the stack serves on
        writer.write(b"ok")
        assert await reader.readexactly(2) == b"ok"
    run(main())


def test_keep_alive_exchange_costs_one_segment_each_way() -> None:
    """Request/response on a kept-alive connection: the delayed ACK of each request rides
    on its response, and the ACK of each response on the next request (RFC 9293 3.8.6.3),
    so there are no pure ACKs in between."""
    async def main() -> None:
        wire = Wire()
        a, b = await pair(wire)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                await writer.drain()

        server = await b.tcp.start_server(serve, 80)
        reader, writer = await a.tcp.connect("10.0.0.2", 80)
        before_a, before_b = a.stats["tcp.tx"], b.stats["tcp.tx"]
        for _ in range(50):
            writer.write(b"GET / HTTP/1.1\r\nHost: unik\r\n\r\n")
            assert (await reader.readexactly(41)).endswith(b"ok\n")
        assert a.stats["tcp.tx"] - before_a == 50
        assert b.stats["tcp.tx"] - before_b == 50
        writer.close()
        server.close()
    run(main())


@pytest.mark.parametrize("tlp", [True, False], ids=["tlp", "rto-only"])
def test_lost_tail_acks_are_repaired_by_a_probe(tlp: bool) -> None:
    """The receiver has everything but the ACKs of the tail are lost (as when a TAP's queue
    overflows with them): a tail loss probe (RFC 8985 7) brings an ACK back, answered
    with a D-SACK that says nothing was lost; without probes only the RTO does."""
    from unik_tcpip import fastpath

    async def main() -> None:
        wire = Wire()
        cfg = TcpConfig(tlp=tlp)
        a, b = await pair(wire, cfg, cfg)
        flows = await b.tcp.listen(80)
        _reader, writer = await a.tcp.connect("10.0.0.2", 80)
        peer_reader, _peer_writer = await flows.get()
        conn = conn_of(writer)
        data = _payload(200_000, 7)
        writer.write(data[:100_000])
        assert await peer_reader.readexactly(100_000) == data[:100_000]  # an RTT sample first
        conn.set_nodelay(True)  # all of it leaves at once: no tail held back by Nagle
        start = conn.tcb.snd_max
        final = (start + 100_000) & 0xFFFFFFFF

        def lose_the_tail_acks(sender: object, frame: bytes) -> bytes | None:
            # Every ACK of the second 100 kB, until the sender repairs the tail.
            fields = fastpath.tcp4_parse(frame, False)
            repaired = a.stats["tcp.tlp_probes"] if tlp else a.stats["tcp.rto"]
            if sender is b.network and fields is not None and 0 < (fields.ack - start) & 0xFFFFFFFF <= 100_000 \
                    and not repaired:
                return None
            return frame

        wire.tamper = lose_the_tail_acks
        writer.write(data[100_000:])
        assert await peer_reader.readexactly(100_000) == data[100_000:]
        await settle(2)
        assert conn.tcb.snd_una == final and wire.dropped >= 1
        if tlp:
            assert conn.stats.tlp_probes == 1 and conn.stats.timeouts == 0
            assert a.stats["tcp.tlp_spurious"] == 1  # the probe's D-SACK: only ACKs were lost
        else:
            assert conn.stats.tlp_probes == 0 and conn.stats.timeouts == 1
    run(main())
