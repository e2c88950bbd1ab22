"""The accelerator in use: C (``_sources``) or its pure twin (``UNIK_PURE=1``)."""

from __future__ import annotations

from types import ModuleType

from unik import accel as _choose

#: ``unik_entropy._sources`` when built and not disabled, else ``unik_entropy._sources_py``.
impl: ModuleType


def _use_impl(module: ModuleType) -> None:
    global impl
    impl = module


#: The pair, to switch it (:func:`unik.accel.use_pure`).
TWIN = _choose.twin("unik_entropy._sources", "unik_entropy._sources_py", _use_impl)
