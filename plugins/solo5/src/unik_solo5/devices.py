"""The spt devices: the unix target's implementations on descriptors the tender opened.

The tender (``unik-spt``) opens the TAP and block files before Python starts and
describes them in ``UNIK_SPT_DEVICES``; :func:`handed` parses that.  Under the seccomp
filter nothing can be opened, so :class:`SptTap` and :class:`SptBlock` build the unix
target's :class:`~unik_unix.tap.TapNetwork` and :class:`~unik_unix.block.FileBlock`
around those descriptors instead of opening anything, and every block request runs on
the loop's thread (the filter admits no thread creation).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from unik.devices import Offloads
from unik.errors import DeviceUnavailable
from unik_unix.block import FileBlock
from unik_unix.tap import TapNetwork, random_mac

ENV = "UNIK_SPT_DEVICES"


@dataclass(frozen=True)
class Handed:
    """One device the tender opened: ``kind`` is ``net`` or ``block``."""

    name: str
    kind: str
    fd: int
    #: The MTU of a TAP, the size in bytes of a block file.
    size: int
    #: The TAP's interface name or the block file's path.
    source: str


def parse(text: str) -> dict[str, Handed]:
    """Parse the tender's description: tab-separated ``NAME KIND FD SIZE SOURCE`` lines."""
    out: dict[str, Handed] = {}
    for line in text.splitlines():
        if not line:
            continue
        parts = line.split("\t", 4)
        if len(parts) != 5 or parts[1] not in ("net", "block"):
            raise DeviceUnavailable(f"{ENV}: malformed line {line!r}")
        name, kind, fd, size, source = parts
        out[name] = Handed(name, kind, int(fd), int(size), source)
    return out


def handed() -> dict[str, Handed]:
    """The devices the tender handed to this process (none outside the tender)."""
    return parse(os.environ.get(ENV, ""))


_HANDED: Mapping[str, Handed] | None = None


def _device(name: str, kind: str) -> Handed:
    global _HANDED
    if _HANDED is None:
        _HANDED = handed()
    dev = _HANDED.get(name)
    if dev is None or dev.kind != kind:
        opt = "--net" if kind == "net" else "--block"
        raise DeviceUnavailable(
            f"{kind} device {name!r} was not opened by the spt tender: run with {opt}:{name}=..."
        )
    return dev


class SptTap(TapNetwork):
    """A TAP the tender opened (vnet header, no offloads, up, non-blocking)."""

    @classmethod
    async def connect(cls, name: str, ifname: str | None = None, offload: bool = False) -> SptTap:
        """Wrap the handed descriptor; nothing is opened."""
        dev = _device(name, "net")
        return cls(name, dev.source, dev.fd, random_mac(), dev.size, Offloads())


class SptBlock(FileBlock):
    """A block file the tender opened (read-write, flock'ed); requests never leave the loop's thread."""

    inline_limit = sys.maxsize  # the filter admits no threads

    @classmethod
    async def connect(
        cls, name: str, path: str | None = None, file: str | None = None,
        read_only: bool = False, sector_size: int = 512,
    ) -> SptBlock:
        """Wrap the handed descriptor; nothing is opened."""
        dev = _device(name, "block")
        if dev.size == 0 or dev.size % sector_size:
            raise DeviceUnavailable(
                f"block device {name!r}: {dev.source} is {dev.size} bytes, not a non-zero multiple of "
                f"the {sector_size}-byte sector size"
            )
        return cls(name, dev.source, dev.fd, dev.size // sector_size, sector_size, read_only)
