"""Forks that bypass Python and restored snapshots: the generator reseeds before its next output.

``os.register_at_fork`` handlers run only for ``os.fork``.  A C extension or an embedding
program calling libc's ``fork()``, or the raw system call, used to leave parent and child
with the same state: the same next bytes.  These tests fork both ways through ctypes.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
from collections.abc import Callable

import pytest
from unik_entropy import forks, helpers
from unik_entropy.fortuna import Fortuna

LIBC = ctypes.CDLL(None, use_errno=True)
#: x86_64's fork system call number (asm/unistd_64.h).
SYS_FORK = 57


def libc_fork() -> int:
    """glibc's fork(): its own at-fork handlers run, Python's do not."""
    return int(LIBC.fork())


def raw_fork() -> int:
    """The fork system call itself: no handler of any kind runs."""
    return int(LIBC.syscall(SYS_FORK))


def child_output(fork: Callable[[], int], produce: Callable[[], bytes]) -> bytes:
    """What ``produce()`` returns in a child made by ``fork`` (sent back over a pipe)."""
    r, w = os.pipe()
    pid = fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.write(w, produce())
        finally:
            os._exit(0)
    assert pid > 0, ctypes.get_errno()
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return data


FORKS = [pytest.param(libc_fork, id="libc-fork"),
         pytest.param(raw_fork, id="syscall-fork", marks=pytest.mark.skipif(
             platform.machine() != "x86_64", reason="the raw fork system call number is x86_64's"))]


@pytest.mark.parametrize("fork", FORKS)
def test_a_fork_python_never_saw_gives_the_child_other_bytes(fork: Callable[[], int]) -> None:
    for small in (32, 4096):  # the keystream buffer's path and the generator's
        rng = Fortuna(sources=[])  # no sources: only the fork check can tell the copies apart
        rng.seed(b"the same state in both processes")
        rng.generate(16)  # a keystream buffer is filled: the child must not serve its rest
        child = child_output(fork, functools.partial(rng.generate, small))
        assert len(child) == small
        assert child != rng.generate(small)


@pytest.mark.parametrize("fork", FORKS)
def test_the_helpers_fallback_generator_too(fork: Callable[[], int]) -> None:
    helpers.token_bytes(8)
    child = child_output(fork, lambda: helpers.token_bytes(32))
    assert len(child) == 32 and child != helpers.token_bytes(32)


def test_grandchildren_and_siblings_differ() -> None:
    """Each fork is noticed: two children of one parent, and a child of a child."""
    rng = Fortuna(sources=[])
    rng.seed(b"x")
    rng.generate(8)
    first = child_output(libc_fork, lambda: rng.generate(32))
    second = child_output(libc_fork, lambda: rng.generate(32))
    grand = child_output(libc_fork, lambda: child_output(libc_fork, lambda: rng.generate(32)))
    mine = rng.generate(32)
    assert len({first, second, grand, mine}) == 4


def test_a_restored_snapshot_reseeds_before_its_next_output() -> None:
    """Two copies of one state: the one told of a new generation does not repeat the other."""
    copies = [Fortuna(sources=[]) for _ in range(2)]
    for rng in copies:
        rng.seed(b"snapshot")
    assert copies[0].generate(32) == copies[1].generate(32)  # deterministic: a true copy
    before = forks.epoch()
    forks.new_generation()
    assert forks.epoch() != before
    assert copies[0].generate(32) != copies[1].generate(32)


def test_forks_are_noticed_by_a_wiped_page_without_a_system_call() -> None:
    assert forks.wipe_on_fork(), "MADV_WIPEONFORK refused: the check falls back to getpid"
    before = forks.epoch()
    assert forks.epoch() == before  # nothing happened: no change
    child = child_output(raw_fork if platform.machine() == "x86_64" else libc_fork,
                         lambda: str(forks.epoch() - before).encode())
    assert child == b"1"


def test_without_the_wiped_page_the_process_id_tells(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels older than 4.14 refuse MADV_WIPEONFORK: getpid per check does the same job."""
    monkeypatch.setattr(forks, "_page", None)
    rng = Fortuna(sources=[])
    rng.seed(b"x")
    rng.generate(8)
    child = child_output(libc_fork, lambda: rng.generate(32))
    assert child != rng.generate(32)
