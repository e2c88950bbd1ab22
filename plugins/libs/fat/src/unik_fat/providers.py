"""Device providers of unik-lib-fat: a FileSystem, a KVRW and a KVRO from a Block."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from unik.provider import Configured, Need, Option, Provider, Request

#: Every provider here mounts the block device named ``storage`` unless renamed.
STORAGE: Mapping[str, Need] = {"block": Need("block", "storage")}

_CACHE = Option("cache_sectors", "metadata sectors kept in memory", "int", default=4096)
_FORMAT = Option("format_if_blank", "format the device with mkfs.fat's geometry if sector 0 is blank",
                 "bool", default=False)
_CODEPAGE = Option("codepage", "OEM code page of 8.3 names (cp437 as mtools and Linux; cp850, cp852...)",
                   default="cp437")


def _check_codepage(request: Request, options: dict[str, object]) -> None:
    from .names import check_codepage

    try:
        check_codepage(str(options["codepage"]))
    except ValueError as exc:
        raise request.error("codepage", str(exc)) from None


class FatFileSystemProvider(Provider):
    """A FAT12/16/32 filesystem on a block device."""

    PLUGIN_NAME = "fat.fs"
    kind = "fs"
    implementation = "unik_fat.fs:FatFileSystem"
    description = "FAT12/16/32 with long names on a block device"
    needs: ClassVar[Mapping[str, Need]] = STORAGE
    options = (_CACHE, _FORMAT, _CODEPAGE, Option("label", "volume label when formatting"),
               Option("fat_type", "FAT type when formatting (12, 16, 32; default: by size)", "int"))

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """Check ``fat_type`` and ``codepage``; pass the options to ``FatFileSystem.connect``."""
        options = cls.table_options(request)
        _check_codepage(request, options)
        if options.get("fat_type") not in (None, 12, 16, 32):
            raise request.error("fat_type", "must be 12, 16 or 32")
        if options["cache_sectors"] < 16:
            raise request.error("cache_sectors", "must be at least 16")
        return Configured(options=options)


class FatKVRWProvider(Provider):
    """Key/value store on FAT: keys are paths under ``root``."""

    PLUGIN_NAME = "fat.kv-rw"
    kind = "kv_rw"
    implementation = "unik_fat.kv:FatKVRW"
    description = "read-write key/value store on a FAT filesystem (keys are paths)"
    needs: ClassVar[Mapping[str, Need]] = STORAGE
    options = (Option("root", "directory holding the store", default="/"), _CACHE, _FORMAT, _CODEPAGE,
               Option("sync", "flush after every change", "bool", default=True))

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """Check ``codepage``."""
        options = cls.table_options(request)
        _check_codepage(request, options)
        return Configured(options=options)


class FatKVROProvider(Provider):
    """Read-only key/value store over a FAT image (when the table has no ``source``)."""

    PLUGIN_NAME = "fat.kv-ro"
    kind = "kv_ro"
    implementation = "unik_fat.kv:FatKVRO"
    description = "read-only key/value store over a FAT image on a block device"
    needs: ClassVar[Mapping[str, Need]] = STORAGE
    options = (Option("root", "directory holding the store", default="/"), _CACHE, _CODEPAGE)

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """Check ``codepage``."""
        options = cls.table_options(request)
        _check_codepage(request, options)
        return Configured(options=options)

    @classmethod
    def applies(cls, request: Request) -> bool:
        """Only without ``source``: a table with ``source`` is the core's baked store."""
        return "source" not in request.table


PROVIDERS: list[type[Provider]] = [FatFileSystemProvider, FatKVRWProvider, FatKVROProvider]
