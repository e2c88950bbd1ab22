"""Pure-Python twin of :mod:`unik_vmguest._rdrand`: Python cannot execute RDRAND."""

from __future__ import annotations


def available() -> bool:
    """Never: the instruction needs the C module."""
    return False


def read(n: int) -> bytes:
    """Always fails: the instruction needs the C module."""
    if n < 0:
        raise ValueError("n must not be negative")
    raise OSError("RDRAND needs the C module unik_vmguest._rdrand")
