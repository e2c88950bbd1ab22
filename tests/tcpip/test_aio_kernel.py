"""The unik event loop against the Linux kernel: its stack on a TAP, the kernel's side in a namespace.

Unchanged asyncio code (``asyncio.start_server``, ``asyncio.open_connection``,
``create_datagram_endpoint``, TLS through ``ssl.SSLContext``) on unik's stack, with curl,
socat, openssl and Python's http.server as the kernel-side peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from host_tools import needs
from kernel_support import Namespace, kernel_namespace, unik_stack
from unik.testing import tap_unavailable
from unik_tcpip.aio import UnikEventLoop, run

pytestmark = [pytest.mark.root, pytest.mark.skipif(tap_unavailable() is not None, reason=str(tap_unavailable()))]
TIMEOUT = 60.0


@pytest.fixture
def netns() -> Iterator[Namespace]:
    with kernel_namespace("unik-aio", tap="uka") as ns:
        yield ns


def run_unik(coro: Any) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, TIMEOUT)
    return run(bounded())


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def connect_when_listening(host: str, port: int, **kw: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` retried while the kernel-side server starts (at most 5 s)."""
    for _attempt in range(50):
        try:
            return await asyncio.open_connection(host, port, **kw)
        except ConnectionRefusedError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"nothing listened on {host}:{port}")


@needs("curl")
def test_curl_gets_a_response_from_asyncio_start_server(netns: Namespace) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"served by asyncio on unik's stack\n"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async def main() -> None:
        async with unik_stack(netns) as stack:
            UnikEventLoop.attach_running(stack)
            server = await asyncio.start_server(handle, "0.0.0.0", 8080)
            status, out, err = await netns.run("curl", "-sS", "--max-time", "10", f"http://{netns.unik}:8080/")
            assert status == 0, err
            assert out == b"served by asyncio on unik's stack\n"
            server.close()
            await server.wait_closed()
    run_unik(main())


def test_open_connection_fetches_from_python_http_server(netns: Namespace, tmp_path: Path) -> None:
    body = bytes(range(256)) * 8192  # 2 MiB
    (tmp_path / "blob").write_bytes(body)

    async def main() -> None:
        async with unik_stack(netns) as stack, netns.background(
                sys.executable, "-m", "http.server", "8000", "--bind", netns.host, cwd=str(tmp_path)):
            UnikEventLoop.attach_running(stack)
            reader, writer = await connect_when_listening(netns.host, 8000)
            writer.write(f"GET /blob HTTP/1.0\r\nHost: {netns.host}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.0 200"), head
            assert await reader.read() == body
            writer.close()
            await writer.wait_closed()
    run_unik(main())


@needs("socat")
def test_datagram_endpoint_with_socat(netns: Namespace) -> None:
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(data.upper(), addr)

    async def main() -> None:
        async with unik_stack(netns) as stack:
            UnikEventLoop.attach_running(stack)
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 5353))
            status, out, err = await netns.run("socat", "-T", "5", "-", f"UDP:{netns.unik}:5353", stdin=b"hello\n")
            assert status == 0, err
            assert out == b"HELLO\n"
            transport.close()
    run_unik(main())


async def reply_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"unik says " + await reader.readline())
    await writer.drain()
    writer.close()


@needs("openssl")
def test_tls_both_ways_with_the_kernel(netns: Namespace, tmp_path: Path) -> None:
    """A verified TLS client to a Python TLS server in the namespace, and openssl s_client to a unik TLS server."""
    from unik_tls.certs import selfsigned, write_pair

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_pair(*selfsigned([netns.host, netns.unik, "unik.test"]), cert, key)
    server_script = tmp_path / "tls_server.py"
    server_script.write_text(
        "import asyncio, ssl, sys\n"
        "ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)\n"
        f"ctx.load_cert_chain({str(cert)!r}, {str(key)!r})\n"
        "async def handle(r, w):\n"
        "    w.write(b'kernel says ' + await r.readline()); await w.drain(); w.close()\n"
        "async def main():\n"
        f"    server = await asyncio.start_server(handle, {netns.host!r}, 8443, ssl=ctx)\n"
        "    await server.serve_forever()\n"
        "asyncio.run(main())\n")
    client_ctx = ssl.create_default_context(cafile=str(cert))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def main() -> None:
        async with unik_stack(netns) as stack, netns.background(sys.executable, str(server_script)):
            UnikEventLoop.attach_running(stack)
            reader, writer = await connect_when_listening(netns.host, 8443, ssl=client_ctx)
            assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
            writer.write(b"hello\n")
            assert await reader.read() == b"kernel says hello\n"
            writer.close()
            server = await asyncio.start_server(reply_once, None, 9443, ssl=server_ctx)
            status, out, err = await netns.run(
                "openssl", "s_client", "-quiet", "-verify_return_error", "-CAfile", str(cert),
                "-verify_hostname", "unik.test", "-connect", f"{netns.unik}:9443", stdin=b"over TLS\n")
            assert (status, out) == (0, b"unik says over TLS\n"), err
            server.close()
    run_unik(main())
