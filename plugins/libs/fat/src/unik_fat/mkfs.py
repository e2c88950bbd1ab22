"""Formatting: the geometry ``mkfs.fat`` (dosfstools 4.2) would choose, and writing it.

:func:`geometry` is pure arithmetic over the volume size, so it can be tested against
``mkfs.fat`` directly; :func:`mkfs` writes the reserved region, the FATs and an empty
root directory to a :class:`~unik.devices.Block`.

The decisions, as ``mkfs.fat`` makes them for an image file:

* FAT32 when the volume is 512 MiB or more and no type was asked for; otherwise
  FAT12 or FAT16, whichever gives more clusters at the smallest cluster size that fits,
  starting from 4 sectors per cluster and doubling (16 MiB and up become FAT16).
* FAT32 cluster size from the size (fatgen103's table): up to 260 MiB 1 sector, up to
  8 GiB 8, up to 16 GiB 16, up to 32 GiB 32, beyond 64.
* Cluster-count limits: FAT12 up to 4084, FAT16 4087 to 65524, FAT32 from 65525
  (unless the type was asked for).
* Reserved sectors: 1 (FAT12/16) or 32 (FAT32); FAT12/16 root directory 512 entries;
  floppy sizes (360 KiB .. 2.88 MiB) use the floppy geometries.
* Above 8192 sectors, the reserved region, each FAT and the root directory are rounded
  up to whole clusters so that clusters are aligned.
* A FAT16 with fewer than 4085 clusters would be read as FAT12, and FAT32 needs at
  least 65529 clusters unless asked for explicitly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from unik.devices import Block

from . import formats as F
from .errors import FatError, ReadOnlyFilesystem

# Cluster-count limits of dosfstools 4.2 (fatgen103's, with a small margin for FAT16).
_MAX_CLUST_12 = 4084
_MIN_CLUST_16 = 4087
_MAX_CLUST_16 = 65524
_MIN_CLUST_32 = 65525
_MAX_CLUST_32 = 0x0FFFFFF6

#: Floppy formats by size in KiB: (sectors/track, heads, media, sectors/cluster, root entries).
_FLOPPIES = {
    360: (9, 2, 0xFD, 2, 112),
    720: (9, 2, 0xF9, 2, 112),
    1200: (15, 2, 0xF9, 1, 224),
    1440: (18, 2, 0xF0, 1, 224),
    2880: (36, 2, 0xF0, 2, 224),
}


class MkfsError(FatError, ValueError):
    """The requested format is impossible for the device (too small, too large, bad option)."""


@dataclass(frozen=True)
class Geometry:
    """The decisions :func:`geometry` makes: a boot sector ready to emit."""

    boot: F.BootSector

    @property
    def fat_type(self) -> int:
        """12, 16 or 32."""
        return self.boot.fat_type


def _cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


def geometry(
    size_bytes: int,
    *,
    sector_size: int = 512,
    fat_type: int | None = None,
    sectors_per_cluster: int | None = None,
    reserved_sectors: int | None = None,
    num_fats: int = 2,
    root_entries: int | None = None,
    volume_id: int = 0,
    label: str = "",
    media: int | None = None,
    total_sectors: int | None = None,
    hidden_sectors: int = 0,
) -> Geometry:
    """The boot sector ``mkfs.fat`` would write on a device of ``size_bytes``.

    ``total_sectors`` (default: all the device) limits the volume to fewer sectors;
    ``hidden_sectors`` is the volume's first sector on its disk (a partition's start).
    """
    if sector_size not in F.VALID_SECTOR_SIZES:
        raise MkfsError(f"sector size {sector_size} is not 512, 1024, 2048 or 4096")
    if fat_type not in (None, 12, 16, 32):
        raise MkfsError(f"FAT type {fat_type} is not 12, 16 or 32")
    if sectors_per_cluster is not None and (
        sectors_per_cluster < 1 or sectors_per_cluster > 128 or sectors_per_cluster & (sectors_per_cluster - 1)
    ):
        raise MkfsError(f"sectors per cluster {sectors_per_cluster} is not a power of 2 up to 128")
    if not 1 <= num_fats <= 4:
        raise MkfsError("the number of FATs must be 1 to 4")
    spt, heads, med, cluster, def_root = 63, 255, 0xF8, 4, 512
    if size_bytes < 512 * 1024 * 1024:
        spt, heads = 32, 64
    floppy = _FLOPPIES.get(size_bytes // 1024) if size_bytes % 1024 == 0 else None
    if floppy:
        spt, heads, med, cluster, def_root = floppy
    size_fat = fat_type or 0
    if not size_fat and size_bytes >= 512 * 1024 * 1024:
        size_fat = 32
    if size_fat == 32:
        # fatgen103's table is for 512-byte sectors; dosfstools 4.2 applies it to the
        # sector count as if sectors were 512 bytes (so 4 KiB sectors get larger clusters).
        mb = min(size_bytes // sector_size, 0xFFFFFFFF) * 512 // (1024 * 1024)
        cluster = 64 if mb > 32 * 1024 else 32 if mb > 16 * 1024 else 16 if mb > 8 * 1024 else 8 if mb > 260 else 1
    root = def_root if root_entries is None else root_entries
    if size_fat == 32:
        root = 0
    if sectors_per_cluster:
        cluster = sectors_per_cluster
    reserved = reserved_sectors if reserved_sectors is not None else (32 if size_fat == 32 else 1)
    if size_fat == 32 and reserved < 2:
        raise MkfsError("FAT32 needs at least 2 reserved sectors")
    if reserved < 1:
        raise MkfsError("at least 1 reserved sector is needed")
    num_sectors = min(size_bytes // sector_size if total_sectors is None else total_sectors, 0xFFFFFFFF)
    align = num_sectors > 8192

    def aligned(n: int, c: int) -> int:
        return (n + c - 1) & ~(c - 1) if align else n

    root_dir_sectors = _cdiv(root * 32, sector_size)
    max_cluster_size = sectors_per_cluster or 128
    chosen: tuple[int, int, int] | None = None  # (fat bits, clusters, fat length)
    while cluster and cluster <= max_cluster_size:
        fatdata32 = num_sectors - aligned(reserved, cluster)
        fatdata1216 = fatdata32 - aligned(root_dir_sectors, cluster)
        # FAT12: 1.5 bytes per cluster (the "nr_fats * 3" covers the two reserved entries)
        c12 = 2 * (fatdata1216 * sector_size + num_fats * 3) // (2 * cluster * sector_size + num_fats * 3)
        fl12 = aligned(_cdiv(((c12 + 2) * 3 + 1) >> 1, sector_size), cluster)
        c12 = (fatdata1216 - num_fats * fl12) // cluster
        max12 = min(fl12 * 2 * sector_size // 3, _MAX_CLUST_12)
        if c12 > max12:
            c12 = 0
        c16 = (fatdata1216 * sector_size + num_fats * 4) // (cluster * sector_size + num_fats * 2)
        fl16 = aligned(_cdiv((c16 + 2) * 2, sector_size), cluster)
        c16 = (fatdata1216 - num_fats * fl16) // cluster
        max16 = min(fl16 * sector_size // 2, _MAX_CLUST_16)
        if c16 > max16:
            c16 = 0
        # Fewer clusters would make the volume read as FAT12.
        if c16 < _MIN_CLUST_16 and fat_type != 16:
            c16 = 0
        c32 = (fatdata32 * sector_size + num_fats * 8) // (cluster * sector_size + num_fats * 4)
        fl32 = aligned(_cdiv((c32 + 2) * 4, sector_size), cluster)
        c32 = (fatdata32 - num_fats * fl32) // cluster
        max32 = min(fl32 * sector_size // 4, _MAX_CLUST_32)
        if c32 and c32 < _MIN_CLUST_32 and fat_type != 32:
            c32 = 0
        if c32 > max32:
            c32 = 0
        c12, c16, c32 = max(c12, 0), max(c16, 0), max(c32, 0)
        if (c12 and size_fat in (0, 12)) or (c16 and size_fat in (0, 16)) or (c32 and size_fat == 32):
            # Unasked, the type with more clusters wins (FAT16 on a tie goes to FAT12).
            bits = size_fat or (16 if c16 > c12 else 12)
            chosen = {12: (12, c12, fl12), 16: (16, c16, fl16), 32: (32, c32, fl32)}[bits]
            break
        cluster <<= 1
    if chosen is None:
        raise MkfsError(
            f"no FAT{size_fat or ''} layout fits {size_bytes} bytes"
            + (f" with {sectors_per_cluster} sectors per cluster" if sectors_per_cluster else "")
        )
    bits, count, fat_len = chosen
    if bits == 16 and count <= F.FAT12_MAX_CLUSTERS:
        raise MkfsError(f"{count} clusters is too few for FAT16 (it would be read as FAT12)")
    reserved = aligned(reserved, cluster)
    if align and bits != 32:
        root = aligned(root_dir_sectors, cluster) * (sector_size >> 5)
    backup = 0
    if bits == 32:
        backup = 6 if reserved >= 7 else (reserved - 1 if reserved >= 3 else 0)
    label_b = (label.upper().encode("ascii", "replace")[:11] or b"NO NAME").ljust(11, b" ")
    # The data region ends where the last whole cluster ends; any sectors beyond are unused.
    boot = F.BootSector(
        oem_name=b"mkfs.fat", bytes_per_sector=sector_size, sectors_per_cluster=cluster,
        reserved_sectors=reserved, num_fats=num_fats, root_entries=0 if bits == 32 else root,
        total_sectors=num_sectors, media=media if media is not None else med, fat_size=fat_len,
        sectors_per_track=spt, heads=heads, hidden_sectors=hidden_sectors, root_cluster=2 if bits == 32 else 0,
        fs_info_sector=1 if bits == 32 else 0, backup_boot_sector=backup,
        drive_number=0x80 if (media if media is not None else med) == 0xF8 else 0,
        volume_id=volume_id, volume_label=label_b, is_fat32_layout=bits == 32,
    )
    if boot.fat_type != bits:
        raise MkfsError(f"the layout would be read as FAT{boot.fat_type}, not FAT{bits}")
    return Geometry(boot)


async def mkfs(
    block: Block,
    *,
    sector_size: int | None = None,
    fat_type: int | None = None,
    sectors_per_cluster: int | None = None,
    reserved_sectors: int | None = None,
    num_fats: int = 2,
    root_entries: int | None = None,
    label: str = "",
    volume_id: int | None = None,
    hidden_sectors: int = 0,
) -> F.BootSector:
    """Format ``block`` (default logical sector size: the device's); returns the boot sector.

    ``hidden_sectors``: where the volume starts on its disk, for a partition (the BPB's
    ``BPB_HiddSec``; 0 for a whole-disk volume).
    """
    if block.read_only:
        raise ReadOnlyFilesystem("cannot format a read-only device")
    ss = sector_size or max(block.sector_size, 512)
    if ss % block.sector_size:
        raise MkfsError(f"sector size {ss} is not a multiple of the device's {block.sector_size}")
    factor = ss // block.sector_size
    vid = volume_id if volume_id is not None else (time.time_ns() // 1000) & 0xFFFFFFFF
    geo = geometry(
        block.sectors * block.sector_size, sector_size=ss, fat_type=fat_type,
        sectors_per_cluster=sectors_per_cluster, reserved_sectors=reserved_sectors, num_fats=num_fats,
        root_entries=root_entries, volume_id=vid, label=label, hidden_sectors=hidden_sectors,
    )
    bs = geo.boot
    ftype = bs.fat_type

    async def write(sector: int, data: bytes) -> None:
        await block.write(sector * factor, data)

    async def zero(sector: int, count: int) -> None:
        chunk = max(1, (1 << 20) // ss)
        while count > 0:
            n = min(chunk, count)
            await write(sector, bytes(n * ss))
            sector += n
            count -= n

    # Reserved region, FATs and (FAT12/16) root directory start out as zeros.
    await zero(0, bs.first_data_sector)
    boot = bs.emit()
    await write(0, boot)
    # First FAT sector: entry 0 holds the media byte, entry 1 an end-of-chain mark
    # (fatgen103 "FAT Data Structure": the two reserved clusters).
    first = bytearray(ss)
    F.set_entry(first, ftype, 0, (F.EOC_MARK[ftype] & ~0xFF) | bs.media)
    F.set_entry(first, ftype, 1, F.EOC_MARK[ftype])
    if ftype == F.FAT32:
        F.set_entry(first, ftype, 2, F.EOC_MARK[ftype])  # the root directory's one cluster
    for k in range(bs.num_fats):
        await write(bs.first_fat_sector + k * bs.fat_size, bytes(first))
    if ftype == F.FAT32:
        info = F.FSInfo(bs.cluster_count - 1, 3).emit(ss)
        await write(bs.fs_info_sector, info)
        if bs.backup_boot_sector:
            # "BPB_BkBootSec": a copy of the boot sector, followed by a copy of FSInfo.
            await write(bs.backup_boot_sector, boot)
            if bs.backup_boot_sector + 1 < bs.reserved_sectors:
                await write(bs.backup_boot_sector + 1, info)
        await zero(bs.cluster_sector(2), bs.sectors_per_cluster)
    if label:
        entry = F.DirEntry(name=bs.volume_label, attr=F.ATTR_VOLUME_ID)
        root = bs.cluster_sector(2) if ftype == F.FAT32 else bs.root_dir_sector
        sector = bytearray(ss)
        sector[0:32] = entry.emit()
        await write(root, bytes(sector))
    await block.flush()
    return bs
