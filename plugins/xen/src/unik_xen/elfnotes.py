"""The Xen ELF notes of a kernel: whether it can boot as a PVH or a PV guest.

Xen's domain builder (and QEMU's ``-kernel`` PVH loader) look for notes named ``Xen``
in the kernel's ``PT_NOTE`` segments.  A PVH guest needs
``XEN_ELFNOTE_PHYS32_ENTRY`` (18, the 32-bit entry point); a PV guest needs
``XEN_ELFNOTE_ENTRY`` (1) (Xen's ``public/elfnote.h``; Linux 6.1 no longer carries
``XEN_ELFNOTE_HYPERCALL_PAGE``, 2).
"""

from __future__ import annotations

import struct
from pathlib import Path

from unik.errors import BuildError

XEN_ELFNOTE_ENTRY = 1
XEN_ELFNOTE_PHYS32_ENTRY = 18
PT_NOTE = 4


def xen_notes(elf: bytes) -> dict[int, bytes]:
    """The descriptors of the ``Xen`` notes of an ELF64 little-endian image, by note type."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise BuildError("not a little-endian ELF64 kernel (vmlinux)")
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    notes: dict[int, bytes] = {}
    for i in range(phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != PT_NOTE:
            continue
        pos, end = p_offset, min(p_offset + p_filesz, len(elf))
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name_at = pos + 12
            desc_at = name_at + ((namesz + 3) & ~3)
            if elf[name_at:name_at + namesz].rstrip(b"\0") == b"Xen":
                notes[ntype] = elf[desc_at:desc_at + descsz]
            pos = desc_at + ((descsz + 3) & ~3)
    return notes


def guest_types(vmlinux: Path) -> list[str]:
    """The Xen guest types the kernel ``vmlinux`` can boot as (``pvh``, ``pv``)."""
    notes = xen_notes(vmlinux.read_bytes())
    types = []
    if XEN_ELFNOTE_PHYS32_ENTRY in notes:
        types.append("pvh")
    if XEN_ELFNOTE_ENTRY in notes:
        types.append("pv")
    return types


def pvh_entry(vmlinux: Path) -> int | None:
    """The PVH entry point (physical address) of ``vmlinux``, ``None`` without the note."""
    desc = xen_notes(vmlinux.read_bytes()).get(XEN_ELFNOTE_PHYS32_ENTRY)
    if desc is None:
        return None
    return int.from_bytes(desc[:8] if len(desc) >= 8 else desc, "little")
