"""Inside a Xen guest: the raw blkfront disk as a :class:`unik.devices.Block`.

The emitter names each disk of the plan with a Xen virtual device (``xvda``, ``xvdb``...,
in the order of the plan) in ``<name>.xl`` and writes the same map into the image
(the xen target's ``unik/xen-disks.json``); the I/O is that of the virtio disk
(:class:`unik_vmguest.block.VirtioBlock`): positioned reads and writes, ``fsync``
as the flush (blkfront turns it into a barrier/flush request).
"""

from __future__ import annotations

import json
from pathlib import Path

from unik.errors import DeviceUnavailable

from .block import SYS_BLOCK, VirtioBlock

DISKS_FILE = Path("/unik/xen-disks.json")


def find_xen_disk(name: str, disks_file: Path = DISKS_FILE, sys_block: Path = SYS_BLOCK) -> str:
    """The ``/dev`` name of the disk the emitter assigned to block device ``name``."""
    try:
        disks = json.loads(disks_file.read_text())
    except (OSError, ValueError) as exc:
        raise DeviceUnavailable(f"block device {name!r}: the image's disk map {disks_file} "
                                f"is unreadable: {exc}") from exc
    vdev = disks.get(name)
    if vdev is None:
        raise DeviceUnavailable(f"block device {name!r} is not in the image's disk map ({', '.join(disks) or 'empty'})")
    if not (sys_block / vdev).is_dir():
        seen = ", ".join(sorted(p.name for p in sys_block.glob("xvd*"))) or "none"
        raise DeviceUnavailable(f"block device {name!r}: no disk {vdev} in the guest (found: {seen}); "
                                f"the domain's configuration must attach it: disk = [ '...,vdev={vdev},...' ]")
    return str(vdev)


class XenBlock(VirtioBlock):
    """A xen-blkfront disk, found through the image's disk map."""

    @classmethod
    async def connect(cls, name: str, read_only: bool = False, file: str | None = None,
                      sector_size: int | None = None) -> XenBlock:
        """Open the disk attached as the xvd name the emitter chose for ``name``.

        ``file`` is the control domain's side, written into the xl configuration.
        """
        return cls.open_disk(name, find_xen_disk(name), read_only, sector_size)
