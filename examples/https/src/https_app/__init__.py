"""The http example over TLS: the same handler, its flows wrapped by unik's TLS device.

Everything but ``start`` is ``examples/http``'s code, unchanged (a test keeps them equal):
``start`` asks for a ``tls: TLS`` device too and listens with ``tls.start_server``
instead of ``stack.tcp.start_server``.  Bodies are streamed in chunks, as there.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote

from unik.devices import KVRO, TLS, Console, EntryKind, FlowReader, FlowWriter, Stack
from unik.errors import DeviceError

TYPES = {
    "html": "text/html; charset=utf-8", "css": "text/css", "js": "text/javascript",
    "txt": "text/plain; charset=utf-8", "json": "application/json", "png": "image/png",
    "svg": "image/svg+xml", "ico": "image/x-icon",
}
REASONS = {200: "OK", 206: "Partial Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           416: "Range Not Satisfiable", 500: "Internal Server Error", 505: "HTTP Version Not Supported"}
CHUNK = 64 * 1024
MAX_HEADER = 16 * 1024
TIMEOUT = 30.0  # seconds to wait for a request, or for a client to take the next chunk


def _content_type(key: str) -> str:
    return TYPES.get(key.rsplit(".", 1)[-1].lower(), "application/octet-stream")


def _header(status: int, length: int, keep_alive: bool, ctype: str = TYPES["txt"], extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {ctype}\r\nContent-Length: {length}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\nServer: unik\r\n{extra}\r\n").encode()


def _parse(head: bytes) -> tuple[str, str, str, dict[str, str]] | None:
    """Method, target, version and headers (lower-case names) of a request, or ``None``."""
    request, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    parts = request.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/") or any(":" not in line for line in lines):
        return None
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return parts[0], parts[1], parts[2], headers


async def _resolve(htdocs: KVRO, target: str) -> str | None:
    """The store key for a request target (``/`` and directories: their ``index.html``), or ``None``.

    Percent-escapes are decoded first, so ``..`` cannot hide as ``%2e%2e``; a target
    naming ``.`` or ``..`` is refused before the store sees it.
    """
    segments = [s for s in unquote(target.split("?", 1)[0], errors="strict").split("/") if s]
    if any(s in (".", "..") or "\\" in s or "\0" in s for s in segments):
        return None
    path = "/".join(segments)
    kind = await htdocs.exists(path) if path else EntryKind.DICTIONARY
    if kind is EntryKind.DICTIONARY:
        path = f"{path}/index.html" if path else "index.html"
        kind = await htdocs.exists(path)
    return path if kind is EntryKind.VALUE else None


def _range(value: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` of a single ``bytes=`` range (end exclusive); ``None``: send it all.

    Several ranges, or one that cannot be parsed, are ignored (RFC 9110 14.2); one that
    starts past the end gives ``(size, size)``: unsatisfiable.
    """
    unit, _, spec = (value or "").partition("=")
    first, dash, last = spec.partition("-")
    if unit.strip() != "bytes" or "," in spec or not dash or not (first + last).isdigit():
        return None
    if not first:  # the last N bytes
        return (max(0, size - int(last)), size) if int(last) else (size, size)
    start = int(first)
    if last and int(last) < start:
        return None
    end = min(size, int(last) + 1) if last else size
    return (start, end) if start < size and start < end else (size, size)


async def _send(writer: FlowWriter, data: bytes) -> None:
    writer.write(data)
    await asyncio.wait_for(writer.drain(), TIMEOUT)


async def _prepare(htdocs: KVRO, method: str, target: str, headers: dict[str, str],
                   keep_alive: bool) -> tuple[bytes, str, int, int]:
    """The response's head (and a short body), and the key and byte range to stream after it."""
    if method not in ("GET", "HEAD"):
        return _header(405, 19, keep_alive, extra="Allow: GET, HEAD\r\n") + b"method not allowed\n", "", 0, 0
    try:
        key = await _resolve(htdocs, target)
    except UnicodeDecodeError:
        key = None
    if key is None:
        return _header(404, 10, keep_alive) + (b"" if method == "HEAD" else b"not found\n"), "", 0, 0
    size = await htdocs.size(key)
    start, end = _range(headers.get("range"), size) or (0, size)
    if start == size and size:
        return _header(416, 0, keep_alive, extra=f"Content-Range: bytes */{size}\r\n"), "", 0, 0
    partial = f"Content-Range: bytes {start}-{end - 1}/{size}\r\n" if end - start < size else ""
    head = _header(206 if partial else 200, end - start, keep_alive, _content_type(key),
                   partial + "Accept-Ranges: bytes\r\n")
    return head, key, (start if method == "GET" else end), end


async def _stream(htdocs: KVRO, writer: FlowWriter, head: bytes, key: str, offset: int, end: int) -> None:
    """Send ``head``, then bytes ``offset`` to ``end`` of ``key``, one chunk in memory at a time.

    The head leaves with the first chunk: written apart, a short body waits for the ACK of
    the head wherever Nagle's algorithm is on (unik's stack by default; asyncio sets
    TCP_NODELAY on its sockets), a delayed ACK of up to 40 ms per request.
    """
    while offset < end:
        try:
            chunk = await htdocs.get_partial(key, offset, min(CHUNK, end - offset))
            if not chunk:
                raise DeviceError(f"{key} ended at byte {offset}, before {end}")
        except DeviceError:
            if head:
                await _send(writer, head)  # the status went out; the short body tells the rest
            raise
        await _send(writer, head + chunk)
        head = b""
        offset += len(chunk)
    if head:
        await _send(writer, head)


async def serve(htdocs: KVRO, console: Console, reader: FlowReader, writer: FlowWriter) -> None:
    """Answer requests on one connection until the client closes it, asks to, or idles."""
    try:
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
                return
            request = _parse(head) if len(head) <= MAX_HEADER else None
            if request is None:
                await _send(writer, _header(400, 12, False) + b"bad request\n")
                return
            method, target, version, headers = request
            if version not in ("HTTP/1.1", "HTTP/1.0"):
                await _send(writer, _header(505, 0, False))
                return
            connection = headers.get("connection", "").lower()
            keep_alive = connection == "keep-alive" if version == "HTTP/1.0" else connection != "close"
            # a request body is not read: close after answering so it is not taken for the next request
            body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
            keep_alive = keep_alive and not body
            try:
                head, key, offset, end = await _prepare(htdocs, method, target, headers, keep_alive)
            except DeviceError as exc:  # the store failed before anything was sent
                console.log(f"{method} {target}: {exc}")
                await _send(writer, _header(500, 22, False) + b"internal server error\n")
                return
            try:
                await _stream(htdocs, writer, head, key, offset, end)
            except DeviceError as exc:  # too late for a status: closing tells the client the body is short
                console.log(f"{method} {target}: {exc}")
                return
            if not keep_alive:
                return
    except (ConnectionError, asyncio.TimeoutError):
        return
    finally:
        writer.close()


async def start(stack: Stack, tls: TLS, htdocs: KVRO, console: Console, *, port: int = 8443) -> None:
    """Serve ``htdocs`` over TLS on ``port`` until stopped (key ``--port``)."""
    server = await tls.start_server(lambda r, w: serve(htdocs, console, r, w), port)
    console.log(f"serving https on {stack.ipv4.address}:{port}")
    await server.serve_forever()
