"""hvt's network and block devices: what the monitor opened, as ``/dev/hvt/{net,block}/NAME`` in the guest.

The guest runtime serves reads and writes of that descriptor from rings of frames
(behind virtio-net's 12-byte header, as the monitor opened the TAP with
``IFF_VNET_HDR``) that travel with the event loop's turns: one exit per turn sends what
was written, fills the receive ring and waits when nothing came (``hvt/runtime.c``); its
MTU and MAC come from ``SIOCGIFMTU``/``SIOCGIFHWADDR``; unik-lib-fdio's
:class:`~unik_fdio.tap.TapNetwork` adopts it, without offloads.  A block device's reads,
writes and flushes are the block hypercalls; unik-lib-fdio's
:class:`~unik_fdio.block.FileBlock` adopts it, every request on the loop's thread (no
threads in the guest).
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys

from unik.errors import DeviceUnavailable
from unik_fdio.block import FileBlock
from unik_fdio.tap import TapNetwork

SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927


class HvtNetwork:
    """Connects a :class:`TapNetwork` over the guest runtime's network device."""

    @classmethod
    async def connect(cls, name: str, ifname: str | None = None) -> TapNetwork:
        """Open ``/dev/hvt/net/<name>`` and adopt it (``ifname``: the host's TAP, for messages)."""
        try:
            fd = os.open(f"/dev/hvt/net/{name}", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise DeviceUnavailable(f"network device {name!r}: the monitor has no such device "
                                    f"(give it with --net {name}=TAP)") from exc
        req = struct.pack("16s24x", name.encode()[:15])
        mtu = struct.unpack_from("i", fcntl.ioctl(fd, SIOCGIFMTU, req), 16)[0]
        mac = fcntl.ioctl(fd, SIOCGIFHWADDR, req)[18:24]
        return TapNetwork.open_sync(name, ifname or name, False, fd=fd, mtu=mtu, mac=bytes(mac))


class HvtBlock:
    """Connects a :class:`~unik_fdio.block.FileBlock` over the guest runtime's block device."""

    @classmethod
    async def connect(cls, name: str, path: str | None = None, file: str | None = None, read_only: bool = False,
                      sector_size: int = 512) -> FileBlock:
        """Open ``/dev/hvt/block/<name>`` (the file the monitor opened) and adopt it; requests stay inline."""
        try:
            fd = os.open(f"/dev/hvt/block/{name}", os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise DeviceUnavailable(f"block device {name!r}: the monitor has no such device "
                                    f"(give it with --block {name}=FILE)") from exc
        return FileBlock.open_sync(name, path=path or file or name, read_only=read_only, sector_size=sector_size,
                                   fd=fd, size=os.fstat(fd).st_size, inline_limit=sys.maxsize)
