"""``UnikRandom``: :class:`random.Random` on unik's generator (served by :mod:`unik_entropy.helpers`)."""

from __future__ import annotations

import random as _random

from .helpers import randbits, token_bytes


class UnikRandom(_random.Random):
    """A :class:`random.Random` drawing every bit from unik's generator (like ``SystemRandom``).

    ``seed``, ``getstate`` and ``setstate`` make no sense for it and raise.
    """

    def random(self) -> float:
        """A float in ``[0.0, 1.0)``."""
        return randbits(53) / (1 << 53)

    def getrandbits(self, k: int) -> int:
        """An integer of ``k`` random bits."""
        return randbits(k)

    def randbytes(self, n: int) -> bytes:
        """``n`` random bytes."""
        return token_bytes(n)

    def seed(self, a: object = None, version: int = 2) -> None:
        """Ignored at construction; the generator seeds itself."""
        return None

    def getstate(self) -> tuple[object, ...]:  # type: ignore[override]
        """Not available: the state is the CSPRNG's secret."""
        raise NotImplementedError("UnikRandom has no reproducible state")

    def setstate(self, state: tuple[object, ...]) -> None:  # type: ignore[override]
        """Not available."""
        raise NotImplementedError("UnikRandom has no reproducible state")
