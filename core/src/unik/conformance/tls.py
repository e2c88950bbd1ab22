"""Conformance of ``TLS``: handshakes and data over any flow, failures as typed errors."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any, NamedTuple

from ..devices import TLS, Flow
from ..errors import TLSError
from .base import ServerClientConformance


class TLSPair(NamedTuple):
    """A server device (its certificate names ``hostname``) and a client device that trusts it."""

    server: Any
    client: Any
    hostname: str


async def flow_pair() -> tuple[Flow, Flow]:
    """Two connected flows: asyncio streams over a socket pair (any flow will do for TLS)."""
    a, b = socket.socketpair()
    ends = []
    for sock in (a, b):
        reader, writer = await asyncio.open_connection(sock=sock)
        ends.append(Flow(reader, writer))
    return ends[0], ends[1]


class TLSConformance(ServerClientConformance):
    """A client and a server handshake over a plain flow and exchange data; a wrong name fails typed.

    Define :meth:`pair`.
    """

    protocol = TLS

    async def pair(self) -> TLSPair:
        """The server device under test, a client device trusting its certificate, and the name in it."""
        raise NotImplementedError(f"{type(self).__name__} must define `async def pair(self)`")

    @property
    def tls(self) -> TLSPair:
        """The pair of the running check."""
        pair: TLSPair = self.pair_
        return pair

    def test_handshake_and_data_both_ways(self) -> None:
        """Handshake and data both ways."""

        async def body(server: Any) -> None:
            plain_server, plain_client = await flow_pair()
            accepted, connected = await asyncio.gather(
                server.server(plain_server), self.tls.client.client(plain_client, self.tls.hostname))
            payload = os.urandom(200_000)
            connected.writer.write(payload)
            await connected.writer.drain()
            assert await accepted.reader.readexactly(len(payload)) == payload
            accepted.writer.write(b"reply\n")
            await accepted.writer.drain()
            assert await connected.reader.readline() == b"reply\n"
            connected.writer.close()
            accepted.writer.close()

        self.check(body)

    def test_wrong_name_is_a_tls_error(self) -> None:
        """Wrong name is a TLS error."""

        async def body(server: Any) -> None:
            plain_server, plain_client = await flow_pair()
            results = await asyncio.gather(
                server.server(plain_server), self.tls.client.client(plain_client, "wrong.invalid"),
                return_exceptions=True)
            assert isinstance(results[1], TLSError), f"a client checking 'wrong.invalid' got {results[1]!r}"
            plain_server.writer.close()

        self.check(body)
