"""The disk forms without a boot: the same inputs give the same bytes, and the formats are checked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from host_tools import missing_file, needs
from unik.progress import Progress
from unik_vmimage.disk.images import DiskSpec, parse_formats, write_images
from unik_vmimage.disk.uki import STUB, pe_checksum, read_section

pytestmark = pytest.mark.skipif(missing_file(STUB, "systemd-boot-efi") is not None,
                                reason=missing_file(STUB, "systemd-boot-efi") or "")


def _spec(tmp_path: Path) -> DiskSpec:
    kernel, initramfs = tmp_path / "vmlinuz", tmp_path / "initramfs"
    if not kernel.exists():
        kernel.write_bytes(os.urandom(300_000))
        initramfs.write_bytes(os.urandom(200_001))
    return DiskSpec("demo", kernel, initramfs, "console=ttyS0 -- --port=8080", 'NAME="demo"\nID=unik\n')


@needs("objcopy", "qemu-img")
def test_the_same_inputs_give_the_same_disks(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    one = write_images(("disk", "qcow2", "gce"), spec, first, Progress(quiet=True))
    two = write_images(("disk", "qcow2", "gce"), spec, second, Progress(quiet=True))
    assert one == two
    assert sorted(p.name for p in first.iterdir()) == ["demo.efi", "demo.gce.tar.gz", "demo.qcow2", "demo.raw"]
    uki = (first / "demo.efi").read_bytes()
    assert read_section(uki, ".linux") == spec.kernel.read_bytes()
    assert read_section(uki, ".cmdline") == b"console=ttyS0 -- --port=8080\0"
    pe = int.from_bytes(uki[0x3C:0x40], "little")
    assert uki[pe + 8:pe + 12] == bytes(4)  # objcopy's time of day replaced by the stub's stamp
    assert int.from_bytes(uki[pe + 88:pe + 92], "little") == pe_checksum(uki)


def test_formats_are_checked_and_ordered() -> None:
    assert parse_formats("oci,disk") == ("disk", "oci")
    assert parse_formats("none") == parse_formats("") == ()
    with pytest.raises(ValueError, match="'vmdk' is not an image format: give some of disk, qcow2, gce, oci"):
        parse_formats("disk,vmdk")
