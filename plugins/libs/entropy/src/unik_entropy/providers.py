"""Device providers of unik-lib-entropy: ``random`` (Fortuna) and a built-in ``entropy``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from unik.provider import Need, Option, Provider


def _reseed_interval(value: float) -> None:
    if not 0.01 <= float(value) <= 3600:
        raise ValueError("must be between 0.01 and 3600 seconds")


class FortunaProvider(Provider):
    """Fortuna, seeded by the target's entropy device and the built-in sources.

    It needs an ``entropy`` device: the target's own (getrandom on unix, virtio-rng in a
    VM) wins; on a target without one, :class:`BuiltinEntropyProvider` supplies it.
    Priority 0 outranks the unix target's plain getrandom ``random`` (-10).
    """

    PLUGIN_NAME = "entropy.fortuna"
    kind = "random"
    implementation = "unik_entropy.device:FortunaRandom"
    description = "Fortuna CSPRNG (AES-256-CTR, 32 SHA-256 pools) fed by the entropy device, RDSEED/RDRAND, jitter"
    needs: ClassVar[Mapping[str, Need]] = {"entropy": Need("entropy")}
    options = (
        Option("reseed_interval", "seconds between rounds feeding every source into the pools",
               "float", default=1.0, check=_reseed_interval),
        Option("builtin_sources", "also use RDSEED, RDRAND, CPU jitter and /dev/hwrng", "bool", default=True),
    )


class BuiltinEntropyProvider(Provider):
    """The CPU's and the VM's sources as an ``entropy`` device, for targets without one."""

    PLUGIN_NAME = "entropy.builtin"
    kind = "entropy"
    implementation = "unik_entropy.device:BuiltinEntropy"
    description = "RDSEED, virtio-rng (/dev/hwrng), RDRAND or CPU jitter, health-tested"
    #: Below every target's own entropy device.
    priority = -20


PROVIDERS: list[type[Provider]] = [FortunaProvider, BuiltinEntropyProvider]
