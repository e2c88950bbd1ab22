"""Refusing the host's sockets inside an artifact whose target has no host network.

In a VM (virtio, xen), under spt's sandbox or on hvt there is no host network: the
guest kernel's interface has no address (the network is unik's own stack), the sandbox
refuses the system calls, hvt has no kernel at all.  A library that reaches for the
``socket`` module there would wait for a connection that never comes, be killed by the
filter, or fail with a misleading ``ENETUNREACH``.  :func:`refuse` makes every such call
fail at once instead, with a :class:`unik.errors.HostNetworkUnavailable` that names the
call and the asyncio event-loop method to use: the loop's network methods use unik's
stack.  It is one audit hook (:func:`sys.addaudithook`), installed by the generated
``main.py`` of those targets (:attr:`unik.target.Target.host_network`); socket pairs and
UNIX-domain sockets (asyncio's own wake-up pipe) stay allowed.
"""

from __future__ import annotations

import codecs
import socket
import sys
from typing import Any

from .errors import HostNetworkUnavailable

#: What to use instead of each refused call (audit event -> event-loop method).
INSTEAD = {
    "socket.__new__": "asyncio.open_connection / loop.create_connection to connect, asyncio.start_server / "
                      "loop.create_server to listen, loop.create_datagram_endpoint for UDP (aiohttp's client: "
                      "aiohttp.TCPConnector(socket_factory=unik_tcpip.aio.stack_socket))",
    "socket.getaddrinfo": "await loop.getaddrinfo(...), and asyncio.open_connection / loop.create_connection "
                          "rather than socket.create_connection",
    "socket.gethostbyname": "await loop.getaddrinfo(...)",
    "socket.gethostbyname_ex": "await loop.getaddrinfo(...)",
    "socket.gethostbyaddr": "await loop.getnameinfo(...)",
    "socket.getnameinfo": "await loop.getnameinfo(...)",
}
_INET = (socket.AF_INET, socket.AF_INET6)
_target: str | None = None


def refused() -> str | None:
    """The target whose artifact refuses host sockets, or ``None`` when they are allowed."""
    return _target


def _describe(event: str, args: tuple[Any, ...]) -> str:
    if event == "socket.__new__":
        family, kind = args[1], args[2]
        names = [_name(socket.AddressFamily, family, "AF_"), _name(socket.SocketKind, kind & 0xF, "SOCK_")]
        return f"socket.socket({', '.join(names)})"
    return f"{event}({', '.join(repr(a) for a in args[:2])})"


def _name(enum: Any, value: int, prefix: str) -> str:
    try:
        return str(enum(value).name)
    except ValueError:
        return f"{prefix}{value}"


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not event.startswith("socket.") or event not in INSTEAD:
        return
    if event == "socket.__new__" and args[1] not in _INET:
        return
    raise HostNetworkUnavailable(
        f"{_describe(event, args)}: the {_target} target has no host network; this application's network is "
        f"unik's TCP/IP stack, reached through asyncio's event loop: use {INSTEAD[event]} instead")


def _ascii_idna(name: str) -> codecs.CodecInfo | None:
    """An ``idna`` codec for ASCII names, found only where the image left the real one out.

    CPython encodes a host name with ``idna`` *before* it raises the ``socket.getaddrinfo``
    (or ``gethostbyname``) audit event, and VM images leave that codec out (it brings
    ``unicodedata``): without this, ``socket.create_connection("10.0.0.1", 80)`` failed with
    ``LookupError: unknown encoding: idna`` instead of the refusal that says what to use.
    Codec search functions are asked in order, so the standard ``encodings`` one wins wherever
    ``encodings.idna`` exists.
    """
    if name != "idna":
        return None

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        if not text.isascii():
            raise UnicodeError(f"{text!r}: a non-ASCII host name needs the idna codec, which this image "
                               "leaves out; give its ASCII (xn--) form")
        return text.encode("ascii"), len(text)

    def decode(data: Any, errors: str = "strict") -> tuple[str, int]:  # any buffer
        return bytes(data).decode("ascii"), len(data)

    return codecs.CodecInfo(encode, decode, name="idna")


def refuse(target: str) -> None:
    """Make the host's IPv4/IPv6 sockets and name lookups fail at once on ``target`` (for good)."""
    global _target
    if _target is None:
        sys.addaudithook(_hook)
        codecs.register(_ascii_idna)
    _target = target
