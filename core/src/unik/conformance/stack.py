"""Conformance of ``Stack``: TCP and UDP between two stacks (or one stack and itself)."""

from __future__ import annotations

import asyncio
import os
from typing import Any, NamedTuple

from ..devices import TCP, UDP, IPv4Config, Stack
from .base import ServerClientConformance


class StackPair(NamedTuple):
    """The stack under test (it serves) and a client that reaches it at ``server_address``."""

    server: Any
    client: Any
    server_address: str


class StackConformance(ServerClientConformance):
    """Streams with asyncio's semantics (data both ways, EOF, many connections) and datagrams.

    Define :meth:`pair`.  The client may be the server itself (the host's sockets reach
    their own address) or another stack on the same wire (two unik stacks).
    """

    protocol = Stack
    #: A TCP and a UDP port the suite may use on the server.
    port = 18_018

    async def pair(self) -> StackPair:
        """The stack under test, a client stack and the server's address."""
        raise NotImplementedError(f"{type(self).__name__} must define `async def pair(self)`")

    @property
    def stacks(self) -> StackPair:
        """The pair of the running check."""
        pair: StackPair = self.pair_
        return pair

    def test_identity(self) -> None:
        """Identity."""

        async def body(stack: Any) -> None:
            assert isinstance(stack.tcp, TCP) and isinstance(stack.udp, UDP)
            assert isinstance(stack.ipv4, IPv4Config) and stack.ipv4.address == self.stacks.server_address

        self.check(body)

    def test_tcp_echo_both_ways_and_eof(self) -> None:
        """TCP echo both ways and EOF."""

        async def body(stack: Any) -> None:
            async def echo(reader: Any, writer: Any) -> None:
                data = await reader.read()  # until the client's EOF
                writer.write(data[::-1])
                await writer.drain()
                writer.close()

            server = await stack.tcp.start_server(echo, self.port)
            try:
                payload = os.urandom(300_000)
                reader, writer = await self.stacks.client.tcp.connect(self.stacks.server_address, self.port)
                writer.write(payload)
                await writer.drain()
                assert writer.can_write_eof()
                writer.write_eof()
                assert await reader.read() == payload[::-1]
                assert reader.at_eof()
                writer.close()
                await writer.wait_closed()
            finally:
                server.close()
                await server.wait_closed()

        self.check(body)

    def test_many_connections_and_line_reads(self) -> None:
        """Many connections and line reads."""

        async def body(stack: Any) -> None:
            async def greet(reader: Any, writer: Any) -> None:
                name = await reader.readline()
                writer.write(b"hello " + name)
                await writer.drain()
                writer.close()

            server = await stack.tcp.start_server(greet, self.port + 1)
            try:
                async def one(i: int) -> bytes:
                    reader, writer = await self.stacks.client.tcp.connect(self.stacks.server_address, self.port + 1)
                    writer.write(f"client{i}\n".encode())
                    await writer.drain()
                    line: bytes = await reader.readuntil(b"\n")
                    rest: bytes = await reader.read()
                    writer.close()
                    return line + rest

                answers = await asyncio.gather(*(one(i) for i in range(8)))
                assert answers == [f"hello client{i}\n".encode() for i in range(8)]
            finally:
                server.close()
                await server.wait_closed()

        self.check(body)

    def test_refused_connection_is_a_connection_error(self) -> None:
        """Refused connection is a connection error."""

        async def body(stack: Any) -> None:
            try:
                await asyncio.wait_for(self.stacks.client.tcp.connect(self.stacks.server_address, self.port + 2), 20)
            except ConnectionError:
                return
            raise AssertionError("connecting to a port nobody listens on did not raise ConnectionError")

        self.check(body)

    def test_udp_datagrams(self) -> None:
        """UDP datagrams."""

        async def body(stack: Any) -> None:
            server = await stack.udp.bind(self.port + 3)
            client = await self.stacks.client.udp.bind(0)
            try:
                for i in range(3):
                    await client.sendto(f"ping {i}".encode(), (self.stacks.server_address, self.port + 3))
                    data, source = await asyncio.wait_for(server.recvfrom(), 10)
                    assert data == f"ping {i}".encode()
                    await server.sendto(b"pong " + data, source)
                    reply, _ = await asyncio.wait_for(client.recvfrom(), 10)
                    assert reply == b"pong " + data
            finally:
                server.close()
                client.close()

        self.check(body)
