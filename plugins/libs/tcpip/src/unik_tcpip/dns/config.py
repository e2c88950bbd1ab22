"""The resolver's keys as the stack reads them: ``--dns``, ``--dns-search``, ``--hosts``.

The plugin's key checks call these same parsers, so ``unik configure`` and the stack
starting inside the artifact agree on what is valid.
"""

from __future__ import annotations

import socket

from .wire import InvalidName, encode_name


def _address(text: str) -> str:
    """An IPv4 or IPv6 address literal in its canonical spelling, or :class:`ValueError`."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return socket.inet_ntop(family, socket.inet_pton(family, text))
        except (OSError, ValueError):
            continue
    raise ValueError(f"{text!r} is not an IPv4 or IPv6 address")


def parse_servers(value: str | None) -> tuple[str, ...]:
    """``--dns=10.0.0.1,2001:db8::53``: the servers, in order."""
    if not value:
        return ()
    servers = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            servers.append(_address(part))
        except ValueError:
            raise ValueError(f"{part!r} is not an IPv4 or IPv6 address: give servers as "
                             f"--dns=ADDR[,ADDR] (e.g. --dns=10.0.0.1)") from None
    return tuple(dict.fromkeys(servers))


def parse_search(value: str | None) -> tuple[str, ...]:
    """``--dns-search=corp.example,example``: domains tried after short names."""
    if not value:
        return ()
    domains = []
    for part in value.split(","):
        part = part.strip().strip(".")
        if not part:
            continue
        try:
            encode_name(part)
        except InvalidName as exc:
            raise ValueError(f"search domain {exc}") from None
        domains.append(part.lower())
    return tuple(dict.fromkeys(domains))


def parse_hosts(value: str | None) -> dict[str, tuple[str, ...]]:
    """``--hosts api.example=10.0.0.5 --hosts api.example=2001:db8::5``: static names, each with its addresses.

    Repeated options arrive comma-separated; a name given twice collects both addresses.
    """
    hosts: dict[str, tuple[str, ...]] = {}
    if not value:
        return hosts
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        name, sep, address = entry.partition("=")
        name = name.strip().rstrip(".").lower()
        if not sep or not name:
            raise ValueError(f"{entry!r} is not NAME=ADDR (e.g. --hosts api.example=10.0.0.5)")
        try:
            encode_name(name)
        except InvalidName as exc:
            raise ValueError(f"{entry!r}: {exc}") from None
        try:
            canonical = _address(address.strip())
        except ValueError:
            raise ValueError(f"{entry!r}: {address.strip()!r} is not an IPv4 or IPv6 address") from None
        hosts[name] = tuple(dict.fromkeys((*hosts.get(name, ()), canonical)))
    return hosts
