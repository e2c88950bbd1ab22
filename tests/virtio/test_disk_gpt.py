"""The GPT writer and the EFI system partition unik-lib-fat writes, checked by util-linux and dosfstools."""

from __future__ import annotations

import os
import struct
import subprocess
import uuid
import zlib
from pathlib import Path

import pytest
from deploy_support import read_layout
from host_tools import needs
from unik_vmimage.disk import gpt
from unik_vmimage.disk.esp import BOOT_PATH, FAT_EPOCH, MIN_SIZE, esp_size, write_esp

MIB = 1 << 20


def _wanted(name: str, size: int, kind: uuid.UUID = gpt.LINUX_DATA_TYPE) -> gpt.Wanted:
    return gpt.Wanted(name, size, kind, gpt.stable_guid("test", name))


def _disk(path: Path, layout: gpt.Layout) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        gpt.write_gpt(fd, layout)
    finally:
        os.close(fd)


def test_partitions_start_on_mib_boundaries_one_after_another() -> None:
    layout = gpt.plan_layout([_wanted("esp", 64 * MIB, gpt.ESP_TYPE), _wanted("storage", MIB + 1)],
                             gpt.stable_guid("disk"))
    esp, storage = layout.partitions
    assert (esp.first_lba, esp.last_lba) == (2048, 2048 + 131072 - 1)
    assert storage.first_lba == esp.last_lba + 1 and storage.size == 2 * MIB  # rounded up to whole MiB
    # the backup entry array (32 sectors) and header follow, the disk rounded to MiB
    assert layout.size == 68 * MIB and layout.last_usable == layout.sectors - 34 >= storage.last_lba


def test_a_gce_disk_is_a_whole_number_of_gib() -> None:
    layout = gpt.plan_layout([_wanted("esp", 64 * MIB, gpt.ESP_TYPE)], gpt.stable_guid("disk"),
                             size_multiple=1 << 30)
    assert layout.size == 1 << 30


def test_the_same_names_give_the_same_guids() -> None:
    assert gpt.stable_guid("a", "b") == gpt.stable_guid("a", "b") != gpt.stable_guid("a", "c")
    assert gpt.stable_guid("a").version == 4


def test_tables_read_back_with_every_crc_checked(tmp_path: Path) -> None:
    layout = gpt.plan_layout([_wanted("EFI system", 64 * MIB, gpt.ESP_TYPE), _wanted("storage", 4 * MIB)],
                             gpt.stable_guid("disk"))
    disk = tmp_path / "disk.raw"
    _disk(disk, layout)
    assert read_layout(disk) == layout
    raw = disk.read_bytes()
    # protective MBR: one 0xEE partition from LBA 1 over the whole disk
    assert raw[510:512] == b"\x55\xaa" and raw[450] == 0xEE
    assert struct.unpack_from("<II", raw, 454) == (1, layout.sectors - 1)
    header = raw[512:512 + 92]
    assert header[:8] == b"EFI PART" and zlib.crc32(header[:16] + bytes(4) + header[20:]) == \
        struct.unpack_from("<I", header, 16)[0]


def test_a_damaged_entry_array_is_refused(tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    _disk(disk, gpt.plan_layout([_wanted("storage", MIB)], gpt.stable_guid("disk")))
    with open(disk, "r+b") as f:
        f.seek(2 * 512 + 60)
        f.write(b"X")
    with pytest.raises(gpt.GptError, match="primary GPT's partition entry array's CRC32 is wrong"):
        read_layout(disk)


def test_bad_partitions_are_refused_before_writing() -> None:
    with pytest.raises(gpt.GptError, match="longer than 36"):
        gpt.plan_layout([_wanted("x" * 37, MIB)], gpt.stable_guid("disk"))
    with pytest.raises(gpt.GptError, match="has no size"):
        gpt.plan_layout([_wanted("empty", 0)], gpt.stable_guid("disk"))


@needs("partx")
def test_util_linux_reads_the_table(tmp_path: Path) -> None:
    layout = gpt.plan_layout([_wanted("EFI system", 64 * MIB, gpt.ESP_TYPE), _wanted("storage", 4 * MIB)],
                             gpt.stable_guid("disk"))
    disk = tmp_path / "disk.raw"
    _disk(disk, layout)
    out = subprocess.run(["partx", "--pairs", "-o", "START,END,NAME,UUID,TYPE,SCHEME", str(disk)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [f'START="{p.first_lba}" END="{p.last_lba}" NAME="{p.name}" UUID="{p.guid}" '
                   f'TYPE="{p.type_guid}" SCHEME="gpt"' for p in layout.partitions]


def test_esp_size_leaves_room_and_keeps_fat32_possible() -> None:
    assert esp_size(1) == MIN_SIZE
    assert esp_size(100 * MIB) == 133 * MIB  # 100 + 25 + 8


@needs("fsck.fat", "mdir", "mtype")
def test_the_esp_is_clean_fat32_with_the_file_where_firmware_looks(tmp_path: Path) -> None:
    efi = tmp_path / "boot.efi"
    efi.write_bytes(os.urandom(3 * MIB + 123))
    esp = tmp_path / "esp.img"
    size = write_esp(esp, {BOOT_PATH: efi}, start_lba=2048)
    assert size == MIN_SIZE == esp.stat().st_size
    fsck = subprocess.run(["fsck.fat", "-n", str(esp)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    boot = esp.read_bytes()[:512]
    assert boot[82:90] == b"FAT32   " and struct.unpack_from("<I", boot, 28)[0] == 2048  # BPB_HiddSec
    listing = subprocess.run(["mdir", "-i", str(esp), "::/EFI/BOOT"], capture_output=True, text=True, check=True)
    assert "BOOTX64  EFI" in listing.stdout and "1980-01-01" in listing.stdout  # FAT's epoch: no build time
    copy = subprocess.run(["mtype", "-i", str(esp), "::/EFI/BOOT/BOOTX64.EFI"], capture_output=True, check=True)
    assert copy.stdout == efi.read_bytes()
    again = tmp_path / "again.img"
    write_esp(again, {BOOT_PATH: efi}, start_lba=2048)
    assert again.read_bytes() == esp.read_bytes()


def test_source_date_epoch_stamps_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from unik_fat.image import FatImage

    efi = tmp_path / "boot.efi"
    efi.write_bytes(b"MZ" + bytes(1000))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(FAT_EPOCH + 86400 * 365 * 30))
    write_esp(tmp_path / "esp.img", {BOOT_PATH: efi})
    with FatImage(tmp_path / "esp.img", read_only=True) as fs:
        assert fs.stat(BOOT_PATH).mtime_ns // 10**9 == FAT_EPOCH + 86400 * 365 * 30
