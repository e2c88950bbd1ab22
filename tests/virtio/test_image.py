"""What goes into the image: only the needed modules, reproducibly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from example_support import copy_example
from host_tools import require
from unik_vmimage.initramfs import read_initramfs
from virtio_support import build, validate_firecracker
from vm_support import unik


def _manifest(root: Path) -> dict[str, object]:
    directory = next((root / "dist").glob("*-virtio"))
    data = json.loads((directory / "artifact.json").read_text())
    return dict(data["manifest"])


def _image(root: Path) -> Path:
    return next((root / "dist").glob("*-virtio/initramfs.cpio*"))


def _names(root: Path) -> set[str]:
    return {e.name for e in read_initramfs(_image(root))}


def test_hello_needs_only_the_power_button_and_the_seed_modules(hello_app: Path) -> None:
    names = _names(hello_app)
    # the ACPI power button (unik stop presses it) and virtio-rng with its transports, through
    # which the init reads the boot seed (never the command line): modules in Debian's kernel
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith("lib/modules/")} == {
        "button.ko", "virtio.ko", "virtio_ring.ko", "virtio-rng.ko", "virtio_pci.ko", "virtio_mmio.ko",
        "virtio_pci_modern_dev.ko", "virtio_pci_legacy_dev.ko",
    }
    assert "sbin/poweroff" in names  # Xen's shutdown request runs it: a link to the init
    conf = next(e for e in read_initramfs(_image(hello_app))
                if e.name == "unik/init.conf").data.decode()
    assert "mount " not in conf  # the init prepares nothing it does not need
    assert "exec /usr/bin/python3 -S /app/main.py" in conf


def test_entropy_brings_exactly_virtio_rng_and_its_dependencies(status_app: Path) -> None:
    modules = {n.rsplit("/", 1)[1] for n in _names(status_app) if n.startswith("lib/modules/")}
    # virtio-rng, the two virtio transports (the machine is chosen at run time), their shared deps
    assert modules == {
        "virtio.ko", "virtio_ring.ko", "virtio-rng.ko", "virtio_pci.ko", "virtio_mmio.ko",
        "virtio_pci_modern_dev.ko", "virtio_pci_legacy_dev.ko", "button.ko",
    }
    manifest = _manifest(status_app)
    devices = {d["name"]: d for d in manifest["devices"]}  # type: ignore[index, union-attr, attr-defined]
    assert devices["entropy"]["qemu_device"] == "virtio-rng"


def test_stdlib_is_trimmed_and_precompiled(hello_app: Path) -> None:
    names = _names(hello_app)
    stdlib = {n for n in names if n.startswith("usr/lib/python3.11/")}
    assert "usr/lib/python3.11/asyncio/base_events.pyc" in stdlib
    assert "usr/lib/python3.11/encodings/utf_8.pyc" in stdlib
    assert not [n for n in stdlib if n.endswith(".py")]  # sourceless, precompiled
    for absent in ("pydoc", "unittest", "tkinter", "lib2to3", "ensurepip", "idlelib", "pdb"):
        assert not [n for n in stdlib if n.split("/")[3].split(".")[0] == absent], absent
    assert "app/hello/__init__.py" in names
    assert "app/hello/__pycache__/__init__.cpython-311.pyc" in names
    assert "app/unik_vmimage/init/unik-init" not in names  # build tools stay out


def test_the_image_carries_the_guest_code_and_none_of_the_host_code(hello_app: Path) -> None:
    names = _names(hello_app)
    assert "app/unik/posix.py" in names and "app/unik_fdio/packet.py" in names  # what runs in the guest (the console)
    # the image builder, the QEMU runner and the target's own package stay on the host
    assert not [n for n in names if n.startswith(("app/unik_vmimage/", "app/unik_virtio/"))]


def test_two_builds_are_byte_identical(status_app: Path, tmp_path: Path) -> None:
    first = next((status_app / "dist").glob("*-virtio"))
    unik("build", "--dist", str(tmp_path / "again"), cwd=status_app)
    second = tmp_path / "again" / first.name
    for name in (_image(status_app).name, "vmlinuz", "firecracker.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_the_archive_is_valid_newc_for_cpio(hello_app: Path, tmp_path: Path) -> None:
    require("cpio", "zstd")
    image = _image(hello_app)
    assert image.name == "initramfs.cpio.zst"  # the default: zstd unpacks fastest at boot
    raw = subprocess.run(["zstd", "-dc", str(image)], capture_output=True, check=True).stdout
    listed = subprocess.run(["cpio", "-it", "--quiet"], input=raw, capture_output=True, check=True).stdout
    assert set(listed.decode().split()) == _names(hello_app)


def test_manifest_and_firecracker_config(hello_app: Path) -> None:
    manifest = _manifest(hello_app)
    assert manifest["kernel"]["provider"] == "debian"  # type: ignore[index]
    assert "console=ttyS0" in str(manifest["cmdline"])
    fc = json.loads(next(hello_app.glob("dist/*-virtio/firecracker.json")).read_text())
    assert fc["machine-config"]["mem_size_mib"] == 256
    assert fc["boot-source"]["initrd_path"] == "initramfs.cpio.zst"
    assert "unik_exit=reboot" in fc["boot-source"]["boot_args"]
    validate_firecracker(fc)  # Firecracker's documented fields only
    vmlinux = next(hello_app.glob("dist/*-virtio")) / fc["boot-source"]["kernel_image_path"]
    assert vmlinux.read_bytes()[:4] == b"\x7fELF"  # Firecracker boots the uncompressed ELF kernel
    assert manifest["kernel"]["vmlinux"] == "vmlinux"  # type: ignore[index]


def test_xz_compression_is_smaller_and_readable(tools: None, tmp_path: Path) -> None:
    root = copy_example("hello", tmp_path)
    directory = build(root, "--initramfs-compression", "xz")
    image = directory / "initramfs.cpio.xz"
    assert image.read_bytes()[:6] == b"\xfd7zXZ\x00"
    assert {e.name for e in read_initramfs(image)} >= {"init", "unik/init.conf", "usr/bin/python3"}
    manifest = json.loads((directory / "artifact.json").read_text())["manifest"]
    assert manifest["initramfs"]["file"] == "initramfs.cpio.xz"
    assert json.loads((directory / "firecracker.json").read_text())["boot-source"]["initrd_path"] == image.name


def test_http_image_is_small_and_uses_libcrypto_not_cryptography(http_app: Path) -> None:
    # Fortuna's AES-256-CTR runs on OpenSSL's libcrypto (unik_entropy._aesctr), found by ldd like
    # every library; the `cryptography` package (its Rust extension alone is ~5 MB packed) stays out.
    image = _image(http_app)
    assert image.stat().st_size <= 8_000_000, image.stat().st_size
    names = _names(http_app)
    manifest = _manifest(http_app)
    assert any(lib.endswith("/libcrypto.so.3") for lib in manifest["initramfs"]["libraries"])  # type: ignore[index]
    assert any(n.startswith("app/unik_entropy/_aesctr.") for n in names)
    assert not [n for n in names if n.startswith(("app/cryptography/", "app/_cffi_backend"))]
    # lazy imports of big stdlib subsystems are left out; what asyncio and the stack import stays
    stdlib = set(manifest["initramfs"]["stdlib_modules"])  # type: ignore[index]
    assert not {"multiprocessing", "email", "unicodedata", "tarfile", "zipfile", "importlib.metadata"} & stdlib
    assert {"asyncio.base_events", "concurrent.futures.thread", "shutil", "hashlib"} <= stdlib
