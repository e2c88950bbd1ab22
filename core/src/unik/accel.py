"""Choosing between a C accelerator and its pure-Python twin: one way, for every module.

Every C module in unik has a pure-Python twin with the same functions.  A module
declares the pair once with :func:`twin`; ``UNIK_PURE=1`` selects the twins everywhere
(the tests run both ways); otherwise the C module is used when it was built, and the
twin when it was not.  Tests and benchmarks switch every pair at once with
:func:`use_pure` (or the :func:`pure_twins` context manager): modules that keep the
chosen functions in globals for speed (``fastpath.tcp4_parse``) rebind them in the
callback they gave :func:`twin`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType


def pure() -> bool:
    """Whether ``UNIK_PURE`` asks for the pure-Python twins."""
    return os.environ.get("UNIK_PURE", "") not in ("", "0", "false", "no")


def load(c_module: str, pure_module: str, *, use_pure: bool | None = None) -> ModuleType:
    """Import ``c_module``, or ``pure_module`` when asked (default: ``UNIK_PURE``) or C is missing.

    The twin is imported only when it is chosen: one module less to load as a VM boots.
    """
    if not (pure() if use_pure is None else use_pure):
        try:
            return importlib.import_module(c_module)
        except ImportError:
            pass
    return importlib.import_module(pure_module)


class Twin:
    """A C module and its pure twin; :attr:`module` is the one in use."""

    __slots__ = ("_bound", "c_module", "module", "pure_module")

    def __init__(self, c_module: str, pure_module: str) -> None:
        self.c_module = c_module
        self.pure_module = pure_module
        self.module: ModuleType = load(c_module, pure_module)
        self._bound: list[Callable[[ModuleType], object]] = []

    def implementation(self) -> str:
        """``"c"`` or ``"pure"``: which one is in use."""
        return "pure" if self.module.__name__ == self.pure_module else "c"

    def bind(self, use: Callable[[ModuleType], object]) -> None:
        """Call ``use(module)`` now and whenever the choice changes (to rebind globals)."""
        self._bound.append(use)
        use(self.module)

    def select(self, use_pure: bool | None) -> None:
        """Use the twin (``True``), the C module if built (``False``), or what ``UNIK_PURE`` says (``None``)."""
        self.module = load(self.c_module, self.pure_module, use_pure=use_pure)
        for use in self._bound:
            use(self.module)

    def __repr__(self) -> str:
        return f"<Twin {self.c_module}: {self.implementation()}>"


_twins: dict[str, Twin] = {}


def twin(c_module: str, pure_module: str, use: Callable[[ModuleType], object] | None = None) -> Twin:
    """The pair ``c_module``/``pure_module`` (one object per pair), chosen now; ``use`` is bound to it."""
    found = _twins.get(c_module)
    if found is None:
        found = _twins[c_module] = Twin(c_module, pure_module)
    if use is not None:
        found.bind(use)
    return found


def twins() -> dict[str, Twin]:
    """Every pair declared in this process, by C module name."""
    return dict(_twins)


def use_pure(pure_twins: bool | None) -> None:
    """Switch every declared pair: the twins (``True``), C (``False``) or as ``UNIK_PURE`` says (``None``)."""
    for pair in list(_twins.values()):
        pair.select(pure_twins)


@contextmanager
def pure_twins(pure_twins: bool = True) -> Iterator[None]:
    """Run a block with every pair switched (tests run both ways), then back to what ``UNIK_PURE`` says."""
    use_pure(pure_twins)
    try:
        yield
    finally:
        use_pure(None)
