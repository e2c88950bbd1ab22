"""Pure-Python twin of ``_sources.c``: the same functions, without the CPU's DRNG.

Python cannot execute RDRAND or RDSEED, so :func:`cpu_features` reports neither and
:func:`rdrand`/:func:`rdseed` raise ``OSError`` as the C module does on a CPU without
them.  :func:`jitter` times the same kind of memory walk with ``perf_counter_ns``.
"""

from __future__ import annotations

import time

_WALK_SIZE = 64 * 1024


def cpu_features() -> tuple[bool, bool]:
    """``(has_rdrand, has_rdseed)``: never, from Python."""
    return (False, False)


def rdrand(n: int) -> bytes:
    """Unavailable from Python: raises ``OSError``."""
    if n < 0:
        raise ValueError("n must be >= 0")
    raise OSError("rdrand: not available to the pure-Python twin")


def rdseed(n: int) -> bytes:
    """Unavailable from Python: raises ``OSError``."""
    if n < 0:
        raise ValueError("n must be >= 0")
    raise OSError("rdseed: not available to the pure-Python twin")


def jitter(n: int) -> bytes:
    """``n`` raw samples: the low byte of the time taken by data-dependent memory walks."""
    if n < 0:
        raise ValueError("n must be >= 0")
    mem = bytearray(_WALK_SIZE)
    out = bytearray(n)
    clock = time.perf_counter_ns
    prev = clock()
    delta = pos = 0
    for i in range(n):
        for _ in range(8 + (delta & 7)):
            pos = (pos * 33 + 4093 + mem[pos] * 64 + (delta & 255)) % _WALK_SIZE
            mem[pos] = (mem[pos] + 1 + delta) & 0xFF
        now = clock()
        delta, prev = now - prev, now
        out[i] = delta & 0xFF
    return bytes(out)


def health_scan(
    data: bytes, state: tuple[int, int, int, int, int], rct_cutoff: int, apt_cutoff: int, window: int
) -> tuple[int, int, int, int, int, int, int]:
    """SP 800-90B repetition-count (4.4.1) and adaptive-proportion (4.4.2) tests.

    ``state`` is ``(last, run, apt_ref, apt_count, apt_pos)`` from the previous call
    (``(-1, 0, 0, 0, 0)`` at first).  Returns ``(code, index, *state)``: code 0 passed,
    1 repetition-count failure, 2 adaptive-proportion failure at ``data[index]``.
    """
    last, run, ref, count, apos = state
    for i, x in enumerate(data):
        if x == last:
            run += 1
            if run >= rct_cutoff:
                return (1, i, last, run, ref, count, apos)
        else:
            last, run = x, 1
        if apos == 0:
            ref, count = x, 1
        elif x == ref:
            count += 1
            if count >= apt_cutoff:
                return (2, i, last, run, ref, count, apos)
        apos += 1
        if apos >= window:
            apos = 0
    return (0, -1, last, run, ref, count, apos)
