r"""The EFI system partition, formatted and filled by unik-lib-fat.

UEFI firmware reads the ESP's FAT filesystem and, on a disk with no boot entries of
its own (a new VM, a cloud instance), runs the removable-media path
``\EFI\BOOT\BOOTX64.EFI`` (UEFI 2.10, 3.5.1.1).  The ESP is FAT32 (what the UEFI
specification asks of a system partition; FAT12/16 are for removable media), made by
:func:`unik_fat.mkfs.mkfs` with 512-byte clusters so that a small partition still has
the 65525 clusters FAT32 needs, and the files are written through unik-lib-fat's own
file system code, stamped with a fixed time (``SOURCE_DATE_EPOCH``, never before FAT's
1980 epoch) and a volume ID derived from the contents: the same files give the same
partition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from unik.errors import BuildError
from unik.reproducible import source_date_epoch

#: The removable-media boot path on x86-64 (UEFI 2.10, table 3.6).
BOOT_PATH = "/EFI/BOOT/BOOTX64.EFI"
#: The smallest ESP: FAT32 with 512-byte clusters needs 65525 of them (32 MiB of data)
#: plus its FATs; 64 MiB also leaves room to replace the image in place.
MIN_SIZE = 64 << 20
#: 1980-01-01T00:00:00Z: FAT's dates start there.
FAT_EPOCH = 315532800
LABEL = "UNIK-ESP"


def build_time() -> int:
    """Seconds since the epoch to stamp files with: ``SOURCE_DATE_EPOCH``, not before FAT's epoch."""
    return max(source_date_epoch(), FAT_EPOCH)


def esp_size(payload: int) -> int:
    """An ESP size for ``payload`` bytes of files: a quarter more and 8 MiB, in whole MiB, at least 64 MiB."""
    wanted = payload + payload // 4 + (8 << 20)
    return max(MIN_SIZE, -(-wanted // (1 << 20)) << 20)


def write_esp(path: Path, files: Mapping[str, Path], *, start_lba: int = 0, size: int | None = None) -> int:
    """Write an ESP image to ``path`` holding ``files`` (ESP path: host file); returns its size.

    ``start_lba`` is the partition's first sector on its disk (the boot sector's hidden
    sectors).  Directories are made as needed.
    """
    try:
        from unik_fat.image import FatImage
    except ImportError:
        raise BuildError("a bootable disk's EFI system partition is written by unik-lib-fat: "
                         "pip install 'unik-lib-vmimage[disk]'") from None

    payload = sum(f.stat().st_size for f in files.values())
    size = size or esp_size(payload)
    digest = hashlib.sha256()
    for dest in sorted(files):
        digest.update(dest.encode() + b"\0")
        with open(files[dest], "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    stamp = build_time() * 1_000_000_000
    fs = FatImage.format(path, size, clock=lambda: stamp, fat_type=32, sectors_per_cluster=1, label=LABEL,
                         volume_id=int.from_bytes(digest.digest()[:4], "little"), hidden_sectors=start_lba)
    with fs:
        for dest in sorted(files):
            parent = dest.rsplit("/", 1)[0]
            if parent:
                fs.mkdir(parent, parents=True, exist_ok=True)
            with open(files[dest], "rb") as source:
                fs.copy_in(source, dest, files[dest].stat().st_size)
    return size
