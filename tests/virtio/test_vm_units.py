"""Units without a VM: the source kernel's configuration, vmlinux extraction, Firecracker's
configuration, zstd initramfs, and the import finder's lazy standard-library rule."""

from __future__ import annotations

import gzip
import io
import json
import lzma
import shutil
import struct
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from host_tools import needs, require
from unik.errors import BuildError
from unik.progress import Progress
from unik_virtio.firecracker import FirecrackerConfig
from unik_virtio.target import firecracker_config
from unik_vmimage import cpio, initramfs, source_kernel
from unik_vmimage.imports import find_modules
from unik_vmimage.kernels import DebianKernel, SourceKernel
from unik_vmimage.vmlinux import decompress, extract_vmlinux, payload
from virtio_support import validate_firecracker

# -- the source kernel's configuration ------------------------------------------------------


def test_source_options_follow_the_plan() -> None:
    hello = source_kernel.options_for([], "zstd")
    assert hello["MODULES"] == "n" and hello["RD_ZSTD"] == "y" and "RD_GZIP" not in hello
    assert hello["PACKET"] == "y" and hello["SERIAL_8250_CONSOLE"] == "y" and hello["X86_IOPL_IOPERM"] == "y"
    assert not any(k.startswith("VIRTIO_") and k != "VIRTIO_MENU" for k in hello)  # no device, no driver
    http = source_kernel.options_for(["virtio_pci", "virtio_mmio", "virtio-net", "virtio_rng"], "gzip")
    assert {http[k] for k in ("VIRTIO_PCI", "VIRTIO_MMIO", "VIRTIO_NET", "HW_RANDOM_VIRTIO", "RD_GZIP")} == {"y"}
    with pytest.raises(BuildError, match="does not know how to build in kernel module 'e1000'"):
        source_kernel.options_for(["e1000"], "zstd")
    with pytest.raises(BuildError, match="no initramfs decompressor"):
        source_kernel.options_for([], "lz5")


def test_source_fragment_round_trip_and_unmet_options() -> None:
    wanted = {"VIRTIO_NET": "y", "MODULES": "n", "LOG_BUF_SHIFT": "14"}
    text = source_kernel.fragment_text(wanted)
    assert "# CONFIG_MODULES is not set" in text and "CONFIG_VIRTIO_NET=y" in text
    assert source_kernel.read_config(text) == wanted
    got = {"VIRTIO_NET": "y", "LOG_BUF_SHIFT": "17"}  # MODULES absent means n
    assert source_kernel.unmet(wanted, got) == ["CONFIG_LOG_BUF_SHIFT=14 (got 17)"]


def test_source_provider_says_which_tools_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_kernel, "missing_tools", lambda: ["flex", "bison"])
    with pytest.raises(BuildError, match=r"needs flex, bison .*apt-get install flex bison"):
        SourceKernel().kernel(None, None, Progress(quiet=True))


def test_source_kernel_is_built_by_specialise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(source_kernel, "missing_tools", list)
    kernel = SourceKernel().kernel(None, None, Progress(quiet=True))
    with pytest.raises(BuildError, match="built by specialise"):
        kernel.module_files(["virtio_net"], Progress(quiet=True))
    seen: list[tuple[list[str], str]] = []

    def fake_build(modules: list[str], compression: str, progress: Progress, root: Path) -> tuple[Path, dict[str, Any]]:
        seen.append((list(modules), compression))
        return tmp_path / "bzImage", {"release": "6.1.192-unik", "build_seconds": 1.0}

    monkeypatch.setattr(source_kernel, "build_kernel", fake_build)
    kernel.specialise(["virtio_pci", "virtio_net"], "zstd", Progress(quiet=True))
    assert seen == [(["virtio_pci", "virtio_net"], "zstd")]
    assert kernel.image == tmp_path / "bzImage" and kernel.version == "6.1.192-unik"
    assert kernel.module_files(["virtio_pci", "virtio_net"], Progress(quiet=True)) == []  # all built in


# -- vmlinux --------------------------------------------------------------------------------


def _bzimage(compressed: bytes, setup_sects: int = 1, offset: int = 0x40) -> bytes:
    """A minimal bzImage: the boot header (protocol 2.15) and the payload after the setup."""
    head = bytearray((setup_sects + 1) * 512 + offset)
    head[0x1F1] = setup_sects
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x206, 0x20F)
    struct.pack_into("<II", head, 0x248, offset, len(compressed))
    return bytes(head) + compressed + b"\x00\x10\x00\x00"  # trailing size word, as the kernel has


ELF = b"\x7fELF" + bytes(range(256)) * 64


@pytest.mark.parametrize("how", ["gzip", "xz", "lz4", "zstd"])
def test_vmlinux_is_found_and_decompressed(how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if how == "gzip":
        packed = gzip.compress(ELF, mtime=0)
    elif how == "xz":
        packed = lzma.compress(ELF, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    else:
        require(how)
        args = [how, "-l", "-c"] if how == "lz4" else [how, "-q", "-c"]  # lz4 -l: the kernel's legacy frames
        packed = subprocess.run(args, input=ELF, capture_output=True, check=True).stdout
    image = _bzimage(packed)
    assert payload(image) == packed
    assert decompress(packed) == ELF
    (tmp_path / "vmlinuz").write_bytes(image)
    out = extract_vmlinux(tmp_path / "vmlinuz")
    assert out.read_bytes() == ELF and out.is_relative_to(tmp_path / "cache")
    assert extract_vmlinux(tmp_path / "vmlinuz") == out  # cached


def test_vmlinux_refuses_what_is_not_a_bzimage(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="not a bzImage"):
        payload(b"MZ" + bytes(1024))
    with pytest.raises(BuildError, match="unknown kernel compression"):
        decompress(b"\x00\x01\x02\x03\x04\x05")
    (tmp_path / "vmlinux").write_bytes(ELF)
    assert extract_vmlinux(tmp_path / "vmlinux") == tmp_path / "vmlinux"  # already ELF


@needs("qemu-system-x86_64", "apt-get", "dpkg-deb", "lz4")
def test_vmlinux_of_debians_kernel_is_an_x86_64_elf_executable() -> None:
    kernel = DebianKernel().kernel(None, None, Progress(quiet=True))
    data = extract_vmlinux(kernel.image).read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and struct.unpack_from("<HH", data, 16) == (2, 62)  # EXEC, x86-64


# -- Firecracker ----------------------------------------------------------------------------

def test_firecracker_config_carries_the_plans_drives_and_nics() -> None:
    devices: list[dict[str, Any]] = [
        {"name": "console", "kind": "console", "qemu_device": None},
        {"name": "storage", "kind": "block", "qemu_device": "virtio-blk-device", "read_only": True},
        {"name": "service", "kind": "network", "qemu_device": "virtio-net-device"},
        {"name": "entropy", "kind": "entropy", "qemu_device": "virtio-rng"},
    ]
    config = firecracker_config("initramfs.cpio.zst", "console=ttyS0", "192M", devices, {"service": "tap7"},
                                {"service": "02:00:00:12:34:56"}).to_json()
    validate_firecracker(config)
    assert config["boot-source"]["kernel_image_path"] == "vmlinux"
    assert config["boot-source"]["initrd_path"] == "initramfs.cpio.zst"
    assert "unik_exit=reboot" in config["boot-source"]["boot_args"]
    # the guest finds its NIC by the address Firecracker gives it: the command line names it too
    assert config["boot-source"]["boot_args"].endswith(" -- --net-mac service=02:00:00:12:34:56")
    assert "unik_seed" not in config["boot-source"]["boot_args"]  # the seed comes through virtio-rng
    assert config["machine-config"]["mem_size_mib"] == 192
    assert config["drives"] == [{"drive_id": "storage", "path_on_host": "storage.img", "is_root_device": False,
                                 "is_read_only": True, "cache_type": "Writeback"}]
    assert config["network-interfaces"] == [{"iface_id": "service", "host_dev_name": "tap7",
                                             "guest_mac": "02:00:00:12:34:56"}]
    assert config["entropy"] == {}
    bare = firecracker_config("initramfs.cpio.zst", "console=ttyS0", "1G", devices[:1], {}).to_json()
    validate_firecracker(bare)
    # virtio-rng always: the init reads the boot seed there
    assert bare["drives"] == [] and bare["network-interfaces"] == [] and bare["entropy"] == {}
    assert bare["machine-config"]["mem_size_mib"] == 1024
    with pytest.raises(AssertionError):
        validate_firecracker({**bare, "drives": [{"drive_id": "x"}]})  # is_root_device is required


def test_firecracker_records_read_back_and_refuse_what_firecracker_would() -> None:
    devices: list[dict[str, Any]] = [
        {"name": "storage", "kind": "block", "qemu_device": "virtio-blk", "read_only": False},
        {"name": "service", "kind": "network", "qemu_device": "virtio-net"},
    ]
    config = firecracker_config("initramfs.cpio.zst", "console=ttyS0", "256M", devices, {})
    written = json.loads(json.dumps(config.to_json()))
    assert FirecrackerConfig.from_json(written) == config  # what is written reads back the same
    refused = [
        ({**written, "logger": {}}, "unknown section 'logger'"),
        ({**written, "boot-source": {**written["boot-source"], "initrd": "x"}}, "boot-source has no field 'initrd'"),
        ({**written, "machine-config": {"vcpu_count": "1", "mem_size_mib": 256}}, r"vcpu_count is '1', not a int"),
        ({**written, "machine-config": {"vcpu_count": 64, "mem_size_mib": 256}}, "not within 1..32"),
        ({**written, "drives": [{"drive_id": "x", "path_on_host": "x.img"}]},
         r"drives\[0\] lacks the field 'is_root_device'"),
        ({**written, "drives": [{**written["drives"][0], "cache_type": "Fast"}]}, "cache_type 'Fast'"),
        ({**written, "network-interfaces": [{**written["network-interfaces"][0], "iface_id": "storage"}]},
         "'storage' names two devices"),
        ({"machine-config": written["machine-config"]}, "'boot-source' is missing"),
    ]
    for data, message in refused:
        with pytest.raises(BuildError, match=message):
            FirecrackerConfig.from_json(data)


# -- zstd initramfs -------------------------------------------------------------------------


@needs("zstd")
def test_zstd_compression_is_reproducible_and_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    raw = io.BytesIO()
    writer = cpio.Writer(raw)
    writer.add(cpio.Entry.file("init", b"\x7fELF" * 1000, 0o755))
    writer.close()
    packed = initramfs._compress(raw.getvalue(), "zstd")
    assert packed[:4] == initramfs.ZSTD_MAGIC
    shutil.rmtree(tmp_path / "cache")
    assert initramfs._compress(raw.getvalue(), "zstd") == packed  # not from the cache: same bytes
    (tmp_path / "i.zst").write_bytes(packed)
    assert [e.name for e in initramfs.read_initramfs(tmp_path / "i.zst")] == ["init"]


# -- the import finder's lazy rule ----------------------------------------------------------


def test_lazy_stdlib_imports_of_big_subsystems_are_not_followed(tmp_path: Path) -> None:
    std, app = tmp_path / "std", tmp_path / "app"
    std.mkdir()
    app.mkdir()
    for name in ("tarfile", "helper", "shutil_like", "cli_only"):
        (std / f"{name}.py").write_text("")
    (std / "email").mkdir()
    (std / "email" / "__init__.py").write_text("")
    (std / "email" / "parser.py").write_text("")
    (std / "archive.py").write_text(textwrap.dedent("""\
        import shutil_like
        def make_tar():
            import tarfile
            from email import parser
        def width():
            import helper
        if __name__ == "__main__":
            import cli_only
    """))
    (app / "main.py").write_text("import archive\n")
    found = find_modules(app / "main.py", [app, std], lazy_roots=[std])
    assert {"archive", "shutil_like", "helper", "cli_only"} <= set(found.modules)  # other lazy imports: followed
    assert "tarfile" not in found.modules and "email.parser" not in found.modules
    assert found.lazy == {"tarfile": "archive", "email": "archive"}
    (app / "mine.py").write_text("def later():\n    import tarfile\n")  # the application's own: followed
    (app / "main.py").write_text("import archive\nimport mine\n")
    assert "tarfile" in find_modules(app / "main.py", [app, std], lazy_roots=[std]).modules
    (app / "main.py").write_text("import archive\nimport tarfile\n")  # imported at module level: included
    assert "tarfile" in find_modules(app / "main.py", [app, std], lazy_roots=[std]).modules

