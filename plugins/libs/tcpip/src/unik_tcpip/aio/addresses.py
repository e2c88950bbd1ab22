"""``getaddrinfo``/``getnameinfo`` for the unik event loop: address literals here, names by the stack's resolver.

Names go to :meth:`unik_tcpip.stack.TcpipStack.getaddrinfo` (its DNS stub resolver,
``--dns``/``--hosts``/DHCP); nothing here calls the host's resolver: inside a unikernel
there is none.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..stack import TcpipStack

#: What :func:`getaddrinfo` returns: ``(family, type, proto, canonname, sockaddr)``.
AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]


def literal_family(host: str) -> int | None:
    """``AF_INET`` or ``AF_INET6`` when ``host`` is an address literal, else ``None``."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host.partition("%")[0] if family == socket.AF_INET6 else host)
        except (OSError, ValueError):
            continue
        return family
    return None


def port_number(port: int | str | bytes | None) -> int:
    """A port as an integer: numbers and digit strings (service names need ``/etc/services``, absent here)."""
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode("ascii", "replace")
    if isinstance(port, str):
        if not port.isdigit():
            raise socket.gaierror(socket.EAI_SERVICE, f"service {port!r}: unik resolves no service names, "
                                                      f"give the port number")
        port = int(port)
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise socket.gaierror(socket.EAI_SERVICE, f"bad port {port!r}")
    return port


def literal_infos(address: str, port: int, family: int, type: int, proto: int, flags: int) -> list[AddrInfo]:
    """The 5-tuples of an address literal, one per socket type (stream and datagram when ``type`` is 0)."""
    found = literal_family(address)
    assert found is not None
    if family not in (0, socket.AF_UNSPEC, found):
        raise socket.gaierror(socket.EAI_ADDRFAMILY, f"{address} is not an address of family {family!r}")
    sockaddr: tuple[Any, ...] = (address, port) if found == socket.AF_INET else (address, port, 0, 0)
    types = [type] if type else [socket.SOCK_STREAM, socket.SOCK_DGRAM]
    out: list[AddrInfo] = []
    for kind in types:
        number = proto or (socket.IPPROTO_TCP if kind == socket.SOCK_STREAM else socket.IPPROTO_UDP)
        out.append((found, kind, number, address if flags & socket.AI_CANONNAME and not out else "", sockaddr))
    return out


async def getaddrinfo(stack: TcpipStack, host: str | bytes | None, port: int | str | bytes | None, family: int = 0,
                      type: int = 0, proto: int = 0, flags: int = 0) -> list[AddrInfo]:
    """:meth:`asyncio.loop.getaddrinfo` on ``stack``: literals here, names by its resolver."""
    if isinstance(host, bytes):
        # A DNS name in bytes is already its ASCII (xn--) form, which the resolver takes as it is; the
        # "idna" codec would also bring unicodedata (1 MB) into every VM image (tests/virtio/test_image).
        try:
            host = host.decode("ascii")
        except UnicodeDecodeError:
            raise socket.gaierror(socket.EAI_NONAME, f"{host!r}: a name in bytes must be ASCII (its xn-- form)") \
                from None
    number = port_number(port)
    if host is None or host == "":
        wildcard = flags & socket.AI_PASSIVE
        if family == socket.AF_INET6:
            return literal_infos("::" if wildcard else "::1", number, family, type, proto, flags)
        return literal_infos("0.0.0.0" if wildcard else "127.0.0.1", number, family, type, proto, flags)
    if literal_family(host) is not None:
        return literal_infos(host, number, family, type, proto, flags)
    if flags & socket.AI_NUMERICHOST:
        raise socket.gaierror(socket.EAI_NONAME, f"{host!r} is not a numeric address (AI_NUMERICHOST)")
    return await stack.getaddrinfo(host, number, family, type, proto, flags)


def getnameinfo(sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
    """:meth:`asyncio.loop.getnameinfo`: numeric always (unik has no reverse lookups nor service names)."""
    if not isinstance(sockaddr, tuple) or len(sockaddr) not in (2, 4):
        raise TypeError(f"getnameinfo() argument 1 must be an address tuple, not {sockaddr!r}")
    host, port = sockaddr[0], sockaddr[1]
    if not isinstance(host, str) or literal_family(host) is None:
        raise socket.gaierror(socket.EAI_NONAME, f"{host!r} is not an IP address")
    if flags & socket.NI_NAMEREQD:
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: unik has no reverse lookups (NI_NAMEREQD)")
    return host, str(port_number(port))
