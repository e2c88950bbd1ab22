"""The Internet checksum in pure Python: the twin of ``_checksum.c``.

Because 2**16 is 1 modulo 0xFFFF, the one's-complement sum of the 16-bit big-endian
words of a buffer is the buffer read as one big integer, modulo 0xFFFF (with
0xFFFF, "negative zero", standing for a non-zero multiple).  CPython computes that
remainder in linear time, which makes this twin reasonably fast.
"""

from __future__ import annotations

BytesLike = bytes | bytearray | memoryview


def sum16(data: BytesLike, initial: int = 0) -> int:
    """The 16-bit one's-complement sum of ``data`` plus ``initial``, not complemented."""
    n = int.from_bytes(data, "big")
    if len(data) & 1:
        n <<= 8  # RFC 1071 4.1: pad an odd length with a zero byte
    n += (initial & 0xFFFF) + ((initial >> 16) & 0xFFFF)
    r = n % 0xFFFF
    return 0xFFFF if r == 0 and n != 0 else r


def checksum(data: BytesLike, initial: int = 0) -> int:
    """The Internet checksum of ``data``: the complement of :func:`sum16`."""
    return ~sum16(data, initial) & 0xFFFF


def update16(hc: int, old: int, new: int) -> int:
    """The checksum after a 16-bit word changed from ``old`` to ``new`` (RFC 1624 eqn. 3)."""
    acc = (~hc & 0xFFFF) + (~old & 0xFFFF) + (new & 0xFFFF)
    acc = (acc & 0xFFFF) + (acc >> 16)
    acc = (acc & 0xFFFF) + (acc >> 16)
    return ~acc & 0xFFFF
