"""Fortuna: the generator, the 32 pools, the reseed rules, fork safety and cheap small requests.

* Reseed: when a request arrives, pool 0 holds at least 64 bytes and the last reseed
  from the pools was at least 100 ms ago, the pools due (see :mod:`.pools`) reseed the
  generator first.
* Unseeded: every request raises :class:`unik.errors.NotSeeded` until :meth:`Fortuna.seed`
  or a pool reseed happened.
* Sealed processes: a Fortuna seeds itself from every built-in source when it connects
  (getrandom and ``/dev/hwrng`` included); when the process is about to give up its
  system calls (unik's spt sandbox announces the runtime's
  :data:`unik.lifecycle.BEFORE_SEAL`, to which :class:`unik_entropy.device.FortunaRandom`
  subscribes :meth:`Fortuna.before_seal`), it loads what its AES backend loads on first
  use, seals the sources that need system calls and feeds its pools from then on with
  the others alone (RDSEED, RDRAND, CPU jitter, event timing).  No target calls into
  this library for it.
* Fork: a child process re-seeds its generators before it can produce output, from the
  built-in sources, its pid and the clock, so parent and child never share output.
  ``os.fork`` does it at once (an at-fork handler); a fork that bypasses Python (libc's
  ``fork()`` from a C extension or an embedder, the raw system call) and a restored VM
  snapshot are noticed on the next request (:func:`unik_entropy.forks.epoch`, checked
  on every request without a system call), which reseeds first.

Small requests (at most :data:`SMALL` bytes) are where re-keying costs: creating an AES
context costs about ten times a 32-byte ``getrandom``.  They are served from a block of
keystream that the generator produced as one request, *after which it re-keyed*: the
key behind those bytes is gone before the first of them is handed out, and every byte is
wiped from the buffer as it is handed out.  So the guarantee that re-keying after each
request gives (whoever later learns the state cannot recover past output) holds for
every small request too, while the AES key schedule is paid once per 16 KiB.  What the
buffer still holds is output the current state could predict anyway (until a reseed,
which discards it).  Larger requests go straight to the generator (chunked at 1 MiB,
re-keyed after each chunk).
"""

from __future__ import annotations

import os
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterable

from unik.errors import NotSeeded

from . import forks
from .generator import BLOCK, Generator, sha256
from .health import SourceFailure
from .pools import MIN_POOL_SIZE, Pools
from .sources import JITTER, Source, builtin_sources, seal

#: Requests up to this size are served from the keystream buffer.
SMALL = 1024
#: Bytes of keystream produced per buffer fill.
BUFFER = 16 * 1024
#: Fortuna's minimum time between reseeds from the pools.
RESEED_INTERVAL_S = 0.1

_ZEROS = memoryview(bytes(BUFFER))
_LIVE: weakref.WeakSet[Fortuna] = weakref.WeakSet()
class Fortuna:
    """A thread-safe, fork-safe Fortuna CSPRNG; :meth:`generate` is the ``Random`` API."""

    def __init__(
        self,
        sources: Iterable[Source] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``sources``: what :meth:`poll` and the fork handler read (default: the built-in ones)."""
        self.generator = Generator()
        self.pools = Pools()
        self.sources = list(builtin_sources() if sources is None else sources)
        self._clock = clock
        self._lock = threading.Lock()
        # BLOCK spare bytes: cryptography's update_into wants room for one more block.
        self._buf = bytearray(BUFFER + BLOCK)
        self._view = memoryview(self._buf)
        self._pos = BUFFER  # empty
        self._last_reseed = -RESEED_INTERVAL_S
        self.reseeds = 0
        self.failures: list[str] = []
        #: The fork/snapshot epoch this state belongs to (see :mod:`.forks`).
        self._epoch = forks.epoch()
        _LIVE.add(self)

    # --- state ---------------------------------------------------------------------

    @property
    def seeded(self) -> bool:
        """Whether output may be produced."""
        return self.generator.seeded

    def _wipe(self) -> None:
        left = BUFFER - self._pos
        if left:
            self._view[self._pos:BUFFER] = _ZEROS[:left]
        self._pos = BUFFER

    def seed(self, material: bytes) -> None:
        """Reseed the generator directly with ``material`` (start-up, seed files, fork)."""
        with self._lock:
            self.generator.reseed(sha256(material).digest())
            self._wipe()

    # --- accumulator ---------------------------------------------------------------

    def add(self, source_id: int, data: bytes, pool: int | None = None) -> None:
        """Add one event (data of at most 32 bytes is kept as is) to the pools."""
        with self._lock:
            self.pools.add(source_id, data, pool)

    def add_spread(self, source_id: int, data: bytes) -> None:
        """Add ``data`` cut into 32-byte events over the source's next pools."""
        with self._lock:
            self.pools.add_spread(source_id, data)

    def _maybe_reseed(self) -> None:
        now = self._clock()
        if now - self._last_reseed >= RESEED_INTERVAL_S:
            self.generator.reseed(self.pools.drain())
            self._last_reseed = now
            self.reseeds += 1
            self._wipe()

    def read_sources(self, n: int = 256, event: int = 8) -> int:
        """Read ``n`` bytes from every healthy source into the pools as ``event``-byte events.

        Returns the bytes added.

        A source failing its health tests is disabled (noted in :attr:`failures`); a
        transient error (RDSEED exhausted, a short read) skips it this time.
        """
        added = 0
        for src in self.sources:
            if not src.healthy:
                continue
            try:
                data = src.read(n)
            except SourceFailure as exc:
                self.failures.append(str(exc))
                continue
            except OSError:
                continue
            with self._lock:
                for i in range(0, n, event):
                    self.pools.add(src.source_id, data[i:i + event])
            added += len(data)
        return added

    def bootstrap(self, extra: bytes = b"", n: int = 64) -> None:
        """Seed directly from ``n`` bytes of every healthy source (plus ``extra``).

        :raises NotSeeded: when no source produced anything and ``extra`` is empty.
        """
        parts = [extra] if extra else []
        for src in self.sources:
            if not src.healthy:
                continue
            try:
                parts.append(bytes((src.source_id,)) + src.read(n))
            except SourceFailure as exc:
                self.failures.append(str(exc))
            except OSError:
                continue
        if not parts:
            raise NotSeeded("no entropy source produced output: " + ("; ".join(self.failures) or "none found"))
        self.seed(b"".join(parts))

    def before_seal(self) -> None:
        """Get ready for a process without system calls (the runtime's ``BEFORE_SEAL``).

        Loads what the AES backend loads on its first use (a throwaway generator's
        output), seals the built-in sources that need system calls
        (:func:`unik_entropy.sources.seal`) and drops them from this generator's sources:
        from now on only RDSEED, RDRAND, CPU jitter and event timing feed the pools.
        """
        warm = Fortuna(sources=[])
        warm.seed(b"warm-up")
        warm.generate(4096)
        seal()
        self.sources = [src for src in self.sources if not src.syscalls]

    # --- output --------------------------------------------------------------------

    def generate(self, n: int) -> bytes:
        """``n`` random bytes; raises :class:`NotSeeded` before the first seeding."""
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            if self._epoch != forks.epoch():  # forked without Python knowing, or a snapshot restored
                self._reseed_as_a_new_process()
            if self.pools.pools[0].length >= MIN_POOL_SIZE:
                self._maybe_reseed()
            if n > SMALL:
                return self.generator.generate(n)
            pos = self._pos
            end = pos + n
            if end > BUFFER:
                if not self.generator.seeded:
                    raise NotSeeded("the generator has not been seeded yet")
                self.generator.keystream_into(self._view, BUFFER)
                pos, end = 0, n
            out = bytes(self._view[pos:end])
            self._view[pos:end] = _ZEROS[:n]
            self._pos = end
            return out

    # --- fork ----------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._reseed_as_a_new_process()

    def _reseed_as_a_new_process(self) -> None:
        """Forget the copied keystream, reseed from the pid, the clock and the sources."""
        self._epoch = forks.epoch()
        self._wipe()  # the parent's keystream is never served here
        if not self.generator.seeded:
            return
        parts = [struct.pack("<qqq", os.getpid(), time.time_ns(), time.perf_counter_ns())]
        # Jitter is slow: only when no other source answers.
        for src in sorted(self.sources, key=lambda s: s.source_id == JITTER):
            if len(parts) > 1 and src.source_id == JITTER:
                break
            if src.healthy:
                try:
                    parts.append(src.read(32))
                except (SourceFailure, OSError):
                    continue
        self.generator.reseed(sha256(b"fork" + b"".join(parts)).digest())


def _after_fork() -> None:
    for rng in list(_LIVE):
        rng._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
