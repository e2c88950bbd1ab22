"""GUID Partition Tables, written and read (UEFI 2.10, chapter 5 "GUID Partition Table (GPT) Disk Layout").

A disk that UEFI firmware boots from: LBA 0 holds a protective MBR (one partition of
type ``0xEE`` covering the disk, so that MBR tools leave it alone); LBA 1 the primary
GPT header; LBAs 2-33 the partition entry array (128 entries of 128 bytes); the
partitions, each starting on a 1 MiB boundary; then the backup entry array and, in the
disk's last LBA, the backup header.  Each header carries the CRC32 of itself (with its
own CRC field zeroed) and of the entry array.  GUIDs are stored as UEFI writes them:
the first three fields little-endian (:attr:`uuid.UUID.bytes_le`).

:func:`plan_layout` is pure arithmetic; :func:`write_gpt` writes the tables of a
layout into a disk file; :func:`read_gpt` reads them back and checks every CRC, the
backup against the primary and the entries against the usable range.
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from unik.errors import BuildError

SECTOR = 512
#: Partitions start on 1 MiB boundaries (what partitioning tools do: good for every
#: sector size and RAID stripe, and what the clouds' importers expect).
ALIGN_SECTORS = (1 << 20) // SECTOR
ENTRY_SIZE = 128
ENTRY_COUNT = 128
ENTRY_SECTORS = ENTRY_COUNT * ENTRY_SIZE // SECTOR
HEADER_SIZE = 92
SIGNATURE = b"EFI PART"
REVISION = 0x00010000
#: The EFI system partition (UEFI 2.10, table 5.7).
ESP_TYPE = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
#: Linux filesystem data (the Discoverable Partitions Specification): a data disk.
LINUX_DATA_TYPE = uuid.UUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
#: A partition's name: 36 UTF-16LE code units.
NAME_UNITS = 36

_HEADER = struct.Struct("<8sIIII QQQQ 16s QIII")
_ENTRY = struct.Struct("<16s16sQQQ72s")


class GptError(BuildError):
    """A partition table that cannot be written (too many partitions, a bad name) or read back."""


@dataclass(frozen=True)
class Partition:
    """One partition: its place (first and last LBA, inclusive), type, GUID and name."""

    first_lba: int
    last_lba: int
    type_guid: uuid.UUID
    guid: uuid.UUID
    name: str
    attributes: int = 0

    @property
    def offset(self) -> int:
        """Byte offset of the partition in the disk."""
        return self.first_lba * SECTOR

    @property
    def size(self) -> int:
        """The partition's size in bytes."""
        return (self.last_lba - self.first_lba + 1) * SECTOR

    def entry(self) -> bytes:
        """The 128-byte partition entry."""
        encoded = self.name.encode("utf-16-le")
        return _ENTRY.pack(self.type_guid.bytes_le, self.guid.bytes_le, self.first_lba, self.last_lba,
                           self.attributes, encoded.ljust(72, b"\0"))


@dataclass(frozen=True)
class Layout:
    """A whole disk: its size in sectors, GUID and partitions."""

    sectors: int
    disk_guid: uuid.UUID
    partitions: tuple[Partition, ...]

    @property
    def size(self) -> int:
        """The disk's size in bytes."""
        return self.sectors * SECTOR

    @property
    def first_usable(self) -> int:
        """The first LBA a partition may use (after the primary entry array)."""
        return 2 + ENTRY_SECTORS

    @property
    def last_usable(self) -> int:
        """The last LBA a partition may use (before the backup entry array)."""
        return self.sectors - 2 - ENTRY_SECTORS


@dataclass(frozen=True)
class Wanted:
    """A partition to place: its size in bytes (rounded up to whole MiB), type, GUID and name."""

    name: str
    size: int
    type_guid: uuid.UUID
    guid: uuid.UUID


def stable_guid(*parts: str) -> uuid.UUID:
    """A random-format (version 4) GUID derived from ``parts``: the same inputs give the same disk."""
    import hashlib

    return uuid.UUID(bytes=hashlib.sha256("\0".join(parts).encode()).digest()[:16], version=4)


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to


def plan_layout(wanted: Sequence[Wanted], disk_guid: uuid.UUID, *, min_size: int = 0,
                size_multiple: int = 1 << 20) -> Layout:
    """Place ``wanted`` one after another from the first 1 MiB boundary.

    The disk is as large as the partitions, the backup table and ``min_size`` need,
    rounded up to ``size_multiple`` bytes (GCE takes only whole GiB).
    """
    if len(wanted) > ENTRY_COUNT:
        raise GptError(f"{len(wanted)} partitions: a GPT here holds at most {ENTRY_COUNT}")
    for w in wanted:
        if len(w.name) > NAME_UNITS or len(w.name.encode("utf-16-le")) > 2 * NAME_UNITS:
            raise GptError(f"partition name {w.name!r} is longer than {NAME_UNITS} UTF-16 code units")
        if w.size <= 0:
            raise GptError(f"partition {w.name!r} has no size")
    lba = ALIGN_SECTORS
    placed = []
    for w in wanted:
        count = _round_up(w.size, ALIGN_SECTORS * SECTOR) // SECTOR
        placed.append(Partition(lba, lba + count - 1, w.type_guid, w.guid, w.name))
        lba += count
    needed = (lba + 1 + ENTRY_SECTORS) * SECTOR
    if size_multiple % SECTOR:
        raise GptError(f"a disk size multiple of {size_multiple} bytes is not whole sectors")
    size = _round_up(max(needed, min_size), size_multiple)
    return Layout(size // SECTOR, disk_guid, tuple(placed))


def protective_mbr(sectors: int) -> bytes:
    """LBA 0: one partition of type 0xEE from LBA 1 to the end (or 2 TiB), boot signature 0x55AA."""
    record = struct.pack("<B3sB3sII", 0, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1, min(sectors - 1, 0xFFFFFFFF))
    return bytes(446) + record + bytes(48) + b"\x55\xaa"


def _header(layout: Layout, my_lba: int, alternate: int, entries_lba: int, entries_crc: int) -> bytes:
    def pack(crc: int) -> bytes:
        return _HEADER.pack(SIGNATURE, REVISION, HEADER_SIZE, crc, 0, my_lba, alternate, layout.first_usable,
                            layout.last_usable, layout.disk_guid.bytes_le, entries_lba, ENTRY_COUNT, ENTRY_SIZE,
                            entries_crc)
    return pack(zlib.crc32(pack(0))).ljust(SECTOR, b"\0")


def tables(layout: Layout) -> list[tuple[int, bytes]]:
    """What to write where (LBA, bytes): the protective MBR, both headers, both entry arrays."""
    last = layout.sectors - 1
    for p in layout.partitions:
        if p.first_lba < layout.first_usable or p.last_lba > layout.last_usable or p.last_lba < p.first_lba:
            raise GptError(f"partition {p.name!r} (LBA {p.first_lba}..{p.last_lba}) is outside the usable "
                           f"range {layout.first_usable}..{layout.last_usable}")
    entries = b"".join(p.entry() for p in layout.partitions).ljust(ENTRY_COUNT * ENTRY_SIZE, b"\0")
    crc = zlib.crc32(entries)
    backup_entries = last - ENTRY_SECTORS
    return [
        (0, protective_mbr(layout.sectors)),
        (1, _header(layout, 1, last, 2, crc)),
        (2, entries),
        (backup_entries, entries),
        (last, _header(layout, last, 1, backup_entries, crc)),
    ]


def write_gpt(fd: int, layout: Layout) -> None:
    """Size the open disk file ``fd`` to the layout and write its partition tables."""
    os.ftruncate(fd, layout.size)
    for lba, data in tables(layout):
        os.pwrite(fd, data, lba * SECTOR)


def _read_header(fd: int, lba: int, where: str) -> tuple[tuple[Any, ...], bytes]:
    raw = os.pread(fd, SECTOR, lba * SECTOR)
    if len(raw) < HEADER_SIZE or raw[:8] != SIGNATURE:
        raise GptError(f"the {where} GPT header at LBA {lba} has no 'EFI PART' signature")
    fields = _HEADER.unpack(raw[:HEADER_SIZE])
    if zlib.crc32(raw[:16] + bytes(4) + raw[20:HEADER_SIZE]) != fields[3]:
        raise GptError(f"the {where} GPT header's CRC32 is wrong")
    entries = os.pread(fd, fields[11] * fields[12], fields[10] * SECTOR)
    if zlib.crc32(entries) != fields[13]:
        raise GptError(f"the {where} GPT's partition entry array's CRC32 is wrong")
    return fields, entries


def read_gpt(fd: int) -> Layout:
    """The layout of the disk file ``fd``; every CRC, the backup and the entries' ranges are checked."""
    sectors = os.fstat(fd).st_size // SECTOR
    mbr = os.pread(fd, SECTOR, 0)
    if mbr[510:512] != b"\x55\xaa" or mbr[450] != 0xEE:
        raise GptError("LBA 0 is not a protective MBR (type 0xEE, signature 55AA)")
    primary, entries = _read_header(fd, 1, "primary")
    backup, backup_entries = _read_header(fd, primary[6], "backup")
    if primary[6] != sectors - 1 or backup[5] != sectors - 1 or backup[6] != 1:
        raise GptError("the backup GPT header is not in the disk's last LBA, or does not point back to LBA 1")
    if entries != backup_entries or primary[7:10] != backup[7:10]:
        raise GptError("the backup GPT differs from the primary")
    layout_guid = uuid.UUID(bytes_le=primary[9])
    parts = []
    for i in range(primary[11]):
        type_le, guid_le, first, last, attributes, name = _ENTRY.unpack_from(entries, i * primary[12])
        if type_le == bytes(16):
            continue
        if first < primary[7] or last > primary[8] or last < first:
            raise GptError(f"partition entry {i} (LBA {first}..{last}) is outside the usable range")
        parts.append(Partition(first, last, uuid.UUID(bytes_le=type_le), uuid.UUID(bytes_le=guid_le),
                               name.decode("utf-16-le").rstrip("\0"), attributes))
    return Layout(sectors, layout_guid, tuple(parts))
