"""The devices the spt tender opened, and how they reach unik-lib-fdio's devices.

The tender (``unik-spt``) opens the TAP and block files before Python starts and
describes them in ``UNIK_SPT_DEVICES``; :func:`handed` parses that.  The devices are
unik-lib-fdio's :class:`~unik_fdio.tap.TapNetwork` and
:class:`~unik_fdio.block.FileBlock` (the unix target's too), which adopt an open descriptor (``fd=``): the spt
providers bind their ``fd``, ``mtu``/``net_mac`` and ``size`` options to per-device keys,
and :func:`key_args` gives those keys the tender's values before the application
starts.  Given all of them, adopting a device makes no system call, so it works under
the filter.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from unik.errors import DeviceUnavailable

ENV = "UNIK_SPT_DEVICES"


@dataclass(frozen=True)
class Handed:
    """One device the tender opened: ``kind`` is ``net`` or ``block``."""

    name: str
    kind: str
    fd: int
    #: The MTU of a TAP, the size in bytes of a block file.
    size: int
    #: The MAC address of the unik side of a TAP (``02:...``), "" for a block file.
    mac: str
    #: The TAP's interface name or the block file's path.
    source: str


def parse(text: str) -> dict[str, Handed]:
    """Parse the tender's description: tab-separated ``NAME KIND FD SIZE MAC SOURCE`` lines."""
    out: dict[str, Handed] = {}
    for line in text.splitlines():
        if not line:
            continue
        parts = line.split("\t", 5)
        if len(parts) != 6 or parts[1] not in ("net", "block"):
            raise DeviceUnavailable(f"{ENV}: malformed line {line!r}")
        name, kind, fd, size, mac, source = parts
        try:
            out[name] = Handed(name, kind, int(fd), int(size), "" if mac == "-" else mac, source)
        except ValueError:
            raise DeviceUnavailable(f"{ENV}: malformed line {line!r}") from None
    return out


def handed() -> dict[str, Handed]:
    """The devices the tender handed to this process (none outside the tender)."""
    return parse(os.environ.get(ENV, ""))


def key_args(devices: dict[str, Handed], known: set[str]) -> dict[str, list[str]]:
    """The per-device key bindings that make the spt providers adopt the handed devices.

    Only keys in ``known`` (the plan's) are bound: ``{"fd": ["service=3"], ...}``.
    """
    args: dict[str, list[str]] = {}

    def bind(key: str, device: str, value: object) -> None:
        if key in known:
            args.setdefault(key, []).append(f"{device}={value}")

    for dev in devices.values():
        bind("fd", dev.name, dev.fd)
        if dev.kind == "net":
            bind("net", dev.name, dev.source)
            bind("mtu", dev.name, dev.size)
            bind("net_mac", dev.name, dev.mac)
        else:
            bind("block", dev.name, dev.source)
            bind("size", dev.name, dev.size)
    return args
