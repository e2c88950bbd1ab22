"""The Internet checksum (RFC 1071, RFC 1624): C when built, else the pure twin.

Callers use the module-level functions; :func:`use_pure` (or :func:`unik.accel.use_pure`)
switches every caller at once (the tests run the stack both ways).  ``UNIK_PURE=1``
selects the twin at import.
"""

from __future__ import annotations

import struct
from types import ModuleType

from unik import accel

#: What the functions take (the same alias as the twin's, which is imported only when used).
BytesLike = bytes | bytearray | memoryview

_impl: ModuleType


def _use(module: ModuleType) -> None:
    global _impl
    _impl = module


#: The pair (:mod:`unik.accel`): C when built, else the pure twin.
TWIN = accel.twin("unik_tcpip._checksum", "unik_tcpip._checksum_py", _use)

__all__ = ["BytesLike", "checksum", "implementation", "pseudo_header_sum", "sum16", "update16", "use_pure"]


def sum16(data: BytesLike, initial: int = 0) -> int:
    """The one's-complement sum of ``data`` plus ``initial``, not complemented."""
    return int(_impl.sum16(data, initial))


def checksum(data: BytesLike, initial: int = 0) -> int:
    """The Internet checksum of ``data`` (``initial`` is a partial :func:`sum16`)."""
    return int(_impl.checksum(data, initial))


def update16(hc: int, old: int, new: int) -> int:
    """Incrementally update checksum ``hc`` for one word changed ``old`` -> ``new``."""
    return int(_impl.update16(hc, old, new))


def pseudo_header_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """The sum of the pseudo-header for TCP and UDP checksums.

    IPv4 (RFC 9293 3.1, RFC 768) with 4-byte addresses; IPv6 (RFC 8200 8.1: 32-bit
    length, next header) with 16-byte ones.  The transport layers call this with the
    addresses they were given and stay independent of the address family.
    """
    if len(src) == 4:
        return sum16(src + dst + struct.pack("!HH", proto, length))
    return sum16(src + dst + struct.pack("!II", length, proto))


def implementation() -> str:
    """``"c"`` or ``"pure"``: which one is in use."""
    return TWIN.implementation()


def use_pure(pure: bool) -> None:
    """Select the pure twins (``True``) or the default (``False``: C if built, unless ``UNIK_PURE``).

    Switches the frame fast paths (:mod:`unik_tcpip.fastpath`) and TCP's header prediction
    (:mod:`unik_tcpip.tcp.predict`) too.
    """
    from . import fastpath
    from .tcp import predict

    for pair in (TWIN, fastpath.TWIN, predict.TWIN):
        pair.select(True if pure else None)
