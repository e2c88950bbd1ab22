"""Sequence-number arithmetic (RFC 9293 3.4): comparisons modulo 2**32."""

from __future__ import annotations

MASK = 0xFFFFFFFF


def seq_lt(a: int, b: int) -> bool:
    """``a < b`` in sequence space."""
    return ((a - b) & MASK) > 0x7FFFFFFF


def seq_le(a: int, b: int) -> bool:
    """``a <= b`` in sequence space."""
    return a == b or seq_lt(a, b)


def seq_diff(a: int, b: int) -> int:
    """``a - b`` in sequence space, as a signed integer."""
    d = (a - b) & MASK
    return d - (1 << 32) if d > 0x7FFFFFFF else d
