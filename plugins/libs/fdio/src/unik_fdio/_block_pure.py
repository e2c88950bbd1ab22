"""Pure-Python twin of :mod:`unik_fdio._block` (selected by ``UNIK_PURE=1``).

Same functions, same results, same exceptions: :class:`OSError` when a system call
fails, :class:`EOFError` when the file ends before a read is satisfied.  ``os.pread``
and ``os.pwrite`` already retry on EINTR (PEP 475) and release the GIL.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Sequence
from typing import Any

__all__ = ["pread_exact", "pread_into", "pwrite_all", "pwritev_all", "punch_hole"]

# <linux/falloc.h>
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02

#: ``os.pwritev`` takes at most IOV_MAX buffers (<limits.h>: 1024 on Linux).
_IOV_MAX: int = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024

_Buffer = bytes | bytearray | memoryview


def _check_offset(offset: int) -> None:
    if offset < 0:
        raise ValueError("negative offset")


def pread_exact(fd: int, n: int, offset: int, /) -> bytes:
    """Read exactly ``n`` bytes at ``offset``; EOFError if the file is shorter."""
    if n < 0:
        raise ValueError("negative length")
    _check_offset(offset)
    first = os.pread(fd, n, offset)
    if len(first) == n:
        return first
    out = bytearray(n)
    out[: len(first)] = first
    _fill(fd, memoryview(out), len(first), offset)
    return bytes(out)


def pread_into(fd: int, buffer: bytearray | memoryview, offset: int, /) -> None:
    """Fill the writable ``buffer`` with bytes read at ``offset``; EOFError if short."""
    _check_offset(offset)
    with memoryview(buffer) as view:
        if view.readonly:
            raise TypeError("pread_into() argument 2 must be read-write bytes-like object")
        _fill(fd, view.cast("B"), 0, offset)


def _fill(fd: int, view: memoryview, done: int, offset: int) -> None:
    n = len(view)
    while done < n:
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            raise EOFError(f"end of file after {done} of {n} bytes at offset {offset}")
        done += got


def pwrite_all(fd: int, buffer: _Buffer, offset: int, /) -> None:
    """Write the whole ``buffer`` at ``offset``, however many pwrite calls it takes."""
    _check_offset(offset)
    with memoryview(buffer) as whole:
        view = whole.cast("B")
        done = 0
        while done < len(view):
            wrote = os.pwrite(fd, view[done:], offset + done)
            if wrote == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            done += wrote


def pwritev_all(fd: int, buffers: Sequence[_Buffer], offset: int, /) -> None:
    """Write ``buffers`` back to back from ``offset`` with pwritev, resuming after short writes."""
    _check_offset(offset)
    views = [memoryview(b).cast("B") for b in buffers]
    views = [v for v in views if len(v)]
    pos = offset
    while views:
        wrote = os.pwritev(fd, views[:_IOV_MAX], pos)
        if wrote == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        pos += wrote
        while wrote and views:  # drop what was written, trim the partial buffer
            if wrote >= len(views[0]):
                wrote -= len(views.pop(0))
            else:
                views[0] = views[0][wrote:]
                wrote = 0


_libc: Any = None


def punch_hole(fd: int, offset: int, length: int, /) -> None:
    """Deallocate a byte range, keeping the size (fallocate PUNCH_HOLE | KEEP_SIZE)."""
    global _libc
    _check_offset(offset)
    if length <= 0:
        raise ValueError("length must be positive")
    if _libc is None:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        # fallocate64 takes 64-bit offsets on every ABI (glibc); fallocate does on LP64.
        func = getattr(lib, "fallocate64", None) or lib.fallocate
        func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        func.restype = ctypes.c_int
        _libc = func
    while _libc(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        err = ctypes.get_errno()
        if err != errno.EINTR:
            raise OSError(err, os.strerror(err))
