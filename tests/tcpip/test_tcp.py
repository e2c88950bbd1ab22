"""TCP over the simulated wire: handshakes, transfers, closes, hostile segments."""

from __future__ import annotations

import asyncio

import pytest
from tcpip_support import Impairment, Wire, pair, run, settle
from unik_tcpip.tcp import State, TcpConfig, TcpConnection


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


def conn_of(writer: asyncio.StreamWriter) -> TcpConnection:
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
        assert conn.ts_ok and conn.sack_ok and conn.snd_wscale == conn.rcv_wscale == a.tcp.rcv_wscale
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        assert conn.state == State.TIME_WAIT  # the active closer waits 2 MSL
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
        with pytest.raises(OSError, match="not an IPv4 address"):
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
                    chunk: int = 10000) -> tuple[TcpConnection, TcpConnection]:
    """Send ``up`` client->server and ``down`` server->client at once; both half-close."""
    a, b = await pair(wire, cfg, cfg)
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


@pytest.mark.parametrize(("loss", "dup", "reorder"), [(0.05, 0, 0), (0, 0.1, 0), (0, 0, 0.3), (0.03, 0.03, 0.2)],
                         ids=["loss", "duplication", "reordering", "all"])
def test_transfer_impaired(loss: float, dup: float, reorder: float) -> None:
    async def main() -> None:
        wire = Wire(seed=11, impairment=Impairment(loss=loss, duplicate=dup, reorder=reorder))
        client, server = await _transfer(wire, _payload(500_000, 5), _payload(100_000, 6))
        if loss:
            assert client.stats.retransmits > 0
        if reorder:
            assert server.stats.out_of_order > 0
    run(main())
