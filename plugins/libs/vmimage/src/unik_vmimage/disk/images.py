r"""The image as a bootable disk, for clouds and image-based engines: raw, qcow2 and GCE's ``.tar.gz``.

Every form is the same disk: a GPT (:mod:`.gpt`) with an EFI system partition
(:mod:`.esp`, written by unik-lib-fat) holding the unified kernel image (:mod:`.uki`)
at ``\EFI\BOOT\BOOTX64.EFI``, then the plan's data disks (block devices whose device
table names a ``file``) as partitions named after their devices.  UEFI firmware (OVMF, the clouds') boots it with no
boot entries and no ``-kernel``:

* ``disk`` — ``<name>.raw``, the disk as bytes (OpenStack Glance, AWS import-snapshot,
  ``dd`` to a volume);
* ``qcow2`` — ``<name>.qcow2``, made by ``qemu-img convert`` (libvirt, OpenStack, KubeVirt's
  containerDisk);
* ``oci`` — ``<name>.oci/``, an OCI image layout (:mod:`.oci`: the qcow2 disk as a KubeVirt
  containerDisk, the kernel and the initramfs for ``kernelBoot`` and urunc);
* ``gce`` — ``<name>.gce.tar.gz``: ``disk.raw`` sized to whole GiB (GCE's importer takes
  no other size) in a tar archive, owner 0, mtime 0, gzip's mtime 0.

The same inputs give the same bytes: the GUIDs are derived from the image's name and
the UKI's digest, the ESP's timestamps are fixed, the tar and gzip headers carry no
time.  Secure Boot is out of scope: the UKI is unsigned.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unik.errors import BuildError
from unik.progress import Progress

from . import gpt
from .esp import BOOT_PATH, esp_size, write_esp
from .uki import UkiParts, os_release, write_uki

#: What ``--image`` may ask for, in the order they are made.
FORMATS = ("disk", "qcow2", "gce", "oci")
#: GCE imports only disks of whole GiB.
GCE_MULTIPLE = 1 << 30
GCE_MEMBER = "disk.raw"
ESP_NAME = "EFI system"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DiskSpec:
    """What a bootable disk is made of."""

    name: str
    kernel: Path
    initramfs: Path
    cmdline: str
    #: unik's version, for the UKI's os-release and urunc's labels.
    version: str
    #: The plan's data disks to carry as partitions: (device name, the disk image's file).
    data: tuple[tuple[str, Path], ...] = ()


def parse_formats(text: str | None) -> tuple[str, ...]:
    """``disk,qcow2`` as a tuple in :data:`FORMATS` order (``oci`` brings the disk it packs)."""
    asked = [f.strip() for f in (text or "").split(",") if f.strip() and f.strip() != "none"]
    unknown = [f for f in asked if f not in FORMATS]
    if unknown:
        from unik.errors import did_you_mean

        raise ValueError(f"{unknown[0]!r} is not an image format: give some of {', '.join(FORMATS)} "
                         f"(comma-separated){did_you_mean(unknown[0], FORMATS)}")
    return tuple(f for f in FORMATS if f in asked)


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _copy_sparse(source: Path, fd: int, offset: int) -> None:
    """Copy ``source`` into ``fd`` at ``offset``, leaving all-zero MiB unwritten (the disk stays sparse)."""
    with open(source, "rb") as f:
        while chunk := f.read(_CHUNK):
            if chunk.count(0) != len(chunk):
                os.pwrite(fd, chunk, offset)
            offset += len(chunk)


def write_disk(path: Path, layout: gpt.Layout, contents: Mapping[int, Path]) -> None:
    """A disk file of ``layout`` with partition ``i``'s bytes from ``contents[i]``."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        gpt.write_gpt(fd, layout)
        for index, source in contents.items():
            part = layout.partitions[index]
            if source.stat().st_size > part.size:
                raise BuildError(f"{source.name} ({source.stat().st_size} bytes) does not fit partition "
                                 f"{part.name!r} ({part.size} bytes)")
            _copy_sparse(source, fd, part.offset)
    finally:
        os.close(fd)


def qemu_img() -> str:
    """``qemu-img``, or a :class:`BuildError` saying how to install it."""
    found = shutil.which("qemu-img")
    if not found:
        raise BuildError("--image qcow2 needs qemu-img: apt-get install qemu-utils")
    return found


def write_qcow2(raw: Path, out: Path) -> None:
    """Convert the raw disk to qcow2 (unallocated clusters stay unallocated)."""
    proc = subprocess.run([qemu_img(), "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise BuildError(f"qemu-img could not convert {raw.name} to qcow2: {proc.stderr.strip()}")


def write_gce_tarball(raw: Path, out: Path) -> None:
    """GCE's image form: ``disk.raw`` alone in a gzip'd tar, with no owner, time or name in the headers."""
    info = tarfile.TarInfo(GCE_MEMBER)
    info.size, info.mode, info.mtime = raw.stat().st_size, 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    with open(out, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar, open(raw, "rb") as data:
        tar.addfile(info, data)


def disk_layout(name: str, esp_bytes: int, uki_digest: str, data: Sequence[tuple[str, int]] = (),
                size_multiple: int = 1 << 20) -> gpt.Layout:
    """The disk: the EFI system partition, then a partition per data disk (device name, bytes), named after it.

    GUIDs are derived from the name and the UKI's digest.
    """
    wanted = [gpt.Wanted(ESP_NAME, esp_bytes, gpt.ESP_TYPE, gpt.stable_guid(name, uki_digest, "esp"))]
    wanted += [gpt.Wanted(device, size, gpt.LINUX_DATA_TYPE, gpt.stable_guid(name, uki_digest, "data", device))
               for device, size in data]
    return gpt.plan_layout(wanted, gpt.stable_guid(name, uki_digest, "disk"), size_multiple=size_multiple)


def write_images(formats: Iterable[str], spec: DiskSpec, out: Path, progress: Progress) -> dict[str, Any]:
    """Write the unified kernel image and the disk forms asked for into ``out``; the manifest's entries.

    ``oci`` packs the qcow2 disk (written for it) with the kernel and the initramfs (:mod:`.oci`).
    """
    wanted = tuple(formats)
    uki = out / f"{spec.name}.efi"
    with progress.step("writing the unified kernel image (kernel, initramfs, command line)"):
        write_uki(UkiParts(spec.kernel, spec.initramfs, spec.cmdline, os_release(spec.name, spec.version)), uki)
    uki_digest = file_digest(uki)
    entries: dict[str, Any] = {"uki": {"file": uki.name, "digest": uki_digest, "bytes": uki.stat().st_size},
                               "cmdline": spec.cmdline}
    raw = out / f"{spec.name}.raw"
    for stale in (raw, out / f"{spec.name}.qcow2", out / f"{spec.name}.gce.tar.gz"):
        stale.unlink(missing_ok=True)
    shutil.rmtree(out / f"{spec.name}.oci", ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="unik-disk-", dir=out) as tmp:
        size = esp_size(uki.stat().st_size)
        for device, source in spec.data:
            if not source.is_file() or not source.stat().st_size:
                raise BuildError(f"block device {device}: its disk image {source} is missing or empty: create it "
                                 f"(truncate -s 64M {source}) before building --image disk, which carries it as a "
                                 "partition")
        data = [(device, source.stat().st_size) for device, source in spec.data]
        layout = disk_layout(spec.name, size, uki_digest, data)
        esp = Path(tmp) / "esp.img"
        contents = {0: esp, **{i + 1: source for i, (_, source) in enumerate(spec.data)}}
        with progress.step(f"writing the EFI system partition ({size >> 20} MiB, FAT32, unik-lib-fat)"):
            write_esp(esp, {BOOT_PATH: uki}, start_lba=layout.partitions[0].first_lba, size=size)
        disk = raw if "disk" in wanted else Path(tmp) / "disk.raw"
        write_disk(disk, layout, contents)
        made = {"disk": disk} if disk == raw else {}
        if {"qcow2", "oci"} & set(wanted):
            with progress.step("converting the disk to qcow2 (qemu-img)"):
                write_qcow2(disk, out / f"{spec.name}.qcow2")
            made["qcow2"] = out / f"{spec.name}.qcow2"
        if "gce" in wanted:
            gce_raw = Path(tmp) / GCE_MEMBER
            write_disk(gce_raw, disk_layout(spec.name, size, uki_digest, data, GCE_MULTIPLE), contents)
            with progress.step("packing disk.raw for GCE (whole GiB, gzip'd tar)"):
                write_gce_tarball(gce_raw, out / f"{spec.name}.gce.tar.gz")
            made["gce"] = out / f"{spec.name}.gce.tar.gz"
    for form, path in made.items():
        entries[form] = {"file": path.name, "digest": file_digest(path), "bytes": path.stat().st_size}
    entries["esp"] = {"offset": layout.partitions[0].offset, "bytes": size}
    if spec.data:
        entries["partitions"] = {p.name: {"offset": p.offset, "bytes": p.size} for p in layout.partitions[1:]}
    if "oci" in wanted:
        from .oci import OciContents, write_layout

        with progress.step("writing the OCI image layout (containerDisk, kernel, initramfs, urunc's labels)"):
            entries["oci"] = write_layout(OciContents(spec.name, spec.version, made["qcow2"], spec.kernel,
                                                      spec.initramfs, spec.cmdline), out / f"{spec.name}.oci")
    return entries
