"""`unik build --image disk,qcow2,gce`: the disk UEFI firmware boots alone (OVMF under TCG), and what it holds."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from deploy_support import base_command, manifest, nic_args, read_layout, serve_and_curl, tap_netns, uefi_args
from host_tools import needs
from unik_vmimage.disk import gpt
from unik_vmimage.disk.images import GCE_MULTIPLE
from unik_vmimage.disk.uki import read_section


def _artifact(app: Path) -> Path:
    return app / "dist" / "http-virtio"


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.parametrize("form", ["disk", "qcow2"])
def test_the_disk_boots_with_uefi_alone_and_answers_curl(deploy_app: Path, form: str, tmp_path: Path) -> None:
    # No -kernel, -initrd or -append: OVMF finds \EFI\BOOT\BOOTX64.EFI on the ESP, systemd's stub boots
    # the kernel with the initramfs and command line of its sections.
    artifact = _artifact(deploy_app)
    info = manifest(artifact)
    disk = artifact / info["images"][form]["file"]
    assert info["images"]["macs"] == {}  # one NIC: the image names no address, the guest takes the only NIC
    cloud_mac = "52:54:00:c1:0d:" + ("01" if form == "disk" else "02")  # as a cloud would choose it
    with tap_netns("disk") as netns:
        command = [*base_command(info["mem"]), *uefi_args(tmp_path, disk, "raw" if form == "disk" else "qcow2"),
                   *nic_args(cloud_mac)]
        assert "-kernel" not in command
        _, console = serve_and_curl(netns, command)
    assert console[-1].strip() == "serving on 10.97.0.2:8080"


def test_the_unified_kernel_image_holds_the_build_and_nothing_per_boot(deploy_app: Path) -> None:
    artifact = _artifact(deploy_app)
    info = manifest(artifact)
    uki = (artifact / info["images"]["uki"]["file"]).read_bytes()
    assert read_section(uki, ".linux") == (artifact / info["kernel"]["file"]).read_bytes()
    assert read_section(uki, ".initrd") == (artifact / info["initramfs"]["file"]).read_bytes()
    cmdline = read_section(uki, ".cmdline").rstrip(b"\0").decode()
    assert cmdline == info["images"]["cmdline"] == f"{info['cmdline']} -- --ipv4=10.97.0.2/24"  # no MAC: any NIC
    # every copy of a disk boots with this command line: the boot seed comes from virtio-rng, never from here
    assert "unik_seed" not in cmdline and "virtio-rng" in info["initramfs"]["kernel_modules"]
    assert b'ID=unik' in read_section(uki, ".osrel")


@needs("fsck.fat")
def test_the_esp_unik_lib_fat_wrote_is_clean(deploy_app: Path, tmp_path: Path) -> None:
    artifact = _artifact(deploy_app)
    raw = artifact / manifest(artifact)["images"]["disk"]["file"]
    (esp,) = read_layout(raw).partitions
    assert esp.type_guid == gpt.ESP_TYPE and esp.first_lba == 2048
    with open(raw, "rb") as disk:
        disk.seek(esp.offset)
        (tmp_path / "esp.img").write_bytes(disk.read(esp.size))
    fsck = subprocess.run(["fsck.fat", "-n", str(tmp_path / "esp.img")], capture_output=True, text=True)
    assert fsck.returncode == 0 and "FAT" not in fsck.stderr, fsck.stdout + fsck.stderr
    listing = subprocess.run(["mdir", "-b", "-i", str(tmp_path / "esp.img"), "::/EFI/BOOT"], capture_output=True,
                             text=True, check=True)
    assert listing.stdout.split() == ["::/EFI/BOOT/BOOTX64.EFI"]


@needs("qemu-img")
def test_the_qcow2_is_the_same_disk(deploy_app: Path) -> None:
    artifact = _artifact(deploy_app)
    images = manifest(artifact)["images"]
    qcow2, raw = artifact / images["qcow2"]["file"], artifact / images["disk"]["file"]
    check = subprocess.run(["qemu-img", "check", str(qcow2)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    same = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(qcow2), str(raw)],
                          capture_output=True, text=True)
    assert same.returncode == 0, same.stdout + same.stderr


def test_the_gce_tarball_is_whole_gib_disk_raw_with_no_time_or_owner(deploy_app: Path, tmp_path: Path) -> None:
    artifact = _artifact(deploy_app)
    tarball = artifact / manifest(artifact)["images"]["gce"]["file"]
    assert tarball.name == "http.gce.tar.gz"
    header = tarball.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08" and header[4:8] == bytes(4)  # gzip, MTIME 0
    with tarfile.open(tarball, "r:gz") as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.uid, member.gid, member.mtime, member.uname) == ("disk.raw", 0, 0, 0, "")
        assert member.size % GCE_MULTIPLE == 0
        data = tar.extractfile(member)
        assert data is not None
        with open(tmp_path / "disk.raw", "wb") as out:  # sparse: only the chunks that hold something
            while chunk := data.read(1 << 20):
                if chunk.count(0) != len(chunk):
                    out.write(chunk)
                else:
                    out.seek(len(chunk), os.SEEK_CUR)
            out.truncate()
    (esp,) = read_layout(tmp_path / "disk.raw").partitions
    with open(artifact / "http.raw", "rb") as raw, open(tmp_path / "disk.raw", "rb") as gce:
        raw.seek(esp.offset)
        gce.seek(esp.offset)
        assert raw.read(esp.size) == gce.read(esp.size)
