"""Randomness for applications: the :mod:`secrets` and :mod:`random` functions on unik's Fortuna.

Once a ``Random`` device from this library is connected, these helpers draw from it;
before (or in programs without one, such as tools and tests) they use a process-wide
Fortuna seeded from the built-in sources on first use::

    from unik_entropy import helpers
    session = helpers.token_urlsafe()
    helpers.shuffle(deck)
"""

from __future__ import annotations

import threading
from collections.abc import MutableSequence, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from unik import lifecycle

from .fortuna import Fortuna

if TYPE_CHECKING:
    from ._unikrandom import UnikRandom as UnikRandom  # served by __getattr__

T = TypeVar("T")


class Generates(Protocol):
    """What the helpers need: a ``Random`` device or a bare :class:`Fortuna`."""

    def generate(self, n: int) -> bytes:
        """``n`` random bytes."""


_installed: list[Generates] = []
_fallback: Fortuna | None = None
_lock = threading.Lock()


def install(rng: Generates) -> None:
    """Make ``rng`` the generator of the helpers (the device does this on connect)."""
    _installed.append(rng)


def uninstall(rng: Generates) -> None:
    """Stop using ``rng`` (the device does this on disconnect)."""
    if rng in _installed:
        _installed.remove(rng)


def default() -> Generates:
    """The generator in use: the last connected device, else a process-wide Fortuna."""
    global _fallback
    if _installed:
        return _installed[-1]
    with _lock:
        if _fallback is None:
            rng = Fortuna()
            rng.bootstrap()
            _fallback = rng
        return _fallback


def token_bytes(nbytes: int = 32) -> bytes:
    """``nbytes`` random bytes (as :func:`secrets.token_bytes`)."""
    return default().generate(nbytes)


def token_hex(nbytes: int = 32) -> str:
    """``nbytes`` random bytes as hexadecimal."""
    return token_bytes(nbytes).hex()


def token_urlsafe(nbytes: int = 32) -> str:
    """``nbytes`` random bytes, URL-safe base64 without padding."""
    import base64  # here: the device imports this module as a VM boots, when every module costs

    return base64.urlsafe_b64encode(token_bytes(nbytes)).rstrip(b"=").decode("ascii")


def randbits(k: int) -> int:
    """A non-negative integer of ``k`` random bits."""
    if k < 0:
        raise ValueError("number of bits must be non-negative")
    if k == 0:
        return 0
    value = int.from_bytes(token_bytes((k + 7) // 8), "little")
    return value >> (-k % 8)


def randbelow(n: int) -> int:
    """A uniform integer in ``[0, n)``, by rejection (no modulo bias)."""
    if n <= 0:
        raise ValueError("upper bound must be positive")
    k = n.bit_length()
    while True:
        r = randbits(k)
        if r < n:
            return r


def randint(a: int, b: int) -> int:
    """A uniform integer in ``[a, b]``."""
    return a + randbelow(b - a + 1)


def choice(seq: Sequence[T]) -> T:
    """A uniformly chosen element of a non-empty sequence."""
    if not seq:
        raise IndexError("cannot choose from an empty sequence")
    return seq[randbelow(len(seq))]


def shuffle(items: MutableSequence[T]) -> None:
    """Shuffle ``items`` in place (Fisher-Yates)."""
    for i in range(len(items) - 1, 0, -1):
        j = randbelow(i + 1)
        items[i], items[j] = items[j], items[i]


def random() -> float:
    """A float in ``[0.0, 1.0)`` with 53 random bits."""
    return randbits(53) / (1 << 53)


def _preload() -> None:
    """What this module imports on first use, imported now (the process is being sealed)."""
    import base64  # noqa: F401

    from . import _unikrandom  # noqa: F401


lifecycle.subscribe(lifecycle.BEFORE_SEAL, _preload)


def __getattr__(name: str) -> object:
    """:class:`UnikRandom`, defined on first use."""
    # UnikRandom is defined on first use: it subclasses random.Random, and the random
    # module (with bisect, _random, _sha512) is not otherwise imported as a VM boots.
    if name == "UnikRandom":
        from ._unikrandom import UnikRandom

        return UnikRandom
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
