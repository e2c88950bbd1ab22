"""Whether this process's memory may have been copied: forks by any path, and VM snapshots.

:func:`epoch` changes in a process that was forked, however the fork happened:
``os.fork`` (whose at-fork handlers Python runs), libc's ``fork()`` called by a C
extension or an embedding program, or the raw ``fork``/``clone`` system call, which
run no handler at all.  It rests on a page the kernel zeroes in the child
(``madvise(MADV_WIPEONFORK)``, Linux 4.14+), as BoringSSL and LibreSSL do: reading it
costs no system call, so generators check it on every request.  Where the kernel
refuses the advice, the process id is compared instead (one ``getpid`` per check).

A VM snapshot restored twice copies memory without any fork.  Whatever restores one
(a target's runtime, a test) calls :func:`new_generation`; every generator then
reseeds before its next output, as after a fork.
"""

from __future__ import annotations

import os
import sys

try:
    import mmap

    _HAVE_MMAP = True
except ImportError:  # a CPython without its mmap module (hvt's unikernel has only the built-in ones)
    _HAVE_MMAP = False

__all__ = ["epoch", "new_generation", "wipe_on_fork"]

#: Linux's MADV_WIPEONFORK (uapi asm-generic/mman-common.h); Python 3.11 names it only when
#: the C library's headers did.
_MADV_WIPEONFORK = getattr(mmap, "MADV_WIPEONFORK", 18) if _HAVE_MMAP else 18


def _marker_page() -> mmap.mmap | None:
    """One anonymous page holding 1, zeroed in any forked child; ``None`` if the kernel refuses."""
    if not _HAVE_MMAP or sys.platform != "linux" or not hasattr(mmap.mmap, "madvise"):
        return None
    page = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        page.madvise(_MADV_WIPEONFORK)
    except OSError:  # older kernels (EINVAL), or a sandbox refusing madvise
        page.close()
        return None
    page[0] = 1
    return page


_page = _marker_page()
_pid = os.getpid()
_epoch = 0


def wipe_on_fork() -> bool:
    """Whether forks are noticed by the wiped page (else by the process id)."""
    return _page is not None


def epoch() -> int:
    """A number that changes after a fork (by any path) and after :func:`new_generation`.

    Safe without a lock: right after a fork the child runs one thread, and two threads
    noticing the same fork at once only move the number twice.
    """
    global _epoch, _pid
    if _page is not None:
        if _page[0] == 0:
            _page[0] = 1
            _epoch += 1
    else:
        pid = os.getpid()
        if pid != _pid:
            _pid = pid
            _epoch += 1
    return _epoch


def new_generation() -> None:
    """Say that this memory may run again elsewhere (a VM snapshot restored): generators reseed.

    Issue 21 asks generators to check the process *and a generation* on every request,
    as OpenSSL does; :func:`epoch` is that check, and this is how a generation moves.
    Nothing in unik restores a snapshot yet, so nothing calls it yet: the restore of
    issue 20 is to call it (from the runtime's resume event) before the application runs
    again, and ``tests/entropy/test_entropy_forks.py`` checks that every generator then
    reseeds.
    """
    global _epoch
    _epoch += 1
