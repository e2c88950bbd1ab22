"""What keeps an artifact's bytes a function of its inputs, wherever it is built.

The same sources must give the same artifact in another checkout, another project
directory or another virtual environment (an OCI image's digest is only worth something
then).  Two things in a build would otherwise carry where it happened:

* **ELF files** (C extensions, the interpreter, its libraries): their debugging data names
  the directory they were compiled in and the interpreter's include directory, and the
  linker's build ID is a digest of all of it.  :func:`normalised_elf` strips them
  (``strip --strip-unneeded``, as the VM images always did) and sets the build ID to a
  digest of what remains, so two builds of the same sources differ in nothing.
* **Timestamps**: archive entries carry :func:`source_date_epoch` — the
  ``SOURCE_DATE_EPOCH`` of the environment (reproducible-builds.org's convention) or 0.

Paths are the third: the generated ``main.py`` and the artifact's ``plan.json`` name the
project's files relative to its directory (:meth:`unik.plan.Plan.portable`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from pathlib import Path

from .cache import cache_dir
from .errors import BuildError

_ELF_MAGIC = b"\x7fELF"
_SHT_NOTE = 7
_NT_GNU_BUILD_ID = 3
#: Bumped when what :func:`normalised_elf` does changes (the cache is keyed by it).
_NORMALISE_VERSION = b"strip-unneeded+content-build-id 1\0"


def source_date_epoch() -> int:
    """The time archive entries carry: ``SOURCE_DATE_EPOCH`` when set, else 0 (the epoch)."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise BuildError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds since 1970: "
                         "set it to an integer (git log -1 --format=%ct) or unset it")
    return int(value)


def is_elf(path: Path) -> bool:
    """Whether ``path`` is an ELF file (by its magic number)."""
    with path.open("rb") as f:
        return f.read(4) == _ELF_MAGIC


def normalised_elf(path: Path) -> bytes:
    """``path``'s bytes stripped of debugging data and symbols, with a build ID made from the result (cached).

    Without ``strip`` (binutils) only the build ID is recomputed: the debugging data,
    and the directories it names, stay.
    """
    data = path.read_bytes()
    if data[:4] != _ELF_MAGIC:
        return data
    strip = shutil.which("strip")
    key = hashlib.sha256(_NORMALISE_VERSION + (b"strip\0" if strip else b"\0") + data).hexdigest()
    cached = cache_dir() / "elf" / key[:2] / key
    if cached.is_file():
        return cached.read_bytes()
    out = data
    if strip is not None:
        tmp = cached.with_name(f"{key}.{os.getpid()}.strip")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([strip, "--strip-unneeded", "-o", str(tmp), str(path)], capture_output=True)
        if proc.returncode == 0:
            out = tmp.read_bytes()
        tmp.unlink(missing_ok=True)
    out = with_content_build_id(out)
    cached.parent.mkdir(parents=True, exist_ok=True)
    part = cached.with_name(f"{key}.{os.getpid()}.tmp")
    part.write_bytes(out)
    part.replace(cached)
    return out


def with_content_build_id(data: bytes) -> bytes:
    """``data`` (a 64-bit little-endian ELF file) with its GNU build ID set to a digest of the rest.

    The digest is SHA-256 of the file with the build ID's bytes zeroed, cut to the
    note's length.  Anything else (no build ID, another ELF class) is returned as is.
    """
    where = build_id_span(data)
    if where is None:
        return data
    start, size = where
    blank = data[:start] + bytes(size) + data[start + size:]
    return blank[:start] + hashlib.sha256(blank).digest()[:size] + blank[start + size:]


def build_id_span(data: bytes) -> tuple[int, int] | None:
    """``(offset, length)`` of the GNU build ID's bytes in a 64-bit little-endian ELF file, or ``None``."""
    if len(data) < 64 or data[:4] != _ELF_MAGIC or data[4] != 2 or data[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    for i in range(shnum):
        header = shoff + i * shentsize
        if header + 64 > len(data):
            return None
        sh_type, = struct.unpack_from("<I", data, header + 4)
        if sh_type != _SHT_NOTE:
            continue
        offset, size = struct.unpack_from("<QQ", data, header + 24)
        found = _gnu_build_id(data, offset, min(offset + size, len(data)))
        if found is not None:
            return found
    return None


def _gnu_build_id(data: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """The build ID's span among the notes in ``data[pos:end]``."""
    while pos + 12 <= end:
        namesz, descsz, kind = struct.unpack_from("<III", data, pos)
        name_at = pos + 12
        desc_at = name_at + (namesz + 3) // 4 * 4
        if desc_at + descsz > end:
            return None
        if kind == _NT_GNU_BUILD_ID and data[name_at:name_at + namesz] == b"GNU\0":
            return desc_at, descsz
        pos = desc_at + (descsz + 3) // 4 * 4
    return None
