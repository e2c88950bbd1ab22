"""Addresses of both families as the transports see them: 4 or 16 bytes, and their text.

TCP and UDP key their endpoints by raw addresses and stay independent of the family; the
length of an address is its family (4: IPv4, 16: IPv6).  Text is parsed here for both:
dotted quads by :func:`unik_tcpip.iface.parse_quad` (no :mod:`ipaddress`, which costs
~15 ms as a VM boots), IPv6 by :func:`socket.inet_pton` (loaded with asyncio anyway).
"""

from __future__ import annotations

import socket

from .iface import parse_quad

#: The families by address length, as :mod:`socket` names them.
AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
FAMILY = {4: AF_INET, 16: AF_INET6}


def ip_bytes(text: str) -> bytes:
    """``"10.0.0.1"`` or ``"2001:db8::1"`` (a ``%zone`` suffix is ignored) as 4 or 16 bytes.

    Raises :class:`ValueError` naming the text for anything else.
    """
    value = parse_quad(text)
    if value is not None:
        return value.to_bytes(4, "big")
    if type(text) is str and ":" in text:
        try:
            return socket.inet_pton(AF_INET6, text.partition("%")[0])
        except OSError:
            pass
    else:
        import ipaddress  # the unusual IPv4 forms, and the error message

        try:
            return ipaddress.IPv4Address(text).packed
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not an IPv4 or IPv6 address")


def ip_text(raw: bytes) -> str:
    """4 bytes as ``"10.0.0.1"``, 16 as ``"2001:db8::1"`` (RFC 5952's canonical form)."""
    if len(raw) == 4:
        return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    if len(raw) == 16:
        return socket.inet_ntop(AF_INET6, bytes(raw))
    raise ValueError(f"an address is 4 or 16 bytes, not {len(raw)}")


def family(raw: bytes) -> int:
    """:data:`AF_INET` or :data:`AF_INET6` for an address of 4 or 16 bytes."""
    return FAMILY[len(raw)]


def sockaddr(raw: bytes, port: int) -> tuple[str, int] | tuple[str, int, int, int]:
    """What a socket of the address's family reports (``getpeername``): IPv6 adds flow info and scope."""
    if len(raw) == 16:
        return (ip_text(raw), port, 0, 0)
    return (ip_text(raw), port)
