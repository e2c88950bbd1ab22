"""The plaintext reader and writer behave as asyncio's streams, over any flow (the generic path too)."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from tls_support import Certs, pipe_pair, run
from unik.errors import TLSTruncated
from unik_tls.device import OpenSSLTLS


async def connected(certs: Certs, limit: int = 2**16) -> tuple[object, object, object, object]:
    server_tls = OpenSSLTLS.create(pairs=[certs.main.pair()])
    client_tls = OpenSSLTLS.create(cafile=str(certs.main.cert))
    a, b = pipe_pair()
    server, client = await asyncio.gather(server_tls.server(a, limit=limit), client_tls.client(b, "localhost"))
    assert server.writer._conn._transport is None  # type: ignore[attr-defined]  # the generic path
    return server.reader, server.writer, client.reader, client.writer


def test_generic_path_carries_bulk_and_close_notify(certs: Certs) -> None:
    data = os.urandom(3 << 20)

    async def main() -> None:
        s_reader, s_writer, c_reader, c_writer = await connected(certs)
        c_writer.write(data)  # type: ignore[attr-defined]
        c_writer.write_eof()  # type: ignore[attr-defined]
        got = await s_reader.read()  # type: ignore[attr-defined]
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        s_writer.write(b"bye\n")  # type: ignore[attr-defined]
        s_writer.close()  # type: ignore[attr-defined]
        assert await c_reader.read() == b"bye\n"  # type: ignore[attr-defined]
        assert c_reader.at_eof()  # type: ignore[attr-defined]
    run(main())


def test_reader_errors_match_asyncio(certs: Certs) -> None:
    async def main() -> None:
        s_reader, _, _, c_writer = await connected(certs, limit=64)
        c_writer.write(b"x" * 100 + b"\n" + b"tail")  # type: ignore[attr-defined]
        with pytest.raises(asyncio.LimitOverrunError):
            await s_reader.readuntil(b"\n")  # type: ignore[attr-defined]
        with pytest.raises(ValueError):
            await s_reader.readline()  # type: ignore[attr-defined]  # and the long line is dropped
        assert await s_reader.readexactly(2) == b"ta"  # type: ignore[attr-defined]
        with pytest.raises(ValueError):
            await s_reader.readuntil(b"")  # type: ignore[attr-defined]
        c_writer.write(b"\nlast")  # type: ignore[attr-defined]
        c_writer.write_eof()  # type: ignore[attr-defined]
        lines = [line async for line in s_reader]  # type: ignore[attr-defined]
        assert lines == [b"il\n", b"last"]
        with pytest.raises(asyncio.IncompleteReadError):
            await s_reader.readexactly(1)  # type: ignore[attr-defined]
        assert await s_reader.read(0) == b"" and s_reader.at_eof()  # type: ignore[attr-defined]
    run(main())


def test_truncation_on_the_generic_path(certs: Certs) -> None:
    async def main() -> None:
        s_reader, _, _, c_writer = await connected(certs)
        c_writer.write(b"cut")  # type: ignore[attr-defined]
        await c_writer.drain()  # type: ignore[attr-defined]
        c_writer.underlying.close()  # type: ignore[attr-defined]  # EOF without close_notify
        with pytest.raises(TLSTruncated):
            await s_reader.read()  # type: ignore[attr-defined]
        with pytest.raises(TLSTruncated):  # and again: the error sticks to the flow
            await s_reader.read(1)  # type: ignore[attr-defined]
    run(main())


def test_two_readers_at_once_are_refused_on_the_direct_path(certs: Certs) -> None:
    from tls_support import socket_tls, tls_server

    async def main() -> None:
        async with socket_tls(pairs=[certs.main.pair()], verify=False) as tls, tls_server(tls) as port:
            reader, writer = await tls.open_connection("127.0.0.1", port, "localhost")
            first = asyncio.ensure_future(reader.read(10))
            await asyncio.sleep(0.05)
            with pytest.raises(RuntimeError, match="two coroutines"):
                await reader.read(10)
            writer.write(b"hi\n")
            assert await first == b"hi\n"
            writer.close()
    run(main())
