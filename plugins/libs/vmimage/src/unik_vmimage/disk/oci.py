"""The image as an OCI image layout: a KubeVirt containerDisk that also boots by kernel, and urunc's labels.

``<name>.oci/`` is an OCI image layout (image-spec 1.1, "image-layout.md"):
``oci-layout``, ``index.json`` and content-addressed ``blobs/sha256/``, holding one
image of one layer:

* ``/disk/<name>.qcow2`` — the bootable disk (:mod:`.images`), owned by 107:107 (the
  ``qemu`` user of KubeVirt's launcher) as KubeVirt's containerDisk documentation asks;
* ``/boot/vmlinuz`` and ``/boot/<initramfs>`` — for KubeVirt's ``kernelBoot`` (its
  ``kernelPath`` and ``initrdPath``) and for urunc;
* ``/urunc.json`` — urunc's labels again, base64-encoded, for runtimes that do not pass
  image annotations down (urunc's documented fallback).

urunc's ``com.urunc.unikernel.*`` keys are set as the manifest's annotations and as the
configuration's labels.  The same inputs give the same manifest digest: tar entries
sorted with fixed owners, modes and times (``SOURCE_DATE_EPOCH``, else 0), gzip with no
name or time, JSON with sorted keys and no spaces.  Nothing here runs a container: the
layout is pushed with ``skopeo`` (``unik push``).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unik.errors import BuildError

LAYOUT_VERSION = "1.0.0"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
#: The tag ``index.json`` gives the image (``oci:<dir>:latest``).
TAG = "latest"
#: KubeVirt's launcher runs QEMU as uid/gid 107 ("qemu"): a containerDisk's file is theirs.
QEMU_UID = 107
KERNEL_PATH = "/boot/vmlinuz"
URUNC_FILE = "urunc.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class OciContents:
    """What goes into the image: the disk, the kernel and initramfs, the kernel command line."""

    name: str
    version: str
    disk: Path
    kernel: Path
    initramfs: Path
    cmdline: str

    @property
    def initrd_path(self) -> str:
        """Where the initramfs is in the image."""
        return f"/boot/{self.initramfs.name}"

    @property
    def disk_path(self) -> str:
        """Where the disk is in the image (KubeVirt takes the one file under ``/disk/``)."""
        return f"/disk/{self.disk.name}"


def source_date_epoch() -> int:
    """``SOURCE_DATE_EPOCH`` (the reproducible-builds convention), else 0."""
    try:
        return max(int(os.environ.get("SOURCE_DATE_EPOCH", "0")), 0)
    except ValueError:
        return 0


def urunc_annotations(contents: OciContents) -> dict[str, str]:
    """The keys urunc reads: a Linux guest (kernel, initramfs) under QEMU, its command line, no rootfs to mount."""
    return {
        "com.urunc.unikernel.unikernelType": "linux",
        "com.urunc.unikernel.hypervisor": "qemu",
        "com.urunc.unikernel.binary": KERNEL_PATH,
        "com.urunc.unikernel.initrd": contents.initrd_path,
        "com.urunc.unikernel.cmdline": contents.cmdline,
        "com.urunc.unikernel.mountRootfs": "false",
        "com.urunc.unikernel.unikernelVersion": contents.version,
    }


def canonical(data: Any) -> bytes:
    """JSON with sorted keys and no spaces: the same object gives the same digest."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _member(name: str, *, size: int = 0, mode: int = 0o644, owner: int = 0, directory: bool = False,
            mtime: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.size, info.mode, info.mtime = (0 if directory else size), mode, mtime
    info.uid = info.gid = owner
    info.uname = info.gname = ""
    return info


class _Tee:
    """Hashes the tar stream (the layer's diff_id) on its way into gzip."""

    def __init__(self, sink: gzip.GzipFile, digest: Any) -> None:
        self.sink, self.digest = sink, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.sink.write(data)


def write_layer(contents: OciContents, out: Path, annotations: Mapping[str, str]) -> str:
    """The layer as a gzip'd tar at ``out``; returns the uncompressed tar's digest (the config's diff_id)."""
    mtime = source_date_epoch()
    urunc = canonical({k: base64.b64encode(v.encode()).decode() for k, v in annotations.items()})
    files: list[tuple[tarfile.TarInfo, Path | bytes | None]] = [
        (_member("boot", mode=0o755, directory=True, mtime=mtime), None),
        (_member(f"boot/{contents.initramfs.name}", size=contents.initramfs.stat().st_size, mtime=mtime),
         contents.initramfs),
        (_member("boot/vmlinuz", size=contents.kernel.stat().st_size, mtime=mtime), contents.kernel),
        (_member("disk", mode=0o755, owner=QEMU_UID, directory=True, mtime=mtime), None),
        (_member(f"disk/{contents.disk.name}", size=contents.disk.stat().st_size, mode=0o440, owner=QEMU_UID,
                 mtime=mtime), contents.disk),
        (_member(URUNC_FILE, size=len(urunc), mtime=mtime), urunc),
    ]
    files.sort(key=lambda item: item[0].name)
    diff = hashlib.sha256()
    with open(out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
        tee = _Tee(gz, diff)
        with tarfile.open(fileobj=tee, mode="w|", format=tarfile.USTAR_FORMAT) as tar:  # type: ignore[call-overload]
            for info, source in files:
                if source is None:
                    tar.addfile(info)
                elif isinstance(source, bytes):
                    tar.addfile(info, io.BytesIO(source))
                else:
                    with open(source, "rb") as f:
                        tar.addfile(info, f)
    return "sha256:" + diff.hexdigest()


def _blob(blobs: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _file_blob(blobs: Path, path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    size = path.stat().st_size
    os.replace(path, blobs / h.hexdigest())
    return {"digest": f"sha256:{h.hexdigest()}", "size": size}


def write_layout(contents: OciContents, out: Path) -> dict[str, Any]:
    """Write the OCI image layout ``out`` (replacing one there); the manifest's digest and what it holds."""
    if out.exists():
        shutil.rmtree(out)
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    annotations = urunc_annotations(contents)
    staged = out / "layer.tar.gz"
    diff_id = write_layer(contents, staged, annotations)
    layer = {"mediaType": LAYER, **_file_blob(blobs, staged)}
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": annotations},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, **_blob(blobs, canonical(config))},
        "layers": [layer],
        "annotations": {**annotations, "org.opencontainers.image.title": contents.name},
    }
    described = {"mediaType": MANIFEST, **_blob(blobs, canonical(manifest))}
    index = {"schemaVersion": 2, "mediaType": INDEX,
             "manifests": [{**described, "annotations": {REF_NAME: TAG}}]}
    (out / "index.json").write_bytes(canonical(index))
    (out / "oci-layout").write_bytes(canonical({"imageLayoutVersion": LAYOUT_VERSION}))
    return {"layout": out.name, "tag": TAG, "manifest": described["digest"], "kernel_path": KERNEL_PATH,
            "initrd_path": contents.initrd_path, "disk_path": contents.disk_path, "kernel_args": contents.cmdline}


def read_manifest(layout: Path) -> dict[str, Any]:
    """The manifest ``index.json`` names for :data:`TAG` (for checks and ``unik push``)."""
    try:
        index = json.loads((layout / "index.json").read_text())
        entry = next(m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) == TAG)
        data: dict[str, Any] = json.loads((layout / "blobs" / "sha256" / entry["digest"].split(":", 1)[1]).read_text())
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise BuildError(f"{layout} is not an OCI image layout unik wrote ({exc}): build it with "
                         "`unik configure -t virtio --image oci && unik build`") from None
    return data
