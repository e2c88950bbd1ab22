"""Typed errors of the FAT filesystem; all derive from :class:`unik.errors.DeviceError`."""

from __future__ import annotations

from unik.errors import DeviceError


class FatError(DeviceError):
    """Base class of FAT filesystem errors."""


class CorruptFilesystem(FatError):
    """The image breaks an on-disk invariant; nothing was changed because of it."""


class BadBootSector(CorruptFilesystem):
    """The boot sector / BPB is missing or impossible."""


class BadChain(CorruptFilesystem):
    """A cluster chain loops, leaves the volume, or runs into a free or bad cluster."""


class BadDirectory(CorruptFilesystem):
    """A directory entry or directory is impossible (bad cluster, too large, loops)."""


class FileNotFound(FatError, FileNotFoundError):
    """No file or directory at a path."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no such file or directory: {path!r}")
        self.path = path


class FileExists(FatError, FileExistsError):
    """Something already exists at a path."""

    def __init__(self, path: str) -> None:
        super().__init__(f"already exists: {path!r}")
        self.path = path


class NotADirectory(FatError, NotADirectoryError):
    """A path component (or the target of ``listdir``/``rmdir``) is a file."""

    def __init__(self, path: str) -> None:
        super().__init__(f"not a directory: {path!r}")
        self.path = path


class IsADirectory(FatError, IsADirectoryError):
    """A file operation was asked of a directory."""

    def __init__(self, path: str) -> None:
        super().__init__(f"is a directory: {path!r}")
        self.path = path


class DirectoryNotEmpty(FatError, OSError):
    """``rmdir`` of a directory that has entries."""

    def __init__(self, path: str) -> None:
        super().__init__(f"directory not empty: {path!r}")
        self.path = path


class NoSpace(FatError, OSError):
    """No free cluster, or the fixed root directory is full."""


class InvalidName(FatError, ValueError):
    """A name FAT cannot store (reserved characters, too long, empty)."""


class ReadOnlyFilesystem(FatError):
    """A write on a filesystem mounted read-only (or over a read-only device)."""
