"""Continuous health tests of raw entropy sources (NIST SP 800-90B, section 4.4).

Every byte a source yields is one sample.  The repetition-count test fails a run of
``C = 1 + ceil(20 / H)`` identical samples; the adaptive-proportion test fails when the
first sample of a 512-sample window occurs ``C'`` times in that window, with ``C'`` the
binomial critical value for a false-alarm rate of 2^-20.  ``H`` is the min-entropy per
sample the source claims; a stuck source (one returning constants) fails the first test
within ``C`` samples whatever it claims.
"""

from __future__ import annotations

import math
from functools import lru_cache

from unik.errors import DeviceError

from . import accel

#: The false-alarm probability of both tests: 2^-20, as SP 800-90B recommends.
ALPHA_LOG2 = 20
#: The adaptive-proportion window for non-binary samples (SP 800-90B 4.4.2).
WINDOW = 512


class SourceFailure(DeviceError):
    """An entropy source failed a health test; its output is discarded."""

    def __init__(self, source: str, test: str, detail: str) -> None:
        self.source, self.test = source, test
        super().__init__(f"entropy source {source!r} failed the {test} test: {detail}")


def rct_cutoff(h: float) -> int:
    """The repetition-count cutoff for ``h`` bits of min-entropy per sample (4.4.1)."""
    return 1 + math.ceil(ALPHA_LOG2 / h)


#: :func:`apt_cutoff` of the window of 512 for the min-entropies the sources claim (the tests
#: run at H = min(credited, 2), so 2.0 and 0.5 on every start): summing the binomial CDF
#: takes ~600 big-integer ``math.comb`` calls per H, tens of ms in an emulated VM.  The
#: test suite checks every entry against :func:`compute_apt_cutoff`.
APT_CUTOFFS: dict[float, int] = {
    0.25: 468, 0.5: 410, 1.0: 311, 2.0: 177, 3.0: 103, 4.0: 62, 5.0: 39, 6.0: 25, 7.0: 18, 8.0: 13,
}


def apt_cutoff(h: float, window: int = WINDOW) -> int:
    """The adaptive-proportion cutoff (4.4.2): 1 + CRITBINOM(W, 2^-H, 1 - 2^-20).

    From :data:`APT_CUTOFFS` when it has ``h`` (for the window of 512), else computed.
    """
    if window == WINDOW:
        found = APT_CUTOFFS.get(h)
        if found is not None:
            return found
    return compute_apt_cutoff(h, window)


@lru_cache(maxsize=32)
def compute_apt_cutoff(h: float, window: int = WINDOW) -> int:
    """:func:`apt_cutoff` computed: CRITBINOM is the smallest ``k`` whose binomial CDF reaches ``1 - alpha``."""
    p = 2.0 ** -h
    alpha = 2.0 ** -ALPHA_LOG2
    cdf = 0.0
    for k in range(window + 1):
        cdf += math.comb(window, k) * p**k * (1 - p) ** (window - k)
        if cdf >= 1 - alpha:
            return min(1 + k, window)
    return window


class HealthTest:
    """Both tests, run continuously over everything one source produces.

    ``check(data)`` raises :class:`SourceFailure` when a test fails; after a failure
    the test stays failed (``failed`` is set) until :meth:`reset`.
    """

    def __init__(self, source: str, min_entropy: float) -> None:
        if not 0 < min_entropy <= 8:
            raise ValueError("min_entropy must be in (0, 8] bits per sample")
        self.source = source
        self.min_entropy = min_entropy
        self.rct = rct_cutoff(min_entropy)
        self.apt = apt_cutoff(min_entropy)
        self.failed: str | None = None
        self.samples = 0
        self._state: tuple[int, int, int, int, int] = (-1, 0, 0, 0, 0)

    def check(self, data: bytes) -> None:
        """Test ``data``; raise :class:`SourceFailure` if this source is (or was) unhealthy."""
        if self.failed:
            raise SourceFailure(self.source, self.failed, "the source was disabled earlier")
        code, index, *state = accel.impl.health_scan(data, self._state, self.rct, self.apt, WINDOW)
        self._state = (state[0], state[1], state[2], state[3], state[4])
        self.samples += len(data)
        if code == 1:
            self.failed = "repetition-count"
            raise SourceFailure(self.source, self.failed,
                                f"{self.rct} identical samples in a row (at byte {index})")
        if code == 2:
            self.failed = "adaptive-proportion"
            raise SourceFailure(self.source, self.failed,
                                f"one value {self.apt} times in a {WINDOW}-sample window (at byte {index})")

    def reset(self) -> None:
        """Forget the history and a failure (after the source was re-initialised)."""
        self.failed = None
        self._state = (-1, 0, 0, 0, 0)
