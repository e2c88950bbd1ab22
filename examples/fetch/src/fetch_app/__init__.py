"""Fetch a URL by name over HTTPS and print the status and a digest of the body.

The name is resolved by the stack (unik's resolver on unik-lib-tcpip; the host's on
the socket stack), the connection made by Happy Eyeballs, and TLS sends the host as
SNI and checks it against the certificate: ``tls.open_connection(host, port)`` does all
three.  The response is HTTP/1.1 with ``Connection: close``; its body (``Content-Length``,
chunked, or up to the end) is hashed as it arrives.
"""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import urlsplit

from unik.devices import TLS, Console, FlowReader, Stack
from unik.errors import TLSError

#: The longest header block accepted.
MAX_HEADER = 64 * 1024
CHUNK = 64 * 1024


class FetchError(Exception):
    """The URL cannot be fetched; the message says why."""


def parse_url(url: str) -> tuple[str, int, str]:
    """``https://host[:port]/path?query`` as (host, port, target); :class:`FetchError` otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise FetchError(f"{url!r}: only https:// URLs (give --url=https://HOST/PATH)")
    if not parts.hostname:
        raise FetchError(f"{url!r} names no host")
    try:
        port = parts.port or 443
    except ValueError:
        raise FetchError(f"{url!r}: the port is not a number from 1 to 65535") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return parts.hostname, port, target


async def _body(reader: FlowReader, headers: dict[str, str], digest: hashlib._Hash) -> int:
    """Read the body into ``digest``; its length."""
    size = 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            line = await reader.readuntil(b"\r\n")
            length = int(line.split(b";", 1)[0].strip(), 16)
            if length == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return size
            data = await reader.readexactly(length)
            digest.update(data)
            size += length
            await reader.readexactly(2)
    if "content-length" in headers:
        left = int(headers["content-length"])
        while left:
            data = await reader.read(min(left, CHUNK))
            if not data:
                raise FetchError(f"the body ended {left} bytes early")
            digest.update(data)
            size += len(data)
            left -= len(data)
        return size
    while data := await reader.read(CHUNK):
        digest.update(data)
        size += len(data)
    return size


async def fetch(stack: Stack, tls: TLS, url: str) -> tuple[int, str, int, str, str]:
    """GET ``url``: (status, reason, body length, SHA-256 of the body, peer address)."""
    host, port, target = parse_url(url)
    reader, writer = await tls.open_connection(host, port)
    try:
        authority = host if port == 443 else f"{host}:{port}"
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: unik-fetch\r\n"
                     f"Accept: */*\r\nConnection: close\r\n\r\n".encode("ascii"))
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEADER:
            raise FetchError("the response header is too long")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise FetchError(f"not an HTTP/1.x response: {status_line[:80]!r}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        digest = hashlib.sha256()
        size = await _body(reader, headers, digest)
        peer = writer.get_extra_info("peername")
        return int(code), reason, size, digest.hexdigest(), str(peer[0]) if peer else "?"
    finally:
        writer.close()


async def start(stack: Stack, tls: TLS, console: Console, *, url: str = "https://example.com/",
                timeout: float = 30.0) -> int:
    """Fetch ``--url`` within ``--timeout`` seconds; print the status and the body's SHA-256.

    The exit status is 0 for a 2xx response, 1 for another status, 2 when the URL
    could not be fetched (no such name, no connection, a certificate that does not
    verify), the reason printed.
    """
    try:
        status, reason, size, digest, peer = await asyncio.wait_for(fetch(stack, tls, url), timeout)
    except asyncio.TimeoutError:  # before OSError: from Python 3.11 it is the builtin TimeoutError, an OSError
        console.log(f"fetch {url}: no complete response within {timeout:g} s (--timeout)")
        return 2
    except (FetchError, TLSError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        console.log(f"fetch {url}: {exc or type(exc).__name__}")
        return 2
    console.log(f"{status} {reason} from {peer}")
    console.log(f"{size} bytes sha256={digest}")
    return 0 if 200 <= status < 300 else 1
