"""Frame parsing and building fast paths: ``_fastpath.c`` when built, else the pure twin.

The interface tries :func:`tcp4_parse` (then :func:`tcp6_parse`) on every received frame
before the full parsers of :mod:`unik_tcpip.wire`; TCP builds its segments with :func:`tcp_segment` and the
interface its IPv4 headers with :func:`ipv4_header`; a connection that knows its peer's link header
builds whole frames with :func:`tcp_frame`.  Callers use the module attributes
(``fastpath.tcp4_parse(...)``), which a switch of the pair (:func:`use_pure`,
:func:`unik.accel.use_pure`) rebinds; ``UNIK_PURE=1`` selects the twin at import, and
:func:`unik_tcpip.checksum.use_pure` switches both modules.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from unik import accel

if TYPE_CHECKING:
    from ._fastpath_py import Tcp4Fields

__all__ = ["implementation", "ipv4_header", "tcp4_parse", "tcp6_parse", "tcp_frame", "tcp_segment", "use_pure"]

_impl: ModuleType
#: A named record (:class:`unik_tcpip._fastpath_py.Tcp4Fields`; in C a struct sequence of the same fields).
tcp4_parse: Callable[[Any, bool], Tcp4Fields | None]
#: The same for TCP over IPv6 without extension headers (16-byte ``src`` and ``dst``).
tcp6_parse: Callable[[Any, bool], Tcp4Fields | None]
tcp_segment: Callable[..., bytearray]
ipv4_header: Callable[..., None]
#: A whole frame (link, IP and TCP headers) of a segment an established connection sends.
tcp_frame: Callable[..., bytearray]


def _use(module: ModuleType) -> None:
    global _impl, tcp4_parse, tcp6_parse, tcp_segment, ipv4_header, tcp_frame
    _impl = module
    tcp4_parse, tcp6_parse = module.tcp4_parse, module.tcp6_parse
    tcp_segment, ipv4_header, tcp_frame = module.tcp_segment, module.ipv4_header, module.tcp_frame


#: The pair (:mod:`unik.accel`); the twin is imported only when selected (one module less as a VM boots).
TWIN = accel.twin("unik_tcpip._fastpath", "unik_tcpip._fastpath_py", _use)


def implementation() -> str:
    """``"c"`` or ``"pure"``: which one is in use."""
    return TWIN.implementation()


def use_pure(pure: bool) -> None:
    """Select the pure twin (``True``) or the default (``False``: C if built, unless ``UNIK_PURE``)."""
    TWIN.select(True if pure else None)
