"""hvt's read-only in-memory filesystem: the archive linked into the unikernel and the link step.

The guest runtime (``hvt/runtime.c``) serves ``openat``/``read``/``fstat``/``getdents64``
from this archive, which is linked into the ELF as the symbol ``unik_fs_image``::

    "UNIKFS01"  u32 count  u32 0
    count entries of 40 bytes, sorted by path (bytes):
        u32 path_offset, u32 path_length, u32 mode, u32 parent_index,
        u64 data_offset, u64 size, u64 mtime_ns
    paths and file contents (offsets from the start of the archive)

Entry 0 is the root ``/``; every directory has an entry; ``parent_index`` names the
directory an entry is listed in.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAGIC = b"UNIKFS01"
ENTRY = struct.Struct("<IIIIQQQ")
S_IFDIR = 0o040000
S_IFREG = 0o100000
RUNTIME = Path(__file__).with_name("hvt") / "unik-hvt-runtime.o"
#: libc's system-call wrappers that call the runtime instead of trapping (``hvt/direct.c``), and the
#: libc functions they replace (``ld --wrap``): the calls a served request makes, and a signal action's query.
DIRECT = RUNTIME.with_name("unik-hvt-direct.o")
DIRECT_CALLS = ("read", "write", "readv", "writev", "pread", "pread64", "close", "lseek", "lseek64", "dup", "getpid",
                "fstat", "fstat64", "stat", "stat64", "lstat", "lstat64", "fstatat", "fstatat64", "open", "open64",
                "openat", "openat64", "fcntl", "fcntl64", "ioctl", "isatty", "epoll_wait", "poll", "sigaction")
#: Device types of the manifest note (hvt_abi.h's HVT_NET, HVT_BLOCK).
NET, BLOCK = 1, 2
MANIFEST_NOTE = 0x31544D46  # HVT_NOTE_MANIFEST


class FsError(ValueError):
    """A path that cannot go into the archive (relative, or both a file and a directory)."""


@dataclass(frozen=True)
class FsFile:
    """One file of the archive: its contents and modification time (nanoseconds)."""

    data: bytes
    mtime_ns: int = 0
    executable: bool = False


def pack(files: Mapping[str, FsFile]) -> bytes:
    """The archive holding ``files`` (absolute guest paths) and every directory above them."""
    dirs: set[str] = {"/"}
    for path in files:
        pure = PurePosixPath(path)
        if not pure.is_absolute() or str(pure) != path or ".." in pure.parts:
            raise FsError(f"{path!r}: archive paths are absolute and normalised (e.g. /app/main.py)")
        dirs.update(str(parent) for parent in pure.parents)
    clash = dirs & set(files)
    if clash:
        raise FsError(f"{sorted(clash)[0]!r} is both a file and a directory")
    paths = sorted(dirs | set(files), key=lambda s: s.encode())
    index = {p: i for i, p in enumerate(paths)}
    header = 16 + ENTRY.size * len(paths)
    names = b"".join(p.encode() for p in paths)
    data_start = (header + len(names) + 15) & ~15
    entries, blobs, name_off, data_off = [], [], header, data_start
    for p in paths:
        parent = index[str(PurePosixPath(p).parent)]
        raw = p.encode()
        if p in dirs:
            entries.append(ENTRY.pack(name_off, len(raw), S_IFDIR | 0o555, parent, 0, 0, 0))
        else:
            f = files[p]
            mode = S_IFREG | (0o555 if f.executable else 0o444)
            entries.append(ENTRY.pack(name_off, len(raw), mode, parent, data_off, len(f.data), f.mtime_ns))
            blobs.append(f.data)
            pad = -len(f.data) % 16
            blobs.append(b"\0" * pad)
            data_off += len(f.data) + pad
        name_off += len(raw)
    head = MAGIC + struct.pack("<II", len(paths), 0) + b"".join(entries) + names
    return head + b"\0" * (data_start - len(head)) + b"".join(blobs)


def tree(root: Path, under: str, skip: Sequence[str] = ()) -> dict[str, FsFile]:
    """The regular files below ``root`` as archive entries below ``under`` (skipping names in ``skip``)."""
    out: dict[str, FsFile] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if name in skip or not path.is_file():
                continue
            st = path.stat()
            rel = path.relative_to(root).as_posix()
            out[str(PurePosixPath(under, rel))] = FsFile(path.read_bytes(), st.st_mtime_ns,
                                                           bool(st.st_mode & 0o111))
    return out


def manifest_note(devices: Sequence[tuple[str, int]]) -> str:
    """Assembly for the ELF note declaring ``devices`` ((name, :data:`NET` or :data:`BLOCK`)), read by unik-hvt."""
    desc = struct.pack("<II", 1, len(devices))
    for name, kind in devices:
        raw = name.encode()
        if not raw or len(raw) > 31 or kind not in (NET, BLOCK):
            raise FsError(f"device {name!r}: hvt device names have 1 to 31 bytes")
        desc += struct.pack("<32sII", raw, kind, 0)
    data = b"UNIK\0\0\0\0" + desc
    return (f'.section .note.unik.manifest, "a", @note\n.balign 4\n.long 5, {len(desc)}, {MANIFEST_NOTE:#x}\n'
            f'.byte {", ".join(map(str, data))}\n')


def link(objects: Sequence[Path], archive: bytes | None, out: Path, *, libs: Sequence[str] = (),
         libc: bool = True, cc: str = "gcc", devices: Sequence[tuple[str, int]] = ()) -> None:
    """Link ``objects``, hvt's guest runtime and ``archive`` into the static unikernel ELF ``out``.

    With ``libc`` the program is linked against the static glibc (its ``_start`` runs
    after the runtime's boot); without it the objects bring their own ``_start``.
    ``devices`` is the manifest: the only devices unik-hvt gives the unikernel.
    """
    if not RUNTIME.exists():
        raise FileNotFoundError(f"hvt's guest runtime {RUNTIME} is missing: reinstall unik-target-solo5")
    if shutil.which(cc) is None:
        raise FileNotFoundError(f"linking an hvt unikernel needs {cc} (apt-get install gcc libc6-dev)")
    with tempfile.TemporaryDirectory(prefix="unik-hvt-") as tmp:
        extra: list[str] = []
        if archive is not None:
            image = Path(tmp, "fs.img")
            image.write_bytes(archive)
            asm = Path(tmp, "fs.S")
            asm.write_text(
                '.section .rodata.unikfs, "a"\n.balign 16\n.globl unik_fs_image\nunik_fs_image:\n'
                f'.incbin "{image}"\n.section .note.GNU-stack, "", @progbits\n'
            )
            extra.append(str(asm))
        note = Path(tmp, "manifest.S")
        note.write_text(manifest_note(devices) + '.section .note.GNU-stack, "", @progbits\n')
        extra.append(str(note))
        flags = ["-static", "-no-pie", "-Wl,-e,hvt_boot", "-Wl,-z,noexecstack", "-Wl,-z,separate-code",
                 "-Wl,-z,max-page-size=0x200000", "-Wl,--build-id"]  # the build ID binds its snapshots
        if not libc:
            flags += ["-nostdlib", "-nostartfiles"]
        else:
            if not DIRECT.exists():
                raise FileNotFoundError(f"hvt's direct system calls {DIRECT} are missing: reinstall unik-target-solo5")
            flags.append("-Wl," + ",".join(f"--wrap={name}" for name in DIRECT_CALLS))
            extra.append(str(DIRECT))
        cmd = [cc, *flags, "-o", str(out), *map(str, objects), str(RUNTIME), *extra, *libs]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"linking {out.name} failed ({' '.join(cmd)}):\n{proc.stderr.strip()}")
