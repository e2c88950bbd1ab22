"""The disk forms without a boot: the same inputs give the same bytes, and the formats are checked."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from host_tools import missing_file, needs
from unik.progress import Progress
from unik_vmimage.disk.images import DiskSpec, parse_formats, write_images
from unik_vmimage.disk.oci import canonical, read_manifest
from unik_vmimage.disk.uki import STUB, pe_checksum, read_section

pytestmark = pytest.mark.skipif(missing_file(STUB, "systemd-boot-efi") is not None,
                                reason=missing_file(STUB, "systemd-boot-efi") or "")


def _spec(tmp_path: Path) -> DiskSpec:
    kernel, initramfs = tmp_path / "vmlinuz", tmp_path / "initramfs"
    if not kernel.exists():
        kernel.write_bytes(os.urandom(300_000))
        initramfs.write_bytes(os.urandom(200_001))
    return DiskSpec("demo", kernel, initramfs, "console=ttyS0 -- --port=8080", "0.1.0")


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


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


@needs("objcopy", "qemu-img", "skopeo")
def test_the_oci_layout_is_reproducible_and_holds_the_disk_the_kernel_and_urunc_labels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(tmp_path)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    one = write_images(("oci",), spec, first, Progress(quiet=True))["oci"]
    two = write_images(("oci",), spec, second, Progress(quiet=True))["oci"]
    assert one == two and one["manifest"].startswith("sha256:")
    layout = first / "demo.oci"
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    manifest = read_manifest(layout)
    assert hashlib.sha256(canonical(manifest)).hexdigest() == one["manifest"].split(":")[1]
    labels = manifest["annotations"]
    assert labels["com.urunc.unikernel.binary"] == "/boot/vmlinuz" == one["kernel_path"]
    assert labels["com.urunc.unikernel.initrd"] == "/boot/initramfs" == one["initrd_path"]
    assert labels["com.urunc.unikernel.cmdline"] == spec.cmdline == one["kernel_args"]
    assert labels["com.urunc.unikernel.hypervisor"] == "qemu"
    (layer,) = manifest["layers"]
    tar_bytes = gzip.decompress(_blob(layout, layer["digest"]))
    config = json.loads(_blob(layout, manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]
    assert config["config"]["Labels"] == {k: v for k, v in labels.items() if k.startswith("com.urunc.")}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == sorted(m.name for m in members) == [
            "boot", "boot/initramfs", "boot/vmlinuz", "disk", "disk/demo.qcow2", "urunc.json"]
        assert {m.mtime for m in members} == {0}
        disk = tar.getmember("disk/demo.qcow2")
        assert (disk.uid, disk.gid, disk.mode) == (107, 107, 0o440)  # KubeVirt's qemu user reads it
        assert tar.extractfile("boot/vmlinuz").read() == spec.kernel.read_bytes()  # type: ignore[union-attr]
        urunc = json.loads(tar.extractfile("urunc.json").read())  # type: ignore[union-attr]
    assert base64.b64decode(urunc["com.urunc.unikernel.binary"]) == b"/boot/vmlinuz"
    # skopeo, the tool unik push uses, reads the layout and finds the same image
    seen = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{layout}:latest"], capture_output=True, check=True)
    assert hashlib.sha256(seen.stdout).hexdigest() == one["manifest"].split(":")[1]
    # SOURCE_DATE_EPOCH moves the file times, hence the digest
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    third = tmp_path / "c"
    third.mkdir()
    assert write_images(("oci",), spec, third, Progress(quiet=True))["oci"]["manifest"] != one["manifest"]
