"""A writer of cpio "newc" archives, the format of Linux initramfs images.

Entries are written in the order given, with inode numbers counted from 1, owner root,
one link each and a fixed modification time, so the same entries give the same bytes.
Each header is ``070701`` and thirteen 8-digit hexadecimal fields, then the NUL-ended
name padded to 4 bytes, then the data padded to 4 bytes; ``TRAILER!!!`` ends the archive.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from typing import BinaryIO

TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    """One archive member: a file, a directory, a symbolic link or a device node."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)

    @classmethod
    def file(cls, name: str, data: bytes, perm: int = 0o644) -> Entry:
        """A regular file."""
        return cls(name, stat.S_IFREG | perm, data)

    @classmethod
    def directory(cls, name: str, perm: int = 0o755) -> Entry:
        """A directory."""
        return cls(name, stat.S_IFDIR | perm)

    @classmethod
    def symlink(cls, name: str, target: str) -> Entry:
        """A symbolic link to ``target``."""
        return cls(name, stat.S_IFLNK | 0o777, target.encode())

    @classmethod
    def chardev(cls, name: str, major: int, minor: int, perm: int = 0o600) -> Entry:
        """A character device node."""
        return cls(name, stat.S_IFCHR | perm, rdev=(major, minor))


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


class Writer:
    """Writes entries to a binary stream; :meth:`close` writes the trailer."""

    def __init__(self, out: BinaryIO, mtime: int = 0) -> None:
        self._out = out
        self._mtime = mtime
        self._ino = 0
        self._names: set[str] = set()

    def _header(self, name: str, mode: int, size: int, rdev: tuple[int, int], nlink: int) -> None:
        raw = name.encode() + b"\0"
        self._ino += 1
        fields = (self._ino, mode, 0, 0, nlink, self._mtime, size, 0, 0, rdev[0], rdev[1], len(raw), 0)
        head = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._out.write(head + raw + _pad(len(head) + len(raw)))

    def add(self, entry: Entry) -> None:
        """Append ``entry``; a name may appear only once."""
        name = entry.name.strip("/")
        if not name or name in self._names:
            raise ValueError(f"bad or duplicate cpio entry name {entry.name!r}")
        self._names.add(name)
        nlink = 2 if stat.S_ISDIR(entry.mode) else 1
        self._header(name, entry.mode, len(entry.data), entry.rdev, nlink)
        if entry.data:
            self._out.write(entry.data + _pad(len(entry.data)))

    def close(self) -> None:
        """Write the trailer."""
        self._ino = -1  # the trailer's inode is 0
        self._header(TRAILER, 0, 0, (0, 0), 1)


def read_entries(data: bytes) -> list[Entry]:
    """The entries of an uncompressed newc archive (for checks and tools)."""
    out: list[Entry] = []
    pos = 0
    while pos + 110 <= len(data):
        if data[pos:pos + 6] != b"070701":
            raise ValueError(f"not a newc header at offset {pos}")
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize, rdev = fields[1], fields[6], fields[11], (fields[9], fields[10])
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        if name == TRAILER:
            break
        out.append(Entry(name, mode, data[pos:pos + size], rdev))
        pos += size + (-size % 4)
    return out
