"""The unified kernel image: one EFI executable holding the kernel, the initramfs and the command line.

systemd's EFI stub (Debian's ``systemd-boot-efi``: ``linuxx64.efi.stub``) is a PE/COFF
program that, when the firmware runs it, finds its own sections ``.linux`` (the
kernel), ``.initrd`` (the initramfs), ``.cmdline`` and ``.osrel``, and boots the
kernel with them (systemd's "Unified Kernel Image" specification).  Debian 12's
systemd (252) has no ``ukify``, so the sections are added with binutils' ``objcopy``,
each at a virtual address after the stub's own sections, aligned to 4 KiB, in this
order: the small ones first, the kernel, then the initramfs last (it may be large).
The addresses are computed from the stub's PE headers (:func:`pe_end`), not fixed
constants, so a larger stub cannot overlap them.

Secure Boot is out of scope: the image is not signed, so firmware with Secure Boot
enabled refuses it (the clouds' default shielded/trusted-launch options included);
boot such VMs with Secure Boot off.

Nothing per-boot is in the image: the command line holds the target's options and the
configured keys only; the guest's boot seed comes from virtio-rng (the init reads it),
which a command line baked into every copy of the image could not give.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from unik.errors import BuildError

#: Debian's ``systemd-boot-efi`` stub for x86-64.
STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
#: Each added section starts on a page.
SECTION_ALIGN = 4096


@dataclass(frozen=True)
class UkiParts:
    """What goes into a unified kernel image."""

    kernel: Path
    initramfs: Path
    cmdline: str
    os_release: str


def pe_end(image: bytes) -> int:
    """The first virtual address (ImageBase included) after every section of a PE32+ image."""
    if image[:2] != b"MZ":
        raise BuildError("the EFI stub is not a PE image (no MZ header)")
    pe = struct.unpack_from("<I", image, 0x3C)[0]
    if image[pe:pe + 4] != b"PE\0\0":
        raise BuildError("the EFI stub is not a PE image (no PE signature)")
    sections, optional_size = struct.unpack_from("<H12xH", image, pe + 6)
    optional = pe + 24
    if struct.unpack_from("<H", image, optional)[0] != 0x20B:
        raise BuildError("the EFI stub is not PE32+ (64-bit)")
    image_base = struct.unpack_from("<Q", image, optional + 24)[0]
    end = 0
    table = optional + optional_size
    for i in range(sections):
        virtual_size, virtual_address = struct.unpack_from("<II", image, table + 40 * i + 8)
        end = max(end, virtual_address + virtual_size)
    return int(image_base + end)


def section_addresses(stub: bytes, sizes: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """Virtual addresses for sections of ``sizes`` (name, bytes), one after another after the stub's."""
    address = pe_end(stub)
    out = []
    for name, size in sizes:
        address = -(-address // SECTION_ALIGN) * SECTION_ALIGN
        out.append((name, address))
        address += size
    return out


def objcopy() -> str:
    """Binutils' ``objcopy``, or a :class:`BuildError` saying how to install it."""
    found = shutil.which("objcopy")
    if not found:
        raise BuildError("a bootable disk needs binutils' objcopy to make the unified kernel image: "
                         "apt-get install binutils")
    return found


def require_stub(stub: Path = STUB) -> Path:
    """The EFI stub, or a :class:`BuildError` saying how to install it."""
    if not stub.is_file():
        raise BuildError(f"a bootable disk needs systemd's EFI stub {stub}: apt-get install systemd-boot-efi")
    return stub


def write_uki(parts: UkiParts, out: Path, stub: Path = STUB) -> None:
    """Write the unified kernel image of ``parts`` to ``out``."""
    stub_bytes = require_stub(stub).read_bytes()
    tool = objcopy()
    with tempfile.TemporaryDirectory(prefix="unik-uki-") as tmp:
        osrel = Path(tmp) / "os-release"
        osrel.write_text(parts.os_release)
        cmdline = Path(tmp) / "cmdline"
        cmdline.write_bytes(parts.cmdline.encode() + b"\0")
        files = [(".osrel", osrel), (".cmdline", cmdline), (".linux", parts.kernel), (".initrd", parts.initramfs)]
        placed = section_addresses(stub_bytes, [(name, path.stat().st_size) for name, path in files])
        args = [tool]
        for (name, path), (_, address) in zip(files, placed, strict=True):
            args += ["--add-section", f"{name}={path}", "--change-section-vma", f"{name}={address:#x}"]
        proc = subprocess.run([*args, str(stub), str(out)], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise BuildError(f"objcopy could not make the unified kernel image: {proc.stderr.strip()}")
    data = bytearray(out.read_bytes())
    restamp(data, struct.unpack_from("<I", stub_bytes, _pe_offset(stub_bytes) + 8)[0])
    out.write_bytes(data)


def _pe_offset(image: bytes | bytearray) -> int:
    return int(struct.unpack_from("<I", image, 0x3C)[0])


def pe_checksum(image: bytes | bytearray) -> int:
    """The PE optional header's ``CheckSum``: 16-bit words summed with carries folded, plus the length.

    The checksum field itself counts as zero (Microsoft's ``CheckSumMappedFile``).
    """
    field = _pe_offset(image) + 24 + 64
    data = bytes(image[:field]) + bytes(4) + bytes(image[field + 4:])
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"<{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (total + len(image)) & 0xFFFFFFFF


def restamp(image: bytearray, timestamp: int) -> None:
    """Set a PE image's ``TimeDateStamp`` (objcopy writes the time now) and its checksum again.

    Firmware does not check either without Secure Boot, but a fixed stamp makes the same
    inputs give the same bytes.
    """
    pe = _pe_offset(image)
    struct.pack_into("<I", image, pe + 8, timestamp)
    struct.pack_into("<I", image, pe + 24 + 64, pe_checksum(image))


def read_section(uki: bytes, name: str) -> bytes:
    """The raw bytes of section ``name`` of a PE image (for checks: what the stub will read)."""
    pe = struct.unpack_from("<I", uki, 0x3C)[0]
    sections, optional_size = struct.unpack_from("<H12xH", uki, pe + 6)
    table = pe + 24 + optional_size
    for i in range(sections):
        entry = table + 40 * i
        if uki[entry:entry + 8].rstrip(b"\0").decode(errors="replace") == name:
            virtual_size, _, raw_size, raw_offset = struct.unpack_from("<IIII", uki, entry + 8)
            return uki[raw_offset:raw_offset + min(virtual_size, raw_size)]
    raise KeyError(name)


def os_release(name: str, version: str) -> str:
    """The ``.osrel`` section: what boot menus and ``bootctl`` show for the image."""
    return (f'NAME="{name}"\nID=unik\nPRETTY_NAME="{name} (unik {version})"\nVERSION_ID="{version}"\n')
