"""aiohttp's ClientSession and httpx's AsyncClient, unchanged, on the unik event loop.

unik's stack is on a TAP whose kernel side is in a namespace the test creates; there a
Python HTTP server answers plainly and over TLS with a certificate of a test CA, for a
name the stack's resolver knows (``--hosts``).  The clients verify it against the CA.
The host's own network cannot reach the namespace: an answer came through unik's stack.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from kernel_support import Namespace, kernel_namespace, unik_stack
from unik.testing import tap_unavailable, write_ca_and_leaf
from unik_tcpip.aio import UnikEventLoop, run, stack_socket
from unik_tcpip.stack import TcpipStack

aiohttp = pytest.importorskip("aiohttp", reason="needs aiohttp (requirements-dev.txt)")
httpx = pytest.importorskip("httpx", reason="needs httpx (requirements-dev.txt)")

pytestmark = [pytest.mark.root, pytest.mark.skipif(tap_unavailable() is not None, reason=str(tap_unavailable()))]
TIMEOUT = 60.0
BODY = bytes(range(256)) * 4096  # 1 MiB

SERVER = """
import http.server, ssl, sys
directory, host, port, cert, key = sys.argv[1:6]
class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=directory, **kw)
server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
if cert != "-":
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


@pytest.fixture
def netns() -> Iterator[Namespace]:
    with kernel_namespace("unik-cli", tap="ukh") as ns:
        yield ns


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "blob").write_bytes(BODY)
    write_ca_and_leaf(tmp_path, ["site.test"])
    (tmp_path / "server.py").write_text(SERVER)
    return tmp_path


@asynccontextmanager
async def served(ns: Namespace, site: Path) -> AsyncIterator[TcpipStack]:
    """The unik stack (knowing site.test) on the running unik loop; http on :8080 and https on :8443 in ``ns``."""
    www = str(site / "www")
    async with unik_stack(ns, hosts=f"site.test={ns.host}") as stack, \
            ns.background(sys.executable, str(site / "server.py"), www, ns.host, "8080", "-", "-"), \
            ns.background(sys.executable, str(site / "server.py"), www, ns.host, "8443",
                          str(site / "cert.pem"), str(site / "key.pem")):
        UnikEventLoop.attach_running(stack)
        for port in (8080, 8443):
            for _attempt in range(100):  # the servers need a moment to listen
                try:
                    _reader, writer = await asyncio.open_connection(ns.host, port)
                    writer.close()
                    break
                except ConnectionRefusedError:
                    await asyncio.sleep(0.1)
        yield stack


def run_unik(coro: Any) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, TIMEOUT)
    return run(bounded())


def test_aiohttp_client_session_plain_and_verified_tls(netns: Namespace, site: Path) -> None:
    async def main() -> None:
        async with served(netns, site) as stack:
            opened = stack.stats["tcp.active_opens"]
            ca = ssl.create_default_context(cafile=str(site / "ca.pem"))
            async with aiohttp.ClientSession() as session:
                async with session.get("http://site.test:8080/blob") as response:
                    assert response.status == 200 and await response.read() == BODY
                async with session.get("https://site.test:8443/blob", ssl=ca) as response:
                    assert response.status == 200 and await response.read() == BODY
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await session.get("https://site.test:8443/blob")  # the system's CAs do not know the test CA
            # aiohttp's connector on a socket of the stack (what a target without host sockets needs).
            connector = aiohttp.TCPConnector(socket_factory=stack_socket)
            async with aiohttp.ClientSession(connector=connector) as session, \
                    session.get("https://site.test:8443/blob", ssl=ca) as response:
                assert response.status == 200 and await response.read() == BODY
            assert stack.stats["tcp.active_opens"] >= opened + 4, "the connections went through unik's stack"
    run_unik(main())


def test_httpx_async_client_plain_and_verified_tls(netns: Namespace, site: Path) -> None:
    async def main() -> None:
        async with served(netns, site) as stack:
            opened = stack.stats["tcp.active_opens"]
            ca = ssl.create_default_context(cafile=str(site / "ca.pem"))
            async with httpx.AsyncClient(verify=ca) as client:
                plain = await client.get("http://site.test:8080/blob")
                assert plain.status_code == 200 and plain.content == BODY
                secure = await client.get("https://site.test:8443/blob")
                assert secure.status_code == 200 and secure.content == BODY
            async with httpx.AsyncClient() as client:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await client.get("https://site.test:8443/blob")
            assert stack.stats["tcp.active_opens"] >= opened + 3, "the connections went through unik's stack"
    run_unik(main())
