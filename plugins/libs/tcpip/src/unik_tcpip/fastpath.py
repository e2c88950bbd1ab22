"""Frame parsing and building fast paths: ``_fastpath.c`` when built, else the pure twin.

The interface tries :func:`tcp4_parse` on every received frame before the full parsers
of :mod:`unik_tcpip.wire`; TCP builds its segments with :func:`tcp_segment` and the
interface its IPv4 headers with :func:`ipv4_header`.  Callers use the module attributes
(``fastpath.tcp4_parse(...)``), which :func:`use_pure` rebinds; ``UNIK_PURE=1`` selects
the twin at import, and :func:`unik_tcpip.checksum.use_pure` switches both modules.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from unik import accel

if TYPE_CHECKING:
    from ._fastpath_py import Tcp4Fields

__all__ = ["implementation", "ipv4_header", "tcp4_parse", "tcp_segment", "use_pure"]

_PURE = "unik_tcpip._fastpath_py"
_impl: ModuleType
#: A named record (:class:`unik_tcpip._fastpath_py.Tcp4Fields`; in C a struct sequence of the same fields).
tcp4_parse: Callable[[Any, bool], Tcp4Fields | None]
tcp_segment: Callable[..., bytearray]
ipv4_header: Callable[..., None]


def implementation() -> str:
    """``"c"`` or ``"pure"``: which one is in use."""
    return "pure" if _impl.__name__ == _PURE else "c"


def use_pure(pure: bool) -> None:
    """Select the pure twin (``True``) or the C module (``False``, if built)."""
    global _impl, tcp4_parse, tcp_segment, ipv4_header
    if pure:
        # Imported only when selected: with C in use, one module less to load as a VM boots.
        from . import _fastpath_py

        _impl = _fastpath_py
    else:
        _impl = accel.load("unik_tcpip._fastpath", _PURE)
    tcp4_parse, tcp_segment, ipv4_header = _impl.tcp4_parse, _impl.tcp_segment, _impl.ipv4_header


use_pure(accel.pure())
