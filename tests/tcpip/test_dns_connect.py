"""Connecting by name on unik's stack (two stacks on a simulated wire, virtual time).

The name has two addresses, the first of which never answers: Happy Eyeballs starts the
second attempt 250 ms later (RFC 8305 5), it wins, the first is dropped, and the
application's protocol (one shared object, as ``open_connection`` makes) sees exactly
one connection, with the bytes the server sent first.
"""

from __future__ import annotations

import asyncio
import socket

from tcpip_support import Wire, make_stack, run
from unik_tcpip.dns.resolver import ResolverConfig


def test_connect_by_name_staggers_attempts_and_hands_one_connection_over() -> None:
    async def main() -> None:
        wire = Wire()
        a = await make_stack(wire, 1, "10.0.0.1/24")
        b = await make_stack(wire, 2, "10.0.0.2/24")
        # 10.0.0.9 is on the link but nobody answers its ARP: that attempt hangs.
        a._resolver_config = ResolverConfig(hosts={"svc.test": ("10.0.0.9", "10.0.0.2")})

        async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hello first\n")  # the server speaks first
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            writer.close()

        await b.tcp.start_server(greet, 7000)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        made: list[asyncio.BaseTransport] = []

        class Counting(asyncio.StreamReaderProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                made.append(transport)
                super().connection_made(transport)

        reader = asyncio.StreamReader()
        protocol = Counting(reader)
        t0 = loop.time()
        transport, got = await a.tcp.create_connection(lambda: protocol, "svc.test", 7000)
        took = loop.time() - t0
        assert got is protocol and made == [transport]
        assert 0.25 <= took < 1.0, took  # the second attempt started after the Connection Attempt Delay
        assert transport.get_extra_info("peername")[0] == "10.0.0.2"
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)  # type: ignore[arg-type]
        assert await reader.readline() == b"hello first\n"
        writer.write(b"again\n")
        assert await reader.readline() == b"AGAIN\n"
        await asyncio.sleep(1)
        assert not [c for c in a.tcp.connections.values() if c.key[2] == bytes((10, 0, 0, 9))], \
            "the losing attempt was not dropped"
        assert len(made) == 1
        await a.disconnect()
        await b.disconnect()
    run(main())


def test_tls_style_flow_by_name_through_tcp_connect() -> None:
    """``stack.tcp.connect(name, port)`` (what TLS's ``open_connection`` calls) takes names too."""
    async def main() -> None:
        wire = Wire()
        a = await make_stack(wire, 1, "10.0.0.1/24")
        b = await make_stack(wire, 2, "10.0.0.2/24")
        a._resolver_config = ResolverConfig(hosts={"b.test": ("10.0.0.2",)})

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        await b.tcp.start_server(echo, 7001)  # type: ignore[arg-type]
        reader, writer = await a.tcp.connect("b.test", 7001)
        writer.write(b"ping\n")
        assert await reader.readline() == b"ping\n"
        assert await a.resolve("b.test") == ["10.0.0.2"]
        infos = await a.getaddrinfo("b.test", 7001, type=socket.SOCK_STREAM)
        assert infos[0][4] == ("10.0.0.2", 7001)
        await a.disconnect()
        await b.disconnect()
    run(main())


def test_the_unik_loops_open_connection_by_name_uses_happy_eyeballs() -> None:
    """``asyncio.open_connection(name)`` on the unik event loop: the same staggered attempts, one protocol."""
    from tcpip_support import LoopSleep, SeededRandom, VirtualClock, mac
    from unik_tcpip.aio import UnikEventLoop
    from unik_tcpip.aio import run as run_unik
    from unik_tcpip.stack import TcpipStack, parse_ipv4, resolver_keys

    async def main() -> float:
        wire = Wire(keep_log=False)
        a = TcpipStack(wire.port(mac(1), name="stack1"), VirtualClock(), LoopSleep(), SeededRandom(1),
                       parse_ipv4("10.0.0.1/24", None),
                       resolver_config=resolver_keys(None, None, "svc.test=10.0.0.9,svc.test=10.0.0.2"))
        a.start()
        b = await make_stack(wire, 2, "10.0.0.2/24")
        UnikEventLoop.attach_running(a)

        async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hi\n")
            await writer.drain()
            writer.close()
        await b.tcp.start_server(greet, 7002)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        reader, writer = await asyncio.wait_for(asyncio.open_connection("svc.test", 7002), 10)
        took = loop.time() - t0
        assert await reader.readline() == b"hi\n"
        assert writer.get_extra_info("peername")[0] == "10.0.0.2"
        writer.close()
        await a.disconnect()
        await b.disconnect()
        return took
    took = run_unik(main())
    assert 0.2 <= took < 5, took
