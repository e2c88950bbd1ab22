"""How much memory a VM image needs, and what to say when a guest had too little.

The guest kernel keeps the compressed initramfs in memory while it unpacks it into the
page cache, then runs CPython from there: the floor is what the kernel needs plus both
sizes of the image.  With less, the kernel panics while unpacking ("System is
deadlocked on memory"), or, with the console quiet, the guest stops before printing
anything.  The constant was measured by bisecting ``--mem`` under QEMU TCG (q35) with
Debian's cloud kernel 6.1, the default (``tools/memfloor.py``); a kernel built for the
plan (``--kernel source``) is smaller, and the check then errs on the safe side.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

from unik.errors import RunError

MIB = 1 << 20
#: What a guest needs besides its initramfs (compressed and unpacked), in MiB.  Measured
#: floors: examples/hello (3.6 MiB compressed, 13.1 MiB unpacked) boots at 96 MiB and
#: not at 94; examples/http (5.5, 19.1) at 103, not 101; hello as a Xen PVH image under
#: ``--emulate`` (3.6, 13.2) at 95, not 94 — 78.4 to 79.3 MiB besides the image, rounded up.
BASE_MIB = 80
#: A guest that stops silently with less than this many times its floor likely ran out of memory.
SUSPECT_FACTOR = 1.5
#: ``--mem``: a number of MiB, or with a binary unit (``M`` = ``MB`` = ``MiB``; k, M, G, T).
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([kKmMgGtT])(?:i?[bB])?)?")
_UNITS = {"": 1.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024}
SIZE_HELP = "MiB, or a number with a binary unit: 256, 256M, 256MB, 256MiB, 1G"


def parse_mib(size: str) -> int:
    """``--mem`` as MiB, the unit of every engine's configuration; a :class:`ValueError` says why not.

    A plain number is MiB on every target (``--mem 256``); ``K``, ``M``, ``G`` and ``T``
    are binary units, with or without ``B`` or ``iB`` (``512MB`` is 512 MiB, as QEMU's
    ``-m`` reads ``512M``).  Less than 1 MiB is refused.
    """
    match = _SIZE.fullmatch(str(size).strip())
    if not match:
        raise ValueError(f"{size!r} is not a memory size: give {SIZE_HELP}")
    mib = int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])
    if mib < 1:
        raise ValueError(f"{size!r} is less than 1 MiB: give {SIZE_HELP}")
    return mib


def qemu_mib(size: str) -> int:
    """``--mem`` as MiB (:func:`parse_mib`), a :class:`RunError` naming the key when it is not a size."""
    try:
        return parse_mib(size)
    except ValueError as exc:
        raise RunError(f"--mem {exc}") from None


def floor_mib(initramfs: Mapping[str, Any]) -> int | None:
    """The least memory, in MiB, an image with this initramfs (its manifest entry) boots in."""
    packed, unpacked = initramfs.get("bytes"), initramfs.get("uncompressed_bytes")
    if not isinstance(packed, int) or not isinstance(unpacked, int):
        return None  # an image built before the sizes were recorded
    return math.ceil(BASE_MIB + (packed + unpacked) / MIB)


def check_floor(name: str, mem: str, mib: int, initramfs: Mapping[str, Any]) -> None:
    """Refuse, before booting, a ``--mem`` below the image's floor, saying how much it needs.

    ``UNIK_MEM_FLOOR_CHECK=0`` skips the check (``tools/memfloor.py`` measures below it).
    """
    floor = floor_mib(initramfs)
    if floor is None or mib >= floor or os.environ.get("UNIK_MEM_FLOOR_CHECK") == "0":
        return
    unpacked = initramfs["uncompressed_bytes"] / MIB
    raise RunError(f"{name} needs at least {floor} MiB of memory (the kernel about {BASE_MIB} MiB, its initramfs "
                   f"{initramfs['bytes'] / MIB:.1f} MiB, unpacked to {unpacked:.1f} MiB); --mem {mem} gives it "
                   f"{mib} MiB: pass --mem {floor}M or more")


def explain_stop(why: str, out_of_memory: bool, silent: bool, mem: str, mib: int,
                 initramfs: Mapping[str, Any]) -> str:
    """``why`` a guest stopped, with memory named as the likely cause when it is."""
    floor = floor_mib(initramfs)
    if out_of_memory:
        need = f" (this image needs at least {floor} MiB)" if floor else ""
        return f"{why}: --mem {mem} ({mib} MiB) is too little{need}; pass a larger --mem, e.g. --mem {2 * mib}M"
    if silent and floor and mib < SUSPECT_FACTOR * floor:
        return (f"{why}. With --mem {mem} ({mib} MiB), close to the {floor} MiB this image needs, too little memory "
                f"is the likely cause: try --mem {math.ceil(SUSPECT_FACTOR * floor)}M")
    return why
