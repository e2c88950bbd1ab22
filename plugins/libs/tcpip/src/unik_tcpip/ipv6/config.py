"""``--ipv6=ADDR/PREFIX`` and ``--ipv6-gateway=ADDR``: checked the same way at configure time and at start."""

from __future__ import annotations

import socket

from . import wire


class InvalidIPv6(ValueError):
    """A bad ``--ipv6`` or ``--ipv6-gateway``: ``key`` names which, the message says why."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(why)
        self.key = key


def _address(text: str, key: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET6, text)
    except (OSError, TypeError):
        raise InvalidIPv6(key, f"{text!r} is not an IPv6 address such as 2001:db8::2") from None


def ipv6_config(value: str, gateway: str | None) -> tuple[tuple[bytes, int] | None, bytes | None]:
    """``(address, prefix length)`` of ``--ipv6`` (``None`` when empty) and the gateway's address.

    The address must be a unicast one that is not the unspecified, loopback or link-local
    address (the link-local address is always made from the MAC); the gateway must be
    link-local (as routers advertise themselves, RFC 4861 8) or inside the prefix.
    """
    static: tuple[bytes, int] | None = None
    if value:
        text, slash, prefix_text = str(value).partition("/")
        if not slash:
            raise InvalidIPv6("ipv6", f"{value!r} needs a prefix length, e.g. {value}/64")
        if not (prefix_text.isascii() and prefix_text.isdigit() and len(prefix_text) <= 3
                and 1 <= int(prefix_text) <= 128):
            raise InvalidIPv6("ipv6", f"{prefix_text!r} is not a prefix length 1-128 (e.g. {text}/64)")
        address = _address(text, "ipv6")
        if wire.is_multicast(address) or address in (wire.UNSPECIFIED, wire.LOOPBACK) or (
                wire.is_link_local(address)):
            raise InvalidIPv6("ipv6", f"{text} is not a global or unique-local unicast address (the link-local "
                              "address is made from the MAC)")
        static = (address, int(prefix_text))
    gw: bytes | None = None
    if gateway:
        gw = _address(str(gateway).partition("%")[0], "ipv6_gateway")
        if wire.is_multicast(gw) or gw in (wire.UNSPECIFIED, wire.LOOPBACK):
            raise InvalidIPv6("ipv6_gateway", f"{gateway} is not a router's unicast address")
        if not wire.is_link_local(gw) and (static is None or not wire.prefix_match(gw, static[0], static[1])):
            where = f"the prefix of --ipv6 {value}" if static else "a link-local address (fe80::/10)"
            raise InvalidIPv6("ipv6_gateway", f"{gateway} is not on the link: use {where}")
    return static, gw
