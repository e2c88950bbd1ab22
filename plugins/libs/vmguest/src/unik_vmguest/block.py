"""The raw virtio disk of a unik VM as a :class:`unik.devices.Block`.

The host names each disk with its device name as the virtio serial
(``-device virtio-blk-pci,serial=storage``); the guest finds it in
``/sys/block/vd*/serial``, so disks never depend on probe order.  A disk image
written by ``unik build --image disk`` carries the plan's data disks as GPT partitions
named after their devices instead: a device with no disk of its serial is the
partition whose name (``PARTNAME`` in its uevent) is the device's, on any disk.  Requests are
positioned reads and writes on ``/dev/vdX``; ``flush`` is ``fsync``, which the guest
kernel turns into a virtio flush.

Around a VM snapshot (:mod:`unik_vmguest.snapshot`) the disk is flushed before the
memory is saved, and after a restore the guest kernel's cache of the disk is dropped
(``BLKFLSBUF``): the disk may have changed while the snapshot waited, and reads must
see what it holds now, not what the snapshot's memory remembers.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TYPE_CHECKING

from unik import lifecycle
from unik.errors import DeviceClosed, DeviceError, DeviceUnavailable, OutOfRange, ReadOnlyDevice, UnsupportedOperation

if TYPE_CHECKING:
    from typing import TypeVar

    _Disk = TypeVar("_Disk", bound="VirtioBlock")

SYS_BLOCK = Path("/sys/block")
#: ``BLKFLSBUF`` (linux/fs.h): write back and drop a block device's buffer cache.
BLKFLSBUF = 0x1261
#: Every block device, partitions included (each a link into its disk's sysfs directory).
SYS_CLASS_BLOCK = Path("/sys/class/block")


def find_partition(name: str, sys_class_block: Path = SYS_CLASS_BLOCK) -> str | None:
    """The ``/dev`` name of the GPT partition named ``name`` (its uevent's ``PARTNAME``), if there is one."""
    for entry in sorted(sys_class_block.iterdir()) if sys_class_block.is_dir() else ():
        try:
            uevent = (entry / "uevent").read_text().splitlines()
        except OSError:
            continue
        if "DEVTYPE=partition" in uevent and f"PARTNAME={name}" in uevent:
            return entry.name
    return None


def find_disk(serial: str, sys_block: Path = SYS_BLOCK, sys_class_block: Path = SYS_CLASS_BLOCK) -> str:
    """The ``/dev`` name of the virtio disk whose serial is ``serial``, else of the partition named so."""
    seen = []
    for entry in sorted(sys_block.glob("vd*")):
        try:
            value = (entry / "serial").read_text().strip()
        except OSError:
            continue
        seen.append(f"{entry.name}={value}")
        if value == serial:
            return entry.name
    partition = find_partition(serial, sys_class_block)
    if partition is not None:
        return partition
    raise DeviceUnavailable(
        f"no virtio disk with serial {serial!r} (found: {', '.join(seen) or 'none'}) and no partition named so; "
        f"give one with `unik run --block {serial}=disk.img`"
    )


class VirtioBlock:
    """A virtio-blk disk, found by its serial."""

    def __init__(self, name: str, fd: int, sectors: int, sector_size: int, read_only: bool) -> None:
        self.name = name
        self.sectors = sectors
        self.sector_size = sector_size
        self.read_only = read_only
        self._fd: int | None = fd
        lifecycle.subscribe(lifecycle.BEFORE_SNAPSHOT, self._before_snapshot)
        lifecycle.subscribe(lifecycle.RESUMED, self._resumed)

    def _before_snapshot(self) -> None:
        """:data:`unik.lifecycle.BEFORE_SNAPSHOT`: completed writes reach the host's file."""
        if self._fd is not None and not self.read_only:
            os.fsync(self._fd)

    def _resumed(self) -> None:
        """:data:`unik.lifecycle.RESUMED`: drop what the guest kernel cached of the disk."""
        if self._fd is not None:
            fcntl.ioctl(self._fd, BLKFLSBUF)

    @classmethod
    async def connect(cls, name: str, read_only: bool = False, file: str | None = None,
                      sector_size: int | None = None) -> VirtioBlock:
        """Open the disk the host attached with serial ``name``.

        ``file`` is the host's side (the runner attaches it); ``sector_size``, when given,
        must be the disk's logical block size, which the runner set from it.
        """
        return cls.open_disk(name, find_disk(name), read_only, sector_size)

    @classmethod
    def open_disk(cls: type[_Disk], name: str, dev: str, read_only: bool, sector_size: int | None) -> _Disk:
        """Open ``/dev/<dev>`` as the device ``name`` (its size and sectors from sysfs).

        A partition has no ``queue`` of its own: its disk's (the parent directory) says
        the sector size.
        """
        sysfs = SYS_CLASS_BLOCK / dev if (SYS_CLASS_BLOCK / dev).exists() else SYS_BLOCK / dev
        queue = sysfs / "queue" if (sysfs / "queue").is_dir() else sysfs.resolve().parent / "queue"
        logical = int((queue / "logical_block_size").read_text())
        if sector_size is not None and sector_size != logical:
            raise DeviceUnavailable(f"disk {name}: the host attached it with {logical}-byte sectors, "
                                    f"not the {sector_size} its device table asks for")
        sector_size = logical
        size_bytes = int((sysfs / "size").read_text()) * 512  # sysfs counts 512-byte units
        ro = read_only or (sysfs / "ro").read_text().strip() == "1"
        try:
            fd = os.open(f"/dev/{dev}", (os.O_RDONLY if ro else os.O_RDWR) | os.O_CLOEXEC)
        except OSError as exc:
            raise DeviceUnavailable(f"cannot open /dev/{dev}: {exc}") from exc
        return cls(name, fd, size_bytes // sector_size, sector_size, ro)

    def _check(self, sector: int, count: int) -> int:
        if self._fd is None:
            raise DeviceClosed(f"disk {self.name} is disconnected")
        if sector < 0 or count < 0 or sector + count > self.sectors:
            raise OutOfRange(f"sectors {sector}..{sector + count} outside disk {self.name} ({self.sectors} sectors)")
        return self._fd

    async def read(self, sector: int, count: int) -> bytes:
        """Read ``count`` sectors from ``sector``."""
        fd = self._check(sector, count)
        want = count * self.sector_size
        out = bytearray()
        while len(out) < want:
            chunk = os.pread(fd, want - len(out), sector * self.sector_size + len(out))
            if not chunk:
                raise DeviceError(f"disk {self.name}: short read at sector {sector}")
            out += chunk
        return bytes(out)

    async def write(self, sector: int, data: bytes) -> None:
        """Write whole sectors at ``sector``."""
        if len(data) % self.sector_size:
            raise DeviceError(f"disk {self.name}: {len(data)} bytes is not a whole number of sectors")
        fd = self._check(sector, len(data) // self.sector_size)
        if self.read_only:
            raise ReadOnlyDevice(f"disk {self.name} is read-only")
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], sector * self.sector_size + done)

    async def flush(self) -> None:
        """Make completed writes durable (a virtio flush)."""
        fd = self._check(0, 0)
        if not self.read_only:
            os.fsync(fd)

    async def discard(self, sector: int, count: int) -> None:
        """Not offered: the disk is raw and discard is optional."""
        self._check(sector, count)
        raise UnsupportedOperation(f"disk {self.name}: discard is not supported")

    async def disconnect(self) -> None:
        """Flush and close the disk."""
        if self._fd is not None:
            if not self.read_only:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        lifecycle.unsubscribe(lifecycle.BEFORE_SNAPSHOT, self._before_snapshot)
        lifecycle.unsubscribe(lifecycle.RESUMED, self._resumed)
