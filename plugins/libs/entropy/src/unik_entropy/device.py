"""The devices: ``Random`` (Fortuna, reseeded periodically) and a built-in ``EntropySource``.

:class:`FortunaRandom` takes the target's entropy device (getrandom on unix,
virtio-rng in a VM) and, unless told not to, the built-in sources too (RDSEED,
RDRAND, CPU jitter, ``/dev/hwrng``).  On connect it seeds the generator straight from
all of them, so the device is usable at once; then a task feeds every source into
the pools each ``reseed_interval`` seconds (mirage-crypto-rng's periodic reseeding),
and Fortuna's rules decide when the pools reseed the generator.  Event timings from
other libraries (the runtime's, :mod:`unik_entropy.events`) go into the pools as they
come; the runtime's :data:`unik.lifecycle.RESUMED` (a VM snapshot restored) makes every
generator reseed before its next output (:func:`unik_entropy.forks.new_generation`), and
its :data:`unik.lifecycle.BEFORE_SEAL` (spt's sandbox about to go on) leaves both devices
the sources that need no system call (:meth:`unik_entropy.fortuna.Fortuna.before_seal`).
"""

from __future__ import annotations

import asyncio
import contextlib

from unik import lifecycle
from unik.devices import EntropySource
from unik.errors import DeviceClosed, NotSeeded

from . import events, forks, helpers
from .fortuna import Fortuna
from .health import HealthTest, SourceFailure
from .sources import DEVICE_IDS, Source, seal
from .sources import builtin_sources as find_sources

#: Bytes read from every source per periodic round, added as 8-byte events (one per pool).
ROUND_BYTES = 256
ROUND_EVENT = 8


class FortunaRandom:
    """A :class:`unik.devices.Random` device: Fortuna fed by the entropy device and built-in sources."""

    def __init__(self, rng: Fortuna, entropy: EntropySource | None, reseed_interval: float) -> None:
        self.rng = rng
        self.entropy = entropy
        self.reseed_interval = reseed_interval
        self._health = (HealthTest(entropy.name, max(min(entropy.quality, 2.0), 0.25))
                        if entropy is not None else None)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.rounds = 0

    @classmethod
    async def connect(
        cls,
        entropy: EntropySource | None = None,
        *,
        reseed_interval: float = 1.0,
        builtin_sources: bool = True,
    ) -> FortunaRandom:
        """Seed a Fortuna from ``entropy`` and the built-in sources; start periodic reseeding.

        :raises NotSeeded: when no source at all produced healthy output.
        """
        if reseed_interval <= 0:
            raise ValueError("reseed_interval must be positive")
        sources: list[Source] = find_sources() if builtin_sources else []
        self = cls(Fortuna(sources), entropy, reseed_interval)
        first = await self._read_device(64)
        self.rng.bootstrap(extra=first)
        events.attach(self.rng)
        lifecycle.subscribe(lifecycle.RESUMED, forks.new_generation)
        lifecycle.subscribe(lifecycle.BEFORE_SEAL, self.rng.before_seal)
        helpers.install(self)
        self._task = asyncio.get_running_loop().create_task(self._reseed_loop(), name="unik-entropy-reseed")
        return self

    async def disconnect(self) -> None:
        """Stop reseeding and close the device."""
        if self._closed:
            return
        self._closed = True
        events.detach(self.rng)
        lifecycle.unsubscribe(lifecycle.RESUMED, forks.new_generation)
        lifecycle.unsubscribe(lifecycle.BEFORE_SEAL, self.rng.before_seal)
        helpers.uninstall(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def generate(self, n: int) -> bytes:
        """``n`` random bytes."""
        if self._closed:
            raise DeviceClosed("random device is disconnected")
        return self.rng.generate(n)

    @property
    def failures(self) -> list[str]:
        """Health-test failures of the sources so far (each failed source is disabled)."""
        return self.rng.failures

    async def _read_device(self, n: int) -> bytes:
        if self.entropy is None or self._health is None or self._health.failed:
            return b""
        try:
            data = await self.entropy.read(n)
            self._health.check(data)
        except SourceFailure as exc:
            self.rng.failures.append(str(exc))
            return b""
        except (OSError, NotSeeded):
            return b""
        return data

    async def reseed_round(self) -> None:
        """One periodic round: every source into the pools, one event per pool."""
        data = await self._read_device(ROUND_BYTES)
        for i in range(0, len(data), ROUND_EVENT):
            self.rng.add(DEVICE_IDS, data[i:i + ROUND_EVENT])
        self.rng.read_sources(ROUND_BYTES, ROUND_EVENT)
        self.rounds += 1

    async def _reseed_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reseed_interval)
            await self.reseed_round()


class BuiltinEntropy:
    """An :class:`unik.devices.EntropySource` over the best healthy built-in source.

    For targets without an entropy device of their own: RDSEED, then virtio-rng
    (``/dev/hwrng``), then RDRAND, then CPU jitter.
    """

    name = "builtin"

    def __init__(self, sources: list[Source]) -> None:
        order = {"rdseed": 0, "hwrng": 1, "rdrand": 2, "getrandom": 3, "jitter": 4}
        self.sources = sorted(sources, key=lambda s: order.get(s.name, 9))
        self._closed = False

    @classmethod
    async def connect(cls) -> BuiltinEntropy:
        """Find the sources; the runtime's ``BEFORE_SEAL`` leaves only those without system calls."""
        self = cls(find_sources())
        lifecycle.subscribe(lifecycle.BEFORE_SEAL, self.before_seal)
        return self

    async def disconnect(self) -> None:
        """Close the source."""
        self._closed = True
        lifecycle.unsubscribe(lifecycle.BEFORE_SEAL, self.before_seal)

    def before_seal(self) -> None:
        """The process gives up its system calls: seal the sources that need them, and drop them."""
        seal()
        self.sources = [src for src in self.sources if not src.syscalls]

    @property
    def quality(self) -> float:
        """The credited bits per byte of the source that would answer now."""
        for src in self.sources:
            if src.healthy:
                return src.quality
        return 0.0

    async def read(self, n: int) -> bytes:
        """``n`` health-tested bytes from the best source that answers."""
        if self._closed:
            raise DeviceClosed("entropy source is disconnected")
        errors = []
        for src in self.sources:
            if not src.healthy:
                continue
            try:
                return src.read(n)
            except (SourceFailure, OSError) as exc:
                errors.append(str(exc))
        raise NotSeeded("no built-in entropy source answered: " + ("; ".join(errors) or "none found"))
