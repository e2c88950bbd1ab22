"""Header prediction for established connections: ``_predict.c`` when built, else the pure twin.

On receive, :func:`established`; on transmit, :func:`output`, the common case of
:meth:`unik_tcpip.tcp.connection.Connection.output` (new data, nothing to retransmit),
which builds whole frames when the connection knows its peer's link header.

:func:`established` takes the common case of an ESTABLISHED connection — the next
segment in order, with data and/or an ACK of new data — straight from the frame parser's
record (:class:`unik_tcpip._fastpath_py.Tcp4Fields`) to the connection's state, and says
``False`` (having changed nothing) for everything else, which
:meth:`unik_tcpip.tcp.connection.Connection.segment_arrives` then processes.  The
rules are in the twin's docstring (:mod:`unik_tcpip.tcp._predict_py`).  Callers use the
module attribute (``predict.established(...)``), which a switch of the pair
(:func:`use_pure`, :func:`unik.accel.use_pure`) rebinds; ``UNIK_PURE=1`` selects the twin
at import, and :func:`unik_tcpip.checksum.use_pure` switches it with the other accelerators.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from unik import accel

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["established", "implementation", "output", "use_pure"]

_impl: ModuleType
#: ``established(tcb, frame, fields, now) -> bool``: whether the segment was the predicted case (and processed).
established: Callable[[Connection, Any, Any, int], bool]
#: ``output(tcb) -> bool``: whether :meth:`Connection.output`'s common case took it all (else it goes on).
output: Callable[[Connection], bool]


def _use(module: ModuleType) -> None:
    global _impl, established, output
    _impl = module
    established, output = module.established, module.output


#: The pair (:mod:`unik.accel`); the twin is imported only when selected.
TWIN = accel.twin("unik_tcpip.tcp._predict", "unik_tcpip.tcp._predict_py", _use)


def implementation() -> str:
    """``"c"`` or ``"pure"``: which one is in use."""
    return TWIN.implementation()


def use_pure(pure: bool) -> None:
    """Select the pure twin (``True``) or the default (``False``: C if built, unless ``UNIK_PURE``)."""
    TWIN.select(True if pure else None)
