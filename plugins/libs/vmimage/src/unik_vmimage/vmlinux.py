"""The uncompressed ELF kernel (``vmlinux``) inside a bzImage (``vmlinuz``).

Monitors that load ELF kernels — Firecracker, and Xen or QEMU through the PVH entry —
need ``vmlinux``, while distributions ship the compressed bzImage.  The x86 boot
protocol (2.08 and later) records where the compressed kernel sits in a bzImage:
``payload_offset`` (0x248, from the start of the protected-mode part, which follows
the ``setup_sects`` + 1 sectors of real-mode setup) and ``payload_length`` (0x24c).
The payload is decompressed according to its magic number (gzip, xz, lzma, bzip2 and
zstd in Python or with the ``zstd`` command, LZ4's legacy frames with ``lz4``, LZO with
``lzop``) and must be an ELF file.  Results are cached by the bzImage's hash.
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from unik.cache import cache_dir
from unik.errors import BuildError

ELF_MAGIC = b"\x7fELF"


def payload(bzimage: bytes) -> bytes:
    """The compressed kernel of a bzImage (boot protocol >= 2.08)."""
    if len(bzimage) < 0x250 or bzimage[0x202:0x206] != b"HdrS":
        raise BuildError("not a bzImage (no HdrS boot header)")
    version, = struct.unpack_from("<H", bzimage, 0x206)
    if version < 0x208:
        raise BuildError(f"bzImage boot protocol {version >> 8}.{version & 0xff} is older than 2.08 (no payload field)")
    setup_sects = bzimage[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + offset
    if start + length > len(bzimage):
        raise BuildError("bzImage payload lies beyond the end of the file")
    return bzimage[start:start + length]


def _tool(name: str, args: list[str], data: bytes) -> bytes:
    exe = shutil.which(name)
    if exe is None:
        raise BuildError(f"the kernel payload needs the {name} command to decompress (apt-get install {name})")
    proc = subprocess.run([exe, *args], input=data, capture_output=True, timeout=300)
    if not proc.stdout:
        raise BuildError(f"{name} could not decompress the kernel: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout  # lz4/zstd may complain about the size trailer after a complete frame


def decompress(data: bytes) -> bytes:
    """The decompressed kernel payload, whatever the kernel was compressed with."""
    if data[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # stops at the end of the stream (a size trailer follows)
        return d.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
    if data[:3] == b"\x5d\x00\x00":
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)
    if data[:3] == b"BZh":
        return bz2.BZ2Decompressor().decompress(data)
    if data[:4] == b"\x02\x21\x4c\x18":  # LZ4 legacy frame (CONFIG_KERNEL_LZ4)
        return _tool("lz4", ["-dc"], data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return _tool("zstd", ["-dc"], data)
    if data[:3] == b"\x89LZ":
        return _tool("lzop", ["-dc"], data)
    raise BuildError(f"unknown kernel compression (payload starts {data[:6].hex()})")


def extract_vmlinux(bzimage: Path) -> Path:
    """The ELF ``vmlinux`` of ``bzimage`` (cached under ``~/.cache/unik/vmlinux``)."""
    data = bzimage.read_bytes()
    if data[:4] == ELF_MAGIC:
        return bzimage
    key = hashlib.sha256(data).hexdigest()
    out = cache_dir() / "vmlinux" / key[:2] / key
    if out.is_file():
        return out
    elf = decompress(payload(data))
    if elf[:4] != ELF_MAGIC:
        raise BuildError(f"{bzimage}: the decompressed kernel is not an ELF file")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(elf)
    tmp.replace(out)
    return out


__all__ = ["decompress", "extract_vmlinux", "payload"]
