"""The socket stack: a Stack on the host kernel's sockets."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from unik.devices import Flow, FlowReader, FlowWriter, Stack, UDPEndpoint
from unik.errors import BadKey, DeviceClosed, DeviceUnavailable
from unik_unix.socket_stack import SocketStack


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def test_tcp_echo_through_start_server_and_connect() -> None:
    async def main() -> list[bytes]:
        stack = await SocketStack.connect("127.0.0.1/8")
        assert isinstance(stack, Stack)
        assert (stack.ipv4.address, stack.ipv4.prefix) == ("127.0.0.1", 8)

        async def echo(reader: FlowReader, writer: FlowWriter) -> None:
            while line := await reader.readline():
                writer.write(line.upper())
                await writer.drain()
            writer.close()

        server = await stack.tcp.start_server(echo, 0)
        port = server.sockets[0].getsockname()[1]
        flow = await stack.tcp.connect("127.0.0.1", port)
        assert isinstance(flow, Flow)
        reader, writer = flow
        got = []
        for word in (b"one\n", b"two\n", b"x" * 50_000 + b"\n"):
            writer.write(word)
            await writer.drain()
            got.append(await reader.readline())
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        await stack.disconnect()
        return got

    assert run(main()) == [b"ONE\n", b"TWO\n", b"X" * 50_000 + b"\n"]


def test_udp_round_trip() -> None:
    async def main() -> tuple[bytes, int]:
        stack = await SocketStack.connect("127.0.0.1/8")
        a = await stack.udp.bind(0)
        b = await stack.udp.bind(0)
        assert isinstance(a, UDPEndpoint)
        await a.sendto(b"ping", ("127.0.0.1", b.port))  # type: ignore[attr-defined]
        data, source = await b.recvfrom()
        await stack.disconnect()
        return data, source[1]

    data, port = cast("tuple[bytes, int]", run(main()))
    assert data == b"ping" and port > 0


def test_listen_error_is_typed() -> None:
    async def main() -> None:
        stack = await SocketStack.connect("127.0.0.1/8")
        server = await stack.tcp.start_server(lambda r, w: asyncio.sleep(0), 0)  # type: ignore[arg-type,return-value]
        port = server.sockets[0].getsockname()[1]
        other = await SocketStack.connect("127.0.0.1/8")
        try:
            with pytest.raises(DeviceUnavailable, match=f"cannot listen on 127.0.0.1:{port}"):
                # Same port while the first one listens (reuse_address does not allow two listeners).
                await other.tcp.start_server(lambda r, w: asyncio.sleep(0), port)  # type: ignore[arg-type,return-value]
        finally:
            await stack.disconnect()
            await other.disconnect()

    run(main())


def test_disconnect_closes_servers_and_refuses_use() -> None:
    async def main() -> None:
        stack = await SocketStack.connect("127.0.0.1/32")
        server = await stack.tcp.start_server(lambda r, w: asyncio.sleep(0), 0)  # type: ignore[arg-type,return-value]
        port = server.sockets[0].getsockname()[1]
        await stack.disconnect()
        assert not server.is_serving()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        with pytest.raises(DeviceClosed):
            await stack.tcp.connect("127.0.0.1", port)

    run(main())


def test_bad_address_key() -> None:
    with pytest.raises(BadKey, match="--ipv4: 'nowhere' is not an IPv4 address/prefix"):
        run(SocketStack.connect("nowhere"))


def test_default_binds_all_addresses() -> None:
    stack = run(SocketStack.connect(None))
    assert stack.ipv4.address == "0.0.0.0"  # type: ignore[attr-defined]


def test_asyncio_protocols_run_unchanged() -> None:
    class Upper(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data.upper())  # type: ignore[attr-defined]

    class Client(asyncio.Protocol):
        def __init__(self) -> None:
            self.got = asyncio.get_running_loop().create_future()

        def data_received(self, data: bytes) -> None:
            self.got.set_result(data)

    async def main() -> bytes:
        stack = await SocketStack.connect("127.0.0.1/8")
        server = await stack.tcp.create_server(Upper, 0)
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        transport, client = await stack.tcp.create_connection(Client, "127.0.0.1", port)
        transport.write(b"protocol")  # type: ignore[attr-defined]
        got = await client.got  # type: ignore[attr-defined]
        transport.close()
        await stack.disconnect()
        return bytes(got)

    assert run(main()) == b"PROTOCOL"


def test_resolve_and_getaddrinfo_ask_the_hosts_resolver() -> None:
    """The same calls as unik-lib-tcpip's stack, answered by the host (localhost: no network)."""
    import socket

    async def main() -> None:
        stack = await SocketStack.connect("127.0.0.1/8")
        assert "127.0.0.1" in await stack.resolve("localhost", socket.AF_INET)
        infos = await stack.getaddrinfo("127.0.0.1", 443, type=socket.SOCK_STREAM)
        assert infos[0][0] == socket.AF_INET and infos[0][4] == ("127.0.0.1", 443)
        await stack.disconnect()
    run(main())
