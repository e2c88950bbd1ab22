"""Failed handshakes release their connection at once: no reference cycle, no wait for the collector.

A stored error whose traceback held the frames that held the connection kept every failed
handshake's ``SSLObject`` alive until a full collection: an attacker needing no valid
handshake could grow the server.  These tests disable the collector and count what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import ssl
from collections.abc import Iterator

import pytest
from tls_support import Certs, run, socket_tls, tls_server
from unik.devices import FlowReader, FlowWriter
from unik.errors import TLSCertificateError, TLSTruncated
from unik_tls.device import OpenSSLTLS
from unik_tls.flow import TLSConnection

#: Failing handshakes per kind (garbage, a half hello then EOF, silence until the timeout).
ROUNDS = 700


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive(kind: type) -> int:
    """Instances of ``kind`` still reachable (gc.get_objects lists them without collecting)."""
    return sum(1 for o in gc.get_objects() if type(o) is kind)


async def hit(port: int, data: bytes, eof: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    if eof:
        writer.write_eof()
    await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()


def test_thousands_of_failed_handshakes_leave_no_connection_behind(certs: Certs) -> None:
    garbage = b"\x16\x03\x01\x00\x40\x01\x00\x00\x3c" + os.urandom(60)
    half = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"

    async def main() -> None:
        async with socket_tls(pairs=[certs.main.pair()], handshake_timeout=0.05) as tls, \
                tls_server(tls) as port:
            for _ in range(ROUNDS // 10):  # 30 in flight at most
                await asyncio.gather(*(hit(port, data, eof) for data, eof in
                                       [(garbage, False), (half, True), (b"", False)] * 10))
            errors, timeouts = "server.failed.TLSHandshakeError", "server.failed.TLSHandshakeTimeout"
            for _ in range(100):  # the last handlers return (bounded: 10 s)
                if tls.stats[errors] + tls.stats[timeouts] == 3 * ROUNDS:
                    break
                await asyncio.sleep(0.1)
            # Silent clients always time out; on a loaded machine a garbage or half hello can
            # also arrive after the 50 ms timeout, so only the total is exact.
            assert tls.stats[errors] + tls.stats[timeouts] == 3 * ROUNDS
            assert tls.stats[timeouts] >= ROUNDS
            assert alive(TLSConnection) == 0
            assert alive(ssl.SSLObject) == 0

    with collector_off():
        run(main(), timeout=300)


def test_failed_client_handshakes_and_truncated_flows_leave_nothing_behind(certs: Certs) -> None:
    """The client side too, and flows that fail after the handshake (the error is raised again later)."""
    kept: list[BaseException] = []

    async def until_error(reader: FlowReader, writer: FlowWriter) -> None:
        try:
            while await reader.read(100):
                pass
        except TLSTruncated:
            # The stored error is raised again, as a copy: the stored one holds no traceback.
            for _ in range(2):
                try:
                    await reader.read(100)
                except TLSTruncated as exc:
                    assert reader.exception() is not exc and type(reader.exception()) is TLSTruncated  # type: ignore[attr-defined]
                    assert reader.exception().__traceback__ is None  # type: ignore[attr-defined]
            kept.append(reader.exception())  # type: ignore[attr-defined]
        finally:
            writer.close()

    async def main() -> None:
        async with socket_tls(pairs=[certs.main.pair()]) as tls, tls_server(tls, until_error) as port:
            strict = OpenSSLTLS.create(tls.stack)  # trusts the system's CAs: the development cert fails
            for _ in range(ROUNDS // 2):
                with pytest.raises(TLSCertificateError):
                    await strict.open_connection("127.0.0.1", port, "localhost")
            loose = OpenSSLTLS.create(tls.stack, verify=False)
            for _ in range(ROUNDS // 2):
                _, writer = await loose.open_connection("127.0.0.1", port, "localhost")
                writer.write(b"data")
                await writer.drain()
                writer.underlying.close()  # type: ignore[attr-defined]  # no close_notify
            del writer
            for _ in range(100):
                if len(kept) == ROUNDS // 2:
                    break
                await asyncio.sleep(0.02)
            assert len(kept) == ROUNDS // 2
            kept.clear()
            await asyncio.sleep(0.1)
            assert strict.stats["client.failed.TLSCertificateError"] == ROUNDS // 2
            assert alive(TLSConnection) == 0
            assert alive(ssl.SSLObject) == 0

    with collector_off():
        run(main(), timeout=300)
