"""Entropy sources built into the library, each behind the SP 800-90B health tests.

=========  ===  ==========================================================  ===========
source     id   what                                                        credited
=========  ===  ==========================================================  ===========
getrandom  1    the host kernel's CSPRNG (unix target; the VM's kernel too)  8 bits/byte
rdseed     2    the CPU's conditioned entropy source (C, CPUID-checked)     4 bits/byte
rdrand     3    the CPU's DRBG output (C, CPUID-checked, 10 retries)        2 bits/byte
jitter     4    CPU timer jitter around memory walks (C, rdtsc deltas)      0.5 bit/sample
hwrng      5    ``/dev/hwrng``: virtio-rng inside a VM image                4 bits/byte
=========  ===  ==========================================================  ===========

getrandom and hwrng make system calls; the others run on the CPU alone.  When a
process is about to give up its system calls (unik's spt sandbox, under seccomp,
announces the runtime's ``BEFORE_SEAL``), the connected devices call :func:`seal`
(:meth:`unik_entropy.fortuna.Fortuna.before_seal`): from then on those sources answer every
read with an ``OSError``, which every reader treats as "skip it this time", and
:func:`builtin_sources` no longer lists or probes them.

Ids 6-15 are for :class:`unik.devices.EntropySource` devices, 16 and up for event
timing (:mod:`unik_entropy.events`).  Fortuna does not need the credited figures (its
pools make estimates unnecessary); they are the ``quality`` an
:class:`~unik.devices.EntropySource` reports and the ``H`` of the health tests.

The tests run with ``H = min(credited, 2)``: raw noise (jitter) is tested at its own
estimate; for conditioned outputs (getrandom, RDSEED, RDRAND, virtio-rng) the tests
only need to catch a stuck or broken source, and at H = 2 their false-alarm rate on
a healthy one is far below 2^-20 while a constant source is still caught within 11
bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from . import accel
from .health import HealthTest, SourceFailure

GETRANDOM, RDSEED, RDRAND, JITTER, HWRNG = 1, 2, 3, 4, 5
#: The first id given to entropy devices, and to event sources.
DEVICE_IDS, EVENT_IDS = 6, 16

_sealed = False


def seal() -> None:
    """From now on, sources that need system calls stop answering (irreversible).

    Only the entropy sources: what libraries load before a sandbox seals the process
    is the runtime's :data:`unik.lifecycle.BEFORE_SEAL`, announced by the sandbox.
    """
    global _sealed
    _sealed = True


def sealed() -> bool:
    """Whether :func:`seal` was called in this process."""
    return _sealed


class Source:
    """A synchronous raw source wrapped in health tests.

    ``read(n)`` returns ``n`` bytes that passed the tests, or raises
    :class:`SourceFailure` (the source is then disabled) or ``OSError`` (a transient
    failure such as RDSEED running dry).
    """

    def __init__(
        self, name: str, source_id: int, quality: float, raw: Callable[[int], bytes], *, syscalls: bool = False,
    ) -> None:
        self.name = name
        self.source_id = source_id
        self.quality = quality
        #: Whether reading makes system calls (it then fails once the process is sealed).
        self.syscalls = syscalls
        self._raw = raw
        self.health = HealthTest(name, min(quality, 2.0))
        self.errors = 0

    @property
    def healthy(self) -> bool:
        """Whether the source has not failed a health test."""
        return self.health.failed is None

    def read(self, n: int) -> bytes:
        """``n`` bytes that passed the health tests."""
        if self.syscalls and _sealed:
            raise OSError(f"{self.name}: needs system calls, which this process has given up")
        data = self._raw(n)
        if len(data) != n:
            raise OSError(f"{self.name}: short read ({len(data)} of {n} bytes)")
        try:
            self.health.check(data)
        except SourceFailure:
            self.errors += 1
            raise
        return data

    def __repr__(self) -> str:
        state = "healthy" if self.healthy else f"failed {self.health.failed}"
        return f"<Source {self.name} id={self.source_id} quality={self.quality} {state}>"


def _getrandom(n: int) -> bytes:
    return os.getrandom(n)


def _hwrng(n: int) -> bytes:
    with open("/dev/hwrng", "rb", buffering=0) as f:
        data = f.read(n)
    return data


def hwrng_present() -> bool:
    """Whether the kernel has a hardware RNG behind ``/dev/hwrng`` that we may read."""
    try:
        with open("/sys/class/misc/hw_random/rng_current") as f:
            current = f.read().strip()
    except OSError:
        return False
    return current not in ("", "none") and os.access("/dev/hwrng", os.R_OK)


def builtin_sources(*, hwrng: bool | None = None) -> list[Source]:
    """The sources usable here.

    getrandom, RDSEED and RDRAND (when CPUID has them), jitter, and ``/dev/hwrng`` (when
    a hardware RNG is bound to it, or when ``hwrng`` is true).  Once :func:`seal` was
    called, only those that make no system call (nothing is probed either).
    """
    found: list[Source] = []
    if hasattr(os, "getrandom") and not _sealed:
        found.append(Source("getrandom", GETRANDOM, 8.0, _getrandom, syscalls=True))
    has_rdrand, has_rdseed = accel.impl.cpu_features()
    if has_rdseed:
        found.append(Source("rdseed", RDSEED, 4.0, accel.impl.rdseed))
    if has_rdrand:
        found.append(Source("rdrand", RDRAND, 2.0, accel.impl.rdrand))
    found.append(Source("jitter", JITTER, 0.5, accel.impl.jitter))
    if not _sealed and (hwrng or (hwrng is None and hwrng_present())):
        found.append(Source("hwrng", HWRNG, 4.0, _hwrng, syscalls=True))
    return found
