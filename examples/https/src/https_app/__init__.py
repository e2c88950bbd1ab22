"""The http example over TLS: the same handler, its flows wrapped by unik's TLS device.

Only ``start`` differs from ``examples/http``: it asks for a ``tls: TLS`` device too and
listens with ``tls.start_server`` instead of ``stack.tcp.start_server``.
"""

from __future__ import annotations

import asyncio

from unik.devices import KVRO, TLS, Console, EntryKind, FlowReader, FlowWriter, Stack

TYPES = {
    "html": "text/html; charset=utf-8", "css": "text/css", "js": "text/javascript",
    "txt": "text/plain; charset=utf-8", "json": "application/json", "png": "image/png",
    "svg": "image/svg+xml", "ico": "image/x-icon",
}
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
MAX_HEADER = 16 * 1024
IDLE_TIMEOUT = 30.0


def _content_type(key: str) -> str:
    return TYPES.get(key.rsplit(".", 1)[-1].lower(), "application/octet-stream")


async def _resolve(htdocs: KVRO, target: str) -> str | None:
    """The store key for a request target: ``/`` and directories serve ``index.html``."""
    path = target.split("?", 1)[0].strip("/")
    kind = await htdocs.exists(path) if path else EntryKind.DICTIONARY
    if kind is EntryKind.DICTIONARY:
        index = f"{path}/index.html" if path else "index.html"
        return index if await htdocs.exists(index) is EntryKind.VALUE else None
    return path if kind is EntryKind.VALUE else None


def _response(status: int, body: bytes, ctype: str, keep_alive: bool, head: bool = False) -> bytes:
    headers = (
        f"HTTP/1.1 {status} {REASONS[status]}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\nServer: unik\r\n\r\n"
    ).encode()
    return headers if head else headers + body


async def start(stack: Stack, tls: TLS, htdocs: KVRO, console: Console, *, port: int = 8443) -> None:
    """Serve ``htdocs`` over TLS on ``port`` until stopped (key ``--port``)."""

    async def handle(reader: FlowReader, writer: FlowWriter) -> None:
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
                    return
                if len(head) > MAX_HEADER:
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                keep_alive = headers.get("connection", "").lower() != "close"
                if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                    writer.write(_response(400, b"bad request\n", TYPES["txt"], False))
                    await writer.drain()
                    return
                method, target, version = parts
                if version == "HTTP/1.0":
                    keep_alive = headers.get("connection", "").lower() == "keep-alive"
                if method not in ("GET", "HEAD"):
                    writer.write(_response(405, b"method not allowed\n", TYPES["txt"], keep_alive))
                else:
                    key = await _resolve(htdocs, target)
                    if key is None:
                        writer.write(_response(404, b"not found\n", TYPES["txt"], keep_alive, method == "HEAD"))
                    else:
                        body = await htdocs.get(key)
                        writer.write(_response(200, body, _content_type(key), keep_alive, method == "HEAD"))
                await writer.drain()
                if not keep_alive:
                    return
        except ConnectionError:
            return
        finally:
            writer.close()

    server = await tls.start_server(handle, port)
    console.log(f"serving https on {stack.ipv4.address}:{port}")
    await server.serve_forever()
