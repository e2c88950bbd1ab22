"""Device providers of unik-lib-fat: a FileSystem, a KVRW and a KVRO from a Block."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from unik.provider import Need, Option, Provider, Request

#: Every provider here mounts the block device named ``storage`` unless renamed.
STORAGE: Mapping[str, Need] = {"block": Need("block", "storage")}


def _codepage(value: object) -> None:
    from .names import check_codepage

    check_codepage(str(value))


def _at_least_16(value: int) -> None:
    if value < 16:
        raise ValueError("must be at least 16")


def _fat_type(value: int) -> None:
    if value not in (12, 16, 32):
        raise ValueError("must be 12, 16 or 32")


_CACHE = Option("cache_sectors", "metadata sectors kept in memory", "int", default=4096, check=_at_least_16)
_FORMAT = Option("format_if_blank", "format the device with mkfs.fat's geometry if sector 0 is blank",
                 "bool", default=False)
_CODEPAGE = Option("codepage", "OEM code page of 8.3 names (cp437 as mtools and Linux; cp850, cp852...)",
                   default="cp437", check=_codepage)


class FatFileSystemProvider(Provider):
    """A FAT12/16/32 filesystem on a block device."""

    PLUGIN_NAME = "fat.fs"
    kind = "fs"
    implementation = "unik_fat.fs:FatFileSystem"
    description = "FAT12/16/32 with long names on a block device"
    needs: ClassVar[Mapping[str, Need]] = STORAGE
    options = (_CACHE, _FORMAT, _CODEPAGE, Option("label", "volume label when formatting"),
               Option("fat_type", "FAT type when formatting (12, 16, 32; default: by size)", "int", check=_fat_type))


class FatKVRWProvider(Provider):
    """Key/value store on FAT: keys are paths under ``root``."""

    PLUGIN_NAME = "fat.kv-rw"
    kind = "kv_rw"
    implementation = "unik_fat.kv:FatKVRW"
    description = "read-write key/value store on a FAT filesystem (keys are paths)"
    needs: ClassVar[Mapping[str, Need]] = STORAGE
    options = (Option("root", "directory holding the store", default="/"), _CACHE, _FORMAT, _CODEPAGE,
               Option("sync", "flush after every change", "bool", default=True))


class FatKVROProvider(Provider):
    """Read-only key/value store over a FAT image (when the table has no ``source``)."""

    PLUGIN_NAME = "fat.kv-ro"
    kind = "kv_ro"
    implementation = "unik_fat.kv:FatKVRO"
    description = "read-only key/value store over a FAT image on a block device"
    needs: ClassVar[Mapping[str, Need]] = STORAGE
    options = (Option("root", "directory holding the store", default="/"), _CACHE, _CODEPAGE)

    @classmethod
    def applies(cls, request: Request) -> bool:
        """Only without ``source``: a table with ``source`` is the core's baked store."""
        return "source" not in request.table


PROVIDERS: list[type[Provider]] = [FatFileSystemProvider, FatKVRWProvider, FatKVROProvider]
