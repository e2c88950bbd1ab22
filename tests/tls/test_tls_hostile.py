"""Hostile peers: each failure closes its own flow with a typed error; the server serves the others."""

from __future__ import annotations

import asyncio
import os
import struct

from tls_support import Certs, run, socket_tls, tls_server
from unik.devices import FlowReader, FlowWriter
from unik.errors import TLSError, TLSHandshakeTimeout, TLSProtocolError, TLSTruncated
from unik_tls.device import OpenSSLTLS


async def still_serving(tls: OpenSSLTLS, port: int) -> None:
    client = OpenSSLTLS.create(tls.stack, verify=False)
    reader, writer = await client.open_connection("127.0.0.1", port, "localhost")
    writer.write(b"hello\n")
    assert await reader.readline() == b"hello\n"
    writer.close()


async def raw(port: int, data: bytes, eof: bool = False) -> bytes:
    """Send ``data`` (then a FIN with ``eof``) on plain TCP; what comes back until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    if eof:
        writer.write_eof()
    back = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return back


def test_garbage_half_hellos_and_silence(certs: Certs) -> None:
    async def main() -> None:
        async with socket_tls(pairs=[certs.main.pair()], handshake_timeout=0.5) as tls, tls_server(tls) as port:
            # Plain HTTP to a TLS port: the connection closes.
            assert await raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == b""
            # A handshake record full of random bytes: a fatal alert comes back, then the close.
            back = await raw(port, b"\x16\x03\x01\x00\x40\x01\x00\x00\x3c" + os.urandom(60))
            assert back[:1] == b"\x15" and back[5] == 2  # alert record, level fatal
            # A record header promising a ClientHello, then the client leaves.
            assert await raw(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", eof=True) == b""
            # Silence: the handshake timeout closes the connection.
            started = asyncio.get_running_loop().time()
            assert await raw(port, b"") == b""
            assert asyncio.get_running_loop().time() - started < 5
            await still_serving(tls, port)
            assert tls.stats["server.failed.TLSHandshakeError"] == 3
            assert tls.stats["server.failed.TLSHandshakeTimeout"] == 1
            assert tls.stats["server.handshakes"] == 1
    run(main())


def test_handshake_timeout_is_typed_on_the_client_too(certs: Certs) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers the ClientHello

    async def main() -> None:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with socket_tls(handshake_timeout=0.3, verify=False) as tls:
            try:
                await tls.open_connection("127.0.0.1", port, "localhost")
            except TLSHandshakeTimeout as exc:
                assert "not done within 0.3 s" in str(exc)
                assert isinstance(exc, ConnectionError)  # what plain-TCP handlers already catch
            else:
                raise AssertionError("no timeout")
        server.close()
    run(main())


def test_truncation_corrupted_and_truncated_records_after_the_handshake(certs: Certs) -> None:
    errors: list[BaseException] = []

    async def reader_of_lines(reader: FlowReader, writer: FlowWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except TLSError as exc:
            errors.append(exc)
        finally:
            writer.close()

    async def main() -> None:
        async with socket_tls(pairs=[certs.main.pair()]) as tls, tls_server(tls, reader_of_lines) as port:
            client = OpenSSLTLS.create(tls.stack, verify=False)
            # Truncation: the TCP connection ends without close_notify.
            reader, writer = await client.open_connection("127.0.0.1", port, "localhost")
            writer.write(b"x\n")
            assert await reader.readline() == b"x\n"  # nothing unread is left: the close sends a FIN
            writer.write(b"partial line without newline")
            await writer.drain()
            writer.underlying.close()  # type: ignore[attr-defined]
            # A forged application-data record: its authentication tag cannot verify.
            reader, writer = await client.open_connection("127.0.0.1", port, "localhost")
            writer.write(b"first\n")
            assert await reader.readline() == b"first\n"
            writer.underlying.write(struct.pack("!BHH", 23, 0x0303, 64) + os.urandom(64))  # type: ignore[attr-defined]
            try:
                more = await asyncio.wait_for(reader.read(), 10)
            except TLSError as exc:
                more = repr(exc).encode()
            assert b"first" not in more
            # A truncated record: its header promises 1000 bytes, 10 come, then a FIN.
            reader, writer = await client.open_connection("127.0.0.1", port, "localhost")
            writer.write(b"ok\n")
            assert await reader.readline() == b"ok\n"
            writer.underlying.write(struct.pack("!BHH", 23, 0x0303, 1000) + os.urandom(10))  # type: ignore[attr-defined]
            writer.underlying.write_eof()  # type: ignore[attr-defined]
            for _ in range(100):
                if len(errors) == 3:
                    break
                await asyncio.sleep(0.02)
            await still_serving(tls, port)
        assert isinstance(errors[0], TLSTruncated) and "closed without close_notify" in str(errors[0])
        assert type(errors[1]) is TLSProtocolError and "bad record mac" in str(errors[1])
        assert isinstance(errors[2], TLSTruncated), errors[2]
    run(main())


def test_reset_during_the_handshake_is_typed() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the ClientHello's first byte, then a TCP reset
        writer.transport.abort()

    async def main() -> None:
        server = await asyncio.start_server(reset, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with socket_tls(verify=False) as tls:
            try:
                await tls.open_connection("127.0.0.1", port, "localhost")
            except TLSError as exc:
                assert "TLS handshake with 127.0.0.1" in str(exc), exc
            else:
                raise AssertionError("the handshake succeeded")
            assert sum(v for k, v in tls.stats.items() if k.startswith("client.failed.")) == 1
        server.close()
    run(main())


def test_a_slow_reader_pauses_the_transport_instead_of_buffering(certs: Certs) -> None:
    from unik_tls.flow import PAUSE_AT, READ_CHUNK

    held: list[int] = []
    size = 16 << 20

    async def slow(reader: FlowReader, writer: FlowWriter) -> None:
        await asyncio.sleep(0.5)  # the client keeps sending meanwhile
        held.append(writer._conn.incoming.pending)  # type: ignore[attr-defined]
        got = 0
        while chunk := await reader.read(1 << 16):
            got += len(chunk)
        writer.write(b"%d\n" % got)
        writer.close()

    async def main() -> None:
        async with socket_tls(pairs=[certs.main.pair()]) as tls, tls_server(tls, slow) as port:
            client = OpenSSLTLS.create(tls.stack, verify=False)
            reader, writer = await client.open_connection("127.0.0.1", port, "localhost")
            block = os.urandom(1 << 20)
            for _ in range(size >> 20):
                writer.write(block)
                await writer.drain()
            writer.write_eof()
            assert await reader.readline() == b"%d\n" % size
            writer.close()
        assert 0 < held[0] <= PAUSE_AT + READ_CHUNK, held
    run(main())
